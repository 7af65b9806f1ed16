"""The training worker logs through the daemon's structlog setup: same format, same level, stderr."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest
import structlog

from nautilus_hmm.hmm.train import run_training_in_worker
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.obs import logging as obs_logging
from tests.unit.hmm.conftest import SMALL_BARS, SMALL_CFG, SMALL_SPEC

QUICK = dataclasses.replace(SMALL_CFG, n_restarts=1, max_iter=5)


@pytest.fixture
def json_logging(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    obs_logging.configure("info", "json")  # to stderr, as the daemon does
    yield
    structlog.reset_defaults()
    obs_logging.set_level("info")


def test_worker_lines_are_json_on_stderr_with_the_event_first_like_the_daemon(
        json_logging, btc_1m: BarArrays, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = run_training_in_worker(btc_1m.slice(0, SMALL_BARS), SMALL_SPEC, QUICK, tmp_path / "model.json",
                                 instrument="binance_spot:BTCUSDT", timeout_s=120)
    assert out.ok, out.error
    captured = capfd.readouterr()
    assert captured.out == ""
    records = [orjson.loads(ln) for ln in captured.err.splitlines() if ln]
    events = [r["event"] for r in records]
    assert "hmm_trained" in events and "hmm_restart_done" in events  # logged in the worker
    assert all(list(r)[:3] == ["event", "ts", "level"] for r in records)


def test_worker_keeps_the_daemon_level(json_logging, btc_1m: BarArrays, tmp_path: Path,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    obs_logging.set_level("warning")
    out = run_training_in_worker(btc_1m.slice(0, SMALL_BARS), SMALL_SPEC, QUICK, tmp_path / "model.json",
                                 instrument="binance_spot:BTCUSDT", timeout_s=120)
    assert out.ok, out.error
    captured = capfd.readouterr()
    assert "hmm_trained" not in captured.out + captured.err  # info: below the level in force


def test_under_journald_worker_lines_carry_the_priority_prefix_then_json_event_first(
        btc_1m: BarArrays, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")  # the worker inherits the environment
    obs_logging.configure("info", "auto")
    try:
        out = run_training_in_worker(btc_1m.slice(0, SMALL_BARS), SMALL_SPEC, QUICK, tmp_path / "model.json",
                                     instrument="binance_spot:BTCUSDT", timeout_s=120)
    finally:
        structlog.reset_defaults()
    assert out.ok, out.error
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln]
    trained = [ln for ln in lines if '"hmm_trained"' in ln]
    assert len(trained) == 1 and trained[0].startswith('<6>{"event":"hmm_trained","ts":')
    # Lines of the worker (the parent's own loggers may be cached from an earlier test's setup).
    restarts = [ln for ln in lines if '"hmm_restart_done"' in ln]
    assert restarts and all(ln.startswith('<6>{"event":"hmm_restart_done","ts":') for ln in restarts), restarts
