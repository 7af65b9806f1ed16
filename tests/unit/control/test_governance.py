"""Governance: each rule fires on its evidence and not without, once per edge; dry run decides
without acting; promotion needs the evidence; rollback on a log-likelihood drop and on drawdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from nautilus_hmm.config.loader import ConfigError, parse
from nautilus_hmm.control.governance import (
    Governance,
    GovernanceConfig,
    PromotionConfig,
    RollbackConfig,
)
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import NS_PER_S, ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import GovernanceDecision, PolicyDecision, StrategyStateChanged

BTC = InstrumentId("sim", "BTCUSDT")
ETH = InstrumentId("sim", "ETHUSDT")
T0 = 1_700_000_000 * NS_PER_S
BAR_NS = 60 * NS_PER_S


@dataclass
class Stats:
    drawdown_pct: float = 0.0
    loss_streak: int = 0
    orders: int = 0
    errors: int = 0


@dataclass
class FakeInputs:
    """GovernanceInputs over plain dicts."""

    ids: list[str] = field(default_factory=lambda: ["trend", "hmm"])
    stat: dict[str, Stats] = field(default_factory=lambda: {"trend": Stats(), "hmm": Stats()})
    inst: dict[str, list[InstrumentId]] = field(default_factory=lambda: {"trend": [BTC], "hmm": [ETH]})
    age_s: dict[str, float] = field(default_factory=dict)
    venues_down: set[str] = field(default_factory=set)
    marks: dict[str, float] = field(default_factory=dict)
    capital: dict[str, float] = field(default_factory=lambda: {"trend": 10_000.0, "hmm": 10_000.0})

    def strategy_ids(self) -> Sequence[str]:
        return self.ids

    def stats(self, strategy_id: str) -> Stats:
        return self.stat[strategy_id]

    def instruments(self, strategy_id: str) -> Sequence[InstrumentId]:
        return self.inst[strategy_id]

    def data_age_s(self, instrument_id: InstrumentId) -> float | None:
        return self.age_s.get(str(instrument_id))

    def venue_ok(self, venue: str) -> bool:
        return venue not in self.venues_down

    def mark(self, instrument_id: InstrumentId) -> float | None:
        return self.marks.get(str(instrument_id))

    def capital_usd(self, strategy_id: str) -> float:
        return self.capital[strategy_id]


class FakeRouter:
    """StrategyControl: states, publishing StrategyStateChanged like the router."""

    def __init__(self, bus: Bus, clock: ManualClock, ids: Sequence[str]) -> None:
        self.bus, self.clock = bus, clock
        self.states = dict.fromkeys(ids, "active")

    def set_state(self, strategy_id: str, state: str, reason: str, source: str) -> None:
        old = self.states[strategy_id]
        self.states[strategy_id] = state
        now = self.clock.time_ns()
        self.bus.publish(StrategyStateChanged(ts_event_ns=now, ts_init_ns=now, strategy_id=strategy_id,
                                              old=old, new=state, reason=reason, source=source))

    def state(self, strategy_id: str) -> str:
        return self.states[strategy_id]


class FakeModels:
    """ModelControl: tags and baselines like the model service's registry."""

    def __init__(self, production: str | None = "m1", canary: str | None = "m2", *,
                 baselines: Mapping[str, float] | None = None, may_promote: bool = True) -> None:
        self.production_id, self.canary_id = production, canary
        self.previous: list[str] = ["m0"]
        self.baselines = dict({"m0": -1.0, "m1": -1.0, "m2": -1.0} if baselines is None else baselines)
        self.may_promote = may_promote

    def baseline_ll_per_bar(self) -> float | None:
        return self.baselines.get(self.production_id or "")

    async def promote(self, model_id: str) -> dict[str, Any]:
        previous = self.production_id
        if previous:
            self.previous.append(previous)
        self.production_id = model_id
        if self.canary_id == model_id:
            self.canary_id = None
        return {"production": model_id, "previous": previous}

    async def rollback(self, expected_id: str | None = None) -> dict[str, Any]:
        if expected_id is not None and expected_id != self.production_id:
            raise RuntimeError("stale rollback")
        if not self.previous:
            raise LookupError("no previous production model to roll back to")
        current, self.production_id = self.production_id, self.previous.pop()
        return {"production": self.production_id, "rolled_back": current}


