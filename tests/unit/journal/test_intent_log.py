"""The intent log of `synchronous = "full"` (journal/intentlog.py): an intent is acknowledged
once fsynced in `<journal>.intents`, folded into SQLite off the order path, and replayed at
every open; a damaged log refuses the start naming the file and the offset.

"What a SIGKILL leaves" is a copy of the journal's files taken while the writer holds the
folds back (commit_interval_ms = 5 s: fire-and-forget rows wait that long for company), so
the log has intents SQLite lacks; one test SIGKILLs a real child process instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nautilus_hmm.core.ids import client_order_id
from nautilus_hmm.journal import hwm, intentlog
from nautilus_hmm.journal.errors import (
    DuplicateClientOrderIdError,
    JournalCorruptError,
    JournalError,
    JournalWriteError,
)
from nautilus_hmm.journal.store import Journal
from tests.unit.journal.conftest import request

REPO = Path(__file__).resolve().parents[3]
HOLD_FOLDS_MS = 5000.0  # the writer keeps fire-and-forget rows (the folds) this long


@pytest.fixture(autouse=True)
def _small_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 KiB preallocated instead of 1 MiB: every open zero-fills and fsyncs a new log (disk time)."""
    monkeypatch.setattr(intentlog, "PREALLOCATE_BYTES", 64 * 1024)


def _open(path: Path, **kw: object) -> Journal:
    return Journal.open(path, intent_log=True, **kw)  # type: ignore[arg-type]


