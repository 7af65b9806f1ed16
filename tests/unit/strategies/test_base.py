"""StrategyContext: targets go out as StrategyTarget; position, capital and marks come from the callables given."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import StrategyTarget, TargetPosition
from nautilus_hmm.strategies.base import StrategyContext, exposure_to_qty
from tests.unit.strategies.kit import IID, T0


def rig(**kw: object) -> tuple[StrategyContext, list[StrategyTarget], list[TargetPosition]]:
    bus = Bus()
    out: list[StrategyTarget] = []
    direct: list[TargetPosition] = []
    bus.subscribe(StrategyTarget, out.append)
    bus.subscribe(TargetPosition, direct.append)
    ctx = StrategyContext("trend", bus, ManualClock(T0 + 5), lambda iid: Decimal("0.5"), **kw)  # type: ignore[arg-type]
    return ctx, out, direct


def test_a_quantity_target_is_published_as_a_strategy_target_for_the_router_never_to_the_engine() -> None:
    ctx, out, direct = rig()
    ctx.target(IID, Decimal("0.1"), "sma_cross_up", T0)
    (t,) = out
    assert (t.strategy_id, t.instrument_id, t.target_qty, t.exposure, t.reason, t.lane) == \
        ("trend", IID, Decimal("0.1"), None, "sma_cross_up", "production")
    assert (t.ts_event_ns, t.ts_init_ns) == (T0, T0 + 5)
    assert direct == []


def test_an_exposure_target_names_its_lane() -> None:
    ctx, out, _ = rig()
    ctx.target_exposure(IID, -0.25, "canary says short", T0, lane="canary")
    (t,) = out
    assert (t.exposure, t.target_qty, t.lane) == (-0.25, None, "canary")


def test_without_a_router_there_is_no_capital_and_the_context_is_not_routed() -> None:
    ctx, _, _ = rig()
    assert ctx.capital_usd() is None and ctx.capital_usd("canary") is None and not ctx.routed
    assert ctx.mark(IID) is None
    assert ctx.position(IID) == Decimal("0.5")


def test_with_a_router_capital_is_read_per_lane() -> None:
    ctx, _, _ = rig(capital=lambda lane: {"production": 7_500.0, "canary": 2_500.0}[lane],
                    mark=lambda iid: 101.5)
    assert ctx.routed
    assert (ctx.capital_usd(), ctx.capital_usd("canary")) == (7_500.0, 2_500.0)
    assert ctx.mark(IID) == 101.5


def test_exposure_to_qty_rounds_toward_zero_and_refuses_a_bad_price() -> None:
    assert exposure_to_qty(0.5, 10_000.0, 3.0) == Decimal("1666.666666666666")
    assert exposure_to_qty(-0.5, 10_000.0, 3.0) == Decimal("-1666.666666666666")
    with pytest.raises(ValueError, match=r"price 0\.0"):
        exposure_to_qty(0.5, 10_000.0, 0.0)
