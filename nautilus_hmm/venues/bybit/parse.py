"""Bybit v5 REST results and WebSocket frames → neutral types (pure, no I/O).

REST functions take the `result` object of an answer whose `retCode` was 0 (see
`errors.check_response`); the whole envelope `{"retCode", "result", ...}` is accepted too.
`BybitParser` decodes and dispatches WebSocket frames (public, private and trade streams).

Output: `messages` market data (floats), `domain.orders` orders and fills (Decimal, from
the wire string), and the small types defined here. Unknown fields are ignored. A frame
that is not JSON, lacks a required field, or has a bad value (non-numeric, NaN/inf,
negative price, a number beyond 1e30, an integer beyond int64) raises `BybitParseError`
(a `core.errors.ParseError`) naming the topic, the field and the value; the caller
counts, logs and skips it, and keeps the connection. Known topics the node does not use
parse to None.

Wire facts handled here (see the shared fixtures):

* Sides are "Buy"/"Sell"; order types "Limit"/"Market"; post-only is `timeInForce`
  "PostOnly". Empty strings stand for "no value" ("avgPrice": "", "leavesQty": "").
* Private topics (`order`, `execution`, `position`, `wallet`) carry every category on
  one connection; each item names its `category`: a parser keeps only its own.
* Fills are `execType == "Trade"` only. Funding, settlement, delivery, ADL and
  bankruptcy executions are not fills: they are listed in `Executions.ignored` (the
  position-moving ones should trigger a reconciliation).
* `orderbook.{depth}.{symbol}`: a snapshot, then deltas whose `u` grows by one (see book.py).
* `tickers.{symbol}` on linear sends a snapshot, then deltas with only the changed
  fields: the parser merges them per symbol. Spot tickers have no bid/ask at all.
* `kline.{interval}.{symbol}`: `confirm` true marks a closed bar; REST `market/kline`
  lists rows newest first (parse_klines returns them oldest first).
* Pong: public streams answer `{"op":"ping","ret_msg":"pong","success":true}`, private
  and trade streams `{"op":"pong","args":[ms]}` / `{"op":"pong","data":[ms]}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import orjson

from nautilus_hmm.core.errors import ParseError
from nautilus_hmm.domain.enums import InstrumentKind, Liquidity, OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, VenueFill, VenueOrder
from nautilus_hmm.messages import Bar, MarkPrice, QuoteTick, TradeTick

NS_PER_MS = 1_000_000
MAX_INT64 = 2**63 - 1
MAX_TS_MS = MAX_INT64 // NS_PER_MS  # a later ms timestamp overflows int64 nanoseconds
MAX_DECIMAL_EXP = 30  # |value| >= 1e30 is not a price, size or balance: an overflow
# Per-symbol caches stop growing here: damaged frames with made-up symbols cannot eat memory.
MAX_CACHED_SYMBOLS = 4096
_ZERO = Decimal(0)
_INF = math.inf

Level = tuple[float, float]
IdFactory = Callable[[str], InstrumentId]


class Category(StrEnum):
    """A Bybit v5 product category this node trades."""

    SPOT = "spot"
    LINEAR = "linear"

    @property
    def default_venue(self) -> str:
        """`bybit_spot` / `bybit_linear`."""
        return f"bybit_{self.value}"


def category_of(venue_or_category: str | Category) -> Category:
    """The category of a venue name (`bybit_spot`, `bybit_linear`, or a category name itself)."""
    text = str(venue_or_category)
    for c in Category:
        if text == c.value or text.endswith("_" + c.value):
            return c
    raise ValueError(f"no Bybit category in {text!r}: expected spot or linear")


class BybitParseError(ParseError):
    """A Bybit frame or result could not be parsed: names the topic, the field and the value."""

    def __init__(self, topic: str, problem: str, field: str | None = None, value: Any = None) -> None:
        self.topic = topic
        self.field = field
        self.value = value
        super().__init__(f"bybit {topic}: {problem}")


class InstrumentIds:
    """Cached `symbol → InstrumentId(venue, symbol)` for one venue (hot path: a dict hit)."""

    __slots__ = ("_cache", "venue")

    def __init__(self, venue: str) -> None:
        if not venue or ":" in venue:
            raise ValueError(f"bad venue name {venue!r}")
        self.venue = venue
        self._cache: dict[str, InstrumentId] = {}

    def __call__(self, symbol: str) -> InstrumentId:
        """The id of `symbol` on this venue."""
        iid = self._cache.get(symbol)
        if iid is None:
            if not isinstance(symbol, str) or not symbol or ":" in symbol or len(symbol) > 64:
                raise BybitParseError("symbol", f"bad symbol {symbol!r}", "symbol", symbol)
            iid = InstrumentId(self.venue, symbol)
            if len(self._cache) < MAX_CACHED_SYMBOLS:
                self._cache[symbol] = iid
        return iid


def id_factory(ids: IdFactory | str) -> IdFactory:
    """An id factory from a venue name (`bybit_spot` / `bybit_linear`) or an existing factory."""
    return InstrumentIds(ids) if isinstance(ids, str) else ids


# ---------------------------------------------------------------- neutral types


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """One `orderbook.{depth}.{symbol}` frame (or a REST orderbook, as a snapshot).

    Sizes are absolute; 0 removes the level. `update_id` is Bybit's `u` (a delta's is the
    previous + 1), `seq` its cross sequence. Lists are not to be mutated.
    """

    instrument_id: InstrumentId
    depth: int
    is_snapshot: bool
    update_id: int
    seq: int
    bids: list[Level]
    asks: list[Level]
    ts_event_ns: int
    ts_init_ns: int
    cts_ns: int | None = None  # matching-engine time


@dataclass(frozen=True, slots=True)
class PublicTrades:
    """One `publicTrade.{symbol}` frame: trades oldest first."""

    trades: tuple[TradeTick, ...]


@dataclass(frozen=True, slots=True)
class Klines:
    """The closed (`confirm`) bars of one `kline.{interval}.{symbol}` frame."""

    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class Ticker:
    """A `tickers.{symbol}` state (linear deltas merged). None = not given (spot has no bid/ask)."""

    instrument_id: InstrumentId
    ts_event_ns: int
    ts_init_ns: int
    last_price: float | None
    bid: float | None
    bid_size: float | None
    ask: float | None
    ask_size: float | None
    mark_price: float | None = None
    index_price: float | None = None
    funding_rate: float | None = None
    next_funding_ms: int | None = None

    def quote(self) -> QuoteTick | None:
        """Best bid/ask as a QuoteTick, when the ticker carries both sides."""
        if self.bid is None or self.ask is None or self.bid_size is None or self.ask_size is None:
            return None
        return QuoteTick(ts_event_ns=self.ts_event_ns, ts_init_ns=self.ts_init_ns, instrument_id=self.instrument_id,
                         bid=self.bid, bid_size=self.bid_size, ask=self.ask, ask_size=self.ask_size)

    def mark(self) -> MarkPrice | None:
        """The mark price (linear), or None."""
        if self.mark_price is None:
            return None
        return MarkPrice(ts_event_ns=self.ts_event_ns, ts_init_ns=self.ts_init_ns, instrument_id=self.instrument_id,
                         price=self.mark_price)


@dataclass(frozen=True, slots=True)
class BybitPosition:
    """A linear position (one-way mode: `position_idx` 0). `qty` is signed base units (short < 0)."""

    instrument_id: InstrumentId
    qty: Decimal
    avg_price: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal  # cumRealisedPnl: since the position was first opened
    cur_realized_pnl: Decimal  # curRealisedPnl: of the current position
    position_idx: int
    ts_ns: int
    mark_price: Decimal | None = None
    leverage: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderUpdates:
    """One private `order` frame: this category's orders after the event."""

    ts_ns: int
    orders: tuple[VenueOrder, ...]


