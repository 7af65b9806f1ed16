"""The emulator's WebSocket API (`/ws-api/v3` spot, `/ws-fapi/v1` USD-M): order entry over a websocket.

`order.place`, `order.cancel`, `order.status` (method names may carry a `v3/` prefix) are
each the twin of a REST endpoint and are served by the same request path
(`RestApi.process`: bans, weights, faults, matching). Requests are signed per request
(apiKey, timestamp, recvWindow, signature over the params sorted by name: -1102 / -2015 /
-1022 / -1021 as on REST); answers are `{"id","status","result","rateLimits"}` or
`{"id","status","error":{"code","msg"[,"data":{"serverTime","retryAfter"}]},"rateLimits"}`
(429/418 carry the end of the limit or ban in `retryAfter`, epoch ms). Each connection
costs weight (2 spot, 5 USD-M), is pinged every 20 s (spot) / 3 min (USD-M) and closed
when a ping goes unanswered for 1 min / 10 min, and is cut at 24 h. Requests on one
connection are processed concurrently (a withheld answer does not hold the next one); a
request received is processed even if its connection closes meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from nautilus_hmm.venues.binance.auth import format_value, ws_api_payload
from nautilus_hmm.venues.binance.emulator.exchange import EmulatorError
from nautilus_hmm.venues.binance.emulator.rest import Route, close_receipt, error_answer
from nautilus_hmm.venues.binance.market import Market

if TYPE_CHECKING:
    from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator

log = structlog.get_logger("venues.binance.emulator")

WS_API_PATH = {Market.SPOT: "/ws-api/v3", Market.USDM: "/ws-fapi/v1"}
WS_API_CONNECT_WEIGHT = {Market.SPOT: 2, Market.USDM: 5}
# Server pings and how long a ping may go unanswered (spot: 20 s / 1 min; USD-M: 3 / 10 min).
WS_API_PING_S = {Market.SPOT: 20.0, Market.USDM: 180.0}
WS_API_PONG_TIMEOUT_S = {Market.SPOT: 60.0, Market.USDM: 600.0}
WS_API_MAX_AGE_S = 24 * 3600.0
# WebSocket API method → the REST route it mirrors (same weight, same handler, same JSON).
WS_API_ROUTES = {"order.place": ("POST", "/order"), "order.cancel": ("DELETE", "/order"),
                 "order.status": ("GET", "/order")}


@dataclass(eq=False, slots=True)
class WsApiConn:
    """One WebSocket API connection."""

    ws: web.WebSocketResponse
    request: web.Request
    opened_s: float
    last_pong_s: float


class WsApi:
    """WebSocket API connections and their requests."""

    def __init__(self, emu: BinanceEmulator) -> None:
        self.emu = emu
        self.conns: set[WsApiConn] = set()
        self.routes: dict[str, Route] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_routes(self, app: web.Application, rest_routes: dict[tuple[str, str], Route], prefix: str) -> None:
        """Map each method to its REST twin (registered already) and serve the WebSocket API path."""
        for ws_method, (http_method, suffix) in WS_API_ROUTES.items():
            self.routes[ws_method] = rest_routes[(http_method, f"{prefix}{suffix}")]
        app.router.add_get(WS_API_PATH[self.emu.market], self._handler)

    def cancel_requests(self) -> None:
        """Cancel every request still being processed (at stop)."""
        for t in list(self._tasks):
            t.cancel()

    async def close(self, code: int | None = None, message: bytes = b"") -> None:
        """Close every connection (with `code`, else aiohttp's normal close)."""
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                if code is None:
                    await conn.ws.close()
                else:
                    await conn.ws.close(code=code, message=message)

    def open_count(self) -> int:
        """Connections not closed."""
        return sum(1 for c in self.conns if not c.ws.closed)

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        emu = self.emu
        ws = web.WebSocketResponse(max_msg_size=1 << 20, autoping=False)
        await ws.prepare(request)
        now_s = emu.clock.monotonic()
        conn = WsApiConn(ws, request, now_s, now_s)
        self.conns.add(conn)
        emu.ws_connects["ws_api"] += 1
        emu.rest.charge(WS_API_CONNECT_WEIGHT[emu.market], emu.server_ms())
        loop = asyncio.get_running_loop()
        keeper = loop.create_task(self._keeper(conn), name="emulator:ws-api-keeper")
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    arrival_ns = time.perf_counter_ns()
                    task = loop.create_task(self._request(conn, msg.data, arrival_ns),
                                            name="emulator:ws-api-request")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                elif msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.PONG:
                    conn.last_pong_s = emu.clock.monotonic()
        finally:
            keeper.cancel()
            self.conns.discard(conn)
        return ws

    async def _keeper(self, conn: WsApiConn) -> None:
        """Pings on the clock; a ping unanswered for the pong timeout, or 24 h of age, closes the connection."""
        clock = self.emu.clock
        ping_s, pong_timeout_s = self.emu.ws_api_ping_s, WS_API_PONG_TIMEOUT_S[self.emu.market]
        ping_sent_s: float | None = None
        last_ping_s = conn.opened_s
        ws = conn.ws
        while not ws.closed:
            now = clock.monotonic()
            if now - conn.opened_s >= WS_API_MAX_AGE_S:
                await ws.close(code=1000, message=b"connection older than 24 h")
                return
            if ping_sent_s is not None and conn.last_pong_s >= ping_sent_s:
                ping_sent_s = None
            if ping_sent_s is not None and now - ping_sent_s >= pong_timeout_s:
                log.info("binance_emulator_ws_api_pong_timeout", after_s=round(now - ping_sent_s, 1))
                await ws.close(code=1008, message=b"pong timeout")
                return
            if ping_sent_s is None and now - last_ping_s >= ping_s:
                with contextlib.suppress(Exception):
                    await ws.ping(b"")
                ping_sent_s = last_ping_s = now
            due = [conn.opened_s + WS_API_MAX_AGE_S]
            due.append(ping_sent_s + pong_timeout_s if ping_sent_s is not None else last_ping_s + ping_s)
            await clock.sleep(max(0.001, min(due) - now))

    def _authenticate(self, raw_params: dict[str, Any], params: dict[str, str], route: Any) -> None:
        """The key and the signature are params; the signed text is the sorted params."""
        key = params.get("apiKey")
        if not key:
            raise EmulatorError(400, -1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or "
                                            "malformed.")
        if not hmac.compare_digest(key, self.emu.api_key):
            raise EmulatorError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        self.emu.rest.check_permission(route)
        self.emu.rest.check_signed(params, ws_api_payload(raw_params), params.get("signature"))

    async def _request(self, conn: WsApiConn, text: str, arrival_ns: int) -> None:
        emu = self.emu
        rest = emu.rest
        received_ms = now_ms = emu.server_ms()
        request_id: Any = None
        method = ""
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            req = None
        if isinstance(req, dict):
            request_id = req.get("id")
            raw_method = req.get("method")
            method = raw_method if isinstance(raw_method, str) else ""
        raw_params = req.get("params") if isinstance(req, dict) else None
        name = method.split("/", 1)[1] if method[:1] == "v" and "/" in method else method  # "v3/order.place"
        route = self.routes.get(name)
        rest.request_counts[f"WS {name or '?'}"] += 1
        if not isinstance(req, dict) or not isinstance(raw_params, dict) or route is None:
            what = "not a JSON request object" if not isinstance(req, dict) else (
                f"unknown method {method!r}" if route is None else "params must be a JSON object")
            answer = error_answer(400, -1100, f"Illegal request: {what}.")
        else:
            params = {k: format_value(v) for k, v in raw_params.items() if v is not None}
            receipt = rest.receipt(route, params, now_ms, arrival_ns, "ws_api")
            answer = await rest.process(route, params, now_ms,
                                        lambda: self._authenticate(raw_params, params, route), name)
            if answer.withheld == "dropped" and conn.request.transport is not None:
                conn.request.transport.abort()
            if answer.withheld:
                await rest.release.wait()
            if receipt is not None:
                close_receipt(receipt, answer)
        rest.request_log.append({"ts_ms": emu.server_ms(), "received_ms": received_ms, "method": "WS",
                                 "path": name or "?", "status": answer.status})
        frame: dict[str, Any] = {"id": request_id, "status": answer.status}
        if answer.status < 400:
            frame["result"] = answer.body
        else:
            error = dict(answer.body)
            if answer.until_ms is not None:
                error["data"] = {"serverTime": emu.server_ms(), "retryAfter": answer.until_ms}
            frame["error"] = error
        frame["rateLimits"] = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": emu.weight_limit_1m, "count": rest.used_weight_1m}]
        if not conn.ws.closed:
            with contextlib.suppress(Exception):
                await conn.ws.send_str(orjson.dumps(frame).decode())
