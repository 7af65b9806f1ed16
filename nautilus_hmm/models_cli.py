"""Regime-model commands: `train`, `infer` (offline) and `models ...` (admin API).

Command-line code, so it lives beside `cli.py`, above the model package it drives: it reads
the config file and calls the daemon's admin API, which `hmm/` never imports.
Wired into `nautilus_hmm.cli` with `add_commands(subparsers)`. Exit codes: 0 ok, 65 data
error (bad or too short data, bad model file), 78 config error, 1 anything else; the
`models` admin commands exit as `ctl` does (admin_client: 1 an error answer, 3 daemon
unreachable, 4 token missing or refused, 5 conflict). A failing command writes
nothing it has not finished: outputs are written after the work succeeded.

`train` imports pomegranate/torch in this process (never the daemon's) and shows its progress
(Baum-Welch restarts) on stderr: a bar on a terminal, lines otherwise, none with --quiet
(nautilus_hmm.obs.progress). `evaluate`, which
composes the model with the backtest, is `nautilus_hmm.evaluate` (it reuses the helpers
here: CliError, load_config_arg, load_market_arg, run_command).
"""

from __future__ import annotations

import argparse
import csv
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm.obs.progress import ProgressFactory

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_DATAERR = 65
EXIT_CONFIG = 78
QUIET_HELP = "no progress (a bar on a terminal, a line every 10 %% or 5 s otherwise, on stderr)"


class CliError(Exception):
    """A command failed with an exit code and a message for stderr."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


def load_config_arg(path: str | None) -> Any:
    """The config file's settings, or the built-in defaults without --config."""
    from nautilus_hmm.config import Config, ConfigError, load_config
    from nautilus_hmm.config.loader import parse

    if not path:
        return parse(Config, {})
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CliError(EXIT_CONFIG, f"{path}: {len(exc.errors)} error(s):\n  " + "\n  ".join(exc.errors)) from exc
    except OSError as exc:
        raise CliError(EXIT_CONFIG, f"cannot read {path}: {exc.strerror or exc}") from exc


def load_market_arg(path: str) -> Any:
    """Bars of a klines file (marketdata.replay.load_bars); DataError/OSError → exit 65."""
    from nautilus_hmm.core.errors import DataError
    from nautilus_hmm.marketdata.replay import load_bars

    try:
        return load_bars(path)
    except DataError as exc:
        raise CliError(EXIT_DATAERR, f"data error: {exc}") from exc
    except OSError as exc:
        raise CliError(EXIT_DATAERR, f"cannot read {path}: {exc.strerror or exc}") from exc


def base_bars_arg(market: Any, base_interval_s: int) -> Any:
    """The market bars resampled to the model's base interval; BarDataError → exit 65."""
    from nautilus_hmm.hmm.data import to_base_interval
    from nautilus_hmm.marketdata.replay import BarDataError

    try:
        return to_base_interval(market, int(market.interval_s), base_interval_s, market.path)
    except BarDataError as exc:
        raise CliError(EXIT_DATAERR, f"data error: {exc}") from exc


def load_model_arg(path: str, option: str = "--model") -> Any:
    """A model from a model directory (model.json inside) or a model file; ModelError → exit 65."""
    from nautilus_hmm.hmm.errors import ModelError
    from nautilus_hmm.hmm.model import load_model

    p = Path(path)
    if p.name == "meta.json" and p.is_file():
        # The registry's description beside the model, a common slip for the model itself.
        raise CliError(EXIT_DATAERR, f"{option} {path}: meta.json describes a model; pass its directory "
                                     f"({option} {p.parent}) or {p.parent / 'model.json'}")
    file = p / "model.json" if p.is_dir() else p
    try:
        return load_model(file)
    except ModelError as exc:
        raise CliError(EXIT_DATAERR, f"model error: {exc}") from exc


