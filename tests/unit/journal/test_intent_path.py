"""The intent path per journal mode, and WAL checkpoints off the commit path.

`synchronous = "normal"`: the intent is committed on the loop thread inside
`record_intent` (no fsync to wait for), so its future is already resolved and the row is
in the WAL, visible to any other connection, when the call returns. `"full"`: the writer
thread commits (fsync) and resolves the future afterwards. Either way a checkpoint never
runs inside a commit (wal_autocheckpoint is off); the checkpoint thread's pass does it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import OrderStatus
from nautilus_hmm.journal import store, writer
from nautilus_hmm.journal.errors import DuplicateClientOrderIdError, JournalWriteError
from nautilus_hmm.journal.store import Journal
from tests.unit.journal.conftest import request


def raw(path: Path) -> sqlite3.Connection:
    """A second, independent connection to the journal file."""
    return sqlite3.connect(path)


async def test_normal_intent_is_committed_when_record_intent_returns(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal")
    try:
        req = request(j)
        fut = j.record_intent(req, "s", 7)
        assert fut.done()  # no hand-off: committed on this thread
        seq = fut.result()
        with raw(p) as c:  # another connection sees the committed row
            row = c.execute("SELECT seq, status, quantity FROM orders WHERE client_order_id = ?",
                            (req.client_order_id,)).fetchone()
            events = c.execute("SELECT status FROM order_events WHERE client_order_id = ?",
                               (req.client_order_id,)).fetchall()
            next_seq = int(c.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()[0])
        assert row == (seq, "NEW", "0.5")
        assert events == [("NEW",)]
        assert next_seq == seq + 1
        assert j.commits >= 1 and j.rows_written >= 1
    finally:
        j.close()


async def test_full_intent_is_resolved_by_the_writer_after_its_commit(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p)  # synchronous = full
    try:
        req = request(j)
        fut = j.record_intent(req, "s", 7)
        assert not fut.done()
        seq = await fut
        with raw(p) as c:
            assert c.execute("SELECT seq FROM orders WHERE client_order_id = ?",
                             (req.client_order_id,)).fetchone() == (seq,)
    finally:
        j.close()


async def test_normal_duplicate_intent_fails_its_future_and_writes_nothing(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite3", synchronous="normal")
    try:
        req = request(j)
        await j.record_intent(req, "s", 1)
        fut = j.record_intent(req, "s", 2)
        assert fut.done()
        with pytest.raises(DuplicateClientOrderIdError):
            fut.result()
        assert j.counts()["orders"] == 1
    finally:
        j.close()


async def test_normal_intents_interleave_with_writer_batches_and_keep_the_chain(tmp_path: Path) -> None:
    """Loop-thread intents and writer-thread batches share one connection and the chain tails:
    every row lands, and the chains verify when the journal is opened again."""
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal")
    cids = []
    try:
        for i in range(300):
            req = request(j)
            cids.append(req.client_order_id)
            await j.record_intent(req, "s", i)
            j.record_order_update(req.client_order_id, OrderStatus.SUBMITTED, Decimal(0), None, None, None, i)
            j.record_event(i, "decision", {"i": i})
            if i % 7 == 0:
                await asyncio.sleep(0)  # let the writer thread take a batch now and then
        await j.flush()
    finally:
        j.close()
    j2 = Journal.open(p, synchronous="normal")  # verifies every chain on open
    try:
        orders = {o.client_order_id: o for o in j2.load_orders()}
        assert set(cids) <= set(orders)
        assert all(orders[c].status is OrderStatus.SUBMITTED for c in cids)
    finally:
        j2.close()


async def test_normal_failed_commit_stops_the_journal(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal")
    try:
        with raw(p) as c:  # stands in for an I/O error: every write to `order_events` fails
            c.execute("CREATE TRIGGER boom BEFORE INSERT ON order_events BEGIN SELECT RAISE(FAIL, 'disk on fire'); END")
        fut = j.record_intent(request(j), "s", 1)
        with pytest.raises(JournalWriteError, match="disk on fire"):
            fut.result()
        with pytest.raises(JournalWriteError):
            j.record_intent(request(j), "s", 2)
        assert not j.health().ok
        assert j.counts()["orders"] == 0  # rolled back: not journaled, so never sent
    finally:
        j.close()


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_write_connection_never_checkpoints_in_a_commit(tmp_path: Path, sync: str) -> None:
    j = Journal.open(tmp_path / "j.sqlite3", synchronous=sync)
    try:
        assert j._wconn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    finally:
        j.close()


def test_wal_grows_past_the_autocheckpoint_size_until_the_checkpoint_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "CHECKPOINT_INTERVAL_S", 3600.0)  # the thread's pass never comes here
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal")
    try:
        async def many() -> None:
            for i in range(400):  # several pages each: past SQLite's default of 1000
                await j.record_intent(request(j), "s", i)

        asyncio.run(many())
        db_size = p.stat().st_size
        frames, done = j.checkpoint()
        assert frames > 1000  # no commit checkpointed: the WAL holds every frame
        assert done == frames  # the pass copied all of it into the database file
        assert p.stat().st_size > db_size
        assert j.checkpoints == 1
        with raw(p) as c:
            assert c.execute("SELECT count(*) FROM orders").fetchone()[0] == 400
    finally:
        j.close()


def test_checkpoint_thread_stops_with_close(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite3", synchronous="normal")
    assert j._checkpointer is not None and j._checkpointer.is_alive()
    j.close()
    assert not j._checkpointer.is_alive()


class CountingQueue:
    """The journal's writer queue, recording every put (a put wakes the writer thread)."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.puts: list[tuple[object, ...]] = []

    def put(self, item: tuple[object, ...]) -> None:
        self.puts.append(item)
        self.real.put(item)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def bundle_rows(item: tuple[object, ...]) -> list[object]:
    """The rows of a hand-off (always one bundle: the writer commits it at once)."""
    assert item[0] is writer._op_bundle
    return list(item[3])  # type: ignore[call-overload]


