"""Binance frames and REST bodies → neutral types (pure, no I/O).

Input is decoded JSON (dicts/lists as orjson returns them); `BinanceParser` also
decodes raw frames. Output is `messages` market data (floats), `domain.orders` order and
fill types (Decimal, from the wire string) and the small neutral types defined here.
Unknown fields are ignored. A frame that is not JSON, lacks a required field or has a
bad value raises `BinanceParseError` (a `core.errors.ParseError`) naming the event type,
the field and the value; the adapter counts, logs and skips it. Known event types that
the node does not use (24hrTicker, listStatus, TRADE_LITE, ...) parse to None.

Wire differences handled here (see the fixtures README):

* spot `trade` has `M` and no `X`; USD-M `trade` has `X` (order type). USD-M trades whose
  `X` is not MARKET (insurance fund, ADL, NA) are not market prints: they parse to None.
* spot `bookTicker` has no `e`/`E`/`T` (its event time is the receive time); USD-M has them.
* `depthUpdate`: spot U/u, USD-M U/u/pu.
* user data comes bare, wrapped `{"subscriptionId":N,"event":{...}}` (spot WS API
  subscriptions) or as a combined-stream frame `{"stream","data"}`; all three accepted.
* USD-M `listenKeyExpired` carries `E` as a string in live traffic; integers are
  accepted from strings everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from nautilus_hmm.core.errors import ParseError
from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import Balance, VenueFill, VenueOrder
from nautilus_hmm.messages import Bar, MarkPrice, QuoteTick, TradeTick
from nautilus_hmm.venues.binance.market import Market

NS_PER_MS = 1_000_000
_ZERO = Decimal(0)

IdFactory = Callable[[str], InstrumentId]
Level = tuple[float, float]


class BinanceParseError(ParseError):
    """A Binance frame could not be parsed: names the event type, the field and the value."""

    def __init__(self, event_type: str, problem: str, field: str | None = None, value: Any = None) -> None:
        self.event_type = event_type
        self.field = field
        self.value = value
        super().__init__(f"binance {event_type}: {problem}")


class InstrumentIds:
    """Cached `symbol → InstrumentId(venue, symbol)` for one venue (hot path: a dict hit)."""

    __slots__ = ("_cache", "venue")

    def __init__(self, venue: str) -> None:
        if not venue:
            raise ValueError("venue must be non-empty")
        self.venue = venue
        self._cache: dict[str, InstrumentId] = {}

    def __call__(self, symbol: str) -> InstrumentId:
        """The id of `symbol` on this venue."""
        iid = self._cache.get(symbol)
        if iid is None:
            if not isinstance(symbol, str) or not symbol:
                raise BinanceParseError("symbol", f"bad symbol {symbol!r}", "s", symbol)
            iid = self._cache[symbol] = InstrumentId(self.venue, symbol)
        return iid


def id_factory(ids: IdFactory | str) -> IdFactory:
    """An id factory from a venue name (`binance_spot` / `binance_usdm`) or an existing factory."""
    return InstrumentIds(ids) if isinstance(ids, str) else ids


# ---------------------------------------------------------------- neutral types


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """One diff-depth event: absolute quantities per price level (0 removes the level).

    `prev_final_update_id` is USD-M's `pu` (None on spot). Lists are not to be mutated.
    """

    instrument_id: InstrumentId
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int | None
    bids: list[Level]
    asks: list[Level]
    ts_event_ns: int
    ts_init_ns: int


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A REST depth snapshot (or partial-depth frame): best levels first."""

    instrument_id: InstrumentId
    last_update_id: int
    bids: list[Level]
    asks: list[Level]
    ts_event_ns: int | None
    ts_init_ns: int


@dataclass(frozen=True, slots=True)
class StreamResponse:
    """Answer to a market-stream request (SUBSCRIBE ...): `{"result":null,"id":N}` or an error."""

    request_id: int | str | None
    ok: bool
    result: Any = None
    code: int | None = None
    msg: str = ""


@dataclass(frozen=True, slots=True)
class WsApiResponse:
    """Answer to a WebSocket API request `{"id","status","result"|"error"}` (raw result)."""

    request_id: int | str | None
    status: int
    result: Any = None
    error_code: int | None = None
    error_msg: str = ""

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """The stream server is about to close the connection: reconnect now."""

    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """executionReport / ORDER_TRADE_UPDATE: the order after the event, and its fill if any.

    `venue_order_type` and `time_in_force` keep Binance's words (STOP_LOSS_LIMIT, GTX ...)
    that the neutral `OrderType` folds away. USD-M adds reduce-only, position side and the
    realized PnL of the trade.
    """

    order: VenueOrder
    fill: VenueFill | None
    execution_type: str
    venue_order_type: str
    time_in_force: str
    event_ts_ns: int
    reduce_only: bool = False
    position_side: str = ""
    realized_pnl: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AccountBalances:
    """outboundAccountPosition: the balances that changed, as of `ts_ns`."""

    ts_ns: int
    balances: tuple[Balance, ...]


@dataclass(frozen=True, slots=True)
class BalanceDelta:
    """balanceUpdate: deposit, withdrawal or transfer changed `asset` by `delta`."""

    ts_ns: int
    asset: str
    delta: Decimal


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """A USD-M position: signed quantity in base units (short < 0)."""

    instrument_id: InstrumentId
    position_side: str  # BOTH (one-way mode), LONG or SHORT (hedge mode)
    qty: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal
    ts_ns: int


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """USD-M ACCOUNT_UPDATE: changed balances (wallet balance as `free`) and positions."""

    ts_ns: int
    reason: str
    balances: tuple[Balance, ...]
    positions: tuple[VenuePosition, ...]


@dataclass(frozen=True, slots=True)
class ListenKeyExpired:
    """The user-data listenKey expired: the stream stops; create a new key and reconcile."""

    ts_ns: int
    listen_key: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class EventStreamTerminated:
    """The WS API user-data subscription ended: re-subscribe and reconcile."""

    ts_ns: int


