"""Shared by the venue integration tests: a bounded wait on a condition, a bus recorder and
the stop of an adapter run in a task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.messages import Message

# A bound, not a duration: a condition that holds returns at once. Generous, because the suite
# runs on two workers beside the processes the tests start (a loaded machine is slow, not broken).
WAIT_S = 30.0


async def until(pred: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "") -> Any:
    """Wait (bounded) until `pred()` is truthy; returns its value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s: {what or pred}")
        await asyncio.sleep(0.001)


async def stop_venue(task: asyncio.Task[Any] | None, venue: Any) -> None:
    """Cancel the adapter's run() task (if started) and await it, whatever it raises; then
    stop the adapter."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    await venue.stop()


class Recorder:
    """Every bus message of the given types, in order."""

    def __init__(self, bus: Bus, *types: type) -> None:
        self.messages: list[Message] = []
        for t in types:
            bus.subscribe(t, self.messages.append, name=f"test:{t.__name__}")

    def of(self, t: type, **match: Any) -> list[Any]:
        """Recorded messages of type `t` whose attributes equal `match`."""
        return [m for m in self.messages if type(m) is t and all(getattr(m, k) == v for k, v in match.items())]
