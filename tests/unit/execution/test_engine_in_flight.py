"""Execution engine: no order goes out on the other side of an order of the same instrument
whose request is still unanswered. The venue may take two requests in flight together in either order, or
only the later one (the earlier never landed, or was refused), so an order planned on the
assumption that the earlier one fills can take the position past every target (the USD-M
chaos storm's 0.02 on a 0..0.01 strategy). Real bus, journal, sim venue; manual clock."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nautilus_hmm.core.errors import RetryableError
from nautilus_hmm.domain.enums import OrderStatus, Side, TradingState
from nautilus_hmm.domain.orders import OrderRequest, VenueOrder
from tests.unit.execution.test_engine import BTC, ProbeVenue, settle, stack, target, until

__all__ = ["stack"]  # the fixture, shared with test_engine


class Hold:
    """Keeps the next order request in flight (sent, no answer) until released."""

    def __init__(self, venue: ProbeVenue) -> None:
        self.release = asyncio.Event()
        self.held = ""
        self.sides: list[Side] = []  # every request that reached the venue, in order
        original = venue.submit_order

        async def submit_order(req: OrderRequest) -> VenueOrder:
            self.sides.append(req.side)
            if not self.held:
                self.held = req.client_order_id
                await self.release.wait()
            return await original(req)

        venue.submit_order = submit_order  # type: ignore[method-assign]


async def in_flight_settled(st) -> None:
    """Every order the engine made meanwhile is journaled and its request sent (the held one waits)."""
    await st.journal.flush()
    for _ in range(50):
        await asyncio.sleep(0)


async def long_position(st, venue: ProbeVenue, clock) -> None:
    target(st, "0.1", clock)
    await settle(st)
    clock.advance(1)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    await settle(st)
    assert st.portfolio.position_qty(BTC) == Decimal("0.1")


async def test_a_target_reversed_while_a_sell_is_unanswered_sends_no_buy_until_the_venue_answers(
    stack,
) -> None:
    st, venue, clock = stack
    await long_position(st, venue, clock)
    hold = Hold(venue)
    target(st, "0", clock)  # SELL 0.1, its answer held
    await until(lambda: hold.held, "the sell in flight")
    target(st, "0.1", clock)  # back: only a BUY placed after the SELL keeps the position in range
    await in_flight_settled(st)
    assert hold.sides == [Side.SELL] and st.engine.orders[hold.held].status is OrderStatus.SUBMITTED
    hold.release.set()
    await settle(st)
    # Answered (accepted): the reversed target is planned now, after the SELL at the venue.
    assert hold.sides == [Side.SELL, Side.BUY]
    clock.advance(1)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    await settle(st)
    assert st.portfolio.position_qty(BTC) == Decimal("0.1")


async def test_a_sell_the_venue_refuses_leaves_the_position_at_target_not_doubled_by_a_buy_sent_beside_it(
    stack,
) -> None:
    st, venue, clock = stack
    await long_position(st, venue, clock)
    hold = Hold(venue)
    target(st, "0", clock)
    await until(lambda: hold.held, "the sell in flight")
    target(st, "0.1", clock)
    await in_flight_settled(st)
    venue.fail_next = RetryableError("sim", "service unavailable")  # the held SELL never lands
    hold.release.set()
    await settle(st)
    assert st.engine.orders[hold.held].status is OrderStatus.REJECTED
    clock.advance(1)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    await settle(st)
    # Was 0.2: a BUY went out beside the SELL, assuming the SELL would fill.
    assert st.portfolio.position_qty(BTC) == Decimal("0.1")
    assert st.engine.replan_all() == 0


async def test_flatten_while_a_buy_is_unanswered_closes_the_whole_position_once_the_venue_answers(
    stack,
) -> None:
    st, venue, clock = stack
    await long_position(st, venue, clock)
    hold = Hold(venue)
    target(st, "0.2", clock)  # BUY 0.1 more, its answer held
    await until(lambda: hold.held, "the buy in flight")
    st.gate.set_state(TradingState.REDUCING, "kill", "test")
    st.engine.flatten("kill")
    await in_flight_settled(st)
    hold.release.set()
    await settle(st)
    assert hold.sides == [Side.BUY, Side.SELL]  # the flatten's SELL went out after the BUY's answer
    # Spot: that SELL is capped at the holdings; the rest goes once the BUY filled.
    for _ in range(2):
        clock.advance(1)
        venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
        await settle(st)
    assert st.portfolio.position_qty(BTC) == 0
    assert st.engine.is_flat()
