"""Bybit v5 request signing (pure, no I/O).

Rules, as documented by Bybit (docs/v5/guide.mdx "Create A Request", and
docs/v5/websocket/wss-authentication.mdx) and pinned by the docs' published
strings-to-sign (shared fixtures `signatures/bybit_v5_hmac_sha256_rule.json`):

* REST (HMAC-SHA256, lowercase hex, header `X-BAPI-SIGN`, `X-BAPI-SIGN-TYPE: 2`):
  the string to sign is `timestamp + api_key + recv_window + payload`, where the
  payload is the query string for GET (exactly as sent, without the `?`) and the raw
  JSON body for POST (exactly the bytes sent). Nothing separates the four parts. The
  caller must send the very text it signed: build the query/body once with
  `encode_query` / `json_body` and hand that text to the HTTP client unchanged.
* Private WebSocket `auth`: the string to sign is `"GET/realtime" + str(expires_ms)`;
  the request is `{"op": "auth", "args": [api_key, expires_ms, signature]}` with
  `expires_ms` a number in the future (server time).

`Credentials` never shows its secret in repr/str, cannot be pickled, and nothing here logs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import quote

import orjson

# The shared class (venues/credentials.py), re-exported under this module's name.
from nautilus_hmm.venues.credentials import Credentials as Credentials
from nautilus_hmm.venues.credentials import _check_key_text

DEFAULT_RECV_WINDOW_MS = 5000
API_KEY_HEADER = "X-BAPI-API-KEY"
TIMESTAMP_HEADER = "X-BAPI-TIMESTAMP"
RECV_WINDOW_HEADER = "X-BAPI-RECV-WINDOW"
SIGN_HEADER = "X-BAPI-SIGN"
SIGN_TYPE_HEADER = "X-BAPI-SIGN-TYPE"
SIGN_TYPE_HMAC = "2"  # Bybit's code for HMAC-SHA256 signatures
WS_AUTH_PREFIX = "GET/realtime"

Params = Mapping[str, Any] | Iterable[tuple[str, Any]]


# ---------------------------------------------------------------- REST


def string_to_sign(timestamp_ms: int | str, api_key: str, recv_window_ms: int | str, payload: str) -> str:
    """`timestamp + api_key + recv_window + payload` (payload: GET query string | POST JSON body)."""
    return f"{int(timestamp_ms)}{api_key}{int(recv_window_ms)}{payload}"


def rest_signature(
    secret: str | Credentials, timestamp_ms: int | str, api_key: str, recv_window_ms: int | str, payload: str
) -> str:
    """X-BAPI-SIGN for one request: HMAC-SHA256 (hex) of `string_to_sign(...)`."""
    text = string_to_sign(timestamp_ms, api_key, recv_window_ms, payload)
    if isinstance(secret, Credentials):
        return secret.sign(text)
    _check_key_text("api_secret", secret)
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_headers(
    creds: Credentials, timestamp_ms: int, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS, payload: str = ""
) -> dict[str, str]:
    """The five X-BAPI-* headers of a signed request whose query string / body is `payload`."""
    ts, rw = str(int(timestamp_ms)), str(int(recv_window_ms))
    return {
        API_KEY_HEADER: creds.api_key,
        TIMESTAMP_HEADER: ts,
        RECV_WINDOW_HEADER: rw,
        SIGN_HEADER: creds.sign(f"{ts}{creds.api_key}{rw}{payload}"),
        SIGN_TYPE_HEADER: SIGN_TYPE_HMAC,
    }


def verify_rest_signature(
    secret: str, headers: Mapping[str, str], payload: str
) -> bool:
    """True when `headers` (X-BAPI-*) carry a valid signature of `payload` (for emulators; no time check)."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        ts, key, rw, sig = (h[n.lower()] for n in (TIMESTAMP_HEADER, API_KEY_HEADER, RECV_WINDOW_HEADER, SIGN_HEADER))
        expected = rest_signature(secret, ts, key, rw, payload)
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(expected, sig.lower())