class Rig:
    def __init__(self, cfg: GovernanceConfig, models: FakeModels | None = None) -> None:
        self.cfg = cfg
        self.bus = Bus()
        self.clock = ManualClock(T0)
        self.inputs = FakeInputs()
        self.router = FakeRouter(self.bus, self.clock, self.inputs.ids)
        self.models = models or FakeModels()
        self.gov = Governance(lambda: self.cfg, self.clock, self.bus, self.inputs, self.router,
                              {"hmm": self.models})
        self.gov.attach()
        self.decisions: list[GovernanceDecision] = []
        self.state_changes: list[StrategyStateChanged] = []
        self.bus.subscribe(GovernanceDecision, self.decisions.append)
        self.bus.subscribe(StrategyStateChanged, self.state_changes.append)
        self.bar = 0
        self.price = 100.0

    async def tick(self) -> list[GovernanceDecision]:
        self.clock.advance(self.cfg.interval_s)
        return await self.gov.evaluate()

    def score(self, ll: float | None, *, model_id: str, shadow: bool, ts_ns: int, iid: InstrumentId = ETH,
              exposure: float = 0.0) -> None:
        fields = dict(ts_event_ns=ts_ns, ts_init_ns=ts_ns, instrument_id=iid, model_id=model_id, action="target",
                      reason="", target_exposure=exposure, shadow=shadow)
        self.bus.publish(PolicyDecision(**fields, log_likelihood=ll))

    def bars(self, n: int, prod_ll: float, canary_ll: float | None, *, prod_exposure: float = 0.0,
             canary_exposure: float = 0.0, growth: float = 0.001, jitter: float = 0.05) -> None:
        """n bars (the price grows by `growth` per bar) decided and scored by production (and the canary)."""
        for _ in range(n):
            self.bar += 1
            ts = T0 + self.bar * BAR_NS
            self.price *= 1.0 + growth
            self.inputs.marks[str(ETH)] = self.price
            wiggle = jitter if self.bar % 2 else -jitter
            self.score(prod_ll + wiggle, model_id=self.models.production_id or "", shadow=False, ts_ns=ts,
                       exposure=prod_exposure)
            if canary_ll is not None:
                self.score(canary_ll - wiggle / 2, model_id=self.models.canary_id or "", shadow=True, ts_ns=ts,
                           exposure=canary_exposure)


def config(**kw: Any) -> GovernanceConfig:
    promotion = kw.pop("promotion", PromotionConfig(min_bars=100, batch_bars=5, ll_margin_per_bar=0.05,
                                                    pnl_margin_usd=10.0, alpha=0.05))
    rollback = kw.pop("rollback", RollbackConfig())
    return GovernanceConfig(interval_s=10.0, promotion=promotion, rollback=rollback, **kw)


# ---------------------------------------------------------------- limits


async def test_a_drawdown_past_the_limit_reduces_that_strategy_once_and_not_the_others() -> None:
    rig = Rig(config(max_drawdown_pct=10.0))
    rig.inputs.stat["trend"].drawdown_pct = 9.9
    assert await rig.tick() == []
    rig.inputs.stat["trend"].drawdown_pct = 12.5
    [d] = await rig.tick()
    assert (d.rule, d.strategy_id, d.action, d.acted) == ("drawdown", "trend", "reduce", True)
    assert d.evidence == {"drawdown_pct": 12.5, "limit_pct": 10.0}
    assert rig.router.states == {"trend": "reduce", "hmm": "active"}
    assert [(c.strategy_id, c.new, c.source) for c in rig.state_changes] == [("trend", "reduce", "governance")]
    assert await rig.tick() == [] and await rig.tick() == []  # the condition persists: no new decision


async def test_a_loss_streak_disables_when_the_limit_action_says_so() -> None:
    rig = Rig(config(max_loss_streak=4, limit_action="disable"))
    rig.inputs.stat["hmm"].loss_streak = 3
    assert await rig.tick() == []
    rig.inputs.stat["hmm"].loss_streak = 4
    [d] = await rig.tick()
    assert (d.rule, d.strategy_id, d.action, d.acted) == ("loss_streak", "hmm", "disable", True)
    assert rig.router.states["hmm"] == "disabled"


