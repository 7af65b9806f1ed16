"""`nautilus-hmm check-config` and `run` with a bad config: exit 78 (EX_CONFIG), one line per
problem naming its dotted path and value, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nautilus_hmm.cli import EXIT_CONFIG, main
from tests.conftest import REPO

BAD = (
    "[risk]\norder_burst = 18446744073709551616\n"
    "[node]\nheartbeat_interval_s = 5e-324\n"
    '[hmm]\ntraining_data = "{missing}"\n'
)


def bad_config(tmp_path: Path) -> tuple[Path, list[str]]:
    missing = tmp_path / "no-such-klines.csv"
    p = tmp_path / "config.toml"
    p.write_text(BAD.format(missing=missing))
    expected = [
        "  node.heartbeat_interval_s = 5e-324: must be >= 1",
        "  risk.order_burst = 18446744073709551616: must be <= 100000",
        f'  hmm.training_data = "{missing}": file not found',
    ]
    return p, expected


@pytest.mark.parametrize("command", [["check-config"], ["run", "--config"]], ids=["check-config", "run"])
def test_a_bad_config_exits_78_with_one_line_per_problem_and_no_traceback(tmp_path: Path, command: list[str]) -> None:
    p, expected = bad_config(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "nautilus_hmm", *command, str(p)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"{p}: 3 error(s)")
    assert sorted(lines[1:]) == sorted(expected)


def test_check_config_of_a_config_that_cannot_be_hashed_exits_78(tmp_path: Path, monkeypatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import nautilus_hmm.config.loader as loader

    def unhashable(cfg: object) -> str:
        raise TypeError("Integer exceeds 64-bit range")

    monkeypatch.setattr(loader, "config_hash", unhashable)
    p = tmp_path / "config.toml"
    p.write_text("")
    assert main(["check-config", str(p)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "Integer exceeds 64-bit range" in err and "Traceback" not in err
