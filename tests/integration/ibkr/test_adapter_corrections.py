"""IbkrVenue and IB's execution corrections, against the emulator's correction fault.

IB corrects an execution by sending it again under the next revision of its execId
(`....01.01` → `....01.02`). Never a second fill: the same values are a counted no-op; other
values are published as `ExecutionCorrected` (naming both execIds) and never booked.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from ib_async import CommissionReport, Contract, Execution, Fill, Order, OrderStatus, Trade

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.domain.enums import OrderStatus as Status
from nautilus_hmm.messages import ExecutionCorrected, FillReport
from nautilus_hmm.venues.ibkr import adapter as adapter_module
from nautilus_hmm.venues.ibkr.emulator.control import FaultError, apply_faults
from nautilus_hmm.venues.ibkr.parse import exec_revision
from tests.integration.ibkr.adapter_harness import (
    AAPL,
    Harness,
    bounded,
    harness,
    make_venue,
    market,
    until,
)
from tests.integration.waits import Recorder, stop_venue


async def _filled(h: Harness, cid: str, qty: str = "10") -> FillReport:
    await h.venue.submit_order(market(AAPL, cid, qty=qty))
    await until(lambda: h.fills(cid), what="fill published")
    (report,) = h.rec.of(FillReport)
    return report


@bounded
async def test_a_correction_with_the_same_values_books_nothing(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        corrected = Recorder(h.bus, ExecutionCorrected)
        first = (await _filled(h, "c-1")).fill
        new_id = h.emu.correct_execution()
        assert exec_revision(new_id) == (exec_revision(first.trade_id)[0], 2)
        await until(lambda: h.venue.counts["exec_corrections"] == 1, what="correction seen")
        await h.step(3.0)  # past commission_wait_s: nothing is published for it
        assert [m.fill.trade_id for m in h.rec.of(FillReport)] == [first.trade_id]
        assert corrected.of(ExecutionCorrected) == []
        (listed,) = await h.venue.fills_since(AAPL, 0)  # IB lists both revisions: one fill
        assert listed.trade_id == first.trade_id and listed.qty == 10
        vo = await h.venue.query_order(AAPL, "c-1")
        assert vo is not None and vo.status is Status.FILLED and vo.filled_qty == 10
        assert h.venue.counts["exec_corrections"] == 1 and h.venue.counts["exec_corrections_changed"] == 0


@bounded
async def test_a_correction_that_changes_the_quantity_is_published_never_booked(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        corrected = Recorder(h.bus, ExecutionCorrected)
        first = (await _filled(h, "c-2")).fill
        new_id = h.emu.correct_execution(shares=Decimal(7))
        await until(lambda: corrected.of(ExecutionCorrected), what="correction published")
        (msg,) = corrected.of(ExecutionCorrected)
        assert msg.original_trade_id == first.trade_id and msg.correction_trade_id == new_id
        assert msg.client_order_id == "c-2" and msg.instrument_id == AAPL and "qty 10 -> 7" in msg.detail
        await h.step(3.0)
        assert len(h.rec.of(FillReport)) == 1
        (listed,) = await h.venue.fills_since(AAPL, 0)
        assert listed.trade_id == first.trade_id and listed.qty == 10
        assert len(corrected.of(ExecutionCorrected)) == 1  # the re-read does not publish it again
        assert h.venue.counts["exec_corrections_changed"] == 1


@bounded
async def test_a_late_correction_read_after_a_restart_is_found_by_reqexecutions(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        first = (await _filled(h, "c-3")).fill
        await stop_venue(h.task, h.venue)
        h.task = None
        new_id = h.emu.correct_execution(price=Decimal("1.5"))  # while no client is connected
        bus = Bus()
        corrected = Recorder(bus, ExecutionCorrected)
        fresh = make_venue(h.emu.port, bus, h.clock, tmp_path)
        await fresh.start()
        try:
            (listed,) = await fresh.fills_since(AAPL, 0)
            assert listed.trade_id == first.trade_id and listed.price == first.price
            (msg,) = corrected.of(ExecutionCorrected)
            assert (msg.original_trade_id, msg.correction_trade_id) == (first.trade_id, new_id)
            assert "price" in msg.detail
            (again,) = await fresh.fills_since(AAPL, 0)
            assert again.trade_id == first.trade_id and len(corrected.of(ExecutionCorrected)) == 1
        finally:
            await fresh.stop()


@bounded
async def test_a_correction_while_the_first_report_waits_for_its_commission_is_still_one_fill(
        tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.emu.hold_commissions()
        await h.venue.submit_order(market(AAPL, "c-4"))
        await h.step(0.5)
        h.emu.correct_execution()
        await until(lambda: h.venue.counts["exec_corrections"] == 1, what="correction seen while held")
        h.emu.release_commissions()
        await until(lambda: h.fills("c-4"), what="the fill, with its commission")
        await h.step(3.0)
        (fill,) = h.fills("c-4")
        assert fill.fee > 0 and exec_revision(fill.trade_id)[1] == 1
        assert h.venue.counts["late_commissions"] == 0 and h.venue.counts["commissions_missing"] == 0


def _ib_fill(exec_id: str, shares: float) -> tuple[Trade, Fill]:
    contract = Contract(conId=265598, symbol="AAPL", secType="STK")
    execution = Execution(execId=exec_id, time=dt.datetime(2026, 12, 1, 15, tzinfo=dt.UTC), side="BOT",
                          shares=shares, price=230.25, orderId=7, orderRef="c-5")
    return (Trade(contract, Order(orderId=7, orderRef="c-5"), OrderStatus(), [], []),
            Fill(contract, execution, CommissionReport(execId=exec_id, commission=1.0, currency="USD"),
                 execution.time))


@bounded
async def test_a_correction_before_its_first_revision_books_once_and_the_late_first_is_compared(
        tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        corrected = Recorder(h.bus, ExecutionCorrected)
        h.venue._on_exec(*_ib_fill("0000aaaa.0000bbbb.01.02", 10.0))
        (fill,) = h.fills("c-5")
        assert fill.trade_id == "0000aaaa.0000bbbb.01.01" and h.venue.counts["exec_corrections_unmatched"] == 1
        h.venue._on_exec(*_ib_fill("0000aaaa.0000bbbb.01.01", 12.0))  # late, and other values
        assert len(h.fills("c-5")) == 1
        (msg,) = corrected.of(ExecutionCorrected)
        assert (msg.original_trade_id, msg.correction_trade_id) == ("0000aaaa.0000bbbb.01.01",
                                                                     "0000aaaa.0000bbbb.01.01")
        assert "qty 10 -> 12" in msg.detail
        h.venue._on_exec(*_ib_fill("0000aaaa.0000bbbb.01.01", 12.0))  # a copy: counted, nothing else
        assert h.venue.counts["duplicate_execs"] == 1 and len(corrected.of(ExecutionCorrected)) == 1


@pytest.mark.parametrize(("doc", "fragment"), [
    ({"correct_execution": False}, "correct_execution: expected true"),
    ({"correct_execution": {"qty": "1"}}, "correct_execution: expected true"),
    ({"correct_execution": {"shares": "-1"}}, "correct_execution.shares: expected a number > 0, got '-1'"),
    ({"correct_execution": {"price": "abc"}}, "correct_execution.price: expected a number > 0, got 'abc'"),
    ({"correct_execution": {"price": True}}, "correct_execution.price"),
    ({"correct_execution": {"shares": "1e999"}}, "correct_execution.shares"),
    ({"correct_execution": {"exec_id": 5}}, "correct_execution.exec_id: expected an execId, got 5"),
    ({"correct_execution": {"exec_id": "nope"}}, "no execution nope to correct"),
    ({"correct_execution": True}, "no execution (any) to correct"),
])
@bounded
async def test_a_malformed_correction_fault_is_refused_naming_it_and_changes_nothing(
        tmp_path: Path, doc: dict, fragment: str) -> None:
    async with harness(tmp_path) as h:
        with pytest.raises(FaultError, match=re.escape(fragment)):
            await apply_faults(h.emu, doc)
        assert h.emu.engine.executions == []


@bounded
async def test_the_execution_memory_is_bounded_and_a_forgotten_one_keeps_its_trade_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapter_module, "EXEC_MEMORY", 3)
    async with harness(tmp_path) as h:
        for i in range(5):
            h.venue._on_exec(*_ib_fill(f"0000aaaa.0000bbbb.0{i}.01", 1.0))
        assert len(h.venue._seen_execs) == 3 and len(h.venue._booked) == 3
        h.venue._on_exec(*_ib_fill("0000aaaa.0000bbbb.00.01", 1.0))  # forgotten: out again, same id
        ids = [f.trade_id for f in h.fills("c-5")]
        assert len(ids) == 6 and ids[-1] == ids[0] == "0000aaaa.0000bbbb.00.01"  # the journal's key refuses it
