"""Bar arrays: validation names the bad value; online and batch resampling agree."""

from __future__ import annotations

import numpy as np
import pytest

from nautilus_hmm.marketdata.bars import NS_PER_S, BarResampler, OhlcvBar, resample_bars
from nautilus_hmm.marketdata.replay import BarArrays, BarDataError, load_bars
from tests.conftest import fixture_path

MIN_NS = 60 * NS_PER_S


@pytest.fixture(scope="module")
def btc_1m() -> BarArrays:
    """BTCUSDT 1m klines, March 2025 (44 640 bars)."""
    return load_bars(fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv"))


def bars_at(minutes: list[int]) -> BarArrays:
    n = len(minutes)
    close = 100.0 + np.arange(n, dtype=np.float64)
    return BarArrays(
        ts_open_ns=np.array(minutes, dtype=np.int64) * MIN_NS, open=close - 0.5, high=close + 1.0,
        low=close - 1.0, close=close, volume=np.arange(1, n + 1, dtype=np.float64),
    )


def resample_online(bars: BarArrays, interval_s: int, base_s: int) -> list[OhlcvBar]:
    rs = BarResampler(interval_s, base_s)
    out: list[OhlcvBar] = []
    for i in range(len(bars)):
        out += rs.update(int(bars.ts_open_ns[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i],
                         bars.volume[i])
    return out


def as_rows(bars: BarArrays) -> list[tuple]:
    return [(int(bars.ts_open_ns[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
            for i in range(len(bars))]


@pytest.mark.parametrize("interval_s", [300, 3600])
def test_online_and_batch_resampling_agree_on_real_klines(btc_1m: BarArrays, interval_s: int) -> None:
    part = btc_1m.slice(7, 3007)  # starts mid-bucket, ends mid-bucket
    batch = resample_bars(part, interval_s, 60)
    online = resample_online(part, interval_s, 60)
    assert len(online) == len(batch)
    np.testing.assert_allclose(np.array(online, dtype=np.float64), np.array(as_rows(batch), dtype=np.float64),
                               rtol=1e-12)
    assert all(int(t) % (interval_s * NS_PER_S) == 0 for t in batch.ts_open_ns)


def test_a_bucket_is_the_first_open_max_high_min_low_last_close_and_summed_volume() -> None:
    out = resample_bars(bars_at([0, 1, 2, 3, 4]), 300, 60)
    assert as_rows(out) == [(0, 99.5, 105.0, 99.0, 104.0, 15.0)]


def test_a_bucket_is_emitted_online_by_its_last_base_bar() -> None:
    rs = BarResampler(300, 60)
    emitted = [rs.update(m * MIN_NS, 1.0, 2.0, 0.5, 1.5, 1.0) for m in range(5)]
    assert [len(e) for e in emitted] == [0, 0, 0, 0, 1]


def test_a_bucket_with_missing_bars_is_emitted_when_a_later_bucket_starts() -> None:
    bars = bars_at([0, 1, 2, 7, 8, 9])  # minutes 3, 4 missing; 5, 6 missing
    online = resample_online(bars, 300, 60)
    batch = resample_bars(bars, 300, 60)
    assert [b.ts_ns for b in online] == [0, 5 * MIN_NS] == batch.ts_open_ns.tolist()
    assert online[0].close == 102.0 and online[0].volume == 6.0


def test_batch_drops_a_trailing_incomplete_bucket() -> None:
    out = resample_bars(bars_at([0, 1, 2, 3, 4, 5, 6]), 300, 60)
    assert out.ts_open_ns.tolist() == [0]


def test_resampling_to_a_non_multiple_interval_is_rejected() -> None:
    with pytest.raises(BarDataError, match="not a multiple"):
        BarResampler(90, 60)


def test_online_resampler_rejects_a_bar_that_is_not_after_the_previous() -> None:
    rs = BarResampler(300, 60)
    rs.update(MIN_NS, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(BarDataError, match="not after"):
        rs.update(MIN_NS, 1.0, 1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("close", np.nan, r"bars\.close\[2\]: nan"),
        ("low", -1.0, r"bars\.low\[2\]: -1\.0"),
        ("volume", -3.0, r"bars\.volume\[2\]: -3\.0"),
        ("high", 50.0, r"bars\.high\[2\]: 50\.0 is below low"),
    ],
)
def test_validate_names_array_index_and_value(field: str, value: float, message: str) -> None:
    good = bars_at([0, 1, 2, 3])
    cols = {f: getattr(good, f).copy() for f in ("open", "high", "low", "close", "volume")}
    cols[field][2] = value
    with pytest.raises(BarDataError, match=message):
        BarArrays(ts_open_ns=good.ts_open_ns, **cols).validate()


def test_validate_rejects_timestamps_that_do_not_increase() -> None:
    with pytest.raises(BarDataError, match=r"bars\.ts_open_ns\[2\]"):
        bars_at([0, 1, 1, 2]).validate()


def test_column_length_mismatch_is_rejected() -> None:
    with pytest.raises(BarDataError, match="close: shape"):
        BarArrays(np.arange(3), np.ones(3), np.ones(3), np.ones(3), np.ones(2), np.ones(3))


def test_sha256_changes_with_any_value() -> None:
    a = bars_at([0, 1, 2])
    vol = a.volume.copy()
    vol[1] += 1e-9
    b = BarArrays(a.ts_open_ns, a.open, a.high, a.low, a.close, vol)
    assert a.sha256() == bars_at([0, 1, 2]).sha256()
    assert a.sha256() != b.sha256()


def test_resampled_bars_state_their_interval_and_keep_the_source_path(btc_1m: BarArrays) -> None:
    out = resample_bars(btc_1m.slice(0, 600), 300, 60)
    assert out.interval_s == 300 and out.path == btc_1m.path
    assert out.ts_close_ns.tolist() == (out.ts_open_ns + 300 * NS_PER_S).tolist()
    assert resample_bars(btc_1m.slice(0, 2), 300, 60).interval_s == 300  # nothing complete yet: empty, same rule


def test_loaded_bars_are_what_the_model_fingerprints_and_validates(btc_1m: BarArrays) -> None:
    btc_1m.validate()
    part = btc_1m.slice(0, 100)
    assert part.interval_s == 60 and part.path == btc_1m.path
    assert part.sha256() == BarArrays(part.ts_open_ns.copy(), part.open.copy(), part.high.copy(), part.low.copy(),
                                      part.close.copy(), part.volume.copy()).sha256()
