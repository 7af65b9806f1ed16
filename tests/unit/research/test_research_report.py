"""research report: one page per run directory (sim_exec run, slippage fit, sweep results),
a machine-readable summary beside it; damaged inputs are named and nothing is written."""

from __future__ import annotations

import argparse
import csv
import io
import re
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.domain.enums import Side
from nautilus_hmm.research import report
from nautilus_hmm.research import slippage as slip
from nautilus_hmm.research.sim_exec import Scripted, SimExecConfig, TickSim, write_outputs
from nautilus_hmm.research.sweep import HEAD_COLUMNS, RESULT_COLUMNS
from nautilus_hmm.research.ticks import QUOTE, SNAPSHOT, TRADE
from nautilus_hmm.venues.sim.instruments import sim_instrument

MS = 1_000_000
T0 = 1_723_161_254_000_000_000


def sim_run(out: Path) -> Path:
    inst = sim_instrument("sim", "BTCUSDT", "USDT", Decimal("0.0002"), Decimal("0.001"))
    events = [(T0, SNAPSHOT, [(99.0, 5.0)], [(100.0, 1.0), (101.0, 2.0)])]
    for i in range(1, 60):
        events.append((T0 + i * 100 * MS, QUOTE, 99.0, 5.0, 100.0, 1.0))
    events.append((T0 + 6_100 * MS, TRADE, 101.5, 9.0, False))  # a buyer lifts through our resting sell
    strat = Scripted([(T0 + 100 * MS, {"side": Side.BUY, "qty": 2.0}),
                      (T0 + 200 * MS, {"side": Side.SELL, "qty": 1.0, "price": 100.5})])
    res = TickSim(inst, SimExecConfig(maker_fee=0.0002, taker_fee=0.001)).run(events, strat)
    assert len(res.fills) == 3
    return write_outputs(res, out)


def model_file(path: Path) -> Path:
    doc = {"kind": slip.KIND, "format_version": 1, "created_at": "2026-01-01T00:00:00Z", "instruments": ["x"],
           "features": list(slip.FEATURES), "coef": [1.0, 0.0, 0.0, 2.0], "size_ref_quote": 100.0,
           "vol_window_s": 300.0, "clip_bps": [-10.0, 50.0], "fit": {}, "training": {}, "library_versions": {}}
    return slip.SlippageModel.from_dict(doc, "test").save(path)


def sweep_results(path: Path, rows: list[dict[str, str]]) -> None:
    axes = ["hmm.train.macro_states", "hmm.policy.min_edge"]
    header = [*HEAD_COLUMNS, *axes, *RESULT_COLUMNS]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, r in enumerate(rows):
            base = dict.fromkeys(header, "")
            base.update(trial_id=f"t{i}", status="ok", symbol="BTCUSDT", fold="0")
            base.update(r)
            w.writerow([base[c] for c in header])


def test_a_sim_run_with_a_model_gets_equity_fills_and_the_slippage_chart(tmp_path: Path) -> None:
    run = sim_run(tmp_path / "run")
    mp = model_file(tmp_path / "model.json")
    page_path, summary_path = report.write(run, mp)
    page = page_path.read_text()
    assert 'id="equity"' in page and 'id="slippage"' in page
    assert page.count('class="point"') == 2  # the two taker fills (the maker fill is not a cost of taking)
    assert '<polyline class="model"' in page
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["sections"] == ["summary", "equity", "fills", "slippage"]
    assert summary["run"]["fills"] == 3 and summary["sim_taker_fills"] == 2
    assert summary["slippage_model"]["sha256"] == slip.load_model(mp).sha256
    assert summary["slippage_model"]["rmse_bps_on_these_fills"] > 0


