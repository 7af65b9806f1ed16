"""Binance user-data stream: listenKey lifecycle and order/fill/balance events → bus.

listenKey rules (spot `/api/v3/userDataStream`, USD-M `/fapi/v1/listenKey`):

* created at start (`create_key`), kept alive with a PUT every `keepalive_s` (30 min;
  Binance expires a key 60 min after the last keepalive);
* re-created when the keepalive says the key is gone (-1125), when the stream delivers
  `listenKeyExpired`, or when the stream handshake is refused (HTTP 400/404); the
  connection then re-opens on the new key (`<ws_url>/ws/<listenKey>`).

Events: executionReport / ORDER_TRADE_UPDATE → `FillReport` (when the event carries a
trade) then `OrderStatusReport`; outboundAccountPosition / ACCOUNT_UPDATE →
`BalanceUpdate` per asset (USD-M positions are cached for `positions`). Every fill event
is published, a copy of one the order's answer carried included (the engine's fill
intake refuses copies). Every (re)connect is a possible gap: `on_gap(reason)` is called
so the adapter publishes `UserStreamGap` (the reconciler re-reads orders and trades).
The listenKey never appears in a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.errors import VenueError
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import VenueOrder
from nautilus_hmm.messages import BalanceUpdate, FillReport, OrderStatusReport
from nautilus_hmm.venues.binance.parse import (
    AccountBalances,
    AccountUpdate,
    BalanceDelta,
    BinanceParser,
    EventStreamTerminated,
    ListenKeyExpired,
    OrderUpdate,
    parse_listen_key,
)
from nautilus_hmm.venues.binance.rest import BinanceRest
from nautilus_hmm.venues.ws import ReconnectingWebSocket, WsSettings

log = structlog.get_logger("venues.binance.user")

KEEPALIVE_S = 30 * 60.0
KEEPALIVE_RETRY_S = 60.0
CODE_LISTEN_KEY_UNKNOWN = "-1125"


class UserStream:
    """The user-data connection of one Binance venue (see the module docstring)."""

    def __init__(
        self,
        *,
        venue: str,
        ws_url: str,
        parser: BinanceParser,
        bus: Bus,
        clock: Clock,
        rest: BinanceRest,
        settings: WsSettings,
        on_order: Callable[[VenueOrder], None],
        on_gap: Callable[[str], None],
        keepalive_s: float = KEEPALIVE_S,
        session: Any = None,
        rng: Any = None,
    ) -> None:
        self.venue = venue
        self.parser = parser
        self.bus = bus
        self.clock = clock
        self.rest = rest
        self.keepalive_s = keepalive_s
        self.on_order = on_order
        self.on_gap = on_gap
        self.listen_key = ""
        self.key_created_s = 0.0
        self.keys_created = 0
        self.keepalives = 0
        self.last_event_ns = 0
        self.positions: dict[tuple[InstrumentId, str], Decimal] = {}
        self._ws_url = ws_url.rstrip("/")
        self._renew = asyncio.Event()
        self._renew_reason = ""
        self.ws = ReconnectingWebSocket(
            f"{venue}:user", self._url, self.on_frame, clock, session=session, settings=settings,
            on_connect=self._on_connect, on_connect_error=self._on_connect_error, rng=rng,
        )

    def _url(self) -> str:
        return f"{self._ws_url}/ws/{self.listen_key}"

    # ------------------------------------------------------------ listenKey

    async def create_key(self) -> None:
        """POST a listenKey (Binance returns the live one, extended, if there is one)."""
        body = await self.rest.call("listen_key_new")
        key = parse_listen_key(body)
        if key != self.listen_key:
            self.keys_created += 1
        self.listen_key = key
        self.key_created_s = self.clock.monotonic()
        log.info("binance_listen_key_created", venue=self.venue, count=self.keys_created)

    def renew(self, reason: str) -> None:
        """Ask the key loop to re-create the key and re-open the stream on it."""
        self._renew_reason = reason
        self._renew.set()

    async def _keepalive(self) -> None:
        params = {"listenKey": self.listen_key} if self.rest.market.value == "spot" else None
        await self.rest.call("listen_key_keepalive", params)
        self.keepalives += 1

    async def run_key(self) -> None:
        """Keep the key alive every `keepalive_s`; re-create it when it is gone."""
        while True:
            renew = await _sleep_or_event(self.clock, self.keepalive_s, self._renew)
            if not renew:
                try:
                    await self._keepalive()
                    continue
                except VenueError as exc:
                    if exc.code != CODE_LISTEN_KEY_UNKNOWN:
                        log.warning("binance_listen_key_keepalive_failed", venue=self.venue, error=str(exc),
                                    retry_in_s=KEEPALIVE_RETRY_S)
                        await _sleep_or_event(self.clock, KEEPALIVE_RETRY_S, self._renew)
                        if not self._renew.is_set():
                            with contextlib.suppress(VenueError):
                                await self._keepalive()
                            continue
                    else:
                        self._renew_reason = "keepalive: listenKey does not exist"
            self._renew.clear()
            reason = self._renew_reason or "renew requested"
            log.warning("binance_listen_key_renewing", venue=self.venue, reason=reason)
            try:
                await self.create_key()
            except VenueError as exc:
                log.error("binance_listen_key_create_failed", venue=self.venue, error=str(exc),
                          retry_in_s=KEEPALIVE_RETRY_S)
                await self.clock.sleep(KEEPALIVE_RETRY_S)
                self._renew.set()
                continue
            self.ws.reconnect_now(f"new listenKey ({reason})")

    async def close_key(self) -> None:
        """DELETE the key (best effort, at stop)."""
        if not self.listen_key:
            return
        params = {"listenKey": self.listen_key} if self.rest.market.value == "spot" else None
        with contextlib.suppress(VenueError):
            await self.rest.call("listen_key_close", params)

    # ------------------------------------------------------------ stream

    async def _on_connect(self, reconnected: bool) -> None:
        self.on_gap("user stream reconnected" if reconnected else "user stream connected")

    def _on_connect_error(self, exc: BaseException) -> None:
        if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status in (400, 404):
            self.renew(f"stream handshake refused (HTTP {exc.status})")

    def on_frame(self, raw: bytes | str, recv_ns: int) -> None:
        """One user-data frame → reports on the bus."""
        ev = self.parser.user_frame(raw)
        if ev is None:
            return
        self.last_event_ns = recv_ns
        publish = self.bus.publish
        venue = self.venue
        if isinstance(ev, OrderUpdate):
            if ev.fill is not None:
                publish(FillReport(ts_event_ns=ev.fill.ts_ns, ts_init_ns=recv_ns, venue=venue, fill=ev.fill))
            self.on_order(ev.order)
            publish(OrderStatusReport(ts_event_ns=ev.order.ts_ns, ts_init_ns=recv_ns, venue=venue, order=ev.order))
        elif isinstance(ev, AccountBalances):
            for b in ev.balances:
                publish(BalanceUpdate(ts_event_ns=ev.ts_ns, ts_init_ns=recv_ns, venue=venue, asset=b.asset,
                                      free=b.free, locked=b.locked))
        elif isinstance(ev, AccountUpdate):
            for b in ev.balances:
                publish(BalanceUpdate(ts_event_ns=ev.ts_ns, ts_init_ns=recv_ns, venue=venue, asset=b.asset,
                                      free=b.free, locked=b.locked))
            for p in ev.positions:
                self.positions[(p.instrument_id, p.position_side)] = p.qty
        elif isinstance(ev, ListenKeyExpired):
            log.warning("binance_listen_key_expired", venue=venue)
            self.renew("listenKeyExpired event")
        elif isinstance(ev, EventStreamTerminated):
            self.renew("eventStreamTerminated event")
        elif isinstance(ev, BalanceDelta):
            log.info("binance_balance_delta", venue=venue, asset=ev.asset, delta=str(ev.delta))


async def _sleep_or_event(clock: Clock, seconds: float, event: asyncio.Event) -> bool:
    """Sleep `seconds` on the clock or until `event` is set; True if the event woke us."""
    if event.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((sleeper, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        waiter.cancel()
    return event.is_set()
