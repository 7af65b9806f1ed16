"""A reconnecting websocket client whose every timer runs on the injected clock.

One `ReconnectingWebSocket` owns one logical stream (a market-data connection, a
user-data connection). `run()` connects, reads until the connection ends, waits a backoff
and connects again, until cancelled. Rules:

* **Frames.** Text and binary frames go to `on_message(raw, recv_ns)` synchronously (the
  hot path: frame → parser → bus). A handler that raises `ParseError` is a malformed
  frame: counted (`parse_errors`), logged and skipped; any other exception is counted
  (`handler_errors`) and logged. Either way the connection survives. Frames already
  buffered are read without a suspension (aiohttp hands them over without yielding), so
  after `yield_after_s` of handling the reader yields once to the loop (`sleep(0)`):
  timers and other tasks run, then the next frame, in order. Without it a burst of
  frames (a reconnect's backlog, a busy market) held the loop for up to half a second.
* **Liveness.** Pings are answered by hand (autoping off), and this side sends a ping
  every `ping_interval_s`. No frame at all (data, ping or pong) for `dead_after_s` means
  the peer is gone: the connection is dropped and re-opened. `stale_after_s` (market
  streams) also drops a connection that answers pings but sends no data.
* **Rotation.** Binance cuts every connection at 24 h; a connection older than
  `rotate_after_s` (default 23 h) is closed on purpose and re-opened at once.
* **Backoff.** After an unplanned disconnect or a failed connect: exponential from
  `backoff_initial_s`, capped at `backoff_max_s`, ± `jitter`; reset once connected.
  Planned closes (rotation, `reconnect_now`) re-open without waiting.
* **Hooks.** `before_connect()` is awaited before every connect attempt (e.g. to wait
  out a venue ban instead of knocking during it; it may sleep on the clock).
  `on_connect(reconnected)` is awaited after every successful connect,
  before the first frame is read (send SUBSCRIBE there; do not block on replies: they
  arrive through `on_message`). `on_disconnect(reason)` is called after every close.
  `on_connect_error(exc)` after a failed connect (e.g. an HTTP 400 handshake for an
  expired listenKey). A hook that raises is logged; a failing `on_connect` drops the
  connection (and it is retried after the backoff).

`send_text` raises `NotConnected` (before writing anything) when there is no open
connection, so a caller can tell "provably not sent" from a failure during the write.

Timeouts use `core.clock.wait_with_timeout` (driven by the injected clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog

from nautilus_hmm.core.clock import Clock, wait_with_timeout
from nautilus_hmm.core.errors import ParseError

log = structlog.get_logger("venues.ws")

MessageHandler = Callable[[Any, int], None]


class NotConnected(ConnectionError):
    """Sending on a websocket with no open connection: nothing was written."""


@dataclass(frozen=True, slots=True)
class WsSettings:
    """Timing of one reconnecting websocket (seconds on the injected clock)."""

    ping_interval_s: float = 30.0
    dead_after_s: float = 90.0
    stale_after_s: float | None = None
    rotate_after_s: float = 23 * 3600.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.2
    connect_timeout_s: float = 10.0
    close_timeout_s: float = 5.0  # aiohttp's close handshake wait (transport detail, real time)
    max_msg_size: int = 16 * 1024 * 1024
    # Longest run of buffered frames handled back to back before the reader yields to the
    # loop once (see the module docstring): the loop-lag bound under a frame flood.
    yield_after_s: float = 0.0002

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Delay before reconnect number `attempt` (1-based): exponential, capped, jittered."""
        base = min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(0, attempt - 1)))
        return max(0.0, base * (1.0 + rng.uniform(-self.jitter, self.jitter)))


class WsStats:
    """Counters of one websocket (exported as metrics by the owner)."""

    __slots__ = (
        "connect_failures", "connects", "dead_drops", "handler_errors", "last_message_ns",
        "messages", "parse_errors", "reconnects", "rotations", "stale_drops",
    )

    def __init__(self) -> None:
        self.connects = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.messages = 0
        self.parse_errors = 0
        self.handler_errors = 0
        self.stale_drops = 0
        self.dead_drops = 0
        self.rotations = 0
        self.last_message_ns = 0

    def as_dict(self) -> dict[str, int]:
        """All counters by name."""
        return {k: getattr(self, k) for k in self.__slots__}


