"""Start-up reconciliation recovers a fill older than the newest journaled fill of its instrument.

Found by `benchmarks/chaos_soak.py --venue bybit --faults`: the private stream dropped, an
order filled meanwhile (its fill lost with the stream), a later order's fill arrived after
the reconnect and was journaled, and the process was killed before the gap's pass. On
restart the in-flight order was resolved FILLED by query, but the missed-fill read began at
the journal's newest fill, after the lost one: the books disagreed with the venue.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, Side, TradingState
from tests.unit.execution.test_reconcile import BTC, Node


async def test_a_fill_lost_before_a_journaled_later_fill_is_recovered_at_start(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    a.trade(60000.0)
    a.target("0.1")
    await a.settle()
    a.trade(60010.0)  # order 1 fills, heard
    await a.settle()
    a.target("0.2")
    await a.settle()  # order 2 reaches the venue
    a.venue._bus = Bus()  # the user stream is down: nobody hears the venue
    a.trade(60020.0)  # order 2 fills, unheard
    await a.settle()
    a.venue._bus = a.bus  # the stream is back; order 2's fill is not repeated
    a.target("0.1")
    await a.settle()
    a.trade(60030.0)  # order 3 (a sell) fills, heard and journaled: the newest fill
    await a.settle()
    orders = a.st.engine.orders
    lost = next(c for c, o in orders.items() if o.side is Side.BUY and o.status is OrderStatus.ACCEPTED)
    await a.crash()  # before any reconciliation pass covered the stream's gap

    b = Node(tmp_path, clock)
    ok = await b.start()
    assert ok, b.results[-1].discrepancies
    assert b.st.reconciler.last["sim"].recovered_fills == 1
    assert b.st.engine.orders[lost].status is OrderStatus.FILLED and b.st.engine.orders[lost].fills_booked
    assert b.st.portfolio.position_qty(BTC) == Decimal("0.1") == (await b.venue.balances())["BTC"].total
    await b.crash()