def _copy_state(src: Path, dst: Path) -> Path:
    """Copy every file of the journal at `src` (db, -wal, .seq, .intents) to `dst`'s directory."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for f in src.parent.iterdir():
        if f.name.startswith(src.name) and not f.name.endswith(".lock"):
            shutil.copyfile(f, dst.parent / f.name.replace(src.name, dst.name))
    return dst


def _cids(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as c:
        return dict(c.execute("SELECT client_order_id, seq FROM orders").fetchall())


async def _killed_with_unfolded(tmp_path: Path, n: int = 5) -> tuple[Path, list[str]]:
    """A journal copy whose log holds `n` acknowledged intents (one fsync group each) SQLite lacks."""
    src = tmp_path / "live" / "j.sqlite3"
    src.parent.mkdir()
    j = _open(src, commit_interval_ms=HOLD_FOLDS_MS)
    try:
        cids = []
        for _ in range(n):
            req = request(j)
            await j.record_intent(req, "s", 7)  # acknowledged: "sent"
            cids.append(req.client_order_id)
        await asyncio.sleep(0)  # (no real sleep: one loop turn)
        dst = _copy_state(src, tmp_path / "killed" / "j.sqlite3")
    finally:
        j.close()
    assert not set(cids) & set(_cids(dst)), "the folds reached SQLite before the copy: test premise broken"
    return dst, cids


# ------------------------------------------------------------------ the order path


async def test_intent_resolves_after_the_log_fsync_and_reaches_sqlite_off_the_path(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    try:
        req = request(j)
        fut = j.record_intent(req, "s", 7)
        assert not fut.done()
        seq = await fut
        scanned = intentlog.scan(intentlog.log_path(str(p)), j.journal_id)
        assert scanned is not None
        assert [(r.client_order_id, r.seq) for r in scanned.records] == [(req.client_order_id, seq)]
        assert j.health().info["intent_log_records"] == 1
        await j.flush()  # the fold is a fire-and-forget row: committed by now
        row = j.get_order(req.client_order_id)
        assert row is not None and row.seq == seq and row.status.value == "NEW"
        assert [e.status.value for e in j.order_history(req.client_order_id)] == ["NEW"]
    finally:
        j.close()
    j2 = _open(p)  # the folded row passes the chained-checksum walk
    try:
        assert j2.replayed_intents == 0 and j2.tail_status is hwm.TailStatus.CLEAN
        assert j2.next_seq == seq + 1
    finally:
        j2.close()


async def test_concurrent_intents_share_fsync_groups(tmp_path: Path) -> None:
    j = _open(tmp_path / "j.sqlite3")
    try:
        reqs = [request(j) for _ in range(200)]
        seqs = await asyncio.gather(*(j.record_intent(r, "s", 1) for r in reqs))
        assert seqs == sorted(seqs) and len(set(seqs)) == 200
        info = j.health().info
        assert info["intent_log_records"] == 200
        assert info["intent_log_groups"] < 200  # group commit: fewer fdatasyncs than intents
    finally:
        j.close()


async def test_duplicate_id_is_refused_before_the_send_and_logged_once(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    try:
        req = request(j)
        await j.record_intent(req, "s", 1)
        with pytest.raises(DuplicateClientOrderIdError, match=req.client_order_id):
            await j.record_intent(req, "s", 2)
        seq = j._seq_of(req.client_order_id)
        twin = dataclasses.replace(req, client_order_id=client_order_id("x", j.journal_id, seq, j.epoch))
        with pytest.raises(DuplicateClientOrderIdError):  # the same sequence under another prefix
            await j.record_intent(twin, "s", 3)
        scanned = intentlog.scan(intentlog.log_path(str(p)), j.journal_id)
        assert scanned is not None and len(scanned.records) == 1
    finally:
        j.close()


async def test_the_mark_covers_a_sequence_before_it_is_acknowledged(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    try:
        j._reserved_seq = j.next_seq + 2  # the next block boundary is two intents away
        hwm.write(hwm.mark_path(str(p)), hwm.HighWaterMark(j.journal_id, j._reserved_seq, clean=False))
        reqs = [request(j) for _ in range(5)]
        for r in reqs:
            seq = await j.record_intent(r, "s", 1)
            mark = hwm.read(hwm.mark_path(str(p)))
            assert mark is not None and mark.reserved_seq > seq
    finally:
        j.close()


async def test_a_failed_fsync_stops_the_journal_and_fails_the_intent(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    j = _open(tmp_path / "j.sqlite3")
    try:
        def eio(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(intentlog.os, "fdatasync", eio)
        with pytest.raises(JournalWriteError, match="fsync failed"):
            await j.record_intent(request(j), "s", 1)
        assert not j.health().ok
        with pytest.raises(JournalWriteError):
            j.record_intent(request(j), "s", 1)  # never retried: every later write refuses
    finally:
        monkeypatch.undo()
        j.close()


# ------------------------------------------------------------------ replay at open


async def test_acknowledged_intents_missing_from_sqlite_are_folded_in_at_open(tmp_path: Path) -> None:
    killed, cids = await _killed_with_unfolded(tmp_path)
    j = _open(killed)
    try:
        assert j.replayed_intents == 5
        assert j.tail_status is hwm.TailStatus.UNVERIFIED
        rows = {o.client_order_id: o for o in j.load_orders()}
        assert set(cids) <= set(rows)
        assert all(rows[c].status.value == "NEW" for c in cids)  # recovery asks the venue about each
        assert j.next_seq > max(rows[c].seq for c in cids)
    finally:
        j.close()
    j2 = _open(killed)  # replayed once: the fresh log holds nothing to fold again
    try:
        assert j2.replayed_intents == 0 and len(j2.load_orders()) == 5
    finally:
        j2.close()


async def test_normal_mode_folds_a_leftover_log_and_removes_it(tmp_path: Path) -> None:
    killed, cids = await _killed_with_unfolded(tmp_path)
    j = Journal.open(killed, synchronous="normal")
    try:
        assert j.replayed_intents == 5
        assert set(cids) <= {o.client_order_id for o in j.load_orders()}
    finally:
        j.close()
    assert not os.path.exists(intentlog.log_path(str(killed)))


_CRASH_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from decimal import Decimal
    from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.journal.store import Journal
    from nautilus_hmm.domain.orders import OrderRequest

    async def main():
        j = Journal.open(sys.argv[1], intent_log=True)
        iid = InstrumentId("sim", "BTCUSDT")

        async def one():
            cid = j.next_client_order_id("t")
            req = OrderRequest(cid, iid, Side.BUY, OrderType.MARKET, Decimal("1"))
            seq = await j.record_intent(req, "s", 1)
            sys.stdout.write(f"ack {seq}\\n")  # acknowledged = "sent to the venue"
            sys.stdout.flush()
            j.record_order_update(cid, OrderStatus.SUBMITTED, Decimal(0), None, None, None, 2)

        while True:
            await asyncio.gather(*(one() for _ in range(50)))

    asyncio.run(main())
    """
)


