"""A slippage model fitted from the daemon's own journaled fills, stored like a model artifact.

Slippage of one order, in basis points of its arrival mark, signed so that a cost is
positive: `side * (vwap - mark) / mark * 1e4` (side +1 buy, -1 sell). `vwap` is the
volume-weighted price of the order's journaled fills; the **arrival mark** is the mid (or
last price) known when the order's intent was journaled (`orders.created_ns`). The journal
does not record marks, so they come from a market-data file covering the same time
(`--marks`: a websocket capture gives the mid and the spread, a klines CSV the last close
and no spread).

Model (ordinary least squares over filled orders):

    slippage_bps = c0 + c1 * spread_bps + c2 * vol_bps + c3 * sqrt(notional / size_ref)

`spread_bps` is the quoted spread at arrival, `vol_bps` the realised volatility of the
marks over the `vol_window_s` before arrival (sqrt of the summed squared log returns, in
bps), `notional` the order's filled quantity x mark and `size_ref` the median training
notional. A feature that does not vary in the training set (no spread in a klines file)
(or varies by less than 1 % of its mean, as a one-tick spread does) gets coefficient 0 and is named
in `fit.dropped`. Predictions are clipped to the training
range of observed slippage widened by `CLIP_MARGIN_BPS`.

Artifact: one JSON file (`kind = "nautilus_hmm.slippage_model"`, `format_version` 1, docs/RESEARCH.md),
written atomically. Its load/validate/predict half lives in `venues.sim.slippage_model` (below
every layer that needs it: the sim venue, the router's sizing) and is re-exported here.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
import platform
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from nautilus_hmm.domain.enums import Side
from nautilus_hmm.journal import files as journal_files
from nautilus_hmm.journal.errors import JournalError
from nautilus_hmm.journal.rows import FILL_COLUMNS, ORDER_COLUMNS, FillRow, OrderRow, RowParser
from nautilus_hmm.research.ticks import QUOTE, TRADE, CaptureError, iter_capture
from nautilus_hmm.venues.sim.slippage_model import (  # the artifact: the sim venue and the router read it
    FEATURES,
    FORMAT_VERSION,
    KIND,
    SlippageModel,
    SlippageModelError,
    _design,
)
from nautilus_hmm.venues.sim.slippage_model import (
    _canonical as _canonical,
)
from nautilus_hmm.venues.sim.slippage_model import (
    load_model as load_model,
)

MODEL_FILE = "slippage_model.json"
SAMPLES_FILE = "slippage_samples.csv"
MIN_ORDERS = 8
CLIP_MARGIN_BPS = 5.0
DEFAULT_VOL_WINDOW_S = 300.0
MAX_MARK_AGE_S = 120.0  # a mark older than this at arrival is stale: the order is left out


class SlippageError(ValueError):
    """Fitting failed: the message names the input file and what is wrong with it."""


# ---------------------------------------------------------------- marks


@dataclass(frozen=True, slots=True)
class Marks:
    """Mark prices over time: `mid[i]` known from `ts_ns[i]`; `spread_bps[i]` NaN when unknown."""

    ts_ns: np.ndarray  # int64, non-decreasing
    mid: np.ndarray  # float64
    spread_bps: np.ndarray  # float64
    source: str
    _cum_r2: np.ndarray  # cumulative squared log returns, for vol over any window

    @classmethod
    def build(cls, ts_ns: Sequence[int] | np.ndarray, mid: Sequence[float] | np.ndarray,
              spread_bps: Sequence[float] | np.ndarray, source: str) -> Marks:
        """Marks from columns (sorted by time here)."""
        ts = np.asarray(ts_ns, dtype=np.int64)
        m = np.asarray(mid, dtype=np.float64)
        s = np.asarray(spread_bps, dtype=np.float64)
        order = np.argsort(ts, kind="stable")
        ts, m, s = ts[order], m[order], s[order]
        if len(ts) < 2:
            raise SlippageError(f"{source}: {len(ts)} marks; need at least 2")
        if not (np.isfinite(m).all() and (m > 0).all()):
            raise SlippageError(f"{source}: a mark price is not a positive finite number")
        r = np.diff(np.log(m))
        cum = np.concatenate([[0.0], np.cumsum(r * r)])
        return cls(ts, m, s, source, cum)

    def at(self, ts_ns: int) -> int:
        """Index of the last mark at or before `ts_ns`, -1 if none."""
        return bisect.bisect_right(self.ts_ns, ts_ns) - 1  # type: ignore[arg-type]

    def vol_bps(self, i: int, window_s: float) -> float:
        """Realised volatility (bps) of the marks in the `window_s` up to mark i."""
        start_ts = int(self.ts_ns[i]) - int(window_s * 1e9)
        j = max(0, int(np.searchsorted(self.ts_ns, start_ts, side="left")))
        return math.sqrt(max(0.0, float(self._cum_r2[i] - self._cum_r2[j]))) * 1e4


def load_marks(path: str | Path) -> Marks:
    """Marks from a websocket capture (`.gz`: bookTicker mids and spreads, trades before the
    first quote) or a klines CSV (each bar's close, known at the bar's close, no spread)."""
    p = str(path)
    if not os.path.exists(p):
        raise SlippageError(f"{p}: marks file does not exist")
    if p.endswith(".gz"):
        ts, mid, spr = [], [], []
        try:
            for ev in iter_capture(p):
                if ev[1] == QUOTE:
                    bid, ask = ev[2], ev[4]
                    if bid > 0 and ask >= bid:
                        m = (bid + ask) / 2
                        ts.append(ev[0])
                        mid.append(m)
                        spr.append((ask - bid) / m * 1e4)
                elif ev[1] == TRADE and not ts:
                    ts.append(ev[0])
                    mid.append(ev[2])
                    spr.append(math.nan)
        except CaptureError as exc:
            raise SlippageError(str(exc)) from exc
        return Marks.build(ts, mid, spr, p)
    from nautilus_hmm.marketdata.replay import load_bars

    try:
        bars = load_bars(p)
    except Exception as exc:  # DataError names file, line and value
        raise SlippageError(f"{p}: not a klines file: {exc}") from exc
    known = bars.ts_open_ns + int(bars.interval_s) * 1_000_000_000
    return Marks.build(known, bars.close, np.full(len(known), np.nan), p)


# ---------------------------------------------------------------- journal


def read_journal(path: str | Path) -> tuple[list[OrderRow], list[FillRow]]:
    """Orders and fills of a journal, read-only (never migrates, locks or writes the file; a
    running daemon may hold it). A missing, damaged or foreign file raises SlippageError."""
    p = str(path)
    if not os.path.exists(p):
        raise SlippageError(f"{p}: journal does not exist")
    try:
        journal_files.check_file(p)
        journal_files.check_database(p)
        has_wal = os.path.exists(f"{p}-wal")
        conn = journal_files.connect(p, "ro" if has_wal else "ro&immutable=1")
        try:
            parser = RowParser(p)
            orders = parser.orders(conn.execute(f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY rowid").fetchall())
            fills = parser.fills(conn.execute(f"SELECT {FILL_COLUMNS} FROM fills ORDER BY ts_ns, id").fetchall())
        finally:
            conn.close()
    except JournalError as exc:
        raise SlippageError(str(exc)) from exc
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        # A damaged page can make SQLite's own integrity messages undecodable text.
        raise SlippageError(f"journal {p}: damaged, cannot be read ({type(exc).__name__}: {exc})") from exc
    return orders, fills


# ---------------------------------------------------------------- samples and fit


@dataclass(frozen=True, slots=True)
class Sample:
    """One filled order against its arrival mark."""

    client_order_id: str
    instrument_id: str
    side: str
    arrival_ns: int
    mark: float
    vwap: float
    qty: float
    notional: float
    spread_bps: float  # NaN when the marks have none
    vol_bps: float
    slippage_bps: float


def samples(orders: Sequence[OrderRow], fills: Sequence[FillRow], marks: Marks,
            vol_window_s: float = DEFAULT_VOL_WINDOW_S) -> tuple[list[Sample], dict[str, int]]:
    """One sample per order with fills and a fresh mark at its arrival; plus counts of the
    orders left out and why (`no_fills`, `no_mark`, `stale_mark`, `no_intent`)."""
    by_order: dict[str, list[FillRow]] = {}
    for f in fills:
        by_order.setdefault(f.client_order_id, []).append(f)
    skipped = {"no_fills": 0, "no_mark": 0, "stale_mark": 0, "no_intent": 0}
    known = {o.client_order_id for o in orders}
    skipped["no_intent"] = sum(1 for cid in by_order if cid not in known)
    out: list[Sample] = []
    max_age_ns = int(MAX_MARK_AGE_S * 1e9)
    for o in orders:
        fs = by_order.get(o.client_order_id)
        if not fs:
            skipped["no_fills"] += 1
            continue
        i = marks.at(o.created_ns)
        if i < 0:
            skipped["no_mark"] += 1
            continue
        if o.created_ns - int(marks.ts_ns[i]) > max_age_ns:
            skipped["stale_mark"] += 1
            continue
        qty = sum(float(f.qty) for f in fs)
        if qty <= 0:
            skipped["no_fills"] += 1
            continue
        vwap = sum(float(f.qty) * float(f.price) for f in fs) / qty
        mark = float(marks.mid[i])
        sign = 1.0 if o.side is Side.BUY else -1.0
        out.append(Sample(
            o.client_order_id, str(o.instrument_id), o.side.value, o.created_ns, mark, vwap, qty, qty * mark,
            float(marks.spread_bps[i]), marks.vol_bps(i, vol_window_s), sign * (vwap - mark) / mark * 1e4,
        ))
    return out, skipped


def fit(rows: Sequence[Sample], *, vol_window_s: float = DEFAULT_VOL_WINDOW_S,
        training: dict[str, Any] | None = None, now: datetime | None = None) -> SlippageModel:
    """Least-squares fit over the samples; SlippageError with fewer than MIN_ORDERS."""
    if len(rows) < MIN_ORDERS:
        raise SlippageError(f"{len(rows)} filled orders with an arrival mark; need at least {MIN_ORDERS} to fit "
                            "(does the marks file cover the journal's time range?)")
    size_ref = statistics.median(r.notional for r in rows) or 1.0
    x = np.array([_design(r.spread_bps, r.vol_bps, r.notional, size_ref) for r in rows])
    y = np.array([r.slippage_bps for r in rows])
    # A feature that hardly varies (a one-tick spread all day: std < 1 % of its mean) is
    # collinear with the constant and would get a huge, meaningless coefficient.
    keep = [0] + [j for j in range(1, x.shape[1])
                  if float(x[:, j].std()) > max(1e-12, 0.01 * abs(float(x[:, j].mean())))]
    dropped = [FEATURES[j] for j in range(1, x.shape[1]) if j not in keep]
    coef_kept, *_ = np.linalg.lstsq(x[:, keep], y, rcond=None)
    coef = [0.0] * len(FEATURES)
    for j, c in zip(keep, coef_kept, strict=True):
        coef[j] = float(c)
    pred = x @ np.array(coef)
    resid = y - pred
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0
    doc = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "created_at": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "instruments": sorted({r.instrument_id for r in rows}),
        "features": list(FEATURES),
        "coef": coef,
        "size_ref_quote": float(size_ref),
        "vol_window_s": float(vol_window_s),
        "clip_bps": [float(y.min()) - CLIP_MARGIN_BPS, float(y.max()) + CLIP_MARGIN_BPS],
        "fit": {
            "n_orders": len(rows),
            "rmse_bps": float(math.sqrt((resid ** 2).mean())),
            "r2": r2,
            "mean_slippage_bps": float(y.mean()),
            "dropped": dropped,
        },
        "training": dict(training or {}),
        "library_versions": {"numpy": np.__version__, "python": platform.python_version()},
    }
    return SlippageModel.from_dict(doc, "<fit>")


# ---------------------------------------------------------------- slip-train


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_samples(rows: Sequence[Sample], model: SlippageModel, path: str | Path) -> Path:
    """The training samples with the model's prediction beside each (CSV; the report plots it)."""
    p = Path(path)
    cols = ("client_order_id", "instrument_id", "side", "arrival_ns", "mark", "vwap", "qty", "notional",
            "spread_bps", "vol_bps", "slippage_bps", "predicted_bps")
    lines = [",".join(cols)]
    for r in rows:
        pred = model.predict_bps(r.notional, r.spread_bps, r.vol_bps)
        lines.append(",".join(str(v) for v in (
            r.client_order_id, r.instrument_id, r.side, r.arrival_ns, repr(r.mark), repr(r.vwap), repr(r.qty),
            repr(r.notional), "" if math.isnan(r.spread_bps) else repr(r.spread_bps), repr(r.vol_bps),
            repr(r.slippage_bps), repr(pred))))
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, p)
    return p


