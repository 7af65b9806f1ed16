"""`nautilus-hmm control ...`: offline tools of the control plane.

`control bandit-train --journal FILE [--out PATH]` fits the bandit's prior from realized
per-strategy PnL: FILE is a journal (sqlite, table `strategy_equity`: ts_ns, strategy_id,
equity_usd, realized_usd, unrealized_usd, fees_usd, capital_usd; PnL = realized +
unrealized - fees) opened read-only, or a backtest output directory (or its
`equity_by_strategy.csv`: ts_ns, strategy_id, equity_usd, pnl_usd, capital_usd). Rewards
are per-step PnL changes in bps of the strategy's capital, as the live bandit sees them;
the prior is fitted by empirical Bayes (control.bandit.fit_prior). The state file written
is what the daemon loads at start from `<state_dir>/<[control.bandit] state_file>`; its
prior wins over the configured one. Write it while the daemon is stopped (a running
daemon overwrites it at its next rebalance).

Bad input (missing file, not a journal, no table, no rows, a bad row) is one line on
stderr naming the file and the problem, exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import csv
import math
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from nautilus_hmm.control.bandit import (
    BanditConfig,
    EquityPoint,
    GaussianThompson,
    fit_prior,
    save_state,
    step_rewards_bps,
)

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_OUTPUT = 1
EQUITY_CSV = "equity_by_strategy.csv"
CSV_COLUMNS = ("ts_ns", "strategy_id", "equity_usd", "pnl_usd", "capital_usd")
JOURNAL_COLUMNS = ("ts_ns", "strategy_id", "equity_usd", "realized_usd", "unrealized_usd", "fees_usd", "capital_usd")
SQLITE_MAGIC = b"SQLite format 3\x00"


class InputError(Exception):
    """Bad input for a control command: the message names the file and the problem."""


def add_command(subparsers: Any) -> None:
    """Add `control` (with `bandit-train`) to the top-level subparsers."""
    ctl = subparsers.add_parser("control", help="offline tools of the control plane (bandit prior)")
    acts = ctl.add_subparsers(dest="control_action", required=True, metavar="{bandit-train}")
    bt = acts.add_parser("bandit-train", help="fit the bandit's prior from a journal or a backtest output")
    bt.add_argument("--journal", required=True,
                    help=f"journal sqlite file (table strategy_equity) or backtest output directory / {EQUITY_CSV}")
    bt.add_argument("--out", default="state/bandit.json", help="bandit state file to write (default: state/bandit.json)")
    bt.add_argument("--discount", type=float, default=BanditConfig().discount,
                    help="discount of the evidence kept with --with-evidence (default: %(default)s)")
    bt.add_argument("--with-evidence", action="store_true",
                    help="also keep each strategy's history as (discounted) evidence, not only the prior")
    bt.set_defaults(func=bandit_train_command)


def bandit_train_command(args: argparse.Namespace) -> int:
    """Run `control bandit-train`; returns the exit code."""
    if not (0 < args.discount <= 1):
        print(f"--discount = {args.discount}: must be in (0, 1]", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        curves = read_equity(Path(args.journal))
        rewards = {s: step_rewards_bps(points) for s, points in sorted(curves.items())}
        try:
            fitted = fit_prior(rewards, BanditConfig())
        except ValueError as exc:
            raise InputError(f"{args.journal}: {exc}") from None
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    bandit = GaussianThompson(fitted.prior_mean, fitted.prior_var, fitted.obs_var, args.discount)
    if args.with_evidence:
        for s, rs in rewards.items():
            for r in rs:
                bandit.update(s, r)
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_state(out, bandit)
    except OSError as exc:
        print(f"{out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_OUTPUT
    print(f"bandit prior from {args.journal}: prior_mean={fitted.prior_mean:.6g} bps "
          f"prior_var={fitted.prior_var:.6g} bps^2 obs_var={fitted.obs_var:.6g} bps^2 "
          f"({len(curves)} strategies, {sum(len(r) for r in rewards.values())} steps)")
    print(f"{'strategy':<24} {'steps':>7} {'mean_bps':>10} {'sd_bps':>10} {'post_mean':>10} {'post_sd':>9}")
    for s, row in sorted(fitted.per_strategy.items()):
        # The posterior each strategy's history alone would give under the fitted prior.
        alone = GaussianThompson(fitted.prior_mean, fitted.prior_var, fitted.obs_var, 1.0)
        for r in rewards.get(s, []):
            alone.update(s, r)
        pm, pv = alone.posterior(s)
        print(f"{s:<24} {int(row['steps']):>7} {row['mean_bps']:>10.4f} {row['sd_bps']:>10.4f} "
              f"{pm:>10.4f} {math.sqrt(pv):>9.4f}")
    print(f"wrote {out}" + (" (prior and evidence)" if args.with_evidence else " (prior only)"))
    return EXIT_OK


def read_equity(path: Path) -> dict[str, list[EquityPoint]]:
    """Per-strategy equity samples from a journal, a backtest output dir or its CSV; InputError."""
    if path.is_dir():
        csv_path = path / EQUITY_CSV
        if not csv_path.is_file():
            raise InputError(f"{path}: no {EQUITY_CSV} in this directory (a backtest of several strategies writes it)")
        return read_equity_csv(csv_path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    if head == SQLITE_MAGIC:
        return read_equity_journal(path)
    if path.suffix.lower() == ".csv":
        return read_equity_csv(path)
    raise InputError(f"{path}: neither a journal (sqlite) nor a {EQUITY_CSV}")


def _number(where: str, name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {name} = {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise InputError(f"{where}: {name} = {value!r} is not a finite number")
    return x


def _ts(where: str, value: Any) -> int:
    try:
        ts = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: ts_ns = {value!r} is not an integer timestamp") from None
    if isinstance(value, float | bool) or ts < 0:
        raise InputError(f"{where}: ts_ns = {value!r} is not an integer timestamp")
    return ts


def _strategy(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: strategy_id = {value!r} is not a strategy id")
    return value


def read_equity_journal(path: Path) -> dict[str, list[EquityPoint]]:
    """`strategy_equity` of a journal, opened read-only; PnL = realized + unrealized - fees."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"{path}: cannot open the journal: {exc}") from None
    try:
        try:
            has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'strategy_equity'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: not a readable journal: {exc}") from None
        if has is None:
            raise InputError(f"{path}: no table strategy_equity (a journal of schema v4 or later has it)")
        cols = {row[1] for row in conn.execute("PRAGMA table_info(strategy_equity)")}
        missing = [c for c in JOURNAL_COLUMNS if c not in cols]
        if missing:
            raise InputError(f"{path}: table strategy_equity lacks column(s) {', '.join(missing)}")
        curves: dict[str, list[EquityPoint]] = defaultdict(list)
        query = ("SELECT rowid, ts_ns, strategy_id, realized_usd, unrealized_usd, fees_usd, capital_usd "
                 "FROM strategy_equity ORDER BY strategy_id, ts_ns")
        try:
            for rowid, ts, sid, realized, unrealized, fees, capital in conn.execute(query):
                where = f"{path}: strategy_equity rowid {rowid}"
                pnl = (_number(where, "realized_usd", realized) + _number(where, "unrealized_usd", unrealized)
                       - _number(where, "fees_usd", fees))
                curves[_strategy(where, sid)].append(
                    EquityPoint(_ts(where, ts), pnl, _number(where, "capital_usd", capital)))
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: reading strategy_equity failed: {exc}") from None
    finally:
        conn.close()
    if not curves:
        raise InputError(f"{path}: table strategy_equity has no rows")
    return dict(curves)


def read_equity_csv(path: Path) -> dict[str, list[EquityPoint]]:
    """A backtest's `equity_by_strategy.csv` (ts_ns, strategy_id, equity_usd, pnl_usd, capital_usd)."""
    curves: dict[str, list[EquityPoint]] = defaultdict(list)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file (expected the header {','.join(CSV_COLUMNS)})")
            header = [h.strip() for h in header]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise InputError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
            idx = {c: header.index(c) for c in CSV_COLUMNS}
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                where = f"{path}:{line}"
                if len(row) < len(header):
                    raise InputError(f"{where}: {len(row)} fields, the header has {len(header)}")
                curves[_strategy(where, row[idx["strategy_id"]].strip())].append(EquityPoint(
                    _ts(where, row[idx["ts_ns"]].strip()),
                    _number(where, "pnl_usd", row[idx["pnl_usd"]].strip()),
                    _number(where, "capital_usd", row[idx["capital_usd"]].strip())))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    if not curves:
        raise InputError(f"{path}: no rows after the header")
    return dict(curves)
