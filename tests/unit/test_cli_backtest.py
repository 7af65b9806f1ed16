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


# ---------------------------------------------------------------- progress and report.html (issue 11 item 6)


def _markers(html_text: str, cls: str) -> int:
    from html.parser import HTMLParser

    found: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "path" and cls in (dict(attrs).get("class") or "").split():
                found.append(tag)

    P().feed(html_text)
    return len(found)


def test_backtest_writes_report_html_with_a_marker_per_fill_and_progress_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 9000)
    rc = main(["backtest", "--config", str(REPO / "research/configs/sma_cross_anchor.toml"), "--data", str(data),
               "--out", str(tmp_path / "out")])
    assert rc == 0
    fills = (tmp_path / "out" / "fills.csv").read_text().splitlines()[1:]
    report = (tmp_path / "out" / "report.html").read_text()
    assert len(fills) > 0 and _markers(report, "trade") == len(fills)
    err = capsys.readouterr().err.splitlines()
    progress = [line for line in err if line.startswith("backtest: ")]
    # stderr is not a terminal here: a line at 4096 and 8192 bars (45 %, 91 %), then the closing line
    assert [p.split(",")[0] for p in progress[:-1]] == ["backtest: 4096/9000 bars (46%)",
                                                        "backtest: 8192/9000 bars (91%)"]
    assert progress[-1].startswith("backtest: 9000/9000 bars (100%) done in ")
    assert any(line.endswith("report.html") for line in err)


def test_quiet_and_no_report_leave_out_progress_and_the_page(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 500)
    rc = main(["backtest", "--config", str(REPO / "research/configs/sma_cross_anchor.toml"), "--data", str(data),
               "--out", str(tmp_path / "out"), "--quiet", "--no-report"])
    assert rc == 0
    assert not (tmp_path / "out" / "report.html").exists()
    assert (tmp_path / "out" / "summary.json").exists()
    err = capsys.readouterr().err
    assert "backtest: " not in err and "report.html" not in err


def test_a_multi_strategy_backtest_report_has_a_section_per_strategy(tmp_path: Path) -> None:
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 2000)
    rc = main(["backtest", "--config", str(REPO / "research/configs/three_strategies.toml"), "--data", str(data),
               "--out", str(tmp_path / "out"), "-q"])
    assert rc == 0
    report = (tmp_path / "out" / "report.html").read_text()
    for sid in ("trend", "breakout", "revert"):
        assert f'<section class="strategy" data-strategy="{sid}">' in report
    attributed = (tmp_path / "out" / "fills_by_strategy.csv").read_text().splitlines()[1:]
    assert _markers(report, "strategy-trade") == len(attributed) > 0
    from tests.unit.test_backtest_report import Page

    assert Page(report).errors == []  # every element closed, in order


def test_a_report_that_cannot_be_written_still_leaves_the_csvs_and_the_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 500)
    (tmp_path / "out" / "report.html").mkdir(parents=True)  # the page's name is taken by a directory
    rc = main(["backtest", "--config", str(REPO / "research/configs/sma_cross_anchor.toml"), "--data", str(data),
               "--out", str(tmp_path / "out"), "-q"])
    assert rc == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["bars"] == 500
    assert captured.err.strip().startswith("report.html not written: ")
    assert "report.html" in captured.err.strip().removeprefix("report.html not written: ")
    assert (tmp_path / "out" / "summary.json").exists() and (tmp_path / "out" / "equity.csv").exists()
    assert not list((tmp_path / "out").glob(".*tmp"))  # no half page left behind
