"""The notifier against a real webhook receiver on loopback, through apprise's json:// plugin.

The receiver (aiohttp) runs on the test's event loop, the same loop as the notifier: every
message it receives shows the loop kept serving while apprise blocked a sender thread.
Time (gather, windows, backoff) is a manual clock; the test only waits, bounded, on the
receiver's and the notifier's events.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from nautilus_hmm.config.loader import parse
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.notify.channels import AppriseTransport
from nautilus_hmm.notify.config import NotifyConfig
from nautilus_hmm.notify.notifier import Notifier
from tests.unit.notify.helpers import denial, fill

WAIT_S = 30.0  # a bound on conditions (a loaded machine is slow, not broken)


class Receiver:
    """A webhook: records each JSON body per path; answers from a per-path status script
    (then 200); a path in `hang` never answers until `release` is set."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.statuses: dict[str, list[int]] = {}
        self.hang: set[str] = set()
        self.release = asyncio.Event()
        self.changed = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["name"]
        self.received.setdefault(path, []).append(await request.json())
        self.changed.set()
        if path in self.hang:
            await self.release.wait()
        script = self.statuses.get(path)
        status = script.pop(0) if script else 200
        return web.json_response({"ok": status == 200}, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, name: str, query: str = "") -> str:
        return f"json://127.0.0.1:{self.port}/{name}{'?' + query if query else ''}"

    async def until(self, pred: Callable[[], bool]) -> None:
        """Wait (bounded) until `pred` holds, woken by each request."""
        async with asyncio.timeout(WAIT_S):
            while not pred():
                self.changed.clear()
                await self.changed.wait()

    def messages(self, name: str) -> list[str]:
        return [body["message"] for body in self.received.get(name, [])]


def config(channels: dict[str, Any], routes: dict[str, list[str]]) -> NotifyConfig:
    return parse(NotifyConfig, {"enabled": True, "gather_s": 1.0, "coalesce_window_s": 60.0,  # type: ignore[no-any-return]
                                "channels": channels, "routes": routes})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def notifier_of(clock: ManualClock, bus: Bus) -> AsyncIterator[Callable[..., Any]]:
    running: list[tuple[Notifier, asyncio.Task[None]]] = []

    async def build(cfg: NotifyConfig, urls: dict[str, str]) -> Notifier:
        n = Notifier(cfg, bus, clock, node_name="node1",
                     transports={name: AppriseTransport(url) for name, url in urls.items()})
        await n.start()
        running.append((n, asyncio.create_task(n.run())))
        await clock.settle()
        return n

    yield build
    for n, task in running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stop = asyncio.create_task(n.stop())
        while not stop.done():
            await clock.advance_settle(1.0)
        await stop


