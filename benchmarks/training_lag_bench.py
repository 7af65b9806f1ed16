"""Event-loop lag while the daemon trains a regime model: numbers, not pass/fail.

An in-process uvloop event loop runs a lag probe like the daemon's LoopLagMonitor (sleep
10 ms, measure how late it woke) while `ModelService` trains through its worker path
(spawned process started and awaited in an executor thread; registry writes and model
validation in executor threads; the hot swap of the new model on the loop) on the real
BTCUSDT 1m klines. Prints lag p50/p99/max before and during training and the wall time.
Goal: p99 < 5 ms during training.

Run: .venv/bin/python benchmarks/training_lag_bench.py [--klines PATH] [--window-bars 43200]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_KLINES = REPO.parent / "shared/fixtures/marketdata/binance_spot_klines_1m/BTCUSDT_1m_2025-03.csv"
PROBE_S = 0.010


class LagProbe:
    """Sleeps PROBE_S in a loop and records how late each wake-up was (seconds)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (t, lag)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            now = time.perf_counter()
            self.samples.append((now, max(0.0, now - t0 - PROBE_S)))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-probe")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def between(self, t0: float, t1: float) -> list[float]:
        return [lag for t, lag in self.samples if t0 <= t <= t1]


def quantile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def report(name: str, lags: list[float]) -> None:
    ms = [x * 1000 for x in lags]
    print(f"{name:<28} n={len(ms):>5}  p50={quantile(ms, 0.5):6.3f} ms  p99={quantile(ms, 0.99):6.3f} ms  "
          f"max={max(ms) if ms else float('nan'):7.3f} ms  mean={statistics.fmean(ms) if ms else float('nan'):6.3f} ms")


async def main(args: argparse.Namespace) -> None:
    from nautilus_hmm.config.loader import parse
    from nautilus_hmm.config.schema import Config
    from nautilus_hmm.core.bus import Bus
    from nautilus_hmm.core.clock import LiveClock
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.hmm.data import load_base_bars
    from nautilus_hmm.hmm.registry import ModelRegistry
    from nautilus_hmm.obs import logging as obs_logging
    from nautilus_hmm.strategies.base import StrategyContext
    from nautilus_hmm.strategies.hmm import HmmStrategy
    from nautilus_hmm.strategies.hmm_service import ModelService

    obs_logging.configure("warning", "console")
    cfg = parse(Config, {}).hmm
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, window_bars=args.window_bars))
    bars = load_base_bars(args.klines, cfg.train.base_interval_s)
    iid = InstrumentId("sim", "BTCUSDT")
    bus, clock = Bus(), LiveClock()
    strategy = HmmStrategy("hmm", (iid,), cfg)
    strategy.attach(bus, StrategyContext("hmm", bus, clock, lambda _: __import__("decimal").Decimal(0)))
    with tempfile.TemporaryDirectory() as tmp:
        svc = ModelService(cfg, ModelRegistry(Path(tmp) / "models"), strategy, bus, clock)
        await svc.start()
        svc.add_history(bars)
        probe = LagProbe()
        probe.start()
        await asyncio.sleep(1.0)
        t_idle = time.perf_counter()
        t0 = time.perf_counter()
        run_view = svc.request_retrain("benchmark")
        run = await svc.wait_training()
        t1 = time.perf_counter()
        await asyncio.sleep(0.2)
        probe.stop()
        await svc.stop()
    assert run is not None
    print(f"data: {args.klines} ({len(bars)} base bars; training window {run_view['bars'] or args.window_bars})")
    print(f"training: {run.status} in {t1 - t0:.2f} s wall (worker reported {run.duration_s} s); "
          f"model {run.model_id} -> {run.tag}")
    report("loop lag, idle (1 s)", probe.between(t_idle - 1.0, t_idle))
    report("loop lag, during training", probe.between(t0, t1))
    worst = sorted(((lag, t - t0) for t, lag in probe.samples if t0 <= t <= t1 + 0.2), reverse=True)[:3]
    print("worst wake-ups during training: " + ", ".join(f"{lag * 1000:.1f} ms at +{at:.2f} s" for lag, at in worst))
    if run.status != "ok":
        print(f"error: {run.error}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--klines", type=Path, default=DEFAULT_KLINES)
    p.add_argument("--window-bars", type=int, default=43_200)
    a = p.parse_args()
    import uvloop

    uvloop.run(main(a))
