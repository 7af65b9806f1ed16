"""Model commands (models_cli: train, infer, models): outputs on success, exit codes and nothing
written on bad input."""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.hmm.runtime import RegimeTracker
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.models_cli import add_commands
from tests.conftest import fixture_path
from tests.unit.hmm.conftest import SMALL_BARS, btc_1m, small_training  # noqa: F401 (fixtures)

SMALL_TOML = """
[hmm.features]
return_horizons = [1, 4]
vol_windows = [8]
volume_window = 8
atr_window = 4
trend_window = 8
[hmm.train]
macro_interval_s = 1800
micro_interval_s = 300
macro_states = 2
micro_states = 2
n_restarts = 1
max_iter = 8
min_bars_per_state = 20
min_regime_bars = 100
chunk_bars = 128
"""


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="nautilus-hmm")
    add_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return int(args.func(args))


def klines(tmp_path: Path, n: int, name: str = "k.csv", edit: tuple[int, str] | None = None) -> Path:
    """The first n rows of the real BTCUSDT 1m file (optionally one row replaced)."""
    src = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    with src.open() as fh:
        lines = [next(fh) for _ in range(n + 1)]
    if edit is not None:
        lines[edit[0]] = edit[1]
    out = tmp_path / name
    out.write_text("".join(lines))
    return out


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time (pytest swaps it per test)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture(autouse=True)
def cli_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The commands' process-wide logging setup (cached loggers on the captured stream) would
    outlive the test: use an uncached warning-level setup on stderr instead, then restore."""
    import nautilus_hmm.models_cli as models_cli

    saved = structlog.get_config()
    monkeypatch.setattr(models_cli, "_configure_logging", lambda: structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()), cache_logger_on_first_use=False))
    yield
    structlog.configure(**saved)


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL_TOML)
    return p


def test_infer_writes_each_bar_of_each_hmm_with_the_trackers_posteriors(
        tmp_path: Path, small_training: tuple[BarArrays, RegimeModel]) -> None:
    bars, model = small_training
    model.save(tmp_path / "m" / "model.json")
    data = klines(tmp_path, 1500)
    assert main(["infer", "--model", str(tmp_path / "m"), "--data", str(data), "--out", str(tmp_path / "o.csv")]) == 0
    with (tmp_path / "o.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    micro = [r for r in rows if r["level"] == "micro"]
    macro = [r for r in rows if r["level"] == "macro"]
    assert len(micro) == 2 * (1500 // 5) and len(macro) == 1500 // 30
    assert all(r["active"] == "1" for r in macro)
    tracker = RegimeTracker(model)
    live = {}
    part = bars.slice(0, 1500)
    for i in range(1500):
        snap = tracker.on_bar(int(part.ts_open_ns[i]), part.open[i], part.high[i], part.low[i], part.close[i],
                              part.volume[i])
        if snap is not None and snap.ready:
            live[snap.ts_ns] = (snap.macro_state, snap.micro_posterior)
    active = {int(r["ts_open_ns"]): r for r in micro if r["active"] == "1" and r["p_0"]}
    common = sorted(set(live) & set(active))
    assert len(common) > 100
    for ts in common:
        state, post = live[ts]
        r = active[ts]
        assert int(r["hmm"]) == state
        np.testing.assert_allclose([float(r["p_0"]), float(r["p_1"])], post, atol=1e-9)


def test_infer_refuses_a_model_of_another_format_version_and_writes_nothing(
        tmp_path: Path, small_training: tuple[BarArrays, RegimeModel], capsys: pytest.CaptureFixture[str]) -> None:
    _, model = small_training
    obj = orjson.loads(model.to_json())
    obj["format_version"] = 2
    (tmp_path / "bad.json").write_bytes(orjson.dumps(obj))
    code = main(["infer", "--model", str(tmp_path / "bad.json"), "--data", str(klines(tmp_path, 100)),
                 "--out", str(tmp_path / "o.csv")])
    assert code == 65
    assert "format_version: 2 is not supported" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_infer_refuses_a_model_whose_shapes_do_not_match(
        tmp_path: Path, small_training: tuple[BarArrays, RegimeModel], capsys: pytest.CaptureFixture[str]) -> None:
    _, model = small_training
    obj = orjson.loads(model.to_json())
    obj["micro"]["hmms"][0]["means"] = obj["micro"]["hmms"][0]["means"][:1]
    (tmp_path / "bad.json").write_bytes(orjson.dumps(obj))
    code = main(["infer", "--model", str(tmp_path / "bad.json"), "--data", str(klines(tmp_path, 100)),
                 "--out", str(tmp_path / "o.csv")])
    assert code == 65
    assert "micro.hmms[0].means: shape (1, 6)" in capsys.readouterr().err


def test_a_nan_row_is_a_data_error_naming_the_line(
        tmp_path: Path, small_training: tuple[BarArrays, RegimeModel], capsys: pytest.CaptureFixture[str]) -> None:
    _, model = small_training
    model.save(tmp_path / "m.json")
    data = klines(tmp_path, 100, edit=(50, "2025-03-01 00:49:00,84000,84100,83900,nan,1.5\n"))
    code = main(["infer", "--model", str(tmp_path / "m.json"), "--data", str(data), "--out", str(tmp_path / "o.csv")])
    assert code == 65
    err = capsys.readouterr().err
    assert f"{data}:51" in err
    assert not (tmp_path / "o.csv").exists()


def test_train_on_too_short_data_is_a_data_error_and_writes_nothing(
        tmp_path: Path, small_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = klines(tmp_path, 600)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "out"), "--config", str(small_config)])
    assert code == 65
    assert "too few" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_with_an_invalid_config_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[hmm.train]\nmacro_states = 1\n")
    code = main(["train", "--data", str(klines(tmp_path, 100)), "--out", str(tmp_path / "out"), "--config", str(cfg)])
    assert code == 78
    assert "hmm.train.macro_states = 1: must be >= 2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_writes_model_and_meta_and_adds_to_a_registry(
        tmp_path: Path, small_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nautilus_hmm.hmm.model import load_model
    from nautilus_hmm.hmm.registry import ModelRegistry

    data = klines(tmp_path, SMALL_BARS)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "out"), "--config", str(small_config),
                 "--registry", str(tmp_path / "reg"), "--instrument", "binance_spot:BTCUSDT"])
    assert code == 0, capsys.readouterr().err
    summary = orjson.loads(capsys.readouterr().out)
    model = load_model(tmp_path / "out" / "model.json")
    meta = orjson.loads((tmp_path / "out" / "meta.json").read_bytes())
    assert meta["model_sha256"] == model.content_sha256 and meta["n_bars"] == SMALL_BARS
    assert ModelRegistry(tmp_path / "reg").get(summary["registry_id"]).content_sha256 == model.content_sha256


async def test_models_promote_of_an_unknown_id_exits_1_with_the_404(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nautilus_hmm.obs.metrics import NodeMetrics
    from nautilus_hmm.web.models import model_routes
    from nautilus_hmm.web.server import WebContext, build_app
    from tests.unit.hmm.test_service import Rig

    rig = Rig(tmp_path)
    await rig.svc.start()
    routes, acts = model_routes(rig.svc)
    ctx = WebContext(bus=rig.bus, clock=rig.clock, metrics=NodeMetrics(rig.bus), token=lambda: "tok",
                     status=dict, readiness=lambda: (True, []), message_types={}, sse_queue_size=lambda: 10,
                     sse_heartbeat_s=lambda: 15.0, admin=acts, extra_routes=routes)
    async with TestClient(TestServer(build_app(ctx))) as client:
        url = str(client.make_url(""))
        argv = ["models", "--url", url, "--token", "tok", "promote", "m-20990101T000000Z-00000000"]
        code = await asyncio.get_running_loop().run_in_executor(None, main, argv)
        listed = await asyncio.get_running_loop().run_in_executor(
            None, main, ["models", "--url", url, "--token", "tok", "list"])
    out = capsys.readouterr().out
    assert code == 1 and listed == 0
    assert "is not in the registry" in out
    assert rig.registry.tags().production is None
