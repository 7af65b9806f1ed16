"""research sweep on a real Dask LocalCluster (worker processes on loopback).

* the same trials on 1 worker process and then on 2 give identical rows (seeded, one torch
  thread each), a trial that fails (a file too short for its folds) is an error row in both
  and the others go on;
* a worker killed in the middle of a trial: Dask reruns the trial on a fresh worker and the
  results file holds it once;
* a rerun resumes: the trials already in results.csv are not run again, a row cut by a kill is.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from nautilus_hmm.research import sweep
from tests.unit.research.sweep_fixtures import BTC, ETH, grid_file, head_lines

distributed = pytest.importorskip("distributed")
pytest.importorskip("pomegranate")

# The worker processes unpickle the test's trial functions by value (they cannot import tests/).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster() -> Any:
    """The sweep's LocalCluster with one worker process (the first test scales it to two), loopback only."""
    with sweep.local_cluster(1) as c, distributed.Client(c) as client:
        yield c, client


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _stable(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(({k: v for k, v in r.items() if k not in sweep.VOLATILE_COLUMNS} for r in rows),
                  key=lambda r: r["trial_id"])


def test_one_and_two_worker_processes_give_identical_rows(cluster: Any, tmp_path: Path) -> None:
    c, client = cluster
    data = [head_lines(BTC, tmp_path / "BTCUSDT_1m_small.csv", 7200),
            head_lines(ETH, tmp_path / "ETHUSDT_1m_short.csv", 1500)]  # too short for 2 folds: an error row
    grid = sweep.load_grid(grid_file(tmp_path, train="macro_states = [2, 3]", tail="[sweep]\nfolds = 2\n"
                                     "train_fraction = 0.6\n"))
    plan = sweep.plan_sweep(grid, [str(p) for p in data])
    assert len(plan.trials) == 2 * 2 * 2

    one = sweep.run_sweep(plan, tmp_path / "one", client=client)
    assert one.workers == 1 and one.ran == 8 and one.failed == 4
    c.scale(2)
    client.wait_for_workers(2, timeout=60)
    two = sweep.run_sweep(plan, tmp_path / "two", client=client)
    assert two.workers == 2 and two.ran == 8

    rows1, rows2 = _rows(tmp_path / "one" / sweep.RESULTS_FILE), _rows(tmp_path / "two" / sweep.RESULTS_FILE)
    assert len({r["worker"] for r in rows1}) == 1
    assert len({r["worker"] for r in rows2}) == 2  # both processes ran trials
    assert _stable(rows1) == _stable(rows2)
    ok = [r for r in rows1 if r["status"] == "ok"]
    assert {r["data"] for r in ok} == {"BTCUSDT_1m_small.csv"} and len(ok) == 4
    for r in ok:  # scored out of sample, backtested, seeded
        assert int(r["macro_bars_scored"]) > 0 and int(r["micro_bars_scored"]) > 0 and int(r["test_bars"]) > 0
        assert float(r["macro_loglik_per_bar"]) < 0 < float(r["macro_bic"]) and r["seed"] == "7"
    bad = [r for r in rows1 if r["status"] == "error"]
    assert {r["data"] for r in bad} == {"ETHUSDT_1m_short.csv"}
    assert all("ValueError" in r["error"] and "training bars" in r["error"] for r in bad)

    doc = sweep.finish_sweep(plan, tmp_path / "two")
    assert doc["ok"] == 4 and doc["failed"] == 4
    assert doc["k"]["macro"]["chosen"] in (2, 3)
    assert (tmp_path / "two" / "verdict.md").read_text().startswith("# Sweep verdict")


def _crash_once(trial: sweep.Trial) -> dict[str, Any]:
    """Kill this worker process on the trial's first attempt (a marker next to the data), succeed on the next."""
    marker = Path(trial.data).with_suffix(f".{trial.trial_id}.attempts")
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if trial.fold == 1 and attempts == 1:
        os._exit(9)  # as a kill -9 or the OOM killer would: no cleanup, no answer
    return {**sweep.trial_head(trial), "status": "ok", "error": "", "test_bars": attempts,
            "worker": sweep.worker_name()}


def test_a_worker_killed_mid_trial_is_retried_and_recorded_once(cluster: Any, tmp_path: Path) -> None:
    _, client = cluster
    data = head_lines(BTC, tmp_path / "BTCUSDT_1m_k.csv", 100)
    grid = sweep.load_grid(grid_file(tmp_path, train="macro_states = [2, 3]", tail="[sweep]\nfolds = 3\n"))
    plan = sweep.plan_sweep(grid, [str(data)])
    summary = sweep.run_sweep(plan, tmp_path / "out", client=client, trial_fn=_crash_once)
    rows = _rows(tmp_path / "out" / sweep.RESULTS_FILE)
    assert summary.ran == 6 and summary.failed == 0
    assert sorted(r["trial_id"] for r in rows) == sorted(t.trial_id for t in plan.trials)  # each once
    by_fold = {(r["hmm.train.macro_states"], r["fold"]): int(r["test_bars"]) for r in rows}
    # The killed attempts ran again. A finished result still held by a worker that dies is
    # lost with it and recomputed by Dask too, so a trial may run more than twice: it is
    # still recorded once.
    assert by_fold[("2", "1")] >= 2 and by_fold[("3", "1")] >= 2
    assert all(n >= 1 for n in by_fold.values()) and len(by_fold) == 6


def _count(trial: sweep.Trial) -> dict[str, Any]:
    return {**sweep.trial_head(trial), "status": "ok", "error": "", "worker": sweep.worker_name()}


def test_a_rerun_skips_finished_trials_and_reruns_a_row_cut_by_a_kill(cluster: Any, tmp_path: Path) -> None:
    _, client = cluster
    data = head_lines(BTC, tmp_path / "BTCUSDT_1m_r.csv", 100)
    grid = sweep.load_grid(grid_file(tmp_path, train="macro_states = [2, 3]", tail="[sweep]\nfolds = 2\n"))
    plan = sweep.plan_sweep(grid, [str(data)])
    first = sweep.run_sweep(plan, tmp_path / "out", client=client, trial_fn=_count)
    assert first.ran == 4
    path = tmp_path / "out" / sweep.RESULTS_FILE
    text = path.read_bytes()
    path.write_bytes(text[:-25])  # the last row cut short, as by a kill mid-write
    second = sweep.run_sweep(plan, tmp_path / "out", client=client, trial_fn=_count)
    assert second.skipped == 3 and second.ran == 1
    rows = _rows(path)
    assert sorted(r["trial_id"] for r in rows) == sorted(t.trial_id for t in plan.trials)
    third = sweep.run_sweep(plan, tmp_path / "out", client=client, trial_fn=_count)
    assert third.ran == 0 and third.skipped == 4


def test_retry_failed_reruns_the_error_rows_and_the_last_row_of_a_trial_wins(cluster: Any, tmp_path: Path) -> None:
    _, client = cluster
    data = head_lines(BTC, tmp_path / "BTCUSDT_1m_f.csv", 100)
    grid = sweep.load_grid(grid_file(tmp_path, train="macro_states = [2, 3]", tail="[sweep]\nfolds = 2\n"))
    plan = sweep.plan_sweep(grid, [str(data)])
    out = tmp_path / "out"
    out.mkdir()
    w = sweep.ResultsWriter(out / sweep.RESULTS_FILE, plan.columns)
    for t in plan.trials[:3]:
        w.write({**sweep.trial_head(t), "status": "error", "error": "TrainingError: x"})
    w.close()
    assert sweep.run_sweep(plan, out, client=client, trial_fn=_count).ran == 1  # errors are results: kept
    again = sweep.run_sweep(plan, out, client=client, trial_fn=_count, retry_failed=True)
    assert again.ran == 3 and again.skipped == 1
    rows = sweep.read_results(out / sweep.RESULTS_FILE, plan.columns)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows.values())
    assert len(_rows(out / sweep.RESULTS_FILE)) == 7  # appended, never rewritten: the old rows stay as history
