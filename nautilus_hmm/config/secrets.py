"""Secrets come from the environment or systemd credentials, never from the TOML file."""

from __future__ import annotations

import os
from pathlib import Path

from nautilus_hmm.obs.logging import register_secret


def read_secret(env_var: str, credential: str) -> str | None:
    """`$env_var` if set, else `$CREDENTIALS_DIRECTORY/<credential>`, else None.

    Trailing newlines of credential files are stripped.
    """
    value = os.environ.get(env_var)
    if value:
        return value
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / credential
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n") or None
        except (FileNotFoundError, NotADirectoryError):
            return None
    return None


def admin_token() -> str | None:
    """The admin API bearer token: NAUTILUS_HMM_ADMIN_TOKEN or credential `admin-token`."""
    token = read_secret("NAUTILUS_HMM_ADMIN_TOKEN", "admin-token")
    register_secret(token)
    return token


def venue_credentials(prefix: str) -> tuple[str | None, str | None]:
    """(api key, api secret) for a venue credential prefix such as `binance`.

    Both are registered with the log redaction: neither can appear in a log line.
    """
    env = prefix.upper().replace("-", "_")
    key = read_secret(f"NAUTILUS_HMM_{env}_API_KEY", f"{prefix}-api-key")
    secret = read_secret(f"NAUTILUS_HMM_{env}_API_SECRET", f"{prefix}-api-secret")
    register_secret(key)
    register_secret(secret)
    return key, secret
