"""The operator's trading log: one line per order submitted, filled, canceled, expired or
rejected, and per target change, read from the bus.

Lines (logger "trade"; every order line names instrument, side, qty, price and client id):

* `order_submitted` (info): the order passed the risk gate and is on its way (price is
  the limit price, None for a market order);
* `order_filled` (info): one line per fill (an order filled in parts has several), with
  the fill's qty, price, fee and trade id;
* `order_canceled`, `order_expired` (info), `order_rejected` (warning, with the reason);
* `target_changed` (info): a strategy's target for an instrument differs from the last
  one it stated (a strategy repeating its target on every bar logs nothing).

Risk denials are logged where they are decided, once: `risk_denied` by the risk gate
(warning: instrument, side, qty, price, client id, reason) and `order_not_routable` by the
execution engine (warning: instrument, side, qty, reason; no order id was minted); this
module does not log them again.

An order event that repeats the last status seen for its client id (a venue's average
price or id arriving later) logs nothing: one line per state an order reaches.

Only the node attaches a TradeLog: a backtest would flood its output with these lines. It
subscribes before the execution engine attaches, so a target's line precedes the lines of
the orders the engine plans for it. Its handlers are deferred bus handlers: the lines are
written in publish order, after the order they are about has left (not on the hot path).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.domain.enums import OrderStatus
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Fill, OrderEvent, TargetPosition
from nautilus_hmm.obs import logging as obs_logging

log = structlog.get_logger("trade")

# Status → (event, level). Other statuses (ACCEPTED, PARTIALLY_FILLED, FILLED,
# PENDING_CANCEL ...) are debug `order_status` lines: the fills and the terminal lines tell
# the story at info.
_ORDER_LINES: dict[OrderStatus, tuple[str, str]] = {
    OrderStatus.NEW: ("order_submitted", "info"),
    OrderStatus.CANCELED: ("order_canceled", "info"),
    OrderStatus.EXPIRED: ("order_expired", "info"),
    OrderStatus.REJECTED: ("order_rejected", "warning"),
}


class TradeLog:
    """Bus subscriber writing the trading log lines (see the module docstring)."""

    def __init__(self, bus: Bus, max_orders: int = 10_000) -> None:
        # Last status logged per client id, oldest evicted beyond max_orders (a late
        # duplicate of an order that old is logged again: harmless, and memory stays bounded).
        self._status: OrderedDict[str, OrderStatus] = OrderedDict()
        self._max_orders = max_orders
        self._targets: dict[tuple[str, InstrumentId], Decimal] = {}
        # Deferred (core.bus): a line costs tens of µs, written after the order it is about
        # has been sent, never before; the lines keep their order.
        self._unsubscribe: list[Callable[[], None]] = [
            bus.subscribe(OrderEvent, self.on_order, name="trade_log", deferred=True),
            bus.subscribe(Fill, self.on_fill, name="trade_log", deferred=True),
            bus.subscribe(TargetPosition, self.on_target, name="trade_log", deferred=True),
        ]

    def close(self) -> None:
        """Stop logging (unsubscribe from the bus)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def on_order(self, m: OrderEvent) -> None:
        """One line per status an order reaches."""
        cid = m.client_order_id
        if self._status.get(cid) is m.status:
            return
        self._status[cid] = m.status
        self._status.move_to_end(cid)
        if len(self._status) > self._max_orders:
            self._status.popitem(last=False)
        event, level = _ORDER_LINES.get(m.status, ("order_status", "debug"))
        if level == "debug" and not obs_logging.enabled("debug"):
            return  # ACCEPTED, FILLED ...: two per order, dropped at info; not built (~6 µs each)
        fields: dict[str, object] = {
            "instrument": str(m.instrument_id), "side": m.side.value, "qty": str(m.quantity),
            "price": None if m.price is None else str(m.price), "order_type": m.order_type.value,
            "client_order_id": cid, "strategy": m.strategy_id,
        }
        if event == "order_status":
            fields["status"] = m.status.value
        if m.status is not OrderStatus.NEW:
            fields["filled_qty"] = str(m.filled_qty)
        if m.reason:
            fields["reason"] = m.reason
        getattr(log, level)(event, **fields)

    def on_fill(self, m: Fill) -> None:
        """One line per fill."""
        log.info("order_filled", instrument=str(m.instrument_id), side=m.side.value, qty=str(m.qty),
                 price=str(m.price), fee=str(m.fee), fee_asset=m.fee_asset, liquidity=m.liquidity.value,
                 client_order_id=m.client_order_id, trade_id=m.trade_id)

    def on_target(self, m: TargetPosition) -> None:
        """One line per change of a strategy's target for an instrument."""
        key = (m.strategy_id, m.instrument_id)
        previous = self._targets.get(key)
        if previous == m.target_qty:
            return
        self._targets[key] = m.target_qty
        log.info("target_changed", instrument=str(m.instrument_id), strategy=m.strategy_id,
                 target_qty=str(m.target_qty), previous_qty=None if previous is None else str(previous),
                 reason=m.reason)
