"""research sweep without a cluster: the grid file, the plan, the results file, the verdict, the command's errors.

Every bad grid fails before any trial starts (no cluster is created: the plan is checked first)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest

from nautilus_hmm import cli
from nautilus_hmm.research import selection, sweep
from tests.unit.research.sweep_fixtures import BTC, ETH, grid_file, head_lines


@pytest.fixture
def btc(tmp_path: Path) -> Path:
    return head_lines(BTC, tmp_path / "BTCUSDT_1m_small.csv", 300)


# ---------------------------------------------------------------- grid


def test_lists_are_choices_scalars_fixed_and_list_keys_take_lists_of_lists(tmp_path: Path) -> None:
    g = sweep.load_grid(grid_file(tmp_path, train="macro_states = [2, 3, 4]\nseed = [1, 2]",
                                  tail="[hmm.policy]\nmin_edge = [0.0, 0.1]\n[sweep]\nfolds = 4\n"))
    assert g.axes == {"hmm.train.macro_states": [2, 3, 4], "hmm.train.seed": [1, 2], "hmm.policy.min_edge": [0.0, 0.1]}
    assert g.fixed["hmm.train.n_restarts"] == 1 and g.fixed["hmm.features.return_horizons"] == [1, 4]  # flat: fixed
    assert g.folds == 4 and g.train_fraction == 0.5 and g.n_settings == 12
    first = next(g.settings())
    assert first == {"hmm.train.macro_states": 2, "hmm.train.seed": 1, "hmm.policy.min_edge": 0.0}
    g2 = sweep.parse_grid({"hmm": {"features": {"return_horizons": [[1, 5], [1, 5, 15]]}}})
    assert g2.axes == {"hmm.features.return_horizons": [[1, 5], [1, 5, 15]]}


@pytest.mark.parametrize(("text", "named"), [
    ("[hmm.train]\nmacro_statez = [2, 3]\n", "hmm.train.macro_statez = 2: unknown key (did you mean 'macro_states'?)"),
    ("[hmm.polcy]\nmin_edge = [0.1]\n", "hmm.polcy"),
    ("[risk]\nmax_notional = [1, 2]\n", "risk: unknown key"),
    ("[sweep]\nfold = 3\n", "sweep.fold: unknown key"),
    ("[sweep]\nfolds = 0\n", "sweep.folds = 0: must be >= 1"),
    ("[sweep]\ntrain_fraction = 1.5\n", "sweep.train_fraction = 1.5: must be in (0, 1)"),
    ("[sweep]\nfolds = \"3\"\n", "sweep.folds = \"3\": expected an integer"),
    ("[hmm.train]\nmacro_states = []\n", "hmm.train.macro_states = []: an empty list of choices"),
    ("[hmm.train]\nmacro_states = [2, 2]\n", "hmm.train.macro_states = [2, 2]: a choice is listed twice"),
    ("[hmm.train]\nmacro_states = [2, \"three\"]\n", "hmm.train.macro_states = \"three\": expected an integer"),
    ("[hmm.train]\nmacro_states = [2, 0]\n", "hmm.train.macro_states = 0"),
    ("[hmm.train]\ncovariance_type = [\"full\", \"spherical\"]\n", "hmm.train.covariance_type = \"spherical\""),
    ("hmm = 3\n", "hmm = 3: expected a table"),
    ("[hmm.train\n", "not valid TOML"),
])
def test_a_bad_grid_fails_before_any_trial_naming_the_key(tmp_path: Path, btc: Path, text: str, named: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(sweep.SweepError) as err:
        sweep.plan_sweep(sweep.load_grid(p), [str(btc)])
    assert named in str(err.value) and str(p) in str(err.value)


def test_a_grid_that_is_not_text_or_missing_is_named(tmp_path: Path) -> None:
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00[hmm]")
    with pytest.raises(sweep.SweepError, match=r"bin\.toml is not UTF-8"):
        sweep.load_grid(p)
    with pytest.raises(sweep.SweepError, match=r"cannot read grid file .*nope\.toml"):
        sweep.load_grid(tmp_path / "nope.toml")


# ---------------------------------------------------------------- plan


def test_plan_is_settings_x_files_x_folds_with_stable_ids_and_sim_instruments(tmp_path: Path, btc: Path) -> None:
    eth = head_lines(ETH, tmp_path / "ETHUSDT-1m-2025-03.csv", 300)
    g = sweep.load_grid(grid_file(tmp_path, train="macro_states = [2, 3]", tail="[sweep]\nfolds = 3\n"))
    plan = sweep.plan_sweep(g, [str(btc), str(eth)], {"hmm": {"policy": {"min_edge": 0.05}}})
    assert len(plan.trials) == 2 * 2 * 3
    assert {t.instrument for t in plan.trials} == {"sim:BTCUSDT", "sim:ETHUSDT"}
    assert len({t.trial_id for t in plan.trials}) == 12
    assert all(t.config["hmm"]["policy"]["min_edge"] == 0.05 and t.seed == 7 for t in plan.trials)  # base config kept
    again = sweep.plan_sweep(g, [str(btc), str(eth)], {"hmm": {"policy": {"min_edge": 0.05}}})
    assert [t.trial_id for t in again.trials] == [t.trial_id for t in plan.trials]
    other_base = sweep.plan_sweep(g, [str(btc), str(eth)], {})
    assert not {t.trial_id for t in other_base.trials} & {t.trial_id for t in plan.trials}
    # The same content under another name is the same trial; another content is not.
    copy = tmp_path / "BTCUSDT_copy.csv"
    copy.write_bytes(btc.read_bytes())
    assert sweep.plan_sweep(g, [str(copy)]).trials[0].trial_id == sweep.plan_sweep(g, [str(btc)]).trials[0].trial_id
    copy.write_bytes(btc.read_bytes()[:-40])
    assert sweep.plan_sweep(g, [str(copy)]).trials[0].trial_id != sweep.plan_sweep(g, [str(btc)]).trials[0].trial_id
    assert plan.columns[:8] == (*sweep.HEAD_COLUMNS, "hmm.train.macro_states")


def test_data_globs_and_symbols(tmp_path: Path, btc: Path) -> None:
    assert sweep.expand_data([str(tmp_path / "*.csv"), str(btc)]) == [str(btc.resolve())]
    with pytest.raises(sweep.SweepError, match=r"--data .*\*.parquet: no file matches"):
        sweep.expand_data([str(tmp_path / "*.parquet")])
    assert sweep.symbol_of("/x/ethusdt-1m-2025-03.csv") == "ETHUSDT"
    with pytest.raises(sweep.SweepError, match="cannot tell the symbol"):
        sweep.symbol_of("/x/_bars.csv")


# ---------------------------------------------------------------- results file


def _plan(tmp_path: Path, btc: Path) -> sweep.SweepPlan:
    g = sweep.load_grid(grid_file(tmp_path, train="macro_states = [2, 3]", tail="[sweep]\nfolds = 2\n"))
    return sweep.plan_sweep(g, [str(btc)])


def _write_all(plan: sweep.SweepPlan, path: Path, status: str = "ok") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = sweep.ResultsWriter(path, plan.columns)
    for t in plan.trials:
        w.write({**sweep.trial_head(t), "status": status, "error": "" if status == "ok" else "Boom: x",
                 "policy_pnl_frac": 0.1 + 1e-17})
    w.close()


def test_a_finished_plan_reruns_nothing_and_starts_no_cluster(tmp_path: Path, btc: Path) -> None:
    plan = _plan(tmp_path, btc)
    _write_all(plan, tmp_path / "out" / sweep.RESULTS_FILE)
    s = sweep.run_sweep(plan, tmp_path / "out", trial_fn=_never)  # no client, no scheduler: none is needed
    assert (s.ran, s.skipped, s.workers) == (0, 4, 0)
    rows = sweep.read_results(tmp_path / "out" / sweep.RESULTS_FILE, plan.columns)
    assert rows[plan.trials[0].trial_id]["policy_pnl_frac"] == repr(0.1 + 1e-17)  # exact round trip


def _never(trial: Any) -> dict[str, Any]:
    raise AssertionError("no trial should run")


def test_read_results_drops_a_cut_row_and_refuses_another_grids_file(tmp_path: Path, btc: Path) -> None:
    plan = _plan(tmp_path, btc)
    path = tmp_path / sweep.RESULTS_FILE
    _write_all(plan, path)
    path.write_bytes(path.read_bytes()[:-10])
    assert len(sweep.read_results(path, plan.columns)) == 3
    w = sweep.ResultsWriter(path, plan.columns)  # reopening trims the cut line
    w.close()
    assert path.read_bytes().endswith(b"\n") and len(path.read_text().splitlines()) == 4
    with pytest.raises(sweep.SweepError, match="another sweep wrote it"):
        sweep.read_results(path, (*plan.columns, "extra"))
    path.write_text(",".join(plan.columns) + "\nabc,ok\n")
    with pytest.raises(sweep.SweepError, match=r"line 2: 2 cells"):
        sweep.read_results(path, plan.columns)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(sweep.SweepError, match="cannot read results file"):
        sweep.read_results(path, plan.columns)


def test_retry_failed_reruns_only_error_rows(tmp_path: Path, btc: Path) -> None:
    plan = _plan(tmp_path, btc)
    _write_all(plan, tmp_path / "out" / sweep.RESULTS_FILE, status="error")
    assert sweep.run_sweep(plan, tmp_path / "out", trial_fn=_never).ran == 0  # errors are results too
    # The retry needs a cluster: checked through the plan's todo in test_sweep_dask; here the count.
    done = sweep.read_results(tmp_path / "out" / sweep.RESULTS_FILE, plan.columns)
    assert all(r["status"] == "error" and r["error"] == "Boom: x" for r in done.values())


# ---------------------------------------------------------------- verdict


def _row(fold: int, k: int, ku: int, edge: float, pnl: float, ll: float, bic: float, data: str = "A.csv",
         status: str = "ok") -> dict[str, Any]:
    return {"trial_id": f"{data}{fold}{k}{ku}{edge}", "status": status, "error": "" if status == "ok" else "E: x",
            "data": data, "fold": str(fold), "hmm.train.macro_states": str(k), "hmm.train.micro_states": str(ku),
            "hmm.policy.min_edge": repr(edge), "macro_loglik_per_bar": repr(ll), "macro_baseline_per_bar": "-3.0",
            "macro_bars_scored": "100", "micro_loglik_per_bar": repr(ll + ku * 0.1), "micro_baseline_per_bar": "-2.0",
            "micro_bars_scored": "500", "macro_bic": repr(bic), "micro_bic": repr(bic * 2),
            "policy_pnl_frac": repr(pnl), "buy_hold_pnl_frac": "-0.01", "fills": "4", "fees": "1.5"}


def test_verdict_k_by_heldout_likelihood_with_bic_beside_and_best_chosen_before_the_last_fold() -> None:
    axes = ["hmm.train.macro_states", "hmm.train.micro_states", "hmm.policy.min_edge"]
    rows = []
    for fold in range(3):
        # K=3 fits better out of sample; BIC prefers K=2 (it penalises the extra parameters).
        rows += [_row(fold, 2, 2, 0.02, pnl=0.01, ll=-2.5, bic=100.0), _row(fold, 3, 2, 0.02, pnl=0.0, ll=-2.0, bic=120.0)]
        # The setting best on the last fold alone is not chosen: the last fold is held out.
        rows.append(_row(fold, 3, 3, 0.1, pnl=0.5 if fold == 2 else -0.02, ll=-2.0, bic=130.0))
    rows.append(_row(0, 2, 3, 0.1, pnl=0.9, ll=-9.0, bic=1.0, status="error"))  # failed: never eligible
    doc = selection.verdict(rows, axes, folds=3)
    macro = doc["k"]["macro"]
    assert (macro["chosen"], macro["bic_choice"], macro["agree"], macro["beats_baseline"]) == (3, 2, False, True)
    assert [t["k"] for t in macro["by_k"]] == [2, 3] and macro["by_k"][0]["trials"] == 3
    assert math.isclose(macro["by_k"][1]["lift_per_bar"], 1.0)
    assert doc["k"]["micro"]["chosen"] == 3
    best = doc["best"]
    assert best["settings"] == {"hmm.train.macro_states": 2, "hmm.train.micro_states": 2, "hmm.policy.min_edge": 0.02}
    assert best["select"]["trials"] == 2 and best["holdout"]["trials"] == 1
    # K is chosen by likelihood (3 and 3); among those settings the policy keys by PnL.
    assert doc["best_at_chosen_k"]["settings"] == {"hmm.train.macro_states": 3, "hmm.train.micro_states": 3,
                                                   "hmm.policy.min_edge": 0.1}
    assert math.isclose(best["holdout"]["policy_pnl_frac_sum"], 0.01)
    assert math.isclose(best["holdout"]["buy_hold_pnl_frac_mean"], -0.01)
    assert doc["failed"] == 1 and doc["errors"][0]["error"] == "E: x"
    text = selection.verdict_markdown(doc)
    assert "**K = 3**; BIC would choose K = 2 (disagrees)" in text and "| held-out | 1 |" in text
    assert "macro_states=2, micro_states=2, min_edge=0.02" in text and "## Best setting at the chosen K" in text


def test_verdict_with_one_fold_says_nothing_was_held_out_and_without_rows_chooses_nothing() -> None:
    doc = selection.verdict([_row(0, 2, 2, 0.02, 0.01, -2.0, 10.0)], ["hmm.train.macro_states"], folds=1)
    assert "nothing held out" in doc["selection"] and doc["best"]["holdout"] is None
    empty = selection.verdict([], ["hmm.train.macro_states"], folds=3)
    assert empty["best"] is None and empty["k"] == {}
    assert "No setting finished" in selection.verdict_markdown(empty)


# ---------------------------------------------------------------- command


def test_cli_bad_grid_exits_78_naming_the_key_and_writes_nothing(tmp_path: Path, btc: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "g.toml"
    p.write_text("[hmm.train]\nmacro_states = [2, 3]\nbogus = [1]\n")
    code = cli.main(["research", "sweep", "--grid", str(p), "--data", str(btc), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 78 and "hmm.train.bogus = 1: unknown key" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_missing_data_exits_65_and_bad_config_78(tmp_path: Path, btc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = grid_file(tmp_path)
    assert cli.main(["research", "sweep", "--grid", str(g), "--data", str(tmp_path / "none*.csv"),
                     "--out", str(tmp_path / "o")]) == 65
    assert "no file matches" in capsys.readouterr().err
    bad = tmp_path / "c.toml"
    bad.write_text("[hmm.train\n")
    assert cli.main(["research", "sweep", "--grid", str(g), "--data", str(btc), "--config", str(bad),
                     "--out", str(tmp_path / "o")]) == 78
    assert "c.toml is not valid TOML" in capsys.readouterr().err
    assert cli.main(["research", "sweep", "--grid", str(g), "--data", str(btc), "--workers", "0",
                     "--out", str(tmp_path / "o")]) == 2


def test_results_header_is_the_plans(tmp_path: Path, btc: Path) -> None:
    plan = _plan(tmp_path, btc)
    _write_all(plan, tmp_path / sweep.RESULTS_FILE)
    with (tmp_path / sweep.RESULTS_FILE).open(newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == plan.columns and "worker" in header and "hmm.train.macro_states" in header


def test_a_setting_missing_a_selection_trial_is_not_ranked() -> None:
    axes = ["hmm.train.macro_states", "hmm.policy.min_edge"]
    rows = [_row(f, 2, 2, 0.02, pnl=0.01, ll=-2.0, bic=1.0) for f in range(3)]
    rows.append(_row(0, 3, 2, 0.1, pnl=0.9, ll=-2.0, bic=1.0))  # a sweep cut short: only its fold 0
    doc = selection.verdict(rows, axes, folds=3)
    assert doc["best"]["settings"] == {"hmm.train.macro_states": 2, "hmm.policy.min_edge": 0.02}
    assert [s.get("rank") for s in doc["settings"]] == [1, None]


def test_an_unreachable_scheduler_exits_1_naming_it(tmp_path: Path, btc: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    pytest.importorskip("distributed")
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(sweep, "SCHEDULER_TIMEOUT_S", 1.0)
    code = cli.main(["research", "sweep", "--grid", str(grid_file(tmp_path)), "--data", str(btc), "-q",
                     "--scheduler", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and f"--scheduler tcp://127.0.0.1:{port}: cannot connect" in err and "Traceback" not in err


def test_a_damaged_data_file_is_an_error_row_naming_the_file_and_line(tmp_path: Path, btc: Path) -> None:
    lines = btc.read_text().splitlines(keepends=True)
    lines[120] = lines[120].replace(",", ",x", 1)  # a flipped byte in row 120
    bad = tmp_path / "BTCUSDT_1m_bad.csv"
    bad.write_text("".join(lines))
    plan = sweep.plan_sweep(sweep.load_grid(grid_file(tmp_path)), [str(bad)])
    row = sweep.run_trial(plan.trials[0])  # in this process: the worker's function
    assert row["status"] == "error" and "BTCUSDT_1m_bad.csv" in row["error"] and "121" in row["error"]
    assert row["trial_id"] == plan.trials[0].trial_id and row["worker"] == ""
