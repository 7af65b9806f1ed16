"""WebSocket API order entry, the pure parts: request signing and framing against Binance's
documented example, endpoint weights, URLs, rate-limit figures, error mapping, config."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from nautilus_hmm.config import Config
from nautilus_hmm.config.loader import field_docs
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import (
    OrderRejected,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
)
from nautilus_hmm.venues.binance.adapter import BinanceVenue
from nautilus_hmm.venues.binance.auth import Credentials, ws_api_payload, ws_api_request
from nautilus_hmm.venues.binance.config import BinanceConfig
from nautilus_hmm.venues.binance.errors import TimestampError, classify_ws_api_error
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import ws_api_used_weight_1m
from nautilus_hmm.venues.binance.rest import endpoints
from nautilus_hmm.venues.binance.wsapi import (
    WsApiNotConnected,
    default_ws_api_url,
    ws_api_endpoints,
)

V = "binance_spot"
NOW_NS = 1_659_142_907_531 * 1_000_000
# binance/binance-spot-api-docs web-socket-api.md "SIGNED request example (HMAC)"
# (commit 042f8af630edfeeb7abddcc02daecac29d0ef03f): Binance's illustrative keys.
DOC_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_REQUEST = {
    "id": "4885f793-e5ad-4c3b-8f6c-55d891472b71",
    "method": "order.place",
    "params": {
        "symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000000",
        "price": "52000.00", "newOrderRespType": "ACK", "recvWindow": 100, "timestamp": 1645423376532,
        "apiKey": DOC_API_KEY, "signature": "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a",
    },
}
DOC_PAYLOAD = (
    f"apiKey={DOC_API_KEY}&newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL"
    "&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
)


def doc_request() -> dict:
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
              "quantity": Decimal("0.01000000"), "price": Decimal("52000.00"), "newOrderRespType": "ACK"}
    return ws_api_request(Credentials(DOC_API_KEY, DOC_SECRET), DOC_REQUEST["id"], "order.place", params,
                          timestamp_ms=1645423376532, recv_window_ms=100)


# ---------------------------------------------------------------- signing and framing


def test_request_reproduces_the_documented_hmac_example() -> None:
    assert doc_request() == DOC_REQUEST


def test_signed_payload_is_the_params_sorted_by_name_without_the_signature() -> None:
    assert ws_api_payload(doc_request()["params"]) == DOC_PAYLOAD


def test_integers_stay_json_numbers_and_decimals_keep_their_text() -> None:
    text = orjson.dumps(doc_request()).decode()
    assert '"recvWindow":100' in text and '"timestamp":1645423376532' in text
    assert '"quantity":"0.01000000"' in text and '"price":"52000.00"' in text


def test_none_params_are_left_out_and_booleans_are_lowercase_text() -> None:
    out = ws_api_request(Credentials(DOC_API_KEY, DOC_SECRET), 7, "order.place",
                         {"symbol": "BTCUSDT", "reduceOnly": True, "price": None}, timestamp_ms=1, recv_window_ms=None)
    assert out["id"] == 7 and "price" not in out["params"] and "recvWindow" not in out["params"]
    assert out["params"]["reduceOnly"] == "true"


# ---------------------------------------------------------------- endpoints and URLs


@pytest.mark.parametrize("market", list(Market))
def test_ws_api_methods_weigh_what_their_rest_twins_weigh(market: Market) -> None:
    rest = endpoints(market)
    for name, ep in ws_api_endpoints(market).items():
        assert (ep.weight, ep.order_entry) == (rest[name].weight, rest[name].order_entry)
    eps = ws_api_endpoints(market)
    assert [eps[n].path for n in ("new_order", "cancel_order", "query_order")] == [
        "order.place", "order.cancel", "order.status"]
    assert eps["new_order"].order_entry and eps["cancel_order"].order_entry and not eps["query_order"].order_entry


def test_default_urls_follow_the_testnet_flag() -> None:
    assert default_ws_api_url(Market.SPOT, False) == "wss://ws-api.binance.com:443/ws-api/v3"
    assert default_ws_api_url(Market.SPOT, True) == "wss://ws-api.testnet.binance.vision/ws-api/v3"
    assert default_ws_api_url(Market.USDM, False) == "wss://ws-fapi.binance.com/ws-fapi/v1"
    assert default_ws_api_url(Market.USDM, True) == "wss://testnet.binancefuture.com/ws-fapi/v1"


def test_used_weight_comes_from_the_request_weight_minute_row() -> None:
    answer = {"id": 1, "status": 200, "result": {}, "rateLimits": [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50, "count": 12},
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 321},
    ]}
    assert ws_api_used_weight_1m(answer) == 321
    assert ws_api_used_weight_1m({"id": 1, "status": 200, "result": {}}) is None


# ---------------------------------------------------------------- error mapping


def test_documented_418_answer_bans_until_retry_after() -> None:
    frame = {"id": "fc93a61a", "status": 418, "error": {
        "code": -1003, "msg": "Way too much request weight used; IP banned until 1659146400000. Please use "
                              "WebSocket Streams for live updates to avoid bans.",
        "data": {"serverTime": 1659142907531, "retryAfter": 1659146400000}}}
    err = classify_ws_api_error(frame, venue=V, order_entry=True, now_ns=NOW_NS)
    assert isinstance(err, VenueBanned) and err.until_ns == 1659146400000 * 1_000_000


def test_429_waits_until_retry_after_in_venue_time() -> None:
    frame = {"id": 3, "status": 429, "error": {"code": -1003, "msg": "Too much request weight used",
                                                "data": {"serverTime": 1659142907531, "retryAfter": 1659142937531}}}
    err = classify_ws_api_error(frame, venue=V, order_entry=True, now_ns=NOW_NS)
    assert isinstance(err, RateLimited) and err.retry_after_s == pytest.approx(30.0)


@pytest.mark.parametrize(("status", "code", "order_entry", "kind"), [
    (400, -2010, True, OrderRejected),
    (400, -1021, True, TimestampError),
    (503, -1007, True, UnknownOutcome),
    (503, -1007, False, RetryableError),
    (500, None, True, UnknownOutcome),
])
def test_error_answers_map_to_the_rest_types(status: int, code: int | None, order_entry: bool, kind: type) -> None:
    error = {"msg": "x"} if code is None else {"code": code, "msg": "x"}
    err = classify_ws_api_error({"id": 1, "status": status, "error": error}, venue=V, order_entry=order_entry,
                                now_ns=NOW_NS)
    assert type(err) is kind


def test_not_connected_is_retryable() -> None:
    assert issubclass(WsApiNotConnected, RetryableError) and not issubclass(WsApiNotConnected, UnknownOutcome)


# ---------------------------------------------------------------- config


def test_order_entry_defaults_to_rest_and_both_keys_are_restart_only() -> None:
    docs = field_docs(Config)
    assert BinanceConfig().order_entry == "rest"
    for table in ("binance_spot", "binance_usdm"):
        assert docs[f"venues.{table}.order_entry"][1] is False
        assert docs[f"venues.{table}.ws_api_url"][1] is False


def test_ws_api_against_an_overridden_venue_needs_its_own_url() -> None:
    bad = BinanceConfig(order_entry="ws_api", rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    assert [f for f, _, _ in bad.validate()] == ["ws_api_url"]
    ok = BinanceConfig(order_entry="ws_api", rest_url="http://127.0.0.1:1", ws_api_url="ws://127.0.0.1:1/ws-api/v3")
    assert ok.validate() == []
    assert BinanceConfig(rest_url="http://127.0.0.1:1").validate() == []


def test_adapter_builds_the_client_only_for_ws_api_order_entry() -> None:
    creds = Credentials("k" * 16, "s" * 16)
    rest_only = BinanceVenue(BinanceConfig(symbols=("BTCUSDT",)), Market.SPOT, Bus(), ManualClock(),
                             credentials=creds)
    assert rest_only.ws_api is None
    ws = BinanceVenue(BinanceConfig(symbols=("BTCUSDT",), order_entry="ws_api", testnet=False), Market.USDM, Bus(),
                      ManualClock(), credentials=creds)
    assert ws.ws_api is not None and ws.ws_api_url == "wss://ws-fapi.binance.com/ws-fapi/v1"
