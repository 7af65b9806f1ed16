"""User-stream gaps: the venue publishes `UserStreamGap` and the reconciler re-reads that venue
once (orders and fills since the gap). A gap reported before a pass reads the venue is
covered by that pass, the start-up pass included; gaps waiting together are one pass; a
pass whose reads failed keeps the gap waiting. Real bus, journal and sim venue; manual clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import VenueError
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.execution.reconcile import GAP_PASS_SPACING_S, Reconciler
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import ReconciliationCompleted, UserStreamGap
from nautilus_hmm.venues.sim.venue import SimVenue

BTC = InstrumentId("sim", "BTCUSDT")
CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
}


class CountingVenue(SimVenue):
    """The sim venue, counting the reads reconciliation makes; `fail_fills` makes fills_since fail."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.reads: Counter[str] = Counter()
        self.fills_since_args: list[int] = []
        self.fail_fills = 0
        self.on_open_orders: Any = None

    async def fills_since(self, instrument_id: Any, since_ts_ns: int) -> Any:
        self.reads["fills_since"] += 1
        self.fills_since_args.append(since_ts_ns)
        if self.fail_fills:
            self.fail_fills -= 1
            raise VenueError(self.name, "service unavailable")
        return await super().fills_since(instrument_id, since_ts_ns)

    async def open_orders(self, instrument_id: Any = None) -> Any:
        self.reads["open_orders"] += 1
        if self.on_open_orders is not None:
            self.on_open_orders()
        return await super().open_orders(instrument_id)

    async def balances(self) -> Any:
        self.reads["balances"] += 1
        return await super().balances()


class Node:
    def __init__(self, tmp_path: Path) -> None:
        self.cfg = parse(Config, CFG)
        self.clock, self.bus = ManualClock(), Bus()
        self.journal = Journal.open(tmp_path / "journal.sqlite3")
        self.venue = CountingVenue(self.cfg.venues.sim, self.bus, self.clock, tmp_path)
        self.st: TradingStack = build_stack(self.cfg, self.bus, self.clock, self.journal, {"sim": self.venue},
                                            durable=True)
        assert self.st.reconciler is not None
        self.rec: Reconciler = self.st.reconciler
        self.completed: list[ReconciliationCompleted] = []
        self.bus.subscribe(ReconciliationCompleted, self.completed.append)
        self.consumer: asyncio.Task[None] | None = None

    def gap(self, since_ns: int = 0, reason: str = "user stream reconnected") -> None:
        now = self.clock.time_ns()
        self.bus.publish(UserStreamGap(ts_event_ns=now, ts_init_ns=now, venue="sim", since_ns=since_ns,
                                       reason=reason))

    async def start(self) -> None:
        await self.venue.start()
        await self.st.engine.start()
        self.consumer = asyncio.create_task(self.st.engine.run())
        self.st.engine.add_instruments(self.venue.instruments().values())
        await self.rec.recover_from_journal()  # a fresh journal reads the baseline balances
        self.st.attach_market()
        self.venue.reads.clear()

    async def reconcile_startup(self) -> None:
        assert await self.rec.reconcile_startup()
        self.venue.reads.clear()
        self.completed.clear()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    await n.start()
    yield n
    if n.consumer is not None:
        n.consumer.cancel()
    await n.journal.aclose()


async def test_one_gap_is_one_read_of_each_kind(node: Node) -> None:
    await node.reconcile_startup()
    node.gap()
    results = await node.rec.reconcile_gaps()
    assert [r.venue for r in results] == ["sim"]
    assert node.venue.reads == {"fills_since": 1, "open_orders": 1, "balances": 1}
    assert len(node.completed) == 1
    assert await node.rec.reconcile_gaps() == []  # covered: nothing waits
    assert node.venue.reads == {"fills_since": 1, "open_orders": 1, "balances": 1}