async def test_a_limit_is_not_lifted_by_governance_and_a_human_override_stands() -> None:
    rig = Rig(config(max_loss_streak=2))
    rig.inputs.stat["trend"].loss_streak = 2
    await rig.tick()
    assert rig.router.states["trend"] == "reduce"
    rig.inputs.stat["trend"].loss_streak = 0  # the streak ends: still reduce-only
    assert await rig.tick() == [] and rig.router.states["trend"] == "reduce"
    rig.router.states["trend"] = "active"  # an operator re-enables it
    assert await rig.tick() == [] and rig.router.states["trend"] == "active"
    rig.inputs.stat["trend"].loss_streak = 2  # a new streak: decided again
    [d] = await rig.tick()
    assert d.rule == "loss_streak" and rig.router.states["trend"] == "reduce"


async def test_the_error_rate_counts_errors_per_order_over_the_window_after_enough_orders() -> None:
    rig = Rig(config(max_error_rate=0.2, error_window_s=60.0, error_min_orders=10))
    s = rig.inputs.stat["trend"]
    s.orders, s.errors = 100, 50  # history before the window: not counted
    assert await rig.tick() == []
    s.orders, s.errors = 105, 54  # 4 of 5: too few orders yet
    assert await rig.tick() == []
    s.orders, s.errors = 120, 54  # 4 of 20 = 20 %
    [d] = await rig.tick()
    assert (d.rule, d.action) == ("error_rate", "reduce")
    assert (d.evidence["orders"], d.evidence["errors"], d.evidence["error_rate"]) == (20, 4, 0.2)


async def test_old_errors_leave_the_error_rate_window() -> None:
    rig = Rig(config(max_error_rate=0.5, error_window_s=30.0, error_min_orders=2))
    s = rig.inputs.stat["trend"]
    await rig.tick()
    s.orders, s.errors = 4, 1
    for _ in range(6):  # 60 s of quiet trading: the errors age out
        assert await rig.tick() == []
        s.orders += 2
    assert rig.gov.view()["strategies"]["trend"]["rules"]["error_rate"]["evidence"]["errors"] == 0


async def test_a_limit_never_loosens_a_stricter_state() -> None:
    rig = Rig(config(max_drawdown_pct=5.0))
    rig.router.states["trend"] = "disabled"
    rig.inputs.stat["trend"].drawdown_pct = 6.0
    [d] = await rig.tick()
    assert not d.acted and "already disabled" in d.reason
    assert rig.router.states["trend"] == "disabled"


# ---------------------------------------------------------------- stale data


async def test_stale_data_makes_the_strategy_reduce_only_and_fresh_data_lifts_it() -> None:
    rig = Rig(config(stale_data_s=30.0))
    rig.inputs.age_s[str(BTC)] = 5.0
    rig.inputs.age_s[str(ETH)] = 45.0
    [d] = await rig.tick()
    assert (d.rule, d.strategy_id, d.action, d.acted) == ("stale_data", "hmm", "reduce", True)
    assert d.evidence["stale_instruments"] == {"sim:ETHUSDT": 45.0}
    assert rig.router.states == {"trend": "active", "hmm": "reduce"}
    assert await rig.tick() == []
    rig.inputs.age_s[str(ETH)] = 1.0
    [d] = await rig.tick()
    assert (d.rule, d.action, d.acted) == ("stale_data", "restore", True)
    assert rig.router.states["hmm"] == "active"


async def test_an_unhealthy_venue_makes_its_strategies_reduce_only() -> None:
    rig = Rig(config(stale_data_s=30.0))
    rig.inputs.venues_down.add("sim")
    decisions = await rig.tick()
    assert sorted((d.strategy_id, d.action) for d in decisions) == [("hmm", "reduce"), ("trend", "reduce")]
    assert decisions[0].evidence["venues_unhealthy"] == ["sim"]


async def test_an_instrument_without_data_yet_is_not_stale() -> None:
    rig = Rig(config(stale_data_s=30.0))
    assert await rig.tick() == []


