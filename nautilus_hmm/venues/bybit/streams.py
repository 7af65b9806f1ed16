"""Bybit v5 streams: the public market connection of one category and the private account connection.

Both ride on `venues.ws.ReconnectingWebSocket` (reconnect with backoff + jitter, a dead
peer dropped, malformed frames counted and skipped with the connection kept) and add
Bybit's own rules:

* **Heartbeat.** Bybit drops a connection that sends nothing for about 30 s and asks
  clients to send `{"op":"ping"}` every 20 s. Each connection sends one every
  `ping_interval_s` (injected clock); no pong (`{"op":"ping","ret_msg":"pong"}` on the
  public streams, `{"op":"pong"}` on the private one) within `pong_timeout_s` means the
  peer is gone: the connection is closed and re-opened at once.
* **Subscriptions.** Every (re)connect sends `{"req_id", "op":"subscribe", "args"}` for
  the whole topic set, at most `MAX_TOPICS_PER_REQUEST` topics a request (spot's limit;
  one rule for both categories). Answers are matched by `req_id`; a refusal is logged
  and counted (`subscribe_errors`), never retried in a loop.
* **Staleness** (public): pongs are text frames, so the websocket's own stale check
  cannot see a stream that answers pings but sends no data; here only market data
  counts. No data for `stale_after_s` drops and re-opens the connection.

Public (`BybitPublicStream`, `wss://.../v5/public/{spot|linear}`): `orderbook.{1,50,200}`
frames feed one local book per symbol (`book.BybitBook`: a snapshot resets it, deltas
must continue `u`). A gap (or a crossed book) publishes `BookValidityChanged(valid=False)`
(the risk gate then denies orders on that instrument) and resyncs by resubscribing the
topic (`unsubscribe` + `subscribe`: Bybit answers a subscribe with a fresh snapshot).
No snapshot within `resync_timeout_s` re-opens the whole connection. A disconnect
invalidates every book. QuoteTick comes from the book's top when it changes (or from
`tickers` for a symbol without a book: spot tickers carry no bid/ask), MarkPrice from
linear tickers, TradeTick from `publicTrade`, Bar from closed (`confirm`) klines.

Private (`BybitPrivateStream`, `wss://.../v5/private`): on connect `{"op":"auth",
"args":[key, expires, HMAC("GET/realtime"+expires)]}` (expires = venue time +
`AUTH_EXPIRES_MS`); only after the auth answer the topics (`order`, `execution`,
`position`, `wallet`; all categories arrive, the parser keeps its own) are subscribed.
A refused auth (bad key/signature) is an `AuthError` handed to `on_auth_error` (the
adapter halts the venue and says why) and retried with a growing backoff, never in a
tight loop; no auth answer (or no answer to the subscriptions) within `auth_timeout_s`
re-opens the connection. Once every subscription of a connection is acked, `on_gap(reason)` is called: the events between
the previous connection and this one may be lost, and the adapter publishes
`UserStreamGap` (the reconciler re-reads orders and fills). An execution that moves the
position without being a fill (ADL, bust, delivery ...) also calls `on_gap`.
Events: `execution` (execType Trade) → `FillReport`, `order` → `OrderStatusReport`,
`wallet` → `BalanceUpdate` per coin, `position` → `positions` (cached for the adapter).

Hot path: frame → `BybitParser.parse` → book / bus. Nothing on it logs except failures.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.errors import AuthError
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import VenueOrder
from nautilus_hmm.messages import BalanceUpdate, BookValidityChanged, FillReport, OrderStatusReport
from nautilus_hmm.venues.bybit.auth import Credentials, ws_auth_request
from nautilus_hmm.venues.bybit.book import Applied, BookGap, BybitBook
from nautilus_hmm.venues.bybit.parse import (
    INTERVAL_NAMES,
    POSITION_MOVING_EXEC_TYPES,
    AuthResult,
    BookUpdate,
    BybitParser,
    BybitPosition,
    Executions,
    Klines,
    OrderUpdates,
    Pong,
    PositionUpdates,
    PublicTrades,
    SubscribeResult,
    Ticker,
    WalletUpdate,
)
from nautilus_hmm.venues.ws import ReconnectingWebSocket, WsSettings

log = structlog.get_logger("venues.bybit.streams")

NS_PER_MS = 1_000_000
PING_INTERVAL_S = 20.0  # Bybit: "send the ping heartbeat packet every 20 seconds"
PONG_TIMEOUT_S = 10.0
STALE_AFTER_S = 60.0  # public: no market data for this long → re-open
RESYNC_TIMEOUT_S = 10.0  # a resubscribed book topic must deliver its snapshot within this
AUTH_TIMEOUT_S = 10.0
AUTH_EXPIRES_MS = 10_000
AUTH_RETRY_MAX_S = 300.0
MAX_TOPICS_PER_REQUEST = 10  # spot refuses more args in one subscribe
BOOK_DEPTHS = {"spot": (1, 50, 200), "linear": (1, 50, 200, 500)}
PRIVATE_TOPICS = ("order", "execution", "position", "wallet")
HALTING_AUTH_CODES = frozenset({10003, 10004})  # bad key, bad signature

# The websocket's own protocol pings are not Bybit's heartbeat (that is the JSON ping
# above); a dead peer is still dropped when no frame at all arrives for `dead_after_s`.
DEFAULT_WS_SETTINGS = WsSettings(ping_interval_s=3600.0, dead_after_s=60.0)


def kline_interval(interval_s: int) -> str:
    """Bybit's kline interval name ("1", "60", "D" ...) for a bar length in seconds (ValueError if none)."""
    try:
        return INTERVAL_NAMES[interval_s]
    except KeyError:
        raise ValueError(f"bar interval {interval_s} s has no Bybit kline interval "
                         f"(supported: {sorted(INTERVAL_NAMES)})") from None


