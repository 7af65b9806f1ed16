"""Session gaps in the HMM's features (issue 14, docs/HMM.md "Session gaps"): the first bar
of a trading session is glued to the previous close, so no overnight move enters a return,
a volatility or a trend as if it were one bar's return; online and batch agree; without
flags (every crypto instrument) the numbers are bit-for-bit the old ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nautilus_hmm.domain.sessions import TradingSessions, is_session_break
from nautilus_hmm.hmm.errors import FeatureError
from nautilus_hmm.hmm.features import FeatureEngine, FeatureSpec, compute_batch
from nautilus_hmm.hmm.runtime import RegimeTracker
from nautilus_hmm.marketdata.replay import BarArrays
from tests.unit.hmm.kit import decisive_model

MIN = 60 * 1_000_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
FRI_14 = 1_700_229_600 * 1_000_000_000  # 2023-11-17 14:00 UTC, a Friday, a whole hour
JUMP = 1.10  # Monday opens 10 % above Friday's close


def two_sessions(n_fri: int = 420, n_mon: int = 420, seed: int = 5) -> tuple[BarArrays, int]:
    """1-minute bars Friday 14:00-21:00 and Monday 14:00-21:00 UTC; Monday opens JUMP above
    Friday's close. Returns the bars and the index of Monday's first bar."""
    rng = np.random.default_rng(seed)
    n = n_fri + n_mon
    r = rng.normal(0.0, 0.002, n)
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    close[n_fri:] *= JUMP
    open_[n_fri:] *= JUMP
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    ts = np.r_[FRI_14 + np.arange(n_fri) * MIN, FRI_14 + 3 * DAY + np.arange(n_mon) * MIN].astype(np.int64)
    return BarArrays(ts, open_, high, low, close, rng.lognormal(1.0, 0.5, n)), n_fri


def glued(bars: BarArrays, first: int) -> BarArrays:
    """The same bars with the second session's prices divided by its jump (no gap at all)."""
    k = bars.open[first] / bars.close[first - 1]
    scale = np.r_[np.ones(first), np.full(len(bars) - first, 1.0 / k)]
    return BarArrays(bars.ts_open_ns, bars.open * scale, bars.high * scale, bars.low * scale,
                     bars.close * scale, bars.volume)


def flags(n: int, *at: int) -> np.ndarray:
    f = np.zeros(n, dtype=bool)
    f[list(at)] = True
    return f


def online(spec: FeatureSpec, bars: BarArrays, starts: np.ndarray | None) -> np.ndarray:
    eng = FeatureEngine(spec)
    rows = []
    for i in range(len(bars)):
        row = eng.update(float(bars.open[i]), float(bars.high[i]), float(bars.low[i]), float(bars.close[i]),
                         float(bars.volume[i]), session_start=bool(starts is not None and starts[i]))
        rows.append(np.full(spec.n_features, np.nan) if row is None else row)
    return np.array(rows)


NO_ATR = FeatureSpec(atr_window=0)


def test_the_first_return_of_a_session_is_its_own_bar_not_the_overnight_move() -> None:
    bars, mon = two_sessions()
    x = compute_batch(NO_ATR, bars, flags(len(bars), mon))
    assert x[mon, 0] == pytest.approx(math.log(bars.close[mon] / bars.open[mon]), abs=1e-12)
    plain = compute_batch(NO_ATR, bars)
    assert plain[mon, 0] == pytest.approx(math.log(bars.close[mon] / bars.close[mon - 1]))
    assert plain[mon, 0] > math.log(JUMP) - 0.01  # without flags the weekend is one 1-minute return


def test_every_price_feature_equals_the_glued_series() -> None:
    bars, mon = two_sessions()
    with_flags = compute_batch(NO_ATR, bars, flags(len(bars), mon))
    reference = compute_batch(NO_ATR, glued(bars, mon))
    np.testing.assert_allclose(with_flags, reference, rtol=1e-9, atol=1e-12, equal_nan=True)
    # the windows spanning the break (ret_15, rv_60, trend_30 just after Monday's open)
    assert not np.isnan(with_flags[mon + 1]).any()


def test_the_true_range_of_a_session_open_is_its_own_range() -> None:
    spec = FeatureSpec(return_horizons=(1,), vol_windows=(2,), volume_window=0, atr_window=2, trend_window=0)
    bars, mon = two_sessions()
    x = compute_batch(spec, bars, flags(len(bars), mon))
    tr_open = bars.high[mon] - bars.low[mon]
    tr_next = max(bars.high[mon + 1], bars.close[mon]) - min(bars.low[mon + 1], bars.close[mon])
    assert x[mon + 1, 2] == pytest.approx((tr_open + tr_next) / 2 / bars.close[mon + 1], rel=1e-12)


