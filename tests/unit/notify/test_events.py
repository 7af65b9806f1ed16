"""Which bus messages become notices, and what they say."""

from __future__ import annotations

from decimal import Decimal

from nautilus_hmm.domain.enums import BreakerState, OrderStatus, OrderType, Side, TradingState
from nautilus_hmm.messages import (
    BreakerStateChanged,
    ComponentStateChanged,
    GovernanceDecision,
    JournalGapDetected,
    ModelChanged,
    OrderEvent,
    ReconciliationCompleted,
    TradingStateChanged,
)
from nautilus_hmm.notify.config import EVENT_CLASSES
from nautilus_hmm.notify.events import (
    MESSAGE_TYPES,
    TradingSummary,
    describe,
    summary_from_pnl_view,
    summary_notice,
)

from .helpers import BTC, denial, fill

T = {"ts_event_ns": 0, "ts_init_ns": 0}


def order(status: OrderStatus) -> OrderEvent:
    return OrderEvent(**T, client_order_id="nh-1", instrument_id=BTC, strategy_id="hmm", side=Side.SELL,
                      order_type=OrderType.MARKET, status=status, quantity=Decimal("2"), filled_qty=Decimal(0),
                      avg_px=None, price=None, reason="-2010 insufficient balance")


def test_every_event_class_is_documented_and_mapped() -> None:
    assert set(MESSAGE_TYPES) == set(EVENT_CLASSES)


def test_a_fill_says_side_quantity_price_and_fee() -> None:
    n = describe(fill())
    assert n is not None and n.event_class == "fills"
    assert n.body == "BUY 0.01 sim:BTCUSDT @ 50000.5, fee 0.1 USDT (taker, order nh-1)"


def test_only_a_rejected_order_is_a_notice() -> None:
    assert describe(order(OrderStatus.ACCEPTED)) is None
    n = describe(order(OrderStatus.REJECTED))
    assert n is not None and n.event_class == "order_rejects" and "-2010 insufficient balance" in n.body


def test_a_denial_names_the_reason() -> None:
    n = describe(denial())
    assert n is not None and n.body == "BUY 1.5 sim:BTCUSDT (strategy hmm): max_order_notional - order 1 too big"


def test_a_breaker_trip_is_a_failure() -> None:
    n = describe(BreakerStateChanged(**T, venue="binance", old=BreakerState.CLOSED, new=BreakerState.OPEN,
                                     reason="5 errors"))
    assert n is not None and n.severity == "failure" and n.event_class == "breaker_trips"


def test_trading_state_changes_say_who_and_why() -> None:
    n = describe(TradingStateChanged(**T, old=TradingState.ACTIVE, new=TradingState.HALTED, reason="kill",
                                     source="admin"))
    assert n is not None and n.body == "trading ACTIVE -> HALTED by admin: kill"


def test_only_a_reconciliation_with_discrepancies_is_a_notice() -> None:
    assert describe(ReconciliationCompleted(**T, venue="sim", ok=True, discrepancies=())) is None
    n = describe(ReconciliationCompleted(**T, venue="sim", ok=False, discrepancies=("a", "b", "c", "d")))
    assert n is not None and n.body == "venue sim: 4 discrepancies: a; b; c (+1 more)"
    n = describe(JournalGapDetected(**T, venue="sim", client_order_ids=("nh-1",), fills=2, detail="adopted"))
    assert n is not None and n.event_class == "reconciliation"


def test_model_promotion_and_rollback_are_notices_a_canary_tag_is_not() -> None:
    assert describe(ModelChanged(**T, model_id="m2", event="canary")) is None
    for event in ("promoted", "rollback", "training_failed"):
        n = describe(ModelChanged(**T, model_id="m2", event=event))
        assert n is not None and n.event_class == "models"


def test_a_governance_dry_run_says_it_did_not_act() -> None:
    n = describe(GovernanceDecision(**T, rule="drawdown", strategy_id="sma", action="disable", acted=False,
                                    reason="dd 12% > 10%"))
    assert n is not None and "dry run" in n.body


def test_a_component_that_gave_up_is_a_daemon_notice_a_restart_is_not() -> None:
    assert describe(ComponentStateChanged(**T, component="binance", state="restarted")) is None
    n = describe(ComponentStateChanged(**T, component="binance", state="gave_up", detail="boom"))
    assert n is not None and n.event_class == "daemon"


def test_the_daily_summary_reports_the_day_as_the_difference_to_the_previous_one() -> None:
    prev = TradingSummary("USDT", Decimal(10_000), Decimal(50), Decimal(2), 10, Decimal("1.0"))
    now = TradingSummary("USDT", Decimal(10_120), Decimal(170), Decimal("3.5"), 25, Decimal("0.5"))
    n = summary_notice("node1", "2026-12-03", now, prev)
    assert n.body == ("2026-12-03: PnL +120.00 USDT, fees 1.50 USDT, 15 trades (since the previous summary); "
                      "equity 10120.00 USDT, drawdown 0.50%")


def test_the_summary_port_reads_the_engines_pnl_view() -> None:
    view = {"currency": "USDT", "equity": "10100.00", "realized_pnl": "80.00", "unrealized_pnl": "20.00",
            "fees": "3.50", "drawdown_pct": "0.2500"}
    s = summary_from_pnl_view(view, 7)
    assert (s.pnl, s.fees, s.trades, s.drawdown_pct) == (Decimal(100), Decimal("3.5"), 7, Decimal("0.25"))
