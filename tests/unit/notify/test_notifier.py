"""The Notifier component on a manual clock with fake transports (sender threads are real)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
import structlog

from nautilus_hmm.config.loader import parse
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.notify.config import NotifyConfig
from nautilus_hmm.notify.events import TradingSummary
from nautilus_hmm.notify.notifier import Notifier

from .helpers import FakeTransport, denial, fill

WAIT_S = 10.0  # the longest a test waits on a sender thread (never reached when it works)


def config(**kw: Any) -> NotifyConfig:
    data: dict[str, Any] = {
        "enabled": True, "gather_s": 1.0, "coalesce_window_s": 60.0,
        "channels": {"ops": {"rate_per_min": 600, "burst": 5, "retry_backoff_s": 2.0}},
        "routes": {"fills": ["ops"], "risk_denials": ["ops"]},
    }
    data.update(kw)
    return parse(NotifyConfig, data)  # type: ignore[no-any-return]


class Harness:
    def __init__(self, notifier: Notifier, clock: ManualClock, bus: Bus) -> None:
        self.notifier = notifier
        self.clock = clock
        self.bus = bus

    async def until(self, pred: Callable[[], bool]) -> None:
        """Wait (on the notifier's send results, bounded) until `pred` holds."""
        async with asyncio.timeout(WAIT_S):
            while not pred():
                self.notifier.send_finished.clear()
                if pred():
                    return
                await self.notifier.send_finished.wait()
        await self.clock.settle()

    def counts(self, channel: str = "ops") -> dict[str, int]:
        info = self.notifier.health().info[channel]
        assert isinstance(info, dict)
        return info


@pytest.fixture
async def make(clock: ManualClock, bus: Bus) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Notifier, asyncio.Task[None]]] = []

    async def build(cfg: NotifyConfig, transports: dict[str, Any], **kw: Any) -> Harness:
        n = Notifier(cfg, bus, clock, node_name="node1", transports=transports, **kw)
        await n.start()
        task = asyncio.create_task(n.run())
        started.append((n, task))
        await clock.settle()
        return Harness(n, clock, bus)

    yield build
    for n, task in started:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stop = asyncio.create_task(n.stop())
        while not stop.done():  # the stop waits on the clock for unsent messages
            await clock.advance_settle(1.0)
        await stop


async def test_a_fill_is_sent_after_the_gather_delay(make: Any) -> None:
    ops = FakeTransport()
    h = await make(config(), {"ops": ops})
    h.bus.publish(fill())
    await h.clock.advance_settle(0.5)
    assert ops.calls == 0
    await h.clock.advance_settle(0.5)
    await h.until(lambda: len(ops.sent) == 1)
    title, body, severity = ops.sent[0]
    assert title == "Fill sim:BTCUSDT"
    assert body.startswith("BUY 0.01 sim:BTCUSDT @ 50000.5") and severity == "success"
    assert h.counts()["sent"] == 1


async def test_1000_denials_become_one_message_that_says_so(make: Any) -> None:
    ops = FakeTransport()
    h = await make(config(), {"ops": ops})
    for i in range(1000):
        h.bus.publish(denial(i))
    await h.clock.advance_settle(1.0)
    await h.until(lambda: len(ops.sent) == 1)
    await h.clock.advance_settle(120.0)
    assert len(ops.sent) == 1
    assert ops.sent[0][1].startswith("1000 risk denials in 1 s, e.g. BUY 1.5 sim:BTCUSDT (strategy hmm): "
                                     "max_order_notional - order 0 too big; ")
    assert h.counts()["coalesced"] == 999


