"""The daemon as a real process: READY, reload on SIGHUP with a broken file, SIGTERM → 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.nodeharness import TOKEN
from tests.system.processes import DEADLINE_S, free_port, http_json


def recv_until(rx: socket.socket, prefix: bytes) -> list[bytes]:
    """Datagrams up to and including the first that starts with `prefix`."""
    seen = []
    while True:
        d = rx.recv(4096)
        seen.append(d)
        if d.startswith(prefix):
            return seen


def test_daemon_serves_survives_a_bad_reload_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "config.toml"
    good = f'[node]\nstate_dir = "{tmp_path / "state"}"\n[http]\nport = {port}\n'
    cfg.write_text(good)
    notify_path = str(tmp_path / "notify.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(notify_path)
    rx.settimeout(DEADLINE_S)
    env = {**os.environ, "NAUTILUS_HMM_ADMIN_TOKEN": TOKEN, "NOTIFY_SOCKET": notify_path,
           "JOURNAL_STREAM": "8:1"}
    proc = subprocess.Popen([sys.executable, "-m", "nautilus_hmm", "run", "--config", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        recv_until(rx, b"READY=1")
        base = f"http://127.0.0.1:{port}"
        status, ready = http_json(base + "/ready")
        assert status == 200 and ready["ready"] is True
        _, st = http_json(base + "/status")
        hash_before = st["config"]["hash"]

        cfg.write_text(good + "[risk]\nmax_order_notional_usd = -5\n")
        proc.send_signal(signal.SIGHUP)
        recv_until(rx, b"RELOADING=1")
        recv_until(rx, b"READY=1")
        status, st = http_json(base + "/status")
        assert status == 200 and st["config"]["hash"] == hash_before

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=DEADLINE_S)
        assert rc == 0
        assert time.monotonic() - t0 < 20.0
        rx.settimeout(1)
        recv_until(rx, b"STOPPING=1")
        err = proc.stderr.read().decode()
        lines = [ln for ln in err.splitlines() if ln]
        assert all(ln[0] == "<" and ln[2] == ">" for ln in lines), lines[:3]
        assert any(ln.startswith("<3>") and "risk.max_order_notional_usd = -5: must be > 0" in ln for ln in lines)
        assert TOKEN not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rx.close()


def test_invalid_config_exits_78_without_starting(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[http]\nport = -1\n")
    proc = subprocess.run([sys.executable, "-m", "nautilus_hmm", "run", "--config", str(cfg)],
                          capture_output=True, timeout=DEADLINE_S)
    assert proc.returncode == 78
    assert b"http.port = -1: must be >= 0" in proc.stderr


def test_corrupt_journal_refuses_to_start_and_is_left_untouched(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    journal = state / "journal.sqlite3"
    garbage = b"this is not a database" * 100
    journal.write_bytes(garbage)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[node]\nstate_dir = "{state}"\n[http]\nport = {free_port()}\n')
    env = {**os.environ, "NAUTILUS_HMM_ADMIN_TOKEN": TOKEN}
    proc = subprocess.run([sys.executable, "-m", "nautilus_hmm", "run", "--config", str(cfg)],
                          capture_output=True, timeout=DEADLINE_S, env=env)
    assert proc.returncode == 1
    assert b"node_start_failed" in proc.stderr and b"journal.sqlite3" in proc.stderr
    assert b"Traceback" not in proc.stderr
    assert journal.read_bytes() == garbage
