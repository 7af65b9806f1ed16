"""BybitVenue against damaged answers from a scripted loopback Bybit REST server.

Instruments come from the real recorded `instruments-info` payload (spot, BTCUSDT); the
damage is then applied to what the adapter trusts: a truncated or shape-broken order
acknowledgement (the order most likely exists: unknown outcome, never resent), a
malformed instruments refresh (instruments kept, the venue keeps running), a cursor that
never ends, an order list with a broken row (a clear ParseError naming the field).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import orjson
import pytest
from aiohttp import web

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import ParseError, RetryableError, UnknownOutcome
from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import InstrumentsUpdated
from nautilus_hmm.venues.bybit.adapter import BybitOptions, BybitVenue
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.config import BybitConfig
from tests.conftest import fixture_path
from tests.integration.bybit.adapter_harness import SPOT_BTC, Recorder
from tests.integration.bybit.loopback_rest import KEY, SECRET, LoopbackBybit, ok

INSTRUMENTS = ("bybit", "docs_v5", "rest_GET_v5_market_instruments-info_spot.json")


def instruments_answer() -> web.Response:
    return web.Response(body=fixture_path(*INSTRUMENTS).read_bytes(), content_type="application/json")


@pytest.fixture
async def server(clock: ManualClock) -> AsyncIterator[LoopbackBybit]:
    srv = LoopbackBybit(clock)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def venue(server: LoopbackBybit, clock: ManualClock, bus: Bus) -> AsyncIterator[BybitVenue]:
    server.on("/v5/market/instruments-info", instruments_answer())
    cfg = BybitConfig(enabled=True, rest_url=server.url, ws_public_url="ws://127.0.0.1:1/v5/public/spot",
                      ws_private_url="ws://127.0.0.1:1/v5/private", symbols=("BTCUSDT",), request_timeout_s=5.0)
    v = BybitVenue(cfg, "spot", bus, clock, credentials=Credentials(KEY, SECRET), options=BybitOptions(streams=False))
    await v.start()
    try:
        yield v
    finally:
        await v.stop()


def limit_buy(cid: str) -> OrderRequest:
    return OrderRequest(cid, SPOT_BTC, Side.BUY, OrderType.LIMIT, Decimal("0.001"), Decimal("50000.0"))


async def test_the_recorded_instruments_payload_becomes_the_instrument(venue: BybitVenue) -> None:
    inst = venue.instruments()[SPOT_BTC]
    assert (inst.tick_size, inst.step_size, inst.min_notional) == (Decimal("0.1"), Decimal("0.000001"), Decimal(5))


@pytest.mark.parametrize("result", [
    {"orderLinkId": "t-d-1"},  # no orderId
    {"orderId": 12345, "orderLinkId": "t-d-1"},  # a number where Bybit sends a string
    [],
])
async def test_an_unreadable_acknowledgement_is_an_unknown_outcome_not_a_resend(
        server: LoopbackBybit, venue: BybitVenue, result: object) -> None:
    server.on("/v5/order/create", ok(result))
    with pytest.raises(UnknownOutcome, match="t-d-1"):
        await venue.submit_order(limit_buy("t-d-1"))
    assert server.count("/v5/order/create") == 1


async def test_a_truncated_acknowledgement_is_an_unknown_outcome(server: LoopbackBybit, venue: BybitVenue) -> None:
    server.on("/v5/order/create", web.Response(body=b'{"retCode":0,"retMsg":"OK","result":{"orderId":"1"'))
    with pytest.raises(UnknownOutcome):
        await venue.submit_order(limit_buy("t-d-2"))


async def test_a_malformed_instruments_refresh_keeps_the_instruments_and_publishes_nothing(
        server: LoopbackBybit, venue: BybitVenue, bus: Bus) -> None:
    rec = Recorder(bus, InstrumentsUpdated)
    before = venue.instruments()
    body = orjson.loads(fixture_path(*INSTRUMENTS).read_bytes())
    body["result"]["list"][0]["priceFilter"]["tickSize"] = "-1"  # a damaged filter: BTCUSDT is skipped
    server.on("/v5/market/instruments-info", web.Response(body=orjson.dumps(body)),
              web.Response(body=b'{"retCode":0,"result":{"category":"spot","list":[{"symbol":'),
              web.Response(body=b'{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":"x"}}'))
    for _ in range(3):
        assert await venue.refresh_instruments() == ()
    assert venue.instruments() == before and rec.messages == []
    assert venue.instrument_refreshes == 0


async def test_the_refresh_loop_survives_a_damaged_answer(server: LoopbackBybit, venue: BybitVenue,
                                                         clock: ManualClock) -> None:
    server.on("/v5/market/instruments-info",
              web.Response(body=b'{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":"x"}}'),
              instruments_answer())
    task = asyncio.ensure_future(venue.run())
    try:
        await clock.advance_settle(venue.options.instruments_refresh_s)
        await _until(lambda: server.count("/v5/market/instruments-info") == 2)
        await clock.advance_settle(venue.options.instruments_refresh_s)
        await _until(lambda: venue.instrument_refreshes == 1)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_order_list_with_a_broken_row_is_a_parse_error_naming_the_field(
        server: LoopbackBybit, venue: BybitVenue) -> None:
    row = {"orderId": "1", "orderLinkId": "t-d-3", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
           "orderStatus": "New", "qty": "not-a-number", "cumExecQty": "0", "price": "50000", "avgPrice": "",
           "createdTime": "1700000000000", "updatedTime": "1700000000000"}
    server.on("/v5/order/realtime", ok({"category": "spot", "list": [row], "nextPageCursor": ""}))
    with pytest.raises(ParseError, match="qty"):
        await venue.query_order(SPOT_BTC, "t-d-3")


async def test_a_cursor_that_never_ends_stops_with_a_retryable_error(server: LoopbackBybit,
                                                                     venue: BybitVenue) -> None:
    from nautilus_hmm.venues.bybit import rest as rest_module

    pages = [ok({"category": "spot", "list": [], "nextPageCursor": f"c{i}"}) for i in range(rest_module.MAX_PAGES)]
    server.on("/v5/order/realtime", *pages)
    with pytest.raises(RetryableError, match="pages"):
        await venue.open_orders(SPOT_BTC)


async def _until(pred: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not pred():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.001)
