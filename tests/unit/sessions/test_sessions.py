"""TradingSessions.from_ib: both IB tradingHours formats, CLOSED days, overnight sessions,
DST in America/New_York and America/Chicago, and malformed input named in the error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nautilus_hmm.domain.sessions import TradingSessions

NY = "America/New_York"
CHI = "America/Chicago"


def ns(text: str) -> int:
    """UTC wall time 'YYYY-MM-DD HH:MM' as epoch ns."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def utc(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")


def spans(s: TradingSessions) -> list[tuple[str, str]]:
    return [(utc(a), utc(b)) for a, b in s.intervals_ns]


# ---------------------------------------------------------------- both formats


def test_old_format_day_with_closed_next_day():
    s = TradingSessions.from_ib("20260302:0930-1600;20260303:CLOSED", NY)
    assert spans(s) == [("2026-03-02 14:30", "2026-03-02 21:00")]  # EST = UTC-5
    assert s.is_open(ns("2026-03-02 14:30"))
    assert not s.is_open(ns("2026-03-02 14:29"))
    assert not s.is_open(ns("2026-03-02 21:00"))  # half-open: the close itself is closed
    assert not s.is_open(ns("2026-03-03 15:00"))  # CLOSED day
    assert s.known_until_ns == ns("2026-03-04 05:00")  # end of the last listed local day


def test_new_format_same_times_as_old():
    old = TradingSessions.from_ib("20260302:0930-1600;20260303:CLOSED", NY)
    new = TradingSessions.from_ib("20260302:0930-20260302:1600;20260303:CLOSED", NY)
    assert new.intervals_ns == old.intervals_ns
    assert new.known_until_ns == old.known_until_ns


def test_us_eastern_alias_matches_america_new_york():
    a = TradingSessions.from_ib("20260302:0930-1600", "US/Eastern")
    b = TradingSessions.from_ib("20260302:0930-1600", NY)
    assert a.intervals_ns == b.intervals_ns


def test_old_format_several_ranges_a_day_with_a_break():
    s = TradingSessions.from_ib("20260302:0930-1200,1300-1600", NY)
    assert spans(s) == [("2026-03-02 14:30", "2026-03-02 17:00"), ("2026-03-02 18:00", "2026-03-02 21:00")]
    assert not s.is_open(ns("2026-03-02 17:30"))
    assert s.next_open_ns(ns("2026-03-02 17:30")) == ns("2026-03-02 18:00")


def test_touching_ranges_merge_into_one_session():
    s = TradingSessions.from_ib("20260302:0400-20260302:0930;20260302:0930-20260302:2000", NY)
    assert spans(s) == [("2026-03-02 09:00", "2026-03-03 01:00")]
    assert s.session_start_ns(ns("2026-03-02 20:00")) == ns("2026-03-02 09:00")


def test_trailing_semicolon_and_spaces_are_ignored():
    s = TradingSessions.from_ib(" 20260302:0930-1600; ", NY)
    assert len(s.intervals_ns) == 1


def test_2400_means_the_next_midnight():
    s = TradingSessions.from_ib("20260302:0000-2400", "UTC")
    assert spans(s) == [("2026-03-02 00:00", "2026-03-03 00:00")]


# ---------------------------------------------------------------- overnight sessions


def test_new_format_overnight_session_crosses_midnight():
    s = TradingSessions.from_ib("20260301:1700-20260302:1600;20260302:1700-20260303:1600", CHI)
    assert spans(s) == [("2026-03-01 23:00", "2026-03-02 22:00"), ("2026-03-02 23:00", "2026-03-03 22:00")]
    midnight_local = ns("2026-03-02 06:00")  # 00:00 CST
    assert s.is_open(midnight_local)
    assert s.session_start_ns(midnight_local) == ns("2026-03-01 23:00")
    assert not s.is_open(ns("2026-03-02 22:30"))  # the daily break
    assert s.next_open_ns(ns("2026-03-02 22:30")) == ns("2026-03-02 23:00")


def test_old_format_overnight_range_opens_the_evening_before_the_trade_date():
    old = TradingSessions.from_ib("20260302:1700-1600;20260303:1700-1600", CHI)
    new = TradingSessions.from_ib("20260301:1700-20260302:1600;20260302:1700-20260303:1600", CHI)
    assert old.intervals_ns == new.intervals_ns


# ---------------------------------------------------------------- DST


def test_spring_forward_keeps_local_hours_in_new_york():
    # 2026-03-08: EST (UTC-5) -> EDT (UTC-4)
    s = TradingSessions.from_ib("20260306:0930-1600;20260307:CLOSED;20260308:CLOSED;20260309:0930-1600", NY)
    assert spans(s) == [("2026-03-06 14:30", "2026-03-06 21:00"), ("2026-03-09 13:30", "2026-03-09 20:00")]


def test_fall_back_keeps_local_hours_in_new_york():
    # 2026-11-01: EDT (UTC-4) -> EST (UTC-5)
    s = TradingSessions.from_ib("20261030:0930-20261030:1600;20261102:0930-20261102:1600", NY)
    assert spans(s) == [("2026-10-30 13:30", "2026-10-30 20:00"), ("2026-11-02 14:30", "2026-11-02 21:00")]


def test_overnight_session_over_the_dst_change_is_an_hour_shorter():
    # CME Sunday open 17:00 CDT on the day the clocks sprang forward, to Monday 16:00 CDT
    s = TradingSessions.from_ib("20260308:1700-20260309:1600", CHI)
    (start, end), = s.intervals_ns
    assert utc(start) == "2026-03-08 22:00" and utc(end) == "2026-03-09 21:00"
    assert (end - start) // 3_600_000_000_000 == 23


