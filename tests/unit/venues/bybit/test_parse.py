"""Bybit parsing: values from the docs' examples, and damaged frames refused with a named field."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import orjson
import pytest

from nautilus_hmm.core.errors import ParseError
from nautilus_hmm.domain.enums import InstrumentKind, Liquidity, OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.bybit.parse import (
    AuthResult,
    BookUpdate,
    BybitParseError,
    BybitParser,
    Category,
    Executions,
    Klines,
    OrderUpdates,
    Pong,
    PublicTrades,
    SubscribeResult,
    Ticker,
    TradeResponse,
    WalletUpdate,
    bars_to_arrays,
    category_of,
    net_positions,
    parse_cancel_all,
    parse_executions,
    parse_instruments,
    parse_klines,
    parse_order,
    parse_orders,
    parse_positions,
    parse_server_time,
    parse_wallet_balance,
)
from tests.conftest import fixture_path
from tests.unit.venues.bybit.docs import load_documents

TS = 1_700_000_000_000_000_000
LIN = "bybit_linear"


def doc(name: str) -> Any:
    docs = load_documents(fixture_path("bybit", "docs_v5", name))
    return docs[0] if len(docs) == 1 else docs


def frame(name: str) -> dict[str, Any]:
    return orjson.loads(fixture_path("bybit", "docs_v5", name).read_bytes())


def nt(name: str) -> dict[str, Any]:
    return orjson.loads(fixture_path("bybit", "nautilus_trader", "crate_test_data", name).read_bytes())


def parse(d: Any, category: str = "linear") -> Any:
    return BybitParser(category).parse(orjson.dumps(d), TS)


# ---------------------------------------------------------------- REST values


def test_server_time_in_ms_from_time_nano() -> None:
    assert parse_server_time(doc("rest_GET_v5_market_time.json")) == 1688639403423
    assert parse_server_time({"timeSecond": "1688639403", "timeNano": ""}) == 1688639403000


def test_linear_instrument_filters_and_a_prelaunch_symbol_is_not_tradable() -> None:
    perp, prelaunch = doc("rest_GET_v5_market_instruments-info_linear.jsonc")
    insts, cursor = parse_instruments(perp, LIN)
    assert cursor is None
    btc = insts[InstrumentId(LIN, "BTCUSDT")]
    assert (btc.tick_size, btc.step_size, btc.min_qty) == (Decimal("0.1"), Decimal("0.001"), Decimal("0.001"))
    assert (btc.min_notional, btc.max_qty, btc.market_max_qty) == (Decimal(5), Decimal(1190), Decimal(500))
    assert btc.kind is InstrumentKind.PERPETUAL and btc.tradable
    assert (btc.base_asset, btc.quote_asset) == ("BTC", "USDT")
    insts2, cursor2 = parse_instruments(prelaunch, LIN)
    assert cursor2 == "first%3DBIOUSDT%26last%3DBIOUSDT"
    assert insts2[InstrumentId(LIN, "BIOUSDT")].tradable is False  # status PreLaunch: no orders


def test_spot_instrument_uses_base_precision_and_min_order_amount() -> None:
    insts, _ = parse_instruments(doc("rest_GET_v5_market_instruments-info_spot.json"), "bybit_spot")
    btc = insts[InstrumentId("bybit_spot", "BTCUSDT")]
    assert btc.kind is InstrumentKind.SPOT
    assert (btc.tick_size, btc.step_size, btc.min_qty) == (Decimal("0.1"), Decimal("0.000001"), Decimal("0.000011"))
    assert (btc.min_notional, btc.max_qty, btc.market_max_qty) == (Decimal(5), Decimal(83), Decimal("41.5"))


def test_an_instrument_leaving_trading_status_is_marked_untradable() -> None:
    body = doc("rest_GET_v5_market_instruments-info_spot.json")
    body["result"]["list"][0]["status"] = "Closed"
    insts, _ = parse_instruments(body, "bybit_spot")
    assert insts[InstrumentId("bybit_spot", "BTCUSDT")].tradable is False


def test_a_broken_instrument_is_skipped_with_its_reason_not_silently() -> None:
    body = doc("rest_GET_v5_market_instruments-info_spot.json")
    good = dict(body["result"]["list"][0])
    bad = {**good, "symbol": "ETHUSDT", "priceFilter": {"tickSize": "abc"}}
    body["result"]["list"] = [good, bad]
    skipped: list[tuple[str, str]] = []
    insts, _ = parse_instruments(body, "bybit_spot", skipped=skipped)
    assert list(insts) == [InstrumentId("bybit_spot", "BTCUSDT")]
    assert skipped[0][0] == "ETHUSDT" and "tickSize" in skipped[0][1] and "'abc'" in skipped[0][1]


def test_klines_come_back_oldest_first_and_open_bars_are_dropped() -> None:
    body = doc("rest_GET_v5_market_kline.json")
    iid = InstrumentId(LIN, "BTCUSD")
    bars = parse_klines(body, iid, 3600, TS)
    assert [b.ts_event_ns // 1_000_000 for b in bars] == [1670601600000, 1670605200000, 1670608800000]
    assert (bars[0].open, bars[0].high, bars[0].low, bars[0].close, bars[0].volume) == (
        17086.5, 17088.0, 16978.0, 17071.5, 6356.0)
    # At 1670608800000 + 30 min the newest bar is still open.
    assert len(parse_klines(body, iid, 3600, TS, now_ms=1670608800000 + 1_800_000)) == 2
    arrays = bars_to_arrays(bars, 3600, "bybit:BTCUSD:klines")
    assert list(arrays.close) == [17071.5, 17071.0, 17055.5] and arrays.interval_s == 3600


def test_open_order_from_order_realtime() -> None:
    orders, cursor = parse_orders(doc("rest_GET_v5_order_realtime.json"), LIN)
    (o,) = orders
    assert cursor == "page_args%3Dfd4300ae-7847-404e-b947-b46980a4d140%26symbol%3D6%26"
    assert o.client_order_id == "test-000005" and o.venue_order_id == "fd4300ae-7847-404e-b947-b46980a4d140"
    assert (o.side, o.order_type, o.status) == (Side.BUY, OrderType.LIMIT, OrderStatus.ACCEPTED)
    assert (o.quantity, o.filled_qty, o.price, o.avg_px) == (Decimal("0.10"), Decimal("0.00"), Decimal("1600.00"), None)
    assert o.ts_ns == 1684738540561 * 1_000_000 and o.reason == ""


def test_post_only_is_limit_maker_and_statuses_map() -> None:
    item = doc("rest_GET_v5_order_realtime.json")["result"]["list"][0]
    assert parse_order({**item, "timeInForce": "PostOnly"}, LIN).order_type is OrderType.LIMIT_MAKER
    for wire, status in [("PartiallyFilled", OrderStatus.PARTIALLY_FILLED), ("Filled", OrderStatus.FILLED),
                         ("Cancelled", OrderStatus.CANCELED), ("PartiallyFilledCanceled", OrderStatus.CANCELED),
                         ("Rejected", OrderStatus.REJECTED), ("Untriggered", OrderStatus.ACCEPTED)]:
        assert parse_order({**item, "orderStatus": wire}, LIN).status is status


def test_a_rejected_order_keeps_its_reason() -> None:
    (o,), _ = parse_orders(nt("http_get_order_partially_filled_rejected.json"), LIN)
    assert o.status is OrderStatus.REJECTED and o.reason == "INSUFFICIENT_MARGIN"
    assert o.filled_qty == Decimal("0.005") and o.avg_px == Decimal("30000")


def test_executions_keep_exec_id_and_only_trades_are_fills() -> None:
    body = doc("rest_GET_v5_execution_list.json")
    trade = body["result"]["list"][0]
    funding = {**trade, "execId": "funding-1", "execType": "Funding", "execTime": "1672282722430"}
    body["result"]["list"] = [funding, trade]
    fills, cursor = parse_executions(body, LIN)
    (f,) = fills
    assert cursor == "132766%3A2%2C132766%3A2"
    assert f.trade_id == "e0cbe81d-0f18-5866-9415-cf319b5dab3b" and f.venue_order_id == trade["orderId"]
    assert (f.side, f.qty, f.price, f.fee) == (Side.BUY, Decimal("0.1"), Decimal("1190.15"), Decimal("0.071409"))
    assert f.liquidity is Liquidity.TAKER and f.fee_asset == "USDC"  # ETHPERP settles in USDC
    assert f.client_order_id == "" and f.ts_ns == 1672282722429 * 1_000_000


def test_executions_are_returned_oldest_first() -> None:
    fills, _ = parse_executions(nt("http_get_executions.json"), LIN)
    assert [f.ts_ns for f in fills] == sorted(f.ts_ns for f in fills)
    assert fills[0].liquidity is Liquidity.MAKER and fills[0].fee_asset == "USDT"


def test_positions_are_signed_with_average_entry_and_realized_pnl() -> None:
    (p,), _ = parse_positions(doc("rest_GET_v5_position_list.json"), LIN)
    assert p.qty == Decimal(-300) and p.avg_price == Decimal("27464.50441675")
    assert (p.realized_pnl, p.cur_realized_pnl) == (Decimal("-0.00096902"), Decimal("0.00013123"))
    assert p.unrealized_pnl == Decimal("-0.00029413") and p.position_idx == 0
    positions, _ = parse_positions(nt("http_get_positions.json"), LIN)
    assert net_positions(positions) == {InstrumentId(LIN, "BTCUSDT"): Decimal("0.5"),
                                        InstrumentId(LIN, "ETHUSDT"): Decimal("-5.0")}  # SOLUSDT flat: left out


def test_wallet_balance_free_is_wallet_minus_locked() -> None:
    body = doc("rest_GET_v5_account_wallet-balance.json")
    body["result"]["list"][0]["coin"].append({"coin": "USDT", "walletBalance": "100.5", "locked": "20"})
    out = parse_wallet_balance(body)
    assert out["USDT"].free == Decimal("80.5") and out["USDT"].locked == Decimal(20)
    assert out["BTC"].total == 0


def test_cancel_all_lists_the_cancelled_ids() -> None:
    acks = parse_cancel_all({"list": [{"orderId": "1", "orderLinkId": "a"}, {"orderId": "2", "orderLinkId": ""}],
                             "success": "1"})
    assert [(a.order_id, a.order_link_id) for a in acks] == [("1", "a"), ("2", "")]


def test_category_of_a_venue_name() -> None:
    assert category_of("bybit_spot") is Category.SPOT and category_of("linear") is Category.LINEAR
    with pytest.raises(ValueError, match="inverse"):
        category_of("bybit_inverse")


# ---------------------------------------------------------------- WebSocket values


def test_orderbook_delta_fields() -> None:
    ev = parse(frame("ws_public_orderbook_delta.json"))
    assert isinstance(ev, BookUpdate) and not ev.is_snapshot
    assert ev.instrument_id == InstrumentId(LIN, "BTCUSDT") and ev.depth == 50
    assert (ev.update_id, ev.seq) == (177400507, 66544703342)
    assert ev.bids[0] == (30247.2, 30.028) and ev.bids[-1] == (30240.0, 0.0)  # size 0: delete
    assert ev.asks[0] == (30248.7, 0.0)
    assert ev.ts_event_ns == 1687940967466 * 1_000_000 and ev.cts_ns == 1687940967464 * 1_000_000


def test_public_trade_fields() -> None:
    ev = parse(frame("ws_public_trade.json"), "spot")
    assert isinstance(ev, PublicTrades)
    (t,) = ev.trades
    assert (t.price, t.size, t.aggressor, t.trade_id) == (16578.5, 0.001, Side.BUY, "20f43950-d8dd-5b31-9112-a178eb6023af")
    assert t.instrument_id == InstrumentId("bybit_spot", "BTCUSDT") and t.ts_event_ns == 1672304486865 * 1_000_000


def test_a_confirmed_kline_is_a_bar_and_an_open_one_is_not() -> None:
    f = frame("ws_public_kline.json")
    assert parse(f) is None
    f["data"][0]["confirm"] = True
    ev = parse(f)
    assert isinstance(ev, Klines)
    (bar,) = ev.bars
    assert bar.interval_s == 300 and bar.ts_event_ns == 1672324800000 * 1_000_000
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (16649.5, 16677.0, 16608.0, 16677.0, 2.081)


def test_linear_ticker_deltas_merge_into_the_snapshot() -> None:
    p = BybitParser("linear")
    snap = nt("ws_ticker_linear.json")
    t0 = p.parse(orjson.dumps(snap), TS)
    assert isinstance(t0, Ticker)
    q0 = t0.quote()
    assert q0 is not None and (q0.bid, q0.ask) == (17215.5, 17216.0)
    assert t0.funding_rate == -0.000212 and t0.mark() is not None
    delta = {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 1673272861999, "cs": 24987956060,
             "data": {"symbol": "BTCUSDT", "bid1Price": "17215.00", "bid1Size": "1.5"}}
    t1 = p.parse(orjson.dumps(delta), TS)
    assert isinstance(t1, Ticker)
    assert (t1.bid, t1.bid_size, t1.ask, t1.ask_size) == (17215.0, 1.5, 17216.0, 83.02)
    assert t1.ts_event_ns == 1673272861999 * 1_000_000
    # A bad delta is refused and does not poison the merged state.
    bad = {**delta, "data": {"symbol": "BTCUSDT", "ask1Price": "NaN"}}
    with pytest.raises(BybitParseError, match="ask1Price"):
        p.parse(orjson.dumps(bad), TS)
    t2 = p.parse(orjson.dumps({**delta, "data": {"symbol": "BTCUSDT"}}), TS)
    assert isinstance(t2, Ticker) and t2.ask == 17216.0


def test_spot_ticker_has_no_quote() -> None:
    ev = parse(frame("ws_public_ticker_spot.json"), "spot")
    assert isinstance(ev, Ticker) and ev.last_price == 21109.77 and ev.quote() is None


def test_private_execution_is_a_fill_keyed_by_exec_id() -> None:
    ev = parse(frame("ws_private_execution.json"))
    assert isinstance(ev, Executions)
    (f,) = ev.fills
    assert f.trade_id == "0ab1bdf7-4219-438b-b30a-32ec863018f7" and f.side is Side.SELL
    assert (f.qty, f.price, f.fee, f.fee_asset) == (Decimal("0.5"), Decimal("95900.1"), Decimal("26.3725275"), "USDT")
    assert ev.ts_ns == 1746270400355 * 1_000_000 and f.ts_ns == 1746270400353 * 1_000_000


def test_non_trade_executions_are_not_fills_but_are_listed() -> None:
    ev = parse(nt("ws_account_execution_adl.json"))
    assert isinstance(ev, Executions) and ev.fills == ()
    assert ev.ignored == (("0ab1bdf7-4219-438b-b30a-32ec863018f8", "AdlTrade"),)
    f = frame("ws_private_execution.json")
    f["data"][0]["execType"] = "Funding"
    ev2 = parse(f)
    assert isinstance(ev2, Executions) and ev2.fills == () and ev2.ignored[0][1] == "Funding"


def test_private_items_of_another_category_are_skipped_and_counted() -> None:
    p = BybitParser("spot")
    assert p.parse(fixture_path("bybit", "docs_v5", "ws_private_execution.json").read_bytes(), TS) is None
    assert p.parse(fixture_path("bybit", "docs_v5", "ws_private_order.json").read_bytes(), TS) is None
    assert p.foreign_items == 2  # the linear execution and the option order
    mixed = frame("ws_private_order.json")
    spot_item = {**mixed["data"][0], "category": "spot", "symbol": "BTCUSDT", "orderLinkId": "cid-1"}
    mixed["data"].append(spot_item)
    ev = p.parse(orjson.dumps(mixed), TS)
    assert isinstance(ev, OrderUpdates)
    (o,) = ev.orders
    assert o.instrument_id == InstrumentId("bybit_spot", "BTCUSDT") and o.client_order_id == "cid-1"
    assert o.status is OrderStatus.FILLED and o.avg_px == Decimal(75)


def test_wallet_frame_balances() -> None:
    ev = parse(nt("ws_account_wallet.json"))
    assert isinstance(ev, WalletUpdate) and ev.balances["USDT"].free == Decimal("9647.75537647")


def test_control_frames() -> None:
    assert isinstance(parse(frame("ws_pong_linear.json")), Pong)
    pong = parse(frame("ws_pong_private.json"))
    assert isinstance(pong, Pong) and pong.req_id == "test"
    ok = parse(frame("ws_auth_success_response.json"))
    assert isinstance(ok, AuthResult) and ok.ok
    bad = parse(nt("ws_auth_failure.json"))
    assert isinstance(bad, AuthResult) and not bad.ok and bad.ret_code == 10003 and bad.message == "Invalid apikey"
    sub = parse(nt("ws_subscription_failure.json"))
    assert isinstance(sub, SubscribeResult) and not sub.ok and "invalid.topic" in sub.message
    tr = parse(nt("ws_order_response.json"))
    assert isinstance(tr, TradeResponse) and tr.ok and tr.req_id == "order-req-001"
    assert (tr.order_id, tr.order_link_id) == ("1726025498520715008", "client-order-1")
    dup = parse({"reqId": "r2", "retCode": 110072, "retMsg": "OrderLinkedID is duplicate", "op": "order.create",
                 "data": {}, "header": {"X-Bapi-Limit": "10"}, "connId": "c"})
    assert isinstance(dup, TradeResponse) and not dup.ok and dup.ret_code == 110072 and dup.header["X-Bapi-Limit"] == "10"
    trade_pong = parse({"retCode": 0, "retMsg": "OK", "op": "pong", "data": ["1706081497000"], "connId": "c"})
    assert isinstance(trade_pong, Pong)


# ---------------------------------------------------------------- damage


def _delta() -> dict[str, Any]:
    return frame("ws_public_orderbook_delta.json")


def _refused(d: Any, category: str = "linear") -> BybitParseError:
    with pytest.raises(BybitParseError) as info:
        BybitParser(category).parse(d if isinstance(d, (bytes, str)) else orjson.dumps(d), TS)
    assert isinstance(info.value, ParseError)
    return info.value


def test_truncated_frames_are_refused_at_every_length() -> None:
    raw = fixture_path("bybit", "docs_v5", "ws_public_orderbook_delta.json").read_bytes()
    for n in range(len(raw.rstrip())):
        err = _refused(raw[:n])
        assert err.topic == "frame" and "not JSON" in str(err)


def test_a_frame_that_is_not_an_object_is_refused() -> None:
    assert "expected a JSON object" in str(_refused(b"[1,2,3]"))
    assert "no 'topic' or 'op'" in str(_refused(b'{"hello": 1}'))


@pytest.mark.parametrize("key", ["u", "seq", "s", "b", "a"])
def test_orderbook_missing_field_is_named(key: str) -> None:
    d = _delta()
    del d["data"][key]
    err = _refused(d)
    assert err.topic == "orderbook.50.BTCUSDT" and key in str(err) and err.field is not None and key in err.field


@pytest.mark.parametrize("price", ["abc", "", "NaN", "inf", "-1", "1e400", "0"])
def test_orderbook_bad_price_names_field_and_value(price: str) -> None:
    d = _delta()
    d["data"]["b"][1][0] = price
    err = _refused(d)
    assert "orderbook.50.BTCUSDT" in str(err) and "data.b[1]" in str(err) and repr(price) in str(err)


def test_orderbook_negative_size_and_short_level_are_refused() -> None:
    d = _delta()
    d["data"]["a"][2][1] = "-0.5"
    assert "data.a[2]" in str(_refused(d))
    d = _delta()
    d["data"]["a"][0] = ["30248.70"]
    assert "data.a[0]" in str(_refused(d))


@pytest.mark.parametrize("value", [2**63, -1, "177400507", 1.5, True])
def test_orderbook_update_id_overflow_or_wrong_type_is_refused(value: Any) -> None:
    d = _delta()
    d["data"]["u"] = value
    err = _refused(d)
    assert "data.u" in str(err) and repr(value) in str(err)


def test_timestamp_overflow_is_refused() -> None:
    d = _delta()
    d["ts"] = 10**17  # ms: beyond int64 nanoseconds
    assert "'ts'" in str(_refused(d))


def test_orderbook_symbol_must_match_the_topic() -> None:
    d = _delta()
    d["data"]["s"] = "ETHUSDT"
    err = _refused(d)
    assert "data.s" in str(err) and "ETHUSDT" in str(err)


def test_orderbook_bad_type_and_topic() -> None:
    d = _delta()
    d["type"] = "partial"
    assert "'partial'" in str(_refused(d))
    d = _delta()
    d["topic"] = "orderbook.x.BTCUSDT"
    assert "orderbook.x.BTCUSDT" in str(_refused(d))


def test_unknown_topic_and_op_are_refused() -> None:
    assert "unknown topic 'bananas.BTCUSDT'" in str(_refused({"topic": "bananas.BTCUSDT", "data": []}))
    assert "unknown op 'dance'" in str(_refused({"op": "dance"}))


def test_execution_missing_exec_id_names_item_and_field() -> None:
    f = frame("ws_private_execution.json")
    del f["data"][0]["execId"]
    err = _refused(f)
    assert err.topic == "execution data[0]" and err.field == "execId"


def test_execution_quantity_overflow_is_refused() -> None:
    f = frame("ws_private_execution.json")
    f["data"][0]["execQty"] = "1e40"
    err = _refused(f)
    assert "execQty" in str(err) and "'1e40'" in str(err) and "out of range" in str(err)


def test_execution_non_numeric_fee_is_refused() -> None:
    f = frame("ws_private_execution.json")
    f["data"][0]["execFee"] = "twelve"
    assert "execFee" in str(_refused(f)) and "'twelve'" in str(_refused(f))


def test_order_unknown_status_names_the_value() -> None:
    f = nt("ws_account_order.json")
    f["data"][0]["orderStatus"] = "Exploded"
    err = _refused(f)
    assert err.field == "orderStatus" and err.value == "Exploded" and "order data[0]" in str(err)


def test_public_trade_bad_side_and_price() -> None:
    f = frame("ws_public_trade.json")
    f["data"][0]["S"] = "BUY"
    assert "'S'" in str(_refused(f)) and "'BUY'" in str(_refused(f))
    f = frame("ws_public_trade.json")
    f["data"][0]["p"] = "-16578.50"
    assert "'p'" in str(_refused(f))


def test_position_with_size_but_no_side_is_refused() -> None:
    f = nt("ws_account_position.json")
    f["data"][0]["side"] = ""
    err = _refused(f)
    assert err.field == "side" and "0.01" in str(err)


def test_klines_rest_damage_names_the_row() -> None:
    body = doc("rest_GET_v5_market_kline.json")
    body["result"]["list"][1][2] = "oops"
    with pytest.raises(BybitParseError, match=r"list\[1\].*'high'.*'oops'"):
        parse_klines(body, InstrumentId(LIN, "BTCUSD"), 3600, TS)
    body = doc("rest_GET_v5_market_kline.json")
    body["result"]["list"][0] = ["1670608800000", "1"]
    with pytest.raises(BybitParseError, match=r"list\[0\]"):
        parse_klines(body, InstrumentId(LIN, "BTCUSD"), 3600, TS)


def test_flipped_bits_give_a_parse_error_or_a_valid_event_never_a_crash() -> None:
    rng = random.Random(12)
    names = ["ws_public_orderbook_delta.json", "ws_private_execution.json", "ws_public_trade.json",
             "ws_private_position.json", "ws_private_wallet.json", "ws_public_ticker_spot.json"]
    raws = [fixture_path("bybit", "docs_v5", n).read_bytes() for n in names]
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(3000):
        raw = bytearray(rng.choice(raws))
        for _ in range(rng.randint(1, 3)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        try:
            BybitParser("linear").parse(bytes(raw), TS)
            outcomes["ok"] += 1
        except BybitParseError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and outcomes["ok"] > 0


def test_rest_damage_names_the_endpoint_item_and_field() -> None:
    body = doc("rest_GET_v5_execution_list.json")
    body["result"]["list"][0]["execPrice"] = "1190.15.2"
    with pytest.raises(BybitParseError) as info:
        parse_executions(body, LIN)
    assert info.value.topic == "execution/list list[0]" and info.value.field == "execPrice"
    assert info.value.value == "1190.15.2"

    body = doc("rest_GET_v5_account_wallet-balance.json")
    body["result"]["list"][0]["coin"][0]["walletBalance"] = "NaN"
    with pytest.raises(BybitParseError, match=r"account/wallet-balance list\[0\]\.coin\[0\].*walletBalance.*'NaN'"):
        parse_wallet_balance(body)

    body = doc("rest_GET_v5_position_list.json")
    body["result"]["list"][0]["size"] = "-300"
    with pytest.raises(BybitParseError, match=r"position/list list\[0\].*'size'.*'-300'"):
        parse_positions(body, LIN)

    body = doc("rest_GET_v5_order_realtime.json")
    body["result"]["list"][0]["qty"] = 1e400  # a JSON number that overflows a float
    with pytest.raises(BybitParseError, match=r"order/list list\[0\].*'qty'"):
        parse_orders(body, LIN)

    with pytest.raises(BybitParseError, match=r"market/time.*timeNano.*'soon'"):
        parse_server_time({"timeSecond": "1688639403", "timeNano": "soon"})
    with pytest.raises(BybitParseError, match="result"):
        parse_orders({"retCode": 0, "result": "nope"}, LIN)


def test_a_private_item_that_is_not_an_object_is_refused() -> None:
    f = nt("ws_account_order.json")
    f["data"].append("garbage")
    err = _refused(f)
    assert err.topic == "order data[1]" and "garbage" in str(err)


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", " 12", "1_000", "12a", ""])
def test_integer_text_must_be_plain_ascii_digits(value: str) -> None:
    f = frame("ws_private_execution.json")
    f["data"][0]["execTime"] = value
    err = _refused(f)
    assert err.field == "execTime" and err.value == value


# Leaves swapped for values of the wrong type or range, keys deleted: a parser may only
# answer with an event or a BybitParseError (anything else would reach the stream as a crash).
_WRONG_VALUES = [None, 0, -1, 2**63, 1.5, "", "x", "1e999", "-5", [], {}, [[]], [["1"]], True, "Buy", {"a": 1}]


def _paths(o: Any, pre: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [pre]
    if isinstance(o, dict):
        for k, v in o.items():
            out += _paths(v, (*pre, k))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            out += _paths(v, (*pre, i))
    return out


def _mutate(d: Any, rng: random.Random) -> Any:
    import copy

    d = copy.deepcopy(d)
    for _ in range(rng.randint(1, 2)):
        path = rng.choice(_paths(d))
        value = copy.deepcopy(rng.choice(_WRONG_VALUES))
        if not path:
            return value
        parent = d
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return d


def test_structurally_damaged_frames_give_an_event_or_a_parse_error() -> None:
    rng = random.Random(5)
    names = ["ws_public_orderbook_delta.json", "ws_private_execution.json", "ws_public_trade.json",
             "ws_private_position.json", "ws_private_wallet.json", "ws_public_kline.json",
             "ws_pong_private.json", "ws_auth_success_response.json"]
    frames = [frame(n) for n in names] + [nt("ws_account_order.json"), nt("ws_ticker_linear.json"),
                                          nt("ws_order_response.json"), nt("ws_subscription_failure.json")]
    refused = 0
    for _ in range(2500):
        d = _mutate(rng.choice(frames), rng)
        for category in ("linear", "spot"):
            try:
                BybitParser(category).event(d, TS)
            except BybitParseError:
                refused += 1
    assert refused > 1000


def test_structurally_damaged_rest_results_give_items_or_a_parse_error() -> None:
    rng = random.Random(9)
    cases: list[tuple[Any, Any]] = [
        (doc("rest_GET_v5_account_wallet-balance.json"), parse_wallet_balance),
        (doc("rest_GET_v5_execution_list.json"), lambda b: parse_executions(b, LIN)),
        (doc("rest_GET_v5_market_instruments-info_linear.jsonc")[0], lambda b: parse_instruments(b, LIN, skipped=[])),
        (doc("rest_GET_v5_market_instruments-info_spot.json"), lambda b: parse_instruments(b, "bybit_spot")),
        (doc("rest_GET_v5_market_kline.json"), lambda b: parse_klines(b, InstrumentId(LIN, "X"), 60, TS)),
        (doc("rest_GET_v5_market_time.json"), parse_server_time),
        (doc("rest_GET_v5_order_realtime.json"), lambda b: parse_orders(b, LIN)),
        (doc("rest_GET_v5_position_list.json"), lambda b: parse_positions(b, LIN)),
    ]
    refused = 0
    for _ in range(2500):
        body, fn = rng.choice(cases)
        try:
            fn(_mutate(body, rng))
        except BybitParseError:
            refused += 1
    assert refused > 500


def test_the_orderbook_fast_path_agrees_with_decoding_as_sent() -> None:
    # parse() strips the quotes around level numbers so orjson parses them; event(decode())
    # reads the frame as sent. Both must give the same update, or the same error.
    rng = random.Random(11)
    texts = ["0.5", "12", "30247.20", "1e5", "1E-3", "-0", "0", "01", "+1", "1.", ".5", "1e999", "", "1,2",
             "1],[2", "1,2],[3", '2"', "[", "]", "true", "nan", "Infinity", " 1", "1_0", "9" * 25, "-1"]
    base = _delta()
    outcomes = {"same": 0, "refused": 0}
    for _ in range(1500):
        d = dict(base)
        data = dict(base["data"])
        for side in ("b", "a"):
            levels = [[f"{rng.uniform(1, 99999):.2f}", f"{rng.uniform(0, 9):.3f}"] for _ in range(rng.randint(0, 5))]
            if levels and rng.random() < 0.5:
                levels[rng.randrange(len(levels))][rng.randrange(2)] = rng.choice(texts)
            data[side] = levels
        d["data"] = data
        raw = orjson.dumps(d)
        parser = BybitParser("linear")
        try:
            slow: Any = parser.event(orjson.loads(raw), TS)
        except BybitParseError as exc:
            slow = str(exc)
        try:
            fast: Any = parser.parse(raw, TS)
        except BybitParseError as exc:
            fast = str(exc)
        assert fast == slow, raw
        outcomes["refused" if isinstance(slow, str) else "same"] += 1
    assert outcomes["same"] > 300 and outcomes["refused"] > 300


def test_made_up_symbols_do_not_grow_the_parser_without_bound() -> None:
    from nautilus_hmm.venues.bybit.parse import MAX_CACHED_SYMBOLS

    p = BybitParser("linear")
    base = _delta()
    for n in range(MAX_CACHED_SYMBOLS + 500):
        sym = f"X{n}USDT"
        d = {**base, "topic": f"orderbook.50.{sym}", "data": {**base["data"], "s": sym}}
        assert isinstance(p.event(d, TS), BookUpdate)
        t = {"topic": f"tickers.{sym}", "type": "snapshot", "ts": 1, "data": {"symbol": sym, "lastPrice": "1"}}
        assert isinstance(p.event(t, TS), Ticker)
    assert len(p._book_topics) <= MAX_CACHED_SYMBOLS and len(p._tickers) <= MAX_CACHED_SYMBOLS
    assert len(p.ids._cache) <= MAX_CACHED_SYMBOLS
    # Past the cap, frames still parse (uncached).
    assert p.event({**base, "topic": "orderbook.50.BTCUSDT"}, TS).instrument_id == InstrumentId(LIN, "BTCUSDT")


def test_a_spot_market_order_sized_in_quote_coin_reports_its_base_quantity() -> None:
    item = {**doc("rest_GET_v5_order_realtime.json")["result"]["list"][0], "orderType": "Market", "qty": "100",
            "marketUnit": "quoteCoin", "orderStatus": "Filled", "cumExecQty": "0.0625", "avgPrice": "1600"}
    o = parse_order(item, "bybit_spot")
    assert o.quantity == Decimal("0.0625") == o.filled_qty and "qty 100 in quote coin" in o.reason
    base = parse_order({**item, "marketUnit": "baseCoin", "qty": "0.0625"}, "bybit_spot")
    assert base.quantity == Decimal("0.0625") and base.reason == ""
