"""Bybit retCode / HTTP status → typed errors; every code in the docs' tables maps to one."""

from __future__ import annotations

import re

import pytest

from nautilus_hmm.core.errors import (
    AuthError,
    OrderRejected,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
)
from nautilus_hmm.venues.bybit.errors import (
    BAD_KEY,
    BAD_SIGN,
    DUPLICATE_ORDER_LINK_ID,
    IP_BAN_S,
    ORDER_NOT_FOUND,
    RATE_LIMIT,
    RECV_WINDOW,
    BybitApiError,
    DuplicateOrderLinkId,
    OrderNotActive,
    OrderNotFound,
    RecvWindowError,
    check_response,
    classify,
    parse_error_body,
    parse_rate_limit_headers,
)
from tests.conftest import fixture_path

NOW_NS = 1_700_000_000_000_000_000
NOW_MS = NOW_NS // 1_000_000


def test_10006_backs_off_until_the_reset_timestamp() -> None:
    headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(NOW_MS + 750)}
    err = classify(RATE_LIMIT, "Too many visits!", 200, venue="bybit_linear", now_ns=NOW_NS, headers=headers)
    assert isinstance(err, RateLimited) and isinstance(err, BybitApiError)
    assert err.retry_after_s == pytest.approx(0.75)
    assert err.ret_code == 10006 and err.code == "10006" and err.venue == "bybit_linear"


def test_10006_without_headers_waits_one_window() -> None:
    err = classify(RATE_LIMIT, "Too many visits!", now_ns=NOW_NS)
    assert isinstance(err, RateLimited) and err.retry_after_s == 1.0


def test_a_reset_far_in_the_future_is_capped() -> None:
    headers = {"x-bapi-limit": "10", "x-bapi-limit-status": "0", "x-bapi-limit-reset-timestamp": str(NOW_MS + 10**9)}
    err = classify(RATE_LIMIT, "", now_ns=NOW_NS, headers=headers)
    assert isinstance(err, RateLimited) and err.retry_after_s == 60.0


def test_10002_is_a_recv_window_error_to_resync_and_retry() -> None:
    err = classify(RECV_WINDOW, "invalid request, please check your server timestamp or recv_window param")
    assert isinstance(err, RecvWindowError) and isinstance(err, RetryableError)
    assert not isinstance(err, UnknownOutcome)


@pytest.mark.parametrize("code", [BAD_KEY, BAD_SIGN, 10005, 10007, 10010])
def test_key_and_signature_errors_halt_with_the_reason(code: int) -> None:
    err = classify(code, "Error sign, please check your signature generation algorithm.", 200, venue="bybit_spot")
    assert isinstance(err, AuthError) and err.kind == "auth"
    assert f"[{code}]" in str(err) and "signature" in str(err)


def test_http_403_halts_the_venue_for_ten_minutes() -> None:
    err = classify(None, "", 403, now_ns=NOW_NS)
    assert isinstance(err, VenueBanned)
    assert err.until_ns == NOW_NS + int(IP_BAN_S * 1e9) and IP_BAN_S == 600
    assert "403" in str(err)


def test_http_429_is_rate_limited() -> None:
    assert isinstance(classify(None, "", 429, now_ns=NOW_NS), RateLimited)


