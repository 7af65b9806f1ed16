"""Backtest = replay as fast as possible through the live engine path.

The same strategy, router, risk gate, execution engine and portfolio as the daemon run
here; only the transport differs: a ManualClock set to each bar's close, the sim venue
stepped synchronously (`step_bar`, `submit_order_nowait`), and an in-memory journal.
Convention (as backtrader, vectorbt and NautilusTrader are usually configured): a
signal on bar t's close is a MARKET order that fills at bar t+1's open.

Several strategies (`[[strategies]]`) run through the same router as the daemon, and with
more than one the same allocator (and bandit) rebalances their shares on the bar clock; each
strategy trades those of its instruments the data has (matched by symbol, on the sim venue).
Governance does not run here (its promotions and rollbacks need the live model service).

Outputs in `--out`: `fills.csv`, `equity.csv` (per bar), `summary.json`, and per strategy
`fills_by_strategy.csv` (every attributed fill and cross), `equity_by_strategy.csv`
(ts_ns, strategy_id, equity_usd, pnl_usd, capital_usd; per bar close) and `allocations.csv`
(ts_ns, strategy_id, share, source; every allocation change); then `report.html`
(nautilus_hmm.backtest_report: equity, drawdown, fills on price, per-strategy breakdown),
drawn from those files once they are all written.

Progress: `run(progress=...)` reports the bars replayed every CHUNK_BARS bars (a bar on a
terminal, lines otherwise: nautilus_hmm.obs.progress); the per-bar loop itself is untouched.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from nautilus_hmm.backtest_report import ReportError, prices_of, write_report
from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.schema import Config
from nautilus_hmm.control.allocation import ShareBounds
from nautilus_hmm.control.allocator import Allocator
from nautilus_hmm.control.bandit import BanditFeedback
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import DataError
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.marketdata.replay import BarArrays, TradeArrays, load_market_file
from nautilus_hmm.messages import AllocationChanged, Bar, Fill, FillAttributed
from nautilus_hmm.obs.progress import ProgressFactory, no_progress
from nautilus_hmm.strategies.base import Strategy
from nautilus_hmm.venues.sim.config import SimVenueConfig
from nautilus_hmm.venues.sim.factory import VENUE_NAME as SIM_VENUE
from nautilus_hmm.venues.sim.venue import SimVenue

log = structlog.get_logger("backtest")

SECONDS_PER_YEAR = 365.25 * 24 * 3600
CHUNK_BARS = 4096  # bars replayed between two progress updates


def sim_venue_config(cfg: Config) -> SimVenueConfig:
    """The sim venue's section of `cfg` (fees, balances, symbols): the venue a backtest replays through."""
    section: SimVenueConfig = getattr(cfg.venues, SIM_VENUE)
    return section


@dataclass(slots=True)
class BacktestResult:
    """Figures of one backtest run."""

    bars: int
    trades: int
    fills: int
    fees: float
    initial_equity: float
    final_equity: float
    return_pct: float
    max_drawdown_pct: float
    sharpe: float
    wall_s: float
    bars_per_s: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {k: getattr(self, k) for k in self.__slots__}


def _bars(data: BarArrays, iid: InstrumentId) -> list[Bar]:
    """Bar objects with ts_init_ns at the bar's close (when it becomes known)."""
    interval_s = int(data.interval_s)
    step = interval_s * 1_000_000_000
    ts = data.ts_open_ns.tolist()
    o, h, lo, c, v = (a.tolist() for a in (data.open, data.high, data.low, data.close, data.volume))
    return [Bar(ts_event_ns=ts[i], ts_init_ns=ts[i] + step, instrument_id=iid, interval_s=interval_s,
                open=o[i], high=h[i], low=lo[i], close=c[i], volume=v[i]) for i in range(len(ts))]


