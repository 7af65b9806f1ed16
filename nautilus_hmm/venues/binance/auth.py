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

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import quote

DEFAULT_RECV_WINDOW_MS = 5000
API_KEY_HEADER = "X-MBX-APIKEY"

Params = Mapping[str, Any] | Iterable[tuple[str, Any]]


class Credentials:
    """A Binance API key with its HMAC secret or Ed25519 private key; the secret stays hidden."""

    __slots__ = ("_api_key", "_ed25519_key", "_hmac", "_kind")

    def __init__(self, api_key: str, secret: str) -> None:
        _check_key_text("api_key", api_key)
        _check_key_text("secret", secret)
        self._api_key = api_key
        self._kind = "hmac"
        self._hmac: hmac.HMAC | None = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
        self._ed25519_key: Any = None

    @classmethod
    def ed25519(cls, api_key: str, private_key_pem: bytes | str, password: bytes | None = None) -> Credentials:
        """Credentials signing with an Ed25519 private key (PEM). Needs `cryptography`."""
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.serialization import load_pem_private_key
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("Ed25519 signing needs the 'cryptography' package") from exc
        _check_key_text("api_key", api_key)
        pem = private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else private_key_pem
        try:
            key = load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as exc:
            # The library's message does not contain key material; keep it for the operator.
            raise ValueError(f"Ed25519 private key could not be loaded: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"expected an Ed25519 private key, got {type(key).__name__}")
        self = cls.__new__(cls)
        self._api_key = api_key
        self._kind = "ed25519"
        self._hmac = None
        self._ed25519_key = key
        return self

    @property
    def api_key(self) -> str:
        """The API key (sent in the X-MBX-APIKEY header; not secret, but not logged in full)."""
        return self._api_key

    @property
    def kind(self) -> str:
        """'hmac' or 'ed25519'."""
        return self._kind

    def sign(self, payload: str) -> str:
        """Signature of `payload` (UTF-8): lowercase hex for HMAC, base64 for Ed25519."""
        data = payload.encode("utf-8")
        if self._hmac is not None:
            mac = self._hmac.copy()
            mac.update(data)
            return mac.hexdigest()
        return base64.b64encode(self._ed25519_key.sign(data)).decode("ascii")

    def __repr__(self) -> str:
        return f"Credentials(api_key={_redact(self._api_key)!r}, kind={self._kind!r}, secret=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("Credentials cannot be pickled (it holds a secret)")


def _check_key_text(name: str, value: str) -> None:
    # The message names the field, never the value: it may be a secret.
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    if any(c.isspace() for c in value):
        raise ValueError(f"{name} contains whitespace (stray newline from a credential file?)")


def _redact(api_key: str) -> str:
    return api_key[:4] + "…" if len(api_key) > 8 else "…"


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
