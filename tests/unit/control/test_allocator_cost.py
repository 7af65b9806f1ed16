"""The allocator's cost rules: tail reads, no work when disabled, no state path, no rewrite of the same shares."""

from __future__ import annotations

import pytest

import nautilus_hmm.control.allocator as allocator_mod
from nautilus_hmm.control.allocator import Allocator, AllocatorConfig
from nautilus_hmm.control.bandit import BanditConfig, BanditFeedback
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import AllocationChanged
from tests.unit.control.test_allocator import BOUNDS, FakeRouter, make


class TailRouter(FakeRouter):
    """A fake router with the real signature `pnl_series(id, last_n)`, recording what was asked."""

    def __init__(self, bounds):
        super().__init__(bounds)
        self.asked: list[int | None] = []

    def pnl_series(self, sid, last_n=None):
        self.asked.append(last_n)
        return self.curves[sid] if last_n is None else self.curves[sid][-last_n:]


@pytest.fixture
def writes(monkeypatch):
    """Every state file the allocator and the bandit write, in order."""
    written: list[str] = []
    real = allocator_mod.write_atomic

    def spy(path, data):
        written.append(path.name)
        real(path, data)

    monkeypatch.setattr(allocator_mod, "write_atomic", spy)
    import nautilus_hmm.control.bandit as bandit_mod

    real_bandit = bandit_mod.write_atomic

    def spy_bandit(path, data):
        written.append(path.name)
        real_bandit(path, data)

    monkeypatch.setattr(bandit_mod, "write_atomic", spy_bandit)
    return written


async def test_a_rebalance_reads_only_the_last_lookback_points(tmp_path):
    clock, bus = ManualClock(), Bus()
    router = TailRouter(BOUNDS)
    router.step({"trend": 1.0, "revert": -1.0}, n=500)
    cfg = AllocatorConfig(lookback=50, min_evidence=10)
    alloc = Allocator(lambda: cfg, clock, bus, router.pnl_series, router.bounds, router.set_shares,
                      tmp_path / "allocations.json", capital_usd=router.capital_usd)
    await alloc.start()
    alloc.rebalance()
    assert router.asked == [51, 51]
    assert alloc.view()["last_inputs"]["strategies"]["trend"]["returns_n"] == 50


async def test_a_disabled_allocator_neither_rebalances_nor_writes(tmp_path, writes):
    cfg = AllocatorConfig(enabled=False, interval_s=60, lookback=10, min_evidence=2)
    alloc, router, clock, events = make(tmp_path, cfg=cfg)
    router.step({"trend": 3.0, "revert": -1.0}, n=20)
    await alloc.start()
    for _ in range(5):
        clock.advance(60)
        alloc.tick()
    assert alloc.view()["rebalances"] == 0
    assert writes == []
    assert router.applied == [{"trend": 0.5, "revert": 0.5}]  # the static weights, once at start
    assert [e.source for e in events] == ["static"]


async def test_an_allocator_disabled_live_goes_back_to_the_static_weights_once_without_writing(tmp_path, writes):
    cfg = [AllocatorConfig(interval_s=60, lookback=10, min_evidence=2, max_step=1.0, bandit_weight=0.0)]
    clock, bus = ManualClock(), Bus()
    router = FakeRouter(BOUNDS)
    alloc = Allocator(lambda: cfg[0], clock, bus, router.pnl_series, router.bounds, router.set_shares,
                      tmp_path / "allocations.json", capital_usd=router.capital_usd)
    await alloc.start()
    router.step({"trend": 3.0, "revert": -1.0}, n=20)
    alloc.rebalance()
    assert router.applied[-1] != {"trend": 0.5, "revert": 0.5}
    written = len(writes)
    cfg[0] = AllocatorConfig(enabled=False, interval_s=60, lookback=10, min_evidence=2)
    for _ in range(3):
        clock.advance(60)
        alloc.tick()
    assert router.applied[-1] == {"trend": 0.5, "revert": 0.5}
    assert len(router.applied) == 3  # start, the rebalance, back to static once
    assert len(writes) == written


async def test_a_state_path_of_none_reads_and_writes_nothing(tmp_path, writes):
    clock, bus = ManualClock(), Bus()
    router = FakeRouter(BOUNDS)
    events: list[AllocationChanged] = []
    bus.subscribe(AllocationChanged, events.append)
    cfg = AllocatorConfig(interval_s=60, lookback=10, min_evidence=2, max_step=1.0, bandit_weight=0.5)
    bandit = BanditFeedback(lambda: BanditConfig(), None)
    alloc = Allocator(lambda: cfg, clock, bus, router.pnl_series, router.bounds, router.set_shares, None,
                      bandit, capital_usd=router.capital_usd)
    await alloc.start()
    router.step({"trend": 3.0, "revert": -1.0}, n=20)
    alloc.rebalance()
    alloc.set_override({"trend": 0.7, "revert": 0.3}, 60, "admin")
    alloc.clear_override("admin")
    assert writes == []
    assert list(tmp_path.iterdir()) == []
    assert events[0].source == "static" and events[1].source == "rebalance"
    assert alloc.view()["state_file"] is None and alloc.view()["bandit"]["state_file"] is None


async def test_unchanged_shares_are_neither_rewritten_nor_reapplied(tmp_path, writes):
    alloc, router, clock, _ = make(tmp_path)  # min_evidence 10: no evidence yet, static shares
    await alloc.start()
    alloc.rebalance()
    assert writes == ["allocations.json"]
    for _ in range(5):
        clock.advance(60)
        alloc.rebalance()
    assert writes == ["allocations.json"]
    assert len(router.applied) == 1
    router.step({"trend": 3.0, "revert": -1.0}, n=20)
    alloc.rebalance()  # evidence: the shares move, so they are written
    assert writes == ["allocations.json", "allocations.json"]


async def test_bandit_steps_are_saved_with_the_shares_or_at_most_max_unsaved_s_late(tmp_path, writes):
    cfg = AllocatorConfig(interval_s=60, lookback=100, min_evidence=10, max_step=0.05, bandit_weight=0.5)
    bandit = BanditFeedback(lambda: BanditConfig(), tmp_path / "bandit.json")
    alloc, router, clock, _ = make(tmp_path, cfg=cfg, bandit=bandit)
    await alloc.start()
    router.step({"trend": 1.0, "revert": 1.0}, n=3)  # steps for the bandit, no evidence: static shares
    alloc.rebalance()
    assert writes == ["bandit.json", "allocations.json"]  # the first state write
    router.step({"trend": 1.0, "revert": 1.0}, n=1)
    alloc.rebalance()
    assert writes == ["bandit.json", "allocations.json"]  # unsaved bandit steps, not overdue yet
    clock.advance(allocator_mod.MAX_UNSAVED_S)
    alloc.rebalance()
    assert writes == ["bandit.json", "allocations.json"] * 2
