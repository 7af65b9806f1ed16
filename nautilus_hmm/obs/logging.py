"""structlog setup: one event per line, JSON or console, journald-aware, secrets redacted.

Under systemd (`JOURNAL_STREAM` set) every line starts with the syslog priority prefix
(`<3>` error ... `<7>` debug) so `journalctl -p warning -u nautilus-hmm` filters by
level; the default format there is JSON. The level is live-reloadable (`set_level`).

Secrets never reach the output: values of keys that name a secret (token, secret,
signature, api_key, authorization ...) are replaced, and every registered secret value
(`core.secrets.register_secret`: every credential read there) is scrubbed from every
string field, whatever its key.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import orjson
import structlog

from nautilus_hmm.core.secrets import REDACTED_VALUES
from nautilus_hmm.core.secrets import register_secret as register_secret  # re-exported

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# syslog priorities (journald reads the "<N>" prefix)
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}
_SECRET_KEY_WORDS = ("secret", "token", "password", "signature", "api_key", "apikey", "authorization", "passphrase")
REDACTED = "<redacted>"


class _State:
    level = LEVELS["info"]
    fmt = "auto"
    # A cached logger keeps the processors of the configure() it first saw: fast, and right
    # for a process that configures once. Tests that configure in-process and then capture
    # logs (structlog.testing.capture_logs) turn it off (tests/conftest.py).
    cache_loggers = True
    secrets: set[str] = REDACTED_VALUES  # the registry itself (core.secrets), not a copy


def cache_loggers(enabled: bool) -> None:
    """Whether later configure() calls let loggers cache their processors on first use."""
    _State.cache_loggers = enabled


def set_level(level: str) -> None:
    """Change the minimum level at run time."""
    _State.level = LEVELS[level]


def enabled(level: str) -> bool:
    """Whether a line at `level` would be written now (skip building a line that would be dropped)."""
    return LEVELS[level] >= _State.level


def current_level() -> str:
    """The minimum level in force."""
    return next(k for k, v in LEVELS.items() if v == _State.level)


def settings() -> dict[str, str]:
    """The level and format in force, for `configure(**settings())` in a worker process."""
    return {"level": current_level(), "fmt": _State.fmt}


def _filter_level(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    if LEVELS.get(method if method != "exception" else "error", 20) < _State.level:
        raise structlog.DropEvent
    return event


def _scrub(value: str) -> str:
    for s in _State.secrets:
        if s in value:
            value = value.replace(s, REDACTED)
    return value


# Whether a key names a secret, per key seen (the keys are the code's keyword arguments: a
# few hundred at most; past _SECRET_KEY_CACHE_MAX new keys are classified every time).
# Walking every key against every word was half of a log line's CPU (~20 of ~38 µs).
_SECRET_KEY_CACHE: dict[str, bool] = {}
_SECRET_KEY_CACHE_MAX = 4096


def _names_a_secret(key: str) -> bool:
    k = key.lower()
    secret = any(w in k for w in _SECRET_KEY_WORDS)
    if len(_SECRET_KEY_CACHE) < _SECRET_KEY_CACHE_MAX:
        _SECRET_KEY_CACHE[key] = secret
    return secret


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    cache = _SECRET_KEY_CACHE
    secrets = _State.secrets
    for key, value in event.items():
        secret = cache.get(key)
        if secret is None:
            secret = _names_a_secret(key)
        if secret and value not in (None, "", False):
            event[key] = REDACTED
        elif secrets and isinstance(value, str):
            event[key] = _scrub(value)
    return event


def _add_level(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    event["level"] = "error" if method == "exception" else method
    return event


_LEAD_KEYS = ("event", "ts", "level")


class _JsonRenderer:
    def __init__(self, priority_prefix: bool) -> None:
        self.priority_prefix = priority_prefix

    def __call__(self, _: Any, method: str, event: dict[str, Any]) -> str:
        # `event` first, then the time and level: a line reads by what happened.
        ordered = {k: event.pop(k) for k in _LEAD_KEYS if k in event}
        ordered.update(event)
        line = orjson.dumps(ordered, default=_default).decode()
        if _State.secrets:
            line = _scrub(line)
        if self.priority_prefix:
            return f"<{_PRIORITY.get(method, 6)}>{line}"
        return line


class _ConsoleRenderer:
    def __init__(self, priority_prefix: bool) -> None:
        self.priority_prefix = priority_prefix
        # timestamp_key: the time leads the line.
        self._inner = structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0, timestamp_key="ts")

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> str:
        line = self._inner(logger, method, event)
        if _State.secrets:
            line = _scrub(line)
        if self.priority_prefix:
            # journald reads the prefix per line: every line of a traceback carries it.
            prefix = f"<{_PRIORITY.get(method, 6)}>"
            return prefix + line.replace("\n", "\n" + prefix)
        return line


def _default(obj: Any) -> Any:
    return str(obj)


class _Stderr:
    """Writes to whatever `sys.stderr` is at the time of the write (not at configure time)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def under_journald() -> bool:
    """True when stderr is connected to the systemd journal."""
    return bool(os.environ.get("JOURNAL_STREAM"))


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog for the process. `fmt` is auto, json or console."""
    journald = under_journald()
    use_json = fmt == "json" or (fmt == "auto" and journald)
    set_level(level)
    _State.fmt = fmt
    renderer: Any = _JsonRenderer(journald) if use_json else _ConsoleRenderer(journald)
    processors: list[Any] = [
        _filter_level,
        structlog.contextvars.merge_contextvars,
        _add_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.format_exc_info,
        _redact,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(stream or _Stderr()),
        cache_logger_on_first_use=_State.cache_loggers,
    )