async def until_result(n: Notifier, pred: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not pred():
            n.send_finished.clear()
            if not pred():
                await n.send_finished.wait()


def counts(n: Notifier, channel: str) -> dict[str, Any]:
    info = n.health().info[channel]
    assert isinstance(info, dict)
    return info


async def test_a_fill_reaches_the_webhook(receiver: Receiver, notifier_of: Any, clock: ManualClock, bus: Bus) -> None:
    n = await notifier_of(config({"ops": {}}, {"fills": ["ops"]}), {"ops": receiver.url("ops")})
    bus.publish(fill())
    await clock.advance_settle(1.0)
    await receiver.until(lambda: len(receiver.messages("ops")) == 1)
    [body] = receiver.received["ops"]
    assert body["title"] == "Fill sim:BTCUSDT" and body["type"] == "success"
    assert body["message"] == "BUY 0.01 sim:BTCUSDT @ 50000.5, fee 0.1 USDT (taker, order nh-1)"
    await until_result(n, lambda: counts(n, "ops")["sent"] == 1)


async def test_1000_denials_reach_the_webhook_as_one_message(receiver: Receiver, notifier_of: Any,
                                                             clock: ManualClock, bus: Bus) -> None:
    n = await notifier_of(config({"ops": {}}, {"risk_denials": ["ops"]}), {"ops": receiver.url("ops")})
    for i in range(1000):
        bus.publish(denial(i))
    await clock.advance_settle(1.0)
    await receiver.until(lambda: len(receiver.messages("ops")) == 1)
    await until_result(n, lambda: counts(n, "ops")["sent"] == 1)
    await clock.advance_settle(120.0)
    [message] = receiver.messages("ops")
    assert message.startswith("1000 risk denials in 1 s, e.g. BUY 1.5 sim:BTCUSDT (strategy hmm): "
                              "max_order_notional - order 0 too big; ")
    assert counts(n, "ops")["coalesced"] == 999


async def test_a_500_is_retried_and_then_delivered(receiver: Receiver, notifier_of: Any,
                                                   clock: ManualClock, bus: Bus) -> None:
    receiver.statuses["ops"] = [500]
    n = await notifier_of(config({"ops": {"retry_backoff_s": 2.0}}, {"fills": ["ops"]}),
                          {"ops": receiver.url("ops")})
    bus.publish(fill())
    await clock.advance_settle(1.0)
    await until_result(n, lambda: counts(n, "ops")["retries"] == 1)
    assert "500" in counts(n, "ops")["last_error"]
    await clock.advance_settle(1.9)
    assert len(receiver.messages("ops")) == 1  # the backoff has not passed
    await clock.advance_settle(0.1)
    await until_result(n, lambda: counts(n, "ops")["sent"] == 1)
    assert receiver.messages("ops") == [receiver.messages("ops")[0]] * 2  # the same message, twice
    assert counts(n, "ops")["failed"] == 0


async def test_a_dead_channel_never_slows_the_loop(receiver: Receiver, notifier_of: Any,
                                                   clock: ManualClock, bus: Bus) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        refused_port = s.getsockname()[1]
    receiver.hang.add("hang")
    cfg = config({"hang": {"outbox_size": 3}, "refused": {"max_retries": 1, "retry_backoff_s": 1.0}, "ops": {}},
                 {"fills": ["hang", "refused", "ops"], "risk_denials": ["hang", "refused"]})
    n = await notifier_of(cfg, {
        "hang": receiver.url("hang", "rto=60&cto=60"),  # apprise waits up to 60 s for an answer
        "refused": f"json://127.0.0.1:{refused_port}/x",
        "ops": receiver.url("ops"),
    })
    bus.publish(fill(0))
    await clock.advance_settle(1.0)
    await receiver.until(lambda: "hang" in receiver.received)  # its sender thread is now blocked
    started = time.perf_counter()
    for i in range(1000):
        bus.publish(denial(i))
    publish_s = time.perf_counter() - started
    ticks = 0

    async def ticker() -> None:  # stands for the rest of the daemon on the same loop
        nonlocal ticks
        while True:
            await clock.sleep(0.1)
            ticks += 1

    t = asyncio.create_task(ticker())
    await clock.advance_settle(5.0)
    t.cancel()
    assert ticks >= 49  # every 100 ms tick ran
    assert publish_s < 0.5  # 1000 publishes only enqueue (about a millisecond when idle)
    await receiver.until(lambda: len(receiver.messages("ops")) == 1)  # the loop served the receiver
    # The refused channel's two messages (the fill, the coalesced denials) are each retried once
    # and given up; whether the fill's retry fell inside the 5 s above depends on the thread.
    async with asyncio.timeout(WAIT_S):
        while counts(n, "refused")["failed"] < 2:
            await clock.advance_settle(1.0)
            await asyncio.sleep(0)
    assert counts(n, "refused")["retries"] == 2 and counts(n, "refused")["failed"] == 2
    assert counts(n, "hang")["sent"] == 0 and len(receiver.received["hang"]) == 1
    # The receiver has the message; the sender thread counts it once the answer reaches it.
    await until_result(n, lambda: counts(n, "ops")["sent"] == 1)
