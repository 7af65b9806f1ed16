"""`BinanceVenue`: the Venue protocol over Binance spot (`binance_spot`) or USD-M (`binance_usdm`).

Start (`start()`): server time sync, exchangeInfo → instruments (the configured symbols
must all be listed), USD-M account settings from the config (position mode, leverage,
margin type per symbol), a listenKey. `run()` then keeps, until cancelled: the market
stream (trades, closed klines → `Bar`, bookTicker → `QuoteTick`, diff depth → local
books, USD-M mark price), the book resync worker, the user stream and its listenKey
keepalive and a periodic instruments refresh.

Orders: `newClientOrderId` is the engine's client order id; spot asks for FULL answers
(fills at placement are published as `FillReport` at once; the user stream repeats them
with the same trade ids), USD-M for RESULT. Every fill report this adapter sees is
published and nothing is counted here: the engine's fill intake (`execution.fills`) is
the one place a copy is refused. A timeout or
a connection lost after an order request left raises `UnknownOutcome` (see rest.py): the
engine queries, this adapter never resends.

Order entry (`order_entry`): "rest" sends new orders and cancels as signed REST requests;
"ws_api" sends them over Binance's WebSocket API (wsapi.py; the same parsers, errors,
weights and bans). With "ws_api", an order or cancel made while that connection is down
goes by REST instead: its frame was never written, so this is its only send
(`ws_api_fallbacks` counts them). Queries, open orders, trades and cancel-all stay on
REST: reconciliation and unknown-outcome queries must not depend on the connection
that may just have failed.

User-stream gaps: every (re)connect of the user stream (a drop, a new listenKey after
expiry) may have lost events. The adapter publishes `UserStreamGap(venue, since_ns,
reason)` and reads nothing itself: the reconciler re-reads that venue's orders and fills
once (`execution.reconcile`). `since_ns`: before the stream delivered any event, the
moment `start()` began, in venue time (older trades are account history, booked by the
start-up reconciliation from the journal's cursor); afterwards the later of that and
the last event received, minus `gap_lookback_s`.

REST trades carry no client order id: it is found from the venue order id through a
cache filled by acks, reports and queries, and by querying the order when unknown.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import aiohttp
import numpy as np
import structlog

from nautilus_hmm.core.bounded import RecentMap
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.errors import AuthError, OrderRejected, RateLimited, VenueBanned, VenueError
from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.messages import Bar, FillReport, InstrumentsUpdated, UserStreamGap
from nautilus_hmm.obs.trading_metrics import VenueMetricsSnapshot
from nautilus_hmm.venues.binance.auth import Credentials
from nautilus_hmm.venues.binance.config import BinanceConfig
from nautilus_hmm.venues.binance.instruments import parse_exchange_info
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import (
    BinanceParser,
    parse_account_trades,
    parse_balances,
    parse_new_order_response,
    parse_order,
    parse_orders,
    parse_position_mode,
    parse_positions,
    parse_rest_klines,
)
from nautilus_hmm.venues.binance.rest import BinanceRest, default_rest_url, default_ws_url
from nautilus_hmm.venues.binance.streams import INTERVAL_NAMES, MarketStreams, symbol_streams
from nautilus_hmm.venues.binance.user import UserStream
from nautilus_hmm.venues.binance.wsapi import BinanceWsApi, WsApiNotConnected, default_ws_api_url
from nautilus_hmm.venues.ws import WsSettings

log = structlog.get_logger("venues.binance")
ORDER_ID_CACHE_KEPT = 10_000  # venue order id -> client order id, newest (bounded: a daemon runs for months)

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
CODE_UNKNOWN_ORDER = "-2011"
CODE_NO_SUCH_ORDER = "-2013"
CODE_NO_NEED_MARGIN_TYPE = "-4046"
CODE_NO_NEED_POSITION_SIDE = "-4059"
START_WAIT_MAX_S = 300.0  # longest wait for rate limits / bans during start()
TRADES_PAGE_LIMIT = 1000
KLINES_PAGE = 1000  # klines per GET klines (spot max 1000; USD-M weight 5 at 1000)
TRADES_WINDOW_S = {Market.SPOT: 24 * 3600, Market.USDM: 7 * 24 * 3600}  # max startTime..endTime span
MAX_TIME_WINDOWS = 30  # further back than this many windows: page by trade id instead
USDM_TRADES_HISTORY_MS = 180 * 24 * 3600 * 1000  # userTrades serves the last 6 months only


@dataclass(frozen=True, slots=True)
class BinanceOptions:
    """Adapter settings that [venues.binance_*] does not carry (defaults suit production)."""

    trade_stream: str | None = None  # "trade" or "aggTrade"; None: trade (spot), aggTrade (USD-M)
    bar_interval_s: int | None = 60  # closed klines become Bars (no such kline: bars from trades); None: none
    book_ticker: bool = True
    depth: bool = True
    mark_price: bool = True
    market_ws: WsSettings = field(default_factory=lambda: WsSettings(stale_after_s=60.0))
    user_ws: WsSettings = field(default_factory=WsSettings)
    order_ws: WsSettings | None = None  # the WebSocket API connection; None: wsapi.DEFAULT_WS_API_SETTINGS
    listen_key_keepalive_s: float = 30 * 60.0
    instruments_refresh_s: float = 3600.0
    gap_lookback_s: float = 60.0
    weight_limit_1m: int | None = None  # None: from exchangeInfo rateLimits
    require_credentials: bool = True
    # Monitor mode: no account writes (futures settings left as they are), no WebSocket API
    # connection, and order entry refused here too (AuthError: nothing was placed).
    read_only: bool = False


class BinanceVenue:
    """Binance spot or USD-M futures as a `domain.venue.Venue` (see the module docstring)."""

    def __init__(
        self,
        config: BinanceConfig,
        market: Market,
        bus: Bus,
        clock: Clock,
        *,
        name: str | None = None,
        credentials: Credentials | None = None,
        options: BinanceOptions | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name or market.default_venue
        if not config.symbols:
            raise ValueError(f"venues.{self.name}.symbols must list at least one symbol")
        self.config = config
        self.market = market
        self.bus = bus
        self.clock = clock
        self.options = options or BinanceOptions()
        if self.options.require_credentials and credentials is None:
            raise ValueError(
                f"venues.{self.name}: no API credentials: set NAUTILUS_HMM_{config.credential_prefix.upper()}_API_KEY"
                f" and _API_SECRET (or systemd credentials {config.credential_prefix}-api-key / -api-secret)")
        self.credentials = credentials
        self.rest_url = config.rest_url or default_rest_url(market, config.testnet)
        self.ws_url = config.ws_url or default_ws_url(market, config.testnet)
        self.parser = BinanceParser(market, self.name)
        self._session = session
        self._rng = rng or random.Random()
        self.rest = BinanceRest(
            market, self.rest_url, clock, venue=self.name, credentials=credentials,
            recv_window_ms=config.recv_window_ms, request_timeout_s=config.request_timeout_s,
            weight_limit_1m=self.options.weight_limit_1m, session=session,
        )
        opts = self.options
        trade_stream = opts.trade_stream or ("trade" if market is Market.SPOT else "aggTrade")
        kline = INTERVAL_NAMES.get(opts.bar_interval_s) if opts.bar_interval_s else None
        if kline == "1s" and market is Market.USDM:
            kline = None  # USD-M has no 1 s klines
        trade_bars = opts.bar_interval_s if opts.bar_interval_s and kline is None else None
        streams: list[str] = []
        for sym in config.symbols:
            streams += symbol_streams(sym, market, trade_stream=trade_stream, kline=kline,
                                      book_ticker=opts.book_ticker, depth=opts.depth, mark_price=opts.mark_price)
        self.markets = MarketStreams(
            venue=self.name, market=market, ws_url=self.ws_url, parser=self.parser, bus=bus, clock=clock,
            rest=self.rest, streams=streams, book_symbols=config.symbols if opts.depth else (),
            settings=opts.market_ws, session=session, rng=self._rng, trade_bar_interval_s=trade_bars,
        )
        self.user: UserStream | None = None
        if credentials is not None:
            self.user = UserStream(
                venue=self.name, ws_url=self.ws_url, parser=self.parser, bus=bus, clock=clock, rest=self.rest,
                settings=opts.user_ws, on_order=self._track, on_gap=self._on_user_gap,
                keepalive_s=opts.listen_key_keepalive_s, session=session, rng=self._rng,
            )
        self.ws_api_url = ""
        self.ws_api: BinanceWsApi | None = None
        if config.order_entry == "ws_api" and credentials is not None and not opts.read_only:
            self.ws_api_url = config.ws_api_url or default_ws_api_url(market, config.testnet)
            self.ws_api = BinanceWsApi(
                market, self.ws_api_url, clock, venue=self.name, credentials=credentials, rest=self.rest,
                recv_window_ms=config.recv_window_ms, request_timeout_s=config.request_timeout_s,
                settings=opts.order_ws, session=session, rng=self._rng,
            )
        self.ws_api_fallbacks = 0
        self._instruments: dict[InstrumentId, Instrument] = {}
        # A cache in front of a venue query (a miss costs one request): the newest ids only.
        self._cid_by_oid: dict[tuple[str, str], str] = RecentMap(ORDER_ID_CACHE_KEPT)
        self._started = False
        self._started_ns = 0
        self.user_stream_gaps = 0  # UserStreamGap events published
        self.instrument_refreshes = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Time sync, instruments, USD-M account settings, listenKey (streams open in run())."""
        self._started_ns = self.clock.time_ns()
        try:
            await self._start_step("time sync", self.rest.sync_time)
            await self._start_step("instruments", self._load_instruments)
            if self.market is Market.USDM and self.credentials is not None and not self.options.read_only:
                await self._start_step("futures settings", self._configure_futures)
            if self.user is not None:
                await self._start_step("listenKey", self.user.create_key)
        except BaseException:
            # stop() is not called after a failed start: do not leak the HTTP session.
            await self.rest.close()
            raise
        self.markets.start_books()
        self._started = True
        log.info("binance_venue_started", venue=self.name, rest=self.rest_url, ws=self.ws_url,
                 symbols=list(self.config.symbols), time_offset_ms=self.rest.time_offset_ms,
                 user_stream=self.user is not None, order_entry="none (read-only)" if self.options.read_only
                 else self.config.order_entry,
                 ws_api=self.ws_api_url or None)

    async def run(self) -> None:
        """Streams, book sync, listenKey keepalive, instrument refresh."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.markets.ws.run(), name=f"{self.name}:market-ws")
            tg.create_task(self.markets.run_book_sync(), name=f"{self.name}:book-sync")
            tg.create_task(self._run_instrument_refresh(), name=f"{self.name}:instruments")
            if self.ws_api is not None:
                tg.create_task(self.ws_api.run(), name=f"{self.name}:ws-api")
            if self.user is not None:
                tg.create_task(self.user.ws.run(), name=f"{self.name}:user-ws")
                tg.create_task(self.user.run_key(), name=f"{self.name}:listen-key")

    async def stop(self) -> None:
        """Close the streams, the listenKey and the session."""
        await self.markets.ws.close()
        if self.ws_api is not None:
            await self.ws_api.close()
        if self.user is not None:
            await self.user.ws.close()
            if self._started:
                await self.user.close_key()
        await self.rest.close()
        self._started = False

    async def _start_step(self, step: str, fn: Callable[[], Any]) -> Any:
        """One start-up step; a rate limit (429 or the local weight budget) or a ban is waited out.

        The venue says how long (Retry-After, the ban end, the next weight minute), so a
        node restarted into a spent budget waits instead of exiting and being restarted
        into the same budget. Longer than `START_WAIT_MAX_S` in total: the error is raised.
        """
        waited_s = 0.0
        while True:
            try:
                return await fn()
            except (RateLimited, VenueBanned) as exc:
                if isinstance(exc, VenueBanned):
                    wait_s = max(1.0, (exc.until_ns - self.clock.time_ns()) / NS_PER_S)
                else:
                    wait_s = max(1.0, exc.retry_after_s)
                if waited_s + wait_s > START_WAIT_MAX_S:
                    raise
                log.warning("binance_start_waiting", venue=self.name, step=step, wait_s=round(wait_s, 1),
                            error=str(exc))
                await self.clock.sleep(wait_s)
                waited_s += wait_s

    def reconfigure(self, config: BinanceConfig) -> None:
        """Apply the live-reloadable fields: recv_window_ms, request_timeout_s."""
        self.config = replace(self.config, recv_window_ms=config.recv_window_ms,
                              request_timeout_s=config.request_timeout_s)
        self.rest.recv_window_ms = config.recv_window_ms
        self.rest.request_timeout_s = config.request_timeout_s
        if self.ws_api is not None:
            self.ws_api.recv_window_ms = config.recv_window_ms
            self.ws_api.request_timeout_s = config.request_timeout_s

    def health(self) -> Health:
        """Connected, streams fresh, not banned."""
        problems: list[str] = []
        now_ns = self.clock.time_ns()
        if not self._started:
            problems.append("not started")
        if now_ns < self.rest.banned_until_ns:
            problems.append(f"banned (HTTP 418) for {(self.rest.banned_until_ns - now_ns) / NS_PER_S:.0f} s")
        if self.clock.monotonic() < self.rest.blocked_until_s:
            problems.append("rate limited (HTTP 429)")
        if not self.markets.ws.connected:
            problems.append("market stream disconnected")
        else:
            quiet = self.markets.ws.seconds_since_data()
            stale = self.options.market_ws.stale_after_s
            if stale is not None and quiet is not None and quiet > stale:
                problems.append(f"market stream quiet for {quiet:.0f} s")
        if self.user is not None and not self.user.ws.connected:
            problems.append("user stream disconnected")
        if self.ws_api is not None and not self.ws_api.connected:
            problems.append("order-entry WebSocket API disconnected (orders go by REST meanwhile)")
        invalid = [str(iid) for iid, ok in self.markets.book_published.items() if ok is not True]
        info: dict[str, object] = {
            "time_offset_ms": self.rest.time_offset_ms,
            "used_weight_1m": self.rest.used_weight_1m,
            "banned_until_ns": self.rest.banned_until_ns,
            "market_ws": self.markets.ws.stats.as_dict(),
            "user_ws": self.user.ws.stats.as_dict() if self.user is not None else None,
            "rest": self.rest.stats.as_dict(),
            "books_invalid": invalid,
            "listen_keys_created": self.user.keys_created if self.user is not None else 0,
            "user_stream_gaps": self.user_stream_gaps,
            "order_entry": self.config.order_entry,
        }
        if self.ws_api is not None:
            info["ws_api"] = {**self.ws_api.stats.as_dict(), "ws": self.ws_api.ws.stats.as_dict(),
                              "fallbacks_to_rest": self.ws_api_fallbacks}
        return Health(not problems, "; ".join(problems), info)

    def metrics_snapshot(self) -> VenueMetricsSnapshot:
        """Websocket reconnects and connection state per stream, request weight this minute (scrape time)."""
        streams = {"market": self.markets.ws}
        if self.user is not None:
            streams["user"] = self.user.ws
        if self.ws_api is not None:
            streams["ws_api"] = self.ws_api.ws
        return VenueMetricsSnapshot(
            ws_reconnects={k: ws.stats.reconnects for k, ws in streams.items()},
            ws_connected={k: ws.connected for k, ws in streams.items()},
            weight_used_1m=self.rest.weight_used_this_minute(),
            weight_limit_1m=self.rest.weight_limit_1m,
        )

    # ------------------------------------------------------------ instruments

    def instruments(self) -> dict[InstrumentId, Instrument]:
        """The configured symbols as instruments."""
        return dict(self._instruments)

    async def _load_instruments(self) -> None:
        body = await self.rest.call("exchange_info")
        info = parse_exchange_info(body, self.market, self.name)
        by_symbol = {iid.symbol: inst for iid, inst in info.instruments.items()}
        skipped = dict(info.skipped)
        missing = [s for s in self.config.symbols if s not in by_symbol]
        if missing:
            why = {s: skipped.get(s, "not listed") for s in missing}
            raise ValueError(f"venues.{self.name}.symbols: not tradable on Binance {self.market.value}: {why}")
        self._instruments = {by_symbol[s].id: by_symbol[s] for s in self.config.symbols}
        if self.options.weight_limit_1m is None:
            for rl in body.get("rateLimits") or ():
                if (rl.get("rateLimitType") == "REQUEST_WEIGHT" and rl.get("interval") == "MINUTE"
                        and rl.get("intervalNum") == 1 and isinstance(rl.get("limit"), int)):
                    self.rest.weight_limit_1m = rl["limit"]
        untradable = [str(i) for i, inst in self._instruments.items() if not inst.tradable]
        if untradable:
            log.warning("binance_symbols_not_trading", venue=self.name, symbols=untradable)

    async def _run_instrument_refresh(self) -> None:
        while True:
            await self.clock.sleep(self.options.instruments_refresh_s)
            before = dict(self._instruments)
            try:
                await self._load_instruments()
                self.instrument_refreshes += 1
            except (VenueError, ValueError) as exc:
                log.warning("binance_instruments_refresh_failed", venue=self.name, error=str(exc))
                continue
            changed = tuple(inst for iid, inst in self._instruments.items() if before.get(iid) != inst)
            if changed:
                now = self.clock.time_ns()
                self.bus.publish(InstrumentsUpdated(ts_event_ns=now, ts_init_ns=now, venue=self.name,
                                                    instruments=changed))

    async def history_bars(self, instrument_id: InstrumentId, interval_s: int, n_bars: int) -> BarArrays:
        """The last `n_bars` closed klines of `interval_s` (GET klines, 1000 a page, oldest first)."""
        interval = INTERVAL_NAMES.get(interval_s)
        if interval is None:
            raise ValueError(f"Binance has no {interval_s} s klines; it has {sorted(INTERVAL_NAMES)}")
        symbol = self._symbol(instrument_id)
        ival_ms = interval_s * 1000
        end_ms = self.rest.server_time_ms()
        start_ms = (end_ms // ival_ms - n_bars) * ival_ms
        bars: list[Bar] = []
        while len(bars) < n_bars and start_ms < end_ms:
            page = await self.rest.call("klines", {"symbol": symbol, "interval": interval, "startTime": start_ms,
                                                   "limit": KLINES_PAGE})
            got = parse_rest_klines(page, instrument_id, interval_s, self.clock.time_ns(), now_ms=end_ms)
            bars += got
            if len(page) < KLINES_PAGE or not got:
                break
            start_ms = int(page[-1][0]) + ival_ms
        bars = bars[-n_bars:]
        return BarArrays(np.fromiter((b.ts_event_ns for b in bars), dtype=np.int64, count=len(bars)),
                         *(np.fromiter((getattr(b, f) for b in bars), dtype=np.float64, count=len(bars))
                           for f in ("open", "high", "low", "close", "volume")),
                         interval_s, f"{self.name}:{symbol}:klines")

    async def _configure_futures(self) -> None:
        cfg = self.config
        dual = parse_position_mode(await self.rest.call("position_mode"))
        if dual != cfg.hedge_mode:
            await self._tolerate(CODE_NO_NEED_POSITION_SIDE, "set_position_mode",
                                 {"dualSidePosition": "true" if cfg.hedge_mode else "false"})
        for sym in cfg.symbols:
            await self.rest.call("leverage", {"symbol": sym, "leverage": cfg.leverage})
            await self._tolerate(CODE_NO_NEED_MARGIN_TYPE, "margin_type", {"symbol": sym, "marginType": cfg.margin_type})
        log.info("binance_futures_configured", venue=self.name, hedge_mode=cfg.hedge_mode, leverage=cfg.leverage,
                 margin_type=cfg.margin_type)

    async def _tolerate(self, code: str, endpoint: str, params: dict[str, Any]) -> None:
        try:
            await self.rest.call(endpoint, params)
        except OrderRejected as exc:
            if exc.code != code:
                raise

    # ------------------------------------------------------------ fills

    def _publish_fill(self, fill: VenueFill, ts_init_ns: int) -> None:
        """Publish a FillReport (a copy of one already published included: the engine refuses it)."""
        self.bus.publish(FillReport(ts_event_ns=fill.ts_ns, ts_init_ns=ts_init_ns, venue=self.name, fill=fill))

    # ------------------------------------------------------------ order cache

    def _track(self, vo: VenueOrder) -> None:
        """Remember venue order id → client order id (REST trades carry only the former)."""
        if vo.venue_order_id and vo.client_order_id:
            self._cid_by_oid[(vo.instrument_id.symbol, vo.venue_order_id)] = vo.client_order_id

    def _symbol(self, instrument_id: InstrumentId) -> str:
        if instrument_id not in self._instruments:
            raise OrderRejected(self.name, f"Invalid symbol.: {instrument_id} is not configured on {self.name}", "-1121")
        return instrument_id.symbol

    def _require_credentials(self) -> None:
        if self.credentials is None:
            raise AuthError(self.name, "no API credentials configured")

    # ------------------------------------------------------------ requests

    def order_params(self, req: OrderRequest) -> dict[str, Any]:
        """The new-order parameters for `req` (in the order they are signed)."""
        p: dict[str, Any] = {"symbol": self._symbol(req.instrument_id), "side": req.side.value}
        usdm = self.market is Market.USDM
        if req.order_type is OrderType.MARKET:
            p["type"] = "MARKET"
        elif req.order_type is OrderType.LIMIT_MAKER:
            if usdm:
                p["type"], p["timeInForce"] = "LIMIT", "GTX"
            else:
                p["type"] = "LIMIT_MAKER"
        else:
            p["type"], p["timeInForce"] = "LIMIT", req.time_in_force.value
        p["quantity"] = req.quantity
        if req.order_type is not OrderType.MARKET:
            if req.price is None:
                raise OrderRejected(self.name, f"{req.order_type.value} order {req.client_order_id} needs a price",
                                    "-1102")
            p["price"] = req.price
        p["newClientOrderId"] = req.client_order_id
        if usdm:
            if self.config.hedge_mode:
                long_side = (req.side is Side.BUY) != req.reduce_only
                p["positionSide"] = "LONG" if long_side else "SHORT"
            elif req.reduce_only:
                p["reduceOnly"] = "true"
            p["newOrderRespType"] = "RESULT"
        else:
            p["newOrderRespType"] = "FULL"
        return p

    async def _order_entry(self, name: str, params: dict[str, Any]) -> Any:
        """A new order or cancel over the configured transport (see the module docstring)."""
        if self.options.read_only:
            raise AuthError(self.name, f"{name} refused: read-only (monitor mode); nothing was sent")
        ws_api = self.ws_api
        if ws_api is not None:
            try:
                return await ws_api.call(name, params)
            except WsApiNotConnected as exc:
                # Provably not sent over the WebSocket API: REST is its first and only send.
                self.ws_api_fallbacks += 1
                log.warning("binance_ws_api_fallback_to_rest", venue=self.name, request=name, error=str(exc))
        return await self.rest.call(name, params)

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        """Place an order; returns the venue's acknowledgement (fills at placement are published)."""
        self._require_credentials()
        body = await self._order_entry("new_order", self.order_params(req))
        nr = parse_new_order_response(body, self.parser.ids)
        vo = nr.order or VenueOrder(
            client_order_id=nr.client_order_id, venue_order_id=nr.venue_order_id, instrument_id=nr.instrument_id,
            side=req.side, order_type=req.order_type, status=OrderStatus.ACCEPTED, quantity=req.quantity,
            filled_qty=Decimal(0), avg_px=None, price=req.price, ts_ns=nr.ts_ns,
        )
        self._track(vo)
        now = self.clock.time_ns()
        for f in nr.fills:
            self._publish_fill(f, now)
        return vo

    async def cancel_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        """Cancel by client order id (-2011 when unknown or closed: OrderRejected)."""
        self._require_credentials()
        body = await self._order_entry("cancel_order", {"symbol": self._symbol(instrument_id),
                                                        "origClientOrderId": client_order_id})
        vo = parse_order(body, self.parser.ids)
        self._track(vo)
        return vo

    async def cancel_all(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Cancel every open order (of one instrument, or of every configured one)."""
        self._require_credentials()
        if self.options.read_only:
            raise AuthError(self.name, "cancel_all refused: read-only (monitor mode); nothing was sent")
        opened = await self.open_orders(instrument_id)
        out: list[VenueOrder] = []
        if self.market is Market.SPOT:
            for iid in sorted({o.instrument_id for o in opened}):
                try:
                    rows = await self.rest.call("cancel_all", {"symbol": iid.symbol})
                except OrderRejected as exc:
                    if exc.code != CODE_UNKNOWN_ORDER:
                        raise
                    continue
                out += parse_orders(rows, self.parser.ids)
        else:
            # USD-M allOpenOrders answers without the orders: cancel one by one to report each.
            for o in opened:
                try:
                    out.append(await self.cancel_order(o.instrument_id, o.client_order_id))
                except OrderRejected as exc:
                    if exc.code != CODE_UNKNOWN_ORDER:
                        raise
        for vo in out:
            self._track(vo)
        return out

    async def query_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        """The venue's view of an order, or None if the venue never saw it (-2013)."""
        self._require_credentials()
        try:
            body = await self.rest.call("query_order", {"symbol": self._symbol(instrument_id),
                                                        "origClientOrderId": client_order_id})
        except OrderRejected as exc:
            if exc.code == CODE_NO_SUCH_ORDER:
                return None
            raise
        vo = parse_order(body, self.parser.ids)
        self._track(vo)
        return vo

    async def open_orders(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Open orders (of one instrument, or all configured)."""
        self._require_credentials()
        if instrument_id is not None:
            rows = await self.rest.call("open_orders", {"symbol": self._symbol(instrument_id)})
        else:
            rows = await self.rest.call("open_orders", None, weight=80 if self.market is Market.SPOT else 40)
        orders = [o for o in parse_orders(rows, self.parser.ids)
                  if instrument_id is not None or o.instrument_id in self._instruments]
        for vo in orders:
            self._track(vo)
        return orders

    async def fills_since(self, instrument_id: InstrumentId, since_ts_ns: int) -> list[VenueFill]:
        """Executions at or after `since_ts_ns`, oldest first (client ids from the cache or a query)."""
        self._require_credentials()
        sym = self._symbol(instrument_id)
        window_ms = TRADES_WINDOW_S[self.market] * 1000
        start_ms = since_ts_ns // NS_PER_MS
        end_now_ms = self.rest.server_time_ms()
        seen: dict[str, VenueFill] = {}
        if self.market is Market.USDM:
            start_ms = max(start_ms, end_now_ms - USDM_TRADES_HISTORY_MS)
        if (end_now_ms - start_ms) > MAX_TIME_WINDOWS * window_ms:
            # Far back (e.g. no journaled fill yet): walk the whole history by trade id.
            from_id = 0
            while True:
                rows = await self.rest.call("trades", {"symbol": sym, "fromId": from_id, "limit": TRADES_PAGE_LIMIT})
                page = parse_account_trades(rows, self.parser.ids)
                for f in page:
                    seen[f.trade_id] = f
                if len(page) < TRADES_PAGE_LIMIT:
                    break
                from_id = max(int(f.trade_id) for f in page) + 1
            start_ms = end_now_ms + 1
        while start_ms <= end_now_ms:
            end_ms = min(start_ms + window_ms - 1, end_now_ms)
            page_start = start_ms
            while True:
                rows = await self.rest.call("trades", {"symbol": sym, "startTime": page_start, "endTime": end_ms,
                                                       "limit": TRADES_PAGE_LIMIT})
                page = parse_account_trades(rows, self.parser.ids)
                new = [f for f in page if f.trade_id not in seen]
                for f in new:
                    seen[f.trade_id] = f
                if len(page) < TRADES_PAGE_LIMIT or not new:
                    break
                page_start = max(f.ts_ns for f in page) // NS_PER_MS
            start_ms = end_ms + 1
        out: list[VenueFill] = []
        for f in sorted(seen.values(), key=lambda f: (f.ts_ns, int(f.trade_id))):
            if f.ts_ns < since_ts_ns:
                continue
            cid = await self._cid_for(instrument_id, f.venue_order_id)
            out.append(_with_cid(f, cid))
        return out

    async def _cid_for(self, instrument_id: InstrumentId, venue_order_id: str) -> str:
        key = (instrument_id.symbol, venue_order_id)
        cid = self._cid_by_oid.get(key)
        if cid is None:
            try:
                body = await self.rest.call("query_order", {"symbol": instrument_id.symbol,
                                                            "orderId": int(venue_order_id)})
            except OrderRejected as exc:
                if exc.code != CODE_NO_SUCH_ORDER:
                    raise
                return ""
            vo = parse_order(body, self.parser.ids)
            self._track(vo)
            cid = vo.client_order_id
        return cid

    async def balances(self) -> dict[str, Balance]:
        """Account balances by asset (USD-M: wallet balance as free)."""
        self._require_credentials()
        params = {"omitZeroBalances": "true"} if self.market is Market.SPOT else None
        body = await self.rest.call("account", params)
        return {b.asset: b for b in parse_balances(body)}

    async def positions(self) -> dict[InstrumentId, Decimal]:
        """USD-M net positions by instrument (hedge mode: LONG + SHORT); spot: {}."""
        if self.market is Market.SPOT:
            return {}
        self._require_credentials()
        out: dict[InstrumentId, Decimal] = {}
        for p in parse_positions(await self.rest.call("positions"), self.parser.ids):
            if p.instrument_id in self._instruments:
                out[p.instrument_id] = out.get(p.instrument_id, Decimal(0)) + p.qty
        return out

    # ------------------------------------------------------------ user-stream gaps

    def _on_user_gap(self, reason: str) -> None:
        """The user stream (re)connected: publish the gap; the reconciler re-reads (module docstring)."""
        user_last = self.user.last_event_ns if self.user is not None else 0
        if user_last:
            since_ns = max(self._started_ns, user_last) - int(self.options.gap_lookback_s * NS_PER_S)
        else:
            # No event received yet: what this stream can have missed began at start()
            # (in venue time). Older trades are account history: the node's start-up
            # reconciliation books them from its journal's cursor, after it has rebuilt
            # the portfolio.
            since_ns = self._started_ns + self.rest.time_offset_ms * NS_PER_MS
        now = self.clock.time_ns()
        self.user_stream_gaps += 1
        log.info("binance_user_stream_gap", venue=self.name, reason=reason, since_ns=since_ns)
        self.bus.publish(UserStreamGap(ts_event_ns=now, ts_init_ns=now, venue=self.name, since_ns=since_ns,
                                       reason=reason))


def _with_cid(f: VenueFill, cid: str) -> VenueFill:
    if f.client_order_id == cid:
        return f
    return VenueFill(
        instrument_id=f.instrument_id, client_order_id=cid, venue_order_id=f.venue_order_id, trade_id=f.trade_id,
        side=f.side, qty=f.qty, price=f.price, fee=f.fee, fee_asset=f.fee_asset, liquidity=f.liquidity,
        ts_ns=f.ts_ns,
    )


__all__ = ["BinanceOptions", "BinanceVenue"]
