"""Capital allocation: the pure arithmetic of the allocator (no asyncio, no I/O).

Per strategy s, from its cumulative PnL curve (the router's `pnl_series`, one sample per
bar close) over the last `lookback` steps:

    r_t      = (PnL_t - PnL_{t-1}) / capital_s            per-step return (capital_s: its capital)
    n        = number of such steps (at most lookback)
    t_s      = mean(r) / std(r) x sqrt(n)                 rolling risk-adjusted return: the
                                                          t-statistic of the mean return,
                                                          clipped to +/-10 (std = sample std;
                                                          std = 0: 0 if mean = 0, else +/-10)
    dd_s     = max over t of (peak_{u<=t} C_u - C_t)      max drawdown of C_t = r_1 + ... + r_t
                                                          (C_0 = 0), a fraction of its capital
    score_s  = t_s - drawdown_penalty x dd_s

Evidence: a strategy with n >= min_evidence has evidence. A strategy without evidence
targets its static share (weight / sum of enabled weights). The strategies with evidence
(set E) share the static mass M = sum of their static shares:

    softmax_s = exp(score_s / temperature) / sum_{u in E} exp(score_u / temperature)
    bandit_s  = the bandit's P(s is best), renormalized over E
    target_s  = M x ((1 - bandit_weight) x softmax_s + bandit_weight x bandit_s)

Why a softmax and not the positive part of the scores: it is continuous in the inputs (a
small change of evidence moves the target a little; positive-part weights jump when all
scores cross zero and need a special case when none is positive), it never divides by
zero, and because the scores are t-statistics the temperature has a statistical reading:
at temperature 1 a strategy one standard error better gets e (~2.7) times the weight.

Constraints, in order: each share stays within [min_share, max_share] of its strategy and
within max_step of its current share: lo_s = max(min_s, cur_s - max_step), hi_s =
min(max_s, cur_s + max_step) (a current share outside its bounds moves straight to the
nearest bound: bounds win over the step). The shares are the Euclidean projection of the
targets onto {x : lo <= x <= hi, sum x = 1}: x_s = clip(target_s + lambda, lo_s, hi_s)
with the one lambda that makes them sum to 1 (found by bisection, the residual rounding
then spread over the shares with room). If the step box cannot sum to 1 (current shares
that did not sum to 1, bounds that moved), the step limit is dropped for that rebalance
(`step_relaxed` in the inputs) and the projection uses [min_share, max_share] alone, which
is feasible whenever sum(min_share) <= 1 <= sum(max_share) (`check_bounds`).

Before any strategy has evidence (or with the allocator disabled) the shares are the
static weights projected into the bounds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from nautilus_hmm.core.fields import setting

SCORE_CLIP = 10.0  # |t-statistic| cap: a constant non-zero return is not infinite evidence
SUM_TOLERANCE = 1e-9  # shares must sum to 1 within this
MAX_OVERRIDE_S = 30 * 86_400.0


def file_name(value: str) -> str | None:
    """Check: a plain file name (it lives inside the state directory)."""
    if not value or "/" in value or "\\" in value or value in (".", ".."):
        return "must be a file name inside the state directory (no '/')"
    return None


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    """[control.allocator]: how capital shares follow the strategies' equity curves."""

    enabled: bool = setting(True, live=True, doc="rebalance on evidence; false = hold the static weights")
    interval_s: float = setting(60.0, live=True, ge=1, le=7 * 86_400, doc="rebalance period")
    lookback: int = setting(240, live=True, ge=2, le=1_000_000, doc="PnL steps (router samples) the score uses")
    min_evidence: int = setting(30, live=True, ge=2, le=1_000_000, doc="PnL steps a strategy needs before its share moves off its static weight")
    max_step: float = setting(0.05, live=True, gt=0, le=1, doc="largest change of any share per rebalance")
    drawdown_penalty: float = setting(10.0, live=True, ge=0, le=1e6, doc="score points per unit of max drawdown (fraction of the strategy's capital)")
    temperature: float = setting(1.0, live=True, ge=0.01, le=1e6, doc="softmax temperature over the scores (t-statistic units)")
    bandit_weight: float = setting(0.25, live=True, ge=0, le=1, doc="share of the target taken from the bandit's weights (0 = none)")
    state_file: str = setting("allocations.json", live=False, check=file_name, doc="state file name inside the state directory")

    def validate(self) -> list[tuple[str, object, str]]:
        """Cross-field rules."""
        if self.min_evidence > self.lookback:
            return [("min_evidence", self.min_evidence, f"must be <= lookback ({self.lookback}): no strategy could ever have evidence")]
        return []


