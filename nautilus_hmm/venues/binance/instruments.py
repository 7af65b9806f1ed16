"""exchangeInfo (spot and USD-M) → `domain.instruments.Instrument` (pure).

Filters read (the keys differ between markets, see the fixtures README):

* PRICE_FILTER `tickSize`; LOT_SIZE `stepSize/minQty/maxQty`; MARKET_LOT_SIZE.
* MIN_NOTIONAL: spot `minNotional`, USD-M `notional`; NOTIONAL (newer spot symbols)
  `minNotional` (its `maxNotional` has no field in `Instrument` and is not kept).
* PERCENT_PRICE `multiplierUp/Down`; PERCENT_PRICE_BY_SIDE: the tighter of the bid and
  ask multipliers (the neutral type has one pair).
* MAX_NUM_ORDERS: spot `maxNumOrders`, USD-M `limit`.

A value of 0 disables a Binance filter rule; disabled limits become None. A symbol whose
status is not TRADING (or spot trading is not allowed) is kept with `tradable=False`.
Symbols that cannot be traded through this node are skipped with a reason, never
silently: USD-M contracts other than perpetuals, and symbols without a PRICE_FILTER or
LOT_SIZE (the docs' example has `"filters": []`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from nautilus_hmm.domain.enums import InstrumentKind
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import BinanceParseError

_ZERO = Decimal(0)
# Binance's default (VIP 0) rates; replaced by account rates via `with_fees`.
DEFAULT_FEES = {
    Market.SPOT: (Decimal("0.001"), Decimal("0.001")),
    Market.USDM: (Decimal("0.0002"), Decimal("0.0005")),
}
PERPETUAL_CONTRACT_TYPES = frozenset({"PERPETUAL", "TRADIFI_PERPETUAL"})


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    """Instruments of one exchangeInfo answer, and the symbols skipped with the reason."""

    instruments: dict[InstrumentId, Instrument]
    skipped: tuple[tuple[str, str], ...]
    server_time_ms: int | None


def _dec(f: Mapping[str, Any], key: str, symbol: str) -> Decimal:
    v = f.get(key)
    if v is None:
        raise BinanceParseError("exchangeInfo", f"{symbol}: filter {f.get('filterType')} has no '{key}'", key)
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise BinanceParseError("exchangeInfo", f"{symbol}: filter {f.get('filterType')} '{key}' = {v!r}", key, v)
    try:
        return _plain(Decimal(v))
    except ArithmeticError:
        raise BinanceParseError("exchangeInfo", f"{symbol}: filter {f.get('filterType')} '{key}' = {v!r}", key, v) from None


def _plain(d: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent form ("0.01000000" → 0.01, "10.00" → 10)."""
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


def _positive_or_none(d: Decimal | None) -> Decimal | None:
    return d if d is not None and d > 0 else None