@dataclass(frozen=True, slots=True)
class NewOrderResponse:
    """Answer to a new order. ACK responses carry no order state (`order` is None).

    FULL responses list the fills made at placement; those took liquidity (TAKER).
    """

    client_order_id: str
    venue_order_id: str
    instrument_id: InstrumentId
    ts_ns: int
    order: VenueOrder | None
    fills: tuple[VenueFill, ...] = ()


MarketEvent = TradeTick | QuoteTick | Bar | DepthDiff | DepthSnapshot | MarkPrice | StreamResponse | ServerShutdown
UserEvent = (
    OrderUpdate | AccountBalances | BalanceDelta | AccountUpdate | ListenKeyExpired
    | EventStreamTerminated | WsApiResponse
)


# ---------------------------------------------------------------- field helpers


def _req(d: Any, key: str, ev: str) -> Any:
    try:
        v = d[key]
    except KeyError:
        raise BinanceParseError(ev, f"missing field '{key}'", key) from None
    except TypeError:
        raise BinanceParseError(ev, f"expected a JSON object, got {type(d).__name__}") from None
    if v is None:
        raise BinanceParseError(ev, f"field '{key}' is null", key)
    return v


def _to_dec(v: Any, key: str, ev: str) -> Decimal:
    if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
        try:
            out = Decimal(v)
        except InvalidOperation:
            pass
        else:
            if out.is_finite():
                return out
    raise BinanceParseError(ev, f"bad decimal in field '{key}': {v!r}", key, v)


def _dec(d: Any, key: str, ev: str) -> Decimal:
    return _to_dec(_req(d, key, ev), key, ev)


def _dec_opt(d: Mapping[str, Any], key: str, ev: str, default: Decimal | None = None) -> Decimal | None:
    v = d.get(key)
    return default if v is None or v == "" else _to_dec(v, key, ev)


def _to_int(v: Any, key: str, ev: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            pass
    raise BinanceParseError(ev, f"bad integer in field '{key}': {v!r}", key, v)


def _int(d: Any, key: str, ev: str) -> int:
    return _to_int(_req(d, key, ev), key, ev)


def _str(d: Any, key: str, ev: str) -> str:
    v = _req(d, key, ev)
    if not isinstance(v, str):
        raise BinanceParseError(ev, f"bad text in field '{key}': {v!r}", key, v)
    return v


def _bool(d: Any, key: str, ev: str) -> bool:
    v = _req(d, key, ev)
    if not isinstance(v, bool):
        raise BinanceParseError(ev, f"bad boolean in field '{key}': {v!r}", key, v)
    return v


def _float(d: Any, key: str, ev: str) -> float:
    v = _req(d, key, ev)
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        try:
            return float(v)
        except ValueError:
            pass
    raise BinanceParseError(ev, f"bad number in field '{key}': {v!r}", key, v)


_CHECKS: dict[str, Callable[[Any, str, str], Any]] = {
    "int": _int, "float": _float, "str": _str, "bool": _bool, "levels": _req, "obj": _req,
}


def _diagnose(ev: str, d: Any, fields: Iterable[tuple[str, str]]) -> BinanceParseError:
    """Slow path after a hot-path parser failed: find and name the offending field."""
    if not isinstance(d, Mapping):
        return BinanceParseError(ev, f"expected a JSON object, got {type(d).__name__}")
    for key, kind in fields:
        try:
            v = _CHECKS[kind](d, key, ev)
            if kind == "levels":
                _check_levels(v, key, ev)
        except BinanceParseError as exc:
            return exc
    return BinanceParseError(ev, "malformed frame")


def _check_levels(v: Any, key: str, ev: str) -> None:
    if not isinstance(v, list):
        raise BinanceParseError(ev, f"field '{key}' is not a list: {v!r}", key, v)
    for lvl in v:
        if not isinstance(lvl, list) or len(lvl) < 2:
            raise BinanceParseError(ev, f"bad level in field '{key}': {lvl!r}", key, lvl)
        for x in lvl[:2]:
            try:
                float(x)
            except (TypeError, ValueError):
                raise BinanceParseError(ev, f"bad level in field '{key}': {lvl!r}", key, lvl) from None


_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_BUY, _SELL = Side.BUY, Side.SELL

_STATUS = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.SUBMITTED,  # order-list legs not yet working
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,  # expired by self-trade prevention
    "NEW_INSURANCE": OrderStatus.ACCEPTED,  # USD-M liquidation taken over by the insurance fund
    "NEW_ADL": OrderStatus.ACCEPTED,  # USD-M auto-deleveraging
}

# Binance order types folded onto the neutral three. Conditional orders become what they
# are once triggered; TAKE_PROFIT is a market order on spot but a limit order on USD-M.
_SPOT_TYPES = {
    "LIMIT": OrderType.LIMIT, "MARKET": OrderType.MARKET, "LIMIT_MAKER": OrderType.LIMIT_MAKER,
    "STOP_LOSS": OrderType.MARKET, "STOP_LOSS_LIMIT": OrderType.LIMIT,
    "TAKE_PROFIT": OrderType.MARKET, "TAKE_PROFIT_LIMIT": OrderType.LIMIT,
}
_USDM_TYPES = {
    "LIMIT": OrderType.LIMIT, "MARKET": OrderType.MARKET,
    "STOP": OrderType.LIMIT, "STOP_MARKET": OrderType.MARKET,
    "TAKE_PROFIT": OrderType.LIMIT, "TAKE_PROFIT_MARKET": OrderType.MARKET,
    "TRAILING_STOP_MARKET": OrderType.MARKET, "LIQUIDATION": OrderType.MARKET,
}