class ShareBounds(NamedTuple):
    """One enabled strategy's allocation bounds and static weight."""

    min_share: float
    max_share: float
    weight: float


class AllocationError(ValueError):
    """Shares that cannot be applied: names the field and the value."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field} = {value!r}: {message}")


class UnknownStrategyError(KeyError):
    """A strategy id that is not an enabled strategy."""

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        super().__init__(strategy_id)

    def __str__(self) -> str:
        return f"unknown strategy {self.strategy_id!r}"


@dataclass(frozen=True, slots=True)
class StrategyScore:
    """The evidence one strategy's PnL curve gives."""

    n: int
    mean_return: float
    std_return: float
    risk_adjusted: float  # t_s
    max_drawdown: float
    score: float


def _bounds_of(b: Any) -> ShareBounds:
    return b if isinstance(b, ShareBounds) else ShareBounds(float(b[0]), float(b[1]), float(b[2]))


def check_bounds(bounds: Mapping[str, Any]) -> list[tuple[str, object, str]]:
    """Problems that make every allocation impossible, as (field, value, message) triples."""
    errors: list[tuple[str, object, str]] = []
    if not bounds:
        return errors
    bs = {s: _bounds_of(b) for s, b in bounds.items()}
    for s, b in bs.items():
        if not 0 <= b.min_share <= b.max_share <= 1:
            errors.append((f"strategies.{s}.min_share", b.min_share, f"must satisfy 0 <= min_share <= max_share ({b.max_share}) <= 1"))
        if not b.weight >= 0 or not math.isfinite(b.weight):
            errors.append((f"strategies.{s}.weight", b.weight, "must be a finite number >= 0"))
    lo = math.fsum(b.min_share for b in bs.values())
    hi = math.fsum(b.max_share for b in bs.values())
    if lo > 1 + SUM_TOLERANCE:
        errors.append(("strategies.min_share", round(lo, 12), "the enabled strategies' floors sum to more than 1"))
    if hi < 1 - SUM_TOLERANCE:
        errors.append(("strategies.max_share", round(hi, 12), "the enabled strategies' ceilings sum to less than 1"))
    return errors


def static_targets(bounds: Mapping[str, Any]) -> dict[str, float]:
    """weight / sum of weights (equal shares when every weight is 0); not yet projected."""
    bs = {s: _bounds_of(b) for s, b in bounds.items()}
    total = math.fsum(max(0.0, b.weight) for b in bs.values())
    if not bs:
        return {}
    if total <= 0:
        return {s: 1.0 / len(bs) for s in bs}
    return {s: max(0.0, b.weight) / total for s, b in bs.items()}


def static_shares(bounds: Mapping[str, Any]) -> dict[str, float]:
    """The static weights projected into [min_share, max_share], summing to 1."""
    bs = {s: _bounds_of(b) for s, b in bounds.items()}
    if not bs:
        return {}
    return project_shares(static_targets(bs), {s: b.min_share for s, b in bs.items()},
                          {s: b.max_share for s, b in bs.items()})


