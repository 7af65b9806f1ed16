"""IbkrVenue and IB's execution corrections, against the emulator's correction fault.

IB corrects an execution by sending it again under the next revision of its execId
(`....01.01` → `....01.02`). Never a second fill: the same values are a counted no-op; other
values are published as `ExecutionCorrected` (naming both execIds) and never booked.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.domain.enums import OrderStatus
from nautilus_hmm.messages import ExecutionCorrected, FillReport
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
        assert vo is not None and vo.status is OrderStatus.FILLED and vo.filled_qty == 10
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
