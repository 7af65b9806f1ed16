"""Bybit v5 REST client (`/v5/...`, category spot or linear): signing, time, pacing, typed errors.

Rules:

* **Signing** as documented (`auth.signed_headers`): `X-BAPI-API-KEY`, `-TIMESTAMP`,
  `-RECV-WINDOW`, `-SIGN` = HMAC-SHA256 of timestamp + key + recv window + payload, where
  the payload is the query string of a GET exactly as sent and the raw JSON body of a
  POST exactly as sent (both are built once here and never re-encoded by aiohttp).
* **Time.** `sync_time()` measures the offset to the server clock (`GET /v5/market/time`,
  the server instant taken at the round trip's midpoint). retCode 10002 (timestamp
  outside the recv window) re-syncs and retries the request once: Bybit refuses it
  before processing, so even an order retried this way cannot be duplicated.
* **Pacing.** Every answer's `X-Bapi-Limit` / `-Limit-Status` (requests left) /
  `-Limit-Reset-Timestamp` (ms, venue time) is kept per endpoint path (Bybit's limits are
  per endpoint and UID). A request to an endpoint with nothing left waits (injected clock)
  until its window resets, when that is at most `max_pace_wait_s` away; longer, it fails
  fast with `RateLimited` (nothing sent). Between answers the local estimate counts each
  admitted request.
* **10006** (too many visits) blocks that endpoint until the reset the answer names (or
  1 s); the request raises `RateLimited` (it was refused before
  processing: an order is final-not-placed, the engine mints a new id later).
* **HTTP 403** (IP rate limit) bans every request for `IP_BAN_S` (10 min): they fail
  fast with `VenueBanned`, nothing sent. **10003 / 10004** (key invalid, bad signature)
  halt the venue with the reason: every later request fails fast with `AuthError`
  naming it, until a restart with fixed credentials.
* **Errors** carry Bybit's retCode as `code` (`errors.classify`); each one is counted by
  code (`stats.ret_codes`) and logged. On an order endpoint, a timeout (injected clock),
  a connection lost after the request may have left, an HTTP 5xx, an answer that cannot
  be read, or retCode 10000 / 10016 (server timeout / error) are `UnknownOutcome` — query
  by orderLinkId, never resend; on a read they are `RetryableError`. A connection that
  could not be opened is `RetryableError` everywhere (nothing was sent).
* Keys and signatures never appear in log lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog
import yarl

from nautilus_hmm.core.clock import Clock, wait_with_timeout
from nautilus_hmm.core.errors import (
    AuthError,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
    VenueError,
)
from nautilus_hmm.venues.bybit import errors as bybit_errors
from nautilus_hmm.venues.bybit.auth import Credentials, encode_query, json_body, signed_headers
from nautilus_hmm.venues.bybit.parse import parse_server_time

log = structlog.get_logger("venues.bybit.rest")

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000

PRODUCTION_REST = "https://api.bybit.com"
TESTNET_REST = "https://api-testnet.bybit.com"
PRODUCTION_WS = "wss://stream.bybit.com"
TESTNET_WS = "wss://stream-testnet.bybit.com"

IP_BAN_S = bybit_errors.IP_BAN_S  # HTTP 403: every request stops for 10 minutes
PACE_MARGIN_S = 0.05  # added to a reset instant: never knock early
MAX_PAGES = 200  # a cursor that never ends is a venue bug: stop instead of looping

# 10003 / 10004 (API key invalid, bad signature): the venue halts with the reason.
HALTING_CODES = frozenset({bybit_errors.BAD_KEY, bybit_errors.BAD_SIGN})


def default_rest_url(testnet: bool) -> str:
    """Bybit's REST base URL (testnet or production)."""
    return TESTNET_REST if testnet else PRODUCTION_REST


def default_ws_public_url(category: str, testnet: bool) -> str:
    """Bybit's public stream URL of a category."""
    return f"{TESTNET_WS if testnet else PRODUCTION_WS}/v5/public/{category}"


def default_ws_private_url(testnet: bool) -> str:
    """Bybit's private stream URL."""
    return f"{TESTNET_WS if testnet else PRODUCTION_WS}/v5/private"


