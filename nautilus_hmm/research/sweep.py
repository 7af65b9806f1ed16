"""`nautilus-hmm research sweep`: walk-forward sweeps of `[hmm.*]` settings on Dask.

A grid file (TOML) lists choices for `[hmm.*]` keys; every combination x every data file
(a symbol's month) x every walk-forward fold is one **trial**. A trial is one fold of
`nautilus_hmm.evaluate.walk_forward` (the same `fold_bounds` and `run_fold`: train on the
bars before the test part, out-of-sample log-likelihood per bar of the macro and micro
HMMs against the 1-state Gaussian fitted on the same training rows, the policy traded
through the trading core's replay with the sim venue's fees, buy-and-hold beside it).

Grid file::

    [sweep]                     # optional: how each data file is cut (defaults shown)
    folds = 3
    train_fraction = 0.5

    [hmm.train]
    macro_states = [2, 3, 4]    # a list: the choices of this key
    micro_states = [2, 3]
    n_restarts = 1              # a scalar: fixed for every trial
    [hmm.features]
    return_horizons = [[1, 5], [1, 5, 15]]   # a list-valued key: a list of lists is its choices
    [hmm.policy]
    min_edge = [0.02, 0.05]

Every combination is parsed with the daemon's config loader over `--config` (fees,
risk, the other `[hmm]` keys) before any trial starts: an unknown key, a key outside
`[hmm.*]`/`[sweep]` or a bad value fails the whole sweep naming the key and the value.

Dask runs the trials: by default an embedded `LocalCluster` (worker processes, one thread
and one torch thread each, as many as the machine has cores), or a running cluster with
`--scheduler tcp://HOST:8786` (its workers need this package installed and the data files
at the same paths). Trials are seeded (`[hmm.train] seed`, which the grid may sweep too),
so a trial gives the same row whatever worker runs it. Rows are appended to
`OUT/results.csv` as trials finish (flushed each); a rerun skips the trials already in it
(`--retry-failed` reruns the failed ones), so a killed sweep resumes. A trial that raises
is a row with status `error` and the message; the others go on. A worker that dies mid-trial
(killed, out of memory) is Dask's to handle: the scheduler reruns the trial on another
worker (up to `distributed.scheduler.allowed-failures` times, then it is an error row);
the row is written once, by this process, when the result arrives.

At the end `OUT/verdict.json` and `OUT/verdict.md` (nautilus_hmm.research.selection): K per
level by held-out likelihood with BIC beside it, and the best setting chosen on the
earlier folds and reported on the last ones.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import glob
import hashlib
import itertools
import math
import os
import re
import sys
import time
import tomllib
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm.obs.progress import ProgressFactory, no_progress

RESULTS_FILE = "results.csv"
SWEEP_KEYS = {"folds": int, "train_fraction": float}
DEFAULT_FOLDS = 3
DEFAULT_TRAIN_FRACTION = 0.5
STATUS_OK = "ok"
STATUS_ERROR = "error"
# Columns of every row; the grid's keys (one column each, "hmm.train.macro_states") go after `fold`.
HEAD_COLUMNS = ("trial_id", "status", "error", "data", "symbol", "instrument", "fold")
RESULT_COLUMNS = (
    "seed", "train_bars", "test_bars", "test_first_ns", "test_last_ns",
    "macro_loglik_per_bar", "macro_baseline_per_bar", "macro_bars_scored",
    "micro_loglik_per_bar", "micro_baseline_per_bar", "micro_bars_scored",
    "macro_bic", "macro_n_params", "micro_bic", "micro_n_params",
    "policy_pnl_frac", "buy_hold_pnl_frac", "fills", "fees", "duration_s", "worker",
)
# Columns that differ between two runs of the same trial (not part of its result).
VOLATILE_COLUMNS = ("duration_s", "worker")


class SweepError(Exception):
    """A grid, data or results file the sweep cannot use; the message names it."""


class SchedulerUnreachable(SweepError):
    """--scheduler names no Dask scheduler that answers."""


SCHEDULER_TIMEOUT_S = 10.0


# ---------------------------------------------------------------- grid


@dataclass(frozen=True, slots=True)
class Grid:
    """The parsed grid file: swept keys (dotted, in file order) with their choices, fixed keys, fold cut."""

    path: str
    axes: dict[str, list[Any]]
    fixed: dict[str, Any]
    folds: int = DEFAULT_FOLDS
    train_fraction: float = DEFAULT_TRAIN_FRACTION

    @property
    def n_settings(self) -> int:
        """Combinations of the swept keys."""
        return math.prod(len(v) for v in self.axes.values())

    def settings(self) -> Iterator[dict[str, Any]]:
        """Every combination, as {dotted key: value}, in file order (the last key varies fastest)."""
        keys = list(self.axes)
        for combo in itertools.product(*(self.axes[k] for k in keys)):
            yield dict(zip(keys, combo, strict=True))


def _sequence_keys() -> set[str]:
    """Dotted `hmm.*` keys whose value is itself a list (return_horizons ...)."""
    from nautilus_hmm.hmm.config import HmmConfig

    out: set[str] = set()

    def walk(cls: type[Any], prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}.{f.name}")
            elif typing.get_origin(tp) in (tuple, list):
                out.add(f"{prefix}.{f.name}")

    walk(HmmConfig, "hmm")
    return out


def _fmt(value: Any) -> str:
    from nautilus_hmm.config.loader import fmt_value

    return fmt_value(value)


def parse_grid(data: dict[str, Any], path: str = "<grid>") -> Grid:
    """A Grid from a grid file's TOML table; SweepError names the key of the first problem.

    Only the shape is checked here (tables, choice lists); `plan_sweep` parses every
    combination with the config loader, which names unknown keys and bad values."""
    seq = _sequence_keys()
    axes: dict[str, list[Any]] = {}
    fixed: dict[str, Any] = {}
    sweep = data.get("sweep", {})
    for top in data:
        if top not in ("hmm", "sweep"):
            raise SweepError(f"{path}: {top}: unknown key (a grid sweeps [hmm.*] settings; "
                             "other sections come from --config; [sweep] sets folds and train_fraction)")
    if not isinstance(sweep, dict):
        raise SweepError(f"{path}: sweep = {_fmt(sweep)}: expected a table")
    for k, v in sweep.items():
        if k not in SWEEP_KEYS:
            raise SweepError(f"{path}: sweep.{k}: unknown key (known: {', '.join(SWEEP_KEYS)})")
        if isinstance(v, bool) or not isinstance(v, int | float) or (SWEEP_KEYS[k] is int and not isinstance(v, int)):
            raise SweepError(f"{path}: sweep.{k} = {_fmt(v)}: expected {'an integer' if SWEEP_KEYS[k] is int else 'a number'}")
    folds = int(sweep.get("folds", DEFAULT_FOLDS))
    train_fraction = float(sweep.get("train_fraction", DEFAULT_TRAIN_FRACTION))
    if folds < 1:
        raise SweepError(f"{path}: sweep.folds = {folds}: must be >= 1")
    if not 0.0 < train_fraction < 1.0:
        raise SweepError(f"{path}: sweep.train_fraction = {train_fraction}: must be in (0, 1)")

    def walk(table: Any, prefix: str) -> None:
        if not isinstance(table, dict):
            raise SweepError(f"{path}: {prefix} = {_fmt(table)}: expected a table")
        for k, v in table.items():
            key = f"{prefix}.{k}"
            if isinstance(v, dict):
                walk(v, key)
                continue
            is_choices = isinstance(v, list) and (key not in seq or (bool(v) and all(isinstance(c, list) for c in v)))
            if not is_choices:
                fixed[key] = v
                continue
            if not v:
                raise SweepError(f"{path}: {key} = []: an empty list of choices")
            if len({orjson.dumps(c) for c in v}) != len(v):
                raise SweepError(f"{path}: {key} = {_fmt(v)}: a choice is listed twice")
            axes[key] = list(v)

    walk(data.get("hmm", {}), "hmm")
    return Grid(path=path, axes=axes, fixed=fixed, folds=folds, train_fraction=train_fraction)


def load_grid(path: str | Path) -> Grid:
    """Read and shape-check a grid file; SweepError names the file and the key or line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SweepError(f"cannot read grid file {p}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SweepError(f"grid file {p} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"grid file {p} is not valid TOML: {exc}") from exc
    return parse_grid(data, str(p))