@dataclass(frozen=True, slots=True)
class Executions:
    """One private `execution` frame: this category's fills (execType Trade; `trade_id` = execId).

    `ignored` lists (execId, execType) of executions that are not fills (Funding,
    Settle, Delivery, AdlTrade, BustTrade ...): the position-moving ones (see
    `POSITION_MOVING_EXEC_TYPES`) mean the position changed without a fill: reconcile.
    """

    ts_ns: int
    fills: tuple[VenueFill, ...]
    ignored: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PositionUpdates:
    """One private `position` frame: this category's positions after the event."""

    ts_ns: int
    positions: tuple[BybitPosition, ...]


@dataclass(frozen=True, slots=True)
class WalletUpdate:
    """One private `wallet` frame: balances by coin (walletBalance = free + locked)."""

    ts_ns: int
    balances: dict[str, Balance]


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to `{"op":"ping"}` (public, private or trade stream)."""

    req_id: str
    conn_id: str


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Answer to `{"op":"auth"}`. `ret_code` is given by the trade stream and on failures."""

    ok: bool
    message: str
    ret_code: int | None = None
    conn_id: str = ""


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """Answer to `subscribe` / `unsubscribe`: `ok` False names the refused topic in `message`."""

    op: str
    ok: bool
    message: str
    req_id: str = ""
    conn_id: str = ""


@dataclass(frozen=True, slots=True)
class TradeResponse:
    """Answer of the trade WebSocket to `order.create|amend|cancel` (matched by `req_id`)."""

    req_id: str
    op: str
    ret_code: int
    ret_msg: str
    order_id: str
    order_link_id: str
    header: dict[str, str]
    conn_id: str = ""

    @property
    def ok(self) -> bool:
        """True when retCode is 0."""
        return self.ret_code == 0


@dataclass(frozen=True, slots=True)
class OrderAck:
    """order/create, order/cancel (and cancel-all items): the venue's and our ids, nothing more."""

    order_id: str
    order_link_id: str


BybitEvent = (
    BookUpdate | PublicTrades | Klines | Ticker | OrderUpdates | Executions | PositionUpdates | WalletUpdate
    | Pong | AuthResult | SubscribeResult | TradeResponse
)


# ---------------------------------------------------------------- field helpers


def _obj(d: Any, topic: str, what: str = "item") -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise BybitParseError(topic, f"expected a JSON object for {what}, got {type(d).__name__}: {d!r:.80}", what, d)
    return d


def _req(d: Mapping[str, Any], key: str, topic: str) -> Any:
    try:
        v = d[key]
    except KeyError:
        raise BybitParseError(topic, f"missing field '{key}'", key) from None
    except TypeError:
        raise BybitParseError(topic, f"expected a JSON object, got {type(d).__name__}", key) from None
    if v is None:
        raise BybitParseError(topic, f"field '{key}' is null", key, None)
    return v


def _to_dec(v: Any, key: str, topic: str) -> Decimal:
    if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
        try:
            out = Decimal(v)
        except InvalidOperation:
            pass
        else:
            if out.is_finite():
                if out and out.adjusted() >= MAX_DECIMAL_EXP:
                    raise BybitParseError(topic, f"number out of range in field '{key}': {v!r}", key, v)
                return out
    raise BybitParseError(topic, f"bad number in field '{key}': {v!r}", key, v)


def _dec(d: Mapping[str, Any], key: str, topic: str) -> Decimal:
    return _to_dec(_req(d, key, topic), key, topic)


def _dec_opt(d: Mapping[str, Any], key: str, topic: str) -> Decimal | None:
    """A decimal field that may be absent, null or "" (Bybit's "no value")."""
    v = d.get(key)
    return None if v is None or v == "" else _to_dec(v, key, topic)


def _dec_or_zero(d: Mapping[str, Any], key: str, topic: str) -> Decimal:
    v = _dec_opt(d, key, topic)
    return _ZERO if v is None else v


def _nonneg_dec(d: Mapping[str, Any], key: str, topic: str) -> Decimal:
    out = _dec(d, key, topic)
    if out < 0:
        raise BybitParseError(topic, f"negative value in field '{key}': {d[key]!r}", key, d[key])
    return out


def _positive_or_none(v: Decimal | None) -> Decimal | None:
    return v if v is not None and v > 0 else None


def _to_int(v: Any, key: str, topic: str) -> int:
    out: int | None = None
    if isinstance(v, int) and not isinstance(v, bool):
        out = v
    elif isinstance(v, str) and v.isascii() and v.lstrip("-").isdigit():
        out = int(v)
    if out is None:
        raise BybitParseError(topic, f"bad integer in field '{key}': {v!r}", key, v)
    if not -MAX_INT64 <= out <= MAX_INT64:
        raise BybitParseError(topic, f"integer out of range in field '{key}': {v!r}", key, v)
    return out


def _int(d: Mapping[str, Any], key: str, topic: str) -> int:
    return _to_int(_req(d, key, topic), key, topic)


def _ts_ns(d: Mapping[str, Any], key: str, topic: str) -> int:
    """A ms timestamp field → ns; must be in [0, year 2262]."""
    ms = _int(d, key, topic)
    if not 0 <= ms <= MAX_TS_MS:
        raise BybitParseError(topic, f"timestamp out of range in field '{key}': {d[key]!r}", key, d[key])
    return ms * NS_PER_MS


def _str(d: Mapping[str, Any], key: str, topic: str) -> str:
    v = _req(d, key, topic)
    if not isinstance(v, str):
        raise BybitParseError(topic, f"bad text in field '{key}': {v!r}", key, v)
    return v


def _str_opt(d: Mapping[str, Any], key: str) -> str:
    v = d.get(key)
    return v if isinstance(v, str) else ""


def _to_float(v: Any, key: str, topic: str, *, positive: bool = False, signed: bool = False) -> float:
    """A finite float; >= 0 unless `signed`, > 0 with `positive`."""
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        try:
            out = float(v)
        except ValueError:
            pass
        else:
            if out - out == 0.0 and (out > 0.0 if positive else (signed or out >= 0.0)):
                return out
            raise BybitParseError(topic, f"number out of range in field '{key}': {v!r}", key, v)
    raise BybitParseError(topic, f"bad number in field '{key}': {v!r}", key, v)


def _float(d: Mapping[str, Any], key: str, topic: str, *, positive: bool = False) -> float:
    return _to_float(_req(d, key, topic), key, topic, positive=positive)


def _float_opt(d: Mapping[str, Any], key: str, topic: str, *, signed: bool = False) -> float | None:
    """A float field that may be absent, null or "" (Bybit's "no value")."""
    v = d.get(key)
    if v is None or v == "":
        return None
    return _to_float(v, key, topic, signed=signed)


