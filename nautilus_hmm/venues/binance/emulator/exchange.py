"""The emulated exchange behind the server (pure: no asyncio, no I/O; time is passed in).

* Symbols get real-looking exchangeInfo entries (spot: PRICE_FILTER, LOT_SIZE,
  MARKET_LOT_SIZE, PERCENT_PRICE_BY_SIDE, NOTIONAL, MAX_NUM_ORDERS ...; USD-M: its own
  keys), and instruments are derived from those entries with the adapter's own parser,
  so both sides agree on the filters by construction.
* Matching reuses `venues.sim.matching.MatchingEngine`; spot balances are a
  `venues.sim.account.SimAccount`; USD-M uses `FuturesAccount` (one-way net positions,
  a USDT wallet, initial-margin check at leverage). A marketable order executes at once
  against the current touch (best ask for a buy, best bid for a sell), so a MARKET order's
  answer is FILLED with its fills, as on the venue; resting limits fill on later trades.
* The market is a `SyntheticMarket` (seeded) or a replayed file for the first symbol.
  Each `tick()` prints one trade per symbol and produces the stream payloads (trade,
  aggTrade, bookTicker, diff depth with U/u(/pu) consistent with `depth_snapshot`,
  klines, USD-M mark price) and the user events of the orders it matched. The trade is
  kept on the symbol's tape (the last 24 h of market time), which the public REST market
  endpoints (market_data.py) answer from.
"""

from __future__ import annotations

import math
import random
import string
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np

from nautilus_hmm.core.errors import OrderRejected
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.marketdata.replay import BarArrays, TradeArrays
from nautilus_hmm.marketdata.synthetic import SyntheticMarket
from nautilus_hmm.venues.binance.emulator import wire
from nautilus_hmm.venues.binance.emulator.wire import Formats, OrderMeta
from nautilus_hmm.venues.binance.instruments import instrument_from_symbol
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.sim.account import SimAccount
from nautilus_hmm.venues.sim.matching import Counter, MatchingEngine, SimOrder

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
_ZERO = Decimal(0)
DEPTH_LEVELS = 20
IMMEDIATE_LIQUIDITY = 1e9  # the touch absorbs any marketable order in full

