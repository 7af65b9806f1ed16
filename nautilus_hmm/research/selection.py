"""The verdict of a sweep's rows: K per level, and the best setting out of sample.

* **K per level** (`hmm.train.macro_states`, `hmm.train.micro_states`): the K whose models
  gave the highest out-of-sample log-likelihood per bar on the walk-forward test parts
  (the one-step predictive density of the forward filter, bar-weighted over every trial
  with that K; in a full grid every K meets the same other settings, so the means compare).
  BIC (on each fold's training rows, lower is better) is reported beside it with its own
  choice, and whether the two agree; the 1-state baseline's likelihood on the same bars
  says whether regimes help at all.
* **Best setting** (`best`): chosen on the *selection* folds (every fold but the last of each data
  file) by mean policy PnL (fees included, fraction of capital), among settings with no
  failed or missing trial there; then reported on the *held-out* folds (the last of each file), which
  took no part in the choice, against buy-and-hold of the same capital. With one fold
  there is nothing held out and the verdict says so. `best_at_chosen_k`: the same among
  the settings with the K chosen above (K is the model's choice, by likelihood; the other
  keys, the policy's, by PnL): what `config.toml`'s defaults come from (docs/HMM.md).

Input rows are the results file's (strings, as `read_results` gives them) or dicts of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

K_KEYS = {"macro": "hmm.train.macro_states", "micro": "hmm.train.micro_states"}


def _num(v: Any) -> float:
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _wmean(pairs: Iterable[tuple[float, float]]) -> float:
    num = den = 0.0
    for x, w in pairs:
        if math.isfinite(x) and w > 0:
            num += x * w
            den += w
    return num / den if den else math.nan


def _mean(xs: Iterable[float]) -> float:
    vals = [x for x in xs if math.isfinite(x)]
    return sum(vals) / len(vals) if vals else math.nan


def _key(row: dict[str, Any], axes: Sequence[str]) -> str:
    return orjson.dumps({a: row.get(a) for a in axes}).decode()


def _setting(cell: Any) -> Any:
    """A setting as the grid gave it: results-file cells are JSON (numbers, lists) or plain strings."""
    if not isinstance(cell, str):
        return cell
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError:
        return cell


def k_verdict(rows: Sequence[dict[str, Any]], level: str) -> dict[str, Any] | None:
    """Per K of `level`: held-out LL/bar, 1-state baseline, mean BIC; the K chosen by each. None without the column."""
    col = K_KEYS[level]
    ok = [r for r in rows if r.get("status") == "ok" and r.get(col, "") != ""]
    if not ok:
        return None
    by_k: dict[int, list[dict[str, Any]]] = {}
    for r in ok:
        by_k.setdefault(int(_num(r[col])), []).append(r)
    table = []
    for k in sorted(by_k):
        rs = by_k[k]
        ll = _wmean((_num(r[f"{level}_loglik_per_bar"]), _num(r[f"{level}_bars_scored"])) for r in rs)
        base = _wmean((_num(r[f"{level}_baseline_per_bar"]), _num(r[f"{level}_bars_scored"])) for r in rs)
        table.append({"k": k, "trials": len(rs), "heldout_loglik_per_bar": ll, "baseline_loglik_per_bar": base,
                      "lift_per_bar": ll - base, "bic": _mean(_num(r[f"{level}_bic"]) for r in rs)})
    finite = [t for t in table if math.isfinite(t["heldout_loglik_per_bar"])]
    chosen = max(finite, key=lambda t: t["heldout_loglik_per_bar"])["k"] if finite else None
    with_bic = [t for t in table if math.isfinite(t["bic"])]
    bic_k = min(with_bic, key=lambda t: t["bic"])["k"] if with_bic else None
    return {"key": col, "by_k": table, "chosen": chosen, "bic_choice": bic_k, "agree": chosen == bic_k,
            "beats_baseline": bool(chosen is not None and next(t for t in table if t["k"] == chosen)["lift_per_bar"] > 0)}


def _same(a: Any, b: Any) -> bool:
    try:
        return int(a) == int(b)
    except (TypeError, ValueError):
        return False


def _figures(rs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    pnl = [_num(r["policy_pnl_frac"]) for r in rs]
    bh = [_num(r["buy_hold_pnl_frac"]) for r in rs]
    return {
        "trials": len(rs),
        "policy_pnl_frac_mean": _mean(pnl), "policy_pnl_frac_sum": sum(x for x in pnl if math.isfinite(x)),
        "buy_hold_pnl_frac_mean": _mean(bh), "buy_hold_pnl_frac_sum": sum(x for x in bh if math.isfinite(x)),
        "macro_lift_per_bar": _wmean((_num(r["macro_loglik_per_bar"]) - _num(r["macro_baseline_per_bar"]),
                                      _num(r["macro_bars_scored"])) for r in rs),
        "micro_lift_per_bar": _wmean((_num(r["micro_loglik_per_bar"]) - _num(r["micro_baseline_per_bar"]),
                                      _num(r["micro_bars_scored"])) for r in rs),
        "fills": int(sum(_num(r["fills"]) for r in rs if math.isfinite(_num(r["fills"])))),
        "fees": sum(_num(r["fees"]) for r in rs if math.isfinite(_num(r["fees"]))),
    }


def verdict(rows: Sequence[dict[str, Any]], axes: Sequence[str], folds: int) -> dict[str, Any]:
    """The verdict document (see the module doc); rows of one plan (one row per trial)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    last = folds - 1

    def is_select(r: dict[str, Any]) -> bool:
        return folds == 1 or int(_num(r["fold"])) < last

    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(_key(r, axes), {"settings": {a: _setting(r.get(a)) for a in axes}, "select": [], "holdout": [],
                                               "failed_select": 0})
        if r.get("status") != "ok":
            if is_select(r):
                g["failed_select"] += 1
            continue
        (g["select"] if is_select(r) else g["holdout"]).append(r)
    settings = []
    for g in groups.values():
        settings.append({"settings": g["settings"], "failed_select_trials": g["failed_select"],
                         "select": _figures(g["select"]), "holdout": _figures(g["holdout"]) if folds > 1 else None})
    # Settings compare on the same test parts: one missing a selection trial (a sweep cut
    # short, or a failure) is not ranked.
    full = max((s["select"]["trials"] for s in settings), default=0)
    eligible = [s for s in settings if not s["failed_select_trials"] and s["select"]["trials"] == full and full
                and math.isfinite(s["select"]["policy_pnl_frac_mean"])]
    eligible.sort(key=lambda s: -s["select"]["policy_pnl_frac_mean"])
    for rank, s in enumerate(eligible, start=1):
        s["rank"] = rank
    best = eligible[0] if eligible else None
    k = {level: v for level in K_KEYS if (v := k_verdict(rows, level)) is not None}
    # The model's K is a model choice (likelihood); the rest of the setting is then chosen by PnL.
    at_k = [s for s in eligible
            if all(_same(s["settings"].get(v["key"], v["chosen"]), v["chosen"]) for v in k.values())]
    return {
        "trials": len(rows), "ok": len(ok), "failed": len(failed),
        "errors": [{"trial_id": r.get("trial_id"), "data": r.get("data"), "fold": r.get("fold"),
                    "error": r.get("error")} for r in failed[:20]],
        "folds": folds, "selection": f"folds 0..{last - 1} of each file (mean policy PnL, fees included)"
        if folds > 1 else "the only fold (nothing held out: the best setting's figures are in-selection)",
        "k": k,
        "best": best,
        "best_at_chosen_k": at_k[0] if at_k else None,
        "settings": sorted(settings, key=lambda s: s.get("rank", 10**9)),
    }


