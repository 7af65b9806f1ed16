"""The fork server the chaos storms start the daemon with (tests/system/forkserver.py): a child
is `python -m nautilus_hmm ARGS` with its own argv, environment, stderr file, exit code and
pid, and a SIGKILL reaches it and only it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nodeharness import write_config
from tests.system.forkserver import ForkServer
from tests.system.processes import http_json, wait_for


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    with ForkServer() as s:
        yield s


def test_a_child_exits_with_the_commands_code_and_writes_its_stderr_to_the_file(
        server: ForkServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nport = -1\n")
    log = tmp_path / "check.log"
    proc = server.spawn(["check-config", str(bad)], dict(os.environ), log, cwd=str(tmp_path))
    assert proc.wait(timeout=60) == 78  # EX_CONFIG, as the real command
    assert "http.port = -1: must be >= 0" in log.read_text()
    assert proc.poll() == 78 and proc.pid != os.getpid()


def test_a_daemon_child_serves_sees_its_own_environment_and_dies_of_sigkill(
        server: ForkServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, '[log]\nformat = "json"\n')
    log = tmp_path / "daemon.log"
    env = {**os.environ, "NAUTILUS_HMM_ADMIN_TOKEN": "fork-token-0123456789abcdef"}
    proc = server.spawn(["run", "--config", str(cfg)], env, log, cwd=str(tmp_path))
    try:
        def port() -> int | None:
            m = re.search(r'"event":"http_listening".*?"port":(\d+)', log.read_text())
            return int(m.group(1)) if m else None

        base = f"http://127.0.0.1:{wait_for(port, 'the forked daemon to listen')}"
        wait_for(lambda: http_json(base + "/health")[0] == 200, "the forked daemon to answer")
        # The token came from the child's environment, not the server's.
        assert http_json(base + "/admin/kill", {"reason": "t"},
                         headers={"Authorization": "Bearer fork-token-0123456789abcdef"})[0] == 200
        assert http_json(base + "/admin/kill", {"reason": "t"}, headers={"Authorization": "Bearer nope"})[0] == 401
        assert proc.poll() is None
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL
        assert not server.signal(proc.pid, signal.SIGTERM), "a reaped child is never signalled"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def test_wait_times_out_like_popen(server: ForkServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    proc = server.spawn(["run", "--config", str(cfg)], dict(os.environ), tmp_path / "d.log", cwd=str(tmp_path))
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.01)
    finally:
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL
