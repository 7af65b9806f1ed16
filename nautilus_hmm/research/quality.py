"""Data-quality report of one bar file: gaps, duplicates, zero-volume runs, outliers.

Pure (numpy only, no I/O besides `to_json`): `assess` looks at the rows that went into a
file *before* de-duplication, so a duplicate that the writer dropped is still reported.

* **gaps**: bar open times missing from the interval grid over the expected range
  `[start_ms, end_ms)` (leading and trailing holes count), as runs `(first missing open,
  last missing open, bars)`.
* **duplicates**: open times seen more than once; `conflicting` when the copies differ in
  any of OHLCV (the writer keeps the first copy, by source priority).
* **off_grid**: open times that are not a multiple of the interval.
* **zero_volume_runs**: runs of consecutive bars with volume 0 at least
  `zero_volume_min_run` long (a halted or illiquid market); every zero-volume bar is counted.
* **outliers**: bars whose close-to-close log return is more than `outlier_z` robust
  standard deviations (1.4826 x the median absolute deviation) from the median, and bars
  whose OHLC is inconsistent (high below open/close/low, low above open/close, a price <= 0).

Every list in the JSON is capped at `MAX_LISTED` entries; the counts are always complete.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

MAX_LISTED = 50
DEFAULT_ZERO_VOLUME_MIN_RUN = 5
DEFAULT_OUTLIER_Z = 30.0
MAD_TO_SIGMA = 1.4826


def iso_ms(ts_ms: int) -> str:
    """Epoch ms → `2025-03-01T00:00:00Z`."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class QualityReport:
    """What `assess` found in one file (counts complete, lists capped at MAX_LISTED)."""

    file: str
    interval_ms: int
    start_ms: int
    end_ms: int
    rows_in: int  # rows before de-duplication
    rows_out: int  # distinct open times on the grid
    expected_bars: int
    missing_bars: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    gap_count: int = 0
    duplicate_count: int = 0
    conflicting_duplicate_count: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    off_grid_count: int = 0
    off_grid: list[int] = field(default_factory=list)
    zero_volume_bars: int = 0
    zero_volume_run_count: int = 0
    longest_zero_volume_run: int = 0
    zero_volume_runs: list[dict[str, Any]] = field(default_factory=list)
    outlier_count: int = 0
    outliers: list[dict[str, Any]] = field(default_factory=list)
    invalid_ohlc_count: int = 0
    invalid_ohlc: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """Nothing to report."""
        return not (self.missing_bars or self.duplicate_count or self.off_grid_count or self.zero_volume_run_count
                    or self.outlier_count or self.invalid_ohlc_count)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (with `clean` and ISO start/end beside the epoch ms)."""
        d = asdict(self)
        d["clean"] = self.clean
        d["start"] = iso_ms(self.start_ms)
        d["end"] = iso_ms(self.end_ms)
        return d

    def summary_line(self) -> str:
        """One line for the printed summary."""
        parts = [f"{self.rows_out}/{self.expected_bars} bars"]
        if self.missing_bars:
            parts.append(f"{self.missing_bars} missing in {self.gap_count} gap(s)")
        if self.duplicate_count:
            parts.append(f"{self.duplicate_count} duplicate(s) ({self.conflicting_duplicate_count} conflicting)")
        if self.off_grid_count:
            parts.append(f"{self.off_grid_count} off the grid")
        if self.zero_volume_run_count:
            parts.append(f"{self.zero_volume_run_count} zero-volume run(s), longest {self.longest_zero_volume_run}")
        if self.outlier_count:
            parts.append(f"{self.outlier_count} outlier(s)")
        if self.invalid_ohlc_count:
            parts.append(f"{self.invalid_ohlc_count} inconsistent OHLC")
        if self.clean:
            parts.append("clean")
        return ", ".join(parts)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs where `mask` is True."""
    if not mask.size:
        return []
    m = np.concatenate(([False], mask, [False])).astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == 1)
    stops = np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def assess(
    file: str,
    ts_ms: np.ndarray,
    ohlcv: np.ndarray,
    *,
    interval_ms: int,
    start_ms: int,
    end_ms: int,
    zero_volume_min_run: int = DEFAULT_ZERO_VOLUME_MIN_RUN,
    outlier_z: float = DEFAULT_OUTLIER_Z,
) -> QualityReport:
    """Assess rows (`ts_ms` open times, `ohlcv` shape (n, 5), any order, duplicates allowed)
    expected to cover `[start_ms, end_ms)` on a grid of `interval_ms`."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms = {interval_ms}: must be > 0")
    ts = np.asarray(ts_ms, dtype=np.int64)
    vals = np.asarray(ohlcv, dtype=np.float64).reshape(len(ts), 5)
    order = np.argsort(ts, kind="stable")
    ts, vals = ts[order], vals[order]
    first_grid = -(-start_ms // interval_ms) * interval_ms
    expected = max(0, -(-(end_ms - first_grid) // interval_ms))
    rep = QualityReport(file=file, interval_ms=interval_ms, start_ms=start_ms, end_ms=end_ms, rows_in=len(ts),
                        rows_out=0, expected_bars=expected,
                        settings={"zero_volume_min_run": zero_volume_min_run, "outlier_z": outlier_z})

    # duplicates (first copy kept)
    if len(ts) > 1:
        same = np.flatnonzero(ts[1:] == ts[:-1]) + 1
        rep.duplicate_count = len(same)
        for i in same.tolist():
            j = i - 1
            while j > 0 and ts[j - 1] == ts[i]:
                j -= 1
            conflicting = not np.array_equal(vals[i], vals[j])
            rep.conflicting_duplicate_count += conflicting
            if len(rep.duplicates) < MAX_LISTED:
                rep.duplicates.append({"open_time_ms": int(ts[i]), "open_time": iso_ms(int(ts[i])),
                                       "conflicting": conflicting})
    keep = np.ones(len(ts), dtype=bool)
    if len(ts) > 1:
        keep[1:] = ts[1:] != ts[:-1]
    ts, vals = ts[keep], vals[keep]

    # off the grid
    off = np.flatnonzero(ts % interval_ms != 0)
    rep.off_grid_count = len(off)
    rep.off_grid = [int(ts[i]) for i in off[:MAX_LISTED]]
    on = ts % interval_ms == 0
    ts_on = ts[on]
    in_range = ts_on[(ts_on >= start_ms) & (ts_on < end_ms)]
    rep.rows_out = len(in_range)

    # gaps over the expected grid
    if expected:
        slots = np.zeros(expected, dtype=bool)
        slots[(in_range - first_grid) // interval_ms] = True
        for a, b in _runs(~slots):
            rep.gap_count += 1
            rep.missing_bars += b - a
            if len(rep.gaps) < MAX_LISTED:
                first, last = first_grid + a * interval_ms, first_grid + (b - 1) * interval_ms
                rep.gaps.append({"first_missing_ms": first, "last_missing_ms": last, "bars": b - a,
                                 "first_missing": iso_ms(first), "last_missing": iso_ms(last)})

    o, h, lo, c, v = (vals[:, k] for k in range(5))
    # zero-volume runs
    zero = v == 0.0
    rep.zero_volume_bars = int(zero.sum())
    for a, b in _runs(zero):
        n = b - a
        rep.longest_zero_volume_run = max(rep.longest_zero_volume_run, n)
        if n >= zero_volume_min_run:
            rep.zero_volume_run_count += 1
            if len(rep.zero_volume_runs) < MAX_LISTED:
                rep.zero_volume_runs.append({"first_ms": int(ts[a]), "last_ms": int(ts[b - 1]), "bars": n,
                                             "first": iso_ms(int(ts[a]))})

    # inconsistent OHLC
    bad = (h < np.maximum(o, c)) | (lo > np.minimum(o, c)) | (h < lo) | (np.minimum.reduce([o, h, lo, c]) <= 0)
    bad |= ~np.isfinite(vals).all(axis=1)
    for i in np.flatnonzero(bad).tolist():
        rep.invalid_ohlc_count += 1
        if len(rep.invalid_ohlc) < MAX_LISTED:
            rep.invalid_ohlc.append({"open_time_ms": int(ts[i]), "open_time": iso_ms(int(ts[i])),
                                     "ohlc": [float(x) for x in vals[i, :4]]})

    # return outliers (robust z of close-to-close log returns)
    good_c = c > 0
    if int(good_c.sum()) > 10:
        idx = np.flatnonzero(good_c)
        r = np.diff(np.log(c[idx]))
        med = float(np.median(r))
        mad = float(np.median(np.abs(r - med)))
        sigma = MAD_TO_SIGMA * mad
        if sigma > 0 and math.isfinite(sigma):
            z = (r - med) / sigma
            for k in np.flatnonzero(np.abs(z) > outlier_z).tolist():
                i = int(idx[k + 1])
                rep.outlier_count += 1
                if len(rep.outliers) < MAX_LISTED:
                    rep.outliers.append({"open_time_ms": int(ts[i]), "open_time": iso_ms(int(ts[i])),
                                         "log_return": float(r[k]), "z": round(float(z[k]), 2),
                                         "close": float(c[i]), "previous_close": float(c[idx[k]])})
    return rep
