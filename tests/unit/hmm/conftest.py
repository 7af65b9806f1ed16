"""Shared data for the regime-model tests: the real BTCUSDT 1m klines, read with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nautilus_hmm.hmm.config import HmmTrainConfig
from nautilus_hmm.hmm.features import FeatureSpec
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.marketdata.replay import BarArrays
from tests.conftest import fixture_path


def read_klines_csv(path: Path) -> BarArrays:
    """Tiny local reader: header timestamp,open,high,low,close,volume; UTC timestamps."""
    with path.open() as fh:
        header = fh.readline().strip()
    assert header == "timestamp,open,high,low,close,volume", header
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str)
    ts_ns = raw[:, 0].astype("datetime64[ns]").astype(np.int64)
    cols = raw[:, 1:].astype(np.float64)
    return BarArrays(ts_open_ns=ts_ns, open=cols[:, 0], high=cols[:, 1], low=cols[:, 2],
                     close=cols[:, 3], volume=cols[:, 4])


@pytest.fixture(scope="session")
def btc_1m() -> BarArrays:
    """BTCUSDT 1m klines, March 2025 (44 640 bars)."""
    return read_klines_csv(
        fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    )


# Small but real: 6 days of 1m bars → 30m macro bars (K=2) and 5m micro bars (K=2).
SMALL_SPEC = FeatureSpec(return_horizons=(1, 4), vol_windows=(8,), volume_window=8, atr_window=4,
                         trend_window=8)
SMALL_CFG = HmmTrainConfig(base_interval_s=60, macro_interval_s=1800, micro_interval_s=300,
                           macro_states=2, micro_states=2, n_restarts=2, max_iter=15, tol=1e-4,
                           min_bars_per_state=20, min_regime_bars=100, chunk_bars=128)
SMALL_BARS = 6 * 1440


@pytest.fixture(scope="session")
def small_training(btc_1m: BarArrays) -> tuple[BarArrays, RegimeModel]:
    """A model trained once per session on the first 6 days (imports pomegranate/torch)."""
    from nautilus_hmm.hmm.train import train_model

    bars = btc_1m.slice(0, SMALL_BARS)
    return bars, train_model(bars, SMALL_SPEC, SMALL_CFG, instrument="binance_spot:BTCUSDT")
