"""A venue's execution correction with other values (`ExecutionCorrected`) halts trading at
once, naming both trade ids, and is a finding of the venue's next pass, once; one read while
the start-up pass reads keeps trading halted. Real bus, journal and sim venue; manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.messages import ExecutionCorrected
from tests.unit.execution.test_reconcile_gaps import BTC, Node


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    await n.start()
    yield n
    if n.consumer is not None:
        n.consumer.cancel()
    await n.journal.aclose()


def corrected(node: Node, venue: str = "sim") -> None:
    now = node.clock.time_ns()
    node.bus.publish(ExecutionCorrected(ts_event_ns=now, ts_init_ns=now, venue=venue, instrument_id=BTC,
                                        client_order_id="c-9", original_trade_id="x.y.01.01",
                                        correction_trade_id="x.y.01.02", detail="qty 10 -> 7"))


async def test_a_changed_correction_halts_at_once_and_is_the_next_passes_finding_once(node: Node) -> None:
    await node.reconcile_startup()
    node.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    corrected(node)
    assert node.st.gate.state is TradingState.HALTED
    assert "x.y.01.01" in node.st.gate.state_reason and "x.y.01.02" in node.st.gate.state_reason
    (result,) = await node.rec.reconcile_now(periodic=True)
    (finding,) = result.discrepancies
    assert finding.startswith("c-9: execution x.y.01.01 corrected as x.y.01.02") and "qty 10 -> 7" in finding
    assert not node.completed[-1].ok
    node.st.gate.set_state(TradingState.ACTIVE, "operator resumed", "admin")
    (again,) = await node.rec.reconcile_now(periodic=True)
    assert again.ok and node.st.gate.state is TradingState.ACTIVE  # reported once: a resume stands


async def test_a_correction_read_during_the_start_up_pass_fails_it(node: Node) -> None:
    node.venue.on_open_orders = lambda: corrected(node)  # as IbkrVenue.fills_since would, mid-pass
    assert not await node.rec.reconcile_startup()
    assert any("corrected as x.y.01.02" in d for d in node.completed[-1].discrepancies)
    assert node.st.gate.state is TradingState.HALTED


async def test_a_correction_of_another_venue_is_not_this_ones_finding(node: Node) -> None:
    await node.reconcile_startup()
    corrected(node, venue="ibkr")
    (result,) = await node.rec.reconcile_now(periodic=True)
    assert result.ok and node.st.gate.state is TradingState.HALTED  # halted all the same: one account's books