def project_shares(target: Mapping[str, float], lo: Mapping[str, float], hi: Mapping[str, float]) -> dict[str, float]:
    """Euclidean projection of `target` onto {lo <= x <= hi, sum x = 1}.

    AllocationError when the box cannot sum to 1 (sum(lo) > 1 or sum(hi) < 1). The result
    lies within [lo, hi] exactly and sums to 1 within float rounding."""
    ids = list(target)
    if not ids:
        return {}
    t = [float(target[s]) if math.isfinite(target[s]) else 0.0 for s in ids]
    low = [float(lo[s]) for s in ids]
    high = [float(hi[s]) for s in ids]
    if math.fsum(low) > 1 + SUM_TOLERANCE:
        raise AllocationError("min_share", round(math.fsum(low), 12), "lower bounds sum to more than 1")
    if math.fsum(high) < 1 - SUM_TOLERANCE:
        raise AllocationError("max_share", round(math.fsum(high), 12), "upper bounds sum to less than 1")

    def shifted(lam: float) -> list[float]:
        return [min(h, max(lw, v + lam)) for v, lw, h in zip(t, low, high, strict=True)]

    if math.fsum(shifted(0.0)) == 1.0:  # the target (clipped) already sums to 1: keep it exactly
        return dict(zip(ids, shifted(0.0), strict=True))
    # sum(shifted(lam)) is continuous and non-decreasing in lam: bisect for sum = 1.
    a = min(lw - v for v, lw in zip(t, low, strict=True))
    b = max(h - v for v, h in zip(t, high, strict=True))
    for _ in range(200):
        mid = 0.5 * (a + b)
        if mid in (a, b):
            break
        if math.fsum(shifted(mid)) < 1.0:
            a = mid
        else:
            b = mid
    x = shifted(0.5 * (a + b))
    # Spread the rounding residual over the shares with room, never past a bound; the sum
    # is recomputed after each change because adding a tiny residual may round away.
    for _ in range(4):
        for i in range(len(x)):
            residual = 1.0 - math.fsum(x)
            if residual == 0.0:
                break
            x[i] = min(high[i], max(low[i], x[i] + residual))
    return dict(zip(ids, x, strict=True))


def step_returns(series: Sequence[tuple[int, float]], capital_usd: float, lookback: int) -> list[float]:
    """Per-step returns dPnL / capital over the last `lookback` steps; a step touching a
    non-finite PnL is skipped; no returns when the capital is not a positive number."""
    if not (capital_usd > 0 and math.isfinite(capital_usd)) or lookback < 1:
        return []
    pnl = [p for _, p in series[-(lookback + 1):]]
    isfinite = math.isfinite
    if isfinite(sum(pnl)):  # all finite (the usual case): no per-step checks (an overflow takes the slow path)
        return [(cur - prev) / capital_usd for prev, cur in itertools.pairwise(pnl)]
    return [(cur - prev) / capital_usd for prev, cur in itertools.pairwise(pnl) if isfinite(prev) and isfinite(cur)]


def max_drawdown(returns: Sequence[float]) -> float:
    """Largest peak-to-trough fall of the cumulative return (starting at 0), >= 0."""
    cum = peak = worst = 0.0
    for r in returns:
        cum += r
        if cum > peak:
            peak = cum
        elif peak - cum > worst:
            worst = peak - cum
    return worst


