"""Binance request signing (pure).

Rules, as documented by Binance and pinned by the test vectors:

* REST (HMAC-SHA256): the signed payload is the percent-encoded query string
  concatenated with the request body with NO separator; the signature is lowercase hex
  and goes last, as `&signature=<hex>`. The exact string that was signed must be the one
  sent: callers pass the query to their HTTP client as already encoded (for aiohttp,
  `yarl.URL(url, encoded=True)`), or it gets re-encoded and the signature fails (-1022).
* WebSocket API: every parameter except `signature`, `apiKey` included, sorted by name,
  joined as `k=v&...` with raw UTF-8 values (no percent-encoding).
* Ed25519 keys (optional, needs the `cryptography` package): the same payloads, signed
  with the private key; the signature is base64, which must be percent-encoded in REST
  query strings (this module does it).

`Credentials` never shows its secret in repr/str, and nothing here logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import quote

# The shared class (venues/credentials.py), re-exported under this module's name.
from nautilus_hmm.venues.credentials import Credentials as Credentials

DEFAULT_RECV_WINDOW_MS = 5000
API_KEY_HEADER = "X-MBX-APIKEY"

Params = Mapping[str, Any] | Iterable[tuple[str, Any]]


# ---------------------------------------------------------------- encoding


def format_value(value: Any) -> str:
    """A parameter value as Binance expects it: Decimal without exponent, lowercase booleans."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return format_value(value.value)
    if isinstance(value, float):
        # repr gives the shortest round-trip text; Decimal keeps it free of exponents.
        return format(Decimal(repr(value)), "f")
    return str(value)


def _items(params: Params) -> list[tuple[str, str]]:
    pairs = params.items() if isinstance(params, Mapping) else params
    return [(k, format_value(v)) for k, v in pairs if v is not None]


# RFC 3986 unreserved characters: text made only of these is its own percent-encoding.
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*").fullmatch


def _pct(text: str) -> str:
    """`quote(text, safe="")`, skipping the call for the usual symbol / side / number / id text."""
    return text if _UNRESERVED(text) else quote(text, safe="")


def encode_query(params: Params) -> str:
    """Percent-encode parameters in the given order (UTF-8, RFC 3986; `None` values dropped)."""
    return "&".join(f"{_pct(k)}={_pct(v)}" for k, v in _items(params))


def sign_request(creds: Credentials, query: str, body: str = "") -> str:
    """REST signature: over the encoded query string followed directly by the body."""
    return creds.sign(query + body)


def signed_query(
    creds: Credentials,
    params: Params,
    *,
    timestamp_ms: int,
    recv_window_ms: int | None = DEFAULT_RECV_WINDOW_MS,
) -> str:
    """Encoded query with recvWindow and timestamp appended, then `&signature=`."""
    items = _items(params)
    if recv_window_ms is not None:
        items.append(("recvWindow", str(int(recv_window_ms))))
    items.append(("timestamp", str(int(timestamp_ms))))
    query = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in items)
    return f"{query}&signature={_pct(creds.sign(query))}"


def ws_api_payload(params: Mapping[str, Any]) -> str:
    """WebSocket API string to sign: params except `signature`, sorted by name, raw values."""
    return "&".join(
        f"{k}={format_value(params[k])}" for k in sorted(params) if k != "signature" and params[k] is not None
    )


def signed_ws_api_params(
    creds: Credentials,
    params: Mapping[str, Any],
    *,
    timestamp_ms: int,
    recv_window_ms: int | None = DEFAULT_RECV_WINDOW_MS,
) -> dict[str, str]:
    """WebSocket API `params` with apiKey, recvWindow, timestamp and signature added."""
    out = {k: format_value(v) for k, v in params.items() if v is not None}
    out["apiKey"] = creds.api_key
    if recv_window_ms is not None:
        out["recvWindow"] = str(int(recv_window_ms))
    out["timestamp"] = str(int(timestamp_ms))
    out["signature"] = creds.sign(ws_api_payload(out))
    return out


def ws_api_request(
    creds: Credentials,
    request_id: int | str,
    method: str,
    params: Mapping[str, Any],
    *,
    timestamp_ms: int,
    recv_window_ms: int | None = DEFAULT_RECV_WINDOW_MS,
) -> dict[str, Any]:
    """A signed WebSocket API request `{"id", "method", "params"}` (a JSON object to send as is).

    Integers stay JSON numbers (`timestamp`, `recvWindow`, as in Binance's examples);
    other values are sent as the text that was signed (`format_value`), so the venue
    verifies exactly the string signed here.
    """
    out: dict[str, Any] = {
        k: (v if type(v) is int else format_value(v)) for k, v in params.items() if v is not None
    }
    out["apiKey"] = creds.api_key
    if recv_window_ms is not None:
        out["recvWindow"] = int(recv_window_ms)
    out["timestamp"] = int(timestamp_ms)
    out["signature"] = creds.sign(ws_api_payload(out))
    return {"id": request_id, "method": method, "params": out}


def api_key_headers(creds: Credentials) -> dict[str, str]:
    """Headers carrying the API key (REST signed and user-stream endpoints)."""
    return {API_KEY_HEADER: creds.api_key}


# ---------------------------------------------------------------- server time


class ServerTimeOffset:
    """Offset between Binance server time and the local clock, for request timestamps.

    Fed with GET /time round trips; the server time is assumed to be taken at the
    midpoint of the round trip. A -1021 (timestamp outside recvWindow) means this went
    stale: re-sync, then retry the request.
    """

    __slots__ = ("offset_ms", "round_trip_ms", "synced")

    def __init__(self) -> None:
        self.offset_ms = 0
        self.round_trip_ms = 0
        self.synced = False

    def update(self, local_send_ns: int, local_recv_ns: int, server_time_ms: int) -> int:
        """Record one round trip; returns the new offset in ms (server minus local)."""
        if local_recv_ns < local_send_ns:
            raise ValueError(f"receive time {local_recv_ns} is before send time {local_send_ns}")
        midpoint_ms = (local_send_ns + local_recv_ns) // 2 // 1_000_000
        self.offset_ms = int(server_time_ms) - midpoint_ms
        self.round_trip_ms = (local_recv_ns - local_send_ns) // 1_000_000
        self.synced = True
        return self.offset_ms

    def timestamp_ms(self, local_now_ns: int) -> int:
        """Request timestamp in server time for the local instant `local_now_ns`."""
        return local_now_ns // 1_000_000 + self.offset_ms
