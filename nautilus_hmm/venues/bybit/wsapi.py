"""Order entry over Bybit's trade WebSocket (`/v5/trade`): `order.create|amend|cancel` with `reqId`.

One connection per venue, kept open by `venues.ws.ReconnectingWebSocket` (reconnects with
backoff + jitter, a dead peer dropped) plus Bybit's own heartbeat: `{"op":"ping"}` every
`ping_interval_s` (20 s, as Bybit's docs ask); no frame at all for 60 s drops the
connection. On every connect the client sends `{"op":"auth","args": [key, expires,
signature]}` (signature over `GET/realtime{expires}`) without waiting for the answer:
until it arrives the connection counts as not ready (requests go by REST meanwhile).

Rules (as for Binance's WebSocket API):

* **One budget with REST.** Every request passes the REST client's gate
  (`BybitRest.gate`: a halted key, an HTTP 403 ban and a spent endpoint window stop it
  with nothing sent; pacing waits), and an answer's `header` (`X-Bapi-Limit*`) updates
  the window of the REST twin's path.
* **Unknown outcome.** A request whose frame may have left — no answer within
  `request_timeout_s` (injected clock), the connection lost before the answer, a write
  that failed part-way, an answer that cannot be read, retCode 10016 (server error) —
  raises `UnknownOutcome`: query by orderLinkId, NEVER resend. A request made while
  there is no authenticated connection raises `WsTradeNotConnected` (a `RetryableError`):
  its frame was never written, so the adapter may send it by REST instead; so does
  retCode 10019 (the trade service is restarting and took no new request).
* **Errors** are classified by `errors.classify` (retCode → typed error, counted in
  `BybitRest.stats.ret_codes`); 10002 re-syncs the server time over REST and retries once
  (refused before processing); 10003/10004 on auth or on a request halt the venue.
* Answers are matched by `reqId` (a per-client counter, never reused within a process:
  Bybit refuses a duplicated reqId with 20006). An answer whose request already gave up
  is counted in `late_answers` and dropped: the engine resolves that order by query.

Keys and signatures never appear in log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import structlog

from nautilus_hmm.core.clock import Clock, wait_with_timeout
from nautilus_hmm.core.errors import (
    ParseError,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueError,
)
from nautilus_hmm.venues.bybit import errors as bybit_errors
from nautilus_hmm.venues.bybit.auth import Credentials, format_value, ws_auth_args
from nautilus_hmm.venues.bybit.rest import (
    ENDPOINTS,
    HALTING_CODES,
    BybitRest,
    Endpoint,
    TimestampRejected,
)
from nautilus_hmm.venues.ws import NotConnected, ReconnectingWebSocket, WsSettings

log = structlog.get_logger("venues.bybit.wsapi")

NS_PER_MS = 1_000_000
AUTH_EXPIRES_MS = 10_000  # the auth signature's validity after it is made
CODE_WS_TOO_FREQUENT = 20003  # too frequent requests under the same session (refused, not processed)
# REST endpoint name → trade WebSocket op doing the same (same args, same `data` as REST's `result`).
WS_TRADE_OPS = {"new_order": "order.create", "amend_order": "order.amend", "cancel_order": "order.cancel"}
PING_INTERVAL_S = 20.0  # Bybit: send {"op":"ping"} every 20 s
# Protocol pings off (Bybit's heartbeat is the JSON ping); no frame at all for 60 s (three
# missed pongs) drops the connection.
DEFAULT_WS_TRADE_SETTINGS = WsSettings(ping_interval_s=3600.0, dead_after_s=60.0)


class WsTradeNotConnected(RetryableError):
    """No authenticated trade connection (or Bybit took no new request): not sent; it may go by REST."""


class _ConnectionLost(Exception):
    """Set on the requests waiting on a connection when it closes."""


class WsTradeStats:
    """Counters of one trade WebSocket client."""

    __slots__ = ("answers", "auth_failures", "auths", "connection_lost", "errors", "late_answers",
                 "not_connected", "pings", "requests", "time_syncs", "timeouts")

    def __init__(self) -> None:
        self.requests = 0
        self.answers = 0
        self.errors = 0
        self.timeouts = 0
        self.connection_lost = 0
        self.not_connected = 0
        self.late_answers = 0
        self.time_syncs = 0
        self.auths = 0
        self.auth_failures = 0
        self.pings = 0

    def as_dict(self) -> dict[str, int]:
        """All counters by name."""
        return {k: getattr(self, k) for k in self.__slots__}


class BybitWsTrade:
    """Signed order entry over one trade WebSocket connection (see the module docstring)."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        venue: str,
        credentials: Credentials,
        rest: BybitRest,
        recv_window_ms: int = 5000,
        request_timeout_s: float = 10.0,
        settings: WsSettings | None = None,
        ping_interval_s: float = PING_INTERVAL_S,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.ping_interval_s = ping_interval_s
        self.clock = clock
        self.venue = venue
        self.credentials = credentials
        self.rest = rest
        self.recv_window_ms = recv_window_ms
        self.request_timeout_s = request_timeout_s
        self.settings = settings or DEFAULT_WS_TRADE_SETTINGS
        self.stats = WsTradeStats()
        self.authenticated = False
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._last_id = 0
        self._prefix = f"{random.Random().getrandbits(32):08x}"  # reqIds of this process differ from any earlier one
        self.ws = ReconnectingWebSocket(
            f"{venue}:ws-trade", url, self._on_message, clock, session=session, settings=self.settings,
            on_connect=self._on_connect, on_disconnect=self._on_disconnect, before_connect=self._before_connect,
            rng=rng,
        )

    # ------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        """True while an authenticated connection is open."""
        return self.ws.connected and self.authenticated

    async def run(self) -> None:
        """Keep the connection open and the heartbeat going until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.ws.run(), name=f"{self.venue}:ws-trade")
            tg.create_task(self._heartbeat(), name=f"{self.venue}:ws-trade-ping")

    async def close(self) -> None:
        """Close the connection; requests still waiting fail as connection lost."""
        self._fail_pending("client closed")
        await self.ws.close()

    async def _heartbeat(self) -> None:
        while True:
            await self.clock.sleep(self.ping_interval_s)
            if self.ws.connected:
                with contextlib.suppress(NotConnected, aiohttp.ClientError, OSError, RuntimeError):
                    await self.ws.send_text('{"op":"ping"}')
                    self.stats.pings += 1

    async def _before_connect(self) -> None:
        """A halted venue (bad key / signature) does not knock again."""
        while self.rest.halted_reason:
            await self.clock.sleep(60.0)

    async def _on_connect(self, reconnected: bool) -> None:
        del reconnected
        self.authenticated = False
        expires_ms = self.rest.server_time_ms() + AUTH_EXPIRES_MS
        await self.ws.send_text(orjson.dumps({"op": "auth", "args": ws_auth_args(self.credentials, expires_ms)}).decode())

    # ------------------------------------------------------------ requests

    async def call(self, name: str, args: Mapping[str, Any]) -> Any:
        """Send the trade op twin of REST endpoint `name`; returns the answer's `data`."""
        ep = ENDPOINTS[name]
        try:
            return await self._call(name, ep, args)
        except TimestampRejected as exc:
            log.warning("bybit_timestamp_rejected", venue=self.venue, op=WS_TRADE_OPS[name], code=exc.error.code,
                        action="re-syncing server time, then retrying once")
            self.stats.time_syncs += 1
            await self.rest.sync_time()
            try:
                return await self._call(name, ep, args)
            except TimestampRejected as again:
                raise again.error from None

    async def _call(self, name: str, ep: Endpoint, args: Mapping[str, Any]) -> Any:
        op = WS_TRADE_OPS[name]
        if not self.connected:
            self.stats.not_connected += 1
            raise WsTradeNotConnected(self.venue, f"{op}: no authenticated trade WebSocket; not sent")
        wait_s = self.rest.gate(ep)
        if wait_s > 0:
            self.rest.stats.paced += 1
            await self.clock.sleep(wait_s)
            if not self.connected:
                self.stats.not_connected += 1
                raise WsTradeNotConnected(self.venue, f"{op}: trade WebSocket lost while pacing; not sent")
        self._last_id += 1
        req_id = f"{self._prefix}-{self._last_id}"
        frame = {
            "reqId": req_id,
            "header": {"X-BAPI-TIMESTAMP": str(self.rest.server_time_ms()),
                       "X-BAPI-RECV-WINDOW": str(self.recv_window_ms)},
            "op": op,
            "args": [{k: _arg(v) for k, v in args.items() if v is not None}],
        }
        answer_fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = answer_fut
        self.stats.requests += 1
        try:
            try:
                await self._transmit(frame)
            except NotConnected:
                self.stats.not_connected += 1
                raise WsTradeNotConnected(self.venue, f"{op}: no trade WebSocket connection; not sent") from None
            except (aiohttp.ClientError, OSError, RuntimeError) as exc:
                self.stats.connection_lost += 1
                raise self._sent_error(op, f"write failed: {type(exc).__name__}: {exc}") from None
            try:
                answer = await wait_with_timeout(self.clock, self.request_timeout_s, answer_fut)
            except TimeoutError:
                self.stats.timeouts += 1
                raise self._sent_error(op, f"no answer within {self.request_timeout_s} s") from None
            except _ConnectionLost as exc:
                self.stats.connection_lost += 1
                raise self._sent_error(op, f"connection lost before the answer ({exc})") from None
        finally:
            self._pending.pop(req_id, None)
        return self._result(ep, op, answer)

    async def _transmit(self, frame: dict[str, Any]) -> None:
        """Write one request frame (the benchmark timestamps this call)."""
        await self.ws.send_text(orjson.dumps(frame).decode())

    def _result(self, ep: Endpoint, op: str, answer: Mapping[str, Any]) -> Any:
        self.stats.answers += 1
        header = answer.get("header")
        if isinstance(header, Mapping):
            self.rest.note_limits(ep.path, {str(k).lower(): str(v) for k, v in header.items()})
        ret_code = answer.get("retCode")
        if type(ret_code) is not int:
            raise self._sent_error(op, f"answer without an integer retCode: {str(answer)[:160]!r}")
        if ret_code == 0:
            data = answer.get("data")
            if not isinstance(data, Mapping):
                raise self._sent_error(op, f"answer without data: {str(answer)[:160]!r}")
            return data
        msg = str(answer.get("retMsg", ""))
        self.stats.errors += 1
        self.rest.stats.ret_codes[ret_code] += 1
        if ret_code == bybit_errors.WS_TRADE_RESTARTING:
            # Refused before processing: the adapter may send it by REST (its only send).
            self.ws.reconnect_now("trade service restarting (10019)")
            raise WsTradeNotConnected(self.venue, f"{op}: retCode 10019 ({msg}); not accepted")
        if ret_code == CODE_WS_TOO_FREQUENT:
            raise RateLimited(self.venue, f"{op}: retCode {ret_code} ({msg})", 1.0, str(ret_code))
        err = bybit_errors.classify(ret_code, msg, 200, venue=self.venue, order_entry=True,
                                    now_ns=self.rest.venue_now_ns(), headers=header if isinstance(header, Mapping) else None)
        raise self.rest.note_failure(ep, err)

    def _halt(self, ret_code: int, msg: str) -> None:
        self.rest.halted_reason = f"retCode {ret_code} ({msg}): check the API key and secret"
        log.error("bybit_venue_halted", venue=self.venue, endpoint="WS trade", code=ret_code, reason=msg,
                  action="every request refused until a restart with working credentials")

    def _sent_error(self, op: str, detail: str) -> VenueError:
        """The frame may have reached the venue: every op here places, amends or cancels."""
        log.error("bybit_order_outcome_unknown", venue=self.venue, endpoint=f"WS {op}", detail=detail,
                  action="query by orderLinkId; never resend")
        return UnknownOutcome(self.venue, f"WS {op}: {detail}")

    # ------------------------------------------------------------ frames

    def _on_message(self, raw: Any, recv_ns: int) -> None:
        del recv_ns
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"trade WebSocket frame is not JSON: {exc}") from None
        if not isinstance(answer, dict):
            raise ParseError(f"trade WebSocket frame is not a JSON object: {str(answer)[:120]!r}")
        op = answer.get("op")
        if op == "auth":
            self._on_auth(answer)
            return
        if op in ("pong", "ping"):
            return
        req_id = answer.get("reqId")
        fut = self._pending.get(req_id) if isinstance(req_id, str) else None
        if fut is None or fut.done():
            self.stats.late_answers += 1
            log.warning("bybit_ws_trade_unmatched_answer", venue=self.venue, req_id=req_id, op=op,
                        ret_code=answer.get("retCode"), hint="its request already gave up: resolved by query")
            return
        fut.set_result(answer)

    def _on_auth(self, answer: Mapping[str, Any]) -> None:
        ret_code = answer.get("retCode")
        if ret_code == 0 or (ret_code is None and answer.get("success") is True):
            self.authenticated = True
            self.stats.auths += 1
            log.info("bybit_ws_trade_authenticated", venue=self.venue)
            return
        self.stats.auth_failures += 1
        msg = str(answer.get("retMsg", ""))
        log.error("bybit_ws_trade_auth_failed", venue=self.venue, code=ret_code, reason=msg)
        if ret_code in HALTING_CODES:
            self._halt(int(ret_code), msg)
        self.ws.reconnect_now(f"auth refused ({ret_code})")

    def _on_disconnect(self, reason: str) -> None:
        self.authenticated = False
        self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(_ConnectionLost(reason))


def _arg(v: Any) -> Any:
    """An op argument as Bybit takes it: numbers that touch money as strings, bools and ints as is."""
    if isinstance(v, (bool, int)):
        return v
    return format_value(v)


__all__ = ["WS_TRADE_OPS", "BybitWsTrade", "WsTradeNotConnected"]
