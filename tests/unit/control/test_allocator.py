"""The allocator component: schedule on the injected clock, events, persistence, overrides."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest
from structlog.testing import capture_logs

from nautilus_hmm.control.allocator import (
    AllocationError,
    Allocator,
    AllocatorConfig,
    ShareBounds,
    UnknownStrategyError,
)
from nautilus_hmm.control.bandit import BanditConfig, BanditFeedback
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import AllocationChanged


class FakeRouter:
    """Implements the allocator's ports: PnL curves that grow per step, bounds, set_shares."""

    def __init__(self, bounds):
        self.bounds_map = dict(bounds)
        self.curves: dict[str, list[tuple[int, float]]] = {s: [(0, 0.0)] for s in bounds}
        self.applied: list[dict[str, float]] = []
        self.capital = dict.fromkeys(bounds, 1000.0)

    def step(self, pnl_by_strategy, n=1):
        for _ in range(n):
            for s, d in pnl_by_strategy.items():
                ts, total = self.curves[s][-1]
                self.curves[s].append((ts + 1, total + d))

    def pnl_series(self, sid):
        return self.curves[sid]

    def bounds(self):
        return self.bounds_map

    def set_shares(self, shares):
        self.applied.append(dict(shares))

    def capital_usd(self, sid):
        return self.capital[sid]


BOUNDS = {"trend": ShareBounds(0.1, 0.9, 1.0), "revert": ShareBounds(0.1, 0.9, 1.0)}


def make(tmp_path, cfg=None, bounds=BOUNDS, bandit=None):
    clock, bus = ManualClock(), Bus()
    router = FakeRouter(bounds)
    events: list[AllocationChanged] = []
    bus.subscribe(AllocationChanged, events.append)
    config = cfg or AllocatorConfig(interval_s=60, lookback=100, min_evidence=10, max_step=0.05, bandit_weight=0.0)
    alloc = Allocator(lambda: config, clock, bus, router.pnl_series, router.bounds, router.set_shares,
                      tmp_path / "allocations.json", bandit, capital_usd=router.capital_usd)
    return alloc, router, clock, events


@contextlib.asynccontextmanager
async def running(alloc):
    await alloc.start()
    task = asyncio.create_task(alloc.run())
    try:
        await asyncio.sleep(0)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await alloc.stop()


async def test_start_without_a_state_file_applies_the_static_weights(tmp_path):
    alloc, router, _, events = make(tmp_path)
    await alloc.start()
    assert router.applied == [{"trend": 0.5, "revert": 0.5}]
    assert events[-1].source == "static"
    assert alloc.view()["source"] == "static"


async def test_rebalances_every_interval_on_the_clock_moving_toward_the_better_curve(tmp_path):
    alloc, router, clock, events = make(tmp_path)
    router.step({"trend": 3.0, "revert": -1.0}, n=5)
    router.step({"trend": -1.0, "revert": 1.0}, n=1)
    router.step({"trend": 3.0, "revert": -1.0}, n=6)
    async with running(alloc):
        await clock.advance_settle(59)
        assert len(router.applied) == 1  # only the start
        await clock.advance_settle(1)
        assert router.applied[-1] == pytest.approx({"trend": 0.55, "revert": 0.45})
        await clock.advance_settle(60)
        assert router.applied[-1] == pytest.approx({"trend": 0.60, "revert": 0.40})
    rebal = [e for e in events if e.source == "rebalance"]
    assert len(rebal) == 2
    row = rebal[0].inputs["strategies"]["trend"]
    assert row["returns_n"] == 12 and row["evidence"] is True and "score" in row and "max_drawdown" in row
    assert alloc.view()["rebalances"] == 2


async def test_a_rebalance_is_one_log_line_with_shares_and_scores(tmp_path):
    alloc, router, _, _ = make(tmp_path)
    router.step({"trend": 1.0, "revert": 1.0}, n=3)
    await alloc.start()
    with capture_logs() as logs:
        alloc.rebalance()
    lines = [e for e in logs if e["event"] == "allocator_rebalanced"]
    assert len(lines) == 1
    assert lines[0]["source"] == "static" and set(lines[0]["scores"]) == {"trend", "revert"}


async def test_shares_persist_and_are_restored_at_start(tmp_path):
    alloc, router, _, _ = make(tmp_path)
    router.step({"trend": 3.0, "revert": -1.0}, n=5)
    router.step({"trend": -1.0, "revert": 1.0}, n=1)
    router.step({"trend": 3.0, "revert": -1.0}, n=6)
    await alloc.start()
    alloc.rebalance()
    saved = orjson.loads((tmp_path / "allocations.json").read_bytes())
    assert saved["shares"] == pytest.approx({"trend": 0.55, "revert": 0.45})
    again, router2, _, events = make(tmp_path)
    await again.start()
    assert router2.applied == [pytest.approx({"trend": 0.55, "revert": 0.45})]
    assert events[-1].source == "restore"


@pytest.mark.parametrize("content", [b"{torn", b"[1,2]", b'{"version": 1, "shares": {"trend": 7}}',
                                     b'{"version": 9, "shares": {}}', b""])
async def test_a_damaged_state_file_is_a_warning_naming_it_and_the_static_weights(tmp_path, content):
    (tmp_path / "allocations.json").write_bytes(content)
    alloc, router, _, _ = make(tmp_path)
    with capture_logs() as logs:
        await alloc.start()
    assert router.applied == [{"trend": 0.5, "revert": 0.5}]
    warn = [e for e in logs if e["event"] == "allocator_state_damaged"]
    assert warn and warn[0]["file"] == str(tmp_path / "allocations.json")
    assert warn[0]["static"] == {"trend": 0.5, "revert": 0.5}


