"""The order vocabulary shared by venues, execution, risk and the journal.

Neutral types: a venue adapter translates its wire format into these inside
`venues/<venue>/` and nothing else ever sees a raw venue dict. Prices, quantities and
fees are Decimal (they touch a venue). They live here, below `risk/`, `journal/` and
`execution/`, so those layers never import `venues/` (import-linter enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import InstrumentId

# The finest quantity a strategy's target or a share of a fill is stated in (base units):
# sizing from an exposure and every pro rata split round toward zero to it; the router's
# order rounding to the instrument's step comes after.
QTY_QUANTUM = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order as sent to a venue. Quantities in base units, Decimal."""

    client_order_id: str
    instrument_id: InstrumentId
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue sees it (answer to query / open orders)."""

    client_order_id: str
    venue_order_id: str
    instrument_id: InstrumentId
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_qty: Decimal
    avg_px: Decimal | None
    price: Decimal | None
    ts_ns: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VenueFill:
    """An execution as the venue reports it."""

    instrument_id: InstrumentId
    client_order_id: str
    venue_order_id: str
    trade_id: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset of the venue account."""

    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        """free + locked."""
        return self.free + self.locked
