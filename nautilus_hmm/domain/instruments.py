"""Instrument ids and instrument specifications (exchange filters in neutral form)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from nautilus_hmm.domain.enums import InstrumentKind

if TYPE_CHECKING:
    from nautilus_hmm.domain.sessions import TradingSessions


class InstrumentId(str):
    """`venue:SYMBOL`, e.g. `sim:BTCUSDT` or `binance_spot:ETHUSDT`.

    A `str` subclass: it is a dict key on every hot path (marks, positions, open
    orders), and a str's hash is computed once and cached in C, where a dataclass would
    hash its fields in Python on every lookup. It compares equal to its text.
    """

    venue: str
    symbol: str

    def __new__(cls, venue: str, symbol: str) -> InstrumentId:
        if not venue or not symbol or ":" in venue:
            raise ValueError(f"instrument id needs a venue and a symbol, got {venue!r}, {symbol!r}")
        self = super().__new__(cls, f"{venue}:{symbol}")
        self.venue = venue
        self.symbol = symbol
        return self

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (self.venue, self.symbol)

    def __repr__(self) -> str:
        return f"InstrumentId({self.venue!r}, {self.symbol!r})"

    def __str__(self) -> str:
        return f"{self.venue}:{self.symbol}"

    @classmethod
    def parse(cls, text: str) -> InstrumentId:
        """Parse `venue:SYMBOL`; raise ValueError naming the text otherwise."""
        venue, sep, symbol = text.partition(":")
        if not sep or not venue or not symbol:
            raise ValueError(f"instrument id {text!r}: expected 'venue:SYMBOL'")
        return cls(venue, symbol)


@dataclass(frozen=True, slots=True)
class Instrument:
    """Everything the router and risk rails need to know about a tradable symbol.

    Quantities are in base units (contracts x multiplier for perpetuals); prices in quote.
    IBKR kinds: a stock's quantity is shares, a future's contracts (notional and PnL x
    `multiplier`), an FX pair's base-currency units. `max_notional` and `max_qty` of None
    mean no venue limit.
    """

    id: InstrumentId
    base_asset: str
    quote_asset: str
    kind: InstrumentKind
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal | None
    min_notional: Decimal
    multiplier: Decimal = Decimal(1)
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    market_step_size: Decimal | None = None  # MARKET_LOT_SIZE when it differs
    market_max_qty: Decimal | None = None
    max_num_orders: int | None = None
    percent_price_up: Decimal | None = None  # PERCENT_PRICE(_BY_SIDE) multipliers
    percent_price_down: Decimal | None = None
    tradable: bool = True
    # Venue-independent fields of non-crypto instruments (issue 14); the defaults keep every
    # crypto instrument as it was. sessions None = trades 24/7 (every crypto venue).
    sessions: TradingSessions | None = None
    expiry: str | None = None  # YYYYMMDD, futures only
    currency: str | None = None  # the currency PnL is in; None = quote_asset
    venue_ref: str | None = None  # the venue's own contract id as text (IB conId)

    @property
    def pnl_currency(self) -> str:
        """The currency PnL and notional are counted in: `currency`, else `quote_asset`."""
        return self.currency or self.quote_asset

    @property
    def symbol(self) -> str:
        """Venue symbol."""
        return self.id.symbol

    @property
    def venue(self) -> str:
        """Venue name."""
        return self.id.venue
