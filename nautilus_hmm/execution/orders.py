"""The order state machine: one mutable `Order` per client order id, pure logic.

Legal transitions (`TRANSITIONS`):

    NEW              -> SUBMITTED, REJECTED (denied before sending), CANCELED (never sent)
    SUBMITTED        -> ACCEPTED, REJECTED, PARTIALLY_FILLED, FILLED (a market order can
                        fill before its ack), PENDING_CANCEL, CANCELED, EXPIRED
    ACCEPTED         -> PARTIALLY_FILLED, FILLED, PENDING_CANCEL, CANCELED, EXPIRED
    PARTIALLY_FILLED -> FILLED, PENDING_CANCEL, CANCELED, EXPIRED
    PENDING_CANCEL   -> CANCELED, FILLED, PARTIALLY_FILLED, ACCEPTED (cancel rejected),
                        EXPIRED
    FILLED, CANCELED, REJECTED, EXPIRED: terminal, accept nothing.

A transition to the current state is an idempotent no-op (venues repeat themselves).

Quantities: `filled_qty` is the larger of the sum of applied trades and the cumulative
quantity the venue last reported, so a status report and the fill report of the same
execution never count twice, whichever arrives first; it never decreases. `avg_px` is the
volume-weighted price of the applied trades once they cover `filled_qty`, otherwise the
venue's reported average (when it gave one).

Events: an order's *transition* is a change of its status or of its filled quantity.
`take_transition()` says whether one happened since the last time it was taken, so the
engine journals and publishes each transition exactly once, however many reports (a fill
report and the status report of the same execution, a repeated ack) carry it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nautilus_hmm.core.errors import NautilusError
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueOrder
from nautilus_hmm.messages import OrderEvent

S = OrderStatus
_ZERO = Decimal(0)

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED, S.CANCELED}),
    S.SUBMITTED: frozenset(
        {S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}
    ),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.FILLED, S.PARTIALLY_FILLED, S.ACCEPTED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
"""Direct legal transitions, by current status."""


def _closure(table: dict[OrderStatus, frozenset[OrderStatus]]) -> dict[OrderStatus, frozenset[OrderStatus]]:
    out: dict[OrderStatus, frozenset[OrderStatus]] = {}
    for start in table:
        seen: set[OrderStatus] = set()
        todo = list(table[start])
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(table[s])
        out[start] = frozenset(seen)
    return out


REACHABLE: dict[OrderStatus, frozenset[OrderStatus]] = _closure(TRANSITIONS)
"""States reachable by a path of legal transitions (what a venue report may jump to)."""

# Late trades may still arrive for an order the venue already finished with: its
# cumulative quantity is already in filled_qty, the trade ids are not yet known.
_FILLABLE_TERMINAL = frozenset({S.FILLED, S.CANCELED, S.EXPIRED})


class IllegalTransition(NautilusError):
    """An order was asked to move to a state its current state cannot reach."""

    def __init__(self, client_order_id: str, from_status: OrderStatus, to_status: OrderStatus) -> None:
        self.client_order_id = client_order_id
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(
            f"order {client_order_id}: illegal transition {from_status.value} -> {to_status.value}"
        )


class InvalidFill(NautilusError):
    """A fill or venue report that cannot be applied (overfill, non-positive qty or price)."""

    def __init__(self, client_order_id: str, problem: str) -> None:
        self.client_order_id = client_order_id
        self.problem = problem
        super().__init__(f"order {client_order_id}: {problem}")


class Order:
    """One order's state, quantities and the trade ids already applied to it."""

    __slots__ = (
        "_emitted_filled",
        "_emitted_status",
        "_trade_notional",
        "_trade_qty",
        "_venue_avg_px",
        "avg_px",
        "client_order_id",
        "created_ns",
        "filled_qty",
        "instrument_id",
        "order_type",
        "price",
        "quantity",
        "reason",
        "reduce_only",
        "side",
        "status",
        "strategy_id",
        "time_in_force",
        "trade_ids",
        "ts_last_ns",
        "venue_order_id",
    )

    def __init__(
        self,
        *,
        client_order_id: str,
        strategy_id: str,
        instrument_id: InstrumentId,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        created_ns: int,
        price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        reduce_only: bool = False,
    ) -> None:
        if quantity <= 0:
            raise ValueError(f"order {client_order_id}: quantity must be > 0, got {quantity}")
        if order_type is not OrderType.MARKET and price is None:
            raise ValueError(f"order {client_order_id}: {order_type.value} order needs a price")
        if price is not None and price <= 0:
            raise ValueError(f"order {client_order_id}: price must be > 0, got {price}")
        self.client_order_id = client_order_id
        self.strategy_id = strategy_id
        self.instrument_id = instrument_id
        self.side = side
        self.order_type = order_type
        self.quantity = quantity
        self.price = price
        self.time_in_force = time_in_force
        self.reduce_only = reduce_only
        self.created_ns = created_ns
        self.status = OrderStatus.NEW
        self.filled_qty = _ZERO
        self.avg_px: Decimal | None = None
        self.venue_order_id: str | None = None
        self.reason = ""
        self.trade_ids: set[str] = set()
        self.ts_last_ns = created_ns
        self._trade_qty = _ZERO
        self._trade_notional = _ZERO
        self._venue_avg_px: Decimal | None = None
        self._emitted_status: OrderStatus | None = None
        self._emitted_filled = _ZERO

    @classmethod
    def from_request(cls, req: OrderRequest, strategy_id: str, created_ns: int) -> Order:
        """A NEW order for the request `req` of strategy `strategy_id`."""
        return cls(
            client_order_id=req.client_order_id,
            strategy_id=strategy_id,
            instrument_id=req.instrument_id,
            side=req.side,
            order_type=req.order_type,
            quantity=req.quantity,
            price=req.price,
            time_in_force=req.time_in_force,
            reduce_only=req.reduce_only,
            created_ns=created_ns,
        )

    def to_request(self) -> OrderRequest:
        """The venue request for this order."""
        return OrderRequest(
            client_order_id=self.client_order_id,
            instrument_id=self.instrument_id,
            side=self.side,
            order_type=self.order_type,
            quantity=self.quantity,
            price=self.price,
            time_in_force=self.time_in_force,
            reduce_only=self.reduce_only,
        )

    # ------------------------------------------------------------ views

    @property
    def fills_booked(self) -> bool:
        """True when the trades applied cover the filled quantity the venue reported.

        A venue may acknowledge FILLED before its fill reports arrive; until they do, the
        position does not yet include this order.
        """
        return self._trade_qty >= self.filled_qty

    @property
    def pending_qty(self) -> Decimal:
        """Quantity not yet in the position: the unfilled rest while open, plus fills the
        venue reported (status or ack) whose trades are not booked yet."""
        total = self.filled_qty if self.status.is_terminal else self.quantity
        pending = total - self._trade_qty
        return pending if pending > 0 else _ZERO

    @property
    def leaves_qty(self) -> Decimal:
        """Quantity still to fill while the order is open; 0 once it is terminal."""
        return _ZERO if self.status.is_terminal else self.quantity - self.filled_qty

    @property
    def is_open(self) -> bool:
        """True while the order may still rest or fill at the venue."""
        return not self.status.is_terminal

    @property
    def is_terminal(self) -> bool:
        """True once nothing can change the order's state."""
        return self.status.is_terminal

    def can_transition(self, to: OrderStatus) -> bool:
        """Whether `transition(to)` would succeed (same state counts as yes)."""
        return to is self.status or to in TRANSITIONS[self.status]

    # ------------------------------------------------------------ changes

    def take_transition(self) -> bool:
        """True once per change of (status, filled qty) since the last call: the engine
        journals and publishes an order event only then (a report that changes only the
        venue id or the venue's average price is not a new event)."""
        status = self.status
        if status is self._emitted_status and self.filled_qty == self._emitted_filled:
            return False
        self._emitted_status = status
        self._emitted_filled = self.filled_qty
        return True

    def transition(self, to: OrderStatus, ts_ns: int, reason: str = "") -> bool:
        """Move to `to`; False for a same-state no-op; IllegalTransition if not allowed.

        Status only: quantities move through `apply_fill` and `apply_venue_state`.
        """
        if to is self.status:
            return False
        if to not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.client_order_id, self.status, to)
        self.status = to
        if reason:
            self.reason = reason
        self._touch(ts_ns)
        return True

    def cancel_rejected(self, ts_ns: int, reason: str = "") -> bool:
        """The venue refused our cancel: PENDING_CANCEL goes back to ACCEPTED or PARTIALLY_FILLED.

        False (no change) when no cancel is pending, e.g. the order filled meanwhile.
        """
        if self.status is not S.PENDING_CANCEL:
            return False
        to = S.PARTIALLY_FILLED if self.filled_qty > 0 else S.ACCEPTED
        return self.transition(to, ts_ns, reason)

    def apply_fill(self, trade_id: str, qty: Decimal, price: Decimal, ts_ns: int) -> bool:
        """Apply one execution; False (and no change) if `trade_id` was already applied.

        Raises InvalidFill for a non-positive qty or price, for a fill that would take
        the traded quantity past the order quantity, or for a fill on a NEW or REJECTED
        order. Moves an open order to PARTIALLY_FILLED or FILLED (a partial fill keeps
        PENDING_CANCEL: the cancel is still in flight). A late trade on an order the
        venue already reported FILLED / CANCELED / EXPIRED is recorded without a state
        change: its quantity is already part of the venue's cumulative filled qty.
        """
        if trade_id in self.trade_ids:
            return False
        cid = self.client_order_id
        if qty <= 0:
            raise InvalidFill(cid, f"fill {trade_id}: qty must be > 0, got {qty}")
        if price <= 0:
            raise InvalidFill(cid, f"fill {trade_id}: price must be > 0, got {price}")
        status = self.status
        if status is S.NEW or status is S.REJECTED:
            raise InvalidFill(cid, f"fill {trade_id} on a {status.value} order")
        trade_qty = self._trade_qty + qty
        if trade_qty > self.quantity:
            raise InvalidFill(
                cid,
                f"fill {trade_id} of {qty} overfills: {self._trade_qty} already traded of {self.quantity}",
            )
        self.trade_ids.add(trade_id)
        self._trade_qty = trade_qty
        self._trade_notional += qty * price
        if trade_qty > self.filled_qty:
            self.filled_qty = trade_qty
        self._refresh_avg_px()
        if status not in _FILLABLE_TERMINAL:
            if self.filled_qty >= self.quantity:
                self.status = S.FILLED
            elif status is not S.PENDING_CANCEL:
                self.status = S.PARTIALLY_FILLED
        self._touch(ts_ns)
        return True

    def apply_venue_state(self, vo: VenueOrder) -> bool:
        """Reconcile to the venue's view of this order; True if anything changed.

        Rules (recovery and live reports alike):
        * the venue's status may be reached by any path of legal transitions, so a
          recovered NEW or SUBMITTED order may jump straight to FILLED; a status no
          path reaches raises IllegalTransition (a discrepancy for reconciliation);
        * a venue never reports NEW / SUBMITTED: either is read as ACCEPTED;
        * a PARTIALLY_FILLED report keeps PENDING_CANCEL (a fill does not answer the
          cancel); an ACCEPTED report ends it (the cancel was rejected);
        * filled_qty never decreases; an ACCEPTED report for an order with fills is read
          as PARTIALLY_FILLED (a stale report), and any open status with the whole
          quantity filled as FILLED;
        * a terminal order accepts only a report of the same status (quantities merge);
        * a cumulative filled qty above the order quantity raises InvalidFill.
        """
        if vo.client_order_id != self.client_order_id:
            raise ValueError(
                f"venue order {vo.client_order_id!r} applied to order {self.client_order_id!r}"
            )
        if vo.filled_qty > self.quantity:
            raise InvalidFill(
                self.client_order_id,
                f"venue reports filled {vo.filled_qty} of quantity {self.quantity}",
            )
        if vo.filled_qty < 0:
            raise InvalidFill(self.client_order_id, f"venue reports filled {vo.filled_qty}")
        filled = vo.filled_qty if vo.filled_qty > self.filled_qty else self.filled_qty
        target = vo.status
        if target is S.NEW or target is S.SUBMITTED:
            target = S.ACCEPTED
        if target is S.PARTIALLY_FILLED and self.status is S.PENDING_CANCEL:
            target = S.PENDING_CANCEL
        if not target.is_terminal and filled >= self.quantity:
            target = S.FILLED
        elif target is S.ACCEPTED and filled > 0:
            target = S.PARTIALLY_FILLED
        if target is not self.status and target not in REACHABLE[self.status]:
            raise IllegalTransition(self.client_order_id, self.status, target)
        changed = False
        if filled != self.filled_qty:
            self.filled_qty = filled
            changed = True
        if vo.avg_px is not None and vo.avg_px != self._venue_avg_px and vo.avg_px > 0:
            self._venue_avg_px = vo.avg_px
            changed = True
        if vo.venue_order_id and vo.venue_order_id != self.venue_order_id:
            self.venue_order_id = vo.venue_order_id
            changed = True
        if target is not self.status:
            self.status = target
            changed = True
        if vo.reason and vo.reason != self.reason:
            self.reason = vo.reason
            changed = True
        if changed:
            self._refresh_avg_px()
            self._touch(vo.ts_ns)
        return changed

    def _refresh_avg_px(self) -> None:
        if self._trade_qty > 0 and self._trade_qty >= self.filled_qty:
            self.avg_px = self._trade_notional / self._trade_qty
        elif self._venue_avg_px is not None:
            self.avg_px = self._venue_avg_px
        elif self._trade_qty > 0:
            self.avg_px = self._trade_notional / self._trade_qty

    def _touch(self, ts_ns: int) -> None:
        if ts_ns > self.ts_last_ns:
            self.ts_last_ns = ts_ns

    # ------------------------------------------------------------ export

    def to_event(self, ts_event_ns: int, ts_init_ns: int) -> OrderEvent:
        """The bus event carrying this order's snapshot."""
        return OrderEvent(
            ts_event_ns=ts_event_ns,
            ts_init_ns=ts_init_ns,
            client_order_id=self.client_order_id,
            instrument_id=self.instrument_id,
            strategy_id=self.strategy_id,
            side=self.side,
            order_type=self.order_type,
            status=self.status,
            quantity=self.quantity,
            filled_qty=self.filled_qty,
            avg_px=self.avg_px,
            price=self.price,
            venue_order_id=self.venue_order_id,
            reason=self.reason,
        )

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able dict (Decimals as strings) for the journal and /status."""
        return {
            "client_order_id": self.client_order_id,
            "strategy_id": self.strategy_id,
            "instrument_id": str(self.instrument_id),
            "side": self.side.value,
            "order_type": self.order_type.value,
            "quantity": str(self.quantity),
            "price": None if self.price is None else str(self.price),
            "time_in_force": self.time_in_force.value,
            "reduce_only": self.reduce_only,
            "created_ns": self.created_ns,
            "status": self.status.value,
            "filled_qty": str(self.filled_qty),
            "avg_px": None if self.avg_px is None else str(self.avg_px),
            "venue_order_id": self.venue_order_id,
            "reason": self.reason,
            "trade_ids": sorted(self.trade_ids),
            "trade_qty": str(self._trade_qty),
            "trade_notional": str(self._trade_notional),
            "venue_avg_px": None if self._venue_avg_px is None else str(self._venue_avg_px),
            "ts_last_ns": self.ts_last_ns,
        }

    @classmethod
    def restore(cls, snap: dict[str, Any]) -> Order:
        """Rebuild an order from `snapshot()` output; KeyError/ValueError name the field."""
        try:
            order = cls(
                client_order_id=snap["client_order_id"],
                strategy_id=snap["strategy_id"],
                instrument_id=InstrumentId.parse(snap["instrument_id"]),
                side=Side(snap["side"]),
                order_type=OrderType(snap["order_type"]),
                quantity=Decimal(snap["quantity"]),
                price=None if snap["price"] is None else Decimal(snap["price"]),
                time_in_force=TimeInForce(snap["time_in_force"]),
                reduce_only=bool(snap["reduce_only"]),
                created_ns=int(snap["created_ns"]),
            )
            order.status = OrderStatus(snap["status"])
            order.filled_qty = Decimal(snap["filled_qty"])
            order.avg_px = None if snap["avg_px"] is None else Decimal(snap["avg_px"])
            order.venue_order_id = snap["venue_order_id"]
            order.reason = snap["reason"]
            order.trade_ids = set(snap["trade_ids"])
            order._trade_qty = Decimal(snap["trade_qty"])
            order._trade_notional = Decimal(snap["trade_notional"])
            vap = snap["venue_avg_px"]
            order._venue_avg_px = None if vap is None else Decimal(vap)
            order.ts_last_ns = int(snap["ts_last_ns"])
            # A restored order's state is already journaled: only later changes are events.
            order._emitted_status, order._emitted_filled = order.status, order.filled_qty
        except KeyError as exc:
            raise ValueError(f"order snapshot: missing field {exc.args[0]!r}") from None
        return order

    def __repr__(self) -> str:
        return (
            f"Order({self.client_order_id} {self.side.value} {self.quantity} {self.instrument_id} "
            f"{self.order_type.value} px={self.price} {self.status.value} filled={self.filled_qty})"
        )
