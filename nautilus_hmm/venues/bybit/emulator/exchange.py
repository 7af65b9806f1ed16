"""The emulated Bybit v5 exchange behind the server (pure: no asyncio, no I/O; time is passed in).

One exchange serves both categories, as Bybit's one host does: `spot` and `linear`
(USDT perpetuals, one-way mode), with the same symbols in each.

* Instruments are real-looking `instruments-info` entries (spot: lotSizeFilter with
  basePrecision / minOrderQty / minOrderAmt; linear: qtyStep / minNotionalValue,
  leverageFilter), and the matching engines' `Instrument`s are made from the same numbers.
* Matching reuses `venues.sim.matching.MatchingEngine`. The account is one unified trading
  account (UTA): spot balances are a `venues.sim.account.SimAccount`; linear positions are
  a `FuturesAccount` (the Binance emulator's one-way net-position ledger) whose USDT
  wallet *is* the spot account's free USDT, so linear fees and realized PnL move the same
  USDT the wallet-balance endpoint reports. A marketable order executes at once against
  the touch (best ask for a buy, best bid for a sell); resting limits fill on later trades.
* Spot market buys: `qty` is quote currency unless `marketUnit=baseCoin` (Bybit's rule);
  the quote amount is turned into a base quantity at the ask, floored to the step.
* The market is a `SyntheticMarket` (seeded) or a replayed file for the first symbol; one
  print per symbol per tick drives both categories. Each tick produces the public frames
  (orderbook.{1,50,200,500} snapshot then deltas with `u` and `seq`, publicTrade, tickers,
  kline) for the topics someone subscribes, and the private frames (order, execution,
  position, wallet) of the orders it matched.

Errors are `BybitError(ret_code, ret_msg)`; the rejections of the shared matching engine
(Binance-style codes) are translated to Bybit's retCodes by `_bybit_reject`.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import numpy as np

from nautilus_hmm.core.errors import OrderRejected
from nautilus_hmm.domain.enums import InstrumentKind, OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.marketdata.replay import BarArrays, TradeArrays
from nautilus_hmm.marketdata.synthetic import SyntheticMarket
from nautilus_hmm.venues.binance.emulator.exchange import FuturesAccount
from nautilus_hmm.venues.sim.account import SimAccount
from nautilus_hmm.venues.sim.matching import Counter, MatchingEngine, SimOrder

NS_PER_MS = 1_000_000
MS_PER_DAY = 86_400_000
_ZERO = Decimal(0)
CATEGORIES = ("spot", "linear")
VENUE = {"spot": "bybit_spot", "linear": "bybit_linear"}
QUOTE = "USDT"
BOOK_LEVELS = 60  # levels per side the synthetic book keeps (orderbook.200/500 show what there is)
DEPTHS = {"spot": (1, 50, 200), "linear": (1, 50, 200, 500)}
LINK_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_NUMBER = Decimal("1e15")  # a qty or price beyond this is malformed, not just too large
IMMEDIATE_LIQUIDITY = 1e9  # the touch absorbs any marketable order in full
EXEC_WINDOW_MS = 7 * MS_PER_DAY  # execution/list: at most 7 days between startTime and endTime
PAST_BARS = 5000  # klines of each interval served from before the emulator's start
KLINE_SECONDS = {"1": 60, "3": 180, "5": 300, "15": 900, "30": 1800, "60": 3600, "120": 7200, "240": 14400,
                 "360": 21600, "720": 43200, "D": 86400, "W": 604800, "M": 2_592_000}
FEES = {"spot": (Decimal("0.001"), Decimal("0.001")), "linear": (Decimal("0.0002"), Decimal("0.00055"))}

# symbol: (initial price, spot tick, spot basePrecision, spot minOrderQty, linear tick, linear qtyStep)
KNOWN: dict[str, tuple[float, str, str, str, str, str]] = {
    "BTCUSDT": (60_000.0, "0.01", "0.000001", "0.000048", "0.10", "0.001"),
    "ETHUSDT": (3_000.0, "0.01", "0.00001", "0.00062", "0.01", "0.01"),
    "SOLUSDT": (150.0, "0.01", "0.001", "0.026", "0.010", "0.1"),
    "XRPUSDT": (0.6, "0.0001", "0.01", "1.3", "0.0001", "1"),
}

ORDER_STATUS_WIRE = {
    OrderStatus.SUBMITTED: "New", OrderStatus.ACCEPTED: "New", OrderStatus.PARTIALLY_FILLED: "PartiallyFilled",
    OrderStatus.FILLED: "Filled", OrderStatus.PENDING_CANCEL: "New", OrderStatus.CANCELED: "Cancelled",
    OrderStatus.EXPIRED: "Cancelled", OrderStatus.REJECTED: "Rejected",
}
TIF_WIRE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PostOnly": TimeInForce.GTC}


class BybitError(Exception):
    """A request the exchange refuses: retCode, retMsg (HTTP 200, as Bybit answers them)."""

    def __init__(self, ret_code: int, ret_msg: str, http_status: int = 200) -> None:
        super().__init__(f"{ret_code} {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.http_status = http_status


def params_error(detail: str) -> BybitError:
    """retCode 10001 with Bybit's wording (`params error: ...`)."""
    return BybitError(10001, f"params error: {detail}")


def _fmt(d: Decimal | float, q: Decimal) -> str:
    """`d` on the grid of `q` (a tick or a step), with `q`'s decimals."""
    return _fmt_dec(d if isinstance(d, Decimal) else Decimal(repr(d)), q)


@lru_cache(maxsize=1 << 16)
def _fmt_dec(d: Decimal, q: Decimal) -> str:
    if d == 0:
        return "0"
    return f"{((d / q).to_integral_value() * q).quantize(q):f}"


def _amt(d: Decimal | float) -> str:
    """A quote amount, fee or PnL: up to 8 decimals, trailing zeros dropped."""
    d = d if isinstance(d, Decimal) else Decimal(repr(d))
    if d == 0:
        return "0"
    text = f"{d.quantize(Decimal('1e-8')):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _dec(raw: Any, name: str, *, required: bool = True) -> Decimal | None:
    if raw is None or raw == "":
        if required:
            raise params_error(f"{name} is required")
        return None
    try:
        d = Decimal(str(raw))
    except InvalidOperation:
        raise params_error(f"{name} invalid: {raw!r}") from None
    if not d.is_finite() or abs(d) > MAX_NUMBER:
        raise params_error(f"{name} invalid: {raw!r}")
    return d


def _bool(raw: Any) -> bool:
    return raw is True or (isinstance(raw, str) and raw.lower() == "true")


def known(symbol: str) -> tuple[float, str, str, str, str, str]:
    """Listing numbers of a symbol (unknown symbols get numbers derived from a 100 USDT price)."""
    if symbol in KNOWN:
        return KNOWN[symbol]
    return (100.0, "0.01", "0.001", "0.1", "0.01", "0.1")


def spot_entry(symbol: str, symbol_id: int) -> dict[str, Any]:
    """A real-looking `instruments-info` entry, category spot."""
    _, tick, precision, min_qty, _, _ = known(symbol)
    base = symbol[: -len(QUOTE)]
    return {
        "symbolId": symbol_id, "symbol": symbol, "baseCoin": base, "quoteCoin": QUOTE, "innovation": "0",
        "status": "Trading", "marginTrading": "utaOnly", "stTag": "0",
        "lotSizeFilter": {"basePrecision": precision, "quotePrecision": "0.0000001", "minOrderQty": min_qty,
                          "maxOrderQty": "83", "minOrderAmt": "5", "maxOrderAmt": "8000000",
                          "maxLimitOrderQty": "83", "maxMarketOrderQty": "41.5",
                          "postOnlyMaxLimitOrderSize": "60000"},
        "priceFilter": {"tickSize": tick},
        "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
        "symbolType": "",
    }


def linear_entry(symbol: str, symbol_id: int) -> dict[str, Any]:
    """A real-looking `instruments-info` entry, category linear (USDT perpetual)."""
    _, _, _, _, tick, step = known(symbol)
    base = symbol[: -len(QUOTE)]
    scale = max(0, -Decimal(tick).normalize().as_tuple().exponent)  # type: ignore[operator]
    return {
        "symbol": symbol, "symbolId": symbol_id, "contractType": "LinearPerpetual", "status": "Trading",
        "baseCoin": base, "quoteCoin": QUOTE, "launchTime": "1585526400000", "deliveryTime": "0",
        "deliveryFeeRate": "", "priceScale": str(scale),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": tick, "maxPrice": "1999999.80", "tickSize": tick},
        "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": step, "qtyStep": step,
                          "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000", "minNotionalValue": "5"},
        "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": QUOTE, "copyTrading": "both",
        "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False,
        "preListingInfo": None, "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "symbolType": "",
    }