async def test_fire_and_forget_rows_of_a_commit_window_reach_the_writer_as_one_hand_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal", commit_interval_ms=250.0)
    try:
        q = j._queue = CountingQueue(j._queue)  # type: ignore[assignment]
        timers: list[tuple[float, object]] = []
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "call_later", lambda delay, cb, *a: timers.append((delay, cb)))
        for turn in range(5):  # rows of several loop turns, one window
            for i in range(10):
                j.record_event(turn * 10 + i, "decision", {"i": i})
            for _ in range(4):
                await asyncio.sleep(0)
        assert q.puts == []  # nothing handed over (no writer wake-up) inside the window
        assert [d for d, _ in timers] == [0.25]  # one timer: the window of the first row
        assert j.queue_depth == 50
        timers[0][1]()  # the window is over
        assert len(q.puts) == 1 and len(bundle_rows(q.puts[0])) == 50
        j.record_event(50, "decision", {})  # a new window starts with the next row
        assert [d for d, _ in timers] == [0.25, 0.25]
        await j.flush()
        with raw(p) as c:
            assert [r[0] for r in c.execute("SELECT ts_ns FROM events ORDER BY id")] == list(range(51))
    finally:
        j.close()


async def test_a_durable_write_hands_the_gathered_rows_over_before_itself(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, commit_interval_ms=60_000)  # full: a fill is a durable write; the window never ends here
    try:
        req = request(j)
        await j.record_intent(req, "s", 1)
        q = j._queue = CountingQueue(j._queue)  # type: ignore[assignment]
        j.record_order_update(req.client_order_id, OrderStatus.CANCELED, Decimal(0), None, None, "x", 2)
        j.record_event(3, "decision", {})
        assert q.puts == []
        await j.flush()
        assert len(q.puts) == 1  # one wake-up of the writer: the rows, then the flush, one bundle
        rows = bundle_rows(q.puts[0])
        assert len(rows) == 3 and rows[-1][1] is not None  # type: ignore[index]
        with raw(p) as c:
            assert c.execute("SELECT status FROM orders").fetchone() == ("CANCELED",)
            assert c.execute("SELECT count(*) FROM events").fetchone() == (1,)
    finally:
        j.close()


