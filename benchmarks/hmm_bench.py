"""Regime-model benchmarks: numbers, not pass/fail.

1. Online cost per bar: FeatureEngine.update and ForwardFilter.update for K = 2..8 with
   D = the default feature count (full covariances).
2. Training: pomegranate (our fit_hmm: chunked Baum-Welch, float64) against hmmlearn on
   the same standardised features of the real BTCUSDT 1m klines, same K, same starting
   parameters (our seeded k-means++), same iteration budget (convergence check off),
   same (negligible) covariance regularisation. Both final models are scored with the
   numpy forward filter.
3. End to end: train_model on the whole month with the default [hmm.train] settings.
4. HmmStrategy on the bus: cost per 1m bar (tracker + policy + telemetry), alone and with
   a shadow canary; hot-swap warm-up time and its longest step on the loop (needs the
   model of [3], or --model PATH with --skip-e2e).

Run: .venv/bin/python benchmarks/hmm_bench.py [--klines PATH] [--iters 20] [--k 3] [--skip-e2e] [--model PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nautilus_hmm.hmm.bars import BarArrays  # noqa: E402
from nautilus_hmm.hmm.config import HmmTrainConfig  # noqa: E402
from nautilus_hmm.hmm.features import FeatureEngine, FeatureSpec, Scaler, compute_batch  # noqa: E402
from nautilus_hmm.hmm.filter import ForwardFilter  # noqa: E402

DEFAULT_KLINES = REPO.parent / "shared/fixtures/marketdata/binance_spot_klines_1m/BTCUSDT_1m_2025-03.csv"


def read_klines(path: Path) -> BarArrays:
    """Header timestamp,open,high,low,close,volume with UTC timestamps."""
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str)
    ts = raw[:, 0].astype("datetime64[ns]").astype(np.int64)
    c = raw[:, 1:].astype(np.float64)
    return BarArrays(ts, c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 4])


def random_params(k: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    trans = rng.dirichlet(np.ones(k), size=k) + 5 * np.eye(k)
    trans /= trans.sum(axis=1, keepdims=True)
    m = rng.normal(size=(k, d, d))
    covars = m @ m.transpose(0, 2, 1) / d + 0.5 * np.eye(d)
    return np.full(k, 1.0 / k), trans, rng.normal(size=(k, d)), covars


def bench_online(bars: BarArrays, n: int = 20_000) -> None:
    spec = FeatureSpec()
    d = spec.n_features
    eng = FeatureEngine(spec)
    part = bars.slice(0, n)
    cols = [part.open.tolist(), part.high.tolist(), part.low.tolist(), part.close.tolist(), part.volume.tolist()]
    t = time.perf_counter()
    for o, h, lo, c, v in zip(*cols, strict=True):
        eng.update(o, h, lo, c, v)
    feat_us = (time.perf_counter() - t) / n * 1e6
    print(f"\n[1] online cost per bar (D = {d} features, {n} bars each)")
    print(f"    FeatureEngine.update               {feat_us:7.2f} us/bar")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    for k in range(2, 9):
        f = ForwardFilter(*random_params(k, d, rng))
        t = time.perf_counter()
        for row in x:
            f.update(row)
        us = (time.perf_counter() - t) / n * 1e6
        print(f"    ForwardFilter.update  K={k}          {us:7.2f} us/bar")


def bench_training(bars: BarArrays, k: int, iters: int) -> None:
    from hmmlearn.hmm import GaussianHMM

    from nautilus_hmm.hmm.train import _initial_params, fit_hmm

    spec = FeatureSpec()
    raw = compute_batch(spec, bars)[spec.warmup_bars:]
    z = Scaler.fit(raw).transform(raw)
    # Regularisation matched: hmmlearn's M-step has no floor (covars_prior=0 here), so ours
    # runs with a negligible min_covar; the default 1e-3 floor is reported apart.
    cfg = dataclasses.replace(HmmTrainConfig(), n_restarts=1, max_iter=iters, tol=-np.inf,
                              covariance_type="full", min_covar=1e-9)
    print(f"\n[2] training on {z.shape[0]} x {z.shape[1]} standardised 1m features, K={k}, "
          f"{iters} EM iterations, full covariance, same k-means++ start (seed {cfg.seed})")
    t = time.perf_counter()
    import torch

    import_s = time.perf_counter() - t
    torch.set_num_threads(1)
    t = time.perf_counter()
    ours = fit_hmm([z], k, cfg, "bench")
    pg_s = time.perf_counter() - t
    floored = fit_hmm([z], k, dataclasses.replace(cfg, min_covar=HmmTrainConfig().min_covar), "bench")

    start, trans, means, covars = _initial_params([z], k, cfg, np.random.default_rng(cfg.seed))
    ref = GaussianHMM(n_components=k, covariance_type="full", n_iter=iters, tol=-np.inf,
                      covars_prior=0.0, init_params="", params="stmc", implementation="log")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = start, trans, means, covars
    t = time.perf_counter()
    ref.fit(z)
    hl_s = time.perf_counter() - t
    _, hl_ll = ForwardFilter(ref.startprob_, ref.transmat_, ref.means_, ref.covars_).filter_sequence(z)

    print(f"    torch + pomegranate import          {import_s:7.2f} s (once per worker)")
    print(f"    pomegranate (chunk_bars={cfg.chunk_bars})       {pg_s:7.2f} s   loglik {ours.log_likelihood:14.2f}"
          f"   ({ours.n_iter} iterations)")
    print(f"    hmmlearn                            {hl_s:7.2f} s   loglik {hl_ll:14.2f}"
          f"   ({ref.monitor_.iter} iterations)")
    print(f"    time ratio pomegranate / hmmlearn   {pg_s / hl_s:7.2f}x")
    print(f"    loglik difference (ours - hmmlearn) {ours.log_likelihood - hl_ll:+.2f} "
          f"({(ours.log_likelihood - hl_ll) / z.shape[0]:+.5f} per bar)")
    print(f"    ours with the default min_covar {HmmTrainConfig().min_covar:g}: loglik "
          f"{floored.log_likelihood:.2f} (the price of the covariance floor)")


def bench_strategy(bars: BarArrays, model: object, n: int = 20_000) -> None:
    from decimal import Decimal

    from nautilus_hmm.control.strategy import StrategyContext
    from nautilus_hmm.core.bus import Bus
    from nautilus_hmm.core.clock import ManualClock
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.hmm.config import HmmConfig
    from nautilus_hmm.hmm.strategy import HmmStrategy
    from nautilus_hmm.messages import Bar

    iid = InstrumentId("sim", "BTCUSDT")
    part = bars.slice(0, n)
    msgs = [Bar(ts_event_ns=int(part.ts_ns[i]), ts_init_ns=int(part.ts_ns[i]) + 60 * 10**9, instrument_id=iid,
                interval_s=60, open=float(part.open[i]), high=float(part.high[i]), low=float(part.low[i]),
                close=float(part.close[i]), volume=float(part.volume[i])) for i in range(n)]
    print(f"\n[4] HmmStrategy on the bus, {n} 1m bars (decisions every 5 m, telemetry published)")
    for label, canary in (("production only", None), ("+ shadow canary", model)):
        bus, clock = Bus(), ManualClock(int(part.ts_ns[0]))
        st = HmmStrategy("hmm", (iid,), HmmConfig(), model, "m", canary=canary, canary_id="c")  # type: ignore[arg-type]
        st.attach(bus, StrategyContext("hmm", bus, clock, lambda _: Decimal(0)))
        t = time.perf_counter()
        for m in msgs:
            clock.set_time_ns(m.ts_init_ns)
            bus.publish(m)
        us = (time.perf_counter() - t) / n * 1e6
        print(f"    {label:<20} {us:7.2f} us/bar")
    snapshot = st.history_snapshot()
    t = time.perf_counter()
    worst = 0.0
    last = t
    for _ in HmmStrategy.prepare_steps(model, "x", snapshot):  # type: ignore[arg-type]
        now = time.perf_counter()
        worst = max(worst, now - last)
        last = now
    total = time.perf_counter() - t
    print(f"    hot-swap warm-up on {len(snapshot[iid])} history bars: {total * 1000:.1f} ms in steps, "
          f"longest step {worst * 1000:.2f} ms (the loop is free between steps)")


def bench_end_to_end(bars: BarArrays) -> object:
    from nautilus_hmm.hmm.train import train_model

    cfg = HmmTrainConfig()
    t = time.perf_counter()
    model = train_model(bars, FeatureSpec(), cfg)
    s = time.perf_counter() - t
    print(f"\n[3] train_model, default [hmm.train] on {len(bars)} 1m bars "
          f"({cfg.macro_interval_s} s macro K={cfg.macro_states}, {cfg.micro_interval_s} s micro "
          f"K={cfg.micro_states}, {cfg.n_restarts} restarts, max {cfg.max_iter} iterations): {s:.1f} s")
    h = model.macro.hmm
    print(f"    macro: loglik {h.fit.log_likelihood:.1f} BIC {h.fit.bic:.1f} iters {h.fit.n_iter} "
          f"converged {h.fit.converged}")
    for i, m in enumerate(model.micro.hmms):
        print(f"    micro[{i}] ({h.labels[i]}): n_obs {m.fit.n_obs} loglik {m.fit.log_likelihood:.1f} "
              f"iters {m.fit.n_iter} converged {m.fit.converged} source {m.fit.source}")
    return model


def main() -> None:
    """Run the benchmarks and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--klines", type=Path, default=DEFAULT_KLINES)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--model", type=Path, help="model file for [4] when [3] is skipped")
    args = ap.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and up
    bars = read_klines(args.klines)
    print(f"data: {args.klines.name}, {len(bars)} bars")
    bench_online(bars)
    bench_training(bars, args.k, args.iters)
    model = None
    if not args.skip_e2e:
        model = bench_end_to_end(bars)
    elif args.model is not None:
        from nautilus_hmm.hmm.model import load_model

        model = load_model(args.model)
    if model is not None:
        bench_strategy(bars, model)
    else:
        print("\n[4] skipped (no model: run [3] or pass --model)")


if __name__ == "__main__":
    main()
