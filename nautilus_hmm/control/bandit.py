"""Bandit feedback: discounted Gaussian Thompson sampling over strategies.

Each strategy is an arm. Its reward is one step's PnL change in basis points of the
strategy's capital (`reward_bps = 1e4 x dPnL / capital_usd`), one observation per PnL
sample the router records. The bandit's allocation weight for an arm is the posterior
probability that the arm has the highest mean reward, estimated from `samples` joint
draws of the posteriors; the allocator blends these weights with its own
(`[control.allocator] bandit_weight`).

Why Thompson sampling with a Gaussian reward model and not EXP3: the rewards are
real-valued, unbounded PnL returns that are roughly Gaussian at bar scale, so a
conjugate Normal model fits them without the clipping and rescaling into [0, 1] that
EXP3 needs; the posterior's spread is a calibrated statement of how much evidence there
is, so exploration shrinks exactly as evidence grows (EXP3 explores at a fixed rate
tuned for an adversary we do not face); and "probability of being best" is directly a
weight vector summing to 1. Every arm is observed every step (each strategy trades its
own sub-account), so this is the full-information case and no arm starves.

Model, per arm (known observation variance `obs_var`, Normal prior on the mean):
    n_eff <- discount x n_eff + 1;  sum_r <- discount x sum_r + reward
    precision = 1 / prior_var + n_eff / obs_var
    posterior mean = (prior_mean / prior_var + sum_r / obs_var) / precision
    posterior var  = 1 / precision
The discount (< 1) forgets old evidence geometrically (memory about 1 / (1 - discount)
steps), so the weights follow an edge that moves from one strategy to another instead
of trusting a stale history forever; discount = 1 is the stationary bandit.

This module is pure (no asyncio); state files are written atomically and a damaged one
falls back to the prior with a warning naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import structlog

from nautilus_hmm.control.allocation import file_name
from nautilus_hmm.core.fields import setting
from nautilus_hmm.core.files import write_atomic

log = structlog.get_logger("bandit")

STATE_VERSION = 1
BPS_PER_UNIT = 1e4  # reward_bps = BPS_PER_UNIT x dPnL / capital_usd


@dataclass(frozen=True, slots=True)
class BanditConfig:
    """[control.bandit]: the Thompson-sampling feedback the allocator blends in."""

    enabled: bool = setting(True, live=True, doc="update the bandit and blend its weights into the allocation")
    prior_mean: float = setting(0.0, live=False, ge=-1e6, le=1e6, doc="prior mean of a strategy's reward per step (bps of its capital)")
    prior_var: float = setting(1.0, live=False, gt=0, le=1e12, doc="prior variance of that mean (bps^2); small = edges are believed small")
    obs_var: float = setting(100.0, live=False, gt=0, le=1e12, doc="variance of one step's reward (bps^2)")
    discount: float = setting(0.995, live=True, gt=0, le=1, doc="per-step forgetting factor; memory ~ 1/(1-discount) steps; 1 = never forget")
    samples: int = setting(2000, live=True, ge=10, le=1_000_000, doc="posterior draws per weight estimate")
    seed: int = setting(0, live=False, ge=0, le=2**32 - 1, doc="seed of the sampling generator (reproducible weights)")
    state_file: str = setting("bandit.json", live=False, check=file_name, doc="state file name inside the state directory")


@dataclass(slots=True)
class ArmState:
    """Discounted sufficient statistics of one arm."""

    n_eff: float = 0.0
    sum_reward: float = 0.0
    steps: int = 0  # undiscounted count, for views


class BanditStateError(ValueError):
    """A bandit state document is malformed; the message names the field."""


class GaussianThompson:
    """Discounted Gaussian Thompson sampling; `weights` = P(arm has the best mean)."""

    def __init__(self, prior_mean: float = 0.0, prior_var: float = 1.0, obs_var: float = 100.0,
                 discount: float = 0.995) -> None:
        if not prior_var > 0 or not obs_var > 0:
            raise ValueError("prior_var and obs_var must be > 0")
        if not 0 < discount <= 1:
            raise ValueError("discount must be in (0, 1]")
        self.prior_mean = float(prior_mean)
        self.prior_var = float(prior_var)
        self.obs_var = float(obs_var)
        self.discount = float(discount)
        self.arms: dict[str, ArmState] = {}

    @classmethod
    def from_config(cls, cfg: BanditConfig) -> GaussianThompson:
        """A bandit at the configured prior."""
        return cls(cfg.prior_mean, cfg.prior_var, cfg.obs_var, cfg.discount)

    def update(self, arm: str, reward: float) -> None:
        """Observe one reward of `arm` (non-finite rewards are ignored: no evidence)."""
        if not math.isfinite(reward):
            return
        st = self.arms.setdefault(arm, ArmState())
        st.n_eff = self.discount * st.n_eff + 1.0
        st.sum_reward = self.discount * st.sum_reward + float(reward)
        st.steps += 1

    def posterior(self, arm: str) -> tuple[float, float]:
        """(mean, variance) of the arm's mean reward; the prior for an unseen arm."""
        st = self.arms.get(arm)
        if st is None:
            return self.prior_mean, self.prior_var
        precision = 1.0 / self.prior_var + st.n_eff / self.obs_var
        mean = (self.prior_mean / self.prior_var + st.sum_reward / self.obs_var) / precision
        return mean, 1.0 / precision

    def weights(self, rng: np.random.Generator, arms: Iterable[str] | None = None,
                samples: int = 2000) -> dict[str, float]:
        """P(each arm has the highest mean), from `samples` joint posterior draws; sums to 1."""
        names = sorted(self.arms) if arms is None else list(arms)
        if not names:
            return {}
        if len(names) == 1:
            return {names[0]: 1.0}
        post = [self.posterior(a) for a in names]
        means = np.array([m for m, _ in post])
        sds = np.sqrt(np.array([v for _, v in post]))
        draws = rng.standard_normal((max(1, samples), len(names))) * sds + means
        wins = np.bincount(np.argmax(draws, axis=1), minlength=len(names))
        total = float(wins.sum())
        return {a: float(w) / total for a, w in zip(names, wins, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (prior and per-arm statistics)."""
        return {
            "version": STATE_VERSION,
            "prior_mean": self.prior_mean,
            "prior_var": self.prior_var,
            "obs_var": self.obs_var,
            "discount": self.discount,
            "arms": {a: {"n_eff": s.n_eff, "sum_reward": s.sum_reward, "steps": s.steps}
                     for a, s in sorted(self.arms.items())},
        }

    @classmethod
    def from_dict(cls, doc: Any) -> GaussianThompson:
        """Rebuild from `to_dict` output; BanditStateError names the first bad field."""
        if not isinstance(doc, dict):
            raise BanditStateError("state: must be a JSON object")
        if doc.get("version") != STATE_VERSION:
            raise BanditStateError(f"version: {doc.get('version')!r} is not {STATE_VERSION}")

        def num(where: str, value: Any, positive: bool = False, nonneg: bool = False) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise BanditStateError(f"{where}: {value!r} is not a finite number")
            if positive and value <= 0:
                raise BanditStateError(f"{where}: {value!r} must be > 0")
            if nonneg and value < 0:
                raise BanditStateError(f"{where}: {value!r} must be >= 0")
            return float(value)

        discount = num("discount", doc.get("discount"), positive=True)
        if discount > 1:
            raise BanditStateError(f"discount: {discount!r} must be <= 1")
        bandit = cls(num("prior_mean", doc.get("prior_mean")), num("prior_var", doc.get("prior_var"), positive=True),
                     num("obs_var", doc.get("obs_var"), positive=True), discount)
        arms = doc.get("arms")
        if not isinstance(arms, dict):
            raise BanditStateError("arms: must be an object")
        for name, st in arms.items():
            if not isinstance(st, dict):
                raise BanditStateError(f"arms.{name}: must be an object")
            steps = st.get("steps", 0)
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
                raise BanditStateError(f"arms.{name}.steps: {steps!r} is not a count")
            bandit.arms[str(name)] = ArmState(num(f"arms.{name}.n_eff", st.get("n_eff"), nonneg=True),
                                              num(f"arms.{name}.sum_reward", st.get("sum_reward")), steps)
        return bandit

    def view(self, weights: Mapping[str, float] | None = None) -> dict[str, dict[str, float]]:
        """Per-arm posterior mean/sd, evidence and (when given) weight."""
        out: dict[str, dict[str, float]] = {}
        for a in sorted(set(self.arms) | set(weights or {})):
            mean, var = self.posterior(a)
            st = self.arms.get(a, ArmState())
            row = {"posterior_mean_bps": mean, "posterior_sd_bps": math.sqrt(var), "n_eff": st.n_eff,
                   "steps": float(st.steps)}
            if weights is not None and a in weights:
                row["weight"] = weights[a]
            out[a] = row
        return out


def save_state(path: str | Path, bandit: GaussianThompson) -> None:
    """Write the bandit's state atomically (OSError propagates)."""
    write_atomic(path, orjson.dumps(bandit.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def load_state(path: str | Path, cfg: BanditConfig) -> GaussianThompson:
    """The saved state, or the configured prior when there is none; a damaged file → the
    prior and a warning naming the file (never an exception)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return GaussianThompson.from_config(cfg)
    except OSError as exc:
        log.warning("bandit_state_unreadable", file=str(path), error=exc.strerror or repr(exc),
                    fallback="prior")
        return GaussianThompson.from_config(cfg)
    try:
        bandit = GaussianThompson.from_dict(orjson.loads(raw))
    except (orjson.JSONDecodeError, BanditStateError) as exc:
        log.warning("bandit_state_damaged", file=str(path), error=str(exc), fallback="prior")
        return GaussianThompson.from_config(cfg)
    # The discount is live: the config's value wins over the saved one.
    bandit.discount = cfg.discount
    return bandit


class BanditFeedback:
    """The running bandit: state file, seeded generator, config read at each use.

    The allocator calls `observe` with each new PnL step, `weights` at each rebalance and
    `save` after it. A state file that cannot be written is logged (the bandit keeps its
    state in memory and tries again at the next save)."""

    def __init__(self, config: Callable[[], BanditConfig], state_path: str | Path | None) -> None:
        """`state_path` None: the state starts from the prior and is never written (a backtest)."""
        self._config = config
        self.state_path = None if state_path is None else Path(state_path)
        cfg = config()
        self.bandit = GaussianThompson.from_config(cfg) if self.state_path is None else load_state(self.state_path, cfg)
        self._rng = np.random.default_rng(cfg.seed)
        self.last_weights: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        """Whether the bandit updates and its weights are blended."""
        return bool(self._config().enabled)

    def observe(self, strategy_id: str, reward_bps: float) -> None:
        """One step's reward of a strategy."""
        self.bandit.discount = self._config().discount
        self.bandit.update(strategy_id, reward_bps)

    def weights(self, strategy_ids: Iterable[str]) -> dict[str, float]:
        """P(best) over these strategies (sums to 1; {} for none)."""
        self.last_weights = self.bandit.weights(self._rng, strategy_ids, self._config().samples)
        return dict(self.last_weights)

    def save(self) -> None:
        """Persist the state atomically (nothing without a state path); an OSError is logged, not raised."""
        if self.state_path is None:
            return
        try:
            save_state(self.state_path, self.bandit)
        except OSError as exc:
            log.error("bandit_state_write_failed", file=str(self.state_path), error=exc.strerror or repr(exc))

    def view(self) -> dict[str, Any]:
        """Posterior per strategy and the last weights (for GET /allocations)."""
        return {"enabled": self.enabled, "arms": self.bandit.view(self.last_weights),
                "state_file": None if self.state_path is None else str(self.state_path)}


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """One sample of a strategy's equity curve: cumulative PnL net of fees and its capital."""

    ts_ns: int
    pnl_usd: float
    capital_usd: float


def step_rewards_bps(points: Iterable[EquityPoint]) -> list[float]:
    """Per-step rewards 1e4 x dPnL / capital (the capital held during the step, i.e. at its
    start; the end's when that is not positive); a step without positive capital is skipped."""
    out: list[float] = []
    prev: EquityPoint | None = None
    for p in sorted(points, key=lambda q: q.ts_ns):
        if prev is not None:
            cap = prev.capital_usd if prev.capital_usd > 0 else p.capital_usd
            if cap > 0:
                out.append(BPS_PER_UNIT * (p.pnl_usd - prev.pnl_usd) / cap)
        prev = p
    return out


@dataclass(frozen=True, slots=True)
class FittedPrior:
    """An empirical-Bayes prior and the per-strategy figures it came from."""

    prior_mean: float
    prior_var: float
    obs_var: float
    per_strategy: dict[str, dict[str, float]]


def fit_prior(rewards: Mapping[str, list[float]], fallback: BanditConfig) -> FittedPrior:
    """Method-of-moments empirical Bayes over strategies' per-step rewards (bps):

    obs_var    = pooled within-strategy variance, sum((n_s - 1) var_s) / sum(n_s - 1);
    prior_mean = the mean over strategies of their mean rewards;
    prior_var  = var over strategies of the means - mean(obs_var / n_s) (the spread of
                 the means beyond their sampling noise), floored at obs_var / median(n_s);
                 with one strategy, that floor.
    Strategies with fewer than 2 rewards are left out; obs_var = 0 (flat curves) keeps
    the fallback's obs_var. ValueError when no strategy has 2 rewards."""
    used = {s: r for s, r in rewards.items() if len(r) >= 2}
    if not used:
        raise ValueError("no strategy has 2 PnL steps (3 equity samples)")
    stats: dict[str, tuple[int, float, float]] = {}
    for s, r in used.items():
        n = len(r)
        mean = math.fsum(r) / n
        var = math.fsum((x - mean) ** 2 for x in r) / (n - 1)
        stats[s] = (n, mean, var)
    dof = sum(n - 1 for n, _, _ in stats.values())
    obs_var = math.fsum((n - 1) * v for n, _, v in stats.values()) / dof
    if not obs_var > 0:
        obs_var = fallback.obs_var
    means = [m for _, m, _ in stats.values()]
    prior_mean = math.fsum(means) / len(means)
    counts = sorted(n for n, _, _ in stats.values())
    floor = obs_var / counts[len(counts) // 2]
    prior_var = floor
    if len(means) >= 2:
        spread = math.fsum((m - prior_mean) ** 2 for m in means) / (len(means) - 1)
        noise = math.fsum(obs_var / n for n, _, _ in stats.values()) / len(stats)
        prior_var = max(floor, spread - noise)
    per = {s: {"steps": float(n), "mean_bps": m, "sd_bps": math.sqrt(v)} for s, (n, m, v) in stats.items()}
    for s, r in rewards.items():
        if s not in per:
            per[s] = {"steps": float(len(r)), "mean_bps": math.nan, "sd_bps": math.nan}
    return FittedPrior(prior_mean, prior_var, obs_var, per)
