"""Client of a running daemon's HTTP API, shared by `nautilus-hmm ctl` and `models`.

Where a request goes: `--url`, else $NAUTILUS_HMM_ADMIN_URL, else the [http] host and port
of `--config`, else http://127.0.0.1:8080.

The bearer token is looked for the way the daemon writes it, first found wins:
`--token`, $NAUTILUS_HMM_ADMIN_TOKEN, the file `--token-file`, the file
$NAUTILUS_HMM_ADMIN_TOKEN_FILE, the systemd credential $CREDENTIALS_DIRECTORY/admin-token,
$STATE_DIRECTORY/admin-token, <[node] state_dir of --config>/admin-token, and
state/admin-token under the working directory. A file named by option or variable is the
last place looked at when it cannot be used (no other token is sent in its stead). A
token file that other users can read is used, with a warning naming it and `chmod 600`.
Reads need no token; a 401 answer lists every place tried and what was found there.

`ctl` prints a human view of the answer (ctl_views; a table on stdout), `--json` the
answer's JSON; `models` prints the JSON. Exit codes (EXIT_*, README "ctl"):
0 ok, 1 the daemon answered with an error, 2 usage error, 3 the daemon cannot be reached
(or, with `events --no-reconnect`, closed the event stream; without it the tail reconnects),
4 authentication refused (401/403), 5 conflict (409: the
node's mode or state forbids the act, a restart is needed, a training is running),
78 the `--config` file is invalid. Messages go to stderr, one line each, no traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import ipaddress
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TOKEN_FILE = "state/admin-token"
TOKEN_NAME = "admin-token"  # the daemon's file in its state directory and the systemd credential's name
URL_ENV = "NAUTILUS_HMM_ADMIN_URL"
TOKEN_ENV = "NAUTILUS_HMM_ADMIN_TOKEN"
TOKEN_FILE_ENV = "NAUTILUS_HMM_ADMIN_TOKEN_FILE"

EXIT_OK = 0
EXIT_API = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_CONFLICT = 5
EXIT_CONFIG = 78

EXIT_CODES_HELP = """\
exit codes:
  0   ok
  1   the daemon answered with an error (the message names the field or id), or
      `events` got something that is not an event stream
  2   usage error (a bad option or value, named)
  3   the daemon cannot be reached at the URL (or, with `events --no-reconnect`,
      it closed the event stream; `events` otherwise reconnects with backoff)
  4   authentication: no token found (every place tried is listed) or token refused
  5   conflict (409): the node's mode or state forbids it, a restart is needed, ...
  78  the --config file is invalid
  130 interrupted (Ctrl-C), except `ctl events`, which ends 0
"""


class ClientError(Exception):
    """A client-side failure before any answer: the exit code and the message for stderr."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds above 0 (e.g. 10)")
    return value


