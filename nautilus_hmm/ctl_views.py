"""Human views of the daemon's API answers for `nautilus-hmm ctl` (rich renderables).

Every `render_*` takes the decoded JSON of one route and returns a rich renderable; `emit`
prints it: on a terminal with colour (rich honours NO_COLOR) and wrapped to its width,
otherwise (a pipe, a file) as plain text with no escape codes and no wrapping, so
`ctl positions | grep BTC` sees one line per row. `plain` is that text, for tests.

Pure formatting: no I/O beyond the stream handed to `emit`, no import of the project.
A field missing from an answer is shown as `-`; an answer of a shape a renderer does not
know raises (KeyError, TypeError, AttributeError, ValueError) and the caller prints the
JSON instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

PLAIN_WIDTH = 100_000  # no wrapping when not a terminal: a row stays one line

STATE_STYLES = {"ACTIVE": "bold green", "REDUCING": "bold yellow", "HALTED": "bold red",
                "active": "green", "reduce": "yellow", "disabled": "dim", "running": "green",
                "FILLED": "green", "CANCELED": "dim", "REJECTED": "red", "EXPIRED": "dim",
                "BUY": "green", "SELL": "red"}


# ------------------------------------------------------------------ output


def plain(renderable: RenderableType) -> str:
    """The renderable as plain text: no colour, no wrapping, trailing blanks stripped."""
    buf = io.StringIO()
    Console(file=buf, width=PLAIN_WIDTH, color_system=None, force_terminal=False, no_color=True,
            highlight=False, emoji=False, legacy_windows=False).print(renderable)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").split("\n"))


def emit(renderable: RenderableType, stream: TextIO | None = None) -> None:
    """Print a view: rich on a terminal, `plain` text otherwise."""
    out = stream if stream is not None else sys.stdout
    if _isatty(out):
        Console(file=out, highlight=False, emoji=False).print(renderable)
    else:
        out.write(plain(renderable) + "\n")


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


# ------------------------------------------------------------------ cells


def num(value: Any, fmt: str = "{:,.2f}") -> str:
    """A number formatted ('-' when absent; the text itself when not a number)."""
    if value is None or value == "":
        return "-"
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return one_line(str(value))


def pct(share: Any) -> str:
    """A share 0..1 as a percentage."""
    return "-" if share is None else num(share, "{:.1%}")


def when(ts_ns: Any) -> str:
    """A ts_ns as UTC `YYYY-MM-DD HH:MM:SS` ('-' when absent)."""
    if not isinstance(ts_ns, int) or isinstance(ts_ns, bool) or ts_ns <= 0:
        return "-"
    try:
        return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):  # beyond the calendar: the number as it came
        return str(ts_ns)


def utc(ts_ns: Any) -> str:
    """`when` with ' UTC', or 'never'."""
    text = when(ts_ns)
    return "never" if text == "-" else f"{text} UTC"


def cut(text: str, width: int) -> str:
    """`text` cut to `width` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def scalar(value: Any) -> str:
    """Any JSON value on one line."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={scalar(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(scalar(v) for v in value) or "-"
    return one_line(str(value))


def one_line(text: str) -> str:
    """`text` with its line breaks escaped: a row or an event stays one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _signed(value: Any, fmt: str = "{:,.2f}") -> Text:
    """A money amount, green above 0 and red below (on a terminal)."""
    text = num(value, fmt)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return Text(text)
    return Text(text, style="green" if x > 0 else "red" if x < 0 else "")


def _styled(value: Any) -> Text:
    text = "-" if value is None or value == "" else one_line(str(value))
    return Text(text, style=STATE_STYLES.get(text, ""))


def _is_zero(value: Any) -> bool:
    try:
        return float(value) == 0
    except (TypeError, ValueError):
        return False


def _numeric(cell: str) -> bool:
    return bool(cell) and cell.lstrip("-+").replace(",", "").replace(".", "", 1).rstrip("%").isdigit()


