"""`IbkrVenue`: the Venue protocol over IB Gateway's TWS socket API, through ib_async.

Only `IB.connectAsync` and the `...Async` requests are used on the daemon's loop (never
ib_async's blocking helpers, never `util.patchAsyncio`). One `ib_async.IB` per
connection: a reconnect builds a fresh one, so no state of a dead session survives.

Start (`start()`): the order-id mark and the contract cache are read (a damaged file is a
start failure naming it); the Gateway is connected (`connectAsync`: handshake, startApi,
nextValidId, then ib_async's sync of positions, open and completed orders, account and
executions); each symbol is resolved through `reqContractDetails` (unknown or ambiguous:
the start fails naming it) and cached; market data is subscribed. A Gateway that does not
answer at start is not fatal when every symbol is in the cache: the instruments come
from it, the venue is unhealthy (reads fail, so start-up reconciliation keeps trading
halted) and `run()` connects when the Gateway is back.

Connection life (`run()` reconnects with doubling backoff, `reconnect_initial_s` ..
`reconnect_max_s`; IB Gateway's daily restart is one such drop):

* socket closed → unhealthy; orders refused before sending (RetryableError: nothing left);
  a send waiting for its answer becomes an unknown outcome.
* 1100 (Gateway lost IB) → unhealthy and reduce-only: an order that is not reduce-only
  is refused before sending; reduce-only orders go (IB holds them until it is back).
* 1101 / 1102 (restored) and every reconnect → market data resubscribed (1101 lost it;
  1102 kept it, resubscribing is harmless) and `UserStreamGap` published: the reconciler
  re-reads open orders, executions and positions (execution.reconcile).
* 10197 (a competing live session took the market data) → unhealthy until data flows.
* 2104/2106/2158 and the other farm notices → logged (info).
* Contract details are resolved again once a day and after 1101/1102 (IB lists trading
  hours about a week ahead): changed instruments go out as `InstrumentsUpdated`; a refresh
  that fails changes nothing and is retried (`refresh_contracts`).

Orders (binding money-safety rules):

* `orderRef` = the engine's client order id, journaled before `submit_order` is called.
* The IB order id is `max(nextValidId, every id used or seen + 1)`, made durable first
  (ids.py: a reserved block in `<state_dir>/ibkr_order_ids.json`, fsynced before an id of
  a new block leaves). Ids are handed out and sent under one lock, in increasing order.
* After `placeOrder`, the answer is the first openOrder/orderStatus past PendingSubmit
  (→ the ack) or a refusal (201 → OrderRejected, 103 → RetryableError). The socket
  closing, or no answer within `request_timeout_s`, is an unknown outcome: the engine
  resolves it with `query_order` (open orders, then completed orders, then executions,
  matched on orderRef) — never a resend.
* Fills: `execDetails` by execId, de-duplicated here (one publication per execId) and
  in the engine's fill intake. A fill waits for its `commissionReport` at most
  `commission_wait_s`, then is published with fee 0 (`commissions_missing`); a commission
  arriving after that is logged and counted (`late_commissions`) — not applied, since a
  fill is immutable once journaled (docs/IBKR.md).
* Pacing: every message waits for a token (`max_msgs_per_s`, ≤ 50); historical requests
  also follow IB's historical pacing rules (pacing.py).

Market data: `reqMktData` per instrument (quotes → `QuoteTick`; with `delayed_data`,
`reqMarketDataType(3)` lets IB fall back to delayed data, which `health()` reports per
instrument); bars from 5-second real-time bars (`reqRealTimeBars`) or tick-by-tick
trades and quotes (`reqTickByTickData`), aggregated into the strategy's interval
(bars.py). Historical bars (`history_bars`) for the HMM warm-up come from
`reqHistoricalData` in chunks, paced.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock, wait_with_timeout
from nautilus_hmm.core.errors import (
    AuthError,
    OrderRejected,
    ParseError,
    RetryableError,
    UnknownOutcome,
    VenueError,
)
from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.domain.enums import DataQuality, OrderStatus, OrderType
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.domain.sessions import iso_utc
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.messages import (
    Bar,
    ExecutionCorrected,
    FillReport,
    InstrumentsUpdated,
    MarketDataQualityChanged,
    OrderStatusReport,
    QuoteTick,
    TradeTick,
    UserStreamGap,
)
from nautilus_hmm.obs.trading_metrics import VenueMetricsSnapshot
from nautilus_hmm.venues.ibkr import errors as ib_errors
from nautilus_hmm.venues.ibkr.bars import BarAggregator, bars_to_arrays
from nautilus_hmm.venues.ibkr.config import EXTRA_MISSING, IbkrConfig
from nautilus_hmm.venues.ibkr.contracts import (
    ResolvedContract,
    cache_path,
    instrument_from_contract,
    parse_symbol,
    pick_details,
    read_cache,
    write_cache,
)
from nautilus_hmm.venues.ibkr.errors import GatewayUnavailable, IbErrorClass, classify
from nautilus_hmm.venues.ibkr.ids import OrderIdBook
from nautilus_hmm.venues.ibkr.pacing import HistoricalPacer, MessagePacer
from nautilus_hmm.venues.ibkr.parse import (
    canonical_exec_id,
    commission_of,
    correction_changes,
    data_quality,
    dec,
    exec_revision,
    execution_to_fill,
    time_ns,
    trade_reject,
    trade_to_order,
)

try:
    import ib_async
except ImportError as exc:  # the `ibkr` extra; config validation says so before a venue is built
    raise ImportError(f"venues.ibkr: {EXTRA_MISSING}") from exc

log = structlog.get_logger("venues.ibkr")

NS_PER_S = 1_000_000_000
VENUE = "ibkr"
OPEN_STATUSES = frozenset({OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                           OrderStatus.PENDING_CANCEL})
ACK_PENDING = frozenset({"PendingSubmit", "ApiPending", ""})
# IB historical bar sizes by length in seconds.
BAR_SIZES: dict[int, str] = {
    5: "5 secs", 10: "10 secs", 15: "15 secs", 30: "30 secs", 60: "1 min", 120: "2 mins", 180: "3 mins",
    300: "5 mins", 900: "15 mins", 1200: "20 mins", 1800: "30 mins", 3600: "1 hour", 7200: "2 hours",
    10800: "3 hours", 14400: "4 hours", 28800: "8 hours", 86400: "1 day",
}
HIST_MAX_REQUESTS = 60  # per history_bars call (IB: 60 per 10 minutes)
HIST_EMPTY_S = 4 * 86400  # this long without any bar (weekend, holidays): IB has no more
MARKET_DATA_TYPES = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed_frozen"}
EXEC_MEMORY = 50_000  # executions remembered for de-duplication and corrections (IB lists a day's)


@dataclass(frozen=True, slots=True)
class IbkrOptions:
    """Adapter settings that [venues.ibkr] does not carry (defaults suit production)."""

    bar_interval_s: int | None = 60  # the strategy's bars; None: no bars
    market_data: bool = True  # False: no subscriptions (tools and order-only tests)
    read_only: bool = False  # monitor mode: no order, no cancel (AuthError before anything is sent)
    gap_lookback_s: float = 60.0
    flush_grace_s: float = 10.0  # a bar in progress closes this long after its interval ends
    hist_violation_backoff_s: float = 60.0
    contract_refresh_s: float = 86400.0  # contract details (trading hours: ~a week listed) read again this often
    contract_retry_s: float = 600.0  # after a refresh that failed (or found the Gateway down)
    ib_factory: Callable[[], Any] | None = None  # builds an ib_async.IB (tests may wrap it)


class IbkrVenue:
    """Interactive Brokers as a `domain.venue.Venue` (see the module docstring)."""

    def __init__(self, config: IbkrConfig, bus: Bus, clock: Clock, *, state_dir: Path,
                 name: str = VENUE, options: IbkrOptions | None = None) -> None:
        if not config.symbols:
            raise ValueError(f"venues.{name}.symbols must list at least one symbol")
        self.name = name
        self.config = config
        self.bus = bus
        self.clock = clock
        self.state_dir = Path(state_dir)
        self.options = options or IbkrOptions()
        # Read by the execution engine's session check (`getattr(venue, "outside_rth", False)`).
        self.outside_rth = config.outside_rth
        self.specs = {s: parse_symbol(s, config.contracts.get(s)) for s in config.symbols}
        self.pacer = MessagePacer(clock, config.max_msgs_per_s)
        self.hist_pacer = HistoricalPacer(clock, self.options.hist_violation_backoff_s)
        self.ids: OrderIdBook | None = None
        self.ib: Any = None
        self._connected = False
        self._connectivity_lost = False  # 1100 until 1101/1102
        self._competing_session = False  # 10197 until data flows again
        self._ever_connected = False
        self.reconnect_state = "down"  # down | connecting | backoff | up (run()'s reconnect loop)
        self.requests_in_flight = 0  # requests waiting for the Gateway's answer (orders: `_acks`)
        self._disconnected_ns = 0
        self._last_event_ns = 0
        self._lost = asyncio.Event()
        self._started = False
        self._started_ns = 0
        self._contracts: dict[str, ResolvedContract] = {}
        self._instruments: dict[InstrumentId, Instrument] = {}
        self._ib_contracts: dict[InstrumentId, Any] = {}
        self._iid_by_con: dict[int, InstrumentId] = {}
        self._id_lock = asyncio.Lock()
        self._acks: dict[int, asyncio.Future[VenueOrder]] = {}
        self._cancels: dict[int, asyncio.Future[None]] = {}
        self._rejects: dict[int, tuple[int, str]] = {}
        self._last_report: dict[str, tuple[OrderStatus, Decimal]] = {}
        # Bounded (EXEC_MEMORY, oldest forgotten): a forgotten execution seen again is published
        # again under the same trade id and the engine's fill intake (the journal) refuses it.
        self._seen_execs: dict[str, None] = {}  # IB execIds taken (published, held, or a correction)
        # Per execution (execId without its revision): (the execId booked, its fill): what a
        # correction is compared with (parse.exec_revision).
        self._booked: dict[str, tuple[str, VenueFill]] = {}
        self._corrections: dict[str, str] = {}  # correction execId → "same" | "changed"
        self._held: dict[str, tuple[VenueFill, asyncio.Task[None]]] = {}
        self._fee_missing: set[str] = set()  # execs published with fee 0 (commission not in time)
        self._late_fee_execs: set[str] = set()
        self._commission_seen = asyncio.Event()
        self._aggregators: dict[InstrumentId, BarAggregator] = {}
        self._subscriptions: list[Any] = []
        self._data_type: dict[InstrumentId, str] = {}
        self._data_problems: dict[InstrumentId, str] = {}
        self._quality: dict[InstrumentId, DataQuality] = {}  # as last published (MarketDataQualityChanged)
        self._ticker_iid: dict[int, InstrumentId] = {}  # id(ib_async Ticker) → instrument
        self._req_iid: dict[int, InstrumentId] = {}  # market data reqId → instrument (errors name reqIds)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.counts: dict[str, int] = {
            "connects": 0, "reconnects": 0, "disconnects": 0, "orders_sent": 0, "unknown_outcomes": 0,
            "fills": 0, "duplicate_execs": 0, "commissions_missing": 0, "late_commissions": 0,
            "parse_errors": 0, "user_stream_gaps": 0, "bars": 0, "contracts_changed": 0,
            "exec_corrections": 0, "exec_corrections_changed": 0, "exec_corrections_unmatched": 0,
            "contract_refreshes": 0, "contract_refresh_failures": 0,
        }
        self._next_contract_refresh_ns = 0  # when the periodic refresh is due (every resolution moves it)
        self._contract_refresh_moved = asyncio.Event()  # wakes the refresh loop to the new due time
        self.last_contract_refresh: dict[str, object] = {}  # when, why, ok, error (health info)
        self.error_codes: dict[int, int] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Order-id mark, contract cache, connect, resolve contracts, subscribe market data."""
        self._started_ns = self.clock.time_ns()
        self.ids = OrderIdBook.load(self.state_dir)
        try:
            cached = read_cache(cache_path(self.state_dir))
        except ValueError as exc:
            log.warning("ibkr_contract_cache_unreadable", error=str(exc), action="resolving from IB only")
            cached = {}
        try:
            await self._connect()
        except (OSError, TimeoutError, ConnectionError, VenueError) as exc:
            missing = [s for s in self.config.symbols if s not in cached]
            if missing:
                raise RetryableError(self.name, f"IB Gateway at {self.config.host}:{self.config.port} did not "
                                                f"answer ({exc!r}) and {missing} are not in the contract cache "
                                                f"{cache_path(self.state_dir)}") from None
            self._set_contracts(cached, publish=False)
            self._mark_lost()
            log.warning("ibkr_gateway_unreachable_at_start", host=self.config.host, port=self.config.port,
                        error=repr(exc), instruments="from the contract cache",
                        action="reconnecting in run(); reads fail (trading halted) until then")
        else:
            try:
                await self._resolve_contracts(first=True)
                await self._after_connect(reconnect=False)
            except BaseException:
                self._disconnect()
                raise
        self._started = True
        log.info("ibkr_venue_started", venue=self.name, host=self.config.host, port=self.config.port,
                 client_id=self.config.client_id, connected=self._connected, symbols=list(self.config.symbols),
                 market_data=self.config.market_data, outside_rth=self.config.outside_rth,
                 order_entry="none (read-only)" if self.options.read_only else "tws_api")

    async def run(self) -> None:
        """Reconnect whenever the connection is lost; close tick-built bars on time."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._run_reconnect(), name=f"{self.name}:reconnect")
            tg.create_task(self._run_contract_refresh(), name=f"{self.name}:contract-refresh")
            if self.options.market_data and self.options.bar_interval_s:
                tg.create_task(self._run_bar_flush(), name=f"{self.name}:bar-flush")

    async def stop(self) -> None:
        """Publish held fills, close the connection."""
        for exec_id in list(self._held):
            self._publish_held(exec_id)
        for task in list(self._tasks):
            task.cancel()
        self._disconnect()
        self._started = False

    def reconfigure(self, config: IbkrConfig) -> None:
        """Apply the live-reloadable fields: request_timeout_s, commission_wait_s."""
        self.config = replace(self.config, request_timeout_s=config.request_timeout_s,
                              commission_wait_s=config.commission_wait_s)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ibkr_task_failed", task=task.get_name(), error=repr(task.exception()))

    # ------------------------------------------------------------------ connection

    def _new_ib(self) -> Any:
        if self.options.ib_factory is not None:
            return self.options.ib_factory()
        return ib_async.IB()

    async def _connect(self) -> None:
        """One connection: a fresh IB, events wired, connectAsync (handshake + ib_async's sync)."""
        ib = self._new_ib()
        ib.RaiseRequestErrors = True
        ib.client.MaxRequests = self.config.max_msgs_per_s  # backstop for ib_async's own messages
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.openOrderEvent += self._on_open_order
        ib.orderStatusEvent += self._on_trade
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.pendingTickersEvent += self._on_tickers
        self.ib = ib
        try:
            await ib.connectAsync(self.config.host, self.config.port, clientId=self.config.client_id,
                                  timeout=self.config.connect_timeout_s, readonly=self.options.read_only,
                                  account=self.config.account)
        except BaseException:
            self._drop_ib(ib)
            raise
        if not ib.isConnected():
            self._drop_ib(ib)
            raise ConnectionError("the Gateway closed the connection during the start-up sync")
        self._connected = True
        self._connectivity_lost = False
        self._lost.clear()
        self.counts["connects"] += 1
        assert self.ids is not None
        for trade in ib.wrapper.trades.values():
            self.ids.observe(int(trade.order.orderId or 0))
        for fill in ib.wrapper.fills.values():
            self.ids.observe(int(fill.execution.orderId or 0))

    def _drop_ib(self, ib: Any) -> None:
        """Unwire and close one IB (its events no longer reach this adapter)."""
        with contextlib.suppress(Exception):
            ib.errorEvent -= self._on_error
            ib.disconnectedEvent -= self._on_disconnected
            ib.openOrderEvent -= self._on_open_order
            ib.orderStatusEvent -= self._on_trade
            ib.execDetailsEvent -= self._on_exec
            ib.commissionReportEvent -= self._on_commission
            ib.pendingTickersEvent -= self._on_tickers
        with contextlib.suppress(Exception):
            ib.disconnect()
        if self.ib is ib:
            self.ib = None

    def _disconnect(self) -> None:
        ib = self.ib
        self._connected = False
        if ib is not None:
            self._drop_ib(ib)

    def _mark_lost(self) -> None:
        self._connected = False
        if not self._disconnected_ns:
            self._disconnected_ns = self.clock.time_ns()
        self._lost.set()

    def _on_disconnected(self) -> None:
        """The socket closed (Gateway restart, network): in-flight sends become unknown outcomes."""
        if not self._connected:
            return
        self.counts["disconnects"] += 1
        self._mark_lost()
        self._subscriptions.clear()
        log.warning("ibkr_disconnected", venue=self.name, in_flight=len(self._acks),
                    action="reconnecting; in-flight orders are settled by query, never resent")
        for oid, fut in list(self._acks.items()):
            if not fut.done():
                fut.set_exception(UnknownOutcome(self.name, f"connection lost after order id {oid} was sent"))
        for fut in self._cancels.values():
            if not fut.done():
                fut.set_result(None)
        ib = self.ib
        if ib is not None:
            self._drop_ib(ib)

    async def _run_reconnect(self) -> None:
        delay = self.config.reconnect_initial_s
        while True:
            self.reconnect_state = "up" if self._connected else "down"
            await self._lost.wait()
            self.reconnect_state = "connecting"
            try:
                await self._connect()
                await self._resolve_contracts(first=False)
                await self._after_connect(reconnect=True)
            except (OSError, TimeoutError, ConnectionError, VenueError, ValueError) as exc:
                self._disconnect()
                self._mark_lost()
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # asyncio.wait_for (inside ib_async's connect) can swallow a cancel that
                    # arrives as the connect fails: honour it, or stop() would wait forever.
                    raise asyncio.CancelledError from exc
                log.warning("ibkr_reconnect_failed", venue=self.name, error=repr(exc), retry_in_s=round(delay, 2))
                self.reconnect_state = "backoff"
                await self.clock.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
                continue
            delay = self.config.reconnect_initial_s

    async def _after_connect(self, reconnect: bool) -> None:
        """Market data subscribed; after a reconnect, the gap published for reconciliation."""
        if self.options.market_data:
            await self._subscribe_market_data()
        if reconnect:
            self.counts["reconnects"] += 1
            log.info("ibkr_reconnected", venue=self.name, down_s=round(
                (self.clock.time_ns() - self._disconnected_ns) / NS_PER_S, 3) if self._disconnected_ns else None)
            self._publish_gap("reconnected")
        self._disconnected_ns = 0
        self._ever_connected = True

    def _publish_gap(self, reason: str) -> None:
        """Orders and fills since the last event (or the drop) may be missed: the reconciler re-reads."""
        lookback = int(self.options.gap_lookback_s * NS_PER_S)
        anchors = [t for t in (self._last_event_ns, self._disconnected_ns) if t]
        since = (min(anchors) if anchors else self._started_ns) - lookback
        now = self.clock.time_ns()
        self.counts["user_stream_gaps"] += 1
        log.info("ibkr_user_stream_gap", venue=self.name, reason=reason, since_ns=since)
        self.bus.publish(UserStreamGap(ts_event_ns=now, ts_init_ns=now, venue=self.name, since_ns=since,
                                       reason=reason))

    def _ready(self) -> Any:
        """The connected IB, else GatewayUnavailable (a RetryableError: nothing is sent; callers
        that wait out rate limits wait for the reconnect)."""
        ib = self.ib
        if not self._connected or ib is None or not ib.isConnected():
            raise GatewayUnavailable(self.name, "not connected to IB Gateway; nothing sent",
                                     retry_after_s=max(1.0, self.config.reconnect_initial_s))
        return ib

    async def _request(self, what: str, make: Callable[[Any], Any]) -> Any:
        """One paced request: wait for a token, send, wait for the answer (request_timeout_s)."""
        await self.pacer.acquire()
        ib = self._ready()
        self.requests_in_flight += 1
        try:
            return await wait_with_timeout(self.clock, self.config.request_timeout_s, make(ib))
        except TimeoutError:
            raise RetryableError(self.name, f"{what}: no answer within {self.config.request_timeout_s} s") from None
        except ConnectionError as exc:
            raise GatewayUnavailable(self.name, f"{what}: connection lost ({exc})",
                                     retry_after_s=max(1.0, self.config.reconnect_initial_s)) from None
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code is not None:
                raise VenueError(self.name, f"{what}: {getattr(exc, 'message', exc)}", str(code)) from None
            raise
        finally:
            self.requests_in_flight -= 1

    # ------------------------------------------------------------------ contracts

    async def _resolve_contracts(self, first: bool) -> None:
        """reqContractDetails per symbol → instruments; cached. Unknown/ambiguous: ValueError naming it."""
        resolved: dict[str, ResolvedContract] = {}
        for sym, spec in self.specs.items():
            try:
                details = await self._request(f"contract details of {sym}",
                                              lambda ib, s=spec: ib.reqContractDetailsAsync(ib_async.Contract(**s.contract_kwargs())))
            except VenueError as exc:
                if exc.code == str(ib_errors.NO_SECURITY):
                    details = []
                else:
                    raise
            resolved[sym] = pick_details(sym, [ResolvedContract.from_details(d) for d in details])
        self._set_contracts(resolved, publish=not first)
        self._reschedule_contract_refresh(self.options.contract_refresh_s)
        try:
            await asyncio.to_thread(write_cache, cache_path(self.state_dir), resolved)
        except OSError as exc:
            log.warning("ibkr_contract_cache_not_written", path=str(cache_path(self.state_dir)), error=str(exc))

    def _set_contracts(self, resolved: dict[str, ResolvedContract], publish: bool) -> None:
        before = dict(self._instruments)
        instruments: dict[InstrumentId, Instrument] = {}
        for sym in self.config.symbols:
            rc = resolved[sym]
            inst = instrument_from_contract(self.name, sym, rc, outside_rth=self.config.outside_rth)
            instruments[inst.id] = inst
            self._ib_contracts[inst.id] = ib_async.Contract(**rc.contract_kwargs())
            self._iid_by_con[rc.con_id] = inst.id
            old = self._contracts.get(sym)
            if old is not None and old.con_id != rc.con_id:
                # Both conIds keep mapping to the instrument (positions and executions IB lists
                # under the old one still find it); the operator checks what IB changed.
                log.error("ibkr_contract_changed", venue=self.name, symbol=sym, old_con_id=old.con_id,
                          new_con_id=rc.con_id, action="orders and data use the new conId; check the contract")
        self._contracts = dict(resolved)
        self._instruments = instruments
        changed = tuple(i for iid, i in instruments.items() if before.get(iid) not in (None, i))
        if publish and changed:
            self.counts["contracts_changed"] += len(changed)
            now = self.clock.time_ns()
            self.bus.publish(InstrumentsUpdated(ts_event_ns=now, ts_init_ns=now, venue=self.name,
                                                instruments=changed))

    async def _run_contract_refresh(self) -> None:
        """Contract details again once a day (IB lists trading hours about a week ahead: a daemon
        connected for a week would run out of calendar); off the hot path, every request paced."""
        while True:
            now = self.clock.time_ns()
            if not self._next_contract_refresh_ns:
                self._next_contract_refresh_ns = now + int(self.options.contract_refresh_s * NS_PER_S)
            wait_s = (self._next_contract_refresh_ns - now) / NS_PER_S
            if wait_s > 0:
                self._contract_refresh_moved.clear()
                with contextlib.suppress(TimeoutError):
                    # a reconnect's resolution or a failed refresh moves the due time: wake to it
                    await wait_with_timeout(self.clock, wait_s, self._contract_refresh_moved.wait())
                continue
            await self.refresh_contracts("daily")

    def _reschedule_contract_refresh(self, in_s: float) -> None:
        self._next_contract_refresh_ns = self.clock.time_ns() + int(in_s * NS_PER_S)
        self._contract_refresh_moved.set()

    async def refresh_contracts(self, reason: str) -> bool:
        """Resolve every symbol's contract details again; changed instruments (new trading hours,
        a new conId, new filters) go out as `InstrumentsUpdated` (the engine's instruments, the
        strategies' sessions). A refresh that fails changes nothing, is logged and counted, and is
        tried again after `contract_retry_s`; it never raises."""
        now = self.clock.time_ns()
        error = ""
        if not self._connected:
            error = "not connected (the reconnect resolves the contracts)"
        else:
            try:
                await self._resolve_contracts(first=False)
            except (VenueError, ParseError, ValueError, TimeoutError, OSError, ConnectionError) as exc:
                error = str(exc) or repr(exc)
            except Exception as exc:  # an answer the resolution cannot read: this refresh fails, run() goes on
                error = repr(exc)
                log.error("ibkr_contract_refresh_error", venue=self.name, reason=reason, error=error)
        self.last_contract_refresh = {"ts_ns": now, "reason": reason, "ok": not error, "error": error or None}
        if error:
            self.counts["contract_refresh_failures"] += 1
            self._reschedule_contract_refresh(self.options.contract_retry_s)
            log.warning("ibkr_contract_refresh_failed", venue=self.name, reason=reason, error=error,
                        action=f"instruments kept as they were; again in {self.options.contract_retry_s:g} s")
            return False
        self.counts["contract_refreshes"] += 1
        log.info("ibkr_contracts_refreshed", venue=self.name, reason=reason,
                 calendar_until={str(i): iso_utc(inst.sessions.known_until_ns)
                                 for i, inst in self._instruments.items()
                                 if inst.sessions is not None and inst.sessions.known_until_ns is not None})
        return True

    def instruments(self) -> dict[InstrumentId, Instrument]:
        """The configured symbols as instruments."""
        return dict(self._instruments)

    def _iid_of(self, contract: Any) -> InstrumentId | None:
        return self._iid_by_con.get(int(getattr(contract, "conId", 0) or 0))

    # ------------------------------------------------------------------ events

    def _on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        """Every IB error/notice (module docstring): classified, logged, acted on."""
        cls = classify(code, text)
        self.error_codes[code] = self.error_codes.get(code, 0) + 1
        fields = {"venue": self.name, "code": code, "req_id": req_id, "text": text, "class": cls.value}
        if cls is IbErrorClass.CONNECTIVITY_LOST:
            self._connectivity_lost = True
            log.warning("ibkr_connectivity_lost", **fields, action="unhealthy, reduce-only until restored")
        elif cls in (IbErrorClass.RESTORED, IbErrorClass.RESTORED_DATA_LOST):
            was = self._connectivity_lost
            self._connectivity_lost = False
            self._competing_session = False
            log.info("ibkr_connectivity_restored", **fields, was_lost=was, action="resubscribe and reconcile")
            if self._connected:
                self._spawn(self._restored(), f"{self.name}:restored")
        elif cls is IbErrorClass.COMPETING_SESSION:
            self._competing_session = True
            log.warning("ibkr_competing_session", **fields,
                        action="market data paused by another live login; unhealthy until data flows")
        elif cls is IbErrorClass.NOT_SUBSCRIBED:
            iid = self._req_iid.get(req_id) or (self._iid_of(contract) if contract is not None else None)
            if iid is not None and code != ib_errors.DELAYED_INSTEAD:
                self._data_problems[iid] = f"{code}: {text}"
            elif iid is not None:
                self._data_type[iid] = "delayed"  # 10167: no subscription, delayed data follows
            if iid is not None:
                self._sync_quality(iid)
            log.warning("ibkr_market_data_not_subscribed", **fields, instrument=str(iid) if iid else None)
        elif cls is IbErrorClass.PACING:
            self.hist_pacer.violation()
            log.warning("ibkr_pacing_violation", **fields, backoff_s=self.hist_pacer.violation_backoff_s)
        elif ib_errors.is_informational(cls):
            log.info("ibkr_notice", **fields)
        else:
            log.warning("ibkr_error", **fields)
        if req_id in self._acks or req_id in self._cancels:
            self._order_error(req_id, code, text, cls)

    def _order_error(self, oid: int, code: int, text: str, cls: IbErrorClass) -> None:
        if cls is IbErrorClass.DUPLICATE_ORDER_ID:
            fut = self._acks.get(oid)
            if fut is not None and not fut.done():
                fut.set_exception(RetryableError(self.name, f"order id {oid} was already used (103): not taken",
                                                 str(code)))
            return
        if code == ib_errors.ORDER_CANCELLED:
            cfut = self._cancels.get(oid)
            if cfut is not None and not cfut.done():
                cfut.set_result(None)
            return
        if cls is IbErrorClass.ORDER_REJECTED or code in (ib_errors.NO_SECURITY,):
            self._rejects[oid] = (code, text)
            fut = self._acks.get(oid)
            if fut is not None and not fut.done():
                fut.set_exception(OrderRejected(self.name, text, str(code)))
        elif code in (161, 10147, 10148):  # cancel of an order that cannot be cancelled / is unknown
            cfut = self._cancels.get(oid)
            if cfut is not None and not cfut.done():
                cfut.set_result(None)

    async def _restored(self) -> None:
        await self.refresh_contracts("connectivity restored")  # IB may have moved a calendar meanwhile
        try:
            if self.options.market_data:
                await self._subscribe_market_data()
        except VenueError as exc:
            log.warning("ibkr_resubscribe_failed", venue=self.name, error=str(exc))
        self._publish_gap("connectivity restored")

    def _on_open_order(self, trade: Any) -> None:
        """openOrder: IB holds the order (its orderStatus may come later, or be lost)."""
        self._on_trade(trade, open_order=True)

    def _on_trade(self, trade: Any, open_order: bool = False) -> None:
        """openOrder / orderStatus: the order's state → OrderStatusReport (and the ack of a send)."""
        try:
            iid = self._iid_of(trade.contract)
            oid = int(trade.order.orderId or 0)
            if self.ids is not None:
                self.ids.observe(oid)
            if iid is None:
                return
            status = str(trade.orderStatus.status)
            vo = trade_to_order(trade, iid, self.clock.time_ns(), self._rejects)
            if open_order and status in ACK_PENDING:
                # ib_async keeps PendingSubmit until an orderStatus comes; the openOrder itself
                # says IB took the order.
                vo = replace(vo, status=OrderStatus.ACCEPTED)
                status = "Submitted"
        except ParseError as exc:
            self.counts["parse_errors"] += 1
            log.warning("ibkr_parse_error", venue=self.name, what="order", error=str(exc))
            return
        self._last_event_ns = self.clock.time_ns()
        fut = self._acks.get(oid)
        if fut is not None and not fut.done():
            if vo.status is OrderStatus.REJECTED:
                code = self._rejects.get(oid) or trade_reject(trade)
                fut.set_exception(OrderRejected(self.name, vo.reason or "rejected",
                                                str(code[0]) if code else "rejected"))
            elif status not in ACK_PENDING:
                fut.set_result(vo)
        cfut = self._cancels.get(oid)
        if cfut is not None and not cfut.done() and vo.status.is_terminal:
            cfut.set_result(None)
        if not vo.client_order_id:
            return  # an order not placed through the API by us (no orderRef): the reconciler sees it
        key = (vo.status, vo.filled_qty)
        if self._last_report.get(vo.client_order_id) == key:
            return
        self._last_report[vo.client_order_id] = key
        if vo.status is OrderStatus.SUBMITTED:
            return  # not an answer from IB yet
        self.bus.publish(OrderStatusReport(ts_event_ns=vo.ts_ns, ts_init_ns=self.clock.time_ns(),
                                           venue=self.name, order=vo))

    def _on_exec(self, trade: Any, fill: Any) -> None:
        """A live execution: held for its commission (at most commission_wait_s), then published once."""
        execution = fill.execution
        exec_id = str(execution.execId or "")
        if self.ids is not None:
            self.ids.observe(int(execution.orderId or 0))
        if exec_id in self._seen_execs:
            self.counts["duplicate_execs"] += 1
            return
        iid = self._iid_of(fill.contract) or self._iid_of(trade.contract)
        if iid is None:
            return
        try:
            vf = execution_to_fill(execution, iid, commission_of(fill.commissionReport),
                                   self._instruments[iid].quote_asset)
        except ParseError as exc:
            self.counts["parse_errors"] += 1
            log.warning("ibkr_parse_error", venue=self.name, what="execution", error=str(exc))
            return
        self._last_event_ns = self.clock.time_ns()
        _remember(self._seen_execs, exec_id, None)
        base, rev = exec_revision(exec_id)
        # Another revision of this execution already booked here (a correction; or, out of
        # order, the first revision after an unmatched correction): compared, never booked.
        booked = self._booked.get(base)
        original = booked[1] if booked is not None else self._original_of(base, rev) if rev > 1 else None
        if original is not None:
            self._on_correction(original, vf)
            return
        if rev > 1:
            self.counts["exec_corrections_unmatched"] += 1
            log.warning("ibkr_execution_correction_unmatched", venue=self.name, exec_id=exec_id,
                        booked_as=canonical_exec_id(exec_id),
                        action="the execution it corrects was never seen here: booked under its first "
                               "revision's id (the journal refuses it if it has that one)")
        vf = replace(vf, trade_id=canonical_exec_id(exec_id))
        _remember(self._booked, base, (exec_id, vf))
        if commission_of(fill.commissionReport) is not None:
            self._publish_fill(vf)
            return
        task = self._spawn(self._hold_fill(exec_id), f"{self.name}:commission:{exec_id}")
        self._held[exec_id] = (vf, task)

    async def _hold_fill(self, exec_id: str) -> None:
        await self.clock.sleep(self.config.commission_wait_s)
        if exec_id in self._held:
            self.counts["commissions_missing"] += 1
            self._fee_missing.add(exec_id)
            log.warning("ibkr_commission_missing", venue=self.name, exec_id=exec_id,
                        wait_s=self.config.commission_wait_s, action="fill published with fee 0")
            self._publish_held(exec_id, cancel_timer=False)

    def _original_of(self, base: str, rev: int) -> VenueFill | None:
        """The fill booked for execution `base` here, else an earlier revision of it that ib_async
        holds (the executions listed at connect); None when neither is known."""
        booked = self._booked.get(base)
        if booked is not None:
            return booked[1]
        ib = self.ib
        for exec_id, f in (list(ib.wrapper.fills.items()) if ib is not None else ()):
            b, r = exec_revision(str(exec_id))
            iid = self._iid_of(f.contract)
            if b != base or r >= rev or iid is None:
                continue
            try:
                vf = execution_to_fill(f.execution, iid, None, self._instruments[iid].quote_asset)
            except ParseError:
                continue
            vf = replace(vf, trade_id=canonical_exec_id(str(exec_id)))
            _remember(self._booked, base, (str(exec_id), vf))
            return vf
        return None

    def _on_correction(self, original: VenueFill, correction: VenueFill) -> None:
        """IB corrected an execution: never a second fill. The same values: logged and counted.
        Other values: the first report stays booked, the correction is logged, counted and
        published (`ExecutionCorrected`: the reconciler halts trading naming both execIds)."""
        exec_id = correction.trade_id
        if exec_id in self._corrections:
            return
        _remember(self._seen_execs, exec_id, None)
        changes = correction_changes(original, correction)
        _remember(self._corrections, exec_id, "changed" if changes else "same")
        if not changes:
            self.counts["exec_corrections"] += 1
            log.info("ibkr_execution_correction", venue=self.name, exec_id=exec_id, corrects=original.trade_id,
                     client_order_id=original.client_order_id, action="the same values: nothing booked")
            return
        self.counts["exec_corrections_changed"] += 1
        detail = (f"IB corrected execution {original.trade_id} of order {original.client_order_id or '?'} "
                  f"({original.instrument_id}) as {exec_id}: {'; '.join(changes)}; the first report stays "
                  "booked and the correction is not: check the account at IB, then resume")
        log.error("ibkr_execution_correction_changed", venue=self.name, exec_id=exec_id,
                  corrects=original.trade_id, changes=changes, action="not booked; trading halts (reconciler)")
        now = self.clock.time_ns()
        self.bus.publish(ExecutionCorrected(ts_event_ns=now, ts_init_ns=now, venue=self.name,
                                            instrument_id=original.instrument_id,
                                            client_order_id=original.client_order_id,
                                            original_trade_id=original.trade_id, correction_trade_id=exec_id,
                                            detail=detail))

    def _first_revisions(self, fills: list[Any]) -> list[Any]:
        """ib_async Fills with every execution once: its lowest revision listed (a correction's
        quantity is never added to the execution it corrects)."""
        first: dict[str, tuple[int, Any]] = {}
        for f in fills:
            base, rev = exec_revision(str(f.execution.execId or ""))
            if base not in first or rev < first[base][0]:
                first[base] = (rev, f)
        return [f for _, f in first.values()]

    def _publish_held(self, exec_id: str, cancel_timer: bool = True) -> None:
        held = self._held.pop(exec_id, None)
        if held is None:
            return
        vf, task = held
        if cancel_timer:
            task.cancel()
        self._publish_fill(vf)

    def _publish_fill(self, vf: VenueFill) -> None:
        self.counts["fills"] += 1
        self.bus.publish(FillReport(ts_event_ns=vf.ts_ns, ts_init_ns=self.clock.time_ns(), venue=self.name, fill=vf))

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        """The commission of an execution: attached to its held fill (late: logged and counted)."""
        self._commission_seen.set()
        exec_id = str(getattr(report, "execId", "") or "")
        fee = None
        try:
            fee = commission_of(report)
        except ParseError as exc:
            self.counts["parse_errors"] += 1
            log.warning("ibkr_parse_error", venue=self.name, what="commission", error=str(exc))
        held = self._held.get(exec_id)
        if held is not None and fee is not None:
            vf, _ = held
            self._held[exec_id] = (replace(vf, fee=fee[0], fee_asset=fee[1] or vf.fee_asset), held[1])
            self._publish_held(exec_id)
        elif exec_id in self._fee_missing and fee is not None and exec_id not in self._late_fee_execs:
            self._late_fee_execs.add(exec_id)
            self.counts["late_commissions"] += 1
            log.warning("ibkr_commission_late", venue=self.name, exec_id=exec_id, fee=str(fee[0]),
                        currency=fee[1], consequence="the fill was journaled with fee 0")

    # ------------------------------------------------------------------ market data

    async def _subscribe_market_data(self) -> None:
        """Quotes (and the data type) by reqMktData; bars by 5-s real-time bars or tick-by-tick."""
        ib = self._ready()
        self._subscriptions.clear()
        self._ticker_iid.clear()
        self._req_iid.clear()
        await self.pacer.acquire()
        self._ready().reqMarketDataType(3 if self.config.delayed_data else 1)
        interval = self.options.bar_interval_s
        for iid, contract in self._ib_contracts.items():
            inst = self._instruments[iid]
            await self.pacer.acquire()
            ib = self._ready()
            ticker = ib.reqMktData(contract, "", False, False)
            self._ticker_iid[id(ticker)] = iid
            self._subscriptions.append(ticker)
            if interval:
                self._aggregators.setdefault(iid, BarAggregator(iid, interval))
            what = "MIDPOINT" if inst.kind.value == "fx" else "TRADES"
            await self.pacer.acquire()
            ib = self._ready()
            if self.config.market_data == "bars_5s":
                if interval:
                    bars = ib.reqRealTimeBars(contract, 5, what, not self.config.outside_rth)
                    bars.updateEvent += self._bar_handler(iid)
                    self._req_iid[bars.reqId] = iid
                    self._subscriptions.append(bars)
            else:
                for tick_type in ("Last" if what == "TRADES" else "MidPoint", "BidAsk"):
                    t = ib.reqTickByTickData(contract, tick_type, 0, False)
                    self._ticker_iid[id(t)] = iid
                    self._subscriptions.append(t)
                    await self.pacer.acquire()
        for req_id, t in list(ib.wrapper.reqId2Ticker.items()):
            if id(t) in self._ticker_iid:
                self._req_iid[req_id] = self._ticker_iid[id(t)]

    def _bar_handler(self, iid: InstrumentId) -> Callable[[Any, bool], None]:
        def on_bars(bars: Any, has_new: bool) -> None:
            if not has_new or not bars:
                return
            b = bars[-1]
            now = self.clock.time_ns()
            self._data_seen(iid)
            try:
                start = time_ns(b.time, "realtimeBar.time")
            except ParseError as exc:
                self.counts["parse_errors"] += 1
                log.warning("ibkr_parse_error", venue=self.name, what="realtime bar", error=str(exc))
                return
            agg = self._aggregators.get(iid)
            if agg is None:
                return
            for bar in agg.add(start, 5, b.open_, b.high, b.low, b.close, max(0.0, float(b.volume)), now):
                self._publish_bar(bar)

        return on_bars

    def _data_seen(self, iid: InstrumentId) -> None:
        self._competing_session = False
        if self._data_problems.pop(iid, None) is not None:
            self._sync_quality(iid)

    def _sync_quality(self, iid: InstrumentId) -> None:
        """Publish `MarketDataQualityChanged` when the instrument's quality (its market data type,
        or a subscription problem: none) differs from the last one published."""
        problem = self._data_problems.get(iid)
        kind = self._data_type.get(iid)
        quality = data_quality(kind, problem)
        previous = self._quality.get(iid)
        if quality is None or quality is previous:
            return
        self._quality[iid] = quality
        detail = problem or f"IB marketDataType {kind}" + (" (15 minutes late)" if kind == "delayed" else "")
        now = self.clock.time_ns()
        self.bus.publish(MarketDataQualityChanged(ts_event_ns=now, ts_init_ns=now, venue=self.name, instrument_id=iid,
                                                  quality=quality, previous=previous, detail=detail))

    def _publish_bar(self, bar: Bar) -> None:
        inst = self._instruments.get(bar.instrument_id)
        if inst is not None and inst.sessions is not None and not inst.sessions.is_open(bar.ts_event_ns) \
                and inst.sessions.is_known(bar.ts_event_ns):
            return  # IB's data outside the session we trade in is not a bar of ours
        self.counts["bars"] += 1
        self.bus.publish(bar)

    def _on_tickers(self, tickers: Iterable[Any]) -> None:
        """Quotes, the market data type, and tick-by-tick trades (→ TradeTick and bars)."""
        now = self.clock.time_ns()
        for t in tickers:
            iid = self._ticker_iid.get(id(t))
            if iid is None:
                continue
            mdt = int(getattr(t, "marketDataType", 1) or 1)
            kind = MARKET_DATA_TYPES.get(mdt, str(mdt))
            if self._data_type.get(iid) != kind:
                self._data_type[iid] = kind
                (log.warning if kind != "live" else log.info)(
                    "ibkr_market_data_type", venue=self.name, instrument=str(iid), type=kind)
                self._sync_quality(iid)
            bid, ask = getattr(t, "bid", float("nan")), getattr(t, "ask", float("nan"))
            if _positive(bid) and _positive(ask):
                self._data_seen(iid)
                self.bus.publish(QuoteTick(ts_event_ns=now, ts_init_ns=now, instrument_id=iid, bid=float(bid),
                                           bid_size=float(getattr(t, "bidSize", 0.0) or 0.0), ask=float(ask),
                                           ask_size=float(getattr(t, "askSize", 0.0) or 0.0)))
            for tick in getattr(t, "tickByTicks", None) or ():
                price = getattr(tick, "price", None)
                if price is None:
                    price = getattr(tick, "midPoint", None)
                if not _positive(price):
                    continue
                size = float(getattr(tick, "size", 0.0) or 0.0)
                self._data_seen(iid)
                if hasattr(tick, "price"):
                    self.bus.publish(TradeTick(ts_event_ns=now, ts_init_ns=now, instrument_id=iid,
                                               price=float(price), size=size, aggressor=None, trade_id=""))
                agg = self._aggregators.get(iid)
                if agg is not None and self.config.market_data == "tick_by_tick":
                    for bar in agg.add(now, 0, price, price, price, price, size, now):
                        self._publish_bar(bar)

    async def _run_bar_flush(self) -> None:
        """Close a bar whose interval ended without a later input (tick mode, or a lost last 5-s bar)."""
        interval = self.options.bar_interval_s or 60
        while True:
            await self.clock.sleep(min(interval, 5))
            now = self.clock.time_ns()
            cutoff = now - int(self.options.flush_grace_s * NS_PER_S)
            for agg in self._aggregators.values():
                bar = agg.flush_due(cutoff)
                if bar is not None:
                    self._publish_bar(bar)

    def market_data_status(self) -> dict[str, str]:
        """Per instrument: live, delayed, frozen, or the subscription problem IB reported."""
        out: dict[str, str] = {}
        for iid in self._instruments:
            problem = self._data_problems.get(iid)
            out[str(iid)] = f"none ({problem})" if problem else self._data_type.get(iid, "unknown")
        return out

    # ------------------------------------------------------------------ health, metrics

    def health(self) -> Health:
        """Connected, IB reachable (no 1100), no competing session; market data type per instrument."""
        problems: list[str] = []
        if not self._started:
            problems.append("not started")
        if not self._connected:
            problems.append(f"not connected to IB Gateway {self.config.host}:{self.config.port}")
        if self._connectivity_lost:
            problems.append("IB Gateway lost its connection to IB (1100): reduce-only")
        if self._competing_session:
            problems.append("market data paused by a competing live session (10197)")
        md = self.market_data_status()
        delayed = sorted(k for k, v in md.items() if v.startswith("delayed"))
        info: dict[str, object] = {
            "connected": self._connected, "reconnect": self.reconnect_state,
            "connectivity_lost": self._connectivity_lost,
            "competing_session": self._competing_session, "market_data": md,
            "delayed_data": delayed, "pacing": self.pacer.stats(), "historical_pacing": self.hist_pacer.stats(),
            "order_id_mark": self.ids.reserved_below if self.ids is not None else None,
            "counts": dict(self.counts), "error_codes": {str(k): v for k, v in sorted(self.error_codes.items())},
            "held_fills": len(self._held), "contract_refresh": dict(self.last_contract_refresh),
        }
        return Health(not problems, "; ".join(problems), info)

    def metrics_snapshot(self) -> VenueMetricsSnapshot:
        """Connection state, reconnects, messages paced in the last minute vs the limit, error codes."""
        return VenueMetricsSnapshot(
            ws_reconnects={"tws_api": self.counts["reconnects"]},
            ws_connected={"tws_api": self._connected},
            weight_used_1m=self.pacer.sent_last_minute(),
            weight_limit_1m=int(self.pacer.rate_per_s * 60),
            error_answers={str(code): n for code, n in self.error_codes.items()},
        )

    # ------------------------------------------------------------------ orders

    def _refuse_if_read_only(self, request: str) -> None:
        if self.options.read_only:
            raise AuthError(self.name, f"{request} refused: read-only (monitor mode); nothing was sent")

    def _instrument(self, iid: InstrumentId) -> Instrument:
        inst = self._instruments.get(iid)
        if inst is None:
            raise OrderRejected(self.name, f"{iid} is not configured on {self.name}", "unknown_instrument")
        return inst

    def ib_order(self, req: OrderRequest, order_id: int) -> Any:
        """The ib_async Order for `req` (orderRef = the journaled client order id)."""
        if req.order_type is OrderType.LIMIT_MAKER:
            raise OrderRejected(self.name, f"order {req.client_order_id}: IB has no post-only limit order",
                                "unsupported")
        kw: dict[str, Any] = {
            "orderId": order_id, "action": req.side.value, "totalQuantity": float(req.quantity),
            "orderRef": req.client_order_id, "tif": req.time_in_force.value,  # GTC, IOC, FOK are IB's names too
            "outsideRth": self.config.outside_rth, "transmit": True,
        }
        if self.config.account:
            kw["account"] = self.config.account
        if req.order_type is OrderType.MARKET:
            kw["orderType"] = "MKT"
        else:
            if req.price is None:
                raise OrderRejected(self.name, f"limit order {req.client_order_id} needs a price", "no_price")
            kw["orderType"] = "LMT"
            kw["lmtPrice"] = float(req.price)
        return ib_async.Order(**kw)

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        """Place an order; returns IB's first answer (see the module docstring for the money rules)."""
        self._refuse_if_read_only("new_order")
        self._instrument(req.instrument_id)
        contract = self._ib_contracts[req.instrument_id]
        self.ib_order(req, 0)  # refuse what IB cannot take before anything is reserved
        self._ready()
        if self._connectivity_lost and not req.reduce_only:
            raise RetryableError(self.name, f"order {req.client_order_id}: IB Gateway lost IB (1100): reduce-only; "
                                            "nothing sent", str(ib_errors.CONNECTIVITY_LOST))
        await self.pacer.acquire()
        assert self.ids is not None
        loop = asyncio.get_running_loop()
        async with self._id_lock:
            ib = self._ready()
            oid, mark = self.ids.take(ib.client.getReqId())
            if mark is not None:
                try:
                    await asyncio.to_thread(self.ids.reserve_write, mark)
                except OSError as exc:
                    raise RetryableError(self.name, f"order id mark {self.ids.path} not written ({exc}); "
                                                    f"order {req.client_order_id} not sent") from None
            self.ids.commit(oid, mark)
            ib = self._ready()  # dropped while the mark was written: nothing sent
            ib.client.updateReqId(oid + 1)
            order = self.ib_order(req, oid)
            fut: asyncio.Future[VenueOrder] = loop.create_future()
            self._acks[oid] = fut
            # From here the request may have left: every failure is an unknown outcome.
            try:
                ib.placeOrder(contract, order)
            except Exception as exc:
                self._acks.pop(oid, None)
                self.counts["unknown_outcomes"] += 1
                raise UnknownOutcome(self.name, f"order {req.client_order_id} (id {oid}): {exc!r}") from None
        self.counts["orders_sent"] += 1
        try:
            return await wait_with_timeout(self.clock, self.config.request_timeout_s, fut)
        except TimeoutError:
            self.counts["unknown_outcomes"] += 1
            raise UnknownOutcome(self.name, f"order {req.client_order_id} (id {oid}): no answer within "
                                            f"{self.config.request_timeout_s} s") from None
        except UnknownOutcome:
            self.counts["unknown_outcomes"] += 1
            raise
        finally:
            self._acks.pop(oid, None)

    def _find_trade(self, cid: str) -> Any:
        ib = self.ib
        if ib is None:
            return None
        for trade in ib.wrapper.trades.values():
            if trade.order.orderRef == cid:
                return trade
        return None

    async def cancel_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        """Cancel by orderRef; returns the order as IB then shows it. Unknown or closed: OrderRejected."""
        self._refuse_if_read_only("cancel_order")
        self._instrument(instrument_id)
        trade = self._find_trade(client_order_id)
        if trade is None:
            await self.open_orders(instrument_id)  # binds open orders of earlier sessions to this one
            trade = self._find_trade(client_order_id)
        if trade is None or str(trade.orderStatus.status) in ("Filled", "Cancelled", "ApiCancelled", "Inactive"):
            vo = await self.query_order(instrument_id, client_order_id)
            if vo is None:
                raise OrderRejected(self.name, f"cancel of {client_order_id}: IB does not know the order", "unknown")
            if vo.status.is_terminal:
                raise OrderRejected(self.name, f"cancel of {client_order_id}: the order is {vo.status.value}",
                                    "not_open")
            trade = self._find_trade(client_order_id)
            if trade is None:
                raise RetryableError(self.name, f"cancel of {client_order_id}: the open order is not bound yet")
        oid = int(trade.order.orderId)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._cancels[oid] = fut
        try:
            await self.pacer.acquire()
            self._ready().cancelOrder(trade.order)
            with contextlib.suppress(TimeoutError):
                await wait_with_timeout(self.clock, self.config.request_timeout_s, fut)
        finally:
            self._cancels.pop(oid, None)
        vo = await self.query_order(instrument_id, client_order_id)
        if vo is None:
            raise RetryableError(self.name, f"cancel of {client_order_id} sent; the order is not visible")
        return vo

    async def cancel_all(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Cancel every open order of ours (one instrument, or all); returns them as IB then shows them."""
        self._refuse_if_read_only("cancel_all")
        out: list[VenueOrder] = []
        for vo in await self.open_orders(instrument_id):
            if not vo.client_order_id:
                continue
            try:
                out.append(await self.cancel_order(vo.instrument_id, vo.client_order_id))
            except OrderRejected as exc:
                log.info("ibkr_cancel_all_skipped", client_order_id=vo.client_order_id, reason=str(exc))
        return out

    async def _open_trades(self) -> list[Any]:
        return list(await self._request("open orders", lambda ib: ib.reqOpenOrdersAsync()))

    async def _completed_trades(self) -> list[Any]:
        return list(await self._request("completed orders", lambda ib: ib.reqCompletedOrdersAsync(True)))

    async def _executions(self) -> list[Any]:
        fills = list(await self._request("executions", lambda ib: ib.reqExecutionsAsync(
            ib_async.ExecutionFilter(clientId=self.config.client_id))))
        for f in fills:
            if self.ids is not None:
                self.ids.observe(int(f.execution.orderId or 0))
        return fills

    def _to_order(self, trade: Any) -> VenueOrder | None:
        iid = self._iid_of(trade.contract)
        if iid is None:
            return None
        if self.ids is not None:
            self.ids.observe(int(trade.order.orderId or 0))
        try:
            return trade_to_order(trade, iid, self.clock.time_ns(), self._rejects)
        except ParseError as exc:
            self.counts["parse_errors"] += 1
            raise VenueError(self.name, f"unreadable order: {exc}") from None

    async def query_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        """IB's view of an order by orderRef: open orders, completed orders, then executions; None if
        IB never saw it. Not connected: RetryableError (never None: None closes the order)."""
        self._instrument(instrument_id)
        for vo in (self._to_order(t) for t in await self._open_trades()):
            if vo is not None and vo.client_order_id == client_order_id:
                return vo
        completed = None
        for vo in (self._to_order(t) for t in await self._completed_trades()):
            if vo is not None and vo.client_order_id == client_order_id:
                completed = vo
        fills = self._first_revisions([f for f in await self._executions() if f.execution.orderRef == client_order_id])
        if fills:
            from_fills = self._order_from_fills(instrument_id, client_order_id, fills)
            if completed is None:
                return from_fills
            # A completed order carries neither its API order id nor its average price.
            return replace(completed, venue_order_id=from_fills.venue_order_id, avg_px=from_fills.avg_px,
                           filled_qty=max(completed.filled_qty, from_fills.filled_qty))
        if completed is not None:
            return completed
        trade = self._find_trade(client_order_id)
        if trade is not None and str(trade.orderStatus.status) not in ACK_PENDING:
            return self._to_order(trade)
        return None

    def _order_from_fills(self, iid: InstrumentId, cid: str, fills: list[Any]) -> VenueOrder:
        """An order IB lists only through its executions (e.g. completed orders not kept): FILLED as executed."""
        qty = sum((dec(f.execution.shares, "execution.shares") for f in fills), Decimal(0))
        notional = sum((dec(f.execution.shares, "execution.shares") * dec(f.execution.price, "execution.price")
                        for f in fills), Decimal(0))
        first = fills[0].execution
        vf = execution_to_fill(first, iid, None, self._instruments[iid].quote_asset)
        trade = self._find_trade(cid)
        order_type, total, price = OrderType.MARKET, qty, None
        if trade is not None:
            vo = self._to_order(trade)
            if vo is not None:
                order_type, total, price = vo.order_type, vo.quantity, vo.price
        status = OrderStatus.FILLED if qty >= total else OrderStatus.PARTIALLY_FILLED
        return VenueOrder(client_order_id=cid, venue_order_id=vf.venue_order_id, instrument_id=iid, side=vf.side,
                          order_type=order_type, status=status, quantity=total, filled_qty=qty,
                          avg_px=(notional / qty) if qty else None, price=price, ts_ns=self.clock.time_ns())

    async def open_orders(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Open orders at IB (of one instrument, or of every configured one)."""
        out: list[VenueOrder] = []
        for trade in await self._open_trades():
            vo = self._to_order(trade)
            if vo is None or vo.status not in OPEN_STATUSES:
                continue
            if instrument_id is None or vo.instrument_id == instrument_id:
                out.append(vo)
        return out

    async def fills_since(self, instrument_id: InstrumentId, since_ts_ns: int) -> list[VenueFill]:
        """Executions of this client id at or after `since_ts_ns`, oldest first, with their commissions.

        IB lists the executions of the current day (TWS/Gateway setting: up to 7 days). IB stamps
        an execution in whole seconds: `since_ts_ns` is taken from the start of its second, or an
        execution made after it in the same second would be missed (found by the chaos storm: a
        fill right after the journal's baseline was never booked); reading early is safe, the
        reconciler de-duplicates fills by execId."""
        self._instrument(instrument_id)
        since_ts_ns -= since_ts_ns % NS_PER_S
        fills = [f for f in await self._executions() if self._iid_of(f.contract) == instrument_id]
        ib = self.ib
        stored = ib.wrapper.fills if ib is not None else {}
        await self._await_commissions([f.execution.execId for f in fills], stored)
        quote = self._instruments[instrument_id].quote_asset
        by_exec: dict[str, list[tuple[int, VenueFill]]] = {}
        for f in fills:
            known = stored.get(f.execution.execId, f)
            try:
                vf = execution_to_fill(f.execution, instrument_id, commission_of(known.commissionReport), quote)
            except ParseError as exc:
                self.counts["parse_errors"] += 1
                raise VenueError(self.name, f"unreadable execution: {exc}") from None
            base, rev = exec_revision(vf.trade_id)
            by_exec.setdefault(base, []).append((rev, vf))
        # One fill per execution, under its first revision's id; a correction is compared
        # with what was booked (here, or the lowest revision listed) and never booked itself.
        out: list[VenueFill] = []
        for base, revisions in by_exec.items():
            revisions.sort(key=lambda rv: rv[0])
            listed = {vf.trade_id: vf for _, vf in revisions}
            known = self._booked.get(base)
            booked_id = known[0] if known is not None else revisions[0][1].trade_id
            booked = listed.get(booked_id)  # as listed now: with its commission
            if booked is not None:
                fill = replace(booked, trade_id=canonical_exec_id(booked_id))
            else:  # booked here before, no longer listed (known is set: booked_id came from it)
                assert known is not None
                fill = known[1]
            _remember(self._booked, base, (booked_id, fill))
            for _, vf in revisions:
                if vf.trade_id != booked_id:
                    self._on_correction(fill, vf)
            if fill.ts_ns >= since_ts_ns:
                out.append(fill)
        out.sort(key=lambda v: (v.ts_ns, v.trade_id))
        return out

    async def _await_commissions(self, exec_ids: list[str], stored: Any) -> None:
        """Wait (at most commission_wait_s) until every listed execution has its commission."""
        deadline = self.clock.monotonic() + self.config.commission_wait_s

        def missing() -> bool:
            for e in exec_ids:
                f = stored.get(e)
                if f is None or commission_of(f.commissionReport) is None:
                    return True
            return False

        while missing():
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return
            self._commission_seen.clear()
            with contextlib.suppress(TimeoutError):
                await wait_with_timeout(self.clock, left, self._commission_seen.wait())

    async def balances(self) -> dict[str, Balance]:
        """Cash by currency (account values CashBalance; the BASE aggregate left out).

        TWS pushes account values only every few minutes: the account subscription is asked
        again first (`reqAccountUpdates`), which answers with every value as of now."""
        ib = self._ready()
        acct = self.config.account or next(iter(ib.wrapper.accounts or []), "")
        if acct:
            await self._request("account values", lambda ib: ib.reqAccountUpdatesAsync(acct))
            ib = self._ready()
        out: dict[str, Balance] = {}
        for v in ib.accountValues(acct) if acct else ib.accountValues():
            if v.tag == "CashBalance" and v.currency and v.currency != "BASE":
                try:
                    out[v.currency] = Balance(v.currency, dec(v.value, f"CashBalance {v.currency}"), Decimal(0))
                except ParseError as exc:
                    raise VenueError(self.name, f"unreadable account value: {exc}") from None
        return out

    async def positions(self) -> dict[InstrumentId, Decimal]:
        """Net positions of the configured instruments (shares, contracts, base currency units)."""
        rows = await self._request("positions", lambda ib: ib.reqPositionsAsync())
        out: dict[InstrumentId, Decimal] = {}
        for p in rows:
            if self.config.account and p.account != self.config.account:
                continue
            iid = self._iid_of(p.contract)
            if iid is None:
                continue
            try:
                qty = dec(p.position, f"position of {iid}")
            except ParseError as exc:
                raise VenueError(self.name, f"unreadable position: {exc}") from None
            out[iid] = out.get(iid, Decimal(0)) + qty
        return {k: v for k, v in out.items() if v != 0}

    # ------------------------------------------------------------------ history

    async def history_bars(self, instrument_id: InstrumentId, interval_s: int, n_bars: int) -> BarArrays:
        """The last `n_bars` closed bars of `interval_s` (reqHistoricalData in chunks, newest first, paced)."""
        size = BAR_SIZES.get(interval_s)
        if size is None:
            raise ValueError(f"IB has no {interval_s} s historical bars; it has {sorted(BAR_SIZES)}")
        inst = self._instrument(instrument_id)
        contract = self._ib_contracts[instrument_id]
        what = "MIDPOINT" if inst.kind.value == "fx" else "TRADES"
        end: dt.datetime | str = ""
        by_ts: dict[int, Bar] = {}
        now_ns = self.clock.time_ns()
        empty_s = 0  # seconds of consecutive empty chunks (weekend, holiday)
        for _ in range(HIST_MAX_REQUESTS):
            if len(by_ts) >= n_bars:
                break
            chunk_s, duration = history_chunk(interval_s, n_bars - len(by_ts), empty_s)
            key = (contract.conId, str(end), duration, size, what)
            await self.hist_pacer.acquire(key, contract.conId)
            try:
                rows = await self._request(
                    f"historical bars of {instrument_id}",
                    lambda ib, e=end, d=duration: ib.reqHistoricalDataAsync(contract, e, d, size, what,
                                                                not self.config.outside_rth, 2, False, [], 0))
            except VenueError as exc:
                if exc.code == str(ib_errors.HISTORICAL_SERVICE) and "pacing" in str(exc).lower():
                    continue  # the violation set the pacer's backoff; this chunk is asked again
                if exc.code == str(ib_errors.HISTORICAL_SERVICE):
                    rows = []  # "HMDS query returned no data"
                else:
                    raise
            oldest: dt.datetime | None = None
            new = 0
            for r in rows:
                when = r.date if isinstance(r.date, dt.datetime) else dt.datetime.combine(
                    r.date, dt.time(), tzinfo=dt.UTC)
                ts = time_ns(when if when.tzinfo else when.replace(tzinfo=dt.UTC), "historical bar date")
                if ts + interval_s * NS_PER_S > now_ns:
                    continue  # the bar in progress is not closed
                if ts not in by_ts:
                    new += 1
                by_ts[ts] = Bar(ts_event_ns=ts, ts_init_ns=now_ns, instrument_id=instrument_id,
                                interval_s=interval_s, open=float(r.open), high=float(r.high), low=float(r.low),
                                close=float(r.close), volume=max(0.0, float(r.volume)))
                oldest = when if oldest is None or when < oldest else oldest
            if oldest is None:
                empty_s += chunk_s
                if empty_s >= HIST_EMPTY_S:
                    break
                base = end if isinstance(end, dt.datetime) else dt.datetime.fromtimestamp(now_ns / NS_PER_S, dt.UTC)
                end = base - dt.timedelta(seconds=chunk_s)
                continue
            empty_s = 0
            if new == 0:
                break
            end = oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC)
        ordered = [by_ts[k] for k in sorted(by_ts)][-n_bars:]
        return bars_to_arrays(ordered, interval_s, f"{self.name}:{instrument_id.symbol}:historical")


def history_chunk(interval_s: int, missing_bars: int, empty_s: int) -> tuple[int, str]:
    """(seconds, IB durationStr) of the next historical request: about twice the span of the
    bars still missing (IB answers a short request faster, and its pacing counts requests,
    not bars), at least 10 bars, at most a day of intraday bars (`N S` stops at 86400); after
    empty chunks (a weekend) the chunk grows to cross them."""
    if interval_s >= 86400:
        days = min(365, max(10, 2 * missing_bars * interval_s // 86400))
        return days * 86400, f"{days} D"
    want = max(interval_s * 10, 2 * missing_bars * interval_s, empty_s)
    secs = min(86400, want)
    return secs, f"{secs} S"


def _remember(memory: dict[Any, Any], key: Any, value: Any) -> None:
    """Insert (or refresh) `key`; past EXEC_MEMORY entries the oldest is forgotten."""
    memory.pop(key, None)
    memory[key] = value
    if len(memory) > EXEC_MEMORY:
        del memory[next(iter(memory))]


def _positive(x: Any) -> bool:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return False
    return f > 0 and f == f and f != float("inf")


__all__ = ["IbkrOptions", "IbkrVenue"]