def check_url(url: str, origin: str) -> str | None:
    """None when `url` is an http(s) URL with a host (and a valid port); else the problem, naming `origin`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or parts.port > 0  # .port raises ValueError when not 0-65535
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        return f"{origin} {url!r}: not an http(s) URL with a host and port, e.g. {DEFAULT_URL}"
    return None


def add_client_options(parser: argparse.ArgumentParser, *, repeat: bool = False, json_flag: bool = False) -> None:
    """--url, --token, --token-file, --config, --timeout (and --json) on a command and
    (repeat=True) on each of its actions.

    The repeated copies default to SUPPRESS, so an option given before the action is
    kept unless the same option is given again after it.
    """
    suppress: dict[str, Any] = {"default": argparse.SUPPRESS} if repeat else {}
    parser.add_argument("--url", help=f"daemon URL (env {URL_ENV}; else [http] of --config; default {DEFAULT_URL})",
                        **suppress)
    parser.add_argument("--token", help=f"bearer token (env {TOKEN_ENV}; lookup order: nautilus-hmm ctl --help)", **suppress)
    parser.add_argument("--token-file", help=f"file holding the token (env {TOKEN_FILE_ENV})", **suppress)
    parser.add_argument("--config", help="the daemon's config file: its [node] state_dir holds the token, its "
                        "[http] host and port give the URL", **suppress)
    parser.add_argument("--timeout", type=positive_seconds, help="request timeout in seconds (default 10)",
                        **(suppress or {"default": 10.0}))
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print the answer's JSON instead of a table",
                            **suppress)


# ------------------------------------------------------------------ where: the config, the URL, the token


@dataclass(frozen=True, slots=True)
class ConfigHints:
    """What --config tells the client: the state directory and the URL (None: not from there)."""

    state_dir: Path | None = None
    url: str | None = None
    url_note: str = ""


def config_hints(args: argparse.Namespace) -> ConfigHints:
    """The state dir and URL of `--config` (none given: empty hints); ClientError 78 when invalid."""
    cached = getattr(args, "_config_hints", None)
    if isinstance(cached, ConfigHints):
        return cached
    path = getattr(args, "config", None)
    hints = ConfigHints()
    if path:
        from nautilus_hmm.config import ConfigError, load_config

        try:
            cfg = load_config(str(path))
        except ConfigError as exc:
            raise ClientError(EXIT_CONFIG, f"--config {path}: {len(exc.errors)} error(s):\n  "
                                           + "\n  ".join(exc.errors)) from exc
        except OSError as exc:
            raise ClientError(EXIT_CONFIG, f"--config {path}: {exc.strerror or exc}") from exc
        host, port = cfg.http.host, cfg.http.port
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard bind: call it on loopback
        if port == 0:
            hints = ConfigHints(Path(cfg.node.state_dir), None,
                                f"--config {path} has [http] port = 0 (any free port): pass --url")
        else:
            shown = f"[{host}]" if ":" in host else host
            hints = ConfigHints(Path(cfg.node.state_dir), f"http://{shown}:{port}")
    args._config_hints = hints
    return hints


def resolve_url(args: argparse.Namespace) -> tuple[str, str]:
    """(base URL, where it came from); ClientError 2 when malformed, 78 for a bad --config."""
    if getattr(args, "url", None):
        base, origin = str(args.url), "--url"
    elif os.environ.get(URL_ENV):
        base, origin = os.environ[URL_ENV], f"${URL_ENV}"
    else:
        hints = config_hints(args)
        if hints.url:
            base, origin = hints.url, f"[http] of --config {args.config}"
        else:
            base = DEFAULT_URL
            origin = f"the default; set --url or ${URL_ENV}" + (f"; {hints.url_note}" if hints.url_note else "")
    problem = check_url(base, origin)
    if problem is not None:  # checked here: urllib would raise ValueError deep inside http.client
        raise ClientError(EXIT_USAGE, problem)
    return base, origin


@dataclass(frozen=True, slots=True)
class TokenSource:
    """The token found (or None), where it came from, and every place looked at (with what was there)."""

    token: str | None
    origin: str
    tried: tuple[str, ...] = field(default=())


def _read_token_file(path: Path, credential: bool = False) -> tuple[str | None, str]:
    """(token, '') or (None, what is wrong with the file). A credential loses only its trailing
    line ends, a state-dir file its surrounding blanks: what the daemon reads from each."""
    try:
        raw = path.read_bytes().decode("utf-8")
        text = raw.rstrip("\r\n") if credential else raw.strip()
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None, "not found"
    except IsADirectoryError:
        return None, "is a directory"
    except UnicodeDecodeError as exc:  # only the offset: the bytes are the token's
        return None, f"not UTF-8 text (an invalid byte at offset {exc.start})"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    if not text.strip():
        return None, "is empty"
    if any(c in text for c in "\r\n\x00"):  # it could not go in a header
        return None, "holds a line break or NUL inside: not one token"
    if mode & 0o077:
        print(f"warning: {path} (mode {mode:04o}) can be read by other users: chmod 600 {path}", file=sys.stderr)
    return text, ""


CREDENTIAL_LABEL = "the systemd credential"


def token_places(args: argparse.Namespace) -> list[tuple[str, Path, bool]]:
    """The files to look at in order: (label, file, explicit: the last place looked at)."""
    places: list[tuple[str, Path, bool]] = []
    if getattr(args, "token_file", None):
        places.append(("--token-file", Path(args.token_file), True))
    if os.environ.get(TOKEN_FILE_ENV):
        places.append((f"${TOKEN_FILE_ENV}", Path(os.environ[TOKEN_FILE_ENV]), True))
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        places.append((CREDENTIAL_LABEL, Path(cred_dir) / TOKEN_NAME, False))
    state_env = os.environ.get("STATE_DIRECTORY")
    if state_env:  # the daemon's rule: $STATE_DIRECTORY wins over [node] state_dir
        places.append(("$STATE_DIRECTORY", Path(state_env.split(":")[0]) / TOKEN_NAME, False))
    hints = config_hints(args)
    if hints.state_dir is not None:
        places.append((f"[node] state_dir of --config {args.config}", hints.state_dir / TOKEN_NAME, False))
    places.append((f"the default ({DEFAULT_TOKEN_FILE} in the working directory)", Path(DEFAULT_TOKEN_FILE), False))
    return places


def resolve_token(args: argparse.Namespace) -> TokenSource:
    """The bearer token by the rules in the module docstring (a permissive file warns on stderr)."""
    for value, origin in ((getattr(args, "token", None), "--token"), (os.environ.get(TOKEN_ENV), f"${TOKEN_ENV}")):
        if value:
            if any(c in value for c in "\r\n\x00"):  # never shown: it is the token
                raise ClientError(EXIT_USAGE, f"{origin} holds a line break or NUL: pass the token alone")
            return TokenSource(str(value), origin)
    tried = ["--token: not given", f"${TOKEN_ENV}: not set"]
    if not os.environ.get("CREDENTIALS_DIRECTORY"):
        tried.append("$CREDENTIALS_DIRECTORY (systemd credential admin-token): not set")
    seen: set[Path] = set()
    for label, path, explicit in token_places(args):
        shown = path.absolute()
        if shown in seen:
            continue
        seen.add(shown)
        token, problem = _read_token_file(path, credential=label == CREDENTIAL_LABEL)
        if token is not None:
            return TokenSource(token, str(path), tuple(tried))
        tried.append(f"{label}: {shown}: {problem}")
        if explicit:
            break  # the file named is the token meant: no other one is sent in its stead
    return TokenSource(None, "; ".join(tried), tuple(tried))


# ------------------------------------------------------------------ one request


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer of the daemon: status, decoded JSON (None when the body is not JSON), raw body."""

    status: int
    answer: Any
    payload: bytes
    base: str
    source: TokenSource


