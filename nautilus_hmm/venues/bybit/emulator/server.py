"""`BybitEmulator`: the Bybit-v5-compatible HTTP + websocket server (aiohttp, loopback) around `BybitExchange`.

It composes the seams, one module each:

* `rest`     — the /v5 route table and the one request path every transport shares (IP
               limit and 403 ban, faults, per-endpoint rate limits with `X-Bapi-Limit*`
               headers and retCode 10006, authentication 10003/10002/10004, matching).
* `streams`  — `/v5/public/spot`, `/v5/public/linear` (orderbook, publicTrade, tickers,
               kline) and `/v5/private` (auth; order, execution, position, wallet).
* `wsapi`    — `/v5/trade`: `order.create|amend|cancel` with `reqId`, the twins of the REST
               endpoints through the same request path.
* `control`  — not Bybit: `/_emulator/faults`, `/_emulator/state`, `/_emulator/tick`,
               `/_emulator/funding`, `/_emulator/instrument_status`.

All time (server time, rate-limit windows, bans, the market's tick, injected delays) is
the injected clock.
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
from nautilus_hmm.venues.bybit.emulator.control import Control
from nautilus_hmm.venues.bybit.emulator.exchange import BybitExchange
from nautilus_hmm.venues.bybit.emulator.faults import Faults
from nautilus_hmm.venues.bybit.emulator.rest import RestApi
from nautilus_hmm.venues.bybit.emulator.streams import Streams
from nautilus_hmm.venues.bybit.emulator.wsapi import TRADE_PATH, TradeWs
from nautilus_hmm.venues.emulator_common import cancel_tasks, listen

log = structlog.get_logger("venues.bybit.emulator")

NS_PER_MS = 1_000_000


class BybitEmulator:
    """A Bybit v5 venue (spot + linear) on loopback (see the module docstring)."""

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        symbols: tuple[str, ...] | list[str] = ("BTCUSDT", "ETHUSDT"),
        clock: Clock | None = None,
        seed: int = 7,
        replay: BarArrays | TradeArrays | None = None,
        tick_interval_s: float = 1.0,
        balances: dict[str, Decimal] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ip_limit_5s: int = 600,
        ban_s: float = 600.0,
        run_market: bool = True,
        unmetered: bool = False,
        market_time_scale: float = 1.0,
        ws_idle_s: float = 600.0,
        read_only_key: bool = False,
    ) -> None:
        self.clock = clock or LiveClock()
        self.api_key = api_key
        self.api_secret = api_secret
        self.exchange = BybitExchange(symbols, seed=seed, balances=balances, replay=replay,
                                      tick_interval_s=tick_interval_s, start_ns=self.clock.time_ns(),
                                      market_time_scale=market_time_scale)
        self.started_ms = self.clock.time_ns() // NS_PER_MS
        self.tick_interval_s = tick_interval_s
        self.host = host
        self.port = port
        self.ip_limit_5s = ip_limit_5s
        self.ban_s = ban_s
        self.run_market = run_market
        # A websocket the client sends nothing on (no ping) for this long is closed; private
        # and trade connections may choose 30..600 s with ?max_active_time=.
        self.ws_idle_s = ws_idle_s
        # Unmetered: no per-endpoint rate limit (the headers still come), for tests that
        # restart a client far more often than a real budget allows.
        self.unmetered = unmetered
        # The API key may only read (Bybit "Read-Only" permission): signed writes (order
        # create/amend/cancel/cancel-all, set-leverage, switch-mode) answer retCode 10005.
        self.read_only_key = read_only_key
        self.faults = Faults()
        self.ws_connects = Counter[str]()
        self.streams = Streams(self)
        self.rest = RestApi(self)
        self.trade_ws = TradeWs(self)
        self.control = Control(self)
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        app = web.Application()
        self.rest.add_routes(app)
        self.streams.add_routes(app)
        self.trade_ws.add_routes(app)
        self.control.add_routes(app)
        return app

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """REST base URL (http://host:port)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_public_url(self) -> str:
        """Public stream base (ws://host:port/v5/public; append /spot or /linear)."""
        return f"ws://{self.host}:{self.port}/v5/public"

    @property
    def ws_private_url(self) -> str:
        """Private stream URL."""
        return f"ws://{self.host}:{self.port}/v5/private"

    @property
    def ws_trade_url(self) -> str:
        """Trade WebSocket URL."""
        return f"ws://{self.host}:{self.port}{TRADE_PATH}"

    async def start(self) -> None:
        """Serve on host:port (port 0: a free port, then `self.port` holds it); start the market timer."""
        self._runner, self.port = await listen(self.app, self.host, self.port)
        if self.run_market:
            self._tasks.append(asyncio.get_running_loop().create_task(self._market_loop(), name="bybit-emu:market"))
        log.info("bybit_emulator_started", url=self.url, symbols=self.exchange.symbols)

    async def stop(self) -> None:
        """Stop the timer, release withheld answers, close connections and the server."""
        await cancel_tasks(self._tasks)
        self.rest.release.set()
        await self.trade_ws.close(code=1001, message=b"emulator stopping")
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

    # ------------------------------------------------------------ market and connections

    async def step(self, n: int = 1) -> None:
        """Produce `n` market ticks now and send them (and the private frames they caused)."""
        for _ in range(n):
            skip = self.faults.take("skip_book_deltas")
            out = self.exchange.tick(self.clock.time_ns(), self.streams.wanted(), skip_delta=skip)
            await self.streams.broadcast_public(out.public)
            await self.streams.send_private(out.private)

    async def private_send(self, frames: list[tuple[str, dict[str, Any]]]) -> None:
        """Send private frames (order, execution, position, wallet)."""
        await self.streams.send_private(frames)

    async def settle_funding(self, symbol: str) -> None:
        """Settle funding on a linear position now (a Funding execution, not a fill)."""
        await self.streams.send_private(self.exchange.funding(symbol, self.server_ms()))

    async def bench_ping_pong(self, category: str, symbol: str, n: int, timeout_s: float = 2.0,
                              gap_s: float = 0.0, side: str | None = None) -> dict[str, Any]:
        """Tick-to-order benchmark (see `Control.bench_ping_pong`)."""
        return await self.control.bench_ping_pong(category, symbol, n, timeout_s, gap_s, side)

    async def close_websockets(self, which: str = "all") -> None:
        """Close public and/or private and/or trade connections (clients see a drop)."""
        await self.streams.close(which)
        if which in ("all", "trade"):
            await self.trade_ws.close()

    async def set_faults(self, doc: Any) -> dict[str, Any]:
        """Apply a fault request (see faults.py) and run its one-shot actions; FaultError when malformed."""
        actions = self.faults.apply(doc)
        if "close_websockets" in actions:
            await self.close_websockets(actions["close_websockets"])
        if "ip_ban_s" in actions:
            self.rest.ban_ip(self.server_ms(), actions["ip_ban_s"])
        return actions

    # ------------------------------------------------------------ what tests read

    @property
    def request_counts(self) -> Counter[str]:
        """Requests by `"METHOD path"` (`"WS order.create"` for the trade WebSocket)."""
        return self.rest.request_counts

    @property
    def request_log(self) -> deque[dict[str, Any]]:
        """The last 5000 REST requests."""
        return self.rest.request_log

    @property
    def new_order_requests(self) -> list[dict[str, Any]]:
        """Every order create (REST or trade WebSocket) with its answer's retCode."""
        return self.rest.new_order_requests

    @property
    def withheld_orders(self) -> list[dict[str, Any]]:
        """Orders executed whose answer was withheld or whose connection was cut."""
        return self.rest.withheld_orders

    def state(self) -> dict[str, Any]:
        """Everything tests assert on (JSON-ready)."""
        st = self.exchange.state()
        st.update(
            new_order_requests=list(self.rest.new_order_requests),
            withheld_orders=list(self.rest.withheld_orders),
            requests=dict(self.rest.request_counts),
            connections={"public": sum(1 for c in self.streams.public if not c.ws.closed),
                         "private": sum(1 for c in self.streams.private if not c.ws.closed),
                         "trade": self.trade_ws.open_count()},
            ws_connects=dict(self.ws_connects),
            subscriptions=self.streams.subscriptions(),
            banned_until_ms=self.rest.banned_until_ms, bans=self.rest.bans,
            server_time_ms=self.server_ms(), faults=self.faults.as_dict(),
        )
        return st