def instrument_of(category: str, entry: Mapping[str, Any]) -> Instrument:
    """The matching engine's `Instrument` from an instruments-info entry."""
    lot = entry["lotSizeFilter"]
    tick = Decimal(entry["priceFilter"]["tickSize"])
    maker, taker = FEES[category]
    if category == "spot":
        return Instrument(InstrumentId(VENUE[category], entry["symbol"]), entry["baseCoin"], entry["quoteCoin"],
                          InstrumentKind.SPOT, tick, Decimal(lot["basePrecision"]), Decimal(lot["minOrderQty"]),
                          Decimal(lot["maxOrderQty"]), Decimal(lot["minOrderAmt"]), maker_fee=maker, taker_fee=taker,
                          market_max_qty=Decimal(lot["maxMarketOrderQty"]),
                          tradable=entry["status"] == "Trading")
    return Instrument(InstrumentId(VENUE[category], entry["symbol"]), entry["baseCoin"], entry["quoteCoin"],
                      InstrumentKind.PERPETUAL, tick, Decimal(lot["qtyStep"]), Decimal(lot["minOrderQty"]),
                      Decimal(lot["maxOrderQty"]), Decimal(lot["minNotionalValue"]), maker_fee=maker,
                      taker_fee=taker, market_max_qty=Decimal(lot["maxMktOrderQty"]),
                      tradable=entry["status"] == "Trading")


# ---------------------------------------------------------------- the unified account


class UnifiedLinear(FuturesAccount):
    """Linear one-way positions whose USDT wallet is the unified account's free USDT.

    Fees and realized PnL land in the spot account's USDT (Bybit's UTA has one USDT). A
    loss larger than the free USDT makes it negative (a liability), which a later spot
    buy cannot spend.
    """

    def __init__(self, spot: SimAccount, instruments: Mapping[InstrumentId, Instrument]) -> None:
        self._spot = spot
        super().__init__(spot.free.get(QUOTE, _ZERO), instruments)
        for s in self.leverage:
            self.leverage[s] = 10  # Bybit's default leverage
        self.cum_realised: dict[str, Decimal] = {}
        self.cur_realised: dict[str, Decimal] = {}
        self.position_times: dict[str, tuple[int, int]] = {}  # symbol → (created ms, updated ms)

    @property  # type: ignore[override]
    def wallet(self) -> Decimal:
        """The unified account's free USDT."""
        return self._spot.free.get(QUOTE, _ZERO)

    @wallet.setter
    def wallet(self, value: Decimal) -> None:
        self._spot.free[QUOTE] = value if value else _ZERO
        self._spot.locked.setdefault(QUOTE, _ZERO)
        self._spot.changed_assets.add(QUOTE)

    def on_fill(self, order: SimOrder, fill: VenueFill) -> None:
        """FuturesAccount's booking, plus Bybit's cum/cur realised PnL (fees included)."""
        before = self.position(self.instruments[fill.instrument_id])
        super().on_fill(order, fill)
        s = fill.instrument_id.symbol
        pnl = self.realized.get(fill.trade_id, _ZERO) - fill.fee
        self.cum_realised[s] = self.cum_realised.get(s, _ZERO) + pnl
        self.cur_realised[s] = (pnl if before == 0 else self.cur_realised.get(s, _ZERO) + pnl)
        ms = fill.ts_ns // NS_PER_MS
        created = self.position_times.get(s, (ms, ms))[0] if before != 0 else ms
        self.position_times[s] = (created, ms)


# ---------------------------------------------------------------- orders and executions


@dataclass(slots=True)
class OrderMeta:
    """Bybit words of one order that the neutral types fold away."""

    category: str
    symbol: str
    order_id: str
    order_link_id: str
    order_type: str  # "Limit" | "Market"
    tif: str  # GTC | IOC | FOK | PostOnly
    qty_raw: Decimal  # as sent (quote units for a spot market buy by quote)
    market_unit: str  # "baseCoin" | "quoteCoin" | ""
    created_ms: int
    updated_ms: int
    reduce_only: bool = False
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    last_price_on_created: str = ""


@dataclass(slots=True)
class Execution:
    """One row of execution/list and of the `execution` topic."""

    category: str
    symbol: str
    exec_id: str
    exec_type: str  # "Trade" | "Funding" | ...
    order_id: str
    order_link_id: str
    side: str
    order_type: str
    exec_price: str
    exec_qty: str
    exec_value: str
    exec_fee: str
    fee_rate: str
    is_maker: bool
    exec_time_ms: int
    leaves_qty: str
    order_qty: str
    order_price: str
    closed_size: str
    exec_pnl: str
    mark_price: str
    seq: int
    market_unit: str = ""

    def wire(self, with_category: bool) -> dict[str, Any]:
        """The JSON row (the WS topic adds `category`)."""
        row: dict[str, Any] = {
            "symbol": self.symbol, "orderType": self.order_type, "underlyingPrice": "",
            "orderLinkId": self.order_link_id, "side": self.side, "indexPrice": "", "orderId": self.order_id,
            "stopOrderType": "UNKNOWN", "leavesQty": self.leaves_qty, "execTime": str(self.exec_time_ms),
            "feeCurrency": QUOTE, "isMaker": self.is_maker,  # the ledger charges every fee in USDT
            "execFee": self.exec_fee, "feeRate": self.fee_rate, "execId": self.exec_id, "tradeIv": "",
            "blockTradeId": "", "markPrice": self.mark_price, "execPrice": self.exec_price, "markIv": "",
            "orderQty": self.order_qty, "orderPrice": self.order_price, "execValue": self.exec_value,
            "execType": self.exec_type, "execQty": self.exec_qty, "closedSize": self.closed_size,
            "extraFees": "", "seq": self.seq, "execPnl": self.exec_pnl, "createType": "CreateByUser",
            "isLeverage": "0", "marketUnit": self.market_unit,
        }
        if with_category:
            row["category"] = self.category
        return row


@dataclass(slots=True)
class BookState:
    """The synthetic L2 book of one (category, symbol) and the views streams were sent."""

    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    seq: int = 0
    pending: tuple[Any, ...] | None = None  # the touch whose levels are not built yet (see _levels)
    # depth → (u, bids, asks) last sent on orderbook.{depth}.SYM
    views: dict[int, tuple[int, dict[Decimal, Decimal], dict[Decimal, Decimal]]] = field(default_factory=dict)

    def top(self, depth: int) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """The best `depth` levels of each side."""
        bids = dict(sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)[:depth])
        asks = dict(sorted(self.asks.items(), key=lambda kv: kv[0])[:depth])
        return bids, asks


class KlineState:
    """One (category, symbol, interval)'s current kline."""

    __slots__ = ("close", "high", "interval", "interval_ms", "low", "open", "start_ms", "turnover", "volume")

    def __init__(self, interval: str) -> None:
        self.interval = interval
        self.interval_ms = KLINE_SECONDS[interval] * 1000
        self.start_ms = -1
        self.open = self.high = self.low = self.close = 0.0
        self.volume = self.turnover = 0.0

    def payload(self, confirm: bool, ts_ms: int, px: Decimal, qty_q: Decimal) -> dict[str, Any]:
        """One `data[]` row of the kline topic."""
        return {"start": self.start_ms, "end": self.start_ms + self.interval_ms - 1, "interval": self.interval,
                "open": _fmt(self.open, px), "close": _fmt(self.close, px), "high": _fmt(self.high, px),
                "low": _fmt(self.low, px), "volume": _fmt(self.volume, qty_q), "turnover": _amt(self.turnover),
                "confirm": confirm, "timestamp": ts_ms}


@dataclass(slots=True)
class TickOutput:
    """What one tick produced: (category, topic, frame) for the public streams; private frames."""

    public: list[tuple[str, str, dict[str, Any]]]
    private: list[tuple[str, dict[str, Any]]]


@dataclass(slots=True)
class TapeTrade:
    """One public trade as the streams printed it (for market/recent-trade and tickers)."""

    exec_id: str
    time_ms: int
    price: Decimal
    size: Decimal
    side: str
    seq: int


# ---------------------------------------------------------------- the exchange


