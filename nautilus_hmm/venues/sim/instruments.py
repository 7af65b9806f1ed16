"""Instrument specifications of the simulated venue (Binance-spot-like filters)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal

from nautilus_hmm.domain.enums import InstrumentKind
from nautilus_hmm.domain.instruments import Instrument, InstrumentId

# symbol: (tick_size, step_size) as Binance spot lists them.
KNOWN_FILTERS: dict[str, tuple[str, str]] = {
    "BTCUSDT": ("0.01", "0.00001"),
    "ETHUSDT": ("0.01", "0.0001"),
    "SOLUSDT": ("0.01", "0.001"),
    "BNBUSDT": ("0.01", "0.001"),
    "XRPUSDT": ("0.0001", "0.1"),
    "ADAUSDT": ("0.0001", "0.1"),
    "DOGEUSDT": ("0.00001", "1"),
    "ADABTC": ("0.00000001", "0.1"),
}
STABLE_QUOTES = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "DAI"})
DEFAULT_MIN_NOTIONAL_STABLE = Decimal(5)
DEFAULT_MAX_QTY = Decimal(9_000_000)


def sim_instrument(
    venue: str,
    symbol: str,
    quote_asset: str,
    maker_fee: Decimal,
    taker_fee: Decimal,
    ref_price: float | None = None,
) -> Instrument:
    """The spec of `symbol`: known filters, else a tick/step derived from `ref_price`.

    Unknown symbols get a tick near 1e-6 of the price and a step worth about 0.01 quote
    (both powers of ten, clamped to [1e-8, 1]); without a price, 1e-8 for both.
    Minimum notional is 5 for stablecoin quotes and 0 otherwise.
    """
    if not symbol.endswith(quote_asset) or symbol == quote_asset:
        raise ValueError(f"sim symbol {symbol!r} does not end with quote asset {quote_asset!r}")
    base = symbol[: -len(quote_asset)]
    if symbol in KNOWN_FILTERS:
        tick, step = (Decimal(x) for x in KNOWN_FILTERS[symbol])
    elif ref_price is not None and ref_price > 0 and math.isfinite(ref_price):
        tick = _pow10(math.floor(math.log10(ref_price)) - 6)
        step = _pow10(math.floor(math.log10(0.01 / ref_price)))
    else:
        tick = step = _pow10(-8)
    return Instrument(
        id=InstrumentId(venue, symbol), base_asset=base, quote_asset=quote_asset,
        kind=InstrumentKind.SPOT, tick_size=tick, step_size=step, min_qty=step,
        max_qty=DEFAULT_MAX_QTY,
        min_notional=DEFAULT_MIN_NOTIONAL_STABLE if quote_asset in STABLE_QUOTES else Decimal(0),
        maker_fee=maker_fee, taker_fee=taker_fee,
    )


def sim_instruments(
    venue: str,
    symbols: tuple[str, ...] | list[str],
    quote_asset: str,
    maker_fee: Decimal,
    taker_fee: Decimal,
    ref_prices: Mapping[str, float] | None = None,
) -> dict[InstrumentId, Instrument]:
    """Specs for every symbol, by id."""
    prices = ref_prices or {}
    out = {}
    for sym in symbols:
        inst = sim_instrument(venue, sym, quote_asset, maker_fee, taker_fee, prices.get(sym))
        out[inst.id] = inst
    return out


def _pow10(exp: int) -> Decimal:
    return Decimal(1).scaleb(min(0, max(-8, exp)))
