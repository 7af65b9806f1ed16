"""Client order ids never repeat, even when the journal lost its newest rows: a copy of a
running journal's files (what a SIGKILL leaves) whose WAL is deleted, truncated or has a
flipped bit, mints ids that differ from every id handed out before; the start knows rows
may be lost. Files are private to the user."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from nautilus_hmm.core.ids import parse_sequence
from nautilus_hmm.journal.errors import JournalError, JournalWriteError
from nautilus_hmm.journal.hwm import BLOCK_SEQS, TailStatus, mark_path
from nautilus_hmm.journal.store import Journal
from tests.unit.journal.conftest import request


async def _kill_snapshot(src: Path, dst: Path, n_orders: int = 30) -> set[str]:
    """Journal `n_orders` intents, then copy the files as a SIGKILL would leave them; returns the ids."""
    j = Journal.open(src)
    cids = set()
    for _ in range(n_orders):
        req = request(j)
        await j.record_intent(req, "s", 1)
        cids.add(req.client_order_id)
    dst.mkdir()
    for suffix in ("", "-wal", ".seq"):
        if os.path.exists(f"{src}{suffix}"):
            shutil.copyfile(f"{src}{suffix}", dst / f"journal.sqlite3{suffix}")
    j.close()
    return cids


def _delete(wal: Path) -> None:
    wal.unlink()


def _truncate(wal: Path) -> None:
    os.truncate(wal, wal.stat().st_size // 2)


def _flip(wal: Path) -> None:
    data = bytearray(wal.read_bytes())
    data[len(data) // 3] ^= 0x01
    wal.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_delete, _truncate, _flip], ids=["deleted", "truncated", "bit-flipped"])
async def test_damaged_wal_never_reissues_a_client_order_id(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    before = await _kill_snapshot(tmp_path / "a.sqlite3", tmp_path / "copy")
    copy = tmp_path / "copy" / "journal.sqlite3"
    wal = Path(f"{copy}-wal")
    assert wal.stat().st_size > 0
    damage(wal)
    j = Journal.open(copy)
    try:
        assert len(j.load_orders()) < len(before)  # the damage did lose rows
        fresh = {j.next_client_order_id("t") for _ in range(100)}
        assert not fresh & before
        # The sequence itself also stays above everything handed out before.
        assert min(parse_sequence(c, "t", j.journal_id) for c in fresh) > max(
            parse_sequence(c, "t", j.journal_id) for c in before)
        assert j.tail_status is TailStatus.UNVERIFIED
    finally:
        j.close()


async def test_ids_differ_across_starts_even_without_the_mark(tmp_path: Path) -> None:
    before = await _kill_snapshot(tmp_path / "a.sqlite3", tmp_path / "copy")
    copy = tmp_path / "copy" / "journal.sqlite3"
    Path(f"{copy}-wal").unlink()
    Path(f"{copy}.seq").unlink()  # a restored backup of the whole state dir: the mark is old or gone
    j = Journal.open(copy)
    try:
        assert j.tail_status is TailStatus.NO_MARK
        fresh = {j.next_client_order_id("t") for _ in range(100)}
        assert not fresh & before  # the per-start epoch in the id
    finally:
        j.close()


async def test_clean_close_continues_the_sequence_and_reports_clean(db_path: Path) -> None:
    j = Journal.open(db_path)
    seq = await j.record_intent(request(j), "s", 1)
    j.close()
    j = Journal.open(db_path)
    try:
        assert j.tail_status is TailStatus.CLEAN
        assert j.allocate_seq() == seq + 1
    finally:
        j.close()


async def test_an_older_database_behind_a_clean_mark_is_reported_lost(db_path: Path, tmp_path: Path) -> None:
    j = Journal.open(db_path)
    await j.record_intent(request(j), "s", 1)
    j.close()
    backup = tmp_path / "backup.sqlite3"
    shutil.copyfile(db_path, backup)
    j = Journal.open(db_path)
    for _ in range(3):
        await j.record_intent(request(j), "s", 1)
    j.close()
    shutil.copyfile(backup, db_path)  # the operator restores yesterday's database
    j = Journal.open(db_path)
    try:
        assert j.tail_status is TailStatus.LOST
        assert j.allocate_seq() == 5
    finally:
        j.close()


async def test_mark_is_written_before_an_intent_beyond_it_is_acknowledged(db_path: Path) -> None:
    j = Journal.open(db_path)
    try:
        first = orjson.loads(Path(mark_path(str(db_path))).read_bytes())
        # a new journal reserves nothing at open: its first intent writes the mark
        assert first == {"journal_id": j.journal_id, "reserved_seq": 1, "clean": False, "none_reserved": True}
        seq = await j.record_intent(request(j), "s", 1)
        mark = orjson.loads(Path(mark_path(str(db_path))).read_bytes())
        assert mark == {"journal_id": j.journal_id, "reserved_seq": seq + 1 + BLOCK_SEQS, "clean": False}
        for _ in range(BLOCK_SEQS):
            j.allocate_seq()
        req = request(j)  # seq BLOCK_SEQS + 1: beyond the reservation
        seq = await j.record_intent(req, "s", 1)
        mark = orjson.loads(Path(mark_path(str(db_path))).read_bytes())
        assert mark["reserved_seq"] > seq
    finally:
        j.close()


async def test_unwritable_mark_stops_the_journal(db_path: Path) -> None:
    j = Journal.open(db_path)
    try:
        for _ in range(BLOCK_SEQS):
            j.allocate_seq()
        os.mkdir(f"{mark_path(str(db_path))}.tmp")  # the mark's temp file cannot be created
        with pytest.raises(JournalWriteError, match="sequence mark"):
            await j.record_intent(request(j), "s", 1)
    finally:
        j.close()


async def test_unreadable_mark_is_reported_and_replaced(db_path: Path) -> None:
    j = Journal.open(db_path)
    seq = await j.record_intent(request(j), "s", 1)
    j.close()
    Path(mark_path(str(db_path))).write_bytes(b"\x00garbage")
    with capture_logs() as logs:
        j = Journal.open(db_path)
    try:
        assert any(e["event"] == "journal_mark_unreadable" for e in logs)
        assert j.tail_status is TailStatus.NO_MARK
        assert j.allocate_seq() > seq
    finally:
        j.close()


def test_new_journal_files_are_private(db_path: Path) -> None:
    old = os.umask(0o022)
    try:
        j = Journal.open(db_path)
        j.close()
    finally:
        os.umask(old)
    for p in (db_path, Path(mark_path(str(db_path))), Path(f"{db_path}.lock")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_existing_journal_readable_by_others_is_warned_about(db_path: Path) -> None:
    Journal.open(db_path).close()
    db_path.chmod(0o644)
    with capture_logs() as logs:
        Journal.open(db_path).close()
    warned = [e for e in logs if e["event"] == "journal_permissions_too_open"]
    assert [e["path"] for e in warned if e["path"] == str(db_path)] and "chmod 600" in warned[0]["hint"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_read_only_state_dir_is_refused_naming_the_path(db_path: Path) -> None:
    Journal.open(db_path).close()
    os.chmod(db_path.parent, 0o500)
    try:
        with pytest.raises(JournalError, match=f"cannot write .*{db_path.parent}.*chmod"):
            Journal.open(db_path)
    finally:
        os.chmod(db_path.parent, 0o700)


def test_read_only_database_is_refused_naming_the_path_and_the_fix(db_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from nautilus_hmm.journal import files

    Journal.open(db_path).close()
    real = files.connect
    # What a read-only filesystem (or a journal owned by another user) gives SQLite,
    # also under root, which ignores permission bits.
    monkeypatch.setattr(files, "connect", lambda path, mode: real(path, "ro" if mode == "rw" else mode))
    with pytest.raises(JournalError, match=f"cannot write {db_path}: attempt to write a readonly database.*chmod"):
        Journal.open(db_path)
    monkeypatch.undo()
    Journal.open(db_path).close()  # the refused open released its lock


async def test_new_journal_beside_another_journals_mark_is_reported_replaced(db_path: Path) -> None:
    j = Journal.open(db_path)
    await j.record_intent(request(j), "s", 1)
    old_id = j.journal_id
    j.close()
    db_path.unlink()  # the database is gone, its mark is not
    with capture_logs() as logs:
        j = Journal.open(db_path)
    try:
        assert j.tail_status is TailStatus.REPLACED
        assert any(e["event"] == "journal_replaced" and e["previous_journal_id"] == old_id for e in logs)
    finally:
        j.close()
    j = Journal.open(db_path)  # the mark is now the new journal's
    try:
        assert j.tail_status is TailStatus.CLEAN
    finally:
        j.close()


def test_first_start_after_the_upgrade_creates_the_mark_without_alarm(tmp_path: Path) -> None:
    import sqlite3

    from nautilus_hmm.journal.schema import migrate

    path = tmp_path / "v2.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=2)
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                     [("journal_id", "abc123"), ("next_seq", "7"), ("created_ns", "1")])
    conn.close()
    with capture_logs() as logs:
        j = Journal.open(path)
    try:
        assert j.tail_status is TailStatus.NO_MARK and j.next_seq == 7
        events = {e["event"]: e["log_level"] for e in logs}
        assert events.get("journal_mark_created") == "info" and "journal_mark_missing" not in events
    finally:
        j.close()
    assert orjson.loads(Path(mark_path(str(path))).read_bytes())["reserved_seq"] == 7
