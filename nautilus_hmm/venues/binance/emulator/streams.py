"""The emulator's websocket streams: market data and user data (listenKeys).

Market streams: `/ws` (raw frames, SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS /
SET_PROPERTY / GET_PROPERTY with ids), `/ws/<stream>[/<stream>...]` and
`/stream?streams=...` (combined frames `{"stream","data"}`). A tick's frames go to every
connection subscribed to them, through the stream faults (malformed frames, skipped depth
updates, duplicates, reordering, mute). A frame that cannot be written ends the sending to
that connection for this tick; its handler drops it when it closes.

User data: `/ws/<listenKey>`. listenKeys live `listen_key_ttl_s` (60 min) after the last
keepalive; at expiry the stream gets `listenKeyExpired` (USD-M: `E` as a string, as the
live venue sends it) and is closed. An unknown or expired key is refused with -1125.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from nautilus_hmm.venues.binance.emulator.exchange import EmulatorError, new_id
from nautilus_hmm.venues.binance.market import Market

if TYPE_CHECKING:
    from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator

log = structlog.get_logger("venues.binance.emulator")


@dataclass(eq=False, slots=True)
class MarketConn:
    """One market-stream connection and its subscriptions."""

    ws: web.WebSocketResponse
    combined: bool
    streams: set[str] = field(default_factory=set)


class Streams:
    """Market and user-data websocket connections, their subscriptions and the listenKeys."""

    def __init__(self, emu: BinanceEmulator) -> None:
        self.emu = emu
        self.market_conns: set[MarketConn] = set()
        self.user_conns: dict[web.WebSocketResponse, str] = {}
        self.listen_keys: dict[str, float] = {}  # key → expiry (monotonic s)
        self._held: dict[str, Any] = {}  # reorder fault: the frame held back, by stream
        # Market frames written to market connections (a test waits until a client has read them).
        self.market_sent = 0

    def add_routes(self, app: web.Application) -> None:
        """Register `/ws`, `/ws/<name>` and `/stream`."""
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/ws/{name:.*}", self._ws_handler)
        app.router.add_get("/stream", self._ws_handler)

    async def close_all(self) -> None:
        """Close every market and user connection (at stop)."""
        for conn in list(self.market_conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        for ws in list(self.user_conns):
            with contextlib.suppress(Exception):
                await ws.close()

    async def close(self, which: str) -> None:
        """Close market and/or user connections with 1001 (clients see a drop)."""
        if which in ("all", "market"):
            for c in list(self.market_conns):
                with contextlib.suppress(Exception):
                    await c.ws.close(code=1001, message=b"emulator: closed by fault injection")
        if which in ("all", "user"):
            for ws in list(self.user_conns):
                with contextlib.suppress(Exception):
                    await ws.close(code=1001, message=b"emulator: closed by fault injection")

    def subscriptions(self) -> list[str]:
        """Every stream some market connection subscribes, sorted."""
        return sorted(set().union(*(c.streams for c in self.market_conns)) if self.market_conns else [])

    # ------------------------------------------------------------ sending

    async def broadcast_market(self, frames: list[tuple[str, Any]], depth_streams: frozenset[str]) -> None:
        """Send one tick's market frames to their subscribers, through the stream faults."""
        faults = self.emu.faults
        conns = [c for c in self.market_conns if not c.ws.closed]
        if not conns or faults.mute_market_streams:
            return
        while faults.take("malformed_frames"):
            for c in conns:
                with contextlib.suppress(Exception):
                    await c.ws.send_str('{"e":"trade","s":"BTCUSDT","p":')
                    self.market_sent += 1
        wanted = set().union(*(c.streams for c in conns))
        skip_decided: dict[int, bool] = {}
        seq: list[tuple[str, Any]] = []
        for stream, payload in frames:
            if stream not in wanted:
                continue
            if stream in depth_streams:
                pid = id(payload)
                if pid not in skip_decided:
                    skip_decided[pid] = faults.take("skip_depth_updates")
                if skip_decided[pid]:
                    continue
            held = self._held.pop(stream, None)
            if held is None and faults.take("reorder_stream_messages"):
                self._held[stream] = payload
                continue
            seq.append((stream, payload))
            if held is not None:
                seq.append((stream, held))
            if faults.take("duplicate_stream_messages"):
                seq.append((stream, payload))
        raw_cache: dict[int, str] = {}
        comb_cache: dict[int, str] = {}
        for c in conns:
            for stream, payload in seq:
                if stream not in c.streams:
                    continue
                pid = id(payload)
                if c.combined:
                    text = comb_cache.get(pid)
                    if text is None:
                        text = comb_cache[pid] = orjson.dumps({"stream": stream, "data": payload}).decode()
                else:
                    text = raw_cache.get(pid)
                    if text is None:
                        text = raw_cache[pid] = orjson.dumps(payload).decode()
                try:
                    await c.ws.send_str(text)
                except Exception:  # a closing connection is dropped by its handler
                    break
                self.market_sent += 1

    async def send_frame(self, stream: str, payload: dict[str, Any]) -> int:
        """Send one frame to every subscriber of `stream`, no faults (benchmarks); returns how many got it."""
        raw: str | None = None
        comb: str | None = None
        sent = 0
        for c in list(self.market_conns):
            if stream not in c.streams or c.ws.closed:
                continue
            if c.combined:
                comb = comb or orjson.dumps({"stream": stream, "data": payload}).decode()
                text = comb
            else:
                raw = raw or orjson.dumps(payload).decode()
                text = raw
            with contextlib.suppress(Exception):
                await c.ws.send_str(text)
                sent += 1
        return sent

    async def send_user(self, events: list[dict[str, Any]]) -> None:
        """Send user events to every user-data connection of a live listenKey."""
        if not events:
            return
        texts = [orjson.dumps(e).decode() for e in events]
        for ws, key in list(self.user_conns.items()):
            if ws.closed or key not in self.listen_keys:
                continue
            for t in texts:
                with contextlib.suppress(Exception):
                    await ws.send_str(t)

    # ------------------------------------------------------------ listenKeys

    async def expire_listen_key(self, key: str) -> None:
        """Expire a key now: its streams get `listenKeyExpired` and are closed."""
        self.listen_keys.pop(key, None)
        ms = self.emu.server_ms()
        event = {"e": "listenKeyExpired", "E": str(ms) if self.emu.market is Market.USDM else ms, "listenKey": key}
        text = orjson.dumps(event).decode()
        for ws, k in list(self.user_conns.items()):
            if k == key:
                with contextlib.suppress(Exception):
                    await ws.send_str(text)
                    await ws.close()
        log.info("binance_emulator_listen_key_expired", market=self.emu.market.value)

    async def expiry_loop(self) -> None:
        """Expire listenKeys when their time comes (on the emulator's clock)."""
        clock = self.emu.clock
        while True:
            now = clock.monotonic()
            due = [k for k, exp in self.listen_keys.items() if exp <= now]
            for key in due:
                await self.expire_listen_key(key)
            nxt = min(self.listen_keys.values(), default=now + 60.0)
            await clock.sleep(max(0.001, min(60.0, nxt - now)))

    def key_new(self, p: dict[str, str]) -> dict[str, Any]:
        """POST userDataStream / listenKey: the live key (extended), else a new one."""
        now = self.emu.clock.monotonic()
        live = [k for k, exp in self.listen_keys.items() if exp > now]
        key = live[0] if live else new_id(self.emu.exchange.rng, 64)
        self.listen_keys[key] = now + self.emu.listen_key_ttl_s
        return {"listenKey": key}

    def key_keepalive(self, p: dict[str, str]) -> dict[str, Any]:
        """PUT userDataStream / listenKey (-1125 for an unknown or expired key)."""
        now = self.emu.clock.monotonic()
        key = p.get("listenKey")
        if self.emu.market is Market.SPOT and not key:
            raise EmulatorError(400, -1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or "
                                            "malformed.")
        if key is None:
            key = next(iter(self.listen_keys), None)
        if key is None or key not in self.listen_keys or self.listen_keys[key] <= now:
            raise EmulatorError(400, -1125, "This listenKey does not exist.")
        self.listen_keys[key] = now + self.emu.listen_key_ttl_s
        return {"listenKey": key} if self.emu.market is Market.USDM else {}

    def key_close(self, p: dict[str, str]) -> dict[str, Any]:
        """DELETE userDataStream / listenKey."""
        key = p.get("listenKey") or next(iter(self.listen_keys), None)
        if key is not None:
            self.listen_keys.pop(key, None)
        return {}

    # ------------------------------------------------------------ connections

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "")
        if name and "@" not in name:
            return await self._user_ws(request, name)
        combined = request.path.startswith("/stream")
        streams: set[str] = set()
        if combined:
            streams = {s for s in request.query.get("streams", "").split("/") if s}
        elif name:
            streams = {s for s in name.split("/") if s}
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = MarketConn(ws, combined, set())
        self._subscribe(conn, streams)
        self.market_conns.add(conn)
        self.emu.ws_connects["market"] += 1
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._market_command(conn, msg.data)
        finally:
            self.market_conns.discard(conn)
        return ws

    def _subscribe(self, conn: MarketConn, streams: set[str]) -> None:
        exchange = self.emu.exchange
        for s in streams:
            sym, _, kind = s.partition("@")
            if kind.startswith("kline_") and sym.upper() in exchange.engines:
                exchange.want_kline(sym.upper(), kind.removeprefix("kline_"))
        conn.streams |= streams

    async def _market_command(self, conn: MarketConn, text: str) -> None:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            await conn.ws.send_str(orjson.dumps({"code": 3, "msg": f"Invalid JSON: {exc}", "id": None}).decode())
            return
        rid = req.get("id") if isinstance(req, dict) else None
        method = req.get("method") if isinstance(req, dict) else None
        params = req.get("params") if isinstance(req, dict) else None
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(s, str) for s in params):
                await conn.ws.send_str(orjson.dumps({"code": 2, "msg": "Invalid request: params must be a list of "
                                                                       "stream names", "id": rid}).decode())
                return
            engines = self.emu.exchange.engines
            bad = [s for s in params if "@" not in s or s.split("@", 1)[0].upper() not in engines]
            if bad:
                await conn.ws.send_str(orjson.dumps({"code": 2, "msg": f"Invalid request: unknown stream(s) {bad}",
                                                     "id": rid}).decode())
                return
            if method == "SUBSCRIBE":
                self._subscribe(conn, set(params))
            else:
                conn.streams -= set(params)
            await conn.ws.send_str(orjson.dumps({"result": None, "id": rid}).decode())
        elif method == "LIST_SUBSCRIPTIONS":
            await conn.ws.send_str(orjson.dumps({"result": sorted(conn.streams), "id": rid}).decode())
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            if method == "SET_PROPERTY" and isinstance(params, list) and params[:1] == ["combined"]:
                conn.combined = bool(params[1]) if len(params) > 1 else conn.combined
                await conn.ws.send_str(orjson.dumps({"result": None, "id": rid}).decode())
            else:
                await conn.ws.send_str(orjson.dumps({"result": conn.combined, "id": rid}).decode())
        else:
            await conn.ws.send_str(orjson.dumps({"code": 2, "msg": f"Invalid request: unknown method {method!r}",
                                                 "id": rid}).decode())

    async def _user_ws(self, request: web.Request, key: str) -> web.StreamResponse:
        if self.listen_keys.get(key, 0.0) <= self.emu.clock.monotonic():
            return self.emu.rest.error_response(400, -1125, "This listenKey does not exist.")
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        self.user_conns[ws] = key
        self.emu.ws_connects["user"] += 1
        try:
            async for _ in ws:
                pass
        finally:
            self.user_conns.pop(ws, None)
        return ws
