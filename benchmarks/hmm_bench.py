"""Regime-model benchmarks: numbers, not pass/fail.

1. Online cost per bar: FeatureEngine.update and ForwardFilter.update for K = 2..8 with
   D = the default feature count (full covariances).
2. Training: pomegranate (our fit_hmm: chunked Baum-Welch, float64) against hmmlearn on
   the same standardised features of the real BTCUSDT 1m klines, same K, same starting
   parameters (our seeded k-means++), same iteration budget (convergence check off),
   same (negligible) covariance regularisation, one thread each (torch threads = 1,
   hmmlearn's BLAS limited to 1 with threadpoolctl). Both final models are scored with
   the numpy forward filter over the unchunked sequence. Timed alike on both sides:
   k-means++ start + EM + that scoring (fit_hmm does all three), median of --repeat
   back-to-back runs, with the ratio of each run; then EM alone (our _fit_once against
   GaussianHMM.fit). Library imports are timed apart, each in a fresh interpreter (a
   training worker pays them once), and added in a "cold" line.
   Until 2026-11 the pomegranate import (3+ s, mostly its apricot dependency) fell
   inside our fit time, hmmlearn's BLAS ran on 2 threads, and our k-means start and
   scoring were timed on our side only.
3. End to end: train_model on the whole month with the default [hmm.train] settings.
4. HmmStrategy on the bus: cost per 1m bar (tracker + policy + telemetry), alone and with
   a shadow canary; hot-swap warm-up time and its longest step on the loop (needs the
   model of [3], or --model PATH with --skip-e2e).

Run: .venv/bin/python benchmarks/hmm_bench.py [--klines PATH] [--iters 20] [--k 3] [--repeat 3] [--skip-e2e]
     [--model PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nautilus_hmm.hmm.config import HmmTrainConfig  # noqa: E402
from nautilus_hmm.hmm.features import FeatureEngine, FeatureSpec, Scaler, compute_batch  # noqa: E402
from nautilus_hmm.hmm.filter import ForwardFilter  # noqa: E402
from nautilus_hmm.marketdata.replay import BarArrays  # noqa: E402

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


def _import_seconds(stmt: str, setup: str = "") -> float:
    """Wall time of `stmt` in a fresh interpreter (after `setup`): what a training worker pays once."""
    code = (f"import sys, time\nsys.path.insert(0, {str(REPO)!r})\n{setup}\n"
            f"t = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_training(bars: BarArrays, k: int, iters: int, repeat: int) -> None:
    from hmmlearn.hmm import GaussianHMM
    from threadpoolctl import threadpool_limits

    from nautilus_hmm.hmm.train import (
        _chunks,
        _fit_once,
        _initial_params,
        fit_hmm,
        import_pomegranate,
    )

    spec = FeatureSpec()
    raw = compute_batch(spec, bars)[spec.warmup_bars:]
    z = Scaler.fit(raw).transform(raw)
    # Regularisation matched: hmmlearn's M-step has no floor (covars_prior=0 here), so ours
    # runs with a negligible min_covar; the default floor is reported apart.
    cfg = dataclasses.replace(HmmTrainConfig(), n_restarts=1, max_iter=iters, tol=-np.inf,
                              covariance_type="full", min_covar=1e-9)
    print(f"\n[2] training on {z.shape[0]} x {z.shape[1]} standardised 1m features, K={k}, "
          f"{iters} EM iterations, full covariance, same k-means++ start (seed {cfg.seed}), "
          f"one thread each")
    imp_ours = _import_seconds("import_pomegranate()", "from nautilus_hmm.hmm.train import import_pomegranate")
    imp_plain = _import_seconds("import torch, pomegranate.hmm")
    imp_hl = _import_seconds("import hmmlearn.hmm")
    print(f"    imports, fresh process (once per training worker): torch + pomegranate "
          f"{imp_ours:.2f} s (a plain `import pomegranate.hmm` with its apricot: {imp_plain:.2f} s); "
          f"hmmlearn {imp_hl:.2f} s")
    import_pomegranate()
    import torch

    torch.set_num_threads(1)

    def ours() -> tuple[float, float, int]:
        t = time.perf_counter()
        fit = fit_hmm([z], k, cfg, "bench")
        return time.perf_counter() - t, fit.log_likelihood, fit.n_iter

    def ours_em() -> float:
        init = _initial_params([z], k, cfg, np.random.default_rng(cfg.seed))
        groups = _chunks([z], cfg.chunk_bars)
        n_rows = sum(g.shape[0] * g.shape[1] for g in groups.values())
        t = time.perf_counter()
        _fit_once(groups, n_rows, init, cfg)
        return time.perf_counter() - t

    def hmmlearn() -> tuple[float, float, float, int]:
        t = time.perf_counter()
        start, trans, means, covars = _initial_params([z], k, cfg, np.random.default_rng(cfg.seed))
        ref = GaussianHMM(n_components=k, covariance_type="full", n_iter=iters, tol=-np.inf,
                          covars_prior=0.0, init_params="", params="stmc", implementation="log")
        ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = start, trans, means, covars
        t_em = time.perf_counter()
        ref.fit(z)
        em = time.perf_counter() - t_em
        _, ll = ForwardFilter(ref.startprob_, ref.transmat_, ref.means_, ref.covars_).filter_sequence(z)
        return time.perf_counter() - t, em, ll, ref.monitor_.iter

    runs: list[tuple[float, ...]] = []
    with threadpool_limits(1):  # hmmlearn's numpy/scipy BLAS single-threaded, like our torch
        for _ in range(repeat):  # back to back, alternating: the ratios share the machine's load
            o_s, o_ll, o_it = ours()
            h_s, h_em, h_ll, h_it = hmmlearn()
            o_em = ours_em()
            runs.append((o_s, h_s, o_em, h_em))
        floored = fit_hmm([z], k, dataclasses.replace(cfg, min_covar=HmmTrainConfig().min_covar), "bench")
    arr = np.array(runs)
    o_s, h_s, o_em, h_em = np.median(arr, axis=0)
    ratios = arr[:, 0] / arr[:, 1]
    em_ratios = arr[:, 2] / arr[:, 3]
    print(f"    median of {repeat} back-to-back runs           wall    loglik (numpy filter, unchunked)")
    print(f"    ours: fit_hmm, chunk_bars={cfg.chunk_bars:<4d}          {o_s:7.2f} s   {o_ll:14.2f}   ({o_it} iterations)")
    print(f"    hmmlearn (same init and scoring)        {h_s:7.2f} s   {h_ll:14.2f}   ({h_it} iterations)")
    print(f"    time ratio ours / hmmlearn              {np.median(ratios):7.2f}x   "
          f"(runs: {' '.join(f'{r:.2f}' for r in ratios)})")
    print(f"    EM alone: ours {o_em:.2f} s, hmmlearn fit {h_em:.2f} s, ratio {np.median(em_ratios):.2f}x "
          f"(runs: {' '.join(f'{r:.2f}' for r in em_ratios)})")
    print(f"    cold, once per worker (import + fit): ours {imp_ours + o_s:.2f} s, hmmlearn {imp_hl + h_s:.2f} s, "
          f"ratio {(imp_ours + o_s) / (imp_hl + h_s):.2f}x")
    print(f"    loglik difference (ours - hmmlearn) {o_ll - h_ll:+.2f} "
          f"({(o_ll - h_ll) / z.shape[0]:+.5f} per bar)")
    print(f"    ours with the default min_covar {HmmTrainConfig().min_covar:g}: loglik "
          f"{floored.log_likelihood:.2f} (the price of the covariance floor)")


def bench_strategy(bars: BarArrays, model: object, n: int = 20_000) -> None:
    from decimal import Decimal

    from nautilus_hmm.core.bus import Bus
    from nautilus_hmm.core.clock import ManualClock
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.hmm.config import HmmConfig
    from nautilus_hmm.messages import Bar
    from nautilus_hmm.strategies.base import StrategyContext
    from nautilus_hmm.strategies.hmm import HmmStrategy

    iid = InstrumentId("sim", "BTCUSDT")
    part = bars.slice(0, n)
    msgs = [Bar(ts_event_ns=int(part.ts_open_ns[i]), ts_init_ns=int(part.ts_open_ns[i]) + 60 * 10**9, instrument_id=iid,
                interval_s=60, open=float(part.open[i]), high=float(part.high[i]), low=float(part.low[i]),
                close=float(part.close[i]), volume=float(part.volume[i])) for i in range(n)]
    print(f"\n[4] HmmStrategy on the bus, {n} 1m bars (decisions every 5 m, telemetry published)")
    for label, canary in (("production only", None), ("+ shadow canary", model)):
        bus, clock = Bus(), ManualClock(int(part.ts_open_ns[0]))
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
    ap.add_argument("--repeat", type=int, default=3, help="runs of [2], medians reported")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--model", type=Path, help="model file for [4] when [3] is skipped")
    args = ap.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and up
    bars = read_klines(args.klines)
    print(f"data: {args.klines.name}, {len(bars)} bars")
    bench_online(bars)
    bench_training(bars, args.k, args.iters, args.repeat)
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
