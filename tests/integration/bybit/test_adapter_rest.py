"""BybitRest against a small loopback Bybit v5 REST server: signing, time, pacing, limits, errors.

The server is scripted per test (what each path answers, in order); it checks every
signed request's X-BAPI-SIGN over the exact query string / body received, so a
request that is signed over different bytes than it sends fails here. Time is a
ManualClock shared by the client's timeouts and pacing; waiting is on conditions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import web

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import (
    AuthError,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
)
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.errors import DuplicateOrderLinkId, RecvWindowError
from nautilus_hmm.venues.bybit.rest import BybitRest
from tests.integration.bybit.loopback_rest import KEY, SECRET, LoopbackBybit, fail, ok

NS_PER_MS = 1_000_000

@pytest.fixture
async def server(clock: ManualClock) -> AsyncIterator[LoopbackBybit]:
    srv = LoopbackBybit(clock)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def rest(server: LoopbackBybit, clock: ManualClock) -> AsyncIterator[BybitRest]:
    client = BybitRest(server.url, clock, venue="bybit_linear", credentials=Credentials(KEY, SECRET),
                       recv_window_ms=5000, request_timeout_s=5.0)
    try:
        yield client
    finally:
        await client.close()


async def until(pred: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """Wait (bounded, real loop time) until `pred()` is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := pred()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.001)
    return value


def limit_headers(limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
    return {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": str(remaining),
            "X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}


CREATE = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": Decimal("0.010"),
          "price": Decimal("50000.5"), "timeInForce": "GTC", "orderLinkId": "cid-1", "positionIdx": 0}


# ------------------------------------------------------------ signing and time


async def test_signed_get_and_post_carry_a_signature_over_the_exact_bytes_sent(
        server: LoopbackBybit, rest: BybitRest) -> None:
    server.on("/v5/order/realtime", ok({"list": [], "nextPageCursor": ""}))
    server.on("/v5/order/create", ok({"orderId": "1", "orderLinkId": "cid-1"}))
    await rest.call("open_orders", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "a b/c"})
    result = await rest.call("new_order", CREATE)
    assert result == {"orderId": "1", "orderLinkId": "cid-1"}
    get, post = server.requests
    assert get["sig_ok"] is True and post["sig_ok"] is True
    assert get["query"] == "category=linear&symbol=BTCUSDT&orderLinkId=a%20b%2Fc"
    body = orjson.loads(post["body"])
    assert body["qty"] == "0.010" and body["price"] == "50000.5" and body["positionIdx"] == 0
    assert post["headers"]["X-BAPI-RECV-WINDOW"] == "5000" and post["headers"]["X-BAPI-API-KEY"] == KEY


async def test_public_endpoints_are_not_signed(server: LoopbackBybit, rest: BybitRest) -> None:
    server.on("/v5/market/instruments-info", ok({"category": "spot", "list": []}))
    await rest.call("instruments", {"category": "spot"})
    assert server.requests[0]["signed"] is False


