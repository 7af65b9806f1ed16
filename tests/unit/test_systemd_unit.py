"""The shipped unit file passes `systemd-analyze verify` and carries the promised settings."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "systemd" / "nautilus-hmm.service"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_unit_has_notify_watchdog_restart_policy_and_hardening() -> None:
    d = directives()
    expect = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "RestartPreventExitStatus": "78",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "StateDirectory": "nautilus-hmm", "ConfigurationDirectory": "nautilus-hmm",
    }
    for k, v in expect.items():
        assert d[k] == [v], k
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "WatchdogSec" in d and "User" in d
    assert any(v.startswith("admin-token:") for v in d["LoadCredential"])
    assert "@system-service" in d["SystemCallFilter"]
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]


def test_stop_timeout_exceeds_the_graceful_stop_deadline() -> None:
    from nautilus_hmm.config import Config
    from nautilus_hmm.config.loader import parse

    timeout = directives()["TimeoutStopSec"][0]
    assert timeout.endswith("s")
    assert float(timeout[:-1]) > parse(Config, {}).node.graceful_stop_timeout_s


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed")
    # verify checks that ExecStart's binary exists: point it at this environment's install.
    exe = Path(sys.executable).parent / "nautilus-hmm"
    assert exe.exists(), "install the package first (pip install -e .)"
    unit = tmp_path / "nautilus-hmm.service"
    unit.write_text(UNIT.read_text().replace("/opt/nautilus-hmm/.venv/bin/nautilus-hmm", str(exe)))
    proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sec = subprocess.run([tool, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    if sec.returncode == 0 and "Overall exposure level" in sec.stdout:
        level = float(sec.stdout.split("Overall exposure level for nautilus-hmm.service:")[1].split()[0])
        assert level <= 2.0


def test_unit_parses_as_ini() -> None:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string(UNIT.read_text())
    assert {"Unit", "Service", "Install"} <= set(cp.sections())
