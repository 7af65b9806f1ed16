"""`nautilus-hmm evaluate` (nautilus_hmm.evaluate): its failures, before any work is done."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nautilus_hmm.cli import main
from tests.unit.test_models_cli import SMALL_TOML, cli_logging, klines  # noqa: F401  (cli_logging: autouse fixture)


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL_TOML)
    return p


def test_evaluate_on_too_short_data_is_a_data_error(
        tmp_path: Path, small_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--data", str(klines(tmp_path, 3000)), "--out", str(tmp_path / "ev"),
                 "--config", str(small_config)])
    assert code == 65
    assert "the model needs at least 2010" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


def test_evaluate_without_matplotlib_stops_before_any_work_naming_the_fix(
        tmp_path: Path, small_config: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    code = main(["evaluate", "--data", str(klines(tmp_path, 3000)), "--out", str(tmp_path / "ev"),
                 "--config", str(small_config)])
    assert code == 1
    err = capsys.readouterr().err
    assert "matplotlib" in err and "pip install -e '.[train]'" in err and "--no-plot" in err
    assert "Traceback" not in err
    assert not (tmp_path / "ev").exists()
