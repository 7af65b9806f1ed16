"""The adapter's venue order id -> client order id cache is bounded (`core.bounded`): after
many orders it holds the newest ids only, and a REST trade of an order it forgot is still
mapped to its client order id (one orderId query)."""

from __future__ import annotations

from decimal import Decimal

from nautilus_hmm.core.bounded import RecentMap
from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.venues.binance.adapter import ORDER_ID_CACHE_KEPT
from tests.integration.binance.conftest import Harness

BTC = InstrumentId("binance_spot", "BTCUSDT")
KEPT = 3
ORDERS = 12


async def test_forgotten_order_ids_are_queried_again_and_memory_stays_bounded(spot: Harness) -> None:
    cache = spot.venue._cid_by_oid
    assert isinstance(cache, RecentMap) and cache.maxlen == ORDER_ID_CACHE_KEPT
    spot.venue._cid_by_oid = RecentMap(KEPT)  # the same map, a bound small enough to pass
    t0 = spot.clock.time_ns() - 10**9
    cids = [f"t-cache-{i}" for i in range(ORDERS)]
    for i, cid in enumerate(cids):
        await spot.venue.submit_order(OrderRequest(cid, BTC, Side.BUY if i % 2 == 0 else Side.SELL,
                                                   OrderType.MARKET, Decimal("0.001")))
    assert len(spot.venue._cid_by_oid) == KEPT
    assert sorted(spot.venue._cid_by_oid.values()) == sorted(cids[-KEPT:])
    before = spot.emu.state()["requests"].get("GET /api/v3/order", 0)
    fills = await spot.venue.fills_since(BTC, t0)
    assert [f.client_order_id for f in fills] == cids  # every trade mapped, forgotten ones too
    queried = spot.emu.state()["requests"].get("GET /api/v3/order", 0) - before
    assert queried >= ORDERS - KEPT  # one query per forgotten order id
    assert len(spot.venue._cid_by_oid) == KEPT