async def test_restored_shares_of_removed_strategies_are_dropped_and_reprojected(tmp_path):
    doc = {"version": 1, "shares": {"trend": 0.3, "gone": 0.7}, "computed": {}, "source": "rebalance"}
    (tmp_path / "allocations.json").write_bytes(orjson.dumps(doc))
    alloc, router, _, _ = make(tmp_path)
    await alloc.start()
    applied = router.applied[-1]
    assert set(applied) == {"trend", "revert"}
    assert sum(applied.values()) == pytest.approx(1.0)
    assert 0.1 <= applied["revert"] <= 0.9


async def test_override_applies_persists_and_expires_back_to_the_computed_shares(tmp_path):
    alloc, router, clock, events = make(tmp_path)
    async with running(alloc):
        view = alloc.set_override({"trend": 0.8, "revert": 0.2}, expires_s=90, source="admin")
        assert router.applied[-1] == {"trend": 0.8, "revert": 0.2}
        assert view["override"]["expires_in_s"] == 90
        assert orjson.loads((tmp_path / "allocations.json").read_bytes())["override"]["source"] == "admin"
        await clock.advance_settle(60)  # a rebalance during the override computes but does not apply
        assert router.applied[-1] == {"trend": 0.8, "revert": 0.2}
        assert events[-1].inputs["applied"] is False
        await clock.advance_settle(30)
        assert router.applied[-1] == pytest.approx({"trend": 0.5, "revert": 0.5})
        assert events[-1].source == "override_expired"
        assert alloc.view()["override"] is None


async def test_an_override_survives_a_restart_until_its_expiry(tmp_path):
    alloc, _, _, _ = make(tmp_path)
    await alloc.start()
    alloc.set_override({"trend": 0.8, "revert": 0.2}, expires_s=300, source="admin")
    again, router2, _, _ = make(tmp_path)  # a fresh ManualClock starts at the same instant
    await again.start()
    assert router2.applied[-1] == {"trend": 0.8, "revert": 0.2}
    assert again.view()["override"]["source"] == "admin"


async def test_bad_override_changes_nothing(tmp_path):
    alloc, router, _, events = make(tmp_path)
    await alloc.start()
    before = (list(router.applied), len(events))
    with pytest.raises(UnknownStrategyError, match="nope"):
        alloc.set_override({"nope": 1.0}, 60, "admin")
    with pytest.raises(AllocationError) as exc:
        alloc.set_override({"trend": 0.95, "revert": 0.05}, 60, "admin")
    assert exc.value.field == "shares.trend"
    with pytest.raises(AllocationError) as exc:
        alloc.set_override({"trend": 0.5, "revert": 0.4}, 60, "admin")
    assert exc.value.field == "shares"
    assert (router.applied, len(events)) == before
    assert alloc.view()["override"] is None


async def test_disabled_allocator_holds_the_static_weights(tmp_path):
    cfg = AllocatorConfig(enabled=False, min_evidence=2, lookback=10)
    alloc, router, _, events = make(tmp_path, cfg=cfg)
    router.step({"trend": 3.0, "revert": -1.0}, n=20)
    await alloc.start()
    alloc.rebalance()
    assert router.applied[-1] == {"trend": 0.5, "revert": 0.5}
    assert events[-1].source == "static"


async def test_bandit_feedback_is_fed_each_new_pnl_step_once_and_blended(tmp_path):
    cfg = AllocatorConfig(interval_s=60, lookback=100, min_evidence=10, max_step=1.0, bandit_weight=1.0)
    bandit = BanditFeedback(lambda: BanditConfig(prior_var=100.0, obs_var=100.0), tmp_path / "bandit.json")
    alloc, router, _, events = make(tmp_path, cfg=cfg, bandit=bandit)
    await alloc.start()
    router.step({"trend": 1.0, "revert": -1.0}, n=12)
    alloc.rebalance()
    assert bandit.bandit.arms["trend"].steps == 12
    alloc.rebalance()  # no new steps: nothing fed twice
    assert bandit.bandit.arms["trend"].steps == 12
    assert events[-1].inputs["strategies"]["trend"]["bandit_weight"] > 0.9
    assert router.applied[-1]["trend"] == pytest.approx(0.9)
    assert (tmp_path / "bandit.json").exists()
    # A restart neither loses the bandit's state nor re-feeds the steps it saw.
    bandit2 = BanditFeedback(lambda: BanditConfig(prior_var=100.0, obs_var=100.0), tmp_path / "bandit.json")
    again, router2, _, _ = make(tmp_path, cfg=cfg, bandit=bandit2)
    router2.curves = router.curves
    await again.start()
    again.rebalance()
    assert bandit2.bandit.arms["trend"].steps == 12


async def test_metrics_report_shares_and_rebalances(tmp_path):
    alloc, _, _, _ = make(tmp_path)
    await alloc.start()
    alloc.rebalance()
    fams = {f.name: f for f in alloc.collect_metrics()}
    ratios = {s.labels["strategy"]: s.value for s in fams["strategy_allocation_ratio"].samples}
    assert ratios == {"trend": 0.5, "revert": 0.5}
    assert [s.value for s in fams["allocator_rebalances"].samples if s.name.endswith("_total")] == [1.0]


async def test_unwritable_state_is_logged_and_the_shares_still_apply(tmp_path):
    alloc, router, _, _ = make(tmp_path / "missing-dir")
    with capture_logs() as logs:
        await alloc.start()
        alloc.set_override({"trend": 0.6, "revert": 0.4}, 60, "admin")
    assert router.applied[-1] == {"trend": 0.6, "revert": 0.4}
    assert any(e["event"] == "allocator_state_write_failed" for e in logs)
    assert alloc.view()["state_write_error"]
