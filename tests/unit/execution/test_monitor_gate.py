"""Monitor-only mode at the execution boundary: the engine's order gate withholds every plan
before an id is minted or an intent journaled, refuses every cancel, and reconciliation
tracks a foreign order instead of cancelling it. Real bus, journal and sim venue (wrapped to
count what reaches its order entry); manual clock."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from nautilus_hmm.bootstrap import TradingStack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.ids import parse_journal_sequence
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueOrder
from nautilus_hmm.execution.mode import (
    MAX_WITHHELD_VIEWS,
    MONITOR,
    TRADE,
    OrderEntryDisabled,
    OrderGate,
)
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import CancelOrder, RiskDenied, SubmitOrder, TargetPosition
from nautilus_hmm.venues.sim.venue import SimVenue
from tests.stackharness import active_sim_stack
from tests.unit.execution.test_reconcile import Node as ReconcileNode

BTC = InstrumentId("sim", "BTCUSDT")
CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
    "execution": {"order_timeout_s": 1.0},
}


class EntryCountingVenue(SimVenue):
    """The sim venue, counting every call to its order entry (async and synchronous)."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.entry_calls: list[tuple[str, str]] = []

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        self.entry_calls.append(("submit", req.client_order_id))
        return await super().submit_order(req)

    async def cancel_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder:
        self.entry_calls.append(("cancel", client_order_id))
        return await super().cancel_order(instrument_id, client_order_id)

    async def cancel_all(self, instrument_id: InstrumentId | None = None) -> list[VenueOrder]:
        self.entry_calls.append(("cancel_all", str(instrument_id)))
        return await super().cancel_all(instrument_id)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[TradingStack, EntryCountingVenue, ManualClock, Path]]:
    cfg = parse(Config, CFG)
    clock, bus = ManualClock(), Bus()
    jpath = tmp_path / "journal.sqlite3"
    journal = Journal.open(jpath)
    venue = EntryCountingVenue(cfg.venues.sim, bus, clock, tmp_path)
    async with active_sim_stack(cfg, venue, bus, clock, journal) as st:
        yield st, venue, clock, jpath


def target(st: TradingStack, qty: str, clock: ManualClock, strategy_id: str = "t") -> None:
    now = clock.time_ns()
    st.bus.publish(TargetPosition(ts_event_ns=now, ts_init_ns=now, strategy_id=strategy_id, instrument_id=BTC,
                                  target_qty=Decimal(qty), reason="test"))


async def settle(st: TradingStack) -> None:
    await st.engine.idle()
    await st.journal.flush()
    await st.engine.idle()


def journaled_orders(jpath: Path) -> list[tuple[str, str]]:
    """What a second connection sees in the journal's orders table (what a crash would leave)."""
    with sqlite3.connect(jpath) as conn:
        return conn.execute("select client_order_id, status from orders").fetchall()


def monitor(st: TradingStack) -> OrderGate:
    st.engine.order_gate = OrderGate(MONITOR)
    return st.engine.order_gate


async def test_a_target_in_monitor_mode_sends_nothing_journals_no_intent_and_mints_no_id(stack) -> None:
    st, venue, clock, jpath = stack
    gate = monitor(st)
    target(st, "0.1", clock)
    await settle(st)
    assert venue.entry_calls == []
    assert st.engine.orders == {} and st.engine.counts["orders"] == 0
    assert journaled_orders(jpath) == []
    (row,) = gate.status()["would_send"]
    assert (row["strategy_id"], row["instrument"], row["side"], Decimal(row["quantity"]), row["times"]) == (
        "t", "sim:BTCUSDT", "BUY", Decimal("0.1"), 1)
    assert gate.counts["submit"] == 1
    # The id sequence was not touched: the first order once trading is the journal's first.
    st.engine.order_gate = OrderGate(TRADE)
    target(st, "0.1", clock)
    await settle(st)
    ((action, cid),) = venue.entry_calls
    assert action == "submit" and parse_journal_sequence(cid, st.journal.journal_id) == 1


async def test_the_same_plan_stated_each_bar_is_one_log_line_and_counted_each_time(stack) -> None:
    st, venue, clock, _ = stack
    gate = monitor(st)
    with capture_logs() as logs:
        for _ in range(5):
            target(st, "0.1", clock)
            clock.advance(1)
        target(st, "0.2", clock)  # a changed plan is said again
        await settle(st)
    lines = [e for e in logs if e["event"] == "order_withheld_monitor_mode"]
    assert [Decimal(e["qty"]) for e in lines] == [Decimal("0.1"), Decimal("0.2")]
    assert gate.counts["submit"] == 6
    (row,) = gate.status()["would_send"]
    assert Decimal(row["quantity"]) == Decimal("0.2") and row["times"] == 1
    assert venue.entry_calls == []


async def test_a_met_target_leaves_nothing_in_would_send(stack) -> None:
    st, _venue, clock, _ = stack
    gate = monitor(st)
    target(st, "0.1", clock)
    target(st, "0", clock)  # the position is 0: nothing to do
    await settle(st)
    assert gate.status()["would_send"] == []