def _side(d: Any, key: str, ev: str) -> Side:
    v = _req(d, key, ev)
    side = _SIDES.get(v)
    if side is None:
        raise BinanceParseError(ev, f"bad side in field '{key}': {v!r}", key, v)
    return side


def _status(d: Any, key: str, ev: str) -> OrderStatus:
    v = _req(d, key, ev)
    st = _STATUS.get(v)
    if st is None:
        raise BinanceParseError(ev, f"unknown order status in field '{key}': {v!r}", key, v)
    return st


def _order_type(raw: str, tif: str, market: Market, ev: str, key: str) -> OrderType:
    table = _SPOT_TYPES if market is Market.SPOT else _USDM_TYPES
    ot = table.get(raw)
    if ot is None:
        if "LIMIT" in raw:
            ot = OrderType.LIMIT
        elif "MARKET" in raw:
            ot = OrderType.MARKET
        else:
            raise BinanceParseError(ev, f"unknown order type in field '{key}': {raw!r}", key, raw)
    if ot is OrderType.LIMIT and tif == "GTX" and raw == "LIMIT":
        return OrderType.LIMIT_MAKER  # USD-M post-only is LIMIT + GTX
    return ot


def _price_or_none(p: Decimal | None) -> Decimal | None:
    return p if p is not None and p > 0 else None


# ---------------------------------------------------------------- market data (hot path)

_TRADE_FIELDS = (("s", "str"), ("T", "int"), ("p", "float"), ("q", "float"), ("m", "bool"), ("t", "int"))
_AGG_FIELDS = (("s", "str"), ("T", "int"), ("p", "float"), ("q", "float"), ("m", "bool"), ("a", "int"))
_BOOK_TICKER_FIELDS = (("s", "str"), ("b", "float"), ("B", "float"), ("a", "float"), ("A", "float"))
_DEPTH_FIELDS = (("s", "str"), ("E", "int"), ("U", "int"), ("u", "int"), ("b", "levels"), ("a", "levels"))
_MARK_FIELDS = (("s", "str"), ("E", "int"), ("p", "float"))
_SNAPSHOT_FIELDS = (("lastUpdateId", "int"), ("bids", "levels"), ("asks", "levels"))
_KLINE_FIELDS = (
    ("s", "str"), ("t", "int"), ("i", "str"), ("o", "float"), ("h", "float"),
    ("l", "float"), ("c", "float"), ("v", "float"), ("x", "bool"),
)
_HOT_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
_loads = orjson.loads


def parse_trade(d: Mapping[str, Any], ids: IdFactory, ts_init_ns: int) -> TradeTick | None:
    """`trade` → TradeTick (aggressor from `m`: buyer is maker → seller took). None for USD-M non-MARKET trades."""
    try:
        x = d.get("X")
        if x is not None and x != "MARKET":
            return None
        return TradeTick(
            ts_event_ns=int(d["T"]) * NS_PER_MS,
            ts_init_ns=ts_init_ns,
            instrument_id=ids(d["s"]),
            price=float(d["p"]),
            size=float(d["q"]),
            aggressor=_SELL if d["m"] else _BUY,
            trade_id=str(d["t"]),
        )
    except _HOT_ERRORS:
        raise _diagnose("trade", d, _TRADE_FIELDS) from None


def parse_agg_trade(d: Mapping[str, Any], ids: IdFactory, ts_init_ns: int) -> TradeTick:
    """`aggTrade` → TradeTick; `trade_id` is the aggregate trade id `a`."""
    try:
        return TradeTick(
            ts_event_ns=int(d["T"]) * NS_PER_MS,
            ts_init_ns=ts_init_ns,
            instrument_id=ids(d["s"]),
            price=float(d["p"]),
            size=float(d["q"]),
            aggressor=_SELL if d["m"] else _BUY,
            trade_id=str(d["a"]),
        )
    except _HOT_ERRORS:
        raise _diagnose("aggTrade", d, _AGG_FIELDS) from None


def parse_book_ticker(d: Mapping[str, Any], ids: IdFactory, ts_init_ns: int) -> QuoteTick:
    """`bookTicker` → QuoteTick. Spot frames carry no event time: `ts_event_ns` = receive time."""
    try:
        e_ms = d.get("E")
        return QuoteTick(
            ts_event_ns=int(e_ms) * NS_PER_MS if e_ms is not None else ts_init_ns,
            ts_init_ns=ts_init_ns,
            instrument_id=ids(d["s"]),
            bid=float(d["b"]),
            bid_size=float(d["B"]),
            ask=float(d["a"]),
            ask_size=float(d["A"]),
        )
    except _HOT_ERRORS:
        raise _diagnose("bookTicker", d, _BOOK_TICKER_FIELDS) from None


def _levels(raw: list[list[str]]) -> list[Level]:
    return [(float(lvl[0]), float(lvl[1])) for lvl in raw]


def parse_depth_update(d: Mapping[str, Any], ids: IdFactory, ts_init_ns: int) -> DepthDiff:
    """`depthUpdate` → DepthDiff (spot U/u; USD-M U/u/pu)."""
    try:
        pu = d.get("pu")
        return DepthDiff(
            instrument_id=ids(d["s"]),
            first_update_id=int(d["U"]),
            final_update_id=int(d["u"]),
            prev_final_update_id=int(pu) if pu is not None else None,
            bids=_levels(d["b"]),
            asks=_levels(d["a"]),
            ts_event_ns=int(d["E"]) * NS_PER_MS,
            ts_init_ns=ts_init_ns,
        )
    except _HOT_ERRORS:
        raise _diagnose("depthUpdate", d, _DEPTH_FIELDS) from None


