"""BinanceParser.market_frame's inlined hot path gives what market_event gives, and bad frames
still fail as parse errors naming the field (never a TypeError from a dict lookup)."""

from __future__ import annotations

import orjson
import pytest

from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import BinanceParseError, BinanceParser

TS = 1_700_000_000_123_456_789
TRADE = {"e": "trade", "E": 1700000000000, "s": "BTCUSDT", "t": 12345, "p": "43250.12000000",
         "q": "0.00100000", "T": 1700000000001, "m": True, "M": True}
FRAMES = [
    TRADE,
    {"e": "bookTicker", "u": 400900217, "s": "BTCUSDT", "b": "25.35190000", "B": "31.21000000",
     "a": "25.36520000", "A": "40.66000000"},
    {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000",
     "A": "40.66000000"},  # spot bookTicker: no event type (the slow path)
    {"e": "depthUpdate", "E": 1700000000000, "s": "BTCUSDT", "U": 157, "u": 160, "b": [["0.0024", "10"]],
     "a": [["0.0026", "100"]]},
    {"e": "kline", "E": 1700000000000, "s": "BTCUSDT", "k": {
        "t": 1700000000000, "T": 1700000059999, "s": "BTCUSDT", "i": "1m", "o": "1.0", "c": "2.0", "h": "3.0",
        "l": "0.5", "v": "10.0", "x": True, "q": "20.0", "n": 5, "V": "4", "Q": "8", "f": 1, "L": 5, "B": "0"}},
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: str(f.get("e", "no-e")))
@pytest.mark.parametrize("combined", [False, True], ids=["raw", "combined"])
def test_market_frame_equals_market_event(frame: dict, combined: bool) -> None:
    p = BinanceParser(Market.SPOT)
    doc = {"stream": "btcusdt@x", "data": frame} if combined else frame
    got = p.market_frame(orjson.dumps(doc), TS)
    assert got is not None and got == p.market_event(doc, TS)


def test_trade_fields_through_the_fast_path() -> None:
    t = BinanceParser(Market.SPOT).market_frame(orjson.dumps(TRADE).decode(), TS)
    assert (str(t.instrument_id), t.price, t.size, t.trade_id, t.ts_event_ns, t.ts_init_ns) == (
        "binance_spot:BTCUSDT", 43250.12, 0.001, "12345", 1700000000001 * 1_000_000, TS)


@pytest.mark.parametrize("e", [[1], {"a": 1}, 7, True])
def test_a_non_text_event_type_is_a_parse_error_naming_the_field(e: object) -> None:
    with pytest.raises(BinanceParseError) as info:
        BinanceParser(Market.SPOT).market_frame(orjson.dumps({**TRADE, "e": e}), TS)
    assert info.value.field == "e" and repr(e) in str(info.value)


@pytest.mark.parametrize("raw", [b"", b"{", b'{"e":"trade"', b"\xff\xfe", b"[1,2]", b"null"])
def test_damaged_frames_are_parse_errors(raw: bytes) -> None:
    with pytest.raises(BinanceParseError):
        BinanceParser(Market.SPOT).market_frame(raw, TS)


def test_a_truncated_trade_names_the_missing_field() -> None:
    doc = {k: v for k, v in TRADE.items() if k != "p"}
    with pytest.raises(BinanceParseError, match="'p'"):
        BinanceParser(Market.SPOT).market_frame(orjson.dumps(doc), TS)
