"""A training job that implements TrainingJob's interface without a worker process."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

from nautilus_hmm.hmm.model import RegimeModel, TrainingInfo
from nautilus_hmm.hmm.train import TrainingOutcome
from nautilus_hmm.marketdata.replay import BarArrays
from tests.unit.hmm.kit import decisive_model


class FakeJob:
    """Behaves as told: 'ok' saves a model made for the bars, 'fail', 'timeout', 'block' (until cancel)."""

    behaviour = "ok"
    created: list[FakeJob] = []

    def __init__(self, bars: BarArrays, spec: Any, cfg: Any, out_path: str | Path, *, micro_spec: Any = None,
                 instrument: str | None = None, timeout_s: float | None = None,
                 parent: RegimeModel | None = None, on_progress: Any = None) -> None:
        self.bars, self.cfg, self.out_path, self.parent = bars, cfg, Path(out_path), parent
        self.on_progress = on_progress
        self.instrument = instrument
        self.cancelled = threading.Event()
        self.behaviour = type(self).behaviour
        FakeJob.created.append(self)

    def model(self) -> RegimeModel:
        b = self.bars
        m = decisive_model()
        return dataclasses.replace(m, instrument=self.instrument, training=TrainingInfo(
            first_ts_ns=int(b.ts_open_ns[0]), last_ts_ns=int(b.ts_open_ns[-1]), n_bars=len(b), data_sha256=b.sha256()))

    def cancel(self) -> None:
        self.cancelled.set()

    def wait(self) -> TrainingOutcome:
        # As the worker does: a progress message after each Baum-Welch restart (2 here).
        if self.on_progress is not None:
            self.on_progress(1, 2, "macro")
        if self.behaviour == "ok":
            if self.on_progress is not None:
                self.on_progress(2, 2, "micro regime 0")
            model = self.model()
            model.save(self.out_path)
            return TrainingOutcome(True, str(self.out_path), None, 0.25, model.content_sha256)
        if self.behaviour == "fail":
            return TrainingOutcome(False, None, "TrainingError: macro: 3 usable bars are too few", 0.1)
        if self.behaviour == "timeout":
            return TrainingOutcome(False, None, "training timed out after 0.05 s; worker terminated", 0.05)
        self.cancelled.wait(10.0)
        return TrainingOutcome(False, None, "training cancelled", 0.5)