async def test_fresh_data_does_not_lift_a_state_set_by_a_limit() -> None:
    rig = Rig(config(stale_data_s=30.0, max_loss_streak=3))
    rig.inputs.age_s[str(BTC)] = 60.0
    await rig.tick()
    rig.inputs.stat["trend"].loss_streak = 3
    rig.router.states["trend"] = "active"  # pretend an operator lifted the stale hold meanwhile
    await rig.tick()
    assert rig.router.states["trend"] == "reduce"
    rig.inputs.age_s[str(BTC)] = 1.0
    [d] = await rig.tick()
    assert (d.action, d.acted) == ("restore", False) and rig.router.states["trend"] == "reduce"


# ---------------------------------------------------------------- dry run, records


async def test_dry_run_decides_and_records_without_acting() -> None:
    rig = Rig(config(dry_run=True, max_drawdown_pct=10.0))
    rig.inputs.stat["trend"].drawdown_pct = 20.0
    with capture_logs() as logs:
        [d] = await rig.tick()
    assert (d.rule, d.action, d.acted) == ("drawdown", "reduce", False)
    assert d.reason.startswith("dry run: ")
    assert rig.router.states["trend"] == "active" and rig.state_changes == []
    assert await rig.tick() == []  # decided once, like a live run
    [line] = [e for e in logs if e["event"] == "governance_decision"]
    assert (line["log_level"], line["rule"], line["acted"], line["dry_run"]) == ("warning", "drawdown", False, True)
    assert line["evidence"] == {"drawdown_pct": 20.0, "limit_pct": 10.0}


async def test_each_decision_is_a_metric_and_a_view_row_newest_first() -> None:
    rig = Rig(config(max_drawdown_pct=10.0, max_loss_streak=2))
    rig.inputs.stat["trend"].drawdown_pct = 11.0
    await rig.tick()
    rig.inputs.stat["hmm"].loss_streak = 2
    await rig.tick()
    view = rig.gov.view()
    assert [(r["rule"], r["strategy_id"]) for r in view["decisions"]] == [("loss_streak", "hmm"), ("drawdown", "trend")]
    assert view["decisions"][1]["evidence"] == {"drawdown_pct": 11.0, "limit_pct": 10.0}
    assert view["dry_run"] is False and view["rules"]["drawdown"]["max_drawdown_pct"] == 10.0
    assert view["strategies"]["trend"]["rules"]["drawdown"]["status"] == "triggered"
    assert view["strategies"]["hmm"]["rules"]["drawdown"]["status"] == "ok"
    assert view["strategies"]["trend"]["held_by"] == "drawdown"
    [fam] = rig.gov.collect_metrics()
    samples = {(s.labels["rule"], s.labels["action"], s.labels["acted"]): s.value for s in fam.samples}
    assert fam.name == "governance_decisions"
    assert samples == {("drawdown", "reduce", "true"): 1.0, ("loss_streak", "reduce", "true"): 1.0}


async def test_disabled_governance_decides_nothing() -> None:
    rig = Rig(config(enabled=False, max_drawdown_pct=1.0))
    rig.inputs.stat["trend"].drawdown_pct = 50.0
    assert await rig.tick() == [] and rig.gov.view()["decisions"] == []


async def test_an_action_that_fails_is_recorded_as_not_acted_with_the_error() -> None:
    rig = Rig(config(max_drawdown_pct=10.0))
    rig.inputs.ids.append("ghost")  # the router does not know it
    rig.inputs.stat["ghost"] = Stats(drawdown_pct=30.0)
    rig.inputs.inst["ghost"] = []
    [d] = await rig.tick()
    assert (d.strategy_id, d.acted) == ("ghost", False) and "failed: KeyError" in d.reason


async def test_the_run_loop_evaluates_every_interval_on_the_injected_clock() -> None:
    import asyncio

    rig = Rig(config(max_drawdown_pct=10.0))
    task = asyncio.create_task(rig.gov.run())
    try:
        await rig.clock.advance_settle(35.0)
        assert rig.gov.evaluations == 3
    finally:
        task.cancel()


# ---------------------------------------------------------------- promotion


