"""Start-up: one reconciliation (one reconciliation_completed line) per venue, even when the
venue's user stream connects, and reports a gap, while start-up reconciliation runs (the
reconciler's own gap pass comes after it, never alongside)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from nautilus_hmm.bootstrap import TradingStarter, build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import ReconciliationCompleted, UserStreamGap
from nautilus_hmm.venues.sim.venue import SimVenue

CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
}


class StreamVenue(SimVenue):
    """The sim venue with a user stream (as Binance's adapter): its first connect publishes a
    gap, here while the start-up reconciliation lists the open orders."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gaps_reported = 0

    async def open_orders(self, instrument_id: Any = None) -> Any:
        if self.gaps_reported == 0:
            self.gaps_reported += 1
            now = self._clock.time_ns()
            self._bus.publish(UserStreamGap(ts_event_ns=now, ts_init_ns=now, venue=self.name, since_ns=now,
                                           reason="user stream connected"))
        return await super().open_orders(instrument_id)


async def test_a_gap_reported_during_start_up_reconciliation_does_not_reconcile_a_second_time(
        tmp_path: Path) -> None:
    cfg = parse(Config, CFG)
    clock, bus = ManualClock(), Bus()
    journal = Journal.open(tmp_path / "journal.sqlite3")
    venue = StreamVenue(cfg.venues.sim, bus, clock, tmp_path)
    await venue.start()
    st = build_stack(cfg, bus, clock, journal, {"sim": venue}, durable=True)
    await st.engine.start()
    consumer = asyncio.create_task(st.engine.run())
    completed: list[ReconciliationCompleted] = []
    bus.subscribe(ReconciliationCompleted, completed.append)
    starter = TradingStarter(st, TradingState.ACTIVE)
    try:
        with capture_logs() as logs:
            await starter.start()
        assert venue.gaps_reported == 1
        assert [e["event"] for e in logs].count("reconciliation_completed") == 1
        assert len(completed) == 1 and starter.reconciled
        assert st.gate.state is TradingState.ACTIVE
    finally:
        consumer.cancel()
        await journal.aclose()