def default_ws_trade_url(testnet: bool) -> str:
    """Bybit's trade (order entry) WebSocket URL."""
    return f"{TESTNET_WS if testnet else PRODUCTION_WS}/v5/trade"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One REST endpoint: method, path, signed or not, whether it enters or cancels orders."""

    method: str
    path: str
    signed: bool = False
    order_entry: bool = False

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS: dict[str, Endpoint] = {
    "time": Endpoint("GET", "/v5/market/time"),
    "instruments": Endpoint("GET", "/v5/market/instruments-info"),
    "kline": Endpoint("GET", "/v5/market/kline"),
    "orderbook": Endpoint("GET", "/v5/market/orderbook"),
    "tickers": Endpoint("GET", "/v5/market/tickers"),
    "new_order": Endpoint("POST", "/v5/order/create", True, order_entry=True),
    "amend_order": Endpoint("POST", "/v5/order/amend", True, order_entry=True),
    "cancel_order": Endpoint("POST", "/v5/order/cancel", True, order_entry=True),
    "cancel_all": Endpoint("POST", "/v5/order/cancel-all", True, order_entry=True),
    "open_orders": Endpoint("GET", "/v5/order/realtime", True),
    "order_history": Endpoint("GET", "/v5/order/history", True),
    "executions": Endpoint("GET", "/v5/execution/list", True),
    "positions": Endpoint("GET", "/v5/position/list", True),
    "wallet": Endpoint("GET", "/v5/account/wallet-balance", True),
    "set_leverage": Endpoint("POST", "/v5/position/set-leverage", True),
    "switch_mode": Endpoint("POST", "/v5/position/switch-mode", True),
}


class EndpointLimit:
    """What the venue last said about one endpoint's window (headers), plus local counting."""

    __slots__ = ("blocked_until_ms", "limit", "remaining", "reset_ms")

    def __init__(self, limit: int, remaining: int, reset_ms: int) -> None:
        self.limit = limit
        self.remaining = remaining
        self.reset_ms = reset_ms
        self.blocked_until_ms = 0  # after a 10006: venue time

    def as_dict(self) -> dict[str, int]:
        """All fields by name."""
        return {k: getattr(self, k) for k in self.__slots__}


class RestStats:
    """Counters of one REST client."""

    __slots__ = ("auth_halted_fast", "banned_fast", "errors", "paced", "rate_limited_fast", "requests",
                 "ret_codes", "time_syncs", "timeouts")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.timeouts = 0
        self.paced = 0  # requests that waited for their endpoint's window to reset
        self.rate_limited_fast = 0
        self.banned_fast = 0
        self.auth_halted_fast = 0
        self.time_syncs = 0
        self.ret_codes: Counter[int] = Counter()  # every non-zero retCode received, by code

    def as_dict(self) -> dict[str, Any]:
        """All counters by name (ret_codes as {code: count})."""
        out: dict[str, Any] = {k: getattr(self, k) for k in self.__slots__ if k != "ret_codes"}
        out["ret_codes"] = {str(k): v for k, v in sorted(self.ret_codes.items())}
        return out


class TimestampRejected(VenueError):
    """retCode 10002 wrapped: refused before processing; the caller re-syncs and retries once."""

    def __init__(self, error: VenueError) -> None:
        super().__init__(error.venue, error.message, error.code)
        self.error = error