def public_topics(symbol: str, category: str, *, depth: int | None = 50, trades: bool = True, tickers: bool = True,
                  kline: str | None = None) -> list[str]:
    """Topic names for one symbol (Bybit's spelling: `orderbook.50.BTCUSDT`, `publicTrade.BTCUSDT` ...)."""
    if not symbol or "." in symbol:
        raise ValueError(f"bad symbol {symbol!r}")
    out: list[str] = []
    if depth is not None:
        allowed = BOOK_DEPTHS.get(category)
        if allowed is None:
            raise ValueError(f"unknown Bybit category {category!r} (spot or linear)")
        if depth not in allowed:
            raise ValueError(f"order book depth {depth} is not offered for {category} (offered: {list(allowed)})")
        out.append(f"orderbook.{depth}.{symbol}")
    if trades:
        out.append(f"publicTrade.{symbol}")
    if tickers:
        out.append(f"tickers.{symbol}")
    if kline is not None:
        out.append(f"kline.{kline}.{symbol}")
    return out


@dataclass(eq=False)
class _Connection:
    """One connection's state (a new one per connect)."""

    number: int
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    pong: asyncio.Event = field(default_factory=asyncio.Event)
    auth: asyncio.Event = field(default_factory=asyncio.Event)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    auth_ok: bool = False
    auth_message: str = ""
    auth_code: int | None = None
    reconnected: bool = False
    subscribe_sent: bool = False
    acks_awaited: int = 0
    gap_reported: bool = False


class StreamStats:
    """Counters of one Bybit stream (besides the websocket's own `ws.stats`)."""

    __slots__ = ("auth_failures", "auth_timeouts", "book_gaps", "book_resyncs", "pings", "pong_timeouts", "pongs",
                 "resync_timeouts", "stale_drops", "subscribe_errors", "subscribe_timeouts", "unexpected_events")

    def __init__(self) -> None:
        for k in self.__slots__:
            setattr(self, k, 0)

    def as_dict(self) -> dict[str, int]:
        """All counters by name."""
        return {k: getattr(self, k) for k in self.__slots__}


