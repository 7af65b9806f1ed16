"""Control plane cost: many strategies through the router in one stack (issue 10's benchmark).

Three figures, numbers not pass/fail (the machine is shared and noisy: compare within one run):

1. Cost per bar from the bus to the order, with 1, 5 and 20 strategies over 10 instruments.
   The stack is the backtest's (`Backtest`: `bootstrap.build_stack` with the sim venue,
   `durable=False`, a ManualClock, an in-memory journal). Strategy k is
   sma_cross / breakout / mean_reversion in turn (parameters vary with k) and trades
   `--instruments-per-strategy` of the 10 instruments, round robin, so instruments are
   shared (netted by the router) from 4 strategies on. Each symbol replays the March 2025
   BTCUSDT month rotated by a different offset (so the symbols do not signal together).
   Per bar the sim venue matches it (fills reach the engine and the router first), then
   the Bar is published on the bus and timed: mark book, engine, router, every strategy,
   the router's netting, the engine's plan, the risk gate, the order at the venue.
   `publish_us` p50/p99 is that per bar; `to_order_us` p50/p99 is publish start -> the
   order's arrival at the venue (`submit_order_nowait`), per order; `us_per_order` is the
   total publish time divided by the orders. Each case runs in its own process. The
   allocator does not rebalance here (it ticks in `Backtest.run`): equal shares.
2. Replay throughput (bars/s) of the BTCUSDT month tiled x10 (446,400 bars; as
   benchmarks/replay_bench.py) with 5 strategies on BTCUSDT (one of them the SMA anchor),
   as a ratio to the 1-strategy SMA anchor and to NautilusTrader's anchor
   (../shared/bench/anchors/nautilus_nt.py with the venv /tmp/anchors/nautilus on
   /tmp/anchors/data/BTCUSDT_1m_x10.csv, the same bars) in the same run. `Backtest.run` as
   the CLI runs it: with several strategies the allocator and bandit rebalance on the bar
   clock: with [control.allocator] interval_s as configured (60 s: every 1m bar), hourly,
   and disabled (static weights: the router and the strategies alone).
3. Peak RSS (MB) after each case of 1 (its own process), and the 20-strategy delta over 1.

Usage:
  .venv/bin/python benchmarks/control_plane_bench.py [--strategies 1 5 20] [--timestamps 20000]
      [--reps 3] [--replay-bars N] [--slow-replay-bars N] [--skip-replay] [--skip-nautilus] [--quick] [--json FILE]

`--quick` = 4,000 timestamps (40,000 bars) per case, one replay rep, the 5-strategy replays
on the first 100,000 bars of the x10 file and the every-bar allocator case on the first
10,000 (about 4 minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import structlog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# replay_bench puts the repo on sys.path (and sets structlog to WARNING).
from replay_bench import ANCHOR_CFG, KLINES, SHARED, tile  # noqa: E402

# ERROR, not WARNING: a run's risk and router denials would be hundreds of lines; they are
# counted by reason from the bus instead (the `denials` column).
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

from nautilus_hmm.backtest import Backtest  # noqa: E402
from nautilus_hmm.config import load_config  # noqa: E402
from nautilus_hmm.config.schema import Config  # noqa: E402
from nautilus_hmm.marketdata.replay import BarArrays, load_bars  # noqa: E402
from nautilus_hmm.messages import RiskDenied, RouterDenied  # noqa: E402
from nautilus_hmm.strategies.config import (  # noqa: E402
    BreakoutParams,
    MeanReversionParams,
    SmaCrossParams,
    StrategyConfig,
    StrategyInstanceConfig,
)

N_INSTRUMENTS = 10
KINDS = ("sma_cross", "breakout", "mean_reversion")
NT_PYTHON = Path("/tmp/anchors/nautilus/bin/python")
NT_SCRIPT = SHARED / "bench" / "anchors" / "nautilus_nt.py"
NT_DATA = Path("/tmp/anchors/data/BTCUSDT_1m_x10.csv")
WARMUP_TIMESTAMPS = 200  # bars before the slowest window fills are not timed


def quantile(values: list[float], q: float) -> float:
    """sorted[int(q * (n - 1))] (as tick_to_order_bench and the floor); nan when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[int(q * (len(s) - 1))]


