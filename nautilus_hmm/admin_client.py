"""Client of a running daemon's admin HTTP API, shared by `nautilus-hmm ctl` and `models`.

Where a request goes: `--url`, else $NAUTILUS_HMM_ADMIN_URL, else http://127.0.0.1:8080.
The bearer token: `--token`, else $NAUTILUS_HMM_ADMIN_TOKEN, else the file `--token-file`
(or $NAUTILUS_HMM_ADMIN_TOKEN_FILE, default `state/admin-token` under the working
directory). A token file that other users can read is used, with a warning naming the
file and `chmod 600`. A 401 answer says where the token was looked for (none found) or
where the refused token came from, so a wrong working directory is not a mystery.

The answer's JSON is printed indented on stdout; the exit status is 0 for a 2xx/3xx
answer, 1 for an error answer or an unreachable daemon (message on stderr).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TOKEN_FILE = "state/admin-token"
URL_ENV = "NAUTILUS_HMM_ADMIN_URL"
TOKEN_ENV = "NAUTILUS_HMM_ADMIN_TOKEN"
TOKEN_FILE_ENV = "NAUTILUS_HMM_ADMIN_TOKEN_FILE"


EXIT_USAGE = 2


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


def add_client_options(parser: argparse.ArgumentParser, *, repeat: bool = False) -> None:
    """--url, --token, --token-file, --timeout on a command and (repeat=True) on each of its actions.

    The repeated copies default to SUPPRESS, so an option given before the action is
    kept unless the same option is given again after it.
    """
    suppress: dict[str, Any] = {"default": argparse.SUPPRESS} if repeat else {}
    parser.add_argument("--url", help=f"admin URL (env {URL_ENV}, default {DEFAULT_URL})", **suppress)
    parser.add_argument("--token", help=f"bearer token (env {TOKEN_ENV})", **suppress)
    parser.add_argument("--token-file", help=f"file holding the token (env {TOKEN_FILE_ENV}, "
                        f"default {DEFAULT_TOKEN_FILE})", **suppress)
    parser.add_argument("--timeout", type=positive_seconds, help="request timeout in seconds (default 10)",
                        **(suppress or {"default": 10.0}))


@dataclass(frozen=True, slots=True)
class TokenSource:
    """The token found (or None) and where it came from or was looked for."""

    token: str | None
    origin: str


def resolve_token(args: argparse.Namespace) -> TokenSource:
    """The bearer token by the rules in the module docstring (a permissive file warns on stderr)."""
    if getattr(args, "token", None):
        return TokenSource(str(args.token), "--token")
    env = os.environ.get(TOKEN_ENV)
    if env:
        return TokenSource(env, f"${TOKEN_ENV}")
    token_file = Path(getattr(args, "token_file", None) or os.environ.get(TOKEN_FILE_ENV) or DEFAULT_TOKEN_FILE)
    shown = str(token_file.absolute())
    try:
        text = token_file.read_text(encoding="utf-8").strip()
        mode = token_file.stat().st_mode & 0o777
    except FileNotFoundError:
        return TokenSource(None, f"--token and ${TOKEN_ENV} are not set and the token file {shown} was not found")
    except UnicodeDecodeError as exc:
        return TokenSource(None, f"--token and ${TOKEN_ENV} are not set and the token file {shown} "
                                 f"is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except OSError as exc:
        return TokenSource(None, f"--token and ${TOKEN_ENV} are not set and the token file {shown} "
                                 f"cannot be read: {exc.strerror or exc}")
    if not text:
        return TokenSource(None, f"--token and ${TOKEN_ENV} are not set and the token file {shown} is empty")
    if mode & 0o077:
        print(f"warning: {shown} (mode {mode:04o}) can be read by other users: chmod 600 {shown}",
              file=sys.stderr)
    return TokenSource(text, str(token_file))


def request(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> int:
    """Send one admin request; print the answer; 0 for success, 1 for an error answer or no answer."""
    if getattr(args, "url", None):
        base, origin = str(args.url), "--url"
    elif os.environ.get(URL_ENV):
        base, origin = os.environ[URL_ENV], f"${URL_ENV}"
    else:
        base, origin = DEFAULT_URL, f"the default; set --url or ${URL_ENV}"
    problem = check_url(base, origin)
    if problem is not None:  # checked here: urllib would raise ValueError deep inside http.client
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    url = base.rstrip("/") + path
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    source = resolve_token(args)
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
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach {url}: {getattr(exc, 'reason', exc)}; is the daemon running there? "
              f"(URL from {origin})", file=sys.stderr)
        return 1
    try:
        answer: Any = orjson.loads(payload)
        print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    except orjson.JSONDecodeError:
        answer = None
        print(payload.decode(errors="replace"))
    if status == 404 and isinstance(answer, dict) and answer.get("error") == "Not Found":
        # The server's own 404 (no such route), not an answer about a missing model or order.
        why = ('the model commands need a daemon with [strategy] kind = "hmm"' if "/models" in path
               or path in ("/regimes", "/admin/retrain") else "check --url: the daemon's base URL, without a path")
        print(f"{base} has no route {method} {path}: {why}", file=sys.stderr)
    if status == 401:
        if source.token is None:
            print(f"no admin token: {source.origin}; pass --token-file PATH (the daemon's "
                  f"<state_dir>/admin-token) or set {TOKEN_ENV}", file=sys.stderr)
        else:
            print(f"the token from {source.origin} was refused by {base}", file=sys.stderr)
    return 0 if status < 400 else 1
