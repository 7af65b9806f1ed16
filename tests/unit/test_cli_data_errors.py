"""A damaged data file stops `backtest`, `infer` and `train` with one `data error: FILE:LINE: ...`
line naming the value, exit 65: never a traceback, never a silently wrong date."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from nautilus_hmm.cli import main

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD_ISO = [
    "2025-03-01 03:00:00,100,101,99,100.5,1.5",
    "2025-03-01 03:01:00,100.5,102,100,101,2",
    "2025-03-01 03:02:00,101,101.5,100.5,101.2,0.5",
]
GOOD_EPOCH = ["1740798000,100,101,99,100.5,1.5", "1740798060,100.5,102,100,101,2",
              "1740798120,101,101.5,100.5,101.2,0.5"]

SMA_TOML = """
[venues.sim]
symbols = ["BTCUSDT"]
[venues.sim.market]
bar_interval_s = 60
[strategy]
kind = "sma_cross"
instruments = ["sim:BTCUSDT"]
bar_interval_s = 60
"""

# name → (file bytes, line, fragment naming the value)
DAMAGED: dict[str, tuple[bytes, int, str]] = {
    "epoch_beyond_int64": ((HEADER + "\n".join([*GOOD_EPOCH[:2], "99999999999999999999,101,101.5,100.5,101.2,0.5"])
                            + "\n").encode(), 4, "'99999999999999999999'"),
    "iso_after_2262": ((HEADER + "\n".join(r.replace("2025", "2625") for r in GOOD_ISO) + "\n").encode(), 2,
                       "'2625-03-01 03:00:00'"),
    "negative_epoch": ((HEADER + "\n".join(["-60,100,101,99,100.5,1.5", *GOOD_EPOCH[1:]]) + "\n").encode(), 2,
                       "'-60' is negative"),
    "not_increasing": ((HEADER + "\n".join([GOOD_EPOCH[1], GOOD_EPOCH[0], GOOD_EPOCH[2]]) + "\n").encode(), 3,
                       "timestamps not increasing"),
    "nan_close": ((HEADER + "\n".join([GOOD_ISO[0], GOOD_ISO[1].replace(",101,2", ",nan,2"), GOOD_ISO[2]])
                   + "\n").encode(), 3, "close 'nan'"),
    "negative_volume": ((HEADER + "\n".join([GOOD_ISO[0], GOOD_ISO[1].replace(",2", ",-2"), GOOD_ISO[2]])
                         + "\n").encode(), 3, "negative volume -2"),
    "empty_file": (b"", 1, "empty file"),
    "header_only": (HEADER.encode(), 2, "no data rows"),
    "truncated_last_line": ((HEADER + "\n".join(GOOD_ISO) + "\n2025-03-01 03:03:00,101,10").encode(), 5,
                            "truncated last line"),
    "wrong_column_count": ((HEADER + "\n".join([GOOD_ISO[0], GOOD_ISO[1] + ",7", GOOD_ISO[2]]) + "\n").encode(), 3,
                           "wrong column count: 7"),
    "non_utf8_byte": ((HEADER + "\n".join(GOOD_ISO) + "\n").encode().replace(b"101.5", b"101\xff5"), 4,
                      "byte 0xff"),
}


@pytest.fixture(autouse=True)
def quiet_logging() -> Iterator[None]:
    """The commands configure structlog process-wide: restore it after each test."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
    logging.getLogger().handlers.clear()


def _argv(command: str, data: Path, tmp_path: Path) -> list[str]:
    if command == "backtest":
        cfg = tmp_path / "sma.toml"
        cfg.write_text(SMA_TOML)
        return ["backtest", "--config", str(cfg), "--data", str(data), "--out", str(tmp_path / "out")]
    if command == "train":
        return ["train", "--data", str(data), "--out", str(tmp_path / "out")]
    from tests.unit.hmm.kit import decisive_model

    decisive_model().save(tmp_path / "model.json")
    return ["infer", "--model", str(tmp_path / "model.json"), "--data", str(data), "--out", str(tmp_path / "o.csv")]


@pytest.mark.parametrize("damage", sorted(DAMAGED))
@pytest.mark.parametrize("command", ["backtest", "infer", "train"])
def test_damaged_data_file_is_one_data_error_line_and_exit_65(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, damage: str) -> None:
    content, line, fragment = DAMAGED[damage]
    data = tmp_path / "damaged.csv"
    data.write_bytes(content)
    rc = main(_argv(command, data, tmp_path))
    captured = capsys.readouterr()
    assert rc == 65, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"data error: {data}:{line}: "), lines[0]
    assert fragment in lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "o.csv").exists()
