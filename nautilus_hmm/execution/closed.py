"""The engine's memory of closed orders, bounded; the journal remembers the rest.

An order is *closed* once it is terminal and every fill the venue reported is booked (it
leaves `engine.open_orders`). The engine keeps the newest `kept` closed orders in
`engine.orders` (for /orders, for the late or repeated reports venues send) and forgets
older ones, so a daemon that trades for months holds a bounded number of `Order` objects
(about 1 KB each) instead of one per order ever sent.

Money rule: forgetting an order never changes how a report about it is handled. A report
or a fill for an id that is not in memory, minted by this journal, after something was
forgotten, *recalls* the order first (`ClosedOrders.recall`: its journal row and
journaled fills, rebuilt exactly as start-up recovery rebuilds orders) and then applies
to its real state: a stale status is ignored, a fill already booked is refused by the
fill intake's journal key before it gets here, a fill beyond the order's quantity is a
discrepancy, and reconciliation never mistakes a forgotten order of ours for one the
journal lost (which would halt trading). An id the journal does not have is remembered
as absent for a while (a foreign order's reports cost one journal read, not one each).

Orders with fills not yet booked, open orders and orders of a node without a durable
journal (backtest: `kept` None) are never forgotten. /orders reads older orders from the
journal once something was forgotten (`engine.order_views_complete`), so it answers as before.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from nautilus_hmm.core.bounded import RecentKeys
from nautilus_hmm.core.ids import parse_journal_sequence
from nautilus_hmm.execution.orders import Order

CLOSED_ORDERS_KEPT = 1_000  # closed orders kept in memory (/orders shows these and the open ones)
ABSENT_IDS_KEPT = 10_000  # ids the journal was asked about and did not have
# A venue's trade timestamp may precede our order's creation by its clock's offset: a
# recalled order's fills are read from this long before it was created.
FILL_CLOCK_MARGIN_NS = 60_000_000_000
_ZERO = Decimal(0)


def order_from_row(row: Any, fills: list[Any]) -> Order:
    """Rebuild an Order from its journal row and journaled fills (recovery, recall)."""
    trade_qty = sum((f.qty for f in fills), _ZERO)
    trade_notional = sum((f.qty * f.price for f in fills), _ZERO)
    filled = max(row.filled_qty, trade_qty)
    avg = row.avg_px if row.avg_px is not None else (trade_notional / trade_qty if trade_qty else None)
    return Order.restore({
        "client_order_id": row.client_order_id, "strategy_id": row.strategy_id,
        "instrument_id": str(row.instrument_id), "side": row.side.value, "order_type": row.order_type.value,
        "quantity": str(row.quantity), "price": None if row.price is None else str(row.price),
        "time_in_force": row.time_in_force.value, "reduce_only": row.reduce_only, "created_ns": row.created_ns,
        "status": row.status.value, "filled_qty": str(filled), "avg_px": None if avg is None else str(avg),
        "venue_order_id": row.venue_order_id, "reason": row.reason,
        "trade_ids": [f.trade_id for f in fills], "trade_qty": str(trade_qty),
        "trade_notional": str(trade_notional), "venue_avg_px": None, "ts_last_ns": row.updated_ns,
    })


def load_order(journal: Any, client_order_id: str) -> Order | None:
    """The order as the journal has it (row + its fills), or None (sync: the read thread)."""
    row = journal.get_order(client_order_id)
    if row is None:
        return None
    fills = [f for f in journal.load_fills(row.created_ns - FILL_CLOCK_MARGIN_NS)
             if f.client_order_id == client_order_id]
    return order_from_row(row, fills)


def load_recent_orders(journal: Any, limit: int) -> list[Order]:
    """The `limit` orders journaled last (rows + their fills), newest first (sync: the read
    thread): /orders beyond the closed orders kept in memory."""
    rows = journal.recent_orders(limit)
    if not rows:
        return []
    wanted = {r.client_order_id for r in rows}
    fills: dict[str, list[Any]] = {}
    for f in journal.load_fills(min(r.created_ns for r in rows) - FILL_CLOCK_MARGIN_NS):
        if f.client_order_id in wanted:
            fills.setdefault(f.client_order_id, []).append(f)
    return [order_from_row(r, fills.get(r.client_order_id, [])) for r in rows]


class ClosedOrders:
    """Which closed orders `orders` (the engine's map) still holds; forgets the oldest."""

    __slots__ = ("_absent", "_orders", "_queue", "kept", "pruned", "recalled")

    def __init__(self, orders: dict[str, Order], kept: int | None) -> None:
        if kept is not None and kept < 1:
            raise ValueError(f"closed orders kept must be >= 1, got {kept}")
        self._orders = orders
        self.kept = kept  # None: never forget (no durable journal to recall from)
        self._queue: deque[str] = deque()  # closed ids, oldest first
        self._absent: RecentKeys[str] = RecentKeys(ABSENT_IDS_KEPT)
        self.pruned = 0  # orders forgotten so far
        self.recalled = 0  # forgotten orders read back from the journal

    def __len__(self) -> int:
        return len(self._queue)

    def closed(self, order: Order) -> None:
        """`order` just closed (terminal, fills booked): remember it, forget the oldest past `kept`."""
        kept = self.kept
        if kept is None:
            return
        queue = self._queue
        queue.append(order.client_order_id)
        orders = self._orders
        while len(queue) > kept:
            cid = queue.popleft()
            old = orders.get(cid)
            # Reopened meanwhile (never, by the state machine) or fills still due: keep it.
            if old is not None and old.is_terminal and old.fills_booked:
                del orders[cid]
                self.pruned += 1

    def may_recall(self, client_order_id: str, journal_id: str | None) -> bool:
        """True when `client_order_id` (not in memory) may be a forgotten order of ours."""
        if not self.pruned or client_order_id in self._absent:
            return False
        return journal_id is None or parse_journal_sequence(client_order_id, journal_id) is not None

    async def recall(self, journal: Any, client_order_id: str) -> Order | None:
        """The order read back from the journal (its pending writes flushed first), or None
        (then remembered as absent). The caller adopts it (`engine.restore_order`)."""
        flush = getattr(journal, "flush", None)
        if flush is not None:
            await flush()
        order = await journal.read(load_order, journal, client_order_id)
        if order is None:
            self._absent.add(client_order_id)
            return None
        self.recalled += 1
        return order
