"""`BinanceEmulator`: the Binance-compatible HTTP + websocket server (aiohttp, loopback) around `EmulatedExchange`.

It composes the seams, one module each:

* `rest`     — the route tables and the one request path every transport shares (bans,
               weights, faults, authentication, matching), and the REST transport: Binance's
               JSON shapes, `X-MBX-USED-WEIGHT-1M` headers and its error codes and bodies:
               API key (-2014/-2015, HTTP 401), signature (-1022), timestamp and recvWindow
               (-1021, -1102, -1131), request weight per minute (HTTP 429 / -1003 with
               Retry-After; a request sent while a 429 is running gets the IP banned: HTTP 418
               "banned until <ms>"), unknown symbols and orders.
* `market_data` — the public market endpoints (tickers, recent and aggregate trades, average
               price, USD-M mark price) answered from the trades and book the streams print.
* `wsapi`    — the WebSocket API (`/ws-api/v3` spot, `/ws-fapi/v1` USD-M): `order.place`,
               `order.cancel`, `order.status`, each the twin of its REST endpoint and served
               by the same request path. Faults keyed by a REST path (delays, errors) apply to
               its WebSocket API twin too; keyed by the method name (`order.place`) they apply
               to the WebSocket API only. `timeout_order_responses` withholds the answer frame;
               `drop_order_responses` cuts the connection after executing.
* `streams`  — `/ws` (raw frames, SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS with ids),
               `/ws/<stream>[/<stream>...]`, `/stream?streams=...` (combined frames) and
               `/ws/<listenKey>` (user data). listenKeys live 60 minutes after the last
               keepalive (`listen_key_ttl_s`); at expiry the stream gets `listenKeyExpired`
               and is closed.
* `control`  — not Binance: `POST /_emulator/faults` (see faults.py), `GET /_emulator/faults`,
               `GET /_emulator/state` (orders, fills, balances, positions, every client order
               id the matching engine received and every new-order request (REST or WebSocket
               API) with its answer, request counts, connections, subscriptions, listen keys,
               weights, bans), `POST /_emulator/tick` (`{"n": 3}`: produce market ticks now),
               and the benchmark routes.

All time (server time, weight windows, bans, key expiry, the market's tick, injected
delays) is the injected clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from decimal import Decimal
from typing import Any

import structlog
from aiohttp import web

from nautilus_hmm.core.clock import Clock, LiveClock
from nautilus_hmm.marketdata.replay import BarArrays, TradeArrays
from nautilus_hmm.venues.binance.auth import Credentials
from nautilus_hmm.venues.binance.emulator.control import Control
from nautilus_hmm.venues.binance.emulator.exchange import EmulatedExchange
from nautilus_hmm.venues.binance.emulator.faults import Faults
from nautilus_hmm.venues.binance.emulator.rest import DEFAULT_WEIGHT_LIMIT_1M, RestApi
from nautilus_hmm.venues.binance.emulator.streams import Streams
from nautilus_hmm.venues.binance.emulator.wsapi import WS_API_PATH, WS_API_PING_S, WsApi
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.emulator_common import cancel_tasks, listen

log = structlog.get_logger("venues.binance.emulator")

NS_PER_MS = 1_000_000


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
        read_only_key: bool = False,
    ) -> None:
        self.market = market
        self.clock = clock or LiveClock()
        self.api_key = api_key
        self.creds = Credentials(api_key, api_secret)
        self.exchange = EmulatedExchange(market, symbols, seed=seed, balances=balances, replay=replay,
                                         tick_interval_s=tick_interval_s, start_ns=self.clock.time_ns(),
                                         market_time_scale=market_time_scale)
        self.tick_interval_s = tick_interval_s
        self.weight_limit_1m = weight_limit_1m or DEFAULT_WEIGHT_LIMIT_1M[market]
        # Unmetered: requests weigh nothing (X-MBX-USED-WEIGHT-1M stays 0), for tests that
        # restart a client far more often than any real weight budget allows.
        self.unmetered = unmetered
        # The API key may only read (Binance "Enable Reading"): signed writes answer -2015.
        self.read_only_key = read_only_key
        self.host = host
        self.port = port
        self.listen_key_ttl_s = listen_key_ttl_s
        self.ban_s = ban_s
        self.run_market = run_market
        # WebSocket API server pings (None: Binance's 20 s spot / 3 min USD-M); a ping
        # unanswered for 1 min (spot) / 10 min (USD-M) closes the connection.
        self.ws_api_ping_s = ws_api_ping_s or WS_API_PING_S[market]
        self.faults = Faults()
        self.ws_connects = Counter[str]()
        self.streams = Streams(self)
        self.rest = RestApi(self)
        self.ws_api = WsApi(self)
        self.control = Control(self)
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        app = web.Application()
        self.rest.add_routes(app)
        self.ws_api.add_routes(app, self.rest.routes, self.rest.prefix)
        self.streams.add_routes(app)
        self.control.add_routes(app)
        return app

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
        self._runner, self.port = await listen(self.app, self.host, self.port)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.streams.expiry_loop(), name="emulator:listen-keys"))
        if self.run_market:
            self._tasks.append(loop.create_task(self._market_loop(), name="emulator:market"))
        log.info("binance_emulator_started", market=self.market.value, url=self.url,
                 symbols=self.exchange.symbols)

    async def stop(self) -> None:
        """Stop the timers, release hung answers, close connections and the server."""
        await cancel_tasks(self._tasks)
        self.rest.release.set()
        self.ws_api.cancel_requests()
        await self.ws_api.close()
        await self.streams.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _market_loop(self) -> None:
        while True:
            await self.clock.sleep(self.tick_interval_s)
            await self.step()

    def server_ms(self) -> int:
        """Server time in ms (the clock plus any injected skew)."""
        return self.clock.time_ns() // NS_PER_MS + self.faults.time_skew_ms

    # ------------------------------------------------------------ market data and connections

    async def step(self, n: int = 1) -> None:
        """Produce `n` market ticks now and send them (and the user events they caused)."""
        for _ in range(n):
            out = self.exchange.tick(self.clock.time_ns())
            await self.streams.broadcast_market(out.market, out.depth_streams)
            await self.streams.send_user(out.user)

    async def expire_listen_key(self, key: str) -> None:
        """Expire a key now: its streams get `listenKeyExpired` and are closed."""
        await self.streams.expire_listen_key(key)

    async def close_websockets(self, which: str = "all") -> None:
        """Close market and/or user and/or WebSocket API connections (clients see a drop)."""
        await self.streams.close(which)
        if which in ("all", "ws_api"):
            await self.ws_api.close(code=1001, message=b"emulator: closed by fault injection")

    async def bench_ping_pong(self, symbol: str, n: int, timeout_s: float = 2.0,
                              gap_s: float = 0.0, side: str | None = None) -> dict[str, Any]:
        """Tick-to-order benchmark (see `Control.bench_ping_pong`)."""
        return await self.control.bench_ping_pong(symbol, n, timeout_s, gap_s, side)

    async def bench_stream(self, symbols: list[str], n: int, rate: float = 0.0) -> dict[str, Any]:
        """Market-data throughput benchmark (see `Control.bench_stream`)."""
        return await self.control.bench_stream(symbols, n, rate)

    # ------------------------------------------------------------ what tests read

    @property
    def request_counts(self) -> Counter[str]:
        """Requests by `"METHOD path"` (`"WS order.place"` for the WebSocket API)."""
        return self.rest.request_counts

    @property
    def request_log(self) -> deque[dict[str, Any]]:
        """The last 5000 requests: ts_ms (answered), received_ms, method, path, status."""
        return self.rest.request_log

    @property
    def bans(self) -> int:
        """How many times the IP was banned."""
        return self.rest.bans

    @property
    def banned_until_ms(self) -> int:
        """Server time (ms) the current ban ends (0: never banned)."""
        return self.rest.banned_until_ms

    @property
    def limited_until_ms(self) -> int:
        """Server time (ms) the current 429 back-off ends."""
        return self.rest.limited_until_ms

    @property
    def used_weight_1m(self) -> int:
        """Request weight used in the current minute."""
        return self.rest.used_weight_1m

    @property
    def new_order_requests(self) -> list[dict[str, Any]]:
        """Every new-order request (REST or WebSocket API) with its answer's status and code."""
        return self.rest.new_order_requests

    @property
    def withheld_orders(self) -> list[dict[str, Any]]:
        """Orders executed whose answer was withheld or whose connection was cut."""
        return self.rest.withheld_orders

    @property
    def listen_keys(self) -> dict[str, float]:
        """Live listenKeys → expiry (monotonic s)."""
        return self.streams.listen_keys

    def state(self) -> dict[str, Any]:
        """Everything tests assert on (JSON-ready)."""
        st = self.exchange.state()
        now = self.clock.monotonic()
        rest, streams = self.rest, self.streams
        st.update(
            new_order_requests=list(rest.new_order_requests),
            withheld_orders=list(rest.withheld_orders),
            requests=dict(rest.request_counts),
            request_log=list(rest.request_log),
            connections={"market": sum(1 for c in streams.market_conns if not c.ws.closed),
                         "user": sum(1 for w in streams.user_conns if not w.closed)},
            ws_api_connections=self.ws_api.open_count(),
            ws_connects=dict(self.ws_connects),
            subscriptions=streams.subscriptions(),
            listen_keys=[{"listen_key": k, "expires_in_s": round(exp - now, 3)}
                         for k, exp in streams.listen_keys.items()],
            used_weight_1m=rest.used_weight_1m, weight_limit_1m=self.weight_limit_1m,
            banned_until_ms=rest.banned_until_ms, bans=rest.bans, limited_until_ms=rest.limited_until_ms,
            server_time_ms=self.server_ms(), faults=self.faults.as_dict(),
        )
        return st
