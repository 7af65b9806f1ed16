"""build_strategy: one builder per kind; a bad instance raises a ValueError naming the field."""

from __future__ import annotations

import dataclasses

import pytest

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.hmm.config import HmmConfig
from nautilus_hmm.strategies.breakout import Breakout
from nautilus_hmm.strategies.config import (
    STRATEGY_KIND_NAMES,
    SmaCrossParams,
    StrategyInstanceConfig,
)
from nautilus_hmm.strategies.factory import STRATEGY_KINDS, build_strategy
from nautilus_hmm.strategies.hmm import HmmStrategy
from nautilus_hmm.strategies.mean_reversion import MeanReversion
from nautilus_hmm.strategies.sma_cross import SmaCross


def inst(kind: str, **kw: object) -> StrategyInstanceConfig:
    return StrategyInstanceConfig(id=f"my-{kind}".replace("_", "-"), kind=kind,
                                  instruments=("sim:BTCUSDT", "sim:ETHUSDT"), bar_interval_s=60, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "cls"), [("sma_cross", SmaCross), ("breakout", Breakout),
                                           ("mean_reversion", MeanReversion), ("hmm", HmmStrategy)])
def test_each_kind_builds_its_strategy_with_the_instance_id_and_instruments(kind: str, cls: type) -> None:
    s = build_strategy(inst(kind), HmmConfig())
    assert isinstance(s, cls)
    assert (s.strategy_id, s.kind) == (f"my-{kind}".replace("_", "-"), kind)
    assert s.instruments == (InstrumentId("sim", "BTCUSDT"), InstrumentId("sim", "ETHUSDT"))


def test_the_registry_has_every_configurable_kind() -> None:
    assert tuple(STRATEGY_KINDS) == STRATEGY_KIND_NAMES


def test_an_hmm_instance_carries_its_canary_share() -> None:
    s = build_strategy(inst("hmm", canary_share=0.3), HmmConfig())
    assert isinstance(s, HmmStrategy) and s.canary_share == 0.3 and s.bar_interval_s == 60


@pytest.mark.parametrize(("bad", "message"), [
    (inst("sma_cross", sma_cross=SmaCrossParams(fast=50, slow=30)), "sma_cross.fast = 50: must be < slow (30)"),
    (inst("breakout", canary_share=0.5), "canary_share = 0.5: only an hmm strategy has a canary"),
    (dataclasses.replace(inst("breakout"), id="No Spaces"), "id = 'No Spaces': must be 1-32"),
    (dataclasses.replace(inst("breakout"), kind="rsi"), "kind = 'rsi': must be one of"),
    (dataclasses.replace(inst("breakout"), instruments=("BTCUSDT",)),
     "instruments[0] = 'BTCUSDT': instrument id 'BTCUSDT': expected 'venue:SYMBOL'"),
])
def test_a_bad_instance_raises_a_value_error_naming_the_field(bad: StrategyInstanceConfig, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        build_strategy(bad, HmmConfig())
    assert str(exc.value).startswith(message)


def test_an_hmm_bar_interval_that_does_not_divide_the_base_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="bar_interval_s 7: must divide the model's base interval"):
        build_strategy(dataclasses.replace(inst("hmm"), bar_interval_s=7), HmmConfig())
