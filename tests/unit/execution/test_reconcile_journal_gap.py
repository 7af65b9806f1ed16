"""A journal that lost its newest rows (the WAL of a killed node deleted) restarts into a
failed reconciliation: the venue's orders and fills of ours are adopted into the journal,
an alert is published, no client order id is minted again, and the check fails."""

from __future__ import annotations

import os
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side, TradingState
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import JournalGapDetected
from tests.unit.execution.test_reconcile import BTC, Node

JOURNAL = "journal.sqlite3"


def _kill_snapshot(state: Path, into: Path) -> None:
    """Copy the journal's files as a SIGKILL right now would leave them."""
    into.mkdir()
    for suffix in ("", "-wal", ".seq"):
        if (state / f"{JOURNAL}{suffix}").exists():
            shutil.copyfile(state / f"{JOURNAL}{suffix}", into / f"{JOURNAL}{suffix}")


def _restore_without_wal(snapshot: Path, state: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".seq"):
        (state / f"{JOURNAL}{suffix}").unlink(missing_ok=True)
    for suffix in ("", ".seq"):
        if (snapshot / f"{JOURNAL}{suffix}").exists():
            shutil.copyfile(snapshot / f"{JOURNAL}{suffix}", state / f"{JOURNAL}{suffix}")


async def _trade_then_lose_the_tail(tmp_path: Path, clock: ManualClock) -> tuple[set[str], set[str]]:
    """Trade; checkpoint after the first order; trade on; die; restart with the WAL deleted.

    Returns (every id the first run minted, the ids whose rows are lost)."""
    a = Node(tmp_path, clock)
    assert await a.start()
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    a.trade(60000.0)
    a.target("0.1")
    await a.settle()
    a.trade(60010.0)
    await a.settle()
    with sqlite3.connect(tmp_path / JOURNAL) as conn:  # the first order and fill reach the main file
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    kept = set(a.st.engine.orders)
    a.target("0.3")
    await a.settle()
    a.trade(60020.0)
    await a.settle()
    # one more order of ours, left open at the venue (a limit far below the market)
    cid = a.journal.next_client_order_id("nh")
    await a.journal.record_intent(OrderRequest(cid, BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                                               Decimal("30000")), "t", clock.time_ns())
    a.venue.submit_order_nowait(OrderRequest(cid, BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                                             Decimal("30000")))
    await a.settle()
    minted = set(a.st.engine.orders) | {cid}
    assert a.st.portfolio.position_qty(BTC) == Decimal("0.3")
    _kill_snapshot(tmp_path, tmp_path / "killed")
    await a.crash()
    a.venue._bus = Bus()
    _restore_without_wal(tmp_path / "killed", tmp_path)
    return minted, minted - kept


async def test_lost_journal_tail_fails_reconciliation_adopts_and_alerts(tmp_path: Path) -> None:
    clock = ManualClock()
    minted, lost = await _trade_then_lose_the_tail(tmp_path, clock)
    assert lost
    b = Node(tmp_path, clock)
    alerts: list[JournalGapDetected] = []
    b.bus.subscribe(JournalGapDetected, alerts.append)
    ok = await b.start()
    assert not ok, "a journal that lost orders of ours must not reconcile ok"
    (res,) = b.results
    assert not res.ok
    assert all(any(c in d and "missing from the journal" in d for d in res.discrepancies) for c in lost)
    assert {c for a in alerts for c in a.client_order_ids} == lost
    # adopted: in the journal (durably) and in the engine, the books match the venue
    await b.settle()
    journaled = {o.client_order_id for o in b.journal.load_orders()}
    assert lost <= journaled
    assert b.st.portfolio.position_qty(BTC) == Decimal("0.3")
    assert b.st.engine.orders[cid_open := max(lost, key=lambda c: int(c.rsplit("-", 1)[1]))].status \
        is OrderStatus.ACCEPTED, cid_open  # the open limit order, tracked again
    assert b.st.gate.state is TradingState.HALTED
    # no id minted before is ever minted again, and the sequence is past every adopted one
    fresh = {b.journal.next_client_order_id("nh") for _ in range(50)}
    assert not fresh & minted
    await b.crash()


