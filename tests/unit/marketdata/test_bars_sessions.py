"""Session-aware bars (issue 14): no bar is invented while a session is closed (a weekend),
and the last bar of a session is never joined to the first of the next, online
(`BarResampler.update_session`) and batch (`resample_session_bars`) alike."""

from __future__ import annotations

import numpy as np
import pytest

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.bars import (
    BarAggregator,
    BarResampler,
    resample_bars,
    resample_session_bars,
)
from nautilus_hmm.marketdata.replay import BarArrays, BarDataError

NS = 1_000_000_000
MIN = 60 * NS
HOUR = 60 * MIN
DAY = 24 * HOUR
FRI_00 = 1_700_179_200 * NS  # 2023-11-17 00:00 UTC, a Friday
IID = InstrumentId("ibkr", "ES-202612")


def bars_at(ts: list[int], seed: int = 1) -> BarArrays:
    rng = np.random.default_rng(seed)
    n = len(ts)
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    open_ = np.r_[100.0, close[:-1]]
    return BarArrays(np.array(ts, dtype=np.int64), open_, np.maximum(open_, close) + 0.05,
                     np.minimum(open_, close) - 0.05, close, rng.uniform(1, 5, n))


def cme_day() -> tuple[list[int], list[bool]]:
    """1-minute bars 20:00-21:59, a break, then 23:00-23:59 (the CME daily halt inside a 4 h bucket)."""
    ts = [FRI_00 + 20 * HOUR + i * MIN for i in range(120)] + [FRI_00 + 23 * HOUR + i * MIN for i in range(60)]
    starts = [False] * 120 + [True] + [False] * 59
    return ts, starts


def online(bars: BarArrays, starts: list[bool], interval_s: int,
           emitted: list[int] | None = None) -> list[tuple[tuple, bool]]:
    """Feed the base bars one by one; `emitted` gets the close time of the base bar that
    returned each level bar (when the live tracker has it)."""
    rs = BarResampler(interval_s, 60)
    out = []
    for i in range(len(bars)):
        for bar, s in rs.update_session(int(bars.ts_open_ns[i]), float(bars.open[i]), float(bars.high[i]),
                                        float(bars.low[i]), float(bars.close[i]), float(bars.volume[i]), starts[i]):
            out.append((tuple(bar), s))
            if emitted is not None:
                emitted.append(int(bars.ts_open_ns[i]) + MIN)
    return out


def test_a_session_break_inside_a_bucket_makes_two_bars_never_one() -> None:
    ts, starts = cme_day()
    bars = bars_at(ts)
    got = online(bars, starts, 4 * 3600)
    # 20:00 bucket: Friday's 20:00-21:59 closed at the break; 23:00: the new session's bar,
    # stamped with its first base bar (the bucket start would repeat 20:00); 23:59 ends the bucket
    assert [(b[0], s) for b, s in got] == [(FRI_00 + 20 * HOUR, False), (FRI_00 + 23 * HOUR, True)]
    (first, _), (second, _) = got
    assert first[4] == bars.close[119] and second[1] == bars.open[120]  # close of 21:59, open of 23:00
    assert first[5] == pytest.approx(bars.volume[:120].sum()) and second[5] == pytest.approx(bars.volume[120:].sum())
    # without sessions the plain resampler joins the two sessions into one 20:00 bar
    plain = BarResampler(4 * 3600, 60)
    joined = [b for i in range(len(bars)) for b in plain.update(
        int(bars.ts_open_ns[i]), float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
        float(bars.close[i]), float(bars.volume[i]))]
    assert [b.ts_ns for b in joined] == [FRI_00 + 20 * HOUR]


def test_online_and_batch_session_resampling_agree() -> None:
    rng = np.random.default_rng(7)
    ts, t = [], FRI_00
    starts = []
    for _ in range(2000):
        brk = rng.uniform() < 0.01
        t += (int(rng.integers(20, 200)) * MIN) if brk else MIN
        ts.append(t)
        starts.append(bool(brk))
    bars = bars_at(ts, 3)
    for interval_s in (300, 3600, 4 * 3600):
        seen: list[int] = []
        on = online(bars, starts, interval_s, seen)
        batch, batch_starts, emitted = resample_session_bars(bars, interval_s, 60, np.array(starts))
        assert seen == emitted.tolist()
        assert [b[0] for b, _ in on] == batch.ts_open_ns.tolist()
        assert [s for _, s in on] == batch_starts.tolist()
        np.testing.assert_array_equal(np.array([b[1:] for b, _ in on]),
                                      np.c_[batch.open, batch.high, batch.low, batch.close, batch.volume])
        assert np.all(np.diff(batch.ts_open_ns) > 0)


def test_without_breaks_the_session_resampler_is_the_plain_one() -> None:
    bars = bars_at([FRI_00 + i * MIN for i in range(600)])
    plain = resample_bars(bars, 3600, 60)
    sess, starts, _ = resample_session_bars(bars, 3600, 60, np.zeros(600, dtype=bool))
    for f in ("ts_open_ns", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(plain, f), getattr(sess, f))
    assert not starts.any()


def test_session_resampler_refuses_out_of_order_bars_and_bad_flags() -> None:
    rs = BarResampler(300, 60)
    rs.update_session(FRI_00, 1, 1, 1, 1, 1, False)
    with pytest.raises(BarDataError, match="not after"):
        rs.update_session(FRI_00, 1, 1, 1, 1, 1, True)
    with pytest.raises(BarDataError, match="session_starts"):
        resample_session_bars(bars_at([FRI_00]), 300, 60, np.zeros(2, dtype=bool))


def test_no_bar_is_invented_over_a_weekend() -> None:
    """Trades Friday until the close and again from Monday's open; the timer flushes all
    weekend: bars exist only for minutes that had trades."""
    agg = BarAggregator(IID, 60)
    out = []
    fri_close = FRI_00 + 21 * HOUR
    for i in range(30):
        b = agg.on_trade(100.0 + i * 0.01, 1.0, fri_close - 30 * MIN + i * MIN + 5 * NS)
        out += [b] if b else []
    for k in range(0, 2 * 24 * 60 + 17 * 60, 1):  # the flush timer fires every minute all weekend
        b = agg.flush(fri_close + k * MIN)
        out += [b] if b else []
    mon_open = FRI_00 + 3 * DAY + 14 * HOUR
    for i in range(5):
        b = agg.on_trade(105.0, 2.0, mon_open + i * MIN + 1 * NS)
        out += [b] if b else []
    out += [b for b in [agg.flush(mon_open + 10 * MIN)] if b]
    stamps = [b.ts_event_ns for b in out]
    assert len(stamps) == 35 and stamps == sorted(stamps)
    assert all(s < fri_close or s >= mon_open for s in stamps)
    first_monday = next(b for b in out if b.ts_event_ns >= mon_open)
    assert first_monday.open == 105.0  # not Friday's last price carried over
