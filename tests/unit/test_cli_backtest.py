"""`nautilus-hmm backtest`: outputs, bad data files, and the HMM strategy with --model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nautilus_hmm.cli import main
from tests.conftest import REPO, fixture_path

KLINES = ("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")


def head(path: Path, out: Path, n: int) -> Path:
    lines = path.read_text().splitlines()[: n + 1]
    out.write_text("\n".join(lines) + "\n")
    return out


def test_backtest_writes_fills_equity_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 3000)
    rc = main(["backtest", "--config", str(REPO / "research/configs/sma_cross_anchor.toml"), "--data", str(data),
               "--out", str(tmp_path / "out")])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    fills = (tmp_path / "out" / "fills.csv").read_text().splitlines()
    assert summary["bars"] == 3000 and summary["fills"] == len(fills) - 1 > 0
    assert len((tmp_path / "out" / "equity.csv").read_text().splitlines()) == 3001
    assert json.loads(capsys.readouterr().out)["final_equity"] == summary["final_equity"]


def test_truncated_data_file_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 100)
    data.write_text(data.read_text().rstrip("\n")[:-9])  # cut the last row mid-number, no newline
    rc = main(["backtest", "--config", str(REPO / "research/configs/sma_cross_anchor.toml"), "--data", str(data)])
    assert rc == 65
    err = capsys.readouterr().err
    assert f"{data}:101" in err


def test_hmm_backtest_needs_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[strategy]\nkind = "hmm"\n')
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 100)
    assert main(["backtest", "--config", str(cfg), "--data", str(data)]) == 78
    assert "needs --model" in capsys.readouterr().err


def test_hmm_backtest_with_a_model_trades_through_the_engine(tmp_path: Path) -> None:
    from tests.unit.hmm.kit import decisive_model

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    decisive_model().save(model_dir / "model.json")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[venues.sim]\nsymbols = ["BTCUSDT"]\n[venues.sim.market]\nbar_interval_s = 60\n'
                   '[strategy]\nkind = "hmm"\nbar_interval_s = 60\n'
                   # the router sizes the one strategy with the whole account (100,000), past the
                   # default 50,000 order-notional rail
                   '[risk]\nmax_order_notional_usd = 1e9\nmax_symbol_exposure_usd = 1e9\nmax_gross_exposure_usd = 1e9\n')
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 6000)
    rc = main(["backtest", "--config", str(cfg), "--data", str(data), "--model", str(model_dir),
               "--out", str(tmp_path / "out")])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["bars"] == 6000
    assert summary["fills"] > 0