class _BybitStream:
    """What both streams share: connection sessions, heartbeat, subscribe requests and their answers."""

    kind = "stream"

    def __init__(self, *, venue: str, url: str, parser: BybitParser, bus: Bus, clock: Clock,
                 topics: Iterable[str], settings: WsSettings | None, ping_interval_s: float, pong_timeout_s: float,
                 stale_after_s: float | None, session: Any, rng: Any) -> None:
        self.venue = venue
        self.url = url
        self.parser = parser
        self.bus = bus
        self.clock = clock
        self.topics: list[str] = list(dict.fromkeys(topics))
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.stale_after_s = stale_after_s
        self.stats = StreamStats()
        self._req_ids = itertools.count(1)
        self._pending: dict[str, tuple[str, list[str]]] = {}  # req_id -> (op, topics), this connection
        self._conn: _Connection | None = None
        self._conns = itertools.count(1)
        self._sessions: asyncio.Queue[_Connection] = asyncio.Queue()
        self._last_data_s = 0.0
        self.ws = ReconnectingWebSocket(
            f"{venue}:{self.kind}", url, self.on_frame, clock, session=session,
            settings=settings or DEFAULT_WS_SETTINGS, on_connect=self._on_connect,
            on_disconnect=self._on_disconnect, rng=rng, before_connect=self._before_connect,
        )

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """The connection and its per-connection work (heartbeat, auth), until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.ws.run(), name=f"{self.ws.name}:ws")
            tg.create_task(self._run_sessions(), name=f"{self.ws.name}:session")
            for name, coro in self._extra_tasks():
                tg.create_task(coro, name=f"{self.ws.name}:{name}")

    async def close(self) -> None:
        """Close the connection."""
        await self.ws.close()

    def _extra_tasks(self) -> list[tuple[str, Any]]:
        return []

    @property
    def subscribed(self) -> bool:
        """Connected and every subscribe request of this connection answered."""
        conn = self._conn
        return (self.ws.connected and conn is not None and not conn.closed.is_set() and conn.subscribe_sent
                and conn.acks_awaited <= 0)

    async def _before_connect(self) -> None:
        return None

    async def _on_connect(self, reconnected: bool) -> None:
        conn = _Connection(next(self._conns), reconnected=reconnected)
        self._conn = conn
        self._pending.clear()
        self._last_data_s = self.clock.monotonic()
        self._sessions.put_nowait(conn)
        await self._opened(conn)

    async def _opened(self, conn: _Connection) -> None:
        raise NotImplementedError

    def _on_disconnect(self, reason: str) -> None:
        conn = self._conn
        if conn is not None:
            conn.closed.set()
        self._pending.clear()
        self._closed(reason)

    def _closed(self, reason: str) -> None:
        return None

    async def _run_sessions(self) -> None:
        while True:
            conn = await self._sessions.get()
            if conn.closed.is_set():
                continue
            await self._session(conn)

    async def _session(self, conn: _Connection) -> None:
        await self._heartbeat(conn)

    # ------------------------------------------------------------ heartbeat

    async def _heartbeat(self, conn: _Connection) -> None:
        """Ping every `ping_interval_s`; no pong in time, or no data for `stale_after_s`: re-open."""
        clock = self.clock
        next_ping = clock.monotonic() + self.ping_interval_s
        while not conn.closed.is_set():
            now = clock.monotonic()
            stale = self.stale_after_s
            if stale is not None and now - self._last_data_s >= stale:
                self.stats.stale_drops += 1
                self._drop(conn, f"no market data for {now - self._last_data_s:.1f} s (stale stream)")
                return
            if now >= next_ping:
                conn.pong.clear()
                try:
                    await self.ws.send_text(self._ping_text())
                except (ConnectionError, RuntimeError):
                    return  # the connection is going; the next one has its own heartbeat
                self.stats.pings += 1
                if not await _wait_event(clock, self.pong_timeout_s, conn.pong, conn.closed):
                    if conn.closed.is_set():
                        return
                    self.stats.pong_timeouts += 1
                    self._drop(conn, f"no pong within {self.pong_timeout_s:g} s")
                    return
                next_ping = now + self.ping_interval_s
                continue
            deadline = next_ping if stale is None else min(next_ping, self._last_data_s + stale)
            await _wait_event(clock, max(0.001, deadline - now), conn.closed)

    def _ping_text(self) -> str:
        return f'{{"req_id":"ping-{next(self._req_ids)}","op":"ping"}}'

    def _drop(self, conn: _Connection, reason: str) -> None:
        if conn is self._conn and not conn.closed.is_set():
            log.warning("bybit_stream_dropping", venue=self.venue, stream=self.kind, reason=reason)
            self.ws.reconnect_now(reason)

    # ------------------------------------------------------------ subscriptions

    async def _send_op(self, conn: _Connection, op: str, topics: list[str]) -> None:
        """Send `op` (subscribe / unsubscribe) for `topics` in chunks, each with its own req_id."""
        for i in range(0, len(topics), MAX_TOPICS_PER_REQUEST):
            chunk = topics[i:i + MAX_TOPICS_PER_REQUEST]
            req_id = f"{op[:5]}-{next(self._req_ids)}"
            self._pending[req_id] = (op, chunk)
            if op == "subscribe":
                conn.subscribe_sent = True
                conn.acks_awaited += 1
            await self.ws.send_json({"req_id": req_id, "op": op, "args": chunk})

    def _on_subscribe_result(self, r: SubscribeResult) -> None:
        entry = self._pending.pop(r.req_id, None) if r.req_id else None
        if entry is None and not r.ok:
            # Bybit omits req_id on some refusals: match the request by the topic named, else
            # the only one outstanding.
            for rid, (op, topics) in list(self._pending.items()):
                if op == r.op and any(t in r.message for t in topics):
                    entry = self._pending.pop(rid)
                    break
            else:
                same = [rid for rid, (op, _) in self._pending.items() if op == r.op]
                if len(same) == 1:
                    entry = self._pending.pop(same[0])
        if not r.ok:
            self.stats.subscribe_errors += 1
            log.error("bybit_subscribe_refused", venue=self.venue, stream=self.kind, op=r.op, message=r.message,
                      req_id=r.req_id, topics=entry[1][:10] if entry else None)
        conn = self._conn
        if entry is not None and entry[0] == "subscribe" and conn is not None:
            conn.acks_awaited -= 1
            if conn.acks_awaited <= 0:
                conn.acked.set()
                self._all_acked(conn)

    def _all_acked(self, conn: _Connection) -> None:
        return None

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Add topics (sent now when connected, and on every reconnect)."""
        new = [t for t in topics if t not in self.topics]
        self.topics.extend(new)
        self._topics_added(new)
        conn = self._conn
        if new and conn is not None and self.ws.connected and conn.subscribe_sent:
            await self._send_op(conn, "subscribe", new)

    async def unsubscribe(self, topics: Iterable[str]) -> None:
        """Remove topics."""
        gone = [t for t in topics if t in self.topics]
        self.topics = [t for t in self.topics if t not in gone]
        conn = self._conn
        if gone and conn is not None and self.ws.connected:
            await self._send_op(conn, "unsubscribe", gone)

    def _topics_added(self, topics: list[str]) -> None:
        return None

    def _control(self, ev: Any) -> None:
        """Pong, subscribe answers, auth answers (anything else on this stream is unexpected)."""
        t = type(ev)
        if t is Pong:
            self.stats.pongs += 1
            conn = self._conn
            if conn is not None:
                conn.pong.set()
        elif t is SubscribeResult:
            self._on_subscribe_result(ev)
        elif t is AuthResult:
            self._on_auth_result(ev)
        else:
            self.stats.unexpected_events += 1
            log.warning("bybit_unexpected_event", venue=self.venue, stream=self.kind, event=t.__name__)

    def _on_auth_result(self, r: AuthResult) -> None:
        self.stats.unexpected_events += 1
        log.warning("bybit_unexpected_event", venue=self.venue, stream=self.kind, event="AuthResult")

    def stats_dict(self) -> dict[str, Any]:
        """Stream and websocket counters (for health)."""
        return {**self.stats.as_dict(), "ws": self.ws.stats.as_dict(), "subscribed": self.subscribed}


