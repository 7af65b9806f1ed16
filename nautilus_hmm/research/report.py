"""One HTML report per research run, plus its machine-readable summary.

`research report RUN_DIR` looks at what the directory holds and draws every section it can:

* a backtest or sim_exec run (summary.json, equity.csv, fills.csv): the summary, equity and
  drawdown, fills on the price (the backtest report's own sections, `backtest_report`);
* fills vs the slippage model: sim_exec's fills_detail.csv (taker fills: slippage against
  the arrival mid by notional) and/or slip-train's slippage_samples.csv (journaled orders),
  with the model's curve when a slippage_model.json is there or given (`--slippage-model`);
* regimes on price (`--model MODEL.json --data KLINES`): the close with the macro regime in
  force as coloured bands, from the model's own forward filter (no look-ahead);
* a sweep (results.csv of `research sweep`): parameter heat maps (mean out-of-sample
  likelihood lift per bar over the 1-state baseline, and mean policy PnL, over symbols and
  folds) and the out-of-sample lift by fold for every setting.

Writes RUN_DIR/research_report.html and RUN_DIR/research_summary.json (atomically). Inline SVG,
no JavaScript, no network. A damaged input is a ReportInputError naming the file and line;
nothing is written then.
"""

from __future__ import annotations

import csv
import html
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm import backtest_report as br
from nautilus_hmm.core.errors import DataError

REPORT_FILE = "research_report.html"
SUMMARY_FILE = "research_summary.json"
W, H = br.CHART_W, br.CHART_H
PL, PR, PT, PB = br.PAD_L, br.PAD_R, br.PAD_T, br.PAD_B


class ReportInputError(ValueError):
    """A run directory or one of its files cannot be drawn; the message names it."""


# ---------------------------------------------------------------- SVG pieces


