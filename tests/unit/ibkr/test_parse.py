"""ib_async's Trade / Execution / CommissionReport → VenueOrder / VenueFill (real ib_async objects)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from ib_async import CommissionReport, Contract, Execution, Order, OrderStatus, Trade, TradeLogEntry

from nautilus_hmm.core.errors import ParseError
from nautilus_hmm.domain.enums import Liquidity, OrderType, Side
from nautilus_hmm.domain.enums import OrderStatus as St
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.ibkr.parse import (
    UNSET_DOUBLE,
    commission_of,
    execution_to_fill,
    trade_to_order,
)

AAPL = InstrumentId("ibkr", "AAPL")
T0 = dt.datetime(2026, 12, 1, 15, 0, 1, 250000, tzinfo=dt.UTC)


def trade(status: str, filled: float = 0.0, *, order_type: str = "LMT", qty: float = 10.0,
          log: list[TradeLogEntry] | None = None) -> Trade:
    order = Order(orderId=12, action="BUY", totalQuantity=qty, orderType=order_type, lmtPrice=230.5, orderRef="c-1")
    st = OrderStatus(orderId=12, status=status, filled=filled, remaining=qty - filled,
                     avgFillPrice=230.25 if filled else 0.0)
    return Trade(Contract(conId=265598), order, st, [], log or [])


@pytest.mark.parametrize(("ib", "filled", "ours"), [
    ("PendingSubmit", 0, St.SUBMITTED), ("PreSubmitted", 0, St.ACCEPTED), ("Submitted", 0, St.ACCEPTED),
    ("Submitted", 4, St.PARTIALLY_FILLED), ("PendingCancel", 0, St.PENDING_CANCEL), ("Cancelled", 0, St.CANCELED),
    ("ApiCancelled", 0, St.CANCELED), ("Filled", 10, St.FILLED), ("Inactive", 0, St.REJECTED),
    ("Inactive", 3, St.CANCELED), ("ValidationError", 0, St.ACCEPTED),
])
def test_order_statuses_map(ib: str, filled: float, ours: St) -> None:
    vo = trade_to_order(trade(ib, filled), AAPL, 5)
    assert vo.status is ours
    assert vo.client_order_id == "c-1" and vo.venue_order_id == "12" and vo.price == Decimal("230.5")
    assert vo.filled_qty == Decimal(repr(float(filled))) if filled else vo.filled_qty == 0


def test_a_201_in_the_trade_log_makes_a_cancelled_order_rejected_with_ibs_text() -> None:
    entry = TradeLogEntry(T0, "Cancelled", "Error 201, reqId 12: Order rejected - reason:margin", 201)
    vo = trade_to_order(trade("Cancelled", log=[entry]), AAPL, 5)
    assert vo.status is St.REJECTED and "201" in vo.reason and "margin" in vo.reason


def test_a_plain_202_cancel_stays_cancelled() -> None:
    entry = TradeLogEntry(T0, "Cancelled", "Error 202, reqId 12: Order Canceled", 202)
    assert trade_to_order(trade("Cancelled", log=[entry]), AAPL, 5).status is St.CANCELED


def test_market_order_has_no_price_and_average_when_filled() -> None:
    vo = trade_to_order(trade("Filled", 10, order_type="MKT"), AAPL, 5)
    assert vo.order_type is OrderType.MARKET and vo.price is None and vo.avg_px == Decimal("230.25")


@pytest.mark.parametrize(("attr", "value", "fragment"), [
    ("status", "Bogus", "unknown order status"),
    ("action", "HOLD", "order.action"),
    ("orderType", "STP", "order.orderType"),
    ("totalQuantity", float("nan"), "order.totalQuantity"),
    ("totalQuantity", UNSET_DOUBLE, "order.totalQuantity"),
])
def test_unreadable_orders_raise_parse_errors_naming_the_field(attr: str, value: object, fragment: str) -> None:
    t = trade("Submitted")
    setattr(t.orderStatus if attr == "status" else t.order, attr, value)
    with pytest.raises(ParseError, match=fragment):
        trade_to_order(t, AAPL, 5)


def execution(**kw: object) -> Execution:
    base = {"execId": "0000e0d5.01.01", "time": T0, "side": "BOT", "shares": 10.0, "price": 230.93,
            "orderId": 12, "permId": 99, "orderRef": "c-1", "lastLiquidity": 2}
    base.update(kw)
    return Execution(**base)  # type: ignore[arg-type]


def test_execution_becomes_a_fill_with_its_commission() -> None:
    fee = commission_of(CommissionReport(execId="0000e0d5.01.01", commission=1.0, currency="USD"))
    vf = execution_to_fill(execution(), AAPL, fee, "USD")
    assert (vf.trade_id, vf.side, vf.qty, vf.price) == ("0000e0d5.01.01", Side.BUY, Decimal("10.0"),
                                                        Decimal("230.93"))
    assert vf.fee == Decimal("1.0") and vf.fee_asset == "USD" and vf.liquidity is Liquidity.TAKER
    assert vf.ts_ns == 1_796_137_201_250_000_000 and vf.client_order_id == "c-1"


def test_maker_liquidity_and_sells() -> None:
    vf = execution_to_fill(execution(side="SLD", lastLiquidity=1), AAPL, None, "USD")
    assert vf.side is Side.SELL and vf.liquidity is Liquidity.MAKER and vf.fee == 0


def test_a_commission_not_yet_sent_or_unset_is_unknown() -> None:
    assert commission_of(CommissionReport()) is None
    assert commission_of(CommissionReport(execId="x", commission=UNSET_DOUBLE)) is None


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"side": "X"}, "execution.side"), ({"execId": ""}, "execId is empty"), ({"shares": 0.0}, "must be > 0"),
    ({"price": float("inf")}, "execution.price"), ({"time": dt.datetime(2026, 1, 1)}, "no time zone"),
])
def test_bad_executions_raise_parse_errors(kw: dict, fragment: str) -> None:
    with pytest.raises(ParseError, match=fragment):
        execution_to_fill(execution(**kw), AAPL, None, "USD")