# ---------------------------------------------------------------- public


class BybitPublicStream(_BybitStream):
    """The public market connection of one Bybit category (see the module docstring)."""

    kind = "public"

    def __init__(
        self,
        *,
        venue: str,
        url: str,
        parser: BybitParser,
        bus: Bus,
        clock: Clock,
        topics: Iterable[str] | None = None,
        category: str | None = None,
        symbols: Iterable[str] = (),
        book_depth: int | None = 50,
        kline_interval: str | None = None,
        rest: Any = None,
        settings: WsSettings | None = None,
        ping_interval_s: float = PING_INTERVAL_S,
        pong_timeout_s: float = PONG_TIMEOUT_S,
        stale_after_s: float | None = STALE_AFTER_S,
        resync_timeout_s: float = RESYNC_TIMEOUT_S,
        session: Any = None,
        rng: Any = None,
    ) -> None:
        # `topics` as given, or built from `symbols` (book, trades, tickers, klines of each).
        # `rest` is accepted for the adapter's convenience; books resync by resubscribing.
        del rest
        if topics is None:
            cat = str(category if category is not None else parser.category)
            topics = [t for sym in symbols for t in public_topics(sym, cat, depth=book_depth, kline=kline_interval)]
        super().__init__(venue=venue, url=url, parser=parser, bus=bus, clock=clock, topics=topics, settings=settings,
                         ping_interval_s=ping_interval_s, pong_timeout_s=pong_timeout_s, stale_after_s=stale_after_s,
                         session=session, rng=rng)
        self.resync_timeout_s = resync_timeout_s
        self.books: dict[InstrumentId, BybitBook] = {}
        self.book_topics: dict[InstrumentId, str] = {}
        self.book_published: dict[InstrumentId, bool | None] = {}
        self._quotes: dict[InstrumentId, tuple[Any, Any]] = {}
        self._resync_wanted: set[str] = set()
        self._resync_deadlines: dict[str, float] = {}
        self._resync_wake = asyncio.Event()
        self._topics_added(self.topics)

    def _topics_added(self, topics: list[str]) -> None:
        for topic in topics:
            parts = topic.split(".")
            if parts[0] != "orderbook":
                continue
            if len(parts) != 3 or not parts[1].isdigit() or not parts[2]:
                raise ValueError(f"bad order book topic {topic!r}: expected orderbook.<depth>.<symbol>")
            iid = self.parser.ids(parts[2])
            if iid in self.books:
                raise ValueError(f"{topic}: {iid} already has a book from {self.book_topics[iid]}")
            self.books[iid] = BybitBook(iid, int(parts[1]))
            self.book_topics[iid] = topic
            self.book_published[iid] = None

    # ------------------------------------------------------------ hot path

    def on_frame(self, raw: bytes | str, recv_ns: int) -> None:
        """One public frame: parse and publish (a parse error propagates to the websocket's counters)."""
        ev = self.parser.parse(raw, recv_ns)
        t = type(ev)
        if t is BookUpdate:
            self._last_data_s = self.clock.monotonic()
            self._on_book(ev)  # type: ignore[arg-type]
        elif t is PublicTrades:
            self._last_data_s = self.clock.monotonic()
            publish = self.bus.publish
            for trade in ev.trades:  # type: ignore[union-attr]
                publish(trade)
        elif t is Ticker:
            self._last_data_s = self.clock.monotonic()
            mark = ev.mark()  # type: ignore[union-attr]
            if mark is not None:
                self.bus.publish(mark)
            if ev.instrument_id not in self.books:  # type: ignore[union-attr]
                quote = ev.quote()  # type: ignore[union-attr]
                if quote is not None:
                    self.bus.publish(quote)
        elif t is Klines:
            self._last_data_s = self.clock.monotonic()
            for bar in ev.bars:  # type: ignore[union-attr]
                self.bus.publish(bar)
        elif ev is None:
            self._last_data_s = self.clock.monotonic()  # a known topic the node does not use
        else:
            self._control(ev)

    def _on_book(self, upd: BookUpdate) -> None:
        iid = upd.instrument_id
        book = self.books.get(iid)
        if book is None or book.depth != upd.depth:
            return
        try:
            applied = book.apply(upd)
        except BookGap as gap:
            self.stats.book_gaps += 1
            self._quotes.pop(iid, None)
            self._publish_validity(book, False, gap.reason)
            self._resync(iid)
            return
        if applied is Applied.SNAPSHOT:
            self._resync_deadlines.pop(self.book_topics[iid], None)
            if self.book_published.get(iid) is not True:
                self._publish_validity(book, True, "snapshot")
        elif applied is not Applied.DELTA:
            return
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return
        last = self._quotes.get(iid)
        if last is None or last[0] != bid or last[1] != ask:
            self._quotes[iid] = (bid, ask)
            quote = book.quote(upd.ts_init_ns)
            if quote is not None:
                self.bus.publish(quote)

    def _publish_validity(self, book: BybitBook, valid: bool, reason: str) -> None:
        iid = book.instrument_id
        if self.book_published.get(iid) is valid:
            return
        self.book_published[iid] = valid
        now = self.clock.time_ns()
        (log.info if valid else log.warning)("bybit_book_validity", venue=self.venue, instrument=str(iid),
                                             valid=valid, reason=reason)
        self.bus.publish(BookValidityChanged(ts_event_ns=now, ts_init_ns=now, instrument_id=iid, valid=valid,
                                             reason=reason))

    def start_books(self) -> None:
        """Publish the initial invalid state of every book (orders wait for the first snapshot)."""
        for book in self.books.values():
            self._publish_validity(book, False, "awaiting first snapshot")

    # ------------------------------------------------------------ connection

    async def _opened(self, conn: _Connection) -> None:
        self._resync_wanted.clear()
        self._resync_deadlines.clear()
        await self._send_op(conn, "subscribe", self.topics)

    def _closed(self, reason: str) -> None:
        self._quotes.clear()
        for book in self.books.values():
            book.invalidate(f"market stream disconnected: {reason}")
            self._publish_validity(book, False, f"market stream disconnected: {reason}")

    # ------------------------------------------------------------ resync

    def _resync(self, iid: InstrumentId) -> None:
        topic = self.book_topics[iid]
        if topic in self._resync_deadlines or topic in self._resync_wanted:
            return  # already resubscribing; its snapshot (or the timeout) settles it
        self._resync_wanted.add(topic)
        self._resync_wake.set()

    def _extra_tasks(self) -> list[tuple[str, Any]]:
        self.start_books()  # books are invalid until their first snapshot (idempotent)
        return [("book-resync", self.run_resync())]

    async def run_resync(self) -> None:
        """Resubscribe book topics that lost sync; re-open the connection when no snapshot comes."""
        clock = self.clock
        while True:
            now = clock.monotonic()
            conn = self._conn
            connected = conn is not None and not conn.closed.is_set() and self.ws.connected
            expired = sorted(t for t, d in self._resync_deadlines.items() if d <= now)
            if expired:
                self._resync_deadlines.clear()
                self._resync_wanted.clear()
                if connected:
                    self.stats.resync_timeouts += 1
                    self._drop(conn, f"no book snapshot within {self.resync_timeout_s:g} s of resubscribing "  # type: ignore[arg-type]
                                     f"{', '.join(expired[:5])}")
                continue
            if self._resync_wanted and connected:
                topics = sorted(self._resync_wanted)
                self._resync_wanted.clear()
                self.stats.book_resyncs += len(topics)
                log.warning("bybit_book_resync", venue=self.venue, topics=topics[:10], count=len(topics))
                for t in topics:
                    self._resync_deadlines[t] = now + self.resync_timeout_s
                try:
                    await self._send_op(conn, "unsubscribe", topics)  # type: ignore[arg-type]
                    await self._send_op(conn, "subscribe", topics)  # type: ignore[arg-type]
                except (ConnectionError, RuntimeError):
                    pass  # the connection is going: the next one subscribes everything
                continue
            if not connected:
                self._resync_wanted.clear()  # a reconnect resubscribes every topic
            wait_s = min(self._resync_deadlines.values()) - now if self._resync_deadlines else None
            await _wait_event(clock, wait_s, self._resync_wake)
            self._resync_wake.clear()