def score_returns(returns: Sequence[float], drawdown_penalty: float) -> StrategyScore:
    """score = clip(mean/std x sqrt(n), +/-10) - drawdown_penalty x max_drawdown."""
    n = len(returns)
    if n == 0:
        return StrategyScore(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    mean = math.fsum(returns) / n
    std = math.sqrt(math.fsum([(r - mean) ** 2 for r in returns]) / (n - 1)) if n > 1 else 0.0
    if std > 0:
        t = mean / std * math.sqrt(n)
    else:
        t = 0.0 if mean == 0 else math.copysign(SCORE_CLIP, mean)
    t = max(-SCORE_CLIP, min(SCORE_CLIP, t))
    dd = max_drawdown(returns)
    return StrategyScore(n, mean, std, t, dd, t - drawdown_penalty * dd)


def _softmax(scores: Mapping[str, float], temperature: float) -> dict[str, float]:
    if not scores:
        return {}
    top = max(scores.values())
    ex = {s: math.exp((v - top) / temperature) for s, v in scores.items()}
    total = math.fsum(ex.values())
    return {s: v / total for s, v in ex.items()}


def compute_shares(
    config: AllocatorConfig,
    bounds: Mapping[str, Any],
    series: Mapping[str, Sequence[tuple[int, float]]],
    capital_usd: Mapping[str, float],
    current: Mapping[str, float],
    bandit_weights: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """New shares and the inputs that produced them (JSON-ready); the formula is the module doc.

    `current`: the shares now (a strategy missing from it starts at 0); `bandit_weights`:
    the bandit's P(best) per strategy, or None. inputs["mode"] is "rebalance" when at
    least one strategy had evidence, else "static". AllocationError if the bounds cannot
    sum to 1."""
    bs = {s: _bounds_of(b) for s, b in bounds.items()}
    if not bs:
        return {}, {"mode": "static", "strategies": {}, "step_relaxed": False}
    static = static_targets(bs)
    per: dict[str, dict[str, Any]] = {}
    scores: dict[str, StrategyScore] = {}
    for s in bs:
        sc = score_returns(step_returns(series.get(s, ()), capital_usd.get(s, 0.0), config.lookback),
                           config.drawdown_penalty)
        scores[s] = sc
    evidence = [s for s in bs if config.enabled and scores[s].n >= config.min_evidence]
    mass = math.fsum(static[s] for s in evidence)
    soft = _softmax({s: scores[s].score for s in evidence}, config.temperature)
    bandit_part: dict[str, float] = {}
    blend = 0.0
    if bandit_weights is not None and evidence and config.bandit_weight > 0:
        raw = {s: max(0.0, float(bandit_weights.get(s, 0.0))) for s in evidence}
        total = math.fsum(raw.values())
        if total > 0:
            bandit_part = {s: v / total for s, v in raw.items()}
            blend = config.bandit_weight
    target = dict(static)
    for s in evidence:
        target[s] = mass * ((1.0 - blend) * soft[s] + blend * bandit_part.get(s, 0.0))

    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for s, b in bs.items():
        cur = float(current.get(s, 0.0))
        if not math.isfinite(cur):
            cur = 0.0
        lo[s] = min(max(b.min_share, cur - config.max_step), b.max_share)
        hi[s] = max(min(b.max_share, cur + config.max_step), b.min_share)
    step_relaxed = math.fsum(lo.values()) > 1.0 or math.fsum(hi.values()) < 1.0
    if step_relaxed:
        lo = {s: b.min_share for s, b in bs.items()}
        hi = {s: b.max_share for s, b in bs.items()}
    shares = project_shares(target, lo, hi)

    for s, b in bs.items():
        sc = scores[s]
        per[s] = {
            "score": round(sc.score, 6),
            "risk_adjusted": round(sc.risk_adjusted, 6),
            "mean_return": sc.mean_return,
            "std_return": sc.std_return,
            "returns_n": sc.n,
            "max_drawdown": sc.max_drawdown,
            "evidence": s in evidence,
            "capital_usd": capital_usd.get(s, 0.0),
            "static_share": static[s],
            "bandit_weight": (None if bandit_weights is None else bandit_weights.get(s)),
            "target_share": target[s],
            "current_share": float(current.get(s, 0.0)),
            "share": shares[s],
            "min_share": b.min_share,
            "max_share": b.max_share,
        }
    inputs = {
        "mode": "rebalance" if evidence else "static",
        "strategies": per,
        "lookback": config.lookback,
        "min_evidence": config.min_evidence,
        "temperature": config.temperature,
        "drawdown_penalty": config.drawdown_penalty,
        "bandit_blend": blend,
        "max_step": config.max_step,
        "step_relaxed": step_relaxed,
    }
    return shares, inputs


def validate_override(shares: Any, bounds: Mapping[str, Any], expires_s: Any) -> dict[str, float]:
    """Checked override shares (a strategy left out gets 0).

    UnknownStrategyError for an id that is not an enabled strategy; AllocationError naming
    the field for a non-number, a share outside its [min_share, max_share], shares not
    summing to 1 within 1e-9, or an expiry that is not in (0, 30 days]."""
    if isinstance(expires_s, bool) or not isinstance(expires_s, int | float) or not math.isfinite(expires_s) \
            or not 0 < expires_s <= MAX_OVERRIDE_S:
        raise AllocationError("expires_s", expires_s, f"must be a number of seconds in (0, {MAX_OVERRIDE_S:.0f}]")
    if not isinstance(shares, Mapping) or not shares:
        raise AllocationError("shares", shares, "must be a non-empty object of strategy id -> share")
    bs = {s: _bounds_of(b) for s, b in bounds.items()}
    for s in shares:
        if s not in bs:
            raise UnknownStrategyError(str(s))
    out: dict[str, float] = {}
    for s, b in bs.items():
        v = shares.get(s, 0.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise AllocationError(f"shares.{s}", v, "must be a finite number")
        v = float(v)
        if not b.min_share - SUM_TOLERANCE <= v <= b.max_share + SUM_TOLERANCE:
            raise AllocationError(f"shares.{s}", v, f"must be within [{b.min_share}, {b.max_share}] (min_share, max_share)")
        out[s] = min(b.max_share, max(b.min_share, v))
    total = math.fsum(out.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise AllocationError("shares", round(total, 12), "must sum to 1")
    return out
