"""Bus message types: frozen, slotted dataclasses; no logic.

Every message carries `ts_event_ns` (when it happened, venue time where known) and
`ts_init_ns` (when this process created the object). Events are named in the past tense,
commands in the imperative. A class with `critical = True` is never dropped by a bounded
queue subscriber: the subscriber is disconnected instead (see core.bus).

Market data prices are floats (they feed decisions and the model); anything that touches
an order or a fill is Decimal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, dataclass_transform

from nautilus_hmm.domain.enums import (
    BreakerState,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingState,
)
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import VenueFill, VenueOrder


@dataclass_transform(frozen_default=True, kw_only_default=True)
def message(cls: type) -> type:
    """Decorator for bus message classes (frozen, slotted, keyword-only dataclasses).

    The generated `__init__` of a frozen dataclass assigns each field through
    `object.__setattr__`; market-data messages are built per tick, so it is replaced
    by one that calls the slots' descriptors directly (about half the cost). Equality,
    repr, hashing and the frozen `__setattr__` are the dataclass's own.
    """
    klass = dataclass(frozen=True, slots=True, kw_only=True)(cls)
    klass.__init__ = _fast_init(klass)  # type: ignore[misc]
    return klass


def _fast_init(klass: type) -> Any:
    fields = dataclasses.fields(klass)
    env: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    params, body = [], []
    for i, f in enumerate(fields):
        env[f"_set{i}"] = getattr(klass, f.name).__set__
        if f.default is not dataclasses.MISSING:
            env[f"_default{i}"] = f.default
            params.append(f"{f.name}=_default{i}")
            body.append(f"    _set{i}(self, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"_factory{i}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    _set{i}(self, _factory{i}() if {f.name} is _MISSING else {f.name})")
        else:
            params.append(f.name)
            body.append(f"    _set{i}(self, {f.name})")
    src = "def __init__(self, *, " + ", ".join(params) + "):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(src, env)  # noqa: S102 - generated from the class's own field list
    init = env["__init__"]
    init.__qualname__ = f"{klass.__qualname__}.__init__"
    init.__doc__ = f"Build a {klass.__name__}."
    return init


@message
class Message:
    """Base of every bus message."""

    critical: ClassVar[bool] = False
    ts_event_ns: int
    ts_init_ns: int


# ---------------------------------------------------------------- market data


@message
class TradeTick(Message):
    """A public trade. `aggressor` is the taker's side (None if the venue does not say)."""

    instrument_id: InstrumentId
    price: float
    size: float
    aggressor: Side | None
    trade_id: str


@message
class InstrumentsUpdated(Message):
    """A venue re-read its instruments (filters, tradable status) and something changed."""

    critical: ClassVar[bool] = True
    venue: str
    instruments: tuple[Instrument, ...]


@message
class QuoteTick(Message):
    """Best bid/ask."""

    instrument_id: InstrumentId
    bid: float
    bid_size: float
    ask: float
    ask_size: float


@message
class Bar(Message):
    """A closed OHLCV bar. `ts_event_ns` is the bar's open time; it covers `interval_s`."""

    instrument_id: InstrumentId
    interval_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@message
class BookValidityChanged(Message):
    """A local order book became valid (synced) or invalid (gap, resyncing)."""

    instrument_id: InstrumentId
    valid: bool
    reason: str


@message
class MarkPrice(Message):
    """Venue mark price (perpetuals)."""

    instrument_id: InstrumentId
    price: float


# ---------------------------------------------------------------- strategy → engine


@message
class TargetPosition(Message):
    """Strategy command: hold `target_qty` base units of `instrument_id` (signed)."""

    critical: ClassVar[bool] = True
    strategy_id: str
    instrument_id: InstrumentId
    target_qty: Decimal
    reason: str = ""


@message
class SubmitOrder(Message):
    """Command: place one order. `client_order_id` is filled in by the engine."""

    critical: ClassVar[bool] = True
    strategy_id: str
    instrument_id: InstrumentId
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    reason: str = ""


@message
class CancelOrder(Message):
    """Command: cancel one order by client order id."""

    critical: ClassVar[bool] = True
    client_order_id: str
    reason: str = ""


# ---------------------------------------------------------------- venue → engine reports


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


# ---------------------------------------------------------------- execution events


