"""Bus messages -> notices: which event class a message belongs to and what it says (pure).

A message that is not worth a notification (a clean reconciliation, an accepted order,
a component that merely restarted) maps to None. Texts are one line, name the
instrument/venue/strategy and the reason, and never hold a secret (the messages carry
none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nautilus_hmm.domain.enums import BreakerState, OrderStatus, TradingState
from nautilus_hmm.messages import (
    BreakerStateChanged,
    ComponentStateChanged,
    Fill,
    GovernanceDecision,
    JournalGapDetected,
    Message,
    ModelChanged,
    OrderEvent,
    ReconciliationCompleted,
    RiskDenied,
    TradingStateChanged,
    VenueTradingStateChanged,
)

INFO = "info"
SUCCESS = "success"
WARNING = "warning"
FAILURE = "failure"

# Plural nouns of each class, for coalesced messages ("1000 risk denials in 60 s").
PLURALS: dict[str, str] = {
    "fills": "fills",
    "order_rejects": "order rejects",
    "risk_denials": "risk denials",
    "breaker_trips": "breaker changes",
    "trading_state": "trading-state changes",
    "reconciliation": "reconciliation mismatches",
    "models": "model events",
    "governance": "governance decisions",
    "daemon": "daemon events",
    "daily_summary": "daily summaries",
}

# Model events worth telling an operator (ModelChanged.event); the rest (canary tagged ...) are not.
MODEL_EVENTS = frozenset({"promoted", "promote", "rollback", "rolled_back", "trained", "training_failed"})


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification before routing: its event class, a title, a one-line body, a severity."""

    event_class: str
    title: str
    body: str
    severity: str = INFO


