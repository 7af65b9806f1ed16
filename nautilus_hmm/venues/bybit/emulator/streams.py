"""The Bybit emulator's public and private websockets.

Public: `/v5/public/spot` and `/v5/public/linear`. `{"op": "subscribe", "args": [topics],
"req_id"}` → `{"success", "ret_msg", "conn_id", "req_id", "op"}`; topics
`orderbook.{1,50,200}.SYM` (linear also 500; a snapshot at once, then deltas with `u` + 1
per message and a rising `seq`; depth 1 is always a snapshot), `publicTrade.SYM`,
`tickers.SYM` (linear: snapshot, then deltas), `kline.{interval}.SYM`. `{"op": "ping"}` →
`{"success": true, "ret_msg": "pong", "op": "ping", ...}`. An unknown topic or op is answered
`success: false` and the connection kept; so is a frame that is not JSON.

Private: `/v5/private`. `{"op": "auth", "args": [key, expires_ms, signature]}` with
signature = hex HMAC-SHA256(secret, "GET/realtime" + expires); then subscribe to `order`,
`execution`, `position`, `wallet` (or `order.spot`, `execution.linear` ... for one
category). Subscribing before auth is refused.

A connection the client sends nothing on (no ping, no request) for `ws_idle_s` (600 s) is
closed; a private or trade connection may ask for another alive duration with
`?max_active_time=30s` .. `600s` (or `1m` .. `10m`), as on Bybit. `{"op": "ping"}` → `{"op": "pong", "args":
[ms], ...}` (the private shape).

Stream faults: `mute_public_streams` (a stale stream), `skip_book_deltas` (a sequence
gap), `malformed_frames`, and `close_websockets` (code 1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from nautilus_hmm.venues.bybit.emulator.exchange import CATEGORIES, DEPTHS, KLINE_SECONDS

if TYPE_CHECKING:
    from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

log = structlog.get_logger("venues.bybit.emulator")

PRIVATE_TOPICS = ("order", "execution", "position", "wallet")


@dataclass(eq=False, slots=True)
class Conn:
    """One websocket connection: its kind, subscriptions and auth state."""

    ws: web.WebSocketResponse
    kind: str  # "spot" | "linear" (public) | "private" | "trade"
    conn_id: str
    topics: set[str] = field(default_factory=set)
    authed: bool = False
    idle_s: float = 600.0  # closed after this long without a frame from the client
    last_seen: float = 0.0  # monotonic s (the emulator's clock) of the client's last frame


async def close_bounded(sockets: list[web.WebSocketResponse], code: int = 1001,
                        message: bytes = b"emulator stopping", timeout_s: float = 1.0) -> None:
    """Close websockets together; a client that does not answer the close within `timeout_s`
    is cut (stopping the emulator never waits on a client)."""

    async def one(ws: web.WebSocketResponse) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=code, message=message), timeout_s)

    if sockets:
        await asyncio.gather(*(one(ws) for ws in sockets))


def alive_duration_s(raw: str | None, default_s: float) -> float:
    """`max_active_time` of a private or trade connection ("30s".."600s", "1m".."10m"; Bybit's range)."""
    if raw is None:
        return default_s
    unit = {"s": 1, "m": 60}.get(raw[-1:])
    if unit is None or not raw[:-1].isdigit() or not 30 <= int(raw[:-1]) * unit <= 600:
        raise ValueError(f"max_active_time {raw!r}: expected 30s..600s or 1m..10m")
    return float(int(raw[:-1]) * unit)


def conn_id() -> str:
    """A Bybit-like connection id."""
    return f"{uuid.uuid4().hex[:20]}-{uuid.uuid4().hex[:2]}"


class Streams:
    """Public and private websocket connections and their subscriptions."""

    def __init__(self, emu: BybitEmulator) -> None:
        self.emu = emu
        self.public: set[Conn] = set()
        self.private: set[Conn] = set()
        # Market frames written to public connections (a test waits until a client has read them).
        self.public_sent = 0

    def add_routes(self, app: web.Application) -> None:
        """Register `/v5/public/{spot,linear}` and `/v5/private`."""
        for c in CATEGORIES:
            app.router.add_get(f"/v5/public/{c}", self._public_handler(c))
        app.router.add_get("/v5/private", self._private_handler)

    # ------------------------------------------------------------ subscriptions

    def wanted(self) -> set[tuple[str, str]]:
        """Every (category, topic) some open public connection subscribes."""
        return {(c.kind, t) for c in self.public if not c.ws.closed for t in c.topics}

    def subscriptions(self) -> dict[str, list[str]]:
        """Topics by connection kind (for /_emulator/state)."""
        out: dict[str, set[str]] = {}
        for c in [*self.public, *self.private]:
            if not c.ws.closed:
                out.setdefault(c.kind, set()).update(c.topics)
        return {k: sorted(v) for k, v in out.items()}

    def _check_topic(self, category: str, topic: str) -> str | None:
        """None if the topic is served, else the reason."""
        parts = topic.split(".")
        syms = self.emu.exchange.symbols
        if len(parts) == 3 and parts[0] == "orderbook":
            if not parts[1].isdigit() or int(parts[1]) not in DEPTHS[category]:
                return f"depth {parts[1]!r} (served: {DEPTHS[category]})"
            return None if parts[2] in syms else f"symbol {parts[2]!r}"
        if len(parts) == 2 and parts[0] in ("publicTrade", "tickers"):
            return None if parts[1] in syms else f"symbol {parts[1]!r}"
        if len(parts) == 3 and parts[0] == "kline":
            if parts[1] not in KLINE_SECONDS:
                return f"interval {parts[1]!r}"
            return None if parts[2] in syms else f"symbol {parts[2]!r}"
        return "unknown topic"

    # ------------------------------------------------------------ public

    def _public_handler(self, category: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
            await ws.prepare(request)
            conn = Conn(ws, category, conn_id(), idle_s=self.emu.ws_idle_s, last_seen=self.emu.clock.monotonic())
            self.public.add(conn)
            self.emu.ws_connects[f"public.{category}"] += 1
            watchdog = asyncio.get_running_loop().create_task(self.idle_watchdog(conn))
            try:
                async for msg in ws:
                    conn.last_seen = self.emu.clock.monotonic()
                    if msg.type is not WSMsgType.TEXT:
                        continue
                    await self._public_message(conn, msg.data)
            finally:
                watchdog.cancel()
                self.public.discard(conn)
            return ws
        return handle

    async def _json_object(self, conn: Conn, text: str) -> dict[str, Any] | None:
        """The frame as a JSON object, or None after answering `invalid json`."""
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            await self._send(conn, {"success": False, "ret_msg": f"error:invalid json: {text[:60]!r}",
                                    "conn_id": conn.conn_id, "op": ""})
            return None
        return doc

    async def _public_message(self, conn: Conn, text: str) -> None:
        doc = await self._json_object(conn, text)
        if doc is None:
            return
        op, req_id = doc.get("op"), doc.get("req_id", "")
        if op == "ping":
            await self._send(conn, {"success": True, "ret_msg": "pong", "conn_id": conn.conn_id,
                                    "req_id": req_id, "op": "ping"})
            return
        if op not in ("subscribe", "unsubscribe"):
            await self._send(conn, {"success": False, "ret_msg": f"error:unknown op {op!r}",
                                    "conn_id": conn.conn_id, "req_id": req_id, "op": op or ""})
            return
        args = doc.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            await self._send(conn, {"success": False, "ret_msg": "error:args must be a list of topics",
                                    "conn_id": conn.conn_id, "req_id": req_id, "op": op})
            return
        bad = [(t, why) for t in args if (why := self._check_topic(conn.kind, t)) is not None]
        if bad:
            await self._send(conn, {"success": False,
                                    "ret_msg": f"error:handler not found,topic:{bad[0][0]} ({bad[0][1]})",
                                    "conn_id": conn.conn_id, "req_id": req_id, "op": op})
            return
        if op == "unsubscribe":
            conn.topics.difference_update(args)
            await self._send(conn, {"success": True, "ret_msg": "", "conn_id": conn.conn_id, "req_id": req_id,
                                    "op": op})
            return
        dup = [t for t in args if t in conn.topics]
        if dup:
            await self._send(conn, {"success": False, "ret_msg": f"error:already subscribed,topic:{dup[0]}",
                                    "conn_id": conn.conn_id, "req_id": req_id, "op": op})
            return
        conn.topics.update(args)
        await self._send(conn, {"success": True, "ret_msg": "subscribe", "conn_id": conn.conn_id,
                                "req_id": req_id, "op": op})
        ex = self.emu.exchange
        now_ms = self.emu.server_ms()
        for t in args:
            parts = t.split(".")
            if parts[0] == "orderbook":
                await self._send(conn, ex.book_snapshot_frame(conn.kind, parts[2], int(parts[1]), now_ms))
            elif parts[0] == "tickers":
                await self._send(conn, {"topic": t, "type": "snapshot", "data": ex.ticker_fields(conn.kind, parts[1]),
                                        "cs": ex.public_seq.value, "ts": now_ms})
            elif parts[0] == "kline":
                ex.want_kline(conn.kind, parts[2], parts[1])

    async def broadcast_public(self, frames: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Send a tick's public frames to the connections subscribed (through the stream faults)."""
        faults = self.emu.faults
        if faults.mute_public_streams:
            return
        conns = [c for c in self.public if not c.ws.closed and c.topics]
        while faults.take("malformed_frames"):
            for c in conns:
                with contextlib.suppress(Exception):
                    await c.ws.send_str('{"topic": "orderbook.50.')
        for category, topic, frame in frames:
            text = None
            for c in conns:
                if c.kind == category and topic in c.topics:
                    text = text or orjson.dumps(frame).decode()
                    try:
                        await c.ws.send_str(text)
                    except (ConnectionError, RuntimeError):
                        continue
                    self.public_sent += 1

    # ------------------------------------------------------------ private

    async def _private_handler(self, request: web.Request) -> web.StreamResponse:
        try:
            idle_s = alive_duration_s(request.query.get("max_active_time"), self.emu.ws_idle_s)
        except ValueError as exc:
            return web.json_response({"success": False, "ret_msg": str(exc)}, status=400)
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws, "private", conn_id(), idle_s=idle_s, last_seen=self.emu.clock.monotonic())
        self.private.add(conn)
        self.emu.ws_connects["private"] += 1
        watchdog = asyncio.get_running_loop().create_task(self.idle_watchdog(conn))
        try:
            async for msg in ws:
                conn.last_seen = self.emu.clock.monotonic()
                if msg.type is not WSMsgType.TEXT:
                    continue
                await self._private_message(conn, msg.data)
        finally:
            watchdog.cancel()
            self.private.discard(conn)
        return ws

    def check_ws_auth(self, args: Any) -> str | None:
        """None if `args` = [key, expires_ms, signature] authenticate, else the reason."""
        if not isinstance(args, list) or len(args) != 3:
            return "args must be [api_key, expires, signature]"
        key, expires, sig = args
        if not isinstance(key, str) or not hmac.compare_digest(key.encode(), self.emu.api_key.encode()):
            return "Invalid apikey"
        try:
            exp = int(expires)
        except (TypeError, ValueError):
            return f"Params Error: expires {expires!r}"
        if exp <= self.emu.server_ms():
            return f"Params Error: expires {exp} is in the past"
        want = hmac.new(self.emu.api_secret.encode(), f"GET/realtime{exp}".encode(), hashlib.sha256).hexdigest()
        if not isinstance(sig, str) or not hmac.compare_digest(want, sig.lower()):
            return "Invalid sign"
        return None

    async def _private_message(self, conn: Conn, text: str) -> None:
        doc = await self._json_object(conn, text)
        if doc is None:
            return
        op, req_id = doc.get("op"), doc.get("req_id", "")
        if op == "ping":
            await self._send(conn, {"req_id": req_id, "op": "pong", "args": [str(self.emu.server_ms())],
                                    "conn_id": conn.conn_id})
            return
        if op == "auth":
            why = self.check_ws_auth(doc.get("args"))
            conn.authed = why is None
            await self._send(conn, {"success": why is None, "ret_msg": why or "", "op": "auth",
                                    "conn_id": conn.conn_id, "req_id": req_id})
            return
        if op not in ("subscribe", "unsubscribe"):
            await self._send(conn, {"success": False, "ret_msg": f"error:unknown op {op!r}",
                                    "conn_id": conn.conn_id, "req_id": req_id, "op": op or ""})
            return
        if not conn.authed:
            await self._send(conn, {"success": False, "ret_msg": "Request not authorized", "conn_id": conn.conn_id,
                                    "req_id": req_id, "op": op})
            return
        args = doc.get("args")
        valid = {*PRIVATE_TOPICS, *(f"{t}.{c}" for t in PRIVATE_TOPICS for c in CATEGORIES)}
        if not isinstance(args, list) or not args or any(a not in valid for a in args):
            await self._send(conn, {"success": False, "ret_msg": f"error:handler not found,topic:{args!r}",
                                    "conn_id": conn.conn_id, "req_id": req_id, "op": op})
            return
        if op == "subscribe":
            conn.topics.update(args)
        else:
            conn.topics.difference_update(args)
        await self._send(conn, {"success": True, "ret_msg": "", "op": op, "conn_id": conn.conn_id,
                                "req_id": req_id})

    async def send_private(self, frames: list[tuple[str, dict[str, Any]]]) -> None:
        """Send private frames to the authenticated connections subscribed to their topic
        (or to `topic.category`, then with that category's rows only)."""
        if not frames:
            return
        for c in list(self.private):
            if c.ws.closed or not c.authed:
                continue
            for topic, frame in frames:
                out = None
                if topic in c.topics:
                    out = frame
                else:
                    for cat in CATEGORIES:
                        if f"{topic}.{cat}" in c.topics:
                            rows = [r for r in frame["data"] if r.get("category", cat) == cat]
                            if rows:
                                out = {**frame, "topic": f"{topic}.{cat}", "data": rows}
                if out is not None:
                    try:
                        await c.ws.send_str(orjson.dumps(out).decode())
                    except (ConnectionError, RuntimeError):
                        break

    # ------------------------------------------------------------ common

    async def idle_watchdog(self, conn: Conn) -> None:
        """Close `conn` once it has sent nothing (no ping, no request) for `conn.idle_s`."""
        clock = self.emu.clock
        while not conn.ws.closed:
            idle = clock.monotonic() - conn.last_seen
            if idle >= conn.idle_s:
                log.info("bybit_emulator_ws_idle_closed", kind=conn.kind, idle_s=round(idle, 3))
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1000, message=b"emulator: nothing received within the alive duration")
                return
            await clock.sleep(conn.idle_s - idle)

    async def _send(self, conn: Conn, doc: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(orjson.dumps(doc).decode())

    async def close(self, which: str) -> None:
        """Close public and/or private connections with 1001 (clients see a drop)."""
        targets = []
        if which in ("all", "public"):
            targets += list(self.public)
        if which in ("all", "private"):
            targets += list(self.private)
        for c in targets:
            with contextlib.suppress(Exception):
                await c.ws.close(code=1001, message=b"emulator: closed by fault injection")

    async def close_all(self) -> None:
        """Close every connection (at stop), together, each waiting at most 1 s for the client's close."""
        await close_bounded([c.ws for c in [*self.public, *self.private]])
