"""Bars for the regime model from the rest of the system: data files and bus bars.

The model trains on the loader's `marketdata.replay.BarArrays` (one column form of bars
for the whole system); this module resamples them to the model's base interval, converts
`OhlcvBar` rows and keeps the daemon's training window (`BarRing`). Bad files raise
`core.errors.DataError` naming the file and line (from the loader); bars that cannot be
brought to the base interval raise `BarDataError`. numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from nautilus_hmm.marketdata.bars import OhlcvBar, resample_bars
from nautilus_hmm.marketdata.replay import QUOTE_FIELDS, BarArrays, BarDataError


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
    return to_base_interval(market, int(market.interval_s), base_interval_s, str(path))


def from_ohlcv(rows: Sequence[OhlcvBar] | Iterable[OhlcvBar]) -> BarArrays:
    """BarArrays from OhlcvBar rows (ts_ns, open, high, low, close, volume); interval_s 0 (unstated)."""
    rows = list(rows)
    if not rows:
        empty = np.empty(0)
        return BarArrays(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
    arr = np.array(rows, dtype=np.float64)
    ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return BarArrays(ts_open_ns=ts, open=arr[:, 1], high=arr[:, 2], low=arr[:, 3], close=arr[:, 4],
                     volume=arr[:, 5])


def to_ohlcv(bars: BarArrays) -> list[OhlcvBar]:
    """OhlcvBar rows of BarArrays."""
    cols = (bars.ts_open_ns.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
            bars.close.tolist(), bars.volume.tolist())
    return [OhlcvBar(*row) for row in zip(*cols, strict=True)]


_NO_QUOTE = (np.nan, np.nan, np.nan, np.nan)


class BarRing:
    """The last `capacity` base bars as numpy columns: O(1) append, one copy to read.

    The daemon keeps its training window here so that starting a training copies a few
    MB with numpy instead of converting tens of thousands of Python objects. Each bar may
    carry the top of book at its close (bid, ask, bid_size, ask_size; NaN when none):
    `last()` returns the quote columns when any bar of the range has one, so a model with
    quote features trains on the bars that had quotes (the others are invalid rows).
    """

    __slots__ = ("_cols", "_n", "_next", "_quotes", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity {capacity}: must be >= 1")
        self.capacity = capacity
        self._cols = (np.empty(capacity, dtype=np.int64), *(np.empty(capacity) for _ in range(5)))
        self._quotes = tuple(np.full(capacity, np.nan) for _ in range(4))
        self._n = 0
        self._next = 0

    def __len__(self) -> int:
        return self._n

    def append(self, bar: OhlcvBar, quote: tuple[float, float, float, float] | None = None) -> None:
        """Add one bar (the oldest is dropped when full)."""
        i = self._next
        for col, value in zip(self._cols, bar, strict=True):
            col[i] = value
        for col, value in zip(self._quotes, quote or _NO_QUOTE, strict=True):
            col[i] = value
        self._next = (i + 1) % self.capacity
        self._n = min(self._n + 1, self.capacity)

    def extend(self, bars: BarArrays) -> None:
        """Add many bars at once, oldest first (vectorised `append`)."""
        src = [bars.ts_open_ns, bars.open, bars.high, bars.low, bars.close, bars.volume]
        k = len(bars)
        quotes = [getattr(bars, f) for f in QUOTE_FIELDS] if bars.has_quotes else [np.full(k, np.nan)] * 4
        src += quotes
        if k > self.capacity:
            src = [a[k - self.capacity:] for a in src]
            k = self.capacity
        if k == 0:
            return
        idx = np.arange(self._next, self._next + k) % self.capacity
        for col, a in zip((*self._cols, *self._quotes), src, strict=True):
            col[idx] = a
        self._next = (self._next + k) % self.capacity
        self._n = min(self._n + k, self.capacity)

    def last(self, n: int | None = None) -> BarArrays:
        """The newest `n` bars (all when None) as a new BarArrays, oldest first."""
        n = self._n if n is None else max(0, min(n, self._n))
        idx = (np.arange(self._next - n, self._next) % self.capacity) if n else np.empty(0, dtype=np.int64)
        ts, o, h, lo, c, v = (col[idx] for col in self._cols)
        bid, ask, bsz, asz = (col[idx] for col in self._quotes)
        if not np.isfinite(bid).any():
            return BarArrays(ts_open_ns=ts, open=o, high=h, low=lo, close=c, volume=v)
        return BarArrays(ts_open_ns=ts, open=o, high=h, low=lo, close=c, volume=v,
                         bid=bid, ask=ask, bid_size=bsz, ask_size=asz)

    def resized(self, capacity: int) -> BarRing:
        """A ring of another capacity holding the newest bars of this one."""
        out = BarRing(capacity)
        out.extend(self.last(capacity))
        return out
