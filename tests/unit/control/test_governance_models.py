"""Governance against the real model service and HMM strategy: the ModelControl port in practice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nautilus_hmm.control.governance import (
    Governance,
    GovernanceConfig,
    PromotionConfig,
    RollbackConfig,
)
from nautilus_hmm.messages import PolicyDecision
from tests.unit.control.test_governance import FakeInputs, FakeRouter, Stats
from tests.unit.hmm.fakes import FakeJob
from tests.unit.hmm.kit import IID
from tests.unit.hmm.test_service import Rig as ServiceRig


@pytest.fixture
async def svc_rig(tmp_path: Path) -> AsyncIterator[ServiceRig]:
    FakeJob.behaviour = "ok"
    FakeJob.created.clear()
    r = ServiceRig(tmp_path)
    await r.svc.start()
    r.feed.run(2100, 0.0)
    yield r
    await r.svc.stop()


def governed(rig: ServiceRig, cfg: GovernanceConfig) -> tuple[Governance, FakeInputs]:
    inputs = FakeInputs(ids=["hmm"], stat={"hmm": Stats()}, inst={"hmm": [IID]})
    router = FakeRouter(rig.bus, rig.clock, inputs.ids)
    gov = Governance(lambda: cfg, rig.clock, rig.bus, inputs, router, {"hmm": rig.svc})
    gov.attach()
    return gov, inputs


async def test_a_drawdown_rolls_the_model_service_back_to_the_previous_production(svc_rig: ServiceRig) -> None:
    first = await svc_rig.trained()
    svc_rig.feed.run(10, 0.0)
    second = await svc_rig.trained()
    await svc_rig.svc.promote(second)
    gov, inputs = governed(svc_rig, GovernanceConfig(rollback=RollbackConfig(max_drawdown_pct=5.0)))
    inputs.stat["hmm"].drawdown_pct = 6.0
    [d] = await gov.evaluate()
    assert (d.rule, d.acted, d.evidence["production"]) == ("rollback_drawdown", True, second)
    assert svc_rig.svc.production_id == first == svc_rig.registry.tags().production
    assert svc_rig.strategy.model_id == first


async def test_governance_promotes_the_model_services_canary_on_evidence(svc_rig: ServiceRig) -> None:
    await svc_rig.trained()
    svc_rig.feed.run(10, 0.0)
    second = await svc_rig.trained()
    gov, inputs = governed(svc_rig, GovernanceConfig(promotion=PromotionConfig(min_bars=2, batch_bars=1)))
    # Evidence the canary is better, as the strategy would publish it (paired bars of both lanes).
    for i in range(4):
        ts = svc_rig.clock.time_ns() + i
        for shadow, model_id, ll in ((False, svc_rig.svc.production_id, -1.0 - 0.01 * i),
                                     (True, second, -0.5 + 0.01 * i)):
            inputs.marks[str(IID)] = 100.0 + i
            gov.on_policy_decision(PolicyDecision(
                ts_event_ns=ts, ts_init_ns=ts, instrument_id=IID, model_id=model_id or "", action="target",
                reason="", target_exposure=1.0 if shadow else 0.0, shadow=shadow, log_likelihood=ll))
    [d] = await gov.evaluate()  # [hmm] train.auto_promote is false: advisory only
    assert (d.rule, d.action, d.acted) == ("promotion", "promote", False) and "auto_promote = false" in d.reason
    assert svc_rig.svc.canary_id == second


async def test_the_strategys_decisions_give_both_lanes_live_log_likelihoods(svc_rig: ServiceRig) -> None:
    await svc_rig.trained()
    svc_rig.feed.run(10, 0.0)
    await svc_rig.trained()
    gov, _ = governed(svc_rig, GovernanceConfig(rollback=RollbackConfig(min_bars=1, ll_drop_per_bar=1_000.0)))
    svc_rig.feed.run(120, 0.0001)
    await gov.evaluate()
    rules = gov.view()["strategies"]["hmm"]["rules"]
    assert rules["rollback_ll"]["evidence"]["bars"] >= 1
    assert isinstance(rules["rollback_ll"]["evidence"]["baseline_ll_per_bar"], float)
    promotion = rules["promotion"]["evidence"]
    assert promotion["paired_bars"] >= 1  # the same model as both lanes: no promotion
    assert rules["promotion"]["status"] == "ok"