def output_dir_arg(path: str, option: str) -> Path:
    """An output directory option, checked before any work: it may exist only as a directory."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(EXIT_USAGE, f"{option} {path}: exists and is not a directory")
    return p


def output_file_arg(path: str, option: str) -> Path:
    """An output file option, checked before any work: it may not be a directory."""
    p = Path(path)
    if p.is_dir():
        raise CliError(EXIT_USAGE, f"{option} {path}: is a directory (name the file to write)")
    return p


def instrument_arg(text: str | None, option: str = "--instrument") -> str | None:
    """An instrument option as `venue:SYMBOL` (None stays None)."""
    from nautilus_hmm.domain.instruments import InstrumentId

    if text is None:
        return None
    try:
        InstrumentId.parse(text)
    except ValueError:
        raise CliError(EXIT_USAGE, f"{option} {text!r}: expected venue:SYMBOL, e.g. sim:BTCUSDT") from None
    return text


def _configure_logging() -> None:
    from nautilus_hmm.obs import logging as obs_logging

    obs_logging.configure("warning", "console")


# ------------------------------------------------------------------ train


def train(data: str, out: str, config: str | None = None, registry: str | None = None,
          instrument: str | None = None, progress: ProgressFactory | None = None,
          session_gaps: bool = False) -> dict[str, Any]:
    """Train on a klines file with [hmm] settings; write <out>/model.json and meta.json.

    With `registry`, the model is also added to that registry directory (untagged).
    `progress` shows the restarts (none without it). `session_gaps`: the bars are of an
    instrument with trading sessions (IBKR); a stretch of >= 15 min without a bar starts a
    session, whose first bar is glued to the previous close as the live tracker does
    (docs/HMM.md "Session gaps"). Returns a summary. Raises CliError.
    """
    from nautilus_hmm.hmm.errors import TrainingError
    from nautilus_hmm.hmm.registry import ModelMeta, ModelRegistry, atomic_write
    from nautilus_hmm.hmm.train import train_model, training_restarts
    from nautilus_hmm.marketdata.replay import BarDataError
    from nautilus_hmm.obs.progress import no_progress

    out_dir = output_dir_arg(out, "--out")
    if registry:
        output_dir_arg(registry, "--registry")
    instrument = instrument_arg(instrument)
    cfg = load_config_arg(config)
    market = load_market_arg(data)
    bars = base_bars_arg(market, cfg.hmm.train.base_interval_s)
    try:
        with (progress or no_progress)(training_restarts(cfg.hmm.train), "train", "restarts") as shown:
            def restarted(done: int, total: int, what: str) -> None:
                shown.set_description(f"train {what}")
                shown.set(done)

            starts = None
            if session_gaps:
                from nautilus_hmm.domain.sessions import TradingSessions
                from nautilus_hmm.hmm.features import session_starts_for

                # no calendar: every break comes from the quiet-stretch rule
                starts = session_starts_for(TradingSessions(), bars.ts_open_ns, cfg.hmm.train.base_interval_s)
            model = train_model(bars, cfg.hmm.features.spec(), cfg.hmm.train, instrument=instrument,
                                on_progress=restarted, session_starts=starts)
    except (TrainingError, BarDataError) as exc:
        raise CliError(EXIT_DATAERR, f"{data}: {exc}") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "model.json")
    t = model.training
    model_id = f"m-{model.created_at.replace('-', '').replace(':', '')}-{model.content_sha256[:8]}"
    meta = ModelMeta(id=model_id, created_at=model.created_at, model_sha256=model.content_sha256,
                     data_sha256=t.data_sha256, first_ts_ns=t.first_ts_ns, last_ts_ns=t.last_ts_ns,
                     n_bars=t.n_bars, instrument=instrument, source=f"cli train {data}")
    atomic_write(out_dir / "meta.json", orjson.dumps(meta.to_dict(), option=orjson.OPT_INDENT_2))
    summary: dict[str, Any] = {"model": str(out_dir / "model.json"), "bars": len(bars),
                               "duration_s": t.duration_s, "macro": _level_summary(model.macro.hmm)}
    summary["micro"] = [_level_summary(h) for h in model.micro.hmms]
    if session_gaps and starts is not None:
        summary["session_starts"] = int(starts.sum())
    if registry:
        summary["registry_id"] = ModelRegistry(registry).add(model, source=f"cli train {data}")
    return summary


def _level_summary(h: Any) -> dict[str, Any]:
    return {"loglik_per_bar": round(h.fit.log_likelihood / max(h.fit.n_obs, 1), 4), "source": h.fit.source,
            "states": {s.label: {"occupancy": round(s.occupancy, 3), "mean_return": s.mean_return,
                                 "volatility": s.volatility, "dwell_bars": round(s.dwell_bars, 1)}
                       for s in h.states}}


# ------------------------------------------------------------------ infer


def infer(model_path: str, data: str, out: str) -> int:
    """Write the per-bar inference CSV; returns the number of rows."""
    from nautilus_hmm.hmm.inference import infer_table

    out_path = output_file_arg(out, "--out")
    model = load_model_arg(model_path)
    market = load_market_arg(data)
    bars = base_bars_arg(market, model.base_interval_s)
    header, rows = infer_table(model, bars)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    tmp.replace(out_path)
    return len(rows)


# ------------------------------------------------------------------ models (admin API)


def models_command(args: argparse.Namespace) -> int:
    """`models list|promote ID|rollback [ID]|retrain|canary ID` over the admin HTTP API."""
    from nautilus_hmm.admin_client import request as _request

    action = args.models_action
    if action == "list":
        return int(_request(args, "GET", "/models"))
    if action == "regimes":
        return int(_request(args, "GET", "/regimes"))
    model_id = urllib.parse.quote(str(getattr(args, "id", "")), safe="")  # one path segment, whatever was typed
    if action == "promote":
        return int(_request(args, "POST", f"/admin/models/{model_id}/promote"))
    if action == "rollback":
        return int(_request(args, "POST", f"/admin/models/{model_id}/rollback"))
    if action == "canary":
        return int(_request(args, "POST", f"/admin/models/{model_id}/canary"))
    body: dict[str, Any] = {"mode": args.mode}
    if args.reason:
        body["reason"] = args.reason
    return int(_request(args, "POST", "/admin/retrain", body))


# ------------------------------------------------------------------ argparse


def run_command(fn: Any) -> Any:
    """Wrap a command: CliError → its exit code and message on stderr; an OSError no check
    caught (an output that cannot be written) → one line naming the path, exit 1."""

    def handler(args: argparse.Namespace) -> int:
        _configure_logging()
        try:
            return int(fn(args))
        except CliError as exc:
            print(str(exc), file=sys.stderr)
            return exc.code
        except OSError as exc:
            where = exc.filename if exc.filename is not None else "output"
            print(f"{where}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_OTHER

    return handler


def _cmd_train(args: argparse.Namespace) -> int:
    from nautilus_hmm.obs.progress import progress_factory

    summary = train(args.data, args.out, args.config, args.registry, args.instrument,
                    progress=progress_factory(enabled=not args.quiet), session_gaps=args.session_gaps)
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK


def _cmd_infer(args: argparse.Namespace) -> int:
    n = infer(args.model, args.data, args.out)
    print(f"wrote {n} rows to {args.out}", file=sys.stderr)
    return EXIT_OK


def add_commands(subparsers: Any) -> None:
    """Add `train`, `infer` and `models` to the top-level subparsers."""
    tr = subparsers.add_parser("train", help="train a regime model on a klines file (offline)")
    tr.add_argument("--data", required=True, help="klines CSV (Binance dump or timestamp,open,high,low,close,volume)")
    tr.add_argument("--out", required=True, help="directory for model.json and meta.json")
    tr.add_argument("--config", help="config file whose [hmm] settings to use (default: built-in defaults)")
    tr.add_argument("--registry", help="also add the model to this registry directory (e.g. state/models)")
    tr.add_argument("--instrument", help="instrument the model is for, recorded in it (e.g. binance_spot:BTCUSDT)")
    tr.add_argument("--session-gaps", action="store_true",
                    help="the data has trading sessions (IBKR stocks, futures, FX): a gap of 15 min or more "
                         "starts a session and its overnight move is kept out of the features")
    tr.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    tr.set_defaults(func=run_command(_cmd_train))

    inf = subparsers.add_parser("infer", help="per-bar features and filtered posteriors of a model, as CSV")
    inf.add_argument("--model", required=True, help="model directory (with model.json) or model file")
    inf.add_argument("--data", required=True, help="klines CSV")
    inf.add_argument("--out", required=True, help="output CSV (columns in docs/HMM.md)")
    inf.set_defaults(func=run_command(_cmd_infer))

    from nautilus_hmm.admin_client import add_client_options

    mo = subparsers.add_parser("models", help="list, promote, roll back or retrain models of a running daemon")
    add_client_options(mo)
    names = ("list", "regimes", "promote", "rollback", "canary", "retrain")
    acts = mo.add_subparsers(dest="models_action", required=True, metavar="{" + ",".join(names) + "}")
    ls = acts.add_parser("list", help="GET /models")
    rg = acts.add_parser("regimes", help="GET /regimes")
    pr = acts.add_parser("promote", help="POST /admin/models/ID/promote")
    pr.add_argument("id")
    rb = acts.add_parser("rollback", help="POST /admin/models/ID/rollback (ID = the current production)")
    rb.add_argument("id", nargs="?", default="production")
    ca = acts.add_parser("canary", help="POST /admin/models/ID/canary (ID = none clears it)")
    ca.add_argument("id")
    rt = acts.add_parser("retrain", help="POST /admin/retrain")
    rt.add_argument("--reason")
    rt.add_argument("--mode", choices=("full", "update"), default="full")
    for a in (ls, rg, pr, rb, ca, rt):  # options also after the action: `models list --url ...`
        add_client_options(a, repeat=True)
    mo.set_defaults(func=models_command)
