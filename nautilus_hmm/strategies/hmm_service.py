"""`ModelService`: the supervised component ("models") that owns the registry and the
strategy's models, trains in a worker, and moves the production/canary tags.

* Start: the registry's production and canary models are loaded (validated) into the
  strategy; with `[hmm] training_data` the strategy is warmed up from the file's tail,
  else (`[hmm] history_from_venue`) from the venue's past bars (REST klines, the
  simulator's seeded past): the newest `history_capacity` bars warm the trackers, and
  for the training instrument up to `window_bars` fill the training window, so a
  restart neither waits hours for warm-up nor forgets what it could train on.
  A production model that fails validation leaves the strategy without a model (it
  states no target) and the component unhealthy, naming the model and the problem.
* Training data: the last `window_bars` base bars of `[hmm] training_data` when set,
  else the rolling window of base bars the strategy received for the first instrument.
* Retrain: on demand (`request_retrain`), every `retrain_interval_s` (full) and every
  `update_interval_s` (partial update: EM warm-started from production on the last
  `update_window_bars`; see docs/HMM.md), and once automatically while there is no
  production model and enough bars. One training at a time (TrainingBusy otherwise).
* The worker (`hmm.train.TrainingJob`, a spawned process: torch is only imported there)
  is started and awaited in an executor thread, as are every file read, fsync and
  model validation, so the event loop never blocks on them.
* Success: the model is added to the registry and becomes the canary (production only
  when there is none: a trained model never replaces production without evidence); the
  strategy swaps it in; ModelChanged is published. Failure, timeout or cancellation:
  logged, counted, ModelChanged "training_failed"; the running models stay.
* promote / rollback / set_canary hot-swap the strategy's models and publish ModelChanged.
  Governance (control.governance, port ModelControl) drives promote and rollback on live
  evidence; `[hmm] train.auto_promote` is what allows it to promote (`may_promote`).
  `baseline_ll_per_bar()` is production's training log-likelihood per base bar (on the
  scale of the live `PolicyDecision.log_likelihood`; meta.json's `loglik_per_base_bar`),
  the reference of the rollback rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock, wait_with_timeout
from nautilus_hmm.core.errors import DataError
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.hmm.config import HmmConfig
from nautilus_hmm.hmm.data import BarRing, load_base_bars, to_base_interval
from nautilus_hmm.hmm.errors import HmmError, ModelError
from nautilus_hmm.hmm.features import session_starts_for
from nautilus_hmm.hmm.model import RegimeModel, load_model
from nautilus_hmm.hmm.registry import ModelRegistry, RegistryError, UnknownModelError
from nautilus_hmm.hmm.runtime import Quote
from nautilus_hmm.hmm.train import (
    TrainingJob,
    TrainingOutcome,
    min_training_bars,
    warm_start_config,
)
from nautilus_hmm.marketdata.bars import NS_PER_S, OhlcvBar
from nautilus_hmm.marketdata.replay import BarArrays, BarDataError
from nautilus_hmm.messages import ModelChanged
from nautilus_hmm.strategies.hmm import HmmStrategy, PreparedModel

log = structlog.get_logger("hmm")

MODES = ("full", "update")
AUTO_RETRY_S = 600.0  # the automatic first training is retried at most this often
JOBS_KEPT = 20
RESULTS = ("ok", "failed", "timeout", "cancelled")

JobFactory = Callable[..., Any]  # (bars, spec, cfg, out_path, *, micro_spec, instrument, timeout_s, parent) -> job
# (instrument, interval_s, n_bars) -> marketdata.replay.BarArrays, oldest first: a venue's past bars
HistorySource = Callable[[InstrumentId, int, int], Awaitable[Any]]
# All instruments' past bars are fetched together within this (well inside the unit's
# TimeoutStartSec of 120 s); an instrument whose venue takes longer warms up on live bars.
HISTORY_TIMEOUT_S = 60.0
WARM_UP_STEP_BARS = 500  # bars fed to the trackers between yields to the loop


class TrainingBusy(HmmError):
    """A training is already running (HTTP 409)."""


class TrainingUnavailable(HmmError):
    """A training cannot start now: too few bars, no production model to update ... (HTTP 409)."""


@dataclass(slots=True)
class TrainingRun:
    """One training request and what became of it."""

    id: str
    mode: str
    reason: str
    requested_at_ns: int
    status: str = "running"  # running | ok | failed | timeout | cancelled
    bars: int = 0
    model_id: str | None = None
    tag: str | None = None
    error: str | None = None
    duration_s: float | None = None
    parent_id: str | None = None
    # {"restarts_done", "restarts_total", "fitting"} after each Baum-Welch restart in the worker;
    # replaced whole (never mutated) by the waiting thread, so the loop reads a consistent dict.
    progress: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = {f: getattr(self, f) for f in self.__slots__ if f != "extra"}
        out.update(self.extra)
        return out


def _progress_recorder(run: TrainingRun) -> Callable[[int, int, str], None]:
    """A TrainingJob progress callback (called in the waiting thread) that keeps the newest
    restart count on `run` for /status and /models, and still logs each restart."""

    def record(done: int, total: int, what: str) -> None:
        run.progress = {"restarts_done": done, "restarts_total": total, "fitting": what}
        log.info("hmm_training_progress", job_id=run.id, restarts_done=done, restarts_total=total, fitting=what)

    return record


def _utc_stamp(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).strftime("%Y%m%dT%H%M%SZ")


class ModelService(BaseComponent):
    """Registry, training schedule and model hot-swaps for one HmmStrategy."""

    name = "models"

    def __init__(self, cfg: HmmConfig, registry: ModelRegistry, strategy: HmmStrategy, bus: Bus,
                 clock: Clock, *, training_instrument: InstrumentId | None = None,
                 job_factory: JobFactory = TrainingJob, base_dir: Path | None = None,
                 history: HistorySource | None = None) -> None:
        super().__init__()
        self._history = history
        self.history_bars = 0  # past bars taken from the venue at start
        self._cfg = cfg  # replaced only by apply_config (a reload hands the new [hmm] in)
        self.registry = registry
        self.strategy = strategy
        self.bus = bus
        self.clock = clock
        self.instrument = training_instrument or strategy.instruments[0]
        self._job_factory = job_factory
        self.work_dir = (base_dir or registry.root) / ".work"
        c = cfg.train
        self._window = BarRing(max(c.window_bars, c.update_window_bars))
        strategy.base_bar_listeners.append(self._on_base_bar)
        self.runs: dict[str, int] = dict.fromkeys(RESULTS, 0)
        self.last_duration_s: float | None = None
        self.jobs: deque[TrainingRun] = deque(maxlen=JOBS_KEPT)
        self.current: TrainingRun | None = None
        self._task: asyncio.Task[None] | None = None
        self._active_job: Any = None
        self._job_lock = threading.Lock()
        self._swap_lock = asyncio.Lock()  # registry tag change + strategy swap happen as one step
        self._stopping = False
        self._seq = 0
        self._problem = ""
        self._baselines: dict[str, float | None] = {}  # model id -> training log-likelihood per bar
        now_s = clock.monotonic()
        self._last_full_s = now_s
        self._last_update_s = now_s
        self._last_auto_s: float | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def cfg(self) -> HmmConfig:
        """The current [hmm] config: the one given at build time or by the last apply_config."""
        return self._cfg

    @property
    def production_id(self) -> str | None:
        """The production model running in the strategy (None: no model yet)."""
        return self.strategy.model_id or None

    @property
    def canary_id(self) -> str | None:
        """The canary model running in the strategy (None: none)."""
        return self.strategy.canary_id or None

    @property
    def may_promote(self) -> bool:
        """Whether governance may promote the canary on evidence (`[hmm] train.auto_promote`)."""
        return self.cfg.train.auto_promote

    def baseline_ll_per_bar(self) -> float | None:
        """Production's training log-likelihood per base bar (`training_ll_per_base_bar`;
        None: unknown). Computed when the model was loaded, never here."""
        model_id = self.production_id
        return None if model_id is None else self._baselines.get(model_id)

    def _note_baseline(self, model_id: str, model: RegimeModel) -> None:
        """Remember a model's training log-likelihood per base bar (the rollback rule's reference)."""
        if model_id not in self._baselines:
            self._baselines[model_id] = training_ll_per_base_bar(model)

    async def start(self) -> None:
        """Load the tagged models into the strategy; warm it up from training_data if set."""
        loop = asyncio.get_running_loop()
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tags = await loop.run_in_executor(None, self.registry.tags)
        for tag, model_id in (("production", tags.production), ("canary", tags.canary)):
            if model_id is None:
                continue
            try:
                model = await loop.run_in_executor(None, self.registry.get, model_id)
                self._note_baseline(model_id, model)
                await self._swap(tag, model, model_id)
            except (ModelError, RegistryError) as exc:
                log.error("hmm_model_not_loaded", tag=tag, model_id=model_id, error=str(exc),
                          hint="promote another model or roll back: nautilus-hmm models ...")
                if tag == "production":
                    self._problem = f"production model {model_id} not loaded: {exc}"
        if tags.production is None:
            # The schedule trains the first model by itself (see _schedule): say so, not what to run.
            if self.cfg.training_data:
                source = f"the bars of [hmm] training_data {self.cfg.training_data}"
            elif self._history is not None and self.cfg.history_from_venue:
                source = "the venue's past bars, then live bars"
            else:
                source = "live bars"
            bars_needed = self.min_bars("full")
            log.info("hmm_training_first_model", registry=str(self.registry.root), bars_needed=bars_needed,
                     detail=f"no model yet: training the first model once {bars_needed} base bars are at hand "
                            f"(from {source}); trading waits for it")
        path = self.cfg.training_data
        if path:
            try:
                bars = await loop.run_in_executor(None, load_base_bars, path, self.strategy.base_interval_s)
            except (DataError, BarDataError, HmmError, OSError) as exc:
                log.error("hmm_training_data_unreadable", path=path, error=str(exc))
            else:
                keep = self.strategy.history_capacity
                taken = self.strategy.warm_up(self.instrument, bars.slice(max(0, len(bars) - keep), len(bars)))
                log.info("hmm_warmed_up_from_file", path=path, bars=taken)
        elif self._history is not None and self.cfg.history_from_venue:
            await self._warm_up_from_venue()

    async def _warm_up_from_venue(self) -> None:
        """Every instrument's past bars, fetched together within HISTORY_TIMEOUT_S (clock)."""
        fetches = {iid: asyncio.ensure_future(self._fetch_history(iid)) for iid in self.strategy.instruments}
        with contextlib.suppress(TimeoutError):  # the ones that finished in time are used
            await wait_with_timeout(self.clock, HISTORY_TIMEOUT_S, asyncio.gather(*fetches.values()))
        for iid, fut in fetches.items():
            if fut.cancelled():
                log.warning("hmm_history_unavailable", instrument=str(iid), error=f"timed out after {HISTORY_TIMEOUT_S} s",
                            hint="the strategy warms up from live bars; or set [hmm] training_data")
            elif fut.result() is not None:
                await self._warm_up(iid, fut.result())

    async def _fetch_history(self, iid: InstrumentId) -> BarArrays | None:
        """The venue's past base bars of `iid` (None, logged, when the venue cannot answer)."""
        assert self._history is not None
        base = self.strategy.base_interval_s
        keep = self.strategy.history_capacity
        want = max(keep, self._window.capacity) if iid == self.instrument else keep
        try:
            market = await self._history(iid, base, want)
            return to_base_interval(market, int(market.interval_s), base, f"{iid} history")
        except Exception as exc:  # a venue that cannot answer leaves warm-up to live bars
            log.warning("hmm_history_unavailable", instrument=str(iid), bars=want, error=repr(exc),
                        hint="the strategy warms up from live bars; or set [hmm] training_data")
            return None

    async def _warm_up(self, iid: InstrumentId, bars: BarArrays) -> None:
        """The trackers' history from the newest bars; the training window's past from the rest."""
        keep = self.strategy.history_capacity
        n = len(bars)
        self.history_bars += n
        split = max(0, n - keep)
        if iid == self.instrument and split:
            self._window.extend(bars.slice(0, split))  # the newest ones arrive via the listener
        taken = 0
        for lo in range(split, n, WARM_UP_STEP_BARS):
            taken += self.strategy.warm_up(iid, bars.slice(lo, min(n, lo + WARM_UP_STEP_BARS)))
            await asyncio.sleep(0)
        log.info("hmm_warmed_up_from_venue", instrument=str(iid), bars=n, tracker_bars=taken,
                 training_window=len(self._window) if iid == self.instrument else None)

    async def run(self) -> None:
        """Every few seconds: the strategy's stale-data timer, then the retrain schedule.

        The schedule is also looked at once right away, so a history that is already
        long enough (venue past, training_data) trains the first model at start."""
        self._schedule()
        while True:
            await self.clock.sleep(self.tick_interval_s)
            self.strategy.tick(self.clock.time_ns())
            self._resize_window()
            self._schedule()

    async def stop(self) -> None:
        """Cancel a running training (the worker is terminated) and wait for it."""
        with self._job_lock:
            self._stopping = True
            job, task = self._active_job, self._task
        if job is not None:
            job.cancel()
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=15.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

    def health(self) -> Health:
        """Unhealthy only when the production model in the registry could not be loaded."""
        info = {"production": self.strategy.model_id or None, "canary": self.strategy.canary_id or None,
                "training": self.current.id if self.current else None}
        return Health(not self._problem, self._problem, info)

    @property
    def tick_interval_s(self) -> float:
        """Stale-data check period: a quarter of stale_data_s, between 1 and 30 s."""
        return min(30.0, max(1.0, self.cfg.policy.stale_data_s / 4.0))

    def apply_config(self, cfg: HmmConfig) -> None:
        """A reloaded [hmm]: it becomes this service's config (schedule, window size, the next
        training), the strategy gets the policy settings, the training window its new size."""
        self._cfg = cfg
        self.strategy.update_config(cfg)
        self._resize_window()

    def _resize_window(self) -> None:
        c = self.cfg.train
        size = max(c.window_bars, c.update_window_bars)
        if self._window.capacity != size:
            self._window = self._window.resized(size)

    def add_history(self, bars: BarArrays, instrument: InstrumentId | None = None) -> int:
        """Past base bars (from a file or the venue's REST klines) before live bars start.

        They warm the strategy's trackers (no decisions) and, for the training instrument,
        fill the training window. Bars not after the last one held are skipped.
        Returns the bars the strategy took.
        """
        iid = instrument or self.instrument
        return self.strategy.warm_up(iid, bars)  # the listener adds them to the window

    def _on_base_bar(self, iid: InstrumentId, bar: OhlcvBar, quote: Quote | None = None) -> None:
        if iid == self.instrument:
            self._window.append(bar, quote)

    # ------------------------------------------------------------ schedule

    def _schedule(self) -> None:
        if self.training:
            return
        c = self.cfg.train
        now_s = self.clock.monotonic()
        want: tuple[str, str] | None = None
        if self.strategy.model is None:
            due = self._last_auto_s is None or now_s - self._last_auto_s >= AUTO_RETRY_S
            enough = bool(self.cfg.training_data) or len(self._window) >= self.min_bars("full")
            if due and enough and not self._problem:
                self._last_auto_s = now_s
                want = ("full", "initial model")
        elif c.retrain_interval_s > 0 and now_s - self._last_full_s >= c.retrain_interval_s:
            want = ("full", "schedule")
        elif (c.update_interval_s > 0 and self.strategy.model is not None
              and now_s - self._last_update_s >= c.update_interval_s):
            want = ("update", "schedule")
        if want is None:
            return
        if want[0] == "full":
            self._last_full_s = now_s
        self._last_update_s = now_s  # a full retrain also resets the update clock
        try:
            self.request_retrain(want[1], want[0])
        except (TrainingBusy, TrainingUnavailable) as exc:
            log.info("hmm_scheduled_training_skipped", mode=want[0], reason=str(exc))

    # ------------------------------------------------------------ training

    @property
    def training(self) -> bool:
        """True while a training runs."""
        return self._task is not None and not self._task.done()

    async def wait_training(self) -> TrainingRun | None:
        """Wait for the running training (if any) to finish; returns its run."""
        task, run = self._task, self.current
        if task is not None:
            await asyncio.shield(task)
        return run

    def min_bars(self, mode: str) -> int:
        """Base bars a training of this mode needs at least."""
        c = self.cfg.train
        parent = self.strategy.model if mode == "update" else None
        if parent is not None:
            return min_training_bars(warm_start_config(c, parent), parent.macro.features, parent.micro.features)
        return min_training_bars(c, self.cfg.features.spec())

    def request_retrain(self, reason: str = "admin", mode: str = "full") -> dict[str, Any]:
        """Start a training in the background; returns the run (its id and status).

        Raises TrainingBusy while one runs and TrainingUnavailable when it cannot start
        (unknown mode, no production model to update, too few bars). Nothing changes then.
        """
        if mode not in MODES:
            raise TrainingUnavailable(f"mode {mode!r}: must be one of {', '.join(MODES)}")
        if self.training:
            assert self.current is not None
            raise TrainingBusy(f"training {self.current.id} is running (started for: {self.current.reason})")
        c = self.cfg.train
        parent, parent_id = (self.strategy.model, self.strategy.model_id) if mode == "update" else (None, None)
        if mode == "update" and parent is None:
            raise TrainingUnavailable("a partial update needs a production model; train a full model first")
        n = c.update_window_bars if mode == "update" else c.window_bars
        rows: BarArrays | None = None
        if not self.cfg.training_data:
            rows = self._window.last(n)
            need = self.min_bars(mode)
            if len(rows) < need:
                what = "full training" if mode == "full" else "partial update"
                raise TrainingUnavailable(
                    f"{len(rows)} base bars of {self.instrument} received; a {what} needs at least "
                    f"{need} ({need * self.strategy.base_interval_s / 86400:.1f} days)")
        now = self.clock.time_ns()
        self._seq += 1
        run = TrainingRun(id=f"t-{_utc_stamp(now)}-{self._seq}", mode=mode, reason=reason, requested_at_ns=now,
                          bars=len(rows) if rows is not None else 0, parent_id=parent_id)
        self.current = run
        self.jobs.append(run)
        self._task = asyncio.get_running_loop().create_task(self._train(run, rows, n, parent),
                                                            name=f"hmm-train-{run.id}")
        log.info("hmm_training_requested", job_id=run.id, mode=mode, reason=reason, bars=run.bars,
                 source=self.cfg.training_data or "live window")
        return run.view()

    async def _train(self, run: TrainingRun, rows: BarArrays | None, n: int,
                     parent: RegimeModel | None) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        t0 = time.perf_counter()
        try:
            outcome, model, model_id, tag = await loop.run_in_executor(
                None, self._train_blocking, run, cfg, rows, n, parent)
        except Exception as exc:  # a bug or an I/O error around the worker: the running model stays
            outcome, model, model_id, tag = TrainingOutcome(False, None, f"{type(exc).__name__}: {exc}",
                                                            time.perf_counter() - t0), None, None, None
            log.error("hmm_training_error", job_id=run.id, error=repr(exc), exc_info=exc)
        finally:
            self._active_job = None
        run.duration_s = round(outcome.duration_s, 3)
        self.last_duration_s = outcome.duration_s
        now = self.clock.time_ns()
        if outcome.ok and model is not None and model_id is not None and tag is not None:
            run.status, run.model_id, run.tag = "ok", model_id, tag
            self.runs["ok"] += 1
            async with self._swap_lock:
                await self._swap(tag, model, model_id)
            self.bus.publish(ModelChanged(ts_event_ns=now, ts_init_ns=now, model_id=model_id, event="trained",
                                          detail=f"{tag} (job {run.id}, {run.mode}: {run.reason})"))
            log.warning("hmm_training_succeeded", job_id=run.id, model_id=model_id, tag=tag,
                        duration_s=run.duration_s)
        else:
            error = outcome.error or "unknown error"
            status = ("timeout" if error.startswith("training timed out")
                      else "cancelled" if error == "training cancelled" else "failed")
            run.status, run.error = status, error
            self.runs[status] += 1
            self.bus.publish(ModelChanged(ts_event_ns=now, ts_init_ns=now, model_id="", event="training_failed",
                                          detail=f"job {run.id}: {error.splitlines()[0][:300]}"))
            log.warning("hmm_training_failed", job_id=run.id, result=status, error=error.splitlines()[0],
                        running_model=self.strategy.model_id or None)
        self.current = None

    def _train_blocking(self, run: TrainingRun, cfg: HmmConfig, rows: BarArrays | None, n: int,
                        parent: RegimeModel | None) -> tuple[TrainingOutcome, RegimeModel | None, str | None,
                                                            str | None]:
        """Executor thread: data, worker, validation, registry. Returns (outcome, model, id, tag)."""
        t0 = time.perf_counter()
        if rows is None:
            try:
                bars = load_base_bars(cfg.training_data, self.strategy.base_interval_s)
            except (DataError, BarDataError, HmmError, OSError) as exc:
                return TrainingOutcome(False, None, f"training_data: {exc}", time.perf_counter() - t0), \
                    None, None, None
            bars = bars.slice(max(0, len(bars) - n), len(bars))
        else:
            bars = rows
        run.bars = len(bars)
        out_path = self.work_dir / f"{run.id}.json"
        extra: dict[str, Any] = {}
        sessions = self.strategy.sessions_snapshot().get(self.instrument)
        if sessions is not None:  # an instrument with trading sessions: train as the tracker runs
            extra["session_starts"] = session_starts_for(sessions, bars.ts_open_ns, self.strategy.base_interval_s)
        job = self._job_factory(bars, cfg.features.spec(), cfg.train, out_path, micro_spec=None,
                                instrument=str(self.instrument), timeout_s=None, parent=parent,
                                on_progress=_progress_recorder(run), **extra)
        with self._job_lock:
            self._active_job = job
            if self._stopping:  # stop() ran before the job existed
                job.cancel()
        outcome: TrainingOutcome = job.wait()
        if not outcome.ok or outcome.path is None:
            return outcome, None, None, None
        try:
            model = load_model(outcome.path)
            metrics = _metrics_of(model, bars)
            model_id = self.registry.add(model, parent_id=run.parent_id, metrics=metrics,
                                         source=f"{run.mode}: {run.reason} ({run.id})")
            self._note_baseline(model_id, model)
            tags = self.registry.tags()
            # Never production without evidence: the canary, unless there is no production
            # at all (governance promotes it on live evidence; auto_promote allows that).
            if tags.production is None:
                self.registry.promote(model_id, check=self.strategy.check_model)
                tag = "production"
            else:
                self.registry.set_canary(model_id, check=self.strategy.check_model)
                tag = "canary"
        except (ModelError, RegistryError, OSError) as exc:
            return TrainingOutcome(False, None, f"trained model refused: {exc}", outcome.duration_s), \
                None, None, None
        finally:
            Path(outcome.path).unlink(missing_ok=True)
        return outcome, model, model_id, tag

    # ------------------------------------------------------------ tags

    def _install(self, tag: str, model: RegimeModel, model_id: str, prepared: PreparedModel | None = None) -> None:
        """Hot-swap a model into the strategy under `tag`."""
        if tag == "production":
            self.strategy.set_model(model, model_id, prepared)
            if self.strategy.canary_id == model_id:
                self.strategy.set_canary(None)
            self._problem = ""
        else:
            self.strategy.set_canary(model, model_id, prepared)

    async def _swap(self, tag: str, model: RegimeModel, model_id: str) -> None:
        """Warm the new trackers on a history snapshot in short steps (yielding to the loop
        between them), then install; only the bars that arrived meanwhile are replayed at once.

        Steps on the loop rather than a thread: a thread running Python would take the GIL
        from the loop for up to the interpreter's switch interval (5 ms) at a time.
        """
        prepared: PreparedModel | None = None
        for step in HmmStrategy.prepare_steps(model, model_id, self.strategy.history_snapshot(),
                                              sessions=self.strategy.sessions_snapshot()):
            if step is None:
                await asyncio.sleep(0)
            else:
                prepared = step
        self._install(tag, model, model_id, prepared)

    def _changed(self, model_id: str, event: str, detail: str) -> None:
        now = self.clock.time_ns()
        self.bus.publish(ModelChanged(ts_event_ns=now, ts_init_ns=now, model_id=model_id, event=event, detail=detail))

    async def promote(self, model_id: str) -> dict[str, Any]:
        """Make a model production (validated first) and swap it in.

        UnknownModelError for an unknown id, ModelError for a model that does not load
        or that the strategy cannot run (another base interval); nothing changes then,
        on disk either: the tag is written only after the model passed every check.
        """
        loop = asyncio.get_running_loop()

        def work() -> tuple[RegimeModel, str | None]:
            model = self.registry.get(model_id)
            self._note_baseline(model_id, model)
            return model, self.registry.promote(model_id, check=self.strategy.check_model)

        async with self._swap_lock:
            model, previous = await loop.run_in_executor(None, work)
            await self._swap("production", model, model_id)
        self._changed(model_id, "promoted", f"previous production: {previous}")
        return {"production": model_id, "previous": previous}

    async def rollback(self, expected_id: str | None = None) -> dict[str, Any]:
        """Production back to the previous production model; swap it in.

        `expected_id`, when given (and not "production"/"current"), must be the current
        production id: UnknownModelError if no such model, RegistryError if it is not
        the current production (so a stale request cannot roll back a newer model).
        """
        loop = asyncio.get_running_loop()

        def work() -> tuple[str | None, str, RegimeModel]:
            current = self.registry.tags().production
            if expected_id not in (None, "production", "current"):
                if expected_id not in self.registry:
                    raise UnknownModelError(str(expected_id), self.registry.root)
                if expected_id != current:
                    raise RegistryError(f"model {expected_id!r} is not the current production ({current}); "
                                        "nothing rolled back")
            new = self.registry.rollback(check=self.strategy.check_model)
            model = self.registry.get(new)
            self._note_baseline(new, model)
            return current, new, model

        async with self._swap_lock:
            previous, new, model = await loop.run_in_executor(None, work)
            await self._swap("production", model, new)
        self._changed(new, "rollback", f"rolled back from {previous}")
        return {"production": new, "rolled_back": previous}

    async def set_canary(self, model_id: str | None) -> dict[str, Any]:
        """Run a registry model as the canary (None clears it); validated before it is tagged."""
        loop = asyncio.get_running_loop()

        def work() -> RegimeModel | None:
            self.registry.set_canary(model_id, check=self.strategy.check_model)
            return None if model_id is None else self.registry.get(model_id)

        async with self._swap_lock:
            model = await loop.run_in_executor(None, work)
            if model is None or model_id is None:
                self.strategy.set_canary(None)
            else:
                await self._swap("canary", model, model_id)
        if model_id is None:
            self._changed("", "canary_cleared", "")
        else:
            self._changed(model_id, "canary", "")
        return {"canary": model_id}

    # ------------------------------------------------------------ views

    async def models(self) -> dict[str, Any]:
        """Registry listing with tags (read in an executor thread)."""
        loop = asyncio.get_running_loop()
        listing = await loop.run_in_executor(None, self.registry.list)
        tags = await loop.run_in_executor(None, self.registry.tags)
        return {"production": tags.production, "canary": tags.canary,
                "previous_production": list(tags.previous_production),
                "training": self.current.view() if self.current else None, "models": listing}

    def regimes(self) -> dict[str, Any]:
        """Current posteriors and decisions per instrument (production and canary)."""
        return {"production": self.strategy.model_id or None, "canary": self.strategy.canary_id or None,
                "instruments": self.strategy.regimes()}

    def status(self) -> dict[str, Any]:
        """State for /status."""
        c = self.cfg.train
        return {
            "registry": str(self.registry.root),
            "production": self.strategy.model_id or None,
            "canary": self.strategy.canary_id or None,
            "problem": self._problem or None,
            "training": self.current.view() if self.current else None,
            "recent_trainings": [r.view() for r in list(self.jobs)[-5:]],
            "runs": dict(self.runs),
            "last_duration_s": self.last_duration_s,
            "window_bars": len(self._window),
            "min_bars_full": self.min_bars("full"),
            "data_source": self.cfg.training_data or ("venue past + live bars" if self.history_bars else "live bars"),
            "history_bars": self.history_bars,
            "retrain_interval_s": c.retrain_interval_s,
            "update_interval_s": c.update_interval_s,
        }

    def collect_metrics(self) -> list[Any]:
        """Strategy families plus training runs and the last training duration."""
        from nautilus_hmm.obs.metrics import counter_family, gauge_family

        fams = self.strategy.collect_metrics()
        fams.append(counter_family("hmm_training_runs", "Training runs by result", ["result"],
                                   [([k], float(v)) for k, v in self.runs.items()]))
        fams.append(gauge_family("hmm_training_duration_seconds", "Wall time of the last training run", [],
                                 [([], self.last_duration_s)] if self.last_duration_s is not None else []))
        fams.append(gauge_family("hmm_training_window_bars", "Base bars held for the next training", [],
                                 [([], float(len(self._window)))]))
        return fams


