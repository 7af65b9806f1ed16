"""Bars from the rest of the system: file loader, interval conversion, the training ring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nautilus_hmm.core.errors import DataError
from nautilus_hmm.hmm.data import BarRing, from_ohlcv, load_base_bars, to_base_interval, to_ohlcv
from nautilus_hmm.marketdata.bars import OhlcvBar
from nautilus_hmm.marketdata.replay import BarDataError


def rows(n: int, step_s: int = 60) -> list[OhlcvBar]:
    return [OhlcvBar(i * step_s * 10**9, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0 + i) for i in range(n)]


def test_the_ring_keeps_the_newest_bars_in_order_across_wraps_and_resizes() -> None:
    ring = BarRing(5)
    for r in rows(12):
        ring.append(r)
    assert len(ring) == 5
    assert to_ohlcv(ring.last()) == rows(12)[-5:]
    assert to_ohlcv(ring.last(2)) == rows(12)[-2:]
    bigger = ring.resized(8)
    for r in rows(14)[12:]:
        bigger.append(r)
    assert to_ohlcv(bigger.last()) == rows(14)[-7:]
    assert to_ohlcv(ring.resized(3).last()) == rows(12)[-3:]
    assert len(BarRing(4).last()) == 0


def test_ohlcv_rows_round_trip() -> None:
    assert to_ohlcv(from_ohlcv(rows(7))) == rows(7)


def test_shorter_bars_are_resampled_to_the_base_interval_and_longer_ones_refused() -> None:
    ten_s = from_ohlcv(rows(18, step_s=10))
    base = to_base_interval(ten_s, 10, 60)
    assert base.ts_open_ns.tolist() == [0, 60 * 10**9, 120 * 10**9]
    np.testing.assert_array_equal(base.volume, [21.0, 57.0, 93.0])
    with pytest.raises(BarDataError, match="300 s bars cannot make the model's 60 s base bars"):
        to_base_interval(from_ohlcv(rows(3, step_s=300)), 300, 60)


def test_a_bad_file_is_a_data_error_naming_the_line(tmp_path: Path) -> None:
    p = tmp_path / "k.csv"
    p.write_text("timestamp,open,high,low,close,volume\n2025-03-01 00:00:00,1,2,0.5,1.5,3\n"
                 "2025-03-01 00:01:00,1,2,0.5,inf,3\n")
    with pytest.raises(DataError, match=r"k\.csv:3"):
        load_base_bars(p, 60)


@pytest.mark.parametrize(("first_ts", "fragment"), [
    ("2625-03-01 00:00:00", r"k\.csv:2: timestamp '2625-03-01 00:00:00' is after 2262"),
    ("99999999999999999999", r"k\.csv:2: timestamp '99999999999999999999' is out of range"),
])
def test_a_timestamp_beyond_int64_ns_is_a_data_error_not_a_wrapped_date(
        tmp_path: Path, first_ts: str, fragment: str) -> None:
    p = tmp_path / "k.csv"
    second = "2625-03-01 00:01:00" if first_ts.startswith("2625") else "100000000000000000000"
    p.write_text(f"timestamp,open,high,low,close,volume\n{first_ts},1,2,0.5,1.5,3\n{second},1,2,0.5,1.5,3\n")
    with pytest.raises(DataError, match=fragment):
        load_base_bars(p, 60)


def test_extend_is_many_appends() -> None:
    for capacity, first, more in ((5, 3, 4), (5, 0, 12), (8, 6, 2), (3, 2, 0)):
        one, many = BarRing(capacity), BarRing(capacity)
        for r in rows(first + more)[:first]:
            one.append(r)
            many.append(r)
        for r in rows(first + more)[first:]:
            one.append(r)
        many.extend(from_ohlcv(rows(first + more)[first:]))
        assert to_ohlcv(many.last()) == to_ohlcv(one.last())
        assert len(many) == len(one)


def test_the_ring_keeps_quotes_and_returns_them_only_when_some_bar_had_one() -> None:
    import numpy as np

    ring = BarRing(4)
    for r in rows(3):
        ring.append(r)
    assert not ring.last().has_quotes  # no quote ever: an OHLCV-only window, as before
    ring.append(rows(4)[3], (10.0, 10.5, 3.0, 1.0))
    got = ring.last()
    assert got.has_quotes and got.bid is not None and got.ask_size is not None
    assert np.isnan(got.bid[:3]).all() and got.bid[3] == 10.0 and got.ask_size[3] == 1.0
    bigger = ring.resized(6)
    assert bigger.last().has_quotes and bigger.last().bid[3] == 10.0  # type: ignore[index]
    tail = ring.last(3)
    assert tail.bid is not None and np.isnan(tail.bid[:2]).all() and tail.bid[2] == 10.0
