"""BarAggregator closes bars on the next interval or on flush; PriceCache tracks marks and age."""

from __future__ import annotations

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.domain.enums import Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.bars import BarAggregator, PriceCache
from nautilus_hmm.messages import Bar, MarkPrice, QuoteTick, TradeTick

IID = InstrumentId("sim", "BTCUSDT")
S = 1_000_000_000
T0 = 1_740_798_000 * S  # a whole minute


def test_trades_within_an_interval_build_one_bar():
    agg = BarAggregator(IID, 60)
    assert agg.on_trade(100.0, 1.0, T0 + 1 * S) is None
    assert agg.on_trade(105.0, 2.0, T0 + 10 * S) is None
    assert agg.on_trade(95.0, 0.5, T0 + 20 * S) is None
    assert agg.on_trade(101.0, 1.5, T0 + 59 * S) is None
    bar = agg.on_trade(102.0, 1.0, T0 + 60 * S)
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (100.0, 105.0, 95.0, 101.0, 5.0)
    assert bar.ts_event_ns == T0
    assert bar.interval_s == 60
    assert bar.instrument_id == IID


def test_bar_open_time_is_aligned_to_the_interval():
    agg = BarAggregator(IID, 60)
    agg.on_trade(100.0, 1.0, T0 + 37 * S)
    assert agg.open_bar_ts_ns == T0


def test_trade_of_a_later_interval_closes_the_bar_and_starts_the_next():
    agg = BarAggregator(IID, 60)
    agg.on_trade(100.0, 1.0, T0)
    closed = agg.on_trade(200.0, 3.0, T0 + 61 * S)
    assert closed is not None and closed.close == 100.0
    nxt = agg.flush(T0 + 120 * S)
    assert nxt is not None
    assert (nxt.ts_event_ns, nxt.open, nxt.volume) == (T0 + 60 * S, 200.0, 3.0)


def test_flush_before_the_interval_end_keeps_the_bar_open():
    agg = BarAggregator(IID, 60)
    agg.on_trade(100.0, 1.0, T0)
    assert agg.flush(T0 + 59 * S) is None
    assert agg.open_bar_ts_ns == T0


def test_flush_after_the_interval_end_closes_a_quiet_bar():
    agg = BarAggregator(IID, 60)
    agg.on_trade(100.0, 1.0, T0)
    bar = agg.flush(T0 + 60 * S)
    assert bar is not None
    assert bar.ts_init_ns == T0 + 60 * S
    assert agg.flush(T0 + 600 * S) is None  # nothing open any more


def test_empty_intervals_produce_no_bar():
    agg = BarAggregator(IID, 60)
    agg.on_trade(100.0, 1.0, T0)
    closed = agg.on_trade(101.0, 1.0, T0 + 300 * S)  # four empty minutes in between
    assert closed is not None and closed.ts_event_ns == T0
    nxt = agg.flush(T0 + 360 * S)
    assert nxt is not None and nxt.ts_event_ns == T0 + 300 * S


def test_late_trade_is_counted_and_does_not_touch_the_open_bar():
    agg = BarAggregator(IID, 60)
    agg.on_trade(100.0, 1.0, T0)
    agg.on_trade(101.0, 1.0, T0 + 60 * S)
    assert agg.on_trade(50.0, 9.0, T0 + 30 * S) is None
    assert agg.late_trades == 1
    bar = agg.flush(T0 + 120 * S)
    assert bar is not None and (bar.low, bar.volume) == (101.0, 1.0)


def test_trade_tick_input_is_accepted():
    agg = BarAggregator(IID, 1)
    tick = TradeTick(ts_event_ns=T0, ts_init_ns=T0, instrument_id=IID, price=10.0, size=2.0,
                     aggressor=Side.BUY, trade_id="1")
    agg.on_trade_tick(tick)
    bar = agg.flush(T0 + S)
    assert bar is not None and bar.volume == 2.0


# ---------------------------------------------------------------- PriceCache


def test_mark_prefers_venue_mark_then_mid_then_trade_then_bar():
    pc = PriceCache()
    assert pc.mark(IID) is None
    pc.update_bar(Bar(ts_event_ns=T0, ts_init_ns=T0, instrument_id=IID, interval_s=60,
                      open=1, high=1, low=1, close=99.0, volume=1))
    p = pc.mark(IID)
    assert p is not None and (p.price, p.ts_ns, p.source) == (99.0, T0 + 60 * S, "bar")
    pc.update_trade(IID, 100.0, T0 + 61 * S)
    assert pc.mark(IID).source == "trade"
    pc.update_quote(IID, 100.0, 102.0, T0 + 62 * S)
    p = pc.mark(IID)
    assert (p.price, p.source) == (101.0, "mid")
    pc.update_mark(IID, 100.5, T0 + 63 * S)
    assert (pc.mark(IID).price, pc.mark(IID).source) == (100.5, "mark")


def test_older_update_does_not_overwrite_newer_price():
    pc = PriceCache()
    pc.update_trade(IID, 100.0, T0 + 10 * S)
    pc.update_trade(IID, 90.0, T0 + 5 * S)
    assert pc.last_trade(IID).price == 100.0


def test_staleness_uses_the_freshest_price():
    pc = PriceCache()
    assert pc.is_stale(IID, T0, 5.0)
    pc.update_trade(IID, 100.0, T0)
    pc.update_quote(IID, 99.0, 101.0, T0 + 3 * S)
    assert pc.age_s(IID, T0 + 5 * S) == 2.0
    assert not pc.is_stale(IID, T0 + 5 * S, 5.0)
    assert pc.is_stale(IID, T0 + 9 * S, 5.0)


def test_attached_cache_follows_the_bus():
    bus = Bus()
    pc = PriceCache()
    pc.attach(bus)
    bus.publish(QuoteTick(ts_event_ns=T0, ts_init_ns=T0, instrument_id=IID, bid=10.0, bid_size=1.0,
                          ask=12.0, ask_size=1.0))
    bus.publish(MarkPrice(ts_event_ns=T0 + S, ts_init_ns=T0 + S, instrument_id=IID, price=11.5))
    assert pc.mid(IID).price == 11.0
    assert pc.mark(IID).price == 11.5
    assert pc.quote(IID) == (10.0, 12.0, T0)
    assert pc.instruments() == [IID]