# symbol: (initial price, spot tick, spot step, USD-M tick, USD-M step)
KNOWN: dict[str, tuple[float, str, str, str, str]] = {
    "BTCUSDT": (60_000.0, "0.01", "0.00001", "0.10", "0.001"),
    "ETHUSDT": (3_000.0, "0.01", "0.0001", "0.01", "0.001"),
    "SOLUSDT": (150.0, "0.01", "0.001", "0.0100", "1"),
    "BNBUSDT": (550.0, "0.01", "0.001", "0.010", "0.01"),
    "XRPUSDT": (0.6, "0.0001", "0.1", "0.0001", "0.1"),
}
PAST_BARS = 50_000  # klines of each interval GET klines serves from before the emulator's start
# The public trades a symbol keeps for GET trades / aggTrades / ticker/24hr / avgPrice: the
# last 24 h of market time plus the last trade before them (the 24 h ticker's previous
# close), and at most this many (older ones are forgotten first).
TAPE_WINDOW_MS = 24 * 3600 * 1000
TAPE_MAX_TRADES = 200_000
KLINE_SECONDS = {"1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
                 "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400}


class EmulatorError(Exception):
    """A request the exchange refuses: HTTP status, Binance code and message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def _pad8(d: Decimal) -> str:
    return f"{d:.8f}"


def symbol_entry(market: Market, symbol: str, quote: str = "USDT") -> dict[str, Any]:
    """A real-looking exchangeInfo `symbols[]` entry."""
    if not symbol.endswith(quote):
        raise ValueError(f"emulator symbol {symbol!r} must end with {quote}")
    base = symbol[: -len(quote)]
    price, s_tick, s_step, u_tick, u_step = KNOWN.get(symbol, (100.0, "", "", "", ""))
    if not s_tick:
        tick = Decimal(1).scaleb(min(0, max(-8, math.floor(math.log10(price)) - 5)))
        s_tick = u_tick = format(tick, "f")
        s_step = u_step = "0.001"
    if market is Market.SPOT:
        tick, step = Decimal(s_tick), Decimal(s_step)
        return {
            "symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
            "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                           "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": _pad8(tick), "maxPrice": "1000000.00000000",
                 "tickSize": _pad8(tick)},
                {"filterType": "LOT_SIZE", "minQty": _pad8(step), "maxQty": "9000.00000000", "stepSize": _pad8(step)},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "9000.00000000",
                 "stepSize": "0.00000000"},
                {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
                 "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
                {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
                 "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }
    return {
        "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000", "baseAsset": base, "quoteAsset": quote, "marginAsset": quote,
        "pricePrecision": max(0, -Decimal(u_tick).normalize().as_tuple().exponent),
        "quantityPrecision": max(0, -Decimal(u_step).normalize().as_tuple().exponent),
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
        "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"minPrice": u_tick, "maxPrice": "4529764", "filterType": "PRICE_FILTER", "tickSize": u_tick},
            {"stepSize": u_step, "filterType": "LOT_SIZE", "maxQty": "1000", "minQty": u_step},
            {"stepSize": u_step, "filterType": "MARKET_LOT_SIZE", "maxQty": "1000", "minQty": u_step},
            {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
            {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
            {"notional": "5", "filterType": "MIN_NOTIONAL"},
            {"multiplierDown": "0.9500", "multiplierUp": "1.0500", "multiplierDecimal": "4",
             "filterType": "PERCENT_PRICE"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def initial_price(symbol: str) -> float:
    """The emulator's starting price of a symbol."""
    return KNOWN.get(symbol, (100.0,))[0]


def new_id(rng: random.Random, n: int = 22) -> str:
    """A Binance-like random client order id."""
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


# ---------------------------------------------------------------- USD-M ledger


class FuturesAccount:
    """USD-M account: a USDT wallet and one-way net positions (the engines' `Ledger`)."""

    def __init__(self, wallet_usdt: Decimal, instruments: Mapping[InstrumentId, Instrument]) -> None:
        self.wallet = wallet_usdt
        self.instruments = dict(instruments)
        self.positions: dict[InstrumentId, tuple[Decimal, Decimal]] = {}  # qty (signed), entry price
        self.leverage: dict[str, int] = {iid.symbol: 20 for iid in instruments}
        self.margin_type: dict[str, str] = {iid.symbol: "CROSSED" for iid in instruments}
        self.dual_side = False
        self.order_margin: dict[str, Decimal] = {}
        self.realized: dict[str, Decimal] = {}  # by trade id
        self.orders: dict[str, SimOrder] = {}
        self.trade_ids = Counter()
        self.order_ids = Counter()
        self.marks: dict[InstrumentId, Decimal] = {}
        self.changed = False

    def position(self, instrument: Instrument) -> Decimal:
        """Net position in base units."""
        return self.positions.get(instrument.id, (_ZERO, _ZERO))[0]

    def unrealized(self) -> Decimal:
        """Unrealized PnL at the marks."""
        total = _ZERO
        for iid, (qty, entry) in self.positions.items():
            mark = self.marks.get(iid, entry)
            total += qty * (mark - entry)
        return total

    def used_margin(self) -> Decimal:
        """Initial margin of positions and open orders."""
        pos = sum((abs(q) * self.marks.get(iid, e) / self.leverage[iid.symbol]
                   for iid, (q, e) in self.positions.items()), _ZERO)
        return pos + sum(self.order_margin.values(), _ZERO)

    def available(self) -> Decimal:
        """Wallet + unrealized - used margin."""
        return self.wallet + self.unrealized() - self.used_margin()

    def reserve(self, order: SimOrder, ref_price: Decimal, fee_rate: Decimal) -> None:
        """Reduce-only orders need no margin; others need qty x price / leverage available (-2019)."""
        if order.reduce_only:
            return
        need = order.quantity * ref_price / self.leverage[order.instrument_id.symbol]
        if need > self.available():
            raise OrderRejected("binance_usdm", f"Margin is insufficient.: needs {need:.8f} USDT, "
                                                f"available {self.available():.8f}", "-2019")
        self.order_margin[order.client_order_id] = need

    def affordable_qty(self, order: SimOrder, qty: Decimal, price: Decimal, fee_rate: Decimal) -> Decimal:
        """Margin was checked at submit."""
        return qty

    def on_fill(self, order: SimOrder, fill: VenueFill) -> None:
        """Move the position; realize PnL on the reduced part; pay the fee from the wallet."""
        iid = fill.instrument_id
        qty, entry = self.positions.get(iid, (_ZERO, _ZERO))
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        realized = _ZERO
        if qty == 0 or (qty > 0) == (signed > 0):
            new_qty = qty + signed
            entry = (abs(qty) * entry + fill.qty * fill.price) / abs(new_qty)
        else:
            closed = min(abs(qty), abs(signed))
            realized = closed * (fill.price - entry) * (1 if qty > 0 else -1)
            new_qty = qty + signed
            if new_qty == 0:
                entry = _ZERO
            elif (new_qty > 0) != (qty > 0):
                entry = fill.price
        self.positions[iid] = (new_qty, entry)
        self.wallet += realized - fill.fee
        self.realized[fill.trade_id] = realized
        margin = self.order_margin.get(order.client_order_id)
        if margin is not None and order.quantity > 0:
            self.order_margin[order.client_order_id] = margin * (order.remaining / order.quantity)
        self.changed = True

    def on_done(self, order: SimOrder) -> None:
        """Release the order's margin."""
        self.order_margin.pop(order.client_order_id, None)


# ---------------------------------------------------------------- depth and klines


class DepthSim:
    """A synthetic L2 book around the quote, with Binance update ids."""

    def __init__(self, fmt: Formats, tick: Decimal, step: Decimal, rng: random.Random, first_id: int) -> None:
        self.fmt = fmt
        self.tick = tick
        self.step = step
        self.rng = rng
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.last_update_id = first_id

    def _levels(self, top: Decimal, direction: int, top_size: float) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(DEPTH_LEVELS):
            px = top + direction * self.tick * i
            if px <= 0:
                break
            size = top_size if i == 0 else self.rng.expovariate(1.0) * max(top_size, 1e-6)
            q = (Decimal(repr(max(size, 1e-6))) / self.step).to_integral_value() * self.step
            if q <= 0:
                q = self.step
            out[self.fmt.px(px)] = self.fmt.qty(q)
        return out

    def update(self, bid: Decimal, bid_size: float, ask: Decimal, ask_size: float
               ) -> tuple[int, int, int, list[list[str]], list[list[str]]]:
        """New levels around the quote → (U, u, pu, bid changes, ask changes)."""
        new_bids = self._levels(bid, -1, bid_size)
        new_asks = self._levels(ask, 1, ask_size)
        db = _diff(self.bids, new_bids, self.fmt)
        da = _diff(self.asks, new_asks, self.fmt)
        self.bids, self.asks = new_bids, new_asks
        pu = self.last_update_id
        first = pu + 1
        self.last_update_id = pu + max(1, len(db) + len(da))
        return first, self.last_update_id, pu, db, da

    def snapshot(self, limit: int) -> tuple[int, list[list[str]], list[list[str]]]:
        """(lastUpdateId, bids best first, asks best first)."""
        bids = sorted(self.bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:limit]
        asks = sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]))[:limit]
        return self.last_update_id, [[p, q] for p, q in bids], [[p, q] for p, q in asks]


