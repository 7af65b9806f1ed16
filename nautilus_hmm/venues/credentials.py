"""Venue API credentials shared by the venue adapters (Binance, Bybit).

`Credentials` holds an API key with its HMAC-SHA256 secret (or, for Binance, an
Ed25519 private key); the secret never shows in repr/str, cannot be pickled, and
nothing here logs. Each venue's `auth` module re-exports it under the same name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any


class Credentials:
    """An API key with its HMAC secret or Ed25519 private key; the secret stays hidden."""

    __slots__ = ("_api_key", "_ed25519_key", "_hmac", "_kind")

    def __init__(self, api_key: str, secret: str) -> None:
        _check_key_text("api_key", api_key)
        _check_key_text("api_secret", secret)
        self._api_key = api_key
        self._kind = "hmac"
        self._hmac: hmac.HMAC | None = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
        self._ed25519_key: Any = None

    @classmethod
    def ed25519(cls, api_key: str, private_key_pem: bytes | str, password: bytes | None = None) -> Credentials:
        """Credentials signing with an Ed25519 private key (PEM; Binance only). Needs `cryptography`."""
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
        """The API key (sent in the venue's key header; not secret, but not logged in full)."""
        return self._api_key

    @property
    def kind(self) -> str:
        """'hmac' or 'ed25519'."""
        return self._kind

    def sign(self, payload: str) -> str:
        """Signature of `payload` (UTF-8): lowercase hex for HMAC-SHA256, base64 for Ed25519."""
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
