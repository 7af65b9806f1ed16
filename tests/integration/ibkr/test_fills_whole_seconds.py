"""IB stamps executions in whole seconds (`20261201 10:00:00 US/Eastern`): `fills_since(since)`
must list an execution made at or after `since` even when its stamp, cut to the second, is
before it. Found by the chaos storm (tests/system/test_chaos_ibkr.py): an order executed 0.6 s
after the journal's baseline, its answer lost with the connection, was resolved FILLED by
query but its fill was never booked (the reconciler reads fills from the baseline on, and the
execution's stamp was the baseline's second, before it); every later start then halted on
'position 0 here, 5 at the venue'."""

from __future__ import annotations

from pathlib import Path

from nautilus_hmm.venues.ibkr.adapter import NS_PER_S
from tests.integration.ibkr.adapter_harness import AAPL, bounded, harness, market
from tests.integration.ibkr.emulator_harness import TUESDAY_10_ET_NS


@bounded
async def test_an_execution_in_the_same_second_as_since_but_after_it_is_listed(tmp_path: Path) -> None:
    async with harness(tmp_path, start_ns=TUESDAY_10_ET_NS + 300_000_000) as h:
        since = h.clock.time_ns()  # 10:00:00.3
        await h.step(0.4)
        await h.venue.submit_order(market(AAPL, "same-second", qty="5"))  # executed at 10:00:00.7
        (fill,) = await h.venue.fills_since(AAPL, since)
        assert fill.client_order_id == "same-second" and fill.ts_ns == TUESDAY_10_ET_NS  # the stamp: 10:00:00
        # A read from the next second on does not list it again (the reconciler de-duplicates
        # by execId anyway: reading a second early is safe, a second late loses fills).
        assert await h.venue.fills_since(AAPL, TUESDAY_10_ET_NS + NS_PER_S) == []