def _qty(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


def _fill(m: Fill) -> Notice:
    fee = f", fee {_qty(m.fee)} {m.fee_asset}" if m.fee else ""
    return Notice("fills", f"Fill {m.instrument_id}",
                  f"{m.side.value} {_qty(m.qty)} {m.instrument_id} @ {_qty(m.price)}{fee} "
                  f"({m.liquidity.value.lower()}, order {m.client_order_id})", SUCCESS)


def _order(m: OrderEvent) -> Notice | None:
    if m.status is not OrderStatus.REJECTED:
        return None
    return Notice("order_rejects", f"Order rejected {m.instrument_id}",
                  f"{m.side.value} {_qty(m.quantity)} {m.instrument_id} (order {m.client_order_id}, "
                  f"strategy {m.strategy_id}) rejected: {m.reason or 'no reason given'}", WARNING)


def _denied(m: RiskDenied) -> Notice:
    return Notice("risk_denials", f"Risk denied {m.instrument_id}",
                  f"{m.side.value} {_qty(m.quantity)} {m.instrument_id} (strategy {m.strategy_id}): "
                  f"{m.reason}{' - ' + m.detail if m.detail else ''}", WARNING)


def _breaker(m: BreakerStateChanged) -> Notice:
    severity = FAILURE if m.new is BreakerState.OPEN else SUCCESS if m.new is BreakerState.CLOSED else WARNING
    return Notice("breaker_trips", f"Breaker {m.venue} {m.new.value}",
                  f"venue {m.venue}: error breaker {m.old.value} -> {m.new.value}: {m.reason}", severity)


def _state_severity(new: TradingState) -> str:
    return {TradingState.ACTIVE: SUCCESS, TradingState.REDUCING: WARNING}.get(new, FAILURE)


def _trading(m: TradingStateChanged) -> Notice:
    return Notice("trading_state", f"Trading {m.new.value}",
                  f"trading {m.old.value} -> {m.new.value} by {m.source}: {m.reason}", _state_severity(m.new))


def _venue_trading(m: VenueTradingStateChanged) -> Notice:
    return Notice("trading_state", f"Trading {m.venue} {m.new.value}",
                  f"venue {m.venue}: trading {m.old.value} -> {m.new.value} by {m.source}: {m.reason}",
                  _state_severity(m.new))


def _reconciled(m: ReconciliationCompleted) -> Notice | None:
    if m.ok and not m.discrepancies:
        return None
    shown = "; ".join(m.discrepancies[:3]) or "not ok"
    more = f" (+{len(m.discrepancies) - 3} more)" if len(m.discrepancies) > 3 else ""
    return Notice("reconciliation", f"Reconciliation mismatch {m.venue}",
                  f"venue {m.venue}: {len(m.discrepancies)} discrepancies: {shown}{more}", FAILURE)


def _gap(m: JournalGapDetected) -> Notice:
    return Notice("reconciliation", f"Journal gap {m.venue}",
                  f"venue {m.venue}: {len(m.client_order_ids)} orders and {m.fills} fills missing from the "
                  f"journal were adopted; trading stays halted until resumed: {m.detail}", FAILURE)


def _model(m: ModelChanged) -> Notice | None:
    if m.event not in MODEL_EVENTS:
        return None
    severity = FAILURE if m.event == "training_failed" else WARNING if "roll" in m.event else INFO
    return Notice("models", f"Model {m.event}",
                  f"model {m.model_id or '-'}: {m.event}{': ' + m.detail if m.detail else ''}", severity)


def _governance(m: GovernanceDecision) -> Notice:
    acted = "" if m.acted else " (dry run: not acted on)"
    return Notice("governance", f"Governance {m.action} {m.strategy_id}",
                  f"rule {m.rule}: {m.action} strategy {m.strategy_id}{acted}: {m.reason}", WARNING)


def _component(m: ComponentStateChanged) -> Notice | None:
    if m.state != "gave_up":
        return None
    return Notice("daemon", f"Component {m.component} gave up",
                  f"component {m.component} gave up after its restart budget: {m.detail}", FAILURE)


_DESCRIBE: dict[type, Callable[[Any], Notice | None]] = {
    Fill: _fill,
    OrderEvent: _order,
    RiskDenied: _denied,
    BreakerStateChanged: _breaker,
    TradingStateChanged: _trading,
    VenueTradingStateChanged: _venue_trading,
    ReconciliationCompleted: _reconciled,
    JournalGapDetected: _gap,
    ModelChanged: _model,
    GovernanceDecision: _governance,
    ComponentStateChanged: _component,
}

# Event class -> the message types it is built from (the notifier subscribes only to those routed).
MESSAGE_TYPES: dict[str, tuple[type[Message], ...]] = {
    "fills": (Fill,),
    "order_rejects": (OrderEvent,),
    "risk_denials": (RiskDenied,),
    "breaker_trips": (BreakerStateChanged,),
    "trading_state": (TradingStateChanged, VenueTradingStateChanged),
    "reconciliation": (ReconciliationCompleted, JournalGapDetected),
    "models": (ModelChanged,),
    "governance": (GovernanceDecision,),
    "daemon": (ComponentStateChanged,),
    "daily_summary": (),
}


def describe(msg: Message) -> Notice | None:
    """The notice for a bus message, or None when it is not worth one."""
    fn = _DESCRIBE.get(type(msg))
    return fn(msg) if fn is not None else None


def daemon_notice(node: str, what: str, detail: str = "") -> Notice:
    """A daemon start/stop notice (the notifier's own start and stop say them)."""
    severity = SUCCESS if what == "started" else WARNING
    return Notice("daemon", f"{node} {what}", f"daemon {node} {what}{': ' + detail if detail else ''}", severity)


@dataclass(frozen=True, slots=True)
class TradingSummary:
    """Cumulative figures the node reports for the daily summary (base currency)."""

    currency: str
    equity: Decimal
    pnl: Decimal  # realized + unrealized since the account's start
    fees: Decimal
    trades: int
    drawdown_pct: Decimal  # from the equity peak, now


def summary_notice(node: str, day: str, now: TradingSummary, previous: TradingSummary | None) -> Notice:
    """The daily summary: the day's PnL, fees and trades (deltas since the previous summary), drawdown."""
    base = previous or TradingSummary(now.currency, now.equity, Decimal(0), Decimal(0), 0, Decimal(0))
    since = "since the previous summary" if previous is not None else "since start"
    pnl = now.pnl - base.pnl
    body = (f"{day}: PnL {pnl:+.2f} {now.currency}, fees {now.fees - base.fees:.2f} {now.currency}, "
            f"{now.trades - base.trades} trades ({since}); equity {now.equity:.2f} {now.currency}, "
            f"drawdown {now.drawdown_pct:.2f}%")
    return Notice("daily_summary", f"{node} daily summary {day}", body, SUCCESS if pnl >= 0 else WARNING)


def summary_from_pnl_view(view: Mapping[str, Any], trades: int) -> TradingSummary:
    """A TradingSummary from the engine's pnl_view() (decimal strings) and its fill count."""
    return TradingSummary(
        currency=str(view["currency"]), equity=Decimal(view["equity"]),
        pnl=Decimal(view["realized_pnl"]) + Decimal(view["unrealized_pnl"]), fees=Decimal(view["fees"]),
        trades=trades, drawdown_pct=Decimal(view["drawdown_pct"]),
    )