def _list(d: Mapping[str, Any], key: str, topic: str) -> list[Any]:
    v = _req(d, key, topic)
    if not isinstance(v, list):
        raise BybitParseError(topic, f"field '{key}' is not a list: {v!r:.80}", key, v)
    return v


def _result(body: Any, topic: str) -> Mapping[str, Any]:
    """`result` of an envelope, or the object itself when it is already the result."""
    if isinstance(body, Mapping) and "retCode" in body and "result" in body:
        body = body["result"]
    return _obj(body, topic, "result")


def _cursor(result: Mapping[str, Any]) -> str | None:
    c = result.get("nextPageCursor")
    return c if isinstance(c, str) and c else None


_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}
_BUY, _SELL = Side.BUY, Side.SELL


def _side(d: Mapping[str, Any], key: str, topic: str) -> Side:
    v = _req(d, key, topic)
    side = _SIDES.get(v) if isinstance(v, str) else None
    if side is None:
        raise BybitParseError(topic, f"bad side in field '{key}': {v!r}", key, v)
    return side


ORDER_STATUS = {
    "Created": OrderStatus.ACCEPTED,  # accepted by the system, not yet through matching
    "New": OrderStatus.ACCEPTED,
    "Untriggered": OrderStatus.ACCEPTED,  # conditional order waiting for its trigger
    "Triggered": OrderStatus.ACCEPTED,
    "Active": OrderStatus.ACCEPTED,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "PartiallyFilledCanceled": OrderStatus.CANCELED,  # spot: the rest was cancelled
    "Deactivated": OrderStatus.CANCELED,  # conditional order cancelled before its trigger
    "Rejected": OrderStatus.REJECTED,
}
ORDER_TYPES = {"Limit": OrderType.LIMIT, "Market": OrderType.MARKET}
_NO_REASON = frozenset({"", "EC_NoError", "UNKNOWN"})


def _status(d: Mapping[str, Any], key: str, topic: str) -> OrderStatus:
    v = _req(d, key, topic)
    st = ORDER_STATUS.get(v) if isinstance(v, str) else None
    if st is None:
        raise BybitParseError(topic, f"unknown order status in field '{key}': {v!r}", key, v)
    return st


def _order_type(d: Mapping[str, Any], topic: str) -> OrderType:
    v = _req(d, "orderType", topic)
    ot = ORDER_TYPES.get(v) if isinstance(v, str) else None
    if ot is None:
        raise BybitParseError(topic, f"unknown order type in field 'orderType': {v!r}", "orderType", v)
    if ot is OrderType.LIMIT and d.get("timeInForce") == "PostOnly":
        return OrderType.LIMIT_MAKER
    return ot


def _where(topic: str, n: int | None) -> str:
    return topic if n is None else f"{topic}[{n}]"


# ---------------------------------------------------------------- REST: market


def parse_server_time(body: Any) -> int:
    """GET /v5/market/time → server time in ms (from `timeNano`, else `timeSecond`)."""
    topic = "market/time"
    r = _result(body, topic)
    nano = r.get("timeNano")
    if nano not in (None, ""):
        ns = _to_int(nano, "timeNano", topic)
        if ns < 0:
            raise BybitParseError(topic, f"negative timestamp in field 'timeNano': {nano!r}", "timeNano", nano)
        return ns // NS_PER_MS
    sec = _int(r, "timeSecond", topic)
    if not 0 <= sec <= MAX_TS_MS // 1000:
        raise BybitParseError(topic, f"timestamp out of range in field 'timeSecond': {sec!r}", "timeSecond", sec)
    return sec * 1000


KLINE_INTERVAL_S = {
    "1": 60, "3": 180, "5": 300, "15": 900, "30": 1800, "60": 3600, "120": 7200, "240": 14400,
    "360": 21600, "720": 43200, "D": 86400, "W": 604800,
}  # "M" (a calendar month) has no fixed length: not supported
INTERVAL_NAMES = {s: name for name, s in KLINE_INTERVAL_S.items()}


def parse_klines(
    body: Any, instrument_id: InstrumentId, interval_s: int, ts_init_ns: int, *, now_ms: int | None = None
) -> list[Bar]:
    """GET /v5/market/kline → closed Bars, OLDEST FIRST (Bybit lists newest first).

    Rows are `[startTime, open, high, low, close, volume, turnover]`. With `now_ms`, a row
    whose bar has not closed yet (start + interval > now) is dropped. Duplicate start
    times keep one row; prices must be > 0, high >= low.
    """
    topic = "market/kline"
    rows = _list(_result(body, topic), "list", topic)
    interval_ms = interval_s * 1000
    by_start: dict[int, Bar] = {}
    for n, row in enumerate(rows):
        where = f"{topic} list[{n}]"
        if not isinstance(row, list) or len(row) < 6:
            raise BybitParseError(where, f"expected [start, open, high, low, close, volume, ...], got {row!r:.120}",
                                  f"list[{n}]", row)
        start_ms = _to_int(row[0], "startTime", where)
        if not 0 <= start_ms <= MAX_TS_MS:
            raise BybitParseError(where, f"timestamp out of range in field 'startTime': {row[0]!r}", "startTime", row[0])
        o, h, lo, c = (_to_float(row[i], name, where, positive=True)
                       for i, name in ((1, "open"), (2, "high"), (3, "low"), (4, "close")))
        v = _to_float(row[5], "volume", where)
        if h < lo or not lo <= o <= h or not lo <= c <= h:
            raise BybitParseError(where, f"inconsistent OHLC {row[1:5]!r}", "high", row[2])
        if now_ms is not None and start_ms + interval_ms > now_ms:
            continue
        by_start[start_ms] = Bar(ts_event_ns=start_ms * NS_PER_MS, ts_init_ns=ts_init_ns, instrument_id=instrument_id,
                                 interval_s=interval_s, open=o, high=h, low=lo, close=c, volume=v)
    return [by_start[k] for k in sorted(by_start)]


def bars_to_arrays(bars: list[Bar], interval_s: int, path: str) -> Any:
    """Bars (oldest first) → `marketdata.replay.BarArrays` (what history_bars returns)."""
    import numpy as np

    from nautilus_hmm.marketdata.replay import BarArrays

    n = len(bars)
    return BarArrays(np.fromiter((b.ts_event_ns for b in bars), dtype=np.int64, count=n),
                     *(np.fromiter((getattr(b, f) for b in bars), dtype=np.float64, count=n)
                       for f in ("open", "high", "low", "close", "volume")),
                     interval_s, path)


def parse_orderbook(body: Any, ids: IdFactory | str, ts_init_ns: int) -> BookUpdate:
    """GET /v5/market/orderbook → a snapshot BookUpdate (`depth` = levels per side asked for is unknown: 0)."""
    topic = "market/orderbook"
    r = _result(body, topic)
    ids = id_factory(ids)
    cts = r.get("cts")
    return BookUpdate(
        instrument_id=ids(_str(r, "s", topic)), depth=0, is_snapshot=True,
        update_id=_int(r, "u", topic), seq=_int(r, "seq", topic),
        bids=_levels_checked(r, "b", topic), asks=_levels_checked(r, "a", topic),
        ts_event_ns=_ts_ns(r, "ts", topic), ts_init_ns=ts_init_ns,
        cts_ns=_ts_ns(r, "cts", topic) if cts is not None else None,
    )


