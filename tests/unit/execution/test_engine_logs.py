"""Execution engine log lines: a flatten's completion is one line, whatever reports follow."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from nautilus_hmm.bootstrap import TradingStack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import TargetPosition
from nautilus_hmm.venues.sim.venue import SimVenue
from tests.stackharness import active_sim_stack

BTC = InstrumentId("sim", "BTCUSDT")
CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[TradingStack, SimVenue, ManualClock]]:
    cfg = parse(Config, CFG)
    clock, bus = ManualClock(), Bus()
    journal = Journal.open(tmp_path / "journal.sqlite3")
    venue = SimVenue(cfg.venues.sim, bus, clock, tmp_path)
    async with active_sim_stack(cfg, venue, bus, clock, journal) as st:
        yield st, venue, clock


async def settle(st: TradingStack) -> None:
    for _ in range(3):
        await st.engine.idle()
        await st.journal.flush()


async def trade(st: TradingStack, venue: SimVenue, clock: ManualClock, price: float) -> None:
    clock.advance(1)
    venue.step_trade(BTC, price, 5.0, clock.time_ns())
    await settle(st)


async def test_flatten_complete_is_one_line_even_when_the_venue_reports_the_filled_order_again(stack) -> None:
    st, venue, clock = stack
    now = clock.time_ns()
    st.bus.publish(TargetPosition(ts_event_ns=now, ts_init_ns=now, strategy_id="t", instrument_id=BTC,
                                  target_qty=Decimal("0.1"), reason="test"))
    await settle(st)
    await trade(st, venue, clock, 60000.0)
    st.gate.set_state(TradingState.REDUCING, "kill", "test")
    with capture_logs() as logs:
        assert st.engine.flatten("kill") == 1
        await settle(st)
        await trade(st, venue, clock, 59990.0)
        assert st.engine.is_flat()
        (flat_order,) = [o for o in st.engine.orders.values() if o.strategy_id == "flatten"]
        assert flat_order.status is OrderStatus.FILLED
        # The venue repeats the final state with its own average price (Binance: the order's
        # answer after the user stream's fill, or a gap reconciliation's query).
        vo = dataclasses.replace(await venue.query_order(BTC, flat_order.client_order_id),
                                 avg_px=Decimal("59990.004"))
        st.engine._apply_report("sim", vo)
        await settle(st)
    assert [e["event"] for e in logs].count("flatten_complete") == 1