@message
class OrderEvent(Message):
    """An order changed state. Carries the full snapshot after the change."""

    critical: ClassVar[bool] = True
    client_order_id: str
    instrument_id: InstrumentId
    strategy_id: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_qty: Decimal
    avg_px: Decimal | None
    price: Decimal | None
    venue_order_id: str | None = None
    reason: str = ""


@message
class Fill(Message):
    """An execution. Unique by (venue, trade_id): a replayed fill is ignored."""

    critical: ClassVar[bool] = True
    instrument_id: InstrumentId
    client_order_id: str
    venue_order_id: str | None
    trade_id: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity


@message
class PositionChanged(Message):
    """A position after a fill (quantities in base units, PnL in quote)."""

    critical: ClassVar[bool] = True
    instrument_id: InstrumentId
    qty: Decimal
    avg_px: Decimal
    realized_pnl: Decimal
    fees: Decimal


@message
class BalanceUpdate(Message):
    """Venue-reported balance of one asset."""

    critical: ClassVar[bool] = True
    venue: str
    asset: str
    free: Decimal
    locked: Decimal


# ---------------------------------------------------------------- risk


@message
class RiskDenied(Message):
    """The risk gate denied an order. `reason` is a stable code (metric label)."""

    critical: ClassVar[bool] = True
    instrument_id: InstrumentId
    strategy_id: str
    side: Side
    quantity: Decimal
    reason: str
    detail: str


@message
class TradingStateChanged(Message):
    """Trading state moved (ACTIVE / REDUCING / HALTED), with who and why."""

    critical: ClassVar[bool] = True
    old: TradingState
    new: TradingState
    reason: str
    source: str


@message
class VenueTradingStateChanged(Message):
    """One venue's own trading state moved (its instruments only; the global state is apart)."""

    critical: ClassVar[bool] = True
    venue: str
    old: TradingState
    new: TradingState
    reason: str
    source: str


@message
class BreakerStateChanged(Message):
    """A venue's error circuit breaker moved."""

    critical: ClassVar[bool] = True
    venue: str
    old: BreakerState
    new: BreakerState
    reason: str


# ---------------------------------------------------------------- control plane


@message
class ConfigApplied(Message):
    """A reload was applied. `changed` lists the dotted paths that changed."""

    critical: ClassVar[bool] = True
    config_hash: str
    changed: tuple[str, ...]
    source: str


@message
class ConfigRejected(Message):
    """A reload was rejected: invalid file, or restart-only fields changed."""

    critical: ClassVar[bool] = True
    errors: tuple[str, ...]
    restart_required: tuple[str, ...]
    source: str


@message
class AdminAction(Message):
    """Audit record of an admin request."""

    critical: ClassVar[bool] = True
    action: str
    remote: str
    params: dict[str, Any] = field(default_factory=dict)
    result: str = "ok"


@message
class ComponentStateChanged(Message):
    """A supervised component started, crashed, restarted, gave up or stopped."""

    critical: ClassVar[bool] = True
    component: str
    state: str
    detail: str = ""


@message
class ReconciliationCompleted(Message):
    """Result of comparing our books with a venue's."""

    critical: ClassVar[bool] = True
    venue: str
    ok: bool
    discrepancies: tuple[str, ...]


@message
class JournalGapDetected(Message):
    """Orders or fills carrying our client order ids were found at a venue but not in the
    journal (its newest rows were lost): they were adopted into the journal, the sequence
    moved past them, and trading stays halted until an operator resumes."""

    critical: ClassVar[bool] = True
    venue: str
    client_order_ids: tuple[str, ...]
    fills: int
    detail: str


# ---------------------------------------------------------------- regime policy


@message
class RegimeUpdate(Message):
    """Filtered regime posteriors for one HMM of a model, after a bar."""

    instrument_id: InstrumentId
    model_id: str
    level: str  # "macro" or "micro"
    posteriors: tuple[float, ...]
    state: int


@message
class PolicyDecision(Message):
    """What the policy decided and which guardrail (if any) acted."""

    instrument_id: InstrumentId
    model_id: str
    action: str
    reason: str
    target_exposure: float
    shadow: bool = False


@message
class ModelChanged(Message):
    """A model tag moved (promote, rollback, canary) or a training finished."""

    critical: ClassVar[bool] = True
    model_id: str
    event: str
    detail: str = ""
