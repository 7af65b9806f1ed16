"""The intent log (`journal.sqlite3.intents`, `[journal] synchronous = "full"` with
`intent_log = true`, the defaults) of a paper-trading daemon SIGKILLed mid-trading, damaged
the four ways the issue names, and the daemon started again with `risk.initial_state =
"ACTIVE"`:

* a bit flipped in a middle record: refused, one line naming the file and the offset,
  exit 1, no traceback, the log left byte for byte;
* the log deleted: starts HALTED with reconciliation failed (the intents it held may have
  been sent), and once resumed trades on;
* the log truncated in the middle of its last record: starts (a torn last write is
  ignored), never ACTIVE while the venue holds an order the journal lacks;
* nothing damaged (the preallocated tail is zeros): starts and trades on.

In every started case, after the operator resumes and a new order reaches the venue,
no client order id reached the venue twice and the journal holds every new order. (The
daemon is killed right after its fourth order reached the venue, usually before that
intent's fold reached SQLite: the log alone holds it, so cutting the log's last record
loses an order the venue has, and the start must halt.)
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from nautilus_hmm.journal import intentlog
from tests.nodeharness import TOKEN
from tests.system.processes import DEADLINE_S, free_port, http_json, stop_daemon, wait_for
from tests.system.test_trading_process import start, venue_cids, wait_reconciled_or_exited

JOURNAL = "journal.sqlite3"
LOG = f"{JOURNAL}.intents"


def _journal_cids(state: Path) -> set[str]:
    with sqlite3.connect(f"file:{state / JOURNAL}?mode=ro", uri=True) as conn:
        return {row[0] for row in conn.execute("SELECT client_order_id FROM orders")}


def _records(state: Path) -> list[intentlog.LogRecord]:
    with sqlite3.connect(f"file:{state / JOURNAL}?mode=ro", uri=True) as conn:
        jid = conn.execute("SELECT value FROM meta WHERE key = 'journal_id'").fetchone()[0]
    scanned = intentlog.scan(str(state / LOG), jid)
    assert scanned is not None
    return scanned.records


@pytest.fixture(scope="module")
def killed_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state dir of a daemon SIGKILLed after at least four orders of this run reached the venue."""
    tmp = tmp_path_factory.mktemp("killed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp, port, "ACTIVE", "first")
    state = tmp / "state"
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "ready")
        wait_for(lambda: len(venue_cids(state)) >= 4, "four orders at the venue", timeout_s=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(_records(state)) >= 3  # a first, a middle and a last record
    return state


def _flip_middle(state: Path) -> int:
    recs = _records(state)
    mid = recs[len(recs) // 2]
    data = bytearray((state / LOG).read_bytes())
    data[mid.offset + intentlog.REC_HEADER_LEN + 3] ^= 0x02
    (state / LOG).write_bytes(bytes(data))
    return mid.offset


def _delete(state: Path) -> int:
    (state / LOG).unlink()
    return -1


def _truncate_last(state: Path) -> int:
    last = _records(state)[-1]
    with open(state / LOG, "r+b") as f:
        f.truncate(last.offset + intentlog.REC_HEADER_LEN + 10)
    return last.offset


def _undamaged(state: Path) -> int:
    recs = _records(state)
    data = (state / LOG).read_bytes()
    n = int.from_bytes(data[recs[-1].offset:recs[-1].offset + 4], "little")
    end = recs[-1].offset + intentlog.REC_HEADER_LEN + n
    # the preallocated tail (fold marks may follow the last intent) ends in zeros
    assert len(data) - end > 4096 and not data[-4096:].strip(b"\0")
    return -1


DAMAGE: dict[str, Callable[[Path], int]] = {
    "middle-bit-flipped": _flip_middle, "deleted": _delete, "truncated-mid-record": _truncate_last,
    "zero-filled-tail": _undamaged,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_intent_log_refuses_or_never_starts_active_over_a_loss(
        killed_state: Path, tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state"
    shutil.copytree(killed_state, state)
    sent_before = venue_cids(state)
    offset = DAMAGE[damage](state)
    log_bytes = (state / LOG).read_bytes() if (state / LOG).exists() else b""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, "ACTIVE", "restart")
    try:
        wait_reconciled_or_exited(proc, base)
        out = (tmp_path / "daemon-restart.log").read_bytes()
        if damage == "middle-bit-flipped":
            assert proc.poll() == 1, out[-2000:]
            assert b"node_start_failed" in out and LOG.encode() in out, out[-2000:]
            assert f"damaged intent record at offset {offset}".encode() in out, out[-2000:]
            assert b"Traceback" not in out
            assert (state / LOG).read_bytes() == log_bytes  # left for the operator
            assert venue_cids(state) == sent_before
            return
        assert proc.poll() is None, out[-2000:]
        status = http_json(base + "/status")[1]
        if damage == "deleted":
            assert b"journal_intent_log_missing" in out
            assert status["trading_state"] == "HALTED", status
            assert status["reconciliation"]["sim"]["ok"] is False, status["reconciliation"]
        if damage == "zero-filled-tail":
            # nothing lost: every order the venue has is journaled (replayed from the log if its
            # fold had not reached SQLite at the kill)
            assert set(sent_before) <= _journal_cids(state)
        if status["trading_state"] == "ACTIVE":
            # ACTIVE only when nothing the venue has is missing from the journal
            assert set(sent_before) <= _journal_cids(state), damage
        else:
            code, _ = http_json(base + "/admin/resume", {}, headers={"Authorization": f"Bearer {TOKEN}"})
            assert code == 200
        wait_for(lambda: len(venue_cids(state)) >= len(sent_before) + 1, "a new order", timeout_s=60)
    finally:
        stop_daemon(proc)
    cids = venue_cids(state)
    assert len(cids) == len(set(cids)), "a client order id reached the venue twice"
    assert set(cids) - set(sent_before) <= _journal_cids(state), "a new order is missing from the journal"
    assert b"Duplicate order" not in (tmp_path / "daemon-restart.log").read_bytes()
