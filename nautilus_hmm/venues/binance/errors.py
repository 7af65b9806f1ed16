"""Binance errors → `core.errors` types (pure).

Classification is by HTTP status and Binance `code`, never by message text: Binance
rewords messages (-1003 said "Please use the websocket for live updates", now "Please
use WebSocket Streams"), codes stay. The one exception is data, not prose: a 418 ban
carries its end time as "banned until <ms>", which is read when present.

Rules, in order:

1. HTTP 418 → `VenueBanned` until the time in the message, else now + Retry-After.
2. HTTP 429 → `RateLimited` for Retry-After seconds.
3. A known code → its class (tables below). -1021 is `TimestampError`: re-sync the
   server time offset, then retry.
4. HTTP 5xx / 408 without a known code: on order entry (new order, cancel) the order
   may exist → `UnknownOutcome` (query by client id, never resend); on a read →
   `RetryableError`. Binance: "It is important to NOT treat this as a failure
   operation; the execution status is UNKNOWN and could have been a success."
5. HTTP 401 → `AuthError`; 403 (WAF block, request not processed) → `RetryableError`.
6. Any other 4xx (or an error body on 200, e.g. the WS API) → `OrderRejected`: the
   request is wrong and retrying it as is would fail again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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
DEFAULT_RATE_LIMIT_BACKOFF_S = 60.0  # 429 without Retry-After: wait a full minute window
DEFAULT_ORDER_RATE_BACKOFF_S = 10.0  # -1015 order-count limits run on 10 s windows
DEFAULT_BAN_S = 120.0  # 418 without an end time: Binance's shortest ban is 2 minutes


class TimestampError(RetryableError):
    """-1021 (or USD-M -5028): request timestamp outside recvWindow. Re-sync time, then retry."""


# Outcome unknown on order entry ("execution status unknown"); plain retry on reads.
_UNKNOWN_ON_ORDER_ENTRY = frozenset({
    -1000,  # UNKNOWN: an unknown error occurred while processing the request
    -1001,  # DISCONNECTED: internal error
    -1006,  # UNEXPECTED_RESP: "Execution status unknown"
    -1007,  # TIMEOUT: "Send status unknown; execution status unknown"
})
# Refused before any processing: safe to retry (after a pause).
_RETRYABLE = frozenset({
    -1008,  # SERVER_BUSY / USD-M: request throttled by system-level protection
    -1016,  # SERVICE_SHUTTING_DOWN (this server; a reconnect reaches another)
})
_RATE_LIMITED = {
    -1003: DEFAULT_RATE_LIMIT_BACKOFF_S,  # TOO_MANY_REQUESTS (request weight)
    -1015: DEFAULT_ORDER_RATE_BACKOFF_S,  # TOO_MANY_ORDERS
    -1034: DEFAULT_RATE_LIMIT_BACKOFF_S,  # TOO_MANY_CONNECTIONS
}
_TIMESTAMP = frozenset({-1021, -5028})  # spot/USD-M recvWindow; USD-M matching-engine recvWindow
_AUTH = frozenset({
    -1002,  # UNAUTHORIZED
    -1022,  # INVALID_SIGNATURE
    -2014,  # BAD_API_KEY_FMT
    -2015,  # REJECTED_MBX_KEY: invalid API key, IP, or permissions
})
# Known final refusals (documentation; any other code on a 4xx is final too).
FINAL_CODES = frozenset({
    -1010, -1013, -1014, -1020, -1100, -1101, -1102, -1103, -1104, -1105, -1106, -1108,
    -1111, -1112, -1114, -1115, -1116, -1117, -1118, -1119, -1120, -1121, -1122, -1125,
    -1127, -1128, -1130, -2010, -2011, -2013, -2016, -2026, -2038, -2039,
    # USD-M: margin/balance/position/reduce-only/post-only refusals
    -2018, -2019, -2020, -2021, -2022, -2023, -2024, -2025, -2027, -2028, -5021, -5022,
})

_BANNED_UNTIL_RE = re.compile(r"banned until (\d{10,16})")


def parse_error_body(body: bytes | str | Mapping[str, Any] | None) -> tuple[int | None, str]:
    """(code, msg) of a Binance error body; (None, text) when it is not Binance JSON."""
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
    if isinstance(data, Mapping):
        inner = data.get("error")  # WS API / stream errors nest {"error": {"code", "msg"}}
        if isinstance(inner, Mapping):
            data = inner
        code = data.get("code")
        msg = data.get("msg")
        msg_text = "" if msg is None else str(msg)
        try:
            return (int(code) if code is not None and not isinstance(code, bool) else None), msg_text
        except (TypeError, ValueError):
            return None, msg_text or str(data)[:300]
    return None, str(data)[:300]


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (Binance sends seconds), or None."""
    raw = _header(headers, "Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def classify(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    *,
    venue: str,
    order_entry: bool,
    now_ns: int,
    headers: Mapping[str, str] | None = None,
) -> VenueError:
    """The typed error for a failed Binance response (HTTP status, body, headers).

    `order_entry` is True for requests that create or cancel orders: an ambiguous failure
    there is an `UnknownOutcome`. `now_ns` (injected clock) anchors ban end times.
    """
    code, msg = parse_error_body(body)
    code_text = str(code) if code is not None else None
    detail = f"HTTP {status}: {msg}" if msg else f"HTTP {status}"
    wait_s = retry_after_s(headers)

    if status == 418 or (code == -1003 and _BANNED_UNTIL_RE.search(msg)):
        return VenueBanned(venue, detail, _ban_until_ns(msg, wait_s, now_ns), code=code_text)
    if status == 429:
        default_s = _RATE_LIMITED.get(code, DEFAULT_RATE_LIMIT_BACKOFF_S) if code is not None else DEFAULT_RATE_LIMIT_BACKOFF_S
        return RateLimited(venue, detail, wait_s if wait_s is not None else default_s, code=code_text)
    if code is not None and code_text is not None:
        known = _by_code(code, venue, detail, code_text, order_entry, wait_s)
        if known is not None:
            return known
    if status >= 500 or status == 408:
        cls = UnknownOutcome if order_entry else RetryableError
        return cls(venue, detail, code=code_text)
    if status == 401:
        return AuthError(venue, detail, code=code_text)
    if status == 403:
        return RetryableError(venue, detail, code=code_text)
    return OrderRejected(venue, detail, code=code_text)


