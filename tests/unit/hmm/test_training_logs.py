"""A training's outcome is one log line (the service's, with the job id), not one per layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from structlog.testing import capture_logs

from nautilus_hmm.hmm.train import TrainingJob
from tests.unit.hmm.test_service import SMALL, SMALL_TRAIN, Rig


async def test_a_timed_out_training_is_one_warning_line(tmp_path: Path) -> None:
    cfg = dataclasses.replace(SMALL, train=dataclasses.replace(SMALL_TRAIN, timeout_s=0.05))
    r = Rig(tmp_path, cfg, job_factory=TrainingJob)  # a real worker, terminated at its timeout
    await r.svc.start()
    r.feed.run(2100, 0.0)
    try:
        with capture_logs() as logs:
            r.svc.request_retrain("test")
            run = await r.svc.wait_training()
        assert run is not None and run.status == "timeout"
        shown = [(e["event"], e["log_level"]) for e in logs
                 if e["log_level"] in ("warning", "error") and e["event"].startswith("hmm_training")]
        assert shown == [("hmm_training_failed", "warning")]
    finally:
        await r.svc.stop()
