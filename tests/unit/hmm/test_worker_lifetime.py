"""The training worker dies with the process that started it, even when that process is
killed with SIGKILL (no chance to cancel the job): a worker must never outlive its daemon."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# A stand-in daemon: starts a TrainingJob exactly as the service does (job.wait() in a
# thread spawns the worker), prints the worker's pid, then blocks until killed.
PARENT_SCRIPT = """
import dataclasses, sys, threading, time
from tests.unit.hmm.conftest import SMALL_CFG, SMALL_SPEC, read_klines_csv
from tests.conftest import fixture_path
from nautilus_hmm.hmm.train import TrainingJob

bars = read_klines_csv(fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv"))
cfg = dataclasses.replace(SMALL_CFG, n_restarts=50, max_iter=500)
job = TrainingJob(bars, SMALL_SPEC, cfg, sys.argv[1], timeout_s=600)
threading.Thread(target=job.wait, daemon=True).start()
while job.pid is None:
    time.sleep(0.01)
print("worker_pid", job.pid, flush=True)
threading.Event().wait()  # until killed
"""

DEADLINE_S = 5.0


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _wait_for_exit(pid: int, timeout_s: float) -> None:
    """Wait on the process's exit itself (a pidfd turns readable when it ends), at most `timeout_s`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], timeout_s)
    finally:
        os.close(fd)


def test_worker_dies_when_its_parent_is_killed_with_sigkill(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT_SCRIPT, str(tmp_path / "m.json")], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    worker_pid = None
    try:
        assert parent.stdout is not None
        for line in parent.stdout:  # the parent's log lines come first
            if line.startswith("worker_pid "):
                worker_pid = int(line.split()[1])
                break
        assert worker_pid is not None
        assert _alive(worker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        _wait_for_exit(worker_pid, DEADLINE_S)
        assert not _alive(worker_pid), f"worker {worker_pid} outlived its parent by {DEADLINE_S} s"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if worker_pid is not None and _alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


def test_orphaned_worker_exits_when_its_parent_pid_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The portable fallback: the watchdog exits the worker once it is re-parented."""
    from nautilus_hmm.hmm import train

    exits: list[int] = []

    class Exited(BaseException):
        pass

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise Exited

    monkeypatch.setattr(train.os, "_exit", fake_exit)
    monkeypatch.setattr(train.os, "getppid", lambda: 4242)
    train._exit_if_orphaned(4242)
    assert exits == []
    monkeypatch.setattr(train.os, "getppid", lambda: 1)
    with pytest.raises(Exited):
        train._exit_if_orphaned(4242)
    assert exits == [train.EXIT_PARENT_GONE]