async def test_a_failed_send_is_retried_after_its_backoff_on_the_clock(make: Any) -> None:
    ops = FakeTransport(script=["HTTP 500"])
    h = await make(config(), {"ops": ops})
    with structlog.testing.capture_logs() as logs:
        h.bus.publish(fill())
        await h.clock.advance_settle(1.0)
        await h.until(lambda: ops.calls == 1 and h.counts()["retries"] == 1)
        await h.clock.advance_settle(1.9)
        assert ops.calls == 1  # the backoff (2 s) has not passed
        await h.clock.advance_settle(0.1)
        await h.until(lambda: len(ops.sent) == 1)
    assert h.counts()["sent"] == 1 and h.counts()["failed"] == 0
    assert [e["event"] for e in logs if e["event"].startswith("notify_")] == [
        "notify_send_retry", "notify_sent_after_retry"]


async def test_a_send_that_fails_every_retry_is_counted_and_logged(make: Any) -> None:
    ops = FakeTransport(script=["HTTP 500"] * 10)
    cfg = config(channels={"ops": {"max_retries": 2, "retry_backoff_s": 1.0}})
    h = await make(cfg, {"ops": ops})
    with structlog.testing.capture_logs() as logs:
        h.bus.publish(fill())
        await h.clock.advance_settle(1.0)
        await h.until(lambda: h.counts()["retries"] == 1)
        await h.clock.advance_settle(1.0)
        await h.until(lambda: h.counts()["retries"] == 2)
        await h.clock.advance_settle(1.9)
        assert ops.calls == 2  # the second backoff is 2 s
        await h.clock.advance_settle(0.1)
        await h.until(lambda: h.counts()["failed"] == 1)
    assert ops.calls == 3 and ops.sent == []
    [failed] = [e for e in logs if e["event"] == "notify_send_failed"]
    assert failed["attempts"] == 3 and failed["error"] == "HTTP 500"
    assert h.notifier.health().ok  # a broken channel never makes the daemon unready


async def test_a_dead_channel_never_blocks_the_loop_nor_another_channel(make: Any) -> None:
    gate = threading.Event()  # the dead receiver: never answers while the test runs
    dead = FakeTransport(gate=gate)
    pager = FakeTransport()
    cfg = config(channels={"dead": {"outbox_size": 2, "rate_per_min": 6000, "burst": 100}, "pager": {}},
                 routes={"fills": ["dead", "pager"], "risk_denials": ["dead"], "daemon": ["dead"]},
                 coalesce_window_s=1.0)
    try:
        h = await make(cfg, {"dead": dead, "pager": pager})
        await h.clock.advance_settle(1.0)
        assert await asyncio.to_thread(dead.entered.wait, WAIT_S)  # its thread is stuck in a send
        ticks = 0

        async def ticker() -> None:  # stands for the rest of the daemon on the same loop
            nonlocal ticks
            while True:
                await h.clock.sleep(0.1)
                ticks += 1

        t = asyncio.create_task(ticker())
        for second in range(5):
            h.bus.publish(fill(second))
            h.bus.publish(denial(second))
            await h.clock.advance_settle(1.0)
        t.cancel()
        assert ticks >= 49  # every 100 ms tick of 5 s ran: the loop was never held
        await h.until(lambda: len(pager.sent) >= 1)
        assert dead.calls == 1 and len(dead.sent) == 0
        counts = h.counts("dead")
        assert counts["outbox"] == 2 and counts["dropped"] >= 1
    finally:
        gate.set()


async def test_the_rate_limit_holds_messages_until_a_token_is_there(make: Any) -> None:
    ops = FakeTransport()
    h = await make(config(channels={"ops": {"rate_per_min": 6, "burst": 1}}), {"ops": ops})
    h.bus.publish(fill())
    h.bus.publish(denial())
    await h.clock.advance_settle(1.0)
    await h.until(lambda: len(ops.sent) == 1)
    await h.clock.advance_settle(9.0)
    assert len(ops.sent) == 1  # one token per 10 s
    await h.clock.advance_settle(1.0)
    await h.until(lambda: len(ops.sent) == 2)


async def test_the_metrics_count_by_channel(make: Any) -> None:
    ops = FakeTransport()
    h = await make(config(), {"ops": ops})
    for i in range(3):
        h.bus.publish(denial(i))
    await h.clock.advance_settle(1.0)
    await h.until(lambda: len(ops.sent) == 1)
    samples = {(s.name, s.labels.get("channel")): s.value for m in h.notifier.collect_metrics() for s in m.samples}
    assert samples[("notifications_sent_total", "ops")] == 1
    assert samples[("notifications_coalesced_total", "ops")] == 2
    assert samples[("notifications_failed_total", "ops")] == 0
    assert samples[("notifications_dropped_total", "ops")] == 0


async def test_start_and_stop_are_daemon_notices_and_stop_flushes_what_is_held(
        clock: ManualClock, bus: Bus) -> None:
    ops = FakeTransport()
    cfg = config(routes={"daemon": ["ops"], "fills": ["ops"]}, gather_s=30.0)
    n = Notifier(cfg, bus, clock, node_name="node1", version="1.2.3", transports={"ops": ops})
    await n.start()
    task = asyncio.create_task(n.run())
    await clock.advance_settle(30.0)
    await Harness(n, clock, bus).until(lambda: len(ops.sent) == 1)
    assert ops.sent[0][1] == "daemon node1 started: version 1.2.3"
    bus.publish(fill())
    await clock.settle()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.wait_for(n.stop(), WAIT_S)  # the rate limit has tokens: no clock time needed
    assert [b for _, b, _ in ops.sent[1:]] == ["BUY 0.01 sim:BTCUSDT @ 50000.5, fee 0.1 USDT (taker, order nh-1)",
                                               "daemon node1 stopping"]


async def test_the_daily_summary_is_sent_at_its_time(make: Any) -> None:
    ops = FakeTransport()
    figures = TradingSummary("USDT", Decimal(10_050), Decimal(50), Decimal(1), 4, Decimal("0.25"))
    # ManualClock starts at 2023-11-14 22:13:20 UTC
    h = await make(config(routes={"daily_summary": ["ops"]}, daily_summary_at="22:14"), {"ops": ops},
                   summary=lambda: figures)
    await h.clock.advance_settle(39.0)
    assert ops.calls == 0
    await h.clock.advance_settle(2.0)
    await h.until(lambda: len(ops.sent) == 1)
    assert ops.sent[0][0] == "node1 daily summary 2023-11-14"
    assert "PnL +50.00 USDT" in ops.sent[0][1] and "4 trades" in ops.sent[0][1]


async def test_a_full_bus_queue_drops_and_counts_and_the_notifier_keeps_going(make: Any) -> None:
    ops = FakeTransport()
    h = await make(config(queue_size=5), {"ops": ops})
    for i in range(20):
        h.bus.publish(denial(i))
    assert h.bus.stats.dropped["notify"] >= 1
    await h.clock.advance_settle(1.0)
    await h.until(lambda: len(ops.sent) == 1)
    n = int(ops.sent[0][1].split()[0])
    assert n == 20 - h.bus.stats.dropped["notify"]


async def test_disabled_subscribes_to_nothing(clock: ManualClock, bus: Bus) -> None:
    n = Notifier(config(enabled=False), bus, clock, transports={})
    await n.start()
    assert bus.queue_subscribers == [] and n.health().detail == "disabled"
    await n.stop()


async def test_what_the_stop_flushes_is_coalesced_and_counted(clock: ManualClock, bus: Bus) -> None:
    ops = FakeTransport()
    n = Notifier(config(gather_s=30.0), bus, clock, transports={"ops": ops})
    await n.start()
    for i in range(3):
        bus.publish(denial(i))
    await asyncio.wait_for(n.stop(), WAIT_S)
    assert [b.split(",")[0] for _, b, _ in ops.sent] == ["3 risk denials in 0 s"]
    assert n.health().info["ops"]["coalesced"] == 2  # type: ignore[index]