async def test_a_submit_order_command_in_monitor_mode_reaches_no_venue(stack) -> None:
    st, venue, clock, jpath = stack
    monitor(st)
    now = clock.time_ns()
    st.bus.publish(SubmitOrder(ts_event_ns=now, ts_init_ns=now, strategy_id="manual", instrument_id=BTC,
                               side=Side.SELL, order_type=OrderType.LIMIT, quantity=Decimal("0.01"),
                               price=Decimal("61000"), time_in_force=TimeInForce.GTC, reduce_only=False,
                               reason="test"))
    await settle(st)
    assert venue.entry_calls == [] and journaled_orders(jpath) == []
    assert st.engine.order_gate.status()["would_send"][0]["side"] == "SELL"


async def test_monitor_mode_withholds_before_the_risk_gate_so_no_denial_is_published(stack) -> None:
    """A monitor's targets are not risk denials: the denial alerts and notifications stay quiet."""
    st, venue, clock, _ = stack
    denied: list[RiskDenied] = []
    st.bus.subscribe(RiskDenied, denied.append, name="test")
    monitor(st)
    st.gate.set_state(TradingState.HALTED, "test", "test")
    target(st, "0.1", clock)
    await settle(st)
    assert denied == [] and venue.entry_calls == []


async def test_cancels_of_an_order_placed_before_are_refused_and_leave_it_open(stack) -> None:
    st, venue, clock, _ = stack
    st.engine.update_config(parse(Config, {**CFG, "execution": {"order_type": "LIMIT",
                                                                "limit_offset_bps": 100.0}}).execution)
    target(st, "0.1", clock)  # trade mode: a resting limit order
    await settle(st)
    (order,) = st.engine.orders.values()
    assert order.status is OrderStatus.ACCEPTED
    venue.entry_calls.clear()
    gate = monitor(st)
    now = clock.time_ns()
    st.bus.publish(CancelOrder(ts_event_ns=now, ts_init_ns=now, client_order_id=order.client_order_id,
                               reason="test"))
    st.engine.cancel(order, "direct")
    with pytest.raises(OrderEntryDisabled) as info:
        await st.engine.cancel_all("kill")
    await clock.advance_settle(0.01)
    await settle(st)
    assert venue.entry_calls == []
    assert order.status is OrderStatus.ACCEPTED and [o.client_order_id for o in await venue.open_orders()] == [
        order.client_order_id]
    assert gate.counts["cancel"] == 2
    assert info.value.body()["action"] == "cancel_orders" and 'mode = "trade"' in info.value.body()["hint"]


async def test_flatten_in_monitor_mode_raises_and_changes_nothing(stack) -> None:
    st, venue, clock, _ = stack
    target(st, "0.1", clock)
    await settle(st)
    clock.advance(1)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    await settle(st)
    assert st.portfolio.position_qty(BTC) == Decimal("0.1")
    venue.entry_calls.clear()
    monitor(st)
    st.gate.set_state(TradingState.REDUCING, "kill", "test")
    with pytest.raises(OrderEntryDisabled, match="flatten refused: the node is in monitor mode"):
        st.engine.flatten("kill")
    await settle(st)
    assert st.engine.flattening is False and venue.entry_calls == []
    assert st.portfolio.position_qty(BTC) == Decimal("0.1")


async def test_an_order_that_exists_anyway_is_refused_at_the_venue_call(stack) -> None:
    """The second line: an order created in trade mode whose send runs after the switch is closed
    REJECTED at the venue call, with no intent journaled and no request sent."""
    st, venue, clock, jpath = stack
    target(st, "0.1", clock)  # the order is created and its send task spawned, not yet run
    (order,) = st.engine.orders.values()
    monitor(st)
    await settle(st)
    assert venue.entry_calls == []
    assert order.status is OrderStatus.REJECTED and "monitor mode" in order.reason
    assert [status for _cid, status in journaled_orders(jpath)] in ([], ["REJECTED"])


async def test_reconciliation_in_monitor_mode_tracks_a_foreign_order_instead_of_cancelling(tmp_path: Path) -> None:
    clock = ManualClock()
    a = ReconcileNode(tmp_path, clock)  # unknown_orders = "cancel"
    assert await a.start()
    a.trade(60000.0)
    a.venue.submit_order_nowait(OrderRequest("manual-9", BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                                             Decimal("50000")))
    await a.crash()
    b = ReconcileNode(tmp_path, clock)
    b.st.engine.order_gate = OrderGate(MONITOR)
    assert await b.start()
    result = b.st.reconciler.last["sim"]
    assert (result.canceled_foreign, result.adopted_foreign) == (0, 1)
    assert [o.client_order_id for o in await b.venue.open_orders()] == ["manual-9"]
    assert b.st.engine.orders["manual-9"].status is OrderStatus.ACCEPTED
    await b.crash()


def test_an_unknown_mode_is_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match="mode = 'paper': must be one of trade, monitor"):
        OrderGate("paper")


def test_would_send_keeps_the_newest_plans_within_its_bound() -> None:
    gate = OrderGate(MONITOR)
    n = MAX_WITHHELD_VIEWS + 5
    for i in range(n):
        gate.withhold(f"s{i}", BTC, Side.BUY, OrderType.MARKET, Decimal(1), None, "r", i)
    gate.withhold("s7", BTC, Side.SELL, OrderType.MARKET, Decimal(1), None, "changed", n)  # a change: moved last
    rows = gate.status()["would_send"]
    assert len(rows) == MAX_WITHHELD_VIEWS and gate.counts["submit"] == n + 1
    assert rows[-1]["strategy_id"] == "s7" and rows[-1]["side"] == "SELL"
    assert rows[0]["strategy_id"] == "s5"  # the oldest five went
    assert "s7" not in [r["strategy_id"] for r in rows[:-1]]
