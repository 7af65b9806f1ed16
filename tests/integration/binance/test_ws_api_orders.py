"""Order entry over the WebSocket API (`order_entry = "ws_api"`) against the emulator, over loopback.

Same rules as REST, proved on the wire: answers matched by id, the REST errors and the
shared weight / 429 / 418 bookkeeping, -1021 re-sync, and money safety: a frame that may
have left is an unknown outcome resolved by query, never resent; a frame that provably
did not leave goes by REST (or is a retryable error from the client itself).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import (
    AuthError,
    OrderRejected,
    RateLimited,
    UnknownOutcome,
    VenueBanned,
)
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import FillReport
from nautilus_hmm.venues.binance.adapter import BinanceOptions, BinanceVenue
from nautilus_hmm.venues.binance.auth import Credentials
from nautilus_hmm.venues.binance.config import BinanceConfig
from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import parse_order
from nautilus_hmm.venues.binance.rest import BAN_MARGIN_NS
from nautilus_hmm.venues.binance.wsapi import BinanceWsApi, WsApiNotConnected
from nautilus_hmm.venues.ws import WsSettings
from tests.integration.binance.conftest import API_KEY, API_SECRET, Harness, Recorder, until

SPOT_BTC = InstrumentId("binance_spot", "BTCUSDT")
USDM_BTC = InstrumentId("binance_usdm", "BTCUSDT")
# Manual-clock tests jump minutes at once: liveness limits far beyond any jump.
QUIET = WsSettings(dead_after_s=3600.0, ping_interval_s=1800.0, jitter=0.0)


def ws_api_venue(emu: BinanceEmulator, market: Market, bus: Bus, clock: ManualClock, **cfg: Any) -> BinanceVenue:
    """An adapter placing orders over the emulator's WebSocket API."""
    config = BinanceConfig(enabled=True, rest_url=emu.url, ws_url=emu.ws_url, ws_api_url=emu.ws_api_url,
                           order_entry="ws_api", symbols=("BTCUSDT",), request_timeout_s=5.0, **cfg)
    options = BinanceOptions(
        bar_interval_s=60, market_ws=WsSettings(stale_after_s=3600.0, dead_after_s=3600.0, ping_interval_s=1800.0,
                                                jitter=0.0),
        user_ws=QUIET, order_ws=QUIET,
    )
    return BinanceVenue(config, market, bus, clock, credentials=Credentials(API_KEY, API_SECRET), options=options)


async def started(emu: BinanceEmulator, venue: BinanceVenue, bus: Bus, clock: ManualClock) -> Harness:
    h = Harness(emu, venue, bus, clock)
    await h.start()
    assert venue.ws_api is not None
    await until(lambda: venue.ws_api is not None and venue.ws_api.connected, what="WebSocket API connected")
    return h


@contextlib.asynccontextmanager
async def running(market: Market, clock: ManualClock, bus: Bus, **cfg: Any) -> AsyncIterator[Harness]:
    # Server pings far apart: tests that jump the clock by minutes would otherwise race
    # the pong over real sockets; the ping rules have their own tests below.
    emu = BinanceEmulator(market, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False, ws_api_ping_s=7200.0)
    await emu.start()
    h = Harness(emu, ws_api_venue(emu, market, bus, clock, **cfg), bus, clock)
    try:
        h = await started(emu, h.venue, bus, clock)
        yield h
    finally:
        await h.stop()
        await emu.stop()


