"""Binance error classification: by HTTP status and code, never by message text."""

from __future__ import annotations

import orjson
import pytest

from nautilus_hmm.core.errors import (
    AuthError,
    OrderRejected,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
)
from nautilus_hmm.venues.binance.errors import (
    TimestampError,
    classify,
    classify_ws_api_error,
    parse_error_body,
)
from tests.conftest import fixture_path
from tests.unit.venues.binance.jsonc import load_jsonc

NOW_NS = 1_700_000_000_000_000_000
V = "binance_spot"


def _observed(name: str) -> bytes:
    return fixture_path("binance", "errors_observed", name).read_bytes()


def test_errors_observed_directory_holds_exactly_the_files_tested_here() -> None:
    names = {p.name for p in fixture_path("binance", "errors_observed").iterdir()}
    assert names == {
        "spot_-1003_TOO_MANY_REQUESTS.reconstructed.json",
        "spot_-1021_INVALID_TIMESTAMP.verbatim.json",
        "spot_-2010_insufficient_balance.reconstructed.json",
        "usdm_futures_listenKeyExpired_E_is_string.verbatim.json",
    }


def test_observed_1003_with_429_is_rate_limited_for_retry_after_seconds() -> None:
    err = classify(429, _observed("spot_-1003_TOO_MANY_REQUESTS.reconstructed.json"), venue=V,
                   order_entry=False, now_ns=NOW_NS, headers={"retry-after": "37"})
    assert isinstance(err, RateLimited)
    assert err.retry_after_s == 37.0
    assert err.code == "-1003"


def test_observed_1021_is_a_retryable_timestamp_error() -> None:
    err = classify(400, _observed("spot_-1021_INVALID_TIMESTAMP.verbatim.json"), venue=V,
                   order_entry=True, now_ns=NOW_NS)
    assert isinstance(err, TimestampError)
    assert isinstance(err, RetryableError)


def test_observed_2010_is_a_final_rejection_with_the_message() -> None:
    err = classify(400, _observed("spot_-2010_insufficient_balance.reconstructed.json"), venue=V,
                   order_entry=True, now_ns=NOW_NS)
    assert type(err) is OrderRejected
    assert err.code == "-2010"
    assert "insufficient balance" in err.message


def test_observed_listen_key_expired_event_is_not_an_error_body() -> None:
    code, _ = parse_error_body(_observed("usdm_futures_listenKeyExpired_E_is_string.verbatim.json"))
    assert code is None


def test_docs_error_payload_sample_is_final() -> None:
    body = load_jsonc(fixture_path("binance", "docs_spot", "rest", "error_payload_sample.jsonc"))
    err = classify(400, body, venue=V, order_entry=False, now_ns=NOW_NS)
    assert type(err) is OrderRejected
    assert err.code == "-1121"


@pytest.mark.parametrize("code", [-2010, -1013, -2011, -1102, -1100, -2013, -2019, -5022])
def test_final_codes_are_order_rejected(code: int) -> None:
    err = classify(400, {"code": code, "msg": "x"}, venue=V, order_entry=True, now_ns=NOW_NS)
    assert type(err) is OrderRejected


@pytest.mark.parametrize("code", [-2015, -2014, -1022, -1002])
def test_auth_codes_are_auth_errors(code: int) -> None:
    err = classify(401, {"code": code, "msg": "x"}, venue=V, order_entry=False, now_ns=NOW_NS)
    assert isinstance(err, AuthError)