def table(headers: list[str], rows: Iterable[list[Any]]) -> Table:
    """A borderless table: columns padded to their widest cell, numbers right-aligned.

    Cells are str or rich Text; a column whose cells are all numbers (or '-') is right-aligned."""
    rows = [[c if isinstance(c, Text) else Text(one_line(str(c))) for c in r] for r in rows]
    t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", highlight=False)
    for i, h in enumerate(headers):
        cells = [r[i].plain for r in rows]
        right = any(_numeric(c) for c in cells) and all(_numeric(c) or c == "-" for c in cells)
        # A Text header: a value from the answer in it (a currency) is never read as rich markup.
        t.add_column(Text(h), justify="right" if right else "left", no_wrap=False)
    for r in rows:
        t.add_row(*r)
    return t


def _lines(*parts: RenderableType | None) -> Group:
    return Group(*[p for p in parts if p is not None])


# ------------------------------------------------------------------ status and trading


def _duration(seconds: Any) -> str:
    try:
        s = int(float(seconds))
    except (TypeError, ValueError):
        return "-"
    d, rem = divmod(s, 86_400)
    h, rem = divmod(rem, 3_600)
    m, s = divmod(rem, 60)
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + (f"{m}m " if d or h or m else "") + f"{s}s"


def _pnl_line(pnl: dict[str, Any]) -> Text:
    cur = pnl.get("currency", "")
    out = Text(f"equity {num(pnl.get('equity'))} {cur}".rstrip())
    out.append(f" (peak {num(pnl.get('peak_equity'))}, drawdown {num(pnl.get('drawdown_pct'), '{:.2f}')}%)")
    out.append("; realized ")
    out.append_text(_signed(pnl.get("realized_pnl")))
    out.append(", unrealized ")
    out.append_text(_signed(pnl.get("unrealized_pnl")))
    out.append(f", fees {num(pnl.get('fees'))}, today ")
    out.append_text(_signed(pnl.get("day_realized_pnl")))
    return out


def _positions_table(positions: list[dict[str, Any]]) -> Table | Text:
    held = [p for p in positions if not _is_zero(p.get("qty"))]
    if not held:
        return Text("no open positions (flat)")
    return table(["INSTRUMENT", "QTY", "AVG PX", "MARK", "UNREALIZED", "REALIZED", "FEES", "EXPOSURE"],
                 [[str(p["instrument_id"]), str(p.get("qty", "-")), str(p.get("avg_px") or "-"),
                   str(p.get("mark") or "-"), _signed(p.get("unrealized_pnl")), _signed(p.get("realized_pnl")),
                   num(p.get("fees")), num(p.get("exposure"))] for p in held])


def render_positions(answer: dict[str, Any]) -> RenderableType:
    """GET /positions: the positions, then equity and PnL, then every balance at its mark."""
    pnl = answer.get("pnl") or {}
    parts: list[RenderableType] = [_positions_table(answer["positions"]), Text("")]
    if pnl:
        parts.append(_pnl_line(pnl))
        balances = pnl.get("balances") or {}
        if balances:
            parts += [Text(""), table(["ASSET", "TOTAL", f"MARK ({pnl.get('currency', '-')})", "VALUE"],
                                      [[asset, str(b.get("total", "-")), str(b.get("mark") or "-"),
                                        num(b.get("value")) if b.get("value") is not None else "unvalued"]
                                       for asset, b in balances.items()])]
    return _lines(*parts)


def _orders_table(orders: list[dict[str, Any]]) -> Table:
    return table(["CREATED (UTC)", "CLIENT ORDER ID", "STRATEGY", "INSTRUMENT", "SIDE", "TYPE", "QTY", "PRICE",
                  "FILLED", "AVG PX", "STATUS", "REASON"],
                 [[when(o.get("created_ns")), str(o["client_order_id"]), str(o.get("strategy_id") or "-"),
                   str(o.get("instrument_id", "-")), _styled(o.get("side")), str(o.get("order_type", "-")),
                   str(o.get("quantity", "-")), str(o.get("price") or "-"), str(o.get("filled_qty", "-")),
                   str(o.get("avg_px") or "-"), _styled(o.get("status")), cut(str(o.get("reason") or ""), 40)]
                  for o in orders])


