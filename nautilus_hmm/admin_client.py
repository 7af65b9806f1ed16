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


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer of the daemon: status, decoded JSON (None when the body is not JSON), raw body."""

    status: int
    answer: Any
    payload: bytes
    base: str
    source: TokenSource


def call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Reply | int:
    """Send one admin request; its Reply, or the exit code after a line on stderr when there is
    no answer (2: a malformed URL, 1: the daemon cannot be reached)."""
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
    except orjson.JSONDecodeError:
        answer = None
    return Reply(status, answer, payload, base, source)


CONTROL_PATHS = ("/strategies", "/allocations", "/governance", "/admin/strategies", "/admin/allocations")


def explain(reply: Reply, method: str, path: str) -> None:
    """On stderr: why a 404 without a route or a 401 happened (where to look)."""
    answer = reply.answer
    if reply.status == 404 and isinstance(answer, dict) and answer.get("error") == "Not Found":
        # The server's own 404 (no such route), not an answer about a missing model or order.
        if "/models" in path or path in ("/regimes", "/admin/retrain"):
            why = 'the model commands need a daemon with [strategy] kind = "hmm"'
        elif path.startswith(CONTROL_PATHS):
            why = "the control-plane commands need a daemon that runs the control plane (a newer version)"
        else:
            why = "check --url: the daemon's base URL, without a path"
        print(f"{reply.base} has no route {method} {path}: {why}", file=sys.stderr)
    if reply.status == 401:
        if reply.source.token is None:
            print(f"no admin token: {reply.source.origin}; pass --token-file PATH (the daemon's "
                  f"<state_dir>/admin-token) or set {TOKEN_ENV}", file=sys.stderr)
        else:
            print(f"the token from {reply.source.origin} was refused by {reply.base}", file=sys.stderr)


def request(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> int:
    """Send one admin request; print the answer; 0 for success, 1 for an error answer or no answer."""
    reply = call(args, method, path, body)
    if isinstance(reply, int):
        return reply
    if reply.answer is not None or reply.payload.strip() == b"null":
        print(orjson.dumps(reply.answer, option=orjson.OPT_INDENT_2).decode())
    else:
        print(reply.payload.decode(errors="replace"))
    explain(reply, method, path)
    return 0 if reply.status < 400 else 1


# ------------------------------------------------------------------ ctl: the control plane
#
# `ctl strategies [ID]`, `ctl strategies enable|disable|reduce ID [--reason R]`,
# `ctl allocations [--set ID=SHARE ... --expires-s N | --clear]`, `ctl governance`: a readable table
# on stdout by default, the answer's JSON with --json. An error answer is one line on stderr
# (the server's message, which names the field or id) and exit 1; a usage error is exit 2.
# A view whose shape this client does not know is printed as JSON, never a traceback.

STRATEGY_ACTIONS = ("enable", "disable", "reduce")


def _num(value: Any, fmt: str = "{:,.2f}") -> str:
    if value is None or value == "":
        return "-"
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return str(value)


def _pct(share: Any) -> str:
    return "-" if share is None else _num(share, "{:.1%}")


def _when(ts_ns: Any) -> str:
    """A ts_ns as UTC `YYYY-MM-DD HH:MM:SS` ('-' when absent)."""
    import datetime as dt

    if not isinstance(ts_ns, int) or isinstance(ts_ns, bool) or ts_ns <= 0:
        return "-"
    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _utc(ts_ns: Any) -> str:
    when = _when(ts_ns)
    return "never" if when == "-" else f"{when} UTC"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={_scalar(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value) or "-"
    return str(value)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: columns padded to their widest cell, numbers right-aligned."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def numeric(cell: str) -> bool:
        return bool(cell) and cell.lstrip("-+").replace(",", "").replace(".", "", 1).rstrip("%").isdigit()

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if numeric(c) else c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def _is_zero(value: Any) -> bool:
    try:
        return float(value) == 0
    except (TypeError, ValueError):
        return False


def _positions(value: Any) -> str:
    if not isinstance(value, dict):
        return _scalar(value)
    held = [f"{iid} {qty}" for iid, qty in value.items() if not _is_zero(qty)]
    return ", ".join(held) or "flat"


def _last_target(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "-"
    if value.get("exposure") is not None:
        size = f"exposure {_num(value['exposure'], '{:.2f}')}"
    elif value.get("target_qty") is not None:
        size = f"qty {value['target_qty']}"
    else:
        size = "-"
    where = f"{value['instrument']} " if value.get("instrument") else ""
    lane = "" if value.get("lane", "production") == "production" else f" [{value['lane']}]"
    reason = f" ({value['reason']})" if value.get("reason") else ""
    return _cut(f"{where}{size}{lane}{reason}", 60)


def render_strategies(answer: dict[str, Any]) -> str:
    """GET /strategies as a table."""
    rows = answer["strategies"]
    if not rows:
        return "no strategies configured"
    out = []
    for r in rows:
        out.append([str(r.get("strategy_id", r.get("id", "?"))), str(r.get("kind", "-")), str(r.get("state", "-")),
                    _pct(r.get("share")), _num(r.get("capital_usd")), _num(r.get("equity_usd")),
                    _num(r.get("pnl_usd")), _num(r.get("drawdown_pct"), "{:.2f}"), str(r.get("denials", "-")),
                    _positions(r.get("positions")), _last_target(r.get("last_target"))])
    return table(["ID", "KIND", "STATE", "SHARE", "CAPITAL_USD", "EQUITY_USD", "PNL_USD", "DD_PCT", "DENIALS",
                  "POSITIONS", "LAST TARGET"], out)


def render_mapping(value: dict[str, Any], indent: int = 0) -> str:
    """Nested fields as `key: value` lines, nested objects indented beneath their key."""
    pad = "  " * indent
    lines = []
    for k, v in value.items():
        if isinstance(v, dict) and v and any(isinstance(x, dict | list) for x in v.values()):
            lines.append(f"{pad}{k}:")
            lines.append(render_mapping(v, indent + 1))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            lines.append(f"{pad}{k}:")
            lines.extend(f"{pad}  - {_scalar(x)}" for x in v)
        else:
            lines.append(f"{pad}{k}: {_scalar(v)}")
    return "\n".join(lines)


STRATEGY_FIRST = ("strategy_id", "id", "kind", "state", "enabled", "share", "capital_usd", "equity_usd", "pnl_usd",
                  "positions", "last_target")


def render_strategy(answer: dict[str, Any]) -> str:
    """GET /strategies/{id} as `key: value` lines, identity and money first."""
    first = {k: answer[k] for k in STRATEGY_FIRST if k in answer}
    return render_mapping({**first, **{k: v for k, v in answer.items() if k not in first}})


def render_state_change(answer: dict[str, Any]) -> str:
    """A state action's answer (the strategy's view) as one line: id, new state, share."""
    sid = answer.get("strategy_id", answer.get("id", "?"))
    return f"{sid}: now {answer.get('state', '?')} (share {_pct(answer.get('share'))})"


def render_allocations(answer: dict[str, Any]) -> str:
    """GET /allocations: a summary line, then one row per strategy."""
    shares: dict[str, Any] = answer.get("shares") or {}
    computed: dict[str, Any] = answer.get("computed") or {}
    static: dict[str, Any] = answer.get("static") or {}
    bounds: dict[str, Any] = answer.get("bounds") or {}
    bandit = answer.get("bandit") or {}
    arms: dict[str, Any] = bandit.get("arms") or {} if isinstance(bandit, dict) else {}
    head = [f"allocator: {'on' if answer.get('enabled', True) else 'off'}, shares from {answer.get('source', '-')}"]
    ov = answer.get("override")
    if isinstance(ov, dict):
        head.append(f"override by {ov.get('source', '-')}, expires in {_num(ov.get('expires_in_s'), '{:.0f}')} s")
    if answer.get("rebalances") is not None:
        head.append(f"{answer['rebalances']} rebalance(s), last {_utc(answer.get('last_rebalance_ns'))}, "
                    f"next in {_num(answer.get('next_rebalance_in_s'), '{:.0f}')} s")
    if answer.get("state_write_error"):
        head.append(f"WARNING: state file not written: {answer['state_write_error']}")
    ids = list(dict.fromkeys([*shares, *bounds, *computed]))
    rows = []
    for sid in ids:
        b = bounds.get(sid) or {}
        arm = arms.get(sid) or {}
        rows.append([sid, _pct(shares.get(sid)), _pct(computed.get(sid)), _pct(static.get(sid)),
                     _pct(b.get("min_share")), _pct(b.get("max_share")), _num(b.get("weight"), "{:g}"),
                     _pct(arm.get("weight"))])
    body = table(["ID", "SHARE", "COMPUTED", "STATIC", "MIN", "MAX", "WEIGHT", "BANDIT"], rows) if rows \
        else "no strategies allocated"
    return "\n".join(["; ".join(head), "", body])


def render_governance(answer: dict[str, Any]) -> str:
    """GET /governance: mode, rules, per-strategy status, recent decisions."""
    mode = "off" if not answer.get("enabled", True) else ("dry run (decides, never acts)"
                                                           if answer.get("dry_run") else "acting")
    out = [f"governance: {mode}; every {_num(answer.get('interval_s'), '{:g}')} s, "
           f"{answer.get('evaluations', 0)} evaluation(s), last {_utc(answer.get('last_evaluated_ns'))}"]
    rules = answer.get("rules") or {}
    if isinstance(rules, dict) and rules:
        out += ["", "RULES"]
        out += [f"  {name}: {_scalar(cfg)}" for name, cfg in rules.items()]
    strategies = answer.get("strategies") or {}
    if isinstance(strategies, dict) and strategies:
        rows = []
        for sid, st in strategies.items():
            statuses = st.get("rules") or {}
            flagged = [f"{rule}: {row.get('status')}" + (f" ({row['reason']})" if row.get("reason") else "")
                       for rule, row in statuses.items() if isinstance(row, dict) and row.get("status") != "ok"]
            rows.append([sid, str(st.get("state") or "-"), str(st.get("held_by") or "-"),
                         _cut("; ".join(flagged) or "all ok", 80)])
        out += ["", table(["ID", "STATE", "HELD BY", "RULES NOT OK"], rows)]
    decisions = answer.get("decisions") or []
    out += ["", "DECISIONS (newest first)" if decisions else "no decisions yet"]
    if decisions:
        out.append(table(["TIME (UTC)", "RULE", "STRATEGY", "ACTION", "ACTED", "REASON"],
                         [[_when(d.get("ts_ns")), str(d.get("rule", "-")), str(d.get("strategy_id", "-")),
                           str(d.get("action", "-")), _scalar(d.get("acted")), _cut(str(d.get("reason", "")), 70)]
                          for d in decisions]))
    return "\n".join(out)


def show(args: argparse.Namespace, method: str, path: str, render: Any, body: dict[str, Any] | None = None) -> int:
    """Send a request; print its answer rendered (or as JSON with --json); the exit code."""
    reply = call(args, method, path, body)
    if isinstance(reply, int):
        return reply
    answer = reply.answer
    if getattr(args, "json", False) or not isinstance(answer, dict):
        if answer is not None:
            print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
        else:
            print(reply.payload.decode(errors="replace"))
    elif reply.status >= 400:
        message = str(answer.get("error", f"HTTP {reply.status}"))
        if answer.get("known") is not None and answer.get("error") != "Not Found":
            message += f" (known: {', '.join(map(str, answer['known'])) or 'none'})"
        print(f"error: {message}", file=sys.stderr)
    else:
        try:
            text = render(answer)
        except (KeyError, TypeError, AttributeError, ValueError):  # a shape this client does not know
            text = orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode()
        print(text)
    explain(reply, method, path)
    return 0 if reply.status < 400 else 1


def _usage(args: argparse.Namespace, message: str) -> int:
    print(f"nautilus-hmm ctl {args.action}: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_strategies(args: argparse.Namespace) -> int:
    """`ctl strategies [ID]` and `ctl strategies enable|disable|reduce ID [--reason R]`."""
    first, second = args.target, args.strategy_id
    if first in STRATEGY_ACTIONS:
        if second is None:
            return _usage(args, f"{first} needs a strategy id: ctl strategies {first} ID [--reason R]")
        body = {"reason": args.reason} if args.reason else {}
        path = f"/admin/strategies/{urllib.parse.quote(second, safe='')}/{first}"
        return show(args, "POST", path, render_state_change, body)
    if second is not None:
        return _usage(args, f"{first!r} is not an action (enable, disable, reduce); "
                            f"to show a strategy: ctl strategies ID")
    if args.reason:
        return _usage(args, "--reason goes with enable, disable or reduce")
    if first is None:
        return show(args, "GET", "/strategies", render_strategies)
    return show(args, "GET", f"/strategies/{urllib.parse.quote(first, safe='')}", render_strategy)


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
        return show(args, "POST", "/admin/allocations/clear_override", render_allocations)
    if not pairs:
        if args.expires_s is not None:
            return _usage(args, "--expires-s goes with --set ID=SHARE")
        return show(args, "GET", "/allocations", render_allocations)
    if args.expires_s is None:
        return _usage(args, "--set needs --expires-s N: how many seconds the override holds")
    shares: dict[str, float] = {}
    for sid, share in pairs:
        if sid in shares:
            return _usage(args, f"--set {sid}=... is given twice")
        shares[sid] = share
    return show(args, "POST", "/admin/allocations", render_allocations,
                {"shares": shares, "expires_s": args.expires_s})


def cmd_governance(args: argparse.Namespace) -> int:
    """`ctl governance`."""
    return show(args, "GET", "/governance", render_governance)


def add_control_commands(actions: Any) -> list[argparse.ArgumentParser]:
    """The control-plane actions of `ctl` (strategies, allocations, governance); returns their parsers."""
    strat = actions.add_parser(
        "strategies", help="GET /strategies[/ID]; enable|disable|reduce ID: POST /admin/strategies/ID/ACTION",
        description="Without arguments: every strategy. With ID: that strategy. "
                    "With enable|disable|reduce ID: change its state (token required).")
    strat.add_argument("target", nargs="?", metavar="ID | enable | disable | reduce")
    strat.add_argument("strategy_id", nargs="?", metavar="ID", help="the strategy an action applies to")
    strat.add_argument("--reason", help="why (audit log and event), with enable/disable/reduce")
    strat.set_defaults(ctl_func=cmd_strategies)
    alloc = actions.add_parser(
        "allocations", help="GET /allocations; --set ID=SHARE ... --expires-s N: POST /admin/allocations",
        description="Without options: the allocator's shares. With --set: a manual override of every share "
                    "(a strategy left out gets 0; the shares must sum to 1 within each strategy's bounds) "
                    "until --expires-s seconds from now (token required).")
    alloc.add_argument("--set", action="append", type=share_arg, metavar="ID=SHARE",
                       help="a strategy's share (0..1), repeated for each strategy")
    alloc.add_argument("--expires-s", type=positive_seconds, metavar="N",
                       help="seconds the override holds before the computed shares return")
    alloc.add_argument("--clear", action="store_true", help="end the override now (token required)")
    alloc.set_defaults(ctl_func=cmd_allocations)
    gov = actions.add_parser("governance", help="GET /governance: rules, status and recent decisions")
    gov.set_defaults(ctl_func=cmd_governance)
    parsers = [strat, alloc, gov]
    for p in parsers:
        p.add_argument("--json", action="store_true", help="print the answer's JSON instead of a table")
    return parsers
