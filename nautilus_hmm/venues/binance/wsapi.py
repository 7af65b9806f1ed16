"""Order entry over Binance's WebSocket API: spot `/ws-api/v3`, USD-M `/ws-fapi/v1`.

One connection per venue, kept open by `venues.ws.ReconnectingWebSocket` (server pings
answered, a dead peer dropped, a planned reconnect at 23 h before Binance's 24 h cut,
reconnects with backoff + jitter). Every request is signed on its own (HMAC-SHA256 over
the params sorted by name: `auth.ws_api_request`); there is no `session.logon`.

Rules:

* **One budget with REST.** Binance counts the IP's request weight, its 429s and its
  bans across REST and the WebSocket API, so every request here passes the REST
  client's gate (`BinanceRest.gate`: a ban or a 429 block fails fast with nothing sent,
  the local minute budget applies) and every failure is booked by
  `BinanceRest.note_failure` (429: every request stops for Retry-After; 418: everything
  stops until the ban's end, venue time). An answer's `rateLimits` REQUEST_WEIGHT count
  sets the minute's used weight. Opening the connection costs weight too (2 spot, 5
  USD-M); a connect waits out a ban or a 429 instead of knocking during it.
* **Same errors as REST.** A failed answer `{"id","status","error":{"code","msg","data"}}`
  is classified by `errors.classify_ws_api_error` (status = the HTTP status REST would
  have given; a 429/418's end is `error.data.retryAfter`).
* **Unknown outcome.** A request whose frame may have left — no answer within
  `request_timeout_s` (injected clock), the connection lost before the answer, a write
  that failed part-way, an answer that cannot be read — raises `UnknownOutcome` when it
  places or cancels an order (query by client order id, NEVER resend) and
  `RetryableError` on a read. A request made while there is no open connection raises
  `WsApiNotConnected` (a `RetryableError`): its frame was never written.
* **-1021** (timestamp outside recvWindow) re-syncs the server time (REST `GET /time`)
  and retries once: the venue refused the request before processing it.
* Answers are matched to requests by `id` (a per-client counter). An answer that comes
  after its request gave up (or with an id nobody waits for) is counted in
  `late_answers`, logged and dropped: the engine resolves that order by query.

Keys and signatures never appear in log lines.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import structlog

from nautilus_hmm.core.clock import Clock, run_with_timeout
from nautilus_hmm.core.errors import (
    ParseError,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
    VenueError,
)
from nautilus_hmm.venues.binance.auth import Credentials, ws_api_request
from nautilus_hmm.venues.binance.errors import TimestampError, classify_ws_api_error
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import ws_api_used_weight_1m
from nautilus_hmm.venues.binance.rest import BinanceRest, Endpoint, Security, endpoints
from nautilus_hmm.venues.ws import (
    NotConnected,
    ReconnectingWebSocket,
    WsSettings,
)

log = structlog.get_logger("venues.binance.wsapi")

NS_PER_S = 1_000_000_000

PRODUCTION_WS_API = {Market.SPOT: "wss://ws-api.binance.com:443/ws-api/v3",
                     Market.USDM: "wss://ws-fapi.binance.com/ws-fapi/v1"}
TESTNET_WS_API = {Market.SPOT: "wss://ws-api.testnet.binance.vision/ws-api/v3",
                  Market.USDM: "wss://testnet.binancefuture.com/ws-fapi/v1"}
# REST endpoint name → WebSocket API method doing the same (same weight, same answer JSON).
WS_API_METHODS = {"new_order": "order.place", "cancel_order": "order.cancel", "query_order": "order.status"}
# Weight of opening a connection: spot "Connecting to WebSocket API costs 2 weight";
# USD-M counts 5 per handshake.
CONNECT_WEIGHT = {Market.SPOT: 2, Market.USDM: 5}
# Binance pings every 20 s (spot) / 3 min (USD-M) and cuts a connection without a pong
# after 1 min / 10 min; the watchdog's own pings and dead-peer limit sit inside those.
DEFAULT_WS_API_SETTINGS = WsSettings(ping_interval_s=20.0, dead_after_s=60.0)


def default_ws_api_url(market: Market, testnet: bool) -> str:
    """Binance's WebSocket API URL for a market (testnet or production)."""
    return (TESTNET_WS_API if testnet else PRODUCTION_WS_API)[market]


