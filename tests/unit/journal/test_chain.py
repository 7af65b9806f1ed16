"""Chained row checksums: a journal whose rows were changed behind its back refuses to open,
naming the table and the row; one written only by the journal opens."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import OrderStatus
from nautilus_hmm.journal.errors import JournalCorruptError
from nautilus_hmm.journal.store import Journal
from tests.unit.journal.conftest import fill, request


async def _journal_with_orders(path: Path) -> list[str]:
    """Three orders (one filled, one updated), fills, events, an audit row; closed cleanly."""
    j = Journal.open(path)
    cids = []
    for strategy in ("sma_cross_up", "sma_cross_down", "sma_cross_flat"):
        req = request(j)
        await j.record_intent(req, strategy, 1)
        cids.append(req.client_order_id)
    j.record_order_update(cids[0], OrderStatus.FILLED, Decimal("0.5"), Decimal("100"), "v1", None, 2)
    j.record_order_update(cids[1], OrderStatus.ACCEPTED, Decimal(0), None, "v2", None, 3)
    await j.record_fill("sim", fill(cids[0], "t1"))
    await j.record_fill("sim", fill(cids[0], "t1"))  # a replay: no row, the chain must not move
    await j.record_fill("sim", fill(cids[1], "t2", ts_ns=2_000))
    j.record_event(5, "decision", {"x": 1})
    j.record_audit(6, "resume", "127.0.0.1", {}, "ok")
    j.record_position_snapshot(7, {"BTC": "0.5"})
    await j.flush()
    j.close()
    return cids


async def test_journal_written_only_by_itself_reopens(db_path: Path) -> None:
    cids = await _journal_with_orders(db_path)
    j = Journal.open(db_path)
    try:
        assert [o.client_order_id for o in j.load_orders()] == cids
        # and keeps its chains going across the restart
        req = request(j)
        await j.record_intent(req, "s", 9)
        j.record_order_update(req.client_order_id, OrderStatus.CANCELED, Decimal(0), None, None, "x", 10)
        await j.flush()
    finally:
        j.close()
    Journal.open(db_path).close()


async def test_a_changed_strategy_id_is_refused_naming_the_order(db_path: Path) -> None:
    cids = await _journal_with_orders(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE orders SET strategy_id = 'sma_crocs_down' WHERE client_order_id = ?", (cids[1],))
    with pytest.raises(JournalCorruptError, match=f"table orders, client_order_id '{cids[1]}'"):
        Journal.open(db_path)


async def test_a_changed_order_status_is_refused_naming_the_order(db_path: Path) -> None:
    cids = await _journal_with_orders(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE orders SET filled_qty = '5' WHERE client_order_id = ?", (cids[0],))
    with pytest.raises(JournalCorruptError, match=f"table orders, client_order_id '{cids[0]}'.*state"):
        Journal.open(db_path)


async def test_a_removed_fill_is_refused_naming_the_row_after_it(db_path: Path) -> None:
    await _journal_with_orders(db_path)
    with sqlite3.connect(db_path) as conn:
        first, second = (r[0] for r in conn.execute("SELECT id FROM fills ORDER BY id"))
        conn.execute("DELETE FROM fills WHERE id = ?", (first,))
    with pytest.raises(JournalCorruptError, match=f"table fills, id {second}"):
        Journal.open(db_path)


@pytest.mark.parametrize(("table", "column"), [("order_events", "reason"), ("events", "data"),
                                               ("audit", "result"), ("position_snapshots", "data")])
async def test_a_changed_row_of_any_table_is_refused(db_path: Path, table: str, column: str) -> None:
    await _journal_with_orders(db_path)
    with sqlite3.connect(db_path) as conn:
        (rid,) = conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()
        conn.execute(f"UPDATE {table} SET {column} = {column} || ' ' WHERE id = ?", (rid,))
    with pytest.raises(JournalCorruptError, match=f"table {table}, id {rid}"):
        Journal.open(db_path)


async def test_a_changed_meta_value_is_refused(db_path: Path) -> None:
    await _journal_with_orders(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'next_seq'")
    with pytest.raises(JournalCorruptError, match="table meta, key 'next_seq'"):
        Journal.open(db_path)


async def test_one_flipped_bit_in_the_database_file_is_refused_naming_the_row(db_path: Path) -> None:
    cids = await _journal_with_orders(db_path)
    data = bytearray(db_path.read_bytes())
    at = data.index(b"sma_cross_down")
    data[at + 8] ^= 0x10  # sma_cross_down -> sma_crocs_down: quick_check still passes
    db_path.write_bytes(bytes(data))
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    with pytest.raises(JournalCorruptError, match=f"table orders, client_order_id '{cids[1]}'") as err:
        Journal.open(db_path)
    assert "refusing to start" in str(err.value) and "Restore a backup" in str(err.value)


async def test_a_refused_duplicate_intent_leaves_the_chain_intact(db_path: Path) -> None:
    import asyncio

    from nautilus_hmm.journal.errors import DuplicateClientOrderIdError

    j = Journal.open(db_path)
    req, other = request(j), request(j)
    results = await asyncio.gather(j.record_intent(req, "s", 1), j.record_intent(req, "s", 1),
                                   j.record_intent(other, "s", 1), return_exceptions=True)
    assert isinstance(results[1], DuplicateClientOrderIdError)
    j.close()
    j = Journal.open(db_path)  # the chain verifies: the refused row never linked
    try:
        assert [o.client_order_id for o in j.load_orders()] == [req.client_order_id, other.client_order_id]
    finally:
        j.close()


async def test_adopted_order_keeps_the_chain_and_takes_its_sequence_out_of_circulation(db_path: Path) -> None:
    from nautilus_hmm.domain.enums import OrderType, Side
    from nautilus_hmm.domain.orders import VenueOrder
    from tests.unit.journal.conftest import BTC

    j = Journal.open(db_path)
    cid = f"nh-{j.journal_id}-zzzz-500"  # minted by an earlier start whose rows were lost
    vo = VenueOrder(client_order_id=cid, venue_order_id="v9", instrument_id=BTC, side=Side.BUY,
                    order_type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=Decimal("1"),
                    filled_qty=Decimal("1"), avg_px=Decimal("10"), price=Decimal("10"), ts_ns=5)
    assert await j.record_adopted_order(vo, "adopted", 6) is True
    assert await j.record_adopted_order(vo, "adopted", 7) is None  # already journaled: nothing written
    assert j.allocate_seq() == 501
    j.close()
    j = Journal.open(db_path)
    try:
        row = j.get_order(cid)
        assert row is not None and row.seq == 500 and row.status is OrderStatus.FILLED
        assert j.allocate_seq() > 500
    finally:
        j.close()
