"""Journal store: durability points, dedupe, sequences, batching, refusal of bad files."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.journal.chain import row_chk
from nautilus_hmm.journal.errors import (
    DuplicateClientOrderIdError,
    JournalClosedError,
    JournalCorruptError,
    JournalError,
    JournalInUseError,
    JournalSchemaError,
    JournalWriteError,
)
from nautilus_hmm.journal.hwm import mark_path
from nautilus_hmm.journal.schema import SCHEMA_VERSION
from nautilus_hmm.journal.store import Journal
from tests.unit.journal.conftest import BTC, ETH, fill, request

REPO = Path(__file__).resolve().parents[3]


def raw(path: Path) -> sqlite3.Connection:
    """A second, independent connection to the journal file."""
    return sqlite3.connect(path)


# ---------------------------------------------------------------- durability


async def test_intent_is_on_disk_when_record_intent_resolves(journal: Journal, db_path: Path) -> None:
    req = request(journal)
    fut = journal.record_intent(req, "strat-a", 1_000)
    assert not fut.done()  # resolved by the writer only after its commit
    seq = await fut
    row = raw(db_path).execute(
        "SELECT seq, status, quantity, price, strategy_id FROM orders WHERE client_order_id = ?",
        (req.client_order_id,),
    ).fetchone()
    assert row == (seq, "NEW", "0.5", "100.25", "strat-a")


async def test_intent_commits_next_sequence_with_the_order_row(journal: Journal, db_path: Path) -> None:
    seq = await journal.record_intent(request(journal), "s", 1)
    stored = raw(db_path).execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()[0]
    assert int(stored) == seq + 1


async def test_fill_is_on_disk_when_record_fill_resolves(journal: Journal, db_path: Path) -> None:
    assert await journal.record_fill("sim", fill("c1", "T1")) is True
    rows = raw(db_path).execute("SELECT venue, trade_id, qty, price, fee FROM fills").fetchall()
    assert rows == [("sim", "T1", "0.5", "100", "0.01")]


def test_journal_runs_in_wal_mode_with_full_fsync(journal: Journal, db_path: Path) -> None:
    assert raw(db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.pragmas == {"journal_mode": "wal", "synchronous": "FULL", "foreign_keys": True}


def test_durable_false_turns_fsync_off(db_path: Path) -> None:
    j = Journal.open(db_path, durable=False)
    try:
        assert j.pragmas["synchronous"] == "OFF"
        assert j.pragmas["journal_mode"] == "wal"
    finally:
        j.close()


# --------------------------------------------------------------------- fills


async def test_same_fill_twice_is_recorded_once(journal: Journal) -> None:
    first = await journal.record_fill("sim", fill("c1", "T1"))
    again = await journal.record_fill("sim", fill("c1", "T1"))
    assert (first, again) == (True, False)
    assert journal.counts()["fills"] == 1
    assert journal.duplicate_fills == 1


async def test_same_fill_twice_in_one_batch_is_recorded_once(journal: Journal) -> None:
    results = await asyncio.gather(
        journal.record_fill("sim", fill("c1", "T1")), journal.record_fill("sim", fill("c1", "T1"))
    )
    assert results == [True, False]
    assert journal.counts()["fills"] == 1


async def test_same_trade_id_on_two_instruments_is_two_fills(journal: Journal) -> None:
    # Binance trade ids are per symbol: BTCUSDT trade 7 and ETHUSDT trade 7 both happened.
    a = await journal.record_fill("sim", fill("c1", "7", instrument=BTC))
    b = await journal.record_fill("sim", fill("c2", "7", instrument=ETH))
    assert (a, b) == (True, True)
    assert journal.fill_exists("sim", "7", ETH)
    assert not journal.fill_exists("sim", "8", ETH)


async def test_fill_of_unknown_order_is_recorded(journal: Journal) -> None:
    assert await journal.record_fill("sim", fill("manual-trade", "T9"))
    assert [f.client_order_id for f in journal.load_fills()] == ["manual-trade"]


async def test_non_finite_fill_price_is_refused_before_queueing(journal: Journal) -> None:
    with pytest.raises(ValueError, match="price"):
        journal.record_fill("sim", fill("c1", "T1", price="NaN"))
    assert journal.queue_depth == 0


async def test_fills_load_in_replay_order_with_decimals(journal: Journal) -> None:
    await journal.record_fill("sim", fill("c1", "T2", ts_ns=20, price="101.5"))
    await journal.record_fill("sim", fill("c1", "T1", ts_ns=10, price="100.1"))
    fills = journal.load_fills()
    assert [(f.trade_id, f.price) for f in fills] == [("T1", Decimal("100.1")), ("T2", Decimal("101.5"))]
    assert journal.load_fills(since_ns=15)[0].trade_id == "T2"
    assert journal.last_fill_ts_ns("sim") == 20
    assert journal.last_fill_ts_ns("bybit") is None


async def test_query_fills_pages_from_the_read_thread(journal: Journal) -> None:
    for i in range(5):
        await journal.record_fill("sim", fill("c1", f"T{i}", ts_ns=i))
    page = await journal.query_fills(since_ns=2, limit=2)
    assert [f.trade_id for f in page] == ["T2", "T3"]


# ----------------------------------------------------------------- sequences


async def test_sequences_are_issued_in_order(journal: Journal) -> None:
    seqs = await asyncio.gather(*(journal.record_intent(request(journal), "s", 1) for _ in range(3)))
    assert seqs == [1, 2, 3]
    assert journal.next_client_order_id("hmm") == f"hmm-{journal.journal_id}-{journal.epoch}-4"


async def test_reopened_journal_continues_the_sequence(db_path: Path) -> None:
    j = Journal.open(db_path)
    jid = j.journal_id
    last = 0
    for _ in range(3):
        last = await j.record_intent(request(j), "s", 1)
    j.close()
    j2 = Journal.open(db_path)
    try:
        assert j2.journal_id == jid
        assert j2.allocate_seq() == last + 1
    finally:
        j2.close()


_CRASH_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from decimal import Decimal
    from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.journal.store import Journal
    from nautilus_hmm.domain.orders import OrderRequest

    async def main():
        j = Journal.open(sys.argv[1], synchronous=sys.argv[2])
        iid = InstrumentId("sim", "BTCUSDT")

        async def one():
            cid = j.next_client_order_id("t")
            req = OrderRequest(cid, iid, Side.BUY, OrderType.MARKET, Decimal("1"))
            seq = await j.record_intent(req, "s", 1)
            # acknowledged = "sent to the venue": must never be re-issued
            sys.stdout.write(f"ack {seq}\\n")
            sys.stdout.flush()
            j.record_order_update(cid, OrderStatus.SUBMITTED, Decimal(0), None, None, None, 2)

        while True:
            await asyncio.gather(*(one() for _ in range(50)))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("sync", ["full", "normal"])  # normal: intents committed on the loop thread
def test_sequence_is_never_reissued_after_a_kill_mid_batch(db_path: Path, sync: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD, str(db_path), sync],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    )
    acknowledged: list[int] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 400:
            line = child.stdout.readline()
            assert line, "child exited before acknowledging 400 intents"
            if line.startswith("ack "):  # other lines are the child's log output
                acknowledged.append(int(line[4:]))
    finally:
        child.send_signal(signal.SIGKILL)  # no close(), no flush: the writer dies mid-batch
        child.wait()
    j = Journal.open(db_path, synchronous=sync)
    try:
        journaled = {o.seq for o in j.load_orders()}
        assert set(acknowledged) <= journaled  # every acknowledged intent survived
        fresh = [j.allocate_seq() for _ in range(100)]
        assert min(fresh) > max(journaled)
        assert not set(fresh) & journaled
    finally:
        j.close()


async def test_reused_client_order_id_fails_the_intent(journal: Journal) -> None:
    req = request(journal)
    await journal.record_intent(req, "s", 1)
    with pytest.raises(DuplicateClientOrderIdError, match=req.client_order_id):
        await journal.record_intent(req, "s", 2)


async def test_duplicate_in_a_batch_fails_only_that_intent(journal: Journal) -> None:
    req, other = request(journal), request(journal)
    results = await asyncio.gather(
        journal.record_intent(req, "s", 1), journal.record_intent(req, "s", 1),
        journal.record_intent(other, "s", 1), return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], DuplicateClientOrderIdError)


async def test_same_sequence_under_another_prefix_is_refused(journal: Journal) -> None:
    req = request(journal)
    seq = await journal.record_intent(req, "s", 1)
    twin = OrderRequest(f"x-{journal.journal_id}-{seq}", BTC, Side.BUY, OrderType.MARKET, Decimal(1))
    with pytest.raises(DuplicateClientOrderIdError):
        await journal.record_intent(twin, "s", 2)


async def test_client_order_id_of_another_journal_is_refused(journal: Journal) -> None:
    req = OrderRequest("t-zzzzzz-1", BTC, Side.BUY, OrderType.MARKET, Decimal(1))
    with pytest.raises(ValueError, match="not minted by journal"):
        journal.record_intent(req, "s", 1)


async def test_non_positive_quantity_is_refused(journal: Journal) -> None:
    with pytest.raises(ValueError, match="quantity"):
        journal.record_intent(request(journal, qty="0"), "s", 1)


async def test_next_sequence_follows_orders_when_meta_lags(db_path: Path) -> None:
    j = Journal.open(db_path)
    await j.record_intent(request(j), "s", 1)
    await j.record_intent(request(j), "s", 1)
    j.close()
    with raw(db_path) as conn:  # a consistent meta row that lags the orders (checksum kept valid)
        conn.execute("UPDATE meta SET value = '1', chk = ? WHERE key = 'next_seq'", (row_chk("next_seq", "1"),))
    os.unlink(mark_path(str(db_path)))  # and no sequence mark to fall back on
    j2 = Journal.open(db_path)
    try:
        assert j2.next_seq == 3
    finally:
        j2.close()


# ------------------------------------------------------------------ batching


async def test_fire_and_forget_rows_commit_together_with_the_next_durable_write(db_path: Path) -> None:
    j = Journal.open(db_path, commit_interval_ms=60_000)  # the window never elapses in this test
    try:
        req = request(j)
        await j.record_intent(req, "s", 1)
        commits = j.commits
        j.record_order_update(req.client_order_id, OrderStatus.ACCEPTED, Decimal(0), None, "V1", None, 2)
        j.record_position_snapshot(3, {"BTCUSDT": Decimal("0.5")})
        j.record_audit(4, "halt", "127.0.0.1", {"reason": "test"}, "ok")
        j.record_event(5, "decision", {"target": Decimal("0.25")})
        await j.flush()
        assert j.commits == commits + 1
        assert j.last_batch_rows == 4
        c = raw(db_path)
        assert c.execute("SELECT status, venue_order_id FROM orders").fetchone() == ("ACCEPTED", "V1")
        assert c.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    finally:
        j.close()


async def test_concurrent_intents_share_commits(journal: Journal) -> None:
    commits = journal.commits
    await asyncio.gather(*(journal.record_intent(request(journal), "s", 1) for _ in range(200)))
    assert journal.counts()["orders"] == 200
    assert journal.commits - commits < 200


async def test_close_commits_queued_rows(db_path: Path) -> None:
    j = Journal.open(db_path, commit_interval_ms=60_000)
    req = request(j)
    await j.record_intent(req, "s", 1)
    j.record_order_update(req.client_order_id, OrderStatus.CANCELED, Decimal(0), None, None, "user", 9)
    j.record_event(9, "risk_denial", {"rail": "max_notional"})
    await j.aclose()
    c = raw(db_path)
    assert c.execute("SELECT status, reason, updated_ns FROM orders").fetchone() == ("CANCELED", "user", 9)
    assert c.execute("SELECT kind FROM events").fetchall() == [("risk_denial",)]


async def test_order_update_keeps_fields_given_as_none(journal: Journal) -> None:
    req = request(journal)
    await journal.record_intent(req, "s", 1)
    cid = req.client_order_id
    journal.record_order_update(cid, OrderStatus.ACCEPTED, Decimal(0), None, "V1", None, 2)
    journal.record_order_update(cid, OrderStatus.PARTIALLY_FILLED, Decimal("0.2"), Decimal("100.1"), None, None, 3)
    await journal.flush()
    row = journal.get_order(cid)
    assert row is not None
    assert (row.status, row.filled_qty, row.avg_px, row.venue_order_id) == (
        OrderStatus.PARTIALLY_FILLED, Decimal("0.2"), Decimal("100.1"), "V1",
    )
    assert [e.status for e in journal.order_history(cid)] == [
        OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
    ]


async def test_update_of_unknown_order_is_counted_not_written(journal: Journal) -> None:
    journal.record_order_update("nobody-1", OrderStatus.FILLED, Decimal(1), None, None, None, 1)
    await journal.flush()
    assert journal.failed_rows == 1
    assert journal.counts()["order_events"] == 0


async def test_cancelled_waiter_does_not_disturb_the_batch(journal: Journal) -> None:
    doomed = asyncio.ensure_future(journal.record_intent(request(journal), "s", 1))
    kept = journal.record_intent(request(journal), "s", 1)
    doomed.cancel()
    assert await kept == 2
    assert journal.counts()["orders"] == 2  # the cancelled caller's intent is still journaled


async def test_snapshots_and_events_are_shed_when_queue_is_full(db_path: Path) -> None:
    j = Journal.open(db_path, commit_interval_ms=60_000, max_queue_rows=0)
    try:
        j.record_event(1, "decision", {})
        j.record_position_snapshot(1, {})
        j.record_audit(1, "halt", "127.0.0.1", {}, "ok")  # never shed
        await j.flush()
        assert j.dropped_rows == 2
        assert j.counts()["audit"] == 1
    finally:
        j.close()


# ------------------------------------------------------------------ read API


async def test_load_orders_open_only_skips_terminal_orders(journal: Journal) -> None:
    done, live = request(journal), request(journal)
    await journal.record_intent(done, "s", 1)
    await journal.record_intent(live, "s", 1)
    journal.record_order_update(done.client_order_id, OrderStatus.FILLED, Decimal("0.5"), Decimal(100), None, None, 2)
    await journal.flush()
    assert [o.client_order_id for o in journal.load_orders(open_only=True)] == [live.client_order_id]
    assert len(journal.load_orders()) == 2
    assert journal.counts()["open_orders"] == 1


async def test_position_snapshot_round_trips_decimals_and_instrument_keys(journal: Journal) -> None:
    journal.record_position_snapshot(5, {BTC: {"qty": Decimal("0.12345678")}})
    journal.record_position_snapshot(6, {BTC: {"qty": Decimal("0.2")}})
    await journal.flush()
    snap = journal.latest_position_snapshot()
    assert snap is not None
    assert (snap.ts_ns, snap.data) == (6, {"sim:BTCUSDT": {"qty": "0.2"}})


async def test_audit_rows_come_newest_first(journal: Journal) -> None:
    for i in range(3):
        journal.record_audit(i, f"action{i}", "10.0.0.1", {"i": i}, "ok")
    await journal.flush()
    rows = await journal.query_audit(limit=2)
    assert [(r.action, r.params) for r in rows] == [("action2", {"i": 2}), ("action1", {"i": 1})]


async def test_events_filter_by_kind(journal: Journal) -> None:
    journal.record_event(1, "decision", {"a": 1})
    journal.record_event(2, "risk_denial", {"b": 2})
    await journal.flush()
    rows = await journal.query_events(kind="risk_denial")
    assert [(r.ts_ns, r.data) for r in rows] == [(2, {"b": 2})]


async def test_read_runs_any_sync_read_off_the_loop(journal: Journal) -> None:
    await journal.record_intent(request(journal), "s", 1)
    orders = await journal.read(journal.load_orders, True)
    assert len(orders) == 1


# ------------------------------------------------------------- failure modes


async def test_failed_commit_stops_the_journal(journal: Journal, db_path: Path) -> None:
    with raw(db_path) as c:  # stands in for an I/O error: every write to `events` fails
        c.execute("CREATE TRIGGER boom BEFORE INSERT ON events BEGIN SELECT RAISE(FAIL, 'disk on fire'); END")
    runner = asyncio.ensure_future(journal.run())
    journal.record_event(1, "decision", {})
    with pytest.raises(JournalWriteError, match="disk on fire"):
        await journal.record_intent(request(journal), "s", 1)
    with pytest.raises(JournalWriteError):
        journal.record_intent(request(journal), "s", 1)
    with pytest.raises(JournalWriteError):
        await runner
    assert not journal.health().ok
    assert journal.counts()["orders"] == 0  # the batch was rolled back as a whole


async def test_write_after_close_raises(db_path: Path) -> None:
    j = Journal.open(db_path)
    j.close()
    with pytest.raises(JournalClosedError):
        j.record_event(1, "x", {})
    with pytest.raises(JournalClosedError):
        j.load_orders()


def test_health_is_ok_and_carries_counters(journal: Journal) -> None:
    h = journal.health()
    assert h.ok
    assert {"rows_written", "commits", "queue_depth", "last_commit_latency_s"} <= set(h.info)


# ------------------------------------------------------------------ refusals


def _assert_refused(path: Path, error: type[JournalError], match: str) -> None:
    before = path.read_bytes()
    with pytest.raises(error, match=match):
        Journal.open(path)
    assert path.read_bytes() == before


def test_random_bytes_are_refused_and_left_untouched(db_path: Path) -> None:
    db_path.write_bytes(os.urandom(8192))
    _assert_refused(db_path, JournalCorruptError, "not a SQLite database")


async def test_truncated_database_is_refused_and_left_untouched(db_path: Path) -> None:
    j = Journal.open(db_path)
    await asyncio.gather(*(j.record_intent(request(j), "s", 1) for _ in range(500)))
    j.close()
    data = db_path.read_bytes()
    db_path.write_bytes(data[: len(data) // 2])
    _assert_refused(db_path, JournalCorruptError, "corrupt|quick_check")
    assert not Path(f"{db_path}-wal").exists()


def test_empty_file_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"")
    _assert_refused(db_path, JournalCorruptError, "empty")


def test_newer_schema_is_refused_and_left_untouched(db_path: Path) -> None:
    Journal.open(db_path).close()
    with raw(db_path) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    _assert_refused(db_path, JournalSchemaError, f"schema version {SCHEMA_VERSION + 1} is newer")


def test_foreign_sqlite_database_is_refused(db_path: Path) -> None:
    with raw(db_path) as c:
        c.execute("CREATE TABLE notes (body TEXT)")
    _assert_refused(db_path, JournalSchemaError, "not a nautilus-hmm journal")


def test_second_open_of_an_open_journal_is_refused(journal: Journal, db_path: Path) -> None:
    with pytest.raises(JournalInUseError, match="in use"):
        Journal.open(db_path)


def test_missing_file_with_create_false_is_refused(db_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        Journal.open(db_path, create=False)
    assert not db_path.exists()


def test_orphan_wal_without_database_is_refused(db_path: Path) -> None:
    Path(f"{db_path}-wal").write_bytes(b"stale")
    with pytest.raises(JournalCorruptError, match="-wal exists"):
        Journal.open(db_path)
    assert not db_path.exists()


def test_new_journal_gets_a_random_six_char_id(tmp_path: Path) -> None:
    ids = set()
    for i in range(3):
        j = Journal.open(tmp_path / f"j{i}.sqlite3")
        ids.add(j.journal_id)
        j.close()
    assert len(ids) == 3
    assert all(re.fullmatch(r"[a-z0-9]{6}", i) for i in ids)


# ---------------------------------------------------------------- backtests


async def test_memory_journal_resolves_writes_inline() -> None:
    j = Journal.open(":memory:")
    try:
        req = request(j)
        fut = j.record_intent(req, "s", 1)
        assert fut.done() and fut.result() == 1
        assert await j.record_fill("sim", fill(req.client_order_id, "T1")) is True
        assert await j.record_fill("sim", fill(req.client_order_id, "T1")) is False
        j.record_order_update(req.client_order_id, OrderStatus.FILLED, Decimal("0.5"), Decimal(100), None, None, 2)
        assert j.load_orders()[0].status is OrderStatus.FILLED
        assert len(await j.query_fills()) == 1
    finally:
        j.close()


def test_synchronous_normal_skips_the_sequence_ahead_on_every_open(tmp_path) -> None:
    from nautilus_hmm.journal.store import SEQ_GAP_UNSYNCED, Journal

    p = tmp_path / "j.sqlite3"
    j = Journal.open(p)
    first = j.next_seq
    j.close()
    j = Journal.open(p, synchronous="normal")
    assert j.pragmas["synchronous"] == "NORMAL"
    assert j.next_seq == first + SEQ_GAP_UNSYNCED
    j.close()
