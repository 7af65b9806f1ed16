"""Recovery: rebuilding in-flight orders, lookups and the fill replay from journal rows."""

from __future__ import annotations

from decimal import Decimal

from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.journal.recovery import (
    fill_cursors,
    fills_by_instrument,
    in_flight_orders,
    load_recovery_state,
    missing_fill_qty,
    orders_by_client_id,
)
from nautilus_hmm.journal.rows import FillRow, OrderRow
from nautilus_hmm.journal.store import Journal
from tests.unit.journal.conftest import BTC, ETH, fill, request


def order(cid: str, status: OrderStatus, filled: str = "0") -> OrderRow:
    """An order row in `status`."""
    return OrderRow(
        client_order_id=cid, seq=None, instrument_id=BTC, strategy_id="s", side=Side.BUY,
        order_type=OrderType.LIMIT, quantity=Decimal(1), price=Decimal(100), time_in_force=TimeInForce.GTC,
        reduce_only=False, status=status, filled_qty=Decimal(filled), avg_px=None, venue_order_id=None,
        reason="", created_ns=1, updated_ns=1,
    )


def fill_row(fid: int, cid: str, ts_ns: int, instrument: InstrumentId = BTC, qty: str = "1") -> FillRow:
    """A journaled fill."""
    return FillRow(
        id=fid, venue="sim", trade_id=f"T{fid}", client_order_id=cid, venue_order_id="V",
        instrument_id=instrument, side=Side.BUY, qty=Decimal(qty), price=Decimal(100), fee=Decimal(0),
        fee_asset="USDT", liquidity=Liquidity.TAKER, ts_ns=ts_ns,
    )


def test_every_non_terminal_order_is_in_flight() -> None:
    orders = [order(s.value, s) for s in OrderStatus]
    assert {o.status for o in in_flight_orders(orders)} == {
        OrderStatus.NEW, OrderStatus.SUBMITTED, OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL,
    }


def test_orders_are_indexed_by_client_id() -> None:
    a, b = order("a", OrderStatus.NEW), order("b", OrderStatus.FILLED)
    assert orders_by_client_id([a, b]) == {"a": a, "b": b}


def test_fills_are_grouped_per_instrument_in_replay_order() -> None:
    fills = [fill_row(3, "a", 20), fill_row(1, "a", 20, ETH), fill_row(2, "b", 10), fill_row(4, "c", 20)]
    grouped = fills_by_instrument(fills)
    assert [f.id for f in grouped[BTC]] == [2, 3, 4]
    assert [f.id for f in grouped[ETH]] == [1]


def test_fill_cursor_is_the_newest_fill_per_instrument() -> None:
    fills = [fill_row(1, "a", 30), fill_row(2, "a", 10), fill_row(3, "b", 5, ETH)]
    assert fill_cursors(fills) == {BTC: 30, ETH: 5}


def test_orders_filled_beyond_their_journaled_fills_need_a_backfill() -> None:
    orders = [order("a", OrderStatus.FILLED, "1"), order("b", OrderStatus.PARTIALLY_FILLED, "0.5")]
    fills = [fill_row(1, "a", 1, qty="1")]
    assert missing_fill_qty(orders, fills) == {"b": Decimal("0.5")}


def test_fill_row_converts_back_to_the_venue_fill() -> None:
    f = fill("c1", "T1")
    row = FillRow(1, "sim", f.trade_id, f.client_order_id, f.venue_order_id, f.instrument_id, f.side,
                  f.qty, f.price, f.fee, f.fee_asset, f.liquidity, f.ts_ns)
    assert row.to_venue_fill() == f


async def test_recovery_state_reads_the_journal() -> None:
    j = Journal.open(":memory:")
    try:
        live, done = request(j), request(j)
        await j.record_intent(live, "s", 1)
        await j.record_intent(done, "s", 1)
        j.record_order_update(done.client_order_id, OrderStatus.FILLED, Decimal("0.5"), Decimal(100), None, None, 2)
        await j.record_fill("sim", fill(done.client_order_id, "T1", ts_ns=5))
        j.record_position_snapshot(6, {"sim:BTCUSDT": "0.5"})
        state = load_recovery_state(j)
        assert [o.client_order_id for o in state.in_flight] == [live.client_order_id]
        assert set(state.orders_by_client_id) == {live.client_order_id, done.client_order_id}
        assert [f.trade_id for f in state.fills_by_instrument[BTC]] == ["T1"]
        assert state.fill_cursors == {BTC: 5}
        assert state.missing_fill_qty == {}
        assert state.next_seq == 3 and state.journal_id == j.journal_id
        assert state.position_snapshot is not None and state.position_snapshot.ts_ns == 6
    finally:
        j.close()
