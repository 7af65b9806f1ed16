"""Policy: vol-targeted exposure from posteriors, and each guardrail on its own."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from nautilus_hmm.hmm.config import HmmPolicyConfig
from nautilus_hmm.hmm.policy import SECONDS_PER_YEAR, Action, RegimePolicy, mixture_moments
from nautilus_hmm.hmm.runtime import RegimeSnapshot
from tests.unit.hmm.toy import state, toy_model

S = 1_000_000_000
BAR_NS = 300 * S
T0 = 1_700_000_000 * S

UP = (0.1, 0.9)
DOWN = (0.9, 0.1)


def cfg(**kw: object) -> HmmPolicyConfig:
    """Guardrails that are not under test are opened up."""
    base = {"min_dwell_bars": 1, "min_confidence": 0.0, "max_flips_per_hour": 100, "rebalance_threshold": 0.0,
            "min_edge": 0.02}  # the toy model's edges are sized around this (the default is the sweep's, 0.1)
    return dataclasses.replace(HmmPolicyConfig(), **{**base, **kw})


def snap(bar: int, macro: tuple[float, float] = UP, micro: tuple[float, float] | None = UP) -> RegimeSnapshot:
    ts = T0 + bar * BAR_NS
    macro_post = np.array(macro)
    micro_post = None if micro is None else np.array(micro)
    return RegimeSnapshot(
        ts_ns=ts, close_ts_ns=ts + BAR_NS, macro_posterior=macro_post, micro_posterior=micro_post,
        macro_state=int(macro_post.argmax()),
        micro_state=None if micro_post is None else int(micro_post.argmax()), macro_updated=False,
    )


def at(bar: int) -> int:
    """A moment just after bar `bar` closed."""
    return T0 + (bar + 1) * BAR_NS + S


def expected_long(posterior: tuple[float, float], target_vol: float = 0.4) -> float:
    _, sigma = mixture_moments(np.array(posterior), toy_model().micro.hmms[1].states)
    return target_vol / (sigma * math.sqrt(SECONDS_PER_YEAR / 300))


def test_bullish_posteriors_give_a_volatility_targeted_long() -> None:
    policy = RegimePolicy(cfg(), toy_model())
    d = policy.decide(snap(0), at(0))
    assert d.action is Action.TARGET and d.guardrail is None
    assert d.target_exposure == pytest.approx(expected_long(UP))
    assert 0.0 < d.target_exposure < 1.0
    assert d.expected_return == pytest.approx(0.1 * -0.001 + 0.9 * 0.001)
    assert policy.exposure == d.target_exposure


def test_mixture_moments_combine_state_means_and_volatilities() -> None:
    states = (state("a", -0.001, 0.002), state("b", 0.003, 0.001))
    mu, sigma = mixture_moments(np.array([0.25, 0.75]), states)
    assert mu == pytest.approx(0.002)
    second = 0.25 * (0.002**2 + 0.001**2) + 0.75 * (0.001**2 + 0.003**2)
    assert sigma == pytest.approx(math.sqrt(second - 0.002**2))


def test_no_edge_means_no_position() -> None:
    flat_states = (state("down", -1e-6, 0.002), state("up", 1e-6, 0.002))
    policy = RegimePolicy(cfg(), toy_model(micro_states=(flat_states, flat_states)), exposure=0.5)
    d = policy.decide(snap(0), at(0))
    assert d.action is Action.TARGET and d.target_exposure == 0.0
    assert "below min_edge" in d.reason


def test_stale_data_halts_without_changing_the_exposure() -> None:
    policy = RegimePolicy(cfg(stale_data_s=600.0), toy_model(), exposure=0.3)
    d = policy.decide(snap(0), at(0) + 601 * S)
    assert (d.action, d.guardrail, d.target_exposure) == (Action.HALT, "stale_data", 0.3)
    assert policy.decide(snap(0), at(0) + 590 * S).action is Action.TARGET


def test_a_loss_streak_forces_flat_for_the_cooldown() -> None:
    policy = RegimePolicy(cfg(loss_streak=3, cooldown_s=3600.0), toy_model(), exposure=0.5)
    for _ in range(3):
        policy.record_trade_pnl(-10.0, at(0))
    d = policy.decide(snap(1), at(1))
    assert (d.action, d.guardrail, d.target_exposure) == (Action.FLAT, "cooldown", 0.0)
    assert policy.exposure == 0.0
    after = policy.decide(snap(13), at(0) + 3601 * S)
    assert after.action is Action.TARGET and after.target_exposure > 0


def test_a_winning_trade_resets_the_loss_streak() -> None:
    policy = RegimePolicy(cfg(loss_streak=2), toy_model())
    policy.record_trade_pnl(-1.0, at(0))
    policy.record_trade_pnl(5.0, at(0))
    policy.record_trade_pnl(-1.0, at(0))
    assert policy.cooldown_until_ns == 0
    assert policy.decide(snap(0), at(0)).guardrail is None


def test_not_ready_posteriors_hold() -> None:
    policy = RegimePolicy(cfg(), toy_model(), exposure=0.2)
    d = policy.decide(snap(0, micro=None), at(0))
    assert (d.action, d.guardrail, d.target_exposure) == (Action.HOLD, "warmup", 0.2)


def test_macro_micro_disagreement_goes_flat() -> None:
    policy = RegimePolicy(cfg(disagreement="flat", allow_short=True), toy_model(), exposure=0.4)
    d = policy.decide(snap(0, macro=DOWN, micro=UP), at(0))
    assert (d.action, d.guardrail, d.target_exposure) == (Action.TARGET, "disagreement", 0.0)


def test_macro_micro_disagreement_can_reduce_instead() -> None:
    policy = RegimePolicy(cfg(disagreement="reduce", disagreement_scale=0.5), toy_model())
    d = policy.decide(snap(0, macro=DOWN, micro=UP), at(0))
    assert d.guardrail == "disagreement"
    assert d.target_exposure == pytest.approx(0.5 * expected_long(UP))


def test_short_signal_is_clamped_to_flat_unless_shorts_are_allowed() -> None:
    long_only = RegimePolicy(cfg(allow_short=False), toy_model(), exposure=0.3)
    d = long_only.decide(snap(0, macro=DOWN, micro=DOWN), at(0))
    assert (d.guardrail, d.target_exposure) == ("long_only", 0.0)
    assert d.signal_exposure < 0
    both_ways = RegimePolicy(cfg(allow_short=True), toy_model())
    assert both_ways.decide(snap(0, macro=DOWN, micro=DOWN), at(0)).target_exposure < 0


def test_exposure_is_capped_at_max_exposure() -> None:
    calm = (state("down", -0.0002, 0.0002), state("up", 0.0002, 0.0002))
    policy = RegimePolicy(cfg(max_exposure=0.75), toy_model(micro_states=(calm, calm)))
    d = policy.decide(snap(0), at(0))
    assert d.signal_exposure > 0.75
    assert (d.action, d.guardrail, d.target_exposure) == (Action.TARGET, "max_position", 0.75)


def test_low_confidence_blocks_adding_risk_but_not_cutting_it() -> None:
    unsure = (0.45, 0.55)
    entering = RegimePolicy(cfg(min_confidence=0.6), toy_model())
    d = entering.decide(snap(0, micro=unsure), at(0))
    assert (d.action, d.guardrail, d.target_exposure) == (Action.HOLD, "low_confidence", 0.0)
    holding_more = RegimePolicy(cfg(min_confidence=0.6), toy_model(), exposure=0.9)
    d = holding_more.decide(snap(0, micro=unsure), at(0))
    assert d.action is Action.TARGET and d.target_exposure < 0.9


def test_a_new_side_waits_for_the_minimum_dwell() -> None:
    policy = RegimePolicy(cfg(min_dwell_bars=3), toy_model())
    decisions = [policy.decide(snap(i), at(i)) for i in range(3)]
    assert [(d.action, d.guardrail) for d in decisions[:2]] == [(Action.HOLD, "min_dwell")] * 2
    assert decisions[2].action is Action.TARGET
    assert policy.dwell_bars == 3


def test_deciding_the_same_bar_again_does_not_count_dwell_twice() -> None:
    policy = RegimePolicy(cfg(min_dwell_bars=2), toy_model())
    policy.decide(snap(0), at(0))
    assert policy.decide(snap(0), at(0) + S).guardrail == "min_dwell"
    assert policy.dwell_bars == 1


def test_side_changes_are_limited_per_hour() -> None:
    policy = RegimePolicy(cfg(max_flips_per_hour=2, allow_short=True), toy_model())
    sides = [UP, DOWN, UP, DOWN]
    decisions = [policy.decide(snap(i, macro=m, micro=m), at(i)) for i, m in enumerate(sides)]
    assert [d.action for d in decisions[:2]] == [Action.TARGET, Action.TARGET]
    assert (decisions[2].action, decisions[2].guardrail) == (Action.HOLD, "max_flips")
    assert policy.flips_in_last_hour(at(3)) == 2
    later = policy.decide(snap(20, macro=UP, micro=UP), at(3) + 3600 * S)
    assert later.action is Action.TARGET and later.target_exposure > 0


def test_small_changes_below_the_rebalance_threshold_hold_but_exits_go() -> None:
    target = expected_long(UP)
    policy = RegimePolicy(cfg(rebalance_threshold=0.05), toy_model(), exposure=target - 0.01)
    d = policy.decide(snap(0), at(0))
    assert (d.action, d.guardrail, d.target_exposure) == (Action.HOLD, "rebalance", target - 0.01)
    tiny = RegimePolicy(cfg(rebalance_threshold=0.05, allow_short=False), toy_model(), exposure=0.01)
    exit_ = tiny.decide(snap(0, macro=DOWN, micro=DOWN), at(0))
    assert (exit_.action, exit_.target_exposure) == (Action.TARGET, 0.0)


def test_a_new_model_restarts_the_dwell_count() -> None:
    policy = RegimePolicy(cfg(), toy_model())
    policy.decide(snap(0), at(0))
    policy.decide(snap(1), at(1))
    policy.set_model(toy_model())
    policy.decide(snap(2), at(2))
    assert policy.dwell_bars == 1
