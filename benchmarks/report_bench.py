"""What progress and report.html cost a backtest (issue 11 item 6).

Usage:
  python benchmarks/report_bench.py [--reps 3] [--data FILE]

Prints, on the March 2025 BTCUSDT 1m month (44 640 bars):
* replay bars/s of the SMA anchor without progress and with progress lines (to a pipe-like
  buffer, as in CI), median of --reps runs each, interleaved, and their ratio;
* report.html: render seconds and size for the one-strategy anchor and for
  research/configs/three_strategies.toml (three strategies, per-strategy sections).
Numbers, not pass/fail; the machine is noisy, so compare within one run.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog

REPO = Path(__file__).resolve().parents[1]
KLINES = REPO.parent / "shared" / "fixtures" / "marketdata" / "binance_spot_klines_1m" / "BTCUSDT_1m_2025-03.csv"

sys.path.insert(0, str(REPO))
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

from nautilus_hmm.backtest import Backtest  # noqa: E402
from nautilus_hmm.backtest_report import prices_of, write_report  # noqa: E402
from nautilus_hmm.config import load_config  # noqa: E402
from nautilus_hmm.marketdata.replay import load_bars  # noqa: E402
from nautilus_hmm.obs.progress import progress_factory  # noqa: E402
from nautilus_hmm.venues.sim.factory import VENUE_NAME as SIM  # noqa: E402


def replay_bars_per_s(cfg_path: Path, data: object, progress: object) -> float:
    """One replay's bars/s (construction excluded)."""
    bt = Backtest(load_config(str(cfg_path)), data)
    bars = bt.bars()
    t0 = time.perf_counter()
    bt.run(bars, progress=progress)  # type: ignore[arg-type]
    return len(bars) / (time.perf_counter() - t0)


def report_figures(cfg_path: Path, data: object) -> tuple[float, int, int]:
    """(render s, report bytes, fills) of one backtest's report.html."""
    bt = Backtest(load_config(str(cfg_path)), data)
    result, equity = bt.run()
    with tempfile.TemporaryDirectory() as tmp:
        bt.write(Path(tmp), result, equity)
        t0 = time.perf_counter()
        path = write_report(tmp, prices_of(bt.series, SIM))
        return time.perf_counter() - t0, path.stat().st_size, result.fills


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data", type=Path, default=KLINES)
    args = ap.parse_args()
    data = load_bars(args.data)
    anchor = REPO / "research" / "configs" / "sma_cross_anchor.toml"
    three = REPO / "research" / "configs" / "three_strategies.toml"
    sink = io.StringIO()  # not a terminal: the plain-line form
    quiet, lines = [], []
    for _ in range(args.reps):
        quiet.append(replay_bars_per_s(anchor, data, None))
        lines.append(replay_bars_per_s(anchor, data, progress_factory(stream=sink)))
    q, ln = statistics.median(quiet), statistics.median(lines)
    print(f"replay {len(data)} bars (anchor), median of {args.reps}: no progress {q:,.0f} bars/s, "
          f"progress lines {ln:,.0f} bars/s (ratio {ln / q:.3f}); {len(sink.getvalue().splitlines())} lines written")
    for name, cfg in (("anchor (1 strategy)", anchor), ("three_strategies", three)):
        secs, size, fills = report_figures(cfg, data)
        print(f"report.html {name}: {secs:.2f} s to read the CSVs and render, {size / 1024:,.0f} KiB, {fills} fills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