def test_1003_current_and_old_wording_classify_the_same() -> None:
    old = {"code": -1003, "msg": "Too much request weight used; current limit is 1200 request weight per 1 MINUTE. Please use the websocket for live updates to avoid polling the API."}
    new = {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."}
    a = classify(429, old, venue=V, order_entry=False, now_ns=NOW_NS)
    b = classify(429, new, venue=V, order_entry=False, now_ns=NOW_NS)
    assert type(a) is type(b) is RateLimited


def test_message_text_does_not_change_the_class() -> None:
    body = {"code": -2010, "msg": "Timestamp for this request is outside of the recvWindow."}
    assert type(classify(400, body, venue=V, order_entry=True, now_ns=NOW_NS)) is OrderRejected


def test_418_takes_the_ban_end_from_the_message() -> None:
    body = {"code": -1003, "msg": "Way too much request weight used; IP banned until 1693427319838. Please use WebSocket Streams for live updates to avoid bans."}
    err = classify(418, body, venue=V, order_entry=False, now_ns=NOW_NS, headers={"Retry-After": "5"})
    assert isinstance(err, VenueBanned)
    assert err.until_ns == 1693427319838 * 1_000_000


def test_418_without_an_end_time_uses_retry_after() -> None:
    err = classify(418, b"", venue=V, order_entry=False, now_ns=NOW_NS, headers={"Retry-After": "120"})
    assert isinstance(err, VenueBanned)
    assert err.until_ns == NOW_NS + 120 * 1_000_000_000


def test_418_without_end_time_or_header_bans_for_the_minimum_period() -> None:
    err = classify(418, None, venue=V, order_entry=False, now_ns=NOW_NS)
    assert isinstance(err, VenueBanned)
    assert err.until_ns == NOW_NS + 120 * 1_000_000_000


def test_429_without_retry_after_waits_a_minute() -> None:
    err = classify(429, {"code": -1003, "msg": "x"}, venue=V, order_entry=False, now_ns=NOW_NS)
    assert isinstance(err, RateLimited)
    assert err.retry_after_s == 60.0


def test_1007_timeout_on_order_entry_is_unknown_outcome() -> None:
    body = {"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown."}
    assert isinstance(classify(408, body, venue=V, order_entry=True, now_ns=NOW_NS), UnknownOutcome)


def test_1007_timeout_on_a_read_is_retryable() -> None:
    err = classify(408, {"code": -1007, "msg": "x"}, venue=V, order_entry=False, now_ns=NOW_NS)
    assert type(err) is RetryableError


def test_503_unknown_error_on_order_entry_is_unknown_outcome() -> None:
    body = {"code": -1000, "msg": "Unknown error, please check your request or try again later."}
    assert isinstance(classify(503, body, venue=V, order_entry=True, now_ns=NOW_NS), UnknownOutcome)


def test_5xx_with_html_body_on_order_entry_is_unknown_outcome() -> None:
    err = classify(502, b"<html>Bad Gateway</html>", venue=V, order_entry=True, now_ns=NOW_NS)
    assert isinstance(err, UnknownOutcome)
    assert "Bad Gateway" in err.message


def test_5xx_on_a_read_is_retryable() -> None:
    assert type(classify(500, b"", venue=V, order_entry=False, now_ns=NOW_NS)) is RetryableError


def test_server_busy_is_retryable_even_on_order_entry() -> None:
    err = classify(503, {"code": -1008, "msg": "busy"}, venue=V, order_entry=True, now_ns=NOW_NS)
    assert type(err) is RetryableError


def test_waf_403_is_retryable() -> None:
    assert type(classify(403, b"", venue=V, order_entry=True, now_ns=NOW_NS)) is RetryableError


def test_unknown_code_on_4xx_is_final() -> None:
    err = classify(400, {"code": -4164, "msg": "Order's notional must be no smaller than 5"}, venue="binance_usdm",
                   order_entry=True, now_ns=NOW_NS)
    assert type(err) is OrderRejected


def test_usdm_matching_engine_recv_window_is_a_timestamp_error() -> None:
    err = classify(400, {"code": -5028, "msg": "x"}, venue="binance_usdm", order_entry=True, now_ns=NOW_NS)
    assert isinstance(err, TimestampError)


def test_ws_api_error_frame_uses_status_code_and_retry_after() -> None:
    frame = orjson.loads(
        b'{"id":"x","status":418,"error":{"code":-1003,"msg":"Way too much request weight used.",'
        b'"data":{"serverTime":1700000000000,"retryAfter":1700000060000}}}'
    )
    err = classify_ws_api_error(frame, venue=V, order_entry=False, now_ns=NOW_NS)
    assert isinstance(err, VenueBanned)
    assert err.until_ns == 1700000060000 * 1_000_000


def test_ws_api_rejection_is_final() -> None:
    frame = {"id": 1, "status": 400, "error": {"code": -2010, "msg": "Account has insufficient balance for requested action."}}
    assert type(classify_ws_api_error(frame, venue=V, order_entry=True, now_ns=NOW_NS)) is OrderRejected


def test_parse_error_body_keeps_plain_text_bodies() -> None:
    assert parse_error_body(b"Service Unavailable") == (None, "Service Unavailable")
