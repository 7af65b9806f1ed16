"""Training the hierarchical regime model with pomegranate (torch), in a worker process.

Importing this module is numpy-only: pomegranate and torch are imported inside the
functions that fit, which run in a spawned worker (`run_training_in_worker`) or in the
CLI `train` command — never in the daemon's process.

Pipeline (`train_model`):
1. validate the base bars; resample to macro (slow) and micro (fast) bars;
2. macro: batch features, scaler fitted on the training window, Gaussian HMM fitted by
   Baum-Welch from seeded k-means++ starts (best log-likelihood over restarts);
3. each fast bar gets the macro regime in force when it closed: the filtered argmax of
   the last macro bar closed at or before it (what the daemon will see live, no look-ahead);
4. micro: one HMM per macro regime, trained on the fast-bar segments of that regime
   (a regime with fewer than `min_regime_bars` usable fast bars gets the pooled micro
   model, trained on all fast bars and marked source = "pooled");
5. states are put in canonical order (mean 1-bar log return, then volatility), labelled,
   and described by statistics measured with the filtered posteriors on the training data.

Long sequences are cut into chunks of `chunk_bars` (default 128) so pomegranate's
forward-backward runs batched: its Python loop takes one step per bar of each distinct
chunk length, whatever the batch, so an E-step costs about (sequential steps x ~50 us) +
(rows x ~1 us). The transitions across chunk boundaries (1 per chunk) are not counted.
docs/HMM.md ("Training speed") has the measurements behind the default. pomegranate is
imported with `import_pomegranate`, which skips its eager (2-4 s) import of apricot. The
exported startprob is the stationary distribution of the transition matrix, because the
live filter starts at an arbitrary bar. Reported log-likelihoods are those of the
exported parameters under the numpy forward filter over the unchunked sequences.

Progress: `train_model(on_progress=...)` is called after each Baum-Welch restart with
(restarts done, restarts in all, what: "macro", "micro[1]", ...); the total,
`training_restarts(cfg)`, is exact (a pooled micro regime counts the restarts it skips).
The worker sends these over its pipe; `TrainingJob(on_progress=...)` receives them in the
thread that waits (without a callback they are info log lines `hmm_training_progress`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import multiprocessing as mp
import os
import platform
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from nautilus_hmm import __version__
from nautilus_hmm.hmm.config import HmmTrainConfig
from nautilus_hmm.hmm.errors import HmmError, TrainingError
from nautilus_hmm.hmm.features import FeatureSpec, Scaler, compute_batch
from nautilus_hmm.hmm.filter import ForwardFilter
from nautilus_hmm.hmm.model import (
    FitInfo,
    HmmParams,
    MacroLevel,
    MicroLevel,
    RegimeModel,
    StateStats,
    TrainingInfo,
    bic,
    hmm_n_params,
)
from nautilus_hmm.marketdata.bars import resample_bars, resample_session_bars
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.obs import logging as obs_logging

log = structlog.get_logger("hmm")

# (restarts done, restarts in all, what is being fitted): train_model's progress callback.
TrainingProgress = Callable[[int, int, str], None]

NS_PER_S = 1_000_000_000
KMEANS_ITERS = 30
DEAD_STATE_WEIGHT = 1e-8


# ---------------------------------------------------------------- level data


@dataclass(frozen=True, slots=True)
class LevelData:
    """One level's bars and features: raw (T, D), standardised, and the usable-row mask."""

    name: str
    bars: BarArrays
    raw: np.ndarray
    z: np.ndarray
    valid: np.ndarray
    scaler: Scaler
    spec: FeatureSpec
    # With session flags only: when the live tracker has each bar (resample_session_bars).
    available_ns: np.ndarray | None = None


