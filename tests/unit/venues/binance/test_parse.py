"""Binance parsers: values of the important frames, wire differences, errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from nautilus_hmm.core.errors import ParseError
from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Bar, QuoteTick, TradeTick
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import (
    AccountBalances,
    AccountUpdate,
    BalanceDelta,
    BinanceParseError,
    BinanceParser,
    DepthDiff,
    EventStreamTerminated,
    InstrumentIds,
    ListenKeyExpired,
    OrderUpdate,
    ServerShutdown,
    StreamResponse,
    WsApiResponse,
    id_factory,
    parse_account_trades,
    parse_balances,
    parse_depth_snapshot,
    parse_new_order_response,
    parse_order,
    parse_orders,
    parse_positions,
    parse_rest_klines,
    parse_rest_trades,
    parse_trade,
)
from tests.conftest import fixture_path
from tests.unit.venues.binance.jsonc import load_jsonc

TS = 1_723_161_300_000_000_000
SPOT = BinanceParser(Market.SPOT)
USDM = BinanceParser(Market.USDM)
CRATE = ("binance", "nautilus_trader", "crate_test_data")
PYW = ("binance", "nautilus_trader", "py_test_resources", "ws_messages")
PYH = ("binance", "nautilus_trader", "py_test_resources", "http_responses")
DOCS = ("binance", "docs_spot")

SPOT_TRADE = b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}'
USDM_TRADE = b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}'


def _load(*parts: str) -> Any:
    return load_jsonc(fixture_path(*parts))


# ---------------------------------------------------------------- market data


def test_spot_trade_from_2024_capture() -> None:
    t = SPOT.market_frame(SPOT_TRADE, TS)
    assert t == TradeTick(
        ts_event_ns=1723161255342 * 1_000_000, ts_init_ns=TS,
        instrument_id=InstrumentId("binance_spot", "BTCUSDT"),
        price=61837.63, size=0.02, aggressor=Side.SELL, trade_id="3735683259",
    )


def test_usdm_trade_has_x_and_buyer_taker_is_buy_aggressor() -> None:
    t = USDM.market_frame(USDM_TRADE, TS)
    assert isinstance(t, TradeTick)
    assert t.instrument_id == InstrumentId("binance_usdm", "BTCUSDT")
    assert (t.price, t.size, t.aggressor) == (61800.3, 0.006, Side.BUY)


def test_usdm_non_market_trade_is_not_a_market_print() -> None:
    frame = orjson.loads(USDM_TRADE)["data"] | {"X": "INSURANCE_FUND"}
    assert USDM.market_event(frame, TS) is None


def test_spot_trade_with_2021_buyer_and_seller_order_ids_parses() -> None:
    t = SPOT.market_event(_load(*PYW, "ws_spot_trade.json"), TS)
    assert isinstance(t, TradeTick)
    assert t.trade_id == "705291099"


def test_agg_trade_ignores_stray_fields_and_keeps_aggregate_id() -> None:
    t = SPOT.market_event(_load(*PYW, "ws_spot_agg_trade.json"), TS)
    assert isinstance(t, TradeTick)
    assert (t.trade_id, t.price, t.aggressor) == ("226532", 1632.46, Side.BUY)


def test_spot_book_ticker_without_event_time_uses_receive_time() -> None:
    raw = b'{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
    q = SPOT.market_frame(raw, TS)
    assert q == QuoteTick(ts_event_ns=TS, ts_init_ns=TS, instrument_id=InstrumentId("binance_spot", "BTCUSDT"),
                          bid=61837.63, bid_size=3.78826, ask=61837.64, ask_size=1.54698)


def test_usdm_book_ticker_uses_event_time() -> None:
    q = USDM.market_event(_load(*CRATE, "futures", "market_data_json", "book_ticker_stream.json"), TS)
    assert isinstance(q, QuoteTick)
    assert q.ts_event_ns == 1568014460893 * 1_000_000


def test_spot_depth_update_has_no_previous_id() -> None:
    d = SPOT.market_event(_load(*DOCS, "ws_streams", "depthUpdate_diff.jsonc"), TS)
    assert isinstance(d, DepthDiff)
    assert (d.first_update_id, d.final_update_id, d.prev_final_update_id) == (157, 160, None)
    assert d.bids == [(0.0024, 10.0)] and d.asks == [(0.0026, 100.0)]


def test_usdm_depth_update_carries_pu() -> None:
    d = USDM.market_event(_load(*PYW, "ws_futures_depth_update.json"), TS)
    assert isinstance(d, DepthDiff)
    assert (d.first_update_id, d.final_update_id, d.prev_final_update_id) == (390497796, 390497878, 390497794)
    assert d.bids[0] == (7403.89, 0.002)


def test_closed_kline_is_a_bar_at_open_time() -> None:
    b = USDM.market_event(_load(*CRATE, "futures", "market_data_json", "kline_stream_closed.json"), TS)
    assert b == Bar(ts_event_ns=1638747660000 * 1_000_000, ts_init_ns=TS,
                    instrument_id=InstrumentId("binance_usdm", "BTCUSDT"), interval_s=60,
                    open=0.001, high=0.0025, low=0.001, close=0.002, volume=1000.0)


def test_open_kline_is_ignored() -> None:
    assert USDM.market_event(_load(*CRATE, "futures", "market_data_json", "kline_stream_open.json"), TS) is None


def test_kline_with_unsupported_interval_names_it() -> None:
    frame = _load(*CRATE, "futures", "market_data_json", "kline_stream_closed.json")
    frame["k"]["i"] = "1M"  # type: ignore[index]
    with pytest.raises(BinanceParseError, match=r"interval.*1M"):
        USDM.market_event(frame, TS)


def test_mark_price() -> None:
    m = USDM.market_event(_load(*CRATE, "futures", "market_data_json", "mark_price_stream.json"), TS)
    assert m is not None and m.price == 11794.15  # type: ignore[union-attr]


def test_subscribe_ack_is_an_ok_stream_response() -> None:
    assert SPOT.market_frame(b'{"result":null,"id":1}', TS) == StreamResponse(1, True, None)


def test_subscribe_error_is_a_failed_stream_response_with_code() -> None:
    err = SPOT.market_frame(b'{"error":{"code":2,"msg":"Invalid request: unknown variant"},"id":3}', TS)
    assert err == StreamResponse(3, False, None, 2, "Invalid request: unknown variant")


def test_old_style_subscribe_error_is_a_failed_stream_response() -> None:
    old = SPOT.market_frame(b'{"code":0,"msg":"Unknown property","id":4}', TS)
    assert isinstance(old, StreamResponse) and not old.ok and old.code == 0


def test_server_shutdown_event() -> None:
    assert SPOT.market_frame(b'{"e":"serverShutdown","E":1700000000000}', TS) == ServerShutdown(1700000000000 * 1_000_000)


def test_partial_depth_frame_takes_the_symbol_from_the_stream_name() -> None:
    raw = b'{"stream":"bnbbtc@depth5","data":{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}}'
    snap = SPOT.market_frame(raw, TS)
    assert snap.instrument_id == InstrumentId("binance_spot", "BNBBTC")  # type: ignore[union-attr]


def test_rest_depth_snapshot_usdm_has_event_time() -> None:
    snap = parse_depth_snapshot(_load(*PYH, "http_futures_market_depth.json"), InstrumentId("binance_usdm", "BTCUSDT"), TS)
    assert snap.last_update_id == 1027024 and snap.ts_event_ns == 1589436922972 * 1_000_000


def test_rest_klines_drop_the_still_open_last_row() -> None:
    rows = _load(*PYH, "http_spot_market_klines.json")
    iid = InstrumentId("binance_spot", "BTCUSDT")
    all_bars = parse_rest_klines(rows, iid, 60, TS)  # type: ignore[arg-type]
    closed = parse_rest_klines(rows, iid, 60, TS, now_ms=rows[-1][6])  # type: ignore[index,arg-type]
    assert len(closed) == len(all_bars) - 1
    assert all_bars[0].open == 60685.22 and all_bars[0].volume == 21.63272


def test_rest_trades_and_agg_trades() -> None:
    iid = InstrumentId("binance_spot", "BTCUSDT")
    trades = parse_rest_trades(_load(*PYH, "http_spot_market_trades.json"), iid, TS)  # type: ignore[arg-type]
    aggs = parse_rest_trades(_load(*PYH, "http_spot_market_agg_trades.json"), iid, TS)  # type: ignore[arg-type]
    assert trades[0].aggressor is Side.SELL and trades[1].aggressor is Side.BUY
    assert aggs[0].trade_id == "966492862"


# ---------------------------------------------------------------- parse errors


def test_not_json_raises_parse_error_quoting_the_frame() -> None:
    with pytest.raises(ParseError, match=r"not JSON.*hello"):
        SPOT.market_frame(b"hello", TS)


def test_trade_missing_field_names_event_and_field() -> None:
    frame = orjson.loads(SPOT_TRADE)["data"]
    del frame["p"]
    with pytest.raises(BinanceParseError, match="trade: missing field 'p'") as exc:
        SPOT.market_event(frame, TS)
    assert exc.value.field == "p"


def test_trade_bad_value_names_field_and_value() -> None:
    frame = orjson.loads(SPOT_TRADE)["data"] | {"q": "lots"}
    with pytest.raises(BinanceParseError, match="'q': 'lots'"):
        parse_trade(frame, SPOT.ids, TS)


def test_depth_update_bad_level_is_named() -> None:
    frame = _load(*DOCS, "ws_streams", "depthUpdate_diff.jsonc") | {"b": [["0.1"]]}  # type: ignore[operator]
    with pytest.raises(BinanceParseError, match="depthUpdate: bad level in field 'b'"):
        SPOT.market_event(frame, TS)


def test_execution_report_missing_field_names_it() -> None:
    frame = _load(*CRATE, "spot", "user_data_json", "execution_report_trade.json")
    del frame["z"]  # type: ignore[attr-defined]
    with pytest.raises(BinanceParseError, match="executionReport: missing field 'z'"):
        SPOT.user_event(frame)


def test_unknown_market_event_type_raises() -> None:
    with pytest.raises(BinanceParseError, match="unknown market event type 'brandNew'"):
        SPOT.market_frame(b'{"e":"brandNew","E":1}', TS)


def test_unknown_user_event_type_raises() -> None:
    with pytest.raises(BinanceParseError, match="unknown user-data event type 'brandNew'"):
        SPOT.user_frame(b'{"e":"brandNew","E":1}')


def test_known_unused_user_event_is_none() -> None:
    assert SPOT.user_event(_load(*CRATE, "spot", "user_data_json", "list_status_wrapped.json")) is None


# ---------------------------------------------------------------- spot user data


def _spot_update(*parts: str) -> OrderUpdate:
    out = SPOT.user_event(_load(*parts))
    assert isinstance(out, OrderUpdate)
    return out


def test_execution_report_trade_gives_order_and_fill() -> None:
    u = _spot_update(*CRATE, "spot", "user_data_json", "execution_report_trade.json")
    iid = InstrumentId("binance_spot", "ETHUSDT")
    assert u.order.status is OrderStatus.FILLED
    assert (u.order.filled_qty, u.order.avg_px, u.order.venue_order_id) == (Decimal("1"), Decimal("2500"), "12345678")
    f = u.fill
    assert f is not None
    assert (f.instrument_id, f.client_order_id, f.trade_id, f.side) == (iid, "x-TD67BGP9-T0000000000000", "98765432", Side.BUY)
    assert (f.qty, f.price, f.fee, f.fee_asset) == (Decimal("1"), Decimal("2500"), Decimal("0.001"), "ETH")
    assert f.liquidity is Liquidity.MAKER
    assert f.ts_ns == 1709654401000 * 1_000_000


def test_execution_report_partial_fill_keeps_cumulative_and_last() -> None:
    u = _spot_update(*PYW, "ws_spot_execution_report_trade.json")
    assert u.order.status is OrderStatus.PARTIALLY_FILLED
    assert u.order.filled_qty == Decimal("0.5") and u.order.avg_px == Decimal("2499.5")
    assert u.fill is not None and u.fill.qty == Decimal("0.5") and u.fill.price == Decimal("2499.5")


def test_execution_report_new_has_no_fill_and_null_commission_asset() -> None:
    u = _spot_update(*DOCS, "user_data_stream", "executionReport.jsonc")
    assert u.fill is None
    assert u.order.status is OrderStatus.ACCEPTED
    assert u.order.price == Decimal("0.10264410")
    assert u.order.avg_px is None


def test_canceled_order_is_identified_by_original_client_id_c() -> None:
    frame = _load(*DOCS, "user_data_stream_2025-10_listenKey_era", "executionReport.jsonc")
    frame.update({"x": "CANCELED", "X": "CANCELED", "c": "cancelRequest7", "C": "myOrder1"})  # type: ignore[attr-defined]
    u = SPOT.user_event(frame)
    assert isinstance(u, OrderUpdate)
    assert u.order.client_order_id == "myOrder1"
    assert u.order.status is OrderStatus.CANCELED


def test_wrapped_and_bare_execution_reports_parse_the_same() -> None:
    wrapped = SPOT.user_event(_load(*DOCS, "user_data_stream", "executionReport.jsonc"))
    bare = SPOT.user_event(_load(*DOCS, "user_data_stream_2025-10_listenKey_era", "executionReport.jsonc"))
    assert wrapped == bare


@pytest.mark.parametrize(("name", "status"), [
    ("ws_spot_execution_report_new.json", OrderStatus.ACCEPTED),
    ("ws_spot_execution_report_trade.json", OrderStatus.PARTIALLY_FILLED),
    ("ws_spot_execution_report_binance_us.json", OrderStatus.FILLED),
    ("ws_spot_execution_report_canceled.json", OrderStatus.CANCELED),
    ("ws_spot_execution_report_rejected.json", OrderStatus.REJECTED),
    ("ws_spot_execution_report_expired.json", OrderStatus.EXPIRED),
    ("ws_spot_execution_report_trade_prevention.json", OrderStatus.EXPIRED),  # EXPIRED_IN_MATCH
    ("ws_spot_execution_report_pending_cancel.json", OrderStatus.PENDING_CANCEL),
])
def test_execution_report_status_mapping(name: str, status: OrderStatus) -> None:
    assert _spot_update(*PYW, name).order.status is status


def test_rejected_report_carries_the_reject_reason() -> None:
    assert _spot_update(*PYW, "ws_spot_execution_report_rejected.json").order.reason == "GTX_ORDER_REJECT"


def test_self_trade_prevention_quantity_is_not_a_fill() -> None:
    u = _spot_update(*PYW, "ws_spot_execution_report_trade_prevention.json")
    assert u.fill is None and u.execution_type == "TRADE_PREVENTION"


def test_trade_with_zero_last_quantity_is_not_a_fill() -> None:
    assert _spot_update(*PYW, "ws_spot_execution_report_trade_l_zero_partial.json").fill is None


def test_stop_loss_limit_folds_to_limit_and_keeps_the_venue_type() -> None:
    u = _spot_update(*CRATE, "spot", "user_data_json", "execution_report_stop_loss.json")
    assert (u.order.order_type, u.venue_order_type) == (OrderType.LIMIT, "STOP_LOSS_LIMIT")


def test_outbound_account_position_gives_balances() -> None:
    out = SPOT.user_event(_load(*CRATE, "spot", "user_data_json", "account_position.json"))
    assert isinstance(out, AccountBalances)
    usdt, eth = out.balances
    assert (usdt.asset, usdt.free, usdt.locked, usdt.total) == ("USDT", Decimal("10000"), Decimal("2500"), Decimal("12500"))
    assert (eth.asset, eth.free) == ("ETH", Decimal("5"))
    assert out.ts_ns == 1709654400000 * 1_000_000


def test_balance_update_wrapped() -> None:
    out = SPOT.user_event(_load(*DOCS, "user_data_stream", "balanceUpdate.jsonc"))
    assert out == BalanceDelta(ts_ns=1573200697068 * 1_000_000, asset="BTC", delta=Decimal("100"))


def test_event_stream_terminated() -> None:
    out = SPOT.user_event(_load(*DOCS, "user_data_stream", "eventStreamTerminated.jsonc"))
    assert out == EventStreamTerminated(1728973001334 * 1_000_000)


def test_usdm_listen_key_expired_with_string_event_time() -> None:
    out = USDM.user_event(_load("binance", "errors_observed", "usdm_futures_listenKeyExpired_E_is_string.verbatim.json"))
    assert out == ListenKeyExpired(ts_ns=1693427319838 * 1_000_000, listen_key="KEY")


def test_listen_key_is_not_in_the_repr() -> None:
    out = SPOT.user_event(_load(*DOCS, "user_data_stream_2025-10_listenKey_era", "listenKeyExpired.jsonc"))
    assert isinstance(out, ListenKeyExpired)
    assert out.listen_key.startswith("OfYGbUzi") and "OfYGbUzi" not in repr(out)


def test_ws_api_response_on_the_user_connection() -> None:
    out = SPOT.user_frame(b'{"id":"sub-1","status":200,"result":{"subscriptionId":0}}')
    assert out == WsApiResponse("sub-1", 200, {"subscriptionId": 0})


# ---------------------------------------------------------------- USD-M user data


def test_order_trade_update_trade_gives_order_and_fill() -> None:
    u = USDM.user_event(_load(*CRATE, "futures", "user_data_json", "order_update_trade.json"))
    assert isinstance(u, OrderUpdate)
    assert u.order.status is OrderStatus.PARTIALLY_FILLED
    assert (u.order.avg_px, u.order.price) == (Decimal("7100.50"), Decimal("7100.50"))
    f = u.fill
    assert f is not None
    assert (f.trade_id, f.qty, f.price, f.fee, f.fee_asset) == ("12345678", Decimal("0.001"), Decimal("7100.5"), Decimal("0.01"), "USDT")
    assert f.liquidity is Liquidity.MAKER
    assert (u.position_side, u.realized_pnl, u.reduce_only) == ("LONG", Decimal("12.34"), False)


def test_liquidation_calculated_execution_is_a_taker_fill() -> None:
    u = USDM.user_event(_load(*PYW, "ws_futures_order_update_liquidation.json"))
    assert isinstance(u, OrderUpdate) and u.execution_type == "CALCULATED"
    assert u.fill is not None and u.fill.qty == Decimal("0.1") and u.fill.liquidity is Liquidity.TAKER


def test_zero_quantity_liquidation_is_not_a_fill() -> None:
    u = USDM.user_event(_load(*PYW, "ws_futures_order_update_liquidation_zero_qty.json"))
    assert isinstance(u, OrderUpdate) and u.fill is None


def test_delivery_fill_without_commission_fields_has_zero_fee() -> None:
    u = USDM.user_event(_load(*CRATE, "futures", "user_data_json", "order_update_delivery.json"))
    assert isinstance(u, OrderUpdate) and u.fill is not None
    assert (u.fill.fee, u.fill.fee_asset) == (Decimal(0), "")


def test_usdm_trailing_stop_new_order_folds_to_market() -> None:
    u = USDM.user_event(_load(*CRATE, "futures", "user_data_json", "order_update_new.json"))
    assert isinstance(u, OrderUpdate)
    assert (u.order.order_type, u.venue_order_type, u.order.price) == (OrderType.MARKET, "TRAILING_STOP_MARKET", None)


def test_usdm_limit_gtx_is_post_only() -> None:
    frame = _load(*CRATE, "futures", "user_data_json", "order_update_trade.json")
    frame["o"]["f"] = "GTX"  # type: ignore[index]
    u = USDM.user_event(frame)
    assert isinstance(u, OrderUpdate) and u.order.order_type is OrderType.LIMIT_MAKER


def test_account_update_gives_wallet_balances_and_signed_positions() -> None:
    u = USDM.user_event(_load(*CRATE, "futures", "user_data_json", "account_update.json"))
    assert isinstance(u, AccountUpdate)
    assert u.reason == "ORDER"
    assert u.balances[0].asset == "USDT" and u.balances[0].free == Decimal("122624.12345678")
    short = u.positions[2]
    assert (short.position_side, short.qty, short.entry_price, short.unrealized_pnl) == (
        "SHORT", Decimal("-10"), Decimal("6563.8"), Decimal("-1423.156"))


# ---------------------------------------------------------------- REST


def test_new_order_full_response_lists_taker_fills() -> None:
    r = parse_new_order_response(_load(*DOCS, "rest", "POST_api_v3_order_FULL.jsonc"), SPOT.ids)  # type: ignore[arg-type]
    assert r.order is not None and r.order.status is OrderStatus.FILLED and r.order.side is Side.SELL
    assert [f.trade_id for f in r.fills] == ["56", "57", "58", "59", "60"]
    assert sum(f.qty for f in r.fills) == Decimal("10")
    assert sum(f.fee for f in r.fills) == Decimal("39.983")
    assert all(f.liquidity is Liquidity.TAKER and f.side is Side.SELL for f in r.fills)


def test_new_order_ack_has_ids_but_no_order_state() -> None:
    r = parse_new_order_response(_load(*DOCS, "rest", "POST_api_v3_order_ACK.jsonc"), SPOT.ids)  # type: ignore[arg-type]
    assert (r.client_order_id, r.venue_order_id, r.order, r.fills) == ("6gCrw2kRUAF9CvJDGP16IP", "28", None, ())


def test_cancel_response_identifies_the_original_client_id() -> None:
    o = parse_order(_load(*DOCS, "rest", "DELETE_api_v3_order.jsonc"), SPOT.ids)  # type: ignore[arg-type]
    assert (o.client_order_id, o.status) == ("myOrder1", OrderStatus.CANCELED)


def test_query_order_spot() -> None:
    o = parse_order(_load(*DOCS, "rest", "GET_api_v3_order.jsonc"), SPOT.ids)  # type: ignore[arg-type]
    assert (o.status, o.price, o.quantity, o.avg_px) == (OrderStatus.ACCEPTED, Decimal("0.1"), Decimal("1"), None)


def test_usdm_order_response() -> None:
    o = parse_order(_load(*CRATE, "futures", "http_json", "order_response.json"), USDM.ids)  # type: ignore[arg-type]
    assert (o.client_order_id, o.price, o.avg_px, o.order_type) == ("testOrder123", Decimal("50000"), None, OrderType.LIMIT)


def test_cancel_open_orders_flattens_order_list_reports() -> None:
    orders = parse_orders(_load(*CRATE, "spot", "http_json", "cancel_open_orders_response.json"), SPOT.ids)  # type: ignore[arg-type]
    assert [o.client_order_id for o in orders] == [
        "E6APeyTJvkMvLMYMqu1KQ4", "A3EF2HCwxgZPFMrfwbgrhv", "CwOOIPHSmYywx6jZX77TdL", "461cPg51vQjV3zIMOXNz39"]


def test_spot_my_trades_have_no_client_id() -> None:
    (f,) = parse_account_trades(_load(*DOCS, "rest", "GET_api_v3_myTrades.jsonc"), SPOT.ids)  # type: ignore[arg-type]
    assert (f.client_order_id, f.side, f.liquidity, f.fee, f.fee_asset) == ("", Side.BUY, Liquidity.TAKER, Decimal("10.1"), "BNB")


def test_usdm_user_trades() -> None:
    fills = parse_account_trades(_load(*PYH, "http_futures_account_trades.json"), USDM.ids)  # type: ignore[arg-type]
    assert [(f.side, f.price) for f in fills] == [(Side.SELL, Decimal("2778.35")), (Side.BUY, Decimal("2779"))]


def test_usdm_position_risk_hedge_mode() -> None:
    long_, short = parse_positions(_load(*PYH, "http_futures_account_positions_hedge.json"), USDM.ids)
    assert (long_.position_side, long_.qty) == ("LONG", Decimal("20"))
    assert (short.position_side, short.qty) == ("SHORT", Decimal("-10"))


def test_spot_account_balances() -> None:
    (btc, ltc) = parse_balances(_load(*DOCS, "rest", "GET_api_v3_account.jsonc"))
    assert (btc.asset, btc.free, btc.locked) == ("BTC", Decimal("4723846.89208129"), Decimal(0))
    assert ltc.asset == "LTC"


# ---------------------------------------------------------------- ids


def test_instrument_ids_are_cached_per_symbol() -> None:
    ids = InstrumentIds("binance_spot")
    assert ids("BTCUSDT") is ids("BTCUSDT")


def test_id_factory_accepts_a_venue_name() -> None:
    assert id_factory("binance_usdm")("ETHUSDT") == InstrumentId("binance_usdm", "ETHUSDT")


def test_parser_venue_can_be_overridden() -> None:
    p = BinanceParser(Market.SPOT, venue="binance_spot_testnet")
    t = p.market_frame(SPOT_TRADE, TS)
    assert t.instrument_id.venue == "binance_spot_testnet"  # type: ignore[union-attr]


def test_rest_and_user_parsers_accept_a_venue_name() -> None:
    o = parse_order(_load(*DOCS, "rest", "GET_api_v3_order.jsonc"), "binance_spot_testnet")
    assert o.instrument_id == InstrumentId("binance_spot_testnet", "LTCBTC")
