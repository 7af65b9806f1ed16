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
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.nodeharness import TOKEN
from tests.system.processes import DEADLINE_S, free_port, http_json, start_daemon, wait_for
from tests.system.test_trading_process import FAST

JOURNAL = "journal.sqlite3"
WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24


def _start(tmp: Path, port: int, name: str) -> subprocess.Popen:
    cfg = tmp / f"config-{name}.toml"
    cfg.write_text(FAST.format(state=tmp / "state", port=port, initial="ACTIVE"))
    return start_daemon(cfg, tmp / f"daemon-{name}.log", TOKEN)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=DEADLINE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _venue_cids(state: Path) -> list[str]:
    account = orjson.loads((state / "sim_account.json").read_bytes())
    return [o["client_order_id"] for o in account["orders"]]


@pytest.fixture(scope="module")
def killed_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state dir of a daemon SIGKILLed mid-trading (run once for every damage)."""
    tmp = tmp_path_factory.mktemp("killed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(tmp, port, "first")
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "ready")
        wait_for(lambda: len(http_json(base + "/fills?limit=10000")[1]["fills"]) >= 6, "six fills", timeout_s=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp / "state" / f"{JOURNAL}-wal").stat().st_size > 0
    return tmp / "state"


def _wal_frames(wal: Path) -> tuple[int, int]:
    """(page size, number of frames) of a WAL file."""
    page_size = struct.unpack(">I", wal.read_bytes()[8:12])[0]
    return page_size, (wal.stat().st_size - WAL_HEADER_BYTES) // (WAL_FRAME_HEADER_BYTES + page_size)


def _delete_wal(state: Path) -> None:
    (state / f"{JOURNAL}-wal").unlink()
    (state / f"{JOURNAL}-shm").unlink(missing_ok=True)


def _truncate_wal(state: Path) -> None:
    wal = state / f"{JOURNAL}-wal"
    page, frames = _wal_frames(wal)
    os.truncate(wal, WAL_HEADER_BYTES + (frames // 4) * (WAL_FRAME_HEADER_BYTES + page))


def _flip_wal_bit(state: Path) -> None:
    wal = state / f"{JOURNAL}-wal"
    page, frames = _wal_frames(wal)
    data = bytearray(wal.read_bytes())
    at = WAL_HEADER_BYTES + (frames // 4) * (WAL_FRAME_HEADER_BYTES + page) + WAL_FRAME_HEADER_BYTES + page // 2
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
# What the one line of a refused start says, per damage that must be refused.
REFUSED = {"db-bit-flipped": b"damaged row: table ", "db-deleted": b"journal.sqlite3-wal exists",
           "db-truncated": b"journal.sqlite3"}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_journal_never_starts_active_over_a_loss_nor_reuses_an_id(
        killed_state: Path, tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state"
    shutil.copytree(killed_state, state)
    sent_before = _venue_cids(state)
    assert len(sent_before) == len(set(sent_before))
    DAMAGE[damage](state)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(tmp_path, port, "restart")
    try:
        def reconciled_or_exited() -> bool:
            # /ready stays 503 while reconciliation has failed: wait for its result instead.
            return proc.poll() is not None or "sim" in http_json(base + "/status")[1]["reconciliation"]

        wait_for(reconciled_or_exited, "start-up reconciliation or a refusal")
        log = (tmp_path / "daemon-restart.log").read_bytes()
        if proc.poll() is not None:
            # Refused: one line naming the damage, exit 1, files left for the operator.
            assert damage in REFUSED, log[-2000:]
            assert proc.returncode == 1, log[-2000:]
            assert REFUSED[damage] in log and b"node_start_failed" in log, log[-2000:]
            assert b"Traceback" not in log
            assert _venue_cids(state) == sent_before
            return
        assert damage not in REFUSED, f"{damage}: started instead of refusing"
        status = http_json(base + "/status")[1]
        assert status["trading_state"] == "HALTED", status
        assert status["reconciliation"]["sim"]["ok"] is False, status["reconciliation"]
        # The operator looks, then resumes: trading goes on with ids no venue has seen.
        code, _ = http_json(base + "/admin/resume", {}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert code == 200
        wait_for(lambda: len(_venue_cids(state)) >= len(sent_before) + 3, "three new orders", timeout_s=60)
    finally:
        _stop(proc)
    cids = _venue_cids(state)
    assert len(cids) == len(set(cids)), "a client order id reached the venue twice"
    log = (tmp_path / "daemon-restart.log").read_bytes()
    assert b"Duplicate order" not in log