async def test_a_canary_better_on_both_after_min_bars_is_promoted() -> None:
    rig = Rig(config())
    rig.bars(99, prod_ll=-1.0, canary_ll=-0.8, canary_exposure=1.0)
    assert await rig.tick() == []  # 99 of 100 paired bars: no look yet
    assert rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]["reason"] == "99 of 100 paired live bars"
    rig.bars(1, prod_ll=-1.0, canary_ll=-0.8, canary_exposure=1.0)
    [d] = await rig.tick()
    assert (d.rule, d.strategy_id, d.action, d.acted) == ("promotion", "hmm", "promote", True)
    assert rig.models.production_id == "m2" and rig.models.canary_id is None
    ev = d.evidence
    assert ev["ll_test"]["passed"] and ev["ll_test"]["n"] == 20 and ev["alpha_look"] == 0.025
    assert ev["ll_test"]["mean_diff"] == pytest.approx(0.2, abs=0.03)
    # long 1x on a price growing 0.1 % a bar, from the second bar on: 99 x 0.001 x 10 000 USD
    assert (ev["canary_pnl_usd"], ev["production_pnl_usd"], ev["pnl_diff_usd"]) == (990.0, 0.0, 990.0)
    assert await rig.tick() == []


async def test_a_canary_better_on_log_likelihood_but_not_on_pnl_is_not_promoted() -> None:
    rig = Rig(config())
    rig.bars(250, prod_ll=-1.0, canary_ll=-0.5, prod_exposure=0.5, canary_exposure=0.5)
    assert await rig.tick() == []
    row = rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]
    assert row["status"] == "ok" and "shadow PnL +0.00 USD vs margin 10" in row["reason"]
    assert row["evidence"]["ll_test"]["passed"] and not row["evidence"]["pnl_passed"]
    assert rig.models.production_id == "m1"


async def test_a_canary_better_on_pnl_but_not_beyond_the_log_likelihood_margin_is_not_promoted() -> None:
    rig = Rig(config())
    rig.bars(200, prod_ll=-1.0, canary_ll=-0.98, canary_exposure=1.0)  # +0.02/bar < margin 0.05
    assert await rig.tick() == []
    assert rig.models.production_id == "m1"
    row = rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]
    assert not row["evidence"]["ll_test"]["passed"] and row["evidence"]["pnl_passed"]


async def test_a_canary_that_only_matches_production_is_not_promoted_over_many_looks() -> None:
    rig = Rig(config(promotion=PromotionConfig(min_bars=50, batch_bars=5, ll_margin_per_bar=0.0,
                                               pnl_margin_usd=0.0, alpha=0.05)))
    for _ in range(20):
        rig.bars(50, prod_ll=-1.0, canary_ll=-1.0, prod_exposure=1.0, canary_exposure=1.0, jitter=0.3)
        assert await rig.tick() == []
    assert rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]["evidence"]["looks"] == 20


async def test_a_promotion_is_advisory_while_auto_promote_is_off() -> None:
    rig = Rig(config(), FakeModels(may_promote=False))
    rig.bars(100, prod_ll=-1.0, canary_ll=-0.8, canary_exposure=1.0)
    [d] = await rig.tick()
    assert (d.action, d.acted) == ("promote", False) and "auto_promote = false" in d.reason
    assert rig.models.production_id == "m1"
    assert await rig.tick() == []  # decided once for this canary


async def test_dry_run_promotion_decides_without_promoting() -> None:
    rig = Rig(config(dry_run=True))
    rig.bars(100, prod_ll=-1.0, canary_ll=-0.8, canary_exposure=1.0)
    [d] = await rig.tick()
    assert (d.action, d.acted) == ("promote", False) and rig.models.production_id == "m1"


async def test_a_new_canary_starts_its_evidence_over() -> None:
    rig = Rig(config())
    rig.bars(80, prod_ll=-1.0, canary_ll=-0.8, canary_exposure=1.0)
    rig.models.canary_id = "m3"
    rig.models.baselines["m3"] = -1.0
    rig.bars(50, prod_ll=-1.0, canary_ll=-0.8, canary_exposure=1.0)
    assert await rig.tick() == []
    assert rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]["evidence"]["paired_bars"] == 50