def _by_code(
    code: int, venue: str, detail: str, code_text: str, order_entry: bool, wait_s: float | None
) -> VenueError | None:
    if code in _AUTH:
        return AuthError(venue, detail, code=code_text)
    if code in _TIMESTAMP:
        return TimestampError(venue, detail, code=code_text)
    if code in _RATE_LIMITED:
        return RateLimited(venue, detail, wait_s if wait_s is not None else _RATE_LIMITED[code], code=code_text)
    if code in _UNKNOWN_ON_ORDER_ENTRY:
        return (UnknownOutcome if order_entry else RetryableError)(venue, detail, code=code_text)
    if code in _RETRYABLE:
        return RetryableError(venue, detail, code=code_text)
    if code in FINAL_CODES:
        return OrderRejected(venue, detail, code=code_text)
    return None


def _ban_until_ns(msg: str, wait_s: float | None, now_ns: int) -> int:
    m = _BANNED_UNTIL_RE.search(msg)
    if m:
        raw = int(m.group(1))
        # Binance sends epoch milliseconds; accept seconds/microseconds defensively by magnitude.
        if raw < 10**11:
            return raw * NS_PER_S
        if raw < 10**14:
            return raw * 1_000_000
        return raw * 1_000
    return now_ns + int((wait_s if wait_s is not None else DEFAULT_BAN_S) * NS_PER_S)


def classify_ws_api_error(
    frame: Mapping[str, Any], *, venue: str, order_entry: bool, now_ns: int
) -> VenueError:
    """The typed error of a failed WebSocket API response `{"id","status","error":{...}}`."""
    status = frame.get("status")
    try:
        status_code = int(status) if status is not None else 400
    except (TypeError, ValueError):
        status_code = 400
    headers: dict[str, str] = {}
    # WS API puts the end of a limit/ban in error.data.retryAfter (epoch ms).
    error = frame.get("error")
    data = error.get("data") if isinstance(error, Mapping) else None
    retry_after = data.get("retryAfter") if isinstance(data, Mapping) else None
    if isinstance(retry_after, int) and not isinstance(retry_after, bool) and retry_after > 0:
        headers["Retry-After"] = str(max(0.0, (retry_after * 1_000_000 - now_ns) / NS_PER_S))
    return classify(status_code, frame, venue=venue, order_entry=order_entry, now_ns=now_ns, headers=headers)
