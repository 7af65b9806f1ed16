"""Execution simulation on ticks: recorded trades and book updates replayed through a venue
model with latency, queue position for resting limit orders, partial fills and fees.

Pure and deterministic (no asyncio, no clock): `TickSim.run(events)` walks the events of a
capture (`research.ticks`) in receive-time order; a `TickStrategy` sees each event when it
was received and submits or cancels orders on the sim.

The venue model:

* **Latency.** An order (or cancel) sent at strategy time `t` reaches the venue at
  `t + entry_latency_ns` and is matched against the book as it stands then (every market
  event received before). Fills and order updates reach the strategy `response_latency_ns`
  after they happen. `latency_from_journal` measures the entry latency from a journal
  (half the median intent-to-acknowledgement round trip).
* **Validation.** An arriving order is checked with the sim venue's own rules
  (`venues.sim.matching.MatchingEngine.check`: tick, lot step, min notional, post-only);
  a refused order ends REJECTED with the venue's reason.
* **Taking.** A MARKET order, or the marketable part of a LIMIT, walks the opposite side
  of the book best level first (up to the limit price), consuming the displayed size (the
  level stays consumed until the venue next reports it): a large order pays the depth, and
  fills partially when the book is thinner than the order (a MARKET remainder expires as
  Binance expires it; an IOC remainder expires; a GTC LIMIT remainder rests).
* **Queue position.** A resting LIMIT joins the back of its level: `queue_ahead` is the
  size displayed there on arrival. Trades at its price (by the other side's aggressor)
  eat the queue first; what they trade beyond it fills the order (partially, by the
  excess). When the venue reports the level smaller than `queue_ahead`, the queue shrinks
  to it (cancels ahead of us; hftbacktest's risk-averse model). A trade or a quote
  *through* the price fills the order at its limit price (maker): all of it for a trade,
  up to the displayed size for a quote.
* **Fees.** `qty x price x rate`, maker or taker rate, in the quote asset.

The book is built from the capture's REST snapshot and depth diffs and the best levels of
`@bookTicker`; levels better than the current best quote are stale and never taken. Update-id
sequencing is not checked (a capture is replayed as recorded).
"""

from __future__ import annotations

import bisect
import heapq
import math
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from nautilus_hmm.core.errors import OrderRejected
from nautilus_hmm.domain.enums import OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.research.ticks import DEPTH, QUOTE, SNAPSHOT, TRADE, Event
from nautilus_hmm.venues.sim.matching import MatchingEngine

MAKER, TAKER = "MAKER", "TAKER"


@dataclass(frozen=True, slots=True)
class SimExecConfig:
    """Venue model settings. Fee rates are fractions (0.001 = 10 bps)."""

    entry_latency_ns: int = 5_000_000
    response_latency_ns: int = 5_000_000
    maker_fee: float = 0.001
    taker_fee: float = 0.001
    equity_every_ns: int = 1_000_000_000  # equity sample spacing

    def __post_init__(self) -> None:
        for name in ("entry_latency_ns", "response_latency_ns", "equity_every_ns"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"sim_exec {name} = {v!r}: must be an integer >= 0")
        for name in ("maker_fee", "taker_fee"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and -0.01 <= v <= 0.05):
                raise ValueError(f"sim_exec {name} = {v!r}: must be a rate between -0.01 and 0.05")


