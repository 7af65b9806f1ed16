"""Bybit v5 errors → `core.errors` types (pure, no I/O).

Classification is by HTTP status and `retCode`, never by message text: Bybit words the
same code differently in different places (10006 is "Too many visits!" and "Too many
visits. Exceeded the API Rate Limit."; 110007 is "Insufficient available balance" live
and "Available balance is insufficient" in the docs table). Every class below is a
`BybitApiError` (carrying `ret_code`, `ret_msg`, `http_status`) and one of the
`core.errors` types, so callers can branch on what to do next:

* `RecvWindowError` (10002, a `RetryableError`): the request timestamp left the
  recv window. Re-sync the clock offset (GET /v5/market/time), then retry once.
* `BybitRateLimited` (10006, 10429, 170005, 170222, HTTP 429): back off for
  `retry_after_s`, taken from `X-Bapi-Limit-Reset-Timestamp` when present.
* `BybitBanned` (HTTP 403: IP rate limit breached): the venue is halted for
  `IP_BAN_S` (10 minutes).
* `BybitAuthError` (10003 key, 10004 sign, 10005 permission, 10007, 10010 IP not bound,
  and account bans 10008/10009/10024/10027): halt the venue; `str(exc)` says why.
* `DuplicateOrderLinkId` (110072, spot 170141): the orderLinkId is already known to
  the venue: the order EXISTS. It is an `UnknownOutcome`: query it, never treat it as a
  new failure and never resend.
* `BybitUnknownOutcome`: a timeout or server error (10000, 10016, 170007, 170146,
  170147, 170035, 170212, HTTP 5xx/408 without a code) on order entry: the order may
  exist; query by orderLinkId (order/realtime, then order/history). On a read the same
  codes are `BybitRetryable`.
* `OrderNotFound` (110001, 170213, 170143) and `OrderNotActive` (110008, 110010, 170139,
  170142, 170190: already filled or cancelled): final refusals of a cancel/amend.
* Any other non-zero retCode → `BybitOrderRejected` (final: the same request would fail again).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from nautilus_hmm.core.errors import (
    AuthError,
    OrderRejected,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
    VenueError,
)
from nautilus_hmm.venues.headers import header as _header

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
IP_BAN_S = 600.0  # HTTP 403 "IP rate limit breached": Bybit lifts it after 10 minutes
DEFAULT_RATE_LIMIT_BACKOFF_S = 1.0  # Bybit's API limits are per-second windows
MAX_RATE_LIMIT_BACKOFF_S = 60.0  # a reset timestamp further out than this is not trusted

OK = 0
SERVER_TIMEOUT = 10000
PARAMETER_ERROR = 10001
RECV_WINDOW = 10002
BAD_KEY = 10003
BAD_SIGN = 10004
PERMISSION_DENIED = 10005
RATE_LIMIT = 10006
AUTH_FAILED = 10007
ACCOUNT_BANNED = 10008
REGION_RESTRICTED = 10009
IP_NOT_BOUND = 10010
DUPLICATE_REQUEST = 10014
SERVER_ERROR = 10016
WS_TRADE_RESTARTING = 10019
COMPLIANCE = 10024
TRANSACTIONS_BANNED = 10027
SYSTEM_FREQUENCY = 10429
ORDER_NOT_FOUND = 110001
INSUFFICIENT_BALANCE = 110007
ORDER_COMPLETED_OR_CANCELLED = 110008
ORDER_CANCELLED = 110010
ORDER_PROCESSING = 110079
DUPLICATE_ORDER_LINK_ID = 110072
SPOT_INTERNAL_ERROR = 170001
SPOT_TOO_MANY_NEW_ORDERS = 170005
SPOT_BACKEND_TIMEOUT = 170007
SPOT_NETWORK_ERROR = 170032
SPOT_SUBMITTED_PROCESSING = 170035
SPOT_ORDER_FILLED = 170139
SPOT_DUPLICATE_CLIENT_ORDER_ID = 170141
SPOT_ORDER_CANCELLED = 170142
SPOT_NOT_ON_BOOK = 170143
SPOT_CREATE_TIMEOUT = 170146
SPOT_CANCEL_TIMEOUT = 170147
SPOT_CANCEL_FINISHED = 170190
SPOT_CANCEL_PROCESSING = 170212
SPOT_ORDER_NOT_FOUND = 170213
SPOT_TOO_MANY_REQUESTS = 170222


class BybitApiError(VenueError):
    """Base of Bybit errors: `ret_code` (None when the body had none), `ret_msg`, `http_status`.

    `kind` is a short label for metrics and log lines (one per class).
    """

    kind: ClassVar[str] = "error"

    def __init__(
        self, ret_code: int | None, ret_msg: str, *, venue: str = "bybit", http_status: int | None = None
    ) -> None:
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.http_status = http_status
        where = f"HTTP {http_status}" if http_status is not None and http_status != 200 else ""
        text = f"{where}: {ret_msg}" if where and ret_msg else (where or ret_msg or "no message")
        VenueError.__init__(self, venue, text, code=str(ret_code) if ret_code is not None else None)


class BybitOrderRejected(BybitApiError, OrderRejected):
    """Final refusal (parameters, balance, filters ...)."""

    kind = "rejected"


class OrderNotFound(BybitOrderRejected):
    """110001 / 170213 / 170143: the venue has no such (open) order."""

    kind = "order_not_found"


class OrderNotActive(BybitOrderRejected):
    """110008 / 110010 / 170139 / 170142 / 170190: the order is already filled or cancelled."""

    kind = "order_not_active"


class BybitRetryable(BybitApiError, RetryableError):
    """Nothing happened at the venue; the request may be retried."""

    kind = "retryable"


class RecvWindowError(BybitRetryable):
    """10002: timestamp outside recv_window. Re-sync the clock, then retry once."""

    kind = "recv_window"


class BybitRateLimited(BybitApiError, RateLimited):
    """10006 / 10429 / 170005 / 170222 / HTTP 429: wait `retry_after_s`."""

    kind = "rate_limited"

    def __init__(
        self, ret_code: int | None, ret_msg: str, retry_after_s: float, *, venue: str = "bybit",
        http_status: int | None = None,
    ) -> None:
        super().__init__(ret_code, ret_msg, venue=venue, http_status=http_status)
        self.retry_after_s = retry_after_s


class BybitBanned(BybitApiError, VenueBanned):
    """HTTP 403 (IP rate limit breached): no requests until `until_ns`."""

    kind = "banned"

    def __init__(
        self, ret_code: int | None, ret_msg: str, until_ns: int, *, venue: str = "bybit",
        http_status: int | None = None,
    ) -> None:
        super().__init__(ret_code, ret_msg, venue=venue, http_status=http_status)
        self.until_ns = until_ns


class BybitAuthError(BybitApiError, AuthError):
    """Bad key, bad signature, missing permission, unbound IP, or a banned/restricted account."""

    kind = "auth"


class BybitUnknownOutcome(BybitApiError, UnknownOutcome):
    """The request may have taken effect: query by orderLinkId, never resend."""

    kind = "unknown_outcome"


class DuplicateOrderLinkId(BybitUnknownOutcome):
    """110072 / 170141: an order with this orderLinkId exists. Query it; it is not a new failure."""

    kind = "duplicate_order_link_id"


_RATE_LIMIT_CODES = frozenset({RATE_LIMIT, SYSTEM_FREQUENCY, SPOT_TOO_MANY_NEW_ORDERS, SPOT_TOO_MANY_REQUESTS})
_AUTH_CODES = frozenset({
    BAD_KEY, BAD_SIGN, PERMISSION_DENIED, AUTH_FAILED, ACCOUNT_BANNED, REGION_RESTRICTED, IP_NOT_BOUND,
    COMPLIANCE, TRANSACTIONS_BANNED,
})
_DUPLICATE_CODES = frozenset({DUPLICATE_ORDER_LINK_ID, SPOT_DUPLICATE_CLIENT_ORDER_ID})
# Server-side timeouts/errors: the request may have been executed.
_UNKNOWN_ON_ORDER_ENTRY = frozenset({
    SERVER_TIMEOUT, SERVER_ERROR, DUPLICATE_REQUEST, SPOT_INTERNAL_ERROR, SPOT_BACKEND_TIMEOUT,
    SPOT_NETWORK_ERROR, SPOT_SUBMITTED_PROCESSING, SPOT_CREATE_TIMEOUT, SPOT_CANCEL_TIMEOUT,
    SPOT_CANCEL_PROCESSING,
})
# Refused before processing: safe to retry.
_RETRYABLE_CODES = frozenset({WS_TRADE_RESTARTING, ORDER_PROCESSING})
_NOT_FOUND_CODES = frozenset({ORDER_NOT_FOUND, SPOT_ORDER_NOT_FOUND, SPOT_NOT_ON_BOOK})
_NOT_ACTIVE_CODES = frozenset({
    ORDER_COMPLETED_OR_CANCELLED, ORDER_CANCELLED, SPOT_ORDER_FILLED, SPOT_ORDER_CANCELLED, SPOT_CANCEL_FINISHED,
})


# ---------------------------------------------------------------- rate-limit headers


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """The X-Bapi-Limit* headers of one answer: the endpoint's limit, what is left, when it resets."""

    limit: int
    remaining: int
    reset_ms: int

    def wait_s(self, now_ms: int) -> float:
        """Seconds until the window resets (0 if past), capped at MAX_RATE_LIMIT_BACKOFF_S."""
        return min(max(0.0, (self.reset_ms - now_ms) / 1000.0), MAX_RATE_LIMIT_BACKOFF_S)


