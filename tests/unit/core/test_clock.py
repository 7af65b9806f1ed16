"""ManualClock: sleepers wake in deadline order only when time is advanced."""

from __future__ import annotations

import asyncio

from nautilus_hmm.core.clock import ManualClock


async def test_sleeper_does_not_wake_before_its_deadline(clock: ManualClock) -> None:
    woke: list[str] = []

    async def sleeper() -> None:
        await clock.sleep(10)
        woke.append("a")

    task = asyncio.create_task(sleeper())
    await clock.advance_settle(9.999)
    assert woke == []
    await clock.advance_settle(0.001)
    assert woke == ["a"]
    await task


async def test_sleepers_wake_in_deadline_order(clock: ManualClock) -> None:
    woke: list[int] = []

    async def sleeper(s: int) -> None:
        await clock.sleep(s)
        woke.append(s)

    tasks = [asyncio.create_task(sleeper(s)) for s in (3, 1, 2)]
    await clock.advance_settle(5)
    assert woke == [1, 2, 3]
    await asyncio.gather(*tasks)


async def test_periodic_task_ticks_once_per_interval_during_a_long_advance(clock: ManualClock) -> None:
    ticks: list[float] = []

    async def periodic() -> None:
        while True:
            await clock.sleep(1.0)
            ticks.append(clock.monotonic())

    task = asyncio.create_task(periodic())
    await clock.advance_settle(10)
    task.cancel()
    assert len(ticks) == 10
    assert all(abs((b - a) - 1.0) < 1e-9 for a, b in zip(ticks, ticks[1:], strict=False))


def test_clock_refuses_to_go_backwards(clock: ManualClock) -> None:
    now = clock.time_ns()
    try:
        clock.set_time_ns(now - 1)
    except ValueError as exc:
        assert "backwards" in str(exc)
    else:
        raise AssertionError("expected ValueError")