def train(journal: str | Path, marks_path: str | Path, out_dir: str | Path,
          vol_window_s: float = DEFAULT_VOL_WINDOW_S) -> tuple[SlippageModel, Path, dict[str, int]]:
    """Fit from `journal` with marks from `marks_path`; write OUT/slippage_model.json and
    OUT/slippage_samples.csv. Returns the model, its path and the skipped-order counts."""
    orders, fills = read_journal(journal)
    marks = load_marks(marks_path)
    rows, skipped = samples(orders, fills, marks, vol_window_s)
    if len(rows) < MIN_ORDERS:
        raise SlippageError(
            f"journal {journal}: {len(rows)} filled orders have an arrival mark in {marks_path} "
            f"(orders {len(orders)}, fills {len(fills)}, left out: {skipped}); need at least {MIN_ORDERS}")
    training = {"journal": str(journal), "journal_sha256": _sha256_file(str(journal)),
                "marks": str(marks_path), "marks_sha256": _sha256_file(str(marks_path)),
                "n_fills": sum(1 for f in fills), "skipped": skipped}
    model = fit(rows, vol_window_s=vol_window_s, training=training)
    out = Path(out_dir)
    path = model.save(out / MODEL_FILE)
    write_samples(rows, model, out / SAMPLES_FILE)
    return model, path, skipped


