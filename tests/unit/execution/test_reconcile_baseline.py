"""A start killed after it opened its journal but before it journaled its baseline balances.

The next start takes the baseline then and reconciles ok when it is proven that no order was
ever sent under the journal (the sequence mark reserved no sequence, no order, no fill, no
intent-log record); anything less keeps halting. The decision alone (`baseline_doubts`, each
condition flipped) and real starts on a journal left as a SIGKILL leaves it (its files copied
while it is open) with a sim venue.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import Liquidity, OrderType, Side
from nautilus_hmm.domain.orders import OrderRequest, VenueFill
from nautilus_hmm.execution.reconcile import BASELINE_EVENT, baseline_doubts
from nautilus_hmm.journal.hwm import TailStatus, mark_path
from tests.unit.execution.test_reconcile import BTC, Node

JOURNAL = "journal.sqlite3"
NO_BASELINE = "no baseline balances although it is not new"


# ---------------------------------------------------------------- the decision


def test_an_unverified_journal_that_never_reserved_and_holds_nothing_is_proven_unsent() -> None:
    assert baseline_doubts(TailStatus.UNVERIFIED, True, 0, 0, 0) == []


@pytest.mark.parametrize(("args", "doubt"), [
    ((TailStatus.NO_MARK, True, 0, 0, 0), "its tail is no_mark"),
    ((TailStatus.LOST, True, 0, 0, 0), "its tail is lost"),
    ((TailStatus.REPLACED, True, 0, 0, 0), "its tail is replaced"),
    ((TailStatus.UNVERIFIED, False, 0, 0, 0), "sequence mark"),
    ((TailStatus.UNVERIFIED, True, 1, 0, 0), "it holds 1 order(s)"),
    ((TailStatus.UNVERIFIED, True, None, 0, 0), "its orders were not read"),
    ((TailStatus.UNVERIFIED, True, 0, 2, 0), "it holds 2 fill(s)"),
    ((TailStatus.UNVERIFIED, True, 0, None, 0), "its fills were not read"),
    ((TailStatus.UNVERIFIED, True, 0, 0, 1), "its intent log held 1 intent(s)"),
], ids=["no-mark", "lost", "replaced", "mark-reserved", "an-order", "orders-unread", "fills", "fills-unread",
        "intent-log"])
def test_each_condition_flipped_leaves_a_doubt(args: tuple, doubt: str) -> None:
    doubts = baseline_doubts(*args)
    assert len(doubts) == 1 and doubt in doubts[0], doubts


# ---------------------------------------------------------------- starts on a killed journal


def _killed(state: Path, into: Path) -> None:
    """Copy the journal's files as a SIGKILL right now would leave them."""
    into.mkdir()
    for suffix in ("", "-wal", ".seq"):
        if (state / f"{JOURNAL}{suffix}").exists():
            shutil.copyfile(state / f"{JOURNAL}{suffix}", into / f"{JOURNAL}{suffix}")


def _restore(snapshot: Path, state: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".seq"):
        (state / f"{JOURNAL}{suffix}").unlink(missing_ok=True)
        if (snapshot / f"{JOURNAL}{suffix}").exists():
            shutil.copyfile(snapshot / f"{JOURNAL}{suffix}", state / f"{JOURNAL}{suffix}")


def _killed_before_baseline(state: Path, clock: ManualClock, name: str = "killed") -> Node:
    """A start that opened its journal and was killed before it reconciled; returns its node."""
    a = Node(state, clock)  # opens (creates) the journal; the start has not begun
    _killed(state, state / name)
    a.journal.close()
    _restore(state / name, state)
    return a


def _baselines(node: Node) -> list:
    return node.journal.events(BASELINE_EVENT, 0, 10)


async def test_a_first_start_killed_before_its_baseline_does_not_halt_the_next(tmp_path: Path) -> None:
    clock = ManualClock()
    _killed_before_baseline(tmp_path, clock)
    b = Node(tmp_path, clock)
    assert b.journal.tail_status is TailStatus.UNVERIFIED
    with capture_logs() as logs:
        ok = await b.start()
    assert ok, b.results[-1].discrepancies
    assert [e["event"] for e in logs if e["event"] == "baseline_balances_late"] == ["baseline_balances_late"]
    await b.settle()
    assert len(_baselines(b)) == 1
    await b.crash()


async def test_two_starts_killed_before_the_baseline_do_not_halt_the_third(tmp_path: Path) -> None:
    clock = ManualClock()
    _killed_before_baseline(tmp_path, clock, "k1")
    _killed_before_baseline(tmp_path, clock, "k2")
    c = Node(tmp_path, clock)
    assert await c.start(), c.results[-1].discrepancies
    await c.crash()


async def test_an_order_journaled_before_the_kill_keeps_the_next_start_halted(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    cid = a.journal.next_client_order_id("nh")  # (not through reconciliation: a bug, an operator tool)
    await a.journal.record_intent(OrderRequest(cid, BTC, Side.BUY, OrderType.MARKET, Decimal("0.01")), "t",
                                  clock.time_ns())
    _killed(tmp_path, tmp_path / "killed")
    a.journal.close()
    _restore(tmp_path / "killed", tmp_path)
    b = Node(tmp_path, clock)
    assert not await b.start()
    problem = next(d for d in b.results[-1].discrepancies if NO_BASELINE in d)
    assert "1 order(s)" in problem and "sequence mark" in problem
    await b.crash()


async def test_a_fill_journaled_before_the_kill_keeps_the_next_start_halted(tmp_path: Path) -> None:
    clock = ManualClock()
    a = Node(tmp_path, clock)
    await a.journal.record_fill("sim", VenueFill(
        instrument_id=BTC, client_order_id="manual-1", venue_order_id="v1", trade_id="t1", side=Side.BUY,
        qty=Decimal("0.01"), price=Decimal("60000"), fee=Decimal("0"), fee_asset="USDT",
        liquidity=Liquidity.TAKER, ts_ns=clock.time_ns()))
    _killed(tmp_path, tmp_path / "killed")
    a.journal.close()
    _restore(tmp_path / "killed", tmp_path)
    b = Node(tmp_path, clock)
    assert not await b.start()
    problem = next(d for d in b.results[-1].discrepancies if NO_BASELINE in d)
    assert "it holds 1 fill(s)" in problem
    await b.crash()


async def test_a_mark_written_before_none_reserved_existed_keeps_the_next_start_halted(tmp_path: Path) -> None:
    clock = ManualClock()
    _killed_before_baseline(tmp_path, clock)
    mark = Path(mark_path(str(tmp_path / JOURNAL)))
    doc = orjson.loads(mark.read_bytes())
    del doc["none_reserved"]
    mark.write_bytes(orjson.dumps(doc))
    b = Node(tmp_path, clock)
    assert not await b.start()
    assert any(NO_BASELINE in d and "sequence mark" in d for d in b.results[-1].discrepancies)
    await b.crash()


async def test_a_deleted_mark_keeps_the_next_start_halted(tmp_path: Path) -> None:
    clock = ManualClock()
    _killed_before_baseline(tmp_path, clock)
    Path(mark_path(str(tmp_path / JOURNAL))).unlink()
    b = Node(tmp_path, clock)
    assert b.journal.tail_status is TailStatus.NO_MARK
    assert not await b.start()
    assert any(NO_BASELINE in d and "its tail is no_mark" in d for d in b.results[-1].discrepancies)
    await b.crash()