async def test_gaps_waiting_together_are_one_pass_from_the_earlier_start(node: Node) -> None:
    await node.reconcile_startup()
    node.clock.advance(100)
    late, early = node.clock.time_ns() - 10**9, node.clock.time_ns() - 5 * 10**9
    node.gap(late, "user stream reconnected")
    node.gap(early, "new listenKey")
    with capture_logs() as logs:
        await node.rec.reconcile_gaps()
    assert node.venue.reads["fills_since"] == 1 and node.rec.gap_passes == 1
    (line,) = [e for e in logs if e["event"] == "user_stream_gap_reconcile"]
    assert line["since_ns"] == early and line["reason"] == "user stream reconnected; new listenKey"


async def test_a_gap_reported_before_the_start_up_pass_is_covered_by_it(node: Node) -> None:
    node.gap(reason="user stream connected")
    assert await node.rec.reconcile_startup()
    assert node.venue.reads == {"fills_since": 1, "open_orders": 1, "balances": 1}
    assert await node.rec.reconcile_gaps() == []


async def test_a_gap_reported_while_the_start_up_pass_reads_gets_one_pass_after_it(node: Node) -> None:
    node.venue.on_open_orders = lambda: node.gap(reason="user stream connected")  # after its fills read
    assert await node.rec.reconcile_startup()
    node.venue.on_open_orders = None
    assert len(node.completed) == 1  # the start-up pass reported once, alone
    node.venue.reads.clear()
    (result,) = await node.rec.reconcile_gaps()
    assert result.ok and node.venue.reads == {"fills_since": 1, "open_orders": 1, "balances": 1}
    assert await node.rec.reconcile_gaps() == []


async def test_a_gap_pass_whose_fills_read_failed_keeps_the_gap_waiting(node: Node) -> None:
    await node.reconcile_startup()
    node.venue.fail_fills = 1
    node.gap()
    (failed,) = await node.rec.reconcile_gaps()
    assert any("fills_since failed" in d for d in failed.discrepancies)
    (retried,) = await node.rec.reconcile_gaps()
    assert retried.ok


async def test_a_gap_pass_reads_fills_from_the_gaps_start_when_it_is_older_than_the_cursor(node: Node) -> None:
    await node.reconcile_startup()
    node.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    node.clock.advance(100)  # well after the journal's baseline
    node.venue.step_trade(BTC, 60000.0, 5.0, node.clock.time_ns())
    assert node.st.engine.plan("a", BTC, Decimal("0.1"), "test") is not None
    await node.st.engine.idle()
    node.clock.advance(1)
    node.venue.step_trade(BTC, 60010.0, 5.0, node.clock.time_ns())  # fills it: the cursor moves here
    for _ in range(3):
        await node.st.engine.idle()
        await node.journal.flush()
    assert node.st.portfolio.position_qty(BTC) == Decimal("0.1")
    await node.rec.reconcile_now()
    (fill,) = await SimVenue.fills_since(node.venue, BTC, 0)
    cursor = fill.ts_ns  # the journal's newest fill
    # The stream may have missed a fill older than the newest one booked: read from the gap's start.
    node.gap(since_ns=cursor - 5 * 10**9)
    await node.rec.reconcile_gaps()
    assert node.venue.fills_since_args[-1] == cursor - 5 * 10**9
    # A gap younger than the cursor reads from the cursor.
    node.gap(since_ns=cursor + 10**9)
    await node.rec.reconcile_gaps()
    assert node.venue.fills_since_args[-1] == cursor


async def test_the_gap_worker_runs_a_pass_per_gap_at_most_every_spacing(node: Node) -> None:
    await node.reconcile_startup()
    worker = asyncio.create_task(node.rec.run())
    try:
        node.gap()
        await _until(lambda: node.rec.gap_passes == 1)
        node.gap()  # within the spacing: waits
        for _ in range(20):
            await asyncio.sleep(0)
        assert node.rec.gap_passes == 1
        await node.clock.advance_settle(GAP_PASS_SPACING_S)
        await _until(lambda: node.rec.gap_passes == 2)
    finally:
        worker.cancel()


async def _until(pred: Any) -> None:
    """Let the loop run (no wall-clock time passes: the fake venue answers at once)."""
    for _ in range(2000):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")