async def test_a_full_batch_of_gathered_rows_is_handed_over_at_once(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal", commit_interval_ms=60_000)
    try:
        q = j._queue = CountingQueue(j._queue)  # type: ignore[assignment]
        j.max_batch_rows = 8
        for i in range(20):
            j.record_event(i, "decision", {})
        assert [len(bundle_rows(item)) for item in q.puts] == [8, 8]  # 4 left for the window
        assert j.queue_depth >= 4
        await j.flush()
        with raw(p) as c:
            assert [r[0] for r in c.execute("SELECT ts_ns FROM events ORDER BY id")] == list(range(20))
    finally:
        j.close()


async def test_rows_recorded_just_before_close_are_committed(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal")
    req = request(j)
    await j.record_intent(req, "s", 1)
    j.record_order_update(req.client_order_id, OrderStatus.CANCELED, Decimal(0), None, None, "x", 2)
    await j.aclose()  # no loop turn in between: close hands the rows over itself
    with raw(p) as c:
        assert c.execute("SELECT status FROM orders").fetchone() == ("CANCELED",)


def test_without_a_running_loop_rows_are_handed_over_at_once(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal")
    try:
        j.record_event(1, "decision", {})
        assert j._handoff_buf == []
    finally:
        j.close()
    with raw(p) as c:
        assert c.execute("SELECT count(*) FROM events").fetchone() == (1,)


async def test_a_checkpoint_thread_that_cannot_connect_is_counted_and_writes_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nautilus_hmm.journal import files

    real_connect = files.connect

    def connect(path: str, mode: str) -> sqlite3.Connection:
        if threading.current_thread().name == "journal-checkpoint":
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(path, mode)

    monkeypatch.setattr(files, "connect", connect)
    monkeypatch.setattr(store, "CHECKPOINT_INTERVAL_S", 3600.0)
    j = Journal.open(tmp_path / "j.sqlite3", synchronous="normal")
    try:
        assert j._checkpointer is not None
        j._checkpointer.join(5)
        assert j.checkpoint_failures == 1  # logged, not raised: the WAL just grows meanwhile
        assert j.health().ok
        await j.record_intent(request(j), "s", 1)
        assert j.counts()["orders"] == 1
    finally:
        j.close()


async def test_a_failed_checkpoint_pass_is_counted_and_the_next_one_runs(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal")
    try:
        await j.record_intent(request(j), "s", 1)

        class Broken:
            def execute(self, sql: str) -> None:
                raise sqlite3.OperationalError("disk I/O error")

        with pytest.raises(sqlite3.OperationalError):
            j.checkpoint(Broken())  # type: ignore[arg-type]
        frames, done = j.checkpoint()
        assert done == frames > 0
    finally:
        j.close()


def test_normal_mode_keeps_writer_batches_short(tmp_path: Path) -> None:
    """The loop waits for a writer batch in progress before committing an intent itself."""
    j = Journal.open(tmp_path / "n.sqlite3", synchronous="normal", max_batch_rows=1000)
    f = Journal.open(tmp_path / "f.sqlite3", synchronous="full", max_batch_rows=1000)
    try:
        assert j.max_batch_rows == store.NORMAL_MAX_BATCH_ROWS
        assert f.max_batch_rows == 1000
    finally:
        j.close()
        f.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the writer re-raises its bug
async def test_a_durable_write_bundled_behind_a_writer_crash_fails_instead_of_hanging(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite3", commit_interval_ms=60_000)
    entered, release = threading.Event(), threading.Event()
    real_run_batch = j._run_batch

    def crashing_run_batch(batch: list[object], resolve: object) -> None:
        entered.set()
        release.wait(10)
        raise RuntimeError("a bug in the writer")

    j._run_batch = crashing_run_batch  # type: ignore[method-assign,assignment]
    try:
        first = j.flush()  # the writer takes this one and crashes on it
        assert await asyncio.to_thread(entered.wait, 10)
        j.record_event(1, "decision", {})
        queued = j.flush()  # bundled with the row behind the crash
        release.set()
        with pytest.raises(JournalWriteError, match="writer thread crashed"):
            await asyncio.wait_for(queued, 10)
        first.cancel()
        # The writer re-raises its bug as it ends: let it end inside this test (whose filter
        # expects the warning), not during whichever test runs next on this worker.
        await asyncio.to_thread(j._thread.join, 10)
        assert not j._thread.is_alive()
    finally:
        j._run_batch = real_run_batch  # type: ignore[method-assign]
        j._closed = True  # the writer is gone: nothing to stop
        j._wconn.close()


async def test_a_stalled_writers_backlog_is_counted_in_rows_and_snapshots_and_events_are_shed(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal", commit_interval_ms=60_000, max_queue_rows=50)
    entered, release = threading.Event(), threading.Event()
    real_run_batch = j._run_batch

    def stalled_run_batch(batch: list[object], resolve: object) -> None:
        entered.set()
        release.wait(10)
        real_run_batch(batch, resolve)  # type: ignore[arg-type]

    j._run_batch = stalled_run_batch  # type: ignore[method-assign,assignment]
    try:
        first = j.flush()  # the writer takes it and stalls (a slow disk)
        assert await asyncio.to_thread(entered.wait, 10)
        j.max_batch_rows = 10  # the loop hands a bundle over every 10 rows: 5 queue items hold 50 rows
        for i in range(200):
            j.record_event(i, "decision", {})
        j.record_audit(1, "halt", "127.0.0.1", {}, "ok")  # never shed
        assert j.queue_depth == 51 and j.dropped_rows == 150
        release.set()
        await first
        await j.flush()
        assert j.queue_depth == 0
        with raw(p) as c:
            assert c.execute("SELECT count(*) FROM events").fetchone() == (50,)
            assert c.execute("SELECT count(*) FROM audit").fetchone() == (1,)
    finally:
        release.set()
        j._run_batch = real_run_batch  # type: ignore[method-assign]
        j.close()


def test_rows_recorded_after_the_loop_of_a_pending_window_ended_are_still_handed_over(tmp_path: Path) -> None:
    from tests.integration.waits import until

    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal", commit_interval_ms=60_000)
    try:
        async def first_loop() -> None:
            j.record_event(1, "decision", {})  # its window's timer dies with this loop

        asyncio.run(first_loop())
        j.commit_interval_ms = 1.0  # live setting: short windows from now on

        async def second_loop() -> None:
            j.record_event(2, "decision", {})
            await until(lambda: j.queue_depth == 0, what="this loop's window handing both rows over")

        asyncio.run(second_loop())
        j.close()
        with raw(p) as c:
            assert [r[0] for r in c.execute("SELECT ts_ns FROM events ORDER BY id")] == [1, 2]
    finally:
        j.close()