def prepare_level(name: str, bars: BarArrays, spec: FeatureSpec, interval_s: int,
                  base_interval_s: int, *, scaler: Scaler | None = None,
                  session_starts: np.ndarray | None = None) -> LevelData:
    """Resample base bars to `interval_s`, compute features, fit (or apply) the scaler.

    `session_starts` (base-bar flags, `features.session_starts_for`): buckets break at
    sessions and the first bar of each session is glued to the previous close, as the live
    `RegimeTracker(model, sessions)` does (docs/HMM.md "Session gaps")."""
    available_ns = None
    if session_starts is None:
        level_bars = bars if interval_s == base_interval_s else resample_bars(bars, interval_s, base_interval_s)
        raw = compute_batch(spec, level_bars)
    else:
        level_bars, level_starts, available_ns = resample_session_bars(bars, interval_s, base_interval_s,
                                                                       session_starts)
        raw = compute_batch(spec, level_bars, level_starts)
    valid = ~np.isnan(raw).any(axis=1)
    if scaler is None:
        n_valid = int(valid.sum())
        if n_valid < 2:
            raise TrainingError(
                f"{name}: {len(level_bars)} bars of {interval_s} s give {n_valid} usable feature rows "
                f"after the {spec.warmup_bars}-bar warm-up; need many more"
            )
        scaler = Scaler.fit(raw[valid])
    return LevelData(name=name, bars=level_bars, raw=raw, z=scaler.transform(raw), valid=valid,
                     scaler=scaler, spec=spec, available_ns=available_ns)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a boolean mask."""
    m = np.r_[False, np.asarray(mask, dtype=bool), False]
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _require_rows(what: str, n_rows: int, k: int, d: int, cfg: HmmTrainConfig, warmup: int) -> None:
    need = max(cfg.min_bars_per_state * k, hmm_n_params(k, d, cfg.covariance_type) + 1)
    if n_rows < need:
        after = f" (after a {warmup}-bar feature warm-up)" if warmup else ""
        raise TrainingError(
            f"{what}: {n_rows} usable bars{after} are too few for "
            f"K={k} states with D={d} features ({cfg.covariance_type} covariance): need at least {need}"
        )


def min_training_bars(cfg: HmmTrainConfig, spec: FeatureSpec, micro_spec: FeatureSpec | None = None) -> int:
    """Base bars a training needs at least (macro warm-up, then enough macro and micro rows).

    An estimate of the checks train_model makes, to refuse early without spawning a worker;
    train_model remains the judge (gaps in the data cost rows).
    """
    micro_spec = micro_spec or spec
    macro_ratio = cfg.macro_interval_s // cfg.base_interval_s
    micro_ratio = cfg.micro_interval_s // cfg.base_interval_s
    macro_rows = max(cfg.min_bars_per_state * cfg.macro_states,
                     hmm_n_params(cfg.macro_states, spec.n_features, cfg.covariance_type) + 1)
    micro_rows = max(cfg.min_bars_per_state * cfg.micro_states,
                     hmm_n_params(cfg.micro_states, micro_spec.n_features, cfg.covariance_type) + 1)
    macro_warm = (spec.warmup_bars + 1) * macro_ratio
    return macro_warm + max(macro_rows * macro_ratio, (micro_rows + micro_spec.warmup_bars + 1) * micro_ratio)


def _check_finite(name: str, z: np.ndarray) -> None:
    bad = np.argwhere(~np.isfinite(z))
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise TrainingError(f"{name}: feature row {i} column {j} is {float(z[i, j])!r}; rows must be finite")


# ---------------------------------------------------------------- fitting one HMM


@dataclass(frozen=True, slots=True)
class FitResult:
    """A fitted HMM before canonical ordering (standardised units)."""

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    covars: np.ndarray
    log_likelihood: float
    n_obs: int
    n_iter: int
    converged: bool
    n_restarts: int
    best_restart: int


def stationary_distribution(transmat: np.ndarray) -> np.ndarray:
    """Left eigenvector of the transition matrix for eigenvalue 1, normalised."""
    vals, vecs = np.linalg.eig(transmat.T)
    v = np.abs(np.real(vecs[:, int(np.argmin(np.abs(vals - 1.0)))]))
    if not np.isfinite(v).all() or v.sum() <= 0:
        return np.full(transmat.shape[0], 1.0 / transmat.shape[0])
    v = v / v.sum()
    return v / v.sum()


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded k-means++ then Lloyd iterations; returns labels."""
    n = x.shape[0]
    centers = [x[rng.integers(n)]]
    d2 = ((x - centers[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        idx = int(rng.integers(n)) if total <= 0 else int(rng.choice(n, p=d2 / total))
        centers.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(axis=1))
    c = np.array(centers)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(KMEANS_ITERS):
        dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        new = dist.argmin(axis=1)
        for j in range(k):
            members = x[new == j]
            if members.shape[0] == 0:  # an empty cluster takes the worst-fitted point
                far = int(dist[np.arange(n), new].argmax())
                new[far] = j
                members = x[far:far + 1]
            c[j] = members.mean(axis=0)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _initial_params(seqs: Sequence[np.ndarray], k: int, cfg: HmmTrainConfig,
                    rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    x = np.concatenate(seqs)
    labels = _kmeans_pp(x, k, rng)
    d = x.shape[1]
    glob = np.cov(x.T).reshape(d, d) + cfg.min_covar * np.eye(d)
    means = np.empty((k, d))
    covars = np.empty((k, d, d))
    for j in range(k):
        members = x[labels == j]
        means[j] = members.mean(axis=0)
        c = np.cov(members.T).reshape(d, d) + cfg.min_covar * np.eye(d) if members.shape[0] > d + 1 else glob
        covars[j] = np.diag(np.diag(c)) if cfg.covariance_type == "diag" else c
    counts = np.ones((k, k))
    pos = 0
    for s in seqs:
        lab = labels[pos:pos + s.shape[0]]
        np.add.at(counts, (lab[:-1], lab[1:]), 1.0)
        pos += s.shape[0]
    trans = counts / counts.sum(axis=1, keepdims=True)
    return np.full(k, 1.0 / k), trans, means, covars


def _chunks(seqs: Sequence[np.ndarray], chunk_bars: int) -> dict[int, np.ndarray]:
    """Cut sequences into pieces of chunk_bars, the remainder into powers of two; group by length.

    pomegranate batches sequences of equal length, so few distinct lengths mean few Python
    loops: the sequential steps per E-step stay below 2 * chunk_bars whatever the data.
    Each cut drops one transition; a leftover single bar (no transition) is dropped.
    Splitting each sequence evenly instead (fewer, longer pieces) gives one or two
    lengths per sequence, so more steps once there are several sequences, and it did not
    fit better (docs/HMM.md, "Training speed").
    """
    groups: dict[int, list[np.ndarray]] = {}
    for s in seqs:
        pos, n = 0, s.shape[0]
        while n - pos >= chunk_bars:
            groups.setdefault(chunk_bars, []).append(s[pos:pos + chunk_bars])
            pos += chunk_bars
        rest = n - pos
        while rest >= 2:
            size = 1 << (rest.bit_length() - 1)
            groups.setdefault(size, []).append(s[pos:pos + size])
            pos += size
            rest -= size
    return {length: np.stack(items) for length, items in groups.items()}


class _LazyApricotName:
    """Stands for one apricot class while pomegranate imports; imports apricot when called."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import importlib

        if getattr(sys.modules.get("apricot"), "_nautilus_placeholder", False):
            del sys.modules["apricot"]
        return getattr(importlib.import_module("apricot"), self.name)(*args, **kwargs)


def import_pomegranate() -> None:
    """Import pomegranate (and torch) without the eager import of apricot that it makes.

    pomegranate._utils does `from apricot import FacilityLocationSelection,
    FeatureBasedSelection`, used only by k-means initialisation with
    init="submodular-*", which this module never uses (it passes initialised
    distributions). apricot imports scikit-learn and scipy.stats and compiles numba
    kernels at import time: 2-4 s in every training worker, more than the whole EM of a
    month of 1m bars. A placeholder module stands in for apricot during the import; its
    two names import the real apricot if they are ever called. When apricot or
    pomegranate is already loaded, or pomegranate asks apricot for another name, this is
    a plain import.
    """
    import types

    import torch  # noqa: F401 (imported first: pomegranate needs it anyway)

    if "pomegranate._utils" in sys.modules or "apricot" in sys.modules:
        import pomegranate.hmm
        return
    placeholder = types.ModuleType("apricot", "placeholder for apricot while pomegranate imports")
    placeholder._nautilus_placeholder = True  # type: ignore[attr-defined]
    placeholder.FacilityLocationSelection = _LazyApricotName("FacilityLocationSelection")  # type: ignore[attr-defined]
    placeholder.FeatureBasedSelection = _LazyApricotName("FeatureBasedSelection")  # type: ignore[attr-defined]
    sys.modules["apricot"] = placeholder
    try:
        import pomegranate.hmm
    except ImportError:  # a pomegranate that wants more of apricot: import it for real
        if sys.modules.get("apricot") is placeholder:
            del sys.modules["apricot"]
        import pomegranate.hmm  # noqa: F401
    finally:
        if sys.modules.get("apricot") is placeholder:
            del sys.modules["apricot"]


def _floored_normal_class() -> type:
    """pomegranate Normal whose M-step adds min_covar to the diagonal and keeps dead states."""
    import_pomegranate()
    import torch
    from pomegranate._utils import _update_parameter
    from pomegranate.distributions import Normal

    class FlooredNormal(Normal):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, min_covar: float, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.min_covar_floor = float(min_covar)

        def from_summaries(self) -> None:
            if bool(self.frozen):
                return
            w = self._w_sum
            if float(w[0]) <= DEAD_STATE_WEIGHT:
                # No data weight: keep the parameters instead of dividing by zero.
                self._reset_cache()
                return
            means = self._xw_sum / w
            if self.covariance_type == "full":
                v = self._xw_sum.unsqueeze(0) * self._xw_sum.unsqueeze(1)
                covs = self._xxw_sum / w - v / w ** 2.0
                covs = 0.5 * (covs + covs.T) + self.min_covar_floor * torch.eye(
                    covs.shape[0], dtype=covs.dtype)
            else:
                covs = self._xxw_sum / w - self._xw_sum ** 2.0 / w ** 2.0 + self.min_covar_floor
            _update_parameter(self.means, means, self.inertia)
            _update_parameter(self.covs, covs, self.inertia)
            self._reset_cache()

    return FlooredNormal


def _fit_once(groups: dict[int, np.ndarray], n_rows: int, init: tuple[np.ndarray, ...],
              cfg: HmmTrainConfig) -> tuple[tuple[np.ndarray, ...], int, bool]:
    import_pomegranate()
    import torch
    from pomegranate.hmm import DenseHMM

    floored = _floored_normal_class()
    start, trans, means, covars = init
    k = means.shape[0]
    dists = [
        floored(means=torch.tensor(means[j], dtype=torch.float64),
                covs=torch.tensor(covars[j] if cfg.covariance_type == "full" else np.diag(covars[j]),
                                  dtype=torch.float64),
                covariance_type=cfg.covariance_type, min_covar=cfg.min_covar)
        for j in range(k)
    ]
    model = DenseHMM(dists, edges=trans, starts=start, ends=np.full(k, 1.0 / k), max_iter=cfg.max_iter)
    model = model.double()
    batches = [torch.tensor(g, dtype=torch.float64) for g in groups.values()]
    last: float | None = None
    converged = False
    n_iter = 0
    with torch.no_grad():
        for _ in range(cfg.max_iter):
            logp = sum(float(model.summarize(b).sum()) for b in batches) / n_rows
            if not math.isfinite(logp):
                raise FloatingPointError("log-likelihood is not finite")
            if last is not None and logp - last < cfg.tol:
                converged = True
                model._reset_cache()
                break
            last = logp
            model.from_summaries()
            n_iter += 1
        edges = np.exp(model.edges.detach().numpy().astype(np.float64))
        means_out = np.stack([d.means.detach().numpy() for d in model.distributions]).astype(np.float64)
        covs = [d.covs.detach().numpy().astype(np.float64) for d in model.distributions]
    covars_out = np.stack([c if c.ndim == 2 else np.diag(c) for c in covs])
    covars_out = 0.5 * (covars_out + covars_out.transpose(0, 2, 1))
    # pomegranate keeps an explicit end state; the live filter has none: renormalise rows.
    trans_out = edges / edges.sum(axis=1, keepdims=True)
    return (stationary_distribution(trans_out), trans_out, means_out, covars_out), n_iter, converged


def fit_hmm(seqs: Sequence[np.ndarray], n_states: int, cfg: HmmTrainConfig,
            what: str = "hmm", init: HmmParams | None = None,
            on_restart: Callable[[str], None] | None = None) -> FitResult:
    """Fit a Gaussian HMM to standardised sequences; best of cfg.n_restarts seeded starts.

    With `init` (a partial update) EM runs once, warm-started from those parameters
    (which must be in the same standardised units), instead of the k-means restarts.
    `on_restart(what)` is called after each restart, failed or not (progress).
    """
    seqs = [np.asarray(s, dtype=np.float64) for s in seqs if s.shape[0] > 0]
    if not seqs:
        raise TrainingError(f"{what}: no data")
    for i, s in enumerate(seqs):
        _check_finite(f"{what} sequence {i}", s)
    n_rows = sum(s.shape[0] for s in seqs)
    d = seqs[0].shape[1]
    _require_rows(what, n_rows, n_states, d, cfg, 0)
    groups = _chunks(seqs, cfg.chunk_bars)
    if not groups:
        raise TrainingError(f"{what}: every sequence is shorter than 2 bars")
    n_chunked = sum(g.shape[0] * g.shape[1] for g in groups.values())
    best: FitResult | None = None
    failures: list[str] = []
    if init is not None and (init.n_states, init.n_features) != (n_states, d):
        raise TrainingError(f"{what}: warm start has K={init.n_states}, D={init.n_features}; "
                            f"expected K={n_states}, D={d}")
    n_runs = 1 if init is not None else cfg.n_restarts
    for r in range(n_runs):
        rng = np.random.default_rng(cfg.seed + r)
        try:
            start = ((init.startprob, init.transmat, init.means, init.covars) if init is not None
                     else _initial_params(seqs, n_states, cfg, rng))
            params, n_iter, converged = _fit_once(groups, n_chunked, start, cfg)
            filt = ForwardFilter(*params)
            loglik = float(sum(filt.filter_sequence(s)[1] for s in seqs))
        except (FloatingPointError, HmmError, np.linalg.LinAlgError, RuntimeError, ValueError) as exc:
            failures.append(f"restart {r}: {type(exc).__name__}: {exc}")
            log.warning("hmm_restart_failed", what=what, restart=r, error=str(exc))
            if on_restart is not None:
                on_restart(what)
            continue
        if on_restart is not None:
            on_restart(what)
        if not math.isfinite(loglik):
            failures.append(f"restart {r}: log-likelihood {loglik}")
            continue
        log.info("hmm_restart_done", what=what, restart=r, loglik=round(loglik, 3), n_iter=n_iter,
                 converged=converged)
        if best is None or loglik > best.log_likelihood:
            best = FitResult(*params, log_likelihood=loglik, n_obs=n_rows, n_iter=n_iter,
                             converged=converged, n_restarts=n_runs, best_restart=r)
    if best is None:
        raise TrainingError(f"{what}: every restart failed: " + "; ".join(failures))
    return best


# ---------------------------------------------------------------- canonical states and stats


def state_labels(k: int) -> tuple[str, ...]:
    """Labels in canonical order: down < mid... < up (by mean 1-bar return)."""
    if k == 2:
        return ("down", "up")
    if k == 3:
        return ("down", "flat", "up")
    return ("down", *(f"mid{i}" for i in range(1, k - 1)), "up")


def canonical_order(fit: FitResult, scaler: Scaler, ret1_col: int = 0) -> np.ndarray:
    """Permutation sorting states by emission mean of the 1-bar return, then its volatility."""
    mean_ret = fit.means[:, ret1_col] * scaler.std[ret1_col] + scaler.mean[ret1_col]
    vol = np.sqrt(fit.covars[:, ret1_col, ret1_col]) * scaler.std[ret1_col]
    return np.lexsort((vol, mean_ret))


def _permuted(fit: FitResult, order: np.ndarray) -> FitResult:
    return dataclasses.replace(
        fit, startprob=fit.startprob[order], transmat=fit.transmat[np.ix_(order, order)],
        means=fit.means[order], covars=fit.covars[order],
    )


def _state_stats(fit: FitResult, z_seqs: Sequence[np.ndarray], ret_seqs: Sequence[np.ndarray],
                 labels: Sequence[str]) -> tuple[StateStats, ...]:
    k = fit.means.shape[0]
    filt = ForwardFilter(fit.startprob, fit.transmat, fit.means, fit.covars)
    w_sum = np.zeros(k)
    r_sum = np.zeros(k)
    r2_sum = np.zeros(k)
    nw_sum = np.zeros(k)
    nr_sum = np.zeros(k)
    run_len: list[list[int]] = [[] for _ in range(k)]
    counts = np.zeros(k)
    for z, r in zip(z_seqs, ret_seqs, strict=True):
        post, _ = filt.filter_sequence(z)
        w_sum += post.sum(axis=0)
        r_sum += post.T @ r
        r2_sum += post.T @ (r * r)
        if len(r) > 1:  # the return of the next bar, given the filtered state now
            nw_sum += post[:-1].sum(axis=0)
            nr_sum += post[:-1].T @ r[1:]
        arg = post.argmax(axis=1)
        counts += np.bincount(arg, minlength=k)
        starts = np.flatnonzero(np.r_[True, arg[1:] != arg[:-1]])
        lengths = np.diff(np.r_[starts, arg.shape[0]])
        for s0, ln in zip(starts, lengths, strict=True):
            run_len[int(arg[s0])].append(int(ln))
    out = []
    total = counts.sum()
    for j in range(k):
        w = max(w_sum[j], 1e-300)
        mean = r_sum[j] / w
        var = max(0.0, r2_sum[j] / w - mean * mean)
        stay = min(float(fit.transmat[j, j]), 1.0 - 1e-12)
        out.append(StateStats(
            label=labels[j], mean_return=float(mean), volatility=math.sqrt(var),
            expected_next_return=float(nr_sum[j] / nw_sum[j]) if nw_sum[j] > 0 else float(mean),
            dwell_bars=float(np.mean(run_len[j])) if run_len[j] else 0.0,
            expected_dwell_bars=1.0 / (1.0 - stay),
            occupancy=float(counts[j] / total) if total else 0.0,
        ))
    return tuple(out)


def build_params(fit: FitResult, level: LevelData, seq_bounds: Sequence[tuple[int, int]],
                 cfg: HmmTrainConfig, source: str = "trained") -> HmmParams:
    """Canonical order, labels and training statistics for a fitted HMM."""
    fit = _permuted(fit, canonical_order(fit, level.scaler))
    k, d = fit.means.shape
    z_seqs = [level.z[a:b] for a, b in seq_bounds]
    ret_seqs = [level.raw[a:b, 0] for a, b in seq_bounds]
    stats = _state_stats(fit, z_seqs, ret_seqs, state_labels(k))
    n_params = hmm_n_params(k, d, cfg.covariance_type)
    covars = fit.covars
    if cfg.covariance_type == "diag":
        covars = np.stack([np.diag(np.diag(c)) for c in covars])
    return HmmParams(
        covariance_type=cfg.covariance_type, startprob=fit.startprob, transmat=fit.transmat,
        means=fit.means, covars=covars, states=stats,
        fit=FitInfo(log_likelihood=float(fit.log_likelihood),
                    bic=bic(fit.log_likelihood, n_params, fit.n_obs), n_obs=fit.n_obs,
                    n_params=n_params, n_iter=fit.n_iter, converged=fit.converged,
                    n_restarts=fit.n_restarts, best_restart=fit.best_restart, source=source),
    )


# ---------------------------------------------------------------- the hierarchical model


def macro_regime_per_micro_bar(macro: LevelData, macro_params: HmmParams, micro: LevelData,
                               macro_interval_s: int, micro_interval_s: int) -> np.ndarray:
    """Macro regime in force when each fast bar closed (-1 before the first macro posterior).

    It is the filtered argmax at the last macro bar that closed at or before the fast bar
    closed: exactly what the live tracker sees, so no fast bar is labelled with hindsight.
    """
    regime = np.full(len(macro.bars), -1, dtype=np.int64)
    filt = macro_params.filter()
    for a, b in runs(macro.valid):
        post, _ = filt.filter_sequence(macro.z[a:b])
        regime[a:b] = post.argmax(axis=1)
    if macro.available_ns is not None and micro.available_ns is not None:
        macro_end, micro_end = macro.available_ns, micro.available_ns  # session-split buckets
    else:
        macro_end = macro.bars.ts_open_ns + macro_interval_s * NS_PER_S
        micro_end = micro.bars.ts_open_ns + micro_interval_s * NS_PER_S
    idx = np.searchsorted(macro_end, micro_end, side="right") - 1
    out = np.full(len(micro.bars), -1, dtype=np.int64)
    ok = idx >= 0
    out[ok] = regime[idx[ok]]
    return out


def library_versions() -> dict[str, str]:
    """Versions of the training stack (imports torch and pomegranate: worker/CLI only)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        pg = version("pomegranate")
    except PackageNotFoundError:  # pragma: no cover
        pg = "unknown"
    return {"numpy": np.__version__, "pomegranate": pg, "torch": str(torch.__version__),
            "python": platform.python_version(), "nautilus_hmm": __version__}


def _config_dict(cfg: HmmTrainConfig) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def warm_start_config(cfg: HmmTrainConfig, parent: RegimeModel) -> HmmTrainConfig:
    """`cfg` with the structure of `parent` (intervals, K, covariance type) and its update budget."""
    return dataclasses.replace(
        cfg, base_interval_s=parent.base_interval_s, macro_interval_s=parent.macro.interval_s,
        micro_interval_s=parent.micro.interval_s, macro_states=parent.macro.hmm.n_states,
        micro_states=parent.micro.hmms[0].n_states, covariance_type=parent.macro.hmm.covariance_type,
        max_iter=cfg.update_max_iter, n_restarts=1,
    )


def training_restarts(cfg: HmmTrainConfig, parent: RegimeModel | None = None) -> int:
    """How many Baum-Welch restarts train_model runs (its progress total): macro + one micro per regime."""
    if parent is not None:
        cfg = warm_start_config(cfg, parent)
    return (1 + cfg.macro_states) * cfg.n_restarts


def train_model(bars: BarArrays, spec: FeatureSpec, cfg: HmmTrainConfig, *,
                micro_spec: FeatureSpec | None = None, instrument: str | None = None,
                parent: RegimeModel | None = None, on_progress: TrainingProgress | None = None,
                session_starts: np.ndarray | None = None) -> RegimeModel:
    """Train macro + per-regime micro HMMs on base bars; runs in the calling process.

    `spec` gives the feature windows of both levels unless `micro_spec` is given. Raises
    BarDataError (bad bars) or TrainingError (too little data, every restart failed).

    Partial update: with `parent`, the parent's structure, feature specs and scalers are
    kept (so its parameters stay in the same units) and EM is warm-started from the
    parent's HMMs for `cfg.update_max_iter` iterations, once, on `bars` (a recent window).
    `spec`/`micro_spec` are then ignored. `on_progress(done, total, what)` follows the
    restarts (module doc).
    """
    t0 = time.perf_counter()
    total = training_restarts(cfg, parent)
    if parent is not None:
        cfg = warm_start_config(cfg, parent)
        spec, micro_spec = parent.macro.features, parent.micro.features
    done = 0

    def restarted(what: str) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total, what)
    problems = cfg.validate()
    if problems:
        f, v, msg = problems[0]
        raise TrainingError(f"train config: {f} = {v}: {msg}")
    bars.validate()
    if len(bars) < 2:
        raise TrainingError(f"bars: {len(bars)} bars; need many more")
    micro_spec = micro_spec or spec
    span = np.diff(bars.ts_open_ns)
    if (span % (cfg.base_interval_s * NS_PER_S)).any():
        i = int(np.flatnonzero(span % (cfg.base_interval_s * NS_PER_S))[0]) + 1
        raise TrainingError(f"bars.ts_open_ns[{i}]: {int(bars.ts_open_ns[i])} is not on the base_interval_s "
                            f"grid ({cfg.base_interval_s} s) of the previous bar")
    macro = prepare_level("macro", bars, spec, cfg.macro_interval_s, cfg.base_interval_s,
                          scaler=None if parent is None else parent.macro.scaler, session_starts=session_starts)
    macro_bounds = runs(macro.valid)
    n_macro = int(macro.valid.sum())
    _require_rows(f"macro ({cfg.macro_interval_s} s bars)", n_macro, cfg.macro_states,
                  spec.n_features, cfg, spec.warmup_bars)
    import torch

    torch.set_num_threads(cfg.torch_threads)
    macro_fit = fit_hmm([macro.z[a:b] for a, b in macro_bounds], cfg.macro_states, cfg, "macro",
                        init=None if parent is None else parent.macro.hmm, on_restart=restarted)
    macro_params = build_params(macro_fit, macro, macro_bounds, cfg)

    micro = prepare_level("micro", bars, micro_spec, cfg.micro_interval_s, cfg.base_interval_s,
                          scaler=None if parent is None else parent.micro.scaler, session_starts=session_starts)
    regime = macro_regime_per_micro_bar(macro, macro_params, micro, cfg.macro_interval_s,
                                        cfg.micro_interval_s)
    usable = micro.valid & (regime >= 0)
    _require_rows(f"micro ({cfg.micro_interval_s} s bars)", int(usable.sum()), cfg.micro_states,
                  micro_spec.n_features, cfg, micro_spec.warmup_bars)
    need = max(cfg.min_regime_bars, cfg.min_bars_per_state * cfg.micro_states,
               hmm_n_params(cfg.micro_states, micro_spec.n_features, cfg.covariance_type) + 1)
    pooled: HmmParams | None = None
    micro_hmms: list[HmmParams] = []
    for r in range(cfg.macro_states):
        bounds = runs(usable & (regime == r))
        n_r = sum(b - a for a, b in bounds)
        if n_r >= need and any(b - a >= 2 for a, b in bounds):
            fit = fit_hmm([micro.z[a:b] for a, b in bounds], cfg.micro_states, cfg, f"micro[{r}]",
                          init=None if parent is None else parent.micro.hmms[r], on_restart=restarted)
            micro_hmms.append(build_params(fit, micro, bounds, cfg))
            continue
        log.warning("hmm_micro_pooled", macro_state=r, bars=n_r, needed=need)
        if pooled is None:
            all_bounds = runs(usable)
            fit = fit_hmm([micro.z[a:b] for a, b in all_bounds], cfg.micro_states, cfg, "micro[pooled]",
                          init=None if parent is None else _pooled_init(parent), on_restart=restarted)
            pooled = build_params(fit, micro, all_bounds, cfg, source="pooled")
        else:  # this regime reuses the pooled model: its restarts are not run
            for _ in range(cfg.n_restarts):
                restarted(f"micro[{r}] (pooled)")
        micro_hmms.append(pooled)

    model = RegimeModel(
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        instrument=instrument,
        base_interval_s=cfg.base_interval_s,
        macro=MacroLevel(interval_s=cfg.macro_interval_s, features=spec, scaler=macro.scaler,
                         hmm=macro_params),
        micro=MicroLevel(interval_s=cfg.micro_interval_s, features=micro_spec, scaler=micro.scaler,
                         hmms=tuple(micro_hmms)),
        training=TrainingInfo(first_ts_ns=int(bars.ts_open_ns[0]), last_ts_ns=int(bars.ts_open_ns[-1]),
                              n_bars=len(bars), data_sha256=bars.sha256(), config=_config_dict(cfg),
                              duration_s=round(time.perf_counter() - t0, 3)),
        library_versions=library_versions(),
    )
    log.info("hmm_trained", instrument=instrument, bars=len(bars), macro_loglik=round(macro_params.fit.log_likelihood, 3),
             duration_s=model.training.duration_s)
    return model


def _pooled_init(parent: RegimeModel) -> HmmParams:
    """The parent's pooled micro model if it has one, else its most occupied regime's."""
    for h in parent.micro.hmms:
        if h.fit.source == "pooled":
            return h
    occ = [s.occupancy for s in parent.macro.hmm.states]
    return parent.micro.hmms[int(np.argmax(occ))]


# ---------------------------------------------------------------- model selection


@dataclass(frozen=True, slots=True)
class KScore:
    """Model-selection figures for one K (per-bar held-out log-likelihood; lower BIC is better)."""

    n_states: int
    log_likelihood: float
    bic: float
    n_params: int
    heldout_loglik_per_bar: float


def select_n_states(z: np.ndarray, k_values: Iterable[int], cfg: HmmTrainConfig,
                    holdout_fraction: float = 0.2, on_progress: TrainingProgress | None = None) -> list[KScore]:
    """Fit each K on the first part of standardised rows (T, D) and score the rest.

    The held-out part is filtered from the stationary distribution; BIC is on the fitted part.
    `on_progress(done, total, what)` follows the restarts (cfg.n_restarts per K).
    """
    z = np.asarray(z, dtype=np.float64)
    _check_finite("select_n_states", z)
    if not 0.0 < holdout_fraction < 1.0:
        raise TrainingError(f"holdout_fraction = {holdout_fraction}: must be in (0, 1)")
    cut = round(z.shape[0] * (1.0 - holdout_fraction))
    train, held = z[:cut], z[cut:]
    if held.shape[0] < 2:
        raise TrainingError(f"select_n_states: held-out part has {held.shape[0]} rows")
    k_values = list(k_values)
    total, done = len(k_values) * cfg.n_restarts, 0

    def restarted(what: str) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total, what)

    out = []
    for k in k_values:
        fit = fit_hmm([train], int(k), cfg, f"K={k}", on_restart=restarted)
        n_params = hmm_n_params(int(k), z.shape[1], cfg.covariance_type)
        _, held_ll = ForwardFilter(fit.startprob, fit.transmat, fit.means, fit.covars).filter_sequence(held)
        out.append(KScore(n_states=int(k), log_likelihood=fit.log_likelihood,
                          bic=bic(fit.log_likelihood, n_params, train.shape[0]), n_params=n_params,
                          heldout_loglik_per_bar=float(held_ll / held.shape[0])))
    return out


def best_by_bic(scores: Sequence[KScore]) -> KScore:
    """The K with the lowest BIC."""
    return min(scores, key=lambda s: s.bic)


# ---------------------------------------------------------------- worker process


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    """Result of a worker run: the model path, or an error message."""

    ok: bool
    path: str | None
    error: str | None
    duration_s: float
    model_sha256: str | None = None


# The worker dies with its parent: a daemon killed with SIGKILL cannot cancel its job, and
# an orphaned worker would train (and hold CPU and memory) for up to timeout_s unseen.
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_WATCH_INTERVAL_S = 0.5
EXIT_PARENT_GONE = 70  # EX_SOFTWARE; nobody reads it: the parent is dead


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker exit when `parent_pid` dies: PR_SET_PDEATHSIG on Linux plus a watchdog thread.

    PR_SET_PDEATHSIG fires when the *thread* that spawned the worker ends; TrainingJob is
    spawned by the thread that then blocks in `wait()`, so that thread outlives the job.
    The watchdog (the parent pid changes when the worker is orphaned) covers other
    platforms, a prctl that failed, and a parent that died before prctl ran.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                err = ctypes.get_errno()
                log.warning("hmm_worker_pdeathsig_failed", error=os.strerror(err), fallback="parent watchdog")
        except (OSError, AttributeError) as exc:
            log.warning("hmm_worker_pdeathsig_failed", error=repr(exc), fallback="parent watchdog")
    _exit_if_orphaned(parent_pid)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()


def _exit_if_orphaned(parent_pid: int) -> None:
    """Exit the worker at once when its parent is no longer `parent_pid` (it died)."""
    if os.getppid() != parent_pid:
        log.error("hmm_worker_orphaned", parent_pid=parent_pid, action="exit")
        os._exit(EXIT_PARENT_GONE)


def _watch_parent(parent_pid: int) -> None:
    """Watchdog thread of the worker: real time is right here, it watches a real process."""
    while True:
        time.sleep(PARENT_WATCH_INTERVAL_S)
        _exit_if_orphaned(parent_pid)


def _worker_main(conn: Any, payload: dict[str, Any]) -> None:
    """Entry point of the spawned training process."""
    # A spawned interpreter starts unconfigured: log as the parent does (format, level, stderr).
    obs_logging.configure(**payload["log"])
    _die_with_parent(payload["parent_pid"])
    threads = str(payload["cfg"].torch_threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = threads
    try:
        # torch is imported (and its thread count set) by train_model, after the input checks.
        parent = None
        if payload.get("parent_json") is not None:
            parent = RegimeModel.from_json(payload["parent_json"], "parent model")
        model = train_model(payload["bars"], payload["spec"], payload["cfg"],
                            micro_spec=payload["micro_spec"], instrument=payload["instrument"],
                            parent=parent, session_starts=payload.get("session_starts"),
                            on_progress=lambda done, total, what: conn.send(("progress", done, total, what)))
        path = model.save(payload["out_path"])
        conn.send(("ok", str(path), model.content_sha256))
    except HmmError as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}", None))
    except BaseException as exc:  # report anything; the parent must not hang
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}", None))
    finally:
        conn.close()