@pytest.fixture
async def spot(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    async with running(Market.SPOT, clock, bus) as h:
        yield h


@pytest.fixture
async def usdm(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    async with running(Market.USDM, clock, bus, leverage=3) as h:
        yield h


def limit_buy(cid: str, iid: InstrumentId = SPOT_BTC, price: str = "50000.00", qty: str = "0.01000") -> OrderRequest:
    return OrderRequest(cid, iid, Side.BUY, OrderType.LIMIT, Decimal(qty), Decimal(price))


def ws_api(h: Harness) -> BinanceWsApi:
    assert h.venue.ws_api is not None
    return h.venue.ws_api


def receipts(h: Harness, cid: str) -> list[dict[str, Any]]:
    return [r for r in h.emu.state()["new_order_requests"] if r["client_order_id"] == cid]


# ---------------------------------------------------------------- place, cancel, status


async def test_limit_order_is_placed_and_cancelled_over_the_ws_api_not_rest(spot: Harness) -> None:
    ack = await spot.venue.submit_order(limit_buy("w-limit-1"))
    assert ack.status is OrderStatus.ACCEPTED and ack.price == Decimal("50000")
    canceled = await spot.venue.cancel_order(SPOT_BTC, "w-limit-1")
    assert canceled.client_order_id == "w-limit-1" and canceled.status is OrderStatus.CANCELED
    requests = spot.emu.state()["requests"]
    assert requests["WS order.place"] == 1 and requests["WS order.cancel"] == 1
    assert "POST /api/v3/order" not in requests and "DELETE /api/v3/order" not in requests
    assert [r["transport"] for r in receipts(spot, "w-limit-1")] == ["ws_api"]


async def test_order_status_answer_parses_like_the_rest_order(spot: Harness) -> None:
    await spot.venue.submit_order(limit_buy("w-status-1"))
    result = await ws_api(spot).call("query_order", {"symbol": "BTCUSDT", "origClientOrderId": "w-status-1"})
    over_ws = parse_order(result, spot.venue.parser.ids)
    over_rest = await spot.venue.query_order(SPOT_BTC, "w-status-1")
    assert over_rest is not None and over_ws == over_rest
    assert spot.emu.state()["requests"]["WS order.status"] == 1


async def test_market_order_full_answer_fills_carry_the_trade_ids_the_user_stream_repeats(spot: Harness) -> None:
    rec = Recorder(spot.bus, FillReport)
    ack = await spot.venue.submit_order(OrderRequest("w-mkt-1", SPOT_BTC, Side.BUY, OrderType.MARKET,
                                                     Decimal("0.01")))
    assert ack.status is OrderStatus.FILLED
    [emu_fill] = spot.emu.state()["fills"]
    await until(lambda: len(rec.of(FillReport)) == 2, what="the user-stream copy of the fill")
    # Both published; the engine's fill intake books the trade once (by this trade id).
    assert [m.fill.trade_id for m in rec.of(FillReport)] == [emu_fill["trade_id"]] * 2


async def test_cancel_of_an_unknown_order_is_the_rest_rejection(spot: Harness) -> None:
    with pytest.raises(OrderRejected) as rejected:
        await spot.venue.cancel_order(SPOT_BTC, "never-placed")
    assert rejected.value.code == "-2011"


async def test_usdm_order_is_placed_and_cancelled_over_the_ws_fapi(usdm: Harness) -> None:
    req = OrderRequest("w-u-gtx", USDM_BTC, Side.BUY, OrderType.LIMIT_MAKER, Decimal("0.002"), Decimal("50000.0"))
    ack = await usdm.venue.submit_order(req)
    assert ack.order_type is OrderType.LIMIT_MAKER and ack.status is OrderStatus.ACCEPTED
    canceled = await usdm.venue.cancel_order(USDM_BTC, "w-u-gtx")
    assert canceled.status is OrderStatus.CANCELED
    requests = usdm.emu.state()["requests"]
    assert requests["WS order.place"] == 1 and requests["WS order.cancel"] == 1
    assert "POST /fapi/v1/order" not in requests


async def test_usdm_market_order_moves_the_position(usdm: Harness) -> None:
    ack = await usdm.venue.submit_order(OrderRequest("w-u-mkt", USDM_BTC, Side.BUY, OrderType.MARKET,
                                                     Decimal("0.010")))
    assert ack.status is OrderStatus.FILLED
    assert await usdm.venue.positions() == {USDM_BTC: Decimal("0.010")}


# ---------------------------------------------------------------- correlation


async def test_answers_out_of_order_reach_their_own_requests(spot: Harness) -> None:
    await spot.venue.submit_order(limit_buy("w-first"))
    spot.emu.faults.apply({"delay_ms": {"order.place": 1000}})
    place = asyncio.get_running_loop().create_task(spot.venue.submit_order(limit_buy("w-slow", price="49000.00")))
    await until(lambda: receipts(spot, "w-slow"), what="the slow order at the venue")
    status = await ws_api(spot).call("query_order", {"symbol": "BTCUSDT", "origClientOrderId": "w-first"})
    assert status["clientOrderId"] == "w-first" and not place.done()
    await spot.clock.advance_settle(1.0)
    ack = await place
    assert ack.client_order_id == "w-slow" and ack.price == Decimal("49000")


# ---------------------------------------------------------------- limits and errors


async def test_429_on_an_order_blocks_rest_and_ws_api_until_retry_after(spot: Harness) -> None:
    spot.emu.faults.apply({"errors": [{"path": "order.place", "status": 429, "code": -1003, "retry_after_s": 30}]})
    with pytest.raises(RateLimited) as limited:
        await spot.venue.submit_order(limit_buy("w-429"))
    assert limited.value.retry_after_s == pytest.approx(30, abs=0.01)
    sent = sum(spot.emu.state()["requests"].values())
    with pytest.raises(RateLimited):
        await spot.venue.balances()  # REST: the same IP, the same block
    with pytest.raises(RateLimited):
        await spot.venue.submit_order(limit_buy("w-429-again"))
    assert sum(spot.emu.state()["requests"].values()) == sent, "a request was sent during the 429"
    await spot.clock.advance_settle(31)
    assert (await spot.venue.submit_order(limit_buy("w-after-429"))).status is OrderStatus.ACCEPTED
    assert spot.emu.state()["bans"] == 0


async def test_418_on_an_order_halts_every_request_until_the_ban_ends(spot: Harness) -> None:
    spot.emu.faults.apply({"errors": [{"path": "order.place", "status": 418, "code": -1003, "retry_after_s": 120}]})
    with pytest.raises(VenueBanned) as banned:
        await spot.venue.submit_order(limit_buy("w-418"))
    assert banned.value.until_ns == spot.clock.time_ns() + 120 * 10**9 + BAN_MARGIN_NS
    sent = sum(spot.emu.state()["requests"].values())
    with pytest.raises(VenueBanned):
        await spot.venue.open_orders(SPOT_BTC)
    with pytest.raises(VenueBanned):
        await spot.venue.cancel_order(SPOT_BTC, "w-418")
    assert sum(spot.emu.state()["requests"].values()) == sent, "a request was sent during the ban"
    assert not spot.venue.health().ok and "banned" in spot.venue.health().detail
    await spot.clock.advance_settle(122)
    assert (await spot.venue.submit_order(limit_buy("w-after-418"))).status is OrderStatus.ACCEPTED


async def test_a_rest_ban_stops_ws_api_orders_too(spot: Harness) -> None:
    spot.emu.faults.apply({"errors": [{"path": "/api/v3/openOrders", "status": 418, "code": -1003,
                                       "retry_after_s": 60}]})
    with pytest.raises(VenueBanned):
        await spot.venue.open_orders(SPOT_BTC)
    with pytest.raises(VenueBanned):
        await spot.venue.submit_order(limit_buy("w-banned"))
    assert "WS order.place" not in spot.emu.state()["requests"]


async def test_answers_rate_limits_set_the_shared_used_weight(spot: Harness) -> None:
    await spot.venue.submit_order(limit_buy("w-weight"))
    assert spot.venue.rest.used_weight_1m == spot.emu.state()["used_weight_1m"] > 0


async def test_timestamp_rejection_resyncs_and_retries_once_without_doubling_the_order(spot: Harness) -> None:
    syncs = spot.venue.rest.stats.time_syncs
    spot.emu.faults.apply({"time_skew_ms": 10_000})
    ack = await spot.venue.submit_order(limit_buy("w-1021"))
    assert ack.status is OrderStatus.ACCEPTED
    assert spot.venue.rest.stats.time_syncs == syncs + 1 and ws_api(spot).stats.time_syncs == 1
    assert [r.get("code") for r in receipts(spot, "w-1021")] == [-1021, None]
    assert spot.emu.state()["client_order_ids"].count("w-1021") == 1


async def test_wrong_secret_is_an_auth_error(spot: Harness) -> None:
    api = ws_api(spot)
    api.credentials = Credentials(API_KEY, "notTheSecret0123456789")
    with pytest.raises(AuthError) as refused:
        await api.call("new_order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001",
                                     "newClientOrderId": "w-badsig"})
    assert refused.value.code == "-1022"
    assert spot.emu.state()["client_order_ids"] == []


# ---------------------------------------------------------------- unknown outcomes


async def test_timed_out_order_is_unknown_outcome_resolved_by_query_never_resent(spot: Harness) -> None:
    spot.emu.faults.apply({"timeout_order_responses": 1})
    send = asyncio.get_running_loop().create_task(spot.venue.submit_order(limit_buy("w-timeout")))
    await until(lambda: spot.emu.state()["client_order_ids"] == ["w-timeout"], what="order reached the venue")
    await spot.clock.advance_settle(5.0)  # request_timeout_s
    with pytest.raises(UnknownOutcome):
        await send
    found = await spot.venue.query_order(SPOT_BTC, "w-timeout")
    assert found is not None and found.status is OrderStatus.ACCEPTED
    assert len(receipts(spot, "w-timeout")) == 1 and ws_api(spot).stats.timeouts == 1
    assert ws_api(spot).connected, "a timeout does not drop the connection"


async def test_answer_after_the_timeout_is_counted_and_dropped(spot: Harness) -> None:
    ws_api(spot).recv_window_ms = 10_000  # still inside recvWindow when the delayed request is checked
    spot.emu.faults.apply({"delay_ms": {"order.place": 8000}})
    send = asyncio.get_running_loop().create_task(spot.venue.submit_order(limit_buy("w-late")))
    await until(lambda: receipts(spot, "w-late"), what="order at the venue")
    await spot.clock.advance_settle(5.0)
    with pytest.raises(UnknownOutcome):
        await send
    await spot.clock.advance_settle(3.0)
    await until(lambda: ws_api(spot).stats.late_answers == 1, what="the late answer")
    assert spot.emu.state()["client_order_ids"] == ["w-late"]


async def test_connection_dropped_after_the_order_is_unknown_outcome_then_reconnects(spot: Harness) -> None:
    spot.emu.faults.apply({"drop_order_responses": 1})
    with pytest.raises(UnknownOutcome):
        await spot.venue.submit_order(limit_buy("w-drop"))
    assert ws_api(spot).stats.connection_lost == 1
    assert await spot.venue.query_order(SPOT_BTC, "w-drop") is not None
    assert len(receipts(spot, "w-drop")) == 1
    await spot.clock.advance_settle(1.0)  # reconnect backoff
    await until(lambda: ws_api(spot).connected, what="reconnected")
    await spot.venue.submit_order(limit_buy("w-after-drop", price="48000.00"))
    assert [r["transport"] for r in receipts(spot, "w-after-drop")] == ["ws_api"]


async def test_5xx_after_execution_on_the_rest_twin_path_is_unknown_outcome(spot: Harness) -> None:
    spot.emu.faults.apply({"errors": [{"path": "/api/v3/order", "method": "POST", "status": 503, "code": -1007,
                                       "execute": True}]})
    with pytest.raises(UnknownOutcome):
        await spot.venue.submit_order(limit_buy("w-503"))
    assert await spot.venue.query_order(SPOT_BTC, "w-503") is not None
    assert spot.emu.state()["client_order_ids"] == ["w-503"]


async def test_order_while_disconnected_goes_by_rest_once(spot: Harness) -> None:
    await spot.emu.close_websockets("ws_api")
    await until(lambda: not ws_api(spot).connected, what="WebSocket API down")
    ack = await spot.venue.submit_order(limit_buy("w-fallback"))
    assert ack.status is OrderStatus.ACCEPTED and spot.venue.ws_api_fallbacks == 1
    assert [r["transport"] for r in receipts(spot, "w-fallback")] == ["rest"]
    assert "order-entry WebSocket API disconnected" in spot.venue.health().detail


async def test_client_raises_not_connected_and_sends_nothing(spot: Harness) -> None:
    await spot.emu.close_websockets("ws_api")
    await until(lambda: not ws_api(spot).connected, what="WebSocket API down")
    with pytest.raises(WsApiNotConnected):
        await ws_api(spot).call("new_order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                              "quantity": "0.001", "newClientOrderId": "w-nc"})
    assert receipts(spot, "w-nc") == []


# ---------------------------------------------------------------- the connection


async def test_connection_costs_weight_and_rotates_before_the_24_h_cut(spot: Harness) -> None:
    assert spot.emu.state()["ws_connects"]["ws_api"] == 1
    await spot.clock.advance_settle(23 * 3600.0)
    await until(lambda: ws_api(spot).ws.stats.rotations == 1 and ws_api(spot).connected, what="rotation")
    assert spot.emu.state()["ws_connects"]["ws_api"] == 2
    assert (await spot.venue.submit_order(limit_buy("w-rotated"))).status is OrderStatus.ACCEPTED


async def test_server_pings_are_answered_and_the_connection_stays(clock: ManualClock, bus: Bus) -> None:
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False)
    await emu.start()
    venue = ws_api_venue(emu, Market.SPOT, bus, clock)
    h = Harness(emu, venue, bus, clock)
    try:
        await started(emu, venue, bus, clock)
        for _ in range(9):  # 3 minutes of 20 s server pings, each answered before the next step
            await clock.advance_settle(20.0)
            await asyncio.sleep(0.01)
        assert emu.state()["ws_connects"]["ws_api"] == 1 and ws_api(h).connected
    finally:
        await h.stop()
        await emu.stop()


async def test_emulator_closes_a_connection_that_does_not_answer_pings(clock: ManualClock) -> None:
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False)
    await emu.start()
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(emu.ws_api_url, autoping=False) as ws:
            await until(lambda: emu.state()["ws_api_connections"] == 1, what="connected")
            await clock.advance_settle(20.0)
            ping = await ws.receive(timeout=5)
            assert ping.type is aiohttp.WSMsgType.PING
            await clock.advance_settle(60.0)
            closed = await ws.receive(timeout=5)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await emu.stop()
