"""Recovery from the journal and reconciliation against the venues.

Start-up, in this order (trading is HALTED throughout):

1. **Journal → memory.** Orders are rebuilt from their journaled rows and fills; the
   portfolio is rebuilt from the *baseline* balances (each venue's balances when this
   journal first started, journaled then per venue and asset) plus every journaled fill,
   replayed in order into its venue's share.
2. **In-flight orders** (any open status, NEW included: a NEW order may have left
   before the crash) are resolved by querying the venue by client order id — never by
   resending. One the venue never saw is closed REJECTED; one we thought open that the
   venue does not know is a discrepancy.
3. **Missed fills**: `fills_since` from each instrument's newest journaled fill, or from
   the creation of the oldest order the venue reports filled beyond its journaled fills
   when that is earlier (a user stream that dropped may have lost a fill older than the
   newest one it delivered); each is journaled (a replay is ignored by the journal's
   unique key) and applied.
4. **Open venue orders we did not send** are cancelled or adopted (`[execution]
   unknown_orders`; always adopted in monitor mode, which cancels nothing).
4b. **Orders of ours the journal lacks** (an open order, or the order of a fill, whose
   client order id carries this journal's id but has no row: the journal lost its newest
   rows, e.g. a deleted or damaged WAL) are a failed check, never "foreign": each is
   journaled (adopted), the sequence moves past it, a `JournalGapDetected` alert is
   published, and trading stays HALTED until an operator resumes. So is a journal that is
   behind its own last clean close (`TailStatus.LOST`), one created where another
   journal's sequence mark lies (`REPLACED`), or one without its baseline balances that
   may have lost rows (`UNVERIFIED`, `LOST`, `NO_MARK`), unless it is proven that no order
   was ever sent under it (`baseline_doubts`: a start killed before it journaled them).
5. **Balances** (spot: quote cash and base holdings; perpetuals: positions) must equal
   what baseline + fills imply, each venue against its own share: an asset held at two
   venues (USDT on spot and USD-M) is checked at each against what that venue should hold.

Every discrepancy is a log line, a metric and part of the `ReconciliationCompleted`
event; the node only lets trading start when there are none (or an operator resumes
explicitly). The same checks (3-5) run periodically while live; a discrepancy must be
seen on two consecutive runs of its venue before it halts trading, so a fill in flight
between the two reads is not mistaken for a broken book. Each venue keeps its own findings;
a read that fails or cannot be parsed is a finding of that venue, and the other venues are
still checked. A periodic pass reads fills from the later of the newest journaled fill and
the read point of the last pass that found that venue's books agreeing (less
`FILL_READ_OVERLAP_S`): a week without fills costs one read window per pass.

**User-stream gaps.** A venue whose user stream (re)connected publishes `UserStreamGap`
(events since `since_ns` may have been missed); the adapter reads nothing itself. The
reconciler owns the re-read: one pass of checks 3-5 over that venue, its fills read
from the earlier of the gap's `since_ns` and the journal's cursor. A gap is covered by
the first pass over its venue that begins after the gap was reported, whatever started
that pass: a gap reported before or while the start-up pass waits is covered by it; one
reported after a pass began its reads gets a pass of its own after it. Gaps of one venue
coalesce while they wait; gap passes are at least `GAP_PASS_SPACING_S` apart (a flapping
stream cannot spend the venue's request weight); a pass whose reads failed keeps the
gap waiting, so it is retried. Passes never overlap (one lock).

**Execution corrections.** A venue that corrected an execution with other values
(`ExecutionCorrected`: IB's execId revisions; the first report stays booked, the
correction is never a second fill) halts trading at once, naming both trade ids, and is
a finding of the venue's next pass (start-up included, so a correction read at start
keeps trading halted); it is reported once, then an operator resumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.errors import ParseError, RateLimited, VenueBanned, VenueError
from nautilus_hmm.core.ids import parse_journal_sequence
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.domain.enums import OrderStatus, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.venue import Venue
from nautilus_hmm.execution.closed import order_from_row
from nautilus_hmm.execution.engine import ExecutionEngine
from nautilus_hmm.execution.orders import Order
from nautilus_hmm.execution.portfolio import UNATTRIBUTED
from nautilus_hmm.journal.hwm import TailStatus
from nautilus_hmm.journal.recovery import fill_cursors, load_recovery_state
from nautilus_hmm.messages import (
    ExecutionCorrected,
    JournalGapDetected,
    ReconciliationCompleted,
    UserStreamGap,
)

log = structlog.get_logger("reconcile")

BASELINE_EVENT = "baseline_balances"
_TAIL_MAY_BE_LOST = (TailStatus.UNVERIFIED, TailStatus.LOST, TailStatus.NO_MARK)
_ZERO = Decimal(0)
GAP_PASS_SPACING_S = 5.0  # least time between two user-stream gap passes
# A venue may list a trade a little after it happened, and its clock is not ours: a fills
# read starts this far before the read point of the last pass that found the books agreeing.
FILL_READ_OVERLAP_S = 60.0
# A venue read failed: it errored or answered what cannot be parsed. Either is a finding of
# that venue's pass (its other reads and the other venues' passes go on), never an abort.
READ_FAILED = (VenueError, ParseError)


@dataclass(slots=True)
class ReconcileResult:
    """What one reconciliation of one venue found and did."""

    venue: str
    discrepancies: list[str] = field(default_factory=list)
    resolved_orders: int = 0
    closed_unsent: int = 0
    recovered_fills: int = 0
    canceled_foreign: int = 0
    adopted_foreign: int = 0
    adopted_lost: list[str] = field(default_factory=list)  # our ids found at the venue, not in the journal
    lost_fills: int = 0  # fills of those orders
    reads_failed: bool = False  # some check could not run (a read failed): its findings are unknown

    @property
    def ok(self) -> bool:
        """True when the books agree."""
        return not self.discrepancies


def baseline_doubts(tail: TailStatus, never_reserved: bool, orders: int | None, fills: int | None,
                    replayed_intents: int) -> list[str]:
    """Why orders may have been sent under a journal that has no baseline balances; empty when
    it is proven that none was: the last start did not close cleanly but lost nothing else
    (`UNVERIFIED`), the sequence mark read at open shows that no sequence was ever reserved
    for an order (`Journal.never_reserved`: written before the first intent is acknowledged,
    outside SQLite, so a lost WAL cannot hide it), and the journal holds no order and no fill
    and its intent log replayed no record. `orders` / `fills` None: not read (a doubt)."""
    doubts = []
    if tail is not TailStatus.UNVERIFIED:
        doubts.append(f"its tail is {tail.value}")
    if not never_reserved:
        doubts.append("its sequence mark does not show that no order sequence was ever reserved")
    if orders is None or orders:
        doubts.append("its orders were not read" if orders is None else f"it holds {orders} order(s)")
    if fills is None or fills:
        doubts.append("its fills were not read" if fills is None else f"it holds {fills} fill(s)")
    if replayed_intents:
        doubts.append(f"its intent log held {replayed_intents} intent(s)")
    return doubts


class Reconciler(BaseComponent):
    """Start-up recovery and the periodic reconciliation loop."""

    name = "reconciler"

    def __init__(self, engine: ExecutionEngine, journal: Any, venues: dict[str, Venue], bus: Bus,
                 clock: Clock, interval_s: Any, unknown_orders: Any) -> None:
        super().__init__()
        self.engine = engine
        self.journal = journal
        self.venues = venues
        self.bus = bus
        self.clock = clock
        self._interval_s = interval_s  # callable: live-reloadable
        self._unknown_orders = unknown_orders  # callable → "cancel" | "adopt"
        self.last: dict[str, ReconcileResult] = {}
        self.runs = 0
        self.baseline_ts_ns = 0
        self.last_run_ns = 0
        # Per venue: what its last periodic pass found; a finding seen again halts.
        self._suspect: dict[str, set[str]] = {}
        # Per instrument: when the last pass that found its venue's books agreeing began its
        # fills read. Every fill listed before then was booked (the balances agreed).
        self._fills_read_ns: dict[InstrumentId, int] = {}
        # Start-up only: per instrument, the creation of the oldest order the venue reports
        # (partly) filled whose fills are not all in the journal (see `_unbooked_since`).
        self._unbooked_floor_ns: dict[InstrumentId, int] = {}
        self._journal_problems: list[str] = []  # found while recovering; fail the first venue's check
        self._gaps: dict[str, UserStreamGap] = {}  # per venue: reported, not yet covered by a pass
        self._gap_reported = asyncio.Event()
        self._pass_lock = asyncio.Lock()  # one pass at a time: start-up, periodic or gap
        self.gap_passes = 0
        self._corrections: dict[str, list[str]] = {}  # per venue: corrections not yet in a pass's result

    def attach(self) -> Callable[[], None]:
        """Listen for user-stream gaps (from before the venues' streams connect) and execution
        corrections; returns the unsubscribe."""
        unsubs = [self.bus.subscribe(UserStreamGap, self._on_user_stream_gap, name="reconciler"),
                  self.bus.subscribe(ExecutionCorrected, self._on_execution_corrected, name="reconciler")]

        def detach() -> None:
            for u in unsubs:
                u()

        return detach

    def _on_execution_corrected(self, msg: ExecutionCorrected) -> None:
        """A correction with other values: halt now; the venue's next pass reports it."""
        finding = (f"{msg.client_order_id or msg.instrument_id}: execution {msg.original_trade_id} corrected as "
                   f"{msg.correction_trade_id}: {msg.detail}")
        self._corrections.setdefault(msg.venue, []).append(finding)
        self._log_discrepancy(msg.venue, finding)
        if self.engine.gate.state is not TradingState.HALTED:
            self.engine.gate.set_state(TradingState.HALTED,
                                       f"execution {msg.original_trade_id} corrected as {msg.correction_trade_id} "
                                       f"at {msg.venue}", "reconciler")

    def _on_user_stream_gap(self, msg: UserStreamGap) -> None:
        if msg.venue not in self.venues:
            return
        waiting = self._gaps.get(msg.venue)
        if waiting is not None:  # coalesce: the earlier start, every reason once
            reasons = waiting.reason.split("; ")
            msg = UserStreamGap(ts_event_ns=msg.ts_event_ns, ts_init_ns=msg.ts_init_ns, venue=msg.venue,
                                since_ns=min(waiting.since_ns, msg.since_ns),
                                reason="; ".join(dict.fromkeys([*reasons, msg.reason])))
        self._gaps[msg.venue] = msg
        self._gap_reported.set()

    # ------------------------------------------------------------------ journal → memory

    async def recover_from_journal(self) -> dict[str, int]:
        """Rebuild orders and the portfolio from the journal (and take the baseline on a fresh journal)."""
        state = await self.journal.read(load_recovery_state, self.journal)
        fills_by_order: dict[str, list[Any]] = {}
        for f in state.fills:
            fills_by_order.setdefault(f.client_order_id, []).append(f)
        for row in state.orders_by_client_id.values():
            self.engine.restore_order(order_from_row(row, fills_by_order.get(row.client_order_id, [])))
        baseline = await self._baseline(len(state.orders_by_client_id), len(state.fills))
        pf = self.engine.portfolio
        for venue_name, balances in baseline.items():
            for asset, amount in balances.items():
                pf.set_cash(asset, amount, venue_name)
        replayed = 0
        for f in sorted(state.fills, key=lambda f: (f.ts_ns, f.id)):
            inst = self.engine.instruments.get(f.instrument_id)
            if inst is None:
                self._log_discrepancy(f.venue, f"journaled fill {f.trade_id} for unloaded instrument {f.instrument_id}")
                continue
            pf.apply_fill(inst, f.side, f.qty, f.price, f.fee, f.fee_asset, f.ts_ns)
            replayed += 1
        # Base-asset holdings that predate this journal stay in the baseline, not in positions.
        # Drawdown continues from the journaled equity peak (never below today's equity).
        self.engine.restore_equity_peak(state.position_snapshot)
        self._fill_cursors = fill_cursors(state.fills)
        self._in_flight = [r.client_order_id for r in state.in_flight]
        log.info("journal_recovered", orders=len(state.orders_by_client_id), in_flight=len(state.in_flight),
                 fills=replayed, next_seq=state.next_seq)
        return {"orders": len(state.orders_by_client_id), "in_flight": len(state.in_flight), "fills": replayed}

    async def _baseline(self, orders: int | None = None, fills: int | None = None) -> dict[str, dict[str, Decimal]]:
        """Each venue's balances when this journal began (venue -> asset -> amount; journaled
        once, on the first start). `orders` / `fills`: how many the journal holds (None: not read)."""
        rows = await self.journal.read(self.journal.events, BASELINE_EVENT, 0, 1)
        if rows:
            self.baseline_ts_ns = rows[0].ts_ns
            return self._parse_baseline(rows[0].data)
        self.baseline_ts_ns = self.clock.time_ns()
        tail = getattr(self.journal, "tail_status", TailStatus.NEW)
        if tail in _TAIL_MAY_BE_LOST:
            # Taken once, on the first start: a journal that may have lost rows and has no
            # baseline lost it, or a start stopped before it journaled it (killed, or crashed
            # before its first reconciliation). Today's balances become the baseline, so the
            # books would agree by construction: a failed check, unless no order was ever sent
            # under this journal (then today's balances are its baseline). (A journal that
            # closed cleanly without one never reconciled.)
            doubts = baseline_doubts(tail, bool(getattr(self.journal, "never_reserved", False)), orders, fills,
                                     int(getattr(self.journal, "replayed_intents", 0)))
            if doubts:
                self._journal_problems.append(
                    "the journal has no baseline balances although it is not new (its first rows were lost, or "
                    f"a start stopped before journaling them; that no order was sent cannot be shown: "
                    f"{', '.join(doubts)}); balances are re-based on the venue's now and fills before now are not "
                    "checked")
            else:
                log.warning("baseline_balances_late", tail=tail.value,
                            detail="an earlier start stopped before it journaled its baseline balances; no order "
                            "was ever sent under this journal (its sequence mark reserved no sequence, it holds no "
                            "order or fill, its intent log no record), so the balances now are its baseline")
        baseline: dict[str, dict[str, Decimal]] = {}
        for name, venue in self.venues.items():
            baseline[name] = {asset: bal.total for asset, bal in (await self._call(venue.balances)).items()}
        data = {name: {k: str(v) for k, v in bals.items()} for name, bals in baseline.items()}
        self.journal.record_event(self.baseline_ts_ns, BASELINE_EVENT, {"venues": data})
        await self.journal.flush()
        log.info("baseline_balances_recorded", balances=data)
        return baseline

    def _parse_baseline(self, data: dict[str, Any]) -> dict[str, dict[str, Decimal]]:
        """The journaled baseline: {"venues": {venue: {asset: amount}}}; a journal from before
        per-venue baselines holds one total per asset, which is the venue's when there is
        one venue. With several venues each one's share of such a total is unknown: it stays
        unattributed (equity is right, no venue's balances can agree) and is a failed check
        (such a journal never reconciled: its totals were compared with each venue's)."""
        by_venue = data.get("venues")
        if isinstance(by_venue, dict):
            return {name: {k: Decimal(v) for k, v in bals.items()} for name, bals in by_venue.items()}
        totals = {k: Decimal(v) for k, v in data.items()}
        if len(self.venues) == 1:
            return {next(iter(self.venues)): totals}
        problem = ("the journal's baseline balances are one total per asset (journaled before per-venue "
                   f"baselines) and this node has {len(self.venues)} venues: each venue's share is unknown, "
                   "so its balances cannot agree: start a new journal")
        if problem not in self._journal_problems:
            self._journal_problems.append(problem)
        return {UNATTRIBUTED: totals}

    # ------------------------------------------------------------------ venue calls

    async def _call(self, fn: Any, *args: Any, max_wait_s: float = 300.0) -> Any:
        """Call a venue read, waiting out rate limits and bans (bounded) instead of failing.

        A reconciliation that gave up on a 429 would keep trading halted for nothing.
        """
        waited = 0.0
        while True:
            try:
                return await fn(*args)
            except (RateLimited, VenueBanned) as exc:
                if isinstance(exc, VenueBanned):
                    wait_s = max(1.0, (exc.until_ns - self.clock.time_ns()) / 1e9)
                else:
                    wait_s = max(1.0, exc.retry_after_s)
                if waited + wait_s > max_wait_s:
                    raise
                log.warning("reconcile_waiting_for_venue", call=getattr(fn, "__name__", str(fn)),
                            wait_s=round(wait_s, 1), error=str(exc))
                await self.clock.sleep(wait_s)
                waited += wait_s

    # ------------------------------------------------------------------ reconciliation

    async def startup(self) -> bool:
        """Recover, resolve in-flight orders, reconcile every venue; True when the books agree."""
        await self.recover_from_journal()
        return await self.reconcile_startup()

    async def reconcile_startup(self) -> bool:
        """After `recover_from_journal`: resolve in-flight orders and reconcile every venue."""
        async with self._pass_lock:
            return await self._reconcile_startup()

    async def _reconcile_startup(self) -> bool:
        ok = True
        problems = list(self._journal_problems)
        tail = getattr(self.journal, "tail_status", None)
        if tail is TailStatus.LOST:
            problems.append(
                f"the journal is behind its own last clean close (it had handed out sequences up to "
                f"{self.journal.opened_next_seq - 1}): rows were lost (restored or damaged database)")
        elif tail is TailStatus.REPLACED:
            problems.append(
                "the journal was created new where another journal's sequence mark lay (the old journal file "
                "is gone): its orders and fills are not in these books; the venue's open orders of it are "
                "foreign now")
        self._journal_problems = []
        for name, venue in self.venues.items():
            result = ReconcileResult(name)
            result.discrepancies.extend(problems)
            problems = []
            await self._resolve_in_flight(venue, result)
            self._unbooked_floor_ns = self._unbooked_since(venue.name)
            await self._reconcile_venue(venue, result)
            self._unbooked_floor_ns = {}
            self._publish(result)
            ok = ok and result.ok
        self.last_run_ns = self.clock.time_ns()
        return ok

    def _unbooked_since(self, venue_name: str) -> dict[InstrumentId, int]:
        """Per instrument, the creation time of the oldest order whose venue-reported filled
        quantity exceeds the fills journaled for it.

        Its fills may be older than the instrument's newest journaled fill: a user stream that
        dropped loses the fills made meanwhile and delivers later ones, and a kill before the
        gap's pass leaves the journal's cursor past the lost fills. The start-up read of
        missed fills then begins at that order's creation, not at the cursor.
        """
        out: dict[InstrumentId, int] = {}
        for order in self.engine.orders.values():
            iid = order.instrument_id
            if iid.venue == venue_name and order.filled_qty > 0 and not order.fills_booked:
                out[iid] = min(out.get(iid, order.created_ns), order.created_ns)
        return out

    async def _resolve_in_flight(self, venue: Venue, result: ReconcileResult) -> None:
        eng = self.engine
        for cid in self._in_flight:
            order = eng.orders.get(cid)
            if order is None or order.instrument_id.venue != venue.name or order.is_terminal:
                continue
            try:
                vo = await self._call(venue.query_order, order.instrument_id, cid)
            except READ_FAILED as exc:
                result.discrepancies.append(f"{cid}: query failed: {exc}")
                continue
            if vo is None:
                if order.status in (OrderStatus.NEW, OrderStatus.SUBMITTED):
                    eng._finish(order, OrderStatus.REJECTED, "never reached the venue (recovered after restart)")
                    result.closed_unsent += 1
                else:
                    result.discrepancies.append(f"{cid}: {order.status.value} in the journal, unknown to the venue")
                continue
            eng._apply_report(venue.name, vo)
            result.resolved_orders += 1

    async def _reconcile_venue(self, venue: Venue, result: ReconcileResult) -> None:
        eng = self.engine
        # This pass covers the venue's waiting user-stream gap: its reads all begin after it.
        gap = self._gaps.pop(venue.name, None)
        if gap is not None:
            log.info("user_stream_gap_reconcile", venue=venue.name, reason=gap.reason, since_ns=gap.since_ns)
        reads_failed = False
        cursors = getattr(self, "_fill_cursors", {})
        overlap_ns = int(FILL_READ_OVERLAP_S * 1e9)
        read_ns: dict[InstrumentId, int] = {}
        for iid in [i for i in eng.instruments if i.venue == venue.name]:
            # Never before this journal began: older trades of the account are not ours
            # to book (they are in the baseline balances). Not before the last agreeing
            # pass's read (less the overlap) either, so a week without fills costs one
            # window per pass, not a week of windows. After a gap, from its start when
            # that is earlier: the stream may have missed a fill older than the newest one.
            since = max(cursors.get(iid, self.baseline_ts_ns), self._fills_read_ns.get(iid, 0) - overlap_ns)
            if gap is not None:
                since = max(self.baseline_ts_ns, min(since, gap.since_ns))
            floor = self._unbooked_floor_ns.get(iid)
            if floor is not None:  # start-up: an order's fills are missing (`_unbooked_since`)
                since = max(self.baseline_ts_ns, min(since, floor - overlap_ns))
            read_ns[iid] = self.clock.time_ns()
            try:
                fills = await self._call(venue.fills_since, iid, since)
            except READ_FAILED as exc:
                result.discrepancies.append(f"{iid}: fills_since failed: {exc}")
                reads_failed = True
                continue
            for fill in fills:
                # A closed order of ours the engine forgot is read back from the journal (not lost).
                if await eng.recall(fill.client_order_id) is None and self._is_ours(fill.client_order_id):
                    await self._adopt_lost(venue, fill.client_order_id, iid, result)
                if fill.client_order_id in result.adopted_lost:
                    result.lost_fills += 1
                before = eng.counts["fills"]
                await eng.admit_fill(venue.name, fill)
                if eng.counts["fills"] > before:
                    result.recovered_fills += 1
                    log.warning("missed_fill_recovered", venue=venue.name, trade_id=fill.trade_id,
                                client_order_id=fill.client_order_id)
                if fill.ts_ns > cursors.get(iid, 0):
                    cursors[iid] = fill.ts_ns
        self._fill_cursors = cursors
        try:
            open_at_venue = await self._call(venue.open_orders, None)
        except READ_FAILED as exc:
            result.discrepancies.append(f"open_orders failed: {exc}")
            reads_failed = True
            open_at_venue = []
        for vo in open_at_venue:
            order = await eng.recall(vo.client_order_id)
            if order is None:
                await self._foreign(venue, vo, result)
            elif order.is_terminal:
                result.discrepancies.append(
                    f"{vo.client_order_id}: {order.status.value} here, {vo.status.value} at the venue")
            else:
                eng._apply_report(venue.name, vo)
        listed = {vo.client_order_id for vo in open_at_venue}
        for iid, orders in eng.open_orders.items():
            if iid.venue != venue.name:
                continue
            for cid, order in list(orders.items()):
                if cid in listed or order.status is OrderStatus.NEW:
                    continue
                try:
                    vo2 = await self._call(venue.query_order, iid, cid)
                except READ_FAILED as exc:
                    result.discrepancies.append(f"{cid}: query failed: {exc}")
                    reads_failed = True
                    continue
                if vo2 is None:
                    result.discrepancies.append(f"{cid}: open here, unknown to the venue")
                else:
                    eng._apply_report(venue.name, vo2)
        result.reads_failed = reads_failed
        result.discrepancies.extend(self._corrections.pop(venue.name, ()))
        if gap is not None and reads_failed:
            self._on_user_stream_gap(gap)  # not covered: it waits for the next pass
        if result.adopted_lost:
            self._alert_gap(venue.name, result)
        await self._balances(venue, result)
        if result.ok:  # a pass with any finding (a failed read included) reads from the older point again
            self._fills_read_ns.update(read_ns)

    def _is_ours(self, cid: str) -> bool:
        """Minted by this journal (any prefix, any start)."""
        return parse_journal_sequence(cid, self.journal.journal_id) is not None

    async def _adopt_lost(self, venue: Venue, cid: str, iid: Any, result: ReconcileResult) -> None:
        """An order of ours the venue has a fill of but the journal lacks: fetch it and adopt it."""
        try:
            vo = await self._call(venue.query_order, iid, cid)
        except READ_FAILED as exc:
            result.discrepancies.append(f"{cid}: ours, filled at the venue, missing from the journal; "
                                        f"query failed: {exc}")
            return
        if vo is None:
            result.discrepancies.append(f"{cid}: ours, filled at the venue, missing from the journal, "
                                        "and the venue cannot find the order")
            return
        await self._adopt_own(venue, vo, result)

    async def _adopt_own(self, venue: Venue, vo: Any, result: ReconcileResult) -> None:
        """Journal (durably) and track an order of ours that the journal lost; a failed check."""
        cid = vo.client_order_id
        # Minted by this journal but not in it: its rows were lost (a deleted or damaged
        # WAL, a restored backup, power loss with synchronous = "normal"). It is ours:
        # track it, never cancel it blindly, never mint its id again.
        log.error("own_order_missing_from_journal", venue=venue.name, client_order_id=cid,
                  status=vo.status.value)
        await self.journal.record_adopted_order(vo, "adopted", self.clock.time_ns())
        order = Order(client_order_id=cid, strategy_id="adopted", instrument_id=vo.instrument_id,
                      side=vo.side, order_type=vo.order_type, quantity=vo.quantity,
                      created_ns=vo.ts_ns, price=vo.price)
        order.transition(OrderStatus.SUBMITTED, vo.ts_ns)
        order.take_transition()  # the adopted row holds its state; journal only later changes
        self.engine.restore_order(order)
        self.engine._apply_report(venue.name, vo)
        result.adopted_lost.append(cid)
        result.discrepancies.append(
            f"{cid}: ours ({vo.status.value} at the venue) but missing from the journal: adopted; "
            "the journal lost rows, check the books and resume")

    def _alert_gap(self, venue: str, result: ReconcileResult) -> None:
        now = self.clock.time_ns()
        detail = (f"{len(result.adopted_lost)} order(s) of ours found at {venue} but not in the journal "
                  f"(with {result.lost_fills} fill(s)): adopted; trading stays halted until an operator resumes")
        log.error("journal_gap_detected", venue=venue, client_order_ids=result.adopted_lost,
                  fills=result.lost_fills, hint="inspect /status and the venue's account, then `nautilus-hmm ctl resume`")
        self.bus.publish(JournalGapDetected(ts_event_ns=now, ts_init_ns=now, venue=venue,
                                            client_order_ids=tuple(result.adopted_lost), fills=result.lost_fills,
                                            detail=detail))

    async def _foreign(self, venue: Venue, vo: Any, result: ReconcileResult) -> None:
        # Monitor mode cancels nothing: a foreign open order is tracked (execution.mode).
        policy = "adopt" if self.engine.order_gate.monitor else self._unknown_orders()
        if self._is_ours(vo.client_order_id):
            await self._adopt_own(venue, vo, result)
            return
        if policy == "adopt":
            order = Order(client_order_id=vo.client_order_id, strategy_id="adopted", instrument_id=vo.instrument_id,
                          side=vo.side, order_type=vo.order_type, quantity=vo.quantity,
                          created_ns=vo.ts_ns, price=vo.price)
            order.transition(OrderStatus.SUBMITTED, vo.ts_ns)
            self.engine.restore_order(order)
            self.engine._apply_report(venue.name, vo)
            result.adopted_foreign += 1
            log.warning("foreign_order_adopted", venue=venue.name, client_order_id=vo.client_order_id)
            return
        try:
            await self._call(venue.cancel_order, vo.instrument_id, vo.client_order_id)
            result.canceled_foreign += 1
            log.warning("foreign_order_canceled", venue=venue.name, client_order_id=vo.client_order_id)
        except READ_FAILED as exc:
            result.discrepancies.append(f"{vo.client_order_id}: foreign open order, cancel failed: {exc}")

    async def _balances(self, venue: Venue, result: ReconcileResult) -> None:
        eng = self.engine
        pf = eng.portfolio
        try:
            balances = await self._call(venue.balances)
            positions = await self._call(venue.positions)
        except READ_FAILED as exc:
            result.discrepancies.append(f"balances failed: {exc}")
            result.reads_failed = True
            return
        # This venue's share only: the same asset held at another venue is checked there.
        baseline = (await self._baseline()).get(venue.name, {})
        expected: dict[str, Decimal] = {}
        for iid, inst in eng.instruments.items():
            if iid.venue != venue.name:
                continue
            if inst.kind.holds_base:  # spot, FX: the holding is a balance of the base asset
                qty = pf.positions[iid].qty if iid in pf.positions else _ZERO
                expected[inst.base_asset] = expected.get(inst.base_asset, baseline.get(inst.base_asset, _ZERO)) + qty
                expected.setdefault(inst.quote_asset, pf.cash_at(venue.name, inst.quote_asset))
            else:
                have = positions.get(iid, _ZERO)
                ours = pf.positions[iid].qty if iid in pf.positions else _ZERO
                if have != ours:
                    result.discrepancies.append(f"{iid}: position {ours} here, {have} at the venue")
        for asset, want in expected.items():
            bal = balances.get(asset)
            have = bal.total if bal is not None else _ZERO
            if have != want:
                result.discrepancies.append(f"{asset}: balance {want} expected, {have} at the venue")

    # ------------------------------------------------------------------ periodic

    async def run(self) -> None:
        """Reconcile every interval (two consecutive findings halt trading), and once per user-stream gap."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._run_periodic(), name="reconciler:periodic")
            tg.create_task(self._run_gaps(), name="reconciler:user-gaps")

    async def _run_periodic(self) -> None:
        while True:
            await self.clock.sleep(self._interval_s())
            await self.engine.idle()
            await self.reconcile_now(periodic=True)

    async def _run_gaps(self) -> None:
        while True:
            await self._gap_reported.wait()
            self._gap_reported.clear()
            await self.reconcile_gaps()
            await self.clock.sleep(GAP_PASS_SPACING_S)  # gaps reported meanwhile wait, coalesced

    async def reconcile_gaps(self) -> list[ReconcileResult]:
        """One pass over each venue whose user-stream gap no pass has covered yet."""
        await self.engine.idle()  # reports already received apply before the venue is read
        results = []
        async with self._pass_lock:
            for name, venue in self.venues.items():
                if name in self._gaps:
                    results.append(await self._pass(venue, periodic=False))
                    self.gap_passes += 1
        if results:
            self.last_run_ns = self.clock.time_ns()
        return results

    async def reconcile_now(self, periodic: bool = False) -> list[ReconcileResult]:
        """One reconciliation pass over every venue."""
        async with self._pass_lock:
            results = [await self._pass(venue, periodic) for venue in self.venues.values()]
        self.runs += 1
        self.last_run_ns = self.clock.time_ns()
        return results

    async def _pass(self, venue: Venue, periodic: bool) -> ReconcileResult:
        """Checks 3-5 over one venue; halts on a finding seen twice (periodic) or a lost order of ours."""
        result = ReconcileResult(venue.name)
        await self._reconcile_venue(venue, result)
        halt_on: list[str] = []
        if periodic:
            # A pass whose reads failed forgets none of the venue's earlier findings: what it
            # could not re-check counts as seen until a pass that could look says otherwise.
            seen_before = self._suspect.get(venue.name, set())
            halt_on = [d for d in result.discrepancies if d in seen_before]
            self._suspect[venue.name] = set(result.discrepancies) | (seen_before if result.reads_failed else set())
        if result.adopted_lost:  # an order of ours the journal lacks is no read race: halt at once
            halt_on = [d for d in result.discrepancies if d.startswith(result.adopted_lost[0])] or halt_on
        corrected = [d for d in result.discrepancies if " corrected as " in d]
        if corrected:  # a venue changed a booked execution: no read race either
            halt_on = corrected
        if halt_on and self.engine.gate.state is not TradingState.HALTED:
            self.engine.gate.set_state(TradingState.HALTED, f"reconciliation: {halt_on[0]}", "reconciler")
        self._publish(result)
        return result

    def _publish(self, result: ReconcileResult) -> None:
        self.last[result.venue] = result
        now = self.clock.time_ns()
        for d in result.discrepancies:
            self._log_discrepancy(result.venue, d)
        log.info("reconciliation_completed", venue=result.venue, ok=result.ok,
                 discrepancies=len(result.discrepancies), resolved_orders=result.resolved_orders,
                 closed_unsent=result.closed_unsent, recovered_fills=result.recovered_fills,
                 canceled_foreign=result.canceled_foreign, adopted_foreign=result.adopted_foreign)
        self.bus.publish(ReconciliationCompleted(ts_event_ns=now, ts_init_ns=now, venue=result.venue,
                                                 ok=result.ok, discrepancies=tuple(result.discrepancies)))
        # Healthy only while every venue's last result agrees, whichever venue reported last.
        failing = {v: len(r.discrepancies) for v, r in self.last.items() if not r.ok}
        self._health = Health(not failing, ", ".join(f"{v}: {n} discrepancies" for v, n in failing.items()))

    def _log_discrepancy(self, venue: str, text: str) -> None:
        log.error("reconciliation_discrepancy", venue=venue, detail=text)

    def status(self) -> dict[str, Any]:
        """Last result per venue."""
        return {v: {"ok": r.ok, "discrepancies": r.discrepancies, "recovered_fills": r.recovered_fills,
                    "resolved_orders": r.resolved_orders, "closed_unsent": r.closed_unsent}
                for v, r in self.last.items()}

