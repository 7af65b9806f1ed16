"""`IbkrEmulator`: a TWS / IB Gateway API socket server on loopback (the subset ib_async uses).

One asyncio server; one `ApiSession` per connection. Each session negotiates a server
version (the highest both sides speak, within SERVER_VERSION_MIN..SERVER_VERSION_MAX),
waits for startApi, answers managedAccounts + nextValidId and the farm-status notices
(2104, 2106, 2158), then serves requests. Market data, real-time bars, tick-by-tick and
keep-up-to-date historical bars are pushed at every market step: a background task
sleeping `tick_interval_s` on the injected clock (tests drive a ManualClock, or call
`step()`).

Market time may run faster than the clock (`market_time_scale`): quotes, fill prices, bars
and ticks follow `market_ns(clock)`; server time, order and execution times, the contract
details' calendar and order matching's session checks follow the clock. `always_open`
gives every contract a session around the clock, every day (market.ALWAYS_OPEN).

Damage: a frame whose length exceeds the API's 16 MiB limit, or a handshake that is not
`API\\0` + a version range, closes that connection (logged); a request that cannot be read
(missing or malformed fields, not UTF-8) is answered with error 320 and an unknown message
id with error 505; the connection and every other one keep being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from nautilus_hmm.core.clock import Clock
from nautilus_hmm.venues.emulator_common import OrderWaiter, ping_pong_samples
from nautilus_hmm.venues.ibkr.emulator import engine as eng
from nautilus_hmm.venues.ibkr.emulator.control import Faults
from nautilus_hmm.venues.ibkr.emulator.market import (
    NS_PER_S,
    ContractSpec,
    Market,
    Quote,
    default_contracts,
    hours_text,
    is_open,
    last_session_end_ns,
    local_date,
    session_at,
    sessions_between,
)
from nautilus_hmm.venues.ibkr.emulator.market import always_open as always_open_contracts
from nautilus_hmm.venues.ibkr.emulator.protocol import (
    MAX_MSG_BYTES,
    UNSET_DOUBLE,
    ContractQuery,
    Fields,
    ProtocolError,
    encode,
    parse_version_range,
    read_contract,
    read_place_order,
    split_fields,
)

log = structlog.get_logger("venues.ibkr.emulator")

SERVER_VERSION_MIN = 157  # below: the field layouts ib_async 2.1.0 reads are not produced
SERVER_VERSION_MAX = 178
MAX_UNREAD_BYTES = 16 * 1024 * 1024
ACCOUNT_PUSH_S = 180  # TWS sends changed account values to reqAccountUpdates every 3 minutes
ACCOUNT = eng.ACCOUNT

# Error texts (TWS API message codes).
MSG = {
    162: "Historical Market Data Service error message:",
    200: "No security definition has been found for the request",
    320: "Server error when reading an API client request.",
    321: "Error validating request.",
    322: "Server error when processing an API client request.",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    354: "Requested market data is not subscribed.",
    420: "Invalid Real-time Query:",
    504: "Not connected",
    505: "Fatal Error: Unknown message id.",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10089: "Requested market data requires additional subscription for API.",
    10167: "Requested market data is not subscribed. Displaying delayed market data.",
    10197: "No market data during competing live session",
}

# Live / delayed tick types (bid, ask, last; sizes; volume; close).
LIVE_TICKS = {"bid": 1, "ask": 2, "last": 4, "volume": 8, "close": 9}
DELAYED_TICKS = {"bid": 66, "ask": 67, "last": 68, "volume": 74, "close": 75}
DELAY_NS = 15 * 60 * NS_PER_S  # delayed data is the market 15 minutes ago

BAR_SIZES_S = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30, "1 min": 60, "2 mins": 120,
    "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900, "20 mins": 1200, "30 mins": 1800,
    "1 hour": 3600, "2 hours": 7200, "3 hours": 10800, "4 hours": 14400, "8 hours": 28800, "1 day": 86400,
}
DURATION_UNITS_S = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
MAX_HISTORICAL_BARS = 10_000  # one request; IB's own per-bar-size duration limits are tighter
# Historical data pacing (IB's documented rules, applied to every bar size here): no identical
# request within 15 s, at most 6 requests for one contract and data type within 2 s, at most
# 60 requests within 10 minutes. A violation is error 162.
PACING_IDENTICAL_S = 15
PACING_BURST = (6, 2)
PACING_WINDOW = (60, 600)


class _Closed(Exception):
    """The connection must close (a broken stream or a refused client)."""


@dataclass(slots=True)
class _MktSub:
    spec: ContractSpec
    delayed: bool
    last: tuple[Any, ...] = ()


@dataclass(slots=True)
class _BarSub:
    spec: ContractSpec
    what: str
    use_rth: bool
    next_start_ns: int


@dataclass(slots=True)
class _TbtSub:
    spec: ContractSpec
    kind: str
    last: tuple[Any, ...] = ()


@dataclass(slots=True)
class _HistSub:
    spec: ContractSpec
    bar_s: int
    what: str
    use_rth: bool
    format_date: int


@dataclass(slots=True)
class ApiSession:
    """One API connection."""

    conn_id: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    emu: IbkrEmulator
    server_version: int = 0
    client_id: int | None = None
    market_data_type: int = 1
    positions_sub: bool = False
    account_sub: bool = False
    mkt: dict[int, _MktSub] = field(default_factory=dict)
    rt_bars: dict[int, _BarSub] = field(default_factory=dict)
    tbt: dict[int, _TbtSub] = field(default_factory=dict)
    hist: dict[int, _HistSub] = field(default_factory=dict)
    closed: bool = False
    messages_in: int = 0
    bytes_out: int = 0  # written to the client (a test waits until the client has read them)

    def send(self, *fields: object) -> None:
        """Write one message (dropped once the connection is closing). A client that stops reading
        while more than MAX_UNREAD_BYTES wait for it is cut (logged): the server never buffers
        without bound."""
        if self.closed or self.writer.is_closing():
            return
        data = encode(*fields)
        self.writer.write(data)
        self.bytes_out += len(data)
        if self.writer.transport.get_write_buffer_size() > MAX_UNREAD_BYTES:
            log.warning("ibkr_emulator_slow_client_cut", conn=self.conn_id, client_id=self.client_id,
                        unread_bytes=self.writer.transport.get_write_buffer_size())
            self.abort()

    def error(self, req_id: int, code: int, text: str | None = None) -> None:
        """errMsg (id 4): reqId, code, text (+ advancedOrderRejectJson from version 166)."""
        msg = text if text is not None else MSG.get(code, "")
        if self.server_version >= 166:
            self.send(4, 2, req_id, code, msg, "")
        else:
            self.send(4, 2, req_id, code, msg)

    def abort(self) -> None:
        """Cut the connection now (no more messages)."""
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


class IbkrEmulator:
    """The emulator: listener, sessions, market, engine and faults. See the package docstring."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, seed: int = 7, clock: Clock,
                 contracts: tuple[ContractSpec, ...] | None = None, tick_interval_s: float = 1.0,
                 server_version_max: int = SERVER_VERSION_MAX, unsubscribed: tuple[str, ...] = (),
                 start_cash_usd: Decimal = Decimal(1_000_000), daily_restart_at: str | None = None,
                 daily_restart_refuse_s: float = 60.0, market_time_scale: float = 1.0,
                 always_open: bool = False) -> None:
        if not (math.isfinite(market_time_scale) and market_time_scale > 0):
            raise ValueError(f"market_time_scale must be a finite number > 0, got {market_time_scale!r}")
        self.host = host
        self.port = port
        self.seed = seed
        self.clock = clock
        contracts = contracts or default_contracts()
        self.contracts = always_open_contracts(contracts) if always_open else contracts
        self.always_open = always_open
        self.tick_interval_s = tick_interval_s
        self.server_version_max = min(server_version_max, SERVER_VERSION_MAX)
        # Market time (quotes, prices of fills, real-time bars, ticks, historical bars, and the
        # sessions of what is sent) may run faster than the wall clock: a 5 s bar closes every
        # 5/scale s. Server time, order and execution times, the contract details' calendar
        # and order matching's session checks stay on the clock.
        self.market_time_scale = market_time_scale
        self.market_start_ns = clock.time_ns()
        self.market = Market(seed, self.contracts)
        fx = tuple(c for c in self.contracts if c.sec_type == "CASH")
        self.engine = eng.Engine(quote_of=self._quote_at_clock, fx_specs=fx, cash={"USD": start_cash_usd})
        self.faults = Faults()
        self.live_data: dict[str, bool] = {c.data_key: c.data_key not in unsubscribed for c in self.contracts}
        self.sessions: dict[int, ApiSession] = {}
        self.listening = asyncio.Event()
        self.errors_logged = 0
        self._conn_seq = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._market_task: asyncio.Task[None] | None = None
        self._held_commissions: list[eng.Execution] = []
        self._hist_log: list[tuple[float, tuple[Any, ...], tuple[int, str]]] = []
        self._restart_task: asyncio.Task[None] | None = None
        self._lost_backlog: list[eng.Event] = []
        self._order_waiter: asyncio.Future[tuple[str, int]] | None = None
        # every placeOrder that arrived, in order, with its outcome (code None: accepted): the audit trail
        self.order_requests: list[dict[str, Any]] = []
        self.orders_held = 0  # placeOrders received and waiting out `order_delay_ms`
        self.daily_restart_at = _parse_hhmm(daily_restart_at) if daily_restart_at else None
        self.daily_restart_refuse_s = daily_restart_refuse_s
        self.restarts = 0
        self._last_step_ns = clock.time_ns()
        self._account_dirty = False
        self._account_pushed_ns = 0
        self._order_waiter_side: str | None = None

    def market_ns(self, clock_ns: int) -> int:
        """Market time at clock time `clock_ns` (see `market_time_scale`; the same with scale 1)."""
        if self.market_time_scale == 1.0:
            return clock_ns
        return self.market_start_ns + int((clock_ns - self.market_start_ns) * self.market_time_scale)

    def _quote_at_clock(self, spec: ContractSpec, clock_ns: int) -> Quote:
        """The engine's market (it runs on the clock): the quote at that instant's market time."""
        return self.market.quote(spec, self.market_ns(clock_ns))

    # --- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (port 0 takes a free port, then kept for restarts) and start the market task."""
        await self._listen()
        self._market_task = asyncio.get_running_loop().create_task(self._market_loop(), name="ibkr-emu-market")

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self.listening.set()

    async def _unlisten(self) -> None:
        self.listening.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def close(self) -> None:
        """Stop listening, cut every connection and stop the tasks."""
        await self._unlisten()
        for s in list(self.sessions.values()):
            s.abort()
        tasks = [t for t in (self._market_task, self._restart_task) if t is not None] + list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()

    stop = close  # the emulator_common serve-until-signal shape

    async def _market_loop(self) -> None:
        while True:
            await self.clock.sleep(self.tick_interval_s)
            try:
                self.step()
            except Exception:  # one bad step must not end the market
                log.exception("ibkr_emulator_step_failed")

    # --- connections -----------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        session = ApiSession(next(self._conn_seq), reader, writer, self)
        self.sessions[session.conn_id] = session
        peer = writer.get_extra_info("peername")
        try:
            await self._handshake(session)
            while True:
                payload = await self._read_frame(session, mid_handshake=False)
                if payload is None:
                    break
                if self.faults.order_delay_ms and payload.startswith(b"3\0"):  # placeOrder (fault)
                    self.orders_held += 1
                    try:
                        await self.clock.sleep(self.faults.order_delay_ms / 1000)
                    finally:
                        self.orders_held -= 1
                self._handle(session, payload)
                await writer.drain()
        except _Closed as exc:
            log.warning("ibkr_emulator_connection_closed", conn=session.conn_id, peer=peer, reason=str(exc))
        except (ConnectionError, OSError) as exc:
            log.info("ibkr_emulator_connection_lost", conn=session.conn_id, error=str(exc))
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug outside the request handlers must not take the listener down
            self.errors_logged += 1
            log.exception("ibkr_emulator_session_failed", conn=session.conn_id)
        finally:
            session.closed = True
            self.sessions.pop(session.conn_id, None)
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _read_frame(self, session: ApiSession, *, mid_handshake: bool) -> bytes | None:
        """One length-prefixed body; None at a clean EOF between messages."""
        try:
            head = await session.reader.readexactly(4)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                log.warning("ibkr_emulator_client_closed_mid_message", conn=session.conn_id,
                            got_bytes=len(exc.partial))
            return None
        (length,) = struct.unpack(">I", head)
        if length > MAX_MSG_BYTES:
            raise _Closed(f"frame length {length} exceeds {MAX_MSG_BYTES} (a broken stream)")
        try:
            return await session.reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            log.warning("ibkr_emulator_client_closed_mid_message", conn=session.conn_id, expected_bytes=length,
                        got_bytes=len(exc.partial), during="handshake" if mid_handshake else "request")
            return None

    async def _handshake(self, s: ApiSession) -> None:
        try:
            prefix = await s.reader.readexactly(4)
        except asyncio.IncompleteReadError as exc:
            raise _Closed(f"closed before the handshake ({len(exc.partial)} bytes)") from None
        if prefix != b"API\0":
            raise _Closed(f"handshake must start with b'API\\x00', got {prefix!r}")
        body = await self._read_frame(s, mid_handshake=True)
        if body is None:
            raise _Closed("closed during the handshake")
        try:
            lo, hi, options = parse_version_range(body)
        except ProtocolError as exc:
            raise _Closed(f"handshake: {exc}") from None
        version = min(hi, self.server_version_max)
        if version < max(lo, SERVER_VERSION_MIN):
            raise _Closed(f"no common server version: client v{lo}..{hi}, emulator "
                          f"v{SERVER_VERSION_MIN}..{self.server_version_max}")
        s.server_version = version
        now = datetime.fromtimestamp(self.clock.time_ns() / NS_PER_S, UTC)
        s.send(version, f"{now:%Y%m%d %H:%M:%S} UTC")
        log.info("ibkr_emulator_handshake", conn=s.conn_id, server_version=version, options=options or None)

    # --- dispatch --------------------------------------------------------------------------

    def _handle(self, s: ApiSession, payload: bytes) -> None:
        s.messages_in += 1
        try:
            fields = split_fields(payload)
        except ProtocolError as exc:
            log.warning("ibkr_emulator_bad_frame", conn=s.conn_id, error=str(exc))
            s.error(-1, 320, f"{MSG[320]} {exc}")
            return
        try:
            msg_id = int(fields[0])
        except ValueError:
            log.warning("ibkr_emulator_bad_message_id", conn=s.conn_id, field=fields[0][:40])
            s.error(-1, 320, f"{MSG[320]} message id is not an integer: {fields[0][:40]!r}")
            return
        if s.client_id is None and msg_id != 71:
            s.error(-1, 504, f"{MSG[504]}: send startApi first (message {msg_id})")
            return
        handler = self._handlers.get(msg_id)
        if handler is None:
            log.warning("ibkr_emulator_unknown_message", conn=s.conn_id, msg_id=msg_id)
            s.error(-1, 505, f"{MSG[505]} ({msg_id})")
            return
        try:
            handler(self, s, fields)
        except ProtocolError as exc:
            log.warning("ibkr_emulator_bad_request", conn=s.conn_id, msg_id=msg_id, error=str(exc))
            s.error(_req_id_guess(msg_id, fields), 320, f"{MSG[320]} {exc}")
        except Exception as exc:  # an emulator bug on one request: answer 322, keep serving
            self.errors_logged += 1
            log.exception("ibkr_emulator_request_failed", conn=s.conn_id, msg_id=msg_id)
            s.error(_req_id_guess(msg_id, fields), 322, f"{MSG[322]} {type(exc).__name__}: {exc}")

    # --- start-up --------------------------------------------------------------------------

    def _start_api(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "startApi")
        f.str("msgId")
        f.str("version")
        client_id = f.int("clientId")
        if s.client_id is not None:
            s.error(-1, 321, f"{MSG[321]} startApi sent twice")
            return
        if any(o.client_id == client_id for o in self.sessions.values() if o is not s and not o.closed):
            s.error(-1, 326)
            log.warning("ibkr_emulator_client_id_in_use", conn=s.conn_id, client_id=client_id)
            s.closed = True
            with contextlib.suppress(Exception):
                s.writer.close()
            return
        s.client_id = client_id
        s.send(15, 1, ACCOUNT)
        s.send(9, 1, self.engine.next_valid_id(client_id))
        for code in (2104, 2106, 2158):
            s.error(-1, code)
        log.info("ibkr_emulator_api_started", conn=s.conn_id, client_id=client_id)

    # --- contracts -------------------------------------------------------------------------

    def resolve(self, q: ContractQuery, *, include_expired: bool = False) -> list[ContractSpec]:
        """The listed contracts matching a request's contract fields."""
        today = local_date(self.contracts[0], self.clock.time_ns()).strftime("%Y%m%d")
        if q.con_id:
            return [c for c in self.contracts if c.con_id == q.con_id]
        out = []
        for c in self.contracts:
            if q.symbol and q.symbol.upper() != c.symbol:
                continue
            if not q.symbol and (not q.local_symbol or q.local_symbol.upper() != c.local_symbol):
                continue
            if q.local_symbol and q.local_symbol.upper() != c.local_symbol:
                continue
            if q.sec_type and q.sec_type.upper() != c.sec_type:
                continue
            if q.currency and q.currency.upper() != c.currency:
                continue
            if q.exchange and q.exchange.upper() not in {c.exchange, c.primary_exchange,
                                                         *c.valid_exchanges.split(",")}:
                continue
            if q.primary_exchange and c.primary_exchange and q.primary_exchange.upper() != c.primary_exchange:
                continue
            if q.last_trade_date and not c.last_trade_date.startswith(q.last_trade_date):
                continue
            if q.trading_class and q.trading_class.upper() != c.trading_class:
                continue
            if q.multiplier and c.sec_type == "FUT" and _num(q.multiplier) != c.multiplier:
                continue
            if c.last_trade_date and c.last_trade_date < today and not include_expired:
                continue
            out.append(c)
        return out

    def _contract_details(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqContractDetails")
        f.str("msgId")
        f.str("version")
        req_id = f.int("reqId")
        q = read_contract(f)
        include_expired = f.bool("includeExpired")
        f.str("secIdType")
        f.str("secId")
        if s.server_version >= 176:
            f.str("issuerId")
        found = self.resolve(q, include_expired=include_expired)
        if not found:
            s.error(req_id, 200)
            return
        now = self.clock.time_ns()
        for c in found:
            self._send_details(s, req_id, c, now)
        s.send(52, 1, req_id)

    def _send_details(self, s: ApiSession, req_id: int, c: ContractSpec, now_ns: int) -> None:
        v = s.server_version
        head: list[object] = [10] + ([8] if v < 164 else []) + [
            req_id, c.symbol, c.sec_type, c.last_trade_date, "0", "", c.exchange, c.currency, c.local_symbol,
            c.trading_class, c.trading_class, c.con_id, c.min_tick]
        if v < 164:
            head.append(1)  # mdSizeMultiplier (obsolete)
        head += [c.multiplier_text, c.order_types, c.valid_exchanges, 1, 0, c.long_name, c.primary_exchange,
                 c.contract_month, c.industry, c.category, "", c.time_zone_id,
                 hours_text(c, now_ns, liquid=False), hours_text(c, now_ns, liquid=True), "", "", 0,
                 "1" if c.sec_type != "CASH" else "4", "", "", c.market_rule_ids, c.last_trade_date, c.stock_type]
        if v == 163:
            head.append(c.suggested_size_increment)
        if v >= 164:
            head += [c.min_size, c.size_increment, c.suggested_size_increment]
        s.send(*head)

    def _resolve_one(self, s: ApiSession, req_id: int, q: ContractQuery) -> ContractSpec | None:
        found = self.resolve(q)
        if len(found) != 1:
            s.error(req_id, 200, MSG[200] if not found else
                    f"{MSG[200]} (ambiguous: {', '.join(c.local_symbol for c in found)})")
            return None
        return found[0]

    # --- orders ----------------------------------------------------------------------------

    def _place_order(self, s: ApiSession, fields: list[str]) -> None:
        assert s.client_id is not None
        try:
            po = read_place_order(fields, s.server_version)
        except ProtocolError as exc:
            oid = _int_or(fields[1] if len(fields) > 1 else "", -1)
            s.error(oid, 321, f"{MSG[321]} {exc}")
            self.order_requests.append({"client_order_id": None, "order_id": oid, "client_id": s.client_id,
                                        "kind": "unreadable", "code": 321})
            return
        waiter = self._order_waiter
        if waiter is not None and not waiter.done() and self._order_waiter_side in (None, po.action):
            waiter.set_result((po.order_ref, time.perf_counter_ns()))
        existing = self.engine.orders.get((s.client_id, po.order_id))
        kind = "modify" if existing is not None and not existing.done else "new"
        code = self._place(s, po)
        self.order_requests.append({"client_order_id": po.order_ref, "order_id": po.order_id,
                                    "client_id": s.client_id, "kind": kind, "code": code})

    def _place(self, s: ApiSession, po: Any) -> int | None:
        """Accept `po` (None) or refuse it with an errMsg (its code)."""
        assert s.client_id is not None
        spec = self._resolve_one(s, po.order_id, po.contract)
        if spec is None:
            return 200
        if po.what_if or not po.transmit:
            s.error(po.order_id, 201, "Order rejected - reason:what-if and untransmitted orders are not "
                                      "supported by the emulator")
            return 201
        if po.total_qty is None:
            s.error(po.order_id, 201, "Order rejected - reason:the order has no quantity")
            return 201
        req = eng.OrderRequest(action=po.action, total_qty=po.total_qty, order_type=po.order_type,
                               lmt_price=po.lmt_price, tif=po.tif or "DAY", account=po.account,
                               order_ref=po.order_ref, outside_rth=po.outside_rth)
        if po.account and po.account != ACCOUNT:
            s.error(po.order_id, 201, f"Order rejected - reason:account {po.account!r} is not managed here")
            return 201
        now = self.clock.time_ns()
        try:
            events = self.engine.place(s.client_id, po.order_id, spec, req, now,
                                       can_trade=not self.faults.connectivity_lost)
        except eng.OrderError as exc:
            s.error(po.order_id, exc.code, exc.text)
            return exc.code
        if self.faults.take("drop_next_orders"):
            log.warning("ibkr_emulator_fault_drop_mid_order", conn=s.conn_id, order_id=po.order_id)
            s.abort()
            self._after_events(events, skip_client=s.client_id)
            return None
        self._dispatch(events)
        return None

    def _cancel_order(self, s: ApiSession, fields: list[str]) -> None:
        assert s.client_id is not None
        f = Fields(fields, "cancelOrder")
        f.str("msgId")
        f.str("version")
        order_id = f.int("orderId")
        if s.server_version >= 169:
            f.str("manualCancelOrderTime")
        try:
            events = self.engine.cancel(s.client_id, order_id, self.clock.time_ns())
        except eng.OrderError as exc:
            s.error(order_id, exc.code, exc.text)
            return
        self._dispatch(events)

    def _global_cancel(self, s: ApiSession, fields: list[str]) -> None:
        del s, fields
        self._dispatch(self.engine.cancel_all(self.clock.time_ns()))

    def _open_orders(self, s: ApiSession, fields: list[str], *, all_clients: bool = False) -> None:
        del fields
        for o in self.engine.open_orders(None if all_clients else s.client_id):
            self._send_open_order(s, o)
            self._send_order_status(s, o, withhold=False)
        s.send(53, 1)

    def _all_open_orders(self, s: ApiSession, fields: list[str]) -> None:
        self._open_orders(s, fields, all_clients=True)

    def _completed_orders(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqCompletedOrders")
        f.str("msgId")
        f.str("apiOnly")
        for o in self.engine.completed_orders():
            self._send_completed_order(s, o)
        s.send(102)

    def _send_completed_order(self, s: ApiSession, o: eng.EmuOrder) -> None:
        """completedOrder (101) as ib_async's Decoder.completedOrder reads it (no orderId, no clientId:
        a completed order is known by permId and orderRef)."""
        c = o.spec
        v = s.server_version
        lmt = o.lmt_price if o.lmt_price is not None else UNSET_DOUBLE
        done = datetime.fromtimestamp((o.done_ns or o.created_ns) / NS_PER_S, UTC)
        f: list[object] = [
            101, c.con_id, c.symbol, c.sec_type, c.last_trade_date, "0", "", c.multiplier_text, c.exchange,
            c.currency, c.local_symbol, c.trading_class,
            o.action, o.total_qty, o.order_type, lmt, UNSET_DOUBLE, o.tif, "", o.account, "O", 0, o.order_ref,
            o.perm_id, o.outside_rth, False, 0, "", "", "", ""]
        if v < 177:
            f.append("")  # faProfile
        f += ["", "", "", UNSET_DOUBLE, "", 0, "", -1, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,
              UNSET_DOUBLE, "", False, False, "", 0, 0, UNSET_DOUBLE, "", "", UNSET_DOUBLE,
              False, "", UNSET_DOUBLE, UNSET_DOUBLE, "",  # continuousUpdate .. comboLegsDescrip
              0, 0, 0,  # combo legs, order combo legs, smart combo routing params
              "", "", "",  # scale init/subs level size, price increment
              "",  # hedgeType
              "", "", False, False,  # clearingAccount, clearingIntent, notHeld, delta-neutral contract
              "",  # algoStrategy
              False, o.status, False, False,  # solicited, status, randomizeSize, randomizePrice
              0,  # conditions
              UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, False, False, "", o.filled, 0, False, "", False, False, 0,
              f"{done:%Y%m%d %H:%M:%S} UTC", o.done_reason]
        if v >= 170:
            f += ["", "", UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE]
        s.send(*f)

    def _req_ids(self, s: ApiSession, fields: list[str]) -> None:
        del fields
        assert s.client_id is not None
        s.send(9, 1, self.engine.next_valid_id(s.client_id))

    def _send_open_order(self, s: ApiSession, o: eng.EmuOrder) -> None:
        c = o.spec
        v = s.server_version
        lmt = o.lmt_price if o.lmt_price is not None else UNSET_DOUBLE
        f: list[object] = [
            5, o.order_id, c.con_id, c.symbol, c.sec_type, c.last_trade_date, "0", "", c.multiplier_text, c.exchange,
            c.currency, c.local_symbol, c.trading_class,
            o.action, o.total_qty, o.order_type, lmt, 0.0 if o.order_type == "LMT" else UNSET_DOUBLE, o.tif, "",
            o.account, "O", 0, o.order_ref, o.client_id, o.perm_id, o.outside_rth, False, 0, "", "", "", "", ""]
        if v < 177:
            f.append("")  # faProfile
        f += ["", "", "", UNSET_DOUBLE, "", 0, "", -1, 0, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE,
              UNSET_DOUBLE, "", False, False, False, "", 3, False, False, UNSET_DOUBLE, 0, 0, UNSET_DOUBLE, "", "",
              UNSET_DOUBLE]
        f += [False, "", UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, "", "",  # continuousUpdate .. comboLegsDescrip
              0, 0, 0,  # combo legs, order combo legs, smart combo routing params
              "", "", UNSET_DOUBLE,  # scale init/subs level size, price increment
              "",  # hedgeType
              False, "", "", False, False,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dnc
              "",  # algoStrategy
              False, False, o.status] + [UNSET_DOUBLE] * 9 + [
              UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, "", "", False, False,  # commission.. randomizePrice
              0,  # conditions
              "", UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, 0, "", "", "",
              UNSET_DOUBLE, False, False, False, False]
        if v >= 159:
            f.append("")  # duration
        if v >= 160:
            f.append("")  # postToAts
        if v >= 162:
            f.append(False)  # autoCancelParent
        if v >= 170:
            f += ["", "", UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE]
        s.send(*f)

    def _send_order_status(self, s: ApiSession, o: eng.EmuOrder, *, withhold: bool = True) -> None:
        if withhold and self.faults.take("withhold_order_status"):
            log.warning("ibkr_emulator_fault_withheld_order_status", order_id=o.order_id, status=o.status)
            return
        s.send(3, o.order_id, o.status, o.filled, o.remaining, o.avg_fill_price, o.perm_id, 0, o.last_fill_price,
               o.client_id, "", 0.0)

    def _send_execution(self, s: ApiSession, req_id: int, e: eng.Execution) -> None:
        c = e.spec
        when = datetime.fromtimestamp(e.time_ns / NS_PER_S, c.zone)
        f: list[object] = [
            11, req_id, e.order_id, c.con_id, c.symbol, c.sec_type, c.last_trade_date, "0", "", c.multiplier_text,
            c.exchange, c.currency, c.local_symbol, c.trading_class, e.exec_id,
            f"{when:%Y%m%d %H:%M:%S} {c.time_zone_id}", ACCOUNT,
            c.primary_exchange or c.exchange, e.side, e.shares, e.price, e.perm_id, e.client_id, 0, e.cum_qty,
            e.avg_price, e.order_ref, "", "", "", e.liquidity]
        if s.server_version >= 178:
            f.append(False)
        s.send(*f)

    def _send_commission(self, s: ApiSession, e: eng.Execution) -> None:
        realized = e.realized_pnl if e.realized_pnl is not None else UNSET_DOUBLE
        s.send(59, 1, e.exec_id, e.commission, "USD", realized, UNSET_DOUBLE, "")

    def _client_sessions(self, client_id: int) -> list[ApiSession]:
        return [s for s in self.sessions.values() if s.client_id == client_id and not s.closed]

    def _dispatch(self, events: list[eng.Event]) -> None:
        """Send engine events to the owning client's connections; positions/account to subscribers."""
        if self.faults.connectivity_lost:
            self._lost_backlog.extend(events)
            return
        for ev in events:
            if isinstance(ev, eng.OrderChanged):
                for s in self._client_sessions(ev.order.client_id):
                    self._send_open_order(s, ev.order)
                    self._send_order_status(s, ev.order)
            elif isinstance(ev, eng.Filled):
                for s in self._client_sessions(ev.execution.client_id):
                    self._send_execution(s, -1, ev.execution)
                if self.faults.hold_commissions:
                    self._held_commissions.append(ev.execution)
                else:
                    for s in self._client_sessions(ev.execution.client_id):
                        self._send_commission(s, ev.execution)
            elif isinstance(ev, eng.OrderNotice):
                for s in self._client_sessions(ev.client_id):
                    s.error(ev.order_id, ev.code, ev.text)
        self._after_events(events)

    def _after_events(self, events: list[eng.Event], skip_client: int | None = None) -> None:
        """After fills: position to reqPositions subscribers, updatePortfolio to reqAccountUpdates
        subscribers (account values follow on the periodic push, as TWS sends them every few minutes)."""
        del skip_client
        changed = {ev.execution.spec.con_id for ev in events if isinstance(ev, eng.Filled)}
        if not changed:
            return
        now = self.clock.time_ns()
        portfolio = None
        for s in list(self.sessions.values()):
            if s.closed or s.client_id is None:
                continue
            if s.positions_sub:
                for con_id in changed:
                    self._send_position(s, self.engine.positions[con_id])
            if s.account_sub:
                if portfolio is None:
                    portfolio = [item for item in self.engine.portfolio(now) if item[0].spec.con_id in changed]
                for item in portfolio:
                    self._send_portfolio(s, item)
        self._account_dirty = True

    def _push_account_values(self, now_ns: int) -> None:
        """Account values to reqAccountUpdates subscribers, at most every ACCOUNT_PUSH_S of the clock."""
        if not self._account_dirty or now_ns - self._account_pushed_ns < ACCOUNT_PUSH_S * NS_PER_S:
            return
        self._account_dirty = False
        self._account_pushed_ns = now_ns
        t = datetime.fromtimestamp(now_ns / NS_PER_S, UTC)
        for s in list(self.sessions.values()):
            if s.account_sub and not s.closed:
                self._send_account_values(s, now_ns)
                s.send(8, 1, f"{t:%H:%M}")

    # --- executions, positions, account ----------------------------------------------------

    def _executions(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqExecutions")
        f.str("msgId")
        f.str("version")
        req_id = f.int("reqId")
        client_id = f.int("clientId")
        acct = f.str("acctCode")
        since = f.str("time")
        symbol = f.str("symbol").upper()
        sec_type = f.str("secType").upper()
        exchange = f.str("exchange").upper()
        side = f.str("side").upper()
        since_ns = _parse_ib_time(since) if since else None
        if since and since_ns is None:
            s.error(req_id, 321, f"{MSG[321]} execution filter time {since!r} is not 'yyyymmdd hh:mm:ss [tz]'")
            s.send(55, 1, req_id)
            return
        for e in self.engine.executions:
            if client_id and e.client_id != client_id:
                continue
            if acct and acct != ACCOUNT:
                continue
            if since_ns is not None and e.time_ns < since_ns:
                continue
            if symbol and symbol != e.spec.symbol:
                continue
            if sec_type and sec_type != e.spec.sec_type:
                continue
            if exchange and exchange not in (e.spec.exchange, e.spec.primary_exchange):
                continue
            if side and side not in (e.side, {"BOT": "BUY", "SLD": "SELL"}[e.side]):
                continue
            self._send_execution(s, req_id, e)
            if e not in self._held_commissions:
                self._send_commission(s, e)
        s.send(55, 1, req_id)

    def _send_position(self, s: ApiSession, p: eng.Position) -> None:
        c = p.spec
        s.send(61, 3, ACCOUNT, c.con_id, c.symbol, c.sec_type, c.last_trade_date, "0", "", c.multiplier_text,
               c.primary_exchange or c.exchange, c.currency, c.local_symbol, c.trading_class, p.qty,
               p.avg_cost.quantize(Decimal("0.00000001")))

    def _positions(self, s: ApiSession, fields: list[str]) -> None:
        del fields
        for p in self.engine.positions.values():
            self._send_position(s, p)
        s.send(62, 1)
        s.positions_sub = True

    def _cancel_positions(self, s: ApiSession, fields: list[str]) -> None:
        del fields
        s.positions_sub = False

    def _send_account_values(self, s: ApiSession, now_ns: int) -> None:
        for tag, (value, cur) in self.engine.account_values(now_ns).items():
            s.send(6, 2, tag, value, cur, ACCOUNT)
        for cur, amount in sorted(self.engine.cash.items()):
            s.send(6, 2, "CashBalance", f"{amount.quantize(Decimal('0.01'))}", cur, ACCOUNT)
        s.send(6, 2, "Currency", "USD", "USD", ACCOUNT)

    def _send_portfolio(self, s: ApiSession, item: tuple[eng.Position, Decimal, Decimal, Decimal]) -> None:
        p, mark, value, unrealized = item
        c = p.spec
        s.send(7, 8, c.con_id, c.symbol, c.sec_type, c.last_trade_date, "0", "", c.multiplier_text,
               c.primary_exchange or c.exchange, c.currency, c.local_symbol, c.trading_class, p.qty, mark,
               value.quantize(Decimal("0.01")), p.avg_cost.quantize(Decimal("0.00000001")),
               unrealized.quantize(Decimal("0.01")), p.realized.quantize(Decimal("0.01")), ACCOUNT)

    def _account_updates(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqAccountUpdates")
        f.str("msgId")
        f.str("version")
        subscribe = f.bool("subscribe")
        acct = f.str("acctCode")
        s.account_sub = subscribe
        if not subscribe:
            return
        if acct and acct != ACCOUNT:
            s.error(-1, 321, f"{MSG[321]} account {acct!r} is not managed here ({ACCOUNT})")
            s.send(54, 1, acct)
            return
        now = self.clock.time_ns()
        self._send_account_values(s, now)
        for item in self.engine.portfolio(now):
            self._send_portfolio(s, item)
        t = datetime.fromtimestamp(now / NS_PER_S, UTC)
        s.send(8, 1, f"{t:%H:%M}")
        s.send(54, 1, ACCOUNT)

    def _account_updates_multi(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqAccountUpdatesMulti")
        f.str("msgId")
        f.str("version")
        req_id = f.int("reqId")
        acct = f.str("account")
        model = f.str("modelCode")
        if acct and acct != ACCOUNT:
            s.error(req_id, 321, f"{MSG[321]} account {acct!r} is not managed here ({ACCOUNT})")
            return
        for tag, (value, cur) in self.engine.account_values(self.clock.time_ns()).items():
            s.send(73, 1, req_id, ACCOUNT, model, tag, value, cur)
        s.send(74, 1, req_id)

    def _account_summary(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqAccountSummary")
        f.str("msgId")
        f.str("version")
        req_id = f.int("reqId")
        f.str("groupName")
        tags = {t.strip() for t in f.str("tags").split(",") if t.strip()}
        for tag, (value, cur) in self.engine.account_values(self.clock.time_ns()).items():
            if tag in tags:
                s.send(63, 1, req_id, ACCOUNT, tag, value, cur)
        s.send(64, 1, req_id)

    def _managed_accounts(self, s: ApiSession, fields: list[str]) -> None:
        del fields
        s.send(15, 1, ACCOUNT)

    def _current_time(self, s: ApiSession, fields: list[str]) -> None:
        del fields
        s.send(49, 1, self.clock.time_ns() // NS_PER_S)

    def _ignore(self, s: ApiSession, fields: list[str]) -> None:
        del s, fields

    def _cancel_by_req_id(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "cancel")
        msg_id = f.int("msgId")
        if msg_id in (2, 51, 25, 63, 77):  # these carry a version field
            f.str("version")
        req_id = f.int("reqId")
        for subs in (s.mkt, s.rt_bars, s.tbt, s.hist):
            subs.pop(req_id, None)  # type: ignore[attr-defined]

    # --- market data -----------------------------------------------------------------------

    def _market_data_type(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqMarketDataType")
        f.str("msgId")
        f.str("version")
        t = f.int("marketDataType")
        if t not in (1, 2, 3, 4):
            raise ProtocolError(f"reqMarketDataType: marketDataType must be 1..4, got {t}")
        s.market_data_type = t

    def _mkt_data(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqMktData")
        f.str("msgId")
        f.str("version")
        req_id = f.int("reqId")
        q = read_contract(f)
        if q.sec_type == "BAG":
            raise ProtocolError("reqMktData: combo (BAG) contracts are not supported by the emulator")
        if f.bool("deltaNeutralContract"):
            f.skip(3, "deltaNeutralContract")
        f.str("genericTickList")
        snapshot = f.bool("snapshot")
        f.str("regulatorySnapshot")
        f.str("mktDataOptions")
        spec = self._resolve_one(s, req_id, q)
        if spec is None:
            return
        if self.faults.competing_session:
            s.error(req_id, 10197)
            return
        delayed = not self.live_data.get(spec.data_key, True)
        if delayed and s.market_data_type not in (3, 4):
            s.error(req_id, 354, f"{MSG[354]} ({spec.local_symbol}: request delayed data with reqMarketDataType 3)")
            return
        if delayed:
            s.error(req_id, 10167)
        s.send(58, 1, req_id, 3 if delayed else 1)
        s.send(81, req_id, spec.min_tick, "9c0001", 3)
        sub = _MktSub(spec, delayed)
        now = self.market_ns(self.clock.time_ns())
        self._send_close(s, req_id, sub, now)
        self._send_ticks(s, req_id, sub, now, force=True)
        if snapshot:
            s.send(57, 1, req_id)
            return
        s.mkt[req_id] = sub

    def _send_close(self, s: ApiSession, req_id: int, sub: _MktSub, now_ns: int) -> None:
        end = last_session_end_ns(sub.spec, now_ns - (DELAY_NS if sub.delayed else 0), liquid=False)
        if end is not None:
            q = self.market.quote(sub.spec, end - NS_PER_S)
            types = DELAYED_TICKS if sub.delayed else LIVE_TICKS
            s.send(1, 6, req_id, types["close"], q.last, 0, 0)

    def _send_ticks(self, s: ApiSession, req_id: int, sub: _MktSub, now_ns: int, *, force: bool = False) -> None:
        at = now_ns - DELAY_NS if sub.delayed else now_ns
        if not is_open(sub.spec, at):
            return
        q = self.market.quote(sub.spec, at)
        state = (q.bid, q.ask, q.bid_size, q.ask_size, q.last, q.last_size)
        if state == sub.last and not force:
            return
        types = DELAYED_TICKS if sub.delayed else LIVE_TICKS
        if force or (q.bid, q.bid_size) != sub.last[0:3:2]:
            s.send(1, 6, req_id, types["bid"], q.bid, q.bid_size, 0)
        if force or (q.ask, q.ask_size) != sub.last[1:4:2]:
            s.send(1, 6, req_id, types["ask"], q.ask, q.ask_size, 0)
        if sub.spec.sec_type != "CASH":
            s.send(1, 6, req_id, types["last"], q.last, q.last_size, 0)
            s.send(2, 6, req_id, types["volume"], self._session_volume(sub.spec, at))
        sub.last = state

    @staticmethod
    def _session_volume(spec: ContractSpec, ts_ns: int) -> int:
        """The session's traded volume so far: the mean print size for every second since the open."""
        session = session_at(spec, ts_ns, liquid=False)
        if session is None:
            return 0
        lo, hi = spec.touch_size
        return (ts_ns - session[0]) // NS_PER_S * max(1, (lo + hi) // 6)

    def _real_time_bars(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqRealTimeBars")
        f.str("msgId")
        f.str("version")
        req_id = f.int("reqId")
        q = read_contract(f)
        bar_size = f.int("barSize")
        what = f.str("whatToShow").upper()
        use_rth = f.bool("useRTH")
        f.str("realTimeBarsOptions")
        spec = self._resolve_one(s, req_id, q)
        if spec is None:
            return
        if bar_size != 5:
            s.error(req_id, 420, f"{MSG[420]} bar size must be 5 seconds, got {bar_size}")
            return
        if what not in ("TRADES", "MIDPOINT", "BID", "ASK"):
            s.error(req_id, 420, f"{MSG[420]} whatToShow must be TRADES, MIDPOINT, BID or ASK, got {what!r}")
            return
        if not self.live_data.get(spec.data_key, True):
            s.error(req_id, 420, f"{MSG[420]} no market data permissions for {spec.local_symbol}")
            return
        if self.faults.competing_session:
            s.error(req_id, 10197)
            return
        now = self.market_ns(self.clock.time_ns())
        s.rt_bars[req_id] = _BarSub(spec, what, use_rth, (now // (5 * NS_PER_S) + 1) * 5 * NS_PER_S)

    def _tick_by_tick(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqTickByTickData")
        f.str("msgId")
        req_id = f.int("reqId")
        q = read_contract(f)
        kind = f.str("tickType")
        f.str("numberOfTicks")
        f.str("ignoreSize")
        spec = self._resolve_one(s, req_id, q)
        if spec is None:
            return
        if kind not in ("Last", "AllLast", "BidAsk", "MidPoint"):
            s.error(req_id, 321, f"{MSG[321]} tickType must be Last, AllLast, BidAsk or MidPoint, got {kind!r}")
            return
        if not self.live_data.get(spec.data_key, True):
            s.error(req_id, 10089, f"{MSG[10089]} ({spec.local_symbol})")
            return
        if self.faults.competing_session:
            s.error(req_id, 10197)
            return
        s.tbt[req_id] = _TbtSub(spec, kind)

    # --- historical data -------------------------------------------------------------------

    def _historical(self, s: ApiSession, fields: list[str]) -> None:
        f = Fields(fields, "reqHistoricalData")
        f.str("msgId")
        req_id = f.int("reqId")
        q = read_contract(f)
        f.str("includeExpired")
        end_text = f.str("endDateTime")
        bar_text = f.str("barSizeSetting")
        duration_text = f.str("durationStr")
        use_rth = f.bool("useRTH")
        what = f.str("whatToShow").upper()
        format_date = f.int("formatDate", 1)
        if q.sec_type == "BAG":
            raise ProtocolError("reqHistoricalData: combo (BAG) contracts are not supported by the emulator")
        keep_up = f.bool("keepUpToDate")
        spec = self._resolve_one(s, req_id, q)
        if spec is None:
            return
        bar_s = BAR_SIZES_S.get(bar_text.strip())
        if bar_s is None:
            s.error(req_id, 162, f"{MSG[162]}Invalid bar size {bar_text!r} (one of: {', '.join(BAR_SIZES_S)})")
            return
        duration_s = _parse_duration(duration_text)
        if duration_s is None:
            s.error(req_id, 162, f"{MSG[162]}Invalid duration {duration_text!r} (e.g. '3600 S', '2 D', '1 W')")
            return
        if what not in ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"):
            s.error(req_id, 162, f"{MSG[162]}whatToShow {what!r} is not served by the emulator "
                                 f"(TRADES, MIDPOINT, BID, ASK)")
            return
        if spec.sec_type == "CASH" and what == "TRADES":
            s.error(req_id, 162, f"{MSG[162]}No data of type TRADES for {spec.local_symbol}: use MIDPOINT, BID or ASK")
            return
        now = self.market_ns(self.clock.time_ns())  # explicit end times are read on the market's timeline
        if keep_up and end_text:
            s.error(req_id, 321, f"{MSG[321]} keepUpToDate needs an empty endDateTime")
            return
        end_ns = now if not end_text else _parse_ib_time(end_text)
        if end_ns is None:
            s.error(req_id, 321, f"{MSG[321]} endDateTime {end_text!r} is not 'yyyymmdd hh:mm:ss [tz]'")
            return
        if duration_s // bar_s > MAX_HISTORICAL_BARS:
            s.error(req_id, 162, f"{MSG[162]}Requested too many bars ({duration_s // bar_s} > {MAX_HISTORICAL_BARS}): "
                                 "shorten the duration or use a larger bar size")
            return
        violation = self._pacing(s, (spec.con_id, what, bar_s, end_text, duration_text, use_rth), (spec.con_id, what))
        if violation:
            s.error(req_id, 162, f"{MSG[162]}Historical data request pacing violation ({violation})")
            return
        bars = self._bars(spec, end_ns - duration_s * NS_PER_S, end_ns, bar_s, what, use_rth, now)
        if not bars and not keep_up:
            s.error(req_id, 162, f"{MSG[162]}HMDS query returned no data: {spec.local_symbol}@{spec.exchange} "
                                 f"{what.title()}")
            return
        start_dt = datetime.fromtimestamp(end_ns / NS_PER_S - duration_s, UTC)
        end_dt = datetime.fromtimestamp(end_ns / NS_PER_S, UTC)
        out: list[object] = [17, req_id, f"{start_dt:%Y%m%d %H:%M:%S} UTC", f"{end_dt:%Y%m%d %H:%M:%S} UTC",
                             len(bars)]
        for b in bars:
            out += [self._bar_date(spec, b.start_ns, bar_s, format_date), b.open, b.high, b.low, b.close,
                    b.volume if what == "TRADES" else -1, b.wap.quantize(spec.min_tick / 100), b.count]
        s.send(*out)
        if keep_up:
            s.hist[req_id] = _HistSub(spec, bar_s, what, use_rth, format_date)

    def _pacing(self, s: ApiSession, key: tuple[Any, ...], burst_key: tuple[int, str]) -> str | None:
        if self.faults.take("pacing_violations"):
            return "injected"
        now = self.clock.monotonic()
        log_ = [e for e in self._hist_log if now - e[0] < PACING_WINDOW[1]]
        self._hist_log = log_
        full_key = (s.client_id, *key)
        why = None
        if any(k == full_key and now - t < PACING_IDENTICAL_S for t, k, _ in log_):
            why = f"an identical request within {PACING_IDENTICAL_S} s"
        elif sum(1 for t, _, b in log_ if b == burst_key and now - t < PACING_BURST[1]) >= PACING_BURST[0]:
            why = f"{PACING_BURST[0]} requests for one contract within {PACING_BURST[1]} s"
        elif len(log_) >= PACING_WINDOW[0]:
            why = f"{PACING_WINDOW[0]} requests within {PACING_WINDOW[1]} s"
        if why is None:
            log_.append((now, full_key, burst_key))
            if key[1] == "BID_ASK":  # IB counts BID_ASK as two requests (BID and ASK)
                log_.append((now, (*full_key, "ask"), burst_key))
        return why

    def _bars(self, spec: ContractSpec, start_ns: int, end_ns: int, bar_s: int, what: str, use_rth: bool,
              now_ns: int) -> list[Any]:
        liquid = use_rth and spec.sec_type != "CASH"
        what_bar = "MIDPOINT" if what == "BID_ASK" else what
        out = []
        for trading_date, s_ns, e_ns in sessions_between(spec, start_ns, min(end_ns, now_ns), liquid=liquid):
            if bar_s >= 86400:
                if e_ns <= now_ns or s_ns < now_ns:
                    bar = self.market.bar(spec, s_ns, min(e_ns, now_ns), what_bar)
                    out.append(_dated(bar, _date_ns(trading_date)))
                continue
            step = bar_s * NS_PER_S
            t = s_ns + max(0, -((s_ns - start_ns) // step)) * step  # the first bar starting in the window
            while t < e_ns and t < end_ns and t < now_ns:
                bar_end = min(t + step, e_ns, now_ns)
                if t + step <= end_ns or bar_end == now_ns:
                    out.append(self.market.bar(spec, t, bar_end, what_bar))
                t += step
        return out

    @staticmethod
    def _bar_date(spec: ContractSpec, start_ns: int, bar_s: int, format_date: int) -> str:
        if bar_s >= 86400:
            return datetime.fromtimestamp(start_ns / NS_PER_S, UTC).strftime("%Y%m%d")
        if format_date == 2:
            return str(start_ns // NS_PER_S)
        local = datetime.fromtimestamp(start_ns / NS_PER_S, spec.zone)
        return f"{local:%Y%m%d %H:%M:%S} {spec.time_zone_id}"

    # --- the market step -------------------------------------------------------------------

    def step(self) -> None:
        """One market step at the clock's now: the scheduled daily restart when its time has come,
        then match orders, push market data and bars."""
        now = self.clock.time_ns()
        last, self._last_step_ns = self._last_step_ns, now
        if self.daily_restart_at is not None and self._restart_due(last, now):
            task = asyncio.get_running_loop().create_task(self.daily_restart(self.daily_restart_refuse_s),
                                                          name="ibkr-emu-scheduled-restart")
            self._tasks.add(task)  # held: the loop keeps only a weak reference to a task
            task.add_done_callback(self._tasks.discard)
            return
        if not self.faults.connectivity_lost:
            self._dispatch(self.engine.step(now))
            self._push_account_values(now)
        if self.faults.connectivity_lost or self.faults.competing_session:
            return
        now = self.market_ns(now)  # what is sent below follows market time
        for s in list(self.sessions.values()):
            if s.closed or s.client_id is None:
                continue
            for req_id, sub in list(s.mkt.items()):
                self._send_ticks(s, req_id, sub, now)
            for req_id, bsub in list(s.rt_bars.items()):
                self._push_bars(s, req_id, bsub, now)
            for req_id, tsub in list(s.tbt.items()):
                self._push_tick_by_tick(s, req_id, tsub, now)
            for req_id, hsub in list(s.hist.items()):
                self._push_hist_update(s, req_id, hsub, now)

    def _push_bars(self, s: ApiSession, req_id: int, sub: _BarSub, now_ns: int) -> None:
        step = 5 * NS_PER_S
        liquid = sub.use_rth and sub.spec.sec_type != "CASH"
        sent = 0
        while sub.next_start_ns + step <= now_ns:
            start = sub.next_start_ns
            sub.next_start_ns += step
            if not is_open(sub.spec, start, liquid=liquid):
                continue  # no bars outside the session: none are invented
            if now_ns - start > 60 * NS_PER_S or sent >= 12:
                continue  # a clock jump: only the last minute is sent
            b = self.market.bar(sub.spec, start, start + step, sub.what)
            vol = b.volume if sub.what == "TRADES" else -1
            s.send(50, 3, req_id, start // NS_PER_S, b.open, b.high, b.low, b.close, vol,
                   b.wap.quantize(sub.spec.min_tick / 100), b.count)
            sent += 1

    def _push_tick_by_tick(self, s: ApiSession, req_id: int, sub: _TbtSub, now_ns: int) -> None:
        if not is_open(sub.spec, now_ns):
            return
        q: Quote = self.market.quote(sub.spec, now_ns)
        t = now_ns // NS_PER_S
        if sub.kind in ("Last", "AllLast"):
            if sub.spec.sec_type == "CASH":
                return  # FX has no trades
            state: tuple[Any, ...] = (t, q.last, q.last_size)
            if state != sub.last:
                s.send(99, req_id, 1 if sub.kind == "Last" else 2, t, q.last, q.last_size, 0,
                       sub.spec.primary_exchange or sub.spec.exchange, "")
        elif sub.kind == "BidAsk":
            state = (q.bid, q.ask, q.bid_size, q.ask_size)
            if state != sub.last:
                s.send(99, req_id, 3, t, q.bid, q.ask, q.bid_size, q.ask_size, 0)
        else:
            state = ((q.bid + q.ask) / 2,)
            if state != sub.last:
                s.send(99, req_id, 4, t, state[0])
        sub.last = state

    def _push_hist_update(self, s: ApiSession, req_id: int, sub: _HistSub, now_ns: int) -> None:
        liquid = sub.use_rth and sub.spec.sec_type != "CASH"
        if not is_open(sub.spec, now_ns, liquid=liquid) or sub.bar_s >= 86400:
            return
        step = sub.bar_s * NS_PER_S
        start = now_ns // step * step
        b = self.market.bar(sub.spec, start, now_ns + 1, "MIDPOINT" if sub.what == "BID_ASK" else sub.what)
        s.send(90, req_id, b.count, self._bar_date(sub.spec, start, sub.bar_s, sub.format_date), b.open, b.close,
               b.high, b.low, b.wap.quantize(sub.spec.min_tick / 100), b.volume if sub.what == "TRADES" else -1)

    # --- faults (control API; see control.py) ----------------------------------------------

    def drop_next_orders(self, n: int = 1) -> None:
        """The next `n` placeOrders are accepted (and matched), then the connection is cut before any answer."""
        self.faults.drop_next_orders = n

    def withhold_order_status(self, n: int = 1) -> None:
        """The next `n` orderStatus messages are not sent (openOrder and executions still are)."""
        self.faults.withhold_order_status = n

    def delay_orders(self, seconds: float) -> None:
        """Hold every placeOrder `seconds` of the clock before processing it (0: off). The
        connection's later messages wait behind it (IB processes a connection's messages in
        order), so a client killed meanwhile leaves an order IB still executes."""
        if not (math.isfinite(seconds) and 0 <= seconds <= 60):
            raise ValueError(f"order delay must be 0..60 s, got {seconds!r}")
        self.faults.order_delay_ms = round(seconds * 1000)

    def pacing_violations(self, n: int = 1) -> None:
        """The next `n` reqHistoricalData are refused with 162 (pacing violation)."""
        self.faults.pacing_violations = n

    def hold_commissions(self) -> None:
        """Keep commissionReports back (executions still go out) until `release_commissions()`."""
        self.faults.hold_commissions = True

    def release_commissions(self) -> None:
        """Send every held commissionReport to its client, and stop holding."""
        self.faults.hold_commissions = False
        held, self._held_commissions = self._held_commissions, []
        for e in held:
            for s in self._client_sessions(e.client_id):
                self._send_commission(s, e)

    def correct_execution(self, exec_id: str | None = None, *, shares: Decimal | None = None,
                          price: Decimal | None = None) -> str:
        """IB corrects an execution (the last, or `exec_id`; `Engine.correct`): execDetails and
        commissionReport of the correction to the order's client; returns the new execId."""
        e = self.engine.correct(exec_id, shares=shares, price=price)
        log.warning("ibkr_emulator_fault_execution_corrected", exec_id=e.exec_id, shares=str(e.shares),
                    price=str(e.price))
        self._dispatch([eng.Filled(e)])
        return e.exec_id

    def set_subscription(self, symbol: str, live: bool) -> None:
        """Market data permission for `symbol` (AAPL, ES, EUR.USD; False: only delayed data, with 10167)."""
        if symbol not in self.live_data:
            raise ValueError(f"unknown symbol {symbol!r} (listed: {', '.join(sorted(self.live_data))})")
        self.live_data[symbol] = live

    def connectivity_lost(self) -> None:
        """1100 to every connection; no market data, matching or order messages until restored."""
        self.faults.connectivity_lost = True
        self._lost_backlog = []
        for code in (1100, 2103, 2105):  # then the farms report broken, as TWS does
            self._broadcast_error(code)

    def connectivity_restored(self, *, data_lost: bool = False) -> None:
        """1102 (data maintained) or 1101 (data lost: market data subscriptions dropped, the client
        must resubscribe); order messages held during the loss are then sent."""
        if data_lost:
            for s in self.sessions.values():
                s.mkt.clear()
                s.rt_bars.clear()
                s.tbt.clear()
                s.hist.clear()
        self.faults.connectivity_lost = False
        for code in (1101 if data_lost else 1102, 2104, 2106):
            self._broadcast_error(code)
        backlog, self._lost_backlog = self._lost_backlog, []
        self._dispatch(backlog)

    def competing_session(self, on: bool = True) -> None:
        """A competing live session (e.g. TWS logged in elsewhere): 10197 for every market data
        subscription, and no data until it ends."""
        self.faults.competing_session = on
        if on:
            for s in self.sessions.values():
                for req_id in [*s.mkt, *s.rt_bars, *s.tbt]:
                    s.error(req_id, 10197)

    async def daily_restart(self, refuse_s: float) -> None:
        """IB Gateway's daily restart: close every connection, refuse new ones for `refuse_s`
        seconds of the clock, then listen again on the same port (orders and positions kept)."""
        await self._unlisten()
        for s in list(self.sessions.values()):
            s.abort()
        self.restarts += 1
        log.warning("ibkr_emulator_daily_restart", refuse_s=refuse_s)

        async def relisten() -> None:
            await self.clock.sleep(refuse_s)
            while True:
                try:
                    await self._listen()
                except OSError as exc:  # the port was taken meanwhile: try again each second
                    log.error("ibkr_emulator_cannot_listen_again", port=self.port, error=str(exc))
                    await self.clock.sleep(1.0)
                    continue
                log.info("ibkr_emulator_listening_again", port=self.port)
                return

        self._restart_task = asyncio.get_running_loop().create_task(relisten(), name="ibkr-emu-restart")

    def _restart_due(self, last_ns: int, now_ns: int) -> bool:
        """Whether the daily restart time (New York, like IB Gateway's auto-restart) lies in (last, now]."""
        assert self.daily_restart_at is not None
        zone = ZoneInfo("US/Eastern")
        day = datetime.fromtimestamp(now_ns / NS_PER_S, zone).date()
        for d in (day - timedelta(days=1), day):
            at = datetime(d.year, d.month, d.day, *self.daily_restart_at, tzinfo=zone)
            at_ns = int(at.timestamp()) * NS_PER_S
            if last_ns < at_ns <= now_ns:
                return True
        return False

    def _broadcast_error(self, code: int) -> None:
        for s in self.sessions.values():
            if s.client_id is not None:
                s.error(-1, code)

    # --- benchmark ---------------------------------------------------------------------------

    async def bench_ping_pong(self, symbol: str, n: int, timeout_s: float = 2.0, gap_s: float = 0.0,
                              side: str | None = None) -> dict[str, Any]:
        """Tick-to-order: send one trade print to every subscriber of `symbol` (tick-by-tick
        Last/AllLast, and the last-price tick of market data), wait for the next placeOrder,
        repeat `n` times. Samples are (perf_counter_ns just before the first write,
        perf_counter_ns when the placeOrder was read, its orderRef); a print that brings no
        order within `timeout_s` (real seconds) counts in `missed`. `side` ("BUY"/"SELL"): only
        orders of that side count. ValueError when nobody subscribes `symbol`'s trades."""
        specs = [c for c in self.contracts if symbol in (c.local_symbol, c.data_key)]
        if len(specs) != 1:
            raise ValueError(f"symbol {symbol!r}: expected one of {', '.join(c.local_symbol for c in self.contracts)}")
        spec = specs[0]
        self._order_waiter_side = side

        def prepare(i: int) -> Callable[[], Awaitable[None]]:
            targets = [(s, rid, kind) for s in self.sessions.values() if not s.closed
                       for rid, kind in ([(r, "tbt") for r, t in s.tbt.items()
                                          if t.spec is spec and t.kind in ("Last", "AllLast")]
                                         + [(r, "mkt") for r, m in s.mkt.items() if m.spec is spec and not m.delayed])]
            if not targets:
                raise ValueError(f"no connection subscribes {spec.local_symbol}'s trades (tick-by-tick Last/AllLast "
                                 "or market data)")
            market_now = self.market_ns(self.clock.time_ns())
            q = self.market.quote(spec, market_now)
            size = 1 + i % 97  # a new print each time, even within one second
            t = market_now // NS_PER_S

            async def send() -> None:
                for s, rid, kind in targets:
                    if kind == "tbt":
                        s.send(99, rid, 2, t, q.last, size, 0, spec.primary_exchange or spec.exchange, "")
                    else:
                        s.send(1, 6, rid, LIVE_TICKS["last"], q.last, size, 0)

            return send

        def arm(waiter: OrderWaiter | None) -> None:
            self._order_waiter = waiter

        out = await ping_pong_samples(n, prepare, arm, timeout_s, gap_s)
        self._order_waiter_side = None
        return out

    # --- introspection ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything an audit compares with a journal (JSON-able): connections; every order
        (`client_order_id` = orderRef) with its status and filled quantity; every execution
        (`trade_id` = execId, fee = commission in USD); every placeOrder that arrived with its
        outcome (`code` None = accepted, else the error code; `kind` new/modify); the orderRefs
        that reached matching as new orders (a duplicate there is a resent order); positions; cash."""
        e = self.engine
        return {
            "port": self.port,
            "listening": self.listening.is_set(),
            "restarts": self.restarts,
            "market_time_scale": self.market_time_scale,
            "always_open": self.always_open,
            "market_ns": self.market_ns(self.clock.time_ns()),
            "orders_held": self.orders_held,
            "connections": [{"conn": s.conn_id, "client_id": s.client_id, "server_version": s.server_version}
                            for s in self.sessions.values()],
            "orders": [{"client_order_id": o.order_ref, "client_id": o.client_id, "order_id": o.order_id,
                        "perm_id": o.perm_id, "symbol": o.spec.local_symbol, "side": o.action,
                        "type": o.order_type, "qty": str(o.total_qty), "filled_qty": str(o.filled),
                        "status": o.status} for o in e.orders.values()],
            "open_orders": [{"client_id": o.client_id, "order_id": o.order_id, "perm_id": o.perm_id,
                             "symbol": o.spec.local_symbol, "action": o.action, "qty": str(o.total_qty),
                             "filled": str(o.filled), "status": o.status, "order_ref": o.order_ref}
                            for o in e.open_orders()],
            "fills": [{"trade_id": x.exec_id, "client_order_id": x.order_ref, "order_id": x.order_id,
                       "client_id": x.client_id, "symbol": x.spec.local_symbol,
                       "side": "BUY" if x.side == "BOT" else "SELL", "qty": str(x.shares), "price": str(x.price),
                       "fee": str(x.commission), "fee_asset": "USD", "ts_ns": x.time_ns} for x in e.executions],
            "new_order_requests": list(self.order_requests),
            "client_order_ids": [o.order_ref for o in sorted(e.orders.values(), key=lambda o: o.perm_id)],
            "positions": {p.spec.local_symbol: {"qty": str(p.qty), "avg_cost": str(p.avg_cost)}
                          for p in e.positions.values()},
            "executions": len(e.executions),
            "cash": {k: str(v) for k, v in e.cash.items()},
            "faults": self.faults.as_dict(),
        }

    _handlers: dict[int, Callable[[IbkrEmulator, ApiSession, list[str]], None]] = {
        1: _mkt_data,
        2: _cancel_by_req_id,
        3: _place_order,
        4: _cancel_order,
        5: _open_orders,
        6: _account_updates,
        7: _executions,
        8: _req_ids,
        9: _contract_details,
        15: _ignore,  # reqAutoOpenOrders
        16: _all_open_orders,
        17: _managed_accounts,
        20: _historical,
        25: _cancel_by_req_id,
        49: _current_time,
        50: _real_time_bars,
        51: _cancel_by_req_id,
        58: _global_cancel,
        59: _market_data_type,
        61: _positions,
        62: _account_summary,
        63: _cancel_by_req_id,
        64: _cancel_positions,
        71: _start_api,
        76: _account_updates_multi,
        77: _ignore,  # cancelAccountUpdatesMulti
        97: _tick_by_tick,
        98: _cancel_by_req_id,
        99: _completed_orders,
    }


def _dated(bar: Any, start_ns: int) -> Any:
    from dataclasses import replace

    return replace(bar, start_ns=start_ns)


def _date_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * NS_PER_S


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _req_id_guess(msg_id: int, fields: list[str]) -> int:
    """The request id of a message that failed to parse, where the layout says where it is."""
    pos = {1: 2, 7: 2, 9: 2, 20: 1, 50: 2, 62: 2, 76: 2, 97: 1}.get(msg_id)
    if pos is None or pos >= len(fields):
        return -1
    return _int_or(fields[pos], -1)


def _parse_hhmm(text: str) -> tuple[int, int]:
    """'HH:MM' -> (hour, minute); ValueError naming the text otherwise."""
    h, sep, m = text.partition(":")
    try:
        hour, minute = int(h), int(m)
    except ValueError:
        hour = minute = -1
    if not sep or not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"daily restart time {text!r}: expected HH:MM (New York time), e.g. 23:45")
    return hour, minute


def _parse_duration(text: str) -> int | None:
    n, _, unit = text.strip().partition(" ")
    if unit.strip().upper() not in DURATION_UNITS_S:
        return None
    try:
        count = int(n)
    except ValueError:
        return None
    return count * DURATION_UNITS_S[unit.strip().upper()] if count > 0 else None


def _parse_ib_time(text: str) -> int | None:
    """'yyyymmdd hh:mm:ss [tz]' or 'yyyymmdd-hh:mm:ss' (UTC) as ns; None when unreadable."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    t = text.strip()
    try:
        if "-" in t and " " not in t:
            dt = datetime.strptime(t, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        else:
            parts = t.split()
            if len(parts) == 1 and len(parts[0]) == 8:
                dt = datetime.strptime(parts[0], "%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
            else:
                dt = datetime.strptime(parts[0] + " " + parts[1], "%Y%m%d %H:%M:%S")
                tz = ZoneInfo(parts[2]) if len(parts) > 2 else UTC
                dt = dt.replace(tzinfo=tz)
    except (ValueError, IndexError, ZoneInfoNotFoundError):
        return None
    return int(dt.timestamp() * NS_PER_S)