# ---------------------------------------------------------------- private


class BybitPrivateStream(_BybitStream):
    """The private (account) connection of one Bybit venue (see the module docstring)."""

    kind = "private"

    def __init__(
        self,
        *,
        venue: str,
        url: str,
        parser: BybitParser,
        bus: Bus,
        clock: Clock,
        credentials: Credentials,
        on_order: Callable[[VenueOrder], None],
        on_gap: Callable[[str], None],
        on_auth_error: Callable[[AuthError], None] | None = None,
        server_time_ms: Callable[[], int] | None = None,
        rest: Any = None,
        category: str | None = None,
        topics: Iterable[str] = PRIVATE_TOPICS,
        publish_balances: bool = True,
        settings: WsSettings | None = None,
        ping_interval_s: float = PING_INTERVAL_S,
        pong_timeout_s: float = PONG_TIMEOUT_S,
        auth_timeout_s: float = AUTH_TIMEOUT_S,
        session: Any = None,
        rng: Any = None,
    ) -> None:
        super().__init__(venue=venue, url=url, parser=parser, bus=bus, clock=clock, topics=topics, settings=settings,
                         ping_interval_s=ping_interval_s, pong_timeout_s=pong_timeout_s, stale_after_s=None,
                         session=session, rng=rng)
        self.credentials = credentials
        self.on_order = on_order
        self.on_gap = on_gap
        self.on_auth_error = on_auth_error
        # The auth expiry is in venue time: the REST client's measured offset when given.
        del category  # the parser keeps its own category's items
        if server_time_ms is None and rest is not None:
            server_time_ms = rest.server_time_ms
        self.server_time_ms = server_time_ms or (lambda: clock.time_ns() // NS_PER_MS)
        self.rest = rest
        self.auth_timeout_s = auth_timeout_s
        self.publish_balances = publish_balances
        self.positions: dict[InstrumentId, BybitPosition] = {}
        self.last_event_ns = 0
        self.authenticated = False
        self.last_auth_error: AuthError | None = None
        self.gaps_reported = 0
        self._auth_failures_in_row = 0

    # ------------------------------------------------------------ connection

    async def _before_connect(self) -> None:
        """After a refused auth: wait (growing, capped) before knocking again with the same key."""
        n = self._auth_failures_in_row
        if n:
            s = self.ws.settings
            delay_s = min(AUTH_RETRY_MAX_S, max(s.backoff_initial_s, 1.0) * 2 ** (n - 1))
            log.warning("bybit_auth_retry_wait", venue=self.venue, wait_s=delay_s, failures=n)
            await self.clock.sleep(delay_s)

    async def _opened(self, conn: _Connection) -> None:
        self.authenticated = False
        expires_ms = self.server_time_ms() + AUTH_EXPIRES_MS
        await self.ws.send_json(ws_auth_request(self.credentials, expires_ms, req_id=f"auth-{next(self._req_ids)}"))

    def _closed(self, reason: str) -> None:
        self.authenticated = False

    async def _session(self, conn: _Connection) -> None:
        """Wait for the auth answer, subscribe, then keep the heartbeat."""
        answered = await _wait_event(self.clock, self.auth_timeout_s, conn.auth, conn.closed)
        if conn.closed.is_set():
            return
        if not answered:
            self.stats.auth_timeouts += 1
            self._drop(conn, f"no auth answer within {self.auth_timeout_s:g} s")
            return
        if not conn.auth_ok:
            self._auth_refused(conn)
            return
        try:
            await self._send_op(conn, "subscribe", self.topics)
        except (ConnectionError, RuntimeError):
            return
        if not self.topics:
            self._all_acked(conn)
        elif not await _wait_event(self.clock, self.auth_timeout_s, conn.acked, conn.closed):
            # Without the acks no gap is reported, so no reconciliation would follow: re-open.
            if not conn.closed.is_set():
                self.stats.subscribe_timeouts += 1
                self._drop(conn, f"subscriptions not answered within {self.auth_timeout_s:g} s")
            return
        await self._heartbeat(conn)

    def _on_auth_result(self, r: AuthResult) -> None:
        conn = self._conn
        if conn is None or conn.auth.is_set():
            self.stats.unexpected_events += 1
            return
        conn.auth_ok, conn.auth_message, conn.auth_code = r.ok, r.message, r.ret_code
        if r.ok:
            self.authenticated = True
            self._auth_failures_in_row = 0
            self.last_auth_error = None
            log.info("bybit_private_authenticated", venue=self.venue)
        conn.auth.set()

    def _auth_refused(self, conn: _Connection) -> None:
        self.stats.auth_failures += 1
        self._auth_failures_in_row += 1
        code = conn.auth_code
        err = AuthError(self.venue, f"private stream auth refused: {conn.auth_message or 'no reason given'} "
                                    "(check the API key, its secret and the server clock)",
                        str(code) if code is not None else None)
        self.last_auth_error = err
        log.error("bybit_private_auth_refused", venue=self.venue, ret_code=code, message=conn.auth_message,
                  failures=self._auth_failures_in_row)
        if self.on_auth_error is not None:
            try:
                self.on_auth_error(err)
            except Exception as exc:
                log.error("bybit_hook_failed", venue=self.venue, hook="on_auth_error", error=repr(exc))
        elif code in HALTING_AUTH_CODES and self.rest is not None and not getattr(self.rest, "halted_reason", "x"):
            # Without a hook, a refused key or signature halts the venue as a REST 10003/10004
            # does (every request then fails fast, naming the reason).
            self.rest.halted_reason = (f"private stream auth: retCode {code} ({conn.auth_message}): "
                                       "check the API key and secret")
        self._drop(conn, "auth refused")

    def _all_acked(self, conn: _Connection) -> None:
        if conn.gap_reported:
            return
        conn.gap_reported = True
        self._gap("private stream reconnected" if conn.reconnected else "private stream connected")

    def _gap(self, reason: str) -> None:
        self.gaps_reported += 1
        try:
            self.on_gap(reason)
        except Exception as exc:
            log.error("bybit_hook_failed", venue=self.venue, hook="on_gap", error=repr(exc))

    # ------------------------------------------------------------ frames

    def on_frame(self, raw: bytes | str, recv_ns: int) -> None:
        """One private frame → reports on the bus."""
        ev = self.parser.parse(raw, recv_ns)
        if ev is None:
            return
        t = type(ev)
        publish = self.bus.publish
        venue = self.venue
        if t is Executions:
            self.last_event_ns = recv_ns
            for f in ev.fills:  # type: ignore[union-attr]
                publish(FillReport(ts_event_ns=f.ts_ns, ts_init_ns=recv_ns, venue=venue, fill=f))
            for exec_id, exec_type in ev.ignored:  # type: ignore[union-attr]
                if exec_type in POSITION_MOVING_EXEC_TYPES:
                    log.warning("bybit_position_moved_without_fill", venue=venue, exec_id=exec_id, exec_type=exec_type)
                    self._gap(f"{exec_type} execution {exec_id} moved the position without a fill")
        elif t is OrderUpdates:
            self.last_event_ns = recv_ns
            for o in ev.orders:  # type: ignore[union-attr]
                self.on_order(o)
                publish(OrderStatusReport(ts_event_ns=o.ts_ns, ts_init_ns=recv_ns, venue=venue, order=o))
        elif t is WalletUpdate:
            self.last_event_ns = recv_ns
            if self.publish_balances:
                for b in ev.balances.values():  # type: ignore[union-attr]
                    publish(BalanceUpdate(ts_event_ns=ev.ts_ns or recv_ns, ts_init_ns=recv_ns, venue=venue,  # type: ignore[union-attr]
                                          asset=b.asset, free=b.free, locked=b.locked))
        elif t is PositionUpdates:
            self.last_event_ns = recv_ns
            for p in ev.positions:  # type: ignore[union-attr]
                self.positions[p.instrument_id] = p
        else:
            self._control(ev)

    def net_positions(self) -> dict[InstrumentId, Decimal]:
        """The last position the stream reported per instrument (signed base units)."""
        return {iid: p.qty for iid, p in self.positions.items()}


# ---------------------------------------------------------------- helpers


async def _wait_event(clock: Clock, timeout_s: float | None, event: asyncio.Event,
                      closed: asyncio.Event | None = None) -> bool:
    """Wait until `event` (True) or `closed` is set or `timeout_s` pass on the clock (False).

    The deadline is fixed now (not when the timer task first runs), so a clock that moves
    meanwhile does not stretch the wait.
    """
    if event.is_set():
        return True
    if closed is not None and closed.is_set():
        return False
    waits = [asyncio.ensure_future(event.wait())]
    if closed is not None:
        waits.append(asyncio.ensure_future(closed.wait()))
    if timeout_s is not None:
        waits.append(asyncio.ensure_future(_sleep_until(clock, clock.monotonic() + timeout_s)))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return event.is_set()


async def _sleep_until(clock: Clock, deadline_s: float) -> None:
    await clock.sleep(max(0.0, deadline_s - clock.monotonic()))


__all__ = [
    "AUTH_EXPIRES_MS", "DEFAULT_WS_SETTINGS", "MAX_TOPICS_PER_REQUEST", "PING_INTERVAL_S", "PONG_TIMEOUT_S",
    "PRIVATE_TOPICS", "BybitPrivateStream", "BybitPublicStream", "StreamStats", "kline_interval", "public_topics",
]