class TrainingJob:
    """One training run in a spawned worker process; `wait()` blocks, `cancel()` kills it.

    The daemon starts it and calls `wait()` in an executor thread (loop.run_in_executor);
    `cancel()` is safe from any thread (e.g. the loop on shutdown): the worker is
    terminated and `wait()` returns an error outcome. A partial temp file is removed.
    """

    def __init__(self, bars: BarArrays, spec: FeatureSpec, cfg: HmmTrainConfig, out_path: str | Path, *,
                 micro_spec: FeatureSpec | None = None, instrument: str | None = None,
                 timeout_s: float | None = None, parent: RegimeModel | None = None,
                 on_progress: TrainingProgress | None = None, session_starts: np.ndarray | None = None) -> None:
        self.out_path = Path(out_path)
        self._on_progress = on_progress
        self.timeout_s = cfg.timeout_s if timeout_s is None else timeout_s
        self._payload = {"bars": bars, "spec": spec, "cfg": cfg, "micro_spec": micro_spec,
                         "instrument": instrument, "out_path": str(out_path),
                         "parent_json": None if parent is None else parent.to_json(),
                         "log": obs_logging.settings(), "session_starts": session_starts}
        self._n_bars = len(bars)
        self._proc: Any = None
        self._recv: Any = None
        self._cancelled = False
        self._t0 = 0.0

    @property
    def pid(self) -> int | None:
        """Worker process id once started."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Spawn the worker (returns at once)."""
        if self._proc is not None:
            raise RuntimeError("training job already started")
        if self._cancelled:
            return
        ctx = mp.get_context("spawn")
        self._payload["parent_pid"] = os.getpid()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_worker_main, args=(send, self._payload),
                                 name="nautilus-hmm-train", daemon=True)
        self._t0 = time.perf_counter()
        self._proc.start()
        send.close()
        if self._cancelled:  # cancel() ran while the process was being spawned
            _stop(self._proc)
        log.info("hmm_training_started", pid=self._proc.pid, bars=self._n_bars, timeout_s=self.timeout_s)

    def cancel(self) -> None:
        """Terminate the worker; a waiting `wait()` returns 'training cancelled'."""
        self._cancelled = True
        if self._proc is not None and self._proc.is_alive():
            _stop(self._proc)
            log.warning("hmm_training_cancelled", pid=self._proc.pid)

    def wait(self) -> TrainingOutcome:
        """Block until the worker reports, dies, is cancelled or times out."""
        if self._proc is None:
            self.start()
        if self._proc is None:
            return TrainingOutcome(False, None, "training cancelled", 0.0)
        proc, recv = self._proc, self._recv
        # The worker's own timing: the timeout counts from the start, progress messages do not extend it.
        deadline = self._t0 + self.timeout_s
        try:
            while True:
                if not recv.poll(max(deadline - time.perf_counter(), 0.0)):
                    _stop(proc)
                    # debug, as the other outcomes here: the caller (the model service) logs the
                    # outcome once, with its job id (hmm_training_failed / _succeeded).
                    log.debug("hmm_training_timeout", pid=proc.pid, timeout_s=self.timeout_s)
                    return self._failed(f"training timed out after {self.timeout_s:g} s; worker terminated")
                try:
                    message = recv.recv()
                except EOFError:
                    proc.join(5.0)
                    if self._cancelled:
                        return self._failed("training cancelled")
                    log.debug("hmm_training_crashed", pid=proc.pid, exitcode=proc.exitcode)
                    return self._failed(f"training worker exited with code {proc.exitcode} without a result")
                if isinstance(message, tuple) and len(message) == 4 and message[0] == "progress":
                    self._progress(*message[1:])
                    continue
                if isinstance(message, tuple) and len(message) == 3 and message[0] in ("ok", "error"):
                    status, value, sha = message
                    break
                # Not our protocol (a damaged or foreign message): the worker cannot be trusted.
                _stop(proc)
                log.debug("hmm_training_bad_message", pid=proc.pid, message=repr(message)[:200])
                return self._failed(f"training worker sent an unexpected message {repr(message)[:80]}; "
                                    "worker terminated")
        finally:
            recv.close()
        proc.join(10.0)
        if proc.is_alive():  # pragma: no cover - result sent but the process hangs on exit
            _stop(proc)
        duration = time.perf_counter() - self._t0
        if status == "ok":
            log.debug("hmm_training_done", path=value, duration_s=round(duration, 3))
            return TrainingOutcome(True, value, None, duration, sha)
        log.debug("hmm_training_worker_failed", error=value.splitlines()[0])
        return TrainingOutcome(False, None, value, duration)

    def _progress(self, done: Any, total: Any, what: Any) -> None:
        """A restart finished in the worker: to the callback, else an info line."""
        if not (isinstance(done, int) and isinstance(total, int) and isinstance(what, str)):
            log.warning("hmm_training_progress_malformed", done=repr(done)[:40], total=repr(total)[:40])
            return
        if self._on_progress is None:
            log.info("hmm_training_progress", pid=self.pid, restarts_done=done, restarts_total=total, fitting=what)
            return
        try:
            self._on_progress(done, total, what)
        except Exception as exc:  # a display must not lose the training's outcome
            log.warning("hmm_training_progress_callback_failed", error=repr(exc))
            self._on_progress = None

    def _failed(self, message: str) -> TrainingOutcome:
        # A worker killed while saving leaves its temp file (see RegimeModel.save).
        tmp = self.out_path.with_name(f".{self.out_path.name}.{self._proc.pid}.tmp")
        tmp.unlink(missing_ok=True)
        return TrainingOutcome(False, None, message, time.perf_counter() - self._t0)


def run_training_in_worker(bars: BarArrays, spec: FeatureSpec, cfg: HmmTrainConfig,
                           out_path: str | Path, *, micro_spec: FeatureSpec | None = None,
                           instrument: str | None = None, timeout_s: float | None = None,
                           parent: RegimeModel | None = None,
                           on_progress: TrainingProgress | None = None) -> TrainingOutcome:
    """Train in a spawned process and save the model to `out_path`; blocks the calling thread.

    Run it in an executor thread (loop.run_in_executor). On timeout (cfg.timeout_s unless
    given) the worker is terminated and an error is returned; a crashed worker is
    reported with its exit code. Never raises for training failures. Use TrainingJob
    directly to be able to cancel.
    """
    job = TrainingJob(bars, spec, cfg, out_path, micro_spec=micro_spec, instrument=instrument,
                      timeout_s=timeout_s, parent=parent, on_progress=on_progress)
    job.start()
    return job.wait()


def _stop(proc: Any) -> None:
    proc.terminate()
    proc.join(5.0)
    if proc.is_alive():
        proc.kill()
        proc.join(5.0)
