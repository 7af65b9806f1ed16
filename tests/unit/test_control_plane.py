"""ControlPlane: the web port over the real router (allocator and governance optional)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nautilus_hmm.control.allocation import AllocationError
from nautilus_hmm.control.plane import ControlPlane, RouterGovernanceInputs
from nautilus_hmm.control.router import Route, RouterConfig, StrategyRouter
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.marks import MarkBook
from nautilus_hmm.messages import StrategyStateChanged

BTC = InstrumentId("sim", "BTCUSDT")


def plane_of(*ids: str) -> tuple[ControlPlane, StrategyRouter, Bus, MarkBook, ManualClock]:
    bus, clock, marks = Bus(), ManualClock(), MarkBook()
    router = StrategyRouter(bus, clock, marks, {}, None, lambda: 100_000.0, RouterConfig())
    router.configure({sid: Route(sid, (BTC,)) for sid in ids})
    plane = ControlPlane(router, describe=lambda sid: {"kind": "scripted", "strategy_id": "shadowed"})
    return plane, router, bus, marks, clock


def test_views_join_the_strategy_fields_to_the_router_rows() -> None:
    plane, *_ = plane_of("a", "b")
    rows = plane.strategy_views()
    assert [(r["strategy_id"], r["kind"]) for r in rows] == [("a", "scripted"), ("b", "scripted")]
    assert plane.strategy_view("b")["strategy_id"] == "b"  # the router's fields win  # type: ignore[index]
    assert plane.strategy_view("nope") is None


def test_actions_map_to_router_states_and_publish_the_change() -> None:
    plane, router, bus, *_ = plane_of("a", "b")
    changes: list[StrategyStateChanged] = []
    bus.subscribe(StrategyStateChanged, changes.append)
    assert plane.set_strategy_state("a", "reduce", "review", "admin")["state"] == "reduce"
    assert plane.set_strategy_state("a", "disable", "broken", "admin")["state"] == "disabled"
    assert plane.set_strategy_state("a", "enable", "fixed", "admin")["state"] == "active"
    assert [(c.strategy_id, c.new, c.source) for c in changes] == [
        ("a", "reduce", "admin"), ("a", "disabled", "admin"), ("a", "active", "admin")]
    assert router.state("b") == "active"


def test_an_unknown_id_or_action_changes_nothing() -> None:
    plane, router, *_ = plane_of("a")
    with pytest.raises(KeyError):
        plane.set_strategy_state("nope", "disable", "x", "admin")
    with pytest.raises(ValueError, match="action = 'halt'"):
        plane.set_strategy_state("a", "halt", "x", "admin")
    assert router.state("a") == "active"


def test_without_an_allocator_or_governance_the_views_say_so_and_overrides_are_refused() -> None:
    plane, *_ = plane_of("a")
    assert plane.allocation_view()["enabled"] is False
    assert plane.governance_view()["enabled"] is False
    with pytest.raises(AllocationError) as info:
        plane.set_allocation_override({"a": 1.0}, 60.0, "admin")
    assert info.value.field == "shares"


def test_governance_inputs_read_the_mark_book_and_the_router() -> None:
    _plane, router, _bus, marks, clock = plane_of("a")
    inputs = RouterGovernanceInputs(router, clock, lambda: {"a": (BTC,)}, marks.marks, marks.last_ns,
                                    lambda venue: venue == "sim")
    assert inputs.data_age_s(BTC) is None and inputs.mark(BTC) is None
    marks.update(BTC, 60_000.0, clock.time_ns())
    clock.advance(3)
    assert inputs.data_age_s(BTC) == 3.0 and inputs.mark(BTC) == 60_000.0
    assert inputs.strategy_ids() == ["a"] and inputs.instruments("a") == (BTC,) and inputs.instruments("x") == ()
    assert inputs.capital_usd("a") == 100_000.0 and inputs.venue_ok("sim") and not inputs.venue_ok("bybit")
    assert inputs.stats("a").loss_streak == 0 and router.position("a", BTC) == Decimal(0)