async def test_scores_of_other_models_and_unpaired_bars_are_not_evidence() -> None:
    rig = Rig(config())
    for i in range(150):
        ts = T0 + (i + 1) * BAR_NS
        rig.score(-0.5, model_id="m9", shadow=True, ts_ns=ts)  # not this strategy's canary
        rig.score(-1.0, model_id="m1", shadow=False, ts_ns=ts)
        rig.score(-0.5, model_id="m2", shadow=True, ts_ns=ts + 1)  # another bar: no pair
    assert await rig.tick() == []
    assert rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]["evidence"]["paired_bars"] == 0


# ---------------------------------------------------------------- rollback


def rollback_cfg(**kw: Any) -> GovernanceConfig:
    return config(rollback=RollbackConfig(**kw))


async def test_production_log_likelihood_below_its_baseline_rolls_back() -> None:
    rig = Rig(rollback_cfg(min_bars=50, ll_drop_per_bar=0.5), FakeModels(canary=None))
    rig.bars(100, prod_ll=-1.3, canary_ll=None)  # 0.3 below the baseline -1.0: within the margin
    assert await rig.tick() == []
    rig.bars(10, prod_ll=-2.0, canary_ll=None)  # the last 50 bars average -1.44 >= -1.5
    assert await rig.tick() == []
    rig.bars(40, prod_ll=-2.0, canary_ll=None)
    [d] = await rig.tick()
    assert (d.rule, d.action, d.acted) == ("rollback_ll", "rollback", True)
    assert rig.models.production_id == "m0"
    assert d.evidence["baseline_ll_per_bar"] == -1.0 and d.evidence["live_ll_per_bar"] == pytest.approx(-2.0, abs=0.01)
    assert d.evidence["production"] == "m1" and d.evidence["bars"] == 50
    assert await rig.tick() == []  # the restored model's window starts over


async def test_without_a_training_baseline_the_log_likelihood_rule_does_not_roll_back() -> None:
    rig = Rig(rollback_cfg(min_bars=20, ll_drop_per_bar=0.5), FakeModels(canary=None, baselines={}))
    rig.bars(100, prod_ll=-9.0, canary_ll=None)
    assert await rig.tick() == []
    assert rig.gov.view()["strategies"]["hmm"]["rules"]["rollback_ll"]["reason"] == \
        "no training baseline for the production model"


async def test_drawdown_past_the_rollback_limit_rolls_back_once() -> None:
    rig = Rig(rollback_cfg(max_drawdown_pct=8.0), FakeModels(canary=None))
    rig.models.previous = ["m-1", "m0"]
    rig.inputs.stat["hmm"].drawdown_pct = 7.0
    assert await rig.tick() == []
    rig.inputs.stat["hmm"].drawdown_pct = 9.0
    [d] = await rig.tick()
    assert (d.rule, d.action, d.acted) == ("rollback_drawdown", "rollback", True)
    assert d.evidence == {"production": "m1", "drawdown_pct": 9.0, "limit_pct": 8.0}
    assert rig.models.production_id == "m0"
    assert await rig.tick() == []  # the drawdown persists: the restored model is not rolled back too
    assert rig.models.production_id == "m0"


async def test_one_rollback_per_strategy_per_evaluation() -> None:
    rig = Rig(rollback_cfg(min_bars=10, ll_drop_per_bar=0.1, max_drawdown_pct=5.0), FakeModels(canary=None))
    rig.models.previous = ["m-1", "m0"]
    rig.bars(10, prod_ll=-3.0, canary_ll=None)
    rig.inputs.stat["hmm"].drawdown_pct = 6.0
    decisions = await rig.tick()
    assert [(d.rule, d.acted) for d in decisions] == [("rollback_ll", True), ("rollback_drawdown", False)]
    assert rig.models.production_id == "m0"


async def test_a_rollback_without_a_previous_model_is_recorded_as_failed() -> None:
    rig = Rig(rollback_cfg(max_drawdown_pct=5.0), FakeModels(canary=None))
    rig.models.previous = []
    rig.inputs.stat["hmm"].drawdown_pct = 6.0
    [d] = await rig.tick()
    assert not d.acted and "no previous production model" in d.reason
    assert rig.models.production_id == "m1"