def slip_train_main(argv: list[str] | None = None) -> int:
    """`research slip-train`: exit 0 on success, 2 with one line naming the bad input."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="nautilus-hmm research slip-train")
    add_slip_train_args(ap)
    args = ap.parse_args(argv)
    return run_slip_train(args, sys.stdout, sys.stderr)


def add_slip_train_args(p: Any) -> None:
    """The arguments of `research slip-train`."""
    p.add_argument("--journal", required=True, help="the daemon's journal (SQLite; read-only, may be live)")
    p.add_argument("--marks", required=True,
                   help="market data covering the journal's orders: a websocket capture (.gz) or a klines CSV")
    p.add_argument("--out", required=True, help=f"directory for {MODEL_FILE} and {SAMPLES_FILE}")
    p.add_argument("--vol-window-s", type=float, default=DEFAULT_VOL_WINDOW_S,
                   help="realised-volatility window before arrival, seconds (default %(default)s)")


def run_slip_train(args: Any, out: Any, err: Any) -> int:
    """Run slip-train from parsed arguments; errors become one line on `err` and exit code 2."""
    if not (args.vol_window_s > 0 and math.isfinite(args.vol_window_s)):
        print(f"error: --vol-window-s {args.vol_window_s}: must be a positive number of seconds", file=err)
        return 2
    try:
        model, path, skipped = train(args.journal, args.marks, args.out, args.vol_window_s)
    except (SlippageError, SlippageModelError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    fit_ = model.doc["fit"]
    print(f"slippage model {path} sha256 {model.sha256[:16]}: {fit_['n_orders']} orders, "
          f"mean {fit_['mean_slippage_bps']:.2f} bps, rmse {fit_['rmse_bps']:.2f} bps, r2 {fit_['r2']:.3f}; "
          f"coef {dict(zip(FEATURES, (round(c, 4) for c in model.coef), strict=True))}; left out {skipped}",
          file=out)
    return 0


def add_slip_train_command(research_sub: Any) -> None:
    """Add `slip-train` to the `research` subcommands."""
    import sys

    p = research_sub.add_parser(
        "slip-train", help="fit a slippage model from a journal's fills (arrival mark vs fill price)",
        description="Reads the journal read-only, takes each filled order's arrival mark from --marks, fits "
                    "slippage_bps ~ spread + volatility + sqrt(size) and writes a checksummed artifact "
                    "(see research/README.md).")
    add_slip_train_args(p)
    from nautilus_hmm.models_cli import run_command

    p.set_defaults(func=run_command(lambda a: run_slip_train(a, sys.stdout, sys.stderr)))
