"""SmaCross: exposure mode and quantity mode on a hand-made close sequence; bad bars; live params."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nautilus_hmm.strategies.config import SmaCrossParams, StrategyInstanceConfig
from nautilus_hmm.strategies.sma_cross import SmaCross
from tests.unit.strategies.kit import IID, INTERVAL_S, Rig, bar

# fast 2 / slow 3: bar 3 (11) lifts the fast mean above the slow one; bar 5 (8) takes it below.
CLOSES = [10.0, 10.0, 10.0, 11.0, 9.0, 8.0, 8.0]


def sma(quantity: str = "0", exposure: float = 0.5) -> SmaCross:
    return SmaCross("s1", (IID,), 2, 3, Decimal(quantity), INTERVAL_S, exposure=exposure)


def test_exposure_mode_goes_long_its_exposure_on_the_cross_up_and_flat_on_the_cross_down() -> None:
    rig = Rig(sma())
    rig.run(bar(i, c) for i, c in enumerate(CLOSES))
    assert rig.signals() == [(3, 0.5), (5, 0.0)]
    assert all(t.target_qty is None and t.lane == "production" for t in rig.targets)
    assert [t.reason for t in rig.targets] == ["sma_cross_up", "sma_cross_down"]


def test_quantity_mode_states_the_fixed_size_in_base_units() -> None:
    rig = Rig(sma(quantity="0.1"))
    rig.run(bar(i, c) for i, c in enumerate(CLOSES))
    assert rig.signals() == [(3, Decimal("0.1")), (5, Decimal(0))]
    assert all(t.exposure is None for t in rig.targets)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -1.0])
def test_a_bad_close_is_skipped_and_counted_and_the_averages_never_see_it(bad: float) -> None:
    rig = Rig(sma())
    bars = [bar(i, c) for i, c in enumerate(CLOSES)]
    rig.run([*bars[:3], bar(3, bad), *bars[3:]])
    assert rig.signals() == [(3, 0.5), (5, 0.0)]
    assert rig.strategy.status()["bars_rejected"] == 1  # type: ignore[attr-defined]


def test_live_params_change_the_exposure_and_the_mode() -> None:
    s = sma()
    rig = Rig(s)
    rig.run(bar(i, c) for i, c in enumerate(CLOSES[:3]))
    s.update_params(StrategyInstanceConfig(id="s1", kind="sma_cross",
                                           sma_cross=SmaCrossParams(fast=2, slow=3, exposure=0.8)))
    rig.run(bar(i, c) for i, c in list(enumerate(CLOSES))[3:4])
    s.update_params(StrategyInstanceConfig(id="s1", kind="sma_cross",
                                           sma_cross=SmaCrossParams(fast=2, slow=3, quantity=Decimal("2"))))
    rig.run(bar(i, c) for i, c in list(enumerate(CLOSES))[4:])
    assert rig.signals() == [(3, 0.8), (5, Decimal(0))]
    assert s.status()["mode"] == "quantity"


def test_a_detached_strategy_states_nothing_more() -> None:
    s = sma()
    rig = Rig(s)
    rig.run(bar(i, c) for i, c in enumerate(CLOSES[:4]))
    s.detach()
    rig.run(bar(i, c) for i, c in list(enumerate(CLOSES))[4:])
    assert rig.signals() == [(3, 0.5)]


def test_fast_not_below_slow_is_refused() -> None:
    with pytest.raises(ValueError, match=r"fast \(3\) must be < slow \(3\)"):
        SmaCross("s1", (IID,), 3, 3, Decimal(0), INTERVAL_S)