class BybitRest:
    """Signed REST requests to Bybit v5 (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        venue: str,
        credentials: Credentials | None = None,
        recv_window_ms: int = 5000,
        request_timeout_s: float = 10.0,
        max_pace_wait_s: float = 2.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.venue = venue
        self.credentials = credentials
        self.recv_window_ms = recv_window_ms
        self.request_timeout_s = request_timeout_s
        self.max_pace_wait_s = max_pace_wait_s
        self.stats = RestStats()
        self.limits: dict[str, EndpointLimit] = {}  # by endpoint path
        self.offset_ms = 0
        self.round_trip_ms = 0
        self.banned_until_ns = 0  # local clock, after an HTTP 403
        self.halted_reason = ""  # set by 10003 / 10004: every request fails fast
        self._session = session
        self._own_session = session is None

    # ------------------------------------------------------------ lifecycle

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (created on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
            self._own_session = True
        return self._session

    async def close(self) -> None:
        """Close the session if this client made it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def time_offset_ms(self) -> int:
        """Server time minus local time, ms (for a metric)."""
        return self.offset_ms

    def server_time_ms(self) -> int:
        """Now in server time (ms), from the measured offset."""
        return self.clock.time_ns() // NS_PER_MS + self.offset_ms

    def venue_now_ns(self) -> int:
        """Now in venue time (ns)."""
        return self.clock.time_ns() + self.offset_ms * NS_PER_MS

    async def sync_time(self) -> int:
        """Measure the offset to the server clock; returns it in ms."""
        send_ns = self.clock.time_ns()
        body = await self._request(ENDPOINTS["time"], None)
        recv_ns = self.clock.time_ns()
        server_ms = parse_server_time(body)
        midpoint_ms = (send_ns + recv_ns) // 2 // NS_PER_MS
        self.offset_ms = int(server_ms) - midpoint_ms
        self.round_trip_ms = (recv_ns - send_ns) // NS_PER_MS
        self.stats.time_syncs += 1
        log.info("bybit_time_synced", venue=self.venue, offset_ms=self.offset_ms, round_trip_ms=self.round_trip_ms)
        return self.offset_ms

    # ------------------------------------------------------------ requests

    async def call(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call endpoint `name`; returns the answer's `result` (retCode 0) or raises a typed error."""
        body = await self.request(ENDPOINTS[name], params)
        result = body.get("result")
        return {} if result is None else result

    async def pages(self, name: str, params: Mapping[str, Any]) -> AsyncIterator[Any]:
        """Every page of a cursor-paged endpoint (`result.nextPageCursor`), as `result` dicts."""
        cursor = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            result = await self.call(name, {**params, "cursor": cursor} if cursor else params)
            yield result
            cursor = str(result.get("nextPageCursor") or "") if isinstance(result, Mapping) else ""
            if not cursor or cursor in seen:
                return
            seen.add(cursor)
        raise RetryableError(self.venue, f"{ENDPOINTS[name]!r}: more than {MAX_PAGES} pages; stopped")

    async def request(self, ep: Endpoint, params: Mapping[str, Any] | None = None) -> Any:
        """One request with the gates, the 10002 re-sync + single retry, and typed errors."""
        try:
            return await self._request(ep, params)
        except TimestampRejected as exc:
            log.warning("bybit_timestamp_rejected", venue=self.venue, endpoint=repr(ep), code=exc.error.code,
                        offset_ms=self.offset_ms, action="re-syncing server time, then retrying once")
            await self.sync_time()
            try:
                return await self._request(ep, params)
            except TimestampRejected as again:
                raise again.error from None

    # ------------------------------------------------------------ gates

    def gate(self, ep: Endpoint) -> float:
        """Admit one request or raise (nothing sent); returns how long to wait first (pacing).

        Shared with the trade WebSocket: Bybit's IP ban and a halted key stop every
        transport. A halted venue (10003/10004) raises AuthError; a 403 ban VenueBanned;
        an endpoint blocked or spent for longer than `max_pace_wait_s` RateLimited.
        """
        if self.halted_reason:
            self.stats.auth_halted_fast += 1
            raise AuthError(self.venue, f"venue halted: {self.halted_reason}; {ep!r} not sent")
        now_ns = self.clock.time_ns()
        if now_ns < self.banned_until_ns:
            self.stats.banned_fast += 1
            raise VenueBanned(self.venue, f"IP rate limit (HTTP 403) for {(self.banned_until_ns - now_ns) / NS_PER_S:.0f}"
                                          f" s more; {ep!r} not sent", self.banned_until_ns)
        lim = self.limits.get(ep.path)
        if lim is None:
            return 0.0
        now_ms = self.server_time_ms()
        wait_ms = 0
        if lim.blocked_until_ms > now_ms:
            wait_ms = lim.blocked_until_ms - now_ms
        elif lim.remaining <= 0 and lim.reset_ms > now_ms:
            wait_ms = lim.reset_ms - now_ms
        elif lim.reset_ms <= now_ms and lim.remaining <= 0:
            lim.remaining = lim.limit  # the window rolled over since the last answer
        wait_s = wait_ms / 1000.0
        if wait_s > self.max_pace_wait_s:
            self.stats.rate_limited_fast += 1
            raise RateLimited(self.venue, f"{ep!r}: request limit spent ({lim.limit} per window) for {wait_s:.2f} s; "
                                          "not sent", wait_s, str(bybit_errors.RATE_LIMIT))
        lim.remaining -= 1
        return wait_s + PACE_MARGIN_S if wait_s > 0 else 0.0

    async def _admit(self, ep: Endpoint) -> None:
        wait_s = self.gate(ep)
        if wait_s > 0:
            self.stats.paced += 1
            log.info("bybit_paced", venue=self.venue, endpoint=repr(ep), wait_s=round(wait_s, 3))
            await self.clock.sleep(wait_s)
            lim = self.limits.get(ep.path)
            if lim is not None and lim.reset_ms <= self.server_time_ms():
                lim.remaining = max(lim.remaining, lim.limit - 1)

    # ------------------------------------------------------------ one request

    def encode(self, ep: Endpoint, params: Mapping[str, Any] | None) -> tuple[str, bytes | None]:
        """(query string, body) exactly as sent and signed: GET params as a query, POST as JSON."""
        if ep.method == "GET":
            return encode_query(params or {}), None
        return "", json_body(params or {}).encode()

    async def _request(self, ep: Endpoint, params: Mapping[str, Any] | None) -> Any:
        await self._admit(ep)
        query, body = self.encode(ep, params)
        headers: dict[str, str] = {}
        if ep.signed:
            if self.credentials is None:
                raise AuthError(self.venue, f"{ep!r} needs API credentials and none are configured")
            payload = query if body is None else body.decode()
            headers.update(signed_headers(self.credentials, self.server_time_ms(), self.recv_window_ms, payload))
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = yarl.URL(f"{self.base_url}{ep.path}?{query}" if query else f"{self.base_url}{ep.path}", encoded=True)
        self.stats.requests += 1
        try:
            status, raw, resp_headers = await wait_with_timeout(
                self.clock, self.request_timeout_s, self._send(ep.method, url, headers, body))
        except TimeoutError:
            self.stats.timeouts += 1
            self.stats.errors += 1
            raise self._sent_error(ep, f"no answer within {self.request_timeout_s} s") from None
        except aiohttp.ClientConnectorError as exc:
            self.stats.errors += 1
            raise RetryableError(self.venue, f"{ep!r}: cannot connect: {exc.os_error!r}") from None
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.errors += 1
            raise self._sent_error(ep, f"connection lost: {type(exc).__name__}: {exc}") from None
        self._note_limits(ep, resp_headers)
        return self._answer(ep, status, raw, resp_headers)

    async def _send(self, method: str, url: yarl.URL, headers: dict[str, str],
                    body: bytes | None) -> tuple[int, bytes, dict[str, str]]:
        async with self.session.request(method, url, headers=headers, data=body) as resp:
            raw = await resp.read()
            return resp.status, raw, {k.lower(): v for k, v in resp.headers.items()}

    def _answer(self, ep: Endpoint, status: int, raw: bytes, headers: Mapping[str, str]) -> Any:
        """The decoded body of a retCode 0 answer, or the typed error (booked: ban, halt, block)."""
        body: Any = None
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if 200 <= status < 300 and isinstance(body, dict) and body.get("retCode") == bybit_errors.OK:
            return body
        self.stats.errors += 1
        ret_code, ret_msg = bybit_errors.parse_error_body(body if isinstance(body, dict) else raw)
        if ret_code is not None:
            self.stats.ret_codes[ret_code] += 1
        err = bybit_errors.classify(ret_code, ret_msg, status, venue=self.venue, order_entry=ep.order_entry,
                                    now_ns=self.venue_now_ns(), headers=headers)
        raise self.note_failure(ep, err)

    def note_failure(self, ep: Endpoint, err: VenueError) -> VenueError:
        """Book a classified failure (403 ban, 10003/10004 halt, 10006 block, log line); returns what to raise.

        Shared with the trade WebSocket. `err` was classified with venue time: a ban's end
        is converted to the local clock here, which every reader of `until_ns` compares with.
        A 10002 comes back wrapped for the caller's single re-sync + retry.
        """
        code = getattr(err, "ret_code", None)
        if isinstance(err, VenueBanned):
            err.until_ns -= self.offset_ms * NS_PER_MS
            self.banned_until_ns = max(self.banned_until_ns, err.until_ns)
            log.error("bybit_ip_banned", venue=self.venue, endpoint=repr(ep), ban_s=IP_BAN_S, error=err.message[:200],
                      action="every request stops for 10 minutes")
            return err
        if isinstance(err, bybit_errors.RecvWindowError):
            return TimestampRejected(err)
        if code in HALTING_CODES:
            self.halted_reason = f"retCode {code} ({err.message}): check the API key and secret"
            log.error("bybit_venue_halted", venue=self.venue, endpoint=repr(ep), code=code, reason=err.message,
                      action="every request refused until a restart with working credentials")
            return err
        if isinstance(err, RateLimited):
            now_ms = self.server_time_ms()
            until_ms = now_ms + int(max(err.retry_after_s, 0.0) * 1000)
            lim = self.limits.setdefault(ep.path, EndpointLimit(1, 0, until_ms))
            lim.blocked_until_ms = max(lim.blocked_until_ms, until_ms)
            lim.remaining = 0
            log.warning("bybit_rate_limited", venue=self.venue, endpoint=repr(ep), code=err.code,
                        retry_after_s=err.retry_after_s, action="endpoint blocked until its window resets")
            return err
        if isinstance(err, UnknownOutcome):
            log.error("bybit_order_outcome_unknown", venue=self.venue, endpoint=repr(ep), code=err.code,
                      detail=err.message[:200], action="query by orderLinkId; never resend")
            return err
        log.info("bybit_request_failed", venue=self.venue, endpoint=repr(ep), code=err.code,
                 error=err.message[:200], kind=getattr(err, "kind", type(err).__name__))
        return err

    def _sent_error(self, ep: Endpoint, detail: str) -> VenueError:
        """The request may have reached the venue: unknown outcome on order entry, retryable on a read."""
        if ep.order_entry:
            log.error("bybit_order_outcome_unknown", venue=self.venue, endpoint=repr(ep), detail=detail,
                      action="query by orderLinkId; never resend")
            return UnknownOutcome(self.venue, f"{ep!r}: {detail}")
        log.warning("bybit_request_failed", venue=self.venue, endpoint=repr(ep), detail=detail, kind="RetryableError")
        return RetryableError(self.venue, f"{ep!r}: {detail}")

    def note_limits(self, path: str, headers: Mapping[str, str]) -> None:
        """Record an endpoint's window from an answer's X-Bapi-Limit* headers (REST or trade WS)."""
        limit = _int_header(headers, "x-bapi-limit")
        remaining = _int_header(headers, "x-bapi-limit-status")
        reset_ms = _int_header(headers, "x-bapi-limit-reset-timestamp")
        if limit is None or remaining is None or reset_ms is None:
            return
        lim = self.limits.get(path)
        if lim is None:
            self.limits[path] = EndpointLimit(limit, remaining, reset_ms)
            return
        lim.limit = limit
        if reset_ms > lim.reset_ms:
            lim.reset_ms, lim.remaining = reset_ms, remaining
        else:
            # Answers of one window may arrive out of order: the smaller count is the newer.
            lim.remaining = min(lim.remaining, remaining)

    def _note_limits(self, ep: Endpoint, headers: Mapping[str, str]) -> None:
        self.note_limits(ep.path, headers)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        for k, v in headers.items():
            if k.lower() == name:
                value = v
                break
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


__all__ = [
    "ENDPOINTS",
    "BybitRest",
    "Endpoint",
    "default_rest_url",
    "default_ws_private_url",
    "default_ws_public_url",
    "default_ws_trade_url",
]