def _pct(x: Any) -> str:
    return f"{x * 100:+.2f} %" if isinstance(x, int | float) and math.isfinite(x) else "n/a"


def _f(x: Any, spec: str = ".4f") -> str:
    return format(x, spec) if isinstance(x, int | float) and math.isfinite(x) else "n/a"


def verdict_markdown(doc: dict[str, Any]) -> str:
    """verdict.md: the K tables, the best setting and the ranking."""
    lines = ["# Sweep verdict", "", f"{doc['trials']} trials, {doc['ok']} ok, {doc['failed']} failed.", ""]
    for level, v in doc["k"].items():
        lines += [f"## {level} K (`{v['key']}`)", "",
                  "| K | trials | held-out LL/bar | 1-state LL/bar | lift | mean BIC (train) |", "|---|---|---|---|---|---|"]
        for t in v["by_k"]:
            lines.append(f"| {t['k']} | {t['trials']} | {_f(t['heldout_loglik_per_bar'])} | "
                         f"{_f(t['baseline_loglik_per_bar'])} | {_f(t['lift_per_bar'], '+.4f')} | {_f(t['bic'], '.1f')} |")
        lines += ["", f"Chosen by held-out likelihood: **K = {v['chosen']}**; BIC would choose K = {v['bic_choice']} "
                  f"({'agrees' if v['agree'] else 'disagrees'}); "
                  f"{'beats' if v['beats_baseline'] else 'does not beat'} the 1-state baseline.", ""]
    lines += [f"Selection: {doc['selection']}.", ""]
    for title, best in (("Best setting", doc["best"]), ("Best setting at the chosen K", doc.get("best_at_chosen_k"))):
        lines += _best_lines(title, best)
    lines += ["## Ranking (selection folds)", "", "| rank | setting | policy mean (select) | policy mean (held-out) | "
              "buy & hold mean (held-out) |", "|---|---|---|---|---|"]
    for s in doc["settings"]:
        ho = s["holdout"] or {}
        name = ", ".join(f"{k.rsplit('.', 1)[-1]}={orjson.dumps(v).decode()}" for k, v in s["settings"].items())
        lines.append(f"| {s.get('rank', '-')} | {name or '(fixed)'} | {_pct(s['select']['policy_pnl_frac_mean'])} | "
                     f"{_pct(ho.get('policy_pnl_frac_mean'))} | {_pct(ho.get('buy_hold_pnl_frac_mean'))} |")
    if doc["errors"]:
        lines += ["", "## Failed trials", ""]
        lines += [f"* {e['data']} fold {e['fold']} ({e['trial_id']}): {e['error']}" for e in doc["errors"]]
    return "\n".join(lines) + "\n"


def _best_lines(title: str, best: dict[str, Any] | None) -> list[str]:
    lines = [f"## {title}", ""]
    if best is None:
        lines += ["No setting finished all its selection trials.", ""]
    else:
        lines += ["```toml", *(f"{k} = {orjson.dumps(v).decode()}" for k, v in best["settings"].items()), "```", ""]
        ho = best["holdout"]
        lines += ["| folds | trials | policy (mean / sum) | buy & hold (mean / sum) | macro lift | micro lift | fills | fees |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, fig in (("selection", best["select"]), ("held-out", ho)):
            if fig is None or not fig["trials"]:
                continue
            lines.append(f"| {name} | {fig['trials']} | {_pct(fig['policy_pnl_frac_mean'])} / "
                         f"{_pct(fig['policy_pnl_frac_sum'])} | {_pct(fig['buy_hold_pnl_frac_mean'])} / "
                         f"{_pct(fig['buy_hold_pnl_frac_sum'])} | {_f(fig['macro_lift_per_bar'], '+.3f')} | "
                         f"{_f(fig['micro_lift_per_bar'], '+.3f')} | {fig['fills']} | {_f(fig['fees'], '.2f')} |")
        lines.append("")
    return lines
