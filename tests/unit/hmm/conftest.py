"""Shared data for the regime-model tests: the real BTCUSDT 1m klines, read with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nautilus_hmm.hmm.bars import BarArrays
from tests.conftest import fixture_path


def read_klines_csv(path: Path) -> BarArrays:
    """Tiny local reader: header timestamp,open,high,low,close,volume; UTC timestamps."""
    with path.open() as fh:
        header = fh.readline().strip()
    assert header == "timestamp,open,high,low,close,volume", header
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str)
    ts_ns = raw[:, 0].astype("datetime64[ns]").astype(np.int64)
    cols = raw[:, 1:].astype(np.float64)
    return BarArrays(ts_ns=ts_ns, open=cols[:, 0], high=cols[:, 1], low=cols[:, 2],
                     close=cols[:, 3], volume=cols[:, 4])


@pytest.fixture(scope="session")
def btc_1m() -> BarArrays:
    """BTCUSDT 1m klines, March 2025 (44 640 bars)."""
    return read_klines_csv(
        fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    )
