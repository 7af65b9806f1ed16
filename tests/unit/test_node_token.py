"""The admin token the node uses when no environment variable or credential gives one."""

from __future__ import annotations

import os

from structlog.testing import capture_logs

from nautilus_hmm.config import load_config
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier
from tests.nodeharness import write_config


async def _start_and_stop(tmp_path, monkeypatch) -> list[dict]:
    monkeypatch.delenv("NAUTILUS_HMM_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = write_config(tmp_path)
    node = Node(load_config(str(path)), path, clock=ManualClock(), notifier=Notifier(""))
    with capture_logs() as logs:
        await node.start()
        await node.stop()
    return logs


async def test_a_token_file_readable_by_others_is_used_with_a_warning_naming_it_and_the_fix(
        tmp_path, monkeypatch) -> None:
    token_file = tmp_path / "state" / "admin-token"
    token_file.parent.mkdir()
    token_file.write_text("shared-secret-token\n")
    os.chmod(token_file, 0o644)
    logs = await _start_and_stop(tmp_path, monkeypatch)
    (warning,) = [e for e in logs if e["event"] == "admin_token_file_permissive"]
    assert warning["log_level"] == "warning"
    assert warning["path"] == str(token_file) and warning["mode"] == "0644"
    assert f"chmod 600 {token_file}" in warning["hint"]


async def test_a_created_token_file_is_private_and_not_warned_about(tmp_path, monkeypatch) -> None:
    logs = await _start_and_stop(tmp_path, monkeypatch)
    token_file = tmp_path / "state" / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert not [e for e in logs if e["event"] == "admin_token_file_permissive"]


async def test_an_empty_token_file_readable_by_others_is_refilled_private(tmp_path, monkeypatch) -> None:
    token_file = tmp_path / "state" / "admin-token"
    token_file.parent.mkdir()
    token_file.write_text("")
    os.chmod(token_file, 0o644)
    await _start_and_stop(tmp_path, monkeypatch)
    assert token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600  # the mode of open() applies only to a new file
