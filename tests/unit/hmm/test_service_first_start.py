"""A first start (no model yet) says the service is training its first model."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from nautilus_hmm.hmm.registry import ModelRegistry
from tests.unit.hmm.kit import decisive_model
from tests.unit.hmm.test_service import Rig


async def test_a_first_start_says_it_is_training_its_first_model(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    with capture_logs() as logs:
        await r.svc.start()
    (line,) = [e for e in logs if e["event"].startswith("hmm_") and "model" in e["event"]]
    assert line["event"] == "hmm_training_first_model" and line["log_level"] == "info"
    assert line["detail"].startswith("no model yet: training the first model")
    assert line["bars_needed"] == r.svc.min_bars("full")
    assert "retrain" not in str(line)
    await r.svc.stop()


async def test_a_start_with_a_production_model_says_nothing_about_a_first_model(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    reg.promote(reg.add(decisive_model()))
    r = Rig(tmp_path)
    with capture_logs() as logs:
        await r.svc.start()
    assert not [e for e in logs if e["event"] == "hmm_training_first_model"]
    await r.svc.stop()
