"""Channel transports: apprise behind a small port, and reading channel URLs from secrets.

A channel URL holds a token or password: it is read from `$NAUTILUS_HMM_NOTIFY_<NAME>_URL`
or the systemd credential `notify-<name>-url` (core.secrets, which registers it for log
redaction), and it is never logged, not even in part: apprise's own log records (which
quote URLs and hosts) are captured per send, every part of the URL is scrubbed from them,
and only then do they become the failure text of that send.

apprise is imported lazily (loading its plugins takes most of a second), only when a
channel is configured. Its `notify()` blocks on the network: it is only ever called from a
channel's sender thread, never on the event loop.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Protocol

from nautilus_hmm.core.secrets import read_secret
from nautilus_hmm.notify.config import NotifyConfig, channel_credential, channel_env_var

REDACTED = "<redacted>"
# URL parts shorter than this are not scrubbed from apprise's messages ("json", a port like 80).
_MIN_PART_CHARS = 4


class Transport(Protocol):
    """Sends one message to one destination; blocking (called from a sender thread only)."""

    def send(self, title: str, body: str, severity: str) -> str | None:
        """Send; None when delivered, else why not (one line, no secret in it)."""
        ...


def url_parts(url: str) -> list[str]:
    """Every part of `url` that may be secret (user, password, host, path segments, query
    values), longest first, for scrubbing."""
    try:
        parsed = urllib.parse.urlsplit(url)
        parts = [parsed.username or "", parsed.password or "", parsed.hostname or "", parsed.netloc,
                 *parsed.path.split("/"), *(v for _, v in urllib.parse.parse_qsl(parsed.query))]
    except ValueError:  # a malformed port or netloc: scrub the whole text after the scheme
        parts = [url.partition("://")[2]]
    parts.append(url)
    return sorted({p for p in parts if len(p) >= _MIN_PART_CHARS}, key=len, reverse=True)


def scrub(text: str, parts: list[str]) -> str:
    """`text` with every part of a URL replaced by <redacted>."""
    for part in parts:
        text = text.replace(part, REDACTED)
    return text


# The records of the send in progress. A context variable, not a thread-local: apprise runs a
# send in its own worker pool with the caller's context copied (the list is shared).
_records: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("apprise_records", default=None)


class _Capture(logging.Handler):
    """Collects apprise's log records for the send in progress (each channel sends in its own thread)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's text for the send that logged it; records outside a send are dropped."""
        records = _records.get()
        if records is not None:
            try:
                records.append(record.getMessage())
            except (TypeError, ValueError):  # a malformed format string in a plugin
                records.append(str(record.msg))


_capture_lock = threading.Lock()
_capture: _Capture | None = None


def _apprise_capture() -> _Capture:
    """apprise's logger, taken over once: its records never reach any other handler."""
    global _capture
    with _capture_lock:
        if _capture is None:
            _capture = _Capture()
            logger = logging.getLogger("apprise")
            logger.handlers = [_capture]
            logger.propagate = False
            logger.setLevel(logging.WARNING)
        return _capture


class AppriseTransport:
    """One apprise URL (json://, jsons://, tgram://, slack://, mailto:// ...)."""

    def __init__(self, url: str) -> None:
        import apprise  # lazily: see the module docstring

        _apprise_capture()
        self._parts = url_parts(url)
        # Sequential: the send runs in the calling (sender) thread, where its log records are
        # captured; apprise's own thread pool would take them elsewhere.
        self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        self._types = {"info": apprise.NotifyType.INFO, "success": apprise.NotifyType.SUCCESS,
                       "warning": apprise.NotifyType.WARNING, "failure": apprise.NotifyType.FAILURE}
        token = _records.set([])
        try:
            added = self._apprise.add(url)
        finally:
            _records.reset(token)
        if not added:
            raise ValueError("apprise could not parse the URL")

    def send(self, title: str, body: str, severity: str) -> str | None:
        """Send through apprise (blocking); None when delivered, else apprise's reason, scrubbed."""
        records: list[str] = []
        token = _records.set(records)
        try:
            ok = self._apprise.notify(body=body, title=title, notify_type=self._types.get(severity, "info"))
        finally:
            _records.reset(token)
        if ok:
            return None
        return scrub(records[-1], self._parts) if records else "apprise reported a failed send"


def check_url(url: str) -> str | None:
    """None when apprise knows the URL's scheme and can parse it, else why not (no URL part in it)."""
    import apprise  # lazily: see the module docstring
    from apprise.manager_plugins import NotificationManager

    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        return "not a URL (expected scheme://...)"
    scheme = scheme.lower()
    if scheme not in NotificationManager():
        return f"unknown URL scheme {scheme!r} (apprise has no such service; see its list of URL schemes)"
    _apprise_capture()
    token = _records.set([])
    try:
        parsed = apprise.Apprise.instantiate(url)
    finally:
        _records.reset(token)
    if parsed is None:
        return f"not a valid {scheme}:// URL (apprise could not parse it)"
    return None


def channel_urls(cfg: NotifyConfig, env: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Each configured channel's URL from its secret, and the problems (one per channel),
    each naming the config path and the variable: a missing URL, an unknown scheme.

    `env`, when given, replaces the process environment (tests); credentials are then not read.
    """
    urls: dict[str, str] = {}
    problems: list[str] = []
    for name in cfg.channels:
        var = channel_env_var(name)
        cred = channel_credential(name)
        try:
            url = env.get(var) if env is not None else read_secret(var, cred)
        except OSError as exc:
            problems.append(f"notify.channels.{name}: credential {cred}: {exc.strerror or exc}")
            continue
        if not url:
            problems.append(f"notify.channels.{name}: no URL: set ${var} or the systemd credential {cred}")
            continue
        problem = check_url(url)
        if problem is not None:
            problems.append(f"notify.channels.{name}: ${var} (or credential {cred}): {problem}")
            continue
        urls[name] = url
    return urls, problems


def build_transports(cfg: NotifyConfig, env: Mapping[str, str] | None = None) -> dict[str, Transport]:
    """An AppriseTransport per configured channel; ValueError listing every channel's problem.

    The error text starts with the config path (`notify.channels.<name>: ...`), which the
    start-failure report shows as a config error.
    """
    urls, problems = channel_urls(cfg, env)
    if problems:
        raise ValueError("; ".join(problems))
    return {name: AppriseTransport(url) for name, url in urls.items()}


def check_config_urls(cfg: NotifyConfig) -> tuple[list[str], list[str]]:
    """For `check-config`: (errors, notes). A channel whose URL this environment has is checked
    (an unknown scheme is an error naming the field and the variable); one whose URL is not
    here is a note, not an error (the daemon's environment may hold it; the start checks it)."""
    if not cfg.enabled:
        return [], []
    errors: list[str] = []
    notes: list[str] = []
    _, problems = channel_urls(cfg)
    for problem in problems:
        if ": no URL: " in problem:
            name = problem.split(":", 1)[0]
            notes.append(f"{name}: URL not checked (not set in this environment; the daemon checks it at start)")
        else:
            errors.append(problem)
    return errors, notes
