"""BinanceVenue (spot) against the emulator: orders, user stream, reconnects, books, limits, time."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from nautilus_hmm.core.errors import RateLimited, UnknownOutcome, VenueBanned
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import (
    Bar,
    BookValidityChanged,
    FillReport,
    OrderStatusReport,
    TradeTick,
    UserStreamGap,
)
from tests.integration.binance.conftest import Harness, Recorder, until

BTC = InstrumentId("binance_spot", "BTCUSDT")


def limit_buy(cid: str, price: str = "50000.00", qty: str = "0.01000") -> OrderRequest:
    return OrderRequest(cid, BTC, Side.BUY, OrderType.LIMIT, Decimal(qty), Decimal(price))


async def test_exchange_info_becomes_the_configured_instruments(spot: Harness) -> None:
    inst = spot.venue.instruments()[BTC]
    assert (inst.tick_size, inst.step_size, inst.min_notional) == (Decimal("0.01"), Decimal("0.00001"), Decimal(5))
    assert inst.base_asset == "BTC" and inst.quote_asset == "USDT" and inst.tradable


async def test_limit_order_is_placed_queried_and_cancelled(spot: Harness) -> None:
    ack = await spot.venue.submit_order(limit_buy("t-limit-1"))
    assert ack.status is OrderStatus.ACCEPTED and ack.price == Decimal("50000")
    queried = await spot.venue.query_order(BTC, "t-limit-1")
    assert queried is not None and queried.venue_order_id == ack.venue_order_id
    assert [o.client_order_id for o in await spot.venue.open_orders(BTC)] == ["t-limit-1"]
    canceled = await spot.venue.cancel_order(BTC, "t-limit-1")
    assert canceled.client_order_id == "t-limit-1" and canceled.status is OrderStatus.CANCELED
    assert await spot.venue.open_orders(BTC) == []


async def test_query_of_an_order_the_venue_never_saw_is_none(spot: Harness) -> None:
    assert await spot.venue.query_order(BTC, "never-sent") is None


async def test_market_order_fill_arrives_as_fill_report_from_the_user_stream(spot: Harness) -> None:
    rec = Recorder(spot.bus, FillReport, OrderStatusReport)
    before = spot.venue.user.ws.stats.messages  # type: ignore[union-attr]
    ack = await spot.venue.submit_order(OrderRequest("t-mkt-1", BTC, Side.BUY, OrderType.MARKET, Decimal("0.01")))
    assert ack.status is OrderStatus.FILLED
    filled = await until(lambda: rec.of(OrderStatusReport, venue="binance_spot")
                         and rec.of(OrderStatusReport)[-1].order.status is OrderStatus.FILLED, what="FILLED report")
    assert filled
    assert spot.venue.user.ws.stats.messages > before  # type: ignore[union-attr]
    emu_fill = spot.emu.state()["fills"][0]
    trade_ids = {m.fill.trade_id for m in rec.of(FillReport)}
    assert trade_ids == {emu_fill["trade_id"]}
    fill = rec.of(FillReport)[-1].fill
    assert (fill.client_order_id, fill.qty, fill.side) == ("t-mkt-1", Decimal("0.01"), Side.BUY)


async def test_fills_since_maps_rest_trades_to_client_order_ids(spot: Harness) -> None:
    await spot.venue.submit_order(OrderRequest("t-mkt-2", BTC, Side.BUY, OrderType.MARKET, Decimal("0.002")))
    spot.venue._cid_by_oid.clear()  # forces the orderId → clientOrderId query
    fills = await spot.venue.fills_since(BTC, spot.clock.time_ns() - 10**9)
    assert [f.client_order_id for f in fills] == ["t-mkt-2"]


async def test_listen_key_expiry_recreates_the_key_and_reconnects(spot: Harness) -> None:
    user = spot.venue.user
    assert user is not None
    old_key = user.listen_key
    await spot.emu.expire_listen_key(old_key)
    await until(lambda: user.keys_created == 2, what="new listenKey")
    assert user.listen_key != old_key
    await until(lambda: user.ws.connected and user.ws.stats.connects == 2, what="user stream on the new key")
    await until(lambda: spot.venue.user_stream_gaps >= 2, what="gap reported after the new key")
    assert spot.emu.state()["connections"]["user"] == 1


async def test_keepalive_extends_the_listen_key_every_30_minutes(spot: Harness) -> None:
    user = spot.venue.user
    assert user is not None
    await spot.clock.advance_settle(30 * 60)
    await until(lambda: user.keepalives == 1, what="keepalive")
    assert spot.emu.state()["requests"]["PUT /api/v3/userDataStream"] == 1
    assert user.keys_created == 1


async def test_websocket_drop_reconnects_and_resubscribes(spot: Harness) -> None:
    rec = Recorder(spot.bus, BookValidityChanged, TradeTick)
    markets = spot.venue.markets
    await spot.emu.close_websockets("market")
    await until(lambda: rec.of(BookValidityChanged, valid=False), what="book invalid on drop")
    await spot.clock.advance_settle(1.0)  # the reconnect backoff
    await until(lambda: markets.ws.stats.reconnects == 1 and markets.subscribed, what="resubscribed")
    assert set(spot.emu.state()["subscriptions"]) == set(markets.streams)
    await spot.sync_books()
    await until(lambda: rec.of(TradeTick), what="trades after the reconnect")
    assert rec.of(BookValidityChanged)[-1].valid is True


async def test_depth_gap_invalidates_the_book_then_resync_validates_it(spot: Harness) -> None:
    rec = Recorder(spot.bus, BookValidityChanged)
    markets = spot.venue.markets
    snapshots = markets.snapshots
    spot.emu.faults.apply({"skip_depth_updates": 1})
    await spot.emu.step(2)
    invalid = await until(lambda: rec.of(BookValidityChanged, valid=False), what="gap detected")
    assert "missed updates" in invalid[0].reason
    await until(lambda: markets.snapshots == snapshots + 1, what="resync snapshot")
    await spot.emu.step()
    await until(lambda: rec.of(BookValidityChanged, valid=True), what="book valid again")
    assert markets.books[BTC].is_valid


async def test_429_blocks_every_request_until_retry_after(spot: Harness) -> None:
    spot.emu.faults.apply({"errors": [{"path": "/api/v3/account", "status": 429, "code": -1003,
                                       "retry_after_s": 30}]})
    sent_before = sum(spot.emu.state()["requests"].values())
    with pytest.raises(RateLimited) as first:
        await spot.venue.balances()
    assert first.value.retry_after_s == 30
    with pytest.raises(RateLimited):
        await spot.venue.open_orders(BTC)  # another endpoint: not sent either
    assert sum(spot.emu.state()["requests"].values()) == sent_before + 1
    await spot.clock.advance_settle(31)
    balances = await spot.venue.balances()
    assert balances["USDT"].free > 0
    state = spot.emu.state()
    assert state["bans"] == 0 and state["requests"]["GET /api/v3/account"] == 2


async def test_418_bans_the_venue_until_its_end_time(spot: Harness) -> None:
    spot.emu.faults.apply({"errors": [{"path": "/api/v3/openOrders", "status": 418, "code": -1003,
                                       "retry_after_s": 120}]})
    with pytest.raises(VenueBanned) as banned:
        await spot.venue.open_orders(BTC)
    from nautilus_hmm.venues.binance.rest import BAN_MARGIN_NS

    assert banned.value.until_ns == spot.clock.time_ns() + 120 * 10**9 + BAN_MARGIN_NS
    sent = spot.emu.state()["requests"]["GET /api/v3/openOrders"]
    with pytest.raises(VenueBanned):
        await spot.venue.submit_order(limit_buy("t-banned"))
    assert spot.emu.state()["requests"].get("POST /api/v3/order", 0) == 0
    assert not spot.venue.health().ok and "banned" in spot.venue.health().detail
    await spot.clock.advance_settle(121)
    assert await spot.venue.open_orders(BTC) == []
    assert spot.emu.state()["requests"]["GET /api/v3/openOrders"] == sent + 1


async def test_timestamp_rejection_resyncs_server_time_and_retries_once(spot: Harness) -> None:
    rest = spot.venue.rest
    syncs = rest.stats.time_syncs
    spot.emu.faults.apply({"time_skew_ms": 10_000})
    balances = await spot.venue.balances()
    assert "USDT" in balances
    assert rest.stats.time_syncs == syncs + 1
    assert abs(rest.time_offset_ms - 10_000) <= 5


async def test_timed_out_order_is_unknown_outcome_and_found_by_query_never_resent(spot: Harness) -> None:
    spot.emu.faults.apply({"timeout_order_responses": 1})
    send = asyncio.get_running_loop().create_task(spot.venue.submit_order(limit_buy("t-timeout-1")))
    await until(lambda: spot.emu.state()["client_order_ids"] == ["t-timeout-1"], what="order reached the venue")
    await spot.clock.advance_settle(5.0)  # request_timeout_s
    with pytest.raises(UnknownOutcome):
        await send
    found = await spot.venue.query_order(BTC, "t-timeout-1")
    assert found is not None and found.status is OrderStatus.ACCEPTED
    state = spot.emu.state()
    assert state["client_order_ids"].count("t-timeout-1") == 1
    assert [r["client_order_id"] for r in state["new_order_requests"]] == ["t-timeout-1"]


async def test_dropped_connection_after_an_order_is_unknown_outcome(spot: Harness) -> None:
    spot.emu.faults.apply({"drop_order_responses": 1})
    with pytest.raises(UnknownOutcome):
        await spot.venue.submit_order(limit_buy("t-drop-1"))
    assert await spot.venue.query_order(BTC, "t-drop-1") is not None
    assert spot.emu.state()["client_order_ids"].count("t-drop-1") == 1


async def test_malformed_frame_is_counted_and_skipped_and_the_connection_survives(spot: Harness) -> None:
    rec = Recorder(spot.bus, TradeTick)
    ws = spot.venue.markets.ws
    spot.emu.faults.apply({"malformed_frames": 1})
    await spot.emu.step()
    await until(lambda: rec.of(TradeTick), what="trade after the bad frame")
    assert ws.stats.parse_errors == 1 and ws.stats.connects == 1 and ws.connected


async def test_user_stream_drop_publishes_a_gap_from_the_last_event_minus_the_lookback(spot: Harness) -> None:
    rec = Recorder(spot.bus, FillReport, UserStreamGap)
    await spot.venue.submit_order(limit_buy("t-rest-1", price="70000.00"))  # crosses: fills at once
    await until(lambda: len(rec.of(FillReport)) == 2, what="the answer's fill and the stream's copy")
    user = spot.venue.user
    assert user is not None
    last_event_ns = user.last_event_ns
    await spot.emu.close_websockets("user")
    await until(lambda: not user.ws.connected, what="user stream down")
    await spot.clock.advance_settle(1.0)
    await until(lambda: rec.of(UserStreamGap), what="the gap")
    (gap,) = rec.of(UserStreamGap)
    assert gap.venue == "binance_spot" and "reconnected" in gap.reason
    assert gap.since_ns == last_event_ns - int(spot.venue.options.gap_lookback_s * 1e9)
    assert {m.fill.client_order_id for m in rec.of(FillReport)} == {"t-rest-1"}


async def test_health_is_ok_when_connected_and_synced(spot: Harness) -> None:
    h = spot.venue.health()
    assert h.ok, h.detail
    assert h.info["books_invalid"] == []


async def test_closed_kline_becomes_a_bar(spot: Harness) -> None:
    rec = Recorder(spot.bus, Bar)
    await spot.emu.step()
    await spot.clock.advance_settle(60.0)
    await spot.emu.step()
    bar = (await until(lambda: rec.of(Bar), what="closed kline"))[0]
    assert bar.instrument_id == BTC and bar.interval_s == 60 and bar.high >= bar.low > 0


async def test_duplicated_stream_messages_leave_the_book_valid(spot: Harness) -> None:
    rec = Recorder(spot.bus, BookValidityChanged, TradeTick)
    spot.emu.faults.apply({"duplicate_stream_messages": 10})
    await spot.emu.step(3)
    await until(lambda: len(rec.of(TradeTick)) >= 3, what="trades")
    assert rec.of(BookValidityChanged) == [] and spot.venue.markets.books[BTC].is_valid


async def test_reordered_depth_updates_are_a_gap_and_resync(spot: Harness) -> None:
    rec = Recorder(spot.bus, BookValidityChanged)
    spot.emu.faults.apply({"reorder_stream_messages": 5})
    await spot.emu.step(2)
    await until(lambda: rec.of(BookValidityChanged, valid=False), what="gap from reordering")
    await spot.sync_books()
    assert rec.of(BookValidityChanged)[-1].valid is True


async def test_stale_market_stream_is_reopened(spot: Harness) -> None:
    ws = spot.venue.markets.ws
    spot.emu.faults.apply({"mute_market_streams": True})
    await spot.clock.advance_settle(120.0)
    await until(lambda: ws.stats.stale_drops == 1, what="stale drop")
    spot.emu.faults.apply({"mute_market_streams": False})
    await spot.clock.advance_settle(1.0)
    await until(lambda: ws.stats.reconnects == 1 and spot.venue.markets.subscribed, what="reopened")
    await spot.sync_books()


async def test_5xx_after_execution_is_unknown_outcome_and_the_order_exists(spot: Harness) -> None:
    spot.emu.faults.apply({"errors": [{"path": "/api/v3/order", "method": "POST", "status": 503, "code": -1007,
                                       "execute": True}]})
    with pytest.raises(UnknownOutcome):
        await spot.venue.submit_order(limit_buy("t-503"))
    found = await spot.venue.query_order(BTC, "t-503")
    assert found is not None and spot.emu.state()["client_order_ids"] == ["t-503"]