def render_orders(answer: dict[str, Any]) -> RenderableType:
    """GET /orders: one row per order, newest first."""
    orders = answer["orders"]
    return _orders_table(orders) if orders else Text("no orders")


def render_fills(answer: dict[str, Any]) -> RenderableType:
    """GET /fills: one row per fill, oldest first, and the cursor of the next page."""
    fills = answer["fills"]
    if not fills:
        return Text("no fills")
    rows = [[when(f.get("ts_ns")), str(f.get("instrument_id", "-")), _styled(f.get("side")), str(f.get("qty", "-")),
             str(f.get("price", "-")), f"{f.get('fee', '-')} {f.get('fee_asset', '')}".rstrip(),
             str(f.get("liquidity", "-")), str(f.get("trade_id", "-")), str(f.get("client_order_id", "-"))]
            for f in fills]
    t = table(["TIME (UTC)", "INSTRUMENT", "SIDE", "QTY", "PRICE", "FEE", "LIQUIDITY", "TRADE ID",
               "CLIENT ORDER ID"], rows)
    nxt = answer.get("next_since")
    return _lines(t, Text(f"\n{len(fills)} fill(s); next page: --since {nxt}") if nxt is not None else None)


def render_status(answer: dict[str, Any]) -> RenderableType:
    """GET /status: version, uptime, trading state, PnL, components, positions, open orders."""
    state = str(answer["trading_state"])
    head = Text(f"nautilus-hmm {answer.get('version', '?')}, up {_duration(answer.get('uptime_s'))}, trading ")
    head.append(state, style=STATE_STYLES.get(state, "bold"))
    if answer.get("trading_state_reason"):
        head.append(f" ({answer['trading_state_reason']})")
    if answer.get("mode") == "monitor":
        head.append("; MONITOR MODE: never sends an order", style="bold yellow")
    cfg = answer.get("config") or {}
    lag = answer.get("loop_lag_p99_s")
    lines: list[RenderableType] = [head, Text(
        f"config {cfg.get('hash', '-')} ({cfg.get('path', '-')}, loaded {utc(cfg.get('loaded_at_ns'))}); "
        f"loop lag p99 {num(lag * 1000 if isinstance(lag, int | float) else None, '{:.1f}')} ms")]
    risk = answer.get("risk") or {}
    venues = risk.get("venues") or {}
    if venues:
        breakers = risk.get("breakers") or {}
        lines.append(Text("venues: " + ", ".join(
            f"{v} {row.get('state', '-')}" + (f" ({row['reason']})" if row.get("reason") else "")
            + (f", breaker {breakers[v]}" if v in breakers else "")
            for v, row in venues.items())))
    pnl = answer.get("pnl") or {}
    if pnl:
        lines.append(_pnl_line(pnl))
    execution = answer.get("execution") or {}
    if execution:
        unknown = execution.get("unknown_outcome") or []
        lines.append(Text(f"orders {execution.get('orders', '-')}, fills {execution.get('fills', '-')}, "
                          f"rejected {execution.get('rejected', '-')}"
                          + (f", UNKNOWN OUTCOME: {', '.join(map(str, unknown))}" if unknown else "")))
    monitor = answer.get("monitor") or {}
    if isinstance(monitor, dict) and monitor.get("withheld_orders"):
        lines.append(Text("withheld by monitor mode: " + scalar(monitor["withheld_orders"])))
    models = answer.get("models") or {}
    if isinstance(models, dict) and models:
        training = models.get("training")
        lines.append(Text(f"models: production {models.get('production') or '-'}, canary {models.get('canary') or '-'}"
                          + (f", training {scalar(training.get('reason')) if isinstance(training, dict) else 'yes'}"
                             if training else "")
                          + (f"; PROBLEM: {models['problem']}" if models.get("problem") else "")))
    recon = answer.get("reconciliation") or {}
    bad = [v for v, r in recon.items() if isinstance(r, dict) and not r.get("ok", True)]
    if recon:
        lines.append(Text("reconciliation: " + (f"NOT OK for {', '.join(bad)}" if bad else "ok"),
                          style="bold red" if bad else ""))
    comps = answer.get("components") or {}
    if comps:
        rows = []
        for name, c in comps.items():
            healthy = c.get("healthy")
            rows.append([name, _styled(c.get("state")),
                         Text("yes" if healthy else "NO", style="" if healthy else "bold red"),
                         str(c.get("restarts", "-")), cut(str(c.get("detail") or c.get("last_error") or ""), 60)])
        lines += [Text(""), table(["COMPONENT", "STATE", "HEALTHY", "RESTARTS", "DETAIL"], rows)]
    lines += [Text(""), _positions_table(answer.get("positions") or [])]
    orders = answer.get("open_orders") or []
    lines += [Text(""), _orders_table(orders) if orders else Text("no open orders")]
    return _lines(*lines)


