"""BybitVenue with its websockets (streams.py) against the emulator: fills from the private stream,
user-stream gaps on (re)connects, books and quotes from the public stream, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, Side
from nautilus_hmm.messages import (
    BookValidityChanged,
    FillReport,
    OrderStatusReport,
    QuoteTick,
    UserStreamGap,
)
from tests.integration.bybit.adapter_harness import (
    LINEAR_BTC,
    SPOT_BTC,
    Harness,
    Recorder,
    limit_buy,
    make_emulator,
    make_venue,
    market,
    until,
)


async def started(clock: ManualClock, bus: Bus, category: str) -> Harness:
    emu = make_emulator(clock)
    await emu.start()
    h = Harness(emu, make_venue(emu, category, bus, clock, streams=True), bus, clock)
    await h.start()
    venue = h.venue
    await until(lambda: venue.public.subscribed and venue.private.subscribed, what="both streams subscribed")
    await until(lambda: venue.user_stream_gaps >= 1, what="first private connect reported")
    return h


@pytest.fixture
async def spot(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    h = await started(clock, bus, "spot")
    try:
        yield h
    finally:
        await h.stop()
        await h.emu.stop()


@pytest.fixture
async def linear(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    h = await started(clock, bus, "linear")
    try:
        yield h
    finally:
        await h.stop()
        await h.emu.stop()


async def test_the_first_private_connect_is_a_gap_from_the_start(spot: Harness) -> None:
    rec = Recorder(spot.bus, UserStreamGap)
    assert spot.venue.user_stream_gaps == 1
    await spot.emu.close_websockets("private")
    await until(lambda: not spot.venue.private.ws.connected, what="private stream down")
    await spot.clock.advance_settle(1.0)  # the reconnect backoff
    await until(lambda: rec.of(UserStreamGap, venue="bybit_spot"), what="gap after the reconnect")
    gap = rec.of(UserStreamGap)[0]
    assert gap.reason == "private stream reconnected" and gap.since_ns <= spot.clock.time_ns()
    assert spot.venue.user_stream_gaps == 2


async def test_a_market_fill_arrives_as_one_fill_report_with_the_venues_exec_id(linear: Harness) -> None:
    rec = Recorder(linear.bus, FillReport, OrderStatusReport)
    await linear.venue.submit_order(market(LINEAR_BTC, "t-s-1"))
    await until(lambda: rec.of(FillReport), what="fill from the private stream")
    await until(lambda: any(m.order.status is OrderStatus.FILLED for m in rec.of(OrderStatusReport)),
                what="FILLED report")
    [exec_row] = [e for e in linear.emu.state()["executions"] if e["exec_type"] == "Trade"]
    [report] = rec.of(FillReport)
    fill = report.fill
    assert (fill.trade_id, fill.client_order_id, fill.qty, fill.side) == (
        exec_row["exec_id"], "t-s-1", Decimal("0.010"), Side.BUY)
    assert report.venue == "bybit_linear"


async def test_funding_is_not_a_fill(linear: Harness) -> None:
    rec = Recorder(linear.bus, FillReport)
    await linear.venue.submit_order(market(LINEAR_BTC, "t-s-fund"))
    await until(lambda: len(rec.of(FillReport)) == 1, what="the trade's fill")
    before = linear.venue.private.ws.stats.messages
    await linear.emu.settle_funding("BTCUSDT")
    await until(lambda: linear.venue.private.ws.stats.messages > before, what="funding frames received")
    assert len(rec.of(FillReport)) == 1


async def test_a_resting_order_and_its_cancel_arrive_as_order_reports(spot: Harness) -> None:
    rec = Recorder(spot.bus, OrderStatusReport)
    await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-s-rest"))
    await until(lambda: [m for m in rec.of(OrderStatusReport) if m.order.client_order_id == "t-s-rest"],
                what="ACCEPTED report")
    await spot.venue.cancel_order(SPOT_BTC, "t-s-rest")
    await until(lambda: rec.of(OrderStatusReport)[-1].order.status is OrderStatus.CANCELED, what="CANCELED report")
    assert {m.order.status for m in rec.of(OrderStatusReport)} == {OrderStatus.ACCEPTED, OrderStatus.CANCELED}


async def test_books_become_valid_and_quotes_flow(spot: Harness) -> None:
    rec = Recorder(spot.bus, BookValidityChanged, QuoteTick)
    for _ in range(20):
        if spot.venue.public.book_published.get(SPOT_BTC) is True and rec.of(QuoteTick):
            break
        await spot.emu.step()
        await spot.clock.settle(20)
    assert spot.venue.public.book_published.get(SPOT_BTC) is True
    assert rec.of(QuoteTick) and rec.of(QuoteTick)[-1].instrument_id == SPOT_BTC


async def test_health_and_metrics_name_the_streams(spot: Harness) -> None:
    health = spot.venue.health()
    assert health.ok, health.detail
    snap = spot.venue.metrics_snapshot()
    assert snap.ws_connected == {"market": True, "user": True}
    await spot.emu.close_websockets("private")
    await until(lambda: not spot.venue.private.ws.connected, what="private stream down")
    assert "private stream disconnected" in spot.venue.health().detail
    await spot.clock.advance_settle(1.0)  # the reconnect backoff
    await until(lambda: spot.venue.private.subscribed, what="private stream back")
    assert spot.venue.metrics_snapshot().ws_reconnects["user"] == 1
