"""Read-only trading views: /orders, /positions, /fills (and /equity, `web.equity`).

Every decimal is a string in fixed notation, quantized to the instrument (quantities,
prices) or to its asset (money); the response schemas in the OpenAPI document say so
field by field (`execution.views`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nautilus_hmm.execution import views
from nautilus_hmm.web.equity import equity_route
from nautilus_hmm.web.routes import Param, Route
from nautilus_hmm.web.server import error, json_response


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int | web.Response:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return error(400, f"{name} = {raw!r}: expected an integer")
    if not lo <= value <= hi:
        return error(400, f"{name} = {value}: must be between {lo} and {hi}")
    return value


def trading_routes(stack: Any) -> list[Route]:
    """Routes over a TradingStack (engine + journal)."""

    async def orders(request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 500, 1, 10_000)
        if isinstance(limit, web.Response):
            return limit
        open_only = request.query.get("open", "").lower() in ("1", "true", "yes")
        return json_response({"orders": await stack.engine.order_views_complete(open_only, limit)})

    async def positions(request: web.Request) -> web.Response:
        return json_response({"positions": stack.engine.position_views(), "pnl": stack.engine.pnl_view()})

    async def fills(request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 1000, 1, 10_000)
        if isinstance(limit, web.Response):
            return limit
        since = _int_param(request, "since", 0, 0, 2**63 - 1)
        if isinstance(since, web.Response):
            return since
        rows = await stack.journal.query_fills(since, limit)
        return json_response({"fills": [stack.engine.fill_view(r) for r in rows],
                              "next_since": (rows[-1].ts_ns + 1) if rows else since})

    return [
        Route("GET", "/orders", orders, "Orders, newest first",
              query=(Param("open", bool, "only open orders"), Param("limit", int, "at most this many (500)")),
              responses={200: "orders", 400: "bad query parameter"}, tag="trading",
              schemas={200: _obj({"orders": {"type": "array", "items": views.ORDER_SCHEMA}})}),
        Route("GET", "/positions", positions, "Positions, marks, PnL and equity (every balance at its mark; "
              "balances without a mark are listed in pnl.unvalued)", tag="trading",
              responses={200: "positions and pnl"},
              schemas={200: _obj({"positions": {"type": "array", "items": views.POSITION_SCHEMA},
                                  "pnl": views.PNL_SCHEMA})}),
        Route("GET", "/fills", fills, "Journaled fills since a time (ns), oldest first",
              query=(Param("since", int, "ts_ns lower bound (inclusive)"), Param("limit", int, "page size (1000)")),
              responses={200: "fills and next_since cursor", 400: "bad query parameter"}, tag="trading",
              schemas={200: _obj({"fills": {"type": "array", "items": views.FILL_SCHEMA},
                                  "next_since": {"type": "integer"}})}),
        equity_route(stack),
    ]


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}
