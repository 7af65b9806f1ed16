"""The sequence mark's `none_reserved`: a journal that never reserved a sequence for an order
says so in its mark (outside SQLite), and loses it before its first intent is acknowledged.

A start that finds it (`Journal.never_reserved`) can prove that no order was ever sent under the
journal, so reconciliation may take the baseline balances a killed first start never journaled.
Each way the proof could be wrong is damaged here: an intent in any mode, a lost WAL, an
intent only in the intent log, a mark of an older version or with a non-boolean value, an
order row behind a mark that claims otherwise, a journal created over another's mark.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.journal import hwm, intentlog
from nautilus_hmm.journal.hwm import BLOCK_SEQS, TailStatus, mark_path
from nautilus_hmm.journal.store import Journal
from tests.unit.journal.conftest import request

# (synchronous, intent_log): the three ways an intent becomes durable before it is acknowledged
MODES = [("full", False), ("full", True), ("normal", False)]
MODE_IDS = ["full-sqlite", "full-intent-log", "normal"]


@pytest.fixture(autouse=True)
def _small_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 KiB preallocated intent logs instead of 1 MiB (every open zero-fills and fsyncs one)."""
    monkeypatch.setattr(intentlog, "PREALLOCATE_BYTES", 64 * 1024)


def _open(path: Path, mode: tuple[str, bool] = ("full", False)) -> Journal:
    return Journal.open(path, synchronous=mode[0], intent_log=mode[1])


def _mark(path: Path) -> dict[str, object]:
    return orjson.loads(Path(mark_path(str(path))).read_bytes())


def _snapshot(src: Path, dst_dir: Path) -> Path:
    """Copy the journal's files as a SIGKILL right now would leave them (the lock aside)."""
    dst_dir.mkdir()
    for f in src.parent.iterdir():
        if f.name.startswith(src.name) and not f.name.endswith(".lock"):
            shutil.copyfile(f, dst_dir / f.name)
    return dst_dir / src.name


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
async def test_a_new_journal_reserves_nothing_and_its_first_intent_writes_the_mark_before_the_ack(
        tmp_path: Path, mode: tuple[str, bool]) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p, mode)
    try:
        assert j.never_reserved and j.tail_status is TailStatus.NEW
        assert _mark(p) == {"journal_id": j.journal_id, "reserved_seq": j.next_seq, "clean": False,
                            "none_reserved": True}
        seq = await j.record_intent(request(j), "s", 1)
        # acknowledged: the mark on disk already covers it and no longer says none was reserved
        assert _mark(p) == {"journal_id": j.journal_id, "reserved_seq": seq + 1 + BLOCK_SEQS, "clean": False}
    finally:
        j.close()


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
async def test_a_start_killed_before_any_intent_leaves_a_journal_that_never_reserved(
        tmp_path: Path, mode: tuple[str, bool]) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p, mode)
    copy = _snapshot(p, tmp_path / "k0")
    j.close()
    for i in range(1, 3):  # killed again before any intent: still provable
        again = _open(copy, mode)
        try:
            assert again.tail_status is TailStatus.UNVERIFIED
            assert again.never_reserved
            assert _mark(copy)["none_reserved"] is True
            assert _mark(copy)["reserved_seq"] == again.next_seq
            nxt = _snapshot(copy, tmp_path / f"k{i}")
        finally:
            again.close()
        copy = nxt


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
async def test_a_start_killed_after_an_intent_leaves_a_journal_that_reserved(
        tmp_path: Path, mode: tuple[str, bool]) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p, mode)
    await j.record_intent(request(j), "s", 1)
    copy = _snapshot(p, tmp_path / "killed")
    j.close()
    again = _open(copy, mode)
    try:
        assert again.tail_status is TailStatus.UNVERIFIED
        assert not again.never_reserved
        assert "none_reserved" not in _mark(copy)
    finally:
        again.close()


