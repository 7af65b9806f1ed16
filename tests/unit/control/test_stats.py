"""control.stats: Student t tail probabilities against table values, and the paired test."""

from __future__ import annotations

import math
import random

import pytest

from nautilus_hmm.control.stats import (
    batch_means,
    look_alpha,
    paired_t_test,
    regularized_incomplete_beta,
    student_t_cdf,
    student_t_sf,
)

# (t, df, upper tail) from the standard one-sided t table (critical values are rounded to 3 places).
T_TABLE = [
    (6.314, 1, 0.05), (12.706, 1, 0.025), (63.657, 1, 0.005),
    (2.920, 2, 0.05), (2.776, 4, 0.025), (4.604, 4, 0.005),
    (1.812, 10, 0.05), (2.228, 10, 0.025), (2.764, 10, 0.01),
    (1.697, 30, 0.05), (2.457, 30, 0.01), (1.660, 100, 0.05),
]


@pytest.mark.parametrize(("t", "df", "tail"), T_TABLE)
def test_student_t_upper_tail_matches_the_t_table(t: float, df: int, tail: float) -> None:
    assert student_t_sf(t, df) == pytest.approx(tail, rel=2e-3)


@pytest.mark.parametrize("t", [-30.0, -2.5, -0.3, 0.0, 0.7, 4.0, 250.0])
def test_student_t_with_one_degree_of_freedom_is_the_cauchy_distribution(t: float) -> None:
    assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)


@pytest.mark.parametrize("df", [2, 7, 33])
def test_student_t_is_symmetric_and_half_at_zero(df: int) -> None:
    assert student_t_cdf(0.0, df) == pytest.approx(0.5, abs=1e-15)
    for t in (0.4, 1.9, 5.5):
        assert student_t_cdf(-t, df) == pytest.approx(student_t_sf(t, df), abs=1e-14)


def test_student_t_with_many_degrees_of_freedom_approaches_the_normal() -> None:
    normal_sf = 0.5 * math.erfc(1.959963984540054 / math.sqrt(2))
    assert student_t_sf(1.959963984540054, 1e7) == pytest.approx(normal_sf, rel=1e-5)


def test_student_t_matches_scipy_where_it_is_installed() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 5, 9.5, 40, 1000):
        for t in (-8.0, -1.0, 0.01, 0.9, 2.2, 6.0, 30.0):
            assert student_t_sf(t, df) == pytest.approx(float(scipy_stats.t.sf(t, df)), rel=1e-9, abs=1e-300)


def test_incomplete_beta_edges_and_a_closed_form() -> None:
    assert regularized_incomplete_beta(2.0, 3.0, 0.0) == 0.0
    assert regularized_incomplete_beta(2.0, 3.0, 1.0) == 1.0
    x = 0.37  # I_x(1, b) = 1 - (1 - x)^b
    assert regularized_incomplete_beta(1.0, 4.0, x) == pytest.approx(1 - (1 - x) ** 4, rel=1e-13)
    with pytest.raises(ValueError, match="x must be in"):
        regularized_incomplete_beta(1.0, 1.0, 1.5)


def test_paired_test_passes_when_the_mean_difference_clears_the_margin() -> None:
    diffs = [0.5, 0.7, 0.4, 0.6, 0.8, 0.5, 0.6, 0.7]
    res = paired_t_test(diffs, margin=0.1, alpha=0.01)
    assert res.passed and res.df == 7 and res.p_value < 1e-5
    assert res.mean_diff == pytest.approx(0.6)
    # t = (0.6 - 0.1) / (sd / sqrt 8), sd = sample standard deviation
    sd = math.sqrt(sum((d - 0.6) ** 2 for d in diffs) / 7)
    assert res.t_stat == pytest.approx(0.5 / (sd / math.sqrt(8)))


def test_paired_test_fails_below_the_margin_and_on_noise() -> None:
    assert not paired_t_test([0.5, 0.7, 0.4, 0.6], margin=0.6).passed
    noise = [0.3, -0.2, 0.1, -0.4, 0.2, -0.1, 0.05, -0.05]
    res = paired_t_test(noise, margin=0.0, alpha=0.05)
    assert not res.passed and res.p_value > 0.3


def test_paired_test_p_value_for_a_known_t() -> None:
    # d = [1, 2, 3]: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 df: p = 0.03709
    res = paired_t_test([1.0, 2.0, 3.0])
    assert res.t_stat == pytest.approx(2 * math.sqrt(3))
    assert res.p_value == pytest.approx(0.037089, rel=1e-4)
    assert res.passed and not paired_t_test([1.0, 2.0, 3.0], alpha=0.03).passed


def test_paired_test_with_too_few_or_constant_differences() -> None:
    assert not paired_t_test([]).passed and paired_t_test([]).p_value == 1.0
    assert not paired_t_test([5.0]).passed
    assert paired_t_test([0.2, 0.2, 0.2], margin=0.1).passed
    assert not paired_t_test([0.2, 0.2, 0.2], margin=0.2).passed
    assert paired_t_test([0.2, 0.2]).to_dict()["t_stat"] is None  # infinite t is not JSON


def test_look_alpha_spends_at_most_alpha_over_any_number_of_looks() -> None:
    assert look_alpha(0.05, 1) == pytest.approx(0.025)
    assert look_alpha(0.05, 2) == pytest.approx(0.05 / 6)
    assert sum(look_alpha(0.05, k) for k in range(1, 10_000)) < 0.05
    with pytest.raises(ValueError):
        look_alpha(0.05, 0)


def test_batch_means_drop_an_incomplete_last_batch() -> None:
    assert batch_means([1.0, 3.0, 5.0, 7.0, 9.0], 2) == [2.0, 6.0]
    assert batch_means([1.0, 2.0], 1) == [1.0, 2.0]
    assert batch_means([1.0], 2) == []


def test_repeated_looks_keep_the_false_pass_rate_under_alpha() -> None:
    """A canary no better than production (mean difference 0), looked at 10 times as evidence grows."""
    rng = random.Random(11)
    trials, looks, per_look, alpha = 400, 10, 20, 0.05
    false_passes = 0
    for _ in range(trials):
        diffs: list[float] = []
        for k in range(1, looks + 1):
            diffs.extend(rng.gauss(0.0, 1.0) for _ in range(per_look))
            if paired_t_test(diffs, 0.0, look_alpha(alpha, k)).passed:
                false_passes += 1
                break
    assert false_passes / trials <= alpha
    # whereas testing every look at alpha itself is far too eager
    naive = 0
    for _ in range(trials):
        diffs = []
        for _k in range(looks):
            diffs.extend(rng.gauss(0.0, 1.0) for _ in range(per_look))
            if paired_t_test(diffs, 0.0, alpha).passed:
                naive += 1
                break
    assert naive / trials > 1.5 * alpha