def parse_depth_snapshot(d: Mapping[str, Any], instrument_id: InstrumentId, ts_init_ns: int) -> DepthSnapshot:
    """REST depth (or a partial-depth frame) → DepthSnapshot. USD-M adds `E`."""
    try:
        e_ms = d.get("E")
        return DepthSnapshot(
            instrument_id=instrument_id,
            last_update_id=int(d["lastUpdateId"]),
            bids=_levels(d["bids"]),
            asks=_levels(d["asks"]),
            ts_event_ns=int(e_ms) * NS_PER_MS if e_ms is not None else None,
            ts_init_ns=ts_init_ns,
        )
    except _HOT_ERRORS:
        raise _diagnose("depth", d, _SNAPSHOT_FIELDS) from None


KLINE_INTERVAL_S = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800,
}


def parse_kline(d: Mapping[str, Any], ids: IdFactory, ts_init_ns: int) -> Bar | None:
    """`kline` → Bar when the kline is closed (`x`), None while it is still open."""
    try:
        k = d["k"]
        if not k["x"]:
            return None
        return Bar(
            ts_event_ns=int(k["t"]) * NS_PER_MS,
            ts_init_ns=ts_init_ns,
            instrument_id=ids(k["s"]),
            interval_s=KLINE_INTERVAL_S[k["i"]],
            open=float(k["o"]),
            high=float(k["h"]),
            low=float(k["l"]),
            close=float(k["c"]),
            volume=float(k["v"]),
        )
    except _HOT_ERRORS:
        k = d.get("k") if isinstance(d, Mapping) else None
        if not isinstance(k, Mapping):
            raise _diagnose("kline", d, (("k", "obj"),)) from None
        if k.get("i") is not None and k.get("i") not in KLINE_INTERVAL_S:
            raise BinanceParseError("kline", f"unsupported interval in field 'k.i': {k['i']!r}", "k.i", k["i"]) from None
        raise _diagnose("kline", k, _KLINE_FIELDS) from None


def parse_mark_price(d: Mapping[str, Any], ids: IdFactory, ts_init_ns: int) -> MarkPrice:
    """USD-M `markPriceUpdate` → MarkPrice."""
    try:
        return MarkPrice(
            ts_event_ns=int(d["E"]) * NS_PER_MS,
            ts_init_ns=ts_init_ns,
            instrument_id=ids(d["s"]),
            price=float(d["p"]),
        )
    except _HOT_ERRORS:
        raise _diagnose("markPriceUpdate", d, _MARK_FIELDS) from None


def parse_rest_klines(
    rows: list[list[Any]], instrument_id: InstrumentId, interval_s: int, ts_init_ns: int,
    *, now_ms: int | None = None,
) -> list[Bar]:
    """GET klines rows → closed Bars; with `now_ms`, rows whose close time is not past are dropped."""
    ev = "klines"
    if not isinstance(rows, list):
        raise BinanceParseError(ev, f"expected a JSON array, got {type(rows).__name__}")
    out: list[Bar] = []
    for n, row in enumerate(rows):
        try:
            open_ms, close_ms = int(row[0]), int(row[6])
            if now_ms is not None and close_ms >= now_ms:
                continue
            out.append(Bar(
                ts_event_ns=open_ms * NS_PER_MS, ts_init_ns=ts_init_ns, instrument_id=instrument_id,
                interval_s=interval_s, open=float(row[1]), high=float(row[2]), low=float(row[3]),
                close=float(row[4]), volume=float(row[5]),
            ))
        except _HOT_ERRORS:
            raise BinanceParseError(ev, f"bad kline row {n}: {row!r}", f"[{n}]", row) from None
    return out


def parse_rest_trades(rows: list[Any], instrument_id: InstrumentId, ts_init_ns: int) -> list[TradeTick]:
    """GET trades / historicalTrades / aggTrades rows → TradeTicks (aggTrades keep the aggregate id)."""
    ev = "trades"
    if not isinstance(rows, list):
        raise BinanceParseError(ev, f"expected a JSON array, got {type(rows).__name__}")
    out: list[TradeTick] = []
    for n, r in enumerate(rows):
        try:
            if "a" in r:  # aggTrades
                trade_id, price, qty, t_ms, buyer_maker = r["a"], r["p"], r["q"], r["T"], r["m"]
            else:
                trade_id, price, qty, t_ms, buyer_maker = r["id"], r["price"], r["qty"], r["time"], r["isBuyerMaker"]
            out.append(TradeTick(
                ts_event_ns=int(t_ms) * NS_PER_MS, ts_init_ns=ts_init_ns, instrument_id=instrument_id,
                price=float(price), size=float(qty), aggressor=_SELL if buyer_maker else _BUY,
                trade_id=str(trade_id),
            ))
        except _HOT_ERRORS:
            raise BinanceParseError(ev, f"bad trade row {n}: {r!r}", f"[{n}]", r) from None
    return out


def parse_stream_response(d: Mapping[str, Any]) -> StreamResponse:
    """`{"result":…,"id":N}` or an error (`{"error":{"code","msg"},"id"}` / `{"code","msg","id"}`)."""
    err = d.get("error")
    if isinstance(err, Mapping):
        return StreamResponse(d.get("id"), False, None, _opt_int(err.get("code")), str(err.get("msg", "")))
    if "code" in d and "result" not in d:
        return StreamResponse(d.get("id"), False, None, _opt_int(d.get("code")), str(d.get("msg", "")))
    return StreamResponse(d.get("id"), True, d.get("result"))


def _opt_int(v: Any) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def parse_ws_api_response(d: Mapping[str, Any]) -> WsApiResponse:
    """WebSocket API answer `{"id","status","result"|"error"}` → WsApiResponse."""
    status = _int(d, "status", "wsApiResponse")
    err = d.get("error")
    if isinstance(err, Mapping):
        return WsApiResponse(d.get("id"), status, None, _opt_int(err.get("code")), str(err.get("msg", "")))
    return WsApiResponse(d.get("id"), status, d.get("result"))


