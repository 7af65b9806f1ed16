"""Binance REST client (spot `/api/v3`, USD-M `/fapi`): signing, time sync, weights, typed errors.

Rules:

* **Signing** exactly as documented (`auth.signed_query`): parameters in the order given,
  then `recvWindow`, `timestamp` (server time from the measured offset) and
  `signature`. The signed string is sent as is (`yarl.URL(..., encoded=True)`).
* **Time.** `sync_time()` at start measures the offset to the server clock (exposed as
  `time_offset_ms` for a metric). A -1021 answer (timestamp outside recvWindow) re-syncs
  and retries the request once: -1021 is refused before processing, so even an order
  retried this way cannot be duplicated.
* **Weights.** Every answer's `X-MBX-USED-WEIGHT-1M` (spot) / `-1m` (USD-M) header sets
  `used_weight_1m`; between answers the local estimate adds each request's weight. A
  read that would take the estimate past 80 % of the minute budget (an order or cancel:
  past 100 %) fails fast with `RateLimited` until the server minute rolls over, so the
  budget left is kept for order entry.
* **429** blocks every request for Retry-After seconds: they fail fast with `RateLimited`
  (nothing is sent: sending during a 429 gets the IP banned). **418** bans until the end
  time in the answer (venue time, converted to the local clock with the measured offset):
  every request fails fast with `VenueBanned` until then.
* **Errors** are classified by `errors.classify` (`order_entry=True` on order endpoints).
  A timeout (`request_timeout_s` on the injected clock) or a connection lost after the
  request may have left is `UnknownOutcome` on an order endpoint — query by client order
  id, never resend — and `RetryableError` on a read. A connection that could not be
  opened is `RetryableError` everywhere (nothing was sent).
* Keys never appear in logs; the listenKey and signature stay out of log lines too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from enum import Enum
from typing import Any

import aiohttp
import orjson
import structlog
import yarl

from nautilus_hmm.core.clock import Clock, run_with_timeout
from nautilus_hmm.core.errors import (
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
    VenueError,
)
from nautilus_hmm.venues.binance.auth import (
    API_KEY_HEADER,
    Credentials,
    ServerTimeOffset,
    encode_query,
    signed_query,
)
from nautilus_hmm.venues.binance.errors import TimestampError, classify
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import parse_server_time

log = structlog.get_logger("venues.binance.rest")

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
READ_BUDGET_FRACTION = 0.8

PRODUCTION_REST = {Market.SPOT: "https://api.binance.com", Market.USDM: "https://fapi.binance.com"}
TESTNET_REST = {Market.SPOT: "https://testnet.binance.vision", Market.USDM: "https://testnet.binancefuture.com"}
PRODUCTION_WS = {Market.SPOT: "wss://stream.binance.com:9443", Market.USDM: "wss://fstream.binance.com"}
TESTNET_WS = {Market.SPOT: "wss://stream.testnet.binance.vision", Market.USDM: "wss://stream.binancefuture.com"}
DEFAULT_WEIGHT_LIMIT_1M = {Market.SPOT: 6000, Market.USDM: 2400}


# Added to a 418 ban's end and a 429's Retry-After: never knock on the door early.
BAN_MARGIN_NS = 1_000_000_000
RATE_LIMIT_MARGIN_S = 0.25

class Security(Enum):
    """What a request needs: nothing, the API key header, or a signature."""

    NONE = "none"
    API_KEY = "api_key"
    SIGNED = "signed"


class Endpoint:
    """One REST endpoint: method, path, request weight, whether it enters or cancels orders."""

    __slots__ = ("method", "order_entry", "path", "security", "weight")

    def __init__(self, method: str, path: str, weight: int, security: Security = Security.NONE,
                 order_entry: bool = False) -> None:
        self.method = method
        self.path = path
        self.weight = weight
        self.security = security
        self.order_entry = order_entry

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


_S, _K = Security.SIGNED, Security.API_KEY

SPOT_ENDPOINTS: dict[str, Endpoint] = {
    "time": Endpoint("GET", "/api/v3/time", 1),
    "exchange_info": Endpoint("GET", "/api/v3/exchangeInfo", 20),
    "depth": Endpoint("GET", "/api/v3/depth", 50),  # limit 501-1000
    "klines": Endpoint("GET", "/api/v3/klines", 2),
    "new_order": Endpoint("POST", "/api/v3/order", 1, _S, order_entry=True),
    "cancel_order": Endpoint("DELETE", "/api/v3/order", 1, _S, order_entry=True),
    "cancel_all": Endpoint("DELETE", "/api/v3/openOrders", 1, _S, order_entry=True),
    "query_order": Endpoint("GET", "/api/v3/order", 4, _S),
    "open_orders": Endpoint("GET", "/api/v3/openOrders", 6, _S),  # 80 without a symbol
    "account": Endpoint("GET", "/api/v3/account", 20, _S),
    "trades": Endpoint("GET", "/api/v3/myTrades", 20, _S),
    "listen_key_new": Endpoint("POST", "/api/v3/userDataStream", 2, _K),
    "listen_key_keepalive": Endpoint("PUT", "/api/v3/userDataStream", 2, _K),
    "listen_key_close": Endpoint("DELETE", "/api/v3/userDataStream", 2, _K),
}
USDM_ENDPOINTS: dict[str, Endpoint] = {
    "time": Endpoint("GET", "/fapi/v1/time", 1),
    "exchange_info": Endpoint("GET", "/fapi/v1/exchangeInfo", 1),
    "depth": Endpoint("GET", "/fapi/v1/depth", 20),  # limit 1000
    "klines": Endpoint("GET", "/fapi/v1/klines", 5),  # by limit: klines_weight_usdm
    "new_order": Endpoint("POST", "/fapi/v1/order", 1, _S, order_entry=True),
    "cancel_order": Endpoint("DELETE", "/fapi/v1/order", 1, _S, order_entry=True),
    "cancel_all": Endpoint("DELETE", "/fapi/v1/allOpenOrders", 1, _S, order_entry=True),
    "query_order": Endpoint("GET", "/fapi/v1/order", 1, _S),
    "open_orders": Endpoint("GET", "/fapi/v1/openOrders", 1, _S),  # 40 without a symbol
    "account": Endpoint("GET", "/fapi/v3/account", 5, _S),
    "positions": Endpoint("GET", "/fapi/v3/positionRisk", 5, _S),
    "trades": Endpoint("GET", "/fapi/v1/userTrades", 5, _S),
    "listen_key_new": Endpoint("POST", "/fapi/v1/listenKey", 1, _K),
    "listen_key_keepalive": Endpoint("PUT", "/fapi/v1/listenKey", 1, _K),
    "listen_key_close": Endpoint("DELETE", "/fapi/v1/listenKey", 1, _K),
    "leverage": Endpoint("POST", "/fapi/v1/leverage", 1, _S),
    "margin_type": Endpoint("POST", "/fapi/v1/marginType", 1, _S),
    "position_mode": Endpoint("GET", "/fapi/v1/positionSide/dual", 30, _S),
    "set_position_mode": Endpoint("POST", "/fapi/v1/positionSide/dual", 1, _S),
    "commission_rate": Endpoint("GET", "/fapi/v1/commissionRate", 20, _S),
}


def klines_weight_usdm(limit: int) -> int:
    """USD-M GET klines weight: 1 below 100 rows, 2 below 500, 5 up to 1000, 10 above."""
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def endpoints(market: Market) -> dict[str, Endpoint]:
    """The endpoint table of a market."""
    return SPOT_ENDPOINTS if market is Market.SPOT else USDM_ENDPOINTS


def default_rest_url(market: Market, testnet: bool) -> str:
    """Binance's REST base URL for a market (testnet or production)."""
    return (TESTNET_REST if testnet else PRODUCTION_REST)[market]


