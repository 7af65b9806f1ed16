"""Features: online (O(1) per bar) and batch give the same numbers; specs round-trip."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from nautilus_hmm.hmm.errors import FeatureError
from nautilus_hmm.hmm.features import FeatureEngine, FeatureSpec, Scaler, compute_batch
from nautilus_hmm.marketdata.replay import BarArrays, BarDataError

PARITY_ATOL = 1e-12
PARITY_RTOL = 1e-9


def run_online(spec: FeatureSpec, bars: BarArrays) -> list[np.ndarray | None]:
    eng = FeatureEngine(spec)
    quotes = bars.has_quotes
    out = []
    for i in range(len(bars)):
        kw = {}
        if quotes:
            kw = {f: float(getattr(bars, f)[i]) for f in ("bid", "ask", "bid_size", "ask_size")}
        out.append(eng.update(float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
                              float(bars.close[i]), float(bars.volume[i]), **kw))
    return out


def synthetic_bars(n: int, seed: int = 3) -> BarArrays:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    volume = rng.lognormal(1.0, 0.7, n)
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    return BarArrays(ts, open_, high, low, close, volume)


def test_online_equals_batch_for_every_feature_over_the_whole_real_month(btc_1m: BarArrays) -> None:
    spec = FeatureSpec()
    batch = compute_batch(spec, btc_1m)
    online = run_online(spec, btc_1m)
    warm = spec.warmup_bars
    assert all(r is None for r in online[:warm])
    rows = np.array(online[warm:])
    assert rows.shape == (len(btc_1m) - warm, spec.n_features)
    assert not np.isnan(batch[warm:]).any()
    # 44 580 rows: running sums would drift here; periodic exact recomputation keeps them at ~1e-14.
    np.testing.assert_allclose(rows, batch[warm:], rtol=PARITY_RTOL, atol=PARITY_ATOL)
    assert np.abs(rows - batch[warm:]).max() < 1e-9


def test_online_stays_exact_after_huge_outliers_leave_the_window() -> None:
    # A x1000 price jump and a 1e12 volume spike, then tiny moves: without an exact
    # recompute the window sums would keep the rounding residue of the outliers.
    bars = synthetic_bars(3000)
    close = bars.close.copy()
    close[1000:1002] *= [1000.0, 1.0]
    volume = bars.volume.copy()
    volume[1500] = 1e12
    close[2000:] = close[1999] * np.exp(np.cumsum(np.full(1000, 1e-7)))
    high = np.maximum(close, bars.open) * 1.0000001
    low = np.minimum(close, bars.open) * 0.9999999
    spiky = BarArrays(bars.ts_open_ns, bars.open, np.maximum(high, close), np.minimum(low, close), close, volume)
    spec = FeatureSpec()
    batch = compute_batch(spec, spiky)
    rows = np.array(run_online(spec, spiky)[spec.warmup_bars:])
    np.testing.assert_allclose(rows, batch[spec.warmup_bars:], rtol=PARITY_RTOL, atol=PARITY_ATOL)


def test_update_returns_none_for_exactly_the_warmup_bars_and_batch_has_as_many_nan_rows() -> None:
    spec = FeatureSpec(return_horizons=(1, 3), vol_windows=(4,), volume_window=5, atr_window=3,
                       trend_window=6)
    assert spec.warmup_bars == 5
    bars = synthetic_bars(20)
    online = run_online(spec, bars)
    assert [r is None for r in online] == [True] * 5 + [False] * 15
    batch = compute_batch(spec, bars)
    assert np.isnan(batch).all(axis=1).tolist() == [True] * 5 + [False] * 15


def test_feature_values_match_their_definitions() -> None:
    spec = FeatureSpec(return_horizons=(1, 2), vol_windows=(3,), volume_window=3, atr_window=2,
                       trend_window=4)
    close = np.array([100.0, 101.0, 99.0, 102.0, 103.0, 101.0])
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) + 0.5
    low = np.minimum(open_, close) - 0.5
    volume = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    bars = BarArrays(np.arange(6) * 60_000_000_000, open_, high, low, close, volume)
    row = compute_batch(spec, bars)[5]
    lc = np.log(close)
    r = np.diff(lc)
    y = np.log1p(volume[3:6])
    tr = [max(high[k], close[k - 1]) - min(low[k], close[k - 1]) for k in (4, 5)]
    slope = np.polyfit(np.arange(4), lc[2:6], 1)[0]
    expected = {
        "ret_1": lc[5] - lc[4],
        "ret_2": lc[5] - lc[3],
        "rv_3": math.sqrt(np.mean(r[2:5] ** 2)),
        "volz_3": (y[-1] - y.mean()) / y.std(),
        "atr_2": np.mean(tr) / close[5],
        "trend_4": slope / math.sqrt(np.mean(r[2:5] ** 2)),
    }
    assert spec.names == tuple(expected)
    np.testing.assert_allclose(row, list(expected.values()), rtol=1e-12)


def test_quote_features_match_online_and_a_missing_quote_gives_nan() -> None:
    spec = FeatureSpec(return_horizons=(1,), vol_windows=(3,), volume_window=0, atr_window=0,
                       trend_window=0, include_quotes=True)
    base = synthetic_bars(10)
    bid = base.close - 0.01
    ask = base.close + 0.01
    bid_size = np.linspace(1, 2, 10)
    ask_size = np.linspace(2, 1, 10)
    ask[7] = np.nan
    bars = BarArrays(base.ts_open_ns, base.open, base.high, base.low, base.close, base.volume,
                     bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size)
    batch = compute_batch(spec, bars)
    online = np.array(run_online(spec, bars)[3:])
    np.testing.assert_allclose(online, batch[3:], rtol=1e-12, equal_nan=True)
    assert spec.names[-2:] == ("spread_bps", "imbalance")
    assert math.isnan(batch[7, -2])
    assert batch[4, -2] == pytest.approx(0.02 / base.close[4] * 1e4)
    assert batch[4, -1] == pytest.approx((bid_size[4] - ask_size[4]) / 3.0)


def test_batch_with_quote_features_needs_quote_columns() -> None:
    spec = FeatureSpec(include_quotes=True)
    with pytest.raises(FeatureError, match="bid"):
        compute_batch(spec, synthetic_bars(100))


def test_bad_online_bar_is_rejected_by_field_and_leaves_the_state_unchanged() -> None:
    spec = FeatureSpec(return_horizons=(1, 2), vol_windows=(3,), volume_window=3, atr_window=2,
                       trend_window=3)
    bars = synthetic_bars(12)
    clean, dirty = FeatureEngine(spec), FeatureEngine(spec)
    for i in range(12):
        args = (bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
        if i == 6:
            with pytest.raises(FeatureError, match=r"close: nan"):
                dirty.update(args[0], args[1], args[2], float("nan"), args[4])
            with pytest.raises(FeatureError, match="volume"):
                dirty.update(*args[:4], -1.0)
        a, b = clean.update(*args), dirty.update(*args)
        assert (a is None and b is None) or np.array_equal(a, b)


def test_batch_rejects_non_finite_bars_naming_array_and_index() -> None:
    bars = synthetic_bars(50)
    close = bars.close.copy()
    close[17] = np.inf
    bad = BarArrays(bars.ts_open_ns, bars.open, bars.high, bars.low, close, bars.volume)
    with pytest.raises(BarDataError, match=r"bars\.close\[17\]: inf"):
        compute_batch(FeatureSpec(), bad)


def test_batch_accepts_a_mapping_of_arrays() -> None:
    bars = synthetic_bars(100)
    cols = {f: getattr(bars, f) for f in ("open", "high", "low", "close", "volume")}
    np.testing.assert_array_equal(compute_batch(FeatureSpec(), cols), compute_batch(FeatureSpec(), bars))


def test_spec_round_trips_through_json() -> None:
    spec = FeatureSpec(return_horizons=(1, 4), vol_windows=(8, 32), volume_window=0, include_quotes=True)
    again = FeatureSpec.from_dict(orjson.loads(orjson.dumps(spec.to_dict())))
    assert again == spec
    assert again.names == spec.names


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"return_horizons": (5, 15)}, "return_horizons"),
        ({"return_horizons": (1, 5, 5)}, "return_horizons"),
        ({"vol_windows": (1,)}, "vol_windows"),
        ({"atr_window": 1}, "atr_window"),
        ({"trend_window": -3}, "trend_window"),
    ],
)
def test_invalid_spec_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(FeatureError) as info:
        FeatureSpec(**kwargs)
    assert info.value.field == field


def test_spec_from_dict_rejects_unknown_and_missing_keys() -> None:
    data = FeatureSpec().to_dict()
    with pytest.raises(FeatureError, match="vol_window: unknown key"):
        FeatureSpec.from_dict({**data, "vol_window": 3})
    del data["atr_window"]
    with pytest.raises(FeatureError, match="atr_window: missing"):
        FeatureSpec.from_dict(data)


def test_scaler_fits_on_complete_rows_only_and_standardises() -> None:
    x = np.array([[1.0, 10.0], [3.0, 10.0], [np.nan, 5.0], [5.0, 10.0]])
    sc = Scaler.fit(x)
    np.testing.assert_allclose(sc.mean, [3.0, 10.0])
    np.testing.assert_allclose(sc.std, [math.sqrt(8 / 3), 1.0])  # constant column: std 1
    z = sc.transform(x)
    np.testing.assert_allclose(z[[0, 1, 3], 0], np.array([-2.0, 0.0, 2.0]) / math.sqrt(8 / 3))
    assert math.isnan(z[2, 0])
    np.testing.assert_allclose(sc.inverse(z[0]), x[0])
