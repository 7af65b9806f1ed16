"""`research.quality.assess` on the real BTCUSDT March 2025 bars, clean and damaged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nautilus_hmm.marketdata.replay import load_bars
from nautilus_hmm.research.quality import MAX_LISTED, assess
from tests.conftest import fixture_path

MIN_MS = 60_000


@pytest.fixture(scope="module")
def month() -> tuple[np.ndarray, np.ndarray]:
    bars = load_bars(fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv"))
    ts = bars.ts_open_ns // 1_000_000
    vals = np.column_stack([bars.open, bars.high, bars.low, bars.close, bars.volume])
    return ts, vals


def run(ts, vals, **kw):
    lo = kw.pop("start_ms", int(ts.min()))
    hi = kw.pop("end_ms", int(ts.max()) + MIN_MS)
    return assess("f.csv", ts, vals, interval_ms=MIN_MS, start_ms=lo, end_ms=hi, **kw)


def test_the_real_month_is_clean(month) -> None:
    rep = run(*month)
    assert rep.clean and rep.rows_out == rep.expected_bars == 44_640
    assert rep.summary_line() == "44640/44640 bars, clean"


def test_holes_inside_and_at_both_ends_are_gaps_with_their_bar_counts(month) -> None:
    ts, vals = month
    keep = np.ones(len(ts), dtype=bool)
    keep[1000:1010] = False  # 10 inside
    keep[-3:] = False  # 3 at the end
    rep = run(ts[keep], vals[keep], start_ms=int(ts[0]) - 2 * MIN_MS, end_ms=int(ts[-1]) + MIN_MS)  # 2 before
    assert (rep.missing_bars, rep.gap_count, rep.expected_bars) == (15, 3, 44_642)
    assert [g["bars"] for g in rep.gaps] == [2, 10, 3]
    assert rep.gaps[1]["first_missing_ms"] == int(ts[1000]) and rep.gaps[1]["last_missing_ms"] == int(ts[1009])
    assert rep.rows_out == 44_640 - 13 and not rep.clean


def test_duplicates_are_counted_and_told_apart_when_they_conflict(month) -> None:
    ts, vals = month
    dup_vals = vals[[5, 6]].copy()
    dup_vals[1, 3] *= 1.01  # the second copy disagrees on close
    rep = run(np.concatenate([ts, ts[[5, 6]]]), np.concatenate([vals, dup_vals]))
    assert (rep.duplicate_count, rep.conflicting_duplicate_count) == (2, 1)
    assert rep.rows_in == 44_642 and rep.rows_out == 44_640 and rep.missing_bars == 0
    assert [d["conflicting"] for d in rep.duplicates] == [False, True]


def test_zero_volume_runs_from_the_minimum_length(month) -> None:
    ts, vals = month
    v = vals.copy()
    v[100:107, 4] = 0.0  # 7: a run
    v[200:203, 4] = 0.0  # 3: counted, not a run (min 5)
    rep = run(ts, v)
    assert (rep.zero_volume_bars, rep.zero_volume_run_count, rep.longest_zero_volume_run) == (10, 1, 7)
    assert rep.zero_volume_runs[0]["first_ms"] == int(ts[100]) and rep.zero_volume_runs[0]["bars"] == 7
    assert run(ts, v, zero_volume_min_run=3).zero_volume_run_count == 2


def test_a_bad_print_is_an_outlier_and_inconsistent_ohlc_is_named(month) -> None:
    ts, vals = month
    v = vals.copy()
    v[20_000, 3] = v[20_000, 3] * 1.25  # a close 25 % off, high no longer above it
    rep = run(ts, v)
    assert rep.outlier_count == 2  # the jump up and the jump back
    assert rep.outliers[0]["open_time_ms"] == int(ts[20_000]) and rep.outliers[0]["z"] > 30
    assert rep.invalid_ohlc_count == 1 and rep.invalid_ohlc[0]["open_time_ms"] == int(ts[20_000])


def test_off_grid_times_are_reported_and_not_counted_as_bars(month) -> None:
    ts, vals = month
    t = ts.copy()
    t[10] += 1_000  # 1 s late
    rep = run(t, vals)
    assert rep.off_grid_count == 1 and rep.off_grid == [int(ts[10]) + 1_000]
    assert rep.missing_bars == 1 and rep.rows_out == 44_639


def test_lists_are_capped_and_counts_are_not(month) -> None:
    ts, vals = month
    keep = np.ones(len(ts), dtype=bool)
    keep[::100] = False  # 447 single-bar gaps
    rep = run(ts[keep], vals[keep], start_ms=int(ts[0]), end_ms=int(ts[-1]) + MIN_MS)
    assert rep.gap_count == 447 and len(rep.gaps) == MAX_LISTED
    d = json.loads(json.dumps(rep.as_dict()))
    assert d["gap_count"] == 447 and d["clean"] is False and d["start"] == "2025-03-01T03:00:00Z"


def test_no_rows_at_all_is_one_gap_over_the_range() -> None:
    rep = assess("f.csv", np.zeros(0, dtype=np.int64), np.zeros((0, 5)), interval_ms=MIN_MS, start_ms=0,
                 end_ms=60 * MIN_MS)
    assert (rep.expected_bars, rep.missing_bars, rep.gap_count) == (60, 60, 1)
    with pytest.raises(ValueError, match="interval_ms = 0"):
        assess("f.csv", np.zeros(0), np.zeros((0, 5)), interval_ms=0, start_ms=0, end_ms=1)