async def test_time_sync_measures_the_server_offset_and_timestamps_follow_it(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    server.server_offset_ms = 7_250
    assert await rest.sync_time() == 7_250
    server.on("/v5/position/list", ok({"list": []}))
    await rest.call("positions", {"category": "linear", "symbol": "BTCUSDT"})
    ts = int(server.requests[-1]["headers"]["X-BAPI-TIMESTAMP"])
    assert ts == clock.time_ns() // NS_PER_MS + 7_250


async def test_recv_window_error_resyncs_the_clock_and_retries_once(
        server: LoopbackBybit, rest: BybitRest) -> None:
    server.server_offset_ms = 30_000  # the local clock fell behind: Bybit says 10002
    server.on("/v5/order/create", fail(10002, "invalid request, please check your server timestamp or recv_window"),
              ok({"orderId": "9", "orderLinkId": "cid-1"}))
    assert await rest.call("new_order", CREATE) == {"orderId": "9", "orderLinkId": "cid-1"}
    assert server.count("/v5/order/create") == 2 and server.count("/v5/market/time") == 1
    assert rest.time_offset_ms == 30_000 and rest.stats.ret_codes[10002] == 1


async def test_a_second_recv_window_error_is_raised_not_retried_again(server: LoopbackBybit, rest: BybitRest) -> None:
    server.on("/v5/order/create", fail(10002, "recv window"), fail(10002, "recv window"))
    with pytest.raises(RecvWindowError) as info:
        await rest.call("new_order", CREATE)
    assert isinstance(info.value, RetryableError) and info.value.code == "10002"
    assert server.count("/v5/order/create") == 2


# ------------------------------------------------------------ pacing and 10006


async def test_an_endpoint_with_nothing_left_waits_for_its_window_to_reset(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    reset_ms = clock.time_ns() // NS_PER_MS + 800
    server.on("/v5/order/realtime", ok({"list": []}, limit_headers(10, 0, reset_ms)), ok({"list": []}))
    await rest.call("open_orders", {"category": "linear"})
    task = asyncio.ensure_future(rest.call("open_orders", {"category": "linear"}))
    await clock.settle(20)
    assert server.count("/v5/order/realtime") == 1 and not task.done()  # held back, not sent
    await clock.advance_settle(0.9)
    await asyncio.wait_for(task, 5)
    assert server.count("/v5/order/realtime") == 2 and rest.stats.paced == 1


async def test_other_endpoints_are_not_held_by_a_spent_one(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    reset_ms = clock.time_ns() // NS_PER_MS + 800
    server.on("/v5/order/realtime", ok({"list": []}, limit_headers(10, 0, reset_ms)))
    server.on("/v5/position/list", ok({"list": []}))
    await rest.call("open_orders", {"category": "linear"})
    await asyncio.wait_for(rest.call("positions", {"category": "linear"}), 5)
    assert rest.stats.paced == 0


async def test_a_window_further_away_than_the_pacing_cap_fails_fast_without_sending(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    reset_ms = clock.time_ns() // NS_PER_MS + 10_000
    server.on("/v5/order/create", ok({"orderId": "1", "orderLinkId": "cid-1"}, limit_headers(10, 0, reset_ms)))
    await rest.call("new_order", CREATE)
    with pytest.raises(RateLimited) as info:
        await rest.call("new_order", {**CREATE, "orderLinkId": "cid-2"})
    assert 9.9 <= info.value.retry_after_s <= 10.0
    assert server.count("/v5/order/create") == 1 and rest.stats.rate_limited_fast == 1


async def test_local_counting_holds_back_requests_between_answers(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    reset_ms = clock.time_ns() // NS_PER_MS + 500
    server.on("/v5/order/realtime", ok({"list": []}, limit_headers(3, 1, reset_ms)), ok({"list": []}),
              ok({"list": []}))
    await rest.call("open_orders", {"category": "linear"})
    await rest.call("open_orders", {"category": "linear"})  # the last one of the window
    third = asyncio.ensure_future(rest.call("open_orders", {"category": "linear"}))
    await clock.settle(20)
    assert server.count("/v5/order/realtime") == 2 and not third.done()
    await clock.advance_settle(0.6)
    await asyncio.wait_for(third, 5)


async def test_rate_limit_10006_raises_and_blocks_the_endpoint_until_the_reset(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    reset_ms = clock.time_ns() // NS_PER_MS + 1_500
    server.on("/v5/order/create", fail(10006, "Too many visits!", limit_headers(10, 0, reset_ms)),
              ok({"orderId": "2", "orderLinkId": "cid-2"}))
    with pytest.raises(RateLimited) as info:
        await rest.call("new_order", CREATE)
    assert info.value.code == "10006" and 1.4 <= info.value.retry_after_s <= 1.5
    assert rest.stats.ret_codes[10006] == 1
    task = asyncio.ensure_future(rest.call("new_order", {**CREATE, "orderLinkId": "cid-2"}))
    await clock.settle(20)
    assert server.count("/v5/order/create") == 1 and not task.done()
    await clock.advance_settle(1.6)
    assert (await asyncio.wait_for(task, 5))["orderId"] == "2"


# ------------------------------------------------------------ bans and halts


async def test_http_403_bans_every_request_for_ten_minutes(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    server.on("/v5/order/realtime", web.Response(status=403, text="access too frequent"), ok({"list": []}))
    with pytest.raises(VenueBanned):
        await rest.call("open_orders", {"category": "linear"})
    with pytest.raises(VenueBanned):
        await rest.call("new_order", CREATE)  # another endpoint: the ban is the IP's
    assert server.count("/v5/order/create") == 0 and rest.stats.banned_fast == 1
    await clock.advance_settle(599.0)
    with pytest.raises(VenueBanned):
        await rest.call("open_orders", {"category": "linear"})
    await clock.advance_settle(1.5)
    assert await rest.call("open_orders", {"category": "linear"}) == {"list": []}


@pytest.mark.parametrize("code", [10003, 10004])
async def test_bad_key_or_signature_halts_the_venue_and_says_why(
        server: LoopbackBybit, rest: BybitRest, code: int) -> None:
    server.on("/v5/account/wallet-balance", fail(code, "API key is invalid." if code == 10003 else "error sign!"))
    with pytest.raises(AuthError):
        await rest.call("wallet", {"accountType": "UNIFIED"})
    assert f"retCode {code}" in rest.halted_reason
    with pytest.raises(AuthError, match="venue halted"):
        await rest.call("positions", {"category": "linear"})
    assert server.count("/v5/position/list") == 0


async def test_permission_denied_is_an_auth_error_without_halting(server: LoopbackBybit, rest: BybitRest) -> None:
    server.on("/v5/order/create", fail(10005, "Permission denied"))
    with pytest.raises(AuthError):
        await rest.call("new_order", CREATE)
    assert rest.halted_reason == ""


# ------------------------------------------------------------ unknown outcomes


async def test_an_order_without_an_answer_in_time_is_an_unknown_outcome(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    async def withheld(request: web.Request, raw: bytes) -> web.Response:
        await server.release.wait()
        return ok({"orderId": "1", "orderLinkId": "cid-1"})

    server.on("/v5/order/create", withheld)
    task = asyncio.ensure_future(rest.call("new_order", CREATE))
    await until(lambda: server.count("/v5/order/create") == 1)
    await clock.advance_settle(5.0)
    with pytest.raises(UnknownOutcome):
        await asyncio.wait_for(task, 5)
    assert rest.stats.timeouts == 1 and server.count("/v5/order/create") == 1  # never resent


async def test_a_read_without_an_answer_in_time_is_retryable(
        server: LoopbackBybit, rest: BybitRest, clock: ManualClock) -> None:
    async def withheld(request: web.Request, raw: bytes) -> web.Response:
        await server.release.wait()
        return ok({"list": []})

    server.on("/v5/order/realtime", withheld)
    task = asyncio.ensure_future(rest.call("open_orders", {"category": "linear"}))
    await until(lambda: server.count("/v5/order/realtime") == 1)
    await clock.advance_settle(5.0)
    with pytest.raises(RetryableError) as info:
        await asyncio.wait_for(task, 5)
    assert not isinstance(info.value, UnknownOutcome)


async def test_a_connection_dropped_after_an_order_left_is_an_unknown_outcome(
        server: LoopbackBybit, rest: BybitRest) -> None:
    async def drop(request: web.Request, raw: bytes) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0)
        return ok({})

    server.on("/v5/order/create", drop)
    with pytest.raises(UnknownOutcome):
        await rest.call("new_order", CREATE)
    assert server.count("/v5/order/create") == 1


@pytest.mark.parametrize("answer", [
    web.Response(status=502, text="<html>bad gateway</html>"),
    web.Response(status=200, body=b'{"retCode":0,"retMsg":"OK","res'),  # truncated
    web.Response(status=200, body=b"\x00\xff\xfe"),
    fail(10016, "Server error."),
    fail(10000, "Server Timeout"),
])
async def test_server_errors_and_unreadable_answers_on_order_entry_are_unknown_outcomes(
        server: LoopbackBybit, rest: BybitRest, answer: web.Response) -> None:
    server.on("/v5/order/create", answer)
    with pytest.raises(UnknownOutcome):
        await rest.call("new_order", CREATE)


async def test_server_error_on_a_read_is_retryable(server: LoopbackBybit, rest: BybitRest) -> None:
    server.on("/v5/execution/list", web.Response(status=503, text="busy"))
    with pytest.raises(RetryableError) as info:
        await rest.call("executions", {"category": "linear"})
    assert not isinstance(info.value, UnknownOutcome)


async def test_duplicate_order_link_id_is_its_own_unknown_outcome(server: LoopbackBybit, rest: BybitRest) -> None:
    server.on("/v5/order/create", fail(110072, "OrderLinkedID is duplicate"))
    with pytest.raises(DuplicateOrderLinkId) as info:
        await rest.call("new_order", CREATE)
    assert info.value.code == "110072" and info.value.venue == "bybit_linear"


async def test_a_refused_connection_is_retryable_even_for_an_order(clock: ManualClock) -> None:
    srv = LoopbackBybit(clock)
    await srv.start()
    url = srv.url
    await srv.stop()  # nothing listens there any more
    client = BybitRest(url, clock, venue="bybit_spot", credentials=Credentials(KEY, SECRET))
    try:
        with pytest.raises(RetryableError) as info:
            await client.call("new_order", CREATE)
        assert not isinstance(info.value, UnknownOutcome)
    finally:
        await client.close()


async def test_an_order_rejection_is_final_and_carries_the_ret_code(server: LoopbackBybit, rest: BybitRest) -> None:
    from nautilus_hmm.core.errors import OrderRejected

    server.on("/v5/order/create", fail(110007, "Insufficient available balance"))
    with pytest.raises(OrderRejected) as info:
        await rest.call("new_order", CREATE)
    assert info.value.code == "110007" and "Insufficient" in str(info.value)
    assert rest.stats.as_dict()["ret_codes"] == {"110007": 1}


async def test_missing_credentials_on_a_signed_endpoint_is_an_auth_error_and_nothing_is_sent(
        server: LoopbackBybit, clock: ManualClock) -> None:
    client = BybitRest(server.url, clock, venue="bybit_spot")
    try:
        with pytest.raises(AuthError):
            await client.call("wallet", {"accountType": "UNIFIED"})
        assert server.requests == []
    finally:
        await client.close()


# ------------------------------------------------------------ paging


async def test_cursor_paging_follows_next_page_cursor_to_the_end(server: LoopbackBybit, rest: BybitRest) -> None:
    server.on("/v5/execution/list", ok({"list": [1], "nextPageCursor": "p2"}), ok({"list": [2], "nextPageCursor": "p3"}),
              ok({"list": [3], "nextPageCursor": ""}))
    pages = [p["list"] async for p in rest.pages("executions", {"category": "linear", "limit": 100})]
    assert pages == [[1], [2], [3]]
    cursors = [r["query"] for r in server.requests]
    assert cursors == ["category=linear&limit=100", "category=linear&limit=100&cursor=p2",
                       "category=linear&limit=100&cursor=p3"]


async def test_a_cursor_that_repeats_ends_the_paging(server: LoopbackBybit, rest: BybitRest) -> None:
    server.on("/v5/execution/list", ok({"list": [1], "nextPageCursor": "same"}),
              ok({"list": [2], "nextPageCursor": "same"}))
    pages = [p["list"] async for p in rest.pages("executions", {"category": "linear"})]
    assert pages == [[1], [2]] and server.count("/v5/execution/list") == 2
