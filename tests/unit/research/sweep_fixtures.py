"""Shared inputs of the sweep tests: small real klines files cut from the recorded months, a small grid."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "marketdata" / "binance_spot_klines_1m"
BTC = FIXTURES / "BTCUSDT_1m_2025-03.csv"
ETH = FIXTURES / "ETHUSDT_1m_2025-03.csv"

# Small windows: a trial trains in about a second (README "small.toml").
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
micro_states = 2
n_restarts = 1
max_iter = 8
min_bars_per_state = 20
min_regime_bars = 100
window_bars = 4000
{train}
"""


def head_lines(src: Path, dst: Path, n_bars: int) -> Path:
    """The header and the first `n_bars` rows of a recorded month."""
    if not src.exists():
        pytest.skip(f"recorded klines missing: {src}")
    with src.open() as fh:
        lines = [next(fh) for _ in range(n_bars + 1)]
    dst.write_text("".join(lines))
    return dst


def grid_file(tmp: Path, train: str = "", tail: str = "", name: str = "grid.toml") -> Path:
    """A grid file: the small fixed windows, `train` lines inside [hmm.train], `tail` tables after."""
    p = tmp / name
    p.write_text(SMALL_HMM.replace("{train}", train) + "\n" + tail)
    return p