def test_online_equals_batch_with_session_flags() -> None:
    bars, mon = two_sessions()
    starts = flags(len(bars), mon, 100, 101, 700)  # consecutive flags and several sessions too
    spec = FeatureSpec()
    np.testing.assert_allclose(online(spec, bars, starts), compute_batch(spec, bars, starts),
                               rtol=1e-9, atol=1e-12, equal_nan=True)


def test_no_flags_and_all_false_flags_are_bit_for_bit_the_old_features() -> None:
    bars, _ = two_sessions()
    spec = FeatureSpec()
    old = compute_batch(spec, bars)
    assert np.array_equal(compute_batch(spec, bars, np.zeros(len(bars), dtype=bool)), old, equal_nan=True)
    assert np.array_equal(online(spec, bars, None), online(spec, bars, np.zeros(len(bars), dtype=bool)),
                          equal_nan=True)
    # a flag on the very first bar has nothing to glue to
    assert np.array_equal(compute_batch(spec, bars, flags(len(bars), 0)), old, equal_nan=True)


def test_session_flags_of_the_wrong_length_are_refused() -> None:
    bars, _ = two_sessions()
    with pytest.raises(FeatureError, match="session_starts"):
        compute_batch(FeatureSpec(), bars, np.zeros(3, dtype=bool))


# ---------------------------------------------------------------- break detection


NYSE = TradingSessions.from_ib("20231117:0900-1600;20231118:CLOSED;20231119:CLOSED;20231120:0900-1600",
                               "UTC")


def test_a_break_comes_from_the_calendar_or_from_a_long_quiet_stretch() -> None:
    fri_last, mon_first = FRI_14 + 419 * MIN, FRI_14 + 3 * DAY
    assert is_session_break(NYSE, fri_last, mon_first, 60)
    assert not is_session_break(NYSE, mon_first, mon_first + MIN, 60)
    assert not is_session_break(NYSE, mon_first, mon_first + 10 * MIN, 60)  # a 9-minute hole: same session
    old = FRI_14 - 30 * DAY  # history before the listed calendar: the gap rule
    assert not is_session_break(NYSE, old, old + 14 * MIN, 60)
    assert is_session_break(NYSE, old, old + 16 * MIN, 60)
    assert not is_session_break(None, fri_last, mon_first, 60)
    assert not is_session_break(TradingSessions.always_open(), fri_last, mon_first, 60)
    assert not is_session_break(NYSE, None, mon_first, 60)


# ---------------------------------------------------------------- the live tracker


def feed(tracker: RegimeTracker, bars: BarArrays) -> list:
    snaps = []
    for i in range(len(bars)):
        s = tracker.on_bar(int(bars.ts_open_ns[i]), float(bars.open[i]), float(bars.high[i]),
                           float(bars.low[i]), float(bars.close[i]), float(bars.volume[i]))
        if s is not None:
            snaps.append(s)
    return snaps


def test_the_tracker_with_sessions_sees_the_weekend_as_if_glued() -> None:
    """Sessions open on whole hours, so no bucket is split: the session-aware tracker on the
    real bars gives the posteriors a plain tracker gives on the glued bars."""
    bars, mon = two_sessions(n_fri=900, n_mon=600)
    bars = BarArrays(np.r_[bars.ts_open_ns[:mon] - 480 * MIN, bars.ts_open_ns[mon:]].astype(np.int64),
                     bars.open, bars.high, bars.low, bars.close, bars.volume)  # Friday 06:00-21:00
    model = decisive_model()
    with_sessions = RegimeTracker(model, TradingSessions.from_ib(
        "20231117:0600-2100;20231118:CLOSED;20231119:CLOSED;20231120:1400-2100", "UTC"))
    a = feed(with_sessions, bars)
    b = feed(RegimeTracker(model), glued(bars, mon))
    assert with_sessions.session_breaks == 1
    assert [s.ts_ns for s in a] == [s.ts_ns for s in b]
    ready = [(x, y) for x, y in zip(a, b, strict=True) if x.ready]
    assert len(ready) > 100
    for x, y in ready:
        np.testing.assert_allclose(x.micro_posterior, y.micro_posterior, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(x.macro_posterior, y.macro_posterior, rtol=1e-7, atol=1e-9)
    # and the plain tracker on the real bars does not: the weekend jump moves its posteriors
    c = feed(RegimeTracker(model), bars)
    first_monday = next(i for i, s in enumerate(a) if s.ts_ns >= bars.ts_open_ns[mon])
    assert not np.allclose(a[first_monday].micro_posterior, c[first_monday].micro_posterior, atol=1e-6)


def test_always_open_sessions_are_the_plain_tracker() -> None:
    bars, _ = two_sessions()
    model = decisive_model()
    a = feed(RegimeTracker(model, TradingSessions.always_open()), bars)
    b = feed(RegimeTracker(model), bars)
    assert [(s.ts_ns, None if s.micro_posterior is None else s.micro_posterior.tolist()) for s in a] == \
           [(s.ts_ns, None if s.micro_posterior is None else s.micro_posterior.tolist()) for s in b]
