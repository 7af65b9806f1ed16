"""Progress of train, evaluate, the training worker and the research pipeline (issue 11 item 6).

Off a terminal (pytest's captured stderr) the commands write plain progress lines; --quiet
writes none. Training reports each Baum-Welch restart, in this process or from the worker
over its pipe. The trainings here are small (2 restarts, few EM iterations): ~1 s each once
torch is imported; the worker test spawns one process (~3 s, its own torch import).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from nautilus_hmm.hmm.train import TrainingJob, train_model, training_restarts
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.obs.progress import progress_factory
from tests.conftest import REPO
from tests.unit.hmm.conftest import SMALL_CFG, SMALL_SPEC, btc_1m  # noqa: F401 (fixture)
from tests.unit.test_models_cli import SMALL_TOML, cli_logging, klines, main  # noqa: F401 (cli_logging: autouse)

FAST = dataclasses.replace(SMALL_CFG, n_restarts=2, max_iter=3)
FAST_TOML = SMALL_TOML.replace("n_restarts = 1", "n_restarts = 2").replace("max_iter = 8", "max_iter = 3")
BARS = 6 * 1440


def progress_lines(err: str, prefix: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(prefix)]


def test_training_reports_every_restart_up_to_the_exact_total(btc_1m: BarArrays) -> None:  # noqa: F811
    seen: list[tuple[int, int, str]] = []
    train_model(btc_1m.slice(0, BARS), SMALL_SPEC, FAST, on_progress=lambda *a: seen.append(a))
    total = training_restarts(FAST)
    assert total == (1 + FAST.macro_states) * FAST.n_restarts == 6
    assert [d for d, _, _ in seen] == list(range(1, total + 1))
    assert {t for _, t, _ in seen} == {total}
    assert [w for _, _, w in seen] == ["macro", "macro", "micro[0]", "micro[0]", "micro[1]", "micro[1]"]


def test_a_pooled_micro_regime_still_counts_its_restarts(btc_1m: BarArrays) -> None:  # noqa: F811
    cfg = dataclasses.replace(FAST, min_regime_bars=10**9)  # no regime has enough bars: all pooled
    seen: list[tuple[int, int, str]] = []
    model = train_model(btc_1m.slice(0, BARS), SMALL_SPEC, cfg, on_progress=lambda *a: seen.append(a))
    assert all(h.fit.source == "pooled" for h in model.micro.hmms)
    assert [d for d, _, _ in seen] == list(range(1, training_restarts(cfg) + 1))
    assert [w for _, _, w in seen][2:] == ["micro[pooled]", "micro[pooled]", "micro[1] (pooled)",
                                           "micro[1] (pooled)"]


def test_train_command_writes_a_progress_line_per_restart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST_TOML)
    data = klines(tmp_path, BARS)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m1"), "--config", str(cfg)]) == 0
    lines = progress_lines(capsys.readouterr().err, "train ")
    # a line per restart: each is a sixth of the work, more than the 10 % step
    assert [ln.split(",")[0] for ln in lines[:-1]] == [
        "train macro: 1/6 restarts (17%)", "train macro: 2/6 restarts (33%)", "train micro[0]: 3/6 restarts (50%)",
        "train micro[0]: 4/6 restarts (67%)", "train micro[1]: 5/6 restarts (83%)"]
    assert lines[-1].startswith("train micro[1]: 6/6 restarts (100%) done in ")


def test_a_training_that_fails_says_where_it_stopped_and_quiet_says_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST_TOML)
    data = klines(tmp_path, 1500)  # too few macro rows: train_model refuses before any restart
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--config", str(cfg)]) == 65
    err = capsys.readouterr().err
    assert progress_lines(err, "train")[0].startswith("train: 0/6 restarts (0%) stopped after ")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--config", str(cfg), "--quiet"]) == 65
    err = capsys.readouterr().err
    assert progress_lines(err, "train") == []
    assert err.strip().endswith("are too few for K=2 states with D=6 features (full covariance): need at least 58")


def test_evaluate_reports_each_folds_restarts_and_backtest(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST_TOML)
    code = main_evaluate(["evaluate", "--data", str(klines(tmp_path, 5000)), "--out", str(tmp_path / "ev"),
                          "--config", str(cfg), "--folds", "2", "--no-plot"])
    assert code == 0
    lines = progress_lines(capsys.readouterr().err, "evaluate ")
    assert lines[-1].startswith("evaluate fold 2/2 backtest: 14/14 steps (100%) done in ")
    assert any(ln.startswith("evaluate fold 1/2 backtest: 7/14 steps (50%)") for ln in lines)
    done = [int(ln.split(": ")[1].split("/")[0]) for ln in lines]
    assert done == sorted(done) and len(done) >= 10  # a line for (nearly) every step of 14


def main_evaluate(argv: list[str]) -> int:
    import argparse

    from nautilus_hmm.evaluate import add_command

    p = argparse.ArgumentParser(prog="nautilus-hmm")
    add_command(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return int(args.func(args))


def test_the_worker_sends_its_progress_over_the_pipe(btc_1m: BarArrays, tmp_path: Path) -> None:  # noqa: F811
    seen: list[tuple[int, int, str]] = []
    job = TrainingJob(btc_1m.slice(0, BARS), SMALL_SPEC, FAST, tmp_path / "m.json", timeout_s=120,
                      on_progress=lambda *a: seen.append(a))
    out = job.wait()
    assert out.ok, out.error
    assert [d for d, _, _ in seen] == list(range(1, 7)) and {t for _, t, _ in seen} == {6}


def test_without_a_callback_worker_progress_is_an_info_line_and_a_failing_callback_is_dropped(
        btc_1m: BarArrays, tmp_path: Path) -> None:  # noqa: F811
    job = TrainingJob(btc_1m.slice(0, 100), SMALL_SPEC, FAST, tmp_path / "m.json")
    with capture_logs() as logs:
        job._progress(2, 6, "macro")
    assert [(e["event"], e["log_level"], e["restarts_done"], e["restarts_total"], e["fitting"]) for e in logs] == [
        ("hmm_training_progress", "info", 2, 6, "macro")]

    def broken(*_: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    job = TrainingJob(btc_1m.slice(0, 100), SMALL_SPEC, FAST, tmp_path / "m.json", on_progress=broken)
    with capture_logs() as logs:
        job._progress(1, 6, "macro")
        job._progress(2, 6, "macro")  # the callback is gone: an info line again, the job goes on
    assert [e["event"] for e in logs] == ["hmm_training_progress_callback_failed", "hmm_training_progress"]


def test_the_research_pipeline_reports_its_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "research"))
    import pipeline  # research/pipeline.py

    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST_TOML)
    data = klines(tmp_path, 3000)
    assert pipeline.main(["features", "--data", str(data), "--out", str(tmp_path / "r"), "--config", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert progress_lines(err, "research ")[-1].startswith("research features: 1/1 steps (100%) done in ")
    assert pipeline.main(["report", "--out", str(tmp_path / "r"), "-q"]) == 0
    assert progress_lines(capsys.readouterr().err, "research ") == []
    assert (tmp_path / "r" / "REPORT.md").exists()


def test_select_k_reports_each_restart_of_each_k(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "research"))
    import pipeline

    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST_TOML)
    out = io.StringIO()
    clock = iter(float(i) for i in range(1000))
    pipeline.step_select_k(str(klines(tmp_path, BARS)), tmp_path / "r", str(cfg), [2, 3],
                           progress_factory(stream=out, clock=lambda: next(clock)))
    assert [ln.split(":")[1].split(",")[0].strip() for ln in out.getvalue().splitlines()] == [
        "1/4 restarts (25%)", "2/4 restarts (50%)", "3/4 restarts (75%)", "4/4 restarts (100%) done in 5.0 s"]
    assert out.getvalue().splitlines()[0].startswith("select-k K=2: ")


def _job_fed_by_hand(tmp_path: Path, bars: BarArrays, messages: list[object],
                     seen: list[tuple[int, int, str]]) -> object:
    """A TrainingJob whose pipe carries `messages` (then closes) and whose worker is a real process
    that already exited: what wait() does with each kind of message, without a training."""
    import multiprocessing as mp
    import os
    import time

    job = TrainingJob(bars, SMALL_SPEC, FAST, tmp_path / "m.json", timeout_s=30, on_progress=lambda *a: seen.append(a))
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=os.getpid, daemon=True)
    proc.start()
    proc.join(10)
    job._proc, job._recv, job._t0 = proc, recv, time.perf_counter()
    for m in messages:
        send.send(m)
    send.close()
    return job.wait()


def test_malformed_progress_is_skipped_and_a_foreign_message_fails_the_job(
        btc_1m: BarArrays, tmp_path: Path) -> None:  # noqa: F811
    bars = btc_1m.slice(0, 100)
    seen: list[tuple[int, int, str]] = []
    with capture_logs() as logs:
        out = _job_fed_by_hand(tmp_path, bars, [("progress", 1, 2, "macro"), ("progress", "x", None, 3),
                                                ("ok", str(tmp_path / "m.json"), "abc")], seen)
    assert out.ok and seen == [(1, 2, "macro")]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["hmm_training_progress_malformed"]

    seen.clear()
    out = _job_fed_by_hand(tmp_path, bars, [("progress", 1, 2, "macro"), "garbage"], seen)
    assert not out.ok and seen == [(1, 2, "macro")]
    assert out.error == "training worker sent an unexpected message 'garbage'; worker terminated"

    out = _job_fed_by_hand(tmp_path, bars, [("progress", 1, 2, "macro")], seen)
    assert (out.ok, out.error) == (False, "training worker exited with code 0 without a result")
