"""`SimVenue`: the in-process simulated venue (paper trading and backtests).

It implements `domain.venue.Venue`. Market data comes from a feed:

* synthetic (`SyntheticMarket`): `run()` sleeps `tick_interval_s` on the clock, then for
  each symbol prints one trade and a quote, matches open orders against the trade and
  publishes `Bar` (when the trade closed one), the order reports, `TradeTick`, `QuoteTick`.
* replay (`BarArrays` / `TradeArrays`, one per symbol, or a file named in the config):
  `run()` emits the recorded items in time order, paced by `clock.sleep` on their
  timestamps divided by `replay_speed` (0 = as fast as possible, yielding to the loop
  between items). Timestamps are rebased so the replay starts at the clock's "now";
  a bar is published when it closes. When the data ends `run()` parks (a restart
  would replay it again) and `health()` says so.

The backtest driver skips `run()` and pushes bars itself through `step_bar(bar)` and
orders through `submit_order_nowait(req)`: synchronous, no task switch per bar, no
logging, no Decimal work when no order is open. It should set its ManualClock to the
bar's close (`bar.ts_init_ns`) before each `step_bar`, so orders the strategy sends in
reaction are stamped at the time they were decided.

Every order change and fill is published as `OrderStatusReport` / `FillReport` (after
the paper account is saved: what was published is on disk), followed by `BalanceUpdate`
for each asset that moved. A refused request raises `OrderRejected` with a Binance-like
code and publishes nothing (like a venue's HTTP 400: no order exists). The account
lives in `<state_dir>/sim_account.json`; `persist=False` keeps it in memory (backtests).

With `[venues.sim] slippage_model` (or `slippage=`), taker fills are priced by that fitted
model (`venues.sim.matching`, "Slippage"); without it they fill at the arrival price.

The synthetic market continues where it stopped: its state (price, regime, RNG states per
symbol) is saved to `<state_dir>/sim_market.json` every `MARKET_SAVE_INTERVAL_S` of
market time and on `stop()`, and restored when the venue is built (so the seeded past of
`history_bars` ends at the continued price). A damaged or unreadable market state is a
warning naming the file and where it was moved aside (`sim_market.json.damaged-<UTC time>`)
and a start from the seed, never a failed start.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.errors import DataError, OrderRejected
from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.domain.enums import OrderStatus, Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.marketdata.bars import BarAggregator
from nautilus_hmm.marketdata.replay import BarArrays, TradeArrays, aggressor_side, load_market_file
from nautilus_hmm.marketdata.synthetic import SyntheticMarket
from nautilus_hmm.messages import (
    BalanceUpdate,
    Bar,
    FillReport,
    OrderStatusReport,
    QuoteTick,
    TradeTick,
)
from nautilus_hmm.venues.sim.account import ACCOUNT_FILE, SimAccount
from nautilus_hmm.venues.sim.config import SimVenueConfig
from nautilus_hmm.venues.sim.instruments import sim_instruments
from nautilus_hmm.venues.sim.market_state import (
    MARKET_FILE,
    move_aside,
    read_market_state,
    write_market_state,
)
from nautilus_hmm.venues.sim.matching import (
    CODE_INVALID_SYMBOL,
    CODE_NEW_ORDER_REJECTED,
    CODE_UNKNOWN_ORDER,
    Event,
    MatchingEngine,
)
from nautilus_hmm.venues.sim.slippage_model import SlippageModel, load_model

log = structlog.get_logger("venues.sim")

NS_PER_S = 1_000_000_000
CODE_INJECTED = "SIM_INJECTED"
# A kill -9 loses at most this much synthetic market time (a small price step on restart).
MARKET_SAVE_INTERVAL_S = 10.0

ReplayData = BarArrays | TradeArrays
Feed = SyntheticMarket | ReplayData | Mapping[str, ReplayData]


class SimVenue:
    """The simulated venue. See the module docstring."""

    def __init__(
        self,
        config: SimVenueConfig,
        bus: Bus,
        clock: Clock,
        state_dir: Path | None,
        feed: Feed | None = None,
        *,
        persist: bool = True,
        name: str = "sim",
        bar_volume_fraction: float = 1.0,
        trade_size_fraction: float = 1.0,
        slippage: SlippageModel | None = None,
    ) -> None:
        if persist and state_dir is None:
            raise ValueError("SimVenue needs a state_dir unless persist=False")
        self.name = name
        self.config = config
        self._bus = bus
        self._clock = clock
        self._persist = persist
        self._path = (state_dir / ACCOUNT_FILE) if state_dir is not None else None
        self._market_path = (state_dir / MARKET_FILE) if persist and state_dir is not None else None
        self._market_saved_ns = -1
        self._bar_volume_fraction = bar_volume_fraction
        self._trade_size_fraction = trade_size_fraction
        # `[venues.sim] slippage_model` (checked by the config's validation); an explicit model wins
        self.slippage = slippage if slippage is not None or not config.slippage_model else \
            load_model(config.slippage_model)
        self._latency_s = config.latency_ms / 1000.0
        self._reject_rate = config.reject_rate
        self._reject_rng = random.Random(f"{config.market.seed}:{name}:reject")
        self._feed_arg = feed
        self._synthetic: SyntheticMarket | None = None
        self._replay: dict[str, ReplayData] = {}
        if isinstance(feed, SyntheticMarket):
            unknown = [s for s in config.symbols if s not in feed.symbols]
            if unknown:
                raise ValueError(f"synthetic feed has no symbols {unknown}")
            self._synthetic = feed
        elif feed is not None:
            self._set_replay(feed)
        ref_prices = dict(config.market.initial_prices)
        for sym, data in self._replay.items():
            if len(data):
                ref_prices[sym] = float(data.close[0] if isinstance(data, BarArrays) else data.price[0])
        self._instruments = sim_instruments(
            name, tuple(config.symbols), config.quote_asset,
            Decimal(repr(config.maker_fee)), Decimal(repr(config.taker_fee)), ref_prices,
        )
        self._ids = {sym: InstrumentId(name, sym) for sym in config.symbols}
        if feed is None and config.market.source == "synthetic":
            missing = [s for s in config.symbols if s not in config.market.initial_prices]
            if missing:
                raise ValueError(f"venues.sim.market.initial_prices has no price for {missing}")
            self._synthetic = SyntheticMarket(
                {s: float(config.market.initial_prices[s]) for s in config.symbols},
                config.market.seed, config.market.tick_interval_s,
                tick_sizes={s: float(self._instruments[self._ids[s]].tick_size) for s in config.symbols},
            )
        if self._synthetic is not None:
            self._restore_market(self._synthetic)
        self._account: SimAccount | None = None
        self._engines: dict[InstrumentId, MatchingEngine] = {}
        self._aggregators = {
            iid: BarAggregator(iid, config.market.bar_interval_s) for iid in self._instruments
        }
        self._public_trade_seq = dict.fromkeys(self._instruments, 0)
        self._started = False
        self._last_market_ns = -1
        self._replay_done = False
        self._rejected = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load (or create) the paper account and the matching engines."""
        self.start_nowait()

    def start_nowait(self) -> None:
        """`start` without the event loop (backtests)."""
        if self._started:
            return
        if self.config.market.source == "replay" and self._feed_arg is None and not self._replay:
            path = self.config.market.replay_file
            if not path:
                raise ValueError("venues.sim.market.replay_file must name a file when source = 'replay'")
            self._set_replay(load_market_file(path))
        self._account = self._load_account()
        for iid, inst in self._instruments.items():
            self._engines[iid] = MatchingEngine(
                inst, venue=self.name, maker_fee=inst.maker_fee, taker_fee=inst.taker_fee,
                trade_ids=self._account.trade_ids, order_ids=self._account.order_ids,
                ledger=self._account, bar_volume_fraction=self._bar_volume_fraction,
                trade_size_fraction=self._trade_size_fraction, slippage=self.slippage,
            )
        orphans: list[Event] = []
        for order in self._account.open_orders():
            engine = self._engines.get(order.instrument_id)
            if engine is not None:
                engine.restore(order)
                continue
            # A symbol dropped from the config: its orders can never fill; cancel them
            # like a venue does on delisting, and say so.
            order.status = OrderStatus.CANCELED
            order.reason = f"{order.instrument_id} is no longer listed by this venue"
            order.ts_ns = self._clock.time_ns()
            self._account.on_done(order)
            orphans.append(order.snapshot())
            log.warning("sim_order_canceled_unlisted", client_order_id=order.client_order_id,
                        instrument_id=str(order.instrument_id))
        self._started = True
        self._save()
        if orphans:
            self._publish(orphans)
        log.info("sim_venue_started", venue=self.name, mode=self.mode, symbols=list(self.config.symbols),
                 slippage_model=self.slippage.sha256[:16] if self.slippage is not None else None,
                 open_orders=len(self._account.open_orders()), persist=self._persist,
                 account=str(self._path) if self._path else None)

    async def run(self) -> None:
        """Produce market data until cancelled (synthetic) or until the replay ends."""
        self._require_started()
        if self._synthetic is not None:
            await self._run_synthetic(self._synthetic)
        else:
            await self._run_replay()
            self._replay_done = True
            log.info("sim_replay_finished", venue=self.name)
            await asyncio.Event().wait()

    async def stop(self) -> None:
        """Save the account and the synthetic market's state (nothing else to release)."""
        if self._started:
            self._save()
            self._save_market()
        self._started = False

    def health(self) -> Health:
        """Started, and (synthetic) producing data."""
        info: dict[str, object] = {
            "mode": self.mode,
            "open_orders": sum(len(e.open_orders()) for e in self._engines.values()),
            "last_market_ns": self._last_market_ns,
            "rejected": self._rejected,
        }
        if not self._started:
            return Health(False, "not started", info)
        if self._replay_done:
            return Health(True, "replay finished: no more market data", info)
        if self._synthetic is not None and self._last_market_ns >= 0:
            quiet_s = (self._clock.time_ns() - self._last_market_ns) / NS_PER_S
            limit_s = max(5.0, 5 * self.config.market.tick_interval_s)
            if quiet_s > limit_s:
                return Health(False, f"no synthetic trade for {quiet_s:.1f} s (limit {limit_s:.1f} s)", info)
        return Health(True, "", info)

    async def history_bars(self, instrument_id: InstrumentId, interval_s: int, n_bars: int) -> BarArrays:
        """Synthetic: a seeded past ending at the current price (see SyntheticMarket.history),
        generated in a worker thread. Replay: none (the file is the whole market)."""
        if self._synthetic is None or n_bars < 1:
            return BarArrays(np.empty(0, dtype=np.int64), *(np.empty(0) for _ in range(5)), interval_s)
        symbol = instrument_id.symbol
        if instrument_id not in self._instruments:
            raise ValueError(f"{self.name} has no instrument {instrument_id}")
        market, end_ns = self._synthetic, self._clock.time_ns()
        return await asyncio.get_running_loop().run_in_executor(
            None, market.history, symbol, end_ns, n_bars, interval_s)

    @property
    def mode(self) -> str:
        """'synthetic' or 'replay'."""
        return "synthetic" if self._synthetic is not None else "replay"

    def reconfigure(self, config: SimVenueConfig) -> None:
        """Apply the live-reloadable fields: fees, latency, reject rate."""
        self.config = config
        self._latency_s = config.latency_ms / 1000.0
        self._reject_rate = config.reject_rate
        maker, taker = Decimal(repr(config.maker_fee)), Decimal(repr(config.taker_fee))
        for engine in self._engines.values():
            engine.maker_fee = maker
            engine.taker_fee = taker

    # ------------------------------------------------------------ Venue protocol: reads

    def instruments(self) -> dict[InstrumentId, Instrument]:
        """Tradable instruments, by id."""
        return dict(self._instruments)

    async def query_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        """The venue's view of an order (also from before a restart), or None if never accepted."""
        await self._latency()
        return self.query_order_nowait(instrument_id, client_order_id)

    def query_order_nowait(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        """`query_order` without latency."""
        order = self._acct().orders.get(client_order_id)
        if order is None or order.instrument_id != instrument_id:
            return None
        return order.snapshot()

    async def open_orders(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Open orders (of one instrument, or all), oldest first."""
        await self._latency()
        return self.open_orders_nowait(instrument_id)

    def open_orders_nowait(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """`open_orders` without latency."""
        return [o.snapshot() for o in self._acct().open_orders()
                if instrument_id is None or o.instrument_id == instrument_id]

    async def fills_since(self, instrument_id: InstrumentId, since_ts_ns: int) -> list[VenueFill]:
        """Executions at or after `since_ts_ns`, oldest first."""
        await self._latency()
        return self.fills_since_nowait(instrument_id, since_ts_ns)

    def fills_since_nowait(self, instrument_id: InstrumentId, since_ts_ns: int) -> list[VenueFill]:
        """`fills_since` without latency."""
        return [f for f in self._acct().fills if f.instrument_id == instrument_id and f.ts_ns >= since_ts_ns]

    async def balances(self) -> dict[str, Balance]:
        """Account balances by asset."""
        await self._latency()
        return self.balances_nowait()

    def balances_nowait(self) -> dict[str, Balance]:
        """`balances` without latency."""
        return self._acct().balances()

    async def positions(self) -> dict[InstrumentId, Decimal]:
        """Spot venue: no derivative positions."""
        await self._latency()
        return {}

    # ------------------------------------------------------------ Venue protocol: requests

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        """Place an order after the configured latency (see `submit_order_nowait`)."""
        await self._latency()
        return self.submit_order_nowait(req)

    def submit_order_nowait(self, req: OrderRequest) -> VenueOrder:
        """Place an order now; returns the acknowledgement or raises OrderRejected.

        The ACCEPTED report is published before this returns (as a venue's user stream
        may beat its REST answer). A MARKET order fills on the next market event.
        """
        acct = self._acct()
        if req.client_order_id in acct.orders:
            self._refuse(req, CODE_NEW_ORDER_REJECTED, f"Duplicate order sent.: client order id {req.client_order_id}")
        engine = self._engines.get(req.instrument_id)
        if engine is None:
            self._refuse(req, CODE_INVALID_SYMBOL, f"Invalid symbol.: {req.instrument_id} is not listed on {self.name}")
        assert engine is not None
        if self._reject_rate > 0.0 and self._reject_rng.random() < self._reject_rate:
            self._refuse(req, CODE_INJECTED, f"injected rejection (venues.sim.reject_rate={self._reject_rate})")
        try:
            order = engine.accept(req, self._clock.time_ns())
        except OrderRejected as exc:
            self._rejected += 1
            # debug: the node's trade log writes the order_rejected line (reason and code included)
            log.debug("sim_order_rejected", client_order_id=req.client_order_id, code=exc.code, reason=exc.message)
            raise
        acct.add_order(order)
        snap = order.snapshot()
        self._emit((snap,))
        return snap

    async def cancel_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        """Cancel by client order id after the configured latency."""
        await self._latency()
        return self.cancel_order_nowait(instrument_id, client_order_id)

    def cancel_order_nowait(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        """Cancel now; OrderRejected -2011 when the order is unknown or already closed."""
        order = self._acct().orders.get(client_order_id)
        engine = self._engines.get(instrument_id)
        if order is None or order.instrument_id != instrument_id or engine is None:
            raise OrderRejected(self.name, f"Unknown order sent.: {client_order_id} on {instrument_id}", CODE_UNKNOWN_ORDER)
        snap = engine.cancel(client_order_id, self._clock.time_ns())
        if snap is None:
            raise OrderRejected(
                self.name, f"Unknown order sent.: {client_order_id} is already {order.status.value}", CODE_UNKNOWN_ORDER
            )
        self._emit((snap,))
        return snap

    async def cancel_all(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Cancel every open order (of one instrument, or all) after the configured latency."""
        await self._latency()
        return self.cancel_all_nowait(instrument_id)

    def cancel_all_nowait(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """`cancel_all` without latency."""
        now = self._clock.time_ns()
        out: list[VenueOrder] = []
        for iid, engine in self._engines.items():
            if instrument_id is not None and iid != instrument_id:
                continue
            for order in engine.open_orders():
                snap = engine.cancel(order.client_order_id, now)
                if snap is not None:
                    out.append(snap)
        if out:
            self._emit(out)
        return out

    # ------------------------------------------------------------ market data (sync fast paths)

    def step_bar(self, bar: Bar) -> None:
        """Match the bar, publish the resulting reports, then publish the bar."""
        events = self._engines[bar.instrument_id].on_bar(bar)
        if events:
            self._emit(events)
        self._last_market_ns = bar.ts_event_ns
        self._bus.publish(bar)

    def step_trade(
        self,
        instrument_id: InstrumentId,
        price: float,
        size: float,
        ts_ns: int,
        aggressor: Side | None = None,
        trade_id: str | None = None,
    ) -> None:
        """One public trade: publish the bar it closed, match, publish reports, then the TradeTick."""
        bar = self._aggregators[instrument_id].on_trade(price, size, ts_ns)
        if bar is not None:
            self._bus.publish(bar)
        events = self._engines[instrument_id].on_trade(price, size, ts_ns)
        if events:
            self._emit(events)
        if trade_id is None:
            seq = self._public_trade_seq[instrument_id] + 1
            self._public_trade_seq[instrument_id] = seq
            trade_id = str(seq)
        self._last_market_ns = ts_ns
        self._bus.publish(TradeTick(
            ts_event_ns=ts_ns, ts_init_ns=self._clock.time_ns(), instrument_id=instrument_id,
            price=price, size=size, aggressor=aggressor, trade_id=trade_id,
        ))

    def step_quote(
        self, instrument_id: InstrumentId, bid: float, bid_size: float, ask: float, ask_size: float, ts_ns: int
    ) -> None:
        """Record best bid/ask for post-only checks and publish the QuoteTick."""
        self._engines[instrument_id].set_quote(bid, ask)
        self._bus.publish(QuoteTick(
            ts_event_ns=ts_ns, ts_init_ns=self._clock.time_ns(), instrument_id=instrument_id,
            bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size,
        ))

    def flush_bars(self, now_ns: int) -> None:
        """Close and publish bars whose interval ended by `now_ns` (quiet markets)."""
        for agg in self._aggregators.values():
            bar = agg.flush(now_ns)
            if bar is not None:
                self._bus.publish(bar)

    # ------------------------------------------------------------ run loops

    async def _run_synthetic(self, market: SyntheticMarket) -> None:
        tick_s = self.config.market.tick_interval_s
        ids = [(sym, self._ids[sym]) for sym in self.config.symbols]
        save_ns = int(MARKET_SAVE_INTERVAL_S * NS_PER_S)
        while True:
            await self._clock.sleep(tick_s)
            now = self._clock.time_ns()
            if now - self._market_saved_ns >= save_ns:
                self._save_market()
            for sym, iid in ids:
                trade = market.next_trade(sym, now)
                quote = market.quote(sym)
                self._engines[iid].set_quote(quote.bid, quote.ask)
                self.step_trade(iid, trade.price, trade.size, now, trade.aggressor)
                self.step_quote(iid, quote.bid, quote.bid_size, quote.ask, quote.ask_size, now)

    async def _run_replay(self) -> None:
        speed = self.config.market.replay_speed
        streams = [(self._ids[sym], data) for sym, data in self._replay.items() if len(data)]
        if not streams:
            return
        first_known = min(_known_ns(data, 0) for _, data in streams)
        now = self._clock.time_ns()
        ival_ns = max((d.interval_ns for _, d in streams if isinstance(d, BarArrays)), default=0)
        # Rebase so the first item is known "now"; keep bars on their interval grid.
        offset = now - first_known
        if ival_ns:
            offset -= offset % ival_ns
        prev_known: int | None = None
        for known_ns, _, i, iid, data in heapq.merge(*(_items(iid, d, k) for k, (iid, d) in enumerate(streams))):
            if speed > 0.0 and prev_known is not None and known_ns > prev_known:
                await self._clock.sleep((known_ns - prev_known) / NS_PER_S / speed)
            else:
                await asyncio.sleep(0)
            prev_known = known_ns
            if isinstance(data, BarArrays):
                ts = int(data.ts_open_ns[i]) + offset
                self.step_bar(Bar(
                    ts_event_ns=ts, ts_init_ns=self._clock.time_ns(), instrument_id=iid,
                    interval_s=data.interval_s, open=float(data.open[i]), high=float(data.high[i]),
                    low=float(data.low[i]), close=float(data.close[i]), volume=float(data.volume[i]),
                ))
            else:
                self.step_trade(
                    iid, float(data.price[i]), float(data.size[i]), int(data.ts_ns[i]) + offset,
                    aggressor_side(int(data.aggressor[i])), str(data.trade_id[i]),
                )
        self.flush_bars(2**62)

    # ------------------------------------------------------------ internals

    def _set_replay(self, feed: ReplayData | Mapping[str, ReplayData]) -> None:
        if isinstance(feed, BarArrays | TradeArrays):
            # One recorded file drives the first configured symbol.
            self._replay = {self.config.symbols[0]: feed}
        else:
            unknown = [s for s in feed if s not in self.config.symbols]
            if unknown:
                raise ValueError(f"replay feed names symbols {unknown} not in venues.sim.symbols")
            self._replay = dict(feed)

    def _load_account(self) -> SimAccount:
        if self._persist and self._path is not None and self._path.exists():
            acct = SimAccount.load(self._path, self._instruments, self.name)
            log.info("sim_account_loaded", path=str(self._path), orders=len(acct.orders), fills=len(acct.fills))
            return acct
        balances = {a: Decimal(repr(v)) for a, v in self.config.initial_balances.items()}
        return SimAccount(balances, self._instruments, self.name)

    def _save(self) -> None:
        if self._persist and self._path is not None and self._account is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._account.save(self._path)

    def _restore_market(self, market: SyntheticMarket) -> None:
        """Continue the synthetic market from its saved state; a bad file → warning, start from the seed."""
        path = self._market_path
        if path is None or not path.exists():
            return
        try:
            restored = market.restore(read_market_state(path))
        except (DataError, ValueError) as exc:
            # The market is a simulation: a lost state costs a price jump, never the start.
            # Bad input loses nothing: the damaged file is moved aside before a save replaces
            # it; one that cannot be moved is never overwritten (no state is saved this run).
            try:
                aside = move_aside(path, self._clock.time_ns())
            except OSError as move_exc:
                self._market_path = None
                log.warning("sim_market_state_unusable", path=str(path), error=str(exc),
                            move_error=move_exc.strerror or str(move_exc),
                            action="starting the market from its seed; the damaged file stays where it is "
                                   "and the market state is not saved until the next start")
                return
            log.warning("sim_market_state_unusable", path=str(path), error=str(exc), moved_to=str(aside),
                        action="starting the market from its seed; the damaged file is kept at moved_to")
            return
        if not restored:
            log.info("sim_market_state_not_applied", path=str(path),
                     reason="saved for another seed or other symbols: the market starts from its seed")
            return
        log.info("sim_market_restored", path=str(path),
                 prices={sym: market.price(sym) for sym in restored})

    def _save_market(self) -> None:
        """Write the synthetic market's state; a failed write is a warning (trading goes on)."""
        if self._synthetic is None or self._market_path is None:
            return
        self._market_saved_ns = self._clock.time_ns()
        try:
            write_market_state(self._market_path, self._synthetic.state())
        except OSError as exc:
            log.warning("sim_market_state_not_saved", path=str(self._market_path),
                        error=exc.strerror or str(exc))

    def _emit(self, events: Sequence[Event]) -> None:
        """Persist, then publish reports and balance changes (what was published is on disk)."""
        self._save()
        self._publish(events)

    def _publish(self, events: Sequence[Event]) -> None:
        now = self._clock.time_ns()
        publish = self._bus.publish
        for e in events:
            if isinstance(e, VenueFill):
                publish(FillReport(ts_event_ns=e.ts_ns, ts_init_ns=now, venue=self.name, fill=e))
            else:
                publish(OrderStatusReport(ts_event_ns=e.ts_ns, ts_init_ns=now, venue=self.name, order=e))
        acct = self._account
        if acct is not None and acct.changed_assets:
            for asset in acct.take_changed_assets():
                b = acct.balance(asset)
                publish(BalanceUpdate(ts_event_ns=now, ts_init_ns=now, venue=self.name, asset=asset,
                                      free=b.free, locked=b.locked))

    def _refuse(self, req: OrderRequest, code: str, message: str) -> None:
        self._rejected += 1
        log.debug("sim_order_rejected", client_order_id=req.client_order_id, code=code, reason=message)
        raise OrderRejected(self.name, message, code)

    async def _latency(self) -> None:
        if self._latency_s > 0.0:
            await self._clock.sleep(self._latency_s)

    def _acct(self) -> SimAccount:
        if self._account is None:
            raise RuntimeError(f"venue {self.name} is not started")
        return self._account

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError(f"venue {self.name} is not started")


def _known_ns(data: ReplayData, i: int) -> int:
    """When item i became known: a bar at its close, a trade at its timestamp."""
    if isinstance(data, BarArrays):
        return int(data.ts_open_ns[i]) + data.interval_ns
    return int(data.ts_ns[i])


def _items(iid: InstrumentId, data: ReplayData, k: int) -> Iterator[tuple[int, int, int, InstrumentId, ReplayData]]:
    """(known_ns, stream index, row, id, data) for heapq.merge: (known_ns, stream, row) is unique."""
    known = (data.ts_open_ns + data.interval_ns) if isinstance(data, BarArrays) else data.ts_ns
    for i, ts in enumerate(known.tolist()):
        yield ts, k, i, iid, data