def default_ws_url(market: Market, testnet: bool) -> str:
    """Binance's stream base URL for a market (testnet or production)."""
    return (TESTNET_WS if testnet else PRODUCTION_WS)[market]


class RestStats:
    """Counters of one REST client."""

    __slots__ = ("banned_fast", "errors", "rate_limited_fast", "requests", "time_syncs", "timeouts")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.timeouts = 0
        self.rate_limited_fast = 0
        self.banned_fast = 0
        self.time_syncs = 0

    def as_dict(self) -> dict[str, int]:
        """All counters by name."""
        return {k: getattr(self, k) for k in self.__slots__}


class BinanceRest:
    """Signed REST requests to one Binance market (see the module docstring)."""

    def __init__(
        self,
        market: Market,
        base_url: str,
        clock: Clock,
        *,
        venue: str,
        credentials: Credentials | None = None,
        recv_window_ms: int = 5000,
        request_timeout_s: float = 10.0,
        weight_limit_1m: int | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.market = market
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.venue = venue
        self.credentials = credentials
        self.recv_window_ms = recv_window_ms
        self.request_timeout_s = request_timeout_s
        self.weight_limit_1m = weight_limit_1m or DEFAULT_WEIGHT_LIMIT_1M[market]
        self.endpoints = endpoints(market)
        self.offset = ServerTimeOffset()
        self.stats = RestStats()
        self.used_weight_1m = 0
        self.used_weight: dict[str, int] = {}
        self.blocked_until_s = 0.0  # monotonic, after a 429
        self.banned_until_ns = 0  # wall clock, after a 418
        self._weight_window = -1
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
        return self.offset.offset_ms

    def server_time_ms(self) -> int:
        """Now in server time (ms), from the measured offset."""
        return self.offset.timestamp_ms(self.clock.time_ns())

    async def sync_time(self) -> int:
        """Measure the offset to the server clock; returns it in ms."""
        ep = self.endpoints["time"]
        send_ns = self.clock.time_ns()
        body = await self._request(ep, None)
        recv_ns = self.clock.time_ns()
        offset = self.offset.update(send_ns, recv_ns, parse_server_time(body))
        self.stats.time_syncs += 1
        log.info("binance_time_synced", venue=self.venue, offset_ms=offset, round_trip_ms=self.offset.round_trip_ms)
        return offset

    # ------------------------------------------------------------ requests

    async def call(self, name: str, params: Mapping[str, Any] | None = None, *, weight: int | None = None) -> Any:
        """Call endpoint `name` of this market's table; returns the decoded JSON body."""
        return await self.request(self.endpoints[name], params, weight=weight)

    async def request(self, ep: Endpoint, params: Mapping[str, Any] | None = None, *,
                      weight: int | None = None) -> Any:
        """One request with the gates, the -1021 re-sync + single retry, and typed errors."""
        try:
            return await self._request(ep, params, weight)
        except TimestampError as exc:
            log.warning("binance_timestamp_rejected", venue=self.venue, endpoint=repr(ep), code=exc.code,
                        action="re-syncing server time, then retrying once")
            await self.sync_time()
            return await self._request(ep, params, weight)

    def weight_used_this_minute(self) -> int:
        """Request weight used in the current server minute (0 when no request was admitted in it yet)."""
        window = self.offset.timestamp_ms(self.clock.time_ns()) // 60_000
        return self.used_weight_1m if window == self._weight_window else 0

    def gate(self, ep: Endpoint, weight: int) -> None:
        """Admit one request of `weight` or raise (nothing is sent): 418 ban, 429 block, weight budget.

        The IP's weight, its 429 block and its ban are shared by every transport (REST and
        the WebSocket API count against the same budget), so every request passes here.
        """
        clock = self.clock
        now_ns = clock.time_ns()
        if now_ns < self.banned_until_ns:
            self.stats.banned_fast += 1
            raise VenueBanned(self.venue, f"banned (HTTP 418) until {self.banned_until_ns // NS_PER_MS} ms; "
                                          f"{ep!r} not sent", self.banned_until_ns)
        now_s = clock.monotonic()
        if now_s < self.blocked_until_s:
            self.stats.rate_limited_fast += 1
            raise RateLimited(self.venue, f"rate limited (HTTP 429); {ep!r} not sent",
                              self.blocked_until_s - now_s)
        server_ms = self.offset.timestamp_ms(now_ns)
        window = server_ms // 60_000
        if window != self._weight_window:
            self._weight_window = window
            self.used_weight_1m = 0
        budget = self.weight_limit_1m if ep.order_entry else int(self.weight_limit_1m * READ_BUDGET_FRACTION)
        if self.used_weight_1m + weight > budget:
            self.stats.rate_limited_fast += 1
            wait_s = (60_000 - server_ms % 60_000) / 1000.0
            raise RateLimited(self.venue, f"local weight budget: {self.used_weight_1m} + {weight} > {budget} "
                                          f"this minute; {ep!r} not sent", wait_s)
        self.used_weight_1m += weight

    async def _request(self, ep: Endpoint, params: Mapping[str, Any] | None, weight: int | None = None) -> Any:
        self.gate(ep, ep.weight if weight is None else weight)
        headers: dict[str, str] = {}
        if ep.security is not Security.NONE:
            if self.credentials is None:
                raise VenueError(self.venue, f"{ep!r} needs API credentials and none are configured")
            headers[API_KEY_HEADER] = self.credentials.api_key
        if ep.security is Security.SIGNED:
            assert self.credentials is not None
            query = signed_query(self.credentials, params or {}, timestamp_ms=self.server_time_ms(),
                                 recv_window_ms=self.recv_window_ms)
        else:
            query = encode_query(params or {})
        url = yarl.URL(f"{self.base_url}{ep.path}?{query}" if query else f"{self.base_url}{ep.path}", encoded=True)
        self.stats.requests += 1
        try:
            # In this task (no task hop before the request starts): a timeout is still an
            # unknown outcome (sent=True below), resolved by query, never a resend.
            status, body, resp_headers = await run_with_timeout(
                self.clock, self.request_timeout_s, self._send(ep.method, url, headers))
        except TimeoutError:
            self.stats.timeouts += 1
            self.stats.errors += 1
            raise self._transport_error(ep, f"no answer within {self.request_timeout_s} s", sent=True) from None
        except aiohttp.ClientConnectorError as exc:
            # The connection was never opened: nothing reached the venue.
            self.stats.errors += 1
            raise RetryableError(self.venue, f"{ep!r}: cannot connect: {exc.os_error!r}") from None
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.errors += 1
            raise self._transport_error(ep, f"connection lost: {type(exc).__name__}: {exc}", sent=True) from None
        self._note_weights(resp_headers)
        if status < 300:
            try:
                return orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                self.stats.errors += 1
                raise self._transport_error(ep, f"HTTP {status} with a body that is not JSON: {body[:120]!r}",
                                            sent=True) from None
        self.stats.errors += 1
        err = classify(status, body, venue=self.venue, order_entry=ep.order_entry,
                       now_ns=self.venue_now_ns(), headers=resp_headers)
        raise self.note_failure(ep, status, err)

    def venue_now_ns(self) -> int:
        """Now in venue time (ns): the local clock plus the measured offset."""
        return self.clock.time_ns() + self.offset.offset_ms * NS_PER_MS

    def note_failure(self, ep: Endpoint, status: int, err: VenueError) -> VenueError:
        """Book a classified failure (418 ban, 429 block, log line); returns `err` to raise.

        `err` was classified with `now_ns=venue_now_ns()`. A ban end ("banned until <ms>")
        is venue time, and so is a Retry-After anchored on the venue's now; every reader of
        `until_ns` (the gate, start(), the engine) compares it with the local clock:
        converted here, a local clock ahead of the venue would otherwise send requests
        while the ban still runs.
        """
        offset_ns = self.offset.offset_ms * NS_PER_MS
        if isinstance(err, VenueBanned):
            # Plus a margin: the offset is only known to about half a round trip, and a
            # request a few ms early would extend the ban.
            err.until_ns += BAN_MARGIN_NS - offset_ns
            self.banned_until_ns = max(self.banned_until_ns, err.until_ns)
            log.error("binance_banned", venue=self.venue, endpoint=repr(ep),
                      until_ms=(err.until_ns + offset_ns) // NS_PER_MS, local_until_ms=err.until_ns // NS_PER_MS,
                      code=err.code)
        elif isinstance(err, RateLimited) and status == 429:
            self.blocked_until_s = max(self.blocked_until_s,
                                       self.clock.monotonic() + err.retry_after_s + RATE_LIMIT_MARGIN_S)
            log.warning("binance_rate_limited", venue=self.venue, endpoint=repr(ep), retry_after_s=err.retry_after_s,
                        code=err.code)
        elif not isinstance(err, TimestampError):
            log.info("binance_request_failed", venue=self.venue, endpoint=repr(ep), status=status, code=err.code,
                     error=err.message[:200], kind=type(err).__name__)
        return err

    async def _send(self, method: str, url: yarl.URL, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        async with self.session.request(method, url, headers=headers) as resp:
            body = await resp.read()
            return resp.status, body, dict(resp.headers)

    def _transport_error(self, ep: Endpoint, detail: str, *, sent: bool) -> VenueError:
        if ep.order_entry and sent:
            log.error("binance_order_outcome_unknown", venue=self.venue, endpoint=repr(ep), detail=detail,
                      action="query by client order id; never resend")
            return UnknownOutcome(self.venue, f"{ep!r}: {detail}")
        log.warning("binance_request_failed", venue=self.venue, endpoint=repr(ep), detail=detail, kind="RetryableError")
        return RetryableError(self.venue, f"{ep!r}: {detail}")

    def note_used_weight_1m(self, used: int) -> None:
        """The venue's count of this IP's weight in the current minute (from any transport)."""
        self.used_weight["1m"] = used
        self.used_weight_1m = used

    def _note_weights(self, headers: Mapping[str, str]) -> None:
        for k, v in headers.items():
            lk = k.lower()
            if lk.startswith("x-mbx-used-weight-"):
                with contextlib.suppress(ValueError):
                    interval = lk.removeprefix("x-mbx-used-weight-")
                    self.used_weight[interval] = int(v)
                    if interval == "1m":
                        self.used_weight_1m = int(v)
