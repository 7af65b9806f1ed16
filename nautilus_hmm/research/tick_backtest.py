"""The node's strategies on ticks: a backtest whose orders meet the recorded order book.

`TickBacktest` is `backtest.Backtest` (the same config, strategies, router, allocator, risk
gate, execution engine, portfolio and in-memory journal, built by `bootstrap.build_stack`)
with two things changed: the market is a tick replay of websocket captures / depth CSVs
(`research.ticks`), and the venue is `TickVenue`, the tick-level venue model of
`research.sim_exec` (latency, book walking, queue position, partial fills, fees) behind the
venue port the engine holds. The strategies' bars are built from the recorded trades by the
daemon's own bar builder (`marketdata.bars.BarAggregator`, as the Binance adapter builds
bars of a length Binance has no kline for): a bar closes at the first trade of a later
interval, and is published before that trade's `TradeTick`. Trades are bucketed by their
receive time, the replay's one clock (the daemon buckets by the venue's trade time `T`; in
these captures the venue clock runs ~1.25 s ahead of the collector's, and one time line keeps
bars, marks, orders and fills in order).

Per market event (receive-time order, every symbol on one `ManualClock`):

1. everything due before it is handled, earliest first, at its own time: orders reaching
   the venue (matched against the book as it stands then), fill and order reports reaching
   the engine (`FillReport` / `OrderStatusReport`; the engine books them, re-plans, and
   what it sends then is sent at that time); and every 5 s of the clock the engine re-plans
   targets whose orders were rejected or expired short (`replan_all`, as
   `bootstrap.TradingStarter.run` does in the daemon; the bar backtest does not);
2. the event updates the venue's book (and fills resting orders it trades through);
3. the market data goes on the bus like the daemon's: a trade → the bar it closed (the
   strategies decide on it; the router nets; the engine sends) → `TradeTick`; a best
   quote → `QuoteTick` (marks: quote mids and trades, the risk gate's freshness). Depth
   updates only move the venue's book.

The venue's answer to a request is synchronous, as the bar backtest's sim venue: a new
order is checked at once by the venue's rules against the book of the moment (tick, step,
min notional, post-only, and the free balance: a spot account, funds reserved per open
order) and acknowledged ACCEPTED or refused (`OrderRejected`: the engine ends it REJECTED);
it then travels `entry_latency` to the matching. An order the venue refuses *on arrival*
(the book moved: a post-only that would now take) is reported EXPIRED with the reason (the
engine already holds it ACCEPTED, from which REJECTED is no legal step). A cancel is
answered PENDING_CANCEL and takes effect on arrival (a fill may beat it).

`compare_runs` sets the tick run beside the bar backtest of the very same bars (signal at a
bar's close, market fill at the next bar's open): the strategies' decisions (every
`StrategyTarget`) must be the same list where the strategies decide on bars alone, and
each decision's fills are priced against the bar-open fills (`fills_vs_bars.csv`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from nautilus_hmm.backtest import Backtest, BacktestResult, sim_venue_config
from nautilus_hmm.backtest_report import prices_of, write_report
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.errors import DataError, OrderRejected
from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.domain.enums import Liquidity, OrderStatus, Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.marketdata.bars import BarAggregator
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.messages import (
    Bar,
    FillReport,
    OrderStatusReport,
    QuoteTick,
    StrategyTarget,
    TradeTick,
)
from nautilus_hmm.research.sim_exec import MAKER, OrderUpdate, SimExecConfig, SimFill, TickSim
from nautilus_hmm.research.ticks import QUOTE, TRADE, Event, load_by_symbol
from nautilus_hmm.venues.sim.config import SimVenueConfig
from nautilus_hmm.venues.sim.factory import VENUE_NAME as SIM_VENUE
from nautilus_hmm.venues.sim.instruments import sim_instruments
from nautilus_hmm.venues.sim.matching import (
    CODE_INVALID_SYMBOL,
    CODE_NEW_ORDER_REJECTED,
    CODE_UNKNOWN_ORDER,
    FEE_QUANTUM,
)

NS_PER_S = 1_000_000_000
REPLAN_EVERY_NS = 5 * NS_PER_S  # bootstrap.TradingStarter.run's period in the daemon
_OPEN = ("PENDING", "OPEN")
# An order that ends without its whole quantity at the tick venue, as the engine reads it.
_ENDED = {"CANCELED": OrderStatus.CANCELED, "EXPIRED": OrderStatus.EXPIRED, "REJECTED": OrderStatus.EXPIRED}


# ---------------------------------------------------------------- bars from trades


def bars_from_trades(events: Sequence[Event], interval_s: int, path: str = "") -> BarArrays:
    """The bars `BarAggregator` closes over the trades of `events` (the daemon's builder and
    closing rule: a bar closes at the first trade of a later interval; the last, still open
    bar is not one; an interval without trades has no bar)."""
    agg = BarAggregator(InstrumentId(SIM_VENUE, "X"), interval_s)
    rows = []
    for ev in events:
        if ev[1] == TRADE:
            bar = agg.on_trade(ev[2], ev[3], ev[0])
            if bar is not None:
                rows.append((bar.ts_event_ns, bar.open, bar.high, bar.low, bar.close, bar.volume))
    arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), 6)
    ts = np.asarray([r[0] for r in rows], dtype=np.int64)  # exact: ns do not survive a float64
    return BarArrays(ts, arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5], interval_s=interval_s, path=path)


# ---------------------------------------------------------------- the venue


@dataclass(slots=True)
class _Sent:
    """What the venue keeps of an order it acknowledged: the request and what it reported."""

    req: OrderRequest
    venue_order_id: str
    reserve_px: float           # price funds were reserved at (BUY: limit, or the best ask on arrival of the request)
    cum_float: float = 0.0      # executions reported so far (the sim's float quantities)
    cum_qty: Decimal = Decimal(0)  # the same in the instrument's steps
    notional: Decimal = Decimal(0)
    status: OrderStatus = OrderStatus.ACCEPTED


class TickVenue:
    """The tick-level sim venue (`research.sim_exec.TickSim`, one per instrument) behind the
    venue port (`domain.venue.Venue`) with the backtest's synchronous request path
    (`submit_order_nowait`, `cancel_order_nowait`). Reports are published on the bus when
    they reach the engine (response latency after the venue event). See the module doc."""

    def __init__(self, config: SimVenueConfig, bus: Bus, clock: Clock, sim_config: SimExecConfig,
                 ref_prices: Mapping[str, float], name: str = SIM_VENUE) -> None:
        self.name = name
        self.config = config
        self._bus = bus
        self._clock = clock
        self._instruments = sim_instruments(
            name, tuple(config.symbols), config.quote_asset, Decimal(repr(config.maker_fee)),
            Decimal(repr(config.taker_fee)), ref_prices)
        rates = dataclasses.replace(sim_config, maker_fee=float(config.maker_fee), taker_fee=float(config.taker_fee))
        self.sims: dict[InstrumentId, TickSim] = {iid: TickSim(inst, rates, initial_cash=0.0)
                                                  for iid, inst in self._instruments.items()}
        self._initial = {a: Decimal(repr(v)) for a, v in config.initial_balances.items()}
        self._sent: dict[str, _Sent] = {}
        self._fills: list[VenueFill] = []
        self._order_ids = 0
        self._trade_ids = 0
        self.rejected = 0

    # ------------------------------------------------------------ lifecycle (nothing to connect)

    async def start(self) -> None:
        """Nothing to connect."""

    def start_nowait(self) -> None:
        """Nothing to connect."""

    async def run(self) -> None:
        """The replay drives the venue (`TickBacktest.run`)."""

    async def stop(self) -> None:
        """Nothing to release."""

    def health(self) -> Health:
        """Always healthy: a replay."""
        return Health(True, "", {"open_orders": len(self.open_orders_nowait()), "rejected": self.rejected})

    def instruments(self) -> dict[InstrumentId, Instrument]:
        """Tradable instruments, by id (the sim venue's specs)."""
        return dict(self._instruments)

    # ------------------------------------------------------------ reads

    def balances_nowait(self) -> dict[str, Balance]:
        """Balances at the venue now: the initial ones plus every execution so far."""
        total = dict(self._initial)
        for iid, sim in self.sims.items():
            # The sim's float sums, in the venue's units: the position in lot steps (every fill
            # is a whole number of steps; float noise is far below one), cash to 1e-8.
            inst = self._instruments[iid]
            cash = Decimal(repr(sim.cash)).quantize(FEE_QUANTUM)
            total[inst.quote_asset] = total.get(inst.quote_asset, Decimal(0)) + cash
            if sim.position:
                pos = Decimal(repr(sim.position)).quantize(inst.step_size, ROUND_HALF_EVEN)
                total[inst.base_asset] = total.get(inst.base_asset, Decimal(0)) + pos
        locked = self._locked()
        return {a: Balance(a, v - locked.get(a, Decimal(0)), locked.get(a, Decimal(0))) for a, v in total.items()}

    async def balances(self) -> dict[str, Balance]:
        """`balances_nowait`."""
        return self.balances_nowait()

    async def positions(self) -> dict[InstrumentId, Decimal]:
        """Spot venue: no derivative positions."""
        return {}

    def query_order_nowait(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        """The order as last reported, or None if never acknowledged."""
        s = self._sent.get(client_order_id)
        if s is None or s.req.instrument_id != instrument_id:
            return None
        return self._snapshot(s, s.status, self._clock.time_ns())

    async def query_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        """`query_order_nowait`."""
        return self.query_order_nowait(instrument_id, client_order_id)

    def open_orders_nowait(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Orders still working at the venue (in flight or resting)."""
        now = self._clock.time_ns()
        out = []
        for cid, s in self._sent.items():
            iid = s.req.instrument_id
            if (instrument_id is None or iid == instrument_id) and self.sims[iid].orders[cid].status in _OPEN:
                out.append(self._snapshot(s, s.status, now))
        return out

    async def open_orders(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """`open_orders_nowait`."""
        return self.open_orders_nowait(instrument_id)

    async def fills_since(self, instrument_id: InstrumentId, since_ts_ns: int) -> list[VenueFill]:
        """Reported executions at or after `since_ts_ns`, oldest first."""
        return [f for f in self._fills if f.instrument_id == instrument_id and f.ts_ns >= since_ts_ns]

    # ------------------------------------------------------------ requests

    def submit_order_nowait(self, req: OrderRequest) -> VenueOrder:
        """Check the request now (venue rules, free balance), acknowledge it ACCEPTED and send it
        on its way to the matching (entry latency); OrderRejected when refused."""
        sim = self.sims.get(req.instrument_id)
        if sim is None:
            self._refuse(CODE_INVALID_SYMBOL, f"Invalid symbol.: {req.instrument_id} is not listed on {self.name}")
        assert sim is not None
        if req.client_order_id in self._sent:
            self._refuse(CODE_NEW_ORDER_REJECTED, f"Duplicate order sent.: client order id {req.client_order_id}")
        now = self._clock.time_ns()
        if now > sim.now_ns:
            sim.now_ns = now
        try:
            sim.check(req)
        except OrderRejected:
            self.rejected += 1
            raise
        reserve_px = self._reserve_price(sim, req)
        self._check_funds(sim, req, reserve_px)
        self._order_ids += 1
        sent = _Sent(req, str(self._order_ids), reserve_px)
        sim.submit(req.side, float(req.quantity), None if req.price is None else float(req.price),
                   req.time_in_force, req.order_type, client_order_id=req.client_order_id)
        self._sent[req.client_order_id] = sent
        return self._snapshot(sent, OrderStatus.ACCEPTED, now)

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        """`submit_order_nowait`."""
        return self.submit_order_nowait(req)

    def cancel_order_nowait(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        """Send a cancel (it takes effect on arrival); OrderRejected -2011 when the venue knows
        the order closed already (its final report is on its way)."""
        s = self._sent.get(client_order_id)
        if s is None or s.req.instrument_id != instrument_id:
            self._refuse(CODE_UNKNOWN_ORDER, f"Unknown order sent.: {client_order_id} on {instrument_id}")
        assert s is not None
        sim = self.sims[instrument_id]
        o = sim.orders[client_order_id]
        if o.status not in _OPEN:
            self._refuse(CODE_UNKNOWN_ORDER, f"Unknown order sent.: {client_order_id} is already {o.status}")
        now = self._clock.time_ns()
        if now > sim.now_ns:
            sim.now_ns = now
        sim.cancel(client_order_id)
        return self._snapshot(s, OrderStatus.PENDING_CANCEL, now)

    async def cancel_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        """`cancel_order_nowait`."""
        return self.cancel_order_nowait(instrument_id, client_order_id)

    def cancel_all_nowait(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Cancel every working order (of one instrument, or all)."""
        return [self.cancel_order_nowait(vo.instrument_id, vo.client_order_id)
                for vo in self.open_orders_nowait(instrument_id)]

    async def cancel_all(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """`cancel_all_nowait`."""
        return self.cancel_all_nowait(instrument_id)

    # ------------------------------------------------------------ reports (TickSim's strategy hooks)

    def on_event(self, sim: TickSim, ev: Event) -> None:
        """Market data reaches the bus through the replay, not here."""

    def on_fill(self, sim: TickSim, f: SimFill) -> None:
        """An execution reached the engine: FillReport, then the order's state."""
        s = self._sent[f.client_order_id]
        inst = sim.instrument
        s.cum_float += f.qty
        o = sim.orders[f.client_order_id]
        if o.qty - s.cum_float <= 1e-12 * max(1.0, o.qty):
            cum = s.req.quantity
        else:  # the sim's float quantities, in the instrument's steps (book sizes are)
            cum = min(Decimal(repr(s.cum_float)).quantize(inst.step_size, ROUND_HALF_EVEN), s.req.quantity)
        qty = cum - s.cum_qty
        if qty <= 0:
            return  # less than a step of float noise: nothing a venue would report
        price = Decimal(repr(f.price))
        maker = f.liquidity == MAKER
        fee = (qty * price * (inst.maker_fee if maker else inst.taker_fee)).quantize(FEE_QUANTUM)
        self._trade_ids += 1
        fill = VenueFill(inst.id, f.client_order_id, s.venue_order_id, str(self._trade_ids), f.side, qty, price,
                         fee, inst.quote_asset, Liquidity.MAKER if maker else Liquidity.TAKER, f.ts_ns)
        self._fills.append(fill)
        s.cum_qty = cum
        s.notional += qty * price
        s.status = OrderStatus.FILLED if cum == s.req.quantity else OrderStatus.PARTIALLY_FILLED
        now = self._clock.time_ns()
        self._bus.publish(FillReport(ts_event_ns=f.ts_ns, ts_init_ns=now, venue=self.name, fill=fill))
        self._bus.publish(OrderStatusReport(ts_event_ns=f.ts_ns, ts_init_ns=now, venue=self.name,
                                            order=self._snapshot(s, s.status, f.ts_ns)))

    def on_order(self, sim: TickSim, u: OrderUpdate) -> None:
        """An order ended without (more) fills: its report reached the engine."""
        s = self._sent[u.client_order_id]
        s.status = _ENDED[u.status]
        reason = f"rejected on arrival: {u.reason}" if u.status == "REJECTED" else u.reason
        self._bus.publish(OrderStatusReport(ts_event_ns=u.ts_ns, ts_init_ns=self._clock.time_ns(), venue=self.name,
                                            order=self._snapshot(s, s.status, u.ts_ns, reason)))

    # ------------------------------------------------------------ internals

    def _snapshot(self, s: _Sent, status: OrderStatus, ts_ns: int, reason: str = "") -> VenueOrder:
        r = s.req
        avg = (s.notional / s.cum_qty) if s.cum_qty else None
        return VenueOrder(r.client_order_id, s.venue_order_id, r.instrument_id, r.side, r.order_type, status,
                          r.quantity, s.cum_qty, avg, r.price, ts_ns, reason)

    @staticmethod
    def _reserve_price(sim: TickSim, req: OrderRequest) -> float:
        if req.price is not None:
            return float(req.price)
        for px in (sim.best_ask if req.side is Side.BUY else sim.best_bid, sim.last_price, sim.mid):
            if px == px and px > 0:
                return px
        return 0.0

    def _locked(self) -> dict[str, Decimal]:
        """Funds held by working orders: a BUY its remaining quantity at its reserve price plus
        the taker fee (quote), a SELL its remaining quantity (base)."""
        out: dict[str, Decimal] = {}
        for cid, s in self._sent.items():
            sim = self.sims[s.req.instrument_id]
            o = sim.orders[cid]
            if o.status not in _OPEN or o.remaining <= 0:
                continue
            inst = sim.instrument
            left = Decimal(repr(o.remaining)).quantize(inst.step_size, ROUND_HALF_EVEN)
            if o.side is Side.BUY:
                need = left * Decimal(repr(s.reserve_px)) * (1 + inst.taker_fee)
                out[inst.quote_asset] = out.get(inst.quote_asset, Decimal(0)) + need
            else:
                out[inst.base_asset] = out.get(inst.base_asset, Decimal(0)) + left
        return out

    def _check_funds(self, sim: TickSim, req: OrderRequest, reserve_px: float) -> None:
        inst = sim.instrument
        bal = self.balances_nowait()
        if req.side is Side.BUY:
            asset = inst.quote_asset
            need = req.quantity * Decimal(repr(reserve_px)) * (1 + inst.taker_fee)
        else:
            asset = inst.base_asset
            need = req.quantity
        free = bal[asset].free if asset in bal else Decimal(0)
        if free < need:
            self._refuse(CODE_NEW_ORDER_REJECTED,
                         f"Account has insufficient balance for requested action.: {req.side.value} {req.quantity} "
                         f"{inst.symbol} needs {need:.8f} {asset} (incl. fee), free {free:.8f}")

    def _refuse(self, code: str, message: str) -> None:
        self.rejected += 1
        raise OrderRejected(self.name, message, code)


# ---------------------------------------------------------------- the replay


class TickBacktest(Backtest):
    """`Backtest` on ticks: the same stack, the tick venue, the captures' events (module doc).

    `bars` are the bars the replay will build from the trades (`bars_from_trades`; the base
    class sets the strategies' instruments and bar interval from them); `events` every
    symbol's events, sorted by receive time."""

    def __init__(self, cfg: Config, bars: Mapping[str, BarArrays], events: Mapping[str, Sequence[Event]],
                 sim_config: SimExecConfig | None = None) -> None:
        empty = [sym for sym, b in bars.items() if not len(b)]
        if empty:
            raise DataError("<ticks>", None, f"no bar closed in the trades of {', '.join(empty)}: the capture is "
                                             "shorter than two bar intervals, or has no trades")
        self._sim_config = sim_config or SimExecConfig()
        self._ref = {sym: float(b.close[0]) for sym, b in bars.items()}
        self.events = events
        super().__init__(cfg, bars)
        self.tick_venue: TickVenue = self.venue
        self.targets: list[StrategyTarget] = []
        self.bars_seen: list[Bar] = []
        self.bus.subscribe(StrategyTarget, self.targets.append, name="tick_backtest")
        self._equity: list[tuple[int, float]] = []
        self._last_close = -1
        # After every other subscriber (engine, router, strategies): the state after the bar.
        self.bus.subscribe(Bar, self._after_bar, name="tick_backtest")
        self.n_events = 0
        self._next_replan_ns = self.clock.time_ns() + REPLAN_EVERY_NS
        self.replans = 0  # orders the periodic re-plan sent

    def _venue(self, sim: SimVenueConfig, series: Mapping[str, BarArrays]) -> Any:
        return TickVenue(sim, self.bus, self.clock, self._sim_config, self._ref)

    def _after_bar(self, bar: Bar) -> None:
        """Equity per bar close (as the bar backtest samples it); a second symbol's bar of the
        same interval updates that sample."""
        self.bars_seen.append(bar)
        close = bar.ts_event_ns + bar.interval_s * NS_PER_S
        eq = self.stack.engine.equity_book.last_equity_f
        if close == self._last_close:
            self._equity[-1] = (close, eq)
            return
        self._last_close = close
        self._equity.append((close, eq))
        self._sample_strategies(close)

    def merged_events(self) -> list[tuple[Event, int]]:
        """(event, instrument index) of every symbol, by receive time (stable across symbols)."""
        keyed = [(ev, k) for k, evs in enumerate(self.events.values()) for ev in evs]
        keyed.sort(key=lambda x: x[0][0])
        return keyed

    def run(self, bars: list[Bar] | None = None,  # type: ignore[override]
            progress: Any = None) -> tuple[BacktestResult, list[tuple[int, float]]]:
        """Replay every event (module doc, steps 1-3); returns the summary and the equity per bar close."""
        venue = self.tick_venue
        ids = [InstrumentId(SIM_VENUE, sym) for sym in self.events]
        sims = [venue.sims[i] for i in ids]
        aggs = [BarAggregator(i, self.interval_s) for i in ids]
        publish = self.bus.publish
        set_time = self.clock.set_time_ns
        start_ns = self.clock.time_ns()
        trade_seq = 0
        merged = self.merged_events()
        t0 = time.perf_counter()
        for ev, k in merged:
            ts = ev[0]
            sim = sims[k]
            if ts < start_ns:  # before the first bar's interval: only the venue's book
                sim.apply_event(ev)
                continue
            self._due(sims, ts)
            set_time(ts)
            sim.apply_event(ev)
            kind = ev[1]
            if kind == QUOTE:
                publish(QuoteTick(ts_event_ns=ts, ts_init_ns=ts, instrument_id=ids[k], bid=ev[2], bid_size=ev[3],
                                  ask=ev[4], ask_size=ev[5]))
            elif kind == TRADE:
                bar = aggs[k].on_trade(ev[2], ev[3], ts)
                if bar is not None:
                    publish(bar)
                trade_seq += 1
                publish(TradeTick(ts_event_ns=ts, ts_init_ns=ts, instrument_id=ids[k], price=ev[2], size=ev[3],
                                  aggressor=Side.SELL if ev[4] else Side.BUY, trade_id=str(trade_seq)))
        if merged:
            self._due(sims, merged[-1][0][0])
        wall = time.perf_counter() - t0
        self.n_events = len(merged)
        equity = list(self._equity)
        end_ns = self.clock.time_ns()
        final = self.stack.engine.equity_f()
        if not equity or equity[-1][0] < end_ns:
            equity.append((end_ns, final))  # the end of the data, at the last marks
        return self._summary(len(self.bars_seen), wall, equity), equity

    def _due(self, sims: list[TickSim], until_ns: int) -> None:
        """Handle what every sim has due at or before `until_ns`, earliest first, each at its time;
        and the daemon's periodic re-plan (`bootstrap.TradingStarter.run`: every REPLAN_EVERY_S,
        targets whose orders were rejected or expired short are planned again)."""
        venue = self.tick_venue
        clock = self.clock
        while True:
            best = None
            due = until_ns + 1
            for s in sims:
                d = s.due_ns()
                if d < due:
                    best, due = s, d
            if self._next_replan_ns < due:
                if clock.time_ns() < self._next_replan_ns:
                    clock.set_time_ns(self._next_replan_ns)
                self._next_replan_ns += REPLAN_EVERY_NS
                self.replans += self.stack.engine.replan_all()
                continue
            if best is None:
                return
            if due > clock.time_ns():
                clock.set_time_ns(due)
            best.process_next(venue)

    def sim_fills(self) -> list[tuple[str, SimFill]]:
        """Every execution at the venue (instrument id, fill), by time."""
        out = [(str(iid), f) for iid, s in self.tick_venue.sims.items() for f in s.fills]
        out.sort(key=lambda x: x[1].ts_ns)
        return out

    def tick_summary(self) -> dict[str, Any]:
        """What the tick venue adds to the backtest summary: events, maker/taker, slippage
        against the mid on arrival, the orders' final states at the venue, latencies."""
        fills = [f for _, f in self.sim_fills()]
        slips = [f.slippage_bps for f in fills if f.liquidity != MAKER and f.slippage_bps == f.slippage_bps]
        statuses: dict[str, int] = {}
        for s in self.tick_venue.sims.values():
            for o in s.orders.values():
                statuses[o.status] = statuses.get(o.status, 0) + 1
        cfg = self._sim_config
        return {
            "engine": "ticks (research.tick_backtest)", "events": self.n_events,
            "venue_fills": len(fills), "maker_fills": sum(1 for f in fills if f.liquidity == MAKER),
            "venue_orders": statuses, "venue_rejected_requests": self.tick_venue.rejected,
            "taker_slippage_vs_arrival_mid_bps_mean": statistics.fmean(slips) if slips else None,
            "entry_latency_ms": cfg.entry_latency_ns / 1e6, "response_latency_ms": cfg.response_latency_ns / 1e6,
            "engine_discrepancies": list(self.stack.engine.discrepancies),
            # in flight or resting when the data ended (PENDING at the venue: never arrived)
            "orders_open_at_end": sum(1 for o in self.stack.engine.orders.values() if not o.status.is_terminal),
            "replan_orders": self.replans,
        }

    def write(self, out_dir: Path, result: BacktestResult, equity: list[tuple[int, float]],
              left_out: Sequence[str] = ()) -> None:
        """The backtest's files, plus fills_detail.csv (liquidity, arrival mid, slippage) and
        the tick figures in summary.json (with the strategies the replay `left_out`)."""
        super().write(out_dir, result, equity)
        with (out_dir / "fills_detail.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ts_ns", "instrument_id", "client_order_id", "side", "qty", "price", "fee", "liquidity",
                        "arrival_mid", "slippage_bps"])
            for iid, x in self.sim_fills():
                w.writerow([x.ts_ns, iid, x.client_order_id, x.side.value, repr(x.qty), repr(x.price), repr(x.fee),
                            x.liquidity, repr(x.arrival_mid), repr(x.slippage_bps)])
        summary = {**result.as_dict(), **self.tick_summary(), "strategies_left_out": list(left_out)}
        (out_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))


# ---------------------------------------------------------------- bars vs ticks


def decision_rows(targets: Sequence[StrategyTarget]) -> list[tuple[Any, ...]]:
    """The strategies' decisions, comparable across runs: (bar close ns, strategy, instrument,
    lane, exposure, target qty, reason). The receive time is left out: a bar is known at its
    close in the bar replay, at the first trade after it on ticks."""
    return [(t.ts_event_ns, t.strategy_id, str(t.instrument_id), t.lane, t.exposure,
             None if t.target_qty is None else str(t.target_qty), t.reason) for t in targets]


@dataclass(slots=True)
class _Leg:
    qty: float = 0.0
    notional: float = 0.0
    fees: float = 0.0
    fills: int = 0
    first_ns: int = 0

    def add(self, qty: float, price: float, fee: float, ts_ns: int) -> None:
        if not self.fills:
            self.first_ns = ts_ns
        self.qty += qty
        self.notional += qty * price
        self.fees += fee
        self.fills += 1

    @property
    def vwap(self) -> float:
        return self.notional / self.qty if self.qty else math.nan


def _legs(bt: Backtest, interval_ns: int) -> dict[tuple[int, str, str], _Leg]:
    """Fills grouped by (bar close the order was decided on, instrument, side)."""
    orders = bt.stack.engine.orders
    out: dict[tuple[int, str, str], _Leg] = {}
    for f in bt.fills:
        o = orders.get(f.client_order_id)
        created = o.created_ns if o is not None else f.ts_event_ns
        close = created - created % interval_ns
        key = (close, str(f.instrument_id), f.side.value)
        out.setdefault(key, _Leg()).add(float(f.qty), float(f.price), float(f.fee), f.ts_event_ns)
    return out


def compare_runs(bars_bt: Backtest, bars_result: BacktestResult, ticks_bt: TickBacktest,
                 ticks_result: BacktestResult) -> tuple[dict[str, Any], list[list[Any]]]:
    """The comparison summary and the fills_vs_bars.csv rows (module doc)."""
    d_bars, d_ticks = decision_rows(getattr(bars_bt, "targets", [])), decision_rows(ticks_bt.targets)
    first_diff = next(({"index": i, "bars": list(a) if a else None, "ticks": list(b) if b else None}
                       for i, (a, b) in enumerate(_zip_longest(d_bars, d_ticks)) if a != b), None)
    interval_ns = ticks_bt.interval_s * NS_PER_S
    lb, lt = _legs(bars_bt, interval_ns), _legs(ticks_bt, interval_ns)
    rows: list[list[Any]] = []
    bps: list[float] = []
    weights: list[float] = []
    for key in sorted(set(lb) | set(lt)):
        b, t = lb.get(key), lt.get(key)
        slip = math.nan
        if b is not None and t is not None and b.qty and t.qty:
            sign = 1.0 if key[2] == "BUY" else -1.0
            slip = sign * (t.vwap / b.vwap - 1.0) * 1e4
            bps.append(slip)
            weights.append(t.notional)
        rows.append([key[0], key[1], key[2],
                     b.qty if b else 0.0, b.vwap if b else math.nan, b.fees if b else 0.0, b.fills if b else 0,
                     t.qty if t else 0.0, t.vwap if t else math.nan, t.fees if t else 0.0, t.fills if t else 0,
                     (t.first_ns - key[0]) / 1e6 if t else math.nan, slip])
    matched = len(bps)
    summary = {
        "bar_interval_s": ticks_bt.interval_s,
        "bars": bars_result.bars,
        "decisions": {"bars": len(d_bars), "ticks": len(d_ticks), "identical": d_bars == d_ticks,
                      "first_difference": first_diff},
        "fills_vs_bar_open": {
            "matched_legs": matched,
            "only_bars": sum(1 for k in lb if k not in lt), "only_ticks": sum(1 for k in lt if k not in lb),
            "mean_bps": statistics.fmean(bps) if bps else None,
            "median_bps": statistics.median(bps) if bps else None,
            "notional_weighted_bps": (sum(b * w for b, w in zip(bps, weights, strict=True)) / sum(weights)
                                      if bps and sum(weights) > 0 else None),
        },
        "final_equity": {"bars": bars_result.final_equity, "ticks": ticks_result.final_equity,
                         "ticks_minus_bars": round(ticks_result.final_equity - bars_result.final_equity, 8)},
        "fees": {"bars": bars_result.fees, "ticks": ticks_result.fees},
        "fills": {"bars": bars_result.fills, "ticks": ticks_result.fills},
        "return_pct": {"bars": bars_result.return_pct, "ticks": ticks_result.return_pct},
        "replay": {"bars_per_s": bars_result.bars_per_s, "tick_wall_s": ticks_result.wall_s,
                   "tick_events": ticks_bt.n_events,
                   "events_per_s": round(ticks_bt.n_events / ticks_result.wall_s, 1) if ticks_result.wall_s else None},
    }
    return summary, rows


FILLS_VS_BARS_HEADER = ("decided_at_ns", "instrument_id", "side", "bar_qty", "bar_vwap", "bar_fees", "bar_fills",
                        "tick_qty", "tick_vwap", "tick_fees", "tick_fills", "tick_first_fill_after_ms",
                        "tick_vs_bar_open_bps")


def _zip_longest(a: Sequence[Any], b: Sequence[Any]) -> list[tuple[Any, Any]]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(n)]


# ---------------------------------------------------------------- one command's run


@dataclass(slots=True)
class TickRun:
    """What `run_ticks` produced."""

    ticks: BacktestResult
    tick_summary: dict[str, Any]
    bars: BacktestResult | None
    comparison: dict[str, Any] | None
    out: Path | None
    load_s: float
    files: list[str] = field(default_factory=list)


def load_ticks(captures: Sequence[str | Path], interval_s: int) -> tuple[dict[str, list[Event]], dict[str, BarArrays]]:
    """Every capture's events by symbol (`ticks.load_by_symbol`) and the bars built from their trades."""
    events = load_by_symbol(*captures)
    bars = {sym: bars_from_trades(evs, interval_s, path=str(captures[0])) for sym, evs in events.items()}
    return events, bars


def bar_interval_of(cfg: Config) -> int:
    """The bar length the configured strategies consume on the sim venue (the bar backtest's)."""
    return cfg.venue_bar_interval_s(SIM_VENUE)


def with_fees(cfg: Config, maker_fee: float | None, taker_fee: float | None) -> Config:
    """`cfg` with the sim venue's fee rates replaced where given (both runs use them)."""
    sim = sim_venue_config(cfg)
    if maker_fee is None and taker_fee is None:
        return cfg
    sim = dataclasses.replace(sim, maker_fee=sim.maker_fee if maker_fee is None else maker_fee,
                              taker_fee=sim.taker_fee if taker_fee is None else taker_fee)
    venues: Any = cfg.venues
    return dataclasses.replace(cfg, venues=dataclasses.replace(venues, **{SIM_VENUE: sim}))


def run_ticks(cfg: Config, captures: Sequence[str | Path], out: str | Path | None = None, *,
              interval_s: int | None = None, sim_config: SimExecConfig | None = None, compare: bool = True,
              report: bool = True, on_loaded: Callable[[int], None] | None = None,
              left_out: Sequence[str] = ()) -> TickRun:
    """Load the captures, replay them with the configured strategies on ticks (and, with
    `compare`, the same bars through the bar backtest), write OUT/ticks, OUT/bars,
    OUT/comparison.json, OUT/fills_vs_bars.csv. CaptureError / DataError name bad input."""
    interval = interval_s or bar_interval_of(cfg)
    t = time.perf_counter()
    events, bars = load_ticks(captures, interval)
    load_s = time.perf_counter() - t
    if on_loaded is not None:
        on_loaded(sum(len(v) for v in events.values()))
    tb = TickBacktest(cfg, bars, events, sim_config)
    ticks_result, ticks_equity = tb.run()
    tsum = {**tb.tick_summary(), "strategies_left_out": list(left_out)}
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        tb.write(out_dir / "ticks", ticks_result, ticks_equity, left_out)
        if report:
            write_report(out_dir / "ticks", prices_of(tb.series, SIM_VENUE))
    bars_result = comparison = None
    if compare:
        bb = Backtest(cfg, bars)
        bb.targets = []  # type: ignore[attr-defined]
        bb.bus.subscribe(StrategyTarget, bb.targets.append, name="compare")  # type: ignore[attr-defined]
        bars_result, bars_equity = bb.run()
        comparison, rows = compare_runs(bb, bars_result, tb, ticks_result)
        comparison = {"captures": [str(c) for c in captures], "symbols": sorted(events), **comparison,
                      "ticks": tsum}
        if out_dir is not None:
            bb.write(out_dir / "bars", bars_result, bars_equity)
            if report:
                write_report(out_dir / "bars", prices_of(bb.series, SIM_VENUE))
            with (out_dir / "fills_vs_bars.csv").open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(FILLS_VS_BARS_HEADER)
                w.writerows(rows)
            (out_dir / "comparison.json").write_bytes(orjson.dumps(comparison, option=orjson.OPT_INDENT_2))
    return TickRun(ticks_result, tsum, bars_result, comparison, out_dir, load_s, [str(c) for c in captures])


# ---------------------------------------------------------------- `research sim-exec --config`

_HMM = ("{where} is kind \"hmm\": the tick replay runs sma_cross, breakout and mean_reversion (an hmm "
        "model trades 5 m bars of a model trained on months; a capture holds minutes)")


def without_hmm(cfg: Config) -> tuple[Config, list[str]]:
    """`cfg` without its `[[strategies]]` of kind hmm (left out, named `strategies[i] (id ...)`),
    as the tick replay runs it; ValueError when nothing else is left (or the one `[strategy]` is hmm)."""
    if not cfg.strategies:
        if cfg.strategy.kind == "hmm":
            raise ValueError(_HMM.format(where="strategy"))
        return cfg, []
    left_out = [f"strategies[{i}] (id {s.id!r})" for i, s in enumerate(cfg.strategies) if s.kind == "hmm"]
    keep = tuple(s for s in cfg.strategies if s.kind != "hmm")
    if not keep:
        raise ValueError(_HMM.format(where=left_out[0]) + "; the config has no other strategy")
    return (dataclasses.replace(cfg, strategies=keep) if left_out else cfg), left_out


def run_command(args: Any, out: Any, err: Any) -> int:
    """`research sim-exec --config FILE`: 0 on success; 78 for a config that cannot run here; 2
    with one line naming the bad input (capture, option)."""
    from nautilus_hmm.config import ConfigError, load_config
    from nautilus_hmm.research.sim_exec import latency_from_journal
    from nautilus_hmm.research.slippage import SlippageError
    from nautilus_hmm.research.ticks import CaptureError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: {len(exc.errors)} error(s)", file=err)
        for e in exc.errors:
            print(f"  {e}", file=err)
        return 78
    try:
        cfg, left_out = without_hmm(cfg)
    except ValueError as exc:
        print(f"{args.config}: {exc}", file=err)
        return 78
    for where in left_out:
        print(f"note: {args.config}: {_HMM.format(where=where)}: left out, the others run", file=err)
    try:
        for name in ("latency_ms", "response_latency_ms"):
            v = getattr(args, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"--{name.replace('_', '-')} {v}: must be a number >= 0")
        if args.bar_interval_s is not None and not 1 <= args.bar_interval_s <= 86_400:
            raise ValueError(f"--bar-interval-s {args.bar_interval_s}: must be 1..86400")
        entry_ns = int(args.latency_ms * 1e6)
        if args.latency_from_journal:
            entry_ns = latency_from_journal(args.latency_from_journal)
        cfg = with_fees(cfg, args.maker_fee, args.taker_fee)
        sim = sim_venue_config(cfg)
        sim_cfg = SimExecConfig(entry_ns, int(args.response_latency_ms * 1e6), float(sim.maker_fee),
                                float(sim.taker_fee), equity_every_ns=2**62)
        run = run_ticks(cfg, args.capture, args.out, interval_s=args.bar_interval_s, sim_config=sim_cfg,
                        compare=not args.no_compare, report=not args.no_report, left_out=left_out)
        if args.slippage_model:  # the tick fills against the fitted model (research report's page)
            from nautilus_hmm.research.report import write as write_research_report

            write_research_report(Path(args.out) / "ticks", args.slippage_model)
    except (ValueError, CaptureError, DataError, SlippageError) as exc:  # DataError: data that cannot replay
        print(f"error: {exc}", file=err)  # ReportInputError is a ValueError
        return 2
    t, s = run.ticks, run.tick_summary
    print(f"ticks: {s['events']} events in {t.wall_s:.2f} s ({s['events'] / t.wall_s if t.wall_s else 0:,.0f} "
          f"events/s), {t.bars} bars; {t.fills} fills ({s['maker_fills']} maker), fees {t.fees:.2f}, "
          f"final equity {t.final_equity:,.2f} ({t.return_pct:+.3f} %)", file=out)
    if run.bars is not None and run.comparison is not None:
        b, c = run.bars, run.comparison
        d, fv = c["decisions"], c["fills_vs_bar_open"]
        print(f"bars:  {b.bars} bars; {b.fills} fills, fees {b.fees:.2f}, final equity {b.final_equity:,.2f} "
              f"({b.return_pct:+.3f} %)", file=out)
        same = "identical" if d["identical"] else f"DIFFERENT from decision {d['first_difference']['index']}"
        print(f"decisions: {d['bars']} on bars, {d['ticks']} on ticks: {same}", file=out)
        mean = "n/a" if fv["mean_bps"] is None else f"{fv['mean_bps']:+.4f} bps"
        wmean = "n/a" if fv["notional_weighted_bps"] is None else f"{fv['notional_weighted_bps']:+.4f} bps"
        print(f"tick fills vs bar-open fills: {fv['matched_legs']} legs matched, mean {mean} "
              f"(notional-weighted {wmean}); {fv['only_bars']} only on bars, {fv['only_ticks']} only on ticks",
              file=out)
    if args.slippage_model:
        print(f"wrote {args.out}/ticks/research_report.html (tick fills vs {args.slippage_model})", file=out)
    print(f"wrote {args.out}/ticks/" + ("" if args.no_compare else
          f", {args.out}/bars/, {args.out}/comparison.json, {args.out}/fills_vs_bars.csv"), file=out)
    return 0
