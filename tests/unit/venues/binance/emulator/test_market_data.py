"""The public market endpoints answer from what the streams printed (pure: no server, no loop)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from nautilus_hmm.venues.binance.emulator.exchange import EmulatedExchange, EmulatorError
from nautilus_hmm.venues.binance.emulator.market_data import (
    PublicMarketData,
    by_symbol,
    spot_ticker_24hr_weight,
)
from nautilus_hmm.venues.binance.market import Market

T0_NS = 1_700_000_000 * 10**9
S_NS = 10**9
H_NS = 3600 * S_NS
BTC = {"symbol": "BTCUSDT"}


class Tape:
    """An exchange ticked by hand, with every stream frame it produced."""

    def __init__(self, market: Market, symbols: tuple[str, ...] = ("BTCUSDT",)) -> None:
        self.ex = EmulatedExchange(market, symbols, start_ns=T0_NS)
        self.pub = PublicMarketData(self.ex)
        self.frames: dict[str, list[dict[str, Any]]] = {}
        self.now_ns = T0_NS

    def tick(self, n: int = 1, every_ns: int = S_NS) -> None:
        for _ in range(n):
            self.now_ns += every_ns
            for stream, payload in self.ex.tick(self.now_ns).market:
                self.frames.setdefault(stream, []).append(payload)

    def of(self, stream: str) -> list[dict[str, Any]]:
        return self.frames[stream]


def code_of(fn: Any, *args: Any) -> int:
    with pytest.raises(EmulatorError) as exc:
        fn(*args)
    return exc.value.code


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_recent_trades_are_the_trade_stream_frames(market: Market) -> None:
    t = Tape(market)
    t.tick(5)
    rows = t.pub.trades(BTC, t.now_ns)
    frames = t.of("btcusdt@trade")
    assert [(r["id"], r["price"], r["qty"], r["time"], r["isBuyerMaker"]) for r in rows] == \
        [(f["t"], f["p"], f["q"], f["T"], f["m"]) for f in frames]
    assert all(Decimal(r["quoteQty"]) == (Decimal(r["price"]) * Decimal(r["qty"])).quantize(Decimal(r["quoteQty"]))
               for r in rows)


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_aggregate_trades_are_the_agg_trade_stream_frames(market: Market) -> None:
    t = Tape(market)
    t.tick(4)
    rows = t.pub.agg_trades(BTC, t.now_ns)
    fields = ("a", "p", "q", "f", "l", "T", "m") + (("M",) if market is Market.SPOT else ())
    assert [{k: r[k] for k in fields} for r in rows] == [{k: f[k] for k in fields} for f in t.of("btcusdt@aggTrade")]
    if market is Market.USDM:
        assert all(r["nq"] == r["q"] for r in rows)


def test_aggregate_trades_select_by_from_id_start_and_end_time_and_limit() -> None:
    t = Tape(Market.SPOT)
    t.tick(10)
    times = [f["T"] for f in t.of("btcusdt@aggTrade")]
    assert [r["a"] for r in t.pub.agg_trades({**BTC, "fromId": "4", "limit": "3"}, t.now_ns)] == [4, 5, 6]
    assert [r["a"] for r in t.pub.agg_trades({**BTC, "startTime": str(times[2]), "endTime": str(times[4])},
                                             t.now_ns)] == [3, 4, 5]
    assert [r["a"] for r in t.pub.agg_trades({**BTC, "limit": "2"}, t.now_ns)] == [9, 10]
    assert [r["a"] for r in t.pub.agg_trades({**BTC, "endTime": str(times[5]), "limit": "2"}, t.now_ns)] == [5, 6]


def test_usdm_aggregate_trades_refuse_more_than_an_hour_between_start_and_end() -> None:
    t = Tape(Market.USDM)
    t.tick(1)
    start_ms = T0_NS // 10**6
    assert len(t.pub.agg_trades({**BTC, "startTime": str(start_ms), "endTime": str(start_ms + 3_600_000)},
                                t.now_ns)) == 1
    assert code_of(t.pub.agg_trades, {**BTC, "startTime": str(start_ms), "endTime": str(start_ms + 3_600_001)},
                   t.now_ns) == -1127


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_24h_ticker_summarises_the_trades_the_streams_printed(market: Market) -> None:
    t = Tape(market)
    t.tick(6)
    trades = t.of("btcusdt@trade")
    row = t.pub.ticker_24hr(BTC, t.now_ns)
    prices = [Decimal(f["p"]) for f in trades]
    assert row["lastPrice"] == trades[-1]["p"] and row["lastQty"] == trades[-1]["q"]
    assert row["openPrice"] == trades[0]["p"]
    assert Decimal(row["highPrice"]) == max(prices) and Decimal(row["lowPrice"]) == min(prices)
    assert (row["firstId"], row["lastId"], row["count"]) == (trades[0]["t"], trades[-1]["t"], 6)
    assert Decimal(row["volume"]) == sum(Decimal(f["q"]) for f in trades)
    assert Decimal(row["priceChange"]) == prices[-1] - prices[0]
    assert row["closeTime"] == t.now_ns // 10**6 and row["closeTime"] - row["openTime"] == 86_400_000
    if market is Market.SPOT:
        book = t.of("btcusdt@bookTicker")[-1]
        assert (row["bidPrice"], row["bidQty"], row["askPrice"], row["askQty"]) == \
            (book["b"], book["B"], book["a"], book["A"])


def test_24h_ticker_window_forgets_trades_older_than_a_day_and_keeps_the_previous_close() -> None:
    t = Tape(Market.SPOT)
    t.tick(3)
    before = t.of("btcusdt@trade")[-1]
    t.tick(1, every_ns=25 * H_NS)
    row = t.pub.ticker_24hr(BTC, t.now_ns)
    assert row["count"] == 1 and row["firstId"] == row["lastId"] == 4
    assert row["prevClosePrice"] == before["p"]
    assert row["openPrice"] == t.of("btcusdt@trade")[-1]["p"]


def test_24h_ticker_of_a_market_that_has_not_traded_is_flat_at_the_opening_price() -> None:
    t = Tape(Market.SPOT)
    row = t.pub.ticker_24hr(BTC, t.now_ns)
    assert (row["count"], row["firstId"], row["lastId"]) == (0, -1, -1)
    assert row["lastPrice"] == row["openPrice"] == row["prevClosePrice"] == "60000.00000000"
    assert row["volume"] == "0.00000000" and row["priceChangePercent"] == "0.000"


def test_mini_24h_ticker_has_only_the_mini_fields() -> None:
    t = Tape(Market.SPOT)
    t.tick(2)
    mini = t.pub.ticker_24hr({**BTC, "type": "MINI"}, t.now_ns)
    assert list(mini) == ["symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume",
                          "openTime", "closeTime", "firstId", "lastId", "count"]
    assert code_of(t.pub.ticker_24hr, {**BTC, "type": "TINY"}, t.now_ns) == -1100


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_book_ticker_is_the_book_ticker_stream_and_the_depth_top(market: Market) -> None:
    t = Tape(market)
    t.tick(3)
    row = t.pub.book_ticker(BTC, t.now_ns)
    frame = t.of("btcusdt@bookTicker")[-1]
    assert (row["bidPrice"], row["bidQty"], row["askPrice"], row["askQty"]) == \
        (frame["b"], frame["B"], frame["a"], frame["A"])
    _, bids, asks = t.ex.depth["BTCUSDT"].snapshot(1)
    assert [row["bidPrice"], row["bidQty"]] == bids[0] and [row["askPrice"], row["askQty"]] == asks[0]
    if market is Market.USDM:
        assert row["time"] == frame["T"]


def test_price_ticker_is_the_last_trade_price() -> None:
    t = Tape(Market.USDM)
    t.tick(2)
    last = t.of("btcusdt@trade")[-1]
    assert t.pub.ticker_price(BTC, t.now_ns) == {"symbol": "BTCUSDT", "price": last["p"], "time": last["T"]}


def test_average_price_weights_the_trades_of_the_last_five_minutes() -> None:
    t = Tape(Market.SPOT)
    t.tick(1)
    t.tick(1, every_ns=400 * S_NS)
    t.tick(2, every_ns=60 * S_NS)
    recent = t.of("btcusdt@trade")[-3:]
    t.now_ns += 30 * S_NS  # now: the first trade is 550 s old, the others at most 150 s
    qty = sum(Decimal(f["q"]) for f in recent)
    vwap = sum(Decimal(f["p"]) * Decimal(f["q"]) for f in recent) / qty
    row = t.pub.avg_price(BTC, t.now_ns)
    assert row["mins"] == 5 and row["closeTime"] == recent[-1]["T"]
    assert row["price"] == f"{vwap:.8f}"


def test_mark_price_is_the_mark_price_stream() -> None:
    t = Tape(Market.USDM)
    t.tick(2)
    frame = t.of("btcusdt@markPrice")[-1]
    row = t.pub.premium_index(BTC, t.now_ns)
    assert Decimal(row["markPrice"]) == Decimal(frame["p"]) and row["lastFundingRate"] == frame["r"]
    assert row["nextFundingTime"] == frame["T"] and row["time"] == t.now_ns // 10**6


def test_one_symbol_answers_an_object_none_every_symbol_and_a_list_those_in_its_order() -> None:
    t = Tape(Market.SPOT, ("BTCUSDT", "ETHUSDT"))
    t.tick(1)
    assert t.pub.ticker_price(BTC, t.now_ns)["symbol"] == "BTCUSDT"
    assert [r["symbol"] for r in t.pub.ticker_price({}, t.now_ns)] == ["BTCUSDT", "ETHUSDT"]
    assert [r["symbol"] for r in t.pub.book_ticker({"symbols": '["ETHUSDT","BTCUSDT"]'}, t.now_ns)] == \
        ["ETHUSDT", "BTCUSDT"]


def test_bad_symbols_are_refused_with_binance_codes() -> None:
    t = Tape(Market.SPOT, ("BTCUSDT", "ETHUSDT"))
    pub, now = t.pub, t.now_ns
    assert code_of(pub.ticker_24hr, {"symbol": "NOPEUSDT"}, now) == -1121
    assert code_of(pub.ticker_24hr, {"symbols": '["BTCUSDT","NOPEUSDT"]'}, now) == -1121
    assert code_of(pub.ticker_price, {"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, now) == -1128
    assert code_of(pub.book_ticker, {"symbols": "BTCUSDT"}, now) == -1100
    assert code_of(pub.book_ticker, {"symbols": '["BTCUSDT","BTCUSDT"]'}, now) == -1101
    assert code_of(pub.trades, {}, now) == -1102
    assert code_of(pub.trades, {**BTC, "limit": "many"}, now) == -1100
    assert code_of(pub.trades, {**BTC, "limit": "0"}, now) == -1130


def test_a_limit_above_1000_is_capped() -> None:
    t = Tape(Market.SPOT)
    t.tick(1005)
    assert len(t.pub.trades({**BTC, "limit": "5000"}, t.now_ns)) == 1000
    assert len(t.pub.agg_trades(BTC, t.now_ns)) == 500


def test_request_weights_follow_the_symbols_asked_for() -> None:
    assert spot_ticker_24hr_weight(BTC) == 2
    assert spot_ticker_24hr_weight({"symbols": '["A","B"]'}) == 2
    assert spot_ticker_24hr_weight({"symbols": orjsonish(21)}) == 40
    assert spot_ticker_24hr_weight({"symbols": orjsonish(101)}) == 80
    assert spot_ticker_24hr_weight({}) == 80
    weight = by_symbol(2, 4)
    assert (weight(BTC), weight({}), weight({"symbols": '["A"]'})) == (2, 4, 4)


def orjsonish(n: int) -> str:
    return "[" + ",".join(f'"S{i}USDT"' for i in range(n)) + "]"