class ReconnectingWebSocket:
    """A websocket that stays connected (see the module docstring)."""

    def __init__(
        self,
        name: str,
        url: str | Callable[[], str],
        on_message: MessageHandler,
        clock: Clock,
        *,
        session: aiohttp.ClientSession | None = None,
        settings: WsSettings | None = None,
        on_connect: Callable[[bool], Awaitable[None]] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        on_connect_error: Callable[[BaseException], None] | None = None,
        rng: random.Random | None = None,
        before_connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self._url = url if callable(url) else (lambda: url)
        self.on_message = on_message
        self.clock = clock
        self.settings = settings or WsSettings()
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.on_connect_error = on_connect_error
        self.before_connect = before_connect
        self.stats = WsStats()
        self._session = session
        self._own_session = session is None
        self._rng = rng or random.Random()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._close_reason = ""
        self._planned = False
        self._last_frame_s = 0.0
        self._last_data_s = 0.0
        self._connected_at_s = 0.0
        self._closing: asyncio.Task[Any] | None = None
        self._wake = asyncio.Event()
        self.connected_event = asyncio.Event()

    # ------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        ws = self._ws
        return ws is not None and not ws.closed

    def seconds_since_data(self) -> float | None:
        """Seconds since the last data frame on this connection (None when not connected)."""
        if not self.connected:
            return None
        return self.clock.monotonic() - self._last_data_s

    # ------------------------------------------------------------ sending

    async def send_json(self, obj: Any) -> None:
        """Send one JSON text frame; ConnectionError when not connected."""
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError(f"websocket {self.name} is not connected")
        await ws.send_str(orjson.dumps(obj).decode())

    async def send_text(self, text: str) -> None:
        """Send one text frame; `NotConnected` (nothing written) when there is no open connection.

        Any other exception comes from the write itself: part of the frame may have left.
        """
        ws = self._ws
        if ws is None or ws.closed:
            raise NotConnected(f"websocket {self.name} is not connected")
        await ws.send_str(text)

    def reconnect_now(self, reason: str) -> None:
        """Close the current connection on purpose; `run()` re-opens it without backoff.

        When not connected, a pending backoff is cut short: the next attempt starts now.
        """
        ws = self._ws
        if ws is None or ws.closed:
            self._wake.set()
            return
        self._planned = True
        self._close_reason = reason
        self._closing = asyncio.get_running_loop().create_task(ws.close(), name=f"ws-close:{self.name}")

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Connect, read, reconnect, until cancelled."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        attempt = 0
        ever_connected = False
        try:
            while True:
                if self.before_connect is not None:
                    try:
                        await self.before_connect()
                    except Exception as exc:
                        log.error("ws_hook_failed", ws=self.name, hook="before_connect", error=repr(exc))
                url = self._url()
                try:
                    ws = await wait_with_timeout(self.clock, self.settings.connect_timeout_s, self._session.ws_connect(
                        url, autoping=False, max_msg_size=self.settings.max_msg_size,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.settings.close_timeout_s),
                    ))
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self.stats.connect_failures += 1
                    attempt += 1
                    delay = self.settings.backoff_s(attempt, self._rng)
                    log.warning("ws_connect_failed", ws=self.name, error=_describe(exc), attempt=attempt,
                                retry_in_s=round(delay, 3))
                    if self.on_connect_error is not None:
                        try:
                            self.on_connect_error(exc)
                        except Exception as hook_exc:
                            log.error("ws_hook_failed", ws=self.name, hook="on_connect_error", error=repr(hook_exc))
                    await self._backoff(delay)
                    continue
                attempt = 0
                reason = await self._serve(ws, reconnected=ever_connected)
                ever_connected = True
                planned = self._planned
                self._planned = False
                if self.on_disconnect is not None:
                    try:
                        self.on_disconnect(reason)
                    except Exception as exc:
                        log.error("ws_hook_failed", ws=self.name, hook="on_disconnect", error=repr(exc))
                if planned:
                    log.info("ws_reconnecting", ws=self.name, reason=reason, planned=True)
                    continue
                attempt = 1
                delay = self.settings.backoff_s(attempt, self._rng)
                log.warning("ws_disconnected", ws=self.name, reason=reason, retry_in_s=round(delay, 3))
                await self._backoff(delay)
        finally:
            await self.close()

    async def _backoff(self, delay_s: float) -> None:
        """Sleep `delay_s` on the clock, or less if `reconnect_now` is called meanwhile."""
        sleeper = asyncio.ensure_future(self.clock.sleep(delay_s))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        self._wake.clear()

    async def close(self) -> None:
        """Close the connection (and the session if this object made it)."""
        ws, self._ws = self._ws, None
        self.connected_event.clear()
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------ one connection

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, reconnected: bool) -> str:
        clock = self.clock
        now = clock.monotonic()
        self._ws = ws
        self._close_reason = ""
        self._connected_at_s = self._last_frame_s = self._last_data_s = now
        self.stats.connects += 1
        if reconnected:
            self.stats.reconnects += 1
        log.info("ws_connected", ws=self.name, reconnect=reconnected)
        if self.on_connect is not None:
            try:
                await self.on_connect(reconnected)
            except Exception as exc:
                log.error("ws_hook_failed", ws=self.name, hook="on_connect", error=repr(exc))
                with contextlib.suppress(Exception):
                    await ws.close()
                self._ws = None
                return f"on_connect failed: {exc!r}"
        self.connected_event.set()
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(ws), name=f"ws-watchdog:{self.name}")
        handler = self.on_message
        stats = self.stats
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        yield_after_s = self.settings.yield_after_s
        yield_at = clock.monotonic() + yield_after_s
        try:
            while True:
                msg = await ws.receive()
                t = msg.type
                now_s = self._last_frame_s = clock.monotonic()
                if t is text or t is binary:
                    self._last_data_s = now_s
                    stats.messages += 1
                    recv_ns = clock.time_ns()
                    stats.last_message_ns = recv_ns
                    try:
                        handler(msg.data, recv_ns)
                    except ParseError as exc:
                        stats.parse_errors += 1
                        log.warning("ws_frame_malformed", ws=self.name, error=str(exc))
                    except Exception as exc:
                        stats.handler_errors += 1
                        log.error("ws_handler_failed", ws=self.name, error=repr(exc), exc_info=exc)
                    if now_s >= yield_at:  # a long run of buffered frames: let the loop run once
                        await asyncio.sleep(0)
                        yield_at = clock.monotonic() + yield_after_s
                elif t is aiohttp.WSMsgType.PING:
                    await ws.pong(msg.data)
                elif t is aiohttp.WSMsgType.PONG:
                    pass
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    if not self._close_reason:
                        code = ws.close_code
                        self._close_reason = (
                            f"error: {ws.exception()!r}" if t is aiohttp.WSMsgType.ERROR
                            else f"closed by peer (code {code})"
                        )
                    break
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            if not self._close_reason:
                self._close_reason = f"transport error: {_describe(exc)}"
        finally:
            watchdog.cancel()
            try:
                # Wait for the watchdog without taking on its outcome: a cancel of run()
                # arriving meanwhile still propagates (suppressing it here lost it, and
                # run() reconnected instead of ending).
                await asyncio.wait((watchdog,))
                if not watchdog.cancelled():
                    watchdog.exception()  # retrieved (it ended on its own: the connection closed)
            finally:
                self.connected_event.clear()
                if not ws.closed:
                    with contextlib.suppress(Exception):
                        await ws.close()
                self._ws = None
        return self._close_reason

    async def _watchdog(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Pings, dead-peer and stale-data detection, planned rotation (all on the clock)."""
        s = self.settings
        clock = self.clock
        last_ping = clock.monotonic()
        while not ws.closed:
            now = clock.monotonic()
            reason = ""
            if now - self._connected_at_s >= s.rotate_after_s:
                reason = f"planned rotation after {s.rotate_after_s:.0f} s"
                self.stats.rotations += 1
                self._planned = True
            elif now - self._last_frame_s >= s.dead_after_s:
                reason = f"no frame for {now - self._last_frame_s:.1f} s (dead peer)"
                self.stats.dead_drops += 1
            elif s.stale_after_s is not None and now - self._last_data_s >= s.stale_after_s:
                reason = f"no data for {now - self._last_data_s:.1f} s (stale stream)"
                self.stats.stale_drops += 1
            if reason:
                self._close_reason = reason
                log.warning("ws_dropping", ws=self.name, reason=reason)
                await ws.close()
                return
            if now - last_ping >= s.ping_interval_s:
                with contextlib.suppress(Exception):
                    await ws.ping()
                last_ping = now
            deadlines = [
                self._connected_at_s + s.rotate_after_s,
                self._last_frame_s + s.dead_after_s,
                last_ping + s.ping_interval_s,
            ]
            if s.stale_after_s is not None:
                deadlines.append(self._last_data_s + s.stale_after_s)
            await clock.sleep(max(0.001, min(deadlines) - now))


def _describe(exc: BaseException) -> str:
    """A short description of a transport error (never a URL with a listenKey in full)."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"handshake refused: HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    return f"{type(exc).__name__}: {exc}"[:200]
