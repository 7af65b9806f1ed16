"""Command line: `nautilus-hmm run | check-config | version | ctl ...`.

Exit codes: 0 clean stop, 78 invalid config (EX_CONFIG), 1 fatal error, 2 usage error,
141 (128 + SIGPIPE) when the reader of stdout went away (`nautilus-hmm ctl status | head`):
the rest of the output is dropped without a traceback, 130 (128 + SIGINT) on Ctrl-C.
`ctl` and `models` add 3 (daemon unreachable), 4 (token missing or refused) and 5
(conflict, 409): nautilus_hmm.admin_client.

No traceback reaches a user: an error no command expected is one line saying it is a bug;
NAUTILUS_HMM_TRACEBACK=1 lets the traceback through for a report.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm import __version__
from nautilus_hmm.admin_client import add_ctl_command

EXIT_CONFIG = 78
EXIT_DATAERR = 65  # EX_DATAERR: a bad data file
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader left
EXIT_INTERRUPTED = 130  # 128 + SIGINT
TRACEBACK_ENV = "NAUTILUS_HMM_TRACEBACK"


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"nautilus-hmm {__version__}")
    return 0


def load_config_or_report(path: str, what: str = "") -> Any:
    """The config at `path`, or None after printing every error to stderr (one line each).

    Whatever goes wrong while loading, the caller exits 78 with lines, never a traceback."""
    from nautilus_hmm.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        errors = exc.errors
    except Exception as exc:  # a loader bug: still one line, and the config is not used
        errors = [f"cannot load the config: {exc!r}"]
    print(f"{path}: {len(errors)} error(s){what}", file=sys.stderr)
    for e in errors:
        print(f"  {e}", file=sys.stderr)
    return None


def _cmd_check_config(args: argparse.Namespace) -> int:
    from nautilus_hmm.config import config_hash

    cfg = load_config_or_report(args.path)
    if cfg is None:
        return EXIT_CONFIG
    from nautilus_hmm.notify.channels import (
        check_config_urls,  # channel URLs come from the environment
    )

    url_errors, url_notes = check_config_urls(cfg.notify)
    if url_errors:
        print(f"{args.path}: {len(url_errors)} error(s)", file=sys.stderr)
    for line in url_errors or url_notes:
        print(f"  {line}", file=sys.stderr)
    if url_errors:
        return EXIT_CONFIG
    print(f"{args.path}: OK (hash {config_hash(cfg)})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from nautilus_hmm.obs import logging as obs_logging

    cfg = load_config_or_report(args.config, "; not starting")
    if cfg is None:
        return EXIT_CONFIG
    obs_logging.configure(cfg.log.level, args.log_format or cfg.log.format)
    import uvloop

    from nautilus_hmm.node import run_node

    return uvloop.run(run_node(cfg, args.config))


def _cmd_backtest(args: argparse.Namespace) -> int:
    from nautilus_hmm.models_cli import CliError, instrument_arg, output_dir_arg
    from nautilus_hmm.obs import logging as obs_logging

    try:  # the options are checked before the config is read and any bar is replayed
        if args.out:
            output_dir_arg(args.out, "--out")
        instrument_arg(args.instrument)
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return EXIT_CONFIG
    obs_logging.configure("warning", "console")
    try:
        return _run_backtest(args, cfg)
    except ValueError as exc:
        if not args.instrument:
            raise
        # The instrument is well formed but the sim venue cannot list it (wrong quote asset ...).
        print(f"--instrument {args.instrument!r}: {exc}", file=sys.stderr)
        return 2


# A trained model drives the one-strategy shorthand; a [[strategies]] backtest replays the other kinds.
_MULTI_HMM = ("{where}: a backtest of [[strategies]] runs sma_cross, breakout and mean_reversion; "
              "backtest an hmm model with [strategy] kind = \"hmm\" and --model DIR")


def _run_backtest(args: argparse.Namespace, cfg: Any) -> int:
    from nautilus_hmm.backtest import run_backtest
    from nautilus_hmm.backtest_report import ReportError
    from nautilus_hmm.core.errors import DataError
    from nautilus_hmm.obs.progress import progress_factory

    strategy = None
    hmm_ids = [(i, s.id) for i, s in enumerate(cfg.strategies) if s.kind == "hmm"]
    if cfg.strategies and not args.model and hmm_ids:
        print(_MULTI_HMM.format(where=f"strategies[{hmm_ids[0][0]}] (id {hmm_ids[0][1]!r}) is kind \"hmm\""),
              file=sys.stderr)
        return EXIT_CONFIG
    if args.model:
        if cfg.strategies:
            from nautilus_hmm.models_cli import CliError, load_model_arg

            try:  # a bad --model path is named first
                load_model_arg(args.model)
            except CliError as exc:
                print(str(exc), file=sys.stderr)
                return exc.code
            print(_MULTI_HMM.format(where="--model"), file=sys.stderr)
            return EXIT_CONFIG
        if cfg.strategy.kind != "hmm":
            print(f"--model needs strategy.kind = \"hmm\" (the config has {cfg.strategy.kind!r})", file=sys.stderr)
            return EXIT_CONFIG
        from nautilus_hmm.models_cli import CliError, load_model_arg

        try:
            model = load_model_arg(args.model)
        except CliError as exc:
            print(str(exc), file=sys.stderr)
            return exc.code
        strategy = _hmm_backtest_strategy(cfg, model, args.model, args.instrument)
    elif not cfg.strategies and cfg.strategy.kind == "hmm":
        print("strategy.kind = \"hmm\" needs --model DIR (a trained model: see `nautilus-hmm train`)",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        result = run_backtest(cfg, args.data, args.out, strategy=strategy, instrument=args.instrument,
                              progress=progress_factory(enabled=not args.quiet), report=not args.no_report)
    except ReportError as exc:  # every CSV is written; only the page is missing
        print(orjson.dumps(exc.result.as_dict(), option=orjson.OPT_INDENT_2).decode())
        print(str(exc), file=sys.stderr)
        return 1
    except DataError as exc:
        print(f"data error: {exc}", file=sys.stderr)
        return EXIT_DATAERR
    except OSError as exc:
        print(f"{exc.filename or args.data}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_DATAERR
    print(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode())
    if args.out:
        print(f"wrote {args.out}/fills.csv, equity.csv, summary.json, fills_by_strategy.csv, "
              "equity_by_strategy.csv, allocations.csv" + ("" if args.no_report else ", report.html"),
              file=sys.stderr)
    return 0


def _cmd_emulator(args: argparse.Namespace) -> int:
    import importlib

    from nautilus_hmm.venues.registry import venue_emulators

    emulators = venue_emulators()
    available = ", ".join(emulators)
    if args.venue is None:
        print(f"nautilus-hmm emulator: name the venue to emulate (available: {available}), "
              f"e.g. nautilus-hmm emulator {next(iter(emulators))} --help", file=sys.stderr)
        return 2
    if args.venue not in emulators:
        print(f"unknown emulator {args.venue!r} (available: {available})", file=sys.stderr)
        return 2
    emulator_main = importlib.import_module(emulators[args.venue]).main
    return int(emulator_main(args.rest) or 0)


def _hmm_backtest_strategy(cfg: Any, model: Any, model_path: str, instrument: str | None) -> Any:
    import dataclasses

    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.strategies.hmm import build_hmm_strategy

    iid = InstrumentId.parse(instrument or cfg.strategy.instruments[0])
    # The model's base bars are what the replayed file must hold.
    cfg = dataclasses.replace(cfg, strategy=dataclasses.replace(cfg.strategy, bar_interval_s=model.base_interval_s))
    strategy = build_hmm_strategy(cfg, (iid,))
    strategy.set_model(model, Path(model_path).name)
    return strategy


# ------------------------------------------------------------------ completion

COMPLETION_SHELLS = ("bash", "zsh", "tcsh")
# Options naming a file or directory, whatever command they belong to: completed as paths.
PATH_OPTIONS = {"--config": "file", "--data": "file", "--model": "file", "--token-file": "file", "--journal": "file",
                "--grid": "file",
                "--out": "file", "--registry": "dir"}


def _cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    parser = build_parser()
    _mark_paths(parser, shtab)
    print(shtab.complete(parser, shell=args.shell))
    return 0


def _mark_paths(parser: argparse.ArgumentParser, shtab: Any) -> None:
    """Every option in PATH_OPTIONS completes as a path, in every subcommand."""
    for action in parser._actions:
        for opt in action.option_strings:
            if opt in PATH_OPTIONS and not hasattr(action, "complete"):
                action.complete = shtab.DIRECTORY if PATH_OPTIONS[opt] == "dir" else shtab.FILE  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _mark_paths(sub, shtab)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="nautilus-hmm", description="Regime-switching trading daemon")
    p.add_argument("--version", action="version", version=f"nautilus-hmm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    run.add_argument("--log-format", choices=("json", "console"), help="override [log] format")
    run.set_defaults(func=_cmd_run)

    chk = sub.add_parser("check-config", help="validate a config file (exit 78 if invalid)")
    chk.add_argument("path", nargs="?", default="config.toml")
    chk.set_defaults(func=_cmd_check_config)

    bt = sub.add_parser("backtest", help="replay a data file through the engine as fast as possible")
    bt.add_argument("--config", default="config.toml", help="config file (strategy, risk, sim fees and balances)")
    bt.add_argument("--data", required=True, help="klines CSV (Binance dump or timestamp,open,high,low,close,volume)")
    bt.add_argument("--out", help="directory for fills.csv, equity.csv, summary.json, report.html")
    bt.add_argument("--instrument", help="sim instrument the data is for (default: the first strategy instrument)")
    bt.add_argument("--model", help="model directory or model.json for strategy.kind = hmm")
    bt.add_argument("--no-report", action="store_true", help="skip report.html (the CSVs and summary.json only)")
    bt.add_argument("-q", "--quiet", action="store_true",
                    help="no progress (a bar on a terminal, a line every 10 %% or 5 s otherwise, on stderr)")
    bt.set_defaults(func=_cmd_backtest)

    from nautilus_hmm.venues.registry import venue_emulators

    emu = sub.add_parser("emulator", help="run a venue emulator on loopback (see docs/BINANCE.md)")
    emu.add_argument("venue", nargs="?", help=" | ".join(venue_emulators()))
    # Everything after the venue, --help included, goes to the emulator's own parser.
    emu.add_argument("rest", nargs=argparse.REMAINDER, help="emulator options (VENUE --help for the list)")
    emu.set_defaults(func=_cmd_emulator)

    from nautilus_hmm.control.cli import add_command as add_control_command
    from nautilus_hmm.evaluate import add_command as add_evaluate_command
    from nautilus_hmm.models_cli import add_commands as add_model_commands

    add_model_commands(sub)
    add_evaluate_command(sub)
    add_control_command(sub)

    from nautilus_hmm.research.data_cli import add_command as add_data_command

    add_data_command(sub)  # data download (issue 13): research/README.md

    # research sweep (+ slip-train, report): a group each research module adds its subcommand to.
    from nautilus_hmm.research.sweep import add_sweep_command

    research = sub.add_parser(
        "research", help="offline research: sweep (Dask), slip-train, sim-exec, report (see research/README.md)")
    research_sub = research.add_subparsers(dest="research_command", required=True, metavar="SUBCOMMAND")
    add_sweep_command(research_sub)
    from nautilus_hmm.research.report import add_report_command, add_sim_exec_command
    from nautilus_hmm.research.slippage import add_slip_train_command

    add_slip_train_command(research_sub)  # slippage model from a journal's fills (issue 13 item 3)
    add_sim_exec_command(research_sub)  # tick replay of a websocket capture (issue 13 item 3)
    add_report_command(research_sub)  # research_report.html of a run directory (issue 13 item 4)

    ver = sub.add_parser("version", help="print the version")
    ver.set_defaults(func=_cmd_version)

    add_ctl_command(sub)

    comp = sub.add_parser("completion", help="print a shell completion script (bash, zsh, tcsh)",
                          description="Print the completion script of nautilus-hmm for a shell, e.g.\n"
                                      "  nautilus-hmm completion bash | sudo tee /etc/bash_completion.d/nautilus-hmm\n"
                                      "  nautilus-hmm completion zsh > \"${fpath[1]}/_nautilus-hmm\"",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    comp.add_argument("shell", choices=COMPLETION_SHELLS)
    comp.set_defaults(func=_cmd_completion)
    return p


def build_ctl_parser() -> argparse.ArgumentParser:
    """The parser of `nautilus-hmm ctl ...` alone: the same `ctl` command as in build_parser,
    without importing what the other commands need (numpy, the model and control packages),
    so a ctl call in a shell loop starts in a fraction of the time."""
    p = argparse.ArgumentParser(prog="nautilus-hmm", description="Regime-switching trading daemon")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_ctl_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nautilus-hmm` console script."""
    argv = sys.argv[1:] if argv is None else argv
    args = (build_ctl_parser() if argv[:1] == ["ctl"] else build_parser()).parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`| head`): drop the rest of the output, no traceback, and
        # point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"nautilus-hmm {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        # Every expected failure has its own message; this one is a bug: one line, and
        # the traceback only on request (a report needs it, an operator does not).
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"nautilus-hmm {args.command}: internal error: {type(exc).__name__}: {exc} "
              f"(a bug; {TRACEBACK_ENV}=1 shows the traceback for a report)", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
