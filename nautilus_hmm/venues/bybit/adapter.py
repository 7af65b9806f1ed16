"""`BybitVenue`: the Venue protocol over Bybit v5 spot (`bybit_spot`) or USDT perpetuals (`bybit_linear`).

Start (`start()`): server time sync, `market/instruments-info` (cursor-paged) → instruments
(the configured symbols must all be listed), linear account settings from the config
(one-way position mode, leverage per symbol). `run()` then keeps, until cancelled: the
public stream (orderbook → local books, publicTrade, tickers → `QuoteTick`, kline → `Bar`;
streams.py), the private stream (order, execution, position, wallet), the trade
WebSocket when `order_entry = "ws_trade"`, and a periodic instruments refresh
(`InstrumentsUpdated` when one changed, e.g. left `Trading`).

Monitor mode (`BybitOptions.read_only`, from `VenueContext.read_only`): start leaves the
linear position mode and leverage alone, no trade WebSocket is opened, and creates,
cancels and cancel-all raise `AuthError` before anything is sent (the engine's order gate
stops them first; this is the second wall). Reads, streams and reconciliation work, so a
read-only API key suffices (a write with one answers retCode 10005).

Orders (binding money-safety rules, as for Binance):

* `orderLinkId` is the engine's client order id, journaled before the request leaves.
* A timeout, a connection lost after the request left, a 5xx or a server-side timeout
  retCode raise `UnknownOutcome` (rest.py / wsapi.py): the engine queries, this adapter
  never resends.
* retCode 110072 (duplicate orderLinkId) means the order EXISTS: `submit_order` queries it
  (`order/realtime`, then `order/history`) and returns what the venue holds; it is never
  treated as a new failure. If the query cannot find it either, `UnknownOutcome`.
* Spot market buys and sells send `marketUnit=baseCoin`: without it Bybit reads a market
  buy's `qty` in the quote coin.
* Linear orders are one-way (`positionIdx` 0); `reduceOnly` is sent when asked.
* An instrument not in `Trading` status gets no order (refused before sending).
* Fills are published by the private stream (execType `Trade` only; the execId is the
  trade id); every copy is published and the engine's fill intake refuses duplicates.

Order entry (`order_entry`): "rest" sends creates and cancels as signed REST requests;
"ws_trade" sends them over the trade WebSocket (wsapi.py). With "ws_trade", an order or
cancel made while that connection is down (or refused with 10019) goes by REST instead:
its frame was never written or never taken, so this is its only send (`ws_trade_fallbacks`).
Queries, open orders, executions and cancel-all stay on REST.

User-stream gaps: every (re)connect of the private stream may have lost events. The
adapter publishes `UserStreamGap(venue, since_ns, reason)` and reads nothing itself: the
reconciler re-reads that venue's orders and fills (`execution.reconcile`). `since_ns` as
for Binance: before any private event, the moment `start()` began (venue time); after,
the later of that and the last event, minus `gap_lookback_s`.

Executions without an orderLinkId (an order placed elsewhere) get their client id from
a cache (venue order id → client id, filled by acks, reports and queries) or a query.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import aiohttp
import structlog

from nautilus_hmm.core.bounded import RecentMap
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.errors import (
    AuthError,
    OrderRejected,
    ParseError,
    RateLimited,
    RetryableError,
    UnknownOutcome,
    VenueBanned,
    VenueError,
)
from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.domain.enums import OrderStatus, OrderType
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.messages import InstrumentsUpdated, UserStreamGap
from nautilus_hmm.obs.trading_metrics import VenueMetricsSnapshot
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.config import BybitConfig
from nautilus_hmm.venues.bybit.errors import DuplicateOrderLinkId, OrderNotFound
from nautilus_hmm.venues.bybit.parse import (
    INTERVAL_NAMES,
    BybitParser,
    BybitPosition,
    Category,
    bars_to_arrays,
    net_positions,
    parse_cancel_all,
    parse_executions,
    parse_instruments,
    parse_klines,
    parse_order_ack,
    parse_orders,
    parse_positions,
    parse_wallet_balance,
)
from nautilus_hmm.venues.bybit.rest import (
    BybitRest,
    default_rest_url,
    default_ws_private_url,
    default_ws_public_url,
    default_ws_trade_url,
)
from nautilus_hmm.venues.bybit.wsapi import BybitWsTrade, WsTradeNotConnected
from nautilus_hmm.venues.ws import WsSettings

log = structlog.get_logger("venues.bybit")
ORDER_ID_CACHE_KEPT = 10_000  # venue order id -> client order id, newest (bounded: a daemon runs for months)

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
START_WAIT_MAX_S = 300.0  # longest wait for rate limits / bans during start()
EXECUTIONS_WINDOW_MS = 7 * 24 * 3600 * 1000  # execution/list: endTime - startTime <= 7 days
EXECUTIONS_HISTORY_MS = 2 * 365 * 24 * 3600 * 1000 - EXECUTIONS_WINDOW_MS  # Bybit keeps 2 years
EXECUTIONS_PAGE = 100
ORDERS_PAGE = 50
KLINES_PAGE = 1000
INSTRUMENTS_PAGE = 1000
CODE_POSITION_MODE_NOT_MODIFIED = "110025"
CODE_LEVERAGE_NOT_MODIFIED = "110043"
OPEN_STATUSES = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL})
NOT_TRADING_CODE = "not_trading"


@dataclass(frozen=True, slots=True)
class BybitOptions:
    """Adapter settings that [venues.bybit_*] does not carry (defaults suit production)."""

    bar_interval_s: int | None = 60  # kline.<interval> bars; None: no bars
    book_depth: int = 50  # orderbook.{1,50,200}
    streams: bool = True  # False: REST only (tools and tests that need no websocket)
    # Connection settings (None: the defaults of streams.py / wsapi.py). Bybit's heartbeat is
    # its JSON ping every 20 s, sent by those modules; stale public data re-opens the stream.
    public_ws: WsSettings | None = None
    private_ws: WsSettings | None = None
    trade_ws: WsSettings | None = None
    instruments_refresh_s: float = 3600.0
    gap_lookback_s: float = 60.0
    max_pace_wait_s: float = 2.0
    require_credentials: bool = True
    # Monitor mode ([node] mode = "monitor", `VenueContext.read_only`): no account writes (linear
    # position mode and leverage left as they are), no trade WebSocket, and order entry refused
    # here too (AuthError: nothing was sent). A read-only API key suffices.
    read_only: bool = False


class BybitVenue:
    """Bybit v5 spot or linear as a `domain.venue.Venue` (see the module docstring)."""

    def __init__(
        self,
        config: BybitConfig,
        category: Category | str,
        bus: Bus,
        clock: Clock,
        *,
        name: str | None = None,
        credentials: Credentials | None = None,
        options: BybitOptions | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.category = Category(category)
        self.name = name or self.category.default_venue
        if not config.symbols:
            raise ValueError(f"venues.{self.name}.symbols must list at least one symbol")
        self.config = config
        self.bus = bus
        self.clock = clock
        self.options = options or BybitOptions()
        if self.options.require_credentials and credentials is None:
            prefix = config.credential_prefix
            raise ValueError(
                f"venues.{self.name}: no API credentials: set NAUTILUS_HMM_{prefix.upper()}_API_KEY"
                f" and _API_SECRET (or systemd credentials {prefix}-api-key / -api-secret)")
        self.credentials = credentials
        self.rest_url = config.rest_url or default_rest_url(config.testnet)
        self.ws_public_url = config.ws_public_url or default_ws_public_url(self.category.value, config.testnet)
        self.ws_private_url = config.ws_private_url or default_ws_private_url(config.testnet)
        self.parser = BybitParser(self.category, self.name)
        self._session = session
        self._rng = rng or random.Random()
        self.rest = BybitRest(
            self.rest_url, clock, venue=self.name, credentials=credentials, recv_window_ms=config.recv_window_ms,
            request_timeout_s=config.request_timeout_s, max_pace_wait_s=self.options.max_pace_wait_s,
            session=session,
        )
        self.ws_trade_url = ""
        self.ws_trade: BybitWsTrade | None = None
        if config.order_entry == "ws_trade" and credentials is not None and not self.options.read_only:
            self.ws_trade_url = config.ws_trade_url or default_ws_trade_url(config.testnet)
            self.ws_trade = BybitWsTrade(
                self.ws_trade_url, clock, venue=self.name, credentials=credentials, rest=self.rest,
                recv_window_ms=config.recv_window_ms, request_timeout_s=config.request_timeout_s,
                settings=self.options.trade_ws, session=session, rng=self._rng,
            )
        self.public: Any = None
        self.private: Any = None
        if self.options.streams:
            self._build_streams()
        self.ws_trade_fallbacks = 0
        self.duplicate_link_ids = 0  # 110072 answers resolved by query
        self._instruments: dict[InstrumentId, Instrument] = {}
        # A cache in front of a venue query (a miss costs one request): the newest ids only.
        self._cid_by_oid: dict[tuple[str, str], str] = RecentMap(ORDER_ID_CACHE_KEPT)
        self._started = False
        self._started_ns = 0
        self.user_stream_gaps = 0
        self.instrument_refreshes = 0

    def _build_streams(self) -> None:
        from nautilus_hmm.venues.bybit.streams import BybitPrivateStream, BybitPublicStream

        opts = self.options
        kline = INTERVAL_NAMES.get(opts.bar_interval_s) if opts.bar_interval_s else None
        self.public = BybitPublicStream(
            venue=self.name, category=self.category, url=self.ws_public_url, parser=self.parser, bus=self.bus,
            clock=self.clock, rest=self.rest, symbols=self.config.symbols, book_depth=opts.book_depth,
            kline_interval=kline, settings=opts.public_ws, session=self._session, rng=self._rng,
        )
        if self.credentials is not None:
            self.private = BybitPrivateStream(
                venue=self.name, category=self.category, url=self.ws_private_url, parser=self.parser, bus=self.bus,
                clock=self.clock, rest=self.rest, credentials=self.credentials, settings=opts.private_ws,
                on_order=self._track, on_gap=self._on_user_gap, session=self._session, rng=self._rng,
            )

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Time sync, instruments, linear account settings (streams open in run())."""
        self._started_ns = self.clock.time_ns()
        try:
            await self._start_step("time sync", self.rest.sync_time)
            await self._start_step("instruments", self._load_instruments)
            if self.category is Category.LINEAR and self.credentials is not None and not self.options.read_only:
                await self._start_step("linear settings", self._configure_linear)
        except BaseException:
            # stop() is not called after a failed start: do not leak the HTTP session.
            await self.rest.close()
            raise
        self._started = True
        log.info("bybit_venue_started", venue=self.name, category=self.category.value, rest=self.rest_url,
                 ws_public=self.ws_public_url, symbols=list(self.config.symbols),
                 time_offset_ms=self.rest.time_offset_ms, private_stream=self.private is not None,
                 order_entry="none (read-only)" if self.options.read_only else self.config.order_entry,
                 ws_trade=self.ws_trade_url or None)

    async def run(self) -> None:
        """Streams, trade WebSocket, instrument refresh, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._run_instrument_refresh(), name=f"{self.name}:instruments")
            if self.public is not None:
                tg.create_task(self.public.run(), name=f"{self.name}:public-ws")
            if self.private is not None:
                tg.create_task(self.private.run(), name=f"{self.name}:private-ws")
            if self.ws_trade is not None:
                tg.create_task(self.ws_trade.run(), name=f"{self.name}:ws-trade")

    async def stop(self) -> None:
        """Close the streams and the session."""
        for part in (self.public, self.private, self.ws_trade):
            if part is not None:
                await part.close()
        await self.rest.close()
        self._started = False

    async def _start_step(self, step: str, fn: Callable[[], Any]) -> Any:
        """One start-up step; a rate limit or a ban is waited out (at most START_WAIT_MAX_S in all)."""
        waited_s = 0.0
        while True:
            try:
                return await fn()
            except (RateLimited, VenueBanned) as exc:
                if isinstance(exc, VenueBanned):
                    wait_s = max(1.0, (exc.until_ns - self.clock.time_ns()) / NS_PER_S)
                else:
                    wait_s = max(0.1, exc.retry_after_s)
                if waited_s + wait_s > START_WAIT_MAX_S:
                    raise
                log.warning("bybit_start_waiting", venue=self.name, step=step, wait_s=round(wait_s, 1), error=str(exc))
                await self.clock.sleep(wait_s)
                waited_s += wait_s

    def reconfigure(self, config: BybitConfig) -> None:
        """Apply the live-reloadable fields: recv_window_ms, request_timeout_s."""
        self.config = replace(self.config, recv_window_ms=config.recv_window_ms,
                              request_timeout_s=config.request_timeout_s)
        self.rest.recv_window_ms = config.recv_window_ms
        self.rest.request_timeout_s = config.request_timeout_s
        if self.ws_trade is not None:
            self.ws_trade.recv_window_ms = config.recv_window_ms
            self.ws_trade.request_timeout_s = config.request_timeout_s

    def health(self) -> Health:
        """Started, credentials accepted, not banned, streams connected and fresh."""
        problems: list[str] = []
        now_ns = self.clock.time_ns()
        if not self._started:
            problems.append("not started")
        if self.rest.halted_reason:
            problems.append(f"halted: {self.rest.halted_reason}")
        if now_ns < self.rest.banned_until_ns:
            problems.append(f"IP rate limit (HTTP 403) for {(self.rest.banned_until_ns - now_ns) / NS_PER_S:.0f} s")
        ws_stats: dict[str, Any] = {}
        for label, part in (("public", self.public), ("private", self.private)):
            if part is None:
                continue
            ws = part.ws
            ws_stats[label] = ws.stats.as_dict()
            if not ws.connected:
                problems.append(f"{label} stream disconnected")
        if self.ws_trade is not None and not self.ws_trade.connected:
            problems.append("trade WebSocket disconnected (orders go by REST meanwhile)")
        untradable = sorted(str(i) for i, inst in self._instruments.items() if not inst.tradable)
        info: dict[str, object] = {
            "time_offset_ms": self.rest.time_offset_ms,
            "banned_until_ns": self.rest.banned_until_ns,
            "halted_reason": self.rest.halted_reason or None,
            "rest": self.rest.stats.as_dict(),
            "limits": {path: lim.as_dict() for path, lim in self.rest.limits.items()},
            "ws": ws_stats,
            "user_stream_gaps": self.user_stream_gaps,
            "order_entry": self.config.order_entry,
            "not_trading": untradable,
            "duplicate_order_link_ids": self.duplicate_link_ids,
        }
        if self.ws_trade is not None:
            info["ws_trade"] = {**self.ws_trade.stats.as_dict(), "ws": self.ws_trade.ws.stats.as_dict(),
                                "fallbacks_to_rest": self.ws_trade_fallbacks}
        return Health(not problems, "; ".join(problems), info)

    def metrics_snapshot(self) -> VenueMetricsSnapshot:
        """Reconnects and connection state per stream, error answers by retCode (no weight budget: None)."""
        streams = {}
        if self.public is not None:
            streams["market"] = self.public.ws
        if self.private is not None:
            streams["user"] = self.private.ws
        if self.ws_trade is not None:
            streams["ws_trade"] = self.ws_trade.ws
        return VenueMetricsSnapshot(
            ws_reconnects={k: ws.stats.reconnects for k, ws in streams.items()},
            ws_connected={k: ws.connected for k, ws in streams.items()},
            error_answers={str(code): n for code, n in self.rest.stats.ret_codes.items()},
        )

    # ------------------------------------------------------------ instruments

    def instruments(self) -> dict[InstrumentId, Instrument]:
        """The configured symbols as instruments."""
        return dict(self._instruments)

    async def _load_instruments(self) -> None:
        params: dict[str, Any] = {"category": self.category.value}
        if self.category is Category.LINEAR:
            params["limit"] = INSTRUMENTS_PAGE  # spot lists everything on one page
        listed: dict[str, Instrument] = {}
        skipped: list[tuple[str, str]] = []
        async for page in self.rest.pages("instruments", params):
            found, _ = parse_instruments(page, self.name, self.category, skipped)
            listed.update({iid.symbol: inst for iid, inst in found.items()})
        missing = [s for s in self.config.symbols if s not in listed]
        if missing:
            why = dict(skipped)
            raise ValueError(f"venues.{self.name}.symbols: not tradable on Bybit {self.category.value}: "
                             f"{ {s: why.get(s, 'not listed') for s in missing} }")
        self._instruments = {listed[s].id: listed[s] for s in self.config.symbols}
        untradable = [str(i) for i, inst in self._instruments.items() if not inst.tradable]
        if untradable:
            log.warning("bybit_symbols_not_trading", venue=self.name, symbols=untradable,
                        action="no orders for them until they trade again")

    async def _run_instrument_refresh(self) -> None:
        while True:
            await self.clock.sleep(self.options.instruments_refresh_s)
            await self.refresh_instruments()

    async def refresh_instruments(self) -> tuple[Instrument, ...]:
        """Re-read the instruments; publish and return those that changed (a failed read changes nothing)."""
        before = dict(self._instruments)
        try:
            await self._load_instruments()
        except (VenueError, ValueError, ParseError) as exc:
            # A failed or malformed read keeps the instruments as they were; run() goes on.
            log.warning("bybit_instruments_refresh_failed", venue=self.name, error=str(exc))
            return ()
        self.instrument_refreshes += 1
        changed = tuple(inst for iid, inst in self._instruments.items() if before.get(iid) != inst)
        if changed:
            now = self.clock.time_ns()
            log.info("bybit_instruments_changed", venue=self.name, symbols=[i.symbol for i in changed],
                     not_trading=[i.symbol for i in changed if not i.tradable])
            self.bus.publish(InstrumentsUpdated(ts_event_ns=now, ts_init_ns=now, venue=self.name,
                                                instruments=changed))
        return changed

    async def history_bars(self, instrument_id: InstrumentId, interval_s: int, n_bars: int) -> BarArrays:
        """The last `n_bars` closed klines of `interval_s` (GET market/kline, newest first, 1000 a page)."""
        interval = INTERVAL_NAMES.get(interval_s)
        if interval is None:
            raise ValueError(f"Bybit has no {interval_s} s klines; it has {sorted(INTERVAL_NAMES)}")
        symbol = self._symbol(instrument_id)
        ival_ms = interval_s * 1000
        now_ms = self.rest.server_time_ms()
        end_ms = now_ms
        by_ts: dict[int, Any] = {}
        while len(by_ts) < n_bars:
            limit = min(KLINES_PAGE, n_bars - len(by_ts) + 1)
            page = await self.rest.call("kline", {"category": self.category.value, "symbol": symbol,
                                                  "interval": interval, "end": end_ms, "limit": limit})
            bars = parse_klines(page, instrument_id, interval_s, self.clock.time_ns(), now_ms=now_ms)
            rows = len(page.get("list") or ()) if isinstance(page, dict) else 0
            new = [b for b in bars if b.ts_event_ns not in by_ts]
            for b in new:
                by_ts[b.ts_event_ns] = b
            if rows < limit or not bars or not new:
                break
            end_ms = bars[0].ts_event_ns // NS_PER_MS - ival_ms  # before the oldest bar of this page
            if end_ms <= 0:
                break
        ordered = [by_ts[k] for k in sorted(by_ts)][-n_bars:]
        return bars_to_arrays(ordered, interval_s, f"{self.name}:{symbol}:klines")

    async def _configure_linear(self) -> None:
        """One-way position mode and the configured leverage on every symbol ("not modified" is fine)."""
        lev = str(self.config.leverage)
        for sym in self.config.symbols:
            await self._tolerate(CODE_POSITION_MODE_NOT_MODIFIED, "switch_mode",
                                 {"category": "linear", "symbol": sym, "mode": 0})
            await self._tolerate(CODE_LEVERAGE_NOT_MODIFIED, "set_leverage",
                                 {"category": "linear", "symbol": sym, "buyLeverage": lev, "sellLeverage": lev})
        log.info("bybit_linear_configured", venue=self.name, one_way=True, leverage=self.config.leverage)

    async def _tolerate(self, code: str, endpoint: str, params: dict[str, Any]) -> None:
        try:
            await self.rest.call(endpoint, params)
        except OrderRejected as exc:
            if exc.code != code:
                raise

    # ------------------------------------------------------------ order cache

    def _track(self, vo: VenueOrder) -> None:
        """Remember venue order id → client order id (for executions without an orderLinkId)."""
        if vo.venue_order_id and vo.client_order_id:
            self._cid_by_oid[(vo.instrument_id.symbol, vo.venue_order_id)] = vo.client_order_id

    def _symbol(self, instrument_id: InstrumentId) -> str:
        if instrument_id not in self._instruments:
            raise OrderRejected(self.name, f"{instrument_id} is not configured on {self.name}", "10001")
        return instrument_id.symbol

    def _refuse_if_read_only(self, request: str) -> None:
        """Monitor mode: order entry is refused before anything is sent (behind the engine's gate)."""
        if self.options.read_only:
            raise AuthError(self.name, f"{request} refused: read-only (monitor mode); nothing was sent")

    def _require_credentials(self) -> None:
        if self.credentials is None:
            raise AuthError(self.name, "no API credentials configured")

    # ------------------------------------------------------------ requests

    def order_params(self, req: OrderRequest) -> dict[str, Any]:
        """The order/create parameters for `req` (also the trade WebSocket's `order.create` args)."""
        symbol = self._symbol(req.instrument_id)
        p: dict[str, Any] = {"category": self.category.value, "symbol": symbol,
                             "side": "Buy" if req.side.value == "BUY" else "Sell"}
        if req.order_type is OrderType.MARKET:
            p["orderType"] = "Market"
        else:
            if req.price is None:
                raise OrderRejected(self.name, f"{req.order_type.value} order {req.client_order_id} needs a price",
                                    "10001")
            p["orderType"] = "Limit"
        p["qty"] = req.quantity
        if req.order_type is OrderType.MARKET:
            if self.category is Category.SPOT:
                p["marketUnit"] = "baseCoin"  # else a spot market buy's qty is in the quote coin
        else:
            p["price"] = req.price
            p["timeInForce"] = "PostOnly" if req.order_type is OrderType.LIMIT_MAKER else req.time_in_force.value
        p["orderLinkId"] = req.client_order_id
        if self.category is Category.LINEAR:
            p["positionIdx"] = 0  # one-way mode
            if req.reduce_only:
                p["reduceOnly"] = True
        return p

    async def _order_entry(self, name: str, params: dict[str, Any]) -> Any:
        """A create or cancel over the configured transport (see the module docstring)."""
        self._refuse_if_read_only(name)
        ws_trade = self.ws_trade
        if ws_trade is not None:
            try:
                return await ws_trade.call(name, params)
            except WsTradeNotConnected as exc:
                # Provably not sent (or not taken): REST is its first and only send.
                self.ws_trade_fallbacks += 1
                log.warning("bybit_ws_trade_fallback_to_rest", venue=self.name, request=name, error=str(exc))
        return await self.rest.call(name, params)

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        """Place an order; returns the acknowledgement (fills come from the private stream)."""
        self._require_credentials()
        self._refuse_if_read_only("new_order")
        inst = self._instruments.get(req.instrument_id)
        params = self.order_params(req)
        if inst is not None and not inst.tradable:
            raise OrderRejected(self.name, f"{req.instrument_id} is not in Trading status; "
                                           f"order {req.client_order_id} not sent", NOT_TRADING_CODE)
        try:
            result = await self._order_entry("new_order", params)
        except DuplicateOrderLinkId as exc:
            # The venue already holds this orderLinkId: the order exists. Never a new failure.
            self.duplicate_link_ids += 1
            log.warning("bybit_duplicate_order_link_id", venue=self.name, client_order_id=req.client_order_id,
                        code=exc.code, action="querying the existing order")
            vo = await self.query_order(req.instrument_id, req.client_order_id)
            if vo is None:
                raise UnknownOutcome(self.name, f"order {req.client_order_id}: retCode {exc.code} says it exists, "
                                                "the queries do not find it yet") from None
            return vo
        try:
            ack = parse_order_ack(result)
        except ParseError as exc:
            # retCode 0 came back: the order most likely exists. Resolve by query, never resend.
            raise UnknownOutcome(self.name, f"order {req.client_order_id}: unreadable acknowledgement: {exc}") from None
        vo = VenueOrder(
            client_order_id=ack.order_link_id or req.client_order_id, venue_order_id=ack.order_id,
            instrument_id=req.instrument_id, side=req.side, order_type=req.order_type, status=OrderStatus.ACCEPTED,
            quantity=req.quantity, filled_qty=Decimal(0), avg_px=None, price=req.price,
            ts_ns=self.rest.venue_now_ns(),
        )
        self._track(vo)
        return vo

    async def cancel_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        """Cancel by orderLinkId; returns the order as the venue then shows it.

        Unknown or closed orders are `OrderRejected` (110001 / 170213 ... / 110008 ...).
        Bybit acknowledges a cancel with the ids only: the order is read back.
        """
        self._require_credentials()
        await self._order_entry("cancel_order", {"category": self.category.value,
                                                 "symbol": self._symbol(instrument_id),
                                                 "orderLinkId": client_order_id})
        vo = await self.query_order(instrument_id, client_order_id)
        if vo is None:
            raise RetryableError(self.name, f"cancel of {client_order_id} acknowledged; the order is not visible yet")
        return vo

    async def cancel_all(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Cancel every open order (of one instrument, or of every configured one); returns them as cancelled."""
        self._require_credentials()
        self._refuse_if_read_only("cancel_all")
        opened = await self.open_orders(instrument_id)
        out: list[VenueOrder] = []
        for iid in sorted({o.instrument_id for o in opened}):
            result = await self.rest.call("cancel_all", {"category": self.category.value, "symbol": iid.symbol})
            for ack in parse_cancel_all(result):
                vo = await self.query_order(iid, ack.order_link_id) if ack.order_link_id else None
                if vo is not None:
                    out.append(vo)
        return out

    async def query_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        """The venue's view of an order (order/realtime, then order/history), or None if it never saw it."""
        self._require_credentials()
        symbol = self._symbol(instrument_id)
        for endpoint in ("open_orders", "order_history"):
            try:
                result = await self.rest.call(endpoint, {"category": self.category.value, "symbol": symbol,
                                                         "orderLinkId": client_order_id})
            except OrderNotFound:
                continue
            orders, _ = parse_orders(result, self.parser.ids)
            for vo in orders:
                if vo.client_order_id == client_order_id:
                    self._track(vo)
                    return vo
        return None

    async def open_orders(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Open orders (of one instrument, or of every configured one), order/realtime paged by cursor."""
        self._require_credentials()
        iids = [instrument_id] if instrument_id is not None else list(self._instruments)
        out: list[VenueOrder] = []
        for iid in iids:
            params = {"category": self.category.value, "symbol": self._symbol(iid), "limit": ORDERS_PAGE}
            async for page in self.rest.pages("open_orders", params):
                orders, _ = parse_orders(page, self.parser.ids)
                out += [o for o in orders if o.status in OPEN_STATUSES]
        for vo in out:
            self._track(vo)
        return out

    async def fills_since(self, instrument_id: InstrumentId, since_ts_ns: int) -> list[VenueFill]:
        """Executions (execType Trade) at or after `since_ts_ns`, oldest first: 7-day windows, cursor pages."""
        self._require_credentials()
        symbol = self._symbol(instrument_id)
        now_ms = self.rest.server_time_ms()
        start_ms = max(since_ts_ns // NS_PER_MS, now_ms - EXECUTIONS_HISTORY_MS, 0)
        seen: dict[str, VenueFill] = {}
        while start_ms <= now_ms:
            end_ms = min(start_ms + EXECUTIONS_WINDOW_MS - 1, now_ms)
            params = {"category": self.category.value, "symbol": symbol, "startTime": start_ms, "endTime": end_ms,
                      "limit": EXECUTIONS_PAGE}
            async for page in self.rest.pages("executions", params):
                fills, _ = parse_executions(page, self.parser.ids, self.category)
                for f in fills:
                    seen[f.trade_id] = f
            start_ms = end_ms + 1
        out: list[VenueFill] = []
        for f in sorted(seen.values(), key=lambda f: (f.ts_ns, f.trade_id)):
            if f.ts_ns < since_ts_ns:
                continue
            if not f.client_order_id:
                f = replace(f, client_order_id=await self._cid_for(instrument_id, f.venue_order_id))
            out.append(f)
        return out

    async def _cid_for(self, instrument_id: InstrumentId, venue_order_id: str) -> str:
        """The client order id of a venue order id (cache, else order/realtime then order/history by orderId)."""
        key = (instrument_id.symbol, venue_order_id)
        cid = self._cid_by_oid.get(key)
        if cid is not None:
            return cid
        for endpoint in ("open_orders", "order_history"):
            try:
                result = await self.rest.call(endpoint, {"category": self.category.value,
                                                         "symbol": instrument_id.symbol, "orderId": venue_order_id})
            except OrderNotFound:
                continue
            orders, _ = parse_orders(result, self.parser.ids)
            for vo in orders:
                if vo.venue_order_id == venue_order_id:
                    self._track(vo)
                    return vo.client_order_id
        return ""

    async def balances(self) -> dict[str, Balance]:
        """The unified account's balances by coin (walletBalance; locked = held by open spot orders)."""
        self._require_credentials()
        return parse_wallet_balance(await self.rest.call("wallet", {"accountType": "UNIFIED"}))

    async def position_details(self) -> list[BybitPosition]:
        """Linear positions of the configured symbols (size, average entry, realized PnL); spot: []."""
        if self.category is Category.SPOT:
            return []
        self._require_credentials()
        out: list[BybitPosition] = []
        for iid in self._instruments:
            async for page in self.rest.pages("positions", {"category": "linear", "symbol": iid.symbol}):
                positions, _ = parse_positions(page, self.parser.ids)
                out += [p for p in positions if p.instrument_id in self._instruments]
        return out

    async def positions(self) -> dict[InstrumentId, Decimal]:
        """Linear net positions by instrument (one-way mode, signed base units); spot: {}."""
        if self.category is Category.SPOT:
            return {}
        return net_positions(await self.position_details())

    # ------------------------------------------------------------ user-stream gaps

    def _on_user_gap(self, reason: str) -> None:
        """The private stream (re)connected: publish the gap; the reconciler re-reads (module docstring)."""
        last = getattr(self.private, "last_event_ns", 0) if self.private is not None else 0
        if last:
            since_ns = max(self._started_ns, last) - int(self.options.gap_lookback_s * NS_PER_S)
        else:
            since_ns = self._started_ns + self.rest.time_offset_ms * NS_PER_MS
        now = self.clock.time_ns()
        self.user_stream_gaps += 1
        log.info("bybit_user_stream_gap", venue=self.name, reason=reason, since_ns=since_ns)
        self.bus.publish(UserStreamGap(ts_event_ns=now, ts_init_ns=now, venue=self.name, since_ns=since_ns,
                                       reason=reason))


__all__ = ["BybitOptions", "BybitVenue"]
