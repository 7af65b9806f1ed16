"""The engine's fill intake is the one place a fill is de-duplicated: the same execution
arriving as the order's answer, the user stream's copy and a gap re-read is booked once,
durably (the journal's key, across a restart) and in memory (backtest). Real bus, journal
and sim venue; manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import Liquidity, OrderType, Side, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill
from nautilus_hmm.execution.fills import FillIntake
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import FillReport, UserStreamGap
from nautilus_hmm.venues.sim.venue import SimVenue

BTC = InstrumentId("sim", "BTCUSDT")
CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
}


def a_fill(trade_id: str = "T-1", cid: str = "c-1") -> VenueFill:
    return VenueFill(BTC, cid, "1", trade_id, Side.BUY, Decimal("0.1"), Decimal("60000"), Decimal("6"), "USDT",
                     Liquidity.TAKER, 1_000)


def report(fill: VenueFill) -> FillReport:
    return FillReport(ts_event_ns=fill.ts_ns, ts_init_ns=fill.ts_ns, venue="sim", fill=fill)


class Live:
    """Journal + sim venue + durable stack with its report consumer, on one state dir."""

    def __init__(self, state_dir: Path, clock: ManualClock) -> None:
        self.cfg = parse(Config, CFG)
        self.clock = clock
        self.bus = Bus()
        self.journal = Journal.open(state_dir / "journal.sqlite3")
        self.venue = SimVenue(self.cfg.venues.sim, self.bus, clock, state_dir)
        self.st: TradingStack = build_stack(self.cfg, self.bus, clock, self.journal, {"sim": self.venue},
                                            durable=True)
        self._consumer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.venue.start()
        await self.st.engine.start()
        self._consumer = asyncio.create_task(self.st.engine.run())
        self.st.engine.add_instruments(self.venue.instruments().values())
        assert self.st.reconciler is not None
        await self.st.reconciler.recover_from_journal()
        self.st.attach_market()

    async def settle(self) -> None:
        for _ in range(3):
            await self.st.engine.idle()
            await self.journal.flush()

    async def stop(self) -> None:
        assert self._consumer is not None
        self._consumer.cancel()
        self.st.engine.detach()
        for undo in self.st.detach:
            undo()
        await self.journal.aclose()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    node = Live(tmp_path, ManualClock())
    await node.start()
    yield node
    await node.stop()


async def buy_at_market(node: Live, cid_hint: str = "buy") -> VenueFill:
    """A market buy of ours filled at the sim venue; its one fill, as the venue reports it."""
    node.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    node.clock.advance(1)
    node.venue.step_trade(BTC, 60000.0, 5.0, node.clock.time_ns())
    order = node.st.engine.plan("t", BTC, Decimal("0.1"), cid_hint)
    assert order is not None
    await node.settle()
    node.clock.advance(1)
    node.venue.step_trade(BTC, 60010.0, 5.0, node.clock.time_ns())  # fills it
    await node.settle()
    (fill,) = await node.venue.fills_since(BTC, 0)
    return fill


async def test_a_fill_arriving_as_answer_stream_copy_and_gap_re_read_is_booked_once(live: Live) -> None:
    fill = await buy_at_market(live)  # the venue's own report: the order's answer
    live.bus.publish(report(fill))  # the user stream's copy
    now = live.clock.time_ns()
    live.bus.publish(UserStreamGap(ts_event_ns=now, ts_init_ns=now, venue="sim", since_ns=0, reason="test"))
    assert live.st.reconciler is not None
    (gap_pass,) = await live.st.reconciler.reconcile_gaps()  # re-reads the fill with fills_since
    await live.settle()
    assert gap_pass.recovered_fills == 0
    assert live.st.portfolio.position_qty(BTC) == fill.qty
    assert live.st.engine.counts["fills"] == 1
    assert live.st.engine.counts["duplicate_fills"] == 2
    assert len(live.journal.load_fills()) == 1


async def test_a_copy_the_journal_confirmed_is_refused_without_a_journal_write(live: Live) -> None:
    fill = await buy_at_market(live)
    for _ in range(2):
        live.bus.publish(report(fill))
    await live.settle()
    assert live.st.engine.counts["duplicate_fills"] == 2
    assert live.journal.duplicate_fills == 0  # the intake answered both copies from memory


async def test_a_fill_booked_before_a_restart_is_not_booked_again_after_it(tmp_path: Path) -> None:
    clock = ManualClock()
    first = Live(tmp_path, clock)
    await first.start()
    fill = await buy_at_market(first)
    await first.stop()

    second = Live(tmp_path, clock)
    await second.start()  # the portfolio is rebuilt from the journal: the fill once
    try:
        position = second.st.portfolio.position_qty(BTC)
        assert position == fill.qty
        second.bus.publish(report(fill))  # the stream's late copy, after the restart
        assert await second.st.engine.admit_fill("sim", fill) is False  # a gap re-read of it
        await second.settle()
        assert second.st.portfolio.position_qty(BTC) == position
        assert second.st.engine.counts["fills"] == 0
        assert second.st.engine.counts["duplicate_fills"] == 2
    finally:
        await second.stop()


async def test_in_memory_the_same_fill_from_every_path_is_booked_once(tmp_path: Path) -> None:
    cfg = parse(Config, CFG)
    clock, bus = ManualClock(), Bus()
    venue = SimVenue(cfg.venues.sim, bus, clock, tmp_path)
    await venue.start()
    st = build_stack(cfg, bus, clock, None, {"sim": venue}, durable=False)
    st.engine.add_instruments(venue.instruments().values())
    st.attach_market()
    st.gate.set_state(TradingState.ACTIVE, "test", "test")
    clock.advance(1)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    venue.submit_order_nowait(OrderRequest("bt-1", BTC, Side.BUY, OrderType.MARKET, Decimal("0.1")))
    clock.advance(1)
    venue.step_trade(BTC, 60010.0, 5.0, clock.time_ns())  # fills it; the venue reports it once
    (fill,) = await venue.fills_since(BTC, 0)
    bus.publish(report(fill))  # the stream's copy
    assert await st.engine.admit_fill("sim", fill) is False  # a re-read
    assert st.portfolio.position_qty(BTC) == fill.qty
    assert st.engine.counts["fills"] == 1
    assert st.engine.counts["duplicate_fills"] == 2


def test_a_journal_write_that_fails_leaves_no_key_behind() -> None:
    class FailingJournal:
        def record_fill(self, venue: str, fill: VenueFill) -> asyncio.Future[bool]:
            raise OSError("disk full")

    counts = {"duplicate_fills": 0}
    intake = FillIntake(FailingJournal(), durable=True, counts=counts)
    with pytest.raises(OSError):
        intake.claim("sim", a_fill())
    intake._journal = None  # a claim that reaches the journal now fails loudly: the key is not remembered
    with pytest.raises(AttributeError):
        intake.claim("sim", a_fill())
    assert counts["duplicate_fills"] == 0


def test_the_durable_memory_forgets_the_oldest_key_first() -> None:
    counts = {"duplicate_fills": 0}
    intake = FillIntake(None, durable=True, counts=counts, recent_max=2)
    for trade_id in ("T-1", "T-2", "T-3"):
        intake.settle("sim", a_fill(trade_id), True)
    assert intake.claim("sim", a_fill("T-3")) is None
    assert intake.claim("sim", a_fill("T-2")) is None
    assert counts["duplicate_fills"] == 2
    with pytest.raises(AttributeError):  # T-1 was forgotten: the journal (None here) is asked
        intake.claim("sim", a_fill("T-1"))
