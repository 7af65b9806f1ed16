"""The Binance-compatible HTTP + websocket server (aiohttp, loopback) around `EmulatedExchange`.

REST: the endpoints the adapter (and ccxt's `binance`) use, with Binance's JSON shapes,
`X-MBX-USED-WEIGHT-1M` headers, and its error codes and bodies: API key (-2014/-2015,
HTTP 401), signature (-1022), timestamp and recvWindow (-1021, -1102, -1131), request
weight per minute (HTTP 429 / -1003 with Retry-After; a request sent while a 429 is
running gets the IP banned: HTTP 418 "banned until <ms>"), unknown symbols and orders.

WebSocket API (`/ws-api/v3` spot, `/ws-fapi/v1` USD-M): `order.place`, `order.cancel`,
`order.status` (method names may carry a `v3/` prefix), each the twin of its REST
endpoint and served by the same code: one request path (`_process`: bans, weights,
faults, matching) behind two transports. Requests are signed per request (apiKey,
timestamp, recvWindow, signature over the params sorted by name: -1102 / -2015 / -1022 /
-1021 as on REST); answers are `{"id","status","result","rateLimits"}` or
`{"id","status","error":{"code","msg"[,"data":{"serverTime","retryAfter"}]},"rateLimits"}`
(429/418 carry the end of the limit or ban in `retryAfter`, epoch ms). Each connection
costs weight (2 spot, 5 USD-M), is pinged every 20 s (spot) / 3 min (USD-M) and closed
when a ping goes unanswered for 1 min / 10 min, and is cut at 24 h. Requests on one
connection are processed concurrently (a withheld answer does not hold the next one);
a request received is processed even if its connection closes meanwhile. Faults keyed
by a REST path (delays, errors) apply to its WebSocket API twin too; keyed by the method
name (`order.place`) they apply to the WebSocket API only. `timeout_order_responses`
withholds the answer frame; `drop_order_responses` cuts the connection after executing.

Streams: `/ws` (raw frames, SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS with ids),
`/ws/<stream>[/<stream>...]`, `/stream?streams=...` (combined frames) and
`/ws/<listenKey>` (user data). listenKeys live 60 minutes after the last keepalive
(`listen_key_ttl_s`); at expiry the stream gets `listenKeyExpired` and is closed.

Control (not Binance): `POST /_emulator/faults` (see faults.py), `GET /_emulator/faults`,
`GET /_emulator/state` (orders, fills, balances, positions, every client order id the
matching engine received and every new-order request (REST or WebSocket API) with its
answer, request counts,
connections, subscriptions, listen keys, weights, bans), `POST /_emulator/tick`
(`{"n": 3}`: produce market ticks now). Benchmarks: `POST /_emulator/bench/ping_pong`
(`{"symbol", "n", "timeout_s", "gap_ms"}`: one trade frame, wait for the next new-order
request, repeat; answers the perf_counter_ns pairs) and `POST /_emulator/bench/stream`
(`{"symbols", "n"}`: trade frames as fast as the connections take them).

All time (server time, weight windows, bans, key expiry, the market's tick, injected
delays) is the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
import structlog
from aiohttp import WSMsgType, web

from nautilus_hmm.core.clock import Clock, LiveClock
from nautilus_hmm.marketdata.replay import BarArrays, TradeArrays
from nautilus_hmm.venues.binance.auth import Credentials, format_value, ws_api_payload
from nautilus_hmm.venues.binance.emulator.exchange import EmulatedExchange, EmulatorError, new_id
from nautilus_hmm.venues.binance.emulator.faults import FaultError, Faults
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.rest import klines_weight_usdm

log = structlog.get_logger("venues.binance.emulator")

NS_PER_MS = 1_000_000
MAX_RECV_WINDOW_MS = 60_000
# A request that reaches the emulator this soon after it answered a 429 crossed that answer
# in flight (its sender could not have seen it yet): it gets the 429 again instead of a ban.
# Binance bans for "failing to back off", not for requests already on the wire.
CROSSING_GRACE_MS = 50
DEFAULT_WEIGHT_LIMIT_1M = {Market.SPOT: 6000, Market.USDM: 2400}
WS_API_PATH = {Market.SPOT: "/ws-api/v3", Market.USDM: "/ws-fapi/v1"}
WS_API_CONNECT_WEIGHT = {Market.SPOT: 2, Market.USDM: 5}
# Server pings and how long a ping may go unanswered (spot: 20 s / 1 min; USD-M: 3 / 10 min).
WS_API_PING_S = {Market.SPOT: 20.0, Market.USDM: 180.0}
WS_API_PONG_TIMEOUT_S = {Market.SPOT: 60.0, Market.USDM: 600.0}
WS_API_MAX_AGE_S = 24 * 3600.0
# WebSocket API method → the REST route it mirrors (same weight, same handler, same JSON).
WS_API_ROUTES = {"order.place": ("POST", "/order"), "order.cancel": ("DELETE", "/order"),
                 "order.status": ("GET", "/order")}

@dataclass(slots=True)
class Route:
    """One REST endpoint of the emulator."""

    method: str
    path: str
    weight: int
    security: str  # "none" | "key" | "signed"
    handler: Callable[[dict[str, str], int], tuple[Any, list[dict[str, Any]]]]
    new_order: bool = False


@dataclass(slots=True)
class Answer:
    """What the exchange answers one request, before a transport (REST, WebSocket API) shapes it."""

    status: int
    body: Any
    retry_after_s: float | None = None  # REST: the Retry-After header
    until_ms: int | None = None  # WebSocket API: error.data.retryAfter, when a 429 / 418 ends
    withheld: str = ""  # "timeout" | "dropped": executed, the transport withholds the answer

    @property
    def code(self) -> int | None:
        """The Binance error code of an error answer."""
        return self.body.get("code") if self.status >= 400 and isinstance(self.body, dict) else None


@dataclass(eq=False, slots=True)
class WsApiConn:
    """One WebSocket API connection."""

    ws: web.WebSocketResponse
    request: web.Request
    opened_s: float
    last_pong_s: float


@dataclass(eq=False, slots=True)
class MarketConn:
    """One market-stream connection and its subscriptions."""

    ws: web.WebSocketResponse
    combined: bool
    streams: set[str] = field(default_factory=set)


class BinanceEmulator:
    """A Binance spot or USD-M exchange on loopback (see the module docstring)."""

    def __init__(
        self,
        market: Market,
        *,
        api_key: str,
        api_secret: str,
        symbols: tuple[str, ...] | list[str] = ("BTCUSDT",),
        clock: Clock | None = None,
        seed: int = 7,
        replay: BarArrays | TradeArrays | None = None,
        tick_interval_s: float = 1.0,
        balances: dict[str, Decimal] | None = None,
        weight_limit_1m: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        listen_key_ttl_s: float = 3600.0,
        ban_s: float = 120.0,
        run_market: bool = True,
        market_time_scale: float = 1.0,
        unmetered: bool = False,
        ws_api_ping_s: float | None = None,
    ) -> None:
        self.market = market
        self.clock = clock or LiveClock()
        self.api_key = api_key
        self._creds = Credentials(api_key, api_secret)
        self.exchange = EmulatedExchange(market, symbols, seed=seed, balances=balances, replay=replay,
                                         tick_interval_s=tick_interval_s, start_ns=self.clock.time_ns(),
                                         market_time_scale=market_time_scale)
        self.tick_interval_s = tick_interval_s
        self.weight_limit_1m = weight_limit_1m or DEFAULT_WEIGHT_LIMIT_1M[market]
        # Unmetered: requests weigh nothing (X-MBX-USED-WEIGHT-1M stays 0), for tests that
        # restart a client far more often than any real weight budget allows.
        self.unmetered = unmetered
        self.host = host
        self.port = port
        self.listen_key_ttl_s = listen_key_ttl_s
        self.ban_s = ban_s
        self.run_market = run_market
        # WebSocket API server pings (None: Binance's 20 s spot / 3 min USD-M); a ping
        # unanswered for 1 min (spot) / 10 min (USD-M) closes the connection.
        self.ws_api_ping_s = ws_api_ping_s or WS_API_PING_S[market]
        self.faults = Faults()
        self.market_conns: set[MarketConn] = set()
        self.user_conns: dict[web.WebSocketResponse, str] = {}
        self.ws_api_conns: set[WsApiConn] = set()
        self._ws_api_tasks: set[asyncio.Task[Any]] = set()
        self.listen_keys: dict[str, float] = {}  # key → expiry (monotonic s)
        self.request_log: deque[dict[str, Any]] = deque(maxlen=5000)
        self.request_counts: Counter[str] = Counter()
        self.new_order_requests: list[dict[str, Any]] = []
        self.withheld_orders: list[dict[str, Any]] = []  # executed, answer withheld or connection cut
        self.used_weight_1m = 0
        self.limited_until_ms = 0
        self.limited_at_ms = 0  # when the current 429 back-off began
        self.banned_until_ms = 0
        self.bans = 0
        self.ws_connects = Counter[str]()
        self._weight_window = -1
        self._held: dict[str, Any] = {}
        self._release = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self._routes: dict[tuple[str, str], Route] = {}
        self._ws_api_routes: dict[str, Route] = {}
        # Benchmarks: the next new-order request resolves this with (client order id,
        # perf_counter_ns at its arrival).
        self._order_waiter: asyncio.Future[tuple[str, int]] | None = None
        self._order_waiter_side: str | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """REST base URL (http://host:port)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Stream base URL (ws://host:port)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def ws_api_url(self) -> str:
        """WebSocket API URL (ws://host:port/ws-api/v3 spot, /ws-fapi/v1 USD-M)."""
        return f"ws://{self.host}:{self.port}{WS_API_PATH[self.market]}"

    async def start(self) -> None:
        """Serve on host:port (port 0: a free port, then `self.port` holds it); start the timers."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._expiry_loop(), name="emulator:listen-keys"))
        if self.run_market:
            self._tasks.append(loop.create_task(self._market_loop(), name="emulator:market"))
        log.info("binance_emulator_started", market=self.market.value, url=self.url,
                 symbols=self.exchange.symbols)

    async def stop(self) -> None:
        """Stop the timers, release hung answers, close connections and the server."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        self._release.set()
        for t in list(self._ws_api_tasks):
            t.cancel()
        for api_conn in list(self.ws_api_conns):
            with contextlib.suppress(Exception):
                await api_conn.ws.close()
        for conn in list(self.market_conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        for ws in list(self.user_conns):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _market_loop(self) -> None:
        while True:
            await self.clock.sleep(self.tick_interval_s)
            await self.step()

    async def _expiry_loop(self) -> None:
        while True:
            now = self.clock.monotonic()
            due = [k for k, exp in self.listen_keys.items() if exp <= now]
            for key in due:
                await self.expire_listen_key(key)
            nxt = min(self.listen_keys.values(), default=now + 60.0)
            await self.clock.sleep(max(0.001, min(60.0, nxt - now)))

    def server_ms(self) -> int:
        """Server time in ms (the clock plus any injected skew)."""
        return self.clock.time_ns() // NS_PER_MS + self.faults.time_skew_ms

    # ------------------------------------------------------------ market data

    async def step(self, n: int = 1) -> None:
        """Produce `n` market ticks now and send them (and the user events they caused)."""
        for _ in range(n):
            out = self.exchange.tick(self.clock.time_ns())
            await self._broadcast_market(out.market, out.depth_streams)
            await self._send_user(out.user)

    async def _broadcast_market(self, frames: list[tuple[str, Any]], depth_streams: frozenset[str]) -> None:
        conns = [c for c in self.market_conns if not c.ws.closed]
        if not conns or self.faults.mute_market_streams:
            return
        while self.faults.take("malformed_frames"):
            for c in conns:
                with contextlib.suppress(Exception):
                    await c.ws.send_str('{"e":"trade","s":"BTCUSDT","p":')
        wanted = set().union(*(c.streams for c in conns))
        skip_decided: dict[int, bool] = {}
        seq: list[tuple[str, Any]] = []
        for stream, payload in frames:
            if stream not in wanted:
                continue
            if stream in depth_streams:
                pid = id(payload)
                if pid not in skip_decided:
                    skip_decided[pid] = self.faults.take("skip_depth_updates")
                if skip_decided[pid]:
                    continue
            held = self._held.pop(stream, None)
            if held is None and self.faults.take("reorder_stream_messages"):
                self._held[stream] = payload
                continue
            seq.append((stream, payload))
            if held is not None:
                seq.append((stream, held))
            if self.faults.take("duplicate_stream_messages"):
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

    async def _send_user(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        texts = [orjson.dumps(e).decode() for e in events]
        for ws, key in list(self.user_conns.items()):
            if ws.closed or key not in self.listen_keys:
                continue
            for t in texts:
                with contextlib.suppress(Exception):
                    await ws.send_str(t)

    async def expire_listen_key(self, key: str) -> None:
        """Expire a key now: its streams get `listenKeyExpired` and are closed."""
        self.listen_keys.pop(key, None)
        ms = self.server_ms()
        event = {"e": "listenKeyExpired", "E": str(ms) if self.market is Market.USDM else ms, "listenKey": key}
        text = orjson.dumps(event).decode()
        for ws, k in list(self.user_conns.items()):
            if k == key:
                with contextlib.suppress(Exception):
                    await ws.send_str(text)
                    await ws.close()
        log.info("binance_emulator_listen_key_expired", market=self.market.value)

    async def close_websockets(self, which: str = "all") -> None:
        """Close market and/or user connections (clients see a drop)."""
        if which in ("all", "market"):
            for c in list(self.market_conns):
                with contextlib.suppress(Exception):
                    await c.ws.close(code=1001, message=b"emulator: closed by fault injection")
        if which in ("all", "user"):
            for ws in list(self.user_conns):
                with contextlib.suppress(Exception):
                    await ws.close(code=1001, message=b"emulator: closed by fault injection")
        if which in ("all", "ws_api"):
            for api_conn in list(self.ws_api_conns):
                with contextlib.suppress(Exception):
                    await api_conn.ws.close(code=1001, message=b"emulator: closed by fault injection")

    # ------------------------------------------------------------ app

    def _build_app(self) -> web.Application:
        app = web.Application()
        ex = self.exchange
        spot = self.market is Market.SPOT
        sm = self.server_ms

        def simple(fn: Callable[[dict[str, str]], Any]) -> Callable[[dict[str, str], int], tuple[Any, list[Any]]]:
            return lambda p, now_ns: (fn(p), [])

        routes: list[Route] = []
        if spot:
            pre = "/api/v3"
            routes += [
                Route("GET", f"{pre}/ping", 1, "none", simple(lambda p: {})),
                Route("GET", f"{pre}/time", 1, "none", simple(lambda p: {"serverTime": sm()})),
                Route("GET", f"{pre}/exchangeInfo", 20, "none",
                      simple(lambda p: ex.exchange_info(sm(), self.weight_limit_1m))),
                Route("GET", f"{pre}/depth", 50, "none",
                      simple(lambda p: ex.depth_snapshot(p.get("symbol", ""), int(p.get("limit", 100)), sm()))),
                Route("GET", f"{pre}/klines", 2, "none", simple(ex.rest_klines)),
                Route("POST", f"{pre}/order", 1, "signed", ex.new_order, new_order=True),
                Route("GET", f"{pre}/order", 4, "signed", simple(ex.query)),
                Route("DELETE", f"{pre}/order", 1, "signed", ex.cancel),
                Route("GET", f"{pre}/openOrders", 6, "signed", simple(lambda p: ex.open_orders(p.get("symbol")))),
                Route("DELETE", f"{pre}/openOrders", 1, "signed", lambda p, n: ex.cancel_all(p.get("symbol"), n)),
                Route("GET", f"{pre}/allOrders", 20, "signed", simple(lambda p: ex.all_orders(p.get("symbol")))),
                Route("GET", f"{pre}/account", 20, "signed",
                      simple(lambda p: ex.spot_account(sm(), p.get("omitZeroBalances") == "true"))),
                Route("GET", f"{pre}/myTrades", 20, "signed", simple(ex.account_trades)),
                Route("POST", f"{pre}/userDataStream", 2, "key", simple(self._key_new)),
                Route("PUT", f"{pre}/userDataStream", 2, "key", simple(self._key_keepalive)),
                Route("DELETE", f"{pre}/userDataStream", 2, "key", simple(self._key_close)),
            ]
        else:
            pre = "/fapi/v1"
            fa = ex.futures
            assert fa is not None
            routes += [
                Route("GET", f"{pre}/ping", 1, "none", simple(lambda p: {})),
                Route("GET", f"{pre}/time", 1, "none", simple(lambda p: {"serverTime": sm()})),
                Route("GET", f"{pre}/exchangeInfo", 1, "none",
                      simple(lambda p: ex.exchange_info(sm(), self.weight_limit_1m))),
                Route("GET", f"{pre}/depth", 20, "none",
                      simple(lambda p: ex.depth_snapshot(p.get("symbol", ""), int(p.get("limit", 500)), sm()))),
                Route("GET", f"{pre}/klines", 5, "none", simple(ex.rest_klines)),  # weight by limit: see below
                Route("POST", f"{pre}/order", 1, "signed", ex.new_order, new_order=True),
                Route("GET", f"{pre}/order", 1, "signed", simple(ex.query)),
                Route("DELETE", f"{pre}/order", 1, "signed", ex.cancel),
                Route("GET", f"{pre}/openOrders", 1, "signed", simple(lambda p: ex.open_orders(p.get("symbol")))),
                Route("DELETE", f"{pre}/allOpenOrders", 1, "signed", lambda p, n: ex.cancel_all(p.get("symbol"), n)),
                Route("GET", f"{pre}/allOrders", 5, "signed", simple(lambda p: ex.all_orders(p.get("symbol")))),
                Route("GET", f"{pre}/userTrades", 5, "signed", simple(ex.account_trades)),
                Route("POST", f"{pre}/listenKey", 1, "key", simple(self._key_new)),
                Route("PUT", f"{pre}/listenKey", 1, "key", simple(self._key_keepalive)),
                Route("DELETE", f"{pre}/listenKey", 1, "key", simple(self._key_close)),
                Route("POST", f"{pre}/leverage", 1, "signed", simple(self._leverage)),
                Route("POST", f"{pre}/marginType", 1, "signed", simple(self._margin_type)),
                Route("GET", f"{pre}/positionSide/dual", 30, "signed",
                      simple(lambda p: {"dualSidePosition": fa.dual_side})),
                Route("POST", f"{pre}/positionSide/dual", 1, "signed", simple(self._position_mode)),
            ]
            for v in ("v2", "v3"):
                routes += [
                    Route("GET", f"/fapi/{v}/account", 5, "signed", simple(lambda p: ex.futures_account(sm()))),
                    Route("GET", f"/fapi/{v}/balance", 5, "signed", simple(self._futures_balance)),
                    Route("GET", f"/fapi/{v}/positionRisk", 5, "signed",
                          simple(lambda p: [r for r in ex.futures_positions(sm())
                                            if not p.get("symbol") or r["symbol"] == p["symbol"]])),
                ]
        for r in routes:
            self._routes[(r.method, r.path)] = r
            app.router.add_route(r.method, r.path, self._rest_handler(r))
        for ws_method, (http_method, suffix) in WS_API_ROUTES.items():
            self._ws_api_routes[ws_method] = self._routes[(http_method, f"{pre}{suffix}")]
        app.router.add_get(WS_API_PATH[self.market], self._ws_api_handler)
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/ws/{name:.*}", self._ws_handler)
        app.router.add_get("/stream", self._ws_handler)
        app.router.add_post("/_emulator/faults", self._post_faults)
        app.router.add_get("/_emulator/faults", self._get_faults)
        app.router.add_get("/_emulator/state", self._get_state)
        app.router.add_post("/_emulator/tick", self._post_tick)
        app.router.add_post("/_emulator/bench/ping_pong", self._post_ping_pong)
        app.router.add_post("/_emulator/bench/stream", self._post_stream)
        return app

    # ------------------------------------------------------------ REST

    def _json(self, body: Any, status: int = 200, extra: dict[str, str] | None = None) -> web.Response:
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.used_weight_1m)}
        if extra:
            headers.update(extra)
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                            headers=headers)

    def _error(self, status: int, code: int, msg: str, retry_after_s: float | None = None) -> web.Response:
        extra = {"Retry-After": str(max(0, math.ceil(retry_after_s)))} if retry_after_s is not None else None
        return self._json({"code": code, "msg": msg}, status, extra)

    def _rest_answer(self, a: Answer) -> web.Response:
        if a.status >= 400:
            extra = {"Retry-After": str(max(0, math.ceil(a.retry_after_s)))} if a.retry_after_s is not None else None
            return self._json(a.body, a.status, extra)
        return self._json(a.body)

    def _rest_handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            arrival_ns = time.perf_counter_ns() if route.new_order else 0
            received_ms = self.server_ms()
            resp = await self._handle(request, route, arrival_ns)
            # ts_ms: when the answer was made; received_ms: when the request arrived.
            entry = {"ts_ms": self.server_ms(), "received_ms": received_ms, "method": route.method,
                     "path": route.path, "status": resp.status}
            self.request_log.append(entry)
            return resp
        return handle

    async def _handle(self, request: web.Request, route: Route, arrival_ns: int = 0) -> web.StreamResponse:
        self.request_counts[f"{route.method} {route.path}"] += 1
        now_ms = self.server_ms()
        query = request.rel_url.raw_query_string
        body = (await request.read()).decode("utf-8", "replace") if request.can_read_body else ""
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body:
            params.update(parse_qsl(body, keep_blank_values=True))
        receipt = self._receipt(route, params, now_ms, arrival_ns, "rest")
        answer = await self._process(route, params, now_ms,
                                     lambda: self._authenticate(request, route, params, query, body))
        if answer.withheld == "dropped" and request.transport is not None:
            request.transport.abort()
        if answer.withheld:
            await self._release.wait()
        if receipt is not None:
            self._close_receipt(receipt, answer)
        return self._rest_answer(answer)

    def _receipt(self, route: Route, params: dict[str, str], now_ms: int, arrival_ns: int,
                 transport: str) -> dict[str, Any] | None:
        """Record a new-order request as it arrives (any transport); wake a benchmark waiting for it."""
        if not route.new_order:
            return None
        receipt = {"client_order_id": params.get("newClientOrderId"), "ts_ms": now_ms,
                   "symbol": params.get("symbol"), "side": params.get("side"), "transport": transport}
        self.new_order_requests.append(receipt)
        waiter = self._order_waiter
        if (waiter is not None and not waiter.done()
                and self._order_waiter_side in (None, params.get("side"))):
            waiter.set_result((params.get("newClientOrderId") or "", arrival_ns))
        return receipt

    @staticmethod
    def _close_receipt(receipt: dict[str, Any], answer: Answer) -> None:
        receipt.setdefault("status", answer.status)
        if answer.status >= 400 and answer.code is not None:
            receipt["code"] = answer.code

    def _error_answer(self, status: int, code: int, msg: str, retry_after_s: float | None = None,
                      until_ms: int | None = None) -> Answer:
        return Answer(status, {"code": code, "msg": msg}, retry_after_s, until_ms)

    async def _process(self, route: Route, params: dict[str, str], now_ms: int,
                       authenticate: Callable[[], None], ws_method: str | None = None) -> Answer:
        """One request on any transport: bans, weights, faults, authentication, the exchange."""
        # Bans and weights come first, as on the venue: they apply to every request.
        if now_ms < self.banned_until_ms:
            return self._ban_answer(now_ms)
        if now_ms < self.limited_until_ms:
            if now_ms - self.limited_at_ms <= CROSSING_GRACE_MS:
                # Sent before its sender could have seen the 429 (requests in flight together,
                # e.g. two symbols' orders): refused the same way, not held against the IP.
                return self._limited_answer(now_ms)
            self.banned_until_ms = now_ms + int(self.ban_s * 1000)
            self.bans += 1
            log.warning("binance_emulator_ip_banned", reason="request during a 429 back-off")
            return self._ban_answer(now_ms)
        self._charge(_request_weight(self.market, route, params), now_ms)
        if self.used_weight_1m > self.weight_limit_1m:
            self.limited_at_ms = now_ms
            self.limited_until_ms = (now_ms // 60_000 + 1) * 60_000
            return self._limited_answer(now_ms)
        rule = self.faults.take_error(route.method, route.path, ws_method)
        if rule is not None and not rule.execute:
            return self._rule_answer(rule, now_ms)
        delay_ms = self.faults.delay_for(route.path, ws_method)
        if delay_ms > 0:
            await self.clock.sleep(delay_ms / 1000.0)
        try:
            authenticate()
            answer, user = route.handler(params, self.clock.time_ns())
        except EmulatorError as exc:
            return self._error_answer(exc.status, exc.code, exc.msg)
        except (ValueError, KeyError) as exc:
            return self._error_answer(400, -1100, f"Illegal characters found in a parameter: {exc}")
        await self._send_user(user)
        if rule is not None:
            return self._rule_answer(rule, now_ms)
        for fault, how in (("timeout_order_responses", "timeout"), ("drop_order_responses", "dropped")):
            if route.new_order and self.faults.take(fault):
                log.info("binance_emulator_answer_withheld" if how == "timeout"
                         else "binance_emulator_connection_dropped", path=ws_method or route.path)
                self.withheld_orders.append({"client_order_id": params.get("newClientOrderId"), "how": how,
                                             "ts_ms": now_ms})
                timeout = self._error_answer(503, -1007, "Timeout waiting for response from backend server.")
                timeout.withheld = how
                return timeout
        return Answer(200, answer)

    def _charge(self, weight: int, now_ms: int) -> None:
        window = now_ms // 60_000
        if window != self._weight_window:
            self._weight_window = window
            self.used_weight_1m = 0
        if not self.unmetered:
            self.used_weight_1m += weight

    def _ban_answer(self, now_ms: int) -> Answer:
        return self._error_answer(418, -1003, f"Way too much request weight used; IP banned until "
                                              f"{self.banned_until_ms}. Please use WebSocket Streams for live updates "
                                              "to avoid bans.",
                                  (self.banned_until_ms - now_ms) / 1000.0, self.banned_until_ms)

    def _limited_answer(self, now_ms: int) -> Answer:
        return self._error_answer(
            429, -1003, f"Too much request weight used; current limit is {self.weight_limit_1m} request weight "
                        "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            (self.limited_until_ms - now_ms) / 1000.0, self.limited_until_ms)

    def _rule_answer(self, rule: Any, now_ms: int) -> Answer:
        until_ms = None
        if rule.status == 429 and rule.retry_after_s is not None:
            self.limited_at_ms = now_ms
            self.limited_until_ms = now_ms + int(rule.retry_after_s * 1000)
            until_ms = self.limited_until_ms
        msg = rule.msg
        if rule.status == 418:
            self.banned_until_ms = now_ms + int((rule.retry_after_s or self.ban_s) * 1000)
            until_ms = self.banned_until_ms
            msg = (f"Way too much request weight used; IP banned until {self.banned_until_ms}. "
                   "Please use WebSocket Streams for live updates to avoid bans.")
        return self._error_answer(rule.status, rule.code, msg, rule.retry_after_s, until_ms)

    def _authenticate(self, request: web.Request, route: Route, params: dict[str, str], query: str,
                      body: str) -> None:
        if route.security == "none":
            return
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise EmulatorError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key, self.api_key):
            raise EmulatorError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if route.security != "signed":
            return
        q_unsigned, sig_q = _strip_signature(query)
        b_unsigned, sig_b = _strip_signature(body)
        self._check_signed(params, q_unsigned + b_unsigned, sig_q or sig_b)

    def _authenticate_ws_api(self, raw_params: dict[str, Any], params: dict[str, str]) -> None:
        """WebSocket API: the key and the signature are params; the signed text is the sorted params."""
        key = params.get("apiKey")
        if not key:
            raise EmulatorError(400, -1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or "
                                            "malformed.")
        if not hmac.compare_digest(key, self.api_key):
            raise EmulatorError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        self._check_signed(params, ws_api_payload(raw_params), params.get("signature"))

    def _check_signed(self, params: dict[str, str], signed_text: str, sig: str | None) -> None:
        """timestamp, recvWindow and signature checks shared by REST and the WebSocket API."""
        if "timestamp" not in params:
            raise EmulatorError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or "
                                            "malformed.")
        if not sig:
            raise EmulatorError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or "
                                            "malformed.")
        try:
            ts = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise EmulatorError(400, -1100, "Illegal characters found in parameter 'timestamp'.") from None
        if recv_window > MAX_RECV_WINDOW_MS or recv_window <= 0:
            raise EmulatorError(400, -1131, "recvWindow must be less than 60000")
        expected = self._creds.sign(signed_text)
        if not hmac.compare_digest(expected.lower(), sig.lower()):
            raise EmulatorError(400, -1022, "Signature for this request is not valid.")
        server = self.server_ms()
        if ts > server + 1000:
            raise EmulatorError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - ts > recv_window:
            raise EmulatorError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # ------------------------------------------------------------ WebSocket API

    async def _ws_api_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20, autoping=False)
        await ws.prepare(request)
        now_s = self.clock.monotonic()
        conn = WsApiConn(ws, request, now_s, now_s)
        self.ws_api_conns.add(conn)
        self.ws_connects["ws_api"] += 1
        self._charge(WS_API_CONNECT_WEIGHT[self.market], self.server_ms())
        loop = asyncio.get_running_loop()
        keeper = loop.create_task(self._ws_api_keeper(conn), name="emulator:ws-api-keeper")
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    arrival_ns = time.perf_counter_ns()
                    task = loop.create_task(self._ws_api_request(conn, msg.data, arrival_ns),
                                            name="emulator:ws-api-request")
                    self._ws_api_tasks.add(task)
                    task.add_done_callback(self._ws_api_tasks.discard)
                elif msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.PONG:
                    conn.last_pong_s = self.clock.monotonic()
        finally:
            keeper.cancel()
            self.ws_api_conns.discard(conn)
        return ws

    async def _ws_api_keeper(self, conn: WsApiConn) -> None:
        """Pings on the clock; a ping unanswered for the pong timeout, or 24 h of age, closes the connection."""
        ping_s, pong_timeout_s = self.ws_api_ping_s, WS_API_PONG_TIMEOUT_S[self.market]
        ping_sent_s: float | None = None
        last_ping_s = conn.opened_s
        ws = conn.ws
        while not ws.closed:
            now = self.clock.monotonic()
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
            await self.clock.sleep(max(0.001, min(due) - now))

    async def _ws_api_request(self, conn: WsApiConn, text: str, arrival_ns: int) -> None:
        received_ms = now_ms = self.server_ms()
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
        route = self._ws_api_routes.get(name)
        self.request_counts[f"WS {name or '?'}"] += 1
        if not isinstance(req, dict) or not isinstance(raw_params, dict) or route is None:
            what = "not a JSON request object" if not isinstance(req, dict) else (
                f"unknown method {method!r}" if route is None else "params must be a JSON object")
            answer = self._error_answer(400, -1100, f"Illegal request: {what}.")
        else:
            params = {k: format_value(v) for k, v in raw_params.items() if v is not None}
            receipt = self._receipt(route, params, now_ms, arrival_ns, "ws_api")
            answer = await self._process(route, params, now_ms,
                                         lambda: self._authenticate_ws_api(raw_params, params), name)
            if answer.withheld == "dropped" and conn.request.transport is not None:
                conn.request.transport.abort()
            if answer.withheld:
                await self._release.wait()
            if receipt is not None:
                self._close_receipt(receipt, answer)
        self.request_log.append({"ts_ms": self.server_ms(), "received_ms": received_ms, "method": "WS",
                                 "path": name or "?", "status": answer.status})
        frame: dict[str, Any] = {"id": request_id, "status": answer.status}
        if answer.status < 400:
            frame["result"] = answer.body
        else:
            error = dict(answer.body)
            if answer.until_ms is not None:
                error["data"] = {"serverTime": self.server_ms(), "retryAfter": answer.until_ms}
            frame["error"] = error
        frame["rateLimits"] = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": self.weight_limit_1m, "count": self.used_weight_1m}]
        if not conn.ws.closed:
            with contextlib.suppress(Exception):
                await conn.ws.send_str(orjson.dumps(frame).decode())

    # ------------------------------------------------------------ listenKeys and USD-M settings

    def _key_new(self, p: dict[str, str]) -> dict[str, Any]:
        now = self.clock.monotonic()
        live = [k for k, exp in self.listen_keys.items() if exp > now]
        key = live[0] if live else new_id(self.exchange.rng, 64)
        self.listen_keys[key] = now + self.listen_key_ttl_s
        return {"listenKey": key}

    def _key_keepalive(self, p: dict[str, str]) -> dict[str, Any]:
        now = self.clock.monotonic()
        key = p.get("listenKey")
        if self.market is Market.SPOT and not key:
            raise EmulatorError(400, -1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or "
                                            "malformed.")
        if key is None:
            key = next(iter(self.listen_keys), None)
        if key is None or key not in self.listen_keys or self.listen_keys[key] <= now:
            raise EmulatorError(400, -1125, "This listenKey does not exist.")
        self.listen_keys[key] = now + self.listen_key_ttl_s
        return {"listenKey": key} if self.market is Market.USDM else {}

    def _key_close(self, p: dict[str, str]) -> dict[str, Any]:
        key = p.get("listenKey") or next(iter(self.listen_keys), None)
        if key is not None:
            self.listen_keys.pop(key, None)
        return {}

    def _leverage(self, p: dict[str, str]) -> dict[str, Any]:
        fa = self.exchange.futures
        assert fa is not None
        s = self.exchange._sym(p.get("symbol"))
        try:
            lev = int(p.get("leverage", ""))
        except ValueError:
            raise EmulatorError(400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or "
                                            "malformed.") from None
        if not 1 <= lev <= 125:
            raise EmulatorError(400, -4028, f"Leverage {lev} is not valid")
        fa.leverage[s] = lev
        return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": s}

    def _margin_type(self, p: dict[str, str]) -> dict[str, Any]:
        fa = self.exchange.futures
        assert fa is not None
        s = self.exchange._sym(p.get("symbol"))
        mt = p.get("marginType", "")
        if mt not in ("CROSSED", "ISOLATED"):
            raise EmulatorError(400, -4000, "Invalid marginType.")
        if fa.margin_type[s] == mt:
            raise EmulatorError(400, -4046, "No need to change margin type.")
        fa.margin_type[s] = mt
        return {"code": 200, "msg": "success"}

    def _position_mode(self, p: dict[str, str]) -> dict[str, Any]:
        fa = self.exchange.futures
        assert fa is not None
        want = p.get("dualSidePosition", "").lower()
        if want not in ("true", "false"):
            raise EmulatorError(400, -1102, "Mandatory parameter 'dualSidePosition' was not sent, was empty/null, "
                                            "or malformed.")
        if fa.dual_side == (want == "true"):
            raise EmulatorError(400, -4059, "No need to change position side.")
        fa.dual_side = want == "true"
        return {"code": 200, "msg": "success"}

    def _futures_balance(self, p: dict[str, str]) -> list[dict[str, Any]]:
        fa = self.exchange.futures
        assert fa is not None
        w, a = f"{fa.wallet:.8f}", f"{fa.available():.8f}"
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": w, "crossWalletBalance": w,
                 "crossUnPnl": f"{fa.unrealized():.8f}", "availableBalance": a, "maxWithdrawAmount": a,
                 "marginAvailable": True, "updateTime": self.server_ms()}]

    # ------------------------------------------------------------ websockets

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
        self.ws_connects["market"] += 1
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._market_command(conn, msg.data)
        finally:
            self.market_conns.discard(conn)
        return ws

    def _subscribe(self, conn: MarketConn, streams: set[str]) -> None:
        for s in streams:
            sym, _, kind = s.partition("@")
            if kind.startswith("kline_") and sym.upper() in self.exchange.engines:
                self.exchange.want_kline(sym.upper(), kind.removeprefix("kline_"))
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
            bad = [s for s in params if "@" not in s or s.split("@", 1)[0].upper() not in self.exchange.engines]
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
        if self.listen_keys.get(key, 0.0) <= self.clock.monotonic():
            return self._error(400, -1125, "This listenKey does not exist.")
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        self.user_conns[ws] = key
        self.ws_connects["user"] += 1
        try:
            async for _ in ws:
                pass
        finally:
            self.user_conns.pop(ws, None)
        return ws

    # ------------------------------------------------------------ control routes

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            doc = orjson.loads(await request.read())
            actions = self.faults.apply(doc)
        except (orjson.JSONDecodeError, FaultError) as exc:
            return web.json_response({"error": str(exc)}, status=400, dumps=lambda o: orjson.dumps(o).decode())
        if "close_websockets" in actions:
            await self.close_websockets(actions["close_websockets"])
        if actions.get("expire_listen_keys"):
            for key in list(self.listen_keys):
                await self.expire_listen_key(key)
        log.info("binance_emulator_faults_set", faults=self.faults.as_dict(), actions=sorted(actions))
        return web.Response(body=orjson.dumps(self.faults.as_dict()), content_type="application/json")

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.faults.as_dict()), content_type="application/json")

    async def _get_state(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.state()), content_type="application/json")

    async def _post_tick(self, request: web.Request) -> web.Response:
        n = 1
        if request.can_read_body:
            with contextlib.suppress(Exception):
                n = int(orjson.loads(await request.read()).get("n", 1))
        await self.step(max(1, min(n, 10_000)))
        return web.Response(body=orjson.dumps({"ticks": n}), content_type="application/json")

    # ------------------------------------------------------------ benchmarks

    async def _send_frame(self, stream: str, payload: dict[str, Any]) -> int:
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

    async def bench_ping_pong(self, symbol: str, n: int, timeout_s: float = 2.0,
                              gap_s: float = 0.0, side: str | None = None) -> dict[str, Any]:
        """Tick-to-order: send one trade, wait for the next new-order request, repeat `n` times.

        Each sample is (perf_counter_ns just before the trade frame is written, perf_counter_ns
        when the order request reached the handler, its client order id). A trade that
        brings no order within `timeout_s` is counted in `missed`. `gap_s` pauses after each
        order so that the client can settle (answer, fills) before the next trade. With
        `side`, only orders of that side count (e.g. a client's corrective orders are not
        answers to a trade).
        """
        loop = asyncio.get_running_loop()
        self._order_waiter_side = side
        samples: list[tuple[int, int, str]] = []
        missed = 0
        for _ in range(n):
            stream, payload = self.exchange.trade_frame(symbol, self.clock.time_ns())
            waiter: asyncio.Future[tuple[str, int]] = loop.create_future()
            self._order_waiter = waiter
            send_ns = time.perf_counter_ns()
            if not await self._send_frame(stream, payload):
                raise ValueError(f"no market connection subscribes {stream}")
            try:
                cid, arrival_ns = await asyncio.wait_for(waiter, timeout_s)
            except TimeoutError:
                missed += 1
                continue
            finally:
                self._order_waiter = None
            samples.append((send_ns, arrival_ns, cid))
            if gap_s > 0:
                await asyncio.sleep(gap_s)
        return {"samples": samples, "missed": missed}

    async def bench_stream(self, symbols: list[str], n: int) -> dict[str, Any]:
        """Send `n` trade frames (round robin over `symbols`) as fast as the connections take them."""
        ex = self.exchange
        templates = []
        for s in symbols:
            stream, payload = ex.trade_frame(s, self.clock.time_ns())
            conns = [c for c in self.market_conns if stream in c.streams and not c.ws.closed]
            if not conns:
                raise ValueError(f"no market connection subscribes {stream}")
            templates.append((stream, payload, conns))
        k = len(templates)
        t0 = time.perf_counter_ns()
        base = max(ex.public_trade_id.values()) + 1
        for i in range(n):
            stream, payload, conns = templates[i % k]
            tid = base + i
            msg = dict(payload)
            msg["t" if "t" in msg else "a"] = tid
            for c in conns:
                text = orjson.dumps({"stream": stream, "data": msg} if c.combined else msg).decode()
                await c.ws.send_str(text)
        elapsed_s = (time.perf_counter_ns() - t0) / 1e9
        for s in symbols:
            ex.public_trade_id[s] = base + n
        return {"sent": n, "elapsed_s": elapsed_s, "msgs_per_s": n / elapsed_s if elapsed_s > 0 else 0.0,
                "t0_ns": t0}

    async def _post_ping_pong(self, request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read()) if request.can_read_body else {}
        try:
            out = await self.bench_ping_pong(str(doc.get("symbol", self.exchange.symbols[0])), int(doc.get("n", 1000)),
                                             float(doc.get("timeout_s", 2.0)), float(doc.get("gap_ms", 0.0)) / 1000,
                                             doc.get("side"))
        except (ValueError, EmulatorError) as exc:
            return web.json_response({"error": str(exc)}, status=400, dumps=lambda o: orjson.dumps(o).decode())
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    async def _post_stream(self, request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read()) if request.can_read_body else {}
        try:
            out = await self.bench_stream([str(s) for s in doc.get("symbols", self.exchange.symbols[:1])],
                                          int(doc.get("n", 50_000)))
        except (ValueError, EmulatorError) as exc:
            return web.json_response({"error": str(exc)}, status=400, dumps=lambda o: orjson.dumps(o).decode())
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    def state(self) -> dict[str, Any]:
        """Everything tests assert on (JSON-ready)."""
        st = self.exchange.state()
        now = self.clock.monotonic()
        st.update(
            new_order_requests=list(self.new_order_requests),
            withheld_orders=list(self.withheld_orders),
            requests=dict(self.request_counts),
            request_log=list(self.request_log),
            connections={"market": sum(1 for c in self.market_conns if not c.ws.closed),
                         "user": sum(1 for w in self.user_conns if not w.closed)},
            ws_api_connections=sum(1 for c in self.ws_api_conns if not c.ws.closed),
            ws_connects=dict(self.ws_connects),
            subscriptions=sorted(set().union(*(c.streams for c in self.market_conns)) if self.market_conns else []),
            listen_keys=[{"listen_key": k, "expires_in_s": round(exp - now, 3)} for k, exp in self.listen_keys.items()],
            used_weight_1m=self.used_weight_1m, weight_limit_1m=self.weight_limit_1m,
            banned_until_ms=self.banned_until_ms, bans=self.bans, limited_until_ms=self.limited_until_ms,
            server_time_ms=self.server_ms(), faults=self.faults.as_dict(),
        )
        return st


def _request_weight(market: Market, route: Route, params: dict[str, str]) -> int:
    """Binance's weight of one request: open orders of every symbol cost 80 (spot) / 40 (USD-M);
    USD-M klines by limit."""
    if route.method == "GET" and route.path.endswith("/openOrders") and not params.get("symbol"):
        return 80 if market is Market.SPOT else 40
    if market is Market.USDM and route.path.endswith("/klines"):
        return klines_weight_usdm(int(params.get("limit", 500)))
    return route.weight


def _strip_signature(raw: str) -> tuple[str, str | None]:
    """(the string without its `signature=` parameter, the signature) of a query or form body."""
    if not raw:
        return "", None
    sig = None
    keep = []
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = unquote(part[len("signature="):])
        else:
            keep.append(part)
    return "&".join(keep), sig
