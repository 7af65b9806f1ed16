"""MarketStreams' frame handling (no network): what each frame publishes."""

from __future__ import annotations

import orjson

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import Bar, BookValidityChanged, TradeTick
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import BinanceParser
from nautilus_hmm.venues.binance.rest import BinanceRest
from nautilus_hmm.venues.binance.streams import MarketStreams, kline_interval, symbol_streams
from nautilus_hmm.venues.ws import WsSettings

T0_MS = 1_700_000_000_000


def streams(bus: Bus, clock: ManualClock, **kw: object) -> MarketStreams:
    rest = BinanceRest(Market.SPOT, "http://127.0.0.1:9", clock, venue="binance_spot")
    names = symbol_streams("BTCUSDT", Market.SPOT, trade_stream="trade", kline=None, book_ticker=True, depth=True,
                           mark_price=False)
    return MarketStreams(venue="binance_spot", market=Market.SPOT, ws_url="ws://127.0.0.1:9",
                         parser=BinanceParser(Market.SPOT), bus=bus, clock=clock, rest=rest, streams=names,
                         book_symbols=["BTCUSDT"], settings=WsSettings(), **kw)  # type: ignore[arg-type]


def trade(t_ms: int, price: str, tid: int) -> bytes:
    return orjson.dumps({"e": "trade", "E": t_ms, "s": "BTCUSDT", "t": tid, "p": price, "q": "0.5", "T": t_ms,
                         "m": False, "M": True})


def test_stream_names_follow_binance_naming() -> None:
    assert symbol_streams("BTCUSDT", Market.USDM, trade_stream="aggTrade", kline="1m", book_ticker=True,
                          depth=True, mark_price=True) == [
        "btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@bookTicker", "btcusdt@depth@100ms", "btcusdt@markPrice@1s"]
    assert kline_interval(3600) == "1h"


def test_trades_build_bars_when_the_bar_length_has_no_kline(bus: Bus, clock: ManualClock) -> None:
    bars: list[Bar] = []
    bus.subscribe(Bar, bars.append)
    ms = streams(bus, clock, trade_bar_interval_s=10)
    ms.on_frame(trade(T0_MS, "100.0", 1), 0)
    ms.on_frame(trade(T0_MS + 4_000, "101.0", 2), 0)
    ms.on_frame(trade(T0_MS + 10_000, "99.0", 3), 0)
    assert len(bars) == 1 and (bars[0].open, bars[0].high, bars[0].close, bars[0].interval_s) == (100.0, 101.0, 101.0, 10)


def test_trade_frames_publish_trade_ticks(bus: Bus, clock: ManualClock) -> None:
    ticks: list[TradeTick] = []
    bus.subscribe(TradeTick, ticks.append)
    streams(bus, clock).on_frame(trade(T0_MS, "100.0", 7), 5)
    assert [(t.price, t.trade_id, t.ts_init_ns) for t in ticks] == [(100.0, "7", 5)]


def test_initial_books_are_published_invalid(bus: Bus, clock: ManualClock) -> None:
    seen: list[BookValidityChanged] = []
    bus.subscribe(BookValidityChanged, seen.append)
    streams(bus, clock).start_books()
    assert [(m.valid, m.reason) for m in seen] == [(False, "awaiting first snapshot")]


def test_refused_subscription_is_counted(bus: Bus, clock: ManualClock) -> None:
    ms = streams(bus, clock)
    ms.on_frame(b'{"error":{"code":2,"msg":"Invalid request"},"id":9}', 0)
    assert ms.stream_errors == 1
