"""report.html of a backtest: one self-contained page drawn from the CSVs beside it.

No JavaScript, no library, no network: inline SVG drawn here, CSS in the page, hover text
in SVG <title> elements. Sections: the summary (summary.json); equity and drawdown
(equity.csv); per instrument, the close price with every fill marked on it (fills.csv,
one marker per fill: an up triangle buys, a down triangle sells); and when several
strategies ran, a per-strategy breakdown (equity_by_strategy.csv, fills_by_strategy.csv,
allocations.csv): PnL curves, capital shares, and a table per strategy.

The page is rendered from the files, so `python -m nautilus_hmm.backtest_report OUT_DIR
[--data FILE]` redraws it for any backtest output directory; the price line comes from the
replayed bars (handed over by the backtest, or `--data`); without them the fills are drawn on
their own prices. A file that is missing, truncated or damaged is a DataError naming the file,
the line and the value; nothing is written then.
Long series are thinned to at most MAX_POINTS per line (the min and max of each bucket are
kept, so peaks and drawdowns survive); fills are never thinned.
"""

from __future__ import annotations

import argparse
import csv
import html
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm.core.errors import DataError

REPORT_FILE = "report.html"
MAX_POINTS = 1500
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
BUY_COLOUR, SELL_COLOUR = "#2ca02c", "#d62728"
CHART_W, CHART_H = 960, 260
PAD_L, PAD_R, PAD_T, PAD_B = 70, 16, 24, 28

# (file, required columns): a file with other columns is not a backtest output of this version.
EQUITY_COLS = ("ts_ns", "equity")
FILL_COLS = ("ts_ns", "instrument_id", "side", "qty", "price", "fee")
STRAT_FILL_COLS = ("ts_ns", "strategy_id", "instrument_id", "kind", "qty", "price", "fee")
STRAT_EQUITY_COLS = ("ts_ns", "strategy_id", "equity_usd", "pnl_usd", "capital_usd")
ALLOC_COLS = ("ts_ns", "strategy_id", "share", "source")

Prices = Mapping[str, tuple[Sequence[int], Sequence[float]]]
HOUSE = "_house"  # control.accounts.HOUSE: the router's account of what no strategy owns
HOUSE_NOTE = ("The router's house account: what no strategy owns (a position found at start, a flatten's "
              "residue, a fill beyond every strategy's gap). ")


class ReportError(Exception):
    """The backtest's CSVs are written, its report.html is not; `result` is the run's summary."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------- reading


def _rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, the `columns` fields in that order) of each row of a CSV holding at least
    `columns`; DataError names what is wrong."""
    try:
        fh = path.open(newline="")
    except OSError as exc:
        raise DataError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(str(path), None, "empty file (no header): not a backtest output") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(str(path), 1, f"unreadable header: {exc}") from exc
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(str(path), 1, f"header {header!r} lacks column(s) {missing}")
        index = [header.index(c) for c in columns]
        width = len(header)
        try:
            for row in reader:
                if len(row) != width:
                    raise DataError(str(path), reader.line_num, f"{len(row)} fields, the header has {width} "
                                                                "(a truncated or damaged file)")
                yield reader.line_num, [row[i] for i in index]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(str(path), reader.line_num, f"unreadable row: {exc}") from exc


