"""The real reconciler (`execution.reconcile`) over BybitVenue and the emulator, spot and linear.

The adapter runs without its websockets here (REST only), so a fill the engine has not
seen can only come back through reconciliation: `execution/list` read from the journal's
cursor, booked once, positions (linear) and balances (spot) checked against the venue.
Real bus, journal, engine and risk gate; one manual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, Side, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.execution.reconcile import Reconciler
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import UserStreamGap
from nautilus_hmm.venues.bybit.adapter import BybitVenue
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator
from tests.integration.bybit.adapter_harness import make_emulator, make_venue, market


def node_config(venue: str) -> dict[str, Any]:
    return {
        "strategy": {"kind": "sma_cross", "instruments": [f"{venue}:BTCUSDT"], "bar_interval_s": 60},
        "venues": {"sim": {"enabled": False}, venue: {"enabled": True, "symbols": ["BTCUSDT"]}},
    }


class Node:
    """Engine + reconciler + journal over one Bybit venue against the emulator."""

    def __init__(self, tmp_path: Path, emu: BybitEmulator, category: str, clock: ManualClock) -> None:
        self.iid = InstrumentId(f"bybit_{category}", "BTCUSDT")
        self.cfg = parse(Config, node_config(self.iid.venue))
        self.clock, self.bus = clock, Bus()
        self.emu = emu
        self.journal = Journal.open(tmp_path / "journal.sqlite3")
        self.venue: BybitVenue = make_venue(emu, category, self.bus, clock)
        self.st: TradingStack = build_stack(self.cfg, self.bus, clock, self.journal, {self.venue.name: self.venue},
                                            durable=True)
        assert self.st.reconciler is not None
        self.rec: Reconciler = self.st.reconciler
        self.consumer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.venue.start()
        await self.st.engine.start()
        self.consumer = asyncio.create_task(self.st.engine.run())
        self.st.engine.add_instruments(self.venue.instruments().values())
        self.st.attach_market()
        assert await self.rec.startup()
        self.st.gate.set_state(TradingState.ACTIVE, "test", "test")

    async def settle(self) -> None:
        for _ in range(3):
            await self.st.engine.idle()
            await self.journal.flush()

    async def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.cancel()
        await self.venue.stop()
        await self.journal.aclose()


@pytest.fixture(params=["spot", "linear"])
async def node(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Node]:
    emu = make_emulator(clock)
    await emu.start()
    n = Node(tmp_path, emu, request.param, clock)
    try:
        await n.start()
        yield n
    finally:
        await n.stop()
        await emu.stop()


async def place_through_engine(node: Node, qty: str) -> str:
    """A market order planned by the engine (journaled, orderLinkId = its client id); returns the id."""
    px = float(node.emu.exchange.quotes[(node.venue.category.value, "BTCUSDT")][2])
    node.st.marks.update(node.iid, px, node.clock.time_ns())
    order = node.st.engine.plan("sma_cross", node.iid, Decimal(qty), "test")
    assert order is not None
    await node.settle()
    return order.client_order_id


async def test_startup_reconciliation_against_the_emulator_passes_on_a_fresh_journal(node: Node) -> None:
    (result,) = await node.rec.reconcile_now()
    assert result.ok and result.discrepancies == [] and not result.reads_failed


async def test_a_fill_the_engine_never_saw_is_recovered_once_and_the_books_agree(node: Node) -> None:
    node.clock.advance(5.0)
    cid = await place_through_engine(node, "0.010")
    order = node.st.engine.orders[cid]
    assert order.status is OrderStatus.ACCEPTED  # the ack; no stream: the fill is not known here
    [venue_order] = [o for o in node.emu.state()["orders"] if o["order_link_id"] == cid]
    assert venue_order["status"] == "Filled"
    (first,) = await node.rec.reconcile_now()
    await node.settle()
    assert first.recovered_fills == 1, first.discrepancies
    assert node.st.portfolio.position_qty(node.iid) == Decimal("0.010")
    assert node.st.engine.orders[cid].status is OrderStatus.FILLED
    (second,) = await node.rec.reconcile_now()
    assert second.ok and second.recovered_fills == 0, second.discrepancies
    [fill] = await node.venue.fills_since(node.iid, node.clock.time_ns() - 3600 * 10**9)
    assert fill.fee > 0 and fill.fee_asset == "USDT"  # the fee is booked in the coin it was charged in
    if node.venue.category.value == "linear":
        assert await node.venue.positions() == {node.iid: Decimal("0.010")}


async def test_a_user_stream_gap_is_one_pass_over_the_venue(node: Node) -> None:
    node.clock.advance(5.0)
    await place_through_engine(node, "0.010")
    now = node.clock.time_ns()
    node.bus.publish(UserStreamGap(ts_event_ns=now, ts_init_ns=now, venue=node.venue.name,
                                   since_ns=now - 60 * 10**9, reason="private stream reconnected"))
    (result,) = await node.rec.reconcile_gaps()
    await node.settle()
    assert result.venue == node.venue.name and result.recovered_fills == 1
    assert node.st.portfolio.position_qty(node.iid) == Decimal("0.010")


async def test_a_fill_of_an_order_placed_elsewhere_is_booked_once_and_the_position_agrees(node: Node) -> None:
    if node.venue.category.value != "linear":
        pytest.skip("positions are a linear check (spot: balances, checked above)")
    await node.venue.submit_order(market(node.iid, "foreign-1", side=Side.BUY))  # not journaled, not ours
    (first,) = await node.rec.reconcile_now()
    await node.settle()
    assert first.recovered_fills == 1 and first.ok, first
    assert node.st.portfolio.position_qty(node.iid) == Decimal("0.010") == (await node.venue.positions())[node.iid]
    (second,) = await node.rec.reconcile_now()
    assert second.ok and second.recovered_fills == 0, second
