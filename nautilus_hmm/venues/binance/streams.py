"""Binance market streams: one reconnecting websocket, SUBSCRIBE with ids and acks, local books.

Hot path: frame → `BinanceParser.market_frame` (orjson + parser) → `bus.publish`
(TradeTick, QuoteTick, closed-kline Bar, MarkPrice) or the symbol's `LocalOrderBook`
(diff depth). Nothing on it logs. A bar length that has no Binance kline interval (e.g.
10 s) is built from the trade stream with `marketdata.bars.BarAggregator` instead.

Subscriptions: the connection goes to `<ws_url>/ws` and every (re)connect sends
`SUBSCRIBE` for the whole set (chunks of `MAX_STREAMS_PER_REQUEST`), each with its own
id; the answer `{"result": null, "id": N}` acks it. `subscribe()` / `unsubscribe()`
change the set at run time. An error answer is logged and counted.

Books (Binance's documented procedure, see `book.py`): diffs are buffered until a REST
snapshot arrives; `BookValidityChanged(valid=False)` is published when a book leaves
VALID (gap, crossed book, disconnect) and at start, `valid=True` when it syncs again. The
risk gate denies orders on an invalid book. A resync worker (`run_book_sync`) fetches the
snapshots once the diff subscription is acked; a snapshot older than the stream is
retried after `SNAPSHOT_RETRY_S`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from typing import Any

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock, wait_with_timeout
from nautilus_hmm.core.errors import RateLimited, VenueBanned, VenueError
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.bars import BarAggregator
from nautilus_hmm.messages import BookValidityChanged, TradeTick
from nautilus_hmm.venues.binance.book import LocalOrderBook, Outcome
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import (
    BinanceParser,
    DepthDiff,
    ServerShutdown,
    StreamResponse,
    parse_depth_snapshot,
)
from nautilus_hmm.venues.binance.rest import BinanceRest
from nautilus_hmm.venues.ws import ReconnectingWebSocket, WsSettings

log = structlog.get_logger("venues.binance.streams")

MAX_STREAMS_PER_REQUEST = 50
SNAPSHOT_RETRY_S = 1.0
ACK_TIMEOUT_S = 10.0
DEPTH_SNAPSHOT_LIMIT = 1000

INTERVAL_NAMES = {
    1: "1s", 60: "1m", 180: "3m", 300: "5m", 900: "15m", 1800: "30m", 3600: "1h", 7200: "2h",
    14400: "4h", 21600: "6h", 28800: "8h", 43200: "12h", 86400: "1d",
}


def kline_interval(interval_s: int) -> str:
    """Binance's kline interval name for a bar length in seconds (ValueError if it has none)."""
    try:
        return INTERVAL_NAMES[interval_s]
    except KeyError:
        raise ValueError(f"bar interval {interval_s} s has no Binance kline interval "
                         f"(supported: {sorted(INTERVAL_NAMES)})") from None


def symbol_streams(symbol: str, market: Market, *, trade_stream: str, kline: str | None, book_ticker: bool,
                   depth: bool, mark_price: bool) -> list[str]:
    """Stream names for one symbol (lowercase, as Binance names them)."""
    s = symbol.lower()
    out = [f"{s}@{trade_stream}"]
    if kline:
        out.append(f"{s}@kline_{kline}")
    if book_ticker:
        out.append(f"{s}@bookTicker")
    if depth:
        out.append(f"{s}@depth@100ms")
    if mark_price and market is Market.USDM:
        out.append(f"{s}@markPrice@1s")
    return out