def _set_dotted(table: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        table = table.setdefault(p, {})
        if not isinstance(table, dict):
            raise SweepError(f"{key}: the config has a value where a table is needed")
    table[parts[-1]] = value


# ---------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Trial:
    """One fold of one setting on one data file: everything a worker needs (picklable, plain)."""

    trial_id: str
    settings: dict[str, Any]
    config: dict[str, Any]  # the raw config table (base config + fixed + this setting)
    data: str
    symbol: str
    instrument: str
    fold: int
    folds: int
    train_fraction: float
    seed: int


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """The grid expanded: every trial, in order (settings, then data files, then folds)."""

    grid: Grid
    data_files: list[str]
    trials: list[Trial]

    @property
    def columns(self) -> tuple[str, ...]:
        """The results file's header."""
        return (*HEAD_COLUMNS, *self.grid.axes, *RESULT_COLUMNS)


_SYMBOL = re.compile(r"^([A-Za-z0-9]+?)(?:[-_.]|$)")


def symbol_of(path: str) -> str:
    """The symbol a klines file is for, from its name: `BTCUSDT_1m_2025-03.csv`, `BTCUSDT-1m-2025-03.csv` → BTCUSDT."""
    m = _SYMBOL.match(Path(path).name)
    if not m:
        raise SweepError(f"{path}: cannot tell the symbol from the file name (expected SYMBOL_... or SYMBOL-...)")
    return m.group(1).upper()


def expand_data(patterns: Sequence[str]) -> list[str]:
    """The files matching the glob patterns (sorted, each once); SweepError when a pattern matches none."""
    out: list[str] = []
    for pat in patterns:
        hits = sorted(p for p in glob.glob(os.path.expanduser(pat), recursive=True) if os.path.isfile(p))
        if not hits:
            raise SweepError(f"--data {pat}: no file matches")
        out.extend(str(Path(h).resolve()) for h in hits)
    return list(dict.fromkeys(out))


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise SweepError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return h.hexdigest()


def trial_id(config: dict[str, Any], data_digest: str, fold: int, folds: int, train_fraction: float) -> str:
    """A stable id of a trial: the same config, data content and fold give the same id (resume key)."""
    doc = orjson.dumps({"config": config, "data": data_digest, "fold": fold, "folds": folds,
                        "train_fraction": train_fraction}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(doc).hexdigest()[:16]


def plan_sweep(grid: Grid, data_files: Sequence[str], base_config: dict[str, Any] | None = None,
               instrument_prefix: str = "sim") -> SweepPlan:
    """Every trial of `grid` x `data_files` x folds; each combination parsed with the config loader first.

    SweepError names the first bad combination's key and value (before any trial runs)."""
    import copy

    from nautilus_hmm.config import Config, ConfigError
    from nautilus_hmm.config.loader import parse

    base = copy.deepcopy(base_config or {})
    for key, value in grid.fixed.items():
        _set_dotted(base, key, value)
    configs: list[tuple[dict[str, Any], dict[str, Any], int]] = []
    for setting in grid.settings():
        raw = copy.deepcopy(base)
        for key, value in setting.items():
            _set_dotted(raw, key, value)
        try:
            cfg = parse(Config, raw, grid.path)
        except ConfigError as exc:
            where = ", ".join(f"{k} = {_fmt(v)}" for k, v in setting.items()) or "the fixed keys"
            raise SweepError(f"{grid.path}: {exc.errors[0]} (in the combination {where})"
                             + (f"; and {len(exc.errors) - 1} more error(s)" if len(exc.errors) > 1 else "")) from exc
        problems = cfg.hmm.train.validate()
        if problems:
            f, v, msg = problems[0]
            raise SweepError(f"{grid.path}: hmm.train.{f} = {_fmt(v)}: {msg}")
        configs.append((setting, raw, int(cfg.hmm.train.seed)))
    trials = []
    digests = {d: _file_digest(d) for d in data_files}
    for setting, raw, seed in configs:
        for d in data_files:
            sym = symbol_of(d)
            for fold in range(grid.folds):
                tid = trial_id(raw, digests[d], fold, grid.folds, grid.train_fraction)
                trials.append(Trial(trial_id=tid, settings=setting, config=raw, data=d, symbol=sym,
                                    instrument=f"{instrument_prefix}:{sym}", fold=fold, folds=grid.folds,
                                    train_fraction=grid.train_fraction, seed=seed))
    return SweepPlan(grid=grid, data_files=list(data_files), trials=trials)


# ---------------------------------------------------------------- one trial (runs in a worker)


@functools.lru_cache(maxsize=4)
def _load_market(path: str, mtime_ns: int, size: int) -> Any:
    from nautilus_hmm.marketdata.replay import load_bars

    return load_bars(path)


def _configure_worker() -> None:
    """Quiet logs (a sweep's worker would print every risk denial of every backtest) and one torch thread."""
    from nautilus_hmm.obs import logging as obs_logging

    obs_logging.configure("error", "console")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # training will say so in the trial's error
        pass


def worker_name() -> str:
    """The Dask worker's address this runs on ("" outside a worker)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return ""


def trial_head(trial: Trial) -> dict[str, Any]:
    """The columns of a trial's row that do not depend on running it."""
    return {"trial_id": trial.trial_id, "data": Path(trial.data).name, "symbol": trial.symbol,
            "instrument": trial.instrument, "fold": trial.fold, **trial.settings, "seed": trial.seed}


def run_trial(trial: Trial) -> dict[str, Any]:
    """Run one trial; a row for the results file. Never raises for a trial's own failure: status `error`."""
    t0 = time.perf_counter()
    head = {**trial_head(trial), "worker": worker_name()}
    try:
        if head["worker"]:  # in this process (tests, a debugger) the caller's logging stays
            _configure_worker()
        row = _trial_figures(trial)
    except Exception as exc:  # a trial's failure is its row; the sweep goes on
        return {**head, "status": STATUS_ERROR, "error": f"{type(exc).__name__}: {exc}",
                "duration_s": round(time.perf_counter() - t0, 3)}
    return {**head, "status": STATUS_OK, "error": "", **row, "duration_s": round(time.perf_counter() - t0, 3)}


def _trial_figures(trial: Trial) -> dict[str, Any]:
    import numpy as np

    from nautilus_hmm.config import Config
    from nautilus_hmm.config.loader import parse
    from nautilus_hmm.evaluate import fold_bounds, run_fold
    from nautilus_hmm.hmm.data import to_base_interval
    from nautilus_hmm.hmm.train import min_training_bars

    cfg = parse(Config, trial.config)
    # One torch thread per worker process, whatever the config says (the worker has one core).
    cfg = dataclasses.replace(cfg, hmm=dataclasses.replace(
        cfg.hmm, train=dataclasses.replace(cfg.hmm.train, torch_threads=1)))
    st = os.stat(trial.data)
    market = _load_market(trial.data, st.st_mtime_ns, st.st_size)
    hcfg = cfg.hmm
    base_s = hcfg.train.base_interval_s
    interval_s = int(market.interval_s)
    bars = to_base_interval(market, interval_s, base_s, market.path or trial.data)
    if interval_s != base_s:  # as walk_forward: market bars aligned with whole base bars
        market = market.slice(int(np.searchsorted(market.ts_open_ns, int(bars.ts_open_ns[0]))))
    need = min_training_bars(hcfg.train, hcfg.features.spec())
    bounds = fold_bounds(len(bars), trial.folds, trial.train_fraction, hcfg.train.window_bars, need)
    f = run_fold(cfg, bars, market, bounds[trial.fold], trial.fold, trial.instrument)
    model = f.model
    micro_unique = {id(h): h for h in model.micro.hmms}.values() if model is not None else ()
    return {
        "train_bars": f.train_bars, "test_bars": f.test_bars, "test_first_ns": f.test_first_ns,
        "test_last_ns": f.test_last_ns,
        "macro_loglik_per_bar": f.macro_loglik_per_bar, "macro_baseline_per_bar": f.macro_baseline_per_bar,
        "macro_bars_scored": f.macro_bars_scored,
        "micro_loglik_per_bar": f.micro_loglik_per_bar, "micro_baseline_per_bar": f.micro_baseline_per_bar,
        "micro_bars_scored": f.micro_bars_scored,
        "macro_bic": model.macro.hmm.fit.bic if model else math.nan,
        "macro_n_params": model.macro.hmm.fit.n_params if model else 0,
        "micro_bic": sum(h.fit.bic for h in micro_unique),
        "micro_n_params": sum(h.fit.n_params for h in micro_unique),
        "policy_pnl_frac": f.policy_pnl_frac, "buy_hold_pnl_frac": f.buy_hold_pnl_frac,
        "fills": int(f.backtest.get("fills", 0)), "fees": float(f.backtest.get("fees", 0.0)),
    }


# ---------------------------------------------------------------- results file


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # round-trips exactly: rows of two runs compare equal as text
    if isinstance(v, list | tuple | dict):
        return orjson.dumps(v).decode()
    return str(v)


def read_results(path: Path, columns: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
    """Rows of a results file by trial id (the last row of an id wins); {} when there is none.

    A row cut short by a kill (no newline at the end) is dropped; SweepError when the header
    is not `columns` (another grid wrote this file)."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"cannot read results file {path}: {exc}") from exc
    if not text:
        return {}
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.reader(complete.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        return {}
    if columns is not None and tuple(header) != tuple(columns):
        raise SweepError(f"results file {path}: its columns are not this grid's "
                         f"({','.join(header[:12])}...): another sweep wrote it; use another --out")
    out: dict[str, dict[str, str]] = {}
    for line_no, cells in enumerate(reader, start=2):
        if len(cells) != len(header):
            raise SweepError(f"results file {path}, line {line_no}: {len(cells)} cells, the header has {len(header)}")
        row = dict(zip(header, cells, strict=True))
        out[row["trial_id"]] = row
    return out


class ResultsWriter:
    """Appends rows to the results file, one flushed line per finished trial."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            text = path.read_bytes()
            if not text.endswith(b"\n"):  # a line cut by a kill: drop it, the trial reruns
                path.write_bytes(text[: text.rfind(b"\n") + 1])
        self._fh = path.open("a", newline="", encoding="utf-8")
        self._w = csv.writer(self._fh)
        if new:
            self._w.writerow(self.columns)
            self._fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        """Write one row (missing columns empty) and flush it."""
        self._w.writerow([_cell(row.get(c)) for c in self.columns])
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


# ---------------------------------------------------------------- running


@dataclass(slots=True)
class SweepSummary:
    """What a run did."""

    trials: int
    skipped: int
    ran: int
    failed: int
    workers: int
    wall_s: float
    results: str
    verdict: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the verdict apart)."""
        return {f: getattr(self, f) for f in ("trials", "skipped", "ran", "failed", "workers", "wall_s", "results")}


def default_workers() -> int:
    """Worker processes of the embedded cluster: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _client(scheduler: str | None, n_workers: int | None) -> tuple[Any, Any, int]:
    """A Dask client on `scheduler`, or on a new LocalCluster on loopback (processes, 1 thread each)."""
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
        except (OSError, ValueError) as exc:  # refused, timed out; ValueError: not an address
            raise SchedulerUnreachable(f"--scheduler {scheduler}: cannot connect: {exc}") from exc
        return client, None, len(client.scheduler_info().get("workers", {}))
    n = n_workers or default_workers()
    cluster = local_cluster(n)
    return Client(cluster), cluster, n


def local_cluster(n_workers: int) -> Any:
    """A Dask LocalCluster on loopback (free ports, the status page too): worker processes of one thread."""
    import logging

    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        scheduler_port=0, dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)


def run_sweep(plan: SweepPlan, out: str | Path, *, scheduler: str | None = None, n_workers: int | None = None,
              client: Any = None, retry_failed: bool = False, progress: ProgressFactory = no_progress,
              trial_fn: Callable[[Trial], dict[str, Any]] = run_trial,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> SweepSummary:
    """Run the plan's trials not yet in OUT/results.csv on Dask; rows are appended as they finish.

    `client`: a distributed.Client to use (left open); else one on `scheduler`, else on a new
    LocalCluster of `n_workers` (closed at the end). `trial_fn` is what the workers run
    (run_trial; it must return a row and not raise for a trial's own failure). Returns the
    summary; the verdict is written by `finish_sweep`."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    done = read_results(path, plan.columns)
    todo = [t for t in plan.trials
            if t.trial_id not in done or (retry_failed and done[t.trial_id]["status"] != STATUS_OK)]
    # The selection folds first: a sweep cut short still ranks every setting (selection.py).
    todo.sort(key=lambda t: t.fold == t.folds - 1 and t.folds > 1)
    t0 = time.perf_counter()
    writer = ResultsWriter(path, plan.columns)
    failed = 0
    workers = 0
    try:
        if todo:
            from distributed import as_completed

            own = client is None
            if own:
                client, cluster, workers = _client(scheduler, n_workers)
            else:
                cluster, workers = None, len(client.scheduler_info().get("workers", {}))
            try:
                by_key: dict[str, Trial] = {}
                futures = []
                for t in todo:
                    fut = client.submit(trial_fn, t, key=f"trial-{t.trial_id}", pure=False)
                    by_key[fut.key] = t
                    futures.append(fut)
                with progress(len(todo), "sweep", "trials") as shown:
                    for fut in as_completed(futures):
                        t = by_key[fut.key]
                        try:
                            row = fut.result()
                        except Exception as exc:  # KilledWorker after the allowed retries, a lost scheduler
                            row = {**trial_head(t), "status": STATUS_ERROR, "error": f"{type(exc).__name__}: {exc}"}
                        if row.get("status") != STATUS_OK:
                            failed += 1
                        writer.write(row)
                        if on_row is not None:
                            on_row(row)
                        fut.release()
                        shown.update()
            finally:
                if own:
                    client.close()
                    if cluster is not None:
                        cluster.close()
    finally:
        writer.close()
    return SweepSummary(trials=len(plan.trials), skipped=len(plan.trials) - len(todo), ran=len(todo),
                        failed=failed, workers=workers, wall_s=round(time.perf_counter() - t0, 3),
                        results=str(path))


def finish_sweep(plan: SweepPlan, out: str | Path) -> dict[str, Any]:
    """The verdict of every row of the plan in OUT/results.csv: OUT/verdict.json and verdict.md."""
    from nautilus_hmm.research.selection import verdict, verdict_markdown

    out_dir = Path(out)
    rows = read_results(out_dir / RESULTS_FILE, plan.columns)
    ids = {t.trial_id for t in plan.trials}
    doc = verdict([r for tid, r in rows.items() if tid in ids], list(plan.grid.axes), folds=plan.grid.folds)
    (out_dir / "verdict.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    (out_dir / "verdict.md").write_text(verdict_markdown(doc))
    return doc


# ---------------------------------------------------------------- command


def _base_config(path: str | None) -> dict[str, Any]:
    from nautilus_hmm.config import ConfigError
    from nautilus_hmm.config.loader import read_toml

    if not path:
        return {}
    try:
        return read_toml(path)
    except ConfigError as exc:
        raise SweepError("; ".join(exc.errors)) from exc


def sweep_main(args: argparse.Namespace) -> int:
    """`research sweep`: plan (every combination checked), run, verdict. Exit 0 / 1 (a trial failed) / 78 / 65."""
    from nautilus_hmm.models_cli import EXIT_CONFIG, EXIT_DATAERR, EXIT_OK, EXIT_OTHER, CliError
    from nautilus_hmm.obs.progress import progress_factory

    try:
        grid = load_grid(args.grid)
        base = _base_config(args.config)
    except SweepError as exc:
        raise CliError(EXIT_CONFIG, str(exc)) from exc
    try:
        data = expand_data(args.data)
    except SweepError as exc:
        raise CliError(EXIT_DATAERR, str(exc)) from exc
    try:
        plan = plan_sweep(grid, data, base)
    except SweepError as exc:
        raise CliError(EXIT_CONFIG, str(exc)) from exc
    if args.workers is not None and args.workers < 1:
        raise CliError(2, f"--workers {args.workers}: must be >= 1")
    print(f"sweep: {grid.n_settings} setting(s) x {len(data)} data file(s) x {grid.folds} fold(s) = "
          f"{len(plan.trials)} trials -> {Path(args.out) / RESULTS_FILE}", file=sys.stderr)
    try:
        summary = run_sweep(plan, args.out, scheduler=args.scheduler, n_workers=args.workers,
                            retry_failed=args.retry_failed, progress=progress_factory(enabled=not args.quiet))
        doc = finish_sweep(plan, args.out)
    except SchedulerUnreachable as exc:
        raise CliError(EXIT_OTHER, str(exc)) from exc
    except SweepError as exc:
        raise CliError(EXIT_DATAERR, str(exc)) from exc
    print(orjson.dumps({"summary": summary.to_dict(), "best": doc.get("best"), "k": doc.get("k")},
                       option=orjson.OPT_INDENT_2).decode())
    print(f"wrote {Path(args.out) / RESULTS_FILE}, verdict.json, verdict.md", file=sys.stderr)
    return EXIT_OTHER if summary.failed else EXIT_OK


def add_sweep_command(research_sub: Any) -> None:
    """Add `sweep` to the `research` subcommands."""
    from nautilus_hmm.models_cli import QUIET_HELP, run_command

    p = research_sub.add_parser(
        "sweep", help="walk-forward sweep of [hmm.*] settings x symbols x folds on Dask",
        description="Every combination of the grid's [hmm.*] choices x every --data file x every fold, "
                    "on an embedded Dask LocalCluster or --scheduler; rows stream to OUT/results.csv "
                    "(rerun to resume), then OUT/verdict.json and verdict.md (see research/README.md).")
    p.add_argument("--grid", required=True, help="grid file (TOML: [sweep] folds/train_fraction, [hmm.*] choices)")
    p.add_argument("--data", required=True, nargs="+", metavar="GLOB",
                   help="klines files (globs; one symbol per file, the symbol from the file name)")
    p.add_argument("--out", required=True, help="directory for results.csv, verdict.json, verdict.md")
    p.add_argument("--config", help="base config ([venues.sim] fees, [risk], the [hmm] keys the grid leaves)")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="a running Dask scheduler (default: an embedded LocalCluster on loopback)")
    p.add_argument("--workers", type=int, help="worker processes of the embedded cluster (default: the cores)")
    p.add_argument("--retry-failed", action="store_true", help="rerun the trials whose row says error")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=run_command(sweep_main))
