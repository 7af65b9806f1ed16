"""Session-aware order entry (issue 14): an order of an instrument whose trading session is
closed is refused with reason `outside_session` before an id is minted, unless its venue sets
`outside_rth`; inside the session (or with no sessions: crypto) it goes out as before. Real
bus, journal and sim venue (counting its order entry), manual clock on a real NYSE calendar."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.bootstrap import TradingStack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.sessions import TradingSessions
from nautilus_hmm.execution.engine import OUTSIDE_SESSION
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import Bar, RiskDenied
from tests.stackharness import active_sim_stack
from tests.unit.execution.test_monitor_gate import (
    BTC,
    CFG,
    EntryCountingVenue,
    journaled_orders,
    settle,
    target,
)

# ManualClock starts at 2023-11-14 22:13:20 UTC = 17:13 in New York: after the close.
NYSE = TradingSessions.from_ib("20231114:0930-1600;20231115:0930-1600;20231116:CLOSED", "America/New_York")
WED_OPEN_NS = int(datetime(2023, 11, 15, 14, 30, tzinfo=UTC).timestamp()) * 1_000_000_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[TradingStack, EntryCountingVenue, ManualClock, Path]]:
    cfg = parse(Config, CFG)
    clock, bus = ManualClock(), Bus()
    jpath = tmp_path / "journal.sqlite3"
    venue = EntryCountingVenue(cfg.venues.sim, bus, clock, tmp_path)
    async with active_sim_stack(cfg, venue, bus, clock, Journal.open(jpath)) as st:
        yield st, venue, clock, jpath


def with_sessions(st: TradingStack, sessions: TradingSessions | None) -> None:
    st.engine.instruments[BTC] = dataclasses.replace(st.engine.instruments[BTC], sessions=sessions)


def denials(st: TradingStack) -> list[RiskDenied]:
    seen: list[RiskDenied] = []
    st.bus.subscribe(RiskDenied, seen.append, name="test")
    return seen


async def test_an_order_outside_the_session_is_refused_before_an_id_is_minted(stack) -> None:
    st, venue, clock, jpath = stack
    with_sessions(st, NYSE)
    seen = denials(st)
    target(st, "0.1", clock)
    await settle(st)
    assert venue.entry_calls == []
    assert st.engine.orders == {} and journaled_orders(jpath) == []
    (d,) = seen
    assert d.reason == OUTSIDE_SESSION == "outside_session"
    assert "session closed" in d.detail and "2023-11-15T14:30:00+00:00" in d.detail


async def test_the_same_order_inside_the_session_is_sent(stack) -> None:
    st, venue, clock, _ = stack
    with_sessions(st, NYSE)
    clock.set_time_ns(WED_OPEN_NS + 60 * 1_000_000_000)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())  # fresh data after the jump
    target(st, "0.1", clock)
    await settle(st)
    assert [a for a, _ in venue.entry_calls] == ["submit"]


async def test_outside_rth_on_the_venue_lets_the_order_out_of_session(stack) -> None:
    st, venue, clock, _ = stack
    with_sessions(st, NYSE)
    venue.outside_rth = True  # what the IBKR adapter exposes from `outside_rth = true`
    seen = denials(st)
    target(st, "0.1", clock)
    await settle(st)
    assert [a for a, _ in venue.entry_calls] == ["submit"]
    assert [d.reason for d in seen] == []


async def test_only_an_explicit_true_outside_rth_counts(stack) -> None:
    st, venue, clock, _ = stack
    with_sessions(st, NYSE)
    venue.outside_rth = "false"  # a truthy non-bool (a config read wrong) does not open the gate
    seen = denials(st)
    target(st, "0.1", clock)
    await settle(st)
    assert venue.entry_calls == [] and [d.reason for d in seen] == ["outside_session"]


async def test_outside_rth_does_not_lift_the_stale_data_rail(stack) -> None:
    """Allowed out of session still means fresh data: the gate's rail denies on old data."""
    st, venue, clock, _ = stack
    with_sessions(st, NYSE)
    venue.outside_rth = True
    seen = denials(st)
    clock.set_time_ns(clock.time_ns() + 3600 * 1_000_000_000)  # an hour later, no trade since
    target(st, "0.1", clock)
    await settle(st)
    assert venue.entry_calls == []
    assert [d.reason for d in seen] == ["stale_data"]


async def test_the_stale_data_rail_is_quiet_outside_the_session_and_fires_inside(stack) -> None:
    """Data an hour old: outside the session the order is refused as outside_session (the
    stale rail is never reached); inside the session the same old data is stale_data."""
    st, venue, clock, _ = stack
    with_sessions(st, NYSE)
    seen = denials(st)
    clock.set_time_ns(clock.time_ns() + 3600 * 1_000_000_000)
    target(st, "0.1", clock)
    await settle(st)
    assert [d.reason for d in seen] == ["outside_session"]
    clock.set_time_ns(WED_OPEN_NS + 60 * 1_000_000_000)  # Wednesday's open; last data Tuesday night
    target(st, "0.2", clock)
    await settle(st)
    assert [d.reason for d in seen] == ["outside_session", "stale_data"]
    assert venue.entry_calls == []


async def test_past_the_listed_calendar_orders_are_refused(stack) -> None:
    st, venue, clock, _ = stack
    with_sessions(st, NYSE)
    clock.set_time_ns(WED_OPEN_NS + 3 * 86_400 * 1_000_000_000)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    seen = denials(st)
    target(st, "0.1", clock)
    await settle(st)
    assert venue.entry_calls == []
    (d,) = seen
    assert d.reason == OUTSIDE_SESSION and "no later session" in d.detail


async def test_always_open_sessions_behave_as_none(stack) -> None:
    st, venue, clock, _ = stack
    with_sessions(st, TradingSessions.always_open())
    target(st, "0.1", clock)
    await settle(st)
    assert [a for a, _ in venue.entry_calls] == ["submit"]


def bar_of(clock, close: float = 60000.0) -> Bar:
    now = clock.time_ns()
    return Bar(ts_event_ns=now - 60_000_000_000, ts_init_ns=now, instrument_id=BTC, interval_s=60,
               open=close, high=close, low=close, close=close, volume=1.0)


async def test_a_target_refused_at_night_is_planned_at_the_first_bar_after_the_open(stack) -> None:
    st, venue, clock, _ = stack
    with_sessions(st, NYSE)
    target(st, "0.1", clock)
    await settle(st)
    assert venue.entry_calls == [] and st.engine._held_unsubscribe is not None
    st.bus.publish(bar_of(clock))  # a bar while still closed: still held
    await settle(st)
    assert venue.entry_calls == []
    clock.set_time_ns(WED_OPEN_NS + 60 * 1_000_000_000)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    st.bus.publish(bar_of(clock))
    await settle(st)
    assert [a for a, _ in venue.entry_calls] == ["submit"]
    (order,) = st.engine.orders.values()
    assert order.quantity == Decimal("0.1") and order.reason == "test"
    assert st.engine._held_for_open == {} and st.engine._held_unsubscribe is None  # handler gone


async def test_a_24_7_instrument_never_installs_the_session_handler(stack) -> None:
    st, venue, clock, _ = stack
    target(st, "0.1", clock)
    await settle(st)
    assert [a for a, _ in venue.entry_calls] == ["submit"]
    assert st.engine._held_unsubscribe is None and st.engine._held_for_open == {}
