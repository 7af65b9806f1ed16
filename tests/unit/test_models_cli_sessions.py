"""`nautilus-hmm train --session-gaps` (issue 14): bars with trading sessions (nights and
weekends missing) are trained with each session's first bar glued to the previous close,
as the live tracker of an instrument with sessions does."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest

from tests.conftest import fixture_path
from tests.unit.test_models_cli import SMALL_TOML, cli_logging, main  # noqa: F401 (fixture)

pytest.importorskip("pomegranate")


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL_TOML)
    return p


def weekday_sessions(tmp_path: Path, days: int = 8) -> tuple[Path, int]:
    """Real BTC minutes of the first `days` calendar days kept 13:00-21:00 on weekdays."""
    src = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    lines = src.read_text().splitlines(keepends=True)
    kept, sessions = [], set()
    for line in lines[1:1 + days * 1440]:
        t = datetime.strptime(line.split(",", 1)[0], "%Y-%m-%d %H:%M:%S")
        if 13 <= t.hour < 21 and t.weekday() < 5:
            kept.append(line)
            sessions.add(t.date())
    out = tmp_path / "sessions.csv"
    out.write_text(lines[0] + "".join(kept))
    return out, len(sessions)


def test_train_with_session_gaps_flags_every_session_start(
        tmp_path: Path, small_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, n_sessions = weekday_sessions(tmp_path)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "out"), "--config", str(small_config),
                 "--instrument", "ibkr:BTC-DAY", "--session-gaps", "-q"])
    assert code == 0, capsys.readouterr().err
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["session_starts"] == n_sessions - 1
    assert (tmp_path / "out" / "model.json").is_file()


def test_train_without_the_flag_reports_no_session_starts(
        tmp_path: Path, small_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = weekday_sessions(tmp_path)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "out"), "--config", str(small_config), "-q"])
    assert code == 0, capsys.readouterr().err
    assert "session_starts" not in orjson.loads(capsys.readouterr().out)
