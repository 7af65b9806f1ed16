"""Order state machine: transition table, fills, venue reconciliation, snapshots."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueOrder
from nautilus_hmm.execution.orders import (
    REACHABLE,
    TRANSITIONS,
    IllegalTransition,
    InvalidFill,
    Order,
)

S = OrderStatus
D = Decimal
IID = InstrumentId("sim", "BTCUSDT")
T0 = 1_700_000_000_000_000_000

ALL = list(OrderStatus)
LEGAL = [(a, b) for a in ALL for b in sorted(TRANSITIONS[a], key=lambda s: s.value)]
ILLEGAL = [(a, b) for a, b in itertools.product(ALL, ALL) if a is not b and b not in TRANSITIONS[a]]


def make_order(qty: str = "1", order_type: OrderType = OrderType.LIMIT, price: str | None = "100") -> Order:
    req = OrderRequest(
        client_order_id="nh-abc-1",
        instrument_id=IID,
        side=Side.BUY,
        order_type=order_type,
        quantity=D(qty),
        price=None if price is None else D(price),
    )
    return Order.from_request(req, strategy_id="s1", created_ns=T0)


def order_in(status: OrderStatus) -> Order:
    o = make_order()
    o.status = status
    return o


def venue(status: OrderStatus, filled: str = "0", avg: str | None = None, ts: int = T0 + 5) -> VenueOrder:
    return VenueOrder(
        client_order_id="nh-abc-1",
        venue_order_id="v-9",
        instrument_id=IID,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=status,
        quantity=D(1),
        filled_qty=D(filled),
        avg_px=None if avg is None else D(avg),
        price=D(100),
        ts_ns=ts,
    )


# ------------------------------------------------------------ construction


def test_new_order_from_request_starts_new_and_unfilled() -> None:
    o = make_order()
    assert (o.status, o.filled_qty, o.avg_px, o.venue_order_id, o.trade_ids) == (S.NEW, 0, None, None, set())
    assert (o.strategy_id, o.created_ns, o.ts_last_ns) == ("s1", T0, T0)


def test_to_request_round_trips_the_request() -> None:
    req = OrderRequest("c-1", IID, Side.SELL, OrderType.LIMIT, D("2"), D("10"), TimeInForce.IOC, True)
    assert Order.from_request(req, "s", T0).to_request() == req


def test_limit_order_without_price_is_refused() -> None:
    with pytest.raises(ValueError, match="LIMIT order needs a price"):
        make_order(price=None)


def test_non_positive_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="quantity must be > 0"):
        make_order(qty="0")


def test_orders_have_slots_not_dict() -> None:
    assert not hasattr(make_order(), "__dict__")


# ------------------------------------------------------------ transition table


def test_terminal_states_have_no_transitions() -> None:
    for s in ALL:
        assert (TRANSITIONS[s] == frozenset()) is s.is_terminal


@pytest.mark.parametrize(("frm", "to"), LEGAL, ids=[f"{a.value}->{b.value}" for a, b in LEGAL])
def test_legal_transition_moves_state(frm: OrderStatus, to: OrderStatus) -> None:
    o = order_in(frm)
    assert o.transition(to, T0 + 1, "why") is True
    assert o.status is to
    assert o.ts_last_ns == T0 + 1


@pytest.mark.parametrize(("frm", "to"), ILLEGAL, ids=[f"{a.value}->{b.value}" for a, b in ILLEGAL])
def test_illegal_transition_raises_naming_order_and_states(frm: OrderStatus, to: OrderStatus) -> None:
    o = order_in(frm)
    with pytest.raises(IllegalTransition) as err:
        o.transition(to, T0 + 1)
    assert (err.value.client_order_id, err.value.from_status, err.value.to_status) == ("nh-abc-1", frm, to)
    assert f"nh-abc-1: illegal transition {frm.value} -> {to.value}" in str(err.value)
    assert o.status is frm


@pytest.mark.parametrize("status", ALL)
def test_same_state_transition_is_a_noop(status: OrderStatus) -> None:
    o = order_in(status)
    assert o.transition(status, T0 + 1) is False
    assert o.ts_last_ns == T0


def test_market_order_may_fill_before_its_ack() -> None:
    assert S.FILLED in TRANSITIONS[S.SUBMITTED]


def test_transition_records_reason() -> None:
    o = make_order()
    o.transition(S.REJECTED, T0, "risk: trading_halted")
    assert o.reason == "risk: trading_halted"


def test_cancel_rejected_returns_pending_cancel_to_accepted() -> None:
    o = order_in(S.PENDING_CANCEL)
    assert o.cancel_rejected(T0 + 1, "unknown order") is True
    assert o.status is S.ACCEPTED


def test_cancel_rejected_with_fills_returns_to_partially_filled() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_fill("t1", D("0.4"), D(100), T0)
    o.transition(S.PENDING_CANCEL, T0)
    assert o.cancel_rejected(T0 + 1) is True
    assert o.status is S.PARTIALLY_FILLED


def test_cancel_rejected_without_pending_cancel_is_noop() -> None:
    o = order_in(S.FILLED)
    assert o.cancel_rejected(T0 + 1) is False
    assert o.status is S.FILLED


# ------------------------------------------------------------ fills


def test_partial_fill_moves_to_partially_filled() -> None:
    o = order_in(S.ACCEPTED)
    assert o.apply_fill("t1", D("0.25"), D("100"), T0 + 1) is True
    assert (o.status, o.filled_qty, o.avg_px, o.leaves_qty) == (S.PARTIALLY_FILLED, D("0.25"), D(100), D("0.75"))


def test_complete_fill_moves_to_filled_with_volume_weighted_price() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_fill("t1", D("0.25"), D("100"), T0 + 1)
    o.apply_fill("t2", D("0.75"), D("104"), T0 + 2)
    assert o.status is S.FILLED
    assert o.filled_qty == D(1)
    assert o.avg_px == D("103")  # (25 + 78) / 1
    assert o.leaves_qty == 0


def test_fill_before_ack_moves_submitted_to_filled() -> None:
    o = order_in(S.SUBMITTED)
    o.apply_fill("t1", D(1), D(100), T0)
    assert o.status is S.FILLED


def test_duplicate_trade_id_is_ignored() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_fill("t1", D("0.5"), D(100), T0 + 1)
    assert o.apply_fill("t1", D("0.5"), D(100), T0 + 2) is False
    assert (o.filled_qty, o.status, o.ts_last_ns) == (D("0.5"), S.PARTIALLY_FILLED, T0 + 1)


def test_overfill_raises_and_changes_nothing() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_fill("t1", D("0.6"), D(100), T0)
    with pytest.raises(InvalidFill, match="overfills"):
        o.apply_fill("t2", D("0.5"), D(100), T0)
    assert (o.filled_qty, o.trade_ids) == (D("0.6"), {"t1"})


@pytest.mark.parametrize("qty", ["0", "-1"])
def test_non_positive_fill_qty_raises(qty: str) -> None:
    with pytest.raises(InvalidFill, match="qty must be > 0"):
        order_in(S.ACCEPTED).apply_fill("t1", D(qty), D(100), T0)


def test_non_positive_fill_price_raises() -> None:
    with pytest.raises(InvalidFill, match="price must be > 0"):
        order_in(S.ACCEPTED).apply_fill("t1", D(1), D(0), T0)


@pytest.mark.parametrize("status", [S.NEW, S.REJECTED])
def test_fill_on_never_live_order_raises(status: OrderStatus) -> None:
    with pytest.raises(InvalidFill, match=f"on a {status.value} order"):
        order_in(status).apply_fill("t1", D(1), D(100), T0)


def test_partial_fill_keeps_pending_cancel() -> None:
    o = order_in(S.PENDING_CANCEL)
    o.apply_fill("t1", D("0.5"), D(100), T0)
    assert o.status is S.PENDING_CANCEL


def test_full_fill_ends_pending_cancel_as_filled() -> None:
    o = order_in(S.PENDING_CANCEL)
    o.apply_fill("t1", D(1), D(100), T0)
    assert o.status is S.FILLED


def test_late_trade_after_cancel_ack_is_recorded_without_double_count() -> None:
    o = order_in(S.PENDING_CANCEL)
    o.apply_venue_state(venue(S.CANCELED, filled="0.5", avg="101"))
    assert o.apply_fill("t1", D("0.5"), D("101"), T0 + 9) is True
    assert (o.status, o.filled_qty, o.avg_px, o.trade_ids) == (S.CANCELED, D("0.5"), D(101), {"t1"})


def test_status_report_then_fill_report_count_once() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_venue_state(venue(S.PARTIALLY_FILLED, filled="0.3", avg="99"))
    o.apply_fill("t1", D("0.3"), D("99"), T0 + 6)
    assert (o.filled_qty, o.avg_px, o.status) == (D("0.3"), D(99), S.PARTIALLY_FILLED)


@given(
    st.lists(
        st.tuples(st.integers(1, 50), st.integers(1, 10_000)),
        min_size=1,
        max_size=20,
    )
)
def test_filled_qty_and_avg_px_match_the_trades(trades: list[tuple[int, int]]) -> None:
    total = sum(q for q, _ in trades)
    o = make_order(qty=str(total))
    o.status = S.ACCEPTED
    for i, (q, p) in enumerate(trades):
        o.apply_fill(f"t{i}", D(q), D(p), T0 + i)
        o.apply_fill(f"t{i}", D(q), D(p), T0 + i)  # replay is harmless
    assert o.filled_qty == total
    assert o.status is S.FILLED
    assert o.avg_px == sum(D(q) * D(p) for q, p in trades) / D(total)


# ------------------------------------------------------------ venue reconciliation


def test_recovery_jumps_submitted_to_filled() -> None:
    o = order_in(S.SUBMITTED)
    assert o.apply_venue_state(venue(S.FILLED, filled="1", avg="100.5")) is True
    assert (o.status, o.filled_qty, o.avg_px, o.venue_order_id) == (S.FILLED, D(1), D("100.5"), "v-9")


def test_recovery_jumps_new_to_accepted() -> None:
    o = make_order()
    o.apply_venue_state(venue(S.ACCEPTED))
    assert o.status is S.ACCEPTED


def test_venue_new_status_reads_as_accepted() -> None:
    o = order_in(S.SUBMITTED)
    o.apply_venue_state(venue(S.NEW))
    assert o.status is S.ACCEPTED


def test_repeated_venue_report_is_noop() -> None:
    o = order_in(S.SUBMITTED)
    o.apply_venue_state(venue(S.ACCEPTED))
    assert o.apply_venue_state(venue(S.ACCEPTED, ts=T0 + 50)) is False
    assert o.ts_last_ns == T0 + 5


def test_filled_qty_never_decreases_on_stale_report() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_venue_state(venue(S.PARTIALLY_FILLED, filled="0.5"))
    o.apply_venue_state(venue(S.ACCEPTED, filled="0"))
    assert (o.filled_qty, o.status) == (D("0.5"), S.PARTIALLY_FILLED)


def test_full_cumulative_fill_reads_as_filled() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_venue_state(venue(S.PARTIALLY_FILLED, filled="1"))
    assert o.status is S.FILLED


def test_venue_partial_fill_keeps_pending_cancel() -> None:
    o = order_in(S.PENDING_CANCEL)
    o.apply_venue_state(venue(S.PARTIALLY_FILLED, filled="0.2"))
    assert (o.status, o.filled_qty) == (S.PENDING_CANCEL, D("0.2"))


def test_venue_accepted_during_pending_cancel_means_cancel_rejected() -> None:
    o = order_in(S.PENDING_CANCEL)
    o.apply_venue_state(venue(S.ACCEPTED))
    assert o.status is S.ACCEPTED


def test_venue_overfill_report_raises() -> None:
    with pytest.raises(InvalidFill, match="filled 2 of quantity 1"):
        order_in(S.ACCEPTED).apply_venue_state(venue(S.FILLED, filled="2"))


def test_unreachable_venue_status_raises() -> None:
    with pytest.raises(IllegalTransition, match="ACCEPTED -> REJECTED"):
        order_in(S.ACCEPTED).apply_venue_state(venue(S.REJECTED))


def test_terminal_order_refuses_a_different_venue_status() -> None:
    with pytest.raises(IllegalTransition, match="CANCELED -> FILLED"):
        order_in(S.CANCELED).apply_venue_state(venue(S.FILLED, filled="1"))


def test_terminal_order_merges_quantities_of_the_same_status() -> None:
    o = order_in(S.CANCELED)
    assert o.apply_venue_state(venue(S.CANCELED, filled="0.4", avg="98")) is True
    assert (o.filled_qty, o.avg_px) == (D("0.4"), D(98))


def test_venue_report_for_another_order_is_refused() -> None:
    vo = VenueOrder("other", "v", IID, Side.BUY, OrderType.LIMIT, S.ACCEPTED, D(1), D(0), None, D(100), T0)
    with pytest.raises(ValueError, match="'other' applied to order 'nh-abc-1'"):
        make_order().apply_venue_state(vo)


@pytest.mark.parametrize("start", [s for s in ALL if not s.is_terminal])
def test_reachable_states_include_every_terminal_fill_or_cancel(start: OrderStatus) -> None:
    assert {S.FILLED, S.CANCELED, S.EXPIRED} <= REACHABLE[start]


# ------------------------------------------------------------ export


def test_event_carries_the_snapshot() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_fill("t1", D("0.5"), D(100), T0)
    ev = o.to_event(T0 + 1, T0 + 2)
    assert (ev.client_order_id, ev.status, ev.filled_qty, ev.avg_px, ev.strategy_id) == (
        "nh-abc-1", S.PARTIALLY_FILLED, D("0.5"), D(100), "s1",
    )


def test_snapshot_restore_round_trip() -> None:
    o = order_in(S.ACCEPTED)
    o.apply_fill("t1", D("0.5"), D("100.1"), T0 + 3)
    o.apply_venue_state(venue(S.PARTIALLY_FILLED, filled="0.7", avg="100.2"))
    r = Order.restore(o.snapshot())
    assert r.snapshot() == o.snapshot()
    assert r.apply_fill("t1", D("0.5"), D("100.1"), T0) is False


def test_restore_names_a_missing_field() -> None:
    snap = make_order().snapshot()
    del snap["status"]
    with pytest.raises(ValueError, match="missing field 'status'"):
        Order.restore(snap)
