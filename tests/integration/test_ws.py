"""venues/ws.py against a small aiohttp websocket server on loopback, driven by a ManualClock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, web

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import ParseError
from nautilus_hmm.venues.ws import ReconnectingWebSocket, WsSettings
from tests.integration.binance.conftest import until


class Server:
    """Echo-ish server: counts connections, sends what the test asks, can go silent."""

    def __init__(self) -> None:
        self.connections: list[web.WebSocketResponse] = []
        self.received: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.pings = 0

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.connections.append(ws)
        async for msg in ws:
            if msg.type is WSMsgType.PING:
                self.pings += 1
                await ws.pong(msg.data)
            elif msg.type is WSMsgType.TEXT:
                self.received.append(msg.data)
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self.handler)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in self.connections:
            with contextlib.suppress(Exception):
                await ws.close()
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def live(self) -> web.WebSocketResponse:
        return self.connections[-1]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.start()
    yield s
    await s.stop()


class Client:
    def __init__(self, server: Server, clock: ManualClock, settings: WsSettings) -> None:
        self.frames: list[str] = []
        self.connects: list[bool] = []
        self.disconnects: list[str] = []

        def on_message(raw: str, recv_ns: int) -> None:
            if raw == "bad":
                raise ParseError("not a frame")
            self.frames.append(raw)

        async def on_connect(reconnected: bool) -> None:
            self.connects.append(reconnected)
            await self.ws.send_json({"method": "SUBSCRIBE", "id": len(self.connects)})

        self.ws = ReconnectingWebSocket("test", f"ws://127.0.0.1:{server.port}/ws", on_message, clock,
                                        settings=settings, on_connect=on_connect,
                                        on_disconnect=self.disconnects.append, rng=random.Random(1))
        self.task = asyncio.get_running_loop().create_task(self.ws.run())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


async def started(server: Server, clock: ManualClock, **kw: float) -> Client:
    settings = WsSettings(**{"ping_interval_s": 1000.0, "dead_after_s": 5000.0, "jitter": 0.0, **kw})
    c = Client(server, clock, settings)
    await until(lambda: c.ws.connected and len(server.received) == 1, what="connected and subscribed")
    return c


async def test_frames_reach_the_handler(server: Server, clock: ManualClock) -> None:
    c = await started(server, clock)
    await server.live.send_str('{"a":1}')
    await until(lambda: c.frames == ['{"a":1}'])
    assert c.ws.stats.messages == 1
    await c.stop()


async def test_malformed_frame_is_counted_and_the_connection_survives(server: Server, clock: ManualClock) -> None:
    c = await started(server, clock)
    await server.live.send_str("bad")
    await server.live.send_str("good")
    await until(lambda: c.frames == ["good"])
    assert c.ws.stats.parse_errors == 1 and c.ws.connected and len(server.connections) == 1
    await c.stop()


async def test_server_close_reconnects_after_the_backoff_and_resubscribes(server: Server, clock: ManualClock) -> None:
    c = await started(server, clock, backoff_initial_s=2.0)
    await server.live.close()
    await until(lambda: c.disconnects, what="disconnect seen")
    await clock.advance_settle(1.0)
    assert len(server.connections) == 1  # still waiting out the 2 s backoff
    await clock.advance_settle(1.0)
    await until(lambda: len(server.received) == 2 and c.ws.connected, what="reconnected")
    assert c.connects == [False, True] and c.ws.stats.reconnects == 1
    await c.stop()


async def test_stale_stream_is_dropped_and_reopened(server: Server, clock: ManualClock) -> None:
    c = await started(server, clock, stale_after_s=10.0)
    await clock.advance_settle(9.0)
    assert c.ws.stats.stale_drops == 0
    await clock.advance_settle(1.0)
    await until(lambda: c.ws.stats.stale_drops == 1, what="stale drop")
    await clock.advance_settle(1.0)
    await until(lambda: c.ws.stats.reconnects == 1 and c.ws.connected, what="reopened")
    await c.stop()


async def test_connection_is_rotated_before_the_24h_cut_without_backoff(server: Server, clock: ManualClock) -> None:
    c = await started(server, clock, rotate_after_s=23 * 3600.0, backoff_initial_s=30.0)
    await clock.advance_settle(23 * 3600.0)
    await until(lambda: c.ws.stats.rotations == 1 and c.ws.stats.reconnects == 1 and c.ws.connected,
                what="rotated")
    assert len(server.connections) == 2
    await c.stop()


async def test_pings_are_sent_on_the_clock(server: Server, clock: ManualClock) -> None:
    c = await started(server, clock, ping_interval_s=30.0)
    await clock.advance_settle(30.0)
    await until(lambda: server.pings == 1, what="ping")
    await c.stop()


async def test_reconnect_now_cuts_a_pending_backoff(server: Server, clock: ManualClock) -> None:
    c = await started(server, clock, backoff_initial_s=60.0)
    await server.live.close()
    await until(lambda: c.disconnects, what="disconnect seen")
    c.ws.reconnect_now("new listenKey")
    await until(lambda: c.ws.connected and len(server.connections) == 2, what="reconnected without waiting")
    await c.stop()


def test_backoff_doubles_up_to_the_cap() -> None:
    s = WsSettings(backoff_initial_s=0.5, backoff_max_s=4.0, jitter=0.0)
    rng = random.Random(0)
    assert [s.backoff_s(n, rng) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


async def test_a_cancel_that_arrives_while_a_closed_connection_is_cleaned_up_ends_run(
        server: Server, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # The connection's watchdog is still finishing when run() is cancelled (a venue stopping
    # right after the peer closed): the cancel must end run(), not be swallowed with the
    # watchdog's own cancellation (run() would then reconnect and never end).
    release = asyncio.Event()
    cleaning = asyncio.Event()

    async def slow_watchdog(self: ReconnectingWebSocket, ws: object) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await release.wait()

    monkeypatch.setattr(ReconnectingWebSocket, "_watchdog", slow_watchdog)
    c = await started(server, clock)
    await server.live.close()
    await asyncio.wait_for(cleaning.wait(), 5)
    c.task.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(c.task), 5)
    assert c.task.cancelled() and len(server.connections) == 1


class Ticker:
    """A task that counts its own turns on the loop: how often other work got to run."""

    def __init__(self) -> None:
        self.turns = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.turns += 1


async def burst_turns(server: Server, clock: ManualClock, settings: WsSettings, n: int,
                      advance_per_frame_s: float = 0.0) -> list[int]:
    """`n` frames written in one go (the server runs on this loop: no yield between them, so they
    arrive together and sit in the client's buffer); the ticker's count seen by each frame."""
    seen: list[int] = []
    frames: list[str] = []
    ticker = Ticker()

    def on_message(raw: str, recv_ns: int) -> None:
        seen.append(ticker.turns)
        frames.append(raw)
        clock.advance(advance_per_frame_s)  # the handler's "work", on the injected clock

    ws = ReconnectingWebSocket("burst", f"ws://127.0.0.1:{server.port}/ws", on_message, clock, settings=settings,
                               rng=random.Random(1))
    task = asyncio.get_running_loop().create_task(ws.run())
    try:
        await until(lambda: ws.connected and len(server.connections) == 1, what="connected")
        for i in range(n):
            await server.live.send_str(str(i))
        await until(lambda: len(seen) == n, what=f"{n} frames handled")
    finally:
        for t in (task, ticker.task):
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
    assert frames == [str(i) for i in range(n)]  # yielding never reorders or drops a frame
    assert ws.stats.messages == n
    return seen


def longest_run(seen: list[int]) -> int:
    """The most consecutive frames handled with no other task's turn between them."""
    best = run = 1
    for a, b in itertools.pairwise(seen):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


async def test_buffered_frames_are_handled_back_to_back_only_for_yield_after_s(
        server: Server, clock: ManualClock) -> None:
    # Every frame's handling "costs" 0.1 ms on the clock; the reader yields once 0.5 ms have
    # passed since its last yield: never more than 6 frames without the loop running others.
    settings = WsSettings(ping_interval_s=1000.0, dead_after_s=5000.0, jitter=0.0, yield_after_s=0.0005)
    seen = await burst_turns(server, clock, settings, 60, advance_per_frame_s=0.0001)
    assert longest_run(seen) <= 6
    assert longest_run(seen) >= 2  # and back to back within the budget (no yield per frame)


async def test_with_no_budget_the_loop_runs_between_every_two_frames(server: Server, clock: ManualClock) -> None:
    settings = WsSettings(ping_interval_s=1000.0, dead_after_s=5000.0, jitter=0.0, yield_after_s=0.0)
    seen = await burst_turns(server, clock, settings, 40)
    assert longest_run(seen) == 1 and seen == sorted(seen)


async def test_a_burst_held_the_loop_without_the_yield(server: Server, clock: ManualClock) -> None:
    # The control: a budget the clock never reaches is the reader before the fix; the
    # buffered burst is handled without letting the loop run (what the yield is for).
    settings = WsSettings(ping_interval_s=1000.0, dead_after_s=5000.0, jitter=0.0, yield_after_s=1e9)
    seen = await burst_turns(server, clock, settings, 40)
    assert longest_run(seen) >= 20


async def test_malformed_frames_in_a_burst_are_counted_and_the_rest_kept_in_order(
        server: Server, clock: ManualClock) -> None:
    settings = WsSettings(ping_interval_s=1000.0, dead_after_s=5000.0, jitter=0.0, yield_after_s=0.0)
    c = await started(server, clock, yield_after_s=0.0)
    assert c.ws.settings == settings
    for raw in ("0", "bad", "1", "bad", "bad", "2"):
        await server.live.send_str(raw)
    await until(lambda: c.frames == ["0", "1", "2"], what="the good frames")
    assert c.ws.stats.parse_errors == 3 and c.ws.stats.messages == 6 and c.ws.connected
    await c.stop()
