"""Strategy kinds in one place: `STRATEGY_KINDS` and `build_strategy(instance, hmm)`.

A bad parameter set raises ValueError naming the field as the config does
(`sma_cross.fast = 50: must be < slow (30)`); the loader reports the same rules with
the instance's path first, so a config that loaded always builds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.hmm.config import HmmConfig
from nautilus_hmm.strategies.base import Strategy
from nautilus_hmm.strategies.breakout import Breakout
from nautilus_hmm.strategies.config import STRATEGY_KIND_NAMES, StrategyInstanceConfig
from nautilus_hmm.strategies.mean_reversion import MeanReversion
from nautilus_hmm.strategies.sma_cross import SmaCross

StrategyBuilder = Callable[[StrategyInstanceConfig, tuple[InstrumentId, ...], HmmConfig], Strategy]


def _sma_cross(inst: StrategyInstanceConfig, iids: tuple[InstrumentId, ...], _hmm: HmmConfig) -> Strategy:
    p = inst.sma_cross
    return SmaCross(inst.id, iids, p.fast, p.slow, p.quantity, inst.bar_interval_s, exposure=p.exposure)


def _breakout(inst: StrategyInstanceConfig, iids: tuple[InstrumentId, ...], _hmm: HmmConfig) -> Strategy:
    p = inst.breakout
    return Breakout(inst.id, iids, p.lookback, p.exit_lookback, inst.bar_interval_s, exposure=p.exposure,
                    short=p.short)


def _mean_reversion(inst: StrategyInstanceConfig, iids: tuple[InstrumentId, ...], _hmm: HmmConfig) -> Strategy:
    p = inst.mean_reversion
    return MeanReversion(inst.id, iids, p.window, p.entry_z, p.exit_z, inst.bar_interval_s, exposure=p.exposure,
                         short=p.short)


def _hmm(inst: StrategyInstanceConfig, iids: tuple[InstrumentId, ...], hmm: HmmConfig) -> Strategy:
    from nautilus_hmm.strategies.hmm import HmmStrategy  # numpy and the model: only when configured

    # Models come from this strategy's ModelService (registry scope <state_dir>/models/<id>).
    return HmmStrategy(inst.id, iids, hmm, bar_interval_s=inst.bar_interval_s, canary_share=inst.canary_share)


STRATEGY_KINDS: Mapping[str, StrategyBuilder] = MappingProxyType({
    "hmm": _hmm,
    "sma_cross": _sma_cross,
    "breakout": _breakout,
    "mean_reversion": _mean_reversion,
})
assert tuple(STRATEGY_KINDS) == STRATEGY_KIND_NAMES  # one list of kinds: config choices and builders


def build_strategy(inst: StrategyInstanceConfig, hmm: HmmConfig) -> Strategy:
    """The strategy an instance config describes (not attached); ValueError names a bad field."""
    problems = inst.check()
    if problems:
        field, value, msg = problems[0]
        raise ValueError(f"{field} = {value!r}: {msg}")
    iids: list[InstrumentId] = []
    for i, text in enumerate(inst.instruments):
        try:
            iids.append(InstrumentId.parse(text))
        except ValueError as exc:
            raise ValueError(f"instruments[{i}] = {text!r}: {exc}") from exc
    return STRATEGY_KINDS[inst.kind](inst, tuple(iids), hmm)