def test_sigkill_never_loses_an_acknowledged_intent_nor_reissues_its_sequence(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", _CRASH_CHILD, str(db)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True)
    acknowledged: list[int] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 600:
            line = child.stdout.readline()
            assert line, "child exited before acknowledging 600 intents"
            if line.startswith("ack "):
                acknowledged.append(int(line[4:]))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    j = _open(db)
    try:
        journaled = {o.seq for o in j.load_orders()}
        assert set(acknowledged) <= journaled
        fresh = [j.allocate_seq() for _ in range(100)]
        assert min(fresh) > max(journaled)
    finally:
        j.close()


# ------------------------------------------------------------------ damage


def _records(killed: Path, journal_id: str | None = None) -> list[intentlog.LogRecord]:
    jid = journal_id or _journal_id(killed)
    scanned = intentlog.scan(intentlog.log_path(str(killed)), jid)
    assert scanned is not None
    return scanned.records


def _journal_id(db: Path) -> str:
    with sqlite3.connect(db) as c:
        return str(c.execute("SELECT value FROM meta WHERE key = 'journal_id'").fetchone()[0])


def _rec_len(rec: intentlog.LogRecord, data: bytes) -> int:
    n = int.from_bytes(data[rec.offset:rec.offset + 4], "little")
    return intentlog.REC_HEADER_LEN + n + (-(intentlog.REC_HEADER_LEN + n) % intentlog.ALIGN)


async def test_truncated_mid_record_ignores_only_that_last_record(tmp_path: Path) -> None:
    killed, cids = await _killed_with_unfolded(tmp_path)
    recs = _records(killed)
    log_file = intentlog.log_path(str(killed))
    os.truncate(log_file, recs[-1].offset + 20)  # mid-record: its payload is cut
    j = _open(killed)
    try:
        assert j.replayed_intents == 4
        have = {o.client_order_id for o in j.load_orders()}
        assert set(cids[:4]) <= have and cids[4] not in have
        assert j.next_seq > recs[-1].seq  # the mark still covers the lost record's sequence
    finally:
        j.close()


async def test_torn_last_record_with_garbage_after_it_is_ignored(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    recs = _records(killed)
    log_file = intentlog.log_path(str(killed))
    with open(log_file, "r+b") as f:
        data = f.read()
        end = recs[-1].offset + _rec_len(recs[-1], data)
        f.seek(recs[-1].offset + 30)
        f.write(b"\x5a" * (end - recs[-1].offset - 30 + 100))  # half the record and beyond: a torn write
    j = _open(killed)
    try:
        assert j.replayed_intents == 4
    finally:
        j.close()


async def test_bit_flipped_in_the_middle_record_refuses_naming_file_and_offset(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    recs = _records(killed)
    mid = recs[2]
    log_file = intentlog.log_path(str(killed))
    with open(log_file, "r+b") as f:
        f.seek(mid.offset + intentlog.REC_HEADER_LEN + 5)
        b = f.read(1)
        f.seek(mid.offset + intentlog.REC_HEADER_LEN + 5)
        f.write(bytes([b[0] ^ 0x08]))
    before = Path(log_file).read_bytes()
    with pytest.raises(JournalCorruptError, match=rf"{log_file}.*offset {mid.offset}.*refusing to start"):
        _open(killed)
    assert Path(log_file).read_bytes() == before  # left untouched for the operator
    with pytest.raises(JournalCorruptError, match=f"offset {mid.offset}"):
        Journal.open(killed, synchronous="normal")  # whatever the mode: the log is read first


async def test_zeroed_middle_record_is_damage_not_the_end(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    recs = _records(killed)
    log_file = intentlog.log_path(str(killed))
    data = bytearray(Path(log_file).read_bytes())
    data[recs[1].offset:recs[1].offset + _rec_len(recs[1], bytes(data))] = bytes(_rec_len(recs[1], bytes(data)))
    Path(log_file).write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match=f"offset {recs[1].offset}"):
        _open(killed)


async def test_a_record_cut_out_is_a_sequence_gap(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    recs = _records(killed)
    log_file = intentlog.log_path(str(killed))
    data = Path(log_file).read_bytes()
    cut = data[:recs[2].offset] + data[recs[3].offset:]
    Path(log_file).write_bytes(cut)
    with pytest.raises(JournalCorruptError, match=rf"offset {recs[2].offset} has lsn {recs[3].lsn}, expected "
                       rf"{recs[2].lsn} \(a gap\)"):
        _open(killed)


async def test_a_sequence_lower_than_the_journals_when_the_log_began_refuses(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    recs = _records(killed)
    log_file = intentlog.log_path(str(killed))
    data = bytearray(Path(log_file).read_bytes())
    values = list(recs[-1].values)
    values[1] = 0  # a sequence from before this log (and the database) began
    rec = intentlog.encode(recs[-1].lsn, tuple(values))
    end = recs[-1].offset + _rec_len(recs[-1], bytes(data))
    data[recs[-1].offset:end] = bytes(end - recs[-1].offset)
    data[recs[-1].offset:recs[-1].offset + len(rec)] = rec
    Path(log_file).write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match=r"client order sequence 0, lower than the journal's sequence"):
        _open(killed)


async def test_an_intent_disagreeing_with_sqlite_on_its_sequence_refuses(tmp_path: Path) -> None:
    killed, cids = await _killed_with_unfolded(tmp_path)
    j = _open(killed)  # folds the five
    jid = j.journal_id
    j.close()
    log_file = intentlog.log_path(str(killed))
    intentlog.create(log_file, jid, 1, 0, 0)
    with open(log_file, "r+b") as f:  # cids[0] again, but with a sequence the database gave nobody
        f.seek(intentlog.HEADER_LEN)
        f.write(intentlog.encode(1, (cids[0], 999_999, "sim:BTCUSDT", "s", "BUY", "LIMIT", "1", "1", "GTC", 0, 1)))
    with pytest.raises(JournalCorruptError, match=f"{cids[0]} has sequence 999999 but the database"):
        _open(killed)


async def test_a_log_of_another_journal_refuses(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    intentlog.create(intentlog.log_path(str(killed)), "zzzzzz", 1, 0, 0)
    with pytest.raises(JournalCorruptError, match="intent log of journal 'zzzzzz'"):
        _open(killed)


async def test_a_damaged_header_refuses(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    log_file = intentlog.log_path(str(killed))
    with open(log_file, "r+b") as f:
        f.seek(20)
        f.write(b"\xff")
    with pytest.raises(JournalCorruptError, match="header at offset 0 is damaged"):
        _open(killed)


async def test_deleted_log_after_a_crash_counts_the_tail_as_lost(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    os.unlink(intentlog.log_path(str(killed)))
    j = _open(killed)
    try:
        # The intents are gone with the log: reconciliation fails and trading stays halted
        # (execution/reconcile.py) until an operator has looked at the venues.
        assert j.tail_status is hwm.TailStatus.LOST
        assert j.replayed_intents == 0
        fresh = j.allocate_seq()
        assert fresh > 5  # the mark still covers every sequence handed out before
    finally:
        j.close()


async def test_deleted_log_after_a_clean_close_is_harmless(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    await j.record_intent(request(j), "s", 1)
    j.close()
    os.unlink(intentlog.log_path(str(p)))
    j2 = _open(p)
    try:
        assert j2.tail_status is hwm.TailStatus.CLEAN
        assert os.path.exists(intentlog.log_path(str(p)))
    finally:
        j2.close()


async def test_zero_filled_preallocated_tail_is_the_end_of_the_log(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    log_file = intentlog.log_path(str(killed))
    recs = _records(killed)
    data = Path(log_file).read_bytes()
    end = recs[-1].offset + _rec_len(recs[-1], data)
    assert len(data) >= intentlog.PREALLOCATE_BYTES and not data[end:].strip(b"\0")
    j = _open(killed)
    try:
        assert j.replayed_intents == 5
    finally:
        j.close()


async def test_the_log_grows_past_its_preallocation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intentlog, "PREALLOCATE_BYTES", 4096)
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    try:
        for _ in range(3):  # groups larger than the free space, and extensions after a group
            reqs = [request(j) for _ in range(40)]
            await asyncio.gather(*(j.record_intent(r, "s", 1) for r in reqs))
        scanned = intentlog.scan(intentlog.log_path(str(p)), j.journal_id)
        assert scanned is not None and [r.lsn for r in scanned.records] == list(range(1, 121))
        assert os.path.getsize(intentlog.log_path(str(p))) > 4096
    finally:
        j.close()


async def test_the_log_notes_what_sqlite_committed(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    try:
        first = [request(j) for _ in range(3)]
        await asyncio.gather(*(j.record_intent(r, "s", 1) for r in first))
        await j.flush()  # the three folds are committed
        await j.record_intent(request(j), "s", 1)  # its group carries the fold mark at the latest
        scanned = intentlog.scan(intentlog.log_path(str(p)), j.journal_id)
        assert scanned is not None and scanned.folded_lsn >= 3
        assert [r.lsn for r in scanned.records] == [1, 2, 3, 4]  # marks are not intents
    finally:
        j.close()


async def test_intents_the_database_lost_after_committing_them_count_the_tail_as_lost(tmp_path: Path) -> None:
    src = tmp_path / "live" / "j.sqlite3"
    src.parent.mkdir()
    j = _open(src, commit_interval_ms=HOLD_FOLDS_MS)
    try:
        reqs = [request(j) for _ in range(3)]
        for r in reqs:
            await j.record_intent(r, "s", 1)
        killed = _copy_state(src, tmp_path / "killed" / "j.sqlite3")  # the database without them
        await j.flush()  # now committed ...
        await j.record_intent(request(j), "s", 1)  # ... and the log says so
        shutil.copyfile(intentlog.log_path(str(src)), intentlog.log_path(str(killed)))
    finally:
        j.close()
    # As if the database lost its newest commits (a deleted or cut WAL): the log restores
    # the intents, and the start counts the tail as lost (reconciliation fails, halted).
    j2 = _open(killed)
    try:
        assert j2.tail_status is hwm.TailStatus.LOST
        assert j2.replayed_intents == 4
        assert {r.client_order_id for r in reqs} <= {o.client_order_id for o in j2.load_orders()}
    finally:
        j2.close()


async def test_a_log_beside_a_newly_created_journal_is_kept_aside_and_the_tail_replaced(tmp_path: Path) -> None:
    killed, _ = await _killed_with_unfolded(tmp_path)
    for suffix in ("", "-wal", "-shm"):  # the database is gone, its intent log is not
        Path(f"{killed}{suffix}").unlink(missing_ok=True)
    j = _open(killed)
    try:
        assert j.tail_status is hwm.TailStatus.REPLACED
        aside = [f for f in killed.parent.iterdir() if ".intents.orphan-" in f.name]
        assert len(aside) == 1 and len(_records_of(aside[0])) == 5
    finally:
        j.close()


def _records_of(log_file: Path) -> list[intentlog.LogRecord]:
    jid = log_file.read_bytes()[8:14].decode()
    scanned = intentlog.scan(str(log_file), jid)
    assert scanned is not None
    return scanned.records


def test_a_log_that_cannot_be_written_refuses_the_open_naming_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "j.sqlite3"
    log_file = intentlog.log_path(str(p))

    def read_only(path: str, *a: object, **kw: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", f"{path}.new")

    monkeypatch.setattr(intentlog, "create", read_only)
    with pytest.raises(JournalError, match=rf"cannot write {log_file}\.new: .*Read-only file system"):
        _open(p)
    monkeypatch.undo()
    _open(p).close()  # the lock was released: the next start opens


async def test_the_log_starts_over_once_sqlite_holds_everything_in_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intentlog, "PREALLOCATE_BYTES", 4096)
    monkeypatch.setattr(intentlog, "ROTATE_BYTES", 2048)
    src = tmp_path / "live" / "j.sqlite3"
    src.parent.mkdir()
    j = _open(src, commit_interval_ms=HOLD_FOLDS_MS)
    try:
        assert j._ilog is not None
        for _ in range(2):  # 40 records a wave (~4 KB): past ROTATE_BYTES, then all folded
            await asyncio.gather(*(j.record_intent(request(j), "s", 1) for _ in range(40)))
            await j.flush()
            assert j._ilog.wait_idle(30.0)  # the fold mark written: the log may start over
        assert j._ilog.rotations == 2
        tail = [request(j) for _ in range(3)]  # acknowledged, not folded (held back)
        for r in tail:
            await j.record_intent(r, "s", 1)
        killed = _copy_state(src, tmp_path / "killed" / "j.sqlite3")
    finally:
        j.close()
    scanned = intentlog.scan(intentlog.log_path(str(killed)), _journal_id(killed))
    assert scanned is not None and scanned.base_lsn > 1  # a later file: the first records are gone
    assert [r.client_order_id for r in scanned.records][-3:] == [r.client_order_id for r in tail]
    j2 = _open(killed)
    try:
        assert j2.replayed_intents == 3
        assert len(j2.load_orders()) == 83
    finally:
        j2.close()


async def test_a_refused_log_start_says_what_to_do_with_the_log(tmp_path: Path) -> None:
    from nautilus_hmm.start_failure import describe

    killed, _ = await _killed_with_unfolded(tmp_path)
    recs = _records(killed)
    log_file = intentlog.log_path(str(killed))
    data = bytearray(Path(log_file).read_bytes())
    data[recs[1].offset + intentlog.REC_HEADER_LEN] ^= 0x01
    Path(log_file).write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as info:
        _open(killed)
    failure = describe(info.value, killed.parent)
    assert f"{log_file}: damaged intent record at offset {recs[1].offset}" in failure.error
    assert "\n" not in failure.error
    assert "intent log" in failure.hint and "halted" in failure.hint and "new journal" not in failure.hint


async def test_an_intent_is_not_acknowledged_before_its_fdatasync_returns(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    j = _open(tmp_path / "j.sqlite3")
    entered, release = threading.Event(), threading.Event()
    real = os.fdatasync

    def held(fd: int) -> None:
        entered.set()
        assert release.wait(30.0)
        real(fd)

    monkeypatch.setattr(intentlog.os, "fdatasync", held)
    try:
        fut = j.record_intent(request(j), "s", 1)
        assert await asyncio.to_thread(entered.wait, 30.0)  # the sync thread is inside fdatasync
        for _ in range(20):
            await asyncio.sleep(0)  # loop turns, no time passes
        assert not fut.done()  # the order must not leave yet
        release.set()
        assert await fut >= 1
    finally:
        release.set()
        monkeypatch.undo()
        j.close()
