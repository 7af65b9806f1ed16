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


async def test_a_cancel_during_a_timeouts_cleanup_is_not_turned_into_a_timeout(clock: ManualClock) -> None:
    from nautilus_hmm.core.clock import wait_with_timeout

    release = asyncio.Event()
    cleaning = asyncio.Event()

    async def slow_to_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await release.wait()

    caller = asyncio.ensure_future(wait_with_timeout(clock, 1.0, slow_to_cancel()))
    await clock.advance_settle(1.0)
    await asyncio.wait_for(cleaning.wait(), 5)
    caller.cancel()  # the caller is stopped while the timed-out request is still cleaning up
    await asyncio.sleep(0)
    release.set()
    done, _ = await asyncio.wait((caller,), timeout=5)
    assert done and caller.cancelled()  # not TimeoutError: the cancel is kept


async def test_a_timeout_is_still_a_timeout_error(clock: ManualClock) -> None:
    from nautilus_hmm.core.clock import wait_with_timeout

    caller = asyncio.ensure_future(wait_with_timeout(clock, 1.0, asyncio.Event().wait()))
    await clock.advance_settle(1.0)
    done, _ = await asyncio.wait((caller,), timeout=5)
    assert done and isinstance(caller.exception(), TimeoutError)