def test_a_local_time_skipped_or_repeated_by_dst_resolves_without_error():
    # 02:30 does not exist in New York on 2026-03-08 and 01:30 happens twice on 2026-11-01
    spring = TradingSessions.from_ib("20260308:0230-0400", NY)
    fall = TradingSessions.from_ib("20261101:0130-0300", NY)
    (a, b), = spring.intervals_ns
    assert utc(b) == "2026-03-08 08:00" and 0 < b - a <= 2 * 3_600_000_000_000
    (c, d), = fall.intervals_ns
    assert utc(d) == "2026-11-01 08:00" and 0 < d - c <= 3 * 3_600_000_000_000


def test_an_instrument_with_sessions_encodes_to_json():
    from decimal import Decimal

    from nautilus_hmm.domain.enums import InstrumentKind
    from nautilus_hmm.domain.instruments import Instrument, InstrumentId
    from nautilus_hmm.messages.codec import dumps

    s = TradingSessions.from_ib("20260302:0930-1600", NY)
    one = Decimal(1)
    inst = Instrument(InstrumentId("ibkr", "AAPL"), "AAPL", "USD", InstrumentKind.STOCK, one, one, one, None,
                      Decimal(0), sessions=s, currency="USD", venue_ref="265598")
    text = dumps(inst).decode()
    assert '"kind":"stock"' in text and '"time_zone_id":"America/New_York"' in text and '"venue_ref":"265598"' in text


# ---------------------------------------------------------------- queries


def test_weekend_queries():
    s = TradingSessions.from_ib(
        "20260306:0930-1600;20260307:CLOSED;20260308:CLOSED;20260309:0930-1600;20260310:CLOSED", NY)
    saturday = ns("2026-03-07 18:00")
    assert not s.is_open(saturday)
    assert s.session_start_ns(saturday) is None
    assert s.session_end_ns(saturday) is None
    assert s.next_open_ns(saturday) == ns("2026-03-09 13:30")
    assert s.is_known(saturday)
    inside = ns("2026-03-09 15:00")
    assert s.next_open_ns(inside) == inside
    assert s.session_end_ns(inside) == ns("2026-03-09 20:00")
    assert s.next_open_ns(ns("2026-03-10 15:00")) is None  # past the last listed session
    assert not s.is_known(ns("2026-03-11 05:00"))  # the calendar ran out
    assert s.next_open_ns(ns("2026-03-01 00:00")) == ns("2026-03-06 14:30")


def test_always_open():
    s = TradingSessions.always_open()
    assert s.is_open(0) and s.is_open(ns("2026-03-07 18:00"))
    assert s.is_known(ns("2100-01-01 00:00"))
    assert s.next_open_ns(123) == 123
    assert s.session_start_ns(123) == 0


def test_sessions_are_frozen_and_comparable():
    a = TradingSessions.from_ib("20260302:0930-1600", NY)
    b = TradingSessions.from_ib("20260302:0930-20260302:1600", NY)
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.always = True  # type: ignore[misc]


def test_constructor_refuses_unsorted_or_empty_intervals():
    with pytest.raises(ValueError, match="sorted"):
        TradingSessions(((10, 20), (15, 30)))
    with pytest.raises(ValueError, match="ends before"):
        TradingSessions(((10, 10),))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("text", "names"), [
    ("2026030X:0930-1600", "2026030X:0930-1600"),
    ("20260302", "20260302"),
    ("20260302:0930", "0930"),
    ("20260302:2500-2600", "2500"),
    ("20260302:0960-1000", "0960"),
    ("20260302:0930-1600x", "1600x"),
    ("20261302:0930-1600", "20261302"),
    ("20260302:0930-20260231:1600", "20260231"),
    ("20260302:1600-20260302:0930", "ends before it starts"),
    ("20260302:0930-1600;20260303:OPEN", "20260303:OPEN"),
    ("20260302:0930-1600;garbage", "garbage"),
    ("20260302:930-1600", "930"),
])
def test_malformed_segment_is_named(text, names):
    with pytest.raises(ValueError, match="trading hours") as info:
        TradingSessions.from_ib(text, NY)
    assert names in str(info.value)


@pytest.mark.parametrize("text", ["", "   ", ";", ";;"])
def test_empty_trading_hours_refused(text):
    with pytest.raises(ValueError, match="trading hours"):
        TradingSessions.from_ib(text, NY)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "../etc/passwd", "EST5EDT\x00"])
def test_unknown_time_zone_is_named(tz):
    with pytest.raises(ValueError, match="time zone"):
        TradingSessions.from_ib("20260302:0930-1600", tz)


_VALID = "20260301:1700-20260302:1600;20260302:0930-1200,1300-1600;20260303:CLOSED"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_damaged_trading_hours_parse_or_raise_value_error(data):
    """Flip, drop or insert characters anywhere: a clean ValueError or a valid calendar."""
    chars = list(_VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(chars) - 1))
        op = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        c = data.draw(st.sampled_from(list("0123456789:-;,CLOSED x")))
        if op == "flip":
            chars[i] = c
        elif op == "drop" and len(chars) > 1:
            del chars[i]
        else:
            chars.insert(i, c)
    try:
        s = TradingSessions.from_ib("".join(chars), CHI)
    except ValueError:
        return
    prev_end = None
    for start, end in s.intervals_ns:
        assert start < end and (prev_end is None or start > prev_end)
        prev_end = end
