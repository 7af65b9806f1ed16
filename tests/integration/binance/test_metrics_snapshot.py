"""The Binance adapter's scrape-time metrics: websocket reconnects per stream, request weight left."""

from __future__ import annotations

from tests.integration.binance.conftest import Harness, until


async def test_snapshot_counts_a_market_stream_reconnect(spot: Harness) -> None:
    before = spot.venue.metrics_snapshot()
    assert before.ws_reconnects == {"market": 0, "user": 0}
    assert before.ws_connected == {"market": True, "user": True}
    await spot.emu.close_websockets("market")
    await until(lambda: not spot.venue.markets.ws.connected, what="market stream dropped")
    assert spot.venue.metrics_snapshot().ws_connected["market"] is False
    await spot.clock.advance_settle(1.0)  # the reconnect backoff
    await until(lambda: spot.venue.metrics_snapshot().ws_reconnects["market"] == 1, what="reconnect counted")
    after = spot.venue.metrics_snapshot()
    assert after.ws_connected["market"] is True and after.ws_reconnects["user"] == 0


async def test_snapshot_reports_the_weight_used_this_minute_and_none_in_the_next(spot: Harness) -> None:
    snap = spot.venue.metrics_snapshot()
    assert snap.weight_limit_1m == spot.venue.rest.weight_limit_1m > 0
    assert 0 < snap.weight_used_1m == spot.venue.rest.used_weight_1m
    await spot.clock.advance_settle(60.0)  # a new server minute with no request admitted yet
    assert spot.venue.metrics_snapshot().weight_used_1m == 0