def scatter(points: Sequence[tuple[float, float, str]], *, title: str, x_label: str, y_label: str,
            curve: Sequence[tuple[float, float]] = (), legend: Sequence[tuple[str, str]] = ()) -> str:
    """An x/y scatter (points `(x, y, colour)`) with an optional curve; numeric axes."""
    xs = [p[0] for p in points] + [c[0] for c in curve]
    ys = [p[1] for p in points] + [c[1] for c in curve]
    x0, x1 = _span(xs)
    y0, y1 = _span(ys)

    def px(x: float) -> float:
        return PL + (x - x0) / (x1 - x0) * (W - PL - PR)

    def py(y: float) -> float:
        return PT + (1 - (y - y0) / (y1 - y0)) * (H - PT - PB)

    out = [f'<svg class="chart scatter" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{html.escape(title)}"><rect x="{PL}" y="{PT}" width="{W - PL - PR}" '
           f'height="{H - PT - PB}" fill="#fff" stroke="#ccc"/>']
    for t in br._nice_ticks(y0, y1):
        out.append(f'<line x1="{PL}" x2="{W - PR}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
                   f'<text x="{PL - 6}" y="{py(t) + 4:.1f}" text-anchor="end" class="tick">{br._fmt_num(t)}</text>')
    for t in br._nice_ticks(x0, x1):
        out.append(f'<text x="{px(t):.1f}" y="{H - 8}" text-anchor="middle" class="tick">{br._fmt_num(t)}</text>')
    out.append(f'<text x="14" y="{H / 2:.0f}" transform="rotate(-90 14 {H / 2:.0f})" text-anchor="middle" '
               f'class="axis">{html.escape(y_label)}</text><text x="{W - PR}" y="{H - 20}" text-anchor="end" '
               f'class="axis">{html.escape(x_label)}</text>')
    for x, y, colour in points:
        out.append(f'<circle class="point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}" '
                   f'fill-opacity="0.6"><title>{br._fmt_num(x)}, {y:.3g}</title></circle>')
    if curve:
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in curve)
        out.append(f'<polyline class="model" points="{pts}" fill="none" stroke="#222" stroke-width="1.5"/>')
    lx = PL + 8
    for name, colour in legend:
        out.append(f'<rect x="{lx}" y="{PT - 18}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{PT - 9}" class="legend">{html.escape(name)}</text>')
        lx += 24 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def heat_map(rows: Sequence[str], cols: Sequence[str], values: dict[tuple[str, str], float], *,
             title: str, row_label: str, col_label: str) -> str:
    """A table-like heat map: one cell per (row, col), coloured low (red) to high (green)."""
    vals = [v for v in values.values() if math.isfinite(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    cw = max(60, min(140, (W - 160) // max(1, len(cols))))
    ch = 28
    width, height = 160 + cw * len(cols), 40 + ch * (len(rows) + 1)
    out = [f'<svg class="chart heatmap" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="{html.escape(title)}" style="max-width:{width}px">',
           f'<text x="4" y="16" class="axis">{html.escape(row_label)} ↓ / {html.escape(col_label)} →</text>']
    for j, c in enumerate(cols):
        out.append(f'<text x="{160 + cw * j + cw / 2:.0f}" y="{34}" text-anchor="middle" class="tick">'
                   f'{html.escape(c)}</text>')
    for i, r in enumerate(rows):
        y = 40 + ch * i
        out.append(f'<text x="150" y="{y + ch / 2 + 4:.0f}" text-anchor="end" class="tick">{html.escape(r)}</text>')
        for j, c in enumerate(cols):
            v = values.get((r, c), math.nan)
            if math.isfinite(v):
                f = 0.5 if hi == lo else (v - lo) / (hi - lo)
                colour = f"rgb({int(230 - 150 * f)},{int(90 + 130 * f)},{int(90 + 20 * f)})"
                text = f"{v:.4g}"
            else:
                colour, text = "#eee", "—"
            out.append(f'<rect class="cell" x="{160 + cw * j}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                       f'fill="{colour}"><title>{html.escape(r)} / {html.escape(c)}: {text}</title></rect>'
                       f'<text x="{160 + cw * j + cw / 2:.0f}" y="{y + ch / 2 + 4:.0f}" text-anchor="middle" '
                       f'class="tick">{text}</text>')
    out.append("</svg>")
    return "".join(out)


def _span(vals: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in vals if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.05 if hi > lo else (abs(lo) * 0.01 or 1.0)
    return lo - pad, hi + pad


# ---------------------------------------------------------------- inputs


def _csv(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{path}: cannot be read ({exc})") from exc
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise ReportInputError(f"{path}: empty file")
    missing = [c for c in required if c not in header]
    if missing:
        raise ReportInputError(f"{path}: line 1: missing column {missing[0]!r}")
    out = []
    for n, cells in enumerate(reader, start=2):
        if len(cells) != len(header):
            raise ReportInputError(f"{path}: line {n}: {len(cells)} cells, the header has {len(header)}")
        out.append((n, dict(zip(header, cells, strict=True))))
    return out


def _check_complete(path: Path) -> None:
    """Every writer here ends each row with a newline: a file that does not was cut short."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if last != b"\n":
        raise ReportInputError(f"{path}: truncated (the last row has no newline): a damaged or unfinished file")


def _f(path: Path, line: int, col: str, text: str, allow_empty: bool = False) -> float:
    if allow_empty and text == "":
        return math.nan
    try:
        v = float(text)
    except ValueError:
        raise ReportInputError(f"{path}: line {line}: {col} = {text!r} is not a number") from None
    if not math.isfinite(v) and not (allow_empty and math.isnan(v)):
        raise ReportInputError(f"{path}: line {line}: {col} = {text!r} is not finite")
    return v


def _slippage_section(run: Path, model_path: Path | None, summary: dict[str, Any]) -> str:
    from nautilus_hmm.research import slippage as slip

    points: list[tuple[float, float, str]] = []
    parts = []
    detail = run / "fills_detail.csv"
    if detail.exists():
        rows = _csv(detail, ("qty", "price", "liquidity", "arrival_mid", "slippage_bps"))
        taker = [(n, r) for n, r in rows if r["liquidity"] == "TAKER"]
        for n, r in taker:
            s = _f(detail, n, "slippage_bps", r["slippage_bps"], allow_empty=True)
            if math.isfinite(s):
                points.append((_f(detail, n, "qty", r["qty"]) * _f(detail, n, "price", r["price"]), s, br.PALETTE[0]))
        summary["sim_taker_fills"] = len(taker)
    samples = run / slip.SAMPLES_FILE
    if samples.exists():
        rows = _csv(samples, ("notional", "slippage_bps"))
        for n, r in rows:
            points.append((_f(samples, n, "notional", r["notional"]), _f(samples, n, "slippage_bps",
                                                                          r["slippage_bps"]), br.PALETTE[1]))
        summary["journal_samples"] = len(rows)
    model_path = model_path or (run / slip.MODEL_FILE if (run / slip.MODEL_FILE).exists() else None)
    curve: list[tuple[float, float]] = []
    if model_path is not None:
        try:
            model = slip.load_model(model_path)
        except slip.SlippageModelError as exc:
            raise ReportInputError(str(exc)) from exc
        xs = [p[0] for p in points] or [model.size_ref_quote * k for k in (0.1, 4.0)]
        lo, hi = min(xs), max(xs)
        curve = [(lo + (hi - lo) * i / 40, model.predict_bps(lo + (hi - lo) * i / 40)) for i in range(41)]
        summary["slippage_model"] = {"path": str(model_path), "sha256": model.sha256, "coef": model.coef}
        if points:
            resid = [y - model.predict_bps(x) for x, y, _ in points]
            summary["slippage_model"]["rmse_bps_on_these_fills"] = math.sqrt(statistics.fmean(r * r for r in resid))
    if not points and not curve:
        return ""
    legend = [("sim taker fills", br.PALETTE[0]), ("journaled orders", br.PALETTE[1])]
    if curve:
        legend.append(("model (spread 0, vol 0)", "#222"))
    parts.append(scatter(points, title="fills vs slippage model", x_label="notional (quote)",
                         y_label="slippage bps (cost > 0)", curve=curve, legend=legend))
    return ('<section id="slippage"><h2>Fills vs slippage model</h2><p class="note">Each point: one fill (sim) '
            "or one journaled order, its cost against the arrival mid in bps by notional; the line is the "
            "fitted model's prediction at zero spread and volatility.</p>" + "".join(parts) + "</section>")


def _sweep_section(results: Path, summary: dict[str, Any]) -> str:
    from nautilus_hmm.research.sweep import HEAD_COLUMNS, RESULT_COLUMNS, SweepError, read_results

    try:
        rows = list(read_results(results).values())
    except SweepError as exc:
        raise ReportInputError(str(exc)) from exc
    if not rows:
        raise ReportInputError(f"{results}: no rows")
    header = list(rows[0])
    axes = [c for c in header if c not in HEAD_COLUMNS and c not in RESULT_COLUMNS]
    ok = [r for r in rows if r.get("status") == "ok"]
    summary["sweep"] = {"trials": len(rows), "ok": len(ok), "errors": len(rows) - len(ok), "axes": axes}
    if not ok:
        return (f'<section id="sweep"><h2>Sweep</h2><p class="note">{len(rows)} trials, none succeeded: '
                "see the error column of results.csv.</p></section>")

    def lift(r: dict[str, str]) -> float:
        try:
            return float(r["micro_loglik_per_bar"]) - float(r["micro_baseline_per_bar"])
        except (KeyError, ValueError):
            return math.nan

    def pnl(r: dict[str, str]) -> float:
        try:
            return float(r["policy_pnl_frac"]) * 100
        except (KeyError, ValueError):
            return math.nan

    def setting(r: dict[str, str]) -> str:
        return ", ".join(f"{a.rsplit('.', 1)[-1]}={r[a]}" for a in axes)

    varying = [a for a in axes if len({r[a] for r in ok}) > 1] or axes[:1]
    parts = []
    if varying:
        ra = varying[0]
        ca = varying[1] if len(varying) > 1 else None
        rvals = sorted({r[ra] for r in ok}, key=_num_key)
        cvals = sorted({r[ca] for r in ok}, key=_num_key) if ca else ["all"]
        for name, fn in (("out-of-sample lift per bar (micro, nats)", lift), ("policy PnL %", pnl)):
            cells: dict[tuple[str, str], float] = {}
            for rv in rvals:
                for cv in cvals:
                    vs = [fn(r) for r in ok if r[ra] == rv and (ca is None or r[ca] == cv)]
                    vs = [v for v in vs if math.isfinite(v)]
                    cells[(rv, cv)] = statistics.fmean(vs) if vs else math.nan
            parts.append(f"<h3>{html.escape(name)}: mean over symbols and folds</h3>"
                         + heat_map(rvals, cvals, cells, title=name, row_label=ra, col_label=ca or "—"))
    by_setting: dict[str, list[tuple[float, float]]] = {}
    for r in ok:
        v = lift(r)
        if math.isfinite(v):
            by_setting.setdefault(setting(r), []).append((float(r["fold"]), v))
    best = max(by_setting, key=lambda k: statistics.fmean(v for _, v in by_setting[k])) if by_setting else None
    summary["sweep"]["best_by_oos_lift"] = best
    pts: list[tuple[float, float, str]] = []
    legend: list[tuple[str, str]] = []
    for i, (name, fold_lifts) in enumerate(sorted(by_setting.items())[:len(br.PALETTE)]):
        colour = br.PALETTE[i]
        legend.append((name, colour))
        pts.extend((x + (i - len(by_setting) / 2) * 0.03, y, colour) for x, y in fold_lifts)
    if pts:
        parts.append("<h3>Out-of-sample lift per bar by fold</h3>" + scatter(
            pts, title="oos lift by fold", x_label="fold", y_label="lift per bar (nats)"))  # colours: the table
        parts.append('<table class="settings"><tr><th>setting</th><th>colour</th><th>mean lift</th></tr>' + "".join(
            f'<tr><td>{html.escape(n)}</td><td style="background:{c}"></td>'
            f"<td>{statistics.fmean(v for _, v in by_setting[n]):.4g}</td></tr>" for n, c in legend) + "</table>")
    return (f'<section id="sweep"><h2>Sweep ({len(ok)} of {len(rows)} trials ok)</h2>'
            f'<p class="note">Best setting by mean out-of-sample lift: {html.escape(best or "—")}.</p>'
            + "".join(parts) + "</section>")


def _num_key(v: str) -> tuple[int, float | str]:
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)


def _regime_section(model_path: Path, data_path: Path, summary: dict[str, Any]) -> str:
    """The close price over the macro regime in force (filtered argmax, no look-ahead), as
    coloured bands: the model run over the data with the daemon's own forward filter."""
    from nautilus_hmm.hmm.data import load_base_bars
    from nautilus_hmm.hmm.errors import ModelError
    from nautilus_hmm.hmm.inference import infer_levels
    from nautilus_hmm.hmm.model import load_model

    try:
        model = load_model(model_path)
    except ModelError as exc:
        raise ReportInputError(f"{model_path}: {exc}") from exc
    except OSError as exc:
        raise ReportInputError(f"{model_path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        bars = load_base_bars(data_path, model.base_interval_s)
    except (DataError, ValueError) as exc:
        raise ReportInputError(f"{data_path}: {exc}") from exc
    _, micro, regime = infer_levels(model, bars)
    xs = [int(x) for x in micro.close_ns]
    ys = [float(y) for y in micro.level.bars.close]
    if len(xs) < 2:
        raise ReportInputError(f"{data_path}: {len(xs)} bars at the model's micro interval; nothing to draw")
    lo, hi = br._bounds(ys)
    c = br.Chart(xs[0], xs[-1], lo, hi, title="price and regime", y_label="price")
    counts: dict[int, int] = {}
    start = 0
    for i in range(1, len(xs) + 1):
        if i == len(xs) or regime[i] != regime[start]:
            k = int(regime[start])
            counts[k] = counts.get(k, 0) + (i - start)
            if k >= 0:
                x0, x1 = c.px(xs[start]), c.px(xs[min(i, len(xs) - 1)])
                c.parts.append(f'<rect class="regime r{k}" x="{x0:.1f}" y="{br.PAD_T}" '
                               f'width="{max(x1 - x0, 0.5):.1f}" height="{br.CHART_H - br.PAD_T - br.PAD_B}" '
                               f'fill="{br.PALETTE[k % len(br.PALETTE)]}" fill-opacity="0.18"/>')
            start = i
    c.line(br.Line("close", "#333", xs, ys))
    n_states = model.macro.hmm.n_states
    legend = [(f"regime {k}", br.PALETTE[k % len(br.PALETTE)]) for k in range(n_states)]
    summary["regimes"] = {"model": str(model_path), "data": str(data_path), "bars": len(xs),
                          "occupancy": {str(k): counts.get(k, 0) for k in [-1, *range(n_states)]}}
    occ = ", ".join(f"regime {k}: {counts.get(k, 0)}" for k in range(n_states))
    return (f'<section id="regimes"><h2>Regimes on price</h2><p class="note">Macro regime in force at each '
            f"{model.micro.interval_s // 60} m bar (filtered argmax of the last closed macro bar: no look-ahead); "
            f"bars per regime: {html.escape(occ)}; {counts.get(-1, 0)} bars before the filter was ready.</p>"
            f"{c.svg(legend)}</section>")


# ---------------------------------------------------------------- the page


def build(run_dir: str | Path, slippage_model: str | Path | None = None, model: str | Path | None = None,
          data: str | Path | None = None) -> tuple[str, dict[str, Any]]:
    """The page and the summary for `run_dir` (see the module doc)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportInputError(f"{run}: not a directory (a research run's output directory is expected)")
    summary: dict[str, Any] = {"run_dir": str(run), "sections": []}
    sections = []
    # results.csv is not checked: a sweep still running (or killed) has a cut last row, which
    # sweep.read_results drops.
    for name in ("equity.csv", "fills.csv", "fills_detail.csv", "slippage_samples.csv"):
        _check_complete(run / name)
    if (run / "summary.json").exists() or (run / "equity.csv").exists():
        try:
            outputs = br.read_outputs(run)
        except DataError as exc:
            raise ReportInputError(str(exc)) from exc
        summary["run"] = outputs.summary
        sections.append(f'<section id="summary"><h2>Run summary</h2>{br._summary_table(outputs.summary)}</section>')
        sections.append(br._equity_section(outputs))
        sections.append(br._price_sections(outputs, None))
        summary["sections"] += ["summary", "equity", "fills"]
    if (model is None) != (data is None):
        raise ReportInputError("regimes on price need both --model and --data")
    if model is not None and data is not None:
        sections.append(_regime_section(Path(model), Path(data), summary))
        summary["sections"].append("regimes")
    slip_html = _slippage_section(run, Path(slippage_model) if slippage_model else None, summary)
    if slip_html:
        sections.append(slip_html)
        summary["sections"].append("slippage")
    results = run / "results.csv"
    if results.exists():
        sections.append(_sweep_section(results, summary))
        summary["sections"].append("sweep")
    if not sections:
        raise ReportInputError(f"{run}: nothing to report (no summary.json/equity.csv, fills_detail.csv, "
                               "slippage_samples.csv or results.csv)")
    title = f"Research report: {run.name}"
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{br.CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>" + "".join(sections) + "</body></html>\n")
    return page, summary


def write(run_dir: str | Path, slippage_model: str | Path | None = None, model: str | Path | None = None,
          data: str | Path | None = None) -> tuple[Path, Path]:
    """Write research_report.html and research_summary.json into `run_dir` (atomically)."""
    page, summary = build(run_dir, slippage_model, model, data)
    run = Path(run_dir)
    paths = []
    for name, content in ((REPORT_FILE, page.encode()), (SUMMARY_FILE, orjson.dumps(
            summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str))):
        p = run / name
        tmp = p.with_name(f".{name}.tmp")
        try:
            tmp.write_bytes(content)
            os.replace(tmp, p)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        paths.append(p)
    return paths[0], paths[1]


# ---------------------------------------------------------------- CLI


def run_report(args: Any, out: Any, err: Any) -> int:
    """`research report`: 0 on success, 2 with one line naming the bad input."""
    try:
        page, summary = write(args.run, args.slippage_model, args.model, args.data)
    except ReportInputError as exc:
        print(f"report not written: {exc}", file=err)
        return 2
    except OSError as exc:
        print(f"report not written: {exc.filename or args.run}: {exc.strerror or exc}", file=err)
        return 1
    print(f"wrote {page} and {summary}", file=out)
    return 0


def add_report_command(research_sub: Any) -> None:
    """Add `report` to the `research` subcommands."""
    import sys

    p = research_sub.add_parser(
        "report", help="one HTML report (+ summary JSON) of a research run directory",
        description="Draws what RUN holds: a sim_exec/backtest run (equity, drawdown, fills), fills vs the "
                    "slippage model, a sweep's heat maps and out-of-sample likelihood by fold.")
    p.add_argument("run", help="the run's output directory")
    p.add_argument("--slippage-model", help="a slippage_model.json to draw against the fills")
    p.add_argument("--model", help="a regime model (JSON) to draw the regimes on the price of --data")
    p.add_argument("--data", help="the klines file the run replayed (with --model)")
    from nautilus_hmm.models_cli import run_command

    p.set_defaults(func=run_command(lambda a: run_report(a, sys.stdout, sys.stderr)))


def add_sim_exec_command(research_sub: Any) -> None:
    """Add `sim-exec` (tick replay of a capture with the built-in quoting strategy) to `research`."""
    import sys

    p = research_sub.add_parser(
        "sim-exec", help="replay a websocket capture through the tick venue model (latency, queue, fees)",
        description="Replays a Binance websocket capture (hftbacktest format) with a small quoting strategy and "
                    "writes summary.json, equity.csv, fills.csv, fills_detail.csv and the report into --out.")
    p.add_argument("--capture", required=True, nargs="+", metavar="FILE",
                   help="capture files (.gz: '<local ns> <stream JSON>' lines) and/or Binance depth CSVs "
                        "(merged by time)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--latency-ms", type=float, default=5.0, help="order entry latency (default %(default)s)")
    p.add_argument("--latency-from-journal", metavar="JOURNAL", help="measure the entry latency from a journal")
    p.add_argument("--response-latency-ms", type=float, default=5.0, help="fill report latency (default %(default)s)")
    p.add_argument("--maker-fee", type=float, help="maker rate (default 0.0002; with --config the config's)")
    p.add_argument("--taker-fee", type=float, help="taker rate (default 0.001; with --config the config's)")
    p.add_argument("--quote-notional", type=float, default=20.0, help="size of each quote, quote asset")
    p.add_argument("--slippage-model", help="a slippage_model.json to draw against the fills")
    # The node's strategies on ticks (research.tick_backtest): the backtest's config and stack.
    p.add_argument("--config", help="run the strategies of this config ([[strategies]] or [strategy], as `backtest` "
                                    "reads it) on the ticks instead of the quoting strategy: bars built from the "
                                    "trades, orders matched by the tick venue; writes OUT/ticks, and the same bars "
                                    "through the bar backtest in OUT/bars with OUT/comparison.json")
    p.add_argument("--bar-interval-s", type=int, help="with --config: bar length (default: the config's on the sim venue)")
    p.add_argument("--no-compare", action="store_true", help="with --config: skip the bar backtest and the comparison")
    p.add_argument("--no-report", action="store_true", help="with --config: no report.html")
    from nautilus_hmm.models_cli import run_command

    p.set_defaults(func=run_command(lambda a: run_sim_exec(a, sys.stdout, sys.stderr)))


def run_sim_exec(args: Any, out: Any, err: Any) -> int:
    """`research sim-exec`: 0 on success, 2 with one line naming the bad input."""
    from decimal import Decimal

    from nautilus_hmm.research.sim_exec import (
        QuoteBothSides,
        SimExecConfig,
        TickSim,
        latency_from_journal,
        write_outputs,
    )
    from nautilus_hmm.research.slippage import SlippageError
    from nautilus_hmm.research.ticks import DEPTH, QUOTE, SNAPSHOT, TRADE, CaptureError, load_events
    from nautilus_hmm.venues.sim.instruments import sim_instrument

    if getattr(args, "config", None):
        from nautilus_hmm.research.tick_backtest import run_command as run_strategies_on_ticks

        return run_strategies_on_ticks(args, out, err)
    only = [f"--{n.replace('_', '-')}" for n in ("bar_interval_s", "no_compare", "no_report") if getattr(args, n, None)]
    if only:
        print(f"error: {', '.join(only)} only with --config (the strategies on ticks)", file=err)
        return 2
    args.maker_fee = 0.0002 if getattr(args, "maker_fee", None) is None else args.maker_fee
    args.taker_fee = 0.001 if getattr(args, "taker_fee", None) is None else args.taker_fee
    try:
        for name in ("latency_ms", "response_latency_ms", "quote_notional"):
            v = getattr(args, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"--{name.replace('_', '-')} {v}: must be a number >= 0")
        entry_ns = int(args.latency_ms * 1e6)
        if args.latency_from_journal:
            entry_ns = latency_from_journal(args.latency_from_journal)
        cfg = SimExecConfig(entry_ns, int(args.response_latency_ms * 1e6), args.maker_fee, args.taker_fee)
        events = load_events(*args.capture)
        ref = next((e[2] if e[1] in (QUOTE, TRADE) else max(p for p, _ in e[2])
                    for e in events if e[1] in (QUOTE, TRADE) or (e[1] in (DEPTH, SNAPSHOT) and e[2])), None)
        if ref is None:
            raise ValueError(f"{args.capture[0]}: no quote, trade or bid in the data; nothing to quote against")
        name = Path(args.capture[0]).name
        symbol = name.split("_")[1].upper() if name.count("_") >= 1 else "BTCUSDT"
        symbol = symbol.split("-")[0]
        if not symbol.endswith("USDT"):
            symbol = "BTCUSDT"
        inst = sim_instrument("sim", symbol, "USDT", Decimal(repr(args.maker_fee)), Decimal(repr(args.taker_fee)),
                              ref_price=ref)
        step = float(inst.step_size)
        qty = max(step, round(args.quote_notional / ref, max(0, round(-math.log10(step)))))
        res = TickSim(inst, cfg).run(events, QuoteBothSides(qty, float(inst.tick_size), step=step))
        run = write_outputs(res, args.out)
        page, _ = write(run, args.slippage_model)
    except (ValueError, CaptureError, SlippageError, ReportInputError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    s = res.summary
    print(f"{s['events']} events in {s['wall_s']:.2f} s ({s['events_per_s']:,.0f} events/s): {s['fills']} fills "
          f"({s['maker_fills']} maker), fees {s['fees']:.4f}, return {s['return_pct']:.3f} %; wrote {page}", file=out)
    return 0