def exit_code(status: int) -> int:
    """The exit code of an HTTP status (module docstring)."""
    if status < 400:
        return EXIT_OK
    if status in (401, 403):
        return EXIT_AUTH
    if status == 409:
        return EXIT_CONFLICT
    return EXIT_API


def _unreachable(url: str, origin: str, exc: BaseException) -> ClientError:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, TimeoutError | http.client.RemoteDisconnected) or "timed out" in str(reason):
        reason = f"no answer ({reason or 'timed out'})"
    return ClientError(EXIT_UNREACHABLE, f"cannot reach {url}: {reason}; is the daemon running there? "
                                         f"(URL from {origin})")


def call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Reply | int:
    """Send one request; its Reply, or the exit code after a line on stderr when there is no answer."""
    try:
        return _call(args, method, path, body)
    except ClientError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


def warn_cleartext(base: str, source: TokenSource) -> None:
    """On stderr: a token about to go over plain http to a host that is not this machine."""
    if not source.token:
        return
    parts = urllib.parse.urlsplit(base)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme == "http" and not loopback:
        print(f"warning: the admin token (from {source.origin}) goes over plain http to {host}: anyone on the path "
              f"can read it; use an ssh tunnel (ssh -L 8080:127.0.0.1:8080 {host}) or https", file=sys.stderr)


def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None) -> Reply:
    config_hints(args)  # a --config given is checked whether or not its URL or token are needed
    base, origin = resolve_url(args)
    url = base.rstrip("/") + path
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    source = resolve_token(args)
    warn_cleartext(base, source)
    if source.token:
        req.add_header("Authorization", f"Bearer {source.token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    timeout_s = getattr(args, "timeout", None) or 10.0
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            payload, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), exc.code
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _unreachable(url, origin, exc) from exc
    try:
        answer: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        answer = None
    return Reply(status, answer, payload, base, source)


CONTROL_PATHS = ("/strategies", "/allocations", "/governance", "/admin/strategies", "/admin/allocations")


def explain(reply: Reply, method: str, path: str) -> None:
    """On stderr: why a 404 without a route or a 401 happened (where to look)."""
    answer = reply.answer
    if reply.status == 404 and isinstance(answer, dict) and answer.get("error") == "Not Found":
        # The server's own 404 (no such route), not an answer about a missing model or order.
        if "/models" in path or path.startswith(("/regimes", "/admin/retrain")):
            why = 'the model commands need a daemon with [strategy] kind = "hmm"'
        elif path.startswith("/events/public"):
            why = "this daemon has no public event stream (an older version): use ctl events with a token"
        elif path.startswith(CONTROL_PATHS):
            why = "the control-plane commands need a daemon that runs the control plane (a newer version)"
        else:
            why = "check --url: the daemon's base URL, without a path"
        print(f"{reply.base} has no route {method} {path.split('?')[0]}: {why}", file=sys.stderr)
    if reply.status == 401:
        if reply.source.token is None:
            print("no admin token found; places tried, in order:", file=sys.stderr)
            for place in reply.source.tried:
                print(f"  {place}", file=sys.stderr)
            print(f"pass --token, set {TOKEN_ENV}, or point --token-file / --config at the daemon's "
                  f"<state_dir>/{TOKEN_NAME}", file=sys.stderr)
        else:
            print(f"the token from {reply.source.origin} was refused by {reply.base}", file=sys.stderr)


