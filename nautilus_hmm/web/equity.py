"""GET /equity: the account's equity, peak and drawdown over time, read from the journal.

The samples are the journal's position snapshots (`[journal] snapshot_interval_s`, each
holds the equity, the peak drawdown is measured from and the drawdown), so the curve
survives restarts; `current` is the engine's value now, so a chart ends at the present.

`since` is an ISO 8601 time (`2026-12-03T14:00:00Z`, `2026-12-03T15:00+01:00`; without an
offset it is UTC) or seconds since the epoch (`1764770400`, `1764770400.5`); absent, the
whole history. `points` caps the samples (evenly spaced, the newest always kept). A value
that is neither is answered 400 naming the parameter and the value.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from nautilus_hmm.execution.views import money_str, pct_str
from nautilus_hmm.journal.errors import JournalError
from nautilus_hmm.web.routes import Param, Route
from nautilus_hmm.web.server import error, json_response

_NS_PER_S = 1_000_000_000
MAX_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_POINTS = 2000
MAX_POINTS = 10_000


class SinceError(ValueError):
    """A `since` value that is neither an ISO 8601 time nor epoch seconds."""


def parse_since(text: str) -> int:
    """`since` (ISO 8601 or epoch seconds, see the module docstring) as epoch nanoseconds."""
    raw = text.strip()
    if not raw:
        raise SinceError("empty")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_EPOCH_S:
            raise SinceError(f"epoch seconds must be between 0 and {MAX_EPOCH_S}")
        # whole seconds exactly (a float of 1.7e9 s has no spare digits for nanoseconds)
        if "." not in raw and "e" not in raw.lower():
            return int(raw) * _NS_PER_S
        return int(Decimal(raw) * _NS_PER_S)
    try:
        when = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise SinceError("expected an ISO 8601 time (2026-12-03T14:00:00Z) or epoch seconds") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        delta = when - _EPOCH
    except OverflowError as exc:  # an offset that moves year 1 before year 1
        raise SinceError("before 1970-01-01T00:00:00Z") from exc
    if delta.days < 0:
        raise SinceError("before 1970-01-01T00:00:00Z")
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000


def _decimal(text: str) -> Decimal | None:
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def equity_document(rows: list[Any], currency: str, current: dict[str, Any], since_ns: int,
                    now_ns: int) -> dict[str, Any]:
    """The /equity body from journal rows (`EquitySampleRow`) and the engine's pnl view; a
    row whose numbers do not parse, or in another currency, is counted in `skipped`."""
    samples = []
    skipped = 0
    for r in rows:
        eq, peak, dd = _decimal(r.equity), _decimal(r.peak_equity), _decimal(r.drawdown_pct)
        if eq is None or peak is None or dd is None or (r.currency and r.currency != currency):
            skipped += 1
            continue
        samples.append({"ts_ns": r.ts_ns, "equity": money_str(eq, currency),
                        "peak_equity": money_str(max(peak, eq), currency), "drawdown_pct": pct_str(dd)})
    return {
        "currency": currency,
        "since_ns": since_ns,
        "samples": samples,
        "skipped": skipped,
        "current": {"ts_ns": now_ns, "equity": current["equity"], "peak_equity": current["peak_equity"],
                    "drawdown_pct": current["drawdown_pct"]},
    }


def equity_route(stack: Any) -> Route:
    """GET /equity over a TradingStack (its journal, engine and clock)."""

    async def equity(request: web.Request) -> web.Response:
        raw_since = request.query.get("since")
        since_ns = 0
        if raw_since is not None:
            try:
                since_ns = parse_since(raw_since)
            except SinceError as exc:
                return error(400, f"since = {raw_since!r}: {exc}", parameter="since", value=raw_since)
        raw_points = request.query.get("points")
        points = DEFAULT_POINTS
        if raw_points is not None:
            try:
                points = int(raw_points)
            except ValueError:
                return error(400, f"points = {raw_points!r}: expected an integer", parameter="points",
                             value=raw_points)
            if not 2 <= points <= MAX_POINTS:
                return error(400, f"points = {points}: must be between 2 and {MAX_POINTS}", parameter="points",
                             value=raw_points)
        try:
            rows = await stack.journal.query_equity_samples(since_ns, points)
        except JournalError as exc:  # closed while the daemon stops, or unreadable: the page says so
            return error(503, f"equity history unavailable: the journal cannot be read ({exc})")
        pnl = stack.engine.pnl_view()
        return json_response(equity_document(rows, pnl["currency"], pnl, since_ns, stack.clock.time_ns()))

    sample = {"type": "object", "properties": {
        "ts_ns": {"type": "integer"}, "equity": {"type": "string"}, "peak_equity": {"type": "string"},
        "drawdown_pct": {"type": "string"}}, "required": ["ts_ns", "equity", "peak_equity", "drawdown_pct"]}
    return Route(
        "GET", "/equity", equity,
        "Account equity, peak and drawdown over time from the journal's position snapshots (kept across "
        "restarts), plus the current value",
        query=(Param("since", str, "ISO 8601 time (no offset = UTC) or epoch seconds; absent = all history"),
               Param("points", int, f"at most this many samples, evenly spaced ({DEFAULT_POINTS}, "
                                    f"2..{MAX_POINTS})")),
        responses={200: "samples oldest first and the current value", 400: "bad since or points, named",
                   503: "the journal cannot be read (closed while stopping)"},
        tag="trading",
        schemas={200: {"type": "object", "properties": {
            "currency": {"type": "string"}, "since_ns": {"type": "integer"},
            "samples": {"type": "array", "items": sample}, "skipped": {"type": "integer"}, "current": sample},
            "required": ["currency", "since_ns", "samples", "skipped", "current"]}},
    )
