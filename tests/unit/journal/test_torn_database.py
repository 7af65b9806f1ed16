"""A crash during a WAL checkpoint can leave the database file with table and index pages
from different commits; the WAL still holds the rest, so SQLite reads it whole. Lose that
WAL as well and the file is torn: `PRAGMA quick_check` passes (it does not compare indexes
with their tables), and the first commit fails with "database disk image is malformed".
A start that finds the last run unclean and its WAL gone runs `integrity_check` and
refuses, naming the check and the missing WAL."""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from nautilus_hmm.journal import files, hwm
from nautilus_hmm.journal.errors import JournalCorruptError, JournalWriteError
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.start_failure import describe
from tests.unit.journal.conftest import request


def _page(db: Path, number: int, page_size: int) -> bytes:
    with db.open("rb") as f:
        f.seek((number - 1) * page_size)
        return f.read(page_size)


def _put_page(db: Path, number: int, page_size: int, data: bytes) -> None:
    with db.open("r+b") as f:
        f.seek((number - 1) * page_size)
        f.write(data)


async def _torn_journal(tmp_path: Path) -> Path:
    """A journal whose orders index lacks its newest rows (its page from an earlier commit)
    while its table has them; the last run unclean, its WAL gone."""
    path = tmp_path / "journal.sqlite3"
    j = Journal.open(path)
    for _ in range(3):
        await j.record_intent(request(j), "s", 1)
    j.close()
    with closing(sqlite3.connect(path)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders' LIMIT 1").fetchone()
    before = _page(path, root, page_size)
    j = Journal.open(path)
    for _ in range(3):
        await j.record_intent(request(j), "s", 1)
    j.close()  # checkpoints: the new rows are in the database file
    _put_page(path, root, page_size, before)
    mark = hwm.read(hwm.mark_path(str(path)))
    assert mark is not None
    hwm.write(hwm.mark_path(str(path)), hwm.HighWaterMark(mark.journal_id, mark.reserved_seq, clean=False))
    assert not os.path.exists(f"{path}-wal")
    return path


async def test_a_torn_database_passes_quick_check_but_never_opens_after_a_lost_wal(tmp_path: Path) -> None:
    path = await _torn_journal(tmp_path)
    assert files.check_database(str(path)) >= 1  # what the start used to run: it sees nothing
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(path, copy)
    size = path.stat().st_size
    with pytest.raises(JournalCorruptError) as err:
        Journal.open(path)
    text = str(err.value)
    assert "integrity_check" in text and "index" in text, text
    assert f"{path}-wal is missing" in text, text
    assert path.read_bytes() == copy.read_bytes() and path.stat().st_size == size  # left untouched
    failure = describe(err.value, tmp_path)
    assert "restore" in failure.hint.lower(), failure


def test_wal_lost_only_when_the_last_run_was_unclean_and_left_no_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sqlite3")
    mark = hwm.mark_path(path)
    assert not files.wal_lost(path)  # no mark: a new or pre-mark journal
    hwm.write(mark, hwm.HighWaterMark("j", 10, clean=True))
    assert not files.wal_lost(path)  # a clean close removes the WAL itself
    hwm.write(mark, hwm.HighWaterMark("j", 10, clean=False))
    assert files.wal_lost(path)
    Path(f"{path}-wal").write_bytes(b"")
    assert not files.wal_lost(path)  # a crash leaves its WAL: SQLite replays it
    os.unlink(f"{path}-wal")
    Path(mark).write_bytes(b"\x00garbage")
    assert files.wal_lost(path)  # a mark that cannot be read is not trusted to say "clean"


def test_a_commit_that_finds_the_file_damaged_says_so_not_permissions() -> None:
    failure = describe(JournalWriteError("/s/journal.sqlite3", "commit failed: malformed", corrupt=True), Path("/s"))
    assert "backup" in failure.hint and "owner and mode" not in failure.hint, failure
    failure = describe(JournalWriteError("/s/journal.sqlite3", "commit failed: disk I/O error"), Path("/s"))
    assert "owner and mode" in failure.hint, failure
