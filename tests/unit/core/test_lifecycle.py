"""Supervisor: ordered start, reverse stop, restart with backoff, budget and give-up."""

from __future__ import annotations

import asyncio
import random

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.lifecycle import BaseComponent, GiveUp, Health, RestartPolicy, Supervisor
from nautilus_hmm.messages import ComponentStateChanged


class Recorder(BaseComponent):
    """A component that records its lifecycle calls in a shared list."""

    def __init__(self, name: str, log: list[str], crash_times: int = 0, fail_start: bool = False) -> None:
        super().__init__()
        self.name = name
        self.log = log
        self.crash_times = crash_times
        self.fail_start = fail_start
        self.runs = 0

    async def start(self) -> None:
        self.log.append(f"start:{self.name}")
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.crash_times:
            raise RuntimeError(f"{self.name} crash {self.runs}")
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.log.append(f"stop:{self.name}")


def make(clock: ManualClock, bus: Bus, gave_up: list[tuple[str, GiveUp]]) -> Supervisor:
    def on_give_up(name: str, policy: GiveUp, err: BaseException | None) -> None:
        gave_up.append((name, policy))

    return Supervisor(clock, bus, on_give_up, rng=random.Random(1))


async def test_components_start_in_order_and_stop_in_reverse(clock: ManualClock, bus: Bus) -> None:
    log: list[str] = []
    sup = make(clock, bus, [])
    for n in ("a", "b", "c"):
        sup.add(Recorder(n, log))
    await sup.start_all()
    await sup.stop_all()
    assert log == ["start:a", "start:b", "start:c", "stop:c", "stop:b", "stop:a"]


async def test_failed_start_stops_the_already_started_components_and_raises(clock: ManualClock, bus: Bus) -> None:
    log: list[str] = []
    sup = make(clock, bus, [])
    sup.add(Recorder("a", log))
    sup.add(Recorder("b", log, fail_start=True))
    sup.add(Recorder("c", log))
    with pytest.raises(RuntimeError, match="b cannot start"):
        await sup.start_all()
    assert log == ["start:a", "start:b", "stop:a"]


async def test_crashed_component_restarts_after_exponential_backoff(clock: ManualClock, bus: Bus) -> None:
    comp = Recorder("x", [], crash_times=2)
    sup = make(clock, bus, [])
    sup.add(comp, RestartPolicy(max_restarts=5, backoff_initial_s=1.0, backoff_max_s=60, jitter=0.0))
    await sup.start_all()
    await clock.settle()
    assert comp.runs == 1 and sup.child_state("x")["state"] == "backoff"
    await clock.advance_settle(0.999)
    assert comp.runs == 1  # first backoff is 1 s
    await clock.advance_settle(0.001)
    assert comp.runs == 2  # crashed again: next backoff 2 s
    await clock.advance_settle(1.999)
    assert comp.runs == 2
    await clock.advance_settle(0.001)
    assert comp.runs == 3
    assert sup.restarts() == {"x": 2}
    assert sup.child_state("x")["state"] == "running"
    await sup.stop_all()


async def test_spent_budget_applies_the_components_give_up_policy(clock: ManualClock, bus: Bus) -> None:
    gave_up: list[tuple[str, GiveUp]] = []
    events: list[str] = []
    bus.subscribe(ComponentStateChanged, lambda m: events.append(f"{m.component}:{m.state}"))
    comp = Recorder("venue", [], crash_times=100)
    sup = make(clock, bus, gave_up)
    sup.add(comp, RestartPolicy(max_restarts=2, window_s=600, backoff_initial_s=1, jitter=0.0,
                                give_up=GiveUp.HALT_VENUE))
    await sup.start_all()
    await clock.advance_settle(30)
    assert gave_up == [("venue", GiveUp.HALT_VENUE)]
    assert comp.runs == 3  # first run + 2 restarts
    assert sup.child_state("venue")["state"] == "gave_up"
    assert "venue:gave_up" in events
    await sup.stop_all()


async def test_crashes_outside_the_window_do_not_count_against_the_budget(clock: ManualClock, bus: Bus) -> None:
    gave_up: list[tuple[str, GiveUp]] = []

    class Flaky(Recorder):
        async def run(self) -> None:
            self.runs += 1
            await clock.sleep(100)  # runs fine for 100 s, then crashes
            raise RuntimeError("flaky")

    comp = Flaky("f", [])
    sup = make(clock, bus, gave_up)
    sup.add(comp, RestartPolicy(max_restarts=1, window_s=50, backoff_initial_s=1, jitter=0.0))
    await sup.start_all()
    await clock.advance_settle(1000)
    assert gave_up == []
    assert comp.runs > 5
    await sup.stop_all()


def test_backoff_is_capped_and_jittered_within_bounds() -> None:
    p = RestartPolicy(backoff_initial_s=0.5, backoff_max_s=30, jitter=0.2)
    rng = random.Random(3)
    values = [p.backoff_s(n, rng) for n in range(1, 20)]
    assert all(0.4 <= v <= 36 for v in values)
    assert max(values[10:]) <= 36 and min(values[10:]) >= 24


def test_health_defaults_to_ok() -> None:
    assert BaseComponent().health() == Health(True)