def render_trading_state(answer: dict[str, Any]) -> RenderableType:
    """The answer of kill / reduce / resume: the new state and what was sent."""
    state = str(answer["trading_state"])
    out = Text("trading ")
    out.append(state, style=STATE_STYLES.get(state, "bold"))
    if answer.get("venue_state") is not None:
        out.append(f" (this venue: {answer['venue_state']})")
    if answer.get("cancel_requests") is not None:
        out.append(f"; {answer['cancel_requests']} cancel request(s) sent")
    if answer.get("flatten_orders") is not None:
        out.append(f"; {answer['flatten_orders']} flatten order(s) sent, HALTED once flat")
    return out


def render_reload(answer: dict[str, Any]) -> RenderableType:
    """The answer of reload: result, hash, changed fields (errors come as an error answer)."""
    changed = answer.get("changed") or []
    text = f"config reload: {answer['result']} (hash {answer.get('config_hash', '-')})"
    if changed:
        text += "; changed: " + ", ".join(map(str, changed))
    return Text(text)


# ------------------------------------------------------------------ models and regimes


def render_models(answer: dict[str, Any]) -> RenderableType:
    """GET /models: tags, then one row per registered model, newest first."""
    models = answer["models"]
    head = Text(f"production {answer.get('production') or '-'}, canary {answer.get('canary') or '-'}")
    if not models:
        return _lines(head, Text("no models registered"))
    rows = []
    for m in models:
        metrics = m.get("metrics") or {}
        shown = ", ".join(f"{k}={scalar(v)}" for k, v in list(metrics.items())[:3]) if isinstance(metrics, dict) \
            else scalar(metrics)
        status = str(m.get("status") or "-")
        rows.append([str(m["id"]), Text(status, style={"production": "bold green", "canary": "yellow",
                                                         "retired": "dim"}.get(status, "")),
                     str(m.get("created_at") or "-"), str(m.get("instrument") or "-"), str(m.get("n_bars", "-")),
                     str(m.get("source") or "-"), cut(str(m.get("error") or shown or "-"), 60)])
    return _lines(head, Text(""), table(["ID", "STATUS", "CREATED", "INSTRUMENT", "BARS", "SOURCE", "METRICS"], rows))


def _posterior(lane: dict[str, Any] | None, level: str) -> str:
    if not lane or not isinstance(lane.get(level), dict):
        return "-"
    part = lane[level]
    p = (part.get("posteriors") or {}).get(part.get("state"))
    return f"{part.get('state', '-')} {num(p, '{:.2f}')}" if p is not None else str(part.get("state", "-"))


def render_regimes(answer: dict[str, Any]) -> RenderableType:
    """GET /regimes: per instrument and lane, the regime with its posterior and the decision."""
    head = Text(f"production {answer.get('production') or '-'}, canary {answer.get('canary') or '-'}")
    rows = []
    for iid, lanes in (answer["instruments"] or {}).items():
        for lane_name in ("production", "canary"):
            lane = lanes.get(lane_name)
            if lane is None:
                continue
            d = lane.get("decision") or {}
            state = ("stale" if lane.get("stale") else "ready" if lane.get("ready")
                     else f"warming up ({lane.get('warmup_bars_left', '?')} bars)")
            decision = (f"{d.get('action', '-')} -> {num(d.get('target_exposure'), '{:.2f}')}"
                        + (f" [{d['guardrail']}]" if d.get("guardrail") else "")) if d else "-"
            rows.append([iid, lane_name + (" (shadow)" if lane.get("shadow") else ""), str(lane.get("model_id", "-")),
                         state, _posterior(lane, "macro"), _posterior(lane, "micro"), decision,
                         num(lane.get("exposure"), "{:.2f}"), when(lane.get("ts_ns"))])
    if not rows:
        return _lines(head, Text("no instruments"))
    return _lines(head, Text(""), table(["INSTRUMENT", "LANE", "MODEL", "STATE", "MACRO (P)", "MICRO (P)", "DECISION",
                                         "EXPOSURE", "AT (UTC)"], rows))


