"""The 50 msg/s bucket and IB's historical pacing rules, on a manual clock."""

from __future__ import annotations

import asyncio

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.ibkr.pacing import (
    HIST_IDENTICAL_S,
    HIST_WINDOW_N,
    HistoricalPacer,
    MessagePacer,
)


async def test_a_burst_of_50_passes_and_the_51st_waits_for_a_token() -> None:
    clock = ManualClock()
    pacer = MessagePacer(clock, 50)
    for _ in range(50):
        await pacer.acquire()
    assert pacer.waits == 0
    task = asyncio.ensure_future(pacer.acquire())
    await clock.settle()
    assert not task.done()  # no token: it sleeps on the clock
    await clock.advance_settle(0.019)
    assert not task.done()  # 1/50 s per token
    await clock.advance_settle(0.002)
    await asyncio.wait_for(task, 1)
    stats = pacer.stats()
    assert stats["waits"] == 1 and stats["sent"] == 51 and stats["sent_last_minute"] == 51


async def test_sustained_rate_never_exceeds_the_limit() -> None:
    clock = ManualClock()
    pacer = MessagePacer(clock, 50)
    start = clock.monotonic()

    async def send(n: int) -> None:
        for _ in range(n):
            await pacer.acquire()

    task = asyncio.ensure_future(send(200))
    while not task.done():
        await clock.advance_settle(0.01)
    elapsed = clock.monotonic() - start
    # 50 as a burst, then 150 at 50/s: at least 3 s.
    assert elapsed >= 2.99
    assert pacer.sent_last_minute() == 200


async def test_identical_historical_requests_are_15_s_apart() -> None:
    clock = ManualClock()
    pacer = HistoricalPacer(clock)
    await pacer.acquire("k", 1)
    assert pacer.delay_s("k", 1) == HIST_IDENTICAL_S
    assert pacer.delay_s("other", 2) == 0


async def test_a_sixth_request_for_one_contract_within_2_s_waits() -> None:
    clock = ManualClock()
    pacer = HistoricalPacer(clock)
    for i in range(5):
        await pacer.acquire(("k", i), 7)
    assert 0 < pacer.delay_s(("k", 5), 7) <= 2.0
    assert pacer.delay_s(("k", 5), 8) == 0


async def test_sixty_requests_in_ten_minutes_then_wait() -> None:
    clock = ManualClock()
    pacer = HistoricalPacer(clock)
    for i in range(HIST_WINDOW_N):
        await pacer.acquire(i, i)
        clock.advance(1.0)
    assert pacer.delay_s("next", "c") > 500


async def test_a_violation_blocks_every_request_for_the_backoff() -> None:
    clock = ManualClock()
    pacer = HistoricalPacer(clock, violation_backoff_s=30.0)
    pacer.violation()
    task = asyncio.ensure_future(pacer.acquire("k", 1))
    await clock.advance_settle(29.0)
    assert not task.done()
    await clock.advance_settle(1.5)
    await asyncio.wait_for(task, 1)
    assert pacer.stats()["violations"] == 1 and pacer.stats()["waits"] == 1
