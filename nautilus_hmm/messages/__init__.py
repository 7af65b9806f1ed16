"""Bus message types: frozen, slotted dataclasses; no logic.

Every message carries `ts_event_ns` (when it happened, venue time where known) and
`ts_init_ns` (when this process created the object). Events are named in the past tense,
commands in the imperative. A class with `critical = True` is never dropped by a bounded
queue subscriber: the subscriber is disconnected instead (see core.bus). The base class,
the `@message` decorator and the supervisor's ComponentStateChanged are in core.message
(the bus and the supervisor use them; core imports nothing above it) and re-exported here.

Market data prices are floats (they feed decisions and the model); anything that touches
an order or a fill is Decimal.
"""

from __future__ import annotations

from dataclasses import field
from decimal import Decimal
from typing import Any, ClassVar

from nautilus_hmm.core.message import ComponentStateChanged as ComponentStateChanged
from nautilus_hmm.core.message import Message, message
from nautilus_hmm.domain.enums import (
    BreakerState,
    DataQuality,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingState,
)
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import VenueFill, VenueOrder

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
class MarketDataQualityChanged(Message):
    """An instrument's market data changed quality (`DataQuality`: live, delayed, frozen,
    none), e.g. IB fell back to its 15-minute delayed data for want of a subscription.
    Venues whose data is always live never publish it. Strategies read the latest through
    `StrategyContext.data_quality` (docs/IBKR.md, "Delayed data")."""

    critical: ClassVar[bool] = True
    venue: str
    instrument_id: InstrumentId
    quality: DataQuality
    previous: DataQuality | None
    detail: str


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
class StrategyTarget(Message):
    """Strategy command to the strategy router: what one strategy (one lane of it) wants held.

    Either `exposure` (signed fraction of the lane's capital: 1.0 = long its whole
    capital) or `target_qty` (signed base units, fixed-size strategies) is set. `lane` is
    "production" for a strategy's own target; "canary" for the target of a strategy's canary
    model, which the router weighs by the strategy's canary share (0 = shadow, never traded).
    """

    critical: ClassVar[bool] = True
    strategy_id: str
    instrument_id: InstrumentId
    exposure: float | None = None
    target_qty: Decimal | None = None
    reason: str = ""
    lane: str = "production"
    # The strategy's expected gain, in bps of the notional it adds, over its holding horizon;
    # None = not stated. With a slippage model the router trims a move whose round-trip cost
    # (fees + predicted slippage) exceeds it (control/router.py, "cost check").
    edge_bps: float | None = None


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


@message
class UserStreamGap(Message):
    """A venue's user-data stream (re)connected: its order and fill events since `since_ns`
    (venue time) may have been missed. The reconciler re-reads that venue once; the
    adapter reads nothing itself."""

    critical: ClassVar[bool] = True
    venue: str
    since_ns: int
    reason: str


@message
class ExecutionCorrected(Message):
    """A venue corrected an execution it had reported, with other values (IB: the same execId
    with a higher revision suffix, `....01.02` for `....01.01`, and a different quantity,
    price or side). The first report stays booked and the correction is never booked as a
    second fill; the reconciler makes it a finding of the venue and halts trading until an
    operator has checked the account and resumes. A correction with the same values is no
    event (the adapter logs and counts it)."""

    critical: ClassVar[bool] = True
    venue: str
    instrument_id: InstrumentId
    client_order_id: str
    original_trade_id: str
    correction_trade_id: str
    detail: str


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
    """A reload was rejected: invalid file, restart-only fields changed, or applying failed."""

    critical: ClassVar[bool] = True
    errors: tuple[str, ...]
    restart_required: tuple[str, ...]
    source: str
    result: str = "invalid"  # invalid | restart_required | failed


@message
class AdminAction(Message):
    """Audit record of an admin request."""

    critical: ClassVar[bool] = True
    action: str
    remote: str
    params: dict[str, Any] = field(default_factory=dict)
    result: str = "ok"


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
    shadow: bool = False  # the canary model's decision (its lane trades the strategy's canary_share)
    # Out-of-sample predictive log-likelihood per base bar of this lane's model for the bar
    # that closed (None when not ready, or for a timer decision): governance compares lanes on it.
    log_likelihood: float | None = None
    strategy_id: str | None = None  # the HMM strategy that decided (several may run); None: not said


@message
class ModelChanged(Message):
    """A model tag moved (promote, rollback, canary) or a training finished."""

    critical: ClassVar[bool] = True
    model_id: str
    event: str
    detail: str = ""


# ---------------------------------------------------------------- control plane


@message
class RouterDenied(Message):
    """The strategy router clipped a strategy's target to its quota (or refused it)."""

    critical: ClassVar[bool] = True
    strategy_id: str
    instrument_id: InstrumentId
    requested_qty: Decimal
    allowed_qty: Decimal
    reason: str
    detail: str = ""


@message
class FillAttributed(Message):
    """A share of a real fill (kind "fill") or an internal cross between two strategies at the
    mark (kind "cross") booked to one strategy's virtual account. `qty` is signed (+ buy)."""

    critical: ClassVar[bool] = True
    strategy_id: str
    instrument_id: InstrumentId
    qty: Decimal
    price: Decimal
    fee: Decimal
    kind: str
    trade_id: str = ""
    client_order_id: str = ""


@message
class StrategyStateChanged(Message):
    """A strategy became active, reduce-only or disabled (admin, reload or governance)."""

    critical: ClassVar[bool] = True
    strategy_id: str
    old: str
    new: str
    reason: str
    source: str


@message
class AllocationChanged(Message):
    """The capital allocator's shares changed (a rebalance, an override, its expiry, a restore).
    `inputs` holds the evidence the rebalance used (JSON-ready)."""

    critical: ClassVar[bool] = True
    shares: dict[str, float]
    source: str
    inputs: dict[str, Any] = field(default_factory=dict)


@message
class GovernanceDecision(Message):
    """A governance rule decided something; `acted` is False in dry-run mode."""

    critical: ClassVar[bool] = True
    rule: str
    strategy_id: str
    action: str
    acted: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
