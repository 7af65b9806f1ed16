"""Helpers for tests that drive the daemon (and the emulator) as real processes.

The processes run on the wall clock, so nothing here sleeps a fixed time to let something
happen: `wait_for` polls a condition until a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

# A bound, not a duration (see wait_for): generous, as the suite shares the machine with its
# own daemons, emulators, browsers and a second test worker.
DEADLINE_S = 60.0


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S, poll_s: float = 0.02) -> Any:
    """Poll `pred` until truthy (OSError counts as not yet); AssertionError naming `what` on timeout."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            value = pred()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def http_json(url: str, body: Any = None, method: str | None = None, timeout_s: float = 30.0,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, decoded JSON) of one request; HTTP errors are answers, not exceptions."""
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            raw = r.read()
            return r.status, orjson.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return e.code, raw.decode("utf-8", "replace")


def start_daemon(config: Path, log: Path, token: str) -> subprocess.Popen:
    """`nautilus-hmm run --config config` as a process, its stderr appended to `log` (a file,
    not a pipe: a full pipe would block the daemon's loop), the admin token in its environment."""
    env = {**os.environ, "NAUTILUS_HMM_ADMIN_TOKEN": token}
    with log.open("ab") as err:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "nautilus_hmm", "run", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def stop_daemon(proc: subprocess.Popen) -> None:
    """SIGTERM a process still running and reap it; SIGKILL it if it has not exited within
    DEADLINE_S (the TimeoutExpired still propagates)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=DEADLINE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
