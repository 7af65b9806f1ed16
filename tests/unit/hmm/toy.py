"""A hand-built regime model (no training, no torch) for model and policy tests."""

from __future__ import annotations

import numpy as np

from nautilus_hmm.hmm.features import FeatureSpec, Scaler
from nautilus_hmm.hmm.model import (
    FitInfo,
    HmmParams,
    MacroLevel,
    MicroLevel,
    RegimeModel,
    StateStats,
    TrainingInfo,
)

SPEC = FeatureSpec(return_horizons=(1, 3), vol_windows=(4,), volume_window=0, atr_window=0, trend_window=0)
D = SPEC.n_features  # 3


def state(label: str, next_ret: float, vol: float) -> StateStats:
    return StateStats(label=label, mean_return=next_ret, volatility=vol, expected_next_return=next_ret,
                      dwell_bars=10.0, expected_dwell_bars=12.0, occupancy=0.5)


def hmm(states: tuple[StateStats, ...], covariance_type: str = "full", stay: float = 0.9) -> HmmParams:
    k = len(states)
    trans = np.full((k, k), (1.0 - stay) / (k - 1))
    np.fill_diagonal(trans, stay)
    means = np.array([[i - (k - 1) / 2.0, 0.1 * i, 1.0] for i in range(k)])
    covars = np.array([np.eye(D) * (1.0 + 0.1 * i) for i in range(k)])
    if covariance_type == "full":
        covars[:, 0, 1] = covars[:, 1, 0] = 0.2
    return HmmParams(
        covariance_type=covariance_type, startprob=np.full(k, 1.0 / k), transmat=trans, means=means,
        covars=covars, states=states,
        fit=FitInfo(log_likelihood=-1234.5, bic=2600.0, n_obs=1000, n_params=20, n_iter=12,
                    converged=True, n_restarts=3, best_restart=1),
    )


def toy_model(
    micro_states: tuple[tuple[StateStats, ...], ...] | None = None,
    macro_states: tuple[StateStats, ...] | None = None,
) -> RegimeModel:
    """Macro: 2 states (down, up) on 1h bars; micro: 2 states per macro regime on 5m bars.

    Default micro stats: per 5m bar, 'down' -0.001 / vol 0.002, 'up' +0.001 / vol 0.002.
    """
    macro_states = macro_states or (state("down", -0.004, 0.01), state("up", 0.004, 0.01))
    default_micro = (state("down", -0.001, 0.002), state("up", 0.001, 0.002))
    micro_states = micro_states or (default_micro, default_micro)
    scaler = Scaler(mean=np.zeros(D), std=np.ones(D))
    return RegimeModel(
        created_at="2026-01-01T00:00:00Z", instrument="sim:BTCUSDT", base_interval_s=60,
        macro=MacroLevel(interval_s=3600, features=SPEC, scaler=scaler, hmm=hmm(macro_states)),
        micro=MicroLevel(interval_s=300, features=SPEC, scaler=scaler,
                         hmms=tuple(hmm(s, "diag") for s in micro_states)),
        training=TrainingInfo(first_ts_ns=0, last_ts_ns=10**12, n_bars=1000, data_sha256="ab" * 32,
                              config={"macro_states": 2}, duration_s=1.5),
        library_versions={"numpy": np.__version__, "pomegranate": "1.1.2", "torch": "2.13.0"},
    )
