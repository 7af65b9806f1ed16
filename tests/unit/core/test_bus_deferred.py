"""Deferred bus handlers: called off the hot path, in publish order, isolated."""

from __future__ import annotations

import asyncio

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.message import Message, message


@message
class Tick(Message):
    n: int = 0


@message
class Planned(Message):
    n: int = 0


def tick(n: int) -> Tick:
    return Tick(ts_event_ns=n, ts_init_ns=n, n=n)


async def _turns(n: int = 4) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_task_started_by_a_handler_runs_before_the_deferred_handler() -> None:
    """The order a tick plans is sent (a task's first step) before the log line about the tick."""
    bus = Bus()
    seen: list[str] = []

    async def write(n: int) -> None:
        seen.append(f"sent {n}")

    async def send(n: int) -> None:
        # As a REST order: journaled in this step, written by a task of its own (its timeout).
        await asyncio.ensure_future(write(n))

    bus.subscribe(Tick, lambda m: seen.append(f"logged {m.n}"), deferred=True)
    bus.subscribe(Tick, lambda m: asyncio.get_running_loop().create_task(send(m.n)))
    bus.publish(tick(1))
    assert seen == []  # nothing deferred ran inside publish
    await _turns()
    assert seen == ["sent 1", "logged 1"]


async def test_deferred_handlers_see_messages_in_publish_order_nested_ones_after() -> None:
    bus = Bus()
    seen: list[tuple[str, int]] = []
    bus.subscribe(Tick, lambda m: seen.append(("tick", m.n)), deferred=True)
    bus.subscribe(Planned, lambda m: seen.append(("planned", m.n)), deferred=True)
    # A synchronous handler publishes while the tick is being dispatched: its message is later.
    bus.subscribe(Tick, lambda m: bus.publish(Planned(ts_event_ns=0, ts_init_ns=0, n=m.n)))
    bus.publish(tick(1))
    bus.publish(tick(2))
    await _turns()
    assert seen == [("tick", 1), ("planned", 1), ("tick", 2), ("planned", 2)]


async def test_a_failing_deferred_handler_is_counted_and_the_others_still_run() -> None:
    bus = Bus()
    seen: list[int] = []

    def boom(m: Tick) -> None:
        raise ValueError("bad")

    bus.subscribe(Tick, boom, name="boom", deferred=True)
    bus.subscribe(Tick, lambda m: seen.append(m.n), deferred=True)
    bus.publish(tick(1))
    bus.publish(tick(2))
    await _turns()
    assert seen == [1, 2]
    assert bus.stats.handler_errors == {"boom": 2}


def test_without_a_running_loop_deferred_handlers_run_at_once_in_order() -> None:
    bus = Bus()
    seen: list[tuple[str, int]] = []
    bus.subscribe(Tick, lambda m: seen.append(("tick", m.n)), deferred=True)
    bus.subscribe(Planned, lambda m: seen.append(("planned", m.n)), deferred=True)
    bus.subscribe(Tick, lambda m: bus.publish(Planned(ts_event_ns=0, ts_init_ns=0, n=m.n)))
    bus.publish(tick(1))
    assert seen == [("tick", 1), ("planned", 1)]


async def test_unsubscribed_deferred_handler_gets_no_later_messages() -> None:
    bus = Bus()
    seen: list[int] = []
    unsubscribe = bus.subscribe(Tick, lambda m: seen.append(m.n), deferred=True)
    bus.publish(tick(1))
    await _turns()
    unsubscribe()
    bus.publish(tick(2))
    await _turns()
    assert seen == [1]
    assert bus.stats.published == {"Tick": 2}