async def test_shadow_pnl_prices_each_lanes_previous_exposure_on_the_same_marks() -> None:
    rig = Rig(config(promotion=PromotionConfig(min_bars=4, batch_bars=2, ll_margin_per_bar=0.0,
                                               pnl_margin_usd=0.0, alpha=0.05)))
    rig.inputs.capital["hmm"] = 1_000.0
    for i, (price, prod_x, canary_x) in enumerate([(100.0, 0.0, 1.0), (110.0, 1.0, -1.0), (99.0, 0.5, 0.0),
                                                   (99.0, 0.0, 0.0)]):
        ts = T0 + (i + 1) * BAR_NS
        rig.inputs.marks[str(ETH)] = price
        rig.score(-1.0 - i * 0.01, model_id="m1", shadow=False, ts_ns=ts, exposure=prod_x)
        rig.score(-1.0 + i * 0.01, model_id="m2", shadow=True, ts_ns=ts, exposure=canary_x)
    await rig.tick()
    ev = rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]["evidence"]
    # production: 0 x +10 %, then 1 x -10 %, then 0.5 x 0 %; the canary: 1 x +10 %, -1 x -10 %, 0
    assert (ev["production_pnl_usd"], ev["canary_pnl_usd"], ev["pnl_diff_usd"]) == (-100.0, 200.0, 300.0)
    assert ev["capital_usd"] == 1_000.0


async def test_a_decision_without_a_log_likelihood_still_moves_the_lanes_shadow_position() -> None:
    rig = Rig(config(promotion=PromotionConfig(min_bars=2, batch_bars=1, ll_margin_per_bar=0.0,
                                               pnl_margin_usd=0.0, alpha=0.05)))
    rig.inputs.marks[str(ETH)] = 100.0
    rig.score(None, model_id="m2", shadow=True, ts_ns=T0, exposure=1.0)  # not ready to score yet
    rig.score(None, model_id="m1", shadow=False, ts_ns=T0, exposure=0.0)
    for i, price in enumerate((101.0, 102.0)):
        ts = T0 + (i + 1) * BAR_NS
        rig.inputs.marks[str(ETH)] = price
        rig.score(-1.0, model_id="m1", shadow=False, ts_ns=ts, exposure=0.0)
        rig.score(-0.5 - i * 0.1, model_id="m2", shadow=True, ts_ns=ts, exposure=1.0)
    await rig.tick()
    ev = rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]["evidence"]
    assert ev["canary_pnl_usd"] == pytest.approx(199.01, abs=0.01)  # 10 000 x (1 % + 1/101)


async def test_a_strategy_removed_by_a_reload_leaves_no_rule_state_behind() -> None:
    rig = Rig(config(max_drawdown_pct=10.0))
    rig.inputs.stat["trend"].drawdown_pct = 20.0
    await rig.tick()
    rig.inputs.ids.remove("trend")
    await rig.tick()
    assert set(rig.gov.view()["strategies"]) == {"hmm"}
    rig.inputs.ids.append("trend")  # added back, its drawdown still past the limit: decided anew
    rig.router.states["trend"] = "active"
    [d] = await rig.tick()
    assert (d.rule, d.strategy_id, d.acted) == ("drawdown", "trend", True)


def test_the_governance_table_parses_with_its_nested_tables_and_names_bad_values() -> None:
    cfg = parse(GovernanceConfig, {"dry_run": True, "stale_data_s": 30, "promotion": {"min_bars": 300, "alpha": 0.01},
                                   "rollback": {"ll_drop_per_bar": 0.5}})
    assert (cfg.dry_run, cfg.promotion.min_bars, cfg.promotion.alpha, cfg.rollback.ll_drop_per_bar) == \
        (True, 300, 0.01, 0.5)
    for bad, message in (({"promotion": {"min_bars": 9, "batch_bars": 5}}, "promotion.min_bars = 9: must be >= 2 x batch_bars (10)"),
                         ({"stale_data_s": 0.5}, "stale_data_s = 0.5: must be 0 (off) or >= 1"),
                         ({"limit_action": "halt"}, "limit_action = \"halt\": must be one of 'reduce', 'disable'"),
                         ({"rollback": {"max_drawdown_pct": 120}}, "rollback.max_drawdown_pct = 120: must be <= 100")):
        with pytest.raises(ConfigError) as info:
            parse(GovernanceConfig, bad, "config.toml")
        assert message in str(info.value)