def parse_tickers(body: Any, ids: IdFactory | str, ts_init_ns: int, ts_event_ns: int | None = None) -> list[Ticker]:
    """GET /v5/market/tickers → Tickers (spot has bid1/ask1 here, unlike the spot stream)."""
    topic = "market/tickers"
    ids = id_factory(ids)
    r = _result(body, topic)
    ts = ts_event_ns if ts_event_ns is not None else ts_init_ns
    return [_ticker_from(_obj(t, topic), ids, ts, ts_init_ns, f"{topic} list[{n}]")
            for n, t in enumerate(_list(r, "list", topic))]


def parse_recent_trades(body: Any, ids: IdFactory | str, ts_init_ns: int) -> list[TradeTick]:
    """GET /v5/market/recent-trade → TradeTicks, oldest first (Bybit lists newest first)."""
    topic = "market/recent-trade"
    ids = id_factory(ids)
    out: list[TradeTick] = []
    for n, t in enumerate(_list(_result(body, topic), "list", topic)):
        where = f"{topic} list[{n}]"
        t = _obj(t, where)
        out.append(TradeTick(ts_event_ns=_ts_ns(t, "time", where), ts_init_ns=ts_init_ns,
                             instrument_id=ids(_str(t, "symbol", where)), price=_float(t, "price", where, positive=True),
                             size=_float(t, "size", where, positive=True), aggressor=_side(t, "side", where),
                             trade_id=_str(t, "execId", where)))
    out.sort(key=lambda x: x.ts_event_ns)
    return out


# ---------------------------------------------------------------- REST: instruments

# Bybit's default (VIP 0) rates; replaced by account rates from /v5/account/fee-rate.
DEFAULT_FEES = {
    Category.SPOT: (Decimal("0.001"), Decimal("0.001")),
    Category.LINEAR: (Decimal("0.0002"), Decimal("0.00055")),
}
PERPETUAL_CONTRACT_TYPES = frozenset({"LinearPerpetual"})


