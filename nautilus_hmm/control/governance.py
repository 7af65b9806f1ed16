"""Governance: rules evaluated on a schedule that reduce, disable, promote and roll back on evidence.

Every `interval_s` of the injected clock, for each strategy (others keep trading whatever
one strategy's rules decide):

* **limits** (`drawdown`, `loss_streak`, `error_rate`): the strategy's drawdown (percent of
  its equity peak), its streak of losing round trips, or its error rate (rejects + denials
  per order over `error_window_s`, once at least `error_min_orders` orders were sent) past
  a limit -> `limit_action` (reduce-only or disabled). Never lifted by governance: a human
  re-enables it (`POST /admin/strategies/{id}/enable`).
* **stale_data**: one of its instruments' market data older than `stale_data_s`, or its
  venue unhealthy/halted -> the strategy is reduce-only; lifted (back to active) when every
  instrument is fresh again, only if governance's stale rule was the last to set its state
  and it is still reduce-only. An instrument that has had no data yet is not stale (its
  venue's health covers a venue that never connects).
* **promotion** (HMM strategies): the canary becomes production only when, over at least
  `promotion.min_bars` live bars scored by both models, it beats production on log-likelihood
  per bar by `ll_margin_per_bar` under the one-sided paired t-test of `control.stats`
  (batch means of `batch_bars` bars, look k at `min_bars x k` paired bars tested at
  alpha / (k (k + 1)), so the overall false-promotion rate stays <= alpha), AND its shadow
  PnL over those bars exceeds production's by `pnl_margin_usd`. Shadow PnL: each lane's
  stated exposure x the price change to its next decision x the strategy's production
  capital (no fees): both models on the same capital, so a shadow canary (canary_share 0,
  whose router account trades nothing) is judged like a trading one. `[hmm]
  train.auto_promote = false` keeps the decision advisory (recorded, not acted on).
* **rollback** (HMM strategies): production's mean live log-likelihood per bar over its last
  `rollback.min_bars` bars below its training baseline minus `ll_drop_per_bar`
  (`rollback_ll`), or the strategy's drawdown past `rollback.max_drawdown_pct`
  (`rollback_drawdown`) -> the previous production model. One rollback per strategy per
  evaluation.

Rules are edge-triggered: a rule decides an action once when its condition becomes true
and re-arms only when the condition clears (or, for model rules, when the model it is about
changes), so a condition that persists is not re-decided every interval, and a human's
override of a governance state stands until the evidence changes. Governance only ever
tightens a strategy's state (active < reduce < disabled), except lifting its own stale hold.

Each decision is a `GovernanceDecision` bus message, a warning-level audit log line
(`governance_decision`), a count in `governance_decisions_total{rule,action,acted}` and a row
of `view()` (GET /governance) with the evidence that triggered it. `dry_run` decides and
records without acting (acted = false). A failed action (unknown strategy, no previous
model to roll back to ...) is recorded with acted = false and the error in its reason.

Live evidence comes from `PolicyDecision` on the bus: `log_likelihood` (the HMM strategy
scores each bar with each lane's model; shadow=True is the canary) and `target_exposure`
(priced on the marks for the shadow PnL). Production and canary are paired by (instrument,
bar ts); a window starts over when either model changes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from nautilus_hmm.control.stats import PairedTest, batch_means, look_alpha, mean, paired_t_test
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.fields import section, setting
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import GovernanceDecision, PolicyDecision

log = structlog.get_logger("governance")

SOURCE = "governance"
STATE_RANK = {"active": 0, "reduce": 1, "disabled": 2}
LIMIT_STATE = {"reduce": "reduce", "disable": "disabled"}
RULES = ("drawdown", "loss_streak", "error_rate", "stale_data", "promotion", "rollback_ll", "rollback_drawdown")
DECISIONS_KEPT = 200
LL_BARS_KEPT = 100_000  # per lane and strategy: bounds memory whatever min_bars says
PENDING_KEPT = 10_000  # unpaired scores kept per lane (a lane that stops scoring)


# ---------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class PromotionConfig:
    """[control.governance.promotion] — when a canary model becomes production."""

    min_bars: int = setting(500, live=True, ge=2, le=10_000_000,
                            doc="live bars scored by both models before the first look (look k at min_bars x k)")
    batch_bars: int = setting(10, live=True, ge=1, le=100_000,
                              doc="consecutive paired bars averaged into one observation of the t-test (autocorrelation)")
    ll_margin_per_bar: float = setting(0.0, live=True, ge=0, le=1_000,
                                       doc="canary's log-likelihood per bar must exceed production's by more than this")
    pnl_margin_usd: float = setting(0.0, live=True, ge=0, doc="canary's shadow PnL over the window must exceed production's by more than this")
    alpha: float = setting(0.05, live=True, gt=0, lt=0.5, doc="overall false-promotion rate of the one-sided paired t-test")

    def validate(self) -> list[tuple[str, object, str]]:
        """A look needs at least two batches."""
        if self.min_bars < 2 * self.batch_bars:
            return [("min_bars", self.min_bars, f"must be >= 2 x batch_bars ({2 * self.batch_bars})")]
        return []


@dataclass(frozen=True, slots=True)
class RollbackConfig:
    """[control.governance.rollback] — when production goes back to the previous model."""

    min_bars: int = setting(200, live=True, ge=1, le=10_000_000, doc="live bars of production averaged for the log-likelihood rule")
    ll_drop_per_bar: float = setting(0.0, live=True, ge=0, le=1_000,
                                     doc="roll back when production's live log-likelihood per bar is below its training baseline by more; 0 = off")
    max_drawdown_pct: float = setting(0.0, live=True, ge=0, le=100, doc="roll back when the strategy's drawdown passes this (percent); 0 = off")


@dataclass(frozen=True, slots=True)
class GovernanceConfig:
    """[control.governance] — rules that reduce, disable, promote and roll back on evidence."""

    enabled: bool = setting(True, live=True, doc="evaluate the rules")
    dry_run: bool = setting(False, live=True, doc="decide and record, never act")
    interval_s: float = setting(10.0, live=True, ge=1, le=86_400, doc="evaluation period")
    max_drawdown_pct: float = setting(0.0, live=True, ge=0, le=100, doc="per-strategy drawdown limit (percent of its equity peak); 0 = off")
    max_loss_streak: int = setting(0, live=True, ge=0, le=100_000, doc="per-strategy limit on consecutive losing round trips; 0 = off")
    max_error_rate: float = setting(0.0, live=True, ge=0, le=1, doc="per-strategy limit on (rejects + denials) / orders over error_window_s; 0 = off")
    error_window_s: float = setting(3600.0, live=True, ge=1, le=30 * 86_400, doc="window of the error rate")
    error_min_orders: int = setting(10, live=True, ge=1, le=1_000_000, doc="orders in the window before the error rate counts")
    limit_action: str = setting("reduce", live=True, choices=tuple(LIMIT_STATE), doc="what a limit breach does to the strategy")
    stale_data_s: float = setting(0.0, live=True, ge_or_zero=1, le=30 * 86_400,
                                  doc="an instrument's data older than this (or its venue unhealthy) makes its strategies reduce-only; 0 = off")
    promotion: PromotionConfig = section(PromotionConfig, doc="model promotion on evidence")  # noqa: RUF009 (a field with a default_factory)
    rollback: RollbackConfig = section(RollbackConfig, doc="automatic model rollback")  # noqa: RUF009 (a field with a default_factory)


# ---------------------------------------------------------------- ports


class StrategyStatsView(Protocol):
    """What governance reads of one strategy's sub-account (the router's StrategyStats)."""

    @property
    def drawdown_pct(self) -> float:
        """Drawdown from the equity peak, percent (0-100)."""
        ...

    @property
    def loss_streak(self) -> int:
        """Consecutive losing round trips."""
        ...

    @property
    def orders(self) -> int:
        """Orders sent on the strategy's behalf (cumulative)."""
        ...

    @property
    def errors(self) -> int:
        """Rejected orders plus router/risk denials (cumulative)."""
        ...


