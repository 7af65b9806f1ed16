"""The engine's closed orders are bounded (`execution.closed`): many orders through the real
stack (sim venue, SQLite journal, report queue) leave at most `kept` closed orders in memory,
and a late report, a repeated fill, a new fill or a reconciliation read about a forgotten
order is handled exactly as if it were still in memory (recalled from the journal)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

from structlog.testing import capture_logs

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side, TradingState
from nautilus_hmm.execution.closed import ClosedOrders
from nautilus_hmm.execution.orders import Order
from nautilus_hmm.messages import FillReport, JournalGapDetected, OrderStatusReport, UserStreamGap
from tests.unit.execution.test_reconcile import BTC, Node

KEPT = 4
ORDERS = 20  # >> KEPT


async def trade_orders(tmp_path: Path, n: int = ORDERS, kept: int = KEPT) -> Node:
    """A node whose engine keeps `kept` closed orders, after `n` filled orders (0.1 BTC long, flat, ...)."""
    clock = ManualClock()
    node = Node(tmp_path, clock)
    node.st.engine.closed_orders.kept = kept
    assert await node.start()
    node.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    node.trade(60000.0)
    for i in range(n):
        node.target("0.1" if i % 2 == 0 else "0")
        await node.settle()
        node.trade(60000.0 + i)  # the MARKET order fills on this trade
        await node.settle()
    return node


def first_order(node: Node) -> str:
    rows = node.journal.load_orders()
    return rows[0].client_order_id


async def test_memory_keeps_open_orders_and_the_newest_closed_ones_only(tmp_path: Path) -> None:
    node = await trade_orders(tmp_path)
    eng = node.st.engine
    rows = node.journal.load_orders()
    assert len(rows) == ORDERS and all(r.status is OrderStatus.FILLED for r in rows)
    assert len(eng.orders) == KEPT
    assert set(eng.orders) == {r.client_order_id for r in rows[-KEPT:]}  # the newest
    assert eng.closed_orders.pruned == ORDERS - KEPT
    assert len(eng.closed_orders) == KEPT
    assert eng.portfolio.position_qty(BTC) == 0  # as many buys as sells of 0.1, all booked
    assert [o["client_order_id"] for o in eng.order_views()] == [r.client_order_id for r in reversed(rows[-KEPT:])]
    await node.crash()


async def test_orders_view_reads_forgotten_orders_from_the_journal(tmp_path: Path) -> None:
    node = await trade_orders(tmp_path, n=12)
    eng = node.st.engine
    rows = node.journal.load_orders()
    await node.settle()
    views = await eng.order_views_complete(limit=10)
    assert [v["client_order_id"] for v in views] == [r.client_order_id for r in reversed(rows)][:10]
    # A forgotten order reads as it was kept: status, quantities, its trades.
    by_id = {v["client_order_id"]: v for v in await eng.order_views_complete(limit=500)}
    assert len(by_id) == 12
    old = by_id[rows[0].client_order_id]
    assert (old["status"], old["filled_qty"], old["trade_qty"]) == ("FILLED", "0.10000", "0.10000")
    assert len(old["trade_ids"]) == 1
    assert await eng.order_views_complete(open_only=True) == []  # open orders: memory only
    await node.crash()


async def test_a_stale_status_report_for_a_forgotten_order_is_recalled_and_ignored(tmp_path: Path) -> None:
    node = await trade_orders(tmp_path)
    eng = node.st.engine
    cid = first_order(node)
    assert cid not in eng.orders
    row = node.journal.get_order(cid)
    stale = dataclasses.replace(await node.venue.query_order(BTC, cid), status=OrderStatus.ACCEPTED,
                                filled_qty=Decimal(0))
    now = node.clock.time_ns()
    with capture_logs() as logs:
        node.bus.publish(OrderStatusReport(ts_event_ns=now, ts_init_ns=now, venue="sim", order=stale))
        await node.settle()
    assert eng.closed_orders.recalled == 1
    assert eng.orders[cid].status is OrderStatus.FILLED  # recalled as it was: the report was stale
    assert cid not in eng.foreign_reports
    assert not eng.discrepancies
    assert not [e for e in logs if e["event"] == "report_for_unknown_order"]
    assert node.journal.get_order(cid) == row  # nothing rewritten
    # The recalled order is closed again: memory stays bounded.
    assert len(eng.orders) <= KEPT
    await node.crash()


async def test_a_repeated_fill_of_a_forgotten_order_is_refused_once_more(tmp_path: Path) -> None:
    node = await trade_orders(tmp_path)
    eng = node.st.engine
    cid = first_order(node)
    (fill,) = [f for f in await node.venue.fills_since(BTC, 0) if f.client_order_id == cid]
    before = dict(eng.counts)
    now = node.clock.time_ns()
    node.bus.publish(FillReport(ts_event_ns=now, ts_init_ns=now, venue="sim", fill=fill))
    await node.settle()
    assert eng.counts["duplicate_fills"] == before["duplicate_fills"] + 1
    assert eng.counts["fills"] == before["fills"]
    assert eng.portfolio.position_qty(BTC) == 0
    # Read back before the fill was journaled, and unchanged by the refused copy.
    assert eng.orders[cid].filled_qty == fill.qty and eng.orders[cid].trade_ids == {fill.trade_id}
    assert not eng.discrepancies
    await node.crash()


async def test_a_new_fill_beyond_a_forgotten_orders_quantity_is_booked_and_a_discrepancy(tmp_path: Path) -> None:
    node = await trade_orders(tmp_path)
    eng = node.st.engine
    cid = first_order(node)
    (fill,) = [f for f in await node.venue.fills_since(BTC, 0) if f.client_order_id == cid]
    extra = dataclasses.replace(fill, trade_id="late-1", qty=Decimal("0.01"))
    now = node.clock.time_ns()
    node.bus.publish(FillReport(ts_event_ns=now, ts_init_ns=now, venue="sim", fill=extra))
    await node.settle()
    # The money moved at the venue: the portfolio books it; the order (recalled) refuses the
    # overfill, exactly as it would have in memory.
    assert eng.portfolio.position_qty(BTC) == Decimal("0.01")
    assert eng.closed_orders.recalled == 1
    assert any("late-1" in d and "overfills" in d for d in eng.discrepancies), eng.discrepancies
    assert eng.orders[cid].filled_qty == Decimal("0.1")
    await node.crash()


async def test_a_reconciliation_reading_old_fills_does_not_take_forgotten_orders_for_lost_ones(
        tmp_path: Path) -> None:
    node = await trade_orders(tmp_path)
    eng = node.st.engine
    alerts: list[JournalGapDetected] = []
    node.bus.subscribe(JournalGapDetected, alerts.append)
    # A user-stream gap from the beginning: the pass reads every fill, of forgotten orders too.
    now = node.clock.time_ns()
    node.bus.publish(UserStreamGap(ts_event_ns=now, ts_init_ns=now, venue="sim", since_ns=0, reason="test"))
    (result,) = await node.st.reconciler.reconcile_gaps()
    assert result.ok, result.discrepancies
    assert not result.adopted_lost and result.recovered_fills == 0
    assert not alerts
    assert node.st.gate.state is TradingState.ACTIVE
    assert eng.closed_orders.recalled >= ORDERS - KEPT  # every forgotten one (some again, as others came back)
    assert len(eng.orders) <= KEPT + 1
    await node.crash()


async def test_a_restart_keeps_only_the_newest_closed_orders(tmp_path: Path) -> None:
    node = await trade_orders(tmp_path, n=12)
    cids = [r.client_order_id for r in node.journal.load_orders()]
    await node.crash()
    again = Node(tmp_path, node.clock)
    again.st.engine.closed_orders.kept = KEPT
    assert await again.start(), again.results[-1].discrepancies
    assert set(again.st.engine.orders) == set(cids[-KEPT:])
    await again.crash()


async def test_a_recall_that_cannot_read_the_journal_leaves_the_report_unknown(tmp_path: Path) -> None:
    node = await trade_orders(tmp_path, n=8)
    eng = node.st.engine
    cid = first_order(node)
    node.journal.close()  # the read fails
    assert await eng.recall(cid) is None
    assert eng.closed_orders.recalled == 0
    node._consumer.cancel()  # type: ignore[union-attr]
    eng.detach()


def _order(cid: str, status: OrderStatus = OrderStatus.FILLED) -> Order:
    o = Order(client_order_id=cid, strategy_id="s", instrument_id=BTC, side=Side.BUY, order_type=OrderType.MARKET,
              quantity=Decimal(1), created_ns=1)
    o.transition(OrderStatus.SUBMITTED, 2)
    if status is OrderStatus.FILLED:
        o.apply_fill(f"t-{cid}", Decimal(1), Decimal(10), 3)
    return o


def test_an_order_whose_fills_are_not_booked_is_never_forgotten() -> None:
    orders: dict[str, Order] = {}
    closed = ClosedOrders(orders, kept=2)
    unbooked = _order("a")
    unbooked.filled_qty = Decimal(2)  # the venue reported more than the trades booked
    orders["a"] = unbooked
    closed.closed(unbooked)
    for i in range(10):
        o = orders[f"b{i}"] = _order(f"b{i}")
        closed.closed(o)
    assert "a" in orders and len(orders) == 3
    assert closed.pruned == 8  # 11 closed, 2 kept, the unbooked one of the 9 older ones stays


def test_without_a_durable_journal_nothing_is_forgotten() -> None:
    orders: dict[str, Order] = {}
    closed = ClosedOrders(orders, kept=None)
    for i in range(50):
        o = orders[str(i)] = _order(str(i))
        closed.closed(o)
    assert len(orders) == 50 and closed.pruned == 0
    assert not closed.may_recall("x", None)  # nothing forgotten: no journal read for unknown ids


def test_only_ids_of_this_journal_are_looked_up() -> None:
    orders: dict[str, Order] = {}
    closed = ClosedOrders(orders, kept=1)
    for cid in ("nh-abc123-1", "nh-abc123-2"):
        o = orders[cid] = _order(cid)
        closed.closed(o)
    assert closed.pruned == 1
    assert closed.may_recall("nh-abc123-1", "abc123")
    assert not closed.may_recall("manual-order-7", "abc123")  # foreign: never ours


async def test_the_fill_window_stays_bounded_and_the_journal_refuses_a_forgotten_copy(tmp_path: Path) -> None:
    clock = ManualClock()
    node = Node(tmp_path, clock)
    node.st.engine.fill_intake._recent_max = 5  # type: ignore[attr-defined]
    assert await node.start()
    node.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    node.trade(60000.0)
    for i in range(20):
        node.target("0.1" if i % 2 == 0 else "0")
        await node.settle()
        node.trade(60000.0 + i)
        await node.settle()
    eng = node.st.engine
    assert len(eng.fill_intake._recent) == 5  # type: ignore[attr-defined]
    first = (await node.venue.fills_since(BTC, 0))[0]
    before = dict(eng.counts)
    now = node.clock.time_ns()
    node.bus.publish(FillReport(ts_event_ns=now, ts_init_ns=now, venue="sim", fill=first))
    await node.settle()
    assert eng.counts["duplicate_fills"] == before["duplicate_fills"] + 1  # the journal's key said so
    assert eng.counts["fills"] == before["fills"] and eng.portfolio.position_qty(BTC) == 0
    await node.crash()


async def test_a_damaged_journal_row_of_a_forgotten_order_leaves_the_report_unknown_and_the_consumer_running(
        tmp_path: Path) -> None:
    import sqlite3

    node = await trade_orders(tmp_path, n=10)
    eng = node.st.engine
    cid = first_order(node)
    await node.settle()
    raw = sqlite3.connect(tmp_path / "journal.sqlite3")
    raw.execute("UPDATE orders SET quantity = 'ten' WHERE client_order_id = ?", (cid,))
    raw.commit()
    raw.close()
    vo = await node.venue.query_order(BTC, cid)
    now = node.clock.time_ns()
    with capture_logs() as logs:
        node.bus.publish(OrderStatusReport(ts_event_ns=now, ts_init_ns=now, venue="sim", order=vo))
        await node.settle()
    assert [e for e in logs if e["event"] == "closed_order_recall_failed" and e["client_order_id"] == cid]
    assert cid in eng.foreign_reports and cid not in eng.orders
    # The consumer still applies reports: the next order trades and fills.
    node.target("0.1")
    await node.settle()
    node.trade(61000.0)
    await node.settle()
    assert eng.portfolio.position_qty(BTC) == Decimal("0.1")
    await node.crash()
