"""The public market endpoints, answered from the state the streams are made of (pure).

Spot (`/api/v3`): `ticker/24hr`, `ticker/price`, `ticker/bookTicker`, `avgPrice`, `trades`,
`aggTrades`. USD-M (`/fapi/v1`): `ticker/24hr`, `ticker/price` (also `/fapi/v2`),
`ticker/bookTicker`, `trades`, `aggTrades`, `premiumIndex`. Shapes are Binance's (field
names and order, prices and quantities as strings, ids and times as numbers): one
`symbol` → an object; no symbol → an array of every symbol; spot's `symbols=["A","B"]`
(JSON, may be percent-encoded) → an array in the order asked.

Rules:

* Trades are the ones the trade/aggTrade streams printed (the symbol's tape: the last 24 h
  of market time, see `exchange.TAPE_WINDOW_MS`), with the same ids, prices, quantities,
  times (`T`, market time) and maker flags; one trade is one aggregate trade (`a` = `f` =
  `l`). Benchmark frames (`/_emulator/bench/...`) are not on the tape.
* Bid and ask are the book's top (the bookTicker stream's `b/B/a/A`; the REST depth
  snapshot's first levels). Before the first tick the book is empty and the top is the
  market's opening quote.
* `ticker/24hr` is the window (now - 24 h, now] of market time: `openTime` = now - 24 h,
  `closeTime` = now; `openPrice` is the first trade in the window, `prevClosePrice` (spot)
  the last one before it (else the price the market started from). A window with no
  trade has `count` 0, `firstId`/`lastId` -1, zero volumes, and every price at the last
  price.
* `avgPrice` (spot) is the volume-weighted price of the last 5 minutes (the last price
  when none traded); `closeTime` the last trade's time.
* `premiumIndex` (USD-M): mark, index and estimated settle price are the last price (the
  markPrice stream's `p`); funding rate 0.0001 (the stream's `r`); funding every 8 h.

Errors: an unknown symbol -1121 "Invalid symbol."; `symbol` with `symbols` -1128; a
malformed `symbols` -1100; a missing mandatory `symbol` -1102; `limit` not a number -1100,
below 1 -1130 (above 1000 it is capped); USD-M aggTrades with more than 1 h between
startTime and endTime -1127.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from itertools import islice
from typing import Any

import orjson

from nautilus_hmm.venues.binance.emulator.exchange import (
    NS_PER_MS,
    EmulatedExchange,
    EmulatorError,
    TapeTrade,
)
from nautilus_hmm.venues.binance.market import Market

DAY_MS = 24 * 3600 * 1000
AVG_PRICE_MINS = 5
FUNDING_INTERVAL_MS = 8 * 3600 * 1000
FUNDING_RATE = "0.00010000"
INTEREST_RATE = "0.00010000"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
AGG_TRADES_MAX_SPAN_MS = 3600 * 1000  # USD-M: startTime..endTime at most 1 h
_ZERO = Decimal(0)
_PCT_Q = Decimal("0.001")
_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'


def symbols_count(p: Mapping[str, str]) -> int | None:
    """How many symbols a request names: 1 for `symbol`, len(`symbols`), None for every symbol."""
    if p.get("symbol") is not None:
        return 1
    raw = p.get("symbols")
    if raw is None:
        return None
    try:
        names = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 1
    return len(names) if isinstance(names, list) else 1


def spot_ticker_24hr_weight(p: Mapping[str, str]) -> int:
    """Spot ticker/24hr: 2 for 1-20 symbols, 40 for 21-100, 80 for more or for every symbol."""
    n = symbols_count(p)
    if n is None or n > 100:
        return 80
    return 2 if n <= 20 else 40


def by_symbol(one: int, every: int) -> Callable[[Mapping[str, str]], int]:
    """Weight `one` for a single `symbol`, `every` for none or for a `symbols` list."""
    return lambda p: one if p.get("symbol") is not None else every


class PublicMarketData:
    """Answers of the public market endpoints over one `EmulatedExchange`."""

    def __init__(self, exchange: EmulatedExchange) -> None:
        self.ex = exchange
        self.spot = exchange.market is Market.SPOT

    # ------------------------------------------------------------ parameters

    def _selected(self, p: Mapping[str, str]) -> tuple[list[str], bool]:
        """(the symbols asked for, whether the answer is one object)."""
        symbol, symbols = p.get("symbol"), p.get("symbols")
        if self.spot and symbols is not None:
            if symbol is not None:
                raise EmulatorError(400, -1128, "Combination of optional parameters invalid.")
            return [self.ex._sym(s) for s in _parse_symbols(symbols)], False
        if symbol is not None:
            return [self.ex._sym(symbol)], True
        return list(self.ex.symbols), False

    def _required_symbol(self, p: Mapping[str, str]) -> str:
        if not p.get("symbol"):
            raise EmulatorError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or "
                                            "malformed.")
        return self.ex._sym(p["symbol"])

    def _answer(self, p: Mapping[str, str], row: Callable[[str], dict[str, Any]]) -> Any:
        names, single = self._selected(p)
        rows = [row(s) for s in names]
        return rows[0] if single else rows

    def _market_ms(self, now_ns: int) -> int:
        return self.ex.market_ns(now_ns) // NS_PER_MS

    # ------------------------------------------------------------ state read

    def _last(self, s: str) -> TapeTrade | None:
        tape = self.ex.tape[s]
        return tape[-1] if tape else None

    def _last_price(self, s: str) -> Decimal:
        last = self._last(s)
        if last is not None:
            return last.price
        engine_price = self.ex.engines[s].last_price
        return Decimal(self.ex.fmts[s].px(engine_price if engine_price is not None else self.ex.start_prices[s]))

    def _window(self, s: str, since_ms: int, until_ms: int) -> tuple[list[TapeTrade], TapeTrade | None]:
        """(tape trades with since_ms < T <= until_ms oldest first, the last trade at or before since_ms)."""
        out: list[TapeTrade] = []
        before = None
        for t in reversed(self.ex.tape[s]):  # the tape is in time order: walk back from the newest
            if t.time_ms <= since_ms:
                before = t
                break
            if t.time_ms <= until_ms:
                out.append(t)
        out.reverse()
        return out, before

    def book_top(self, s: str) -> tuple[str, str, str, str]:
        """(bid price, bid qty, ask price, ask qty) as the bookTicker stream prints them."""
        ex = self.ex
        fmt = ex.fmts[s]
        bid, bid_size, ask, ask_size = ex.quotes[s]
        bid_px, ask_px = fmt.px(bid), fmt.px(ask)
        depth = ex.depth[s]
        if depth.bids or depth.asks:
            return bid_px, depth.bids.get(bid_px, fmt.qty(0)), ask_px, depth.asks.get(ask_px, fmt.qty(0))
        step = ex.instruments[ex.ids[s]].step_size
        return bid_px, fmt.qty(_steps(bid_size, step)), ask_px, fmt.qty(_steps(ask_size, step))

    # ------------------------------------------------------------ tickers

    def ticker_24hr(self, p: Mapping[str, str], now_ns: int) -> Any:
        """GET ticker/24hr (spot: `type` FULL (default) or MINI)."""
        kind = p.get("type", "FULL") if self.spot else "FULL"
        if kind not in ("FULL", "MINI"):
            raise EmulatorError(400, -1100, "Illegal characters found in parameter 'type'; legal range is "
                                            "'FULL, MINI'.")
        now_ms = self._market_ms(now_ns)
        return self._answer(p, lambda s: self._ticker_row(s, now_ms, kind))

    def _ticker_row(self, s: str, now_ms: int, kind: str) -> dict[str, Any]:
        fmt = self.ex.fmts[s]
        open_ms = now_ms - DAY_MS
        trades, before = self._window(s, open_ms, now_ms)
        if trades:
            first, last = trades[0], trades[-1]
            open_px, last_px, last_qty = first.price, last.price, last.qty
            high = max(t.price for t in trades)
            low = min(t.price for t in trades)
            volume = sum((t.qty for t in trades), _ZERO)
            quote = sum((t.price * t.qty for t in trades), _ZERO)
            vwap = quote / volume if volume else last_px
            first_id, last_id = first.trade_id, last.trade_id
        else:
            open_px = high = low = last_px = vwap = self._last_price(s)
            last_qty = volume = quote = _ZERO
            first_id = last_id = -1
        if kind == "MINI":
            return {"symbol": s, "openPrice": fmt.px(open_px), "highPrice": fmt.px(high), "lowPrice": fmt.px(low),
                    "lastPrice": fmt.px(last_px), "volume": fmt.qty(volume), "quoteVolume": fmt.amount(quote),
                    "openTime": open_ms, "closeTime": now_ms, "firstId": first_id, "lastId": last_id,
                    "count": len(trades)}
        change = last_px - open_px
        pct = (change / open_px * 100).quantize(_PCT_Q) if open_px else _ZERO.quantize(_PCT_Q)
        row: dict[str, Any] = {"symbol": s, "priceChange": fmt.px(change), "priceChangePercent": f"{pct:f}",
                               "weightedAvgPrice": fmt.px(vwap)}
        if self.spot:
            prev_close = before.price if before is not None else Decimal(fmt.px(self.ex.start_prices[s]))
            bid_px, bid_qty, ask_px, ask_qty = self.book_top(s)
            row.update({"prevClosePrice": fmt.px(prev_close), "lastPrice": fmt.px(last_px),
                        "lastQty": fmt.qty(last_qty), "bidPrice": bid_px, "bidQty": bid_qty, "askPrice": ask_px,
                        "askQty": ask_qty})
        else:
            row.update({"lastPrice": fmt.px(last_px), "lastQty": fmt.qty(last_qty)})
        row.update({"openPrice": fmt.px(open_px), "highPrice": fmt.px(high), "lowPrice": fmt.px(low),
                    "volume": fmt.qty(volume), "quoteVolume": fmt.amount(quote), "openTime": open_ms,
                    "closeTime": now_ms, "firstId": first_id, "lastId": last_id, "count": len(trades)})
        return row

    def ticker_price(self, p: Mapping[str, str], now_ns: int) -> Any:
        """GET ticker/price (USD-M adds `time`: the last trade's)."""
        def row(s: str) -> dict[str, Any]:
            out: dict[str, Any] = {"symbol": s, "price": self.ex.fmts[s].px(self._last_price(s))}
            if not self.spot:
                last = self._last(s)
                out["time"] = last.time_ms if last is not None else self.ex.book_ms[s]
            return out
        return self._answer(p, row)

    def book_ticker(self, p: Mapping[str, str], now_ns: int) -> Any:
        """GET ticker/bookTicker (USD-M adds `time`: when the book last changed)."""
        def row(s: str) -> dict[str, Any]:
            bid_px, bid_qty, ask_px, ask_qty = self.book_top(s)
            out: dict[str, Any] = {"symbol": s, "bidPrice": bid_px, "bidQty": bid_qty, "askPrice": ask_px,
                                   "askQty": ask_qty}
            if not self.spot:
                out["time"] = self.ex.book_ms[s]
            return out
        return self._answer(p, row)

    def avg_price(self, p: Mapping[str, str], now_ns: int) -> dict[str, Any]:
        """GET avgPrice (spot)."""
        s = self._required_symbol(p)
        now_ms = self._market_ms(now_ns)
        trades, _ = self._window(s, now_ms - AVG_PRICE_MINS * 60_000, now_ms)
        volume = sum((t.qty for t in trades), _ZERO)
        price = (sum((t.price * t.qty for t in trades), _ZERO) / volume) if volume else self._last_price(s)
        last = self._last(s)
        return {"mins": AVG_PRICE_MINS, "price": self.ex.fmts[s].px(price),
                "closeTime": last.time_ms if last is not None else self.ex.book_ms[s]}

    def premium_index(self, p: Mapping[str, str], now_ns: int) -> Any:
        """GET premiumIndex (USD-M mark price and funding)."""
        now_ms = self._market_ms(now_ns)

        def row(s: str) -> dict[str, Any]:
            mark = self.ex.fmts[s].amount(self._last_price(s))
            return {"symbol": s, "markPrice": mark, "indexPrice": mark, "estimatedSettlePrice": mark,
                    "lastFundingRate": FUNDING_RATE, "interestRate": INTEREST_RATE,
                    "nextFundingTime": (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS, "time": now_ms}
        return self._answer(p, row)

    # ------------------------------------------------------------ trades

    def trades(self, p: Mapping[str, str], now_ns: int) -> list[dict[str, Any]]:
        """GET trades: the most recent `limit` (default 500, at most 1000), oldest first."""
        s = self._required_symbol(p)
        limit = _limit(p)
        fmt = self.ex.fmts[s]
        tape = list(islice(reversed(self.ex.tape[s]), limit))[::-1]
        if self.spot:
            return [{"id": t.trade_id, "price": fmt.px(t.price), "qty": fmt.qty(t.qty),
                     "quoteQty": fmt.amount(t.price * t.qty), "time": t.time_ms, "isBuyerMaker": t.buyer_maker,
                     "isBestMatch": True} for t in tape]
        return [{"id": t.trade_id, "price": fmt.px(t.price), "qty": fmt.qty(t.qty),
                 "quoteQty": fmt.px(t.price * t.qty), "time": t.time_ms, "isBuyerMaker": t.buyer_maker,
                 "isRPITrade": False} for t in tape]

    def agg_trades(self, p: Mapping[str, str], now_ns: int) -> list[dict[str, Any]]:
        """GET aggTrades by fromId / startTime / endTime (inclusive), else the most recent `limit`."""
        s = self._required_symbol(p)
        limit = _limit(p)
        from_id, start_ms, end_ms = (_int_param(p, k) for k in ("fromId", "startTime", "endTime"))
        if (not self.spot and start_ms is not None and end_ms is not None
                and end_ms - start_ms > AGG_TRADES_MAX_SPAN_MS):
            raise EmulatorError(400, -1127, "More than 1 hours between startTime and endTime.")
        rows = [t for t in self.ex.tape[s]
                if (from_id is None or t.trade_id >= from_id) and (start_ms is None or t.time_ms >= start_ms)
                and (end_ms is None or t.time_ms <= end_ms)]
        rows = rows[:limit] if (from_id is not None or start_ms is not None) else rows[-limit:]
        fmt = self.ex.fmts[s]
        out = []
        for t in rows:
            q = fmt.qty(t.qty)
            row: dict[str, Any] = {"a": t.trade_id, "p": fmt.px(t.price), "q": q}
            if not self.spot:
                row["nq"] = q  # no RPI orders: the normal quantity is all of it
            row.update({"f": t.trade_id, "l": t.trade_id, "T": t.time_ms, "m": t.buyer_maker})
            if self.spot:
                row["M"] = True
            out.append(row)
        return out


def _parse_symbols(raw: str) -> list[str]:
    """`symbols=["BTCUSDT","ETHUSDT"]`: a JSON array of distinct symbol names (-1100, -1101)."""
    try:
        names = orjson.loads(raw)
    except orjson.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise EmulatorError(400, -1100, f"Illegal characters found in parameter 'symbols'; legal range is "
                                        f"'{_SYMBOLS_RANGE}'.")
    if len(set(names)) != len(names):
        raise EmulatorError(400, -1101, "Duplicate values for a parameter detected.")
    return names


def _int_param(p: Mapping[str, str], key: str) -> int | None:
    raw = p.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise EmulatorError(400, -1100, f"Illegal characters found in parameter '{key}'; legal range is "
                                        "'^[0-9]{1,20}$'.") from None


def _limit(p: Mapping[str, str]) -> int:
    limit = _int_param(p, "limit")
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise EmulatorError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, MAX_LIMIT)


def _steps(size: float, step: Decimal) -> Decimal:
    """`size` rounded to whole steps (at least one)."""
    q = (Decimal(repr(max(size, 0.0))) / step).to_integral_value() * step
    return q if q > 0 else step
