"""A daemon whose HTTP port is taken stops at once, says so in one line and creates nothing."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_a_port_in_use_is_one_error_line_naming_the_address_exit_1_and_no_state_created(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    state_dir = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(f'[strategy]\nkind = "sma_cross"\n[node]\nstate_dir = "{state_dir}"\n[http]\nport = {port}\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    try:
        proc = subprocess.run([sys.executable, "-m", "nautilus_hmm", "run", "--config", str(config),
                               "--log-format", "console"], capture_output=True, text=True, timeout=60,
                              cwd=REPO, env=env)
    finally:
        taken.close()
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    assert not state_dir.exists()  # no journal, no token, no account file