def rss_mb() -> float:
    """Peak RSS of this process so far (MB): VmHWM on Linux, which starts afresh at exec
    (ru_maxrss does not: a child starts with its parent's peak at fork), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass  # not Linux: ru_maxrss (may include the parent's peak)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_denials(bus: Any) -> dict[str, int]:
    """Risk and router denials published on `bus` from now on, by 'risk:<reason>' / 'router:<reason>'."""
    counts: dict[str, int] = {}

    def on(m: Any) -> None:
        key = f"{'risk' if isinstance(m, RiskDenied) else 'router'}:{m.reason}"
        counts[key] = counts.get(key, 0) + 1

    bus.subscribe(RiskDenied, on, name="bench:denials")
    bus.subscribe(RouterDenied, on, name="bench:denials:router")
    return counts


def instance(k: int, instruments: tuple[str, ...], exposure: float, interval_s: int) -> StrategyInstanceConfig:
    """Strategy k of the mix: the kind cycles, the windows vary with k (so no two decide alike)."""
    kind = KINDS[k % len(KINDS)]
    j = k // len(KINDS)
    return StrategyInstanceConfig(
        id=f"{kind.replace('_', '')[:8]}{k}", kind=kind, instruments=instruments, bar_interval_s=interval_s,
        sma_cross=SmaCrossParams(fast=10 + 3 * j, slow=40 + 7 * j, exposure=exposure),
        breakout=BreakoutParams(lookback=20 + 3 * j, exit_lookback=10 + j, exposure=exposure),
        mean_reversion=MeanReversionParams(window=20 + 3 * j, entry_z=2.0, exit_z=0.5, exposure=exposure),
    )


def with_strategies(base: Config, strategies: tuple[StrategyInstanceConfig, ...], cash_usd: float) -> Config:
    """`base` (the SMA anchor's venue, fees and open risk limits) with `[[strategies]]` instead of [strategy]."""
    sim = dataclasses.replace(base.venues.sim, initial_balances={"USDT": cash_usd})
    return dataclasses.replace(base, strategy=StrategyConfig(), strategies=strategies,
                               venues=dataclasses.replace(base.venues, sim=sim))


def ten_symbols(month: BarArrays, n_bars: int) -> dict[str, BarArrays]:
    """N_INSTRUMENTS series of `n_bars`: the month's prices rotated by a different offset each."""
    out = {}
    step = len(month) // N_INSTRUMENTS
    for i in range(N_INSTRUMENTS):
        roll = lambda a, s=i * step: np.roll(a, -s)[:n_bars]  # noqa: E731
        out[f"S{i}USDT"] = BarArrays(month.ts_open_ns[:n_bars], roll(month.open), roll(month.high),
                                     roll(month.low), roll(month.close), roll(month.volume), month.interval_s)
    return out


# ---------------------------------------------------------------- 1 and 3: one case per process


def run_case(n_strategies: int, n_timestamps: int, per_strategy: int) -> dict[str, Any]:
    """Bars of 10 instruments through the backtest's stack with `n_strategies`; timings and RSS."""
    month = load_bars(KLINES)
    series = ten_symbols(month, n_timestamps)
    symbols = list(series)
    interval_s = int(month.interval_s)
    exposure = round(0.9 / per_strategy, 6)  # a strategy long everywhere holds 90% of its capital
    strategies = tuple(
        instance(k, tuple(f"sim:{symbols[(k * per_strategy + j) % N_INSTRUMENTS]}" for j in range(per_strategy)),
                 exposure, interval_s)
        for k in range(n_strategies))
    cfg = with_strategies(load_config(str(ANCHOR_CFG)), strategies, 100_000.0 * N_INSTRUMENTS)
    bt = Backtest(cfg, series)
    denials = count_denials(bt.bus)
    bars = bt.bars()
    venue, bus, set_time = bt.venue, bt.bus, bt.clock.set_time_ns
    # The venue's step_bar, split so that the clock covers only the Bar's publish: the
    # matching and its fill reports (engine booking, router attribution) run before it.
    engines, emit, publish = venue._engines, venue._emit, bus.publish
    submit = venue.submit_order_nowait
    order_ns: list[int] = []

    def timed_submit(req: Any) -> Any:
        order_ns.append(time.perf_counter_ns())
        return submit(req)

    venue.submit_order_nowait = timed_submit  # the engine calls it through its venues mapping
    perf = time.perf_counter_ns
    publish_ns: list[int] = []
    to_order_ns: list[int] = []
    match_ns = 0
    warm = WARMUP_TIMESTAMPS * N_INSTRUMENTS
    orders_in_publish = orders_outside = n_after = bars_with_orders = max_orders_per_bar = 0
    last_ts = -1
    gc.collect()
    t_run = perf()
    for i, bar in enumerate(bars):
        ts = bar.ts_init_ns
        if ts != last_ts:
            set_time(ts)
            last_ts = ts
        m0 = perf()
        events = engines[bar.instrument_id].on_bar(bar)
        if events:
            emit(events)
        venue._last_market_ns = bar.ts_event_ns
        n_before = len(order_ns)
        if i >= warm:  # an order planned on a fill (a deferred plan): not the bar's
            orders_outside += n_before - n_after
        t0 = perf()
        publish(bar)
        t1 = perf()
        if i >= warm:
            match_ns += t0 - m0
            publish_ns.append(t1 - t0)
            new = order_ns[n_before:]
            orders_in_publish += len(new)
            if new:
                bars_with_orders += 1
                max_orders_per_bar = max(max_orders_per_bar, len(new))
            to_order_ns.extend(t - t0 for t in new)
        n_after = len(order_ns)
    wall_s = (perf() - t_run) / 1e9
    bt.close()
    pub_us = [x / 1000 for x in publish_ns]
    lat_us = [x / 1000 for x in to_order_ns]
    timed = len(publish_ns)
    total_pub_us = sum(pub_us)
    router = bt.stack.router
    return {
        "strategies": n_strategies, "instruments": N_INSTRUMENTS, "instruments_per_strategy": per_strategy,
        "bars": len(bars), "timed_bars": timed, "orders": len(order_ns), "timed_orders": orders_in_publish,
        "timed_orders_outside_publish": orders_outside, "bars_with_orders": bars_with_orders,
        "max_orders_per_bar": max_orders_per_bar, "denials": denials,
        "fills": len(bt.fills),
        "strategy_fills": sum(router.stats(sid).fills for sid in bt.stack.strategies),
        "publish_us_p50": quantile(pub_us, 0.5), "publish_us_p99": quantile(pub_us, 0.99),
        "publish_us_mean": total_pub_us / timed if timed else float("nan"),
        "to_order_us_p50": quantile(lat_us, 0.5), "to_order_us_p99": quantile(lat_us, 0.99),
        "us_per_order": total_pub_us / orders_in_publish if orders_in_publish else float("nan"),
        "match_us_mean": match_ns / 1000 / timed if timed else float("nan"),
        "wall_s": wall_s, "final_equity": bt.stack.engine.equity_book.last_equity_f,
        "peak_rss_mb": rss_mb(),
    }


def case_in_subprocess(n: int, n_timestamps: int, per_strategy: int) -> dict[str, Any]:
    """`run_case` in a fresh interpreter (its own peak RSS)."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "case", str(n), str(n_timestamps),
                          str(per_strategy)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"case {n} failed (exit {out.returncode}): {out.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------- 2: replay throughput


def five_on_btc(interval_s: int) -> tuple[StrategyInstanceConfig, ...]:
    """The SMA anchor (20/60, 0.1 fixed) and four others on sim:BTCUSDT (exposure 0.2 of their capital each)."""
    iid = ("sim:BTCUSDT",)
    anchor = StrategyInstanceConfig(id="anchor", kind="sma_cross", instruments=iid, bar_interval_s=interval_s,
                                    sma_cross=SmaCrossParams(fast=20, slow=60, quantity=Decimal("0.1")))
    others = tuple(instance(k, iid, 0.2, interval_s) for k in range(3))
    slow_sma = StrategyInstanceConfig(id="smaslow", kind="sma_cross", instruments=iid, bar_interval_s=interval_s,
                                      sma_cross=SmaCrossParams(fast=50, slow=200, exposure=0.2))
    return (anchor, *others, slow_sma)


def with_allocator(cfg: Config, **changes: Any) -> Config:
    """`cfg` with these [control.allocator] settings replaced."""
    allocator = dataclasses.replace(cfg.control.allocator, **changes)
    return dataclasses.replace(cfg, control=dataclasses.replace(cfg.control, allocator=allocator))


def replay(cfg: Config, data: BarArrays, reps: int) -> tuple[int, int, float, float, dict[str, int]]:
    """Median wall of `reps` Backtest runs; (bars, fills, final equity, wall s, denials of the last)."""
    walls, result, denials = [], None, {}
    for _ in range(reps):
        bt = Backtest(cfg, data)
        denials = count_denials(bt.bus)
        bars = bt.bars()
        gc.collect()
        try:
            result, _ = bt.run(bars)
        finally:
            bt.close()  # the run's scratch directory (allocator and bandit state)
        walls.append(result.wall_s)
    assert result is not None
    return result.bars, result.fills, result.final_equity, statistics.median(walls), denials


def run_nautilus(reps: int) -> tuple[str, float] | None:
    """NautilusTrader's anchor on the x10 file, median bars/s of `reps`; None (said why) when unavailable."""
    if not NT_PYTHON.exists() or not NT_DATA.exists():
        print(f"# nautilus anchor skipped: {NT_PYTHON} or {NT_DATA} missing (run {NT_SCRIPT.parent}/run_all.sh "
              "nautilus once)")
        return None
    rates, line = [], ""
    for _ in range(reps):
        out = subprocess.run([str(NT_PYTHON), str(NT_SCRIPT), str(NT_DATA)], capture_output=True, text=True,
                             check=False)
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            print(f"# nautilus anchor failed (exit {out.returncode}): {out.stderr.strip()[-500:]}")
            return None
        line = lines[-1]
        rates.append(float(line.split()[6]))
    return line, statistics.median(rates)


# ---------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with `case`, one case of part 1 as JSON)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["case"]:
        print(json.dumps(run_case(int(argv[1]), int(argv[2]), int(argv[3]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strategies", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--timestamps", type=int, default=20_000, help="bar timestamps per case (x10 instruments)")
    ap.add_argument("--instruments-per-strategy", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3, help="replay reps (median), part 2")
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--skip-nautilus", action="store_true")
    ap.add_argument("--replay-bars", type=int, default=0,
                    help="bars of the x10 file the other 5-strategy replays replay (0 = all)")
    ap.add_argument("--slow-replay-bars", type=int, default=0,
                    help="bars of the x10 file the 5-strategy replay with the configured allocator interval "
                         "replays (0 = all; at one rebalance per bar that takes long)")
    ap.add_argument("--quick", action="store_true",
                    help="4,000 timestamps per case, one replay rep, --replay-bars 100000 "
                         "--slow-replay-bars 10000")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.timestamps, args.reps = min(args.timestamps, 4_000), 1
        args.replay_bars = args.replay_bars or 100_000
        args.slow_replay_bars = args.slow_replay_bars or 10_000
    results: dict[str, Any] = {"args": vars(args)}

    print(f"# 1. bar -> order, {N_INSTRUMENTS} instruments, {args.instruments_per_strategy} per strategy, "
          f"{args.timestamps} timestamps (first {WARMUP_TIMESTAMPS} untimed); one process per case; µs")
    print(f"# {'strategies':>10} {'bars':>6} {'orders':>6} {'fills':>6} {'publish p50':>11} {'p99':>7} {'mean':>6} "
          f"{'to_order p50':>12} {'p99':>7} {'per_order':>9} {'match':>6} {'max_ord/bar':>11} {'rss_mb':>6}  denials")
    cases = {}
    for n in args.strategies:
        r = case_in_subprocess(n, args.timestamps, args.instruments_per_strategy)
        cases[n] = r
        print(f"  {n:>10} {r['bars']:>6} {r['orders']:>6} {r['fills']:>6} {r['publish_us_p50']:>11.1f} "
              f"{r['publish_us_p99']:>7.1f} {r['publish_us_mean']:>6.1f} {r['to_order_us_p50']:>12.1f} "
              f"{r['to_order_us_p99']:>7.1f} {r['us_per_order']:>9.1f} {r['match_us_mean']:>6.1f} "
              f"{r['max_orders_per_bar']:>11} {r['peak_rss_mb']:>6.1f}  {r['denials'] or '-'}", flush=True)
    results["bar_to_order"] = cases

    print("# 3. peak RSS after the run (MB, VmHWM), each case its own process")
    for n, r in cases.items():
        print(f"  strategies={n} peak_rss_mb={r['peak_rss_mb']:.1f}")
    if 1 in cases:
        for n, r in cases.items():
            if n != 1:
                print(f"  delta strategies={n} over 1: {r['peak_rss_mb'] - cases[1]['peak_rss_mb']:+.1f} MB "
                      f"({(r['peak_rss_mb'] - cases[1]['peak_rss_mb']) / (n - 1):.2f} MB per extra strategy)")

    if not args.skip_replay:
        print(f"# 2. replay BTCUSDT 1m x10 (median of {args.reps}); NautilusTrader first, before this "
              "process holds the bars (a child's own peak RSS then stays its own)")
        print("# engine case bars fills final_equity wall_s bars_per_s")
        nt = None if args.skip_nautilus else run_nautilus(args.reps)
        if nt is not None:
            print(f"  {nt[0]}  (its columns: version bars trades final_equity wall_s bars_per_s peak_rss_mb "
                  "import_s)", flush=True)
        month = load_bars(KLINES)
        x10 = tile(month, 10)
        anchor = load_config(str(ANCHOR_CFG))
        five = with_strategies(anchor, five_on_btc(int(month.interval_s)), 100_000.0)
        hourly = with_allocator(five, interval_s=3600.0)
        static = with_allocator(five, interval_s=3600.0, enabled=False)
        fast_bars = args.replay_bars or len(x10)
        slow_bars = args.slow_replay_bars or len(x10)
        rates = {}
        # The allocator as configured (interval_s 60 = every 1m bar) is the slow case: it may
        # replay only the first `--slow-replay-bars` bars (bars/s stays comparable).
        for name, cfg, data in (
                ("1_strategy_sma_anchor", anchor, x10),
                ("5_strategies_static_weights", static, x10.slice(0, fast_bars)),
                ("5_strategies_alloc_3600s", hourly, x10.slice(0, fast_bars)),
                (f"5_strategies_alloc_{five.control.allocator.interval_s:g}s", five, x10.slice(0, slow_bars))):
            bars, fills, eq, wall, denials = replay(cfg, data, args.reps)
            rates[name] = bars / wall
            print(f"  nautilus_hmm {name} {bars} {fills} {eq:.2f} {wall:.3f} {bars / wall:.0f}  "
                  f"denials={denials or '-'}", flush=True)
        one = rates.pop("1_strategy_sma_anchor")
        results["replay"] = {"bars_per_s": {"1_strategy_sma_anchor": one, **rates}}
        for name, rate in rates.items():
            print(f"  ratio {name}/1_strategy: {rate / one:.3f}")
            results["replay"][f"ratio_{name}_to_1"] = rate / one
        if nt is not None:
            for name, rate in (("1_strategy_sma_anchor", one), *rates.items()):
                print(f"  ratio nautilus_hmm {name}/nautilus_trader: {rate / nt[1]:.3f}")
            results["replay"]["nautilus_trader_bars_per_s"] = nt[1]
    print(f"peak_rss_mb(driver)={rss_mb():.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