class GovernanceInputs(Protocol):
    """Everything governance reads (the integrator adapts router, marks and venue health)."""

    def strategy_ids(self) -> Sequence[str]:
        """Configured strategies."""
        ...

    def stats(self, strategy_id: str) -> StrategyStatsView:
        """The strategy's drawdown, loss streak, orders and errors."""
        ...

    def instruments(self, strategy_id: str) -> Sequence[InstrumentId]:
        """The strategy's instruments."""
        ...

    def data_age_s(self, instrument_id: InstrumentId) -> float | None:
        """Seconds since the instrument's last market data; None when none arrived yet."""
        ...

    def venue_ok(self, venue: str) -> bool:
        """The venue is connected, healthy and not halted."""
        ...

    def mark(self, instrument_id: InstrumentId) -> float | None:
        """The instrument's current mark (None: none yet); read when a model decision arrives."""
        ...

    def capital_usd(self, strategy_id: str) -> float:
        """The strategy's production capital (prices the lanes' shadow returns in USD)."""
        ...


class StrategyControl(Protocol):
    """The router's strategy states."""

    def set_state(self, strategy_id: str, state: str, reason: str, source: str) -> None:
        """active | reduce | disabled; KeyError for an unknown strategy."""
        ...

    def state(self, strategy_id: str) -> str:
        """The strategy's current state."""
        ...


