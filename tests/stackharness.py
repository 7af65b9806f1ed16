"""A trading stack on a sim venue, started as the node starts it, for tests that drive it
in-process on a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId

BTC = InstrumentId("sim", "BTCUSDT")


@contextlib.asynccontextmanager
async def active_sim_stack(cfg: Config, venue: Any, bus: Bus, clock: ManualClock,
                           journal: Any) -> AsyncIterator[TradingStack]:
    """`venue` (a SimVenue or a subclass) started, the engine consuming reports, cash from the
    venue's balances, trading ACTIVE and a fresh BTCUSDT mark at 60,000; the journal is closed
    on exit. Subscribe anything that must hear reports before the engine before entering."""
    await venue.start()
    st = build_stack(cfg, bus, clock, journal, {venue.name: venue}, durable=True)
    await st.engine.start()
    consumer = asyncio.create_task(st.engine.run())
    try:
        st.engine.add_instruments(venue.instruments().values())
        st.attach_market()
        for asset, bal in (await venue.balances()).items():
            st.portfolio.set_cash(asset, bal.total, venue.name)
        st.engine.reset_equity_peak()
        st.gate.set_state(TradingState.ACTIVE, "test", "test")
        venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
        yield st
    finally:
        consumer.cancel()
        await journal.aclose()
