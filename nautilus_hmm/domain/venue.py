"""The venue port: what execution holds of a venue (sim, Binance, Bybit ... implement it).

It lives in `domain/`, below `execution/` and `venues/`, so the engine and the
reconciler hold a venue through this protocol and never import `venues/`
(import-linter's money-path contract has no exception for it).

Adapters turn venue wire formats into neutral types and never let raw venue dicts out
of `venues/<venue>/`: the neutral order vocabulary (`OrderRequest`, `VenueOrder`,
`VenueFill`, `Balance`) is `domain.orders`. They report what the venue says through two
bus messages of `messages`: `OrderStatusReport` (an order's state at the venue) and
`FillReport` (an execution).
The execution engine is their only consumer: its fill intake deduplicates, applies them to its
order state machine and re-publishes `OrderEvent` / `Fill`.

Request methods raise the typed errors of `core.errors`; a request whose outcome is
unknown (timeout, connection lost after send) raises `UnknownOutcome` and the caller
resolves it with `query_order`, never by resending.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, OrderRequest, VenueFill, VenueOrder


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