async def test_restart_after_adoption_reconciles_ok(tmp_path: Path) -> None:
    clock = ManualClock()
    await _trade_then_lose_the_tail(tmp_path, clock)
    b = Node(tmp_path, clock)
    assert not await b.start()
    await b.settle()
    await b.crash()
    c = Node(tmp_path, clock)
    assert await c.start(), c.results[-1].discrepancies  # the adopted rows make the books agree
    await c.crash()


async def test_journal_behind_its_last_clean_close_fails_reconciliation(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    await a.crash()
    shutil.copyfile(tmp_path / JOURNAL, tmp_path / "backup.sqlite3")
    a2 = Node(tmp_path, clock)
    assert await a2.start()
    for _ in range(3):
        a2.journal.allocate_seq()
    cid = a2.journal.next_client_order_id("nh")
    await a2.journal.record_intent(OrderRequest(cid, BTC, Side.BUY, OrderType.MARKET, Decimal("0.01")), "t", 1)
    await a2.crash()
    os.replace(tmp_path / "backup.sqlite3", tmp_path / JOURNAL)  # an older database put back
    b = Node(tmp_path, clock)
    assert not await b.start()
    assert any("behind its own last clean close" in d for d in b.results[-1].discrepancies)
    await b.crash()


async def test_order_of_ours_missing_from_the_journal_while_live_halts_at_once(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    a.st.gate.set_state(TradingState.ACTIVE, "test", "test")
    a.trade(60000.0)
    # An id of ours reaches the venue without a journal row (the journal lost it).
    cid = a.journal.next_client_order_id("nh")
    a.venue.submit_order_nowait(OrderRequest(cid, BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                                             Decimal("30000")))
    a.st.engine.orders.pop(cid, None)
    (res,) = await a.st.reconciler.reconcile_now()  # one pass (a user-stream gap), not periodic
    assert a.st.gate.state is TradingState.HALTED
    assert cid in a.st.gate.state_reason
    assert not res.ok and res.adopted_lost == [cid]
    await a.settle()
    assert a.journal.get_order(cid) is not None
    await a.crash()


async def test_clean_journal_that_never_reconciled_takes_its_baseline_without_alarm(tmp_path: Path) -> None:
    from nautilus_hmm.journal.store import Journal

    Journal.open(tmp_path / JOURNAL).close()  # a first start that stopped before reconciling
    clock = ManualClock()
    b = Node(tmp_path, clock)
    assert await b.start(), b.results[-1].discrepancies
    await b.crash()


async def test_killed_journal_without_its_baseline_fails_reconciliation(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    cid = a.journal.next_client_order_id("nh")  # an order journaled (it may have been sent)
    await a.journal.record_intent(OrderRequest(cid, BTC, Side.BUY, OrderType.MARKET, Decimal("0.01")), "t",
                                  clock.time_ns())
    _kill_snapshot(tmp_path, tmp_path / "killed")  # the baseline and the order are only in the WAL
    await a.crash()
    _restore_without_wal(tmp_path / "killed", tmp_path)
    b = Node(tmp_path, clock)
    assert not await b.start()
    assert any("no baseline balances" in d for d in b.results[-1].discrepancies)
    await b.crash()


async def test_journal_replaced_under_its_mark_fails_reconciliation(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    assert await a.start()
    await a.crash()
    (tmp_path / JOURNAL).unlink()  # the journal file is lost; its .seq mark and the venue remain
    b = Node(tmp_path, clock)
    assert not await b.start()
    assert any("created new where another journal's sequence mark lay" in d for d in b.results[-1].discrepancies)
    await b.crash()
