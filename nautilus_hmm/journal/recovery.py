"""Rebuild state from the journal at startup (before the hot loop runs).

Pure functions over journal rows, plus `load_recovery_state` which reads them with the
journal's sync API. What the integrator does with the result:

1. resolve every in-flight order (`in_flight`: any non-terminal status, NEW and SUBMITTED
   included) by querying the venue by client order id, never by resending: a NEW order may
   or may not have left before the crash;
2. fetch fills the journal missed with `venue.fills_since(instrument, fill_cursors[...])`
   and journal them with `record_fill` (replays of already journaled fills return False);
3. rebuild the Portfolio by replaying `fills_by_instrument` in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.journal.rows import FillRow, OrderRow, PositionSnapshotRow

if TYPE_CHECKING:
    from nautilus_hmm.journal.store import Journal


def in_flight_orders(orders: Iterable[OrderRow]) -> list[OrderRow]:
    """Orders whose outcome recovery must settle with the venue (every non-terminal status)."""
    return [o for o in orders if o.status.is_open]


def orders_by_client_id(orders: Iterable[OrderRow]) -> dict[str, OrderRow]:
    """Orders keyed by client order id."""
    return {o.client_order_id: o for o in orders}


def fills_by_instrument(fills: Iterable[FillRow]) -> dict[InstrumentId, list[FillRow]]:
    """Fills per instrument in replay order (ts_ns, then journal order)."""
    out: dict[InstrumentId, list[FillRow]] = {}
    for f in sorted(fills, key=lambda f: (f.ts_ns, f.id)):
        out.setdefault(f.instrument_id, []).append(f)
    return out


def fill_cursors(fills: Iterable[FillRow]) -> dict[InstrumentId, int]:
    """Newest journaled fill time per instrument: the `since_ts_ns` to ask the venue from.

    Asking from that instant (inclusive) re-delivers the newest fill; `record_fill`
    ignores the replay, so nothing is counted twice and nothing at the same instant is missed.
    """
    out: dict[InstrumentId, int] = {}
    for f in fills:
        if f.ts_ns > out.get(f.instrument_id, -1):
            out[f.instrument_id] = f.ts_ns
    return out


def filled_qty_by_order(fills: Iterable[FillRow]) -> dict[str, Decimal]:
    """Sum of journaled fill quantities per client order id."""
    out: dict[str, Decimal] = {}
    for f in fills:
        out[f.client_order_id] = out.get(f.client_order_id, Decimal(0)) + f.qty
    return out


def missing_fill_qty(orders: Iterable[OrderRow], fills: Iterable[FillRow]) -> dict[str, Decimal]:
    """Orders whose recorded filled_qty exceeds their journaled fills: fills to fetch from the venue."""
    filled = filled_qty_by_order(fills)
    out: dict[str, Decimal] = {}
    for o in orders:
        gap = o.filled_qty - filled.get(o.client_order_id, Decimal(0))
        if gap > 0:
            out[o.client_order_id] = gap
    return out


@dataclass(frozen=True, slots=True)
class RecoveryState:
    """Everything startup recovery needs from the journal, read once."""

    journal_id: str
    next_seq: int
    orders: list[OrderRow]  # all orders, or only open ones (see load_recovery_state)
    orders_by_client_id: dict[str, OrderRow]
    in_flight: list[OrderRow]
    fills: list[FillRow]  # replay order
    fills_by_instrument: dict[InstrumentId, list[FillRow]]
    fill_cursors: dict[InstrumentId, int]
    missing_fill_qty: dict[str, Decimal]
    position_snapshot: PositionSnapshotRow | None


def build_recovery_state(
    journal_id: str,
    next_seq: int,
    orders: list[OrderRow],
    fills: list[FillRow],
    snapshot: PositionSnapshotRow | None,
) -> RecoveryState:
    """Derive the recovery view from rows already read."""
    by_instrument = fills_by_instrument(fills)
    ordered = [f for fs in by_instrument.values() for f in fs]
    ordered.sort(key=lambda f: (f.ts_ns, f.id))
    return RecoveryState(
        journal_id=journal_id,
        next_seq=next_seq,
        orders=orders,
        orders_by_client_id=orders_by_client_id(orders),
        in_flight=in_flight_orders(orders),
        fills=ordered,
        fills_by_instrument=by_instrument,
        fill_cursors=fill_cursors(fills),
        missing_fill_qty=missing_fill_qty(orders, fills),
        position_snapshot=snapshot,
    )


def load_recovery_state(journal: Journal, *, all_orders: bool = True, fills_since_ns: int = 0) -> RecoveryState:
    """Read orders, fills and the latest snapshot (blocking; call before the loop trades).

    `all_orders=False` loads only the open orders (cheaper on a long journal; fills of
    closed orders are still loaded for the portfolio replay).
    """
    orders = journal.load_orders(open_only=not all_orders)
    fills = journal.load_fills(since_ns=fills_since_ns)
    return build_recovery_state(
        journal.journal_id, journal.next_seq, orders, fills, journal.latest_position_snapshot()
    )