def instrument_from_symbol(
    s: Mapping[str, Any], market: Market, venue: str | None = None, *,
    maker_fee: Decimal | None = None, taker_fee: Decimal | None = None,
) -> Instrument:
    """One exchangeInfo `symbols[]` entry → Instrument; BinanceParseError if it cannot be traded."""
    symbol = s.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise BinanceParseError("exchangeInfo", f"symbol entry without a symbol: {dict(s)!r:.200}", "symbol")
    venue = venue or market.default_venue
    if market is Market.USDM:
        ctype = s.get("contractType")
        if ctype not in PERPETUAL_CONTRACT_TYPES:
            raise BinanceParseError("exchangeInfo", f"{symbol}: contractType {ctype!r} is not a perpetual", "contractType", ctype)
    filters = {f.get("filterType"): f for f in s.get("filters") or () if isinstance(f, Mapping)}
    pf, lot = filters.get("PRICE_FILTER"), filters.get("LOT_SIZE")
    if pf is None or lot is None:
        missing = "PRICE_FILTER" if pf is None else "LOT_SIZE"
        raise BinanceParseError("exchangeInfo", f"{symbol}: no {missing} filter", "filters")
    tick = _dec(pf, "tickSize", symbol)
    step = _dec(lot, "stepSize", symbol)
    if tick <= 0 or step <= 0:
        raise BinanceParseError("exchangeInfo", f"{symbol}: tickSize {tick} / stepSize {step} must be > 0", "filters")

    min_notional = _ZERO
    if (mn := filters.get("MIN_NOTIONAL")) is not None:
        min_notional = _dec(mn, "notional" if market is Market.USDM else "minNotional", symbol)
    if (nf := filters.get("NOTIONAL")) is not None and "minNotional" in nf:
        min_notional = max(min_notional, _dec(nf, "minNotional", symbol))

    market_step = market_max = None
    if (ml := filters.get("MARKET_LOT_SIZE")) is not None:
        market_step = _positive_or_none(_dec(ml, "stepSize", symbol))
        if market_step == step:
            market_step = None
        market_max = _positive_or_none(_dec(ml, "maxQty", symbol))

    up = down = None
    if (pp := filters.get("PERCENT_PRICE")) is not None:
        up, down = _dec(pp, "multiplierUp", symbol), _dec(pp, "multiplierDown", symbol)
    if (ps := filters.get("PERCENT_PRICE_BY_SIDE")) is not None:
        side_up = min(_dec(ps, "bidMultiplierUp", symbol), _dec(ps, "askMultiplierUp", symbol))
        side_down = max(_dec(ps, "bidMultiplierDown", symbol), _dec(ps, "askMultiplierDown", symbol))
        up = side_up if up is None else min(up, side_up)
        down = side_down if down is None else max(down, side_down)

    max_orders = None
    if (mo := filters.get("MAX_NUM_ORDERS")) is not None:
        raw = mo.get("maxNumOrders", mo.get("limit"))
        if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
            max_orders = raw

    status = s.get("status")
    tradable = status == "TRADING" and s.get("isSpotTradingAllowed", True) is not False
    default_maker, default_taker = DEFAULT_FEES[market]
    base, quote = s.get("baseAsset"), s.get("quoteAsset")
    if not isinstance(base, str) or not isinstance(quote, str):
        raise BinanceParseError("exchangeInfo", f"{symbol}: baseAsset/quoteAsset missing", "baseAsset")
    return Instrument(
        id=InstrumentId(venue, symbol),
        base_asset=base,
        quote_asset=quote,
        kind=InstrumentKind.SPOT if market is Market.SPOT else InstrumentKind.PERPETUAL,
        tick_size=tick,
        step_size=step,
        min_qty=_dec(lot, "minQty", symbol),
        max_qty=_positive_or_none(_dec(lot, "maxQty", symbol)),
        min_notional=min_notional,
        maker_fee=maker_fee if maker_fee is not None else default_maker,
        taker_fee=taker_fee if taker_fee is not None else default_taker,
        market_step_size=market_step,
        market_max_qty=market_max,
        max_num_orders=max_orders,
        percent_price_up=_positive_or_none(up),
        percent_price_down=_positive_or_none(down),
        tradable=tradable,
    )


def parse_exchange_info(body: Mapping[str, Any], market: Market, venue: str | None = None) -> ExchangeInfo:
    """exchangeInfo → ExchangeInfo; untradeable-here symbols are listed in `skipped` with the reason."""
    symbols = body.get("symbols") if isinstance(body, Mapping) else None
    if not isinstance(symbols, list):
        raise BinanceParseError("exchangeInfo", "missing field 'symbols'", "symbols")
    instruments: dict[InstrumentId, Instrument] = {}
    skipped: list[tuple[str, str]] = []
    for s in symbols:
        try:
            inst = instrument_from_symbol(s, market, venue)
        except BinanceParseError as exc:
            skipped.append((str(s.get("symbol", "?")) if isinstance(s, Mapping) else "?", str(exc)))
            continue
        instruments[inst.id] = inst
    server_time = body.get("serverTime")
    return ExchangeInfo(instruments, tuple(skipped), server_time if isinstance(server_time, int) else None)


def parse_trading_fees(body: Any) -> dict[str, tuple[Decimal, Decimal]]:
    """Account fee rates by symbol → (maker, taker).

    Accepts USD-M `commissionRate` objects (`makerCommissionRate`/`takerCommissionRate`)
    and spot `tradeFee` entries (`makerCommission`/`takerCommission`), alone or in a list.
    """
    rows: Iterable[Any] = body if isinstance(body, list) else [body]
    out: dict[str, tuple[Decimal, Decimal]] = {}
    for r in rows:
        if not isinstance(r, Mapping) or not isinstance(r.get("symbol"), str):
            raise BinanceParseError("tradeFee", f"expected objects with a symbol, got {r!r:.200}", "symbol")
        sym = r["symbol"]
        if "makerCommissionRate" in r:
            out[sym] = (_dec(r, "makerCommissionRate", sym), _dec(r, "takerCommissionRate", sym))
        else:
            out[sym] = (_dec(r, "makerCommission", sym), _dec(r, "takerCommission", sym))
    return out


def with_fees(
    instruments: Mapping[InstrumentId, Instrument], fees: Mapping[str, tuple[Decimal, Decimal]]
) -> dict[InstrumentId, Instrument]:
    """Copies of `instruments` with the account's maker/taker rates where `fees` has the symbol."""
    out: dict[InstrumentId, Instrument] = {}
    for iid, inst in instruments.items():
        rate = fees.get(iid.symbol)
        out[iid] = replace(inst, maker_fee=rate[0], taker_fee=rate[1]) if rate else inst
    return out
