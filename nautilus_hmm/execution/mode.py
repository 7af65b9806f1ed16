"""Monitor-only mode: the node connects, streams, reconciles and serves its API, and never
sends an order or a cancel.

`[node] mode = "monitor"` (restart-only). The one gate is the engine's door to the venues
(`ExecutionEngine`): a plan that would become an order is *withheld* before a client order
id is minted and before an intent is journaled, and a cancel is refused before the order
leaves its state. The journal therefore stays honest: it holds no intent for an order that
was never meant to leave, no REJECTED row per bar, and the id sequence is untouched (a later
`mode = "trade"` start mints the next id as if the monitor never ran). The strategies and
the router still run: their targets and the orders the engine would have sent are visible
in /status (`monitor`), in /strategies, and counted in `monitor_withheld_total{action}`.

Reconciliation never cancels a foreign open order in monitor mode: it tracks it (as with
`[execution] unknown_orders = "adopt"`), since a monitor usually watches an account someone
else trades. Admin acts that would send or cancel orders (kill with `flatten` or
`cancel_orders`) answer 409 with `OrderEntryDisabled.body()`; a plain kill, reduce or resume
only moves the trading state and is allowed (it shows what the trading node would do).

Pure: no asyncio, no I/O besides one log line per changed withheld plan.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog

from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId

log = structlog.get_logger("execution")

TRADE = "trade"
MONITOR = "monitor"
MODES = (TRADE, MONITOR)
HOW_TO_TRADE = 'set [node] mode = "trade" in the config file and restart the daemon (mode is restart-only)'
MAX_WITHHELD_VIEWS = 200  # (strategy, instrument) pairs kept for /status


class OrderEntryDisabled(RuntimeError):
    """A request to send or cancel orders on a node in monitor mode (the admin API answers 409)."""

    def __init__(self, action: str) -> None:
        super().__init__(f"{action} refused: the node is in monitor mode and never sends or cancels orders")
        self.action = action

    def body(self) -> dict[str, Any]:
        """The JSON error an admin request gets."""
        return {"error": str(self), "mode": MONITOR, "action": self.action, "hint": HOW_TO_TRADE}


@dataclass(slots=True)
class WithheldOrder:
    """The latest order a monitor-mode engine would have sent for one (strategy, instrument)."""

    strategy_id: str
    instrument_id: InstrumentId
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    reason: str
    first_ns: int
    last_ns: int
    times: int = 1

    def view(self) -> dict[str, Any]:
        """A JSON-ready row for /status."""
        return {"strategy_id": self.strategy_id, "instrument": str(self.instrument_id), "side": self.side.value,
                "order_type": self.order_type.value, "quantity": str(self.quantity),
                "price": None if self.price is None else str(self.price), "reason": self.reason,
                "first_ns": self.first_ns, "last_ns": self.last_ns, "times": self.times}


class OrderGate:
    """The engine's order-entry switch: `trade` lets orders and cancels out, `monitor` keeps
    them in (withheld, counted, visible)."""

    __slots__ = ("counts", "mode", "withheld")

    def __init__(self, mode: str = TRADE) -> None:
        if mode not in MODES:
            raise ValueError(f"mode = {mode!r}: must be one of {', '.join(MODES)}")
        self.mode = mode
        self.withheld: dict[tuple[str, InstrumentId], WithheldOrder] = {}
        self.counts: Counter[str] = Counter({"submit": 0, "cancel": 0})

    @property
    def monitor(self) -> bool:
        """True when nothing may be sent to a venue's order entry."""
        return self.mode == MONITOR

    def withhold(self, strategy_id: str, iid: InstrumentId, side: Side, order_type: OrderType, qty: Decimal,
                 price: Decimal | None, reason: str, now_ns: int) -> None:
        """Record an order that was not created (monitor mode). One log line when the plan of
        this (strategy, instrument) changed, none for the same plan stated again each bar."""
        self.counts["submit"] += 1
        key = (strategy_id, iid)
        w = self.withheld.get(key)
        if w is not None and w.side is side and w.quantity == qty and w.order_type is order_type:
            w.times += 1
            w.last_ns = now_ns
            w.price = price
            return
        self.withheld.pop(key, None)  # re-inserted last: the newest change is at the end
        self.withheld[key] = WithheldOrder(strategy_id, iid, side, order_type, qty, price, reason, now_ns, now_ns)
        while len(self.withheld) > MAX_WITHHELD_VIEWS:
            del self.withheld[next(iter(self.withheld))]
        log.info("order_withheld_monitor_mode", strategy=strategy_id, instrument=str(iid), side=side.value,
                 qty=str(qty), order_type=order_type.value, reason=reason)

    def refuse_cancel(self, client_order_id: str, reason: str) -> None:
        """Record a cancel that was not sent (monitor mode)."""
        self.counts["cancel"] += 1
        log.warning("cancel_refused_monitor_mode", client_order_id=client_order_id, reason=reason,
                    hint=HOW_TO_TRADE)

    def forget(self, strategy_id: str, iid: InstrumentId) -> None:
        """The target of (strategy, instrument) is met: nothing would be sent for it now."""
        self.withheld.pop((strategy_id, iid), None)

    def status(self) -> dict[str, Any]:
        """The /status `monitor` section."""
        return {"mode": self.mode, "withheld_orders": dict(self.counts),
                "would_send": [w.view() for w in self.withheld.values()]}
