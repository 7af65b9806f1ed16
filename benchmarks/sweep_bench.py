"""Sweep throughput on Dask: trials per minute with 1 and with 2 worker processes (numbers, not pass/fail).

The same plan (a small grid of `[hmm.train]` K values x one recorded month cut to --bars
bars x --folds walk-forward folds: real trainings, scoring and backtests through
`nautilus_hmm.research.sweep.run_trial`) runs on a fresh LocalCluster of 1 worker process,
then of 2. Each cluster is warmed first (every worker imports torch/pomegranate and runs one
throwaway trial), so the figure is the steady rate a long sweep sees, not process start-up;
the start-up is printed apart. Prints trials/min for each, the ratio, the mean per-trial
time, and the rate a cluster of N one-thread workers would reach if trials scale the same
way (N x 60 / per-trial seconds: trials share nothing but the scheduler).

Run: .venv/bin/python benchmarks/sweep_bench.py [--klines PATH] [--bars 14400] [--folds 3] [--k 2,3,4]
     [--cluster-workers 64]
The machine's other load counts: on a shared box, run it alone (and say so beside the figure).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_KLINES = REPO.parent / "shared" / "fixtures" / "marketdata" / "binance_spot_klines_1m" / "BTCUSDT_1m_2025-03.csv"
GRID = """
[sweep]
folds = {folds}
train_fraction = 0.5
[hmm.features]
return_horizons = [1, 4]
vol_windows = [8]
volume_window = 8
atr_window = 4
trend_window = 8
[hmm.train]
macro_interval_s = 1800
micro_interval_s = 300
macro_states = [{k}]
micro_states = 2
n_restarts = 1
max_iter = 20
min_bars_per_state = 20
min_regime_bars = 100
window_bars = 8000
"""


def _warm(trial: object) -> int:
    import pomegranate.hmm  # noqa: F401
    import torch  # noqa: F401

    return os.getpid()


def run(workers: int, plan: object, warm_plan: object, out: Path) -> dict[str, float]:
    from distributed import Client

    from nautilus_hmm.research import sweep

    t0 = time.perf_counter()
    with sweep.local_cluster(workers) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        start_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        # One throwaway trial per worker: imports, the data file's cache, torch's first call.
        client.gather([client.submit(sweep.run_trial, t, workers=[w], pure=False, key=f"warm-{i}")
                       for i, (t, w) in enumerate(zip(warm_plan.trials, client.scheduler_info()["workers"],
                                                       strict=False))])
        warm_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        summary = sweep.run_sweep(plan, out, client=client)
        wall = time.perf_counter() - t2
    rows = sweep.read_results(out / sweep.RESULTS_FILE)
    errors = [r["error"] for r in rows.values() if r["status"] != sweep.STATUS_OK]
    if errors:
        raise SystemExit(f"{len(errors)} trial(s) failed, the figure would be meaningless: {errors[0]}")
    per_trial = [float(r["duration_s"]) for r in rows.values()]
    return {"workers": workers, "trials": summary.ran, "failed": summary.failed, "wall_s": wall,
            "per_min": summary.ran / wall * 60.0, "trial_s": statistics.mean(per_trial), "start_s": start_s,
            "warm_s": warm_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--klines", type=Path, default=DEFAULT_KLINES)
    ap.add_argument("--bars", type=int, default=14400, help="first N bars of the file (default 10 days of 1m)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--k", default="2,3,4", help="macro K choices (the grid's settings)")
    ap.add_argument("--cluster-workers", type=int, default=64, help="workers of the extrapolated cluster")
    args = ap.parse_args()
    from nautilus_hmm.obs import logging as obs_logging
    from nautilus_hmm.research import sweep

    obs_logging.configure("error", "console")
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        data = tmpd / "BTCUSDT_1m_bench.csv"
        with args.klines.open() as fh:
            data.write_text("".join(next(fh) for _ in range(args.bars + 1)))
        grid_path = tmpd / "grid.toml"
        grid_path.write_text(GRID.format(folds=args.folds, k=args.k))
        plan = sweep.plan_sweep(sweep.load_grid(grid_path), [str(data)])
        # The warm-up trials: another seed, so they are not the measured ones.
        warm_grid = tmpd / "warm.toml"
        warm_grid.write_text(GRID.format(folds=2, k="2, 3").replace("micro_states = 2", "micro_states = 2\nseed = 99"))
        warm = sweep.plan_sweep(sweep.load_grid(warm_grid), [str(data)])
        print(f"sweep bench: {len(plan.trials)} trials ({sweep.load_grid(grid_path).n_settings} settings x 1 file "
              f"x {args.folds} folds) on {args.bars} bars of {args.klines.name}; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at start")
        results = [run(n, plan, warm, tmpd / f"out{n}") for n in (1, 2)]
    for r in results:
        print(f"  {r['workers']} worker(s): {r['trials']} trials ({r['failed']} failed) in {r['wall_s']:.1f} s = "
              f"{r['per_min']:.1f} trials/min; mean trial {r['trial_s']:.2f} s; cluster start {r['start_s']:.1f} s, "
              f"warm-up {r['warm_s']:.1f} s")
    one, two = results
    print(f"  speed-up 2 vs 1 worker: x{two['per_min'] / one['per_min']:.2f}")
    per_trial = statistics.mean([one["trial_s"], two["trial_s"]])
    print(f"  a cluster of {args.cluster_workers} one-thread workers at {per_trial:.2f} s per trial: "
          f"~{args.cluster_workers * 60.0 / per_trial:.0f} trials/min (trials share nothing; the scheduler's "
          "per-task overhead, ~1 ms, is negligible at this trial length)")
    print(f"  load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