class ModelControl(Protocol):
    """One HMM strategy's model service (strategies.hmm_service.ModelService)."""

    @property
    def production_id(self) -> str | None:
        """Production model id (None: no model yet)."""
        ...

    @property
    def canary_id(self) -> str | None:
        """Canary model id (None: no canary)."""
        ...

    @property
    def may_promote(self) -> bool:
        """Whether governance may promote on evidence ([hmm] train.auto_promote)."""
        ...

    def baseline_ll_per_bar(self) -> float | None:
        """Production's log-likelihood per bar on its training data (None: unknown)."""
        ...

    async def promote(self, model_id: str) -> Mapping[str, Any]:
        """Make `model_id` production."""
        ...

    async def rollback(self, expected_id: str | None = None) -> Mapping[str, Any]:
        """Production back to the previous production model, if `expected_id` is still production."""
        ...


# ---------------------------------------------------------------- evidence


class _ModelEvidence:
    """Live evidence of one HMM strategy's production and canary, paired by (instrument, bar ts).

    Per lane and bar: the model's log-likelihood, and its shadow return: the exposure the
    lane stated at its previous decision times the instrument's price change since then
    (marks read as the decisions arrive). Both lanes are priced on the same marks and the
    same notional capital, whatever share of capital the canary really trades, so their
    shadow PnL compares the models, not their allocations.
    """

    __slots__ = ("canary_id", "last_look", "looks", "pairs", "pending_canary", "pending_prod", "positions",
                 "prod", "prod_id")

    def __init__(self) -> None:
        self.prod_id: str | None = None
        self.canary_id: str | None = None
        self.prod: deque[float] = deque(maxlen=LL_BARS_KEPT)  # production's log-likelihoods, for rollback
        # (bar ts, canary - production log-likelihood, canary - production shadow return, production return)
        self.pairs: deque[tuple[int, float, float, float]] = deque(maxlen=LL_BARS_KEPT)
        self.pending_prod: dict[tuple[str, int], tuple[float, float]] = {}
        self.pending_canary: dict[tuple[str, int], tuple[float, float]] = {}
        self.positions: dict[tuple[bool, str], tuple[float, float]] = {}  # (canary?, iid) -> (exposure, price)
        self.looks = 0
        self.last_look: dict[str, Any] | None = None

    def sync(self, prod_id: str | None, canary_id: str | None) -> None:
        """Start a window over when a model changed."""
        if prod_id != self.prod_id:
            self.prod_id = prod_id
            self.prod.clear()
            self._reset_pairs()
        if canary_id != self.canary_id:
            self.canary_id = canary_id
            self._reset_pairs()

    def _reset_pairs(self) -> None:
        self.pairs.clear()
        self.pending_prod.clear()
        self.pending_canary.clear()
        self.positions.clear()
        self.looks = 0
        self.last_look = None

    def add(self, iid: str, ts_ns: int, canary: bool, exposure: float, price: float | None,
            ll: float | None) -> None:
        """One decision of one lane: its shadow return since its last decision, and its score of the bar."""
        ret = 0.0
        prev = self.positions.get((canary, iid))
        if price is not None and math.isfinite(price) and price > 0:
            if prev is not None:
                ret = prev[0] * (price / prev[1] - 1.0)
            self.positions[(canary, iid)] = (exposure if math.isfinite(exposure) else 0.0, price)
        if ll is None:
            return
        if not canary:
            self.prod.append(ll)
        if self.canary_id is None:
            return
        key = (iid, ts_ns)
        mine, other = (self.pending_canary, self.pending_prod) if canary else (self.pending_prod, self.pending_canary)
        got = other.pop(key, None)
        if got is None:
            if len(mine) >= PENDING_KEPT:
                mine.pop(next(iter(mine)))
            mine[key] = (ll, ret)
            return
        (c_ll, c_ret), (p_ll, p_ret) = ((ll, ret), got) if canary else (got, (ll, ret))
        self.pairs.append((ts_ns, c_ll - p_ll, c_ret - p_ret, p_ret))


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What one rule wants for one strategy now: an action (None: condition clear)."""

    rule: str
    action: str | None
    reason: str
    evidence: dict[str, Any]
    scope: str = ""  # model rules: the model the verdict is about (a new model re-arms the rule)


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


# ---------------------------------------------------------------- component


class Governance(BaseComponent):
    """Evaluates the governance rules every interval_s and records each decision with its evidence."""

    name = "governance"

    def __init__(self, config: Callable[[], GovernanceConfig], clock: Clock, bus: Bus,
                 inputs: GovernanceInputs, strategies: StrategyControl,
                 models: Mapping[str, ModelControl]) -> None:
        super().__init__()
        self._config = config
        self.clock = clock
        self.bus = bus
        self.inputs = inputs
        self.strategies = strategies
        self.models = models  # the integrator may replace entries on reload (same mapping object)
        self._evidence: dict[str, _ModelEvidence] = {}
        self._latched: dict[tuple[str, str], tuple[str, str]] = {}  # (rule, sid) -> (action, scope)
        self._holder: dict[str, str] = {}  # sid -> the governance rule that last set its state
        self._errors: dict[str, deque[tuple[float, int, int]]] = {}  # sid -> (monotonic s, orders, errors)
        self._status: dict[str, dict[str, dict[str, Any]]] = {}
        self.decisions: deque[dict[str, Any]] = deque(maxlen=DECISIONS_KEPT)
        self.counts: dict[tuple[str, str, str], int] = {}
        self.evaluations = 0
        self.last_evaluated_ns: int | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def config(self) -> GovernanceConfig:
        """The current [control.governance] config."""
        return self._config()

    # ------------------------------------------------------------ lifecycle

    def attach(self) -> Callable[[], None]:
        """Subscribe to PolicyDecision (live log-likelihoods); returns the unsubscriber."""
        if self._unsubscribe is None:
            self._unsubscribe = self.bus.subscribe(PolicyDecision, self.on_policy_decision, name="governance")
        return self.detach

    def detach(self) -> None:
        """Stop listening to the bus."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def start(self) -> None:
        """Listen to live log-likelihoods."""
        self.attach()

    async def run(self) -> None:
        """Every interval_s (injected clock): evaluate the rules."""
        while True:
            await self.clock.sleep(self.config.interval_s)
            await self.evaluate()

    async def stop(self) -> None:
        """Stop listening."""
        self.detach()

    # ------------------------------------------------------------ evidence in

    def on_policy_decision(self, msg: PolicyDecision) -> None:
        """Bus handler: file one lane's decision (exposure, log-likelihood of the bar) under its strategy."""
        if not msg.model_id:
            return
        sid = msg.strategy_id  # None: not said; then the lane's model id tells the strategy
        if sid is not None and sid not in self.models:
            return
        ll = msg.log_likelihood
        ll = float(ll) if ll is not None and math.isfinite(ll) else None
        canary = bool(msg.shadow)
        for s in [sid] if sid is not None else list(self.models):
            mc = self.models[s]
            if msg.model_id != (mc.canary_id if canary else mc.production_id):
                continue
            ev = self._evidence.setdefault(s, _ModelEvidence())
            ev.sync(mc.production_id, mc.canary_id)
            ev.add(str(msg.instrument_id), msg.ts_event_ns, canary, float(msg.target_exposure),
                   self.inputs.mark(msg.instrument_id), ll)
            return

    # ------------------------------------------------------------ evaluation

    async def evaluate(self) -> list[GovernanceDecision]:
        """Evaluate every rule for every strategy once; returns the decisions made."""
        cfg = self.config
        if not cfg.enabled:
            return []
        self.evaluations += 1
        self.last_evaluated_ns = self.clock.time_ns()
        out: list[GovernanceDecision] = []
        problems: list[str] = []
        ids = list(self.inputs.strategy_ids())
        self._forget_all_but(set(ids))
        for sid in ids:
            try:
                out.extend(await self._evaluate_strategy(cfg, sid))
            except Exception as exc:  # one strategy's broken input must not stop the others' rules
                problems.append(f"{sid}: {exc!r}")
                log.error("governance_evaluation_failed", strategy_id=sid, error=repr(exc), exc_info=exc)
        # Unhealthy (not ready) while a strategy's rules cannot be evaluated: a blind guard.
        self._health = Health(not problems, "rules not evaluated: " + "; ".join(problems)[:500] if problems else "",
                              {"dry_run": cfg.dry_run, "evaluations": self.evaluations,
                               "decisions": sum(self.counts.values())})
        return out

    def _forget_all_but(self, ids: set[str]) -> None:
        """A strategy removed by a reload takes its rule state with it (re-added: it starts over)."""
        for sid in [s for s in self._status if s not in ids]:
            del self._status[sid]
        for key in [k for k in self._latched if k[1] not in ids]:
            del self._latched[key]
        for d in (self._holder, self._errors, self._evidence):
            for sid in [s for s in d if s not in ids]:
                del d[sid]

    async def _evaluate_strategy(self, cfg: GovernanceConfig, sid: str) -> list[GovernanceDecision]:
        stats = self.inputs.stats(sid)
        status = self._status.setdefault(sid, {})
        out: list[GovernanceDecision] = []
        for verdict in (self._drawdown(cfg, sid, stats), self._loss_streak(cfg, sid, stats),
                        self._error_rate(cfg, sid, stats), self._stale(cfg, sid)):
            status[verdict.rule] = self._status_row(verdict)
            d = await self._edge(cfg, sid, verdict, self._apply_state)
            if d is not None:
                out.append(d)
        mc = self.models.get(sid)
        if mc is None:
            for rule in ("promotion", "rollback_ll", "rollback_drawdown"):
                status.pop(rule, None)
            return out
        ev = self._evidence.setdefault(sid, _ModelEvidence())
        ev.sync(mc.production_id, mc.canary_id)
        rolled_back = False
        for verdict in (self._rollback_ll(cfg, mc, ev), self._rollback_drawdown(cfg, mc, stats)):
            status[verdict.rule] = self._status_row(verdict)
            act = self._blocked if rolled_back else self._apply_model
            d = await self._edge(cfg, sid, verdict, act)
            if d is not None:
                out.append(d)
                rolled_back = rolled_back or d.acted
        ev.sync(mc.production_id, mc.canary_id)
        verdict = self._promotion(cfg, sid, mc, ev)
        status[verdict.rule] = self._status_row(verdict)
        act = self._blocked if rolled_back else self._apply_model
        d = await self._edge(cfg, sid, verdict, act)
        if d is not None:
            out.append(d)
        return out

    @staticmethod
    def _status_row(v: _Verdict) -> dict[str, Any]:
        state = "off" if v.evidence.get("off") else ("triggered" if v.action else "ok")
        return {"status": state, "reason": v.reason, "evidence": v.evidence}

    # ------------------------------------------------------------ rules

    @staticmethod
    def _drawdown(cfg: GovernanceConfig, sid: str, stats: StrategyStatsView) -> _Verdict:
        dd, limit = float(stats.drawdown_pct), cfg.max_drawdown_pct
        ev = {"drawdown_pct": _r(dd, 4), "limit_pct": limit, "off": limit == 0}
        if limit > 0 and dd >= limit:
            return _Verdict("drawdown", cfg.limit_action, f"drawdown {dd:.2f}% >= limit {limit:g}%", ev)
        return _Verdict("drawdown", None, f"drawdown {dd:.2f}% (limit {limit:g}%)", ev)

    @staticmethod
    def _loss_streak(cfg: GovernanceConfig, sid: str, stats: StrategyStatsView) -> _Verdict:
        n, limit = int(stats.loss_streak), cfg.max_loss_streak
        ev = {"loss_streak": n, "limit": limit, "off": limit == 0}
        if limit > 0 and n >= limit:
            return _Verdict("loss_streak", cfg.limit_action, f"{n} losing round trips in a row >= limit {limit}", ev)
        return _Verdict("loss_streak", None, f"{n} losing round trips in a row (limit {limit})", ev)

    def _error_rate(self, cfg: GovernanceConfig, sid: str, stats: StrategyStatsView) -> _Verdict:
        now_s = self.clock.monotonic()
        samples = self._errors.setdefault(sid, deque())
        samples.append((now_s, int(stats.orders), int(stats.errors)))
        # The reference sample: the newest one at least error_window_s old (else the oldest).
        while len(samples) >= 2 and now_s - samples[1][0] >= cfg.error_window_s:
            samples.popleft()
        _, orders0, errors0 = samples[0]
        orders, errors = int(stats.orders) - orders0, int(stats.errors) - errors0
        limit = cfg.max_error_rate
        rate = errors / orders if orders > 0 else 0.0
        ev = {"orders": orders, "errors": errors, "error_rate": _r(rate, 4), "limit": limit,
              "window_s": cfg.error_window_s, "min_orders": cfg.error_min_orders, "off": limit == 0}
        if limit > 0 and orders >= cfg.error_min_orders and rate >= limit:
            return _Verdict("error_rate", cfg.limit_action,
                            f"{errors} errors / {orders} orders = {rate:.1%} >= limit {limit:.1%} "
                            f"over {cfg.error_window_s:g} s", ev)
        return _Verdict("error_rate", None, f"{errors} errors / {orders} orders in the window", ev)

    def _stale(self, cfg: GovernanceConfig, sid: str) -> _Verdict:
        limit = cfg.stale_data_s
        if limit <= 0:
            return _Verdict("stale_data", None, "off", {"off": True})
        stale: dict[str, Any] = {}
        venues_down: set[str] = set()
        for iid in self.inputs.instruments(sid):
            age = self.inputs.data_age_s(iid)
            if age is not None and age > limit:
                stale[str(iid)] = round(age, 1)
            venue = getattr(iid, "venue", str(iid).split(":", 1)[0])
            if not self.inputs.venue_ok(venue):
                venues_down.add(venue)
        ev = {"stale_instruments": stale, "venues_unhealthy": sorted(venues_down), "stale_data_s": limit}
        if stale or venues_down:
            parts = [f"data of {', '.join(f'{k} {v:g} s old' for k, v in stale.items())} (> {limit:g} s)"] if stale else []
            parts += [f"venue {', '.join(sorted(venues_down))} unhealthy"] if venues_down else []
            return _Verdict("stale_data", "reduce", "; ".join(parts), ev)
        return _Verdict("stale_data", None, "every instrument fresh, every venue healthy", ev)

    def _rollback_ll(self, cfg: GovernanceConfig, mc: ModelControl, ev: _ModelEvidence) -> _Verdict:
        rb = cfg.rollback
        prod = mc.production_id
        baseline = mc.baseline_ll_per_bar()
        window = list(ev.prod)[-rb.min_bars:]
        live = mean(window) if window else None
        evid = {"production": prod, "baseline_ll_per_bar": _r(baseline), "live_ll_per_bar": _r(live),
                "bars": len(window), "min_bars": rb.min_bars, "ll_drop_per_bar": rb.ll_drop_per_bar,
                "off": rb.ll_drop_per_bar == 0}
        scope = prod or ""
        if rb.ll_drop_per_bar == 0 or prod is None:
            return _Verdict("rollback_ll", None, "off" if prod else "no production model", evid, scope)
        if baseline is None:
            return _Verdict("rollback_ll", None, "no training baseline for the production model", evid, scope)
        if len(window) < rb.min_bars or live is None:
            return _Verdict("rollback_ll", None, f"{len(window)} of {rb.min_bars} live bars", evid, scope)
        floor = baseline - rb.ll_drop_per_bar
        if live < floor:
            return _Verdict("rollback_ll", "rollback",
                            f"production {prod} live log-likelihood {live:.4f}/bar over {len(window)} bars < "
                            f"baseline {baseline:.4f} - {rb.ll_drop_per_bar:g}", evid, scope)
        return _Verdict("rollback_ll", None, f"live {live:.4f}/bar >= {floor:.4f}", evid, scope)

    @staticmethod
    def _rollback_drawdown(cfg: GovernanceConfig, mc: ModelControl, stats: StrategyStatsView) -> _Verdict:
        limit = cfg.rollback.max_drawdown_pct
        dd = float(stats.drawdown_pct)
        prod = mc.production_id
        evid = {"production": prod, "drawdown_pct": _r(dd, 4), "limit_pct": limit, "off": limit == 0}
        if limit > 0 and prod is not None and dd >= limit:
            return _Verdict("rollback_drawdown", "rollback",
                            f"drawdown {dd:.2f}% >= {limit:g}% under production {prod}", evid)
        return _Verdict("rollback_drawdown", None, f"drawdown {dd:.2f}% (limit {limit:g}%)", evid)

    def _promotion(self, cfg: GovernanceConfig, sid: str, mc: ModelControl, ev: _ModelEvidence) -> _Verdict:
        p = cfg.promotion
        canary, prod = mc.canary_id, mc.production_id
        n = len(ev.pairs)
        base = {"production": prod, "canary": canary, "paired_bars": n, "min_bars": p.min_bars,
                "looks": ev.looks, "may_promote": mc.may_promote}
        if canary is None or prod is None:
            return _Verdict("promotion", None, "no canary" if prod else "no production model", base, canary or "")
        next_look_at = (ev.looks + 1) * p.min_bars
        if n >= next_look_at:
            ev.looks = n // p.min_bars
            ev.last_look = self._look(p, sid, ev)
        evid = dict(base, looks=ev.looks, next_look_at_bars=(ev.looks + 1) * p.min_bars)
        look = ev.last_look
        if look is None:
            return _Verdict("promotion", None, f"{n} of {p.min_bars} paired live bars", evid, canary)
        evid.update(look)
        ll_ok, pnl_ok = look["ll_test"]["passed"], look["pnl_passed"]
        t = look["ll_test"]
        mean_diff = "n/a" if t["mean_diff"] is None else f"{t['mean_diff']:+.4f}"
        p_value = "n/a" if t["p_value"] is None else f"{t['p_value']:.3g}"
        ll_txt = (f"log-likelihood {mean_diff}/bar vs margin {p.ll_margin_per_bar:g} "
                  f"(p={p_value}, alpha {look['alpha_look']:.3g}, {t['n']} batches)")
        pnl_txt = f"shadow PnL {look['pnl_diff_usd']:+.2f} USD vs margin {p.pnl_margin_usd:g}"
        if ll_ok and pnl_ok:
            return _Verdict("promotion", "promote",
                            f"canary {canary} beats production {prod} over {look['bars']} bars: {ll_txt}; {pnl_txt}",
                            evid, canary)
        why = [x for ok, x in ((ll_ok, ll_txt), (pnl_ok, pnl_txt)) if not ok]
        return _Verdict("promotion", None, "not better: " + "; ".join(why), evid, canary)

    def _look(self, p: PromotionConfig, sid: str, ev: _ModelEvidence) -> dict[str, Any]:
        """One look at the evidence: the paired t-test on batch means and the shadow PnL difference."""
        diffs = [d for _, d, _, _ in ev.pairs]
        alpha_k = look_alpha(p.alpha, ev.looks)
        test: PairedTest = paired_t_test(batch_means(diffs, p.batch_bars), p.ll_margin_per_bar, alpha_k)
        capital = float(self.inputs.capital_usd(sid))
        prod_ret = math.fsum(r for _, _, _, r in ev.pairs)
        diff_ret = math.fsum(r for _, _, r, _ in ev.pairs)
        prod_usd, diff_usd = prod_ret * capital, diff_ret * capital
        return {"bars": len(diffs), "alpha_look": alpha_k, "ll_test": test.to_dict(),
                "capital_usd": round(capital, 2), "production_pnl_usd": round(prod_usd, 2),
                "canary_pnl_usd": round(prod_usd + diff_usd, 2), "pnl_diff_usd": round(diff_usd, 2),
                "pnl_margin_usd": p.pnl_margin_usd, "pnl_passed": diff_usd > p.pnl_margin_usd,
                "since_ns": ev.pairs[0][0] if ev.pairs else None}

    # ------------------------------------------------------------ decisions

    async def _edge(self, cfg: GovernanceConfig, sid: str, v: _Verdict,
                    act: Callable[[str, _Verdict], Any]) -> GovernanceDecision | None:
        """Decide on a change of the rule's condition only (edge-triggered)."""
        key = (v.rule, sid)
        held = self._latched.get(key)
        if v.action is None:
            if held is None:
                return None
            del self._latched[key]
            if v.rule == "stale_data" and held[0] == "reduce":
                return await self._decide(cfg, sid, _Verdict(v.rule, "restore", v.reason, v.evidence), act)
            return None
        if held == (v.action, v.scope):
            return None
        self._latched[key] = (v.action, v.scope)
        return await self._decide(cfg, sid, v, act)

    async def _decide(self, cfg: GovernanceConfig, sid: str, v: _Verdict,
                      act: Callable[[str, _Verdict], Any]) -> GovernanceDecision:
        assert v.action is not None
        acted, reason = False, v.reason
        if cfg.dry_run:
            reason = f"dry run: {reason}"
        else:
            try:
                done, note = await act(sid, v)
            except Exception as exc:  # recorded with the error: the decision stands, the action failed
                done, note = False, f"failed: {type(exc).__name__}: {exc}"
                log.error("governance_action_failed", rule=v.rule, strategy_id=sid, action=v.action,
                          error=repr(exc))
            acted = done
            if note:
                reason = f"{reason} ({note})"
        evidence = {k: val for k, val in v.evidence.items() if k != "off"}
        now = self.clock.time_ns()
        msg = GovernanceDecision(ts_event_ns=now, ts_init_ns=now, rule=v.rule, strategy_id=sid,
                                 action=v.action, acted=acted, reason=reason, evidence=evidence)
        self.bus.publish(msg)
        key = (v.rule, v.action, "true" if acted else "false")
        self.counts[key] = self.counts.get(key, 0) + 1
        self.decisions.appendleft({"ts_ns": now, "rule": v.rule, "strategy_id": sid, "action": v.action,
                                   "acted": acted, "dry_run": cfg.dry_run, "reason": reason, "evidence": evidence})
        log.warning("governance_decision", rule=v.rule, strategy_id=sid, action=v.action, acted=acted,
                    dry_run=cfg.dry_run, reason=reason, evidence=evidence)
        return msg

    async def _apply_state(self, sid: str, v: _Verdict) -> tuple[bool, str]:
        """Limits and stale data: tighten the strategy's state; `restore` lifts only the stale hold."""
        current = self.strategies.state(sid)
        if v.action == "restore":
            if self._holder.get(sid) != "stale_data" or current != "reduce":
                return False, f"state {current} left as is: not governance's stale hold"
            self.strategies.set_state(sid, "active", f"governance stale_data lifted: {v.reason}", SOURCE)
            self._holder.pop(sid, None)
            return True, ""
        target = LIMIT_STATE.get(v.action or "", v.action or "")
        if STATE_RANK.get(target, 0) <= STATE_RANK.get(current, 0):
            if v.rule != "stale_data":
                self._holder[sid] = v.rule  # a limit now holds it too: fresh data must not lift it
            return False, f"already {current}"
        self.strategies.set_state(sid, target, f"governance {v.rule}: {v.reason}", SOURCE)
        self._holder[sid] = v.rule
        return True, ""

    async def _apply_model(self, sid: str, v: _Verdict) -> tuple[bool, str]:
        """Promotion and rollback through the strategy's model service."""
        mc = self.models[sid]
        if v.action == "promote":
            if not mc.may_promote:
                return False, "advisory: [hmm] train.auto_promote = false"
            if mc.canary_id != v.scope:
                return False, f"canary changed to {mc.canary_id}"
            res = await mc.promote(v.scope)
            return True, f"production {res.get('production')}, previous {res.get('previous')}"
        res = await mc.rollback(mc.production_id)
        return True, f"production {res.get('production')}, rolled back from {res.get('rolled_back')}"

    @staticmethod
    async def _blocked(sid: str, v: _Verdict) -> tuple[bool, str]:
        """A second model action in one evaluation: the first one's rollback already acted."""
        return False, "skipped: the model was rolled back in this evaluation"

    # ------------------------------------------------------------ views

    def view(self) -> dict[str, Any]:
        """GET /governance: config summary, recent decisions (newest first) with evidence, rule status."""
        cfg = self.config
        p, rb = cfg.promotion, cfg.rollback
        strategies = {}
        for sid, rules in self._status.items():
            try:
                state: str | None = self.strategies.state(sid)
            except KeyError:
                state = None
            strategies[sid] = {"state": state, "held_by": self._holder.get(sid), "rules": rules}
        return {
            "enabled": cfg.enabled,
            "dry_run": cfg.dry_run,
            "interval_s": cfg.interval_s,
            "rules": {
                "drawdown": {"max_drawdown_pct": cfg.max_drawdown_pct, "action": cfg.limit_action},
                "loss_streak": {"max_loss_streak": cfg.max_loss_streak, "action": cfg.limit_action},
                "error_rate": {"max_error_rate": cfg.max_error_rate, "window_s": cfg.error_window_s,
                               "min_orders": cfg.error_min_orders, "action": cfg.limit_action},
                "stale_data": {"stale_data_s": cfg.stale_data_s, "action": "reduce"},
                "promotion": {"min_bars": p.min_bars, "batch_bars": p.batch_bars,
                              "ll_margin_per_bar": p.ll_margin_per_bar, "pnl_margin_usd": p.pnl_margin_usd,
                              "alpha": p.alpha,
                              "test": "one-sided paired t-test on batch means; look k at alpha/(k(k+1))"},
                "rollback_ll": {"min_bars": rb.min_bars, "ll_drop_per_bar": rb.ll_drop_per_bar},
                "rollback_drawdown": {"max_drawdown_pct": rb.max_drawdown_pct},
            },
            "evaluations": self.evaluations,
            "last_evaluated_ns": self.last_evaluated_ns,
            "decisions": list(self.decisions),
            "strategies": strategies,
        }

    def collect_metrics(self) -> list[Any]:
        """governance_decisions_total{rule,action,acted}."""
        from nautilus_hmm.obs.metrics import counter_family

        return [counter_family("governance_decisions", "Governance decisions by rule, action and whether it acted",
                               ["rule", "action", "acted"],
                               [([r, a, x], float(n)) for (r, a, x), n in sorted(self.counts.items())])]

