"""Clocks: every timer, backoff, staleness check and rate limit takes one of these.

`LiveClock` reads the OS clocks. `ManualClock` only moves when a test (or the backtest
driver) advances it; sleepers wake in deadline order as it passes their deadline, so a
test drives an hour of heartbeats in microseconds without ever sleeping for real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    """Time source: wall time for timestamps, monotonic time for intervals."""

    def time_ns(self) -> int:
        """Wall-clock nanoseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for intervals and deadlines."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for `seconds` of this clock's time."""
        ...


class LiveClock:
    """The real clocks of the machine."""

    __slots__ = ()

    def time_ns(self) -> int:
        """Wall-clock nanoseconds since the Unix epoch."""
        return time.time_ns()

    def monotonic(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep in real time."""
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told; sleepers wake as it passes their deadline.

    Wall and monotonic time advance together. `advance()` is synchronous: it resolves
    the futures of due sleepers; they run once the caller yields to the loop
    (`await clock.advance_settle(s)` does both).
    """

    def __init__(self, start_ns: int = 1_700_000_000 * NS_PER_S) -> None:
        self._now_ns = start_ns
        self._start_ns = start_ns
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time_ns(self) -> int:
        """Current manual wall time in ns."""
        return self._now_ns

    def monotonic(self) -> float:
        """Seconds since this clock was created (plus its start offset)."""
        return self._now_ns / NS_PER_S

    def set_time_ns(self, ts_ns: int) -> None:
        """Jump to `ts_ns` (never backwards), waking every sleeper now due."""
        if ts_ns < self._now_ns:
            raise ValueError(f"ManualClock cannot go backwards: {ts_ns} < {self._now_ns}")
        self._now_ns = ts_ns
        sleepers = self._sleepers
        if sleepers and sleepers[0][0] <= ts_ns:
            self._wake_due()

    def advance(self, seconds: float) -> None:
        """Move forward by `seconds`, waking every sleeper now due."""
        self.set_time_ns(self._now_ns + round(seconds * NS_PER_S))

    async def advance_settle(self, seconds: float, spins: int = 5) -> None:
        """Advance in deadline-sized steps, letting woken tasks run (and re-sleep) between.

        Stepping deadline by deadline means a periodic task sleeping 1 s is woken once
        per second of the advance, exactly as in real time.
        """
        target = self._now_ns + round(seconds * NS_PER_S)
        await self.settle(spins)
        while self._sleepers and self._sleepers[0][0] <= target:
            self.set_time_ns(max(self._now_ns, self._sleepers[0][0]))
            await self.settle(spins)
        self.set_time_ns(target)
        await self.settle(spins)

    @staticmethod
    async def settle(spins: int = 5) -> None:
        """Yield to the loop a few times so ready callbacks and tasks run."""
        for _ in range(spins):
            await asyncio.sleep(0)

    @property
    def pending_sleepers(self) -> int:
        """How many sleepers are waiting on this clock."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced past now + seconds."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._sleepers, (self._now_ns + round(seconds * NS_PER_S), next(self._seq), fut)
        )
        await fut

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now_ns:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


T = TypeVar("T")


async def run_with_timeout(clock: Clock, timeout_s: float, aw: Awaitable[T]) -> T:
    """Await `aw` in the calling task; when `timeout_s` pass on `clock` first, cancel it there and
    raise TimeoutError.

    `wait_with_timeout` without its costs on an order's path: no task of its own for `aw` (the
    request starts now, not one loop turn later) and no `asyncio.wait`. One difference: an
    answer that arrives in the same loop turn as the deadline can lose to it (TimeoutError): an
    unknown outcome for the caller, resolved by query like any timeout. A cancel of the calling
    task from elsewhere propagates as CancelledError, never as a TimeoutError.
    """
    task = asyncio.current_task()
    if task is None:  # not in a task (cannot be cancelled at a deadline): the general form
        return await wait_with_timeout(clock, timeout_s, aw)
    cancelling = task.cancelling()
    expired = False

    async def expire() -> None:
        nonlocal expired
        await clock.sleep(timeout_s)
        expired = True
        task.cancel()

    timer = asyncio.ensure_future(expire())
    try:
        return await aw
    except asyncio.CancelledError:
        # Ours only if the deadline cancelled it and no other cancel is pending (asyncio.timeout's rule).
        if expired and task.uncancel() <= cancelling:
            raise TimeoutError(f"no answer within {timeout_s} s") from None
        raise
    finally:
        if not expired:
            timer.cancel()


async def wait_with_timeout(clock: Clock, timeout_s: float, aw: Awaitable[T]) -> T:
    """Await `aw`, cancelling it and raising TimeoutError when `timeout_s` pass on `clock`.

    A result that is ready when the timer fires wins over the timeout.
    """
    task = asyncio.ensure_future(aw)
    timer = asyncio.ensure_future(clock.sleep(timeout_s))
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()
    # Wait for the cancelled work without taking on its outcome: a cancel of the caller
    # arriving meanwhile must propagate (suppressing it turned it into a TimeoutError).
    await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()  # retrieved: an error it raised while being cancelled is not logged as lost
    raise TimeoutError(f"no answer within {timeout_s} s")