def test_duplicate_order_link_id_means_the_order_exists() -> None:
    err = classify(DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate", order_entry=True)
    assert isinstance(err, DuplicateOrderLinkId) and isinstance(err, UnknownOutcome)
    assert not isinstance(err, OrderRejected)  # never a new failure
    # The spot wording of the same fact.
    assert isinstance(classify(170141, "Duplicate clientOrderId"), DuplicateOrderLinkId)


def test_order_not_found_and_not_active_are_final() -> None:
    nf = classify(ORDER_NOT_FOUND, "Order does not exist")
    assert isinstance(nf, OrderNotFound) and isinstance(nf, OrderRejected)
    assert isinstance(classify(110008, "The order has been completed or cancelled."), OrderNotActive)


@pytest.mark.parametrize("code", [10000, 10016, 170007, 170146])
def test_server_timeouts_are_unknown_on_order_entry_and_retryable_on_reads(code: int) -> None:
    assert isinstance(classify(code, "Server Timeout", order_entry=True), UnknownOutcome)
    read = classify(code, "Server Timeout", order_entry=False)
    assert isinstance(read, RetryableError) and not isinstance(read, UnknownOutcome)


def test_5xx_without_a_body_is_unknown_on_order_entry() -> None:
    err = classify(None, "<html>502 Bad Gateway</html>", 502, order_entry=True)
    assert isinstance(err, UnknownOutcome) and "HTTP 502" in str(err)
    assert isinstance(classify(None, "", 504, order_entry=False), RetryableError)


def test_other_codes_are_final_rejections() -> None:
    err = classify(110007, "Insufficient available balance", order_entry=True)
    assert type(err).__name__ == "BybitOrderRejected" and isinstance(err, OrderRejected)


def test_success_is_not_an_error() -> None:
    with pytest.raises(ValueError, match="success"):
        classify(0, "OK", 200)


def test_check_response_returns_result_or_raises_the_typed_error() -> None:
    assert check_response(b'{"retCode":0,"retMsg":"OK","result":{"a":1},"time":1}') == {"a": 1}
    assert check_response({"retCode": 0, "retMsg": "OK", "result": None}) == {}
    with pytest.raises(DuplicateOrderLinkId):
        check_response(b'{"retCode":110072,"retMsg":"OrderLinkedID is duplicate","result":{}}', order_entry=True)
    with pytest.raises(UnknownOutcome):
        check_response(b"<html>gateway", 200, order_entry=True)  # not JSON: fate unknown
    with pytest.raises(UnknownOutcome):
        check_response(b'{"retCode":0,"result":{}}', 500, order_entry=True)  # 5xx wins over a body


@pytest.mark.parametrize("name", [
    "10001_request_parameter_error.reconstructed.json",
    "10006_rate_limit.reconstructed.json",
    "110007_insufficient_balance.verbatim.json",
])
def test_observed_error_bodies_classify_by_code(name: str) -> None:
    raw = fixture_path("bybit", "errors_observed", name).read_bytes()
    code, msg = parse_error_body(raw)
    assert code == int(name.split("_")[0]) and msg
    with pytest.raises(BybitApiError) as info:
        check_response(raw, now_ns=NOW_NS)
    assert info.value.ret_code == code and info.value.ret_msg == msg


def test_parse_error_body_survives_garbage() -> None:
    assert parse_error_body(b"\xff\xfe not json") == (None, "\ufffd\ufffd not json")
    assert parse_error_body(b"") == (None, "")
    assert parse_error_body(b"[1,2]") == (None, "[1, 2]")
    assert parse_error_body({"retCode": "abc", "retMsg": "x"}) == (None, "x")
    assert parse_error_body({"ret_code": 10003, "ret_msg": "Invalid apikey"}) == (10003, "Invalid apikey")


def test_rate_limit_headers_parse_or_give_none() -> None:
    st = parse_rate_limit_headers({"X-Bapi-Limit": "20", "X-Bapi-Limit-Status": "19",
                                   "X-Bapi-Limit-Reset-Timestamp": "1672738134824"})
    assert st is not None and (st.limit, st.remaining, st.reset_ms) == (20, 19, 1672738134824)
    assert st.wait_s(1672738134824 + 5) == 0.0
    assert parse_rate_limit_headers({"X-Bapi-Limit": "20"}) is None
    assert parse_rate_limit_headers({"X-Bapi-Limit": "x", "X-Bapi-Limit-Status": "1",
                                     "X-Bapi-Limit-Reset-Timestamp": "2"}) is None
    assert parse_rate_limit_headers(None) is None


def _doc_codes() -> list[int]:
    text = fixture_path("bybit", "docs_v5", "error_codes.mdx").read_text()
    return sorted({int(m) for m in re.findall(r"^\|\s*(\d{5,7})\s*\|", text, re.M)})


def test_every_documented_ret_code_maps_to_a_typed_error() -> None:
    codes = _doc_codes()
    assert len(codes) > 200  # the tables were read
    kinds: dict[str, int] = {}
    for code in codes:
        err = classify(code, "text", 200, order_entry=True, now_ns=NOW_NS)
        assert isinstance(err, BybitApiError) and err.ret_code == code and err.code == str(code)
        assert isinstance(err, (OrderRejected, RetryableError, UnknownOutcome, AuthError, VenueBanned))
        kinds[err.kind] = kinds.get(err.kind, 0) + 1
    assert {"rate_limited", "recv_window", "auth", "duplicate_order_link_id", "unknown_outcome",
            "order_not_found", "rejected"} <= set(kinds)


@pytest.mark.parametrize("body", [
    b"", b"null", b"[]", b'"text"', b"\x00\xff", b'{"retCode": null}', b'{"retCode": "0"}', b'{"retCode": [1]}',
    b'{"retCode": 1.5, "retMsg": 7}', b'{"retCode": true}', b'{"retMsg": "no code"}', b'{"retCode": 99999999999999999999}',
])
@pytest.mark.parametrize("status", [200, 404, 502])
def test_any_body_gives_a_result_or_a_typed_error(body: bytes, status: int) -> None:
    try:
        check_response(body, status, order_entry=True, now_ns=NOW_NS)
    except BybitApiError as err:
        assert err.http_status == status
        if status == 502:
            assert isinstance(err, UnknownOutcome)
    else:
        assert status == 200 and body == b'{"retCode": "0"}'  # only a success passes
