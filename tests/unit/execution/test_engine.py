"""Execution engine: intent journaled before send, unknown outcomes resolved by query,
fills counted once, risk denials, flatten. Real bus, journal, sim venue; manual clock."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.bootstrap import TradingStack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import RetryableError, UnknownOutcome
from nautilus_hmm.domain.enums import Liquidity, OrderStatus, Side, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import FillReport, RiskDenied, TargetPosition
from nautilus_hmm.venues.sim.venue import SimVenue
from tests.stackharness import active_sim_stack

BTC = InstrumentId("sim", "BTCUSDT")
CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
    "execution": {"order_timeout_s": 1.0},
}


class ProbeVenue(SimVenue):
    """The sim venue, plus what the tests need to observe or break at the boundary."""

    def __init__(self, *args, journal_path: Path | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.journal_path = journal_path
        self.submits: list[str] = []
        self.queries: list[str] = []
        self.intent_visible_at_send: list[bool] = []
        self.fail_next: Exception | None = None
        self.execute_then_fail = False
        self.mute = False

    def _emit(self, events) -> None:
        if not self.mute:
            super()._emit(events)

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        self.submits.append(req.client_order_id)
        if self.journal_path is not None:
            # A second connection: what a crash right now would leave on disk.
            with sqlite3.connect(self.journal_path) as conn:
                row = conn.execute("select status from orders where client_order_id = ?",
                                   (req.client_order_id,)).fetchone()
            self.intent_visible_at_send.append(row is not None)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            if self.execute_then_fail:
                # The venue took it; both the answer and the stream report are lost.
                self.mute = True
                try:
                    self.submit_order_nowait(req)
                finally:
                    self.mute = False
            raise exc
        return await super().submit_order(req)

    async def query_order(self, instrument_id: InstrumentId, client_order_id: str) -> VenueOrder | None:
        self.queries.append(client_order_id)
        return await super().query_order(instrument_id, client_order_id)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[TradingStack, ProbeVenue, ManualClock]]:
    cfg = parse(Config, CFG)
    clock, bus = ManualClock(), Bus()
    jpath = tmp_path / "journal.sqlite3"
    journal = Journal.open(jpath)
    venue = ProbeVenue(cfg.venues.sim, bus, clock, tmp_path, journal_path=jpath)
    async with active_sim_stack(cfg, venue, bus, clock, journal) as st:
        yield st, venue, clock


def target(st: TradingStack, qty: str, clock: ManualClock) -> None:
    now = clock.time_ns()
    st.bus.publish(TargetPosition(ts_event_ns=now, ts_init_ns=now, strategy_id="t", instrument_id=BTC,
                                  target_qty=Decimal(qty), reason="test"))


async def until(pred, what: str = "condition") -> None:
    """Yield to the loop (and the journal's writer thread) until `pred()` holds."""
    import asyncio

    for _ in range(2000):
        if pred():
            return
        await asyncio.sleep(0.001)  # the journal commits in a thread: give it the GIL
    raise AssertionError(f"timed out waiting for {what}")


async def settle(st: TradingStack) -> None:
    await st.engine.idle()
    await st.journal.flush()
    await st.engine.idle()


async def test_intent_is_durable_before_the_request_leaves(stack) -> None:
    st, venue, clock = stack
    target(st, "0.1", clock)
    await settle(st)
    assert venue.submits and venue.intent_visible_at_send == [True]


async def test_target_becomes_a_market_order_that_fills_on_the_next_trade(stack) -> None:
    st, venue, clock = stack
    target(st, "0.1", clock)
    await settle(st)
    (order,) = st.engine.orders.values()
    assert order.status is OrderStatus.ACCEPTED
    clock.advance(1)
    venue.step_trade(BTC, 60010.0, 5.0, clock.time_ns())
    await settle(st)
    assert order.status is OrderStatus.FILLED
    assert st.portfolio.position_qty(BTC) == Decimal("0.1")
    assert st.journal.get_order(order.client_order_id).status is OrderStatus.FILLED
    assert len(st.journal.load_fills()) == 1


async def test_timed_out_order_is_resolved_by_query_never_resent(stack) -> None:
    st, venue, clock = stack
    venue.fail_next = UnknownOutcome("sim", "request timed out")
    venue.execute_then_fail = True
    target(st, "0.1", clock)
    (order,) = st.engine.orders.values()
    await until(lambda: order.client_order_id in st.engine.unknown_outcome, "unknown outcome")
    assert not st.engine.health().ok
    await clock.advance_settle(1.0)
    await settle(st)
    assert venue.submits == [order.client_order_id]  # sent exactly once
    assert order.client_order_id in venue.queries
    assert order.status is OrderStatus.ACCEPTED
    assert st.engine.health().ok


async def test_unknown_outcome_the_venue_never_saw_is_closed_after_repeated_not_found(stack) -> None:
    st, venue, clock = stack
    venue.fail_next = UnknownOutcome("sim", "connection reset after send")
    target(st, "0.1", clock)
    (order,) = st.engine.orders.values()
    await until(lambda: order.client_order_id in st.engine.unknown_outcome, "unknown outcome")
    for _ in range(10):
        await clock.advance_settle(10.0)
        await st.journal.flush()
    await settle(st)
    assert order.status is OrderStatus.REJECTED
    assert "not found at venue" in order.reason
    assert len(venue.submits) == 1
    assert len(venue.queries) >= 2


async def test_retryable_error_rejects_the_id_and_a_replan_mints_a_new_one(stack) -> None:
    st, venue, clock = stack
    venue.fail_next = RetryableError("sim", "service unavailable")
    target(st, "0.1", clock)
    await settle(st)
    (first,) = st.engine.orders.values()
    assert first.status is OrderStatus.REJECTED
    assert st.engine.replan_all() == 1
    await settle(st)
    second = [o for o in st.engine.orders.values() if o is not first][0]
    assert second.client_order_id != first.client_order_id
    assert second.status is OrderStatus.ACCEPTED


async def test_the_same_fill_reported_twice_is_booked_once(stack) -> None:
    st, venue, clock = stack
    target(st, "0.1", clock)
    await settle(st)
    (order,) = st.engine.orders.values()
    fill = VenueFill(BTC, order.client_order_id, order.venue_order_id or "1", "T-1", Side.BUY, Decimal("0.1"),
                     Decimal("60000"), Decimal("6"), "USDT", Liquidity.TAKER, clock.time_ns())
    for _ in range(2):
        st.bus.publish(FillReport(ts_event_ns=1, ts_init_ns=1, venue="sim", fill=fill))
    await settle(st)
    assert st.portfolio.position_qty(BTC) == Decimal("0.1")
    assert st.engine.counts["duplicate_fills"] == 1
    assert len(st.journal.load_fills()) == 1


async def test_halted_gate_denies_the_order_and_nothing_is_sent(stack) -> None:
    st, venue, clock = stack
    denied: list[RiskDenied] = []
    st.bus.subscribe(RiskDenied, denied.append)
    st.gate.set_state(TradingState.HALTED, "test", "test")
    target(st, "0.1", clock)
    await settle(st)
    assert venue.submits == []
    assert [d.reason for d in denied] == ["trading_halted"]


async def test_target_below_min_notional_is_skipped_silently(stack) -> None:
    st, venue, clock = stack
    target(st, "0.00001", clock)  # 0.6 USDT < 5 USDT min notional
    await settle(st)
    assert venue.submits == []


async def test_flatten_closes_the_position_at_market(stack) -> None:
    st, venue, clock = stack
    target(st, "0.1", clock)
    await settle(st)
    clock.advance(1)
    venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
    await settle(st)
    st.gate.set_state(TradingState.REDUCING, "kill", "test")
    assert st.engine.flatten("kill") == 1
    await settle(st)
    clock.advance(1)
    venue.step_trade(BTC, 59990.0, 5.0, clock.time_ns())
    await settle(st)
    assert st.portfolio.position_qty(BTC) == 0
    assert st.engine.is_flat()


async def test_cancel_all_cancels_resting_limit_orders(stack) -> None:
    st, venue, clock = stack
    st.engine.update_config(parse(Config, {**CFG, "execution": {"order_type": "LIMIT",
                                                                "limit_offset_bps": 100.0}}).execution)
    target(st, "0.1", clock)
    await settle(st)
    (order,) = st.engine.orders.values()
    assert order.status is OrderStatus.ACCEPTED and order.price == Decimal("59400.00")
    assert await st.engine.cancel_all("test") == 1
    await clock.advance_settle(0.01)
    await settle(st)
    assert order.status is OrderStatus.CANCELED
    assert await venue.open_orders() == []


async def test_filled_ack_before_its_fill_report_does_not_trade_twice(stack) -> None:
    """Binance RESULT/FULL acks say FILLED before the fill report is booked."""
    st, venue, clock = stack

    async def filled_ack(req: OrderRequest) -> VenueOrder:
        venue.submits.append(req.client_order_id)
        return VenueOrder(req.client_order_id, "V1", BTC, req.side, req.order_type, OrderStatus.FILLED,
                          req.quantity, req.quantity, Decimal("60000"), None, clock.time_ns())

    venue.submit_order = filled_ack  # type: ignore[method-assign]
    target(st, "0.1", clock)
    await settle(st)
    (order,) = st.engine.orders.values()
    assert order.status is OrderStatus.FILLED and not order.fills_booked
    assert st.portfolio.position_qty(BTC) == 0
    fill = VenueFill(BTC, order.client_order_id, "V1", "T-9", Side.BUY, Decimal("0.1"), Decimal("60000"),
                     Decimal("6"), "USDT", Liquidity.TAKER, clock.time_ns())
    st.bus.publish(FillReport(ts_event_ns=1, ts_init_ns=1, venue="sim", fill=fill))
    await settle(st)
    assert st.portfolio.position_qty(BTC) == Decimal("0.1")
    assert venue.submits == [order.client_order_id]  # no second buy


async def test_auth_error_rejects_the_order_without_an_unknown_outcome(stack) -> None:
    from nautilus_hmm.core.errors import AuthError

    st, venue, clock = stack
    venue.fail_next = AuthError("sim", "Signature for this request is not valid.", "-1022")
    target(st, "0.1", clock)
    await settle(st)
    (order,) = st.engine.orders.values()
    assert order.status is OrderStatus.REJECTED and "auth" in order.reason
    assert not st.engine.unknown_outcome


async def test_quantity_acknowledged_filled_but_not_booked_counts_when_planning(stack) -> None:
    """Between a FILLED ack and its fill report, neither a new target nor a re-plan trades it again."""
    st, venue, clock = stack

    async def filled_ack(req: OrderRequest) -> VenueOrder:
        venue.submits.append(req.client_order_id)
        return VenueOrder(req.client_order_id, f"V{len(venue.submits)}", BTC, req.side, req.order_type,
                          OrderStatus.FILLED, req.quantity, req.quantity, Decimal("60000"), None, clock.time_ns())

    venue.submit_order = filled_ack  # type: ignore[method-assign]
    target(st, "0.1", clock)
    await settle(st)
    assert st.engine.replan_all() == 0
    target(st, "0.1", clock)
    await settle(st)
    assert len(venue.submits) == 1
    target(st, "0.3", clock)  # only the missing 0.2 is bought
    await settle(st)
    second = st.engine.orders[venue.submits[1]]
    assert second.quantity == Decimal("0.2")


async def test_a_venue_instrument_refresh_reaches_the_engine_and_a_halted_symbol_gets_no_order(stack) -> None:
    import dataclasses

    from nautilus_hmm.messages import InstrumentsUpdated

    st, venue, clock = stack
    halted = dataclasses.replace(venue.instruments()[BTC], tradable=False, min_notional=Decimal("7"))
    now = clock.time_ns()
    st.bus.publish(InstrumentsUpdated(ts_event_ns=now, ts_init_ns=now, venue="sim", instruments=(halted,)))
    assert st.engine.instruments[BTC] == halted
    target(st, "0.1", clock)
    await settle(st)
    assert venue.submits == []
    back = dataclasses.replace(halted, tradable=True)
    st.bus.publish(InstrumentsUpdated(ts_event_ns=now, ts_init_ns=now, venue="sim", instruments=(back,)))
    target(st, "0.1", clock)
    await settle(st)
    assert len(venue.submits) == 1


async def test_an_order_filled_in_two_trades_journals_and_publishes_each_transition_once(stack) -> None:
    from nautilus_hmm.messages import OrderEvent

    st, venue, clock = stack
    events: list[OrderEvent] = []
    st.bus.subscribe(OrderEvent, events.append, name="probe")
    target(st, "0.5", clock)
    await settle(st)
    (order,) = st.engine.orders.values()
    clock.advance(1)
    venue.step_trade(BTC, 60010.0, 0.2, clock.time_ns())  # a partial fill
    await settle(st)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    clock.advance(1)
    venue.step_trade(BTC, 60020.0, 5.0, clock.time_ns())  # the rest
    await settle(st)
    assert order.status is OrderStatus.FILLED
    rows = st.journal.order_history(order.client_order_id)
    expected = [("NEW", Decimal("0")), ("SUBMITTED", Decimal("0")), ("ACCEPTED", Decimal("0")),
                ("PARTIALLY_FILLED", Decimal("0.2")), ("FILLED", Decimal("0.5"))]
    assert [(r.status.value, r.filled_qty) for r in rows] == expected
    assert [(e.status.value, e.filled_qty) for e in events] == expected


async def test_equity_is_measured_in_the_traded_instruments_quote_asset(stack) -> None:
    import dataclasses

    st, _, _ = stack
    fd = dataclasses.replace(st.engine.instruments[BTC], id=InstrumentId("sim", "BTCFDUSD"), quote_asset="FDUSD")
    st.engine.add_instruments([fd])
    assert st.engine.choose_account_currency([fd.id]) == "FDUSD"
    assert st.portfolio.base_currency == "FDUSD"
    assert st.portfolio.price_sources == {"BTC": fd.id}
    assert st.engine.pnl_view()["currency"] == "FDUSD"


def balance(st: TradingStack, clock: ManualClock, venue: str, asset: str, total: str) -> None:
    from nautilus_hmm.messages import BalanceUpdate

    now = clock.time_ns()
    st.bus.publish(BalanceUpdate(ts_event_ns=now, ts_init_ns=now, venue=venue, asset=asset, free=Decimal(total),
                                 locked=Decimal(0)))


async def test_a_venue_balance_update_sets_the_balance_on_a_single_venue_engine(stack) -> None:
    st, venue, clock = stack
    balance(st, clock, "sim", "BNB", "1.5")  # e.g. fees paid in BNB: only the venue knows
    await settle(st)
    assert st.portfolio.cash["BNB"] == Decimal("1.5")
    target(st, "0.1", clock)
    await settle(st)
    clock.advance(1)
    venue.step_trade(BTC, 60010.0, 5.0, clock.time_ns())  # fills; the venue then reports its balances
    await settle(st)
    venue_bal = await venue.balances()
    assert st.portfolio.cash["USDT"] == venue_bal["USDT"].total
    assert st.portfolio.cash["BTC"] == venue_bal["BTC"].total == Decimal("0.1")


async def test_with_several_venues_a_balance_update_moves_only_that_venues_share(stack) -> None:
    st, _, clock = stack
    st.engine.venues["other"] = st.engine.venues["sim"]  # a second venue holding USDT too
    pf = st.portfolio
    at_sim = pf.cash_at("sim", "USDT")
    balance(st, clock, "other", "USDT", "500")  # its first report: 500 there, sim's share stays
    await settle(st)
    assert (pf.cash_at("other", "USDT"), pf.cash_at("sim", "USDT")) == (Decimal(500), at_sim)
    assert pf.cash["USDT"] == at_sim + 500
    balance(st, clock, "other", "USDT", "450")  # 50 left that venue
    await settle(st)
    assert pf.cash["USDT"] == at_sim + 450


async def test_gate_engine_and_strategy_read_one_mark_book(stack) -> None:
    from nautilus_hmm.messages import MarkPrice

    st, _, clock = stack
    now = clock.time_ns()
    st.bus.publish(MarkPrice(ts_event_ns=now, ts_init_ns=now, instrument_id=BTC, price=61000.0))
    assert st.engine.marks_f is st.gate.marks is st.engine.mark_book.marks
    assert st.gate.marks[BTC] == st.engine.marks_f[BTC] == 61000.0
    st.attach_strategy()
    assert st.strategy._ctx.mark(BTC) == 61000.0  # type: ignore[attr-defined]