def ws_api_used_weight_1m(d: Mapping[str, Any]) -> int | None:
    """The IP's used request weight this minute from a WebSocket API answer's `rateLimits`, if given."""
    rows = d.get("rateLimits")
    if not isinstance(rows, list):
        return None
    for r in rows:
        if (isinstance(r, Mapping) and r.get("rateLimitType") == "REQUEST_WEIGHT" and r.get("interval") == "MINUTE"
                and r.get("intervalNum") == 1):
            return _opt_int(r.get("count"))
    return None


def unwrap(d: Any) -> tuple[str | None, Any]:
    """(stream name, payload) of a combined-stream frame, a wrapped user event or a bare event."""
    if isinstance(d, dict):
        data = d.get("data")
        if data is not None and "stream" in d:
            return d["stream"], data
        event = d.get("event")
        if event is not None and "subscriptionId" in d:
            return None, event
    return None, d


# ---------------------------------------------------------------- user data

# Execution types that report a fill. CALCULATED is a liquidation/ADL execution (USD-M,
# margin): it moves the position like any trade, so it is booked as a fill.
_FILL_EXECUTIONS = frozenset({"TRADE", "CALCULATED"})


def parse_execution_report(d: Mapping[str, Any], ids: IdFactory | str) -> OrderUpdate:
    """Spot `executionReport` → OrderUpdate; a fill when `x` is TRADE (or CALCULATED) with `l` > 0.

    A cancel carries the cancelled order's client id in `C` (and the cancel request's id
    in `c`): the order is identified by `C` when it is non-empty.
    """
    ids = id_factory(ids)
    ev = "executionReport"
    iid = ids(_str(d, "s", ev))
    orig = d.get("C")
    cid = orig if isinstance(orig, str) and orig else _str(d, "c", ev)
    side = _side(d, "S", ev)
    tif = str(d.get("f") or "")
    raw_type = _str(d, "o", ev)
    filled = _dec(d, "z", ev)
    cum_quote = _dec_opt(d, "Z", ev)
    avg = cum_quote / filled if filled > 0 and cum_quote is not None and cum_quote > 0 else None
    ts_ns = _int(d, "T", ev) * NS_PER_MS
    venue_oid = str(_int(d, "i", ev))
    reasons = [r for r in (d.get("r"), d.get("eR")) if isinstance(r, str) and r and r != "NONE"]
    order = VenueOrder(
        client_order_id=cid,
        venue_order_id=venue_oid,
        instrument_id=iid,
        side=side,
        order_type=_order_type(raw_type, tif, Market.SPOT, ev, "o"),
        status=_status(d, "X", ev),
        quantity=_dec(d, "q", ev),
        filled_qty=filled,
        avg_px=avg,
        price=_price_or_none(_dec(d, "p", ev)),
        ts_ns=ts_ns,
        reason="; ".join(reasons),
    )
    x = _str(d, "x", ev)
    fill = _trade_fill(d, ev, iid, cid, venue_oid, side, ts_ns) if x in _FILL_EXECUTIONS else None
    return OrderUpdate(
        order=order, fill=fill, execution_type=x, venue_order_type=raw_type, time_in_force=tif,
        event_ts_ns=_int(d, "E", ev) * NS_PER_MS,
    )


def _trade_fill(
    d: Mapping[str, Any], ev: str, iid: InstrumentId, cid: str, venue_oid: str, side: Side, ts_ns: int
) -> VenueFill | None:
    """The fill of an execution event (`l`, `L`, `t`, `n`, `N`, `m`); None when `l` is 0."""
    last_qty = _dec(d, "l", ev)
    if last_qty <= 0:
        return None
    last_px = _dec(d, "L", ev)
    if last_px <= 0:
        # A fill without a price cannot be booked; reconciliation (myTrades) recovers it.
        raise BinanceParseError(ev, f"fill of {last_qty} with non-positive price in field 'L': {d['L']!r}", "L", d["L"])
    trade_id = _int(d, "t", ev)
    if trade_id < 0:
        raise BinanceParseError(ev, f"fill without a trade id in field 't': {trade_id}", "t", trade_id)
    fee_asset = d.get("N")
    return VenueFill(
        instrument_id=iid,
        client_order_id=cid,
        venue_order_id=venue_oid,
        trade_id=str(trade_id),
        side=side,
        qty=last_qty,
        price=last_px,
        fee=_dec_opt(d, "n", ev, _ZERO) or _ZERO,
        fee_asset=fee_asset if isinstance(fee_asset, str) else "",
        liquidity=Liquidity.MAKER if d.get("m") is True else Liquidity.TAKER,
        ts_ns=ts_ns,
    )


def parse_order_trade_update(d: Mapping[str, Any], ids: IdFactory | str) -> OrderUpdate:
    """USD-M `ORDER_TRADE_UPDATE` → OrderUpdate; a fill for TRADE or CALCULATED (liquidation) with `l` > 0."""
    ids = id_factory(ids)
    ev = "ORDER_TRADE_UPDATE"
    o = _req(d, "o", ev)
    if not isinstance(o, Mapping):
        raise BinanceParseError(ev, f"field 'o' is not an object: {o!r}", "o", o)
    iid = ids(_str(o, "s", ev))
    cid = _str(o, "c", ev)
    side = _side(o, "S", ev)
    tif = str(o.get("f") or "")
    raw_type = _str(o, "o", ev)
    ts_ns = _int(o, "T", ev) * NS_PER_MS
    venue_oid = str(_int(o, "i", ev))
    order = VenueOrder(
        client_order_id=cid,
        venue_order_id=venue_oid,
        instrument_id=iid,
        side=side,
        order_type=_order_type(raw_type, tif, Market.USDM, ev, "o.o"),
        status=_status(o, "X", ev),
        quantity=_dec(o, "q", ev),
        filled_qty=_dec(o, "z", ev),
        avg_px=_price_or_none(_dec_opt(o, "ap", ev)),
        price=_price_or_none(_dec_opt(o, "p", ev)),
        ts_ns=ts_ns,
    )
    x = _str(o, "x", ev)
    fill = _trade_fill(o, ev, iid, cid, venue_oid, side, ts_ns) if x in _FILL_EXECUTIONS else None
    return OrderUpdate(
        order=order, fill=fill, execution_type=x, venue_order_type=raw_type, time_in_force=tif,
        event_ts_ns=_int(d, "E", ev) * NS_PER_MS,
        reduce_only=o.get("R") is True,
        position_side=str(o.get("ps") or ""),
        realized_pnl=_dec_opt(o, "rp", ev),
    )


