"""The allocator's pure arithmetic: scores, the projection into bounds, step limits, evidence."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nautilus_hmm.control.allocation import (
    AllocationError,
    AllocatorConfig,
    ShareBounds,
    UnknownStrategyError,
    check_bounds,
    compute_shares,
    max_drawdown,
    project_shares,
    score_returns,
    static_shares,
    step_returns,
    validate_override,
)

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def feasible_box(draw, max_n=8):
    """Bounds lo <= hi per strategy with sum(lo) <= 1 <= sum(hi)."""
    n = draw(st.integers(1, max_n))
    pairs = [sorted((draw(unit), draw(unit))) for _ in range(n)]
    lo = [p[0] for p in pairs]
    hi = [p[1] for p in pairs]
    s_lo = math.fsum(lo)
    if s_lo > 1:
        lo = [v / s_lo * draw(st.floats(0.0, 1.0)) for v in lo]
        hi = [max(h, low) for h, low in zip(hi, lo, strict=True)]
    assume(math.fsum(hi) >= 1)
    ids = [f"s{i}" for i in range(n)]
    return dict(zip(ids, lo, strict=True)), dict(zip(ids, hi, strict=True))


@settings(max_examples=400, deadline=None)
@given(box=feasible_box(), data=st.data())
def test_projection_of_any_target_stays_in_bounds_and_sums_to_one(box, data):
    lo, hi = box
    target = {s: data.draw(st.floats(-5.0, 5.0, allow_nan=False)) for s in lo}
    x = project_shares(target, lo, hi)
    assert set(x) == set(lo)
    for s in x:
        assert lo[s] <= x[s] <= hi[s]
    assert abs(math.fsum(x.values()) - 1.0) <= 1e-9


@settings(max_examples=200, deadline=None)
@given(box=feasible_box(), data=st.data())
def test_projection_keeps_a_target_that_already_fits(box, data):
    lo, hi = box
    # A point of the feasible set: the projection of anything; projecting it again changes nothing.
    inside = project_shares({s: data.draw(unit) for s in lo}, lo, hi)
    again = project_shares(inside, lo, hi)
    for s in inside:
        assert again[s] == pytest.approx(inside[s], abs=1e-9)


def test_projection_rejects_bounds_that_cannot_sum_to_one():
    with pytest.raises(AllocationError) as exc:
        project_shares({"a": 0.5, "b": 0.5}, {"a": 0.6, "b": 0.6}, {"a": 1.0, "b": 1.0})
    assert exc.value.field == "min_share"
    with pytest.raises(AllocationError) as exc:
        project_shares({"a": 0.5, "b": 0.5}, {"a": 0.0, "b": 0.0}, {"a": 0.4, "b": 0.4})
    assert exc.value.field == "max_share"


@st.composite
def strategies_with_bounds(draw):
    lo, hi = draw(feasible_box(max_n=6))
    return {s: ShareBounds(lo[s], hi[s], draw(st.floats(0.0, 5.0))) for s in lo}


@settings(max_examples=200, deadline=None)
@given(bounds=strategies_with_bounds(), data=st.data())
def test_rebalanced_shares_stay_in_bounds_sum_to_one_and_move_at_most_max_step(bounds, data):
    cfg = AllocatorConfig(min_evidence=5, lookback=20, max_step=0.05)
    current = static_shares(bounds)
    series = {s: [(i, data.draw(st.floats(-1e3, 1e3))) for i in range(data.draw(st.integers(0, 25)))]
              for s in bounds}
    bandit = {s: data.draw(unit) for s in bounds}
    shares, inputs = compute_shares(cfg, bounds, series, {s: 1e4 for s in bounds}, current, bandit)
    assert abs(math.fsum(shares.values()) - 1.0) <= 1e-9
    for s, b in bounds.items():
        assert b.min_share <= shares[s] <= b.max_share
        if not inputs["step_relaxed"]:
            assert abs(shares[s] - current[s]) <= cfg.max_step + 1e-12


def test_static_shares_are_weights_over_the_sum_of_enabled_weights():
    shares = static_shares({"a": ShareBounds(0, 1, 1.0), "b": ShareBounds(0, 1, 3.0)})
    assert shares == pytest.approx({"a": 0.25, "b": 0.75})


def test_static_shares_respect_the_bounds():
    shares = static_shares({"a": ShareBounds(0.4, 1, 1.0), "b": ShareBounds(0, 1, 3.0)})
    assert shares["a"] == pytest.approx(0.4)
    assert shares["b"] == pytest.approx(0.6)


def test_step_returns_are_pnl_steps_over_capital_within_the_lookback():
    series = [(0, 0.0), (1, 10.0), (2, 5.0), (3, float("nan")), (4, 20.0), (5, 30.0)]
    assert step_returns(series, 100.0, lookback=10) == [0.1, -0.05, 0.1]
    assert step_returns(series, 100.0, lookback=1) == [0.1]
    assert step_returns(series, 0.0, lookback=10) == []


def test_max_drawdown_is_the_largest_fall_from_a_peak_of_the_cumulative_return():
    assert max_drawdown([0.1, -0.05, -0.1, 0.3, -0.02]) == pytest.approx(0.15)
    assert max_drawdown([-0.1, 0.05]) == pytest.approx(0.1)
    assert max_drawdown([0.1, 0.1]) == 0.0


def test_score_is_the_t_statistic_minus_the_drawdown_penalty():
    r = [0.01, -0.005, 0.02, 0.0]
    sc = score_returns(r, drawdown_penalty=10.0)
    mean = sum(r) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in r) / 3)
    assert sc.risk_adjusted == pytest.approx(mean / std * 2.0)
    assert sc.max_drawdown == pytest.approx(0.005)
    assert sc.score == pytest.approx(mean / std * 2.0 - 0.05)


def test_a_constant_return_is_clipped_not_infinite():
    assert score_returns([0.01] * 5, 0.0).risk_adjusted == 10.0
    assert score_returns([0.0] * 5, 0.0).risk_adjusted == 0.0


def _curve(step_pnls):
    out, total = [(0, 0.0)], 0.0
    for i, d in enumerate(step_pnls, 1):
        total += d
        out.append((i, total))
    return out


def test_before_min_evidence_the_shares_stay_static():
    bounds = {"a": ShareBounds(0, 1, 1.0), "b": ShareBounds(0, 1, 1.0)}
    cfg = AllocatorConfig(min_evidence=10, lookback=50, bandit_weight=0.0)
    series = {"a": _curve([5.0, 6.0, 4.0] * 3), "b": _curve([-5.0, -6.0, -4.0] * 3)}  # 9 steps < 10
    shares, inputs = compute_shares(cfg, bounds, series, {"a": 1e3, "b": 1e3}, {"a": 0.5, "b": 0.5})
    assert shares == pytest.approx({"a": 0.5, "b": 0.5})
    assert inputs["mode"] == "static"
    assert inputs["strategies"]["a"]["returns_n"] == 9


def test_with_evidence_the_better_curve_gains_at_most_max_step():
    bounds = {"a": ShareBounds(0, 1, 1.0), "b": ShareBounds(0, 1, 1.0)}
    cfg = AllocatorConfig(min_evidence=10, lookback=50, max_step=0.05, bandit_weight=0.0)
    series = {"a": _curve([5.0, 6.0, 4.0] * 4), "b": _curve([-5.0, 1.0, -4.0] * 4)}
    shares, inputs = compute_shares(cfg, bounds, series, {"a": 1e3, "b": 1e3}, {"a": 0.5, "b": 0.5})
    assert shares == pytest.approx({"a": 0.55, "b": 0.45})
    assert inputs["mode"] == "rebalance"
    assert inputs["strategies"]["a"]["score"] > inputs["strategies"]["b"]["score"]
    assert inputs["strategies"]["a"]["target_share"] > 0.99


def test_a_strategy_without_evidence_keeps_its_static_share_while_others_compete_for_theirs():
    bounds = {"a": ShareBounds(0, 1, 1.0), "b": ShareBounds(0, 1, 1.0), "new": ShareBounds(0, 1, 2.0)}
    cfg = AllocatorConfig(min_evidence=10, lookback=50, max_step=1.0, bandit_weight=0.0)
    series = {"a": _curve([5.0, 6.0, 4.0] * 4), "b": _curve([-5.0, 1.0, -4.0] * 4), "new": _curve([1.0])}
    shares, _ = compute_shares(cfg, bounds, series, dict.fromkeys(bounds, 1e3), static_shares(bounds))
    assert shares["new"] == pytest.approx(0.5)
    assert shares["a"] + shares["b"] == pytest.approx(0.5)
    assert shares["a"] > 0.49


def test_bandit_weight_blends_the_bandits_choice():
    bounds = {"a": ShareBounds(0, 1, 1.0), "b": ShareBounds(0, 1, 1.0)}
    flat = {"a": _curve([1.0, -1.0] * 10), "b": _curve([1.0, -1.0] * 10)}  # equal scores
    cfg = AllocatorConfig(min_evidence=10, lookback=50, max_step=1.0, bandit_weight=0.5)
    shares, inputs = compute_shares(cfg, bounds, flat, {"a": 1e3, "b": 1e3}, {"a": 0.5, "b": 0.5},
                                    bandit_weights={"a": 1.0, "b": 0.0})
    assert shares == pytest.approx({"a": 0.75, "b": 0.25})
    assert inputs["bandit_blend"] == 0.5
    assert inputs["strategies"]["a"]["bandit_weight"] == 1.0


def test_a_drawdown_lowers_the_score():
    bounds = {"a": ShareBounds(0, 1, 1.0), "b": ShareBounds(0, 1, 1.0)}
    steady = [2.0, 1.0] * 10
    crash = [2.0, 1.0] * 5 + [-40.0] + [5.5, 6.5] * 5  # same total, deep drawdown
    cfg = AllocatorConfig(min_evidence=10, lookback=50, bandit_weight=0.0, drawdown_penalty=50.0)
    _, inputs = compute_shares(cfg, bounds, {"a": _curve(steady), "b": _curve(crash)}, {"a": 1e3, "b": 1e3},
                               {"a": 0.5, "b": 0.5})
    a, b = inputs["strategies"]["a"], inputs["strategies"]["b"]
    assert b["max_drawdown"] == pytest.approx(0.04)
    assert a["score"] > b["score"]


def test_a_current_share_outside_new_bounds_moves_to_the_bound_at_once():
    bounds = {"a": ShareBounds(0, 0.3, 1.0), "b": ShareBounds(0, 1, 1.0)}
    cfg = AllocatorConfig(max_step=0.05)
    shares, _ = compute_shares(cfg, bounds, {}, {}, {"a": 0.9, "b": 0.1})
    assert shares["a"] == pytest.approx(0.3)
    assert shares["b"] == pytest.approx(0.7)


def test_check_bounds_names_floors_or_ceilings_that_cannot_sum_to_one():
    assert check_bounds({"a": ShareBounds(0.6, 1, 1), "b": ShareBounds(0.6, 1, 1)})[0][0] == "strategies.min_share"
    assert check_bounds({"a": ShareBounds(0, 0.4, 1), "b": ShareBounds(0, 0.4, 1)})[0][0] == "strategies.max_share"
    assert check_bounds({"a": ShareBounds(0, 1, 1)}) == []


def test_config_rejects_min_evidence_above_lookback():
    assert AllocatorConfig(lookback=10, min_evidence=20).validate()[0][0] == "min_evidence"


BOUNDS = {"a": ShareBounds(0.1, 0.8, 1.0), "b": ShareBounds(0.0, 1.0, 1.0)}


def test_override_accepts_shares_within_bounds_summing_to_one():
    assert validate_override({"a": 0.7, "b": 0.3}, BOUNDS, 60) == {"a": 0.7, "b": 0.3}


def test_override_names_an_unknown_strategy():
    with pytest.raises(UnknownStrategyError, match="nope"):
        validate_override({"a": 0.5, "nope": 0.5}, BOUNDS, 60)


@pytest.mark.parametrize(("shares", "expires_s", "field"), [
    ({"a": 0.9, "b": 0.1}, 60, "shares.a"),          # above max_share
    ({"b": 1.0}, 60, "shares.a"),                    # a left out = 0 < min_share
    ({"a": 0.5, "b": 0.4}, 60, "shares"),            # sums to 0.9
    ({"a": "x", "b": 0.5}, 60, "shares.a"),
    ({"a": 0.5, "b": float("nan")}, 60, "shares.b"),
    ({"a": 0.5, "b": 0.5}, 0, "expires_s"),
    ({"a": 0.5, "b": 0.5}, float("inf"), "expires_s"),
    ({}, 60, "shares"),
])
def test_override_rejects_bad_shares_naming_the_field(shares, expires_s, field):
    with pytest.raises(AllocationError) as exc:
        validate_override(shares, BOUNDS, expires_s)
    assert exc.value.field == field
