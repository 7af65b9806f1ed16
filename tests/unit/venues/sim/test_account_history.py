"""The saved paper account keeps its open orders and the newest closed orders and fills
(`venues.sim.account.HISTORY_KEPT`): many orders leave a bounded account in memory and on
disk, recent orders still answer queries and fills reads across a restart, and a resting
order older than all of them is never forgotten."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.venues.sim import account as account_mod
from nautilus_hmm.venues.sim.account import ACCOUNT_FILE
from tests.unit.venues.sim.test_venue import IID, T0, S, bar, make_venue, req

KEPT = 6
ORDERS = 60  # >> KEPT


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ns=T0 + 60 * S)


@pytest.fixture(autouse=True)
def small_history(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_mod, "HISTORY_KEPT", KEPT)


def trade(venue, clock: ManualClock, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    cids = []
    for i in range(n):
        cid = f"m{i}"
        venue.submit_order_nowait(req(cid, Side.BUY if i % 2 == 0 else Side.SELL, "1"))
        clock.set_time_ns(T0 + (i + 2) * 60 * S)
        venue.step_bar(bar(i + 1, 100, 101, 99, 100))  # fills the market order
        cids.append(cid)
    return cids


async def test_history_stays_bounded_and_recent_orders_still_answer(bus: Bus, clock: ManualClock,
                                                                    tmp_path: Path) -> None:
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    resting = "resting-1"  # placed first, never fills: older than every kept order
    venue.submit_order_nowait(req(resting, Side.BUY, "1", OrderType.LIMIT, "50.00"))
    cids = trade(venue, clock, ORDERS)
    acct = venue._acct()
    assert len(acct.orders) == KEPT + 1 and resting in acct.orders
    assert len(acct.fills) == KEPT
    doc = orjson.loads((tmp_path / ACCOUNT_FILE).read_bytes())
    assert len(doc["orders"]) == KEPT + 1 and len(doc["fills"]) == KEPT
    assert (await venue.query_order(IID, cids[-1])).status is OrderStatus.FILLED
    assert await venue.query_order(IID, cids[0]) is None  # forgotten, like a venue's retention
    since_ns = acct.fills[-2].ts_ns
    await venue.stop()

    again = make_venue(Bus(), clock, tmp_path)
    assert [o.client_order_id for o in await again.open_orders()] == [resting]
    recent = await again.fills_since(IID, since_ns)
    assert [f.client_order_id for f in recent] == cids[-2:]
    assert (await again.query_order(IID, cids[-KEPT + 1])).status is OrderStatus.FILLED
    # The books still balance after the trims: 30 buys and 30 sells of 1, the resting buy's lock.
    bal = await again.balances()
    assert bal["BTC"].total == D(0)
    assert bal["USDT"].locked > 0


def test_an_account_never_saved_keeps_all_its_history(bus: Bus, clock: ManualClock) -> None:
    venue = make_venue(bus, clock, None, persist=False)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    trade(venue, clock, ORDERS)
    acct = venue._acct()
    assert len(acct.orders) == ORDERS and len(acct.fills) == ORDERS
