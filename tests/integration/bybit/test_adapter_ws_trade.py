"""BybitVenue with order_entry = "ws_trade" against the emulator's /v5/trade: orders over the trade
WebSocket, the REST fallback when it is down, unknown outcomes (query, never resend), auth and limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import AuthError, RateLimited, UnknownOutcome
from nautilus_hmm.domain.enums import OrderStatus
from nautilus_hmm.venues.bybit.adapter import BybitOptions, BybitVenue
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.config import BybitConfig
from nautilus_hmm.venues.ws import WsSettings
from tests.integration.bybit.adapter_harness import (
    API_KEY,
    LINEAR_BTC,
    SPOT_BTC,
    Harness,
    limit_buy,
    make_emulator,
    make_venue,
    market,
    until,
)


@pytest.fixture
async def spot(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    emu = make_emulator(clock)
    await emu.start()
    h = Harness(emu, make_venue(emu, "spot", bus, clock, order_entry="ws_trade"), bus, clock)
    try:
        await h.start()
        yield h
    finally:
        await h.stop()
        await emu.stop()


@pytest.fixture
async def linear(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    emu = make_emulator(clock)
    await emu.start()
    h = Harness(emu, make_venue(emu, "linear", bus, clock, order_entry="ws_trade"), bus, clock)
    try:
        await h.start()
        yield h
    finally:
        await h.stop()
        await emu.stop()


def ws_creates(h: Harness) -> int:
    return h.emu.state()["requests"].get("WS order.create", 0)


def rest_creates(h: Harness) -> int:
    return h.emu.state()["requests"].get("POST /v5/order/create", 0)


async def test_orders_and_cancels_go_over_the_trade_websocket(spot: Harness) -> None:
    ack = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-ws-1"))
    assert ack.status is OrderStatus.ACCEPTED and ack.venue_order_id
    assert (ws_creates(spot), rest_creates(spot)) == (1, 0)
    [receipt] = spot.emu.new_order_requests
    assert receipt["transport"] != "rest" and receipt["order_link_id"] == "t-ws-1"
    canceled = await spot.venue.cancel_order(SPOT_BTC, "t-ws-1")
    assert canceled.status is OrderStatus.CANCELED
    assert spot.emu.state()["requests"].get("WS order.cancel", 0) == 1
    assert spot.emu.state()["requests"].get("POST /v5/order/cancel", 0) == 0
    assert spot.venue.ws_trade is not None and spot.venue.ws_trade.stats.answers == 2


async def test_linear_market_order_over_the_trade_websocket_moves_the_position(linear: Harness) -> None:
    await linear.venue.submit_order(market(LINEAR_BTC, "t-ws-lin-1"))
    assert ws_creates(linear) == 1
    assert await linear.venue.positions() == {LINEAR_BTC: market(LINEAR_BTC, "x").quantity}


async def test_an_order_while_the_trade_websocket_is_down_goes_by_rest_once(spot: Harness) -> None:
    ws_trade = spot.venue.ws_trade
    assert ws_trade is not None
    await spot.emu.close_websockets("trade")
    await until(lambda: not ws_trade.connected, what="trade WebSocket down")
    ack = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-fb-1"))
    assert ack.status is OrderStatus.ACCEPTED
    assert (ws_creates(spot), rest_creates(spot), spot.venue.ws_trade_fallbacks) == (0, 1, 1)
    assert "trade WebSocket disconnected" in spot.venue.health().detail
    await spot.clock.advance_settle(1.0)  # the reconnect backoff
    await until(lambda: ws_trade.connected, what="trade WebSocket back and authenticated")
    await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-fb-2"))
    assert ws_creates(spot) == 1 and spot.orders_at_venue() == ["t-fb-1", "t-fb-2"]


async def test_a_withheld_websocket_answer_is_an_unknown_outcome_never_resent(
        spot: Harness, clock: ManualClock) -> None:
    await spot.emu.set_faults({"withhold_order_responses": 1})
    task = asyncio.ensure_future(spot.venue.submit_order(limit_buy(SPOT_BTC, "t-ws-wh-1")))
    await until(lambda: spot.creates_sent("t-ws-wh-1") == 1, what="create reached the venue")
    await clock.advance_settle(5.0)
    with pytest.raises(UnknownOutcome):
        await asyncio.wait_for(task, 5)
    vo = await spot.venue.query_order(SPOT_BTC, "t-ws-wh-1")
    assert vo is not None and vo.status is OrderStatus.ACCEPTED
    assert spot.creates_sent("t-ws-wh-1") == 1 and rest_creates(spot) == 0


async def test_a_connection_cut_after_execution_is_an_unknown_outcome_not_a_fallback(linear: Harness) -> None:
    await linear.emu.set_faults({"drop_order_responses": 1})
    with pytest.raises(UnknownOutcome):
        await linear.venue.submit_order(market(LINEAR_BTC, "t-ws-drop-1"))
    assert linear.creates_sent("t-ws-drop-1") == 1 and rest_creates(linear) == 0
    assert linear.venue.ws_trade_fallbacks == 0
    vo = await linear.venue.query_order(LINEAR_BTC, "t-ws-drop-1")
    assert vo is not None and vo.status is OrderStatus.FILLED


async def test_duplicate_order_link_id_over_the_websocket_returns_the_existing_order(spot: Harness) -> None:
    first = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-ws-dup-1"))
    again = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-ws-dup-1"))
    assert again.venue_order_id == first.venue_order_id and spot.orders_at_venue() == ["t-ws-dup-1"]


async def test_rate_limit_over_the_websocket_is_rate_limited(spot: Harness) -> None:
    await spot.emu.set_faults({"rate_limit": {"path": "/v5/order/create", "count": 1, "reset_ms": 5000}})
    with pytest.raises(RateLimited):
        await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-ws-rl-1"))
    assert spot.orders_at_venue() == []


async def test_a_skewed_clock_over_the_websocket_resyncs_and_retries_once(spot: Harness) -> None:
    await spot.emu.set_faults({"time_skew_ms": 30_000})
    ack = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-ws-skew-1"))
    assert ack.status is OrderStatus.ACCEPTED and ws_creates(spot) == 2
    assert spot.orders_at_venue() == ["t-ws-skew-1"]


async def test_the_heartbeat_pings_on_the_clock(spot: Harness) -> None:
    ws_trade = spot.venue.ws_trade
    assert ws_trade is not None
    await spot.clock.advance_settle(20.0)
    await until(lambda: ws_trade.stats.pings == 1, what="op ping sent")
    assert ws_trade.connected


async def test_a_refused_auth_halts_the_venue_and_says_why(clock: ManualClock, bus: Bus) -> None:
    emu = make_emulator(clock)
    await emu.start()
    config = BybitConfig(enabled=True, rest_url=emu.url, ws_public_url=f"{emu.ws_public_url}/spot",
                         ws_private_url=emu.ws_private_url, ws_trade_url=emu.ws_trade_url, symbols=("BTCUSDT",),
                         order_entry="ws_trade")
    ws = WsSettings(ping_interval_s=300.0, dead_after_s=600.0, jitter=0.0)
    venue = BybitVenue(config, "spot", bus, clock, credentials=Credentials(API_KEY, "wrong-secret-0123456789"),
                       options=BybitOptions(streams=False, trade_ws=ws))
    h = Harness(emu, venue, bus, clock)
    try:
        await venue.start()  # public reads only: the wrong secret is not seen yet
        h.task = asyncio.ensure_future(venue.run())
        ws_trade = venue.ws_trade
        assert ws_trade is not None
        await until(lambda: ws_trade.stats.auth_failures >= 1, what="auth refused")
        assert "retCode 10004" in venue.rest.halted_reason
        assert "halted" in venue.health().detail
        with pytest.raises(AuthError, match="halted"):
            await venue.submit_order(limit_buy(SPOT_BTC, "t-auth-1"))
        assert h.creates_sent("t-auth-1") == 0
    finally:
        await h.stop()
        await emu.stop()
