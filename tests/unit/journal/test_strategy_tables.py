"""Schema v4: the strategy router's tables (attribution rows, latest targets, equity samples)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.journal import files
from nautilus_hmm.journal.errors import JournalCorruptError
from nautilus_hmm.journal.schema import SCHEMA_VERSION, migrate, user_version
from nautilus_hmm.journal.store import Journal
from tests.unit.journal.conftest import BTC, ETH

D = Decimal


def _v3_journal(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, target=3)
    files.init_meta(conn, ManualClock())
    conn.close()


async def test_v3_journal_migrates_to_the_strategy_tables(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    _v3_journal(path)
    j = Journal.open(path)
    try:
        assert SCHEMA_VERSION == 4 and j.schema_version == 4
        j.record_strategy_fill(5, "trend", BTC, "fill", D("0.5"), D("100"), D("0.01"), "T1", "c-1")
        await j.flush()
        assert [r.trade_id for r in j.load_strategy_fills()] == ["T1"]
    finally:
        j.close()
    assert user_version(sqlite3.connect(path)) == 4


async def test_strategy_fill_rows_read_back_as_written(journal: Journal) -> None:
    journal.record_strategy_fill(5, "trend", BTC, "fill", D("-0.25"), D("100.5"), D("0.001"), "T1", "c-1")
    journal.record_strategy_fill(6, "_house", ETH, "cross", D("1E-12"), D("2"), D("0"))
    await journal.flush()
    a, b = journal.load_strategy_fills()
    assert (a.strategy_id, a.instrument_id, a.kind, a.qty, a.price, a.fee, a.trade_id, a.client_order_id) == (
        "trend", BTC, "fill", D("-0.25"), D("100.5"), D("0.001"), "T1", "c-1")
    assert (b.strategy_id, b.instrument_id, b.qty, b.trade_id) == ("_house", ETH, D("1E-12"), "")
    assert [r.id for r in journal.load_strategy_fills(since_id=a.id)] == [b.id]


async def test_a_strategy_target_row_keeps_only_the_latest(journal: Journal) -> None:
    journal.record_strategy_target(1, "trend", "production", BTC, 0.5, None, D("1.2"), "up")
    journal.record_strategy_target(2, "trend", "production", BTC, None, D("3"), D("3"), "fixed")
    journal.record_strategy_target(2, "trend", "canary", BTC, -0.25, None, D("-0.1"), "")
    await journal.flush()
    rows = {(r.strategy_id, r.lane): r for r in journal.load_strategy_targets()}
    assert len(rows) == 2
    prod = rows[("trend", "production")]
    assert (prod.exposure, prod.target_qty, prod.effective_qty, prod.reason, prod.ts_ns) == (None, D("3"), D("3"), "fixed", 2)
    assert rows[("trend", "canary")].exposure == -0.25


async def test_equity_samples_read_back_per_strategy(journal: Journal) -> None:
    journal.record_strategy_equity(10, "a", 1010.0, 10.0, 1.5, 0.5, 1000.0)
    journal.record_strategy_equity(11, "b", 990.0, -10.0, 0.0, 0.5, 1000.0)
    await journal.flush()
    (row,) = journal.strategy_equity("a")
    assert (row.ts_ns, row.equity_usd, row.unrealized_usd, row.capital_usd) == (10, 1010.0, 1.5, 1000.0)
    assert len(journal.strategy_equity()) == 2


async def test_the_strategy_rows_survive_a_reopen_with_their_checksums(db_path: Path) -> None:
    j = Journal.open(db_path)
    j.record_strategy_fill(5, "trend", BTC, "fill", D("0.5"), D("100"), D("0.01"), "T1", "c-1")
    j.record_strategy_target(5, "trend", "production", BTC, 1.0, None, D("0.5"))
    j.record_strategy_equity(5, "trend", 1.0, 0.0, 0.0, 0.0, 1.0)
    await j.flush()
    j.close()
    j2 = Journal.open(db_path)
    try:
        assert len(j2.load_strategy_fills()) == 1 and len(j2.load_strategy_targets()) == 1
        assert j2.counts()["strategy_equity"] == 1
    finally:
        j2.close()


@pytest.mark.parametrize(("table", "column", "value"), [
    ("strategy_fills", "qty", "0.6"),
    ("strategy_targets", "effective_qty", "9"),
    ("strategy_equity", "equity_usd", 2.0),
])
async def test_a_changed_strategy_row_is_refused_at_open(db_path: Path, table: str, column: str, value: object) -> None:
    j = Journal.open(db_path)
    j.record_strategy_fill(5, "trend", BTC, "fill", D("0.5"), D("100"), D("0.01"), "T1", "c-1")
    j.record_strategy_target(5, "trend", "production", BTC, 1.0, None, D("0.5"))
    j.record_strategy_equity(5, "trend", 1.0, 0.0, 0.0, 0.0, 1.0)
    await j.flush()
    j.close()
    with sqlite3.connect(db_path) as c:
        c.execute(f"UPDATE {table} SET {column} = ?", (value,))
    with pytest.raises(JournalCorruptError, match=table):
        Journal.open(db_path)


def test_memory_journal_has_the_strategy_tables() -> None:
    j = Journal.open(":memory:")
    j.record_strategy_target(1, "a", "production", BTC, None, D("1"), D("1"))
    assert j.load_strategy_targets()[0].effective_qty == D("1")
    j.close()
