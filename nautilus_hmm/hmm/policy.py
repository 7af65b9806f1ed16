"""Regime posteriors → target exposure for one instrument, behind guardrails. Pure.

Signal: the active micro model's posterior mixes its states' training statistics into an
expected next-bar log return mu and volatility sigma (per micro bar). A side is taken
when |mu| / sigma >= min_edge; the size targets `target_vol_annual` (target / annualized
sigma, capped by the max_position guardrail). The macro model votes with the same rule
(its edge rescaled to a micro bar); opposite votes are a disagreement (flat or scaled).

Guardrails, in the order they are checked; each decision names the one that shaped it:

1. stale_data      last bar older than stale_data_s → HALT: no new target (keep exposure)
2. cooldown        after `loss_streak` losing trades, FLAT for cooldown_s
3. warmup          posteriors not ready → HOLD
4. disagreement    macro and micro point opposite ways → flat or x disagreement_scale
5. long_only       negative target clamped to 0 unless allow_short
6. max_position    |target| clamped to max_exposure
7. low_confidence  adding risk needs max micro posterior >= min_confidence → HOLD
8. min_dwell       a new side needs the (macro, micro) state to have lasted min_dwell_bars
9. max_flips       a new side needs fewer than max_flips_per_hour side changes in 60 min
10. rebalance      |target - exposure| < rebalance_threshold → HOLD (exits to 0 always go)

Guards 7-9 only block risk-increasing moves (a larger |exposure| or a new side); cutting
exposure is never blocked. The policy assumes its decisions are executed; the caller
re-syncs it with `set_exposure` from the portfolio. Time comes in as arguments.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from nautilus_hmm.hmm.config import HmmPolicyConfig
from nautilus_hmm.hmm.model import RegimeModel, StateStats
from nautilus_hmm.hmm.runtime import RegimeSnapshot

NS_PER_S = 1_000_000_000
SECONDS_PER_YEAR = 365.0 * 86_400.0
FLIP_WINDOW_NS = 3600 * NS_PER_S


class Action(StrEnum):
    """What the caller should do with the decision."""

    TARGET = "target"  # move to target_exposure
    HOLD = "hold"  # keep the current exposure (target_exposure == current)
    FLAT = "flat"  # go to zero (forced by a guardrail)
    HALT = "halt"  # do not trade at all (target_exposure == current)


@dataclass(frozen=True, slots=True)
class PolicyDecisionDetail:
    """One decision of the pure policy with the figures behind it (for telemetry).

    Not a bus message: the strategy publishes it as `messages.PolicyDecision`, which adds
    what the policy does not know (instrument, model id, shadow flag, event times), folds
    the guardrail into its reason and leaves out the figures (signal, mu, sigma,
    confidence, states); the strategy keeps the last one for `/status`.
    """

    target_exposure: float  # signed fraction of allocated capital
    action: Action
    reason: str
    guardrail: str | None  # the guardrail that shaped this decision, None if the model alone
    signal_exposure: float  # what the model asked for before guardrails
    expected_return: float  # per micro bar (log), active micro posterior mixture
    volatility: float  # per micro bar
    confidence: float
    macro_state: int | None
    micro_state: int | None


def mixture_moments(posterior: object, states: tuple[StateStats, ...]) -> tuple[float, float]:
    """Mean and std of the next-bar return under the posterior-weighted state mixture."""
    mu = 0.0
    second = 0.0
    for p, s in zip(posterior, states, strict=True):  # type: ignore[call-overload]
        p = float(p)
        mu += p * s.expected_next_return
        second += p * (s.volatility * s.volatility + s.expected_next_return * s.expected_next_return)
    return mu, math.sqrt(max(second - mu * mu, 0.0))


def _sign(x: float) -> int:
    return int(x > 0) - int(x < 0)


class RegimePolicy:
    """Target exposure for one instrument from regime snapshots, with guardrails."""

    def __init__(self, cfg: HmmPolicyConfig, model: RegimeModel, *, exposure: float = 0.0) -> None:
        self.cfg = cfg
        self.model = model
        self._exposure = exposure
        self._flips_ns: deque[int] = deque()
        self._loss_streak = 0
        self._cooldown_until_ns = 0
        self._dwell_key: tuple[int, int] | None = None
        self._dwell_bars = 0
        self._last_snapshot_ts: int | None = None

    # ------------------------------------------------------------ state from outside

    @property
    def exposure(self) -> float:
        """The exposure the policy believes is held."""
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        """Re-sync with the actual position (fraction of allocated capital)."""
        self._exposure = exposure

    def update_config(self, cfg: HmmPolicyConfig) -> None:
        """Apply a reloaded [hmm.policy]; counters are kept."""
        self.cfg = cfg

    def set_model(self, model: RegimeModel) -> None:
        """Switch to a new model; state dwell restarts (state indices may mean new things)."""
        self.model = model
        self._dwell_key = None
        self._dwell_bars = 0

    def record_trade_pnl(self, pnl: float, ts_ns: int) -> None:
        """Count a closed trade; `loss_streak` losses in a row start the cool-down."""
        if pnl < 0:
            self._loss_streak += 1
            if self._loss_streak >= self.cfg.loss_streak:
                self._cooldown_until_ns = ts_ns + int(self.cfg.cooldown_s * NS_PER_S)
                self._loss_streak = 0
        else:
            self._loss_streak = 0

    @property
    def cooldown_until_ns(self) -> int:
        """End of the current cool-down (0 if none was started)."""
        return self._cooldown_until_ns

    @property
    def dwell_bars(self) -> int:
        """Bars the current (macro, micro) state has lasted."""
        return self._dwell_bars

    def flips_in_last_hour(self, now_ns: int) -> int:
        """Side changes in the 60 minutes before now."""
        while self._flips_ns and self._flips_ns[0] <= now_ns - FLIP_WINDOW_NS:
            self._flips_ns.popleft()
        return len(self._flips_ns)

    # ------------------------------------------------------------ the decision

    def signal(self, snap: RegimeSnapshot) -> tuple[float, float, float, int]:
        """(signal exposure, mu, sigma, macro side) from a ready snapshot, before any guardrail."""
        cfg = self.cfg
        micro = self.model.micro
        assert snap.macro_state is not None and snap.micro_posterior is not None
        assert snap.macro_posterior is not None
        mu, sigma = mixture_moments(snap.micro_posterior, micro.hmms[snap.macro_state].states)
        side = _sign(mu) if sigma > 0 and abs(mu) / sigma >= cfg.min_edge else 0
        size = 0.0
        if side:
            sigma_annual = sigma * math.sqrt(SECONDS_PER_YEAR / micro.interval_s)
            size = cfg.target_vol_annual / sigma_annual  # the max_position guardrail caps it
        mu_m, sigma_m = mixture_moments(snap.macro_posterior, self.model.macro.hmm.states)
        ratio = math.sqrt(micro.interval_s / self.model.macro.interval_s)
        macro_edge = abs(mu_m) / sigma_m * ratio if sigma_m > 0 else 0.0
        macro_side = _sign(mu_m) if macro_edge >= cfg.min_edge else 0
        return side * size, mu, sigma, macro_side

    def decide(self, snap: RegimeSnapshot, now_ns: int) -> PolicyDecisionDetail:
        """Target exposure for the latest snapshot at time `now_ns`."""
        cfg = self.cfg
        current = self._exposure
        conf = snap.confidence

        def out(target: float, action: Action, reason: str, guardrail: str | None,
                signal: float = 0.0, mu: float = 0.0, sigma: float = 0.0) -> PolicyDecisionDetail:
            if action in (Action.TARGET, Action.FLAT):
                if _sign(target) != _sign(current):
                    self._flips_ns.append(now_ns)
                self._exposure = target
            return PolicyDecisionDetail(target, action, reason, guardrail, signal, mu, sigma, conf,
                                  snap.macro_state, snap.micro_state)

        age_s = (now_ns - snap.close_ts_ns) / NS_PER_S
        if age_s > cfg.stale_data_s:
            return out(current, Action.HALT, f"last bar closed {age_s:.0f} s ago (> {cfg.stale_data_s:g} s)",
                       "stale_data")
        if now_ns < self._cooldown_until_ns:
            left_s = (self._cooldown_until_ns - now_ns) / NS_PER_S
            return out(0.0, Action.FLAT, f"loss streak cool-down, {left_s:.0f} s left", "cooldown")
        if not snap.ready:
            return out(current, Action.HOLD, "regime posteriors warming up", "warmup")
        self._track_dwell(snap)

        signal, mu, sigma, macro_side = self.signal(snap)
        target = signal
        guardrail: str | None = None
        reason = (f"micro {self._label(snap)}: edge {abs(mu) / sigma:.3f}" if sigma > 0
                  else "micro volatility is zero")
        if signal == 0.0:
            reason += f" below min_edge {cfg.min_edge:g}" if sigma > 0 else ""
        if _sign(signal) and macro_side and _sign(signal) != macro_side:
            guardrail = "disagreement"
            if cfg.disagreement == "flat":
                target, reason = 0.0, "macro and micro disagree: flat"
            else:
                target = signal * cfg.disagreement_scale
                reason = f"macro and micro disagree: scaled by {cfg.disagreement_scale:g}"
        if target < 0 and not cfg.allow_short:
            target, guardrail, reason = 0.0, "long_only", "short signal but allow_short is false"
        if abs(target) > cfg.max_exposure:
            target = math.copysign(cfg.max_exposure, target)
            guardrail, reason = "max_position", f"capped at max_exposure {cfg.max_exposure:g}"

        new_side = _sign(target) != 0 and _sign(target) != _sign(current)
        adds_risk = new_side or abs(target) > abs(current)
        if adds_risk and conf < cfg.min_confidence:
            return out(current, Action.HOLD, f"confidence {conf:.2f} < {cfg.min_confidence:g}",
                       "low_confidence", signal, mu, sigma)
        if new_side and self._dwell_bars < cfg.min_dwell_bars:
            return out(current, Action.HOLD, f"state lasted {self._dwell_bars} bars < {cfg.min_dwell_bars}",
                       "min_dwell", signal, mu, sigma)
        if new_side and self.flips_in_last_hour(now_ns) >= cfg.max_flips_per_hour:
            return out(current, Action.HOLD, f"{cfg.max_flips_per_hour} side changes in the last hour",
                       "max_flips", signal, mu, sigma)
        if abs(target - current) < cfg.rebalance_threshold and not (target == 0.0 and current != 0.0):
            return out(current, Action.HOLD, f"change {target - current:+.3f} below rebalance threshold",
                       guardrail or "rebalance", signal, mu, sigma)
        return out(target, Action.TARGET, reason, guardrail, signal, mu, sigma)

    def _track_dwell(self, snap: RegimeSnapshot) -> None:
        if self._last_snapshot_ts is not None and snap.ts_ns <= self._last_snapshot_ts:
            return  # the same bar decided again: do not count it twice
        self._last_snapshot_ts = snap.ts_ns
        assert snap.macro_state is not None and snap.micro_state is not None
        key = (snap.macro_state, snap.micro_state)
        if key == self._dwell_key:
            self._dwell_bars += 1
        else:
            self._dwell_key, self._dwell_bars = key, 1

    def _label(self, snap: RegimeSnapshot) -> str:
        assert snap.macro_state is not None and snap.micro_state is not None
        macro = self.model.macro.hmm.states[snap.macro_state].label
        micro = self.model.micro.hmms[snap.macro_state].states[snap.micro_state].label
        return f"{macro}/{micro}"