def _int(path: Path, line: int, col: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(str(path), line, f"{col} = {text!r}: not an integer") from None


MAX_TS_NS = 253_402_300_799 * 1_000_000_000  # 9999-12-31T23:59:59Z, the last time a date can show


def _ts(path: Path, line: int, col: str, text: str) -> int:
    value = _int(path, line, col, text)
    if not 0 <= value <= MAX_TS_NS:
        raise DataError(str(path), line, f"{col} = {text!r}: not a time in nanoseconds since 1970")
    return value


def _float(path: Path, line: int, col: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(str(path), line, f"{col} = {text!r}: not a number") from None
    if not math.isfinite(value):
        raise DataError(str(path), line, f"{col} = {text!r}: not a finite number")
    return value


@dataclass(slots=True)
class FillRow:
    """One fill as the report draws it."""

    ts_ns: int
    instrument_id: str
    side: str  # BUY | SELL
    qty: float
    price: float
    fee: float
    strategy_id: str = ""


@dataclass(slots=True)
class ReportData:
    """Everything the page shows, read from one backtest output directory."""

    out_dir: Path
    summary: dict[str, Any]
    equity: list[tuple[int, float]]
    fills: list[FillRow]
    strategy_equity: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # ts, pnl, capital
    strategy_fills: dict[str, list[FillRow]] = field(default_factory=dict)
    allocations: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def read_outputs(out_dir: str | Path) -> ReportData:
    """Read summary.json, equity.csv, fills.csv and (when present) the per-strategy CSVs."""
    out = Path(out_dir)
    if not out.is_dir():
        raise DataError(str(out), None, "not a directory (a backtest's --out directory is expected)")
    summary_path = out / "summary.json"
    try:
        summary = orjson.loads(summary_path.read_bytes())
    except FileNotFoundError:
        raise DataError(str(summary_path), None, "missing: not a backtest output directory") from None
    except orjson.JSONDecodeError as exc:
        raise DataError(str(summary_path), None, f"not JSON ({exc}): a truncated or damaged file") from None
    if not isinstance(summary, dict):
        raise DataError(str(summary_path), None, f"expected a JSON object, got {type(summary).__name__}")

    path = out / "equity.csv"
    equity = [(_ts(path, n, "ts_ns", ts), _float(path, n, "equity", e)) for n, (ts, e) in _rows(path, EQUITY_COLS)]
    if not equity:
        raise DataError(str(path), None, "no rows: the backtest replayed no bars, there is nothing to draw")
    for i in range(1, len(equity)):
        if equity[i][0] < equity[i - 1][0]:
            raise DataError(str(path), i + 2, f"ts_ns = {equity[i][0]} goes back in time "
                                              f"(the row before has {equity[i - 1][0]})")

    path = out / "fills.csv"
    fills = [_fill(path, n, *r) for n, r in _rows(path, FILL_COLS)]
    data = ReportData(out, summary, equity, fills)

    path = out / "fills_by_strategy.csv"
    if path.exists():
        for n, (ts, sid, inst, _kind, qty, price, fee) in _rows(path, STRAT_FILL_COLS):
            side = "BUY" if _float(path, n, "qty", qty) >= 0 else "SELL"
            f = _fill(path, n, ts, inst, side, qty.lstrip("-"), price, fee)
            f.strategy_id = sid
            data.strategy_fills.setdefault(sid, []).append(f)
    path = out / "equity_by_strategy.csv"
    if path.exists():
        for n, (ts, sid, _eq, pnl, cap) in _rows(path, STRAT_EQUITY_COLS):
            data.strategy_equity.setdefault(sid, []).append(
                (_ts(path, n, "ts_ns", ts), _float(path, n, "pnl_usd", pnl), _float(path, n, "capital_usd", cap)))
    path = out / "allocations.csv"
    if path.exists():
        for n, (ts, sid, share, _source) in _rows(path, ALLOC_COLS):
            data.allocations.setdefault(sid, []).append((_ts(path, n, "ts_ns", ts), _float(path, n, "share", share)))
    return data


def _fill(path: Path, line: int, ts: str, inst: str, side: str, qty: str, price: str, fee: str) -> FillRow:
    if side.upper() not in ("BUY", "SELL"):
        raise DataError(str(path), line, f"side = {side!r}: expected BUY or SELL")
    price_f = _float(path, line, "price", price)
    if price_f <= 0:
        raise DataError(str(path), line, f"price = {price!r}: must be > 0")
    return FillRow(ts_ns=_ts(path, line, "ts_ns", ts), instrument_id=inst, side=side.upper(),
                   qty=_float(path, line, "qty", qty), price=price_f, fee=_float(path, line, "fee", fee))


# ---------------------------------------------------------------- series helpers


def drawdown_pct(equity: Sequence[float]) -> list[float]:
    """Drawdown from the running peak, in percent (0 at a new high, positive below it)."""
    out, peak = [], -math.inf
    for e in equity:
        peak = max(peak, e)
        out.append((peak - e) / peak * 100 if peak > 0 else 0.0)
    return out


def thin(xs: Sequence[int], ys: Sequence[float], max_points: int = MAX_POINTS) -> tuple[list[int], list[float]]:
    """At most ~max_points points: per bucket its first, min, max and last (in time order)."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    buckets = max(max_points // 4, 1)
    size = n / buckets
    keep: list[int] = []
    for b in range(buckets):
        lo, hi = int(b * size), min(int((b + 1) * size), n)
        if lo >= hi:
            continue
        seg = range(lo, hi)
        i_min = min(seg, key=ys.__getitem__)
        i_max = max(seg, key=ys.__getitem__)
        keep.extend(sorted({lo, i_min, i_max, hi - 1}))
    return [xs[i] for i in keep], [ys[i] for i in keep]


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt_num(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.4g}"


def _fmt_ts(ts_ns: int, with_time: bool = True) -> str:
    dt = datetime.fromtimestamp(ts_ns / 1e9, UTC)
    return dt.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


# ---------------------------------------------------------------- SVG


@dataclass(slots=True)
class Line:
    """One polyline of a chart."""

    name: str
    colour: str
    xs: Sequence[int]
    ys: Sequence[float]
    fill_to_zero: bool = False


class Chart:
    """An SVG chart with a time x axis shared by its lines and markers."""

    def __init__(self, x0: int, x1: int, y0: float, y1: float, *, title: str, y_label: str,
                 invert: bool = False) -> None:
        if y1 <= y0:
            pad = abs(y0) * 0.01 or 1.0
            y0, y1 = y0 - pad, y1 + pad
        else:
            pad = (y1 - y0) * 0.05
            y0, y1 = y0 - pad, y1 + pad
        self.x0, self.x1 = x0, max(x1, x0 + 1)
        self.y0, self.y1 = y0, y1
        self.invert = invert  # drawdown: 0 at the top, deeper below
        self.title, self.y_label = title, y_label
        self.parts: list[str] = []

    def px(self, x: float) -> float:
        """x (ns) to pixels."""
        return PAD_L + (x - self.x0) / (self.x1 - self.x0) * (CHART_W - PAD_L - PAD_R)

    def py(self, y: float) -> float:
        """y to pixels."""
        frac = (y - self.y0) / (self.y1 - self.y0)
        if self.invert:
            frac = 1.0 - frac
        return PAD_T + (1.0 - frac) * (CHART_H - PAD_T - PAD_B)

    def line(self, ln: Line) -> None:
        """Draw a polyline (thinned), filled to y = 0 for an area."""
        xs, ys = thin(ln.xs, ln.ys)
        pts = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in zip(xs, ys, strict=True))
        name = html.escape(ln.name)
        if ln.fill_to_zero and xs:
            base = self.py(0.0)
            area = f"{self.px(xs[0]):.1f},{base:.1f} {pts} {self.px(xs[-1]):.1f},{base:.1f}"
            self.parts.append(f'<polygon class="area" points="{area}" fill="{ln.colour}" fill-opacity="0.25" '
                              f'stroke="none"><title>{name}</title></polygon>')
        self.parts.append(f'<polyline class="series" data-name="{name}" points="{pts}" fill="none" '
                          f'stroke="{ln.colour}" stroke-width="1.2"><title>{name}</title></polyline>')

    def marker(self, f: FillRow, cls: str = "trade") -> None:
        """One triangle for one fill: up (green) a buy, down (red) a sell; hover text says what it was."""
        x, y = self.px(f.ts_ns), self.py(f.price)
        if f.side == "BUY":
            shape, colour = f"M{x:.1f},{y - 1:.1f} l-4,8 h8 z", BUY_COLOUR
        else:
            shape, colour = f"M{x:.1f},{y + 1:.1f} l-4,-8 h8 z", SELL_COLOUR
        who = f" [{f.strategy_id}]" if f.strategy_id else ""
        text = html.escape(f"{_fmt_ts(f.ts_ns)} {f.side} {f.qty:g} {f.instrument_id} @ {f.price:g}{who}")
        self.parts.append(f'<path class="{cls} {f.side.lower()}" data-ts-ns="{f.ts_ns}" d="{shape}" '
                          f'fill="{colour}" stroke="#222" stroke-width="0.4"><title>{text}</title></path>')

    def svg(self, legend: Sequence[tuple[str, str]] = ()) -> str:
        """The chart with axes, grid, legend."""
        out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_W} {CHART_H}" '
               f'role="img" aria-label="{html.escape(self.title)}">',
               f'<rect x="{PAD_L}" y="{PAD_T}" width="{CHART_W - PAD_L - PAD_R}" '
               f'height="{CHART_H - PAD_T - PAD_B}" fill="#fff" stroke="#ccc"/>']
        for t in _nice_ticks(self.y0, self.y1):
            y = self.py(t)
            out.append(f'<line x1="{PAD_L}" x2="{CHART_W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                       f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt_num(t)}</text>')
        span_days = (self.x1 - self.x0) / 86_400e9
        for i in range(6):
            x_ns = self.x0 + (self.x1 - self.x0) * i / 5
            x = self.px(x_ns)
            anchor = "start" if i == 0 else "end" if i == 5 else "middle"
            out.append(f'<text x="{x:.1f}" y="{CHART_H - 8}" text-anchor="{anchor}" class="tick">'
                       f'{_fmt_ts(int(x_ns), with_time=span_days < 20)}</text>')
        out.append(f'<text x="14" y="{CHART_H / 2:.0f}" transform="rotate(-90 14 {CHART_H / 2:.0f})" '
                   f'text-anchor="middle" class="axis">{html.escape(self.y_label)}</text>')
        out.extend(self.parts)
        lx = PAD_L + 8
        for name, colour in legend:
            out.append(f'<rect x="{lx}" y="{PAD_T - 18}" width="10" height="10" fill="{colour}"/>'
                       f'<text x="{lx + 14}" y="{PAD_T - 9}" class="legend">{html.escape(name)}</text>')
            lx += 24 + 7 * len(name)
        out.append("</svg>")
        return "".join(out)


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    return (min(values), max(values)) if values else (0.0, 1.0)


# ---------------------------------------------------------------- page


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1000px;color:#222;
padding:0 12px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}h3{font-size:1em}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
svg.chart{width:100%;height:auto;display:block;margin:6px 0}
.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}.legend{font-size:12px;fill:#333}
.note{color:#666;font-size:.9em}
"""


def _summary_table(summary: Mapping[str, Any]) -> str:
    labels = (("bars", "bars replayed"), ("fills", "fills"), ("trades", "round trips (sells)"),
              ("initial_equity", "initial equity"), ("final_equity", "final equity"), ("return_pct", "return %"),
              ("max_drawdown_pct", "max drawdown %"), ("sharpe", "Sharpe (annualised)"), ("fees", "fees"),
              ("wall_s", "wall time, s"), ("bars_per_s", "bars / s"))
    rows = [f"<tr><th>{html.escape(label)}</th><td>{html.escape(_cell(summary[key]))}</td></tr>"
            for key, label in labels if key in summary]
    return '<table class="summary">' + "".join(rows) + "</table>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.2f}"
    return str(v)


def _equity_section(d: ReportData) -> str:
    ts = [t for t, _ in d.equity]
    eq = [e for _, e in d.equity]
    lo, hi = _bounds(eq)
    c = Chart(ts[0], ts[-1], lo, hi, title="equity", y_label="equity")
    c.line(Line("equity", PALETTE[0], ts, eq))
    dd = drawdown_pct(eq)
    dmax = max(dd)
    dc = Chart(ts[0], ts[-1], 0.0, max(dmax, 1e-9), title="drawdown", y_label="drawdown %", invert=True)
    dc.line(Line("drawdown %", SELL_COLOUR, ts, dd, fill_to_zero=True))
    return (f'<section id="equity"><h2>Equity</h2>{c.svg()}'
            f'<h2>Drawdown</h2><p class="note">From the running peak; deepest {dmax:.2f} %.</p>{dc.svg()}</section>')


def _price_sections(d: ReportData, prices: Prices | None) -> str:
    by_inst: dict[str, list[FillRow]] = {}
    for f in d.fills:
        by_inst.setdefault(f.instrument_id, []).append(f)
    instruments = list(dict.fromkeys([*(prices or {}), *by_inst]))
    x0, x1 = d.equity[0][0], d.equity[-1][0]
    out = []
    for inst in instruments:
        fills = by_inst.get(inst, [])
        series = (prices or {}).get(inst)
        if series is not None and len(series[0]):
            xs, ys = list(series[0]), list(series[1])
            note = "close price"
        else:  # no bars handed over: the fills' own prices make the line
            xs, ys = [f.ts_ns for f in fills], [f.price for f in fills]
            note = "fill prices (no bars given: pass --data for the close price)"
        vals = [*ys, *(f.price for f in fills)]
        lo, hi = _bounds(vals)
        c = Chart(min([x0, *xs[:1]]), max([x1, *xs[-1:]]), lo, hi, title=f"{inst} price and fills", y_label="price")
        c.line(Line(note, "#555", xs, ys))
        for f in fills:
            c.marker(f)
        buys = sum(1 for f in fills if f.side == "BUY")
        out.append(f'<section class="instrument" data-instrument="{html.escape(inst)}">'
                   f"<h2>{html.escape(inst)}: price and fills</h2>"
                   f'<p class="note">{len(fills)} fills ({buys} buys ▲, {len(fills) - buys} sells ▼) on the '
                   f"{html.escape(note)}; hover a marker for its time, side, quantity and price.</p>"
                   f"{c.svg([('buy', BUY_COLOUR), ('sell', SELL_COLOUR)])}</section>")
    if not instruments:
        out.append('<section class="instrument"><h2>Fills</h2><p class="note">No fills: the strategy did not '
                   "trade.</p></section>")
    return "".join(out)


def _strategy_sections(d: ReportData, prices: Prices | None = None) -> str:
    ids = list(dict.fromkeys([*d.strategy_equity, *d.strategy_fills, *d.allocations]))
    if len(ids) < 2:
        return ""
    colour = {sid: PALETTE[i % len(PALETTE)] for i, sid in enumerate(ids)}
    x0, x1 = d.equity[0][0], d.equity[-1][0]
    parts = ['<section id="strategies"><h2>Strategies</h2>']
    pnl_vals = [p for rows in d.strategy_equity.values() for _, p, _ in rows]
    if pnl_vals:
        lo, hi = _bounds([*pnl_vals, 0.0])
        c = Chart(x0, x1, lo, hi, title="PnL per strategy", y_label="PnL")
        for sid, rows in d.strategy_equity.items():
            c.line(Line(sid, colour[sid], [r[0] for r in rows], [r[1] for r in rows]))
        parts.append(f"<h3>PnL per strategy</h3>{c.svg([(s, colour[s]) for s in d.strategy_equity])}")
    if d.allocations:
        c = Chart(x0, x1, 0.0, 1.0, title="capital share per strategy", y_label="share")
        for sid, changes in d.allocations.items():
            xs: list[int] = []
            ys: list[float] = []
            for ts, share in changes:  # a step line: the share holds until the next change
                if ys:
                    xs.append(ts)
                    ys.append(ys[-1])
                xs.append(ts)
                ys.append(share)
            if xs:
                xs.append(x1)
                ys.append(ys[-1])
            c.line(Line(sid, colour[sid], xs, ys))
        parts.append(f"<h3>Capital share</h3>{c.svg([(s, colour[s]) for s in d.allocations])}")
    parts.append("<table class=\"strategies\"><tr><th>strategy</th><th>final PnL</th><th>max drawdown of PnL</th>"
                 "<th>fills</th><th>fees</th><th>final capital</th></tr>")
    for sid in ids:
        rows = d.strategy_equity.get(sid, [])
        fills = d.strategy_fills.get(sid, [])
        pnl = rows[-1][1] if rows else 0.0
        peak, mdd = -math.inf, 0.0
        for _, p, _ in rows:
            peak = max(peak, p)
            mdd = max(mdd, peak - p)
        cap = rows[-1][2] if rows else 0.0
        fees = sum(f.fee for f in fills)
        parts.append(f"<tr><td>{html.escape(sid)}</td><td>{pnl:,.2f}</td><td>{mdd:,.2f}</td><td>{len(fills)}</td>"
                     f"<td>{fees:,.4f}</td><td>{cap:,.2f}</td></tr>")
    parts.append("</table>")
    for sid in ids:
        fills = d.strategy_fills.get(sid, [])
        buys = sum(1 for f in fills if f.side == "BUY")
        parts.append(f'<section class="strategy" data-strategy="{html.escape(sid)}">'
                     f"<h3>{html.escape(sid)}</h3><p class=\"note\">{HOUSE_NOTE if sid == HOUSE else ''}"
                     f"{len(fills)} attributed fills or crosses "
                     f"({buys} buys, {len(fills) - buys} sells).</p>")
        rows = d.strategy_equity.get(sid, [])
        if rows:
            vals = [r[1] for r in rows]
            lo, hi = _bounds([*vals, 0.0])
            c = Chart(x0, x1, lo, hi, title=f"{sid} PnL", y_label="PnL")
            c.line(Line(f"{sid} PnL", colour[sid], [r[0] for r in rows], vals))
            parts.append(c.svg())
        by_inst: dict[str, list[FillRow]] = {}
        for f in fills:
            by_inst.setdefault(f.instrument_id, []).append(f)
        for inst, inst_fills in by_inst.items():
            series = (prices or {}).get(inst)
            if series is not None and len(series[0]):
                xs, ys = list(series[0]), list(series[1])
            else:
                xs, ys = [f.ts_ns for f in inst_fills], [f.price for f in inst_fills]
            lo, hi = _bounds([*ys, *(f.price for f in inst_fills)])
            c = Chart(min([x0, *xs[:1]]), max([x1, *xs[-1:]]), lo, hi, title=f"{sid} fills on {inst}",
                      y_label="price")
            c.line(Line(inst, "#999", xs, ys))
            for f in inst_fills:
                c.marker(f, "strategy-trade")
            parts.append(f"<p class=\"note\">{html.escape(sid)}'s fills and crosses on {html.escape(inst)}:</p>"
                         f"{c.svg([('buy', BUY_COLOUR), ('sell', SELL_COLOUR)])}")
        parts.append("</section>")
    parts.append("</section>")
    return "".join(parts)


def render(d: ReportData, prices: Prices | None = None, title: str | None = None) -> str:
    """The whole page."""
    title = title or f"Backtest report: {d.out_dir.name or d.out_dir}"
    first, last = d.equity[0][0], d.equity[-1][0]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="note">{_fmt_ts(first)} to {_fmt_ts(last)} UTC, {len(d.equity)} equity points; '
            "written by nautilus-hmm backtest from the CSVs beside this file.</p>"
            f'<section id="summary"><h2>Summary</h2>{_summary_table(d.summary)}</section>'
            f"{_equity_section(d)}{_price_sections(d, prices)}{_strategy_sections(d, prices)}"
            "</body></html>\n")


def write_report(out_dir: str | Path, prices: Prices | None = None, data: ReportData | None = None) -> Path:
    """Read the backtest outputs in `out_dir` (unless `data` holds them) and write report.html
    beside them (atomically: a failed write leaves no half page)."""
    d = read_outputs(out_dir) if data is None else data
    page = render(d, prices)
    path = Path(out_dir) / REPORT_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return path


def prices_of(series: Mapping[str, Any], venue: str) -> dict[str, tuple[list[int], list[float]]]:
    """{instrument id: (close ts_ns, close)} of bar arrays keyed by symbol (the backtest's replayed series)."""
    out = {}
    for symbol, bars in series.items():
        step = int(bars.interval_s) * 1_000_000_000
        out[f"{venue}:{symbol}"] = ((bars.ts_open_ns + step).tolist(), bars.close.tolist())
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m nautilus_hmm.backtest_report OUT_DIR [--data FILE --instrument venue:SYMBOL]`."""
    ap = argparse.ArgumentParser(prog="python -m nautilus_hmm.backtest_report",
                                 description="(re)draw report.html of a backtest output directory")
    ap.add_argument("out", help="a backtest's --out directory")
    ap.add_argument("--data", help="the klines file the backtest replayed (for the price line)")
    ap.add_argument("--instrument", default="sim:", help="instrument id of --data (default: sim:<the file's "
                                                          "one instrument in fills.csv>)")
    args = ap.parse_args(argv)
    try:
        data = read_outputs(args.out)
        prices = None
        if args.data:
            from nautilus_hmm.marketdata.replay import BarArrays, load_market_file

            bars = load_market_file(args.data)
            if not isinstance(bars, BarArrays):
                raise DataError(args.data, None, "a trades file: the report draws bars")
            inst = args.instrument
            if inst.endswith(":"):
                seen = {f.instrument_id for f in data.fills}
                inst = next(iter(seen)) if len(seen) == 1 else f"{inst}{Path(args.data).stem.split('_')[0]}"
            step = int(bars.interval_s) * 1_000_000_000
            prices = {inst: ((bars.ts_open_ns + step).tolist(), bars.close.tolist())}
        path = write_report(args.out, prices, data)
    except DataError as exc:
        print(f"report not written: {exc}", file=sys.stderr)
        return 65
    except OSError as exc:
        print(f"report not written: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
