"""A small model trained once per session on the first 6 days of the real BTCUSDT 1m klines."""

from __future__ import annotations

import tomllib

import pytest

from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.marketdata.replay import BarArrays, load_bars
from tests.conftest import fixture_path

SMALL_HMM = """
[hmm.features]
return_horizons = [1, 4]
vol_windows = [8]
volume_window = 8
atr_window = 4
trend_window = 8
[hmm.train]
macro_interval_s = 1800
micro_interval_s = 300
macro_states = 2
micro_states = 2
n_restarts = 1
max_iter = 10
min_bars_per_state = 20
min_regime_bars = 100
chunk_bars = 128
window_bars = 8640
[strategy]
kind = "hmm"
instruments = ["sim:BTCUSDT"]
"""
TRAIN_BARS = 6 * 1440


@pytest.fixture(scope="session")
def config() -> Config:
    return parse(Config, tomllib.loads(SMALL_HMM))


@pytest.fixture(scope="session")
def klines() -> BarArrays:
    return load_bars(fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv"))


@pytest.fixture(scope="session")
def trained(config: Config, klines: BarArrays) -> RegimeModel:
    from nautilus_hmm.hmm.train import train_model

    bars = klines.slice(0, TRAIN_BARS)
    return train_model(bars, config.hmm.features.spec(), config.hmm.train, instrument="binance_spot:BTCUSDT")