def _diff(old: dict[str, str], new: dict[str, str], fmt: Formats) -> list[list[str]]:
    out = [[p, q] for p, q in new.items() if old.get(p) != q]
    zero = fmt.qty(0)
    out += [[p, zero] for p in old if p not in new]
    return out


class KlineState:
    """One symbol's current kline of one interval."""

    __slots__ = ("close", "first_trade", "high", "interval", "interval_ms", "last_trade", "low", "open",
                 "open_ms", "quote_volume", "taker_volume", "trades", "volume")

    def __init__(self, interval: str) -> None:
        self.interval = interval
        self.interval_ms = KLINE_SECONDS[interval] * 1000
        self.open_ms = -1
        self.open = self.high = self.low = self.close = 0.0
        self.volume = self.quote_volume = self.taker_volume = 0.0
        self.trades = 0
        self.first_trade = self.last_trade = -1

    def payload(self, symbol: str, event_ms: int, closed: bool, fmt: Formats) -> dict[str, Any]:
        """The `kline` event."""
        return {"e": "kline", "E": event_ms, "s": symbol, "k": {
            "t": self.open_ms, "T": self.open_ms + self.interval_ms - 1, "s": symbol, "i": self.interval,
            "f": self.first_trade, "L": self.last_trade, "o": fmt.px(self.open), "c": fmt.px(self.close),
            "h": fmt.px(self.high), "l": fmt.px(self.low), "v": fmt.qty(self.volume), "n": self.trades,
            "x": closed, "q": fmt.amount(self.quote_volume), "V": fmt.qty(self.taker_volume), "Q": "0", "B": "0"}}


# ---------------------------------------------------------------- the exchange


class TapeTrade(NamedTuple):
    """One public trade as the streams printed it (`t`/`a`, `T` in market ms, `p`, `q`, `m`)."""

    trade_id: int
    time_ms: int
    price: Decimal
    qty: Decimal
    buyer_maker: bool


@dataclass(slots=True)
class TickOutput:
    """What one tick produced: (stream name, payload) for the market, and user events."""

    market: list[tuple[str, dict[str, Any]]]
    depth_streams: frozenset[str]
    user: list[dict[str, Any]]