def _plain(d: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent form ("0.10" → 0.1, "100.00" → 100)."""
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


def instrument_from_info(item: Any, category: Category | str, venue: str | None = None) -> Instrument:
    """One instruments-info `list[]` item → Instrument; BybitParseError if this node cannot trade it.

    Spot: tick `priceFilter.tickSize`, step `lotSizeFilter.basePrecision`, min notional
    `minOrderAmt`, market max `maxMarketOrderQty`. Linear: step `qtyStep`, min notional
    `minNotionalValue`, market max `maxMktOrderQty`; only `LinearPerpetual` contracts.
    An instrument whose `status` is not `Trading` is kept with `tradable=False`.
    """
    cat = Category(category)
    topic = "market/instruments-info"
    item = _obj(item, topic)
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise BybitParseError(topic, f"item without a symbol: {dict(item)!r:.200}", "symbol", symbol)
    where = f"{topic} {symbol}"
    if cat is Category.LINEAR:
        ctype = item.get("contractType")
        if not isinstance(ctype, str) or ctype not in PERPETUAL_CONTRACT_TYPES:
            raise BybitParseError(where, f"contractType {ctype!r} is not a linear perpetual", "contractType", ctype)
    pf = _obj(_req(item, "priceFilter", where), where, "priceFilter")
    lot = _obj(_req(item, "lotSizeFilter", where), where, "lotSizeFilter")
    tick = _plain(_dec(pf, "tickSize", f"{where} priceFilter"))
    lot_where = f"{where} lotSizeFilter"
    step = _plain(_dec(lot, "basePrecision" if cat is Category.SPOT else "qtyStep", lot_where))
    if tick <= 0 or step <= 0:
        raise BybitParseError(where, f"tickSize {tick} / step {step} must be > 0", "tickSize", str(tick))
    if cat is Category.SPOT:
        min_notional = _dec_opt(lot, "minOrderAmt", lot_where)
        market_max = _dec_opt(lot, "maxMarketOrderQty", lot_where)
        max_qty = _dec_opt(lot, "maxLimitOrderQty", lot_where) or _dec_opt(lot, "maxOrderQty", lot_where)
    else:
        min_notional = _dec_opt(lot, "minNotionalValue", lot_where)
        market_max = _dec_opt(lot, "maxMktOrderQty", lot_where)
        max_qty = _dec_opt(lot, "maxOrderQty", lot_where)
    base, quote = item.get("baseCoin"), item.get("quoteCoin")
    if not isinstance(base, str) or not base or not isinstance(quote, str) or not quote:
        raise BybitParseError(where, f"baseCoin/quoteCoin missing: {base!r}/{quote!r}", "baseCoin", base)
    maker, taker = DEFAULT_FEES[cat]
    return Instrument(
        id=InstrumentId(venue or cat.default_venue, symbol),
        base_asset=base,
        quote_asset=quote,
        kind=InstrumentKind.SPOT if cat is Category.SPOT else InstrumentKind.PERPETUAL,
        tick_size=tick,
        step_size=step,
        min_qty=_plain(_nonneg_dec(lot, "minOrderQty", lot_where)),
        max_qty=_positive_or_none(max_qty),
        min_notional=min_notional if min_notional is not None and min_notional > 0 else _ZERO,
        maker_fee=maker,
        taker_fee=taker,
        market_max_qty=_positive_or_none(market_max),
        tradable=item.get("status") == "Trading",
    )


def parse_instruments(
    body: Any, venue: str, category: Category | str | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> tuple[dict[InstrumentId, Instrument], str | None]:
    """GET /v5/market/instruments-info page → ({id: Instrument}, next cursor or None).

    The category is `category`, else the result's `category`, else the venue name's
    suffix. Items this node cannot trade (not a linear perpetual, no filters ...) are
    left out; pass a list as `skipped` to receive (symbol, reason) for each.
    """
    topic = "market/instruments-info"
    r = _result(body, topic)
    cat = Category(category) if category is not None else (
        Category(r["category"]) if r.get("category") in ("spot", "linear") else category_of(venue))
    out: dict[InstrumentId, Instrument] = {}
    for item in _list(r, "list", topic):
        try:
            inst = instrument_from_info(item, cat, venue)
        except BybitParseError as exc:
            if skipped is not None:
                sym = item.get("symbol") if isinstance(item, Mapping) else None
                skipped.append((str(sym) if sym else "?", str(exc)))
            continue
        out[inst.id] = inst
    return out, _cursor(r)


def parse_fee_rates(body: Any) -> dict[str, tuple[Decimal, Decimal]]:
    """GET /v5/account/fee-rate → {symbol: (maker, taker)}."""
    topic = "account/fee-rate"
    out: dict[str, tuple[Decimal, Decimal]] = {}
    for n, row in enumerate(_list(_result(body, topic), "list", topic)):
        where = f"{topic} list[{n}]"
        row = _obj(row, where)
        out[_str(row, "symbol", where)] = (_dec(row, "makerFeeRate", where), _dec(row, "takerFeeRate", where))
    return out


# ---------------------------------------------------------------- REST + WS: orders, executions, positions, wallet


def order_from_item(item: Any, ids: IdFactory, topic: str = "order") -> VenueOrder:
    """One order object (order/realtime, order/history, the private `order` topic) → VenueOrder."""
    d = _obj(item, topic)
    avg = _positive_or_none(_dec_opt(d, "avgPrice", topic))
    filled = _dec_opt(d, "cumExecQty", topic) or _ZERO
    if filled < 0:
        raise BybitParseError(topic, f"negative value in field 'cumExecQty': {d['cumExecQty']!r}", "cumExecQty",
                              d["cumExecQty"])
    reason = _str_opt(d, "rejectReason")
    if reason in _NO_REASON:
        reason = _str_opt(d, "cancelType")
        if reason in _NO_REASON:
            reason = ""
    order_type = _order_type(d, topic)
    qty = _nonneg_dec(d, "qty", topic)
    if d.get("marketUnit") == "quoteCoin" and order_type is OrderType.MARKET:
        # A spot market order sized in quote currency (not one of ours: the node sends
        # marketUnit=baseCoin): its size in base units is what it executed.
        reason = "; ".join(r for r in (reason, f"qty {d['qty']} in quote coin") if r)
        qty = filled
    return VenueOrder(
        client_order_id=_str_opt(d, "orderLinkId"),
        venue_order_id=_str(d, "orderId", topic),
        instrument_id=ids(_str(d, "symbol", topic)),
        side=_side(d, "side", topic),
        order_type=order_type,
        status=_status(d, "orderStatus", topic),
        quantity=qty,
        filled_qty=filled,
        avg_px=avg if filled > 0 else None,
        price=_positive_or_none(_dec_opt(d, "price", topic)),
        ts_ns=_ts_ns(d, "updatedTime", topic) if d.get("updatedTime") not in (None, "")
        else _ts_ns(d, "createdTime", topic),
        reason=reason,
    )


def parse_order(item: Any, venue: IdFactory | str) -> VenueOrder:
    """One order object → VenueOrder (orderLinkId is the client order id; "" if none)."""
    return order_from_item(item, id_factory(venue))


def parse_orders(body: Any, venue: IdFactory | str) -> tuple[list[VenueOrder], str | None]:
    """GET /v5/order/realtime or /v5/order/history → (VenueOrders, next cursor or None)."""
    topic = "order/list"
    ids = id_factory(venue)
    r = _result(body, topic)
    rows = _list(r, "list", topic)
    return [order_from_item(row, ids, f"{topic} list[{n}]") for n, row in enumerate(rows)], _cursor(r)


def parse_order_ack(body: Any) -> OrderAck:
    """POST /v5/order/create | cancel | amend → OrderAck(orderId, orderLinkId)."""
    topic = "order/ack"
    r = _result(body, topic)
    return OrderAck(order_id=_str(r, "orderId", topic), order_link_id=_str_opt(r, "orderLinkId"))


def parse_cancel_all(body: Any) -> list[OrderAck]:
    """POST /v5/order/cancel-all → the cancelled orders' ids."""
    topic = "order/cancel-all"
    r = _result(body, topic)
    return [parse_order_ack(_obj(row, f"{topic} list[{n}]")) for n, row in enumerate(_list(r, "list", topic))]


FILL_EXEC_TYPES = frozenset({"Trade"})
# Executions that move a position without being a fill of our order: reconcile when seen.
POSITION_MOVING_EXEC_TYPES = frozenset({"AdlTrade", "BustTrade", "Delivery", "BlockTrade", "MovePosition"})


def _settle_coin(symbol: str) -> str:
    """Fee coin of a linear contract when `feeCurrency` is empty: USDT perps in USDT, USDC ones (…PERP) in USDC."""
    if symbol.endswith("USDT"):
        return "USDT"
    if symbol.endswith("PERP") or symbol.endswith("USDC") or "-" in symbol:
        return "USDC"
    return ""


def fill_from_execution(item: Mapping[str, Any], ids: IdFactory, category: Category, topic: str) -> VenueFill:
    """One execution object (REST execution/list or the private `execution` topic) → VenueFill."""
    symbol = _str(item, "symbol", topic)
    qty = _dec(item, "execQty", topic)
    price = _dec(item, "execPrice", topic)
    if qty <= 0 or price <= 0:
        key = "execQty" if qty <= 0 else "execPrice"
        raise BybitParseError(topic, f"fill needs a positive '{key}': {item[key]!r}", key, item[key])
    fee_asset = _str_opt(item, "feeCurrency")
    if not fee_asset and category is Category.LINEAR:
        fee_asset = _settle_coin(symbol)
    maker = item.get("isMaker")
    if not isinstance(maker, bool):
        raise BybitParseError(topic, f"bad boolean in field 'isMaker': {maker!r}", "isMaker", maker)
    return VenueFill(
        instrument_id=ids(symbol),
        client_order_id=_str_opt(item, "orderLinkId"),
        venue_order_id=_str(item, "orderId", topic),
        trade_id=_str(item, "execId", topic),
        side=_side(item, "side", topic),
        qty=qty,
        price=price,
        fee=_dec_or_zero(item, "execFee", topic),
        fee_asset=fee_asset,
        liquidity=Liquidity.MAKER if maker else Liquidity.TAKER,
        ts_ns=_ts_ns(item, "execTime", topic),
    )


def _executions(
    rows: Iterable[tuple[int, Any]], ids: IdFactory, category: Category, topic: str, list_name: str = "data"
) -> tuple[list[VenueFill], list[tuple[str, str]]]:
    """(index, item) pairs → (fills of execType Trade, (execId, execType) of the others)."""
    fills: list[VenueFill] = []
    ignored: list[tuple[str, str]] = []
    for n, row in rows:
        where = f"{topic} {list_name}[{n}]"
        row = _obj(row, where)
        exec_type = _str(row, "execType", where)
        if exec_type not in FILL_EXEC_TYPES:
            ignored.append((_str_opt(row, "execId"), exec_type))
            continue
        fills.append(fill_from_execution(row, ids, category, where))
    return fills, ignored


def parse_executions(
    body: Any, venue: IdFactory | str, category: Category | str | None = None
) -> tuple[list[VenueFill], str | None]:
    """GET /v5/execution/list → (fills, next cursor or None). Only execType Trade; execId is the trade id.

    Bybit lists executions newest first; the fills are returned oldest first.
    """
    topic = "execution/list"
    r = _result(body, topic)
    cat = Category(category) if category is not None else (
        Category(r["category"]) if r.get("category") in ("spot", "linear")
        else category_of(venue) if isinstance(venue, str) else Category.LINEAR)
    fills, _ = _executions(enumerate(_list(r, "list", topic)), id_factory(venue), cat, topic, "list")
    fills.sort(key=lambda f: f.ts_ns)
    return fills, _cursor(r)


def position_from_item(item: Any, ids: IdFactory, topic: str = "position") -> BybitPosition:
    """One position object (REST position/list: `avgPrice`; the `position` topic: `entryPrice`) → BybitPosition."""
    d = _obj(item, topic)
    size = _nonneg_dec(d, "size", topic)
    side = d.get("side")
    if side == "Buy":
        qty = size
    elif side == "Sell":
        qty = -size
    elif side in ("", "None", None) and size == 0:
        qty = _ZERO
    else:
        raise BybitParseError(topic, f"bad side in field 'side': {side!r} with size {d.get('size')!r}", "side", side)
    entry = _dec_opt(d, "avgPrice", topic) if "avgPrice" in d else _dec_opt(d, "entryPrice", topic)
    idx = d.get("positionIdx", 0)
    return BybitPosition(
        instrument_id=ids(_str(d, "symbol", topic)),
        qty=qty,
        avg_price=entry if entry is not None else _ZERO,
        unrealized_pnl=_dec_or_zero(d, "unrealisedPnl", topic),
        realized_pnl=_dec_or_zero(d, "cumRealisedPnl", topic),
        cur_realized_pnl=_dec_or_zero(d, "curRealisedPnl", topic),
        position_idx=_to_int(idx, "positionIdx", topic),
        ts_ns=_ts_ns(d, "updatedTime", topic) if d.get("updatedTime") not in (None, "") else 0,
        mark_price=_positive_or_none(_dec_opt(d, "markPrice", topic)),
        leverage=_positive_or_none(_dec_opt(d, "leverage", topic)),
    )


def parse_positions(body: Any, venue: IdFactory | str) -> tuple[list[BybitPosition], str | None]:
    """GET /v5/position/list → (positions, next cursor or None); flat positions (size 0) included."""
    topic = "position/list"
    ids = id_factory(venue)
    r = _result(body, topic)
    rows = _list(r, "list", topic)
    return [position_from_item(row, ids, f"{topic} list[{n}]") for n, row in enumerate(rows)], _cursor(r)


def net_positions(positions: Iterable[BybitPosition]) -> dict[InstrumentId, Decimal]:
    """Signed base quantity per instrument (one-way mode: one row each; hedge rows are summed); flat ones left out."""
    out: dict[InstrumentId, Decimal] = {}
    for p in positions:
        if p.qty:
            out[p.instrument_id] = out.get(p.instrument_id, _ZERO) + p.qty
    return {k: v for k, v in out.items() if v}


def _balances(accounts: Iterable[Any], topic: str, list_name: str = "list") -> dict[str, Balance]:
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for n, acct in enumerate(accounts):
        acct = _obj(acct, f"{topic} {list_name}[{n}]")
        for m, c in enumerate(_list(acct, "coin", f"{topic} {list_name}[{n}]")):
            where = f"{topic} {list_name}[{n}].coin[{m}]"
            c = _obj(c, where)
            coin = _str(c, "coin", where)
            total = _dec_or_zero(c, "walletBalance", where)
            locked = _dec_or_zero(c, "locked", where)
            if locked < 0:
                raise BybitParseError(where, f"negative value in field 'locked': {c['locked']!r}", "locked", c["locked"])
            t0, l0 = totals.get(coin, (_ZERO, _ZERO))
            totals[coin] = (t0 + total, l0 + locked)
    return {coin: Balance(coin, total - locked, locked) for coin, (total, locked) in totals.items()}


def parse_wallet_balance(body: Any) -> dict[str, Balance]:
    """GET /v5/account/wallet-balance → {coin: Balance}: locked = `locked` (spot orders), free = walletBalance - locked."""
    topic = "account/wallet-balance"
    return _balances(_list(_result(body, topic), "list", topic), topic)


# ---------------------------------------------------------------- WebSocket

_HOT_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
_NUMBER_BYTES = b"0123456789.-+eE"  # what a price or size text is made of
_SKELETONS: dict[int, bytes] = {}  # level count → `[["",""],...]`


def _level_array_end(raw: bytes, start: int) -> int:
    """End (exclusive) of the level array that opens at `start` (its `[`), or -1."""
    if raw.startswith(b"[]", start):
        return start + 2
    end = raw.find(b"]]", start)
    return -1 if end < 0 else end + 2


def _plain_levels(seg: bytes) -> bool:
    """True when `seg` is exactly `[["x","y"],...]` (or `[]`) with x, y made of number characters.

    Without the number characters, n such levels leave exactly the skeleton
    `[["",""],...]` (8n + 1 bytes): no string holds a bracket, comma, quote or letter
    that removing the quotes could turn into structure or a JSON literal.
    """
    skeleton = seg.translate(None, _NUMBER_BYTES)
    n, rest = divmod(len(skeleton) - 1, 8)
    if rest or n == 0:
        return skeleton == b"[]"
    expected = _SKELETONS.get(n)
    if expected is None:
        expected = b"[" + b",".join([b'["",""]'] * n) + b"]"
        if n <= 4096:
            _SKELETONS[n] = expected
    return skeleton == expected


def _unquote_levels(raw: bytes) -> bytes | None:
    """An orderbook frame with the quotes around its level numbers removed, or None.

    Bybit sends prices and sizes as JSON strings; float() on ~100 strings a frame is most
    of the parse cost. Without the quotes orjson parses the numbers in C. Only the plain
    shape is rewritten (`"b":[...]` before `"a":[...]`, nothing in them but quoted
    numbers); anything else returns None and the frame is decoded as sent. The result
    parses to the same levels as the frame itself: a number text orjson does not take
    ("+1", "01", "1.") fails the decode, and every failure is parsed again as sent.
    """
    bi = raw.find(b'"b":[')
    if bi < 0:
        return None
    ai = raw.find(b'"a":[', bi)
    if ai < 0:
        return None
    b_end = _level_array_end(raw, bi + 4)
    a_end = _level_array_end(raw, ai + 4)
    if b_end < 0 or a_end < 0 or b_end > ai:
        return None
    seg_b, seg_a = raw[bi + 4:b_end], raw[ai + 4:a_end]
    if not (_plain_levels(seg_b) and _plain_levels(seg_a)):
        return None
    return b"".join((raw[:bi + 4], seg_b.replace(b'"', b""), raw[b_end:ai + 4], seg_a.replace(b'"', b""),
                     raw[a_end:]))
_BOOK_TYPES = {"snapshot": True, "delta": False}


def _check_levels(levels: list[Level], key: str, topic: str, raw: list[Any]) -> None:
    for p, q in levels:
        # NaN fails every comparison; inf fails `< _INF`.
        if not (0.0 < p < _INF and 0.0 <= q < _INF):
            i = next(i for i, (p2, q2) in enumerate(levels) if not (0.0 < p2 < _INF and 0.0 <= q2 < _INF))
            raise BybitParseError(topic, f"bad level in field 'data.{key}[{i}]': {raw[i]!r}", f"data.{key}", raw[i])


def _levels_checked(d: Mapping[str, Any], key: str, topic: str) -> list[Level]:
    raw = _list(d, key, topic)
    out: list[Level] = []
    for i, lvl in enumerate(raw):
        if not isinstance(lvl, list) or len(lvl) != 2:
            raise BybitParseError(topic, f"bad level in field 'data.{key}[{i}]': {lvl!r:.80}", f"data.{key}", lvl)
        try:
            out.append((float(lvl[0]), float(lvl[1])))
        except (TypeError, ValueError):
            raise BybitParseError(topic, f"bad level in field 'data.{key}[{i}]': {lvl!r:.80}", f"data.{key}", lvl) from None
    _check_levels(out, key, topic, raw)
    return out


def _ticker_from(d: Mapping[str, Any], ids: IdFactory, ts_event_ns: int, ts_init_ns: int, topic: str) -> Ticker:
    nft = d.get("nextFundingTime")
    return Ticker(
        instrument_id=ids(_str(d, "symbol", topic)),
        ts_event_ns=ts_event_ns,
        ts_init_ns=ts_init_ns,
        last_price=_float_opt(d, "lastPrice", topic),
        bid=_float_opt(d, "bid1Price", topic),
        bid_size=_float_opt(d, "bid1Size", topic),
        ask=_float_opt(d, "ask1Price", topic),
        ask_size=_float_opt(d, "ask1Size", topic),
        mark_price=_float_opt(d, "markPrice", topic),
        index_price=_float_opt(d, "indexPrice", topic),
        funding_rate=_float_opt(d, "fundingRate", topic, signed=True),
        next_funding_ms=_to_int(nft, "nextFundingTime", topic) if nft not in (None, "") else None,
    )


# Topics known and deliberately not used: they parse to None.
IGNORED_TOPICS = frozenset({
    "execution.fast",  # trades without fees: `execution` is the one the node books
    "greeks", "dcp", "liquidation", "allLiquidation", "insurance", "priceLimit", "adlAlert",
    "tickers_lt", "kline_lt", "lt",
})
PRIVATE_TOPICS = frozenset({"order", "execution", "position", "wallet"})


class BybitParser:
    """Decodes and dispatches frames of one Bybit category; holds the venue's id cache and ticker state.

    Public topics of another category cannot arrive (one connection per category);
    private items of another category are skipped and counted in `foreign_items`.
    """

    __slots__ = ("_book_topics", "_tickers", "category", "foreign_items", "ids", "venue")

    def __init__(self, category: Category | str, venue: str | None = None) -> None:
        self.category = Category(category)
        self.venue = venue or self.category.default_venue
        self.ids = InstrumentIds(self.venue)
        self.foreign_items = 0
        self._book_topics: dict[str, tuple[int, InstrumentId, str]] = {}
        self._tickers: dict[str, dict[str, Any]] = {}

    @staticmethod
    def decode(raw: bytes | bytearray | memoryview | str) -> Any:
        """orjson decode; not JSON → BybitParseError quoting the start of the frame."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            head = bytes(raw[:120]) if not isinstance(raw, str) else raw[:120]
            raise BybitParseError("frame", f"not JSON ({exc}): {head!r}", "frame", head) from None

    def parse(self, raw: bytes | bytearray | memoryview | str, ts_init_ns: int) -> BybitEvent | None:
        """Parse one raw frame. None = a known topic the node does not use (or nothing of this category)."""
        if type(raw) is bytes and raw.find(b'"orderbook.', 0, 48) >= 0:
            fast = _unquote_levels(raw)
            if fast is not None:
                try:
                    return self.event(orjson.loads(fast), ts_init_ns)
                except (orjson.JSONDecodeError, BybitParseError):
                    pass  # parsed again as sent: the error then quotes the frame's own text
        return self.event(self.decode(raw), ts_init_ns)

    def event(self, d: Any, ts_init_ns: int) -> BybitEvent | None:
        """Parse one decoded frame."""
        if type(d) is not dict:
            raise BybitParseError("frame", f"expected a JSON object, got {type(d).__name__}", "frame", d)
        topic = d.get("topic")
        if topic is not None:
            if type(topic) is not str:
                raise BybitParseError("frame", f"bad text in field 'topic': {topic!r}", "topic", topic)
            if topic.startswith("orderbook."):
                return self.book(d, topic, ts_init_ns)
            return self._topic(d, topic, ts_init_ns)
        op = d.get("op")
        if op is not None:
            return self._control(d, op)
        raise BybitParseError("frame", f"no 'topic' or 'op' in frame with keys {sorted(d)[:12]}", "topic")

    # ------------------------------------------------------------ public

    def _book_topic(self, topic: str) -> tuple[int, InstrumentId, str]:
        parts = topic.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2]:
            raise BybitParseError(topic, f"bad orderbook topic {topic!r}: expected orderbook.<depth>.<symbol>",
                                  "topic", topic)
        meta = (int(parts[1]), self.ids(parts[2]), parts[2])
        if len(self._book_topics) < MAX_CACHED_SYMBOLS:
            self._book_topics[topic] = meta
        return meta

    def book(self, d: dict[str, Any], topic: str, ts_init_ns: int) -> BookUpdate:
        """`orderbook.{depth}.{symbol}` frame → BookUpdate (the hot path)."""
        meta = self._book_topics.get(topic) or self._book_topic(topic)
        try:
            data = d["data"]
            is_snapshot = _BOOK_TYPES[d["type"]]
            raw_b, raw_a = data["b"], data["a"]
            bids = [(float(p), float(q)) for p, q in raw_b]
            asks = [(float(p), float(q)) for p, q in raw_a]
            u, seq, ts = data["u"], data["seq"], d["ts"]
            if (type(u) is not int or type(seq) is not int or type(ts) is not int or data["s"] != meta[2]
                    or not (0 <= u <= MAX_INT64 and 0 <= seq <= MAX_INT64 and 0 <= ts <= MAX_TS_MS)):
                raise ValueError
        except _HOT_ERRORS:
            raise self._diagnose_book(d, topic, meta[2]) from None
        _check_levels(bids, "b", topic, raw_b)
        _check_levels(asks, "a", topic, raw_a)
        cts = d.get("cts")
        return BookUpdate(meta[1], meta[0], is_snapshot, u, seq, bids, asks, ts * NS_PER_MS, ts_init_ns,
                          cts * NS_PER_MS if type(cts) is int and 0 <= cts <= MAX_TS_MS else None)

    @staticmethod
    def _diagnose_book(d: dict[str, Any], topic: str, symbol: str) -> BybitParseError:
        """Slow path after the hot path failed: name the offending field and value."""
        typ = d.get("type")
        if not isinstance(typ, str) or typ not in _BOOK_TYPES:
            return BybitParseError(topic, f"bad type in field 'type': {typ!r} (expected snapshot or delta)", "type", typ)
        try:
            _ts_ns(d, "ts", topic)
            data = _obj(_req(d, "data", topic), topic, "data")
            if _str(data, "s", topic) != symbol:
                return BybitParseError(topic, f"symbol in field 'data.s' {data['s']!r} does not match the topic",
                                       "data.s", data["s"])
            for key in ("u", "seq"):
                if key not in data:
                    return BybitParseError(topic, f"missing field 'data.{key}'", f"data.{key}")
                v = data[key]
                if type(v) is not int or not 0 <= v <= MAX_INT64:
                    return BybitParseError(topic, f"bad integer in field 'data.{key}': {v!r}", f"data.{key}", v)
            _levels_checked(data, "b", topic)
            _levels_checked(data, "a", topic)
        except BybitParseError as exc:
            return exc
        return BybitParseError(topic, "malformed frame", "data")

    def _topic(self, d: dict[str, Any], topic: str, ts_init_ns: int) -> BybitEvent | None:
        head, _, rest = topic.partition(".")
        if head == "publicTrade":
            return self._public_trades(d, topic, ts_init_ns)
        if head == "tickers":
            return self._ticker(d, topic, rest, ts_init_ns)
        if head == "kline":
            return self._klines(d, topic, rest, ts_init_ns)
        if topic in IGNORED_TOPICS or head in IGNORED_TOPICS:
            return None
        if head in PRIVATE_TOPICS:
            # "order", "order.spot", "order.linear" ...: a category suffix is allowed.
            if rest and rest not in ("spot", "linear", "inverse", "option", "all"):
                raise BybitParseError(topic, f"unknown topic {topic!r}", "topic", topic)
            return self._private(d, head, topic)
        raise BybitParseError(topic, f"unknown topic {topic!r}", "topic", topic)

    def _public_trades(self, d: dict[str, Any], topic: str, ts_init_ns: int) -> PublicTrades:
        rows = _list(d, "data", topic)
        out: list[TradeTick] = []
        ids = self.ids
        for n, t in enumerate(rows):
            where = f"{topic} data[{n}]"
            t = _obj(t, where)
            out.append(TradeTick(
                ts_event_ns=_ts_ns(t, "T", where), ts_init_ns=ts_init_ns, instrument_id=ids(_str(t, "s", where)),
                price=_float(t, "p", where, positive=True), size=_float(t, "v", where, positive=True),
                aggressor=_side(t, "S", where), trade_id=_str(t, "i", where),
            ))
        return PublicTrades(tuple(out))

    def _ticker(self, d: dict[str, Any], topic: str, symbol: str, ts_init_ns: int) -> Ticker:
        data = _obj(_req(d, "data", topic), topic, "data")
        ts_ns = _ts_ns(d, "ts", topic)
        typ = d.get("type", "snapshot")
        if typ == "snapshot":
            state = dict(data)
        elif typ == "delta":
            state = {**self._tickers.get(symbol, {}), **data}
        else:
            raise BybitParseError(topic, f"bad type in field 'type': {typ!r}", "type", typ)
        if state.get("symbol") != symbol:
            sym = state.get("symbol")
            raise BybitParseError(topic, f"symbol in field 'data.symbol' {sym!r} does not match the topic",
                                  "data.symbol", sym)
        ticker = _ticker_from(state, self.ids, ts_ns, ts_init_ns, topic)
        # Only after it parsed: a bad delta does not poison the state.
        if symbol in self._tickers or len(self._tickers) < MAX_CACHED_SYMBOLS:
            self._tickers[symbol] = state
        return ticker

    def _klines(self, d: dict[str, Any], topic: str, rest: str, ts_init_ns: int) -> Klines | None:
        interval, _, symbol = rest.partition(".")
        interval_s = KLINE_INTERVAL_S.get(interval)
        if interval_s is None or not symbol:
            raise BybitParseError(topic, f"unsupported kline topic {topic!r} (interval {interval!r})", "topic", topic)
        iid = self.ids(symbol)
        bars: list[Bar] = []
        for n, k in enumerate(_list(d, "data", topic)):
            where = f"{topic} data[{n}]"
            k = _obj(k, where)
            confirm = k.get("confirm")
            if not isinstance(confirm, bool):
                raise BybitParseError(where, f"bad boolean in field 'confirm': {confirm!r}", "confirm", confirm)
            start_ns = _ts_ns(k, "start", where)
            o, h, lo, c = (_float(k, f, where, positive=True) for f in ("open", "high", "low", "close"))
            v = _float(k, "volume", where)
            if not confirm:
                continue
            if h < lo or not lo <= o <= h or not lo <= c <= h:
                raise BybitParseError(where, f"inconsistent OHLC o={o} h={h} l={lo} c={c}", "high", k.get("high"))
            bars.append(Bar(ts_event_ns=start_ns, ts_init_ns=ts_init_ns, instrument_id=iid, interval_s=interval_s,
                            open=o, high=h, low=lo, close=c, volume=v))
        return Klines(tuple(bars)) if bars else None

    # ------------------------------------------------------------ private

    def _mine(self, rows: list[Any], topic: str) -> list[tuple[int, Mapping[str, Any]]]:
        out: list[tuple[int, Mapping[str, Any]]] = []
        mine = self.category.value
        for n, row in enumerate(rows):
            row = _obj(row, f"{topic} data[{n}]")
            cat = row.get("category", mine)
            if cat != mine:
                self.foreign_items += 1
                continue
            out.append((n, row))
        return out

    def _private(self, d: dict[str, Any], head: str, topic: str) -> BybitEvent | None:
        rows = _list(d, "data", topic)
        ct = d.get("creationTime")
        ts_ns = _ts_ns(d, "creationTime", topic) if ct is not None else 0
        if head == "wallet":
            return WalletUpdate(ts_ns, _balances(rows, topic, "data"))
        mine = self._mine(rows, topic)
        if not mine:
            return None
        if head == "execution":
            fills, ignored = _executions(mine, self.ids, self.category, topic)
            return Executions(ts_ns, tuple(fills), tuple(ignored))
        if head == "order":
            return OrderUpdates(ts_ns, tuple(order_from_item(r, self.ids, f"{topic} data[{n}]") for n, r in mine))
        return PositionUpdates(ts_ns, tuple(position_from_item(r, self.ids, f"{topic} data[{n}]") for n, r in mine))

    # ------------------------------------------------------------ control

    @staticmethod
    def _control(d: dict[str, Any], op: Any) -> BybitEvent:
        if not isinstance(op, str):
            raise BybitParseError("frame", f"bad text in field 'op': {op!r}", "op", op)
        conn_id = _str_opt(d, "conn_id") or _str_opt(d, "connId")
        req_id = _str_opt(d, "req_id") or _str_opt(d, "reqId")
        msg = d.get("ret_msg", d.get("retMsg"))
        msg = msg if isinstance(msg, str) else ""
        code = d.get("retCode", d.get("ret_code"))
        ret_code = _to_int(code, "retCode", op) if code is not None else None
        if op == "pong" or (op == "ping" and (msg == "pong" or d.get("success") is not None or ret_code is not None)):
            return Pong(req_id, conn_id)
        if op == "auth":
            success = d.get("success")
            ok = success is True if isinstance(success, bool) else ret_code == 0
            return AuthResult(ok, msg, ret_code, conn_id)
        if op in ("subscribe", "unsubscribe"):
            success = d.get("success")
            if not isinstance(success, bool):
                ok = ret_code == 0
                if ret_code is None:
                    raise BybitParseError(op, f"bad boolean in field 'success': {success!r}", "success", success)
            else:
                ok = success
            return SubscribeResult(op, ok, msg, req_id, conn_id)
        if op.startswith("order."):
            if ret_code is None:
                raise BybitParseError(op, "missing field 'retCode'", "retCode")
            data = d.get("data")
            data = data if isinstance(data, Mapping) else {}
            header = d.get("header")
            hdr = {str(k): str(v) for k, v in header.items()} if isinstance(header, Mapping) else {}
            return TradeResponse(req_id, op, ret_code, msg, _str_opt(data, "orderId"), _str_opt(data, "orderLinkId"),
                                 hdr, conn_id)
        raise BybitParseError(op, f"unknown op {op!r}", "op", op)
