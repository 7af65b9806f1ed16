"""OHLCV bar arrays for training/research, their fingerprint, and bar resampling.

`BarArrays` is the plain-numpy input of training (`ts_ns` = bar open time, UTC ns).
Resampling groups base bars into buckets aligned to multiples of the target interval
since the epoch; a bucket's bar is stamped with the bucket start (the open time, like
`messages.Bar`). Online (`BarResampler`) and batch (`resample_bars`) produce the same
bars: a bucket is emitted once its last base bar arrived, or, when base bars are missing,
once a bar of a later bucket arrives (it then holds the bars it got). The batch version
drops a trailing bucket that is not complete, because online it would not be emitted yet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nautilus_hmm.hmm.errors import BarDataError

NS_PER_S = 1_000_000_000
PRICE_FIELDS = ("open", "high", "low", "close")
QUOTE_FIELDS = ("bid", "ask", "bid_size", "ask_size")


class OhlcvBar(NamedTuple):
    """One bar: open time (ns) and OHLCV."""

    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class BarArrays:
    """Column arrays of consecutive bars; quotes (bid/ask/sizes at bar close) are optional."""

    ts_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    bid: np.ndarray | None = None
    ask: np.ndarray | None = None
    bid_size: np.ndarray | None = None
    ask_size: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts_ns", np.ascontiguousarray(self.ts_ns, dtype=np.int64))
        n = self.ts_ns.shape[0]
        if self.ts_ns.ndim != 1:
            raise BarDataError("ts_ns", None, f"expected a 1-D array, got shape {self.ts_ns.shape}")
        for name in (*PRICE_FIELDS, "volume", *QUOTE_FIELDS):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.ascontiguousarray(value, dtype=np.float64)
            if arr.shape != (n,):
                raise BarDataError(name, None, f"shape {arr.shape} does not match ts_ns ({n},)")
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])

    @property
    def has_quotes(self) -> bool:
        """True when all four quote columns are present."""
        return all(getattr(self, f) is not None for f in QUOTE_FIELDS)

    def slice(self, start: int, stop: int) -> BarArrays:
        """Rows [start, stop) as a new BarArrays (views)."""
        kw = {f: (None if getattr(self, f) is None else getattr(self, f)[start:stop])
              for f in ("ts_ns", *PRICE_FIELDS, "volume", *QUOTE_FIELDS)}
        return BarArrays(**kw)

    def validate(self, name: str = "bars") -> None:
        """Raise BarDataError naming the first bad value (non-finite, non-positive price,
        high < low, negative volume, timestamps not strictly increasing)."""
        for f in PRICE_FIELDS:
            arr = getattr(self, f)
            bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0.0))
            if bad.size:
                i = int(bad[0])
                raise BarDataError(f"{name}.{f}", i, f"{float(arr[i])!r}: prices must be finite and > 0")
        bad = np.flatnonzero(~np.isfinite(self.volume) | (self.volume < 0.0))
        if bad.size:
            i = int(bad[0])
            raise BarDataError(f"{name}.volume", i, f"{float(self.volume[i])!r}: must be finite and >= 0")
        bad = np.flatnonzero(self.high < self.low)
        if bad.size:
            i = int(bad[0])
            raise BarDataError(f"{name}.high", i, f"{float(self.high[i])!r} is below low {float(self.low[i])!r}")
        if len(self) > 1:
            bad = np.flatnonzero(np.diff(self.ts_ns) <= 0)
            if bad.size:
                i = int(bad[0]) + 1
                raise BarDataError(
                    f"{name}.ts_ns", i,
                    f"{int(self.ts_ns[i])} is not after the previous bar's {int(self.ts_ns[i - 1])}",
                )

    def sha256(self) -> str:
        """Hex sha256 of ts_ns (int64 LE) then open, high, low, close, volume (float64 LE)."""
        h = hashlib.sha256()
        h.update(self.ts_ns.astype("<i8", copy=False).tobytes())
        for f in (*PRICE_FIELDS, "volume"):
            h.update(getattr(self, f).astype("<f8", copy=False).tobytes())
        return h.hexdigest()


def bucket_start_ns(ts_ns: int, interval_s: int) -> int:
    """Start of the interval-aligned bucket holding `ts_ns`."""
    step = interval_s * NS_PER_S
    return (ts_ns // step) * step


def _check_intervals(interval_s: int, base_interval_s: int) -> None:
    if base_interval_s <= 0 or interval_s <= 0:
        raise BarDataError("interval_s", None, f"intervals must be > 0 (got {interval_s}, base {base_interval_s})")
    if interval_s % base_interval_s:
        raise BarDataError(
            "interval_s", None, f"{interval_s} s is not a multiple of the base interval {base_interval_s} s"
        )


class BarResampler:
    """Online resampling of base bars into `interval_s` bars (O(1) per bar)."""

    __slots__ = ("_base_ns", "_bucket", "_close", "_high", "_last_ts", "_low", "_open", "_step_ns",
                 "_volume", "base_interval_s", "interval_s")

    def __init__(self, interval_s: int, base_interval_s: int) -> None:
        _check_intervals(interval_s, base_interval_s)
        self.interval_s = interval_s
        self.base_interval_s = base_interval_s
        self._step_ns = interval_s * NS_PER_S
        self._base_ns = base_interval_s * NS_PER_S
        self._bucket: int | None = None
        self._last_ts: int | None = None
        self._open = self._high = self._low = self._close = self._volume = 0.0

    def update(self, ts_ns: int, open: float, high: float, low: float, close: float,
               volume: float) -> list[OhlcvBar]:
        """Feed one base bar; return the bars completed by it (usually none or one).

        A bar not after the previous one is rejected with BarDataError (state unchanged).
        """
        if self._last_ts is not None and ts_ns <= self._last_ts:
            raise BarDataError("ts_ns", None, f"{ts_ns} is not after the previous bar's {self._last_ts}")
        out: list[OhlcvBar] = []
        bucket = (ts_ns // self._step_ns) * self._step_ns
        if self._bucket is not None and bucket != self._bucket:
            out.append(self._emit())  # a gap: the previous bucket never got its last bar
        if self._bucket is None:
            self._bucket = bucket
            self._open, self._high, self._low, self._volume = open, high, low, volume
        else:
            self._high = max(self._high, high)
            self._low = min(self._low, low)
            self._volume += volume
        self._close = close
        self._last_ts = ts_ns
        if ts_ns + self._base_ns >= bucket + self._step_ns:
            out.append(self._emit())
        return out

    def _emit(self) -> OhlcvBar:
        assert self._bucket is not None
        bar = OhlcvBar(self._bucket, self._open, self._high, self._low, self._close, self._volume)
        self._bucket = None
        return bar


def resample_bars(bars: BarArrays, interval_s: int, base_interval_s: int) -> BarArrays:
    """Batch resampling with the same buckets and emission rule as BarResampler.

    Quote columns, when present, take the last value of each bucket.
    """
    _check_intervals(interval_s, base_interval_s)
    n = len(bars)
    if n == 0:
        return bars
    step = interval_s * NS_PER_S
    buckets = (bars.ts_ns // step) * step
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], n]  # exclusive
    high = np.maximum.reduceat(bars.high, starts)
    low = np.minimum.reduceat(bars.low, starts)
    keep = starts.size
    # A trailing bucket is emitted only once its last base bar has arrived.
    if bars.ts_ns[-1] + base_interval_s * NS_PER_S < buckets[-1] + step:
        keep -= 1
    if keep == 0:
        return bars.slice(0, 0)
    starts, ends = starts[:keep], ends[:keep]
    last = ends - 1
    kw: dict[str, np.ndarray | None] = {
        "ts_ns": buckets[starts],
        "open": bars.open[starts],
        "high": high[:keep],
        "low": low[:keep],
        "close": bars.close[last],
        "volume": _sequential_segment_sums(bars.volume, starts, ends),
    }
    for f in QUOTE_FIELDS:
        col = getattr(bars, f)
        kw[f] = None if col is None else col[last]
    return BarArrays(**kw)


def _sequential_segment_sums(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Left-to-right sums of each segment (the same order the online resampler adds in)."""
    width = int((ends - starts).max())
    out = values[starts].copy()
    for k in range(1, width):
        idx = starts + k
        ok = idx < ends
        out[ok] += values[idx[ok]]
    return out