def _metrics_of(model: RegimeModel, bars: BarArrays) -> dict[str, Any]:
    """Fit figures stored in meta.json."""
    macro = model.macro.hmm.fit
    return {
        "bars": len(bars),
        "macro_loglik_per_bar": round(macro.log_likelihood / max(macro.n_obs, 1), 6),
        "macro_bic": round(macro.bic, 3),
        "micro_loglik_per_bar": [round(h.fit.log_likelihood / max(h.fit.n_obs, 1), 6) for h in model.micro.hmms],
        "micro_sources": [h.fit.source for h in model.micro.hmms],
        "loglik_per_base_bar": _round_or_none(training_ll_per_base_bar(model)),
        "duration_s": model.training.duration_s,
    }


def _round_or_none(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def training_ll_per_base_bar(model: RegimeModel) -> float | None:
    """The model's training log-likelihood per base bar, on the scale of the strategy's live
    `PolicyDecision.log_likelihood` (macro increment + the active micro model's increment,
    per base bar): macro LL per macro bar x base/macro interval + micro LL per micro bar
    (pooled over the micro models, weighted by their bars) x base/micro interval.
    In-sample, so a live model runs somewhat below it; None when a fit has no bars."""
    macro = model.macro.hmm.fit
    micro_ll = sum(h.fit.log_likelihood for h in model.micro.hmms)
    micro_n = sum(h.fit.n_obs for h in model.micro.hmms)
    if macro.n_obs <= 0 or micro_n <= 0:
        return None
    base = model.base_interval_s
    value = (macro.log_likelihood / macro.n_obs * base / model.macro.interval_s
             + micro_ll / micro_n * base / model.micro.interval_s)
    return value if math.isfinite(value) else None


def registry_root(cfg: HmmConfig, state_dir: str | Path) -> Path:
    """`[hmm] registry_dir`, relative to the state directory unless absolute."""
    p = Path(cfg.registry_dir)
    return p if p.is_absolute() else Path(state_dir) / p


def build_model_service(cfg: HmmConfig, strategy: HmmStrategy, bus: Bus, clock: Clock,
                        state_dir: str | Path, history: HistorySource | None = None,
                        scope: str | None = None) -> ModelService:
    """The "models" component of one HmmStrategy (registry opened now); `scope`: the strategy id
    whose own registry is `<registry_dir>/<scope>` (None: the registry itself, one-strategy configs)."""
    root = registry_root(cfg, state_dir)
    return ModelService(cfg, ModelRegistry(root if scope is None else root / scope), strategy, bus, clock,
                        history=history)
