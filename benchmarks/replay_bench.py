"""Replay throughput through the full engine path (strategy, router, risk, portfolio,
sim matching), measured against ../shared/bench/anchors in the same session.

Usage:
  python benchmarks/replay_bench.py [--anchors] [--reps 3]

Prints per case: bars (or trade events), fills, final equity, wall s, events/s, peak RSS.
With --anchors it also runs ../shared/bench/anchors/run_all.sh (plain, backtrader,
nautilus, vectorbt; venvs under /tmp/anchors) right after ours and prints the ratios.
Numbers, not pass/fail; the machine is noisy, so compare within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import structlog

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KLINES = SHARED / "fixtures" / "marketdata" / "binance_spot_klines_1m" / "BTCUSDT_1m_2025-03.csv"
TRADES = SHARED / "fixtures" / "marketdata" / "nautilus_trader" / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv"

sys.path.insert(0, str(REPO))
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

from nautilus_hmm.backtest import Backtest  # noqa: E402
from nautilus_hmm.config import load_config  # noqa: E402
from nautilus_hmm.marketdata.replay import BarArrays, load_bars, load_trades  # noqa: E402

ANCHOR_CFG = REPO / "research" / "configs" / "sma_cross_anchor.toml"


def tile(bars: BarArrays, times: int) -> BarArrays:
    """The month repeated `times` times back to back (as the anchors' x10 file)."""
    n = len(bars)
    step = n * bars.interval_ns
    ts = np.concatenate([bars.ts_open_ns + k * step for k in range(times)])
    rep = lambda a: np.tile(a, times)  # noqa: E731
    return BarArrays(ts, rep(bars.open), rep(bars.high), rep(bars.low), rep(bars.close), rep(bars.volume),
                     bars.interval_s)


def bench_bars(data: BarArrays | dict[str, BarArrays], reps: int) -> tuple[int, int, float, float]:
    """Median wall time of `reps` replays; returns (bars, fills, final equity, wall s)."""
    cfg = load_config(str(ANCHOR_CFG))
    if isinstance(data, dict):  # enough cash for 0.1 of every symbol at once
        sim = dataclasses.replace(cfg.venues.sim, initial_balances={"USDT": 100_000.0 * len(data)})
        cfg = dataclasses.replace(cfg, venues=dataclasses.replace(cfg.venues, sim=sim))
    walls, result = [], None
    for _ in range(reps):
        bt = Backtest(cfg, data)
        bars = bt.bars()
        result, _ = bt.run(bars)
        walls.append(result.wall_s)
    assert result is not None
    return result.bars, result.fills, result.final_equity, statistics.median(walls)


def bench_trades(n_symbols: int, reps: int) -> tuple[int, float]:
    """Trade events through the sim venue (bar aggregation, matching, bus, risk, engine, strategy)."""
    trades = load_trades(TRADES)
    cfg = load_config(str(ANCHOR_CFG))
    symbols = [f"S{i}USDT" for i in range(n_symbols)]
    base = load_bars(KLINES).slice(0, 2)
    walls = []
    n = 0
    for _ in range(reps):
        bt = Backtest(cfg, {s: base for s in symbols})
        venue = bt.venue
        ids = bt.ids
        ts = trades.ts_ns.tolist()
        px = trades.price.tolist()
        sz = trades.size.tolist()
        step = venue.step_trade
        set_time = bt.clock.set_time_ns
        t0 = time.perf_counter()
        n = 0
        start = max(ts[0], bt.clock.time_ns())
        for k in range(len(ts)):
            t = start + (ts[k] - ts[0])
            set_time(t)
            for iid in ids:
                step(iid, px[k], sz[k], t)
                n += 1
        walls.append(time.perf_counter() - t0)
    return n, statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--anchors", action="store_true", help="also run ../shared/bench/anchors/run_all.sh")
    args = ap.parse_args()
    month = load_bars(KLINES)
    print("# case bars fills final_equity wall_s bars_per_s  (median of", args.reps, ")")
    results = {}
    for name, data in (("btcusdt_1m_month", month), ("btcusdt_1m_month_x10", tile(month, 10)),
                       ("ten_symbols_month", {f"S{i}USDT": month for i in range(10)})):
        bars, fills, eq, wall = bench_bars(data, args.reps)
        results[name] = bars / wall
        print(f"nautilus_hmm {name} {bars} {fills} {eq:.2f} {wall:.4f} {bars / wall:.0f}")
    for k in (1, 10):
        n, wall = bench_trades(k, args.reps)
        print(f"nautilus_hmm trades_{k}_symbol(s) events={n} wall_s={wall:.4f} events_per_s={n / wall:.0f}")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
    if args.anchors:
        script = SHARED / "bench" / "anchors" / "run_all.sh"
        out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False).stdout
        print(out, end="")
        ours = {"44640": results["btcusdt_1m_month"], "446400": results["btcusdt_1m_month_x10"]}
        for line in out.splitlines():
            parts = line.split()
            if line.startswith("#") or len(parts) < 7 or parts[2] not in ours:
                continue
            their = float(parts[6])
            print(f"ratio nautilus_hmm/{parts[0]} bars={parts[2]}: {ours[parts[2]] / their:.3f}")


if __name__ == "__main__":
    main()