def parse_account_position(d: Mapping[str, Any]) -> AccountBalances:
    """Spot `outboundAccountPosition` → AccountBalances (free `f`, locked `l` per asset `a`)."""
    ev = "outboundAccountPosition"
    rows = _req(d, "B", ev)
    if not isinstance(rows, list):
        raise BinanceParseError(ev, f"field 'B' is not a list: {rows!r}", "B", rows)
    balances = tuple(Balance(asset=_str(b, "a", ev), free=_dec(b, "f", ev), locked=_dec(b, "l", ev)) for b in rows)
    ts_ms = d.get("u")
    return AccountBalances(ts_ns=_to_int(ts_ms, "u", ev) * NS_PER_MS if ts_ms is not None else _int(d, "E", ev) * NS_PER_MS,
                           balances=balances)


def parse_balance_update(d: Mapping[str, Any]) -> BalanceDelta:
    """Spot `balanceUpdate` → BalanceDelta (at the clear time `T`)."""
    ev = "balanceUpdate"
    return BalanceDelta(ts_ns=_int(d, "T", ev) * NS_PER_MS, asset=_str(d, "a", ev), delta=_dec(d, "d", ev))


def parse_account_update(d: Mapping[str, Any], ids: IdFactory | str) -> AccountUpdate:
    """USD-M `ACCOUNT_UPDATE` → AccountUpdate. Balances: wallet balance `wb` as free, 0 locked."""
    ids = id_factory(ids)
    ev = "ACCOUNT_UPDATE"
    a = _req(d, "a", ev)
    if not isinstance(a, Mapping):
        raise BinanceParseError(ev, f"field 'a' is not an object: {a!r}", "a", a)
    ts_ns = _int(d, "T", ev) * NS_PER_MS
    balances = tuple(
        Balance(asset=_str(b, "a", ev), free=_dec(b, "wb", ev), locked=_ZERO) for b in a.get("B") or ()
    )
    positions = tuple(
        VenuePosition(
            instrument_id=ids(_str(p, "s", ev)),
            position_side=str(p.get("ps") or "BOTH"),
            qty=_dec(p, "pa", ev),
            entry_price=_dec(p, "ep", ev),
            unrealized_pnl=_dec_opt(p, "up", ev, _ZERO) or _ZERO,
            ts_ns=ts_ns,
        )
        for p in a.get("P") or ()
    )
    return AccountUpdate(ts_ns=ts_ns, reason=str(a.get("m") or ""), balances=balances, positions=positions)


def parse_listen_key_expired(d: Mapping[str, Any]) -> ListenKeyExpired:
    """`listenKeyExpired` → ListenKeyExpired (`E` may be a string on USD-M)."""
    ev = "listenKeyExpired"
    key = d.get("listenKey")
    return ListenKeyExpired(ts_ns=_int(d, "E", ev) * NS_PER_MS, listen_key=key if isinstance(key, str) else "")


def parse_event_stream_terminated(d: Mapping[str, Any]) -> EventStreamTerminated:
    """`eventStreamTerminated` → EventStreamTerminated."""
    return EventStreamTerminated(ts_ns=_int(d, "E", "eventStreamTerminated") * NS_PER_MS)


# ---------------------------------------------------------------- REST


def _order_from_rest(d: Mapping[str, Any], ids: IdFactory, ev: str) -> VenueOrder:
    """A spot or USD-M order object (query, open orders, cancel, new RESULT/FULL)."""
    iid = ids(_str(d, "symbol", ev))
    orig = d.get("origClientOrderId")  # cancel responses: clientOrderId is the cancel's own id
    cid = orig if isinstance(orig, str) and orig else _str(d, "clientOrderId", ev)
    filled = _dec(d, "executedQty", ev)
    if "cummulativeQuoteQty" in d:  # spot
        market = Market.SPOT
        cum_quote = _dec_opt(d, "cummulativeQuoteQty", ev)
        avg = cum_quote / filled if filled > 0 and cum_quote is not None and cum_quote > 0 else None
    else:  # USD-M
        market = Market.USDM
        avg = _price_or_none(_dec_opt(d, "avgPrice", ev))
    ts_ms = next((d[k] for k in ("updateTime", "transactTime", "workingTime", "time") if d.get(k)), None)
    if ts_ms is None:
        raise BinanceParseError(ev, "missing field 'updateTime' (or transactTime/time)", "updateTime")
    tif = str(d.get("timeInForce") or "")
    return VenueOrder(
        client_order_id=cid,
        venue_order_id=str(_int(d, "orderId", ev)),
        instrument_id=iid,
        side=_side(d, "side", ev),
        order_type=_order_type(_str(d, "type", ev), tif, market, ev, "type"),
        status=_status(d, "status", ev),
        quantity=_dec(d, "origQty", ev),
        filled_qty=filled,
        avg_px=avg,
        price=_price_or_none(_dec_opt(d, "price", ev)),
        ts_ns=_to_int(ts_ms, "updateTime", ev) * NS_PER_MS,
    )


def parse_order(d: Mapping[str, Any], ids: IdFactory | str) -> VenueOrder:
    """GET/DELETE order (spot or USD-M) → VenueOrder."""
    ids = id_factory(ids)
    return _order_from_rest(d, ids, "order")