# ------------------------------------------------------------------ events


EVENT_SKIP = ("type", "ts_event_ns", "ts_init_ns")


def render_event(event: str, data: Any) -> Text:
    """One SSE event as one line: time, type, then its fields as key=value."""
    ts = data.get("ts_event_ns") if isinstance(data, dict) else None
    stamp = "--:--:--.---"
    if isinstance(ts, int) and not isinstance(ts, bool) and ts > 0:
        with contextlib.suppress(ValueError, OverflowError, OSError):  # beyond the calendar: no time
            stamp = dt.datetime.fromtimestamp(ts / 1e9, dt.UTC).strftime("%H:%M:%S.%f")[:-3]
    out = Text(f"{stamp}  ")
    out.append(one_line(event), style="bold")
    if isinstance(data, dict):
        fields = " ".join(f"{k}={scalar(v)}" for k, v in data.items() if k not in EVENT_SKIP)
    else:
        fields = scalar(data)
    if fields:
        out.append("  " + fields)
    return out


# ------------------------------------------------------------------ control plane


def _positions(value: Any) -> str:
    if not isinstance(value, dict):
        return scalar(value)
    held = [f"{iid} {qty}" for iid, qty in value.items() if not _is_zero(qty)]
    return ", ".join(held) or "flat"


def _last_target(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "-"
    if value.get("exposure") is not None:
        size = f"exposure {num(value['exposure'], '{:.2f}')}"
    elif value.get("target_qty") is not None:
        size = f"qty {value['target_qty']}"
    else:
        size = "-"
    where = f"{value['instrument']} " if value.get("instrument") else ""
    lane = "" if value.get("lane", "production") == "production" else f" [{value['lane']}]"
    reason = f" ({value['reason']})" if value.get("reason") else ""
    return cut(f"{where}{size}{lane}{reason}", 60)


def render_strategies(answer: dict[str, Any]) -> RenderableType:
    """GET /strategies as a table."""
    rows = answer["strategies"]
    if not rows:
        return Text("no strategies configured")
    out = []
    for r in rows:
        out.append([str(r.get("strategy_id", r.get("id", "?"))), str(r.get("kind", "-")), _styled(r.get("state", "-")),
                    pct(r.get("share")), num(r.get("capital_usd")), num(r.get("equity_usd")),
                    _signed(r.get("pnl_usd")), num(r.get("drawdown_pct"), "{:.2f}"), str(r.get("denials", "-")),
                    _positions(r.get("positions")), _last_target(r.get("last_target"))])
    return table(["ID", "KIND", "STATE", "SHARE", "CAPITAL_USD", "EQUITY_USD", "PNL_USD", "DD_PCT", "DENIALS",
                  "POSITIONS", "LAST TARGET"], out)


def mapping_lines(value: dict[str, Any], indent: int = 0) -> str:
    """Nested fields as `key: value` lines, nested objects indented beneath their key."""
    pad = "  " * indent
    lines = []
    for k, v in value.items():
        if isinstance(v, dict) and v and any(isinstance(x, dict | list) for x in v.values()):
            lines.append(f"{pad}{k}:")
            lines.append(mapping_lines(v, indent + 1))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            lines.append(f"{pad}{k}:")
            lines.extend(f"{pad}  - {scalar(x)}" for x in v)
        else:
            lines.append(f"{pad}{k}: {scalar(v)}")
    return "\n".join(lines)


STRATEGY_FIRST = ("strategy_id", "id", "kind", "state", "enabled", "share", "capital_usd", "equity_usd", "pnl_usd",
                  "positions", "last_target")


def render_strategy(answer: dict[str, Any]) -> RenderableType:
    """GET /strategies/{id} as `key: value` lines, identity and money first."""
    first = {k: answer[k] for k in STRATEGY_FIRST if k in answer}
    return Text(mapping_lines({**first, **{k: v for k, v in answer.items() if k not in first}}))


def render_state_change(answer: dict[str, Any]) -> RenderableType:
    """A state action's answer (the strategy's view) as one line: id, new state, share."""
    sid = answer.get("strategy_id", answer.get("id", "?"))
    return Text(f"{sid}: now {answer.get('state', '?')} (share {pct(answer.get('share'))})")


def render_allocations(answer: dict[str, Any]) -> RenderableType:
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
        head.append(f"override by {ov.get('source', '-')}, expires in {num(ov.get('expires_in_s'), '{:.0f}')} s")
    if answer.get("rebalances") is not None:
        head.append(f"{answer['rebalances']} rebalance(s), last {utc(answer.get('last_rebalance_ns'))}, "
                    f"next in {num(answer.get('next_rebalance_in_s'), '{:.0f}')} s")
    if answer.get("state_write_error"):
        head.append(f"WARNING: state file not written: {answer['state_write_error']}")
    ids = list(dict.fromkeys([*shares, *bounds, *computed]))
    rows = []
    for sid in ids:
        b = bounds.get(sid) or {}
        arm = arms.get(sid) or {}
        rows.append([sid, pct(shares.get(sid)), pct(computed.get(sid)), pct(static.get(sid)),
                     pct(b.get("min_share")), pct(b.get("max_share")), num(b.get("weight"), "{:g}"),
                     pct(arm.get("weight"))])
    body: RenderableType = table(["ID", "SHARE", "COMPUTED", "STATIC", "MIN", "MAX", "WEIGHT", "BANDIT"], rows) \
        if rows else Text("no strategies allocated")
    return _lines(Text("; ".join(head)), Text(""), body)


def render_governance(answer: dict[str, Any]) -> RenderableType:
    """GET /governance: mode, rules, per-strategy status, recent decisions."""
    mode = "off" if not answer.get("enabled", True) else ("dry run (decides, never acts)"
                                                           if answer.get("dry_run") else "acting")
    out: list[RenderableType] = [Text(f"governance: {mode}; every {num(answer.get('interval_s'), '{:g}')} s, "
                                      f"{answer.get('evaluations', 0)} evaluation(s), "
                                      f"last {utc(answer.get('last_evaluated_ns'))}")]
    rules = answer.get("rules") or {}
    if isinstance(rules, dict) and rules:
        out += [Text(""), Text("RULES")]
        out += [Text(f"  {name}: {scalar(cfg)}") for name, cfg in rules.items()]
    strategies = answer.get("strategies") or {}
    if isinstance(strategies, dict) and strategies:
        rows = []
        for sid, st in strategies.items():
            statuses = st.get("rules") or {}
            flagged = [f"{rule}: {row.get('status')}" + (f" ({row['reason']})" if row.get("reason") else "")
                       for rule, row in statuses.items() if isinstance(row, dict) and row.get("status") != "ok"]
            rows.append([sid, _styled(st.get("state") or "-"), str(st.get("held_by") or "-"),
                         cut("; ".join(flagged) or "all ok", 80)])
        out += [Text(""), table(["ID", "STATE", "HELD BY", "RULES NOT OK"], rows)]
    decisions = answer.get("decisions") or []
    out += [Text(""), Text("DECISIONS (newest first)" if decisions else "no decisions yet")]
    if decisions:
        out.append(table(["TIME (UTC)", "RULE", "STRATEGY", "ACTION", "ACTED", "REASON"],
                         [[when(d.get("ts_ns")), str(d.get("rule", "-")), str(d.get("strategy_id", "-")),
                           str(d.get("action", "-")), scalar(d.get("acted")), cut(str(d.get("reason", "")), 70)]
                          for d in decisions]))
    return _lines(*out)
