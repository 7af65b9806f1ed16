"""ModelService: training outcomes, tags, hot swaps, schedule, with a fake job (and one real worker)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.hmm.config import HmmConfig, HmmFeaturesConfig, HmmTrainConfig
from nautilus_hmm.hmm.registry import ModelRegistry, RegistryError, UnknownModelError
from nautilus_hmm.messages import ModelChanged, PolicyDecision
from nautilus_hmm.strategies.hmm import HmmStrategy
from nautilus_hmm.strategies.hmm_service import ModelService, TrainingBusy, TrainingUnavailable
from tests.conftest import REPO, fixture_path
from tests.integration.waits import until
from tests.unit.hmm.fakes import FakeJob
from tests.unit.hmm.kit import IID, NS, T0, FakeEngine, Feed, context, decisive_model

SMALL_FEATURES = HmmFeaturesConfig(return_horizons=(1, 4), vol_windows=(8,), volume_window=8, atr_window=4,
                                   trend_window=8)
SMALL_TRAIN = HmmTrainConfig(macro_interval_s=1800, micro_interval_s=300, macro_states=2, micro_states=2,
                             n_restarts=1, max_iter=5, min_bars_per_state=20, min_regime_bars=100,
                             chunk_bars=128, window_bars=3000, update_window_bars=2800)
SMALL = HmmConfig(features=SMALL_FEATURES, train=SMALL_TRAIN)


class Rig:
    """Service + strategy on a real bus, manual clock and registry; FakeJob unless told otherwise."""

    def __init__(self, tmp_path: Path, cfg: HmmConfig = SMALL, job_factory: object = FakeJob) -> None:
        self.cfg = cfg
        self.bus = Bus()
        self.clock = ManualClock(T0)
        self.engine = FakeEngine(self.bus, self.clock)
        self.feed = Feed(self.bus, self.clock)
        self.registry = ModelRegistry(tmp_path / "models")
        self.strategy = HmmStrategy("hmm", (IID,), cfg)
        self.strategy.attach(self.bus, context(self.bus, self.clock, self.engine))
        self.svc = ModelService(self.cfg, self.registry, self.strategy, self.bus, self.clock,
                                job_factory=job_factory)  # type: ignore[arg-type]
        self.changes: list[ModelChanged] = []
        self.bus.subscribe(ModelChanged, self.changes.append)

    async def trained(self, mode: str = "full") -> str:
        self.svc.request_retrain("test", mode)
        run = await self.svc.wait_training()
        assert run is not None and run.status == "ok", run
        assert run.model_id is not None
        return run.model_id


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    FakeJob.behaviour = "ok"
    FakeJob.created.clear()
    r = Rig(tmp_path)
    await r.svc.start()
    r.feed.run(2100, 0.0)
    yield r
    await r.svc.stop()


async def test_the_first_trained_model_becomes_production_and_trades(rig: Rig) -> None:
    model_id = await rig.trained()
    assert rig.registry.tags().production == model_id
    assert rig.strategy.model_id == model_id
    assert [(c.model_id, c.event) for c in rig.changes] == [(model_id, "trained")]
    assert rig.changes[0].detail.startswith("production")
    assert rig.svc.runs["ok"] == 1 and rig.svc.last_duration_s == 0.25


async def test_a_trained_model_becomes_the_canary_when_production_exists(rig: Rig) -> None:
    first = await rig.trained()
    rig.feed.run(10, 0.0)
    second = await rig.trained()
    tags = rig.registry.tags()
    assert (tags.production, tags.canary) == (first, second)
    assert (rig.strategy.model_id, rig.strategy.canary_id) == (first, second)


async def test_auto_promote_no_longer_promotes_a_trained_model_without_evidence(rig: Rig) -> None:
    first = await rig.trained()
    rig.svc.apply_config(dataclasses.replace(SMALL, train=dataclasses.replace(SMALL_TRAIN, auto_promote=True)))
    rig.feed.run(10, 0.0)
    second = await rig.trained()
    assert (rig.registry.tags().production, rig.registry.tags().canary) == (first, second)
    assert (rig.svc.production_id, rig.svc.canary_id) == (first, second)
    assert rig.svc.may_promote  # governance may promote it, on evidence


async def test_governance_promotes_and_rolls_back_through_the_model_control_port(rig: Rig) -> None:
    first = await rig.trained()
    rig.feed.run(10, 0.0)
    second = await rig.trained()
    baselines = {m: rig.registry.meta(m).metrics["loglik_per_base_bar"] for m in (first, second)}
    assert all(isinstance(b, float) for b in baselines.values())
    assert rig.svc.baseline_ll_per_bar() == pytest.approx(baselines[first])
    assert await rig.svc.promote(second) == {"production": second, "previous": first}
    assert (rig.svc.production_id, rig.svc.canary_id) == (second, None)
    assert rig.svc.baseline_ll_per_bar() == pytest.approx(baselines[second])
    assert await rig.svc.rollback(second) == {"production": first, "rolled_back": second}
    assert rig.svc.production_id == first and rig.svc.baseline_ll_per_bar() == pytest.approx(baselines[first])


async def test_the_baseline_of_a_production_model_loaded_at_start_comes_from_its_meta(rig: Rig, tmp_path: Path) -> None:
    first = await rig.trained()
    other = Rig(tmp_path)
    assert other.svc.baseline_ll_per_bar() is None
    await other.svc.start()
    try:
        assert other.svc.production_id == first
        assert other.svc.baseline_ll_per_bar() == pytest.approx(rig.registry.meta(first).metrics["loglik_per_base_bar"])
    finally:
        await other.svc.stop()


async def test_training_uses_the_last_window_bars_of_the_received_bars(rig: Rig) -> None:
    rig.feed.run(1000, 0.0)
    await rig.trained()
    job = FakeJob.created[-1]
    assert len(job.bars) == SMALL_TRAIN.window_bars
    assert int(job.bars.ts_open_ns[-1]) == T0 + (3100 - 1) * 60 * NS
    assert job.instrument == str(IID) and job.parent is None


async def test_a_failed_training_keeps_the_running_model_and_is_counted(rig: Rig) -> None:
    running = await rig.trained()
    FakeJob.behaviour = "fail"
    rig.svc.request_retrain("test")
    run = await rig.svc.wait_training()
    assert run is not None and (run.status, run.error) == ("failed", "TrainingError: macro: 3 usable bars are too few")
    assert rig.strategy.model_id == running and rig.registry.tags().production == running
    assert rig.svc.runs == {"ok": 1, "failed": 1, "timeout": 0, "cancelled": 0}
    assert rig.changes[-1].event == "training_failed" and run.id in rig.changes[-1].detail


async def test_a_timed_out_training_is_counted_as_timeout_and_changes_nothing(rig: Rig) -> None:
    FakeJob.behaviour = "timeout"
    rig.svc.request_retrain("test")
    run = await rig.svc.wait_training()
    assert run is not None and run.status == "timeout"
    assert rig.svc.runs["timeout"] == 1
    assert rig.registry.ids() == [] and rig.strategy.model is None


async def test_a_second_request_while_training_runs_is_refused(rig: Rig) -> None:
    FakeJob.behaviour = "block"
    first = rig.svc.request_retrain("first")
    with pytest.raises(TrainingBusy, match=f"training {first['id']} is running"):
        rig.svc.request_retrain("second")
    assert len(FakeJob.created) <= 1


async def test_stop_cancels_a_running_training(rig: Rig) -> None:
    FakeJob.behaviour = "block"
    rig.svc.request_retrain("first")
    await rig.svc.stop()
    assert rig.svc.runs["cancelled"] == 1
    assert rig.svc.jobs[-1].status == "cancelled"


async def test_too_few_bars_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    FakeJob.created.clear()
    r = Rig(tmp_path)
    await r.svc.start()
    r.feed.run(500, 0.0)
    with pytest.raises(TrainingUnavailable, match=r"500 base bars of sim:BTCUSDT received; a full training "
                                                  r"needs at least 2010"):
        r.svc.request_retrain("test")
    assert FakeJob.created == [] and len(r.svc.jobs) == 0


async def test_a_partial_update_needs_a_production_model(rig: Rig) -> None:
    with pytest.raises(TrainingUnavailable, match="needs a production model"):
        rig.svc.request_retrain("test", "update")


async def test_a_partial_update_warm_starts_from_production_on_the_recent_window(rig: Rig) -> None:
    prod = await rig.trained()
    rig.feed.run(700, 0.0)
    await rig.trained("update")
    job = FakeJob.created[-1]
    assert job.parent is not None and job.parent.content_sha256 == rig.registry.get(prod).content_sha256
    assert len(job.bars) == SMALL_TRAIN.update_window_bars
    assert rig.svc.jobs[-1].parent_id == prod


async def test_promote_and_rollback_hot_swap_the_strategy(rig: Rig) -> None:
    first = await rig.trained()
    rig.feed.run(10, 0.0)
    second = await rig.trained()
    assert await rig.svc.promote(second) == {"production": second, "previous": first}
    assert (rig.strategy.model_id, rig.strategy.canary_id) == (second, "")
    assert await rig.svc.rollback() == {"production": first, "rolled_back": second}
    assert rig.strategy.model_id == first
    assert [c.event for c in rig.changes[-2:]] == ["promoted", "rollback"]


async def test_promote_of_an_unknown_id_changes_nothing(rig: Rig) -> None:
    first = await rig.trained()
    with pytest.raises(UnknownModelError, match="m-20990101T000000Z-00000000"):
        await rig.svc.promote("m-20990101T000000Z-00000000")
    assert rig.strategy.model_id == first and rig.registry.tags().production == first


async def test_rollback_naming_a_model_that_is_not_production_is_refused(rig: Rig) -> None:
    first = await rig.trained()
    rig.feed.run(10, 0.0)
    second = await rig.trained()
    await rig.svc.promote(second)
    with pytest.raises(RegistryError, match=f"model '{first}' is not the current production"):
        await rig.svc.rollback(first)
    with pytest.raises(UnknownModelError):
        await rig.svc.rollback("m-20990101T000000Z-00000000")
    assert rig.registry.tags().production == second


async def test_start_loads_production_and_canary_from_the_registry(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    a = reg.add(decisive_model())
    b = reg.add(decisive_model(micro_next=0.002))
    reg.promote(a)
    reg.set_canary(b)
    r = Rig(tmp_path)
    await r.svc.start()
    assert (r.strategy.model_id, r.strategy.canary_id) == (a, b)
    assert r.svc.health().ok


async def test_a_corrupt_production_model_leaves_the_strategy_without_a_model_and_unhealthy(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    a = reg.add(decisive_model())
    reg.promote(a)
    path = reg.root / a / "model.json"
    obj = orjson.loads(path.read_bytes())
    obj["format_version"] = 99
    path.write_bytes(orjson.dumps(obj))
    r = Rig(tmp_path)
    await r.svc.start()
    assert r.strategy.model is None
    health = r.svc.health()
    assert not health.ok and f"production model {a} not loaded" in health.detail
    assert "format_version: 99 is not supported" in health.detail


async def test_the_run_loop_retrains_on_schedule_and_ticks_the_stale_timer(tmp_path: Path) -> None:
    import asyncio

    cfg = dataclasses.replace(SMALL, train=dataclasses.replace(SMALL_TRAIN, retrain_interval_s=3600.0))
    r = Rig(tmp_path, cfg)
    await r.svc.start()
    r.feed.run(2100, 0.0)
    decisions: list[PolicyDecision] = []
    r.bus.subscribe(PolicyDecision, decisions.append)
    task = asyncio.create_task(r.svc.run())
    try:
        await r.clock.advance_settle(r.svc.tick_interval_s)
        first = await r.svc.wait_training()  # no model yet: the first one is trained at once
        assert first is not None and first.reason == "initial model" and first.status == "ok"
        await r.clock.advance_settle(3600.0)
        second = await r.svc.wait_training()
        assert second is not None and second.reason == "schedule" and second.mode == "full"
        assert any(d.action == "halt" for d in decisions)  # no bars during the advance: stale
    finally:
        task.cancel()
        await r.svc.stop()


async def test_metrics_include_training_runs_and_duration(rig: Rig) -> None:
    await rig.trained()
    fams = {f.name: f for f in rig.svc.collect_metrics()}
    runs = {s.labels["result"]: s.value for s in fams["hmm_training_runs"].samples}
    assert runs == {"ok": 1.0, "failed": 0.0, "timeout": 0.0, "cancelled": 0.0}
    assert fams["hmm_training_duration_seconds"].samples[0].value == 0.25
    assert "hmm_state_probability" in fams and "hmm_model_info" in fams


async def test_status_names_models_runs_and_the_data_source(rig: Rig) -> None:
    model_id = await rig.trained()
    st = rig.svc.status()
    assert (st["production"], st["canary"], st["data_source"]) == (model_id, None, "live bars")
    assert st["recent_trainings"][-1]["model_id"] == model_id
    assert st["window_bars"] == 2100


async def test_a_running_training_shows_its_restarts_in_status_and_models(rig: Rig) -> None:
    FakeJob.behaviour = "block"  # one restart reported, then the worker runs until cancelled
    rig.svc.request_retrain("test")
    progress = await until(lambda: (rig.svc.status()["training"] or {}).get("progress"),
                           what="the first restart's progress in /status")
    assert progress == {"restarts_done": 1, "restarts_total": 2, "fitting": "macro"}
    assert (await rig.svc.models())["training"]["progress"] == progress
    await rig.svc.stop()


async def test_a_finished_training_keeps_its_last_progress_and_models_shows_none_running(rig: Rig) -> None:
    await rig.trained()
    st = rig.svc.status()
    assert st["training"] is None
    assert st["recent_trainings"][-1]["progress"] == {"restarts_done": 2, "restarts_total": 2,
                                                      "fitting": "micro regime 0"}
    assert (await rig.svc.models())["training"] is None


def test_a_retrain_in_the_daemon_process_never_imports_torch(tmp_path: Path) -> None:
    """The real worker path: spawned training, then the parent has neither torch nor pomegranate."""
    klines = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    code = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from nautilus_hmm.hmm.registry import ModelRegistry
        from nautilus_hmm.strategies.hmm_service import ModelService
        from nautilus_hmm.strategies.hmm import HmmStrategy
        from nautilus_hmm.hmm.data import load_base_bars
        from tests.unit.hmm.kit import IID, FakeEngine, context
        from tests.unit.hmm.test_service import SMALL
        from nautilus_hmm.core.bus import Bus
        from nautilus_hmm.core.clock import ManualClock
        import dataclasses

        async def main():
            cfg = dataclasses.replace(SMALL, train=dataclasses.replace(SMALL.train, window_bars=6 * 1440))
            bars = load_base_bars({str(klines)!r}, 60)
            bus, clock = Bus(), ManualClock(int(bars.ts_open_ns[0]))
            strategy = HmmStrategy("hmm", (IID,), cfg)
            strategy.attach(bus, context(bus, clock, FakeEngine(bus, clock)))
            svc = ModelService(cfg, ModelRegistry(Path({str(tmp_path)!r}) / "models"), strategy, bus, clock)
            await svc.start()
            assert svc.add_history(bars.slice(0, 6 * 1440)) == 6 * 1440
            svc.request_retrain("test")
            run = await svc.wait_training()
            print(run.status, run.error)
            print("torch" in sys.modules, "pomegranate" in sys.modules, strategy.model_id == run.model_id)

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2] == "ok None", out.stdout[-2000:]
    assert lines[-1] == "False False True"


async def test_history_bars_warm_the_strategy_and_fill_the_training_window(tmp_path: Path) -> None:
    from nautilus_hmm.hmm.data import from_ohlcv
    from nautilus_hmm.marketdata.bars import OhlcvBar

    reg = ModelRegistry(tmp_path / "models")
    reg.promote(reg.add(decisive_model()))
    r = Rig(tmp_path)
    await r.svc.start()
    past = [OhlcvBar(b.ts_event_ns, b.open, b.high, b.low, b.close, b.volume) for b in r.feed.bars(2100, 0.0)]
    assert r.svc.add_history(from_ohlcv(past)) == 2100
    assert r.svc.status()["window_bars"] == 2100
    assert r.strategy.status()[str(IID)]["state"] == "active"
    r.svc.request_retrain("test")
    assert (await r.svc.wait_training()).status == "ok"  # type: ignore[union-attr]


async def test_start_warms_up_from_the_venue_past_and_survives_a_venue_that_cannot_answer(tmp_path: Path) -> None:
    from nautilus_hmm.marketdata.synthetic import SyntheticMarket

    asked: list[tuple[object, int, int]] = []

    async def past(iid: object, interval_s: int, n: int) -> object:
        asked.append((iid, interval_s, n))
        return SyntheticMarket({"BTCUSDT": 100.0}, seed=1).history("BTCUSDT", T0, n, interval_s)

    r = Rig(tmp_path)
    r.svc = ModelService(r.cfg, r.registry, r.strategy, r.bus, r.clock, job_factory=FakeJob, history=past)
    await r.svc.start()
    assert asked == [(IID, 60, 3000)]  # the training window (larger than the trackers' history)
    assert r.svc.status()["window_bars"] == 3000 and r.svc.history_bars == 3000
    snapshot = r.strategy.history_snapshot()[IID]
    assert len(snapshot) == r.strategy.history_capacity and snapshot[-1].close == 100.0
    await r.svc.stop()

    async def broken(iid: object, interval_s: int, n: int) -> object:
        raise ConnectionError("venue down")

    r2 = Rig(tmp_path / "b")
    r2.svc = ModelService(r2.cfg, r2.registry, r2.strategy, r2.bus, r2.clock, job_factory=FakeJob,
                          history=broken)
    await r2.svc.start()  # logged; warm-up is left to live bars
    assert r2.svc.status()["window_bars"] == 0 and r2.svc.health().ok
    await r2.svc.stop()


async def test_a_venue_that_never_answers_is_given_up_after_the_history_timeout(tmp_path: Path) -> None:
    import asyncio

    from nautilus_hmm.strategies.hmm_service import HISTORY_TIMEOUT_S

    asked = asyncio.Event()

    async def never(iid: object, interval_s: int, n: int) -> object:
        asked.set()
        await asyncio.Event().wait()

    r = Rig(tmp_path)
    r.svc = ModelService(r.cfg, r.registry, r.strategy, r.bus, r.clock, job_factory=FakeJob, history=never)
    start = asyncio.ensure_future(r.svc.start())
    await asyncio.wait_for(asked.wait(), 5)  # the start reads the registry in a thread first
    await r.clock.settle()
    await r.clock.advance_settle(HISTORY_TIMEOUT_S - 1)
    assert not start.done()  # still waiting for the venue, on the injected clock
    await r.clock.advance_settle(2)
    await asyncio.wait_for(start, 5)  # given up: the start goes on without the past
    assert r.svc.history_bars == 0 and r.svc.status()["window_bars"] == 0
    await r.svc.stop()


def _foreign_interval_model() -> object:
    """A valid model on 5-minute base bars: this strategy (1-minute bars) cannot run it."""
    return dataclasses.replace(decisive_model(), base_interval_s=300)


def _disk(rig: Rig) -> dict[str, bytes]:
    root = rig.registry.root
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def test_promote_of_a_model_the_strategy_cannot_run_changes_nothing_on_disk(rig: Rig) -> None:
    from nautilus_hmm.hmm.errors import ModelError

    first = await rig.trained()
    foreign = rig.registry.add(_foreign_interval_model())
    before = _disk(rig)
    with pytest.raises(ModelError, match="base_interval_s"):
        await rig.svc.promote(foreign)
    assert _disk(rig) == before  # the next restart loads what runs now
    assert rig.registry.tags().production == first and rig.strategy.model_id == first


async def test_canary_of_a_model_the_strategy_cannot_run_changes_nothing_on_disk(rig: Rig) -> None:
    from nautilus_hmm.hmm.errors import ModelError

    await rig.trained()
    foreign = rig.registry.add(_foreign_interval_model())
    before = _disk(rig)
    with pytest.raises(ModelError, match="base_interval_s"):
        await rig.svc.set_canary(foreign)
    assert _disk(rig) == before
    assert rig.registry.tags().canary is None and rig.strategy.canary_id == ""


async def test_rollback_never_tags_a_previous_model_the_strategy_cannot_run(rig: Rig) -> None:
    first = await rig.trained()
    foreign = rig.registry.add(_foreign_interval_model())
    rig.registry.promote(foreign)  # e.g. production under an older config with 5-minute bars
    rig.registry.promote(first)
    before = _disk(rig)
    with pytest.raises(RegistryError, match="no previous production model"):
        await rig.svc.rollback()
    assert _disk(rig) == before
    assert rig.registry.tags().production == first and rig.strategy.model_id == first


async def test_training_data_whose_interval_cannot_make_base_bars_fails_the_run_naming_training_data(
        tmp_path: Path) -> None:
    data = tmp_path / "five_minute.csv"  # 300 s bars cannot be resampled into the model's 60 s base bars
    data.write_text("timestamp,open,high,low,close,volume\n"
                    + "".join(f"{1_700_000_000 + 300 * i},100,101,99,100,1\n" for i in range(3)))
    FakeJob.behaviour = "ok"
    r = Rig(tmp_path, dataclasses.replace(SMALL, training_data=str(data)))
    await r.svc.start()
    try:
        r.svc.request_retrain("test", "full")
        run = await r.svc.wait_training()
        assert run is not None and run.status == "failed"
        assert run.error is not None and run.error.startswith("training_data: ")
        assert "cannot make the model's 60 s base bars" in run.error
    finally:
        await r.svc.stop()


def test_the_training_baseline_is_per_base_bar_on_the_live_log_likelihood_scale() -> None:
    from types import SimpleNamespace as NS_

    from nautilus_hmm.strategies.hmm_service import training_ll_per_base_bar

    def fit(ll: float, n: int) -> NS_:
        return NS_(fit=NS_(log_likelihood=ll, n_obs=n))

    model = NS_(base_interval_s=60, macro=NS_(interval_s=3600, hmm=fit(-120.0, 10)),
                micro=NS_(interval_s=300, hmms=[fit(-30.0, 15), fit(-10.0, 5)]))
    # macro -12 per macro bar = -0.2 per base bar; micro -2 per micro bar = -0.4 per base bar
    assert training_ll_per_base_bar(model) == pytest.approx(-0.6)  # type: ignore[arg-type]
    model.micro.hmms = []
    assert training_ll_per_base_bar(model) is None  # type: ignore[arg-type]