def ws_api_endpoints(market: Market) -> dict[str, Endpoint]:
    """The WebSocket API methods as endpoints (`WS order.place` ...) with their REST twin's weight."""
    rest_eps = endpoints(market)
    return {name: Endpoint("WS", method, rest_eps[name].weight, Security.SIGNED,
                           order_entry=rest_eps[name].order_entry)
            for name, method in WS_API_METHODS.items()}


class WsApiNotConnected(RetryableError):
    """No open WebSocket API connection: the request was not written (it may go another way)."""


class _ConnectionLost(Exception):
    """Set on the requests waiting on a connection when it closes."""


class WsApiStats:
    """Counters of one WebSocket API client."""

    __slots__ = ("answers", "connection_lost", "errors", "late_answers", "not_connected", "requests",
                 "time_syncs", "timeouts")

    def __init__(self) -> None:
        self.requests = 0
        self.answers = 0
        self.errors = 0
        self.timeouts = 0
        self.connection_lost = 0
        self.not_connected = 0
        self.late_answers = 0
        self.time_syncs = 0

    def as_dict(self) -> dict[str, int]:
        """All counters by name."""
        return {k: getattr(self, k) for k in self.__slots__}


class BinanceWsApi:
    """Signed requests over one WebSocket API connection (see the module docstring)."""

    def __init__(
        self,
        market: Market,
        url: str,
        clock: Clock,
        *,
        venue: str,
        credentials: Credentials,
        rest: BinanceRest,
        recv_window_ms: int = 5000,
        request_timeout_s: float = 10.0,
        settings: WsSettings | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.market = market
        self.url = url
        self.clock = clock
        self.venue = venue
        self.credentials = credentials
        self.rest = rest
        self.recv_window_ms = recv_window_ms
        self.request_timeout_s = request_timeout_s
        self.endpoints = ws_api_endpoints(market)
        self.stats = WsApiStats()
        self._connect_ep = Endpoint("WS", "connect", CONNECT_WEIGHT[market], order_entry=True)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._last_id = 0
        self.ws = ReconnectingWebSocket(
            f"{venue}:ws-api", url, self._on_message, clock, session=session,
            settings=settings or DEFAULT_WS_API_SETTINGS, on_disconnect=self._on_disconnect,
            before_connect=self._before_connect, rng=rng,
        )

    # ------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        return self.ws.connected

    async def run(self) -> None:
        """Keep the connection open until cancelled."""
        await self.ws.run()

    async def close(self) -> None:
        """Close the connection; requests still waiting fail as connection lost."""
        self._fail_pending("client closed")
        await self.ws.close()

    async def _before_connect(self) -> None:
        """Charge the connection's weight; wait out a ban, a 429 or a spent budget first."""
        while True:
            try:
                self.rest.gate(self._connect_ep, self._connect_ep.weight)
                return
            except VenueBanned as exc:
                wait_s = max(1.0, (exc.until_ns - self.clock.time_ns()) / NS_PER_S)
            except RateLimited as exc:
                wait_s = max(0.1, exc.retry_after_s)
            log.warning("binance_ws_api_connect_waiting", venue=self.venue, wait_s=round(wait_s, 3))
            await self.clock.sleep(wait_s)

    # ------------------------------------------------------------ requests

    async def call(self, name: str, params: Mapping[str, Any]) -> Any:
        """Call the WebSocket API twin of REST endpoint `name`; returns the answer's `result`."""
        ep = self.endpoints[name]
        try:
            return await self._call(ep, params)
        except TimestampError as exc:
            log.warning("binance_timestamp_rejected", venue=self.venue, endpoint=repr(ep), code=exc.code,
                        action="re-syncing server time, then retrying once")
            self.stats.time_syncs += 1
            await self.rest.sync_time()
            return await self._call(ep, params)

    async def _call(self, ep: Endpoint, params: Mapping[str, Any]) -> Any:
        if not self.ws.connected:
            self.stats.not_connected += 1
            raise WsApiNotConnected(self.venue, f"{ep!r}: no WebSocket API connection; not sent")
        self.rest.gate(ep, ep.weight)
        self._last_id += 1
        request_id = self._last_id
        frame = ws_api_request(self.credentials, request_id, ep.path, params,
                               timestamp_ms=self.rest.server_time_ms(), recv_window_ms=self.recv_window_ms)
        answer_fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer_fut
        self.stats.requests += 1
        try:
            try:
                await self._transmit(frame)
            except NotConnected:
                self.stats.not_connected += 1
                raise WsApiNotConnected(self.venue, f"{ep!r}: no WebSocket API connection; not sent") from None
            except (aiohttp.ClientError, OSError, RuntimeError) as exc:
                self.stats.connection_lost += 1
                raise self._sent_error(ep, f"write failed: {type(exc).__name__}: {exc}") from None
            try:
                answer = await run_with_timeout(self.clock, self.request_timeout_s, answer_fut)
            except TimeoutError:
                self.stats.timeouts += 1
                raise self._sent_error(ep, f"no answer within {self.request_timeout_s} s") from None
            except _ConnectionLost as exc:
                self.stats.connection_lost += 1
                raise self._sent_error(ep, f"connection lost before the answer ({exc})") from None
        finally:
            self._pending.pop(request_id, None)
        return self._result(ep, answer)

    async def _transmit(self, frame: dict[str, Any]) -> None:
        """Write one request frame (the benchmark timestamps this call)."""
        await self.ws.send_text(orjson.dumps(frame).decode())

    def _result(self, ep: Endpoint, answer: Any) -> Any:
        self.stats.answers += 1
        if not isinstance(answer, Mapping):
            raise self._sent_error(ep, f"answer is not a JSON object: {str(answer)[:120]!r}")
        used = ws_api_used_weight_1m(answer)
        if used is not None:
            self.rest.note_used_weight_1m(used)
        status = answer.get("status")
        if status == 200 and "result" in answer:
            return answer["result"]
        if not isinstance(status, int) or isinstance(status, bool) or status < 300:
            raise self._sent_error(ep, f"answer without result or error: {str(answer)[:120]!r}")
        self.stats.errors += 1
        err = classify_ws_api_error(answer, venue=self.venue, order_entry=ep.order_entry,
                                    now_ns=self.rest.venue_now_ns())
        raise self.rest.note_failure(ep, status, err)

    def _sent_error(self, ep: Endpoint, detail: str) -> VenueError:
        """The frame may have reached the venue: unknown outcome on order entry, retryable on a read."""
        if ep.order_entry:
            log.error("binance_order_outcome_unknown", venue=self.venue, endpoint=repr(ep), detail=detail,
                      action="query by client order id; never resend")
            return UnknownOutcome(self.venue, f"{ep!r}: {detail}")
        log.warning("binance_request_failed", venue=self.venue, endpoint=repr(ep), detail=detail,
                    kind="RetryableError")
        return RetryableError(self.venue, f"{ep!r}: {detail}")

    # ------------------------------------------------------------ frames

    def _on_message(self, raw: Any, recv_ns: int) -> None:
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"WebSocket API frame is not JSON: {exc}") from None
        if not isinstance(answer, dict):
            raise ParseError(f"WebSocket API frame is not a JSON object: {str(answer)[:120]!r}")
        request_id = answer.get("id")
        fut = self._pending.get(request_id) if type(request_id) is int else None
        if fut is None or fut.done():
            self.stats.late_answers += 1
            log.warning("binance_ws_api_unmatched_answer", venue=self.venue, request_id=request_id,
                        status=answer.get("status"), hint="its request already gave up (timeout): resolved by query")
            return
        fut.set_result(answer)

    def _on_disconnect(self, reason: str) -> None:
        self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(_ConnectionLost(reason))


__all__ = ["BinanceWsApi", "WsApiNotConnected", "default_ws_api_url", "ws_api_endpoints"]
