"""`nautilus-hmm completion bash|zsh|tcsh` (shtab): the bash script, sourced in a real bash,
completes the commands, the ctl actions and their options, and paths for file options."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nautilus_hmm.cli import main

BASH = shutil.which("bash")


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def complete(script_path: Path, line: str, cwd: Path) -> list[str]:
    """COMPREPLY of bash for the command line `line` (the cursor at its end)."""
    words = line.split(" ")
    program = (f'source "{script_path}"\n'
               f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n"
               f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
               f"_shtab_nautilus_hmm nautilus-hmm '{words[-1]}' '{words[-2]}'\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    assert BASH is not None
    proc = subprocess.run([BASH, "--norc", "--noprofile", "-c", program], capture_output=True, text=True, cwd=cwd,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.split("\n") if w]


@pytest.fixture
def bash_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    if BASH is None:
        pytest.skip("bash is not installed")
    path = tmp_path / "nautilus-hmm.bash"
    path.write_text(script("bash", capsys))
    return path


def test_bash_completes_commands_ctl_actions_and_options(bash_script: Path, tmp_path: Path) -> None:
    assert {"ctl", "check-config", "completion"} <= set(complete(bash_script, "nautilus-hmm c", tmp_path))
    assert complete(bash_script, "nautilus-hmm ctl po", tmp_path) == ["positions"]
    assert set(complete(bash_script, "nautilus-hmm ctl e", tmp_path)) == {"events"}
    after = complete(bash_script, "nautilus-hmm ctl positions --", tmp_path)
    assert {"--json", "--url", "--token", "--token-file", "--config", "--timeout"} <= set(after)
    assert {"--open", "--limit"} <= set(complete(bash_script, "nautilus-hmm ctl orders --", tmp_path))
    assert complete(bash_script, "nautilus-hmm completion z", tmp_path) == ["zsh"]


def test_bash_completes_paths_for_config_options(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "daemon.toml").write_text("")
    assert complete(bash_script, "nautilus-hmm ctl status --config dae", tmp_path) == ["daemon.toml"]
    assert complete(bash_script, "nautilus-hmm run --config dae", tmp_path) == ["daemon.toml"]


def test_zsh_and_tcsh_scripts_name_the_program_and_the_ctl_actions(capsys: pytest.CaptureFixture[str]) -> None:
    zsh = script("zsh", capsys)
    assert zsh.startswith("#compdef nautilus-hmm") and "positions" in zsh and "events" in zsh
    tcsh = script("tcsh", capsys)
    assert "complete nautilus-hmm" in tcsh and "positions" in tcsh


def test_an_unknown_shell_is_a_usage_error_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["completion", "fish"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'fish'" in err and "bash" in err and "zsh" in err


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_parses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "_nautilus-hmm"
    path.write_text(script("zsh", capsys))
    proc = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
