"""Read-only trading views: /orders, /positions, /fills."""

from __future__ import annotations

from typing import Any

from aiohttp import web

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
        return json_response({"orders": stack.engine.order_views(open_only, limit)})

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
        return json_response({"fills": [
            {"ts_ns": r.ts_ns, "venue": r.venue, "instrument_id": str(r.instrument_id), "trade_id": r.trade_id,
             "client_order_id": r.client_order_id, "venue_order_id": r.venue_order_id, "side": r.side.value,
             "qty": str(r.qty), "price": str(r.price), "fee": str(r.fee), "fee_asset": r.fee_asset,
             "liquidity": r.liquidity.value}
            for r in rows
        ], "next_since": (rows[-1].ts_ns + 1) if rows else since})

    return [
        Route("GET", "/orders", orders, "Orders, newest first",
              query=(Param("open", bool, "only open orders"), Param("limit", int, "at most this many (500)")),
              responses={200: "orders", 400: "bad query parameter"}, tag="trading"),
        Route("GET", "/positions", positions, "Positions, marks, PnL and equity", tag="trading"),
        Route("GET", "/fills", fills, "Journaled fills since a time (ns), oldest first",
              query=(Param("since", int, "ts_ns lower bound (inclusive)"), Param("limit", int, "page size (1000)")),
              responses={200: "fills and next_since cursor", 400: "bad query parameter"}, tag="trading"),
    ]
