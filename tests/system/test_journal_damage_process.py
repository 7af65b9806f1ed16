"""A paper-trading daemon is SIGKILLed, its journal damaged the ways disks and operators
damage it (WAL deleted, WAL truncated, a bit flipped in the WAL, a bit flipped in the
database file), and started again with `risk.initial_state = "ACTIVE"`. Whatever the
damage: it either refuses to start naming the damaged row, or it starts with trading
HALTED and reconciliation failed; never ACTIVE over a silent loss. Resumed by the
operator, it trades on without ever sending a client order id the venue has seen."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.nodeharness import TOKEN
from tests.system.processes import DEADLINE_S, free_port, http_json, stop_daemon, wait_for
from tests.system.test_trading_process import start, venue_cids, wait_reconciled_or_exited

JOURNAL = "journal.sqlite3"
WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24


@pytest.fixture(scope="module")
def killed_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state dir of a daemon SIGKILLed mid-trading (run once for every damage).

    The node checkpoints its WAL every second, so at a random kill the un-checkpointed tail
    may hold no order at all, and damage to the WAL would then lose nothing. A read
    transaction held open here stops its checkpoints at the reader's snapshot: every order
    sent after it is only in the WAL when the node is killed, so the WAL damages below
    (cut into, or flip a bit in, that tail) always lose orders the venue has seen.
    """
    tmp = tmp_path_factory.mktemp("killed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp, port, "ACTIVE", "first")
    state = tmp / "state"
    reader = None
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "ready")
        wait_for(lambda: len(http_json(base + "/fills?limit=10000")[1]["fills"]) >= 2, "two fills", timeout_s=60)
        reader = sqlite3.connect(f"file:{state / JOURNAL}?mode=ro", uri=True, isolation_level=None)
        reader.execute("BEGIN")
        before = reader.execute("SELECT count(*) FROM orders").fetchone()[0]
        wait_for(lambda: len(venue_cids(state)) >= before + 4, "four orders after the held snapshot", timeout_s=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if reader is not None:
            reader.close()
    assert (state / f"{JOURNAL}-wal").stat().st_size > 0
    return state


def _first_unsaved_frame(state: Path) -> tuple[int, int]:
    """(page size, index of the first WAL frame the database file does not hold yet) of the
    WAL a killed node left, from its wal-index (-shm, native-endian: mxFrame at byte 16,
    nBackfill at byte 96)."""
    page_size = struct.unpack(">I", (state / f"{JOURNAL}-wal").read_bytes()[8:12])[0]
    shm = (state / f"{JOURNAL}-shm").read_bytes()
    max_frame, backfilled = struct.unpack("=I", shm[16:20])[0], struct.unpack("=I", shm[96:100])[0]
    assert max_frame > backfilled, (max_frame, backfilled)
    return page_size, backfilled


def _journal_cids(state: Path) -> set[str]:
    """The client order ids a copy of the (damaged) journal holds, as SQLite reads it."""
    copy = state.parent / "inspect"
    shutil.copytree(state, copy)
    try:
        with sqlite3.connect(copy / JOURNAL) as conn:
            return {row[0] for row in conn.execute("SELECT client_order_id FROM orders")}
    finally:
        shutil.rmtree(copy)


def _delete_wal(state: Path) -> None:
    (state / f"{JOURNAL}-wal").unlink()
    (state / f"{JOURNAL}-shm").unlink(missing_ok=True)


def _truncate_wal(state: Path) -> None:
    wal = state / f"{JOURNAL}-wal"
    page, first = _first_unsaved_frame(state)
    os.truncate(wal, WAL_HEADER_BYTES + first * (WAL_FRAME_HEADER_BYTES + page))


def _flip_wal_bit(state: Path) -> None:
    wal = state / f"{JOURNAL}-wal"
    page, first = _first_unsaved_frame(state)
    data = bytearray(wal.read_bytes())
    at = WAL_HEADER_BYTES + first * (WAL_FRAME_HEADER_BYTES + page) + WAL_FRAME_HEADER_BYTES + page // 2
    data[at] ^= 0x04
    wal.write_bytes(bytes(data))


def _flip_db_bit(state: Path) -> None:
    # The node checkpoints on its own; do it here so the rows are in the database file.
    with sqlite3.connect(state / JOURNAL) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = state / JOURNAL
    data = bytearray(db.read_bytes())
    at = data.index(b"sma_cross")  # a strategy id in a journaled row
    data[at + 7] ^= 0x10  # sma_cross -> sma_crocs: PRAGMA quick_check still passes
    db.write_bytes(bytes(data))


def _delete_db(state: Path) -> None:
    (state / JOURNAL).unlink()


def _delete_db_and_wal(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (state / f"{JOURNAL}{suffix}").unlink(missing_ok=True)


def _truncate_db(state: Path) -> None:
    with sqlite3.connect(state / JOURNAL) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = state / JOURNAL
    os.truncate(db, db.stat().st_size // 2)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "wal-deleted": _delete_wal, "wal-truncated": _truncate_wal, "wal-bit-flipped": _flip_wal_bit,
    "db-bit-flipped": _flip_db_bit, "db-deleted": _delete_db, "db-and-wal-deleted": _delete_db_and_wal,
    "db-truncated": _truncate_db,
}
# The damages that lose rows the venue has seen (the journal reads back fewer orders).
LOSSY = {"wal-deleted", "wal-truncated", "wal-bit-flipped"}
# What the one line of a refused start says, per damage that must be refused.
REFUSED = {"db-bit-flipped": b"damaged row: table ", "db-deleted": b"journal.sqlite3-wal exists",
           "db-truncated": b"journal.sqlite3"}
# A kill during a checkpoint leaves database pages from different commits (the WAL holds the
# rest): without its WAL such a file is torn, and the start refuses it, naming the check.
MAY_REFUSE = {"wal-deleted": b"integrity_check"}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_journal_never_starts_active_over_a_loss_nor_reuses_an_id(
        killed_state: Path, tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state"
    shutil.copytree(killed_state, state)
    sent_before = venue_cids(state)
    assert len(sent_before) == len(set(sent_before))
    DAMAGE[damage](state)
    if damage in LOSSY:
        # Not vacuous: the journal lost orders the venue has (this start must not go ACTIVE).
        assert not set(sent_before) <= _journal_cids(state), damage
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, "ACTIVE", "restart")
    try:
        wait_reconciled_or_exited(proc, base)
        log = (tmp_path / "daemon-restart.log").read_bytes()
        if proc.poll() is not None:
            # Refused: one line naming the damage, exit 1, files left for the operator.
            refusal = REFUSED.get(damage) or MAY_REFUSE.get(damage)
            assert refusal is not None, log[-2000:]
            assert proc.returncode == 1, log[-2000:]
            assert refusal in log and b"node_start_failed" in log, log[-2000:]
            assert b"Traceback" not in log
            assert venue_cids(state) == sent_before
            return
        assert damage not in REFUSED, f"{damage}: started instead of refusing"
        status = http_json(base + "/status")[1]
        assert status["trading_state"] == "HALTED", status
        assert status["reconciliation"]["sim"]["ok"] is False, status["reconciliation"]
        assert status["trading_state_reason"].startswith("reconciliation failed: "), status
        # The operator looks, then resumes: trading goes on with ids no venue has seen.
        code, _ = http_json(base + "/admin/resume", {}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert code == 200
        wait_for(lambda: len(venue_cids(state)) >= len(sent_before) + 3, "three new orders", timeout_s=60)
    finally:
        stop_daemon(proc)
    cids = venue_cids(state)
    assert len(cids) == len(set(cids)), "a client order id reached the venue twice"
    log = (tmp_path / "daemon-restart.log").read_bytes()
    assert b"Duplicate order" not in log
