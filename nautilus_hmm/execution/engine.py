"""The execution engine: targets → router → risk gate → journal → venue, and venue
reports → order state machine → portfolio.

Money rules enforced here:

* Every order gets a deterministic client order id from the journal's sequence, and its
  intent is committed durably (`await journal.record_intent`) before the request
  leaves. A duplicate id is refused by the journal and never sent.
* A request whose outcome is unknown (timeout, lost connection, unexpected error) is
  resolved by querying the venue by client order id, never by resending. Only when the
  venue says it never saw the order is it marked REJECTED, and a later plan mints a new
  id.
* Planning counts open orders as if they fill, so an order is never sent on the other
  side of an order of the same instrument that awaits the venue's answer (NEW, SUBMITTED,
  an unknown outcome): the venue may take the two in either order, or only the later one,
  and the position would pass the target. That plan waits for the answer (`plan`).
* Fills are committed durably before they touch the portfolio. Adapters publish every
  fill report they see; the fill intake (`execution.fills`, backed by the journal's
  unique key (venue, instrument, trade id) when durable) is the one place a copy is
  refused and counted.
* Monitor mode (`[node] mode = "monitor"`, `execution.mode`): the order gate withholds
  every plan before an id is minted or an intent journaled, and refuses every cancel; no
  request reaches a venue's order entry.
* Venue reports are applied in arrival order by one consumer task (live,
  `execution.dispatch.ReportQueue`), or inline (backtest, `durable=False`), through the
  same state-application functions, so the strategy, router, risk and portfolio code is
  shared by construction.

Seams: the float equity book (equity, peak, loss limits) is `execution.equity`; the
read views and their number format are `execution.views`; marks are the shared
`marketdata.marks` book.

Hot path: `TargetPosition` handler → `plan_target` → `RiskGate.check` → `Order` →
dispatch. Nothing on it logs on success.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import structlog

from nautilus_hmm.core.bounded import RecentMap
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.errors import (
    AuthError,
    OrderRejected,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
    VenueError,
)
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.domain.sessions import iso_utc
from nautilus_hmm.domain.venue import Venue
from nautilus_hmm.execution import views
from nautilus_hmm.execution.closed import CLOSED_ORDERS_KEPT, ClosedOrders, load_recent_orders
from nautilus_hmm.execution.config import ExecutionConfig
from nautilus_hmm.execution.dispatch import ReportQueue
from nautilus_hmm.execution.equity import EquityBook
from nautilus_hmm.execution.fills import FillIntake
from nautilus_hmm.execution.mode import TRADE, OrderEntryDisabled, OrderGate
from nautilus_hmm.execution.orders import IllegalTransition, InvalidFill, Order
from nautilus_hmm.execution.portfolio import Portfolio
from nautilus_hmm.execution.router import OrderSpec, Reject, check_order, plan_target
from nautilus_hmm.journal.errors import JournalError
from nautilus_hmm.marketdata.marks import MarkBook
from nautilus_hmm.messages import (
    BalanceUpdate,
    Bar,
    CancelOrder,
    Fill,
    FillReport,
    InstrumentsUpdated,
    OrderStatusReport,
    PositionChanged,
    RiskDenied,
    SubmitOrder,
    TargetPosition,
)
from nautilus_hmm.risk.gate import OrderContext, RiskGate

log = structlog.get_logger("execution")

_ZERO = Decimal(0)
OUTSIDE_SESSION = "outside_session"  # RiskDenied reason: the instrument's session is closed
FOREIGN_REPORTS_KEPT = 1_000  # the newest reports for orders not ours (for /status and tests)
_ORDER_TYPES = {t.value: t for t in OrderType}
# A venue report whose status ranks below the order's is stale (e.g. ACCEPTED after FILLED).
_RANK = {
    OrderStatus.NEW: 0, OrderStatus.SUBMITTED: 1, OrderStatus.ACCEPTED: 2,
    OrderStatus.PARTIALLY_FILLED: 3, OrderStatus.PENDING_CANCEL: 3,
    OrderStatus.FILLED: 4, OrderStatus.CANCELED: 4, OrderStatus.REJECTED: 4, OrderStatus.EXPIRED: 4,
}


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


class ExecutionEngine(BaseComponent):
    """Owns orders, positions and the path to the venues."""

    name = "execution"

    def __init__(
        self,
        *,
        bus: Bus,
        clock: Clock,
        gate: RiskGate,
        portfolio: Portfolio,
        journal: Any,
        venues: dict[str, Venue],
        config: ExecutionConfig,
        id_prefix: str,
        durable: bool = True,
        marks: MarkBook | None = None,
        mode: str = TRADE,
        closed_orders_kept: int | None = CLOSED_ORDERS_KEPT,
    ) -> None:
        super().__init__()
        self.bus = bus
        self.clock = clock
        self.gate = gate
        self.portfolio = portfolio
        self.journal = journal
        self.venues = venues
        self.config = config
        self.id_prefix = id_prefix
        self.durable = durable
        # The one order-entry gate ("monitor": nothing is sent or cancelled; execution.mode).
        self.order_gate = OrderGate(mode)
        gate.add_venues(venues)
        self.instruments: dict[InstrumentId, Instrument] = {}
        self.orders: dict[str, Order] = {}  # open orders and the newest closed ones (`execution.closed`)
        self.open_orders: dict[InstrumentId, dict[str, Order]] = {}
        # Bounded memory of closed orders; the journal has the rest (recalled on a late report).
        # Without a durable journal (backtest) nothing is forgotten.
        self.closed_orders = ClosedOrders(self.orders, closed_orders_kept if durable and journal is not None else None)
        self.targets: dict[tuple[str, InstrumentId], Decimal] = {}
        # Plans held back while an order of the other side awaits the venue's answer (see
        # `plan`), by (strategy or "flatten", instrument): (target, reason). Planned again
        # once no order of that instrument awaits an answer.
        self._deferred: dict[tuple[str, InstrumentId], tuple[Decimal, str]] = {}
        # Plans refused `outside_session` (strategy or "flatten", instrument) -> reason: planned
        # again on the instrument's first bar once its session is open. The Bar handler exists
        # only while something is held (never for 24/7 instruments).
        self._held_for_open: dict[tuple[str, InstrumentId], str] = {}
        self._held_unsubscribe: Any = None
        self.unknown_outcome: set[str] = set()
        self.foreign_reports: dict[str, VenueOrder] = RecentMap(FOREIGN_REPORTS_KEPT)
        self.flattening = False
        self._flatten_logged = False  # flatten_complete is one line per flatten
        self.discrepancies: list[str] = []
        self.counts = {"orders": 0, "fills": 0, "duplicate_fills": 0, "rejected": 0, "unknown_outcome": 0}
        self.fees_by_symbol: dict[InstrumentId, Decimal] = {}
        # The shared mark book's marks (the gate's, by default): read here, written only by
        # the book's market-data handlers.
        self.mark_book = marks if marks is not None else gate.mark_book
        self.marks_f: dict[InstrumentId, float] = self.mark_book.marks
        self.equity_book = EquityBook(portfolio, self.marks_f, gate)
        self.fill_intake = FillIntake(journal, durable, self.counts)  # the one fill de-duplication
        self._reports: ReportQueue | None = None  # live mode: `execution.dispatch`
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Any] = []

    # ------------------------------------------------------------------ wiring

    def add_instruments(self, instruments: Iterable[Instrument]) -> None:
        """Make instruments tradable through this engine."""
        for inst in instruments:
            self.instruments[inst.id] = inst
            self.open_orders.setdefault(inst.id, {})
            self.portfolio.add_price_source(inst)

    def choose_account_currency(self, instrument_ids: Iterable[InstrumentId]) -> str:
        """Measure equity in the quote asset most of `instrument_ids` (the traded ones) share,
        instead of a configured guess; call once instruments are loaded, before recovery.
        Keeps the current currency when none of them is loaded or positions exist."""
        pf = self.portfolio
        quotes = Counter(self.instruments[i].pnl_currency for i in instrument_ids if i in self.instruments)
        if not quotes or pf.positions:
            return pf.base_currency
        cur = quotes.most_common(1)[0][0]
        if cur != pf.base_currency:
            log.info("account_currency_chosen", currency=cur, previous=pf.base_currency)
            pf.set_base_currency(cur)
            for inst in self.instruments.values():
                pf.add_price_source(inst)
            self.reset_equity_peak()
        return cur

    def _on_instruments(self, msg: InstrumentsUpdated) -> None:
        """A venue's refreshed instruments replace ours (the ones this engine trades)."""
        for inst in msg.instruments:
            old = self.instruments.get(inst.id)
            if old is None or old == inst:
                continue
            self.instruments[inst.id] = inst
            changed = {f.name: [str(getattr(old, f.name)), str(getattr(inst, f.name))]
                       for f in dataclasses.fields(inst) if getattr(old, f.name) != getattr(inst, f.name)}
            level = log.warning if old.tradable != inst.tradable else log.info
            level("instrument_updated", instrument=str(inst.id), changed=changed)

    def attach(self) -> None:
        """Subscribe to strategy commands, venue reports and market data."""
        sub = self.bus.subscribe
        self._unsubscribe += [
            sub(TargetPosition, self._on_target, name="execution"),
            sub(SubmitOrder, self._on_submit, name="execution"),
            sub(CancelOrder, self._on_cancel, name="execution"),
            sub(OrderStatusReport, self._on_report, name="execution"),
            sub(FillReport, self._on_report, name="execution"),
            sub(BalanceUpdate, self._on_balance, name="execution"),
            sub(Bar, self.equity_book.on_bar, name="execution"),
            sub(InstrumentsUpdated, self._on_instruments, name="execution"),
        ]

    def detach(self) -> None:
        """Unsubscribe everything."""
        for unsub in self._unsubscribe:
            unsub()
        self._unsubscribe.clear()
        if self._held_unsubscribe is not None:
            self._held_unsubscribe()
            self._held_unsubscribe = None

    def update_config(self, config: ExecutionConfig) -> None:
        """Live reload of [execution]."""
        self.config = config

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the report queue (live mode)."""
        if self.durable and self._reports is None:
            self._reports = ReportQueue(self)

    async def run(self) -> None:
        """Apply venue reports in arrival order; fills become durable before they apply
        (`execution.dispatch`)."""
        assert self._reports is not None
        await self._reports.run()

    async def stop(self) -> None:
        """Wait briefly for in-flight sends; they resolve by query after a restart otherwise."""
        self.detach()
        if self._reports is not None:
            self._reports.release()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=2.0)
            # Still in flight (e.g. resolving an unknown outcome): the journal has the
            # intent, so the next start resolves them by query.
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._reports is not None:
            await self._reports.drain()
            # The equity peak as of the stop: the next start continues drawdown from it.
            try:
                self.record_snapshot()
            except JournalError as exc:
                log.warning("position_snapshot_not_written", error=str(exc),
                            consequence="the next start restores the peak of the last periodic snapshot")

    def health(self) -> Health:
        """Unhealthy while orders have an unknown outcome."""
        if self.unknown_outcome:
            return Health(False, f"{len(self.unknown_outcome)} order(s) with unknown outcome")
        return Health(True)

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """A short-lived task the engine keeps a reference to."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("execution_task_failed", task=task.get_name(), error=repr(exc), exc_info=exc)

    async def idle(self) -> None:
        """Wait until no send, cancel or query task is in flight and every queued report is
        applied (tests, replay pacing)."""
        reports = self._reports
        while self._tasks or (reports is not None and reports.pending):
            if self._tasks:
                await asyncio.wait(list(self._tasks))
            else:
                assert reports is not None
                await reports.settle_step()

    # ------------------------------------------------------------------ equity
    #
    # Marks are the shared mark book's floats (`marketdata.marks`, one per instrument); the
    # Decimal portfolio marks are synced from them only when the portfolio is read (fills,
    # views). Equity, its peak and the loss limits are the float equity book's
    # (`execution.equity`); these methods are its engine-facing names.

    def _sync_marks(self) -> None:
        """Copy every float mark into the portfolio's Decimal marks (views, snapshots)."""
        marks = self.portfolio.marks
        for iid, f in self.marks_f.items():
            marks[iid] = _dec(f)

    @property
    def peak_equity_f(self) -> float:
        """The equity peak drawdown is measured from (float, base currency)."""
        return self.equity_book.peak_equity_f

    @property
    def last_equity_f(self) -> float:
        """Equity as of the last bar close, fill or balance update (float, base currency)."""
        return self.equity_book.last_equity_f

    def equity_f(self) -> float:
        """Equity in the base currency from float marks (balances at mark + perp unrealized)."""
        return self.equity_book.equity_f()

    def drawdown_pct_f(self) -> float:
        """Drawdown from the equity peak, in percent (never negative)."""
        return self.equity_book.drawdown_pct_f()

    def reset_equity_peak(self) -> None:
        """Start drawdown from the current equity (after recovery or a deposit)."""
        self.equity_book.reset_peak()

    def restore_equity_peak(self, snapshot: Any) -> None:
        """After recovery: drawdown continues from the newest position snapshot's peak
        (`EquityBook.restore_peak`)."""
        self.equity_book.restore_peak(snapshot)

    def portfolio_snapshot(self) -> dict[str, Any]:
        """The portfolio's snapshot at current marks, with the engine's equity peak (the one
        drawdown is measured from), for the journal's position snapshots."""
        self._sync_marks()
        return self.equity_book.snapshot()

    def record_snapshot(self) -> None:
        """Journal a position snapshot (periodic; the restart restores the equity peak from it)."""
        if self.journal is not None:
            self.journal.record_position_snapshot(self.clock.time_ns(), self.portfolio_snapshot())

    # ------------------------------------------------------------------ commands

    def _on_target(self, msg: TargetPosition) -> None:
        self.targets[(msg.strategy_id, msg.instrument_id)] = msg.target_qty
        if not self.flattening:
            self.plan(msg.strategy_id, msg.instrument_id, msg.target_qty, msg.reason)

    def _open_qty(self, iid: InstrumentId) -> tuple[Decimal, Decimal, int]:
        """Quantity bought/sold but not yet in the position, and the open order count.

        `open_orders` also holds terminal orders whose fills are not booked yet (a FILLED
        ack precedes its fill reports): their quantity is on its way into the position,
        and planning without it would trade the same delta twice.
        """
        buy = sell = _ZERO
        orders = self.open_orders.get(iid)
        if not orders:
            return _ZERO, _ZERO, 0
        n_open = 0
        for o in orders.values():
            if o.side is Side.BUY:
                buy += o.pending_qty
            else:
                sell += o.pending_qty
            if not o.status.is_terminal:
                n_open += 1
        return buy, sell, n_open

    def plan(self, strategy_id: str, iid: InstrumentId, target: Decimal, reason: str = "") -> Order | None:
        """Turn a target position into (at most) one order; None when nothing to do or denied."""
        inst = self.instruments.get(iid)
        if inst is None:
            self._deny_unrouted(iid, strategy_id, Side.BUY, target, "unknown_instrument", f"{iid} is not loaded")
            return None
        current = self.portfolio.position_qty(iid)
        buy, sell, _ = self._open_qty(iid)
        mark = self.marks_f.get(iid)
        ref = _dec(mark) if mark else None
        cfg = self.config
        order_type = _ORDER_TYPES[cfg.order_type]
        plan = plan_target(inst, current, buy, sell, target, ref, order_type, cfg.limit_offset_bps,
                           TimeInForce.GTC)
        deferred = self._deferred
        if deferred:
            deferred.pop((strategy_id, iid), None)  # this plan supersedes one held back
        if not isinstance(plan, OrderSpec):
            if self.order_gate.monitor:
                self.order_gate.forget(strategy_id, iid)
            if isinstance(plan, Reject):
                self._deny_unrouted(iid, strategy_id, Side.BUY if target > current else Side.SELL,
                                    abs(target - current), plan.reason, plan.detail)
            return None
        if (buy or sell) and self._awaiting_answer(iid, plan.side.opposite()):
            # The plan assumes the unanswered order fills, but the venue may take the two
            # requests in either order, or only this one (the other refused, or never
            # landed): the position could pass every target (a buy on top of a sell that
            # did not happen). Held back; planned again once the venue has answered.
            deferred[(strategy_id, iid)] = (target, reason)
            return None
        if inst.sessions is not None and self._outside_session(inst, strategy_id, plan.side, plan.qty):
            self._hold_for_open(strategy_id, iid, reason)
            return None
        return self._submit(inst, strategy_id, plan.side, plan.order_type, plan.qty, plan.price,
                            plan.time_in_force, plan.reduce_only, reason)

    def _awaiting_answer(self, iid: InstrumentId, side: Side | None = None) -> bool:
        """True while an order of `iid` (of `side`, when given) has no answer from the venue
        yet: NEW (its intent being journaled) or SUBMITTED (sent; an unknown outcome too)."""
        orders = self.open_orders.get(iid)
        if not orders:
            return False
        for o in orders.values():
            if (o.status is OrderStatus.SUBMITTED or o.status is OrderStatus.NEW) and (side is None or o.side is side):
                return True
        return False

    def _plan_deferred(self, iid: InstrumentId) -> None:
        """Plan what was held back for `iid`, once none of its orders awaits an answer."""
        if self._awaiting_answer(iid):
            return
        for key in [k for k in self._deferred if k[1] == iid]:
            target, reason = self._deferred.pop(key)
            strategy_id = key[0]
            # A strategy's plan waits while flattening; a flatten's is moot after it.
            if (strategy_id == "flatten") == self.flattening:
                self.plan(strategy_id, iid, target, reason)

    def _on_submit(self, msg: SubmitOrder) -> None:
        inst = self.instruments.get(msg.instrument_id)
        if inst is None:
            self._deny_unrouted(msg.instrument_id, msg.strategy_id, msg.side, msg.quantity,
                                "unknown_instrument", f"{msg.instrument_id} is not loaded")
            return
        mark = self.marks_f.get(msg.instrument_id)
        bad = check_order(inst, msg.side, msg.quantity, msg.price, msg.order_type, _dec(mark) if mark else None)
        if bad is not None:
            self._deny_unrouted(msg.instrument_id, msg.strategy_id, msg.side, msg.quantity, bad.reason, bad.detail)
            return
        if inst.sessions is not None and self._outside_session(inst, msg.strategy_id, msg.side, msg.quantity):
            return
        self._submit(inst, msg.strategy_id, msg.side, msg.order_type, msg.quantity, msg.price,
                     msg.time_in_force, msg.reduce_only, msg.reason)

    def _deny_unrouted(self, iid: InstrumentId, strategy_id: str, side: Side, qty: Decimal,
                       reason: str, detail: str) -> None:
        now = self.clock.time_ns()
        log.warning("order_not_routable", instrument=str(iid), strategy=strategy_id, side=side.value, qty=str(qty),
                    reason=reason, detail=detail)
        self.bus.publish(RiskDenied(ts_event_ns=now, ts_init_ns=now, instrument_id=iid, strategy_id=strategy_id,
                                    side=side, quantity=qty, reason=reason, detail=detail))

    def _submit(self, inst: Instrument, strategy_id: str, side: Side, order_type: OrderType, qty: Decimal,
                price: Decimal | None, tif: TimeInForce, reduce_only: bool, reason: str) -> Order | None:
        iid = inst.id
        if self.order_gate.monitor:
            # Monitor mode: no order exists, no id is minted, no intent is journaled.
            self.order_gate.withhold(strategy_id, iid, side, order_type, qty, price, reason, self.clock.time_ns())
            return None
        cid = self.journal.next_client_order_id(self.id_prefix)
        req = OrderRequest(cid, iid, side, order_type, qty, price, tif, reduce_only)
        buy, sell, n_open = self._open_qty(iid)
        pf = self.portfolio
        ctx = OrderContext(pf.position_qty(iid), n_open, buy, sell, float(pf.gross_exposure()),
                           float(inst.multiplier))
        decision = self.gate.check(req, strategy_id, ctx)
        if not decision.allowed:
            return None
        now = self.clock.time_ns()
        order = Order.from_request(req, strategy_id, now)
        if reason:
            order.reason = reason
        self.orders[cid] = order
        self.open_orders[iid][cid] = order
        self.counts["orders"] += 1
        order.take_transition()  # NEW: the journal writes its event row with the intent
        self._publish_order(order, now)
        if self.durable:
            self.spawn(self._send(order), f"send:{cid}")
        else:
            self._send_nowait(order)
        return order

    def _outside_session(self, inst: Instrument, strategy_id: str, side: Side, qty: Decimal) -> bool:
        """Refuse (reason `outside_session`, before an id is minted) an order of an instrument
        whose trading session is closed now, unless its venue sets `outside_rth` (IBKR's
        outside-regular-hours flag). Crypto instruments (`sessions` None) never come here. A
        refused target plan (a strategy's or a flatten's) is planned again at the session's
        first bar (`_hold_for_open`); a refused SubmitOrder is not (an explicit order is
        not sent hours later)."""
        sessions = inst.sessions
        now = self.clock.time_ns()
        if sessions is None or sessions.is_open(now):
            return False
        if getattr(self.venues.get(inst.venue), "outside_rth", False) is True:  # only an explicit True
            return False
        nxt = sessions.next_open_ns(now)
        detail = (f"{inst.id} session closed; next open {iso_utc(nxt)}" if nxt is not None
                  else f"{inst.id} session closed; no later session in its calendar")
        self._deny_unrouted(inst.id, strategy_id, side, qty, OUTSIDE_SESSION, detail)
        return True

    def _hold_for_open(self, strategy_id: str, iid: InstrumentId, reason: str) -> None:
        """Plan `strategy_id`'s target of `iid` again at the session's first bar."""
        self._held_for_open[(strategy_id, iid)] = reason
        if self._held_unsubscribe is None:
            self._held_unsubscribe = self.bus.subscribe(Bar, self._on_bar_after_open, name="execution:sessions")

    def _on_bar_after_open(self, bar: Bar) -> None:
        """A bar of an instrument with held plans: once its session is open, plan them again
        (the strategy's latest target; a flatten only while still flattening)."""
        iid = bar.instrument_id
        keys = [k for k in self._held_for_open if k[1] == iid]
        if not keys:
            return
        inst = self.instruments.get(iid)
        if inst is None or (inst.sessions is not None and not inst.sessions.is_open(self.clock.time_ns())):
            return
        for key in keys:
            reason = self._held_for_open.pop(key)
            strategy_id = key[0]
            if strategy_id == "flatten":
                if self.flattening:
                    self.plan(strategy_id, iid, _ZERO, reason)
            elif not self.flattening and key in self.targets:
                self.plan(strategy_id, iid, self.targets[key], reason)
        if not self._held_for_open and self._held_unsubscribe is not None:
            self._held_unsubscribe()
            self._held_unsubscribe = None

    # ------------------------------------------------------------------ sending

    async def _send(self, order: Order) -> None:
        req = order.to_request()
        venue = self.venues[req.instrument_id.venue]
        if self._entry_refused(order):
            return
        try:
            await self.journal.record_intent(req, order.strategy_id, order.created_ns)
        except Exception as exc:
            # Not journaled means not sent: the order never leaves the process.
            log.error("intent_not_journaled", client_order_id=req.client_order_id, error=repr(exc))
            self._finish(order, OrderStatus.REJECTED, f"not journaled: {exc}")
            return
        order.transition(OrderStatus.SUBMITTED, self.clock.time_ns())
        self._emit(order, order.ts_last_ns)
        try:
            ack = await venue.submit_order(req)
        except OrderRejected as exc:
            self.gate.record_venue_success(venue.name)
            self._finish(order, OrderStatus.REJECTED, str(exc))
            return
        except VenueBanned as exc:
            self.gate.record_venue_error(venue.name, str(exc))
            self._finish(order, OrderStatus.REJECTED, f"venue banned: {exc}")
            return
        except AuthError as exc:
            # The venue refused the credentials or the signature: nothing was placed.
            self.gate.record_venue_error(venue.name, str(exc))
            self._finish(order, OrderStatus.REJECTED, f"auth: {exc}")
            return
        except RetryableError as exc:
            # The venue guarantees nothing happened: safe to give up this id; a later
            # plan mints a new one.
            self.gate.record_venue_error(venue.name, str(exc))
            self._finish(order, OrderStatus.REJECTED, f"retryable: {exc}")
            return
        except (TimeoutError, UnknownOutcome, VenueError, OSError) as exc:
            self._unknown(order, venue, exc)
            return
        except Exception as exc:  # a bug or an unexpected transport error: outcome unknown
            log.error("submit_unexpected_error", client_order_id=req.client_order_id, error=repr(exc), exc_info=exc)
            self._unknown(order, venue, exc)
            return
        self.gate.record_venue_success(venue.name)
        self._apply_report(venue.name, ack, order)

    def _send_nowait(self, order: Order) -> None:
        """Backtest path: the sim venue answers synchronously; the journal is not durable."""
        req = order.to_request()
        venue: Any = self.venues[req.instrument_id.venue]
        if self._entry_refused(order):
            return
        order.transition(OrderStatus.SUBMITTED, order.created_ns)
        self._emit(order, order.ts_last_ns)
        try:
            ack = venue.submit_order_nowait(req)
        except OrderRejected as exc:
            self._finish(order, OrderStatus.REJECTED, str(exc))
            return
        self._apply_report(venue.name, ack, order)

    def _entry_refused(self, order: Order) -> bool:
        """Monitor mode, at the venue call itself: an order that exists anyway (none is created
        in monitor mode; this guards any path that makes one) is closed REJECTED, never sent."""
        if not self.order_gate.monitor:
            return False
        self.order_gate.counts["submit"] += 1
        log.error("order_refused_monitor_mode", client_order_id=order.client_order_id)
        self._finish(order, OrderStatus.REJECTED, "monitor mode: order entry disabled")
        return True

    def _unknown(self, order: Order, venue: Venue, exc: BaseException) -> None:
        cid = order.client_order_id
        self.gate.record_venue_error(venue.name, repr(exc))
        self.unknown_outcome.add(cid)
        self.counts["unknown_outcome"] += 1
        log.error("order_outcome_unknown", client_order_id=cid, venue=venue.name, error=repr(exc),
                  action="querying by client order id; never resending")
        self.spawn(self._resolve_unknown(order, venue), f"resolve:{cid}")

    async def _resolve_unknown(self, order: Order, venue: Venue, attempts: int = 5) -> None:
        """Query the venue until it answers about the order; never resend."""
        cid = order.client_order_id
        delay = max(0.1, self.config.order_timeout_s / 8)
        not_found = 0
        attempt = 0
        while attempt < attempts:
            await self.clock.sleep(delay)
            try:
                vo = await venue.query_order(order.instrument_id, cid)
            except (RateLimited, VenueBanned) as exc:
                # Waiting out a rate limit or a ban does not use up an attempt.
                if isinstance(exc, VenueBanned):
                    delay = max(1.0, (exc.until_ns - self.clock.time_ns()) / 1e9)
                else:
                    delay = max(1.0, exc.retry_after_s)
                log.warning("order_query_deferred", client_order_id=cid, wait_s=round(delay, 1), error=str(exc))
                continue
            except VenueError as exc:
                attempt += 1
                log.warning("order_query_failed", client_order_id=cid, attempt=attempt, error=str(exc))
                delay = min(delay * 2, 30.0)
                continue
            attempt += 1
            if vo is not None:
                self.unknown_outcome.discard(cid)
                log.warning("order_outcome_resolved", client_order_id=cid, status=vo.status.value,
                            attempts=attempt)
                self._apply_report(venue.name, vo, order)
                return
            not_found += 1
            delay = min(delay * 2, 30.0)
        if not_found >= 2:
            # The venue repeatedly says it never saw the id: the request did not land.
            self.unknown_outcome.discard(cid)
            self._finish(order, OrderStatus.REJECTED, "not found at venue after an unknown outcome")
        else:
            log.error("order_outcome_still_unknown", client_order_id=cid,
                      hint="reconciliation will resolve it; trading on this symbol is unaffected by resends")

    # ------------------------------------------------------------------ cancels

    def _on_cancel(self, msg: CancelOrder) -> None:
        order = self.orders.get(msg.client_order_id)
        if order is None or order.is_terminal:
            log.warning("cancel_unknown_or_closed_order", client_order_id=msg.client_order_id)
            return
        self.cancel(order, msg.reason)

    def cancel(self, order: Order, reason: str = "") -> None:
        """Cancel one order (always allowed by the risk gate; never in monitor mode)."""
        if self.order_gate.monitor:
            self.order_gate.refuse_cancel(order.client_order_id, reason)
            return
        if order.status in (OrderStatus.NEW,):
            return  # not yet sent: its send task will see the state
        try:
            order.transition(OrderStatus.PENDING_CANCEL, self.clock.time_ns(), reason)
        except IllegalTransition:
            return
        self._emit(order, self.clock.time_ns())
        venue = self.venues[order.instrument_id.venue]
        if self.durable:
            self.spawn(self._cancel(order, venue), f"cancel:{order.client_order_id}")
        else:
            try:
                vo = venue.cancel_order_nowait(order.instrument_id, order.client_order_id)  # type: ignore[attr-defined]
                self._apply_report(venue.name, vo, order)
            except OrderRejected as exc:
                if order.cancel_rejected(self.clock.time_ns(), str(exc)):
                    self._emit(order, order.ts_last_ns)

    async def _cancel(self, order: Order, venue: Venue) -> None:
        try:
            vo = await venue.cancel_order(order.instrument_id, order.client_order_id)
        except OrderRejected as exc:
            if order.cancel_rejected(self.clock.time_ns(), str(exc)):
                self._emit(order, order.ts_last_ns)
            # Usually already filled or canceled: ask what happened.
            vo2 = await self._query_quietly(venue, order)
            if vo2 is not None:
                self._apply_report(venue.name, vo2, order)
            return
        except (VenueError, OSError) as exc:
            self.gate.record_venue_error(venue.name, repr(exc))
            vo2 = await self._query_quietly(venue, order)
            if vo2 is not None:
                self._apply_report(venue.name, vo2, order)
            return
        self._apply_report(venue.name, vo, order)

    async def _query_quietly(self, venue: Venue, order: Order) -> VenueOrder | None:
        try:
            return await venue.query_order(order.instrument_id, order.client_order_id)
        except VenueError as exc:
            log.warning("order_query_failed", client_order_id=order.client_order_id, error=str(exc))
            return None

    async def cancel_all(self, reason: str) -> int:
        """Cancel every open order we know of; returns how many were asked. Monitor mode:
        OrderEntryDisabled (the caller answers 409)."""
        if self.order_gate.monitor:
            raise OrderEntryDisabled("cancel_orders")
        orders = [o for by_iid in self.open_orders.values() for o in by_iid.values()
                  if o.status not in (OrderStatus.NEW, OrderStatus.PENDING_CANCEL)]
        for o in orders:
            self.cancel(o, reason)
        return len(orders)

    def flatten(self, reason: str) -> int:
        """Close every position at market (the gate must be REDUCING or ACTIVE). Monitor mode:
        OrderEntryDisabled (the caller answers 409), nothing changes."""
        if self.order_gate.monitor:
            raise OrderEntryDisabled("flatten")
        self.flattening = True
        self._flatten_logged = False
        n = 0
        for iid, pos in list(self.portfolio.positions.items()):
            if pos.qty != 0 and iid in self.instruments and self.plan("flatten", iid, _ZERO, reason):
                n += 1
        return n

    def is_flat(self) -> bool:
        """No position and no open order."""
        return all(p.qty == 0 for p in self.portfolio.positions.values()) and not any(self.open_orders.values())

    def replan_all(self) -> int:
        """Re-plan every target whose instrument has no open orders (after rejections)."""
        if self.flattening or self.gate.state is TradingState.HALTED:
            return 0
        n = 0
        gate = self.gate
        for (strategy_id, iid), target in list(self.targets.items()):
            if self.open_orders.get(iid) or gate.venue_state(iid.venue) is TradingState.HALTED:
                continue
            if self.portfolio.position_qty(iid) != target and self.plan(strategy_id, iid, target, "replan"):
                n += 1
        return n

    # ------------------------------------------------------------------ reports

    def _on_balance(self, msg: BalanceUpdate) -> None:
        # Balance updates share the reports' queue: a venue sends a fill before the balance
        # it produced, and applying the balance first would count that fill twice.
        if self._reports is not None:
            self._reports.put(msg)
        else:
            self._apply_balance(msg)

    def _on_report(self, msg: OrderStatusReport | FillReport) -> None:
        if self._reports is not None:
            self._reports.put(msg)
            return
        try:
            if isinstance(msg, FillReport):
                self._fill_nowait(msg.venue, msg.fill)
            else:
                self._apply_report(msg.venue, msg.order)
        except (IllegalTransition, InvalidFill) as exc:
            self._discrepancy(str(exc))

    def _apply_report(self, venue: str, vo: VenueOrder, order: Order | None = None) -> None:
        """Apply a venue's view of an order: `order` when the caller holds it (a send, cancel or
        query task: the order may have been forgotten from `orders` meanwhile), else by id."""
        held = order if order is not None and order.client_order_id == vo.client_order_id else None
        order = self.orders.get(vo.client_order_id) or held
        if order is None:
            self.foreign_reports[vo.client_order_id] = vo
            log.warning("report_for_unknown_order", venue=venue, client_order_id=vo.client_order_id,
                        status=vo.status.value)
            return
        if order.is_terminal and _RANK[vo.status] < 4:
            return  # stale report that arrived after the final one
        try:
            changed = order.apply_venue_state(vo)
        except IllegalTransition as exc:
            self._discrepancy(f"{exc} (venue says {vo.status.value})")
            return
        if changed:
            self.unknown_outcome.discard(order.client_order_id)
            self._after_change(order)

    def _apply_balance(self, msg: BalanceUpdate) -> None:
        """A venue's balance of one asset (free + locked) becomes that venue's share of the
        asset in the portfolio; the same asset held at another venue keeps its share."""
        total = msg.free + msg.locked
        pf = self.portfolio
        have = pf.cash_at(msg.venue, msg.asset)
        if total == have:
            return  # the books already agree (the usual case: the fill came first)
        pf.set_cash(msg.asset, total, msg.venue)
        log.info("balance_synced_from_venue", venue=msg.venue, asset=msg.asset, delta=str(total - have),
                 balance=str(total), total=str(pf.cash[msg.asset]))
        self.equity_book.refresh()

    def _finish(self, order: Order, status: OrderStatus, reason: str) -> None:
        try:
            order.transition(status, self.clock.time_ns(), reason)
        except IllegalTransition as exc:
            self._discrepancy(str(exc))
            return
        if status is OrderStatus.REJECTED:
            self.counts["rejected"] += 1  # the node's trade log writes the order_rejected line
        self._after_change(order)

    def _after_change(self, order: Order) -> None:
        iid = order.instrument_id
        if order.is_terminal and order.fills_booked:
            by_iid = self.open_orders.get(iid)
            if by_iid is not None and by_iid.pop(order.client_order_id, None) is not None:
                self.closed_orders.closed(order)  # may forget the oldest closed order
        self._emit(order, order.ts_last_ns)
        if order.status is OrderStatus.FILLED and order.fills_booked and not self.open_orders.get(iid):
            if self.flattening:
                if self.is_flat() and not self._flatten_logged:
                    # Once: a venue repeating the final state of an order (its answer after
                    # the stream's fill, a gap query) reaches here again.
                    self._flatten_logged = True
                    log.warning("flatten_complete")
                elif self.portfolio.position_qty(iid) != 0 and iid in self.instruments:
                    # An order in flight when the flatten was planned filled since (a spot
                    # sell is capped at the holdings of the moment): close the rest.
                    self.plan("flatten", iid, _ZERO, "flatten_after_fill")
            else:
                # A target stated while this order was in flight was planned against the
                # position before its fill: plan again once every fill of the order is
                # booked (a FILLED ack can precede its fill reports; planning then would
                # trade the same delta twice). Only after fills: re-planning after a
                # rejection would loop (the periodic replan retries those, rate-limited).
                for (strategy_id, t_iid), target in self.targets.items():
                    if t_iid == iid and self.portfolio.position_qty(iid) != target:
                        self.plan(strategy_id, iid, target, "replan_after_fill")
        if self._deferred and order.status is not OrderStatus.SUBMITTED and order.status is not OrderStatus.NEW:
            self._plan_deferred(iid)  # the venue answered: what was held back for it goes now

    def _emit(self, order: Order, ts_ns: int) -> None:
        """Journal and publish the order's transition, once per change of status or
        filled qty (the fill report and the status report of one execution are one event)."""
        if order.take_transition():
            self._record(order)
            self._publish_order(order, ts_ns)

    def _record(self, order: Order) -> None:
        if self.journal is not None and self.durable:
            self.journal.record_order_update(order.client_order_id, order.status, order.filled_qty, order.avg_px,
                                             order.venue_order_id, order.reason or None, order.ts_last_ns)

    def _publish_order(self, order: Order, ts_ns: int) -> None:
        self.bus.publish(order.to_event(ts_ns, self.clock.time_ns()))

    async def admit_fill(self, venue: str, fill: VenueFill) -> bool:
        """A fill read outside the report queue (reconciliation): booked once through the fill
        intake (durable first); True when it was new."""
        if not await self.fill_intake.admit(venue, fill):
            return False
        self._apply_fill(venue, fill)
        return True

    def _fill_nowait(self, venue: str, fill: VenueFill) -> None:
        if self.fill_intake.admit_nowait(venue, fill):
            self._apply_fill(venue, fill)

    def _apply_fill(self, venue: str, fill: VenueFill) -> None:
        """Book a fill that is new (and durable in live mode) into the portfolio, then the order.

        The portfolio goes first: the order's state change may trigger a re-plan, which
        must see the position including this fill.
        """
        iid = fill.instrument_id
        inst = self.instruments.get(iid)
        order = self.orders.get(fill.client_order_id)
        if order is None:
            log.warning("fill_for_unknown_order", venue=venue, client_order_id=fill.client_order_id,
                        trade_id=fill.trade_id)
        if inst is None:
            self._discrepancy(f"fill {fill.trade_id} for unknown instrument {iid}")
        else:
            pf = self.portfolio
            # The marks the portfolio's equity (its peak) reads: what is held, and this.
            marks, marks_f = pf.marks, self.marks_f
            for i in self.equity_book.book_iids:
                f = marks_f.get(i)
                if f is not None:
                    marks[i] = _dec(f)
            f = marks_f.get(iid)
            if f is not None:
                marks[iid] = _dec(f)
            pos = pf.apply_fill(inst, fill.side, fill.qty, fill.price, fill.fee, fill.fee_asset, fill.ts_ns)
            self.equity_book.refresh()
            self.counts["fills"] += 1
            if fill.fee_asset == inst.pnl_currency:
                self.fees_by_symbol[iid] = self.fees_by_symbol.get(iid, _ZERO) + fill.fee
            now = self.clock.time_ns()
            self.bus.publish(Fill(ts_event_ns=fill.ts_ns, ts_init_ns=now, instrument_id=iid,
                                  client_order_id=fill.client_order_id, venue_order_id=fill.venue_order_id,
                                  trade_id=fill.trade_id, side=fill.side, qty=fill.qty, price=fill.price,
                                  fee=fill.fee, fee_asset=fill.fee_asset, liquidity=fill.liquidity))
            self.bus.publish(PositionChanged(ts_event_ns=fill.ts_ns, ts_init_ns=now, instrument_id=iid,
                                             qty=pos.qty, avg_px=pos.avg_px, realized_pnl=pos.realized_pnl,
                                             fees=pos.fees))
            self.equity_book.check(fill.ts_ns)
        if order is not None:
            try:
                order.apply_fill(fill.trade_id, fill.qty, fill.price, fill.ts_ns)
            except (InvalidFill, IllegalTransition) as exc:
                self._discrepancy(f"fill {fill.trade_id} on {fill.client_order_id}: {exc}")
            self._after_change(order)

    def _discrepancy(self, text: str) -> None:
        self.discrepancies.append(text)
        del self.discrepancies[:-100]
        log.error("execution_discrepancy", detail=text)

    # ------------------------------------------------------------------ recovery

    def restore_order(self, order: Order) -> None:
        """Adopt an order rebuilt from the journal (recovery, recall)."""
        self.orders[order.client_order_id] = order
        if not order.is_terminal:
            self.open_orders.setdefault(order.instrument_id, {})[order.client_order_id] = order
        elif order.fills_booked:
            self.closed_orders.closed(order)

    def must_recall(self, client_order_id: str) -> bool:
        """True when a report names an id not in memory that may be a forgotten closed order of
        ours (`execution.closed`): `recall` it before applying the report. A dict lookup when
        the order is in memory or nothing was ever forgotten."""
        return client_order_id not in self.orders and self.closed_orders.may_recall(
            client_order_id, getattr(self.journal, "journal_id", None))

    async def recall(self, client_order_id: str) -> Order | None:
        """The order `client_order_id`: from memory, else (a forgotten closed order of ours) read
        back from the journal and adopted as closed; None when neither has it."""
        order = self.orders.get(client_order_id)
        if order is not None or not self.must_recall(client_order_id):
            return order
        try:
            order = await self.closed_orders.recall(self.journal, client_order_id)
        except (JournalError, sqlite3.Error, ValueError, ArithmeticError) as exc:
            # A closed journal, a failed read or a row that no longer parses: the report is
            # handled as one for an unknown order (logged, kept for /status); the report
            # consumer goes on, and reconciliation re-checks the venue's books.
            log.error("closed_order_recall_failed", client_order_id=client_order_id, error=repr(exc))
            return None
        if order is not None and client_order_id not in self.orders:  # not adopted meanwhile
            log.info("closed_order_recalled", client_order_id=client_order_id, status=order.status.value)
            self.restore_order(order)
        return self.orders.get(client_order_id)

    # ------------------------------------------------------------------ views

    def order_views(self, open_only: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """Orders for /orders, newest first (number format: `execution.views`)."""
        orders = [o for o in self.orders.values() if not (open_only and o.is_terminal)]
        orders.sort(key=lambda o: o.created_ns, reverse=True)
        insts = self.instruments
        return [views.order_view(o.snapshot(), insts.get(o.instrument_id)) for o in orders[:limit]]

    async def order_views_complete(self, open_only: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """/orders: `order_views`, with the closed orders this engine forgot read back from the
        journal (`execution.closed`): the same answer as if every order were in memory (open
        orders always are). A failed journal read answers from memory (logged)."""
        if open_only or not self.closed_orders.pruned or self.journal is None:
            return self.order_views(open_only, limit)
        try:
            older = await self.journal.read(load_recent_orders, self.journal, limit)
        except (JournalError, sqlite3.Error) as exc:
            log.warning("orders_view_journal_read_failed", error=str(exc), answer="orders in memory only")
            return self.order_views(open_only, limit)
        merged = {o.client_order_id: o for o in older}
        merged.update(self.orders)  # memory is the fresher copy (journal rows are written behind)
        orders = sorted(merged.values(), key=lambda o: o.created_ns, reverse=True)[:limit]
        insts = self.instruments
        return [views.order_view(o.snapshot(), insts.get(o.instrument_id)) for o in orders]

    def fill_view(self, row: Any) -> dict[str, Any]:
        """A journaled fill for /fills (number format: `execution.views`)."""
        return views.fill_view(row, self.instruments.get(row.instrument_id))

    def position_views(self) -> list[dict[str, Any]]:
        """Positions with marks and PnL for /positions (mark null: none received yet)."""
        self._sync_marks()
        return views.position_views(self.portfolio, self.instruments)

    def pnl_view(self) -> dict[str, Any]:
        """Equity (every balance at its mark), PnL and drawdown in the base currency, for
        /positions and /status; balances without a mark are listed as unvalued."""
        self._sync_marks()
        pf = self.portfolio
        return views.pnl_view(pf, self.instruments, self.equity_book.peak_at(float(pf.equity())))
