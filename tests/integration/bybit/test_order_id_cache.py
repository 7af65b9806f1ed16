"""The adapter's venue order id -> client order id cache is bounded (`core.bounded`): after
many orders it holds the newest ids only, and an execution of an order it forgot is still
mapped to its client order id (order/realtime, then order/history, by orderId)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nautilus_hmm.core.bounded import RecentMap
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import Side
from nautilus_hmm.venues.bybit.adapter import ORDER_ID_CACHE_KEPT
from tests.integration.bybit.adapter_harness import (
    LINEAR_BTC,
    Harness,
    make_emulator,
    make_venue,
    market,
)

KEPT = 3
ORDERS = 10


@pytest.fixture
async def linear(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    emu = make_emulator(clock)
    await emu.start()
    h = Harness(emu, make_venue(emu, "linear", bus, clock, leverage=3), bus, clock)
    try:
        await h.start()
        yield h
    finally:
        await h.stop()
        await emu.stop()


async def test_forgotten_order_ids_are_queried_again_and_memory_stays_bounded(linear: Harness) -> None:
    venue = linear.venue
    assert isinstance(venue._cid_by_oid, RecentMap) and venue._cid_by_oid.maxlen == ORDER_ID_CACHE_KEPT
    venue._cid_by_oid = RecentMap(KEPT)  # the same map, a bound small enough to pass
    acks = []
    for i in range(ORDERS):
        acks.append(await venue.submit_order(market(LINEAR_BTC, f"t-cache-{i}",
                                                    side=Side.BUY if i % 2 == 0 else Side.SELL)))
    assert len(venue._cid_by_oid) == KEPT
    assert sorted(venue._cid_by_oid.values()) == [f"t-cache-{i}" for i in range(ORDERS - KEPT, ORDERS)]
    # An execution that names only the orderId of a forgotten order (the cache's use).
    first = acks[0]
    assert (LINEAR_BTC.symbol, first.venue_order_id) not in venue._cid_by_oid
    assert await venue._cid_for(LINEAR_BTC, first.venue_order_id) == "t-cache-0"
    assert len(venue._cid_by_oid) == KEPT
