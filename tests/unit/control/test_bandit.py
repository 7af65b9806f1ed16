"""Discounted Gaussian Thompson sampling: convergence to the strategy with the edge, tracking
a moving edge, persistence and damaged state files."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from structlog.testing import capture_logs

from nautilus_hmm.control.bandit import (
    BanditConfig,
    BanditFeedback,
    BanditStateError,
    GaussianThompson,
    load_state,
    save_state,
)

STEPS_TO_CONVERGE = 300
STEPS_TO_FOLLOW = 400  # after the edge moves; memory of discount 0.995 is ~200 steps


def synthetic_market(seed: int, steps: int, switch_at: int, hit_rate: float = 0.8, sigma_bps: float = 10.0):
    """Per step: a market return r ~ N(0, sigma); the informed strategy holds a signal that is
    right with probability `hit_rate`, the other a coin flip; rewards are position x r (bps).
    Strategy "a" is informed before `switch_at`, "b" after."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        r = rng.normal(0.0, sigma_bps)
        informed, other = ("a", "b") if t < switch_at else ("b", "a")
        signal = math.copysign(1.0, r) if rng.random() < hit_rate else -math.copysign(1.0, r)
        yield {informed: signal * r, other: rng.choice([-1.0, 1.0]) * r}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_converge_to_the_edge_within_300_steps_and_follow_it_within_400_after_it_moves(seed):
    bandit = GaussianThompson(prior_mean=0.0, prior_var=1.0, obs_var=100.0, discount=0.995)
    rng = np.random.default_rng(seed)
    at_convergence = after_move = None
    for t, rewards in enumerate(synthetic_market(seed, STEPS_TO_CONVERGE + STEPS_TO_FOLLOW, STEPS_TO_CONVERGE), 1):
        for arm, reward in rewards.items():
            bandit.update(arm, reward)
        if t == STEPS_TO_CONVERGE:
            at_convergence = bandit.weights(rng, ["a", "b"], samples=4000)
    after_move = bandit.weights(rng, ["a", "b"], samples=4000)
    assert at_convergence["a"] > 0.9
    assert after_move["b"] > 0.9


def test_without_discount_the_weights_lag_a_moved_edge():
    stationary = GaussianThompson(0.0, 1.0, 100.0, discount=1.0)
    discounted = GaussianThompson(0.0, 1.0, 100.0, discount=0.995)
    for rewards in synthetic_market(0, STEPS_TO_CONVERGE + STEPS_TO_FOLLOW, STEPS_TO_CONVERGE):
        for arm, reward in rewards.items():
            stationary.update(arm, reward)
            discounted.update(arm, reward)
    rng = np.random.default_rng(0)
    assert discounted.weights(rng, ["a", "b"])["b"] > stationary.weights(rng, ["a", "b"])["b"]


def test_weights_sum_to_one_and_an_unseen_arm_has_the_prior():
    bandit = GaussianThompson(0.5, 2.0, 10.0, 1.0)
    bandit.update("a", 1.0)
    w = bandit.weights(np.random.default_rng(1), ["a", "b", "c"], samples=500)
    assert set(w) == {"a", "b", "c"}
    assert sum(w.values()) == pytest.approx(1.0)
    assert bandit.posterior("c") == (0.5, 2.0)


def test_posterior_is_the_conjugate_normal_update():
    bandit = GaussianThompson(prior_mean=0.0, prior_var=4.0, obs_var=1.0, discount=1.0)
    for r in (1.0, 2.0, 3.0):
        bandit.update("a", r)
    mean, var = bandit.posterior("a")
    precision = 1 / 4.0 + 3 / 1.0
    assert var == pytest.approx(1 / precision)
    assert mean == pytest.approx(6.0 / precision)


def test_non_finite_reward_is_no_evidence():
    bandit = GaussianThompson()
    bandit.update("a", float("nan"))
    bandit.update("a", float("inf"))
    assert "a" not in bandit.arms


def test_same_seed_gives_same_weights():
    bandit = GaussianThompson(0.0, 1.0, 1.0, 1.0)
    bandit.update("a", 0.1)
    bandit.update("b", 0.0)
    assert bandit.weights(np.random.default_rng(7), ["a", "b"]) == bandit.weights(np.random.default_rng(7), ["a", "b"])


def test_state_round_trips_through_its_file(tmp_path):
    bandit = GaussianThompson(0.1, 2.0, 50.0, 0.99)
    for r in (1.0, -2.0, 0.5):
        bandit.update("trend", r)
    path = tmp_path / "bandit.json"
    save_state(path, bandit)
    back = load_state(path, BanditConfig(discount=0.99))
    assert back.to_dict() == bandit.to_dict()


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"version": 1, "prior_mean": 0, "prior_var": -1, "obs_var": 1, "discount": 1, "arms": {}}',
                                     b'{"version": 1, "prior_mean": 0, "prior_var": 1, "obs_var": 1, "discount": 1, "arms": {"a": {"n_eff": "x", "sum_reward": 0}}}',
                                     b""])
def test_damaged_state_file_falls_back_to_the_prior_with_a_warning_naming_the_file(tmp_path, content):
    path = tmp_path / "bandit.json"
    path.write_bytes(content)
    cfg = BanditConfig(prior_mean=0.25, prior_var=3.0, obs_var=9.0)
    with capture_logs() as logs:
        bandit = load_state(path, cfg)
    assert bandit.arms == {}
    assert (bandit.prior_mean, bandit.prior_var, bandit.obs_var) == (0.25, 3.0, 9.0)
    warning = [e for e in logs if e["event"] == "bandit_state_damaged"]
    assert warning and warning[0]["file"] == str(path) and warning[0]["fallback"] == "prior"


def test_from_dict_names_the_bad_field():
    doc = GaussianThompson().to_dict()
    doc["arms"] = {"trend": {"n_eff": -1.0, "sum_reward": 0.0, "steps": 1}}
    with pytest.raises(BanditStateError, match=r"arms\.trend\.n_eff"):
        GaussianThompson.from_dict(doc)


def test_feedback_persists_observations_and_reloads_them(tmp_path):
    path = tmp_path / "bandit.json"
    cfg = BanditConfig(seed=3)
    fb = BanditFeedback(lambda: cfg, path)
    fb.observe("a", 5.0)
    fb.observe("b", -5.0)
    w = fb.weights(["a", "b"])
    assert w["a"] > w["b"]
    fb.save()
    again = BanditFeedback(lambda: cfg, path)
    assert again.bandit.to_dict() == fb.bandit.to_dict()
    assert orjson.loads(path.read_bytes())["arms"]["a"]["steps"] == 1
    assert fb.view()["arms"]["a"]["weight"] == w["a"]
