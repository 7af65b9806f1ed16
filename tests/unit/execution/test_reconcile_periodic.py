"""Periodic reconciliation over several venues: each venue's findings, health and fill read
point are its own; a quiet stretch costs one fills window per pass. Real bus, journal and sim
venue (plus a quiet second venue); manual clock."""

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
from nautilus_hmm.core.errors import ParseError, VenueError
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.execution.reconcile import FILL_READ_OVERLAP_S, Reconciler
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.venues.sim.venue import SimVenue

CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
}
NS_PER_S = 10**9
TRADES_WINDOW_NS = 24 * 3600 * NS_PER_S  # Binance myTrades: at most 24 h per request


class WindowCountingVenue(SimVenue):
    """The sim venue, counting fill queries as Binance pages them: one per started 24 h window."""

    def __init__(self, cfg: Any, bus: Bus, clock: ManualClock, state_dir: Path) -> None:
        super().__init__(cfg, bus, clock, state_dir)
        self.now = clock
        self.fill_queries = 0
        self.fills_since_args: list[int] = []
        self.fail_balances = 0  # the next n balance reads fail

    async def fills_since(self, instrument_id: Any, since_ts_ns: int) -> Any:
        self.fills_since_args.append(since_ts_ns)
        span_ns = max(0, self.now.time_ns() - since_ts_ns)
        self.fill_queries += max(1, -(-span_ns // TRADES_WINDOW_NS))
        return await super().fills_since(instrument_id, since_ts_ns)

    async def balances(self) -> Any:
        if self.fail_balances:
            self.fail_balances -= 1
            raise VenueError(self.name, "service unavailable")
        return await super().balances()


class QuietVenue:
    """A second venue with no instruments and an empty account; `fail` makes its reads fail."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fail = False
        self.malformed = False  # its payloads cannot be parsed

    async def _read(self, value: Any) -> Any:
        if self.fail:
            raise VenueError(self.name, "service unavailable")
        if self.malformed:
            raise ParseError("account: missing field 'balances'")
        return value

    async def fills_since(self, instrument_id: Any, since_ts_ns: int) -> Any:
        return await self._read([])

    async def open_orders(self, instrument_id: Any = None) -> Any:
        return await self._read([])

    async def query_order(self, instrument_id: Any, client_order_id: str) -> Any:
        return await self._read(None)

    async def balances(self) -> Any:
        return await self._read({})

    async def positions(self) -> Any:
        return await self._read({})


def drift_usdt(node: Node, amount: Decimal) -> None:
    """Our books of sim's USDT drift from what sim holds."""
    pf = node.st.portfolio
    pf.set_cash("USDT", pf.cash_at("sim", "USDT") + amount, "sim")


class Node:
    def __init__(self, tmp_path: Path) -> None:
        self.cfg = parse(Config, CFG)
        self.clock, self.bus = ManualClock(), Bus()
        self.journal = Journal.open(tmp_path / "journal.sqlite3")
        self.venue = WindowCountingVenue(self.cfg.venues.sim, self.bus, self.clock, tmp_path)
        self.st: TradingStack = build_stack(self.cfg, self.bus, self.clock, self.journal, {"sim": self.venue},
                                            durable=True)
        assert self.st.reconciler is not None
        self.rec: Reconciler = self.st.reconciler
        self.other = QuietVenue("other")
        self.consumer: asyncio.Task[None] | None = None

    async def start(self, *, with_other: bool, other_first: bool = False) -> None:
        if with_other:  # "other" is reconciled after "sim" (or before it)
            both = {"other": self.other, **self.rec.venues} if other_first else {**self.rec.venues, "other": self.other}
            self.rec.venues = both  # type: ignore[assignment]
        await self.venue.start()
        await self.st.engine.start()
        self.consumer = asyncio.create_task(self.st.engine.run())
        self.st.engine.add_instruments(self.venue.instruments().values())
        self.st.attach_market()
        assert await self.rec.startup()
        self.st.gate.set_state(TradingState.ACTIVE, "test", "test")
        self.venue.fill_queries = 0


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    yield n
    if n.consumer is not None:
        n.consumer.cancel()
    await n.journal.aclose()


async def test_a_finding_seen_twice_on_one_venue_halts_although_another_venue_agrees(node: Node) -> None:
    await node.start(with_other=True)
    drift_usdt(node, Decimal(1))  # our books drift from sim's
    await node.rec.reconcile_now(periodic=True)
    assert node.st.gate.state is TradingState.ACTIVE  # once: maybe a fill in flight
    await node.rec.reconcile_now(periodic=True)
    assert node.st.gate.state is TradingState.HALTED
    assert "USDT" in node.st.gate.state_reason


async def test_a_read_failure_on_another_venue_does_not_reset_the_count_of_a_finding(node: Node) -> None:
    await node.start(with_other=True)
    drift_usdt(node, Decimal(1))
    node.other.fail = True
    await node.rec.reconcile_now(periodic=True)
    node.other.fail = False
    await node.rec.reconcile_now(periodic=True)
    assert node.st.gate.state is TradingState.HALTED
    assert "USDT" in node.st.gate.state_reason


async def test_a_venue_whose_payload_cannot_be_parsed_does_not_stop_the_others_being_checked(node: Node) -> None:
    await node.start(with_other=True, other_first=True)
    node.other.malformed = True
    drift_usdt(node, Decimal(1))
    (other, sim) = await node.rec.reconcile_now(periodic=True)
    assert any("open_orders failed" in d and "missing field" in d for d in other.discrepancies)
    assert not sim.ok
    await node.rec.reconcile_now(periodic=True)
    assert node.st.gate.state is TradingState.HALTED


async def test_a_finding_is_not_forgotten_by_a_pass_that_could_not_recheck_it(node: Node) -> None:
    await node.start(with_other=False)
    drift_usdt(node, Decimal(1))
    await node.rec.reconcile_now(periodic=True)
    node.venue.fail_balances = 1  # the next pass cannot compare balances
    await node.rec.reconcile_now(periodic=True)
    assert node.st.gate.state is TradingState.ACTIVE
    await node.rec.reconcile_now(periodic=True)  # seen again on the next pass that could look
    assert node.st.gate.state is TradingState.HALTED
    assert "USDT" in node.st.gate.state_reason


async def test_health_is_unhealthy_while_any_venue_disagrees_whichever_was_reconciled_last(node: Node) -> None:
    await node.start(with_other=True)
    drift_usdt(node, Decimal(1))
    (sim, other) = await node.rec.reconcile_now(periodic=True)
    assert not sim.ok and other.ok
    health = node.rec.health()
    assert not health.ok and "sim" in health.detail
    drift_usdt(node, Decimal(-1))
    await node.rec.reconcile_now(periodic=True)
    assert node.rec.health().ok


async def test_a_quiet_week_costs_one_fills_window_per_pass(node: Node) -> None:
    await node.start(with_other=False)
    passes = 14
    for _ in range(passes):  # no fill all week: the journal's newest fill stays at the start
        node.clock.advance(12 * 3600)
        (result,) = await node.rec.reconcile_now(periodic=True)
        assert result.ok
    assert node.venue.fill_queries == passes


async def test_a_pass_that_found_a_discrepancy_rereads_fills_from_the_last_agreeing_pass(node: Node) -> None:
    await node.start(with_other=False)
    node.clock.advance(3600)
    agreed_at_ns = node.clock.time_ns()
    (ok,) = await node.rec.reconcile_now(periodic=True)
    assert ok.ok
    drift_usdt(node, Decimal(1))
    node.clock.advance(3600)
    (bad,) = await node.rec.reconcile_now(periodic=True)
    assert not bad.ok
    node.clock.advance(3600)
    await node.rec.reconcile_now(periodic=True)
    # The failed pass did not move the read point: a fill the venue listed late is still read.
    assert node.venue.fills_since_args[-1] == agreed_at_ns - int(FILL_READ_OVERLAP_S * NS_PER_S)