class MarketStreams:
    """The market-data connection of one Binance venue (see the module docstring)."""

    def __init__(
        self,
        *,
        venue: str,
        market: Market,
        ws_url: str,
        parser: BinanceParser,
        bus: Bus,
        clock: Clock,
        rest: BinanceRest,
        streams: Iterable[str],
        book_symbols: Iterable[str],
        settings: WsSettings,
        trade_bar_interval_s: int | None = None,
        session: Any = None,
        rng: Any = None,
    ) -> None:
        self.venue = venue
        self.market = market
        self.parser = parser
        self.bus = bus
        self.clock = clock
        self.rest = rest
        self.streams: list[str] = list(dict.fromkeys(streams))
        self.books: dict[InstrumentId, LocalOrderBook] = {
            parser.ids(sym): LocalOrderBook(parser.ids(sym), market) for sym in book_symbols
        }
        self.book_published: dict[InstrumentId, bool | None] = dict.fromkeys(self.books)
        self.stream_errors = 0
        self.snapshots = 0
        # Bars built from trades when the bar length has no Binance kline interval.
        self.aggregators: dict[InstrumentId, BarAggregator] = {}
        if trade_bar_interval_s:
            self.aggregators = {parser.ids(s.split("@", 1)[0].upper()): BarAggregator(
                parser.ids(s.split("@", 1)[0].upper()), trade_bar_interval_s) for s in self.streams
                if s.endswith(("@trade", "@aggTrade"))}
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, list[str], asyncio.Future[None]]] = {}
        self._acked = asyncio.Event()
        self._resync = asyncio.Event()
        self.ws = ReconnectingWebSocket(
            f"{venue}:market", f"{ws_url.rstrip('/')}/ws", self.on_frame, clock, session=session,
            settings=settings, on_connect=self._on_connect, on_disconnect=self._on_disconnect, rng=rng,
        )

    # ------------------------------------------------------------ hot path

    def on_frame(self, raw: bytes | str, recv_ns: int) -> None:
        """One market frame: parse and publish (a parse error propagates to the ws counters)."""
        ev = self.parser.market_frame(raw, recv_ns)
        if ev is None:
            return
        t = type(ev)
        if t is DepthDiff:
            self._on_diff(ev)  # type: ignore[arg-type]
        elif t is StreamResponse:
            self._on_response(ev)  # type: ignore[arg-type]
        elif t is ServerShutdown:
            log.warning("binance_server_shutdown_notice", venue=self.venue)
            self.ws.reconnect_now("serverShutdown event")
        else:
            if t is TradeTick and self.aggregators:
                agg = self.aggregators.get(ev.instrument_id)  # type: ignore[union-attr]
                if agg is not None:
                    bar = agg.on_trade(ev.price, ev.size, ev.ts_event_ns)  # type: ignore[union-attr]
                    if bar is not None:
                        self.bus.publish(bar)
            self.bus.publish(ev)  # type: ignore[arg-type]

    def _on_diff(self, diff: DepthDiff) -> None:
        book = self.books.get(diff.instrument_id)
        if book is None:
            return
        outcome = book.on_diff(diff)
        if outcome is Outcome.APPLIED or outcome is Outcome.BUFFERED or outcome is Outcome.STALE:
            return
        if outcome is Outcome.SYNCED:
            self._publish_validity(book, True, "synced")
        elif outcome is Outcome.GAP:
            self._publish_validity(book, False, book.reason)
            self._resync.set()

    def _publish_validity(self, book: LocalOrderBook, valid: bool, reason: str) -> None:
        iid = book.instrument_id
        if self.book_published.get(iid) is valid:
            return
        self.book_published[iid] = valid
        now = self.clock.time_ns()
        (log.info if valid else log.warning)("binance_book_validity", venue=self.venue, instrument=str(iid),
                                             valid=valid, reason=reason)
        self.bus.publish(BookValidityChanged(ts_event_ns=now, ts_init_ns=now, instrument_id=iid, valid=valid,
                                             reason=reason))

    # ------------------------------------------------------------ subscriptions

    async def _on_connect(self, reconnected: bool) -> None:
        self._acked.clear()
        for _, _, fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()
        await self._send_request("SUBSCRIBE", self.streams)
        self._resync.set()

    def _on_disconnect(self, reason: str) -> None:
        for book in self.books.values():
            book.invalidate(f"market stream disconnected: {reason}")
            self._publish_validity(book, False, f"market stream disconnected: {reason}")

    async def _send_request(self, method: str, streams: list[str]) -> list[asyncio.Future[None]]:
        futs: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for i in range(0, len(streams), MAX_STREAMS_PER_REQUEST):
            chunk = streams[i:i + MAX_STREAMS_PER_REQUEST]
            req_id = next(self._ids)
            fut: asyncio.Future[None] = loop.create_future()
            self._pending[req_id] = (method, chunk, fut)
            futs.append(fut)
            await self.ws.send_json({"method": method, "params": chunk, "id": req_id})
        if not futs:
            self._acked.set()
        return futs

    def _on_response(self, r: StreamResponse) -> None:
        rid = r.request_id
        entry = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if not r.ok:
            self.stream_errors += 1
            log.error("binance_stream_request_failed", venue=self.venue, request_id=rid, code=r.code, msg=r.msg,
                      streams=entry[1][:5] if entry else None)
            if entry is not None and not entry[2].done():
                entry[2].set_exception(VenueError(self.venue, f"{entry[0]} refused: {r.msg}", str(r.code)))
                entry[2].exception()  # retrieved: the caller may not be waiting
        elif entry is not None and not entry[2].done():
            entry[2].set_result(None)
        if not any(m == "SUBSCRIBE" for m, _, _ in self._pending.values()):
            self._acked.set()

    async def subscribe(self, streams: Iterable[str]) -> None:
        """Add streams (sent now when connected, and on every reconnect)."""
        new = [s for s in streams if s not in self.streams]
        self.streams.extend(new)
        if new and self.ws.connected:
            await self._send_request("SUBSCRIBE", new)

    async def unsubscribe(self, streams: Iterable[str]) -> None:
        """Remove streams."""
        gone = [s for s in streams if s in self.streams]
        self.streams = [s for s in self.streams if s not in gone]
        if gone and self.ws.connected:
            await self._send_request("UNSUBSCRIBE", gone)

    @property
    def subscribed(self) -> bool:
        """Connected, and every SUBSCRIBE sent on this connection was acked."""
        return self.ws.connected and self._acked.is_set()

    async def wait_acked(self, timeout_s: float = ACK_TIMEOUT_S) -> bool:
        """Wait until every pending SUBSCRIBE is acked; False on timeout (clock)."""
        try:
            await wait_with_timeout(self.clock, timeout_s, self._acked.wait())
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------ books

    def start_books(self) -> None:
        """Publish the initial invalid state of every book (orders wait for the first sync)."""
        for book in self.books.values():
            self._publish_validity(book, False, "awaiting first snapshot")

    async def run_book_sync(self) -> None:
        """Fetch snapshots for books that need one, whenever woken (reconnect, gap)."""
        while True:
            await self._resync.wait()
            self._resync.clear()
            if not self.books:
                continue
            if not self.ws.connected or not await self.wait_acked():
                self._resync.set()
                await self.clock.sleep(SNAPSHOT_RETRY_S)
                continue
            for book in list(self.books.values()):
                if book.needs_snapshot:
                    await self._snapshot(book)

    async def _snapshot(self, book: LocalOrderBook) -> None:
        iid = book.instrument_id
        try:
            body = await self.rest.call("depth", {"symbol": iid.symbol, "limit": DEPTH_SNAPSHOT_LIMIT})
        except (RateLimited, VenueBanned, VenueError) as exc:
            wait_s = getattr(exc, "retry_after_s", SNAPSHOT_RETRY_S)
            log.warning("binance_book_snapshot_failed", venue=self.venue, instrument=str(iid), error=str(exc),
                        retry_in_s=wait_s)
            self._resync.set()
            await self.clock.sleep(max(SNAPSHOT_RETRY_S, min(wait_s, 60.0)))
            return
        self.snapshots += 1
        snap = parse_depth_snapshot(body, iid, self.clock.time_ns())
        outcome = book.on_snapshot(snap)
        if outcome is Outcome.SYNCED:
            self._publish_validity(book, True, "synced")
        elif outcome is Outcome.GAP:
            log.info("binance_book_snapshot_stale", venue=self.venue, instrument=str(iid), reason=book.reason)
            self._resync.set()
            await self.clock.sleep(SNAPSHOT_RETRY_S)