def _dump(reply: Reply) -> None:
    if reply.answer is not None or reply.payload.strip() == b"null":
        print(orjson.dumps(reply.answer, option=orjson.OPT_INDENT_2).decode())
    else:
        print(reply.payload.decode(errors="replace"))


def request(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> int:
    """Send one request; print the answer's JSON; the exit code (module docstring)."""
    reply = call(args, method, path, body)
    if isinstance(reply, int):
        return reply
    _dump(reply)
    explain(reply, method, path)
    return exit_code(reply.status)


def error_lines(answer: Any, status: int) -> list[str]:
    """An error answer as lines for stderr: the server's message (naming the field or id), its details."""
    if not isinstance(answer, dict):
        return [f"error: HTTP {status}"]
    message = str(answer.get("error") or answer.get("result") or f"HTTP {status}")
    if answer.get("known") is not None and answer.get("error") != "Not Found":
        message += f" (known: {', '.join(map(str, answer['known'])) or 'none'})"
    lines = [f"error: {message}"]
    for key in ("errors", "restart_required"):
        value = answer.get(key)
        if isinstance(value, list) and value:
            lines.append(f"{key.replace('_', ' ')}:")
            lines.extend(f"  {v}" for v in value)
    return lines


def show(args: argparse.Namespace, method: str, path: str, render: str, body: dict[str, Any] | None = None) -> int:
    """Send a request; print its answer rendered by the ctl_views function named `render` (or as
    JSON with --json); the exit code. ctl_views (rich) is imported here, at first use, so the
    daemon's `run` never loads it."""
    from nautilus_hmm import ctl_views as views

    reply = call(args, method, path, body)
    if isinstance(reply, int):
        return reply
    answer = reply.answer
    if getattr(args, "json", False) or not isinstance(answer, dict):
        _dump(reply)
    elif reply.status >= 400:
        for line in error_lines(answer, reply.status):
            print(line, file=sys.stderr)
    else:
        try:
            text: Any = getattr(views, render)(answer)
        except (KeyError, TypeError, AttributeError, ValueError):  # a shape this client does not know
            text = orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode()
        if isinstance(text, str):
            print(text)
        else:
            views.emit(text)
    explain(reply, method, path)
    return exit_code(reply.status)


def _usage(args: argparse.Namespace, message: str) -> int:
    print(f"nautilus-hmm ctl {args.action}: {message}", file=sys.stderr)
    return EXIT_USAGE


def _query(**params: Any) -> str:
    kept = {k: v for k, v in params.items() if v is not None and v is not False}
    return ("?" + urllib.parse.urlencode({k: ("true" if v is True else v) for k, v in kept.items()})) if kept else ""


# ------------------------------------------------------------------ ctl: trading state and config


def cmd_status(args: argparse.Namespace) -> int:
    """`ctl status`."""
    return show(args, "GET", "/status", "render_status")


def cmd_reload(args: argparse.Namespace) -> int:
    """`ctl reload`."""
    return show(args, "POST", "/admin/reload", "render_reload")


def cmd_trading(args: argparse.Namespace) -> int:
    """`ctl kill | reduce | resume`."""
    body: dict[str, Any] = {}
    if getattr(args, "reason", None):
        body["reason"] = args.reason
    if args.action == "kill":
        if args.cancel_orders:
            body["cancel_orders"] = True
        if args.flatten:
            body["flatten"] = True
    if args.action == "resume" and getattr(args, "venue", None):
        body["venue"] = args.venue
    return show(args, "POST", f"/admin/{args.action}", "render_trading_state", body)


# ------------------------------------------------------------------ ctl: trading views


def since_arg(text: str) -> int:
    """argparse type of --since: ns since the epoch, an ISO 8601 time (UTC unless it says) or an age
    such as 90s, 15m, 2h, 7d."""
    raw = text.strip()
    if re.fullmatch(r"\d+", raw):
        return int(raw)
    age = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", raw)
    if age:
        seconds = float(age.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86_400}[age.group(2)]
        return max(0, time.time_ns() - int(seconds * 1e9))
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected ns since the epoch, an ISO time (2026-01-31T12:00:00Z) or an age (15m, 2h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0, int(moment.timestamp() * 1e9))


def limit_arg(text: str) -> int:
    """argparse type of --limit: an integer from 1 to 10000 (the API's bounds)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer from 1 to 10000")
    return value


def cmd_positions(args: argparse.Namespace) -> int:
    """`ctl positions`."""
    return show(args, "GET", "/positions", "render_positions")


def cmd_orders(args: argparse.Namespace) -> int:
    """`ctl orders [--open] [--limit N]`."""
    return show(args, "GET", "/orders" + _query(open=args.open or None, limit=args.limit), "render_orders")


def cmd_fills(args: argparse.Namespace) -> int:
    """`ctl fills [--since WHEN] [--limit N]`."""
    return show(args, "GET", "/fills" + _query(since=args.since, limit=args.limit), "render_fills")


def cmd_regimes(args: argparse.Namespace) -> int:
    """`ctl regimes [--strategy ID]`."""
    return show(args, "GET", "/regimes" + _query(strategy=args.strategy), "render_regimes")


def cmd_models(args: argparse.Namespace) -> int:
    """`ctl models [--strategy ID]` (promote, rollback, canary, retrain: `nautilus-hmm models`)."""
    return show(args, "GET", "/models" + _query(strategy=args.strategy), "render_models")


# ------------------------------------------------------------------ ctl events: the SSE stream


@dataclass(slots=True)
class SseEvent:
    """One server-sent event: its name and its data lines joined."""

    event: str
    data: str


MAX_EVENT_LINE_BYTES = 4 * 1024 * 1024  # an event is a few hundred bytes; a line beyond this ends the tail


class SseParser:
    """Server-sent events from lines (text/event-stream): `event:`, `data:`, a blank line ends one;
    `id:` sets the last event id (sent back as Last-Event-ID when the tail reconnects)."""

    def __init__(self) -> None:
        self.event = ""
        self.data: list[str] = []
        self.id_buffer = ""
        self.last_event_id = ""

    def feed(self, line: str) -> SseEvent | None:
        """One line without its end; the event it completes, if any."""
        if not line:
            self.last_event_id = self.id_buffer
            if not self.data and not self.event:
                return None
            out = SseEvent(self.event or "message", "\n".join(self.data))
            self.event, self.data = "", []
            return out
        if line.startswith(":"):  # a comment: `: connected`, `: keepalive`
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.id_buffer = value
        return None


# `ctl events` reconnects after the stream ends (a daemon restart): first after this long,
# doubling per failed attempt up to the cap. SLEEP is the wait (tests replace it).
RECONNECT_INITIAL_S = 0.5
RECONNECT_MAX_S = 30.0
SLEEP = time.sleep
# Answers worth another attempt while reconnecting: a proxy in front of a daemon still down,
# or a start that is not serving yet. Anything else (401, 403, 400 ...) ends the tail.
_RETRY_STATUSES = (502, 503, 504)


@dataclass
class _StreamTarget:
    """Where `ctl events` connects, resolved once (URL, token) for every (re)connect."""

    base: str
    origin: str
    source: TokenSource
    path: str
    timeout_s: float

    @property
    def url(self) -> str:
        return self.base.rstrip("/") + self.path


def _stream_target(args: argparse.Namespace, path: str) -> _StreamTarget:
    config_hints(args)
    base, origin = resolve_url(args)
    source = resolve_token(args)
    warn_cleartext(base, source)
    return _StreamTarget(base, origin, source, path, getattr(args, "timeout", None) or 10.0)


def _connect(target: _StreamTarget, last_event_id: str = "") -> tuple[http.client.HTTPConnection,
                                                                        http.client.HTTPResponse]:
    """GET the stream; ClientError (exit 3) when there is no answer."""
    parts = urllib.parse.urlsplit(target.base)
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_type(parts.hostname or "", parts.port, timeout=target.timeout_s)
    headers = {"Accept": "text/event-stream"}
    if target.source.token:
        headers["Authorization"] = f"Bearer {target.source.token}"
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    try:
        conn.request("GET", parts.path.rstrip("/") + target.path, headers=headers)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise _unreachable(target.url, target.origin, exc) from exc
    return conn, resp


@dataclass
class _Tail:
    """What a tail keeps across reconnects: the parser (last event id) and the events printed."""

    parser: SseParser = field(default_factory=SseParser)
    count: int = 0


class _Dropped(Exception):
    """The stream ended or broke after it was open: the message says how."""


def cmd_events(args: argparse.Namespace) -> int:
    """`ctl events [--public] [--types A,B] [--count N] [--json] [--no-reconnect]`: a live tail of
    GET /events (or the read-only /events/public, no token); Ctrl-C ends it (exit 0). When the
    stream ends (the daemon restarts), the tail reconnects with backoff, saying so on stderr;
    `--no-reconnect` exits 3 instead."""
    path = ("/events/public" if args.public else "/events") + _query(types=args.types)
    try:
        target = _stream_target(args, path)
    except ClientError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    tail = _Tail()
    try:
        try:
            code = _stream_once(args, target, tail, reconnecting=False)
        except ClientError as exc:  # the first connect: a wrong URL or a daemon that is down is not waited for
            print(str(exc), file=sys.stderr)
            return exc.code
        except _Dropped as drop:
            if getattr(args, "no_reconnect", False):
                print(str(drop), file=sys.stderr)
                return EXIT_UNREACHABLE
            return _reconnect(args, target, tail, str(drop))
        return code
    except KeyboardInterrupt:
        return EXIT_OK  # the way to end a tail


def _reconnect(args: argparse.Namespace, target: _StreamTarget, tail: _Tail, why: str) -> int:
    """Reconnect until the stream is back (then tail it), a non-retryable answer, --count, or Ctrl-C."""
    print(f"{why}; reconnecting (events sent while disconnected are not shown; --no-reconnect exits instead)",
          file=sys.stderr)
    delay_s = RECONNECT_INITIAL_S
    attempts = 0
    while True:
        SLEEP(delay_s)
        attempts += 1
        try:
            return _stream_once(args, target, tail, reconnecting=True, attempts=attempts)
        except ClientError as exc:  # still down
            print(f"{exc} (attempt {attempts}; next in {min(delay_s * 2, RECONNECT_MAX_S):g} s)", file=sys.stderr)
            delay_s = min(delay_s * 2, RECONNECT_MAX_S)
        except _Dropped as drop:  # it was back, and went again
            print(f"{drop}; reconnecting", file=sys.stderr)
            delay_s, attempts = RECONNECT_INITIAL_S, 0


def _stream_once(args: argparse.Namespace, target: _StreamTarget, tail: _Tail, *, reconnecting: bool,
                 attempts: int = 0) -> int:
    """Connect once and tail until the end: the exit code, ClientError (no answer, or a retryable
    answer while reconnecting) or _Dropped (the open stream ended)."""
    conn, resp = _connect(target, tail.parser.last_event_id if reconnecting else "")
    url = target.url
    try:
        if resp.status != 200:
            if reconnecting and resp.status in _RETRY_STATUSES:
                raise ClientError(EXIT_UNREACHABLE, f"{url} answered HTTP {resp.status}")
            payload = resp.read()
            try:
                answer: Any = orjson.loads(payload)
            except orjson.JSONDecodeError:
                answer = None
            reply = Reply(resp.status, answer, payload, target.base, target.source)
            if getattr(args, "json", False):
                _dump(reply)
            else:
                for line in error_lines(answer, resp.status):
                    print(line, file=sys.stderr)
            explain(reply, "GET", target.path)
            if resp.status == 401 and not args.public:
                print("(without a token: `ctl events --public` tails the read-only stream: fills, orders, positions, "
                      "trading state, regimes ...)", file=sys.stderr)
            return exit_code(resp.status) or EXIT_API
        kind = resp.getheader("Content-Type", "")
        if not kind.startswith("text/event-stream"):  # a proxy's page, a wrong --url path
            print(f"{url} did not answer with an event stream (Content-Type {kind or 'none'!r}); check --url",
                  file=sys.stderr)
            return EXIT_API
        if conn.sock is not None:
            conn.sock.settimeout(None)  # an idle stream is not an error: the daemon sends keepalives
        if reconnecting:
            resumed = tail.parser.last_event_id
            print(f"reconnected to {url} (attempt {attempts})"
                  + (f", resuming after event id {resumed}" if resumed else ""), file=sys.stderr)
        elif _isatty(sys.stderr):
            print(f"streaming events from {url} (Ctrl-C to stop)", file=sys.stderr)
        return _tail(resp, args, url, tail)
    finally:
        conn.close()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _tail(resp: http.client.HTTPResponse, args: argparse.Namespace, url: str, tail: _Tail) -> int:
    """Print events until --count (exit 0) or a line too long (exit 1); _Dropped when the stream ends."""
    from nautilus_hmm import ctl_views as views

    parser = tail.parser
    want: int | None = args.count
    while True:
        try:
            raw = resp.readline(MAX_EVENT_LINE_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise _Dropped(f"the event stream from {url} broke: {exc}") from exc
        if not raw:
            raise _Dropped(f"the daemon closed the event stream ({url})")
        if len(raw) > MAX_EVENT_LINE_BYTES:  # not an event of ours: stop before memory does
            print(f"the event stream from {url} sent a line longer than {MAX_EVENT_LINE_BYTES} bytes: "
                  "not an event stream of this daemon", file=sys.stderr)
            return EXIT_API
        event = parser.feed(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        if event is None:
            continue
        if getattr(args, "json", False):
            print(event.data, flush=True)  # the API's JSON, one event per line
        else:
            try:
                data: Any = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                data = event.data
            try:
                line: Any = views.render_event(event.event, data)
            except (KeyError, TypeError, AttributeError, ValueError):  # a shape this client does not know
                line = f"{event.event}  {event.data}"
            if isinstance(line, str):
                print(line)
            else:
                views.emit(line)
            sys.stdout.flush()
        tail.count += 1
        if want is not None and tail.count >= want:
            return EXIT_OK


# ------------------------------------------------------------------ ctl: the control plane
#
# `ctl strategies [ID]`, `ctl strategies enable|disable|reduce ID [--reason R]`,
# `ctl allocations [--set ID=SHARE ... --expires-s N | --clear]`, `ctl governance`.

STRATEGY_ACTIONS = ("enable", "disable", "reduce")


def cmd_strategies(args: argparse.Namespace) -> int:
    """`ctl strategies [ID]` and `ctl strategies enable|disable|reduce ID [--reason R]`."""
    first, second = args.target, args.strategy_id
    if first in STRATEGY_ACTIONS:
        if second is None:
            return _usage(args, f"{first} needs a strategy id: ctl strategies {first} ID [--reason R]")
        body = {"reason": args.reason} if args.reason else {}
        path = f"/admin/strategies/{urllib.parse.quote(second, safe='')}/{first}"
        return show(args, "POST", path, "render_state_change", body)
    if second is not None:
        return _usage(args, f"{first!r} is not an action (enable, disable, reduce); "
                            f"to show a strategy: ctl strategies ID")
    if args.reason:
        return _usage(args, "--reason goes with enable, disable or reduce")
    if first is None:
        return show(args, "GET", "/strategies", "render_strategies")
    return show(args, "GET", f"/strategies/{urllib.parse.quote(first, safe='')}", "render_strategy")


def share_arg(text: str) -> tuple[str, float]:
    """argparse type of --set: `ID=SHARE` with a finite share."""
    sid, sep, raw = text.partition("=")
    try:
        share = float(raw)
    except ValueError:
        share = math.nan
    if not sep or not sid.strip() or not math.isfinite(share):
        raise argparse.ArgumentTypeError(f"{text!r}: expected ID=SHARE with a number, e.g. trend=0.4")
    return sid.strip(), share


def cmd_allocations(args: argparse.Namespace) -> int:
    """`ctl allocations`, `ctl allocations --set ID=SHARE ... --expires-s N`, `ctl allocations --clear`."""
    pairs: list[tuple[str, float]] = args.set or []
    if args.clear:
        if pairs or args.expires_s is not None:
            return _usage(args, "--clear goes alone (it ends the override; --set starts one)")
        return show(args, "POST", "/admin/allocations/clear_override", "render_allocations")
    if not pairs:
        if args.expires_s is not None:
            return _usage(args, "--expires-s goes with --set ID=SHARE")
        return show(args, "GET", "/allocations", "render_allocations")
    if args.expires_s is None:
        return _usage(args, "--set needs --expires-s N: how many seconds the override holds")
    shares: dict[str, float] = {}
    for sid, share in pairs:
        if sid in shares:
            return _usage(args, f"--set {sid}=... is given twice")
        shares[sid] = share
    return show(args, "POST", "/admin/allocations", "render_allocations",
                {"shares": shares, "expires_s": args.expires_s})


def cmd_governance(args: argparse.Namespace) -> int:
    """`ctl governance`."""
    return show(args, "GET", "/governance", "render_governance")


# ------------------------------------------------------------------ ctl: the parser

CTL_DESCRIPTION = """\
Call the HTTP API of a running daemon. Views print a table (--json: the API's JSON).
Options go before or after the action: `ctl --json positions` = `ctl positions --json`.

token lookup, first found wins (reads need none):
  --token, $NAUTILUS_HMM_ADMIN_TOKEN, --token-file, $NAUTILUS_HMM_ADMIN_TOKEN_FILE,
  $CREDENTIALS_DIRECTORY/admin-token (systemd), $STATE_DIRECTORY/admin-token,
  <[node] state_dir of --config>/admin-token, ./state/admin-token
"""


def add_ctl_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `ctl` and its actions to the top-level subparsers."""
    ctl = subparsers.add_parser("ctl", help="call the API of a running daemon (tables; --json for scripts)",
                                description=CTL_DESCRIPTION, epilog=EXIT_CODES_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_client_options(ctl, json_flag=True)
    names = ("status", "positions", "orders", "fills", "events", "strategies", "allocations", "governance",
             "regimes", "models", "kill", "reduce", "resume", "reload")
    actions = ctl.add_subparsers(dest="action", required=True, metavar="{" + ",".join(names) + "}")

    def action(name: str, help_text: str, func: Any, description: str | None = None) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text, description=description or help_text, epilog=EXIT_CODES_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        a.set_defaults(ctl_func=func)
        return a

    parsers = [action("status", "GET /status: trading state, PnL, components, positions, open orders", cmd_status),
               action("positions", "GET /positions: positions with marks and PnL, equity, balances", cmd_positions)]
    orders = action("orders", "GET /orders: orders, newest first", cmd_orders)
    orders.add_argument("--open", action="store_true", help="only open orders")
    orders.add_argument("--limit", type=limit_arg, metavar="N", help="at most N orders (API default 500)")
    fills = action("fills", "GET /fills: journaled fills, oldest first", cmd_fills)
    fills.add_argument("--since", type=since_arg, metavar="WHEN",
                       help="from this time: ns since the epoch, ISO time (2026-01-31T12:00Z) or an age (15m, 2h, 7d)")
    fills.add_argument("--limit", type=limit_arg, metavar="N", help="at most N fills (API default 1000)")
    events = action("events", "GET /events: a live tail of the event stream (token, or --public; Ctrl-C ends, "
                             "exit 0)", cmd_events)
    events.add_argument("--types", metavar="A,B", help="only these message types (e.g. FillReport,TradingStateChanged)")
    events.add_argument("--public", action="store_true",
                        help="the read-only stream GET /events/public (no token; fills, orders, positions, trading "
                             "and venue state, regimes, models, strategies; never the admin audit)")
    events.add_argument("--count", type=limit_arg, metavar="N", help="stop after N events (exit 0)")
    events.add_argument("--no-reconnect", action="store_true",
                        help="exit 3 when the daemon closes the stream (default: reconnect with backoff, "
                             f"{RECONNECT_INITIAL_S:g} s doubling to {RECONNECT_MAX_S:g} s, saying so on stderr)")
    parsers += [orders, fills, events]
    parsers += add_control_commands(actions, action)
    for name, text in (("regimes", "GET /regimes: regime posteriors and decisions per instrument"),
                       ("models", "GET /models: registered regime models and their tags "
                                  "(promote, rollback, canary, retrain: `nautilus-hmm models`)")):
        a = action(name, text, cmd_regimes if name == "regimes" else cmd_models)
        a.add_argument("--strategy", metavar="ID", help="the hmm strategy (with several)")
        parsers.append(a)
    kill = action("kill", "POST /admin/kill: halt trading", cmd_trading)
    kill.add_argument("--reason", help="why (audit log)")
    kill.add_argument("--cancel-orders", action="store_true", help="also cancel open orders")
    kill.add_argument("--flatten", action="store_true", help="also close positions")
    reduce = action("reduce", "POST /admin/reduce: only exposure-reducing orders", cmd_trading)
    reduce.add_argument("--reason", help="why (audit log)")
    resume = action("resume", "POST /admin/resume: trading ACTIVE", cmd_trading)
    resume.add_argument("--reason", help="why (audit log)")
    resume.add_argument("--venue", help="lift only this venue's own halt")
    reload = action("reload", "POST /admin/reload: re-read the config file and apply live fields", cmd_reload)
    parsers += [kill, reduce, resume, reload]
    for a in parsers:  # options also after the action: `ctl status --url ...`, `ctl positions --json`
        add_client_options(a, repeat=True, json_flag=True)
    ctl.set_defaults(func=run_ctl)
    return ctl


def run_ctl(args: argparse.Namespace) -> int:
    """Run the ctl action parsed into `args`."""
    try:
        return int(args.ctl_func(args))
    except ClientError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


def add_control_commands(actions: Any, action: Any) -> list[argparse.ArgumentParser]:
    """The control-plane actions of `ctl` (strategies, allocations, governance); returns their parsers."""
    strat = action(
        "strategies", "GET /strategies[/ID]; enable|disable|reduce ID: POST /admin/strategies/ID/ACTION",
        cmd_strategies, "Without arguments: every strategy. With ID: that strategy. "
                        "With enable|disable|reduce ID: change its state (token required).")
    strat.add_argument("target", nargs="?", metavar="ID | enable | disable | reduce")
    strat.add_argument("strategy_id", nargs="?", metavar="ID", help="the strategy an action applies to")
    strat.add_argument("--reason", help="why (audit log and event), with enable/disable/reduce")
    alloc = action(
        "allocations", "GET /allocations; --set ID=SHARE ... --expires-s N: POST /admin/allocations",
        cmd_allocations, "Without options: the allocator's shares. With --set: a manual override of every share "
                         "(a strategy left out gets 0; the shares must sum to 1 within each strategy's bounds) "
                         "until --expires-s seconds from now (token required).")
    alloc.add_argument("--set", action="append", type=share_arg, metavar="ID=SHARE",
                       help="a strategy's share (0..1), repeated for each strategy")
    alloc.add_argument("--expires-s", type=positive_seconds, metavar="N",
                       help="seconds the override holds before the computed shares return")
    alloc.add_argument("--clear", action="store_true", help="end the override now (token required)")
    gov = action("governance", "GET /governance: rules, status and recent decisions", cmd_governance)
    return [strat, alloc, gov]
