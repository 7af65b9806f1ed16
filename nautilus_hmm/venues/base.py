"""The interface every venue adapter implements (sim, Binance, Bybit ...).

Adapters turn venue wire formats into neutral types and never let raw venue dicts out
of `venues/<venue>/`. They report what the venue says through two bus messages:
`OrderStatusReport` (an order's state at the venue) and `FillReport` (an execution).
The execution engine is their only consumer: it deduplicates, applies them to its
order state machine and re-publishes `OrderEvent` / `Fill`.

Request methods raise the typed errors of `core.errors`; a request whose outcome is
unknown (timeout, connection lost after send) raises `UnknownOutcome` and the caller
resolves it with `query_order`, never by resending.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.messages import Message, message

if TYPE_CHECKING:
    from nautilus_hmm.marketdata.replay import BarArrays


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


@message
class OrderStatusReport(Message):
    """Venue → engine: the venue's view of one order changed."""

    critical: ClassVar[bool] = True
    venue: str
    order: VenueOrder


@message
class FillReport(Message):
    """Venue → engine: an execution happened."""

    critical: ClassVar[bool] = True
    venue: str
    fill: VenueFill


class Venue(Protocol):
    """What the engine needs from a venue. Lifecycle follows core.lifecycle.Component."""

    name: str

    async def start(self) -> None:
        """Connect, sync time, load instruments, open market and user streams."""
        ...

    async def run(self) -> None:
        """Keep streams alive (reconnect, keepalive) until cancelled."""
        ...

    async def stop(self) -> None:
        """Close streams and sessions."""
        ...

    def health(self) -> Health:
        """Connected, streams fresh, not banned."""
        ...

    def instruments(self) -> dict[InstrumentId, Instrument]:
        """Tradable instruments, by id."""
        ...

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        """Place an order; returns the venue's acknowledgement."""
        ...

    async def cancel_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        """Cancel by client order id."""
        ...

    async def cancel_all(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Cancel every open order (of one instrument, or all)."""
        ...

    async def query_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        """The venue's view of an order, or None if the venue never saw it."""
        ...

    async def open_orders(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        """Open orders (of one instrument, or all)."""
        ...

    async def fills_since(self, instrument_id: InstrumentId, since_ts_ns: int) -> list[VenueFill]:
        """Executions at or after `since_ts_ns`, oldest first."""
        ...

    async def balances(self) -> dict[str, Balance]:
        """Account balances by asset."""
        ...

    async def positions(self) -> dict[InstrumentId, Decimal]:
        """Net positions in base units (derivatives); spot venues return {}."""
        ...


@runtime_checkable
class HistoryVenue(Protocol):
    """A venue that can serve past bars (REST klines, a simulator's past)."""

    async def history_bars(self, instrument_id: InstrumentId, interval_s: int, n_bars: int) -> BarArrays:
        """Up to `n_bars` closed bars of `interval_s` seconds ending now, oldest first.

        Fewer (or none) when the venue has less; raises VenueError when it cannot answer.
        """
        ...
