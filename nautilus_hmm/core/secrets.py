"""Secrets come from the environment or systemd credentials, never from the TOML file.

Every value read here is registered for log redaction before it is returned
(`REDACTED_VALUES`, which `obs.logging` scrubs from every line): a key or token cannot
appear in a log line, whoever logs it. This module is in `core/` so any layer (a venue
factory, the node) reads credentials without importing `config/` or `obs/`.

Failure behaviour: a missing variable or credential file is None (the caller decides
whether that is an error); a credential that exists but cannot be read (a directory, no
permission) raises its OSError, and one that is not UTF-8 a `CredentialError` (an OSError,
EILSEQ); both name the file in `filename` and never carry any of its content (a
UnicodeDecodeError would show the bytes it failed on), for the caller to report.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

# Values never to appear in a log line (shorter than REDACT_MIN_CHARS: too common to scrub).
REDACTED_VALUES: set[str] = set()
REDACT_MIN_CHARS = 6


class CredentialError(OSError):
    """A credential file that exists but is not a usable secret; `filename` names it."""


def register_secret(value: str | None) -> None:
    """Scrub this value from every log line from now on (values shorter than 6 are ignored)."""
    if value and len(value) >= REDACT_MIN_CHARS:
        REDACTED_VALUES.add(value)


def read_secret(env_var: str, credential: str) -> str | None:
    """`$env_var` if set, else `$CREDENTIALS_DIRECTORY/<credential>`, else None; registered for redaction.

    Trailing newlines of credential files are stripped.
    """
    value = os.environ.get(env_var)
    if not value:
        value = None
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir:
            path = Path(cred_dir) / credential
            try:
                value = path.read_bytes().decode("utf-8").rstrip("\r\n") or None
            except (FileNotFoundError, NotADirectoryError):
                value = None
            except UnicodeDecodeError as exc:
                # Only the offset: the byte itself is part of the secret.
                raise CredentialError(errno.EILSEQ, f"not UTF-8 text (an invalid byte at offset {exc.start})",
                                      str(path)) from None
    register_secret(value)
    return value


def admin_token() -> str | None:
    """The admin API bearer token: NAUTILUS_HMM_ADMIN_TOKEN or credential `admin-token`."""
    return read_secret("NAUTILUS_HMM_ADMIN_TOKEN", "admin-token")


def venue_credentials(prefix: str) -> tuple[str | None, str | None]:
    """(api key, api secret) for a venue credential prefix such as `binance`.

    Environment `NAUTILUS_HMM_<PREFIX>_API_KEY` / `_API_SECRET`, else systemd credentials
    `<prefix>-api-key` / `<prefix>-api-secret`. Both are registered with the log redaction.
    """
    env = prefix.upper().replace("-", "_")
    key = read_secret(f"NAUTILUS_HMM_{env}_API_KEY", f"{prefix}-api-key")
    secret = read_secret(f"NAUTILUS_HMM_{env}_API_SECRET", f"{prefix}-api-secret")
    return key, secret
