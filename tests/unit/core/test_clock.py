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


async def test_run_with_timeout_runs_the_work_in_the_calling_task_and_returns_its_result(clock: ManualClock) -> None:
    from nautilus_hmm.core.clock import run_with_timeout

    async def work() -> asyncio.Task[object] | None:
        return asyncio.current_task()

    assert await run_with_timeout(clock, 1.0, work()) is asyncio.current_task()  # no task of its own
    await clock.advance_settle(5.0)  # the deadline passes after the answer: nothing cancels this task
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_run_with_timeout_cancels_the_work_at_the_deadline_and_raises_timeout_error(clock: ManualClock) -> None:
    from nautilus_hmm.core.clock import run_with_timeout

    cleaned = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    caller = asyncio.ensure_future(run_with_timeout(clock, 1.0, stuck()))
    await clock.advance_settle(0.999)
    assert not caller.done()
    await clock.advance_settle(0.001)
    done, _ = await asyncio.wait((caller,), timeout=5)
    assert done and isinstance(caller.exception(), TimeoutError) and cleaned.is_set()


async def test_run_with_timeout_keeps_a_cancel_from_elsewhere_a_cancel(clock: ManualClock) -> None:
    from nautilus_hmm.core.clock import run_with_timeout

    started = asyncio.Event()

    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    caller = asyncio.ensure_future(run_with_timeout(clock, 1.0, stuck()))
    await asyncio.wait_for(started.wait(), 5)
    caller.cancel()
    done, _ = await asyncio.wait((caller,), timeout=5)
    assert done and caller.cancelled()
    await clock.advance_settle(2.0)  # its deadline timer is gone with it


async def test_run_with_timeout_a_cancel_during_the_timeouts_cleanup_is_not_turned_into_a_timeout(
        clock: ManualClock) -> None:
    from nautilus_hmm.core.clock import run_with_timeout

    release, cleaning = asyncio.Event(), asyncio.Event()

    async def slow_to_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await release.wait()

    caller = asyncio.ensure_future(run_with_timeout(clock, 1.0, slow_to_cancel()))
    await clock.advance_settle(1.0)
    await asyncio.wait_for(cleaning.wait(), 5)
    caller.cancel()
    await asyncio.sleep(0)
    release.set()
    done, _ = await asyncio.wait((caller,), timeout=5)
    assert done and caller.cancelled()