def parse_orders(rows: list[Any], ids: IdFactory | str) -> list[VenueOrder]:
    """openOrders / allOrders / cancel-all → VenueOrders (order-list reports are flattened)."""
    ids = id_factory(ids)
    ev = "orders"
    if not isinstance(rows, list):
        raise BinanceParseError(ev, f"expected a JSON array, got {type(rows).__name__}")
    out: list[VenueOrder] = []
    for row in rows:
        if isinstance(row, Mapping) and "orderReports" in row:
            out.extend(_order_from_rest(r, ids, ev) for r in row["orderReports"])
        else:
            out.append(_order_from_rest(row, ids, ev))
    return out


def parse_new_order_response(d: Mapping[str, Any], ids: IdFactory | str) -> NewOrderResponse:
    """POST order answer (spot ACK/RESULT/FULL, USD-M) → NewOrderResponse."""
    ids = id_factory(ids)
    ev = "newOrder"
    iid = ids(_str(d, "symbol", ev))
    cid = _str(d, "clientOrderId", ev)
    venue_oid = str(_int(d, "orderId", ev))
    ts_ms = d.get("transactTime") or d.get("updateTime")
    if ts_ms is None:
        raise BinanceParseError(ev, "missing field 'transactTime' (or updateTime)", "transactTime")
    ts_ns = _to_int(ts_ms, "transactTime", ev) * NS_PER_MS
    if "status" not in d:  # ACK: the venue has the order; its state comes from the stream
        return NewOrderResponse(cid, venue_oid, iid, ts_ns, None)
    order = _order_from_rest(d, ids, ev)
    fills: list[VenueFill] = []
    for n, f in enumerate(d.get("fills") or ()):
        fee_asset = f.get("commissionAsset")
        fills.append(VenueFill(
            instrument_id=iid,
            client_order_id=cid,
            venue_order_id=venue_oid,
            trade_id=str(_int(f, "tradeId", f"{ev}.fills[{n}]")),
            side=order.side,
            qty=_dec(f, "qty", f"{ev}.fills[{n}]"),
            price=_dec(f, "price", f"{ev}.fills[{n}]"),
            fee=_dec_opt(f, "commission", ev, _ZERO) or _ZERO,
            fee_asset=fee_asset if isinstance(fee_asset, str) else "",
            liquidity=Liquidity.TAKER,  # fills at placement took resting liquidity
            ts_ns=ts_ns,
        ))
    return NewOrderResponse(cid, venue_oid, iid, ts_ns, order, tuple(fills))


def parse_account_trades(rows: list[Any], ids: IdFactory | str) -> list[VenueFill]:
    """Spot myTrades / USD-M userTrades → VenueFills. These carry no client order id ("")."""
    ids = id_factory(ids)
    ev = "accountTrades"
    if not isinstance(rows, list):
        raise BinanceParseError(ev, f"expected a JSON array, got {type(rows).__name__}")
    out: list[VenueFill] = []
    for r in rows:
        if "isBuyer" in r:  # spot
            side = Side.BUY if _bool(r, "isBuyer", ev) else Side.SELL
            maker = _bool(r, "isMaker", ev)
        else:  # USD-M
            side = _side(r, "side", ev)
            maker = _bool(r, "maker", ev)
        fee_asset = r.get("commissionAsset")
        out.append(VenueFill(
            instrument_id=ids(_str(r, "symbol", ev)),
            client_order_id="",
            venue_order_id=str(_int(r, "orderId", ev)),
            trade_id=str(_int(r, "id", ev)),
            side=side,
            qty=_dec(r, "qty", ev),
            price=_dec(r, "price", ev),
            fee=_dec_opt(r, "commission", ev, _ZERO) or _ZERO,
            fee_asset=fee_asset if isinstance(fee_asset, str) else "",
            liquidity=Liquidity.MAKER if maker else Liquidity.TAKER,
            ts_ns=_int(r, "time", ev) * NS_PER_MS,
        ))
    return out


def parse_balances(body: Any) -> list[Balance]:
    """Account balances: spot account (`balances`: free/locked); USD-M account (`assets`) or
    balance list: wallet balance as free, 0 locked (as in ACCOUNT_UPDATE)."""
    ev = "balances"
    if isinstance(body, Mapping) and "balances" in body:
        return [Balance(_str(b, "asset", ev), _dec(b, "free", ev), _dec(b, "locked", ev)) for b in body["balances"]]
    if isinstance(body, Mapping) and "assets" in body:
        return [Balance(_str(b, "asset", ev), _dec(b, "walletBalance", ev), _ZERO) for b in body["assets"]]
    if isinstance(body, list):
        return [Balance(_str(b, "asset", ev), _dec(b, "balance", ev), _ZERO) for b in body]
    raise BinanceParseError(ev, "expected a spot account, a USD-M account or a USD-M balance list")


def parse_positions(body: Any, ids: IdFactory | str) -> list[VenuePosition]:
    """USD-M positionRisk list or account (`positions`) → VenuePositions."""
    ids = id_factory(ids)
    ev = "positions"
    rows = body.get("positions") if isinstance(body, Mapping) else body
    if not isinstance(rows, list):
        raise BinanceParseError(ev, "expected a positionRisk list or an account with 'positions'")
    out: list[VenuePosition] = []
    for r in rows:
        upnl = r.get("unRealizedProfit", r.get("unrealizedProfit"))
        out.append(VenuePosition(
            instrument_id=ids(_str(r, "symbol", ev)),
            position_side=str(r.get("positionSide") or "BOTH"),
            qty=_dec(r, "positionAmt", ev),
            entry_price=_dec(r, "entryPrice", ev),
            unrealized_pnl=_to_dec(upnl, "unRealizedProfit", ev) if upnl is not None else _ZERO,
            ts_ns=_to_int(r.get("updateTime") or 0, "updateTime", ev) * NS_PER_MS,
        ))
    return out


def parse_server_time(d: Mapping[str, Any]) -> int:
    """GET time → server time in ms."""
    return _int(d, "serverTime", "time")