def parse_rate_limit_headers(headers: Mapping[str, str] | None) -> RateLimitStatus | None:
    """`X-Bapi-Limit`, `X-Bapi-Limit-Status` (remaining) and `X-Bapi-Limit-Reset-Timestamp` (ms), or None.

    None when any of the three is absent or not an integer (endpoints without a limit send none).
    """
    raw = [_header(headers, n) for n in ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp")]
    if any(v is None for v in raw):
        return None
    try:
        limit, remaining, reset_ms = (int(str(v).strip()) for v in raw)
    except ValueError:
        return None
    return RateLimitStatus(limit, remaining, reset_ms)


# ---------------------------------------------------------------- bodies


def parse_error_body(body: bytes | str | Mapping[str, Any] | None) -> tuple[int | None, str]:
    """(retCode, retMsg) of a Bybit body (REST or WS `retCode`/`ret_code`); (None, text) when not Bybit JSON."""
    if body is None:
        return None, ""
    data: Any = body
    if isinstance(body, (bytes, bytearray, str)):
        if not body:
            return None, ""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
            return None, text.strip()[:300]
    if not isinstance(data, Mapping):
        return None, str(data)[:300]
    code = data.get("retCode", data.get("ret_code"))
    msg = data.get("retMsg", data.get("ret_msg"))
    msg_text = "" if msg is None else str(msg)
    if isinstance(code, bool) or code is None:
        return None, msg_text or str(dict(data))[:300]
    try:
        return int(code), msg_text
    except (TypeError, ValueError):
        return None, msg_text or str(dict(data))[:300]


def classify(
    ret_code: int | None,
    ret_msg: str,
    http_status: int = 200,
    *,
    venue: str = "bybit",
    order_entry: bool = False,
    now_ns: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> BybitApiError:
    """The typed error of a failed Bybit answer (retCode != 0, or an HTTP error).

    `order_entry` is True for requests that create, amend or cancel orders: an ambiguous
    failure there is an unknown outcome. `now_ns` (injected clock; wall clock if None)
    anchors the 403 ban and the rate-limit reset. Raises ValueError for a success
    (retCode 0 with HTTP 2xx): that is not an error.
    """
    now = time.time_ns() if now_ns is None else now_ns
    kw: dict[str, Any] = {"venue": venue, "http_status": http_status}
    if http_status == 403:
        return BybitBanned(ret_code, ret_msg or "IP rate limit breached (HTTP 403)", now + int(IP_BAN_S * NS_PER_S), **kw)
    if http_status == 429 or ret_code in _RATE_LIMIT_CODES:
        return BybitRateLimited(ret_code, ret_msg, _rate_limit_wait_s(headers, now), **kw)
    if ret_code is not None and ret_code != OK:
        if ret_code == RECV_WINDOW:
            return RecvWindowError(ret_code, ret_msg, **kw)
        if ret_code in _AUTH_CODES:
            return BybitAuthError(ret_code, ret_msg, **kw)
        if ret_code in _DUPLICATE_CODES:
            return DuplicateOrderLinkId(ret_code, ret_msg, **kw)
        if ret_code in _UNKNOWN_ON_ORDER_ENTRY:
            return (BybitUnknownOutcome if order_entry else BybitRetryable)(ret_code, ret_msg, **kw)
        if ret_code in _RETRYABLE_CODES:
            return BybitRetryable(ret_code, ret_msg, **kw)
        if ret_code in _NOT_FOUND_CODES:
            return OrderNotFound(ret_code, ret_msg, **kw)
        if ret_code in _NOT_ACTIVE_CODES:
            return OrderNotActive(ret_code, ret_msg, **kw)
        if http_status < 500 and http_status != 401:
            return BybitOrderRejected(ret_code, ret_msg, **kw)
    if http_status >= 500 or http_status == 408:
        return (BybitUnknownOutcome if order_entry else BybitRetryable)(ret_code, ret_msg, **kw)
    if http_status == 401:
        return BybitAuthError(ret_code, ret_msg, **kw)
    if http_status >= 400:
        return BybitOrderRejected(ret_code, ret_msg, **kw)
    if ret_code is None:
        # A 2xx answer that is not Bybit JSON: the request's fate is not known.
        return (BybitUnknownOutcome if order_entry else BybitRetryable)(None, ret_msg or "no retCode in answer", **kw)
    raise ValueError(f"retCode {ret_code} with HTTP {http_status} is a success, not an error")


def _rate_limit_wait_s(headers: Mapping[str, str] | None, now_ns: int) -> float:
    status = parse_rate_limit_headers(headers)
    if status is not None:
        wait = status.wait_s(now_ns // NS_PER_MS)
        if wait > 0:
            return wait
    return DEFAULT_RATE_LIMIT_BACKOFF_S


def check_response(
    body: bytes | str | Mapping[str, Any] | None,
    http_status: int = 200,
    *,
    venue: str = "bybit",
    order_entry: bool = False,
    now_ns: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The `result` of a successful answer; raises the typed error (see `classify`) otherwise.

    Success = HTTP 2xx, a JSON object with `retCode` 0. A `result` that is absent or null
    is returned as `{}`.
    """
    data: Any = body
    if isinstance(body, (bytes, bytearray, str)):
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
    code, msg = parse_error_body(body if data is None else data)
    if 200 <= http_status < 300 and code == OK and isinstance(data, Mapping):
        result = data.get("result")
        return {} if result is None else result
    raise classify(code, msg, http_status, venue=venue, order_entry=order_entry, now_ns=now_ns, headers=headers)
