"""Inference tables: a model run over base bars exactly as the live tracker runs it.

`infer_table` (CLI `infer`) runs a model over base bars (batch features equal online
ones; each filter starts at its level's first complete feature row and treats a NaN row
as missing) and returns, per bar of each level and per HMM, the standardised feature
vector it consumed and its filtered posterior. `infer_levels` is the same run as arrays
(the walk-forward evaluation in `nautilus_hmm.evaluate` scores it). Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from nautilus_hmm.hmm.filter import ForwardFilter
from nautilus_hmm.hmm.model import HmmParams, RegimeModel
from nautilus_hmm.hmm.train import LevelData, prepare_level
from nautilus_hmm.marketdata.replay import NS_PER_S, BarArrays

# ---------------------------------------------------------------- inference


@dataclass(frozen=True, slots=True)
class LevelInference:
    """One level over some bars: features, and each HMM's filtered posteriors (NaN before ready)."""

    level: LevelData
    interval_s: int
    posteriors: tuple[np.ndarray, ...]  # per HMM: (T, K)
    loglik_steps: tuple[np.ndarray, ...]  # per HMM: (T,) one-step predictive log-density (NaN if none)

    @property
    def close_ns(self) -> np.ndarray:
        """When each bar of the level closed."""
        return self.level.bars.ts_open_ns + self.interval_s * NS_PER_S


def _run_filter(params: HmmParams, z: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors and per-step predictive log-densities from the first valid row on."""
    t_len, k = z.shape[0], params.n_states
    post = np.full((t_len, k), np.nan)
    steps = np.full(t_len, np.nan)
    first = np.flatnonzero(valid)
    if not first.size:
        return post, steps
    filt: ForwardFilter = params.filter()
    for t in range(int(first[0]), t_len):
        before = filt.log_likelihood
        post[t] = filt.update(z[t])
        if valid[t]:
            steps[t] = filt.log_likelihood - before
    return post, steps


def infer_levels(model: RegimeModel, bars: BarArrays) -> tuple[LevelInference, LevelInference, np.ndarray]:
    """Macro and micro inference over base bars, and the macro regime in force at each micro bar (-1 = none)."""
    base = model.base_interval_s
    macro = prepare_level("macro", bars, model.macro.features, model.macro.interval_s, base,
                          scaler=model.macro.scaler)
    micro = prepare_level("micro", bars, model.micro.features, model.micro.interval_s, base,
                          scaler=model.micro.scaler)
    m_post, m_steps = _run_filter(model.macro.hmm, macro.z, macro.valid)
    micro_runs = [_run_filter(h, micro.z, micro.valid) for h in model.micro.hmms]
    macro_inf = LevelInference(macro, model.macro.interval_s, (m_post,), (m_steps,))
    micro_inf = LevelInference(micro, model.micro.interval_s, tuple(p for p, _ in micro_runs),
                               tuple(s for _, s in micro_runs))
    # The regime of a micro bar: argmax of the last macro bar closed at or before it closed.
    macro_close = macro.bars.ts_open_ns + model.macro.interval_s * NS_PER_S
    micro_close = micro.bars.ts_open_ns + model.micro.interval_s * NS_PER_S
    idx = np.searchsorted(macro_close, micro_close, side="right") - 1
    regime = np.full(len(micro.bars), -1, dtype=np.int64)
    ok = idx >= 0
    ready = ~np.isnan(m_post[:, 0])
    arg = np.where(ready, np.nan_to_num(m_post).argmax(axis=1), -1)
    regime[ok] = arg[idx[ok]]
    return macro_inf, micro_inf, regime


def _fmt_time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def infer_table(model: RegimeModel, bars: BarArrays) -> tuple[list[str], list[list[Any]]]:
    """CSV header and rows: per bar of each level and per HMM, z features and posteriors.

    Columns: level, hmm, ts_open_ns, time_utc, active, state, z_<feature>..., p_0...
    (documented in docs/HMM.md). Rows are in the order the live tracker processes bars
    (by close time; macro before micro on a shared close).
    """
    macro, micro, regime = infer_levels(model, bars)
    names = list(model.macro.features.names)
    names += [n for n in model.micro.features.names if n not in names]
    k_max = max(model.macro.hmm.n_states, *(h.n_states for h in model.micro.hmms))
    header = ["level", "hmm", "ts_open_ns", "time_utc", "active", "state",
              *(f"z_{n}" for n in names), *(f"p_{i}" for i in range(k_max))]
    keyed: list[tuple[int, int, int, list[Any]]] = []

    def emit(level: str, inf: LevelInference, h: int, params: HmmParams, active: np.ndarray, order: int) -> None:
        cols = [names.index(n) for n in (model.macro.features.names if level == "macro"
                                         else model.micro.features.names)]
        z, post = inf.level.z, inf.posteriors[h]
        ts, close = inf.level.bars.ts_open_ns, inf.close_ns
        for t in range(len(ts)):
            zrow: list[Any] = [""] * len(names)
            if inf.level.valid[t]:
                for j, c in enumerate(cols):
                    zrow[c] = repr(float(z[t, j]))
            ready = not np.isnan(post[t, 0])
            prow: list[Any] = [""] * k_max
            state = ""
            if ready:
                for i in range(params.n_states):
                    prow[i] = repr(float(post[t, i]))
                state = params.labels[int(post[t].argmax())]
            row = [level, h, int(ts[t]), _fmt_time(int(ts[t])), int(bool(active[t])), state, *zrow, *prow]
            keyed.append((int(close[t]), order, h, row))

    emit("macro", macro, 0, model.macro.hmm, np.ones(len(macro.level.bars), dtype=bool), 0)
    for h, params in enumerate(model.micro.hmms):
        emit("micro", micro, h, params, regime == h, 1)
    keyed.sort(key=lambda r: (r[0], r[1], r[2]))
    return header, [r[3] for r in keyed]
