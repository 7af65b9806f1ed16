"""Bars for the regime model from the rest of the system: data files and bus bars.

`marketdata.replay.BarArrays` (the loader's columns, `ts_open_ns` + `interval_s`) and
`hmm.bars.BarArrays` (training input, `ts_ns`) are two shapes of the same bars; this module
converts between them and resamples to the model's base interval. Bad files raise
`core.errors.DataError` naming the file and line (from the loader); bars that cannot be
brought to the base interval raise `BarDataError`. numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nautilus_hmm.hmm.bars import BarArrays, OhlcvBar, resample_bars
from nautilus_hmm.hmm.errors import BarDataError


def from_market_bars(bars: Any) -> BarArrays:
    """hmm BarArrays from a `marketdata.replay.BarArrays` (ts_open_ns → ts_ns; views, no copy)."""
    return BarArrays(ts_ns=bars.ts_open_ns, open=bars.open, high=bars.high, low=bars.low,
                     close=bars.close, volume=bars.volume)


def to_base_interval(bars: BarArrays, interval_s: int, base_interval_s: int, what: str = "bars") -> BarArrays:
    """Bars of `interval_s` as bars of `base_interval_s` (resampled when base is a multiple).

    Raises BarDataError when the data's interval is longer than the base interval or does
    not divide it: such bars cannot be turned into base bars.
    """
    if interval_s == base_interval_s:
        return bars
    if interval_s > base_interval_s or base_interval_s % interval_s:
        raise BarDataError(f"{what}.interval_s", None,
                           f"{interval_s} s bars cannot make the model's {base_interval_s} s base bars "
                           f"(the base interval must be a multiple of the data's)")
    return resample_bars(bars, base_interval_s, interval_s)


def load_base_bars(path: str | Path, base_interval_s: int) -> BarArrays:
    """Read a klines file (any layout `marketdata.replay.load_bars` knows) as base bars.

    Raises DataError (file, line, problem) for a bad file and BarDataError for an
    interval that does not fit the base interval.
    """
    from nautilus_hmm.marketdata.replay import load_bars

    market = load_bars(path)
    return to_base_interval(from_market_bars(market), int(market.interval_s), base_interval_s, str(path))


def from_ohlcv(rows: Sequence[OhlcvBar] | Iterable[OhlcvBar]) -> BarArrays:
    """hmm BarArrays from OhlcvBar rows (ts_ns, open, high, low, close, volume)."""
    rows = list(rows)
    if not rows:
        empty = np.empty(0)
        return BarArrays(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
    arr = np.array(rows, dtype=np.float64)
    ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return BarArrays(ts_ns=ts, open=arr[:, 1], high=arr[:, 2], low=arr[:, 3], close=arr[:, 4],
                     volume=arr[:, 5])


def to_ohlcv(bars: BarArrays) -> list[OhlcvBar]:
    """OhlcvBar rows of hmm BarArrays."""
    cols = (bars.ts_ns.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
            bars.close.tolist(), bars.volume.tolist())
    return [OhlcvBar(*row) for row in zip(*cols, strict=True)]
