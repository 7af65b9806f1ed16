"""`evaluate` end to end on real klines: walk-forward report, curves and the picture."""

from __future__ import annotations

import math
from pathlib import Path

import orjson

from nautilus_hmm.evaluate import evaluate
from tests.conftest import fixture_path
from tests.integration.hmm.conftest import SMALL_HMM


def test_evaluate_writes_a_walk_forward_report_with_out_of_sample_scores_and_a_png(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(SMALL_HMM)
    src = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    data = tmp_path / "k.csv"
    with src.open() as fh:
        data.write_text("".join(next(fh) for _ in range(1 + 9 * 1440)))
    doc = evaluate(str(data), str(tmp_path / "ev"), str(cfg), folds=2, train_fraction=0.67)
    t = doc["totals"]
    assert t["folds"] == 2 and t["test_bars"] == 9 * 1440 - int(9 * 1440 * 0.67)
    for key in ("macro_loglik_per_bar", "macro_baseline_per_bar", "micro_loglik_per_bar", "micro_baseline_per_bar"):
        assert math.isfinite(t[key])
    assert all(f["macro_bars_scored"] > 0 and f["micro_bars_scored"] > 0 for f in doc["folds"])
    assert all(abs(sum(s["occupancy"] for s in f["macro_states"]) - 1.0) < 1e-9 for f in doc["folds"])
    out = tmp_path / "ev"
    assert orjson.loads((out / "report.json").read_bytes())["totals"] == t
    assert (out / "evaluate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "fold0" / "model.json").exists() and (out / "fold1" / "model.json").exists()
    lines = (out / "equity.csv").read_text().splitlines()
    assert lines[0] == "fold,ts_ns,policy_pnl_frac,buy_hold_pnl_frac,macro_state" and len(lines) > 1000