def parse_position_mode(d: Mapping[str, Any]) -> bool:
    """USD-M GET positionSide/dual → True in hedge mode (LONG/SHORT positions)."""
    return _bool(d, "dualSidePosition", "positionSide/dual")


def parse_listen_key(d: Mapping[str, Any]) -> str:
    """POST userDataStream → the listenKey."""
    return _str(d, "listenKey", "listenKey")


# ---------------------------------------------------------------- dispatch

_MARKET_IGNORED = frozenset({
    "24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker", "forceOrder",
    "avgPrice", "compositeIndex", "contractInfo", "assetIndexUpdate", "continuous_kline",
})
_USER_IGNORED = frozenset({
    "listStatus", "externalLockUpdate",  # spot
    "TRADE_LITE", "ALGO_UPDATE", "ACCOUNT_CONFIG_UPDATE", "MARGIN_CALL", "STRATEGY_UPDATE",
    "GRID_UPDATE", "CONDITIONAL_ORDER_TRIGGER_REJECT",  # USD-M
})


class BinanceParser:
    """Decodes and dispatches frames of one Binance market; holds the venue's id cache."""

    __slots__ = ("_market_handlers", "ids", "market", "venue")

    def __init__(self, market: Market, venue: str | None = None) -> None:
        self.market = market
        self.venue = venue or market.default_venue
        self.ids = InstrumentIds(self.venue)
        self._market_handlers: dict[str, Callable[[Mapping[str, Any], IdFactory, int], Any]] = {
            "trade": parse_trade,
            "aggTrade": parse_agg_trade,
            "bookTicker": parse_book_ticker,
            "depthUpdate": parse_depth_update,
            "kline": parse_kline,
            "markPriceUpdate": parse_mark_price,
        }

    @staticmethod
    def decode(raw: bytes | bytearray | memoryview | str) -> Any:
        """orjson decode; not JSON → BinanceParseError quoting the start of the frame."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            head = bytes(raw[:120]) if not isinstance(raw, str) else raw[:120]
            raise BinanceParseError("frame", f"not JSON ({exc}): {head!r}") from None

    def market_frame(self, raw: bytes | str, ts_init_ns: int) -> MarketEvent | None:
        """Parse one market-stream frame (raw or combined). None = known but unused."""
        try:
            d = _loads(raw)
        except orjson.JSONDecodeError:
            d = self.decode(raw)  # raises the error quoting the frame
        # Hot path (a raw stream's trade, quote, diff, kline): `market_event` inlined, same rules.
        if type(d) is dict and "data" not in d:
            e = d.get("e")
            if type(e) is str:
                handler = self._market_handlers.get(e)
                if handler is not None:
                    return handler(d, self.ids, ts_init_ns)
        return self.market_event(d, ts_init_ns)

    def market_event(self, d: Any, ts_init_ns: int) -> MarketEvent | None:
        """Parse one decoded market-stream frame (raw or combined)."""
        if type(d) is dict:
            data = d.get("data")
            stream = None
            if data is not None:
                stream = d.get("stream")
                d = data
            if type(d) is dict:
                e = d.get("e")
                handler = self._market_handlers.get(e) if type(e) is str else None
                if handler is not None:
                    return handler(d, self.ids, ts_init_ns)
                return self._market_other(d, e, stream, ts_init_ns)
        raise BinanceParseError("frame", f"expected a JSON object, got {type(d).__name__}")

    def _market_other(self, d: dict[str, Any], e: Any, stream: Any, ts_init_ns: int) -> MarketEvent | None:
        if e is None:
            if "A" in d and "B" in d and "u" in d:  # spot bookTicker: no event type
                return parse_book_ticker(d, self.ids, ts_init_ns)
            if "id" in d and ("result" in d or "error" in d or "code" in d):
                return parse_stream_response(d)
            if "lastUpdateId" in d:
                if not isinstance(stream, str):
                    raise BinanceParseError("depth", "partial depth without a stream name: symbol unknown")
                return parse_depth_snapshot(d, self.ids(stream.split("@", 1)[0].upper()), ts_init_ns)
            raise BinanceParseError("frame", f"no event type in frame with keys {sorted(d)[:12]}")
        if not isinstance(e, str):  # a list or object would not even be a dict key
            raise BinanceParseError("frame", f"bad event type in field 'e': {e!r}", "e", e)
        if e == "serverShutdown":
            return ServerShutdown(ts_ns=_int(d, "E", e) * NS_PER_MS)
        if e in _MARKET_IGNORED:
            return None
        raise BinanceParseError(str(e), f"unknown market event type {e!r}", "e", e)

    def user_frame(self, raw: bytes | str) -> UserEvent | None:
        """Parse one user-data frame (bare, wrapped or combined). None = known but unused."""
        return self.user_event(self.decode(raw))

    def user_event(self, d: Any) -> UserEvent | None:
        """Parse one decoded user-data frame."""
        _, d = unwrap(d)
        if not isinstance(d, Mapping):
            raise BinanceParseError("frame", f"expected a JSON object, got {type(d).__name__}")
        e = d.get("e")
        if e == "executionReport":
            return parse_execution_report(d, self.ids)
        if e == "ORDER_TRADE_UPDATE":
            return parse_order_trade_update(d, self.ids)
        if e == "outboundAccountPosition":
            return parse_account_position(d)
        if e == "ACCOUNT_UPDATE":
            return parse_account_update(d, self.ids)
        if e == "balanceUpdate":
            return parse_balance_update(d)
        if e == "listenKeyExpired":
            return parse_listen_key_expired(d)
        if e == "eventStreamTerminated":
            return parse_event_stream_terminated(d)
        if e in _USER_IGNORED:
            return None
        if e is None and "status" in d and "id" in d:
            return parse_ws_api_response(d)
        raise BinanceParseError(str(e), f"unknown user-data event type {e!r}", "e", e)