def test_a_sweep_gets_heat_maps_and_the_best_out_of_sample_setting(tmp_path: Path) -> None:
    rows = []
    for k, edge, lift in (("2", "0.02", 0.5), ("2", "0.1", 0.7), ("3", "0.02", 1.5), ("3", "0.1", 0.9)):
        for fold in ("0", "1"):
            rows.append({"hmm.train.macro_states": k, "hmm.policy.min_edge": edge, "fold": fold,
                         "micro_loglik_per_bar": repr(-1.0 + lift), "micro_baseline_per_bar": "-1.0",
                         "policy_pnl_frac": "0.01"})
    rows.append({"hmm.train.macro_states": "4", "hmm.policy.min_edge": "0.1", "status": "error",
                 "error": "boom"})
    sweep_results(tmp_path / "results.csv", rows)
    page_path, summary_path = report.write(tmp_path)
    page = page_path.read_text()
    assert page.count('class="chart heatmap"') == 2
    assert page.count('<rect class="cell"') == 8  # 2 x 2 cells in each of the two maps
    titles = re.findall(r"<title>(3 / 0\.02: [^<]*)</title>", page)
    assert titles[0] == "3 / 0.02: 1.5"
    s = orjson.loads(summary_path.read_bytes())["sweep"]
    assert s == {"trials": 9, "ok": 8, "errors": 1, "axes": ["hmm.train.macro_states", "hmm.policy.min_edge"],
                 "best_by_oos_lift": "macro_states=3, min_edge=0.02"}


def test_slip_train_output_is_drawn_from_its_samples(tmp_path: Path) -> None:
    mp = model_file(tmp_path / slip.MODEL_FILE)
    (tmp_path / slip.SAMPLES_FILE).write_text("client_order_id,notional,slippage_bps\na,100,3.1\nb,400,5.2\n")
    page_path, summary_path = report.write(tmp_path)
    assert page_path.read_text().count('class="point"') == 2
    assert orjson.loads(summary_path.read_bytes())["slippage_model"]["path"] == str(mp)


def run_cli(*argv: str) -> tuple[int, str, str]:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    report.add_report_command(sub)
    args = ap.parse_args(["report", *argv])
    out, err = io.StringIO(), io.StringIO()
    return report.run_report(args, out, err), out.getvalue(), err.getvalue()


def test_a_bad_number_in_the_fills_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    run = sim_run(tmp_path / "run")
    detail = run / "fills_detail.csv"
    lines = detail.read_text().splitlines()
    cells = lines[1].split(",")
    cells[4] = "12x.5"
    lines[1] = ",".join(cells)
    detail.write_text("\n".join(lines) + "\n")
    rc, _, err = run_cli(str(run))
    assert rc == 2 and f"{detail}: line 2: price = '12x.5'" in err
    assert not (run / report.REPORT_FILE).exists() and not (run / report.SUMMARY_FILE).exists()


def test_a_truncated_equity_file_is_named(tmp_path: Path) -> None:
    run = sim_run(tmp_path / "run")
    eq = run / "equity.csv"
    eq.write_text(eq.read_text()[:-7])
    rc, _, err = run_cli(str(run))
    assert rc == 2 and f"{eq}: truncated" in err


def test_a_damaged_model_is_named(tmp_path: Path) -> None:
    run = sim_run(tmp_path / "run")
    mp = model_file(tmp_path / "m.json")
    mp.write_bytes(mp.read_bytes().replace(b"2.0", b"3.0", 1))
    rc, _, err = run_cli(str(run), "--slippage-model", str(mp))
    assert rc == 2 and "sha256" in err and str(mp) in err


def test_a_directory_with_nothing_to_report_says_so(tmp_path: Path) -> None:
    rc, _, err = run_cli(str(tmp_path))
    assert rc == 2 and "nothing to report" in err
    rc, _, err = run_cli(str(tmp_path / "missing"))
    assert rc == 2 and "not a directory" in err