@dataclass(slots=True)
class SimFill:
    """One execution. `ts_ns` is when it happened at the venue; `arrival_mid` the mid when
    the order reached the venue (its slippage reference)."""

    ts_ns: int
    client_order_id: str
    side: Side
    qty: float
    price: float
    fee: float
    liquidity: str
    arrival_mid: float

    @property
    def slippage_bps(self) -> float:
        """Cost against the arrival mid, in bps (positive = paid)."""
        if not self.arrival_mid > 0:
            return math.nan
        sign = 1.0 if self.side is Side.BUY else -1.0
        return sign * (self.price - self.arrival_mid) / self.arrival_mid * 1e4


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order that ended without (more) fills, as its report reaches the strategy: REJECTED
    on arrival (the venue's reason), EXPIRED (a MARKET or IOC remainder), CANCELED."""

    ts_ns: int
    client_order_id: str
    status: str
    reason: str


@dataclass(slots=True)
class TickOrder:
    """An order inside the tick sim."""

    client_order_id: str
    side: Side
    order_type: OrderType
    qty: float
    price: float | None
    time_in_force: TimeInForce
    sent_ns: int
    status: str = "PENDING"  # PENDING (in flight) -> OPEN -> FILLED | CANCELED | EXPIRED | REJECTED
    filled: float = 0.0
    queue_ahead: float = 0.0
    arrival_mid: float = math.nan
    reason: str = ""

    @property
    def remaining(self) -> float:
        """Quantity still to fill."""
        return self.qty - self.filled


class TickStrategy(Protocol):
    """What a tick backtest drives: called on every market event at its receive time."""

    def on_event(self, sim: TickSim, ev: Event) -> None:
        """A market event was received (strategy time = ev[0])."""

    def on_fill(self, sim: TickSim, fill: SimFill) -> None:
        """A fill report reached the strategy (response latency after the fill)."""

    # Optional: `on_order(sim, update: OrderUpdate)`, the report of an order that ended
    # without (more) fills (rejected on arrival, expired, canceled), response latency after.


@dataclass(slots=True)
class SimResult:
    """What a run produced."""

    fills: list[SimFill]
    orders: dict[str, TickOrder]
    equity: list[tuple[int, float]]
    events: int
    wall_s: float
    position: float
    cash: float
    fees: float
    summary: dict[str, Any] = field(default_factory=dict)


_QTY_EPS = 1e-12
_NEVER = 2**63 - 1


class TickSim:
    """One instrument's venue on ticks (see the module doc)."""

    def __init__(self, instrument: Instrument, config: SimExecConfig | None = None,
                 initial_cash: float = 10_000.0) -> None:
        self.instrument = instrument
        self.config = config or SimExecConfig()
        self.rules = MatchingEngine(instrument, venue=instrument.id.venue)
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bid_px: list[float] = []  # the keys of bids / asks, ascending (taking walks them)
        self._ask_px: list[float] = []
        self._quoted = False  # a @bookTicker seen: the best levels come from it, else from the book
        self.best_bid = math.nan
        self.best_ask = math.nan
        self.last_price = math.nan
        self.now_ns = 0
        self.orders: dict[str, TickOrder] = {}
        self._resting: list[TickOrder] = []
        self._inflight: list[tuple[int, int, str, str]] = []  # (arrive_ns, seq, action, cid)
        self._reports: list[tuple[int, int, SimFill | OrderUpdate]] = []  # (visible_ns, seq, report)
        self._seq = 0
        self._ids = 0
        self.fills: list[SimFill] = []
        self.position = 0.0
        self.cash = float(initial_cash)
        self.initial_cash = float(initial_cash)
        self.fees = 0.0

    # ------------------------------------------------------------ strategy API

    def submit(self, side: Side, qty: float, price: float | None = None,
               time_in_force: TimeInForce = TimeInForce.GTC, order_type: OrderType | None = None,
               client_order_id: str | None = None) -> str:
        """Send an order now; it reaches the venue after the entry latency. Returns its id."""
        if not (math.isfinite(qty) and qty > 0):
            raise ValueError(f"order quantity {qty!r}: must be a positive number")
        if price is not None and not (math.isfinite(price) and price > 0):
            raise ValueError(f"order price {price!r}: must be a positive number")
        self._ids += 1
        cid = client_order_id or f"sim-{self._ids}"
        if cid in self.orders:
            raise ValueError(f"client order id {cid!r} already used")
        otype = order_type or (OrderType.MARKET if price is None else OrderType.LIMIT)
        self.orders[cid] = TickOrder(cid, side, otype, qty, price, time_in_force, self.now_ns)
        self._push(self.now_ns + self.config.entry_latency_ns, "new", cid)
        return cid

    def cancel(self, client_order_id: str) -> None:
        """Request a cancel now; it reaches the venue after the entry latency (a fill may beat it)."""
        if client_order_id not in self.orders:
            raise ValueError(f"unknown client order id {client_order_id!r}")
        self._push(self.now_ns + self.config.entry_latency_ns, "cancel", client_order_id)

    @property
    def mid(self) -> float:
        """Mid of the best quote (last trade before any quote)."""
        if self.best_bid > 0 and self.best_ask > 0:
            return (self.best_bid + self.best_ask) / 2
        return self.last_price

    # ------------------------------------------------------------ the run

    def run(self, events: Iterable[Event], strategy: TickStrategy | None = None) -> SimResult:
        """Replay `events` (sorted by receive time) through the venue; returns the run's result."""
        t0 = time.perf_counter()
        n = 0
        equity: list[tuple[int, float]] = []
        next_sample = 0
        every = self.config.equity_every_ns
        for ev in events:
            ts = ev[0]
            n += 1
            if ts < self.now_ns:
                raise ValueError(f"event {n} at {ts} ns is before the previous one ({self.now_ns} ns): "
                                 "replay sorted events (ticks.load_events sorts)")
            if self._inflight and self._inflight[0][0] <= ts:
                self._arrivals(ts)
            self.now_ns = ts
            self._apply(ev)
            if self._reports and self._reports[0][0] <= ts:
                self._deliver(ts, strategy)
            if strategy is not None:
                strategy.on_event(self, ev)
            if ts >= next_sample:
                equity.append((ts, self.equity()))
                next_sample = ts + every
        if self._inflight:  # orders sent after the last event never reached the venue
            for _, _, action, cid in sorted(self._inflight):
                o = self.orders[cid]
                if action == "new" and o.status == "PENDING":
                    o.status, o.reason = "EXPIRED", "the replay ended before the order reached the venue"
            self._inflight.clear()
        if equity and equity[-1][0] != self.now_ns:
            equity.append((self.now_ns, self.equity()))
        wall = time.perf_counter() - t0
        res = SimResult(self.fills, self.orders, equity, n, wall, self.position, self.cash, self.fees)
        res.summary = self.summary(res)
        return res

    def equity(self) -> float:
        """Cash plus the position at the mid (quote asset)."""
        m = self.mid
        return self.cash + (self.position * m if m == m else 0.0)

    def summary(self, res: SimResult) -> dict[str, Any]:
        """The machine-readable summary of a run (summary.json)."""
        eq = [e for _, e in res.equity] or [self.initial_cash]
        peak, mdd = eq[0], 0.0
        for e in eq:
            peak = max(peak, e)
            if peak > 0:
                mdd = max(mdd, (peak - e) / peak * 100)
        slips = [f.slippage_bps for f in res.fills if f.liquidity == TAKER and f.slippage_bps == f.slippage_bps]
        statuses: dict[str, int] = {}
        for o in res.orders.values():
            statuses[o.status] = statuses.get(o.status, 0) + 1
        return {
            "engine": "sim_exec ticks", "instrument": str(self.instrument.id), "events": res.events,
            "wall_s": res.wall_s, "events_per_s": res.events / res.wall_s if res.wall_s > 0 else None,
            "fills": len(res.fills), "maker_fills": sum(1 for f in res.fills if f.liquidity == MAKER),
            "orders": statuses, "initial_equity": self.initial_cash, "final_equity": eq[-1],
            "return_pct": (eq[-1] / self.initial_cash - 1) * 100 if self.initial_cash else None,
            "max_drawdown_pct": mdd, "fees": res.fees, "position": res.position,
            "taker_slippage_bps_mean": statistics.fmean(slips) if slips else None,
            "entry_latency_ms": self.config.entry_latency_ns / 1e6,
            "response_latency_ms": self.config.response_latency_ns / 1e6,
        }

    # ------------------------------------------------------------ internals

    def _push(self, at_ns: int, action: str, cid: str) -> None:
        self._seq += 1
        heapq.heappush(self._inflight, (at_ns, self._seq, action, cid))

    def _arrivals(self, until_ns: int) -> None:
        while self._inflight and self._inflight[0][0] <= until_ns:
            at, _, action, cid = heapq.heappop(self._inflight)
            self.now_ns = at
            o = self.orders[cid]
            if action == "cancel":
                if o.status == "OPEN":
                    self._resting.remove(o)
                    self._ended(o, "CANCELED", "canceled by request")
                elif o.status == "PENDING":  # the cancel overtook nothing: the order arrives first
                    self._push(at + 1, "cancel", cid)
                continue
            self._arrive(o)

    def check(self, req: OrderRequest) -> None:
        """The venue's own checks of `req` against the market as it stands now; OrderRejected."""
        eng = self.rules
        ref = self.last_price if self.last_price == self.last_price else self.mid  # no trade yet: the mid
        eng.last_price = None if ref != ref else ref
        eng.best_bid = self.best_bid if self.best_bid == self.best_bid else None
        eng.best_ask = self.best_ask if self.best_ask == self.best_ask else None
        eng.check(req)

    def _arrive(self, o: TickOrder) -> None:
        o.arrival_mid = self.mid
        try:
            self.check(self._request(o))
        except OrderRejected as exc:
            self._ended(o, "REJECTED", str(exc))
            return
        o.status = "OPEN"
        limit = o.price
        if o.order_type is OrderType.LIMIT_MAKER:
            self._rest(o)
            return
        self._take(o, limit)
        if o.remaining <= _QTY_EPS:
            return
        if o.order_type is OrderType.MARKET:
            self._ended(o, "EXPIRED", "MARKET: book depth exhausted, remainder expired")
        elif o.time_in_force is not TimeInForce.GTC:
            self._ended(o, "EXPIRED", f"{o.time_in_force.value}: unfilled remainder expired")
        else:
            self._rest(o)

    def _request(self, o: TickOrder) -> OrderRequest:
        # repr() is the shortest decimal that round-trips: 0.001 stays 0.001, so the venue's
        # tick and step checks see the number the strategy meant.
        qty = Decimal(repr(o.qty))
        price = None if o.price is None else Decimal(repr(o.price))
        return OrderRequest(o.client_order_id, self.instrument.id, o.side, o.order_type, qty, price,
                            o.time_in_force)

    def _rest(self, o: TickOrder) -> None:
        book = self.bids if o.side is Side.BUY else self.asks
        assert o.price is not None
        o.queue_ahead = book.get(o.price, 0.0)
        self._resting.append(o)

    def _take(self, o: TickOrder, limit: float | None) -> None:
        """Walk the opposite side, best first, up to `limit` (None: no limit)."""
        if o.side is Side.BUY:
            book, pxs, best = self.asks, self._ask_px, self.best_ask
            i = bisect.bisect_left(pxs, best) if best == best else 0
            levels: Iterable[float] = pxs[i:] if limit is None else pxs[i:bisect.bisect_right(pxs, limit)]
        else:
            book, pxs, best = self.bids, self._bid_px, self.best_bid
            j = bisect.bisect_right(pxs, best) if best == best else len(pxs)
            lo = 0 if limit is None else bisect.bisect_left(pxs, limit)
            levels = reversed(pxs[lo:j])
        for p in levels:
            avail = book[p]
            if avail <= _QTY_EPS:
                continue
            q = min(avail, o.remaining)
            book[p] = avail - q
            self._fill(o, q, p, TAKER)
            if o.remaining <= _QTY_EPS:
                break

    @staticmethod
    def _set(book: dict[float, float], pxs: list[float], p: float, q: float) -> None:
        if q > 0:
            if p not in book:
                bisect.insort(pxs, p)
            book[p] = q
        elif p in book:
            del book[p]
            del pxs[bisect.bisect_left(pxs, p)]

    def _fill(self, o: TickOrder, qty: float, price: float, liq: str) -> None:
        rate = self.config.maker_fee if liq == MAKER else self.config.taker_fee
        fee = qty * price * rate
        o.filled += qty
        if o.remaining <= _QTY_EPS:
            o.status = "FILLED"
        sign = 1.0 if o.side is Side.BUY else -1.0
        self.position += sign * qty
        self.cash -= sign * qty * price + fee
        self.fees += fee
        f = SimFill(self.now_ns, o.client_order_id, o.side, qty, price, fee, liq, o.arrival_mid)
        self.fills.append(f)
        self._seq += 1
        heapq.heappush(self._reports, (self.now_ns + self.config.response_latency_ns, self._seq, f))

    def _ended(self, o: TickOrder, status: str, reason: str) -> None:
        """`o` ends without (more) fills: its report reaches the strategy after the response latency."""
        o.status, o.reason = status, reason
        self._seq += 1
        upd = OrderUpdate(self.now_ns, o.client_order_id, status, reason)
        heapq.heappush(self._reports, (self.now_ns + self.config.response_latency_ns, self._seq, upd))

    def _deliver(self, until_ns: int, strategy: TickStrategy | None) -> None:
        on_order = getattr(strategy, "on_order", None)
        while self._reports and self._reports[0][0] <= until_ns:
            _, _, r = heapq.heappop(self._reports)
            if strategy is None:
                continue
            if type(r) is SimFill:
                strategy.on_fill(self, r)
            elif on_order is not None:
                on_order(self, r)

    # ------------------------------------------------------------ stepwise driving (several venues, one clock)
    #
    # `run` drives one instrument's events itself. A driver with several instruments (or its
    # own clock: research.tick_backtest) steps each sim instead: before an event at `ts` it
    # lets every sim handle what is due by then, earliest first (`due_ns`, `process_next`:
    # orders reaching the venue, reports reaching the strategy), then applies the event
    # (`apply_event`). Fills and updates keep their venue times; a report is handled at its
    # visible time, so what the strategy does in reaction is sent at that time.

    def due_ns(self) -> int:
        """When the next order arrival or report is due (a very large number when none is)."""
        a = self._inflight[0][0] if self._inflight else _NEVER
        r = self._reports[0][0] if self._reports else _NEVER
        return a if a <= r else r

    def process_next(self, strategy: TickStrategy | None) -> int:
        """Handle the earliest due item (an arrival before a report due at the same time);
        returns its time. Call only when `due_ns()` is finite."""
        a = self._inflight[0][0] if self._inflight else _NEVER
        r = self._reports[0][0] if self._reports else _NEVER
        if a <= r:
            self._arrivals(a)
            return a
        if r > self.now_ns:
            self.now_ns = r
        self._deliver(r, strategy)
        return r

    def apply_event(self, ev: Event) -> None:
        """Apply one market event at its time (after everything due before it was processed)."""
        ts = ev[0]
        if ts < self.now_ns:
            raise ValueError(f"event at {ts} ns is before the sim's time ({self.now_ns} ns): replay sorted events")
        self.now_ns = ts
        self._apply(ev)

    def _apply(self, ev: Event) -> None:
        kind = ev[1]
        if kind == QUOTE:
            _, _, bid, bid_qty, ask, ask_qty = ev
            self._quoted = True
            self.best_bid, self.best_ask = bid, ask
            self._set(self.bids, self._bid_px, bid, bid_qty)
            self._set(self.asks, self._ask_px, ask, ask_qty)
            if self._resting:
                self._on_level(Side.BUY, bid, bid_qty)
                self._on_level(Side.SELL, ask, ask_qty)
                self._through_quote(bid, ask, bid_qty, ask_qty)
        elif kind == TRADE:
            _, _, price, qty, buyer_is_maker = ev
            self.last_price = price
            if self._resting:
                self._on_trade(price, qty, buyer_is_maker)
        elif kind == DEPTH:
            _, _, bids, asks = ev
            for p, q in bids:
                self._set(self.bids, self._bid_px, p, q)
            for p, q in asks:
                self._set(self.asks, self._ask_px, p, q)
            if not self._quoted:
                self._best_from_book()
            if self._resting:
                for p, q in bids:
                    self._on_level(Side.BUY, p, q)
                for p, q in asks:
                    self._on_level(Side.SELL, p, q)
        elif kind == SNAPSHOT:
            _, _, bids, asks = ev
            self.bids = {p: q for p, q in bids if q > 0}
            self.asks = {p: q for p, q in asks if q > 0}
            self._bid_px, self._ask_px = sorted(self.bids), sorted(self.asks)
            if not self._quoted:
                self._best_from_book()
            for o in self._resting:
                book = self.bids if o.side is Side.BUY else self.asks
                o.queue_ahead = min(o.queue_ahead, book.get(o.price, 0.0))  # type: ignore[arg-type]

    def _best_from_book(self) -> None:
        # Depth-only data (no @bookTicker): the best levels are the book's own.
        self.best_bid = self._bid_px[-1] if self._bid_px else math.nan
        self.best_ask = self._ask_px[0] if self._ask_px else math.nan

    def _on_level(self, side: Side, price: float, qty: float) -> None:
        for o in self._resting:
            if o.side is side and o.price == price and qty < o.queue_ahead:
                o.queue_ahead = qty

    def _on_trade(self, price: float, qty: float, buyer_is_maker: bool) -> None:
        # buyer_is_maker: a seller took the bid -> resting BUYs can fill; else resting SELLs.
        side = Side.BUY if buyer_is_maker else Side.SELL
        left = qty
        for o in list(self._resting):
            if o.side is not side or o.price is None:
                continue
            through = price < o.price if side is Side.BUY else price > o.price
            if through:
                self._maker_fill(o, o.remaining)
            elif price == o.price:
                eaten = min(left, o.queue_ahead)
                o.queue_ahead -= eaten
                left -= eaten
                if left > _QTY_EPS and o.queue_ahead <= _QTY_EPS:
                    q = min(left, o.remaining)
                    left -= q
                    self._maker_fill(o, q)

    def _through_quote(self, bid: float, ask: float, bid_qty: float, ask_qty: float) -> None:
        # A quote on the other side through our resting price: sellers at `ask` would have
        # met our bid first; they fill us at our price, up to the size they show.
        for o in list(self._resting):
            if o.price is None:
                continue
            if o.side is Side.BUY and ask < o.price:
                self._maker_fill(o, min(o.remaining, ask_qty))
            elif o.side is Side.SELL and bid > o.price:
                self._maker_fill(o, min(o.remaining, bid_qty))

    def _maker_fill(self, o: TickOrder, qty: float) -> None:
        assert o.price is not None
        self._fill(o, qty, o.price, MAKER)
        if o.status == "FILLED":
            self._resting.remove(o)


# ---------------------------------------------------------------- latency from a journal


def latency_from_journal(path: str | Path) -> int:
    """Entry latency (ns) measured from a journal: half the median time from an order's
    intent to its first acknowledged state. ValueError naming the file when it has none."""
    import sqlite3

    from nautilus_hmm.research.slippage import SlippageError, read_journal

    p = str(path)
    read_journal(p)  # validates the file (SlippageError on a damaged or foreign one)
    from nautilus_hmm.journal import files as journal_files

    conn = journal_files.connect(p, "ro" if Path(f"{p}-wal").exists() else "ro&immutable=1")
    try:
        rows = conn.execute(
            "SELECT o.created_ns, MIN(e.ts_ns) FROM orders o JOIN order_events e "
            "ON e.client_order_id = o.client_order_id AND e.status != 'NEW' "
            "WHERE o.seq IS NOT NULL GROUP BY o.client_order_id").fetchall()
    except sqlite3.Error as exc:
        raise SlippageError(f"journal {p}: cannot be read ({exc})") from exc
    finally:
        conn.close()
    rtts = [b - a for a, b in rows if isinstance(a, int) and isinstance(b, int) and b >= a]
    if not rtts:
        raise SlippageError(f"journal {p}: no acknowledged order to measure latency from")
    return int(statistics.median(rtts) // 2)


# ---------------------------------------------------------------- built-in strategies


class QuoteBothSides:
    """A small market maker for replays and benchmarks: keeps one GTC limit on each side at
    the touch (re-quoted when the touch moves away by more than `requote_ticks`), and
    flattens with a market order when |position| exceeds `max_position`. Quantities are
    rounded to `step` decimals (the venue refuses float noise such as 0.004000000000000001)."""

    def __init__(self, qty: float, tick: float, step: float = 1e-5, requote_ticks: int = 5,
                 max_position: float | None = None) -> None:
        self.qty, self.tick = qty, tick
        self.decimals = max(0, round(-math.log10(step)))
        self.requote = requote_ticks * tick
        self.max_position = max_position if max_position is not None else 4 * qty
        self.live: dict[Side, str | None] = {Side.BUY: None, Side.SELL: None}
        self.flatten: str | None = None

    def on_event(self, sim: TickSim, ev: Event) -> None:
        """Quote at the touch on both sides."""
        if not (sim.best_bid > 0 and sim.best_ask > 0):
            return
        for side, touch in ((Side.BUY, sim.best_bid), (Side.SELL, sim.best_ask)):
            cid = self.live[side]
            if cid is not None:
                o = sim.orders[cid]
                if o.status in ("OPEN", "PENDING"):
                    if o.price is not None and abs(o.price - touch) > self.requote and o.status == "OPEN":
                        sim.cancel(cid)
                        self.live[side] = None
                    continue
            self.live[side] = sim.submit(side, self.qty, round(touch, 8))
        if abs(sim.position) > self.max_position and (
                self.flatten is None or sim.orders[self.flatten].status not in ("PENDING", "OPEN")):
            side = Side.SELL if sim.position > 0 else Side.BUY
            self.flatten = sim.submit(side, round(abs(sim.position) - self.qty, self.decimals))

    def on_fill(self, sim: TickSim, fill: SimFill) -> None:
        """Nothing to do: the next event re-quotes."""


class Scripted:
    """Orders sent at given strategy times: `[(ts_ns, kwargs for TickSim.submit), ...]`."""

    def __init__(self, orders: Sequence[tuple[int, dict[str, Any]]]) -> None:
        self.pending = sorted(orders, key=lambda x: x[0])
        self.ids: list[str] = []
        self.seen: list[SimFill] = []
        self.seen_at: list[int] = []

    def on_event(self, sim: TickSim, ev: Event) -> None:
        """Submit every order whose time has come."""
        while self.pending and self.pending[0][0] <= ev[0]:
            _, kw = self.pending.pop(0)
            self.ids.append(sim.submit(**kw))

    def on_fill(self, sim: TickSim, fill: SimFill) -> None:
        """Record the report and when it arrived."""
        self.seen.append(fill)
        self.seen_at.append(sim.now_ns)


# ---------------------------------------------------------------- outputs


def write_outputs(res: SimResult, out_dir: str | Path) -> Path:
    """summary.json, equity.csv, fills.csv (the backtest's formats, so `research report` and
    `backtest_report` draw them) and fills_detail.csv (liquidity, arrival mid, slippage)."""
    import orjson

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inst = res.summary.get("instrument", "")
    (out / "summary.json").write_bytes(orjson.dumps(res.summary, option=orjson.OPT_INDENT_2))
    (out / "equity.csv").write_text("ts_ns,equity\n" + "".join(f"{t},{e!r}\n" for t, e in res.equity))
    (out / "fills.csv").write_text("ts_ns,instrument_id,side,qty,price,fee\n" + "".join(
        f"{f.ts_ns},{inst},{f.side.value},{f.qty!r},{f.price!r},{f.fee!r}\n" for f in res.fills))
    (out / "fills_detail.csv").write_text(
        "ts_ns,client_order_id,side,qty,price,fee,liquidity,arrival_mid,slippage_bps\n" + "".join(
            f"{f.ts_ns},{f.client_order_id},{f.side.value},{f.qty!r},{f.price!r},{f.fee!r},{f.liquidity},"
            f"{f.arrival_mid!r},{f.slippage_bps!r}\n" for f in res.fills))
    return out