class BybitExchange:
    """State of the emulated Bybit v5 venue (see the module docstring)."""

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        seed: int = 7,
        balances: Mapping[str, Decimal] | None = None,
        replay: BarArrays | TradeArrays | None = None,
        tick_interval_s: float = 1.0,
        start_ns: int = 0,
        market_time_scale: float = 1.0,
    ) -> None:
        if not market_time_scale > 0:
            raise ValueError(f"market_time_scale must be > 0, got {market_time_scale!r}")
        # Market time (the event times of trades, books, tickers, klines and the synthetic
        # price path) may run faster than the wall clock, so a 1 m kline closes every
        # 60/scale s; server time, orders, fills and private events stay on the wall clock.
        self.market_time_scale = market_time_scale
        self.symbols = list(dict.fromkeys(symbols))
        if not self.symbols:
            raise ValueError("the emulator needs at least one symbol")
        for s in self.symbols:
            if not (s.isascii() and s.isalnum() and s.endswith(QUOTE) and s != QUOTE):
                raise ValueError(f"emulator symbol {s!r}: expected letters and digits ending with {QUOTE}")
        self.start_ns = start_ns
        self.rng = random.Random(f"{seed}:bybit-emulator")
        self.entries: dict[str, dict[str, dict[str, Any]]] = {
            "spot": {s: spot_entry(s, 9 + i) for i, s in enumerate(self.symbols)},
            "linear": {s: linear_entry(s, 5 + i) for i, s in enumerate(self.symbols)},
        }
        self.instruments: dict[str, dict[str, Instrument]] = {
            c: {s: instrument_of(c, e) for s, e in self.entries[c].items()} for c in CATEGORIES}
        bal = dict(balances or {"USDT": Decimal(100_000), "BTC": Decimal(1), "ETH": Decimal(10)})
        spot_insts = {i.id: i for i in self.instruments["spot"].values()}
        linear_insts = {i.id: i for i in self.instruments["linear"].values()}
        self.spot = SimAccount(bal, spot_insts, VENUE["spot"])
        self.linear = UnifiedLinear(self.spot, linear_insts)
        self.position_mode_hedge = False
        self.engines: dict[str, dict[str, MatchingEngine]] = {}
        for c, ledger, counters in (("spot", self.spot, (self.spot.trade_ids, self.spot.order_ids)),
                                    ("linear", self.linear, (self.linear.trade_ids, self.linear.order_ids))):
            self.engines[c] = {
                s: MatchingEngine(inst, venue=VENUE[c], maker_fee=inst.maker_fee, taker_fee=inst.taker_fee,
                                  trade_ids=counters[0], order_ids=counters[1], ledger=ledger)
                for s, inst in self.instruments[c].items()}
        self.synthetic = SyntheticMarket(
            {s: known(s)[0] for s in self.symbols}, seed, tick_interval_s,
            tick_sizes={s: float(self.instruments["spot"][s].tick_size) for s in self.symbols})
        self.replay = replay
        self.replay_pos = 0
        self.book_rng = random.Random(f"{seed}:bybit-books")
        self.books: dict[tuple[str, str], BookState] = {
            (c, s): BookState(seq=10_000_000 * (1 + i)) for c in CATEGORIES for i, s in enumerate(self.symbols)}
        self.quotes: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal, Decimal]] = {}
        self.kline_states: dict[tuple[str, str, str], KlineState] = {}
        self.pasts: dict[tuple[str, str], BarArrays] = {}
        self.tape: dict[tuple[str, str], deque[TapeTrade]] = {
            (c, s): deque(maxlen=1000) for c in CATEGORIES for s in self.symbols}
        self.day_stats: dict[tuple[str, str], dict[str, Decimal]] = {}
        self.start_prices: dict[str, float] = {}
        self.public_seq = Counter(2_000_000_000)
        self.exec_seq = Counter(4_688_000_000)
        self.position_seq = Counter(8_327_000_000)
        self.spot_order_ids = Counter(1_800_000_000_000_000_000)
        self.meta: dict[str, OrderMeta] = {}  # by orderLinkId
        self.orders: dict[str, SimOrder] = {}  # by orderLinkId, every accepted order
        self.by_order_id: dict[str, str] = {}  # orderId → orderLinkId
        self.executions: list[Execution] = []
        self.order_link_ids: list[str] = []  # every orderLinkId whose create reached matching
        self.funding_rate = Decimal("0.0001")
        self._prime(start_ns)

    # ------------------------------------------------------------ helpers

    def category(self, raw: Any) -> str:
        """A category this emulator serves, or 10001."""
        if raw not in CATEGORIES:
            raise params_error(f"category invalid: {raw!r} (this emulator serves spot and linear)")
        return str(raw)

    def symbol(self, category: str, raw: Any) -> str:
        """A listed symbol, or 10001 (spot: 170121)."""
        if not isinstance(raw, str) or raw not in self.engines[category]:
            if category == "spot":
                raise BybitError(170121, "Invalid symbol.")
            raise params_error(f"symbol invalid: {raw!r}")
        return raw

    def _new_order_id(self, category: str) -> str:
        if category == "spot":
            return str(self.spot_order_ids.next())
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _new_exec_id(self, category: str) -> str:
        if category == "spot":
            return str(2_100_000_000_000_000_000 + self.exec_seq.value)
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def set_status(self, category: str, symbol: str, status: str) -> None:
        """Change an instrument's status (e.g. "Closed"): it is listed so and refuses new orders."""
        entry = self.entries[self.category(category)][self.symbol(category, symbol)]
        entry["status"] = status
        inst = instrument_of(category, entry)
        self.instruments[category][symbol] = inst
        self.engines[category][symbol].instrument = inst

    # ------------------------------------------------------------ market

    def _prime(self, now_ns: int) -> None:
        for s in self.symbols:
            price = known(s)[0]
            if self.replay is not None and s == self.symbols[0] and len(self.replay):
                price = float(self.replay.close[0] if isinstance(self.replay, BarArrays) else self.replay.price[0])
            self.start_prices[s] = price
            for c in CATEGORIES:
                self._set_touch(c, s, price)
                self.engines[c][s].last_price = price

    def _set_touch(self, c: str, s: str, price: float) -> None:
        inst = self.instruments[c][s]
        tick, step = inst.tick_size, inst.step_size
        px = (Decimal(repr(price)) / tick).to_integral_value() * tick
        # Levels sit on a grid of `gap` (a whole number of ticks), so a small move of the
        # price keeps most levels where they were; the touch is ~0.005% either side.
        gap = max(tick, (px * Decimal("0.00001") / tick).to_integral_value() * tick)
        half = px * Decimal("0.00005")
        bid = ((px - half) / gap).to_integral_value(ROUND_FLOOR) * gap
        ask = -((-(px + half)) / gap).to_integral_value(ROUND_FLOOR) * gap
        if bid <= 0:
            bid, ask = gap, gap * 2
        if ask <= bid:
            ask = bid + gap
        notional = 20_000.0 / max(price, 1e-9)
        book = self.books[(c, s)]
        top_bid, top_ask = self._size(notional, step), self._size(notional, step)
        book.pending = (bid, ask, gap, notional, step, top_bid, top_ask)
        self.quotes[(c, s)] = (bid, top_bid, ask, top_ask)
        self.engines[c][s].set_quote(float(bid), float(ask))

    def _size(self, notional: float, step: Decimal) -> Decimal:
        q = (Decimal(repr(max(self.book_rng.expovariate(1.0) * notional, 1e-9))) / step).to_integral_value(ROUND_FLOOR)
        return max(q, Decimal(1)) * step

    def _levels(self, c: str, s: str) -> BookState:
        """The book of (c, s) with its levels built for the latest touch (built only when
        someone looks: a stream subscriber or a REST request)."""
        book = self.books[(c, s)]
        if book.pending is None:
            return book
        bid, ask, gap, notional, step, top_bid, top_ask = book.pending
        book.pending = None
        # Levels that stay keep their size (a delta names only what changed, as on the
        # venue); new levels get a size, and the two best levels of each side are redrawn.
        old_bids, old_asks = book.bids, book.asks
        bids = [bid - gap * i for i in range(BOOK_LEVELS) if bid - gap * i > 0]
        asks = [ask + gap * i for i in range(BOOK_LEVELS)]
        book.bids = {p: (old_bids.get(p) if i >= 2 else None) or self._size(notional, step)
                     for i, p in enumerate(bids)}
        book.asks = {p: (old_asks.get(p) if i >= 2 else None) or self._size(notional, step)
                     for i, p in enumerate(asks)}
        book.bids[bid], book.asks[ask] = top_bid, top_ask
        return book

    def _next_print(self, s: str, now_ns: int) -> tuple[float, float, bool]:
        data = self.replay
        if data is not None and s == self.symbols[0] and self.replay_pos < len(data):
            i = self.replay_pos
            self.replay_pos += 1
            if isinstance(data, BarArrays):
                return (float(data.close[i]), max(float(data.volume[i]), 1e-6),
                        float(data.close[i]) >= float(data.open[i]))
            return float(data.price[i]), float(data.size[i]), int(data.aggressor[i]) >= 0
        t = self.synthetic.next_trade(s, now_ns)
        return t.price, t.size, t.aggressor is Side.BUY

    def want_kline(self, category: str, symbol: str, interval: str) -> None:
        """Start producing klines of `interval` (on first subscription)."""
        if interval not in KLINE_SECONDS:
            raise ValueError(f"unsupported kline interval {interval!r}")
        self.kline_states.setdefault((category, symbol, interval), KlineState(interval))

    def market_ns(self, now_ns: int) -> int:
        """Market time at wall time `now_ns` (see `market_time_scale`)."""
        if self.market_time_scale == 1.0:
            return now_ns
        return self.start_ns + int((now_ns - self.start_ns) * self.market_time_scale)

    def tick(self, now_ns: int, topics: set[tuple[str, str]], skip_delta: bool = False) -> TickOutput:
        """One print per symbol (both categories): public frames of `topics` and private frames.

        `topics` is every (category, topic) some connection subscribes; `skip_delta`: the
        orderbook deltas of this tick advance `u` and `seq` but are not sent (a gap).
        """
        public: list[tuple[str, str, dict[str, Any]]] = []
        private: list[tuple[str, dict[str, Any]]] = []
        user_ms = now_ns // NS_PER_MS  # orders, fills, positions: the wall clock
        mkt_ns = self.market_ns(now_ns)
        ts_ms = mkt_ns // NS_PER_MS  # trades, books, tickers, klines: market time
        for s in self.symbols:
            price, size, buyer_taker = self._next_print(s, mkt_ns)
            for c in CATEGORIES:
                inst = self.instruments[c][s]
                self._set_touch(c, s, price)
                engine = self.engines[c][s]
                px = engine._px(price)
                if c == "linear":
                    self.linear.marks[inst.id] = px
                events = engine.on_trade(price, size, now_ns)
                private += self._private_events(events, user_ms)
                qty = max((Decimal(repr(size)) / inst.step_size).to_integral_value(ROUND_FLOOR), Decimal(1)) \
                    * inst.step_size
                seq = self.public_seq.next()
                tid = str(uuid.UUID(int=self.book_rng.getrandbits(128), version=4))
                trade = TapeTrade(tid, ts_ms, px, qty, "Buy" if buyer_taker else "Sell", seq)
                self._record_trade(c, s, trade)
                if (c, f"publicTrade.{s}") in topics:
                    public.append((c, f"publicTrade.{s}", self.trade_frame(c, s, trade, ts_ms)))
                for depth in DEPTHS[c]:
                    topic = f"orderbook.{depth}.{s}"
                    if (c, topic) in topics:
                        frame = self._book_frame(c, s, depth, ts_ms)
                        if frame is not None and not (skip_delta and frame["type"] == "delta"):
                            public.append((c, topic, frame))
                if (c, f"tickers.{s}") in topics:
                    public.append((c, f"tickers.{s}", self.ticker_frame(c, s, ts_ms)))
                for (kc, ks, interval), k in self.kline_states.items():
                    if kc == c and ks == s:
                        rows = self._kline(c, s, k, float(px), float(qty), ts_ms)
                        topic = f"kline.{interval}.{s}"
                        if (c, topic) in topics:
                            public += [(c, topic, {"topic": topic, "data": [r], "ts": ts_ms, "type": "snapshot"})
                                       for r in rows]
        return TickOutput(public, private)

    def _record_trade(self, c: str, s: str, trade: TapeTrade) -> None:
        self.tape[(c, s)].append(trade)
        st = self.day_stats.setdefault((c, s), {"open": trade.price, "high": trade.price, "low": trade.price,
                                                "volume": _ZERO, "turnover": _ZERO})
        st["high"] = max(st["high"], trade.price)
        st["low"] = min(st["low"], trade.price)
        st["volume"] += trade.size
        st["turnover"] += trade.size * trade.price

    def trade_frame(self, c: str, s: str, t: TapeTrade, ts_ms: int) -> dict[str, Any]:
        """A `publicTrade.SYM` frame of one trade."""
        inst = self.instruments[c][s]
        row = {"T": t.time_ms, "s": s, "S": t.side, "v": _fmt(t.size, inst.step_size),
               "p": _fmt(t.price, inst.tick_size), "L": "PlusTick", "i": t.exec_id, "BT": False, "seq": t.seq}
        if c == "spot":
            row["RPI"] = False
        return {"topic": f"publicTrade.{s}", "type": "snapshot", "ts": ts_ms, "data": [row]}

    def bench_trade_frame(self, c: str, s: str, now_ns: int) -> tuple[str, dict[str, Any]]:
        """(topic, frame) of one public trade at the last price, touching nothing else (benchmarks):
        the book, quotes and resting orders stay as they are, and the trade is not kept."""
        c = self.category(c)
        s = self.symbol(c, s)
        inst = self.instruments[c][s]
        engine = self.engines[c][s]
        ts_ms = now_ns // NS_PER_MS
        px = engine._px(engine.last_price or self.start_prices[s])
        trade = TapeTrade(f"bench-{self.public_seq.value + 1}", ts_ms, px, inst.min_qty or inst.step_size, "Buy",
                          self.public_seq.next())
        return f"publicTrade.{s}", self.trade_frame(c, s, trade, ts_ms)

    def book_snapshot_frame(self, c: str, s: str, depth: int, ts_ms: int) -> dict[str, Any]:
        """The snapshot a new subscriber of orderbook.{depth}.SYM gets (the current view, its `u`)."""
        book = self._levels(c, s)
        view = book.views.get(depth)
        if view is None:
            bids, asks = book.top(depth)
            book.seq += 1
            view = (1, bids, asks)
            book.views[depth] = view
        u, bids, asks = view
        return self._book_payload(c, s, depth, "snapshot", u, book.seq, bids, asks, ts_ms)

    def _book_frame(self, c: str, s: str, depth: int, ts_ms: int) -> dict[str, Any] | None:
        book = self._levels(c, s)
        bids, asks = book.top(depth)
        old = book.views.get(depth)
        book.seq += 1
        if old is None or depth == 1:
            u = 1 if old is None else old[0] + 1
            book.views[depth] = (u, bids, asks)
            return self._book_payload(c, s, depth, "snapshot", u, book.seq, bids, asks, ts_ms)
        u0, ob, oa = old
        db = {p: q for p, q in bids.items() if ob.get(p) != q} | {p: _ZERO for p in ob if p not in bids}
        da = {p: q for p, q in asks.items() if oa.get(p) != q} | {p: _ZERO for p in oa if p not in asks}
        book.views[depth] = (u0 + 1, bids, asks)
        return self._book_payload(c, s, depth, "delta", u0 + 1, book.seq, db, da, ts_ms)

    def _book_payload(self, c: str, s: str, depth: int, kind: str, u: int, seq: int,
                      bids: Mapping[Decimal, Decimal], asks: Mapping[Decimal, Decimal], ts_ms: int) -> dict[str, Any]:
        inst = self.instruments[c][s]
        tq, sq = inst.tick_size, inst.step_size
        b = [[_fmt(p, tq), _fmt(q, sq)] for p, q in sorted(bids.items(), key=lambda kv: kv[0], reverse=True)]
        a = [[_fmt(p, tq), _fmt(q, sq)] for p, q in sorted(asks.items(), key=lambda kv: kv[0])]
        return {"topic": f"orderbook.{depth}.{s}", "type": kind, "ts": ts_ms,
                "data": {"s": s, "b": b, "a": a, "u": u, "seq": seq}, "cts": ts_ms - 2}

    def ticker_fields(self, c: str, s: str) -> dict[str, str]:
        """The ticker of a symbol (REST market/tickers and the tickers topic)."""
        inst = self.instruments[c][s]
        tq, sq = inst.tick_size, inst.step_size
        bid, bid_q, ask, ask_q = self.quotes[(c, s)]
        last = self.engines[c][s]._px(self.engines[c][s].last_price or self.start_prices[s])
        st = self.day_stats.get((c, s), {"open": last, "high": last, "low": last, "volume": _ZERO,
                                         "turnover": _ZERO})
        pct = ((last - st["open"]) / st["open"]).quantize(Decimal("0.0001")) if st["open"] else _ZERO
        out = {"symbol": s, "bid1Price": _fmt(bid, tq), "bid1Size": _fmt(bid_q, sq), "ask1Price": _fmt(ask, tq),
               "ask1Size": _fmt(ask_q, sq), "lastPrice": _fmt(last, tq), "prevPrice24h": _fmt(st["open"], tq),
               "price24hPcnt": f"{pct:f}", "highPrice24h": _fmt(st["high"], tq), "lowPrice24h": _fmt(st["low"], tq),
               "turnover24h": _amt(st["turnover"]), "volume24h": _fmt(st["volume"], sq)}
        if c == "spot":
            out["usdIndexPrice"] = _fmt(last, tq)
        else:
            out.update({"indexPrice": _fmt(last, tq), "markPrice": _fmt(last, tq), "prevPrice1h": _fmt(st["open"], tq),
                        "openInterest": "492373.72", "openInterestValue": _amt(Decimal("492373.72") * last),
                        "fundingRate": f"{self.funding_rate:f}", "nextFundingTime": "0",
                        "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0",
                        "basis": "", "tickDirection": "PlusTick", "fundingIntervalHour": "8",
                        "fundingCap": "0.005", "preOpenPrice": "", "preQty": "", "curPreListingPhase": ""})
        return out

    def ticker_frame(self, c: str, s: str, ts_ms: int) -> dict[str, Any]:
        """A tick's `tickers.SYM` frame: spot a snapshot; linear a delta (its snapshot came at subscribe)."""
        data = self.ticker_fields(c, s)
        kind = "delta" if c == "linear" else "snapshot"
        return {"topic": f"tickers.{s}", "type": kind, "data": data, "cs": self.public_seq.value, "ts": ts_ms}

    def _kline(self, c: str, s: str, k: KlineState, price: float, size: float, ts_ms: int) -> list[dict[str, Any]]:
        inst = self.instruments[c][s]
        out = []
        start = ts_ms - ts_ms % k.interval_ms
        if k.start_ms >= 0 and start > k.start_ms:
            out.append(k.payload(True, ts_ms, inst.tick_size, inst.step_size))
        if start != k.start_ms:
            k.start_ms = start
            k.open = k.high = k.low = price
            k.volume = k.turnover = 0.0
        k.high = max(k.high, price)
        k.low = min(k.low, price)
        k.close = price
        k.volume += size
        k.turnover += size * price
        out.append(k.payload(False, ts_ms, inst.tick_size, inst.step_size))
        return out

    # ------------------------------------------------------------ public REST

    def instruments_info(self, p: Mapping[str, str]) -> dict[str, Any]:
        """GET /v5/market/instruments-info (symbol, status, limit 1..1000, cursor)."""
        c = self.category(p.get("category"))
        rows = list(self.entries[c].values())
        if p.get("symbol"):
            rows = [r for r in rows if r["symbol"] == p["symbol"]]
        if p.get("status"):
            rows = [r for r in rows if r["status"] == p["status"]]
        if p.get("baseCoin"):
            rows = [r for r in rows if r["baseCoin"] == p["baseCoin"]]
        limit = _limit(p, 500, 1000)
        offset = _cursor_offset(p.get("cursor"))
        page = rows[offset: offset + limit]
        nxt = _cursor(offset + limit) if offset + limit < len(rows) else ""
        return {"category": c, "list": page, "nextPageCursor": nxt}

    def orderbook(self, p: Mapping[str, str], now_ms: int) -> dict[str, Any]:
        """GET /v5/market/orderbook (spot limit 1..200 default 1; linear 1..500 default 25)."""
        c = self.category(p.get("category"))
        s = self.symbol(c, p.get("symbol"))
        cap, default = (200, 1) if c == "spot" else (500, 25)
        limit = _limit(p, default, cap)
        book = self._levels(c, s)
        bids, asks = book.top(limit)
        inst = self.instruments[c][s]
        tq, sq = inst.tick_size, inst.step_size
        return {"s": s, "b": [[_fmt(px, tq), _fmt(q, sq)] for px, q in bids.items()],
                "a": [[_fmt(px, tq), _fmt(q, sq)] for px, q in asks.items()],
                "ts": now_ms, "u": book.views.get(limit, (book.seq,))[0], "seq": book.seq, "cts": now_ms - 2}

    def tickers(self, p: Mapping[str, str]) -> dict[str, Any]:
        """GET /v5/market/tickers."""
        c = self.category(p.get("category"))
        syms = [self.symbol(c, p["symbol"])] if p.get("symbol") else self.symbols
        return {"category": c, "list": [self.ticker_fields(c, s) for s in syms]}

    def recent_trades(self, p: Mapping[str, str]) -> dict[str, Any]:
        """GET /v5/market/recent-trade (newest first; spot limit 1..60, linear 1..1000)."""
        c = self.category(p.get("category"))
        s = self.symbol(c, p.get("symbol"))
        limit = _limit(p, 60 if c == "spot" else 500, 60 if c == "spot" else 1000)
        inst = self.instruments[c][s]
        rows = [{"execId": t.exec_id, "symbol": s, "price": _fmt(t.price, inst.tick_size),
                 "size": _fmt(t.size, inst.step_size), "side": t.side, "time": str(t.time_ms),
                 "isBlockTrade": False, "isRPITrade": False, "seq": str(t.seq)}
                for t in list(self.tape[(c, s)])[::-1][:limit]]
        return {"category": c, "list": rows}

    def klines(self, p: Mapping[str, str]) -> dict[str, Any]:
        """GET /v5/market/kline: the seeded past before the start, newest first (limit 1..1000, default 200)."""
        c = self.category(p.get("category"))
        s = self.symbol(c, p.get("symbol"))
        interval = p.get("interval", "")
        if interval not in KLINE_SECONDS:
            raise params_error(f"interval invalid: {interval!r}")
        limit = _limit(p, 200, 1000)
        past = self._past(s, interval)
        ts_ms = past.ts_open_ns // NS_PER_MS
        lo, hi = 0, len(past)
        if p.get("start"):
            lo = int(np.searchsorted(ts_ms, _int(p, "start"), side="left"))
        if p.get("end"):
            hi = int(np.searchsorted(ts_ms, _int(p, "end"), side="right"))
        lo = max(lo, hi - limit)  # Bybit: the newest `limit` bars of [start, end]
        inst = self.instruments[c][s]
        tq, sq = inst.tick_size, inst.step_size
        rows = []
        for i in range(hi - 1, lo - 1, -1):
            o, h, low, cl, v = (float(a[i]) for a in (past.open, past.high, past.low, past.close, past.volume))
            rows.append([str(int(ts_ms[i])), _fmt(o, tq), _fmt(h, tq), _fmt(low, tq), _fmt(cl, tq), _fmt(v, sq),
                         _amt(v * cl)])
        return {"symbol": s, "category": c, "list": rows}

    def _past(self, s: str, interval: str) -> BarArrays:
        key = (s, interval)
        past = self.pasts.get(key)
        if past is None:
            past = self.synthetic.history(s, self.start_ns, PAST_BARS, KLINE_SECONDS[interval],
                                          end_price=self.start_prices[s], max_trades_per_bar=16)
            self.pasts[key] = past
        return past

    # ------------------------------------------------------------ orders

    def create_order(self, p: Mapping[str, Any], now_ns: int) -> tuple[dict[str, Any], list[tuple[str, dict]]]:
        """POST /v5/order/create → ({orderId, orderLinkId}, private frames)."""
        c = self.category(p.get("category"))
        s = self.symbol(c, p.get("symbol"))
        side_raw = p.get("side")
        if side_raw not in ("Buy", "Sell"):
            raise BybitError(170117, "Invalid side.") if c == "spot" else params_error(f"side invalid: {side_raw!r}")
        side = Side.BUY if side_raw == "Buy" else Side.SELL
        type_raw = p.get("orderType")
        if type_raw not in ("Market", "Limit"):
            raise BybitError(170116, "Invalid orderType.") if c == "spot" else \
                params_error(f"orderType invalid: {type_raw!r}")
        tif_raw = str(p.get("timeInForce") or ("IOC" if type_raw == "Market" else "GTC"))
        if tif_raw not in TIF_WIRE:
            raise BybitError(170115, "Invalid timeInForce.") if c == "spot" else \
                params_error(f"timeInForce invalid: {tif_raw!r}")
        qty_raw = _dec(p.get("qty"), "qty")
        assert qty_raw is not None
        if qty_raw <= 0:
            raise params_error(f"qty invalid: {p.get('qty')!r}")
        price = _dec(p.get("price"), "price", required=type_raw == "Limit") if type_raw == "Limit" else None
        link = p.get("orderLinkId") or ""
        if not isinstance(link, str) or len(link) > 36 or not all(ch in LINK_ID_CHARS for ch in link):
            raise params_error(f"orderLinkId invalid: {link!r} (at most 36 letters, digits, '-' or '_')")
        position_idx = p.get("positionIdx", 0)
        if c == "linear" and str(position_idx) not in ("0", "") and not self.position_mode_hedge:
            raise params_error("position idx not match position mode")
        if link and link in self.orders:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        if not link:
            link = ""
        inst = self.instruments[c][s]
        if not inst.tradable:
            raise BybitError(170130 if c == "spot" else 110023,
                             f"Symbol {s} is not trading (status {self.entries[c][s]['status']})")
        reduce_only = c == "linear" and _bool(p.get("reduceOnly"))
        market_unit = ""
        qty = qty_raw
        bid, _, ask, _ = self.quotes[(c, s)]
        if c == "spot" and type_raw == "Market":
            market_unit = str(p.get("marketUnit") or ("quoteCoin" if side is Side.BUY else "baseCoin"))
            if market_unit not in ("baseCoin", "quoteCoin"):
                raise params_error(f"marketUnit invalid: {market_unit!r}")
            if market_unit == "quoteCoin":
                if qty_raw < Decimal(self.entries[c][s]["lotSizeFilter"]["minOrderAmt"]):
                    raise BybitError(170140, "Order value exceeded lower limit")
                ref = ask if side is Side.BUY else bid
                qty = (qty_raw / ref / inst.step_size).to_integral_value(ROUND_FLOOR) * inst.step_size
                if qty <= 0:
                    raise BybitError(170136, "Order quantity lower than the minimum.")
        if type_raw == "Market":
            otype = OrderType.MARKET
        elif tif_raw == "PostOnly":
            otype = OrderType.LIMIT_MAKER
        else:
            otype = OrderType.LIMIT
        cid = link or f"emu-{self.rng.getrandbits(64):016x}"
        self.order_link_ids.append(cid)
        req = OrderRequest(cid, inst.id, side, otype, qty, price, TIF_WIRE[tif_raw], reduce_only)
        engine = self.engines[c][s]
        now_ms = now_ns // NS_PER_MS
        order_id = self._new_order_id(c)
        meta = OrderMeta(c, s, order_id, link, type_raw, tif_raw, qty_raw, market_unit, now_ms, now_ms,
                         reduce_only, last_price_on_created=_fmt(engine._px(engine.last_price or 0), inst.tick_size))
        try:
            order = engine.accept(req, now_ns)
        except OrderRejected as exc:
            if otype is OrderType.LIMIT_MAKER and "immediately match" in exc.message:
                # Bybit accepts a crossing PostOnly order, then cancels it.
                order = SimOrder(cid, order_id, inst.id, side, otype, qty, price, TimeInForce.GTC, False, now_ns)
                order.status = OrderStatus.CANCELED
                order.reason = "post-only would take liquidity"
                meta.cancel_type = "CancelByUser"
                meta.reject_reason = "EC_PostOnlyWillTakeLiquidity"
            else:
                self.order_link_ids.pop()
                raise _bybit_reject(c, exc) from None
        order.venue_order_id = order_id
        self.meta[cid] = meta
        self.orders[cid] = order
        self.by_order_id[order_id] = cid
        if c == "spot":
            self.spot.add_order(order)
        else:
            self.linear.orders[cid] = order
        events: list[VenueOrder | VenueFill] = [order.snapshot()]
        if order.taker_pending:
            touch = float(ask if side is Side.BUY else bid)
            events += list(engine.on_trade(touch, IMMEDIATE_LIQUIDITY, now_ns))
        if order.status is OrderStatus.EXPIRED or (order.status is OrderStatus.CANCELED and order.filled_qty == 0
                                                   and tif_raw in ("IOC", "FOK")):
            meta.cancel_type = "CancelByUser"
            meta.reject_reason = "EC_NoImmediateQtyToFill" if tif_raw != "FOK" else "EC_FOKNotFilled"
        private = self._private_events(events, now_ms)
        return {"orderId": order_id, "orderLinkId": link}, private

    def find(self, c: str, p: Mapping[str, Any], *, missing: tuple[int, str] | None = None) -> SimOrder:
        """The order named by orderId or orderLinkId (110001 / spot 170213 when unknown)."""
        s = p.get("symbol")
        oid, link = p.get("orderId") or "", p.get("orderLinkId") or ""
        if not oid and not link:
            raise params_error("orderId or orderLinkId is required")
        cid = link or self.by_order_id.get(str(oid), "")
        order = self.orders.get(cid)
        code, msg = missing or ((170213, "Order does not exist.") if c == "spot" else (110001, "Order does not exist"))
        if (order is None or self.meta[cid].category != c or (s and order.instrument_id.symbol != s)
                or (oid and self.meta[cid].order_id != oid)):
            raise BybitError(code, msg)
        return order

    def cancel_order(self, p: Mapping[str, Any], now_ns: int) -> tuple[dict[str, Any], list[tuple[str, dict]]]:
        """POST /v5/order/cancel (an order not open: 110001 / spot 170213)."""
        c = self.category(p.get("category"))
        self.symbol(c, p.get("symbol"))
        order = self.find(c, p)
        meta = self.meta[order.client_order_id]
        vo = self.engines[c][meta.symbol].cancel(order.client_order_id, now_ns)
        if vo is None:
            raise BybitError(170213, "Order does not exist.") if c == "spot" else \
                BybitError(110001, "Order does not exist")
        meta.cancel_type = "CancelByUser"
        meta.updated_ms = now_ns // NS_PER_MS
        return ({"orderId": meta.order_id, "orderLinkId": meta.order_link_id},
                self._private_events([vo], now_ns // NS_PER_MS))

    def cancel_all(self, p: Mapping[str, Any], now_ns: int) -> tuple[dict[str, Any], list[tuple[str, dict]]]:
        """POST /v5/order/cancel-all (symbol optional; linear without symbol needs settleCoin or baseCoin)."""
        c = self.category(p.get("category"))
        syms = [self.symbol(c, p["symbol"])] if p.get("symbol") else self.symbols
        if c == "linear" and not p.get("symbol") and not (p.get("settleCoin") or p.get("baseCoin")):
            raise params_error("symbol, baseCoin or settleCoin is required")
        rows, events = [], []
        for s in syms:
            engine = self.engines[c][s]
            for o in engine.open_orders():
                vo = engine.cancel(o.client_order_id, now_ns)
                if vo is None:
                    continue
                meta = self.meta[o.client_order_id]
                meta.cancel_type = "CancelByUser"
                meta.updated_ms = now_ns // NS_PER_MS
                events.append(vo)
                rows.append({"orderId": meta.order_id, "orderLinkId": meta.order_link_id})
        body: dict[str, Any] = {"list": rows}
        if c == "spot":
            body["success"] = "1"
        return body, self._private_events(events, now_ns // NS_PER_MS)

    def amend_order(self, p: Mapping[str, Any], now_ns: int) -> tuple[dict[str, Any], list[tuple[str, dict]]]:
        """POST /v5/order/amend: a new qty and/or price of an open limit order (cancel + re-accept inside)."""
        c = self.category(p.get("category"))
        self.symbol(c, p.get("symbol"))
        order = self.find(c, p)
        meta = self.meta[order.client_order_id]
        engine = self.engines[c][meta.symbol]
        if engine.get(order.client_order_id) is None:
            raise BybitError(110001, "Order does not exist") if c == "linear" else \
                BybitError(170213, "Order does not exist.")
        new_qty = _dec(p.get("qty"), "qty", required=False) or order.quantity
        new_px = _dec(p.get("price"), "price", required=False) or order.price
        if new_qty == order.quantity and new_px == order.price:
            raise BybitError(10001, "The order remains unchanged as the parameters entered match the existing ones.")
        if new_qty <= order.filled_qty:
            raise params_error(f"qty {new_qty} is not above the filled qty {order.filled_qty}")
        # Re-check the new terms as a fresh order on the same engine (funds, filters), then swap.
        probe = OrderRequest(order.client_order_id + "#amend", order.instrument_id, order.side, order.order_type,
                             new_qty - order.filled_qty, new_px, order.time_in_force, order.reduce_only)
        try:
            engine.check(probe)
        except OrderRejected as exc:
            raise _bybit_reject(c, exc) from None
        # The funds held move to the new terms: release what the order holds, reserve for
        # the new remaining quantity at the new price; if that is refused, the old hold
        # comes back and the order stays as it was.
        ledger: Any = self.spot if c == "spot" else self.linear
        fee = max(engine.maker_fee, engine.taker_fee)
        old_qty, old_px = order.quantity, order.price
        ledger.on_done(order)
        try:
            order.quantity = new_qty - order.filled_qty
            ledger.reserve(order, new_px, fee)
        except OrderRejected as exc:
            order.quantity = old_qty - order.filled_qty
            ledger.reserve(order, old_px, fee)
            order.quantity = old_qty
            raise _bybit_reject(c, exc) from None
        order.quantity = new_qty
        meta.qty_raw = new_qty
        order.price = new_px
        order.price_f = float(new_px) if new_px is not None else 0.0
        order.ts_ns = now_ns
        meta.updated_ms = now_ns // NS_PER_MS
        return ({"orderId": meta.order_id, "orderLinkId": meta.order_link_id},
                self._private_events([order.snapshot()], meta.updated_ms))

    def _one_order_page(self, c: str, p: Mapping[str, str]) -> dict[str, Any]:
        """The page of the order named by orderId/orderLinkId (an empty list when there is none)."""
        try:
            rows = [self.order_wire(self.find(c, p))]
        except BybitError:
            rows = []
        return {"list": rows, "nextPageCursor": "", "category": c}

    def realtime(self, p: Mapping[str, str]) -> dict[str, Any]:
        """GET /v5/order/realtime: open orders; by orderId/orderLinkId also a closed one (UTA keeps them)."""
        c = self.category(p.get("category"))
        if p.get("orderId") or p.get("orderLinkId"):
            return self._one_order_page(c, p)
        if c == "linear" and not p.get("symbol") and not (p.get("settleCoin") or p.get("baseCoin")):
            raise params_error("symbol, baseCoin or settleCoin is required")
        syms = [self.symbol(c, p["symbol"])] if p.get("symbol") else self.symbols
        open_only = str(p.get("openOnly", "0"))
        rows = []
        for cid, o in self.orders.items():
            m = self.meta[cid]
            if m.category != c or m.symbol not in syms:
                continue
            if o.status.is_open if open_only == "0" else not o.status.is_open:
                rows.append(self.order_wire(o))
        rows.reverse()
        return self._page(rows, p, 20, 50, c)

    def history(self, p: Mapping[str, str]) -> dict[str, Any]:
        """GET /v5/order/history: every order of the category, newest first (limit 1..50, default 20)."""
        c = self.category(p.get("category"))
        if p.get("orderId") or p.get("orderLinkId"):
            return self._one_order_page(c, p)
        syms = [self.symbol(c, p["symbol"])] if p.get("symbol") else self.symbols
        rows = [self.order_wire(o) for cid, o in self.orders.items()
                if self.meta[cid].category == c and self.meta[cid].symbol in syms
                and (not p.get("orderStatus") or self.order_wire(o)["orderStatus"] == p["orderStatus"])]
        start = int(p["startTime"]) if p.get("startTime") else None
        end = int(p["endTime"]) if p.get("endTime") else None
        if start is not None or end is not None:
            rows = [r for r in rows if (start is None or int(r["createdTime"]) >= start)
                    and (end is None or int(r["createdTime"]) <= end)]
        rows.reverse()
        return self._page(rows, p, 20, 50, c)

    def _page(self, rows: list[dict[str, Any]], p: Mapping[str, str], default: int, cap: int,
              c: str) -> dict[str, Any]:
        limit = _limit(p, default, cap)
        offset = _cursor_offset(p.get("cursor"))
        page = rows[offset: offset + limit]
        nxt = _cursor(offset + limit) if offset + limit < len(rows) else ""
        return {"list": page, "nextPageCursor": nxt, "category": c}

    def order_wire(self, o: SimOrder) -> dict[str, Any]:
        """An order as order/realtime, order/history and the `order` topic show it."""
        m = self.meta[o.client_order_id]
        inst = self.instruments[m.category][m.symbol]
        tq, sq = inst.tick_size, inst.step_size
        status = ORDER_STATUS_WIRE[o.status]
        if status == "Cancelled" and m.category == "spot" and o.filled_qty > 0:
            status = "PartiallyFilledCanceled"
        avg = (o.cum_quote / o.filled_qty) if o.filled_qty else None
        leaves = o.remaining if o.status.is_open else _ZERO
        price = o.price if o.price is not None else _ZERO
        leaves_value = leaves * (o.price if o.price is not None else Decimal(repr(self.engines[m.category][
            m.symbol].last_price or 0)))
        qty_text = _fmt(m.qty_raw, Decimal("1e-8") if m.market_unit == "quoteCoin" else sq)
        return {
            "orderId": m.order_id, "orderLinkId": m.order_link_id, "blockTradeId": "", "symbol": m.symbol,
            "price": _fmt(price, tq), "qty": qty_text, "side": "Buy" if o.side is Side.BUY else "Sell",
            "isLeverage": "0" if m.category == "spot" else "", "positionIdx": 0, "orderStatus": status,
            "createType": "CreateByUser", "cancelType": m.cancel_type if not o.status.is_open else "UNKNOWN",
            "rejectReason": m.reject_reason, "avgPrice": _fmt(avg, tq) if avg is not None else
            ("" if m.category == "spot" else "0"), "leavesQty": _fmt(leaves, sq), "leavesValue": _amt(leaves_value),
            "cumExecQty": _fmt(o.filled_qty, sq), "cumExecValue": _amt(o.cum_quote), "cumExecFee": _amt(o.fees),
            "timeInForce": m.tif, "orderType": m.order_type, "stopOrderType": "", "orderIv": "",
            "marketUnit": m.market_unit, "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0",
            "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "",
            "lastPriceOnCreated": m.last_price_on_created, "reduceOnly": m.reduce_only, "closeOnTrigger": False,
            "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "", "tpLimitPrice": "",
            "slLimitPrice": "", "placeType": "", "createdTime": str(m.created_ms), "updatedTime": str(m.updated_ms),
            "cumFeeDetail": {QUOTE: _amt(o.fees)} if o.fees else {},
        }

    # ------------------------------------------------------------ executions, positions, wallet

    def execution_list(self, p: Mapping[str, str], now_ms: int) -> dict[str, Any]:
        """GET /v5/execution/list: newest first, at most 7 days between startTime and endTime
        (one given: the 7 days from / to it; none: the last 7 days), limit 1..100 (default 50), cursor."""
        c = self.category(p.get("category"))
        start = _int(p, "startTime") if p.get("startTime") else None
        end = _int(p, "endTime") if p.get("endTime") else None
        if start is not None and end is not None:
            if end < start:
                raise params_error("endTime must be after startTime")
            if end - start > EXEC_WINDOW_MS:
                raise params_error("The time range between startTime and endTime cannot exceed 7 days")
        elif start is not None:
            end = start + EXEC_WINDOW_MS
        elif end is not None:
            start = end - EXEC_WINDOW_MS
        else:
            end, start = now_ms, now_ms - EXEC_WINDOW_MS
        rows = [e for e in self.executions if e.category == c and start <= e.exec_time_ms <= end
                and (not p.get("symbol") or e.symbol == p["symbol"])
                and (not p.get("orderId") or e.order_id == p["orderId"])
                and (not p.get("orderLinkId") or e.order_link_id == p["orderLinkId"])
                and (not p.get("execType") or e.exec_type == p["execType"])]
        rows.reverse()
        page = self._page([e.wire(False) for e in rows], p, 50, 100, c)
        return {"nextPageCursor": page["nextPageCursor"], "category": c, "list": page["list"]}

    def position_rows(self, symbols: Iterable[str], now_ms: int, with_category: bool = False) -> list[dict[str, Any]]:
        """Linear one-way position rows (`size` "0" and `side` "" when flat)."""
        fa = self.linear
        rows = []
        for s in symbols:
            inst = self.instruments["linear"][s]
            tq, sq = inst.tick_size, inst.step_size
            qty, entry = fa.positions.get(inst.id, (_ZERO, _ZERO))
            mark = fa.marks.get(inst.id, Decimal(repr(self.engines["linear"][s].last_price or 0)))
            lev = Decimal(fa.leverage[s])
            value = abs(qty) * entry
            created, updated = fa.position_times.get(s, (now_ms, now_ms))
            row = {
                "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": s,
                "side": "" if qty == 0 else ("Buy" if qty > 0 else "Sell"), "size": _fmt(abs(qty), sq),
                "avgPrice": _fmt(entry, Decimal("1e-8")) if qty else "0", "positionValue": _amt(value),
                "tradeMode": 0, "positionStatus": "Normal", "autoAddMargin": 0, "adlRankIndicator": 2 if qty else 0,
                "leverage": str(fa.leverage[s]), "positionBalance": _amt(value / lev),
                "markPrice": _fmt(mark, tq), "liqPrice": "", "bustPrice": "", "positionMM": "0",
                "positionMMByMp": "0", "positionIM": _amt(value / lev), "positionIMByMp": _amt(abs(qty) * mark / lev),
                "tpslMode": "Full", "takeProfit": "0", "stopLoss": "0", "trailingStop": "0",
                "unrealisedPnl": _amt(qty * (mark - entry)),
                "curRealisedPnl": _amt(fa.cur_realised.get(s, _ZERO)),
                "cumRealisedPnl": _amt(fa.cum_realised.get(s, _ZERO)), "seq": self.position_seq.value,
                "isReduceOnly": False, "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
                "sessionAvgPrice": "", "createdTime": str(created), "updatedTime": str(updated),
                "breakEvenPrice": _fmt(entry, tq) if qty else "0",
            }
            if with_category:
                row["category"] = "linear"
                row["entryPrice"] = row["avgPrice"]
            rows.append(row)
        return rows

    def position_list(self, p: Mapping[str, str], now_ms: int) -> dict[str, Any]:
        """GET /v5/position/list (category linear; symbol, or settleCoin=USDT for all)."""
        c = self.category(p.get("category"))
        if c != "linear":
            raise params_error("category only support linear, inverse and option")
        if p.get("symbol"):
            syms = [self.symbol(c, p["symbol"])]
        elif p.get("settleCoin") or p.get("baseCoin"):
            if p.get("settleCoin") not in (None, "", QUOTE):
                syms = []
            else:
                syms = [s for s in self.symbols if not p.get("baseCoin") or s.startswith(p["baseCoin"])]
        else:
            raise params_error("symbol or settleCoin is required")
        page = self._page(self.position_rows(syms, now_ms), p, 20, 200, c)
        return page

    def set_leverage(self, p: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v5/position/set-leverage (buyLeverage = sellLeverage in one-way mode; unchanged: 110043)."""
        c = self.category(p.get("category"))
        if c != "linear":
            raise params_error("category only support linear and inverse")
        s = self.symbol(c, p.get("symbol"))
        buy, sell = _dec(p.get("buyLeverage"), "buyLeverage"), _dec(p.get("sellLeverage"), "sellLeverage")
        if buy != sell:
            raise params_error("buy leverage not equal sell leverage in one-way mode")
        assert buy is not None
        if not (1 <= buy <= 100) or buy != buy.to_integral_value():
            raise BybitError(10001, f"leverage invalid: {buy} (1..100, whole numbers in this emulator)")
        if self.linear.leverage[s] == int(buy):
            raise BybitError(110043, "Set leverage has not been modified.")
        self.linear.leverage[s] = int(buy)
        return {}

    def switch_mode(self, p: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v5/position/switch-mode (mode 0 one-way, 3 hedge; unchanged: 110025)."""
        self.category(p.get("category"))
        mode = str(p.get("mode", ""))
        if mode not in ("0", "3"):
            raise params_error(f"mode invalid: {p.get('mode')!r}")
        hedge = mode == "3"
        if hedge == self.position_mode_hedge:
            raise BybitError(110025, "Position mode has not been modified.")
        if any(q for q, _ in self.linear.positions.values()):
            raise BybitError(110024, "You have an existing position, so the position mode cannot be switched.")
        self.position_mode_hedge = hedge
        return {}

    def wallet_coins(self, coins: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The `coin` rows of the unified account (spot balances; USDT carries linear PnL and margin)."""
        fa = self.linear
        want = set(coins) if coins else None
        rows = []
        upnl = fa.unrealized()
        for asset, b in self.spot.balances().items():
            if want is not None and asset not in want:
                continue
            is_quote = asset == QUOTE
            wallet = b.total
            rows.append({
                "availableToBorrow": "", "bonus": "0", "accruedInterest": "0",
                "availableToWithdraw": "", "totalOrderIM": _amt(sum(fa.order_margin.values(), _ZERO))
                if is_quote else "0", "equity": _amt(wallet + (upnl if is_quote else _ZERO)),
                "totalPositionMM": "0", "usdValue": _amt(wallet * self._usd(asset)),
                "spotHedgingQty": "0", "unrealisedPnl": _amt(upnl) if is_quote else "0", "collateralSwitch": True,
                "borrowAmount": "0", "totalPositionIM": _amt(fa.used_margin() - sum(fa.order_margin.values(), _ZERO))
                if is_quote else "0", "walletBalance": _amt(wallet),
                "cumRealisedPnl": _amt(sum(fa.cum_realised.values(), _ZERO)) if is_quote else "0",
                "locked": _amt(b.locked), "marginCollateral": True, "coin": asset, "spotBorrow": "0",
            })
        return rows

    def _usd(self, asset: str) -> Decimal:
        if asset in (QUOTE, "USDC"):
            return Decimal(1)
        s = asset + QUOTE
        if s in self.engines["spot"]:
            return Decimal(repr(self.engines["spot"][s].last_price or 0))
        return _ZERO

    def wallet_balance(self, p: Mapping[str, str]) -> dict[str, Any]:
        """GET /v5/account/wallet-balance (accountType UNIFIED; coin optional, comma separated)."""
        if p.get("accountType") != "UNIFIED":
            raise params_error(f"accountType only support UNIFIED, got {p.get('accountType')!r}")
        coins = [x for x in p.get("coin", "").split(",") if x] or None
        return {"list": [self.wallet_account(coins)]}

    def wallet_account(self, coins: Iterable[str] | None = None) -> dict[str, Any]:
        """One UNIFIED account entry (REST list[0] and the `wallet` topic's data[0])."""
        rows = self.wallet_coins(coins)
        fa = self.linear
        equity = sum((Decimal(r["usdValue"]) for r in rows), _ZERO) + fa.unrealized()
        wallet = sum((Decimal(r["usdValue"]) for r in rows), _ZERO)
        im = fa.used_margin()
        return {"totalEquity": _amt(equity), "accountIMRate": "0", "accountIMRateByMp": "0",
                "totalMarginBalance": _amt(equity), "totalInitialMargin": _amt(im), "totalInitialMarginByMp": _amt(im),
                "accountType": "UNIFIED", "totalAvailableBalance": _amt(fa.available()), "accountMMRate": "0",
                "accountMMRateByMp": "0", "totalPerpUPL": _amt(fa.unrealized()), "totalWalletBalance": _amt(wallet),
                "accountLTV": "0", "totalMaintenanceMargin": "0", "totalMaintenanceMarginByMp": "0", "coin": rows}

    def funding(self, symbol: str, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
        """Settle funding on a linear position now: an execution of execType Funding (not a fill)."""
        s = self.symbol("linear", symbol)
        inst = self.instruments["linear"][s]
        qty, _entry = self.linear.positions.get(inst.id, (_ZERO, _ZERO))
        mark = self.linear.marks.get(inst.id, Decimal(repr(self.engines["linear"][s].last_price or 0)))
        fee = (qty * mark * self.funding_rate).quantize(Decimal("1e-8"))
        self.linear.wallet = self.linear.wallet - fee
        e = Execution("linear", s, self._new_exec_id("linear"), "Funding", "", "", "Buy" if qty < 0 else "Sell",
                      "UNKNOWN", _fmt(mark, inst.tick_size), _fmt(abs(qty), inst.step_size), _amt(abs(qty) * mark),
                      _amt(fee), f"{self.funding_rate:f}", False, now_ms, "0", "0", "0", "", "0",
                      _fmt(mark, inst.tick_size), self.exec_seq.next())
        self.executions.append(e)
        return [("execution", _private_frame("execution", [e.wire(True)], now_ms)),
                ("wallet", _private_frame("wallet", [self.wallet_account()], now_ms))]

    # ------------------------------------------------------------ private frames

    def _private_events(self, events: Iterable[VenueOrder | VenueFill], ts_ms: int) -> list[tuple[str, dict]]:
        """`order`, `execution`, `position` and `wallet` frames for matching events."""
        orders: dict[str, dict[str, Any]] = {}
        execs: list[dict[str, Any]] = []
        linear_syms: set[str] = set()
        traded = False
        for e in events:
            meta = self.meta.get(e.client_order_id)
            if meta is None:  # the first snapshot of an order being registered
                continue
            if isinstance(e, VenueFill):
                traded = True
                ex = self._record_execution(meta, e)
                execs.append(ex.wire(True))
                if meta.category == "linear":
                    linear_syms.add(meta.symbol)
                continue
            meta.updated_ms = e.ts_ns // NS_PER_MS or ts_ms
            order = self.orders[e.client_order_id]
            row = self.order_wire(order)
            if e.status is not order.status:  # an earlier state of the order within these events
                row["orderStatus"] = ORDER_STATUS_WIRE[e.status]
                row["cumExecQty"] = _fmt(e.filled_qty, self.instruments[meta.category][meta.symbol].step_size)
            row["category"] = meta.category
            row["closedPnl"] = "0"
            row["feeCurrency"] = QUOTE if meta.category == "linear" else ""
            orders[f"{e.client_order_id}:{len(orders)}"] = row
        out: list[tuple[str, dict]] = []
        if orders:
            out.append(("order", _private_frame("order", list(orders.values()), ts_ms)))
        if execs:
            out.append(("execution", _private_frame("execution", execs, ts_ms)))
        if linear_syms:
            self.position_seq.next()
            out.append(("position", _private_frame("position", self.position_rows(sorted(linear_syms), ts_ms, True),
                                                   ts_ms)))
        if traded or orders:
            out.append(("wallet", _private_frame("wallet", [self.wallet_account()], ts_ms)))
        return out

    def _record_execution(self, meta: OrderMeta, f: VenueFill) -> Execution:
        order = self.orders[f.client_order_id]
        inst = self.instruments[meta.category][meta.symbol]
        tq, sq = inst.tick_size, inst.step_size
        closed, pnl = "", "0"
        if meta.category == "linear":
            realized = self.linear.realized.get(f.trade_id, _ZERO)
            pnl = _amt(realized - f.fee)
            closed = _fmt(abs(realized / (f.price - self.linear.positions.get(inst.id, (_ZERO, f.price))[1]))
                          if realized and f.price != self.linear.positions.get(inst.id, (_ZERO, f.price))[1]
                          else _ZERO, sq)
        maker, taker = FEES[meta.category]
        is_maker = f.liquidity.value.upper().startswith("MAKER")
        e = Execution(
            meta.category, meta.symbol, self._new_exec_id(meta.category), "Trade", meta.order_id,
            meta.order_link_id, "Buy" if f.side is Side.BUY else "Sell", meta.order_type, _fmt(f.price, tq),
            _fmt(f.qty, sq), _amt(f.qty * f.price), _amt(f.fee), f"{maker if is_maker else taker:f}", is_maker,
            f.ts_ns // NS_PER_MS, _fmt(order.remaining if order.status.is_open else _ZERO, sq),
            _fmt(meta.qty_raw, sq if meta.market_unit != "quoteCoin" else Decimal("1e-8")),
            _fmt(order.price or _ZERO, tq), closed, pnl, _fmt(f.price, tq), self.exec_seq.next(), meta.market_unit)
        self.executions.append(e)
        return e

    # ------------------------------------------------------------ state for tests

    def state(self) -> dict[str, Any]:
        """Orders, executions, balances, positions and every orderLinkId received (JSON-ready)."""
        orders = [{"order_link_id": cid, "order_id": m.order_id, "category": m.category, "symbol": m.symbol,
                   "side": o.side.value, "type": m.order_type, "status": self.order_wire(o)["orderStatus"],
                   "quantity": str(o.quantity), "filled_qty": str(o.filled_qty),
                   "price": None if o.price is None else str(o.price)}
                  for cid, o in self.orders.items() for m in (self.meta[cid],)]
        execs = [{"exec_id": e.exec_id, "exec_type": e.exec_type, "category": e.category, "symbol": e.symbol,
                  "order_id": e.order_id, "order_link_id": e.order_link_id, "side": e.side, "qty": e.exec_qty,
                  "price": e.exec_price, "fee": e.exec_fee, "is_maker": e.is_maker, "time_ms": e.exec_time_ms}
                 for e in self.executions]
        balances = {a: {"free": str(b.free), "locked": str(b.locked)} for a, b in self.spot.balances().items()}
        positions = {iid.symbol: {"qty": str(q), "entry_price": str(e)}
                     for iid, (q, e) in self.linear.positions.items()}
        return {"symbols": self.symbols, "orders": orders, "executions": execs, "balances": balances,
                "positions": positions, "order_link_ids": list(self.order_link_ids),
                "leverage": dict(self.linear.leverage)}


def _private_frame(topic: str, data: list[dict[str, Any]], ts_ms: int) -> dict[str, Any]:
    return {"id": f"{topic}-{ts_ms}-{len(data)}", "topic": topic, "creationTime": ts_ms, "data": data}


def _bybit_reject(category: str, exc: OrderRejected) -> BybitError:
    """The shared matching engine's refusal (Binance-style code) as Bybit's retCode and words."""
    code, msg = exc.code or "", exc.message
    spot = category == "spot"
    if code in ("-2010", "-2019") and "insufficient" in msg.lower():
        return BybitError(170131, "Insufficient balance.") if spot else \
            BybitError(110007, "Insufficient available balance")
    if code == "-2022":
        return BybitError(110017, "Reduce-only order has same side with current position")
    if "NOTIONAL" in msg:
        return BybitError(170140, "Order value exceeded lower limit") if spot else \
            BybitError(110094, "Order notional value below the lower limit")
    if "LOT_SIZE" in msg:
        if "not a multiple" in msg:
            return BybitError(170137, "Order volume decimal too long") if spot else params_error(f"Qty invalid: {msg}")
        if "< min" in msg or "> 0" in msg:
            return BybitError(170136, "Order quantity lower than the minimum.") if spot else \
                params_error(f"Qty invalid: {msg}")
        return BybitError(170135 if spot else 10001, f"Order quantity exceeded upper limit: {msg}")
    if "PRICE_FILTER" in msg:
        return BybitError(170134, "Order price decimal too long.") if spot else params_error(f"Price invalid: {msg}")
    if "not trading" in msg:
        return BybitError(170130 if spot else 110023, msg)
    return params_error(msg)


def _limit(p: Mapping[str, str], default: int, cap: int) -> int:
    raw = p.get("limit")
    if raw in (None, ""):
        return default
    try:
        v = int(str(raw))
    except ValueError:
        raise params_error(f"limit invalid: {raw!r}") from None
    if not 1 <= v <= cap:
        raise params_error(f"limit invalid: {v} (1..{cap})")
    return v


def _int(p: Mapping[str, str], key: str) -> int:
    try:
        return int(str(p[key]))
    except (KeyError, ValueError):
        raise params_error(f"{key} invalid: {p.get(key)!r}") from None


def _cursor(offset: int) -> str:
    """An opaque cursor, percent-encoded inside as Bybit's are (`page_args%3D40%26`)."""
    return f"page_args%3D{offset}%26"


def _cursor_offset(raw: str | None) -> int:
    """The offset of a cursor this emulator gave (sent raw or percent-encoded once more)."""
    if not raw:
        return 0
    text = raw
    for _ in range(3):
        text = unquote(text)
    if text.startswith("page_args=") and text.endswith("&") and text[10:-1].isdigit():
        return int(text[10:-1])
    raise params_error(f"cursor invalid: {raw!r}")