class EmulatedExchange:
    """State of one emulated Binance market (see the module docstring)."""

    def __init__(
        self,
        market: Market,
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
        self.market = market
        self.venue = market.default_venue
        self.start_ns = start_ns
        # Market time (event times of trades, klines, depth, mark prices) may run faster
        # than the wall clock, so a 1 s kline closes every 1/scale s; server time, orders,
        # fills and account events stay on the wall clock (recvWindow, myTrades windows).
        self.market_time_scale = market_time_scale
        self.symbols = list(dict.fromkeys(symbols))
        if not self.symbols:
            raise ValueError("the emulator needs at least one symbol")
        self.rng = random.Random(f"{seed}:emulator")
        self.entries = {s: symbol_entry(market, s) for s in self.symbols}
        self.instruments: dict[InstrumentId, Instrument] = {}
        for entry in self.entries.values():
            inst = instrument_from_symbol(entry, market, self.venue)
            self.instruments[inst.id] = inst
        self.ids = {s: InstrumentId(self.venue, s) for s in self.symbols}
        self.fmts = {s: Formats(market, self.instruments[self.ids[s]]) for s in self.symbols}
        if market is Market.SPOT:
            bal = dict(balances or {"USDT": Decimal(100_000), "BTC": Decimal(1), "ETH": Decimal(10)})
            self.spot = SimAccount(bal, self.instruments, self.venue)
            self.futures: FuturesAccount | None = None
            ledger: Any = self.spot
            trade_ids, order_ids = self.spot.trade_ids, self.spot.order_ids
        else:
            wallet = Decimal((balances or {}).get("USDT", Decimal(100_000)))
            self.futures = FuturesAccount(wallet, self.instruments)
            self.spot = None  # type: ignore[assignment]
            ledger = self.futures
            trade_ids, order_ids = self.futures.trade_ids, self.futures.order_ids
        self.engines: dict[str, MatchingEngine] = {
            s: MatchingEngine(self.instruments[self.ids[s]], venue=self.venue,
                              maker_fee=self.instruments[self.ids[s]].maker_fee,
                              taker_fee=self.instruments[self.ids[s]].taker_fee,
                              trade_ids=trade_ids, order_ids=order_ids, ledger=ledger)
            for s in self.symbols
        }
        self.synthetic = SyntheticMarket(
            {s: initial_price(s) for s in self.symbols}, seed, tick_interval_s,
            tick_sizes={s: float(self.instruments[self.ids[s]].tick_size) for s in self.symbols},
        )
        self.replay = replay
        self.replay_pos = 0
        self.depth = {s: DepthSim(self.fmts[s], self.instruments[self.ids[s]].tick_size,
                                  self.instruments[self.ids[s]].step_size, random.Random(f"{seed}:{s}:depth"),
                                  1_000_000 + 1000 * i) for i, s in enumerate(self.symbols)}
        self.klines: dict[tuple[str, str], KlineState] = {}
        self.pasts: dict[tuple[str, str], BarArrays] = {}  # GET klines history, made on first ask
        self.public_trade_id = dict.fromkeys(self.symbols, 0)
        # The streams' public trades (see TAPE_WINDOW_MS) and when each book last changed (market ms).
        self.tape: dict[str, deque[TapeTrade]] = {s: deque(maxlen=TAPE_MAX_TRADES) for s in self.symbols}
        self.book_ms = dict.fromkeys(self.symbols, start_ns // NS_PER_MS)
        self.start_prices: dict[str, float] = {}  # the price each symbol's market starts from
        self.quotes: dict[str, tuple[Decimal, float, Decimal, float]] = {}
        self.meta: dict[str, OrderMeta] = {}  # by client order id
        self.orders: dict[str, SimOrder] = {}  # every accepted order, by client order id
        self.by_order_id: dict[tuple[str, int], str] = {}
        self.trades: list[VenueFill] = []
        self.exec_ids = Counter()
        self.client_order_ids: list[str] = []  # ids whose new-order request reached matching
        self._prime(start_ns)

    # ------------------------------------------------------------ market

    def _prime(self, now_ns: int) -> None:
        for s in self.symbols:
            price = initial_price(s)
            if self.replay is not None and s == self.symbols[0] and len(self.replay):
                price = float(self.replay.close[0] if isinstance(self.replay, BarArrays) else self.replay.price[0])
            self._set_touch(s, price, now_ns)
            self.engines[s].last_price = price
            self.start_prices[s] = price

    def _set_touch(self, s: str, price: float, now_ns: int) -> None:
        inst = self.instruments[self.ids[s]]
        tick = inst.tick_size
        px = (Decimal(repr(price)) / tick).to_integral_value() * tick
        half = max(tick, (px * Decimal("0.00005") / tick).to_integral_value() * tick)
        bid, ask = px - half, px + half
        if bid <= 0:
            bid = tick
            ask = bid + tick
        size = 20_000.0 / max(price, 1e-9)
        self.quotes[s] = (bid, size * self.rng.uniform(0.5, 2.0), ask, size * self.rng.uniform(0.5, 2.0))
        self.engines[s].set_quote(float(bid), float(ask))

    def want_kline(self, symbol: str, interval: str) -> None:
        """Start producing klines of `interval` for `symbol` (on first subscription)."""
        if interval not in KLINE_SECONDS:
            raise ValueError(f"unsupported kline interval {interval!r}")
        self.klines.setdefault((symbol, interval), KlineState(interval))

    def _next_print(self, s: str, now_ns: int) -> tuple[float, float, bool]:
        """(price, size, taker is buyer) of this tick's trade."""
        data = self.replay
        if data is not None and s == self.symbols[0] and self.replay_pos < len(data):
            i = self.replay_pos
            self.replay_pos += 1
            if isinstance(data, BarArrays):
                return float(data.close[i]), max(float(data.volume[i]), 1e-6), float(data.close[i]) >= float(data.open[i])
            return float(data.price[i]), float(data.size[i]), int(data.aggressor[i]) >= 0
        t = self.synthetic.next_trade(s, now_ns)
        return t.price, t.size, t.aggressor is Side.BUY

    def market_ns(self, now_ns: int) -> int:
        """Market time at wall time `now_ns` (see `market_time_scale`)."""
        if self.market_time_scale == 1.0:
            return now_ns
        return self.start_ns + int((now_ns - self.start_ns) * self.market_time_scale)

    def tick(self, now_ns: int) -> TickOutput:
        """One trade per symbol: market payloads and the user events of matched orders."""
        market: list[tuple[str, dict[str, Any]]] = []
        depth_streams: set[str] = set()
        user: list[dict[str, Any]] = []
        mkt_ns = self.market_ns(now_ns)
        e_ms = mkt_ns // NS_PER_MS
        user_ms = now_ns // NS_PER_MS
        usdm = self.market is Market.USDM
        for s in self.symbols:
            fmt = self.fmts[s]
            low = s.lower()
            price, size, buyer_taker = self._next_print(s, mkt_ns)
            self._set_touch(s, price, now_ns)
            engine = self.engines[s]
            events = engine.on_trade(price, size, now_ns)
            if self.futures is not None:
                self.futures.marks[self.ids[s]] = Decimal(repr(price))
            user += self._user_events(events, user_ms)
            tid = self.public_trade_id[s] = self.public_trade_id[s] + 1
            px, qty = fmt.px(price), fmt.qty(Decimal(repr(size)).quantize(self.instruments[self.ids[s]].step_size)
                                              or self.instruments[self.ids[s]].step_size)
            trade = {"e": "trade", "E": e_ms, "s": s, "t": tid, "p": px, "q": qty, "T": e_ms, "m": not buyer_taker}
            if usdm:
                trade = {"e": "trade", "E": e_ms, "T": e_ms, "s": s, "t": tid, "p": px, "q": qty, "X": "MARKET",
                         "m": not buyer_taker}
            else:
                trade["M"] = True
            market.append((f"{low}@trade", trade))
            self._record_trade(s, TapeTrade(tid, e_ms, Decimal(px), Decimal(qty), not buyer_taker))
            agg = {"e": "aggTrade", "E": e_ms, "s": s, "a": tid, "p": px, "q": qty, "f": tid, "l": tid, "T": e_ms,
                   "m": not buyer_taker}
            if not usdm:
                agg["M"] = True
            market.append((f"{low}@aggTrade", agg))
            bid, bid_size, ask, ask_size = self.quotes[s]
            depth = self.depth[s]
            first, last, pu, db, da = depth.update(bid, bid_size, ask, ask_size)
            top_bid_qty = depth.bids.get(fmt.px(bid), fmt.qty(0))
            top_ask_qty = depth.asks.get(fmt.px(ask), fmt.qty(0))
            book_ticker: dict[str, Any] = {"u": last, "s": s, "b": fmt.px(bid), "B": top_bid_qty,
                                           "a": fmt.px(ask), "A": top_ask_qty}
            if usdm:
                book_ticker = {"e": "bookTicker", "u": last, "s": s, "b": fmt.px(bid), "B": top_bid_qty,
                               "a": fmt.px(ask), "A": top_ask_qty, "T": e_ms, "E": e_ms}
            market.append((f"{low}@bookTicker", book_ticker))
            self.book_ms[s] = e_ms
            diff: dict[str, Any] = {"e": "depthUpdate", "E": e_ms, "s": s, "U": first, "u": last, "b": db, "a": da}
            if usdm:
                diff = {"e": "depthUpdate", "E": e_ms, "T": e_ms, "s": s, "U": first, "u": last, "pu": pu,
                        "b": db, "a": da}
            for name in (f"{low}@depth", f"{low}@depth@100ms"):
                market.append((name, diff))
                depth_streams.add(name)
            for (ks, interval), k in self.klines.items():
                if ks != s:
                    continue
                market += [(f"{low}@kline_{interval}", p) for p in self._kline(s, k, price, size, buyer_taker,
                                                                                tid, e_ms)]
            if usdm:
                mark = {"e": "markPriceUpdate", "E": e_ms, "s": s, "p": fmt.px(price), "i": fmt.px(price),
                        "P": fmt.px(price), "r": "0.00010000", "T": (e_ms // 28_800_000 + 1) * 28_800_000}
                market.append((f"{low}@markPrice@1s", mark))
                market.append((f"{low}@markPrice", mark))
        return TickOutput(market, frozenset(depth_streams), user)

    def _record_trade(self, s: str, trade: TapeTrade) -> None:
        tape = self.tape[s]
        tape.append(trade)
        oldest_ms = trade.time_ms - TAPE_WINDOW_MS
        while len(tape) > 1 and tape[1].time_ms <= oldest_ms:
            tape.popleft()

    def trade_frame(self, symbol: str, now_ns: int) -> tuple[str, dict[str, Any]]:
        """(stream, payload) of one public trade at the last price, touching nothing else (benchmarks).

        The book, quotes and resting orders are left as they are, so a benchmark can
        send trades as fast as it likes and orders still execute at the current touch;
        the trade is not kept on the tape.
        """
        s = self._sym(symbol)
        fmt = self.fmts[s]
        inst = self.instruments[self.ids[s]]
        e_ms = self.market_ns(now_ns) // NS_PER_MS
        tid = self.public_trade_id[s] = self.public_trade_id[s] + 1
        price = self.engines[s].last_price or initial_price(s)
        qty = fmt.qty(inst.min_qty if inst.min_qty > 0 else inst.step_size)
        if self.market is Market.USDM:
            return f"{s.lower()}@aggTrade", {"e": "aggTrade", "E": e_ms, "s": s, "a": tid, "p": fmt.px(price), "q": qty,
                                             "f": tid, "l": tid, "T": e_ms, "m": False}
        return f"{s.lower()}@trade", {"e": "trade", "E": e_ms, "s": s, "t": tid, "p": fmt.px(price), "q": qty,
                                      "T": e_ms, "m": False, "M": True}

    def _kline(self, s: str, k: KlineState, price: float, size: float, buyer_taker: bool, tid: int,
               e_ms: int) -> list[dict[str, Any]]:
        fmt = self.fmts[s]
        out = []
        open_ms = e_ms - e_ms % k.interval_ms
        if k.open_ms >= 0 and open_ms > k.open_ms:
            out.append(k.payload(s, e_ms, True, fmt))
        if open_ms != k.open_ms:
            k.open_ms = open_ms
            k.open = k.high = k.low = price
            k.volume = k.quote_volume = k.taker_volume = 0.0
            k.trades = 0
            k.first_trade = tid
        k.high = max(k.high, price)
        k.low = min(k.low, price)
        k.close = price
        k.volume += size
        k.quote_volume += size * price
        if buyer_taker:
            k.taker_volume += size
        k.trades += 1
        k.last_trade = tid
        out.append(k.payload(s, e_ms, False, fmt))
        return out

    def depth_snapshot(self, symbol: str, limit: int, now_ms: int) -> dict[str, Any]:
        """GET depth."""
        last, bids, asks = self.depth[self._sym(symbol)].snapshot(limit)
        body: dict[str, Any] = {"lastUpdateId": last, "bids": bids, "asks": asks}
        if self.market is Market.USDM:
            body = {"lastUpdateId": last, "E": now_ms, "T": now_ms, "bids": bids, "asks": asks}
        return body

    def rest_klines(self, p: Mapping[str, str]) -> list[list[Any]]:
        """GET klines: rows of the market's past (a seeded synthetic history that ends at
        the emulator's start, at the price the market starts from); nothing after the start."""
        s = self._sym(p.get("symbol"))
        interval = p.get("interval", "")
        if interval not in KLINE_SECONDS:
            raise EmulatorError(400, -1120, "Invalid interval.")
        cap = 1000 if self.market is Market.SPOT else 1500
        limit = int(p.get("limit", 500))
        if not 1 <= limit <= cap:
            raise EmulatorError(400, -1130, f"Invalid data sent for a parameter: limit must be 1..{cap}.")
        past = self._past(s, interval)
        ts_ms = past.ts_open_ns // 1_000_000
        lo, hi = 0, len(past)
        if "startTime" in p:
            lo = int(np.searchsorted(ts_ms, int(p["startTime"]), side="left"))
        if "endTime" in p:
            hi = int(np.searchsorted(ts_ms, int(p["endTime"]), side="right"))
        if "startTime" in p:  # the first `limit` from startTime, else the last `limit` up to endTime
            hi = min(hi, lo + limit)
        else:
            lo = max(lo, hi - limit)
        fmt, ival_ms = self.fmts[s], KLINE_SECONDS[interval] * 1000
        rows = []
        for i in range(lo, hi):
            o, h, lo_, c, v = (float(a[i]) for a in (past.open, past.high, past.low, past.close, past.volume))
            rows.append([int(ts_ms[i]), fmt.px(o), fmt.px(h), fmt.px(lo_), fmt.px(c), fmt.qty(v),
                         int(ts_ms[i]) + ival_ms - 1, fmt.amount(v * c), 1, fmt.qty(v / 2), fmt.amount(v * c / 2), "0"])
        return rows

    def _past(self, s: str, interval: str) -> BarArrays:
        key = (s, interval)
        past = self.pasts.get(key)
        if past is None:
            past = self.synthetic.history(s, self.start_ns, PAST_BARS, KLINE_SECONDS[interval],
                                          end_price=self.start_prices[s],
                                          max_trades_per_bar=16)
            self.pasts[key] = past
        return past

    def exchange_info(self, server_ms: int, weight_limit_1m: int) -> dict[str, Any]:
        """GET exchangeInfo."""
        limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit_1m},
                  {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                  {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000}]
        body: dict[str, Any] = {"timezone": "UTC", "serverTime": server_ms, "rateLimits": limits,
                                "exchangeFilters": [], "symbols": [self.entries[s] for s in self.symbols]}
        if self.market is Market.USDM:
            body["futuresType"] = "U_MARGINED"
            body["assets"] = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
        return body

    # ------------------------------------------------------------ orders

    def _sym(self, symbol: Any) -> str:
        if not isinstance(symbol, str) or symbol not in self.engines:
            raise EmulatorError(400, -1121, "Invalid symbol.")
        return symbol

    def new_order(self, p: Mapping[str, str], now_ns: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """POST order → (answer body, user events)."""
        s = self._sym(p.get("symbol"))
        side_raw = p.get("side")
        if side_raw not in ("BUY", "SELL"):
            raise EmulatorError(400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        type_raw = p.get("type")
        usdm = self.market is Market.USDM
        tif_raw = p.get("timeInForce", "")
        if type_raw == "MARKET":
            otype = OrderType.MARKET
            if "price" in p:
                raise EmulatorError(400, -1106, "Parameter 'price' sent when not required.")
            tif_raw = "GTC"
        elif type_raw == "LIMIT":
            if not tif_raw:
                raise EmulatorError(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, "
                                                "or malformed.")
            otype = OrderType.LIMIT_MAKER if (usdm and tif_raw == "GTX") else OrderType.LIMIT
        elif type_raw == "LIMIT_MAKER" and not usdm:
            otype = OrderType.LIMIT_MAKER
            tif_raw = "GTC"
        else:
            raise EmulatorError(400, -1116, "Invalid orderType.")
        try:
            tif = TimeInForce(tif_raw) if tif_raw not in ("GTX", "") else TimeInForce.GTC
        except ValueError:
            raise EmulatorError(400, -1115, "Invalid timeInForce.") from None
        qty = _param_dec(p, "quantity", required=True)
        price = _param_dec(p, "price", required=otype is not OrderType.MARKET)
        cid = p.get("newClientOrderId") or new_id(self.rng)
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        position_side = p.get("positionSide", "BOTH")
        if cid in self.orders:
            if usdm:
                raise EmulatorError(400, -4116, "ClientOrderId is duplicated.")
            raise EmulatorError(400, -2010, "Duplicate order sent.")
        self.client_order_ids.append(cid)
        assert qty is not None
        req = OrderRequest(cid, self.ids[s], Side(side_raw), otype, qty, price, tif, reduce_only)
        engine = self.engines[s]
        try:
            order = engine.accept(req, now_ns)
        except OrderRejected as exc:
            code = int(exc.code) if exc.code and exc.code.lstrip("-").isdigit() else -2010
            raise EmulatorError(400, code, exc.message) from None
        meta = OrderMeta(s, int(order.venue_order_id), type_raw, tif_raw, now_ns // NS_PER_MS,
                         position_side, reduce_only)
        self.meta[cid] = meta
        self.orders[cid] = order
        self.by_order_id[(s, meta.order_id)] = cid
        if self.spot is not None:
            self.spot.add_order(order)
        elif self.futures is not None:
            self.futures.orders[cid] = order
        e_ms = now_ns // NS_PER_MS
        events: list[VenueOrder | VenueFill] = []
        first = order.snapshot()
        if first.status is OrderStatus.EXPIRED:
            accepted = replace(first, status=OrderStatus.ACCEPTED)
            events = [accepted, first]
        else:
            events = [first]
            if order.taker_pending:
                bid, _, ask, _ = self.quotes[s]
                touch = float(ask if order.side is Side.BUY else bid)
                events += list(engine.on_trade(touch, IMMEDIATE_LIQUIDITY, now_ns))
        user = self._user_events(events, e_ms)
        fills = [e for e in events if isinstance(e, VenueFill) and e.client_order_id == cid]
        resp_type = p.get("newOrderRespType") or ("ACK" if usdm else "FULL")
        body = wire.new_order_response(self.market, self.fmts[s], meta, order.snapshot(), fills, resp_type, e_ms)
        return body, user

    def find(self, p: Mapping[str, str]) -> tuple[str, SimOrder]:
        """The order named by origClientOrderId or orderId (-2013 when unknown)."""
        s = self._sym(p.get("symbol"))
        cid = p.get("origClientOrderId")
        if not cid and p.get("orderId"):
            try:
                cid = self.by_order_id.get((s, int(p["orderId"])))
            except ValueError:
                raise EmulatorError(400, -1100, "Illegal characters found in parameter 'orderId'.") from None
        if not cid and "origClientOrderId" not in p and "orderId" not in p:
            raise EmulatorError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were "
                                            "empty/null!")
        order = self.orders.get(cid or "")
        if order is None or order.instrument_id.symbol != s:
            raise EmulatorError(400, -2013, "Order does not exist.")
        return s, order

    def query(self, p: Mapping[str, str]) -> dict[str, Any]:
        """GET order."""
        s, order = self.find(p)
        return wire.rest_order(self.market, self.fmts[s], self.meta[order.client_order_id], order.snapshot())

    def cancel(self, p: Mapping[str, str], now_ns: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """DELETE order (-2011 when unknown or closed)."""
        try:
            s, order = self.find(p)
        except EmulatorError as exc:
            if exc.code == -2013:
                raise EmulatorError(400, -2011, "Unknown order sent.") from None
            raise
        vo = self.engines[s].cancel(order.client_order_id, now_ns)
        if vo is None:
            raise EmulatorError(400, -2011, "Unknown order sent.")
        cancel_cid = p.get("newClientOrderId") or new_id(self.rng)
        e_ms = now_ns // NS_PER_MS
        user = self._user_events([vo], e_ms, cancel_cid=cancel_cid)
        meta = self.meta[order.client_order_id]
        return wire.cancel_response(self.market, self.fmts[s], meta, vo, cancel_cid, e_ms), user

    def cancel_all(self, symbol: Any, now_ns: int) -> tuple[Any, list[dict[str, Any]]]:
        """DELETE openOrders (spot: the cancelled orders; -2011 when none) / allOpenOrders (USD-M)."""
        s = self._sym(symbol)
        engine = self.engines[s]
        e_ms = now_ns // NS_PER_MS
        rows: list[dict[str, Any]] = []
        user: list[dict[str, Any]] = []
        for order in engine.open_orders():
            vo = engine.cancel(order.client_order_id, now_ns)
            if vo is None:
                continue
            cancel_cid = new_id(self.rng)
            user += self._user_events([vo], e_ms, cancel_cid=cancel_cid)
            rows.append(wire.cancel_response(self.market, self.fmts[s], self.meta[vo.client_order_id], vo,
                                             cancel_cid, e_ms))
        if self.market is Market.USDM:
            return {"code": 200, "msg": "The operation of cancel all open order is done."}, user
        if not rows:
            raise EmulatorError(400, -2011, "Unknown order sent.")
        return rows, user

    def open_orders(self, symbol: Any) -> list[dict[str, Any]]:
        """GET openOrders."""
        syms = [self._sym(symbol)] if symbol else self.symbols
        out = []
        for s in syms:
            for o in self.engines[s].open_orders():
                out.append(wire.rest_order(self.market, self.fmts[s], self.meta[o.client_order_id], o.snapshot()))
        return out

    def all_orders(self, symbol: Any) -> list[dict[str, Any]]:
        """GET allOrders."""
        s = self._sym(symbol)
        return [wire.rest_order(self.market, self.fmts[s], self.meta[c], o.snapshot())
                for c, o in self.orders.items() if o.instrument_id.symbol == s]

    def account_trades(self, p: Mapping[str, str]) -> list[dict[str, Any]]:
        """GET myTrades / userTrades (startTime, endTime, fromId, limit)."""
        s = self._sym(p.get("symbol"))
        start = int(p.get("startTime", 0))
        end = int(p.get("endTime", 2**62))
        from_id = int(p.get("fromId", 0))
        limit = min(int(p.get("limit", 500)), 1000)
        rows = []
        for f in self.trades:
            t_ms = f.ts_ns // NS_PER_MS
            if f.instrument_id.symbol != s or not (start <= t_ms <= end) or int(f.trade_id) < from_id:
                continue
            meta = self.meta[f.client_order_id]
            if self.market is Market.SPOT:
                rows.append(wire.spot_trade_row(self.fmts[s], meta, f))
            else:
                assert self.futures is not None
                rows.append(wire.usdm_trade_row(self.fmts[s], meta, f, self.futures.realized.get(f.trade_id, _ZERO)))
            if len(rows) >= limit:
                break
        return rows

    # ------------------------------------------------------------ account

    def spot_account(self, now_ms: int, omit_zero: bool) -> dict[str, Any]:
        """GET /api/v3/account."""
        balances = [{"asset": b.asset, "free": _pad8(b.free), "locked": _pad8(b.locked)}
                    for b in self.spot.balances().values() if not (omit_zero and b.total == 0)]
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms,
            "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 354937868,
        }

    def futures_positions(self, now_ms: int) -> list[dict[str, Any]]:
        """positionRisk rows (every configured symbol; one-way mode)."""
        fa = self.futures
        assert fa is not None
        rows = []
        for s in self.symbols:
            iid = self.ids[s]
            qty, entry = fa.positions.get(iid, (_ZERO, _ZERO))
            mark = fa.marks.get(iid, Decimal(repr(self.engines[s].last_price or 0)))
            fmt = self.fmts[s]
            rows.append({
                "symbol": s, "positionSide": "BOTH", "positionAmt": fmt.qty(qty), "entryPrice": fmt.px(entry),
                "breakEvenPrice": fmt.px(entry), "markPrice": fmt.amount(mark),
                "unRealizedProfit": fmt.amount(qty * (mark - entry)), "liquidationPrice": "0",
                "isolatedMargin": "0", "notional": fmt.amount(qty * mark), "marginAsset": "USDT",
                "isolatedWallet": "0", "initialMargin": fmt.amount(abs(qty) * mark / fa.leverage[s]),
                "maintMargin": "0", "positionInitialMargin": fmt.amount(abs(qty) * mark / fa.leverage[s]),
                "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0", "askNotional": "0",
                "leverage": str(fa.leverage[s]), "marginType": fa.margin_type[s].lower(), "updateTime": now_ms,
            })
        return rows

    def futures_account(self, now_ms: int) -> dict[str, Any]:
        """GET /fapi/v2|v3/account."""
        fa = self.futures
        assert fa is not None
        upnl = fa.unrealized()
        wallet, avail = fa.wallet, fa.available()
        a8 = _pad8
        return {
            "totalInitialMargin": a8(fa.used_margin()), "totalMaintMargin": "0.00000000",
            "totalWalletBalance": a8(wallet), "totalUnrealizedProfit": a8(upnl),
            "totalMarginBalance": a8(wallet + upnl), "totalPositionInitialMargin": a8(fa.used_margin()),
            "totalOpenOrderInitialMargin": a8(sum(fa.order_margin.values(), _ZERO)),
            "totalCrossWalletBalance": a8(wallet), "totalCrossUnPnl": a8(upnl), "availableBalance": a8(avail),
            "maxWithdrawAmount": a8(avail),
            "assets": [{"asset": "USDT", "walletBalance": a8(wallet), "unrealizedProfit": a8(upnl),
                        "marginBalance": a8(wallet + upnl), "maintMargin": "0.00000000",
                        "initialMargin": a8(fa.used_margin()), "positionInitialMargin": a8(fa.used_margin()),
                        "openOrderInitialMargin": "0.00000000", "crossWalletBalance": a8(wallet),
                        "crossUnPnl": a8(upnl), "availableBalance": a8(avail), "maxWithdrawAmount": a8(avail),
                        "marginAvailable": True, "updateTime": now_ms}],
            "positions": [{k: r[k] for k in ("symbol", "positionSide", "positionAmt", "unRealizedProfit",
                                             "isolatedMargin", "notional", "isolatedWallet", "initialMargin",
                                             "maintMargin", "updateTime")}
                          for r in self.futures_positions(now_ms)],
        }

    def balances(self) -> dict[str, Balance]:
        """Balances by asset (USD-M: wallet as free)."""
        if self.spot is not None:
            return self.spot.balances()
        assert self.futures is not None
        return {"USDT": Balance("USDT", self.futures.wallet, _ZERO)}

    # ------------------------------------------------------------ user events

    def _user_events(self, events: Iterable[VenueOrder | VenueFill], e_ms: int,
                     cancel_cid: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        pending: dict[str, VenueFill] = {}
        traded = False
        for e in events:
            if isinstance(e, VenueFill):
                pending[e.client_order_id] = e
                self.trades.append(e)
                traded = True
                continue
            meta = self.meta.get(e.client_order_id)
            if meta is None:  # the NEW snapshot of an order being registered
                continue
            fill = pending.pop(e.client_order_id, None)
            if fill is not None:
                x = "TRADE"
            else:
                x = {OrderStatus.CANCELED: "CANCELED", OrderStatus.EXPIRED: "EXPIRED",
                     OrderStatus.REJECTED: "REJECTED"}.get(e.status, "NEW")
            fmt = self.fmts[meta.symbol]
            if self.market is Market.SPOT:
                out.append(wire.execution_report(fmt, meta, e, x, fill, e_ms, self.exec_ids.next(),
                                                 cancel_cid if x == "CANCELED" else ""))
            else:
                assert self.futures is not None
                rp = self.futures.realized.get(fill.trade_id, _ZERO) if fill else _ZERO
                out.append(wire.order_trade_update(fmt, meta, e, x, fill, e_ms, rp))
        if self.spot is not None and self.spot.changed_assets:
            rows = [{"a": a, "f": _pad8(self.spot.balance(a).free), "l": _pad8(self.spot.balance(a).locked)}
                    for a in self.spot.take_changed_assets()]
            out.append({"e": "outboundAccountPosition", "E": e_ms, "u": e_ms, "B": rows})
        if self.futures is not None and traded:
            out.append(self._account_update(e_ms))
        return out

    def _account_update(self, e_ms: int) -> dict[str, Any]:
        fa = self.futures
        assert fa is not None
        positions = []
        for iid, (qty, entry) in fa.positions.items():
            fmt = self.fmts[iid.symbol]
            mark = fa.marks.get(iid, entry)
            positions.append({"s": iid.symbol, "pa": fmt.qty(qty), "ep": fmt.px(entry), "bep": fmt.px(entry),
                              "cr": "0", "up": _pad8(qty * (mark - entry)), "mt": fa.margin_type[iid.symbol].lower(),
                              "iw": "0", "ps": "BOTH"})
        return {"e": "ACCOUNT_UPDATE", "E": e_ms, "T": e_ms, "a": {
            "m": "ORDER", "B": [{"a": "USDT", "wb": _pad8(fa.wallet), "cw": _pad8(fa.wallet), "bc": "0"}],
            "P": positions}}

    # ------------------------------------------------------------ tests and state

    def state(self) -> dict[str, Any]:
        """Orders, fills, balances, positions and every client order id received (JSON-ready)."""
        orders = [{"client_order_id": c, "order_id": self.meta[c].order_id, "symbol": self.meta[c].symbol,
                   "side": o.side.value, "type": self.meta[c].type_raw, "status": wire.STATUS_WIRE[o.status],
                   "quantity": str(o.quantity), "filled_qty": str(o.filled_qty),
                   "price": None if o.price is None else str(o.price)} for c, o in self.orders.items()]
        fills = [{"trade_id": f.trade_id, "client_order_id": f.client_order_id, "symbol": f.instrument_id.symbol,
                  "side": f.side.value, "qty": str(f.qty), "price": str(f.price), "fee": str(f.fee),
                  "fee_asset": f.fee_asset, "liquidity": f.liquidity.value, "ts_ms": f.ts_ns // NS_PER_MS}
                 for f in self.trades]
        balances = {a: {"free": str(b.free), "locked": str(b.locked)} for a, b in self.balances().items()}
        positions = {}
        if self.futures is not None:
            positions = {iid.symbol: {"qty": str(q), "entry_price": str(e)}
                         for iid, (q, e) in self.futures.positions.items()}
        return {"market": self.market.value, "symbols": self.symbols, "orders": orders, "fills": fills,
                "balances": balances, "positions": positions, "client_order_ids": list(self.client_order_ids)}


def _param_dec(p: Mapping[str, str], key: str, *, required: bool) -> Decimal | None:
    raw = p.get(key)
    if raw is None or raw == "":
        if required:
            raise EmulatorError(400, -1102, f"Mandatory parameter '{key}' was not sent, was empty/null, or malformed.")
        return None
    try:
        d = Decimal(raw)
    except ArithmeticError:
        raise EmulatorError(400, -1100, f"Illegal characters found in parameter '{key}'; legal range is "
                                        f"'^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.") from None
    if not d.is_finite():
        raise EmulatorError(400, -1100, f"Illegal characters found in parameter '{key}'.")
    return d
