"""[execution] — order routing and reconciliation."""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import setting


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    """How target positions become orders, and how books are reconciled."""

    order_type: str = setting("MARKET", live=True, choices=("MARKET", "LIMIT", "LIMIT_MAKER"), doc="order type for target-position deltas")
    limit_offset_bps: float = setting(5.0, live=True, ge=0, doc="LIMIT orders: price this far inside the touch/mark")
    reconcile_interval_s: float = setting(60.0, live=True, ge=1, le=86_400, doc="periodic reconciliation while live")
    unknown_orders: str = setting("cancel", live=True, choices=("cancel", "adopt"), doc="open venue orders we did not send")
    order_timeout_s: float = setting(10.0, live=True, ge=0.1, le=3600, doc="unacknowledged order is queried after this")
