"""The equity peak (drawdown's reference) survives a restart and is never below equity."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.messages import Bar
from tests.unit.execution.test_reconcile import BTC, Node


def bar(node: Node, close: float) -> None:
    node.clock.advance(1)
    now = node.clock.time_ns()
    node.bus.publish(Bar(ts_event_ns=now, ts_init_ns=now, instrument_id=BTC, interval_s=60, open=close,
                         high=close, low=close, close=close, volume=1.0))


async def test_peak_equity_is_restored_from_the_journal_after_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    a.trade(60000.0)
    a.target("0.5")
    await a.settle()
    a.trade(60000.0)  # fills
    await a.settle()
    assert a.st.portfolio.position_qty(BTC) == Decimal("0.5")
    bar(a, 70000.0)  # the peak: +10000
    bar(a, 65000.0)  # 5000 below it
    before = a.st.engine.pnl_view()
    assert Decimal(before["drawdown_pct"]) > 0
    a.st.engine.record_snapshot()
    await a.settle()
    await a.crash()

    b = Node(tmp_path, clock)
    assert await b.start()
    bar(b, 65000.0)
    after = b.st.engine.pnl_view()
    assert after["peak_equity"] == before["peak_equity"]
    assert after["drawdown_pct"] == before["drawdown_pct"]


async def test_peak_equity_is_never_below_equity_in_the_views(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    a.trade(60000.0)
    a.target("0.5")
    await a.settle()
    a.trade(60000.0)
    await a.settle()
    a.trade(64000.0)  # a trade moves the mark up; no bar closed since
    await a.settle()
    pnl = a.st.engine.pnl_view()
    assert Decimal(pnl["peak_equity"]) >= Decimal(pnl["equity"])
    assert Decimal(pnl["drawdown_pct"]) >= 0


async def test_a_graceful_stop_journals_the_equity_peak_for_the_next_start(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    a.trade(60000.0)
    a.target("0.5")
    await a.settle()
    a.trade(60000.0)
    await a.settle()
    bar(a, 70000.0)
    bar(a, 65000.0)
    peak = a.st.engine.pnl_view()["peak_equity"]
    await a.st.engine.stop()
    await a.journal.flush()
    snap = a.journal.latest_position_snapshot()
    assert snap is not None and Decimal(snap.data["peak_equity"]) == Decimal(peak)
    a.journal.close()
