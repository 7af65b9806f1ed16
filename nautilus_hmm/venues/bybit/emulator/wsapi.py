"""The Bybit emulator's trade WebSocket (`/v5/trade`): order entry with `reqId`.

`{"op": "auth", "args": [key, expires_ms, signature]}` first (as on the private stream),
then `{"reqId", "header": {"X-BAPI-TIMESTAMP", "X-BAPI-RECV-WINDOW"}, "op":
"order.create" | "order.amend" | "order.cancel", "args": [{...}]}`. Each operation is the
twin of its REST endpoint and goes through the same request path (faults, rate limits,
matching); the answer is `{"reqId", "retCode", "retMsg", "op", "data", "retExtInfo",
"header": {"X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp",
"Traceid", "Timenow"}, "connId"}`. A request before auth gets retCode 10003 ... the
connection is kept; a frame that is not JSON gets retCode 10001. `withhold_order_responses`
never answers the create; `drop_order_responses` cuts the connection after executing it.
`{"op": "ping"}` → `{"op": "pong", ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from nautilus_hmm.venues.bybit.emulator.exchange import BybitError
from nautilus_hmm.venues.bybit.emulator.streams import (
    Conn,
    alive_duration_s,
    close_bounded,
    conn_id,
)

if TYPE_CHECKING:
    from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

log = structlog.get_logger("venues.bybit.emulator")

TRADE_PATH = "/v5/trade"
OPS = {"order.create": "/v5/order/create", "order.amend": "/v5/order/amend", "order.cancel": "/v5/order/cancel"}


class TradeWs:
    """`/v5/trade` connections."""

    def __init__(self, emu: BybitEmulator) -> None:
        self.emu = emu
        self.conns: set[Conn] = set()

    def add_routes(self, app: web.Application) -> None:
        """Register `/v5/trade`."""
        app.router.add_get(TRADE_PATH, self._handler)

    def open_count(self) -> int:
        """Open trade connections."""
        return sum(1 for c in self.conns if not c.ws.closed)

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        try:
            idle_s = alive_duration_s(request.query.get("max_active_time"), self.emu.ws_idle_s)
        except ValueError as exc:
            return web.json_response({"retCode": 10001, "retMsg": str(exc)}, status=400)
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws, "trade", conn_id(), idle_s=idle_s, last_seen=self.emu.clock.monotonic())
        self.conns.add(conn)
        self.emu.ws_connects["trade"] += 1
        watchdog = asyncio.get_running_loop().create_task(self.emu.streams.idle_watchdog(conn))
        try:
            async for msg in ws:
                conn.last_seen = self.emu.clock.monotonic()
                if msg.type is not WSMsgType.TEXT:
                    continue
                await self._message(conn, msg.data)
        finally:
            watchdog.cancel()
            self.conns.discard(conn)
        return ws

    async def _send(self, conn: Conn, doc: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(orjson.dumps(doc).decode())

    def _reply(self, conn: Conn, req_id: Any, op: Any, code: int, msg: str, data: Any,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
        now = self.emu.server_ms()
        head = {"Traceid": f"{self.emu.exchange.rng.getrandbits(64):016x}", "Timenow": str(now)}
        head.update(headers or {})
        return {"reqId": req_id, "retCode": code, "retMsg": msg, "op": op, "data": data if data is not None else {},
                "retExtInfo": {}, "header": head, "connId": conn.conn_id}

    async def _message(self, conn: Conn, text: str) -> None:
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            await self._send(conn, self._reply(conn, "", "", 10001, f"params error: not a JSON object: {text[:60]!r}",
                                               {}))
            return
        op = doc.get("op")
        req_id = doc.get("reqId", doc.get("req_id", ""))
        if op == "ping":
            await self._send(conn, {"req_id": req_id, "op": "pong", "args": [str(self.emu.server_ms())],
                                    "conn_id": conn.conn_id})
            return
        if op == "auth":
            why = self.emu.streams.check_ws_auth(doc.get("args"))
            conn.authed = why is None
            await self._send(conn, {"retCode": 0 if why is None else 10004, "retMsg": why or "OK", "op": "auth",
                                    "connId": conn.conn_id, "reqId": req_id})
            return
        if op not in OPS:
            await self._send(conn, self._reply(conn, req_id, op, 10001, f"params error: unknown op {op!r}", {}))
            return
        if not conn.authed:
            await self._send(conn, self._reply(conn, req_id, op, 10003, "Request not authorized", {}))
            return
        args = doc.get("args")
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict):
            await self._send(conn, self._reply(conn, req_id, op, 10001, "params error: args must be [ {...} ]", {}))
            return
        params: dict[str, Any] = args[0]
        header = doc.get("header") if isinstance(doc.get("header"), dict) else {}
        rest = self.emu.rest
        route = rest.routes[("POST", OPS[op])]
        arrival_ns = time.perf_counter_ns() if route.new_order else 0
        now_ms = self.emu.server_ms()
        receipt = rest.receipt(route, params, now_ms, arrival_ns, "ws_trade")
        rest.request_counts[f"WS {op}"] += 1

        def authenticate() -> None:
            ts_raw = str(header.get("X-BAPI-TIMESTAMP", ""))
            recv_raw = str(header.get("X-BAPI-RECV-WINDOW", "5000"))
            try:
                ts, recv_window = int(ts_raw), int(recv_raw)
            except ValueError:
                raise BybitError(10001, f"params error: header X-BAPI-TIMESTAMP {ts_raw!r} / "
                                        f"X-BAPI-RECV-WINDOW {recv_raw!r}") from None
            server = self.emu.server_ms()
            if not (server - recv_window <= ts < server + 1000):
                raise BybitError(10002, f"invalid request, please check your server timestamp or recv_window param. "
                                        f"req_timestamp[{ts}],server_timestamp[{server}],recv_window[{recv_window}]")

        answer = await rest.process(route, params, now_ms, authenticate, ws_op=op)
        if receipt is not None:
            receipt.setdefault("ret_code", answer.ret_code)
        if answer.withheld == "dropped":
            await conn.ws.close(code=1006, message=b"emulator: connection dropped after execution")
            return
        if answer.withheld:
            return
        await self._send(conn, self._reply(conn, req_id, op, answer.ret_code, answer.ret_msg,
                                           answer.result if answer.ret_code == 0 else {}, answer.headers))

    async def close(self, code: int = 1001, message: bytes = b"emulator: closed by fault injection") -> None:
        """Close every trade connection (each waits at most 1 s for the client's close)."""
        await close_bounded([c.ws for c in self.conns], code, message)