def format_value(value: Any) -> str:
    """A parameter value as Bybit expects it: Decimal without exponent, lowercase booleans, enum values."""
    if isinstance(value, Enum):
        return format_value(value.value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite number: {value}")
        return format(value, "f")
    if isinstance(value, float):
        # repr gives the shortest round-trip text; Decimal keeps it free of exponents.
        return format_value(Decimal(repr(value)))
    return str(value)


# `nextPageCursor` comes back percent-encoded ("132766%3A2%2C132766%3A2") and goes into the
# next query as it is (what pybit and ccxt do): its `%` escapes are kept, not encoded again.
_PRE_ENCODED = frozenset({"cursor"})


def encode_query(params: Params) -> str:
    """GET query string in the given order, percent-encoded (RFC 3986); `None` values dropped.

    A `cursor` keeps its `%` escapes (Bybit hands it out encoded). This exact text is
    signed and must be sent as the URL's query (already encoded).
    """
    pairs = params.items() if isinstance(params, Mapping) else params
    return "&".join(
        f"{quote(str(k), safe='')}={quote(format_value(v), safe='%' if k in _PRE_ENCODED else '')}"
        for k, v in pairs if v is not None
    )


def json_body(params: Mapping[str, Any]) -> str:
    """POST body: compact JSON; numbers that touch money (Decimal, float) become strings, `None` dropped.

    Bybit reads `qty`/`price` as strings; integers and booleans stay JSON numbers/booleans.
    This exact text is signed and must be the request body.
    """
    out: dict[str, Any] = {}
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, (bool, int)) and not isinstance(v, Enum):
            out[k] = v
        elif isinstance(v, (list, tuple)):
            out[k] = [x if isinstance(x, (dict, bool, int)) else format_value(x) for x in v]
        elif isinstance(v, dict):
            out[k] = v
        else:
            out[k] = format_value(v)
    return orjson.dumps(out).decode("utf-8")


# ---------------------------------------------------------------- WebSocket auth


def ws_auth_payload(expires_ms: int) -> str:
    """String to sign for the private WebSocket `auth`: `GET/realtime{expires_ms}`."""
    return f"{WS_AUTH_PREFIX}{int(expires_ms)}"


def ws_auth_args(creds: Credentials, expires_ms: int) -> list[Any]:
    """`args` of `{"op": "auth"}`: [api_key, expires_ms (a number), signature]."""
    return [creds.api_key, int(expires_ms), creds.sign(ws_auth_payload(expires_ms))]


def ws_auth_request(creds: Credentials, expires_ms: int, req_id: str | None = None) -> dict[str, Any]:
    """The whole auth request `{"req_id"?, "op": "auth", "args": [...]}`, a JSON object to send as is."""
    out: dict[str, Any] = {"op": "auth", "args": ws_auth_args(creds, expires_ms)}
    if req_id is not None:
        out = {"req_id": req_id, **out}
    return out


def verify_ws_auth(secret: str, api_key: str, args: Any, now_ms: int | None = None) -> str | None:
    """Why an `auth` request's args are refused (None = valid) — for emulators.

    Checks the shape, the key, the signature and (with `now_ms`) that `expires` is in the future.
    """
    if not isinstance(args, list) or len(args) != 3:
        return "args must be [api_key, expires, signature]"
    key, expires, sig = args
    if key != api_key:
        return "invalid api key"
    try:
        expires_ms = int(expires)
    except (TypeError, ValueError):
        return f"expires is not a number: {expires!r}"
    if now_ms is not None and expires_ms <= now_ms:
        return f"request expired: expires {expires_ms} <= now {now_ms}"
    expected = hmac.new(secret.encode("utf-8"), ws_auth_payload(expires_ms).encode("utf-8"), hashlib.sha256).hexdigest()
    if not isinstance(sig, str) or not hmac.compare_digest(expected, sig.lower()):
        return "signature mismatch"
    return None