def test_sim_exec_command_runs_a_capture_end_to_end(tmp_path: Path) -> None:
    import gzip

    lines = [f"{T0} ".encode() + orjson.dumps({"lastUpdateId": 1, "bids": [["99.00", "5"]],
                                                "asks": [["100.00", "1"]]})]
    for i in range(1, 200):
        bid = 99.0 + (i // 50) * 0.01
        lines.append(f"{T0 + i * 50 * MS} ".encode() + orjson.dumps(
            {"stream": "btcusdt@bookTicker", "data": {"b": f"{bid:.2f}", "B": "5", "a": "100.00", "A": "1"}}))
        if i % 20 == 0:
            lines.append(f"{T0 + i * 50 * MS + 1} ".encode() + orjson.dumps(
                {"stream": "btcusdt@trade", "data": {"p": f"{bid:.2f}", "q": "9", "m": True}}))
    cap = tmp_path / "spot_btcusdt_test.gz"
    cap.write_bytes(gzip.compress(b"\n".join(lines)))
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    report.add_sim_exec_command(sub)
    args = ap.parse_args(["sim-exec", "--capture", str(cap), "--out", str(tmp_path / "o"), "--latency-ms", "1"])
    out, err = io.StringIO(), io.StringIO()
    assert report.run_sim_exec(args, out, err) == 0, err.getvalue()
    assert "events" in out.getvalue()
    s = orjson.loads((tmp_path / "o" / "summary.json").read_bytes())
    assert s["maker_fills"] > 0 and s["entry_latency_ms"] == 1.0
    assert (tmp_path / "o" / report.REPORT_FILE).exists()


@pytest.mark.parametrize("flag", ["--latency-ms", "--quote-notional"])
def test_sim_exec_refuses_a_negative_setting(tmp_path: Path, flag: str) -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    report.add_sim_exec_command(sub)
    args = ap.parse_args(["sim-exec", "--capture", "x.gz", "--out", str(tmp_path), flag, "-1"])
    err = io.StringIO()
    assert report.run_sim_exec(args, io.StringIO(), err) == 2
    assert flag in err.getvalue()


def test_the_cli_wires_research_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nautilus_hmm.cli import main

    run = sim_run(tmp_path / "run")
    assert main(["research", "report", str(run)]) == 0
    assert (run / report.REPORT_FILE).exists()
    assert main(["research", "report", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


SMALL_MODEL = Path(__file__).parent / "data" / "btc_small_regime_model.json"  # K=2/2, 30m/5m, trained on 3 days
KLINES_1M = Path("/work/shared/fixtures/marketdata/binance_spot_klines_1m/BTCUSDT_1m_2025-03.csv")


@pytest.mark.skipif(not KLINES_1M.exists(), reason="shared fixtures not mounted")
def test_regimes_are_drawn_as_bands_under_the_price(tmp_path: Path) -> None:
    data = tmp_path / "BTCUSDT_1m_head.csv"
    data.write_text("\n".join(KLINES_1M.read_text().splitlines()[:6 * 1440 + 1]) + "\n")  # six days
    page_path, summary_path = report.write(tmp_path, model=SMALL_MODEL, data=data)
    page = page_path.read_text()
    s = orjson.loads(summary_path.read_bytes())["regimes"]
    assert s["bars"] == 6 * 288  # 5 m bars
    occ = s["occupancy"]
    assert sum(occ.values()) == s["bars"] and occ["-1"] > 0 and occ["0"] > 0 and occ["1"] > 0
    assert page.count('<rect class="regime r0"') >= 1 and page.count('<rect class="regime r1"') >= 1
    assert 'id="regimes"' in page


def test_regimes_need_both_model_and_data(tmp_path: Path) -> None:
    rc, _, err = run_cli(str(tmp_path), "--model", str(SMALL_MODEL))
    assert rc == 2 and "both --model and --data" in err


@pytest.mark.skipif(not KLINES_1M.exists(), reason="shared fixtures not mounted")
def test_a_damaged_regime_model_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_bytes(SMALL_MODEL.read_bytes()[:500])
    rc, _, err = run_cli(str(tmp_path), "--model", str(bad), "--data", str(KLINES_1M))
    assert rc == 2 and str(bad) in err
    assert not (tmp_path / report.REPORT_FILE).exists()


def _sim_exec_cli(*argv: str) -> tuple[int, str]:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    report.add_sim_exec_command(sub)
    err = io.StringIO()
    return report.run_sim_exec(ap.parse_args(["sim-exec", *argv]), io.StringIO(), err), err.getvalue()


def test_sim_exec_names_a_damaged_capture(tmp_path: Path) -> None:
    import gzip

    cap = tmp_path / "spot_btcusdt_x.gz"
    cap.write_bytes(gzip.compress(b'1 {"stream":"x@bookTicker","data":{"b":"1","B":"1","a":"2","A":"1"}}\n2 {"str'))
    rc, err = _sim_exec_cli("--capture", str(cap), "--out", str(tmp_path / "o"))
    assert rc == 2 and f"{cap}:2" in err
    assert not (tmp_path / "o").exists()


def test_sim_exec_names_a_bad_latency_journal(tmp_path: Path) -> None:
    bad = tmp_path / "j.sqlite3"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    rc, err = _sim_exec_cli("--capture", "x.gz", "--out", str(tmp_path / "o"), "--latency-from-journal", str(bad))
    assert rc == 2 and str(bad) in err