async def test_an_intent_whose_wal_is_lost_still_shows_in_the_mark(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    await j.record_intent(request(j), "s", 1)  # may have been sent; then the WAL is lost
    copy = _snapshot(p, tmp_path / "killed")
    j.close()
    Path(f"{copy}-wal").unlink()
    again = _open(copy)
    try:
        assert again.load_orders() == []  # the database lost the order ...
        assert not again.never_reserved  # ... the mark did not
    finally:
        again.close()


async def test_an_intent_only_in_the_intent_log_is_no_proof(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, intent_log=True, commit_interval_ms=60_000.0)  # the fold waits
    await j.record_intent(request(j), "s", 1)
    copy = _snapshot(p, tmp_path / "killed")
    j.close()
    # the mark as it was before the first intent: only the intent log knows of the order
    hwm.write(mark_path(str(copy)), hwm.HighWaterMark(j.journal_id, 1, clean=False, none_reserved=True))
    again = Journal.open(copy, intent_log=True)
    try:
        assert again.replayed_intents == 1
        assert not again.never_reserved
    finally:
        again.close()


async def test_a_clean_close_keeps_none_reserved_until_an_intent(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    _open(p).close()
    assert _mark(p)["none_reserved"] is True and _mark(p)["clean"] is True
    j = _open(p)
    try:
        assert j.tail_status is TailStatus.CLEAN and j.never_reserved
        await j.record_intent(request(j), "s", 1)
    finally:
        j.close()
    assert "none_reserved" not in _mark(p)
    j = _open(p)
    try:
        assert not j.never_reserved
    finally:
        j.close()


@pytest.mark.parametrize("value", [None, "yes", 1, "true"], ids=["absent", "string", "one", "string-true"])
async def test_only_a_literal_true_in_the_mark_counts(tmp_path: Path, value: object) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    copy = _snapshot(p, tmp_path / "killed")
    j.close()
    doc = _mark(copy)
    doc.pop("none_reserved")
    if value is not None:  # None: a mark written before the key existed
        doc["none_reserved"] = value
    Path(mark_path(str(copy))).write_bytes(orjson.dumps(doc))
    again = _open(copy)
    try:
        assert again.tail_status is TailStatus.UNVERIFIED
        assert not again.never_reserved
    finally:
        again.close()


async def test_a_mark_claiming_none_reserved_over_a_journal_with_orders_is_not_believed(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = _open(p)
    await j.record_intent(request(j), "s", 1)
    copy = _snapshot(p, tmp_path / "killed")
    j.close()
    doc = _mark(copy)
    hwm.write(mark_path(str(copy)), hwm.HighWaterMark(str(doc["journal_id"]), 1, clean=False, none_reserved=True))
    again = _open(copy)
    try:
        assert len(again.load_orders()) == 1
        assert not again.never_reserved
    finally:
        again.close()


async def test_a_journal_created_over_another_journals_mark_is_not_never_reserved(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    _open(p).close()
    os.unlink(p)  # the database is gone, its mark (none_reserved, another journal id) stays
    j = _open(p)
    try:
        assert j.tail_status is TailStatus.REPLACED
        assert not j.never_reserved
        assert "none_reserved" not in _mark(p)
    finally:
        j.close()


async def test_a_mark_of_another_journal_is_no_proof(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "j.sqlite3", tmp_path / "b" / "j.sqlite3"
    a.parent.mkdir()
    b.parent.mkdir()
    _open(a).close()
    ja = _open(a)
    copy = _snapshot(a, tmp_path / "killed")
    ja.close()
    _open(b).close()
    shutil.copyfile(mark_path(str(b)), mark_path(str(copy)))  # b's mark (none_reserved) beside a
    again = _open(copy)
    try:
        assert again.tail_status is TailStatus.NO_MARK
        assert not again.never_reserved
    finally:
        again.close()


async def test_a_start_killed_while_creating_its_intent_log_is_no_loss_when_nothing_was_reserved(
        tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, intent_log=True)
    copy = _snapshot(p, tmp_path / "killed")
    j.close()
    os.unlink(intentlog.log_path(str(copy)))  # the database says a log is in use; its file never appeared
    again = Journal.open(copy, intent_log=True)
    try:
        assert again.tail_status is TailStatus.UNVERIFIED  # not lost: no intent was ever acknowledged
        assert again.never_reserved
    finally:
        again.close()


async def test_a_missing_intent_log_after_an_intent_is_a_loss(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, intent_log=True)
    await j.record_intent(request(j), "s", 1)
    copy = _snapshot(p, tmp_path / "killed")
    j.close()
    os.unlink(intentlog.log_path(str(copy)))
    again = Journal.open(copy, intent_log=True)
    try:
        assert again.tail_status is TailStatus.LOST
        assert not again.never_reserved
    finally:
        again.close()