async def test_a_strategy_whose_inputs_fail_makes_governance_unhealthy_and_the_others_are_still_governed() -> None:
    rig = Rig(config(max_drawdown_pct=10.0))
    rig.inputs.ids.insert(0, "broken")  # no stats for it: KeyError from the inputs
    rig.inputs.stat["trend"].drawdown_pct = 20.0
    [d] = await rig.tick()
    assert d.strategy_id == "trend" and rig.router.states["trend"] == "reduce"
    health = rig.gov.health()
    assert not health.ok and "broken: KeyError" in health.detail
    rig.inputs.ids.remove("broken")
    await rig.tick()
    assert rig.gov.health().ok


async def test_a_look_with_too_few_batches_is_reported_as_not_better() -> None:
    rig = Rig(config(promotion=PromotionConfig(min_bars=10, batch_bars=5)))
    rig.bars(10, prod_ll=-1.0, canary_ll=-0.5, canary_exposure=1.0)
    rig.cfg = config(promotion=PromotionConfig(min_bars=10, batch_bars=8))  # unvalidated: one batch per look
    assert await rig.tick() == []
    row = rig.gov.view()["strategies"]["hmm"]["rules"]["promotion"]
    assert row["reason"].startswith("not better: log-likelihood +0.5000/bar vs margin 0 (p=1, alpha 0.025, 1 batches)")


async def test_a_limit_breached_during_a_stale_hold_keeps_the_strategy_reduced_when_data_is_fresh() -> None:
    rig = Rig(config(stale_data_s=30.0, max_loss_streak=3))
    rig.inputs.age_s[str(BTC)] = 60.0
    await rig.tick()
    assert rig.router.states["trend"] == "reduce"
    rig.inputs.stat["trend"].loss_streak = 3
    [d] = await rig.tick()
    assert (d.rule, d.acted) == ("loss_streak", False) and "already reduce" in d.reason
    rig.inputs.age_s[str(BTC)] = 1.0
    [d] = await rig.tick()
    assert (d.rule, d.action, d.acted) == ("stale_data", "restore", False)
    assert rig.router.states["trend"] == "reduce"


async def test_the_view_and_every_decisions_evidence_are_json() -> None:
    import orjson

    rig = Rig(config(stale_data_s=30.0, max_drawdown_pct=1.0,
                     rollback=RollbackConfig(min_bars=5, ll_drop_per_bar=0.1, max_drawdown_pct=1.0)))
    rig.inputs.age_s[str(ETH)] = 99.0
    rig.inputs.stat["hmm"].drawdown_pct = 3.0
    rig.bars(100, prod_ll=-3.0, canary_ll=-0.5, canary_exposure=1.0)
    decisions = await rig.tick()
    assert {d.rule for d in decisions} >= {"stale_data", "drawdown", "rollback_ll", "rollback_drawdown"}
    for d in decisions:
        orjson.dumps(d.evidence)
    assert orjson.loads(orjson.dumps(rig.gov.view()))["decisions"]


async def test_a_decision_names_its_strategy_so_equal_model_ids_of_two_strategies_do_not_mix() -> None:
    rig = Rig(config(promotion=PromotionConfig(min_bars=2, batch_bars=1)))
    other = FakeModels()  # the same model ids in another strategy's registry
    rig.gov.models = {"other": other, "hmm": rig.models}
    for i in range(3):
        ts = T0 + (i + 1) * BAR_NS
        for shadow, model_id in ((False, "m1"), (True, "m2")):
            rig.bus.publish(PolicyDecision(ts_event_ns=ts, ts_init_ns=ts, instrument_id=ETH, model_id=model_id,
                                           action="hold", reason="", target_exposure=0.0, shadow=shadow,
                                           log_likelihood=-1.0, strategy_id="hmm"))
    rig.inputs.ids.append("other")
    rig.inputs.stat["other"] = Stats()
    rig.inputs.inst["other"] = [ETH]
    rig.router.states["other"] = "active"
    await rig.tick()
    strategies = rig.gov.view()["strategies"]
    assert strategies["hmm"]["rules"]["promotion"]["evidence"]["paired_bars"] == 3
    assert strategies["other"]["rules"]["promotion"]["evidence"]["paired_bars"] == 0
