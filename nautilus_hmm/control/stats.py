"""Statistics for governance: a one-sided paired t-test with an alpha-spending schedule.

Pure (math only; scipy is not a runtime dependency, so the Student t distribution is
computed here from the regularized incomplete beta function, Lentz's continued fraction).

Which test promotion uses, and why:

* **One-sided paired t-test** on per-bar differences d_i = canary_i - production_i of two
  models scored on the same bars. H0: mean(d) <= margin; H1: mean(d) > margin;
  t = (mean(d) - margin) / (sd(d) / sqrt(n)), p = P(T_{n-1} > t). It needs no assumed
  variance and no alternative effect size, which the sequential probability ratio test
  (SPRT) does: the spread of per-bar log-likelihood differences is unknown and differs per
  instrument and model, and a wrong guess of it breaks the SPRT's error guarantees.
* **Batch means.** Per-bar differences of two filters on one series are autocorrelated
  (regimes persist), which makes a naive t-test overconfident; averaging consecutive bars
  into batches (`batch_means`) gives nearly independent observations.
* **Repeated looks.** Governance looks again as evidence accumulates; testing every look at
  `alpha` would promote a no-better canary far more often than alpha. Look k (k = 1, 2, ...)
  therefore tests at alpha_k = alpha / (k (k + 1)) (`look_alpha`); sum_k alpha_k = alpha, so
  by the union bound the chance of ever promoting under H0 is at most alpha, however many
  looks are taken (a conservative group-sequential design).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_CF_MAX_ITER = 300
_CF_EPS = 3e-16
_CF_TINY = 1e-300


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1 (continued fraction, Numerical Recipes 6.4)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"a and b must be > 0 (got a={a}, b={b})")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1] (got {x})")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a) on the other side.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
    h = d
    for m in range(1, _CF_MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _CF_TINY else _CF_TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _CF_TINY else _CF_TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            break
    return h


def student_t_sf(t: float, df: float) -> float:
    """Upper tail P(T > t) of Student's t with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be > 0 (got {df})")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return tail if t >= 0 else 1.0 - tail


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) of Student's t with `df` degrees of freedom."""
    return 1.0 - student_t_sf(t, df)


def look_alpha(alpha: float, look: int) -> float:
    """Significance level of look number `look` (1-based): alpha / (look (look + 1)); they sum to alpha."""
    if look < 1:
        raise ValueError(f"look must be >= 1 (got {look})")
    return alpha / (look * (look + 1))


def batch_means(values: Sequence[float], batch: int) -> list[float]:
    """Means of consecutive non-overlapping batches of `batch` values (an incomplete last batch is dropped)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1 (got {batch})")
    n = len(values) // batch
    return [math.fsum(values[i * batch:(i + 1) * batch]) / batch for i in range(n)]


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean (nan for no values)."""
    return math.fsum(values) / len(values) if values else math.nan


@dataclass(frozen=True, slots=True)
class PairedTest:
    """Result of a one-sided paired t-test of H1: mean difference > margin."""

    n: int
    mean_diff: float
    sd_diff: float
    t_stat: float
    df: int
    p_value: float
    margin: float
    alpha: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready evidence (non-finite numbers become None)."""
        def num(v: float) -> float | None:
            return round(v, 6) if math.isfinite(v) else None

        return {"n": self.n, "mean_diff": num(self.mean_diff), "sd_diff": num(self.sd_diff),
                "t_stat": num(self.t_stat), "df": self.df, "p_value": num(self.p_value),
                "margin": self.margin, "alpha": self.alpha, "passed": self.passed}


def paired_t_test(diffs: Sequence[float], margin: float = 0.0, alpha: float = 0.05) -> PairedTest:
    """One-sided paired t-test on differences: passes when mean(diffs) > margin at level alpha.

    Fewer than 2 differences never pass (p = 1). Zero spread: passes iff the mean exceeds
    the margin (p = 0), else p = 1.
    """
    n = len(diffs)
    if n < 2:
        m = diffs[0] if n == 1 else math.nan
        return PairedTest(n, m, math.nan, math.nan, max(n - 1, 0), 1.0, margin, alpha, False)
    m = math.fsum(diffs) / n
    var = math.fsum((d - m) ** 2 for d in diffs) / (n - 1)
    sd = math.sqrt(var)
    if sd == 0.0 or not math.isfinite(sd):
        above = m > margin
        t = math.inf if above else -math.inf
        p = 0.0 if above else 1.0
    else:
        t = (m - margin) / (sd / math.sqrt(n))
        p = student_t_sf(t, n - 1)
    return PairedTest(n, m, sd, t, n - 1, p, margin, alpha, p < alpha)
