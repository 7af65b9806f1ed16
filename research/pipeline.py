"""Offline research pipeline for the regime model: features → select K → train → evaluate → report.

Every step calls the same code as the daemon and the `nautilus-hmm` CLI (nautilus_hmm.hmm.*,
nautilus_hmm.evaluate),
so what is measured here is what runs live. Steps write into one output directory:

    features   <out>/features/<level>.csv (raw features per bar) and features.json (summary)
    select-k   <out>/select_k.json: BIC and held-out log-likelihood per K (macro level)
    train      <out>/model/model.json + meta.json (CLI `train`)
    evaluate   <out>/evaluate/ (CLI `evaluate`: report.json, report.md, equity.csv, evaluate.png)
    report     <out>/REPORT.md gathering the above
    all        every step in order

Run: .venv/bin/python research/pipeline.py all --data FILE --out DIR [--config PATH]
(see research/README.md). Training imports torch in this process: research only.
Progress goes to stderr (nautilus_hmm.obs.progress): the steps, and inside select-k, train
and evaluate their restarts and folds; a bar each on a terminal, lines otherwise, none with --quiet.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nautilus_hmm import evaluate as evaluate_cmd  # noqa: E402
from nautilus_hmm import models_cli  # noqa: E402
from nautilus_hmm.obs.progress import ProgressFactory, no_progress, progress_factory  # noqa: E402


def _dump(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def step_features(data: str, out: Path, config: str | None) -> dict[str, Any]:
    """Raw features of the macro and micro levels, with per-feature summary statistics."""
    from nautilus_hmm.hmm.features import compute_batch
    from nautilus_hmm.marketdata.bars import resample_bars

    cfg = models_cli.load_config_arg(config)
    t = cfg.hmm.train
    bars = models_cli.base_bars_arg(models_cli.load_market_arg(data), t.base_interval_s)
    spec = cfg.hmm.features.spec()
    summary: dict[str, Any] = {"data": data, "base_bars": len(bars), "levels": {}}
    for level, interval_s in (("macro", t.macro_interval_s), ("micro", t.micro_interval_s)):
        lb = resample_bars(bars, interval_s, t.base_interval_s)
        x = compute_batch(spec, lb)
        ok = ~np.isnan(x).any(axis=1)
        path = out / "features" / f"{level}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["ts_open_ns", *spec.names])
            for i in np.flatnonzero(ok):
                w.writerow([int(lb.ts_open_ns[i]), *(repr(float(v)) for v in x[i])])
        rows = x[ok]
        summary["levels"][level] = {
            "interval_s": interval_s, "bars": len(lb), "rows": int(ok.sum()),
            "mean": dict(zip(spec.names, rows.mean(axis=0).tolist(), strict=True)),
            "std": dict(zip(spec.names, rows.std(axis=0).tolist(), strict=True)),
            "corr": np.corrcoef(rows.T).round(3).tolist(),
        }
    _dump(out / "features" / "features.json", summary)
    return summary


def step_select_k(data: str, out: Path, config: str | None, k_values: list[int],
                  progress: ProgressFactory = no_progress) -> list[dict[str, Any]]:
    """BIC and held-out log-likelihood per K on the macro level's standardised features."""
    from nautilus_hmm.hmm.train import prepare_level, select_n_states

    cfg = models_cli.load_config_arg(config)
    t = cfg.hmm.train
    bars = models_cli.base_bars_arg(models_cli.load_market_arg(data), t.base_interval_s)
    level = prepare_level("macro", bars, cfg.hmm.features.spec(), t.macro_interval_s, t.base_interval_s)
    with progress(len(k_values) * t.n_restarts, "select-k", "restarts") as shown:
        def restarted(done: int, total: int, what: str) -> None:
            shown.set_description(f"select-k {what}")
            shown.set(done)

        scores = select_n_states(level.z[level.valid], k_values, t, on_progress=restarted)
    doc = [{"k": s.n_states, "bic": s.bic, "log_likelihood": s.log_likelihood, "n_params": s.n_params,
            "heldout_loglik_per_bar": s.heldout_loglik_per_bar} for s in scores]
    _dump(out / "select_k.json", doc)
    return doc


def step_report(out: Path) -> str:
    """REPORT.md from whatever steps have run."""
    parts = ["# Regime model research report", ""]
    feats = out / "features" / "features.json"
    if feats.exists():
        f = orjson.loads(feats.read_bytes())
        parts += [f"Data: `{f['data']}`, {f['base_bars']} base bars.", ""]
        for level, d in f["levels"].items():
            parts.append(f"* {level}: {d['bars']} bars of {d['interval_s']} s, {d['rows']} complete feature rows")
        parts.append("")
    sel = out / "select_k.json"
    if sel.exists():
        parts += ["## K selection (macro level)", "", "| K | BIC | held-out LL/bar |", "|---|---|---|"]
        for s in orjson.loads(sel.read_bytes()):
            parts.append(f"| {s['k']} | {s['bic']:.1f} | {s['heldout_loglik_per_bar']:.4f} |")
        parts.append("")
    model_meta = out / "model" / "meta.json"
    if model_meta.exists():
        m = orjson.loads(model_meta.read_bytes())
        parts += ["## Model", "", f"`{m['id']}` trained on {m['n_bars']} bars "
                  f"(data sha256 `{m['data_sha256'][:12]}…`).", ""]
    ev = out / "evaluate" / "report.md"
    if ev.exists():
        parts += ["## Walk-forward evaluation", "", ev.read_text().split("\n", 2)[2],
                  "![evaluate](evaluate/evaluate.png)", ""]
    text = "\n".join(parts) + "\n"
    (out / "REPORT.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("features", "select-k", "train", "evaluate", "report", "all"))
    ap.add_argument("--data", help="klines CSV (Binance data-vision dump or timestamp,open,high,low,close,volume)")
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--config", help="config file with [hmm] (and [venues.sim] fees, [risk]) settings")
    ap.add_argument("--k", default="2,3,4", help="K values for select-k (comma-separated)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--train-fraction", type=float, default=0.5)
    ap.add_argument("--instrument", help="sim instrument for the backtest (default: first [strategy] instrument)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    models_cli._configure_logging()
    steps = ["features", "select-k", "train", "evaluate", "report"] if args.step == "all" else [args.step]
    if any(s != "report" for s in steps) and not args.data:
        ap.error("--data is required for this step")
    progress = progress_factory(enabled=not args.quiet)
    try:
        with progress(len(steps), "research", "steps") as pipeline:
            for step in steps:
                pipeline.set_description(f"research {step}")
                if step == "features":
                    step_features(args.data, args.out, args.config)
                elif step == "select-k":
                    step_select_k(args.data, args.out, args.config, [int(k) for k in args.k.split(",")], progress)
                elif step == "train":
                    models_cli.train(args.data, str(args.out / "model"), args.config, instrument=args.instrument,
                                     progress=progress)
                elif step == "evaluate":
                    evaluate_cmd.evaluate(args.data, str(args.out / "evaluate"), args.config, args.folds,
                                          args.train_fraction, args.instrument, progress=progress)
                else:
                    print(step_report(args.out))
                pipeline.update()
    except models_cli.CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