class Backtest:
    """One replay of bars (one or several symbols) through the engine."""

    def __init__(self, cfg: Config, data: BarArrays | TradeArrays | Mapping[str, BarArrays],
                 strategy: Strategy | None = None, instrument: str | None = None) -> None:
        if isinstance(data, TradeArrays):
            raise DataError(data.path or "<trades>", None,
                            "a trades file: backtests replay bars; aggregate the trades to klines first")
        multi = strategy is None and bool(cfg.strategies)
        if isinstance(data, BarArrays):
            first = cfg.strategies[0].instruments[0] if multi else cfg.strategy.instruments[0]
            iid = InstrumentId.parse(instrument or first)
            series = {iid.symbol: data}
        else:
            series = dict(data)
        intervals = {int(d.interval_s) for d in series.values()}
        if len(intervals) != 1:
            raise ValueError(f"every series must have the same bar interval, got {sorted(intervals)}")
        interval_s = intervals.pop()
        ids = tuple(InstrumentId(SIM_VENUE, sym) for sym in series)
        symbols = tuple(dict.fromkeys((*sim_venue_config(cfg).symbols, *series)))
        sim = dataclasses.replace(sim_venue_config(cfg), symbols=symbols)
        venues = dataclasses.replace(cfg.venues, **{SIM_VENUE: sim})
        # The strategies consume the data's bars, whatever the live bar length is.
        if multi:
            cfg = dataclasses.replace(cfg, venues=venues, strategies=self._replayed(cfg, series, interval_s))
        else:
            strat = dataclasses.replace(cfg.strategy, bar_interval_s=interval_s,
                                        instruments=tuple(str(i) for i in ids))
            cfg = dataclasses.replace(cfg, strategy=strat, venues=venues)
        self.cfg = cfg
        self.ids = ids
        self.iid = ids[0]
        self.series = series
        self.interval_s = interval_s
        first_ns = min(int(d.ts_open_ns[0]) for d in series.values())
        self.clock = ManualClock(start_ns=first_ns)
        self.bus = Bus()
        self.journal = Journal.open(":memory:")
        self.venue = self._venue(sim, series)
        self.stack: TradingStack = build_stack(cfg, self.bus, self.clock, self.journal, {SIM_VENUE: self.venue},
                                               durable=False, strategy=strategy)
        st = self.stack
        st.engine.add_instruments(self.venue.instruments().values())
        st.engine.choose_account_currency(ids)
        st.attach_market()
        for asset, bal in self.venue.balances_nowait().items():
            st.portfolio.set_cash(asset, bal.total, SIM_VENUE)
        st.portfolio.reset_peak()
        st.engine.reset_equity_peak()
        self.attributed: list[FillAttributed] = []
        self.allocations: list[AllocationChanged] = []
        self.bus.subscribe(FillAttributed, self.attributed.append, name="backtest")
        self.bus.subscribe(AllocationChanged, self.allocations.append, name="backtest")
        # With several strategies the allocator rebalances on the bar clock (no state file: a
        # backtest neither reads nor leaves an allocation or a bandit state).
        self.allocator: Allocator | None = None
        if len(st.strategies) > 1:
            control = cfg.control
            bandit = BanditFeedback(lambda: control.bandit, None)
            self.allocator = Allocator(lambda: control.allocator, self.clock, self.bus, st.router.pnl_series,
                                       self._share_bounds, st.router.set_shares, None, bandit,
                                       capital_usd=st.router.capital_usd)
            self.allocator.restore()
        st.attach_strategies()
        st.gate.set_state(TradingState.ACTIVE, "backtest", "backtest")
        self.fills: list[Fill] = []
        self.bus.subscribe(Fill, self.fills.append, name="backtest")
        self.strategy_equity: list[tuple[int, str, float, float, float]] = []

    def _venue(self, sim: SimVenueConfig, series: Mapping[str, BarArrays]) -> Any:
        """The started venue the replay trades on: the sim venue, stepped bar by bar (the tick
        replay, `research.tick_backtest`, returns its tick-level venue here instead)."""
        venue = SimVenue(sim, self.bus, self.clock, None, feed=series, persist=False)
        venue.start_nowait()
        return venue

    @staticmethod
    def _replayed(cfg: Config, series: Mapping[str, Any], interval_s: int) -> tuple[Any, ...]:
        """The [[strategies]] a replay of `series` runs: each on those of its instruments the data
        has (as sim instruments), at the data's bar interval; DataError when none trades any."""
        out = []
        for inst in cfg.strategies:
            keep = tuple(dict.fromkeys(f"{SIM_VENUE}:{InstrumentId.parse(i).symbol}" for i in inst.instruments
                                       if InstrumentId.parse(i).symbol in series))
            if keep:
                out.append(dataclasses.replace(inst, instruments=keep, bar_interval_s=interval_s))
            else:
                log.warning("backtest_strategy_without_data", strategy=inst.id, instruments=list(inst.instruments),
                            data=sorted(series))
        if not out:
            raise DataError("<data>", None, f"no strategy trades a symbol of the data ({', '.join(sorted(series))})")
        return tuple(out)

    def _share_bounds(self) -> dict[str, ShareBounds]:
        st = self.stack
        return {s.id: ShareBounds(s.min_share, s.max_share, s.weight)
                for s in st.instances.values() if s.enabled and s.id in st.strategies}

    def _sample_strategies(self, ts_ns: int) -> None:
        """Each strategy's equity, PnL and capital after the bars of `ts_ns`; the allocator's turn."""
        append = self.strategy_equity.append
        for sid, equity, pnl, capital in self.stack.router.equity_rows():
            append((ts_ns, sid, equity, pnl, capital))
        if self.allocator is not None:
            self.allocator.tick()

    def close(self) -> None:
        """Nothing left to release (kept for callers that close a run)."""

    def bars(self) -> list[Bar]:
        """Every bar of every series in the order they become known (close time, then symbol)."""
        per = [_bars(d, InstrumentId(SIM_VENUE, sym)) for sym, d in self.series.items()]
        if len(per) == 1:
            return per[0]
        return list(heapq.merge(*per, key=lambda b: b.ts_init_ns))

    def run(self, bars: list[Bar] | None = None,
            progress: ProgressFactory | None = None) -> tuple[BacktestResult, list[tuple[int, float]]]:
        """Replay every bar; returns the summary and the (close ts, equity) curve."""
        if bars is None:
            bars = self.bars()
        with (progress or no_progress)(len(bars), "backtest", "bars") as shown:
            return self._run(bars, shown.set)

    def _run(self, bars: list[Bar], shown: Any) -> tuple[BacktestResult, list[tuple[int, float]]]:
        clock, venue, eng = self.clock, self.venue, self.stack.engine.equity_book
        equity: list[tuple[int, float]] = []
        set_time = clock.set_time_ns
        step = venue.step_bar
        single = len(self.ids) == 1
        last_ts = -1
        append = equity.append
        t0 = time.perf_counter()
        sample = self._sample_strategies
        for lo in range(0, len(bars), CHUNK_BARS):
            chunk = bars[lo:lo + CHUNK_BARS]
            if single:  # one bar per timestamp: the equity after each bar
                for bar in chunk:
                    ts = bar.ts_init_ns
                    set_time(ts)
                    step(bar)
                    append((ts, eng.last_equity_f))
                    sample(ts)
            else:  # the equity once every symbol's bar of a timestamp is in
                for bar in chunk:
                    ts = bar.ts_init_ns
                    if ts != last_ts:
                        set_time(ts)
                        if last_ts >= 0:
                            append((last_ts, eng.last_equity_f))
                            sample(last_ts)
                        last_ts = ts
                    step(bar)
            shown(lo + len(chunk))
        if not single and last_ts >= 0:  # the last timestamp's equity
            append((last_ts, eng.last_equity_f))
            sample(last_ts)
        wall = time.perf_counter() - t0
        return self._summary(len(bars), wall, equity), equity

    def _summary(self, n_bars: int, wall_s: float, equity: list[tuple[int, float]]) -> BacktestResult:
        eq = [e for _, e in equity]
        start_cash = float(sim_venue_config(self.cfg).initial_balances.get(self.venue.instruments()[self.iid].quote_asset, 0))
        final = eq[-1] if eq else start_cash
        peak, mdd = -math.inf, 0.0
        for e in eq:
            peak = max(peak, e)
            if peak > 0:
                mdd = max(mdd, (peak - e) / peak * 100)
        rets = [eq[i] / eq[i - 1] - 1 for i in range(1, len(eq)) if eq[i - 1] > 0]
        sharpe = 0.0
        if len(rets) > 1:
            mean = sum(rets) / len(rets)
            var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
            if var > 0:
                per_year = SECONDS_PER_YEAR / float(self.interval_s)
                sharpe = mean / math.sqrt(var) * math.sqrt(per_year)
        fees = float(sum((f.fee for f in self.fills), 0))
        trades = sum(1 for f in self.fills if f.side.value == "SELL")
        return BacktestResult(
            bars=n_bars, trades=trades, fills=len(self.fills), fees=round(fees, 8),
            initial_equity=start_cash, final_equity=round(final, 2),
            return_pct=round((final / start_cash - 1) * 100, 6) if start_cash else 0.0,
            max_drawdown_pct=round(mdd, 6), sharpe=round(sharpe, 6), wall_s=round(wall_s, 6),
            bars_per_s=round(n_bars / wall_s, 1) if wall_s > 0 else 0.0,
        )

    def write(self, out_dir: Path, result: BacktestResult, equity: list[tuple[int, float]]) -> None:
        """fills.csv, equity.csv, summary.json and the per-strategy CSVs."""
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "fills.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ts_ns", "instrument_id", "client_order_id", "trade_id", "side", "qty", "price", "fee",
                        "fee_asset", "liquidity"])
            for x in self.fills:
                w.writerow([x.ts_event_ns, str(x.instrument_id), x.client_order_id, x.trade_id, x.side.value,
                            x.qty, x.price, x.fee, x.fee_asset, x.liquidity.value])
        with (out_dir / "equity.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ts_ns", "equity"])
            w.writerows((ts, f"{e:.8f}") for ts, e in equity)
        with (out_dir / "fills_by_strategy.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ts_ns", "strategy_id", "instrument_id", "kind", "qty", "price", "fee", "trade_id",
                        "client_order_id"])
            for a in self.attributed:
                w.writerow([a.ts_event_ns, a.strategy_id, str(a.instrument_id), a.kind, a.qty, a.price, a.fee,
                            a.trade_id, a.client_order_id])
        with (out_dir / "equity_by_strategy.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ts_ns", "strategy_id", "equity_usd", "pnl_usd", "capital_usd"])
            w.writerows((ts, sid, f"{eq:.8f}", f"{pnl:.8f}", f"{cap:.8f}")
                        for ts, sid, eq, pnl, cap in self.strategy_equity)
        with (out_dir / "allocations.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ts_ns", "strategy_id", "share", "source"])
            for m in self.allocations:
                w.writerows((m.ts_event_ns, sid, f"{share:.10f}", m.source) for sid, share in m.shares.items())
        (out_dir / "summary.json").write_bytes(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2))


def run_backtest(cfg: Config, data_path: str | Path, out_dir: str | Path | None = None,
                 strategy: Strategy | None = None, instrument: str | None = None, *,
                 progress: ProgressFactory | None = None, report: bool = True) -> BacktestResult:
    """Load a data file, replay it, write the outputs (and report.html unless `report` is False).

    Raises DataError for bad files; ReportError (carrying the result) when every CSV is
    written but report.html could not be."""
    data = load_market_file(Path(data_path))
    bt = Backtest(cfg, data, strategy, instrument)
    try:
        result, equity = bt.run(progress=progress)
        if out_dir is not None:
            bt.write(Path(out_dir), result, equity)
            if report:
                try:
                    write_report(out_dir, prices_of(bt.series, SIM_VENUE))
                except (DataError, OSError) as exc:
                    raise ReportError(f"report.html not written: {exc}", result) from exc
    finally:
        bt.close()
    return result
