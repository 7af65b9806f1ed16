"""5-s bars and ticks → closed bars of the strategy's interval; nothing invented."""

from __future__ import annotations

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.ibkr.bars import BarAggregator

IID = InstrumentId("ibkr", "AAPL")
S = 1_000_000_000
T0 = 1_796_137_200 * S  # a whole minute


def feed(agg: BarAggregator, start_ns: int, px: float, v: float = 1.0) -> list:
    return agg.add(start_ns, 5, px, px + 1, px - 1, px, v, start_ns + 5 * S)


def test_twelve_5s_bars_make_one_minute_bar_closed_by_the_last() -> None:
    agg = BarAggregator(IID, 60)
    out = []
    for i in range(12):
        out += feed(agg, T0 + i * 5 * S, 100.0 + i)
    assert len(out) == 1
    bar = out[0]
    assert bar.ts_event_ns == T0 and bar.interval_s == 60
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (100.0, 112.0, 99.0, 111.0, 12.0)


def test_a_gap_closes_the_partial_bar_and_no_bar_is_invented_for_the_silent_minutes() -> None:
    agg = BarAggregator(IID, 60)
    assert feed(agg, T0, 100.0) == []
    later = T0 + 5 * 60 * S  # four minutes of nothing (a halt, the session's end)
    out = feed(agg, later, 105.0)
    assert [b.ts_event_ns for b in out] == [T0]
    assert out[0].volume == 1.0


def test_late_and_repeated_inputs_are_dropped() -> None:
    agg = BarAggregator(IID, 60)
    feed(agg, T0 + 10 * S, 100.0)
    assert feed(agg, T0 + 10 * S, 100.0) == [] and feed(agg, T0 + 5 * S, 100.0) == []
    assert agg.dropped == 2


def test_ticks_close_on_the_next_interval_or_by_flush() -> None:
    agg = BarAggregator(IID, 60)
    assert agg.add(T0 + S, 0, 10.0, 10.0, 10.0, 10.0, 2.0, T0 + S) == []
    assert agg.add(T0 + 2 * S, 0, 12.0, 12.0, 12.0, 12.0, 1.0, T0 + 2 * S) == []
    assert agg.flush_due(T0 + 59 * S) is None
    bar = agg.flush_due(T0 + 60 * S)
    assert bar is not None and (bar.open, bar.high, bar.close, bar.volume) == (10.0, 12.0, 12.0, 3.0)
    assert agg.flush_due(T0 + 120 * S) is None  # nothing traded: no bar


def test_history_chunks_cover_twice_the_missing_span_and_grow_across_weekends() -> None:
    from nautilus_hmm.venues.ibkr.adapter import history_chunk

    assert history_chunk(60, 30, 0) == (3600, "3600 S")
    assert history_chunk(60, 2000, 0) == (86400, "86400 S")  # IB's 'S' durations stop at a day
    assert history_chunk(60, 1, 0) == (600, "600 S")  # at least 10 bars
    assert history_chunk(60, 30, 2 * 86400)[0] == 86400  # after empty chunks: grow to cross them
    assert history_chunk(86400, 100, 0) == (200 * 86400, "200 D")
