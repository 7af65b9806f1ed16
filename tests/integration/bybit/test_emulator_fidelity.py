"""What the Bybit emulator says, read by the adapter's parsers (written from the real fixtures) and book.

The emulator's shapes and the parsers were written separately, one from the docs'
examples and one from the recorded fixtures; every REST result and websocket frame the
emulator produces must parse, with the values the exchange holds. The exchange is
driven in-process (pure; time is passed in).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from nautilus_hmm.domain.enums import OrderStatus, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.bybit.book import BybitBook
from nautilus_hmm.venues.bybit.emulator.exchange import BybitExchange
from nautilus_hmm.venues.bybit.parse import (
    BybitParser,
    Executions,
    OrderUpdates,
    PositionUpdates,
    WalletUpdate,
    parse_executions,
    parse_instruments,
    parse_klines,
    parse_orderbook,
    parse_orders,
    parse_positions,
    parse_server_time,
    parse_tickers,
    parse_wallet_balance,
)

T0_MS = 1_750_000_000_000
NS_PER_MS = 1_000_000


def envelope(result: Any) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": T0_MS}


@pytest.fixture
def ex() -> BybitExchange:
    return BybitExchange(["BTCUSDT", "ETHUSDT"], start_ns=T0_MS * NS_PER_MS)


@pytest.mark.parametrize("category, venue", [("spot", "bybit_spot"), ("linear", "bybit_linear")])
def test_instruments_parse_with_the_exchanges_filters(ex, category, venue) -> None:
    insts, cursor = parse_instruments(envelope(ex.instruments_info({"category": category})), venue, category)
    assert cursor is None
    for s in ("BTCUSDT", "ETHUSDT"):
        got, want = insts[InstrumentId(venue, s)], ex.instruments[category][s]
        assert (got.tick_size, got.step_size, got.min_qty, got.min_notional) == (
            want.tick_size, want.step_size, want.min_qty, want.min_notional)
        assert got.tradable


def test_a_closed_instrument_parses_as_not_tradable(ex) -> None:
    ex.set_status("linear", "ETHUSDT", "Closed")
    insts, _ = parse_instruments(envelope(ex.instruments_info({"category": "linear"})), "bybit_linear", "linear")
    assert insts[InstrumentId("bybit_linear", "ETHUSDT")].tradable is False


def test_time_klines_book_and_tickers_parse(ex) -> None:
    ns = T0_MS * NS_PER_MS
    assert parse_server_time(envelope({"timeSecond": str(T0_MS // 1000), "timeNano": str(ns)})) == T0_MS
    iid = InstrumentId("bybit_linear", "BTCUSDT")
    bars = parse_klines(envelope(ex.klines({"category": "linear", "symbol": "BTCUSDT", "interval": "1",
                                            "limit": "10"})), iid, 60, ns, now_ms=T0_MS)
    assert len(bars) == 10 and [b.ts_event_ns for b in bars] == sorted(b.ts_event_ns for b in bars)
    book = parse_orderbook(envelope(ex.orderbook({"category": "linear", "symbol": "BTCUSDT", "limit": "50"}, T0_MS)),
                           "bybit_linear", ns)
    assert len(book.bids) == len(book.asks) == 50 and book.bids[0][0] < book.asks[0][0]
    (ticker,) = parse_tickers(envelope(ex.tickers({"category": "spot", "symbol": "BTCUSDT"})), "bybit_spot", ns)
    bid, _, ask, _ = ex.quotes[("spot", "BTCUSDT")]
    assert (ticker.bid, ticker.ask) == (float(bid), float(ask))


def test_orders_executions_positions_and_wallet_parse_to_the_exchanges_state(ex) -> None:
    now = T0_MS * NS_PER_MS
    ex.create_order({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.02",
                     "orderLinkId": "f-1"}, now)
    ex.create_order({"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Limit", "qty": "0.01",
                     "price": "70000", "orderLinkId": "f-2"}, now)
    ex.create_order({"category": "spot", "symbol": "ETHUSDT", "side": "Buy", "orderType": "Market", "qty": "100",
                     "orderLinkId": "f-3"}, now)
    orders, _ = parse_orders(envelope(ex.history({"category": "linear"})), "bybit_linear")
    by_id = {o.client_order_id: o for o in orders}
    assert by_id["f-1"].status is OrderStatus.FILLED and by_id["f-1"].filled_qty == Decimal("0.02")
    assert by_id["f-2"].status is OrderStatus.ACCEPTED and by_id["f-2"].price == Decimal("70000")
    fills, _ = parse_executions(envelope(ex.execution_list({"category": "linear"}, T0_MS)), "bybit_linear")
    assert [(f.client_order_id, f.qty, f.side) for f in fills] == [("f-1", Decimal("0.02"), Side.BUY)]
    assert fills[0].trade_id == ex.executions[0].exec_id
    spot_fills, _ = parse_executions(envelope(ex.execution_list({"category": "spot"}, T0_MS)), "bybit_spot")
    assert spot_fills[0].client_order_id == "f-3" and spot_fills[0].qty * spot_fills[0].price <= 100
    positions, _ = parse_positions(envelope(ex.position_list({"category": "linear", "settleCoin": "USDT"}, T0_MS)),
                                   "bybit_linear")
    pos = {p.instrument_id.symbol: p for p in positions}
    assert pos["BTCUSDT"].qty == Decimal("0.02") and pos["ETHUSDT"].qty == 0
    balances = parse_wallet_balance(envelope(ex.wallet_balance({"accountType": "UNIFIED"})))
    assert balances["ETH"].total == ex.spot.balance("ETH").total
    assert balances["USDT"].free == ex.spot.balance("USDT").free


def test_every_frame_of_a_busy_session_parses_and_the_book_never_gaps(ex) -> None:
    parsers = {"spot": BybitParser("spot"), "linear": BybitParser("linear")}
    topics = {(c, t) for c in ("spot", "linear") for s in ("BTCUSDT", "ETHUSDT")
              for t in (f"orderbook.50.{s}", f"orderbook.1.{s}", f"publicTrade.{s}", f"tickers.{s}",
                        f"kline.1.{s}")}
    for c in ("spot", "linear"):
        for s in ("BTCUSDT", "ETHUSDT"):
            ex.want_kline(c, s, "1")
    books = {(c, s): BybitBook(InstrumentId(parsers[c].venue, s)) for c in ("spot", "linear")
             for s in ("BTCUSDT", "ETHUSDT")}
    now = T0_MS * NS_PER_MS
    for (c, s), book in books.items():
        book.apply(parsers[c].book(ex.book_snapshot_frame(c, s, 50, T0_MS), f"orderbook.50.{s}", now))
    private = BybitParser("linear")
    counts: dict[str, int] = {}
    for i in range(120):
        now += 1_000 * NS_PER_MS
        if i % 10 == 0:
            ex.create_order({"category": "linear", "symbol": "BTCUSDT", "side": "Buy" if i % 20 else "Sell",
                             "orderType": "Market", "qty": "0.01"}, now)
        out = ex.tick(now, topics)
        for c, topic, frame in out.public:
            raw = orjson.dumps(frame)
            event = parsers[c].parse(raw, now)
            counts[topic.split(".")[0]] = counts.get(topic.split(".")[0], 0) + 1
            if topic.startswith("orderbook.50."):
                books[(c, topic.split(".")[2])].apply(event)  # raises BookGap on any gap
        for _topic, frame in out.private:
            private.parse(orjson.dumps(frame), now)
    assert counts["orderbook"] == 120 * 8 and counts["publicTrade"] == 120 * 4 and counts["kline"] >= 120 * 4
    for (c, s), book in books.items():
        want = ex.orderbook({"category": c, "symbol": s, "limit": "50"}, T0_MS)
        assert book.best_bid()[0] == float(want["b"][0][0]) and book.best_ask()[0] == float(want["a"][0][0])


def test_private_frames_of_an_order_parse_as_updates_fills_positions_and_wallet(ex) -> None:
    _, frames = ex.create_order({"category": "linear", "symbol": "ETHUSDT", "side": "Sell", "orderType": "Market",
                                 "qty": "0.5", "orderLinkId": "pf-1"}, T0_MS * NS_PER_MS)
    parser = BybitParser("linear")
    events = {topic: parser.parse(orjson.dumps(frame), 0) for topic, frame in frames}
    assert isinstance(events["order"], OrderUpdates)
    assert [u.status for u in events["order"].orders] == [OrderStatus.ACCEPTED, OrderStatus.FILLED]
    assert isinstance(events["execution"], Executions)
    assert [f.client_order_id for f in events["execution"].fills] == ["pf-1"]
    assert isinstance(events["position"], PositionUpdates) and events["position"].positions[0].qty == Decimal("-0.5")
    assert isinstance(events["wallet"], WalletUpdate)
