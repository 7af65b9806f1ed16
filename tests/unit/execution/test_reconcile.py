"""Recovery and reconciliation: a journal cut mid-order-flow restarts into books that
agree with the venue; discrepancies keep trading halted."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import ReconciliationCompleted, TargetPosition
from nautilus_hmm.venues.sim.venue import SimVenue

BTC = InstrumentId("sim", "BTCUSDT")
CFG = {"strategy": {"kind": "sma_cross"}, "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}}}


class Node:
    """The trading half of a node: journal + sim venue + stack, on one state dir."""

    def __init__(self, state_dir: Path, clock: ManualClock, unknown_orders: str = "cancel") -> None:
        self.cfg = parse(Config, {**CFG, "execution": {"unknown_orders": unknown_orders}})
        self.clock = clock
        self.bus = Bus()
        self.journal = Journal.open(state_dir / "journal.sqlite3")
        self.venue = SimVenue(self.cfg.venues.sim, self.bus, clock, state_dir)
        self.st: TradingStack = build_stack(self.cfg, self.bus, clock, self.journal, {"sim": self.venue},
                                            durable=True)
        self.results: list[ReconciliationCompleted] = []
        self.bus.subscribe(ReconciliationCompleted, self.results.append)
        self._consumer: asyncio.Task | None = None

    async def start(self) -> bool:
        await self.venue.start()
        await self.st.engine.start()
        self._consumer = asyncio.create_task(self.st.engine.run())
        self.st.engine.add_instruments(self.venue.instruments().values())
        self.st.attach_market()
        assert self.st.reconciler is not None
        return await self.st.reconciler.startup()

    def trade(self, price: float) -> None:
        self.clock.advance(1)
        self.venue.step_trade(BTC, price, 5.0, self.clock.time_ns())

    def target(self, qty: str) -> None:
        now = self.clock.time_ns()
        self.bus.publish(TargetPosition(ts_event_ns=now, ts_init_ns=now, strategy_id="t", instrument_id=BTC,
                                        target_qty=Decimal(qty)))

    async def settle(self) -> None:
        for _ in range(3):
            await self.st.engine.idle()
            await self.journal.flush()

    async def crash(self) -> None:
        """Vanish: no graceful stop of the engine; only what the journal committed survives."""
        assert self._consumer is not None
        self._consumer.cancel()
        self.st.engine.detach()
        self.journal.close()


async def test_restart_after_a_cut_mid_order_flow_recovers_books_that_match_the_venue(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    a.trade(60000.0)
    a.target("0.1")
    await a.settle()
    a.trade(60010.0)  # fills order 1
    await a.settle()
    assert a.st.portfolio.position_qty(BTC) == Decimal("0.1")
    a.target("0.2")  # order 2 reaches the venue...
    await a.settle()
    first_ids = set(a.st.engine.orders)
    # ... and the process dies before seeing its fill: the venue fills it while we are down.
    await a.crash()
    a.venue._bus = Bus()  # nobody hears the venue's reports any more
    a.trade(60020.0)
    # An intent journaled but never sent (crash between commit and send).
    j = Journal.open(tmp_path / "journal.sqlite3")
    unsent = j.next_client_order_id("nh")
    await j.record_intent(OrderRequest(unsent, BTC, Side.BUY, OrderType.MARKET, Decimal("0.05")), "t",
                          clock.time_ns())
    j.close()

    b = Node(tmp_path, clock)
    ok = await b.start()
    assert ok, b.results[-1].discrepancies
    (res,) = b.results
    assert b.st.portfolio.position_qty(BTC) == Decimal("0.2")  # the missed fill was recovered
    recon = b.st.reconciler.last["sim"]
    assert recon.recovered_fills == 1
    assert recon.closed_unsent == 1
    assert b.st.engine.orders[unsent].status is OrderStatus.REJECTED
    assert all(b.st.engine.orders[c].status is OrderStatus.FILLED for c in first_ids)
    # Cash equals what the venue holds (checked by reconciliation, asserted here too).
    venue_usdt = (await b.venue.balances())["USDT"].total
    assert b.st.portfolio.cash["USDT"] == venue_usdt
    # The sequence continues: a new order never reuses an id.
    assert b.journal.next_client_order_id("nh") not in first_ids | {unsent}
    await b.crash()


async def test_balance_discrepancy_keeps_trading_halted(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    await a.crash()
    # Someone moves money at the venue behind our back.
    acct = a.venue._acct()
    acct.balances()  # ensure loaded
    from nautilus_hmm.venues.sim.account import ACCOUNT_FILE

    path = tmp_path / ACCOUNT_FILE
    text = path.read_text().replace('"100000', '"90000', 1)
    path.write_text(text)
    b = Node(tmp_path, clock)
    assert not await b.start()
    (res,) = b.results
    assert not res.ok
    assert any("USDT: balance 100000" in d and "90000" in d for d in res.discrepancies)
    assert b.st.gate.state is TradingState.HALTED
    await b.crash()


async def test_foreign_open_order_is_canceled_at_start(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.trade(60000.0)
    a.venue.submit_order_nowait(OrderRequest("manual-1", BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                                             Decimal("50000")))
    await a.crash()
    b = Node(tmp_path, clock)
    assert await b.start()
    assert b.st.reconciler.last["sim"].canceled_foreign == 1
    assert await b.venue.open_orders() == []
    await b.crash()


async def test_foreign_open_order_is_adopted_when_configured(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.trade(60000.0)
    a.venue.submit_order_nowait(OrderRequest("manual-2", BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                                             Decimal("50000")))
    await a.crash()
    b = Node(tmp_path, clock, unknown_orders="adopt")
    assert await b.start()
    assert b.st.reconciler.last["sim"].adopted_foreign == 1
    assert b.st.engine.orders["manual-2"].status is OrderStatus.ACCEPTED
    await b.crash()


async def test_periodic_reconciliation_halts_only_on_a_discrepancy_seen_twice(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    pf = a.st.portfolio
    pf.set_cash("USDT", pf.cash_at("sim", "USDT") + 1, "sim")  # our books drift from the venue's
    await a.st.reconciler.reconcile_now(periodic=True)
    assert a.st.gate.state is TradingState.ACTIVE
    await a.st.reconciler.reconcile_now(periodic=True)
    assert a.st.gate.state is TradingState.HALTED
    assert "reconciliation" in a.st.gate.state_reason
    await a.crash()


async def test_startup_reconciliation_waits_out_a_rate_limit_instead_of_halting(tmp_path: Path) -> None:
    from nautilus_hmm.core.errors import RateLimited

    clock = ManualClock()
    a = Node(tmp_path, clock)
    calls = {"n": 0}
    real = a.venue.open_orders

    async def limited(iid=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RateLimited("sim", "Too many requests", retry_after_s=30.0, code="-1003")
        return await real(iid)

    a.venue.open_orders = limited  # type: ignore[method-assign]
    task = asyncio.create_task(a.start())
    for _ in range(400):  # the journal reads run in threads: let them progress between steps
        await asyncio.sleep(0.005)
        await clock.advance_settle(1.0)
        if task.done():
            break
    assert task.done() and task.result() is True
    assert calls["n"] == 2
    await a.crash()
