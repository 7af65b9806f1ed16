"""Training in a spawned worker: a model path, a timeout or an error, never a hang."""

from __future__ import annotations

import dataclasses
import multiprocessing
from pathlib import Path

from nautilus_hmm.hmm.model import load_model
from nautilus_hmm.hmm.train import TrainingJob, run_training_in_worker
from nautilus_hmm.marketdata.replay import BarArrays
from tests.unit.hmm.conftest import SMALL_BARS, SMALL_CFG, SMALL_SPEC

QUICK = dataclasses.replace(SMALL_CFG, n_restarts=1, max_iter=5)


def test_worker_trains_and_returns_the_saved_model_path(btc_1m: BarArrays, tmp_path: Path) -> None:
    bars = btc_1m.slice(0, SMALL_BARS)
    out = run_training_in_worker(bars, SMALL_SPEC, QUICK, tmp_path / "model.json",
                                 instrument="binance_spot:BTCUSDT", timeout_s=120)
    assert out.ok, out.error
    model = load_model(out.path)
    assert model.content_sha256 == out.model_sha256
    assert model.training.data_sha256 == bars.sha256()
    assert model.instrument == "binance_spot:BTCUSDT"


def test_worker_reports_bad_input_as_an_error(btc_1m: BarArrays, tmp_path: Path) -> None:
    bars = btc_1m.slice(0, SMALL_BARS)
    vol = bars.volume.copy()
    vol[42] = -1.0
    bad = BarArrays(bars.ts_open_ns, bars.open, bars.high, bars.low, bars.close, vol)
    out = run_training_in_worker(bad, SMALL_SPEC, QUICK, tmp_path / "model.json", timeout_s=60)
    assert not out.ok and out.path is None
    assert out.error is not None and out.error.startswith("BarDataError: bars.volume[42]: -1.0")
    assert not (tmp_path / "model.json").exists()


def test_worker_past_its_timeout_is_terminated(btc_1m: BarArrays, tmp_path: Path) -> None:
    out = run_training_in_worker(btc_1m.slice(0, SMALL_BARS), SMALL_SPEC, QUICK, tmp_path / "m.json",
                                 timeout_s=0.05)
    assert not out.ok
    assert out.error == "training timed out after 0.05 s; worker terminated"
    assert multiprocessing.active_children() == []
    assert not (tmp_path / "m.json").exists()


def test_a_cancelled_job_returns_an_error_and_leaves_no_process(btc_1m: BarArrays, tmp_path: Path) -> None:
    job = TrainingJob(btc_1m.slice(0, SMALL_BARS), SMALL_SPEC, QUICK, tmp_path / "m.json", timeout_s=60)
    job.start()
    job.cancel()
    out = job.wait()
    assert (out.ok, out.error) == (False, "training cancelled")
    assert multiprocessing.active_children() == []
