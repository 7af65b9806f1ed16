"""Walk-forward evaluation of the regime model, and the `nautilus-hmm evaluate` command.

Offline only: it composes the model package (training, inference) with the trading
core's replay (`nautilus_hmm.backtest`, the sim venue, an in-memory journal), so it
lives beside backtest.py rather than inside `hmm/` (which stays pure: no execution, no
venues, no backtest).

`walk_forward` splits the bars into an initial training part and `folds` consecutive
test parts. For each fold it trains on the bars before the test part (at most
`[hmm.train] window_bars`, as the daemon would), then on the test part only:

* out-of-sample log-likelihood per bar of the macro HMM and of the active micro HMM
  (one-step predictive densities of the forward filter), against a 1-state Gaussian
  fitted on the same training rows (the "no regimes" baseline);
* regime statistics of the filtered argmax: occupancy, mean and volatility of the
  1-bar log return, mean dwell (bars);
* the policy traded by `HmmStrategy` through the trading core's replay
  (`nautilus_hmm.backtest.Backtest`: same router, risk gate, sim fills and fees as the
  daemon), warmed up on the training tail, against buy-and-hold of the same capital
  paying the sim taker fee in and out. PnL is reported as a fraction of
  `[hmm.policy] capital_usd`.

The training step imports pomegranate/torch (in this process): CLI and research only.
Progress (`walk_forward(progress=...)`, the command's stderr unless --quiet): one step per
Baum-Welch restart of each fold's training plus one per fold's backtest.
evaluate.png needs matplotlib (in the `train` extra): without it the command stops
before any work with exit 1 and the fix (or `--no-plot`); it never dies at the end.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from nautilus_hmm.hmm.filter import ForwardFilter
from nautilus_hmm.hmm.inference import LevelInference, infer_levels
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.hmm.train import (
    TrainingProgress,
    min_training_bars,
    prepare_level,
    training_restarts,
)
from nautilus_hmm.marketdata.replay import NS_PER_S, BarArrays
from nautilus_hmm.models_cli import (
    EXIT_DATAERR,
    EXIT_OK,
    EXIT_OTHER,
    QUIET_HELP,
    CliError,
    load_config_arg,
    load_market_arg,
    run_command,
)
from nautilus_hmm.obs.progress import ProgressFactory, no_progress

LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------- scoring


def gaussian_baseline(z_train: np.ndarray, min_covar: float = 1e-6) -> ForwardFilter:
    """A 1-state Gaussian HMM fitted (ML) on training rows: the no-regime baseline."""
    rows = z_train[~np.isnan(z_train).any(axis=1)]
    d = rows.shape[1]
    mean = rows.mean(axis=0)
    cov = np.cov(rows.T, bias=True).reshape(d, d) + min_covar * np.eye(d)
    return ForwardFilter(np.ones(1), np.ones((1, 1)), mean[None, :], cov[None, :, :])


def _baseline_steps(base: ForwardFilter, z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.full(z.shape[0], np.nan)
    ll = base.emission_log_likelihood(np.where(valid[:, None], z, 0.0))[:, 0]
    out[valid] = ll[valid]
    return out


@dataclass(frozen=True, slots=True)
class StateSummary:
    """What a state looked like on test bars (per bar of its level)."""

    label: str
    occupancy: float
    bars: int
    mean_return: float
    volatility: float
    mean_dwell_bars: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def state_summaries(labels: tuple[str, ...], states: np.ndarray, ret: np.ndarray) -> list[StateSummary]:
    """Occupancy, return mean/vol and dwell of each state's argmax runs (states -1 are skipped)."""
    ok = states >= 0
    total = int(ok.sum())
    runs: dict[int, list[int]] = {}
    if total:
        s = states[ok]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        lengths = np.diff(np.r_[starts, s.shape[0]])
        for a, n in zip(starts, lengths, strict=True):
            runs.setdefault(int(s[a]), []).append(int(n))
    out = []
    for k, label in enumerate(labels):
        mask = ok & (states == k)
        r = ret[mask]
        r = r[np.isfinite(r)]
        out.append(StateSummary(
            label=label, occupancy=float(mask.sum() / total) if total else 0.0, bars=int(mask.sum()),
            mean_return=float(r.mean()) if r.size else 0.0, volatility=float(r.std()) if r.size > 1 else 0.0,
            mean_dwell_bars=float(np.mean(runs[k])) if runs.get(k) else 0.0))
    return out


@dataclass(slots=True)
class FoldResult:
    """Everything measured on one test part."""

    fold: int
    train_first_ns: int
    train_last_ns: int
    train_bars: int
    test_first_ns: int
    test_last_ns: int
    test_bars: int
    macro_loglik_per_bar: float
    macro_baseline_per_bar: float
    macro_bars_scored: int
    micro_loglik_per_bar: float
    micro_baseline_per_bar: float
    micro_bars_scored: int
    macro_states: list[StateSummary]
    micro_states: list[StateSummary]
    backtest: dict[str, Any]
    policy_pnl_frac: float
    buy_hold_pnl_frac: float
    decisions: dict[str, int]
    equity: list[tuple[int, float, float, int]] = field(default_factory=list)  # ts, policy, b&h, macro state
    model: RegimeModel | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the curve and the model)."""
        skip = {"equity", "model"}
        out = {f: getattr(self, f) for f in self.__slots__ if f not in skip}
        out["macro_states"] = [s.to_dict() for s in self.macro_states]
        out["micro_states"] = [s.to_dict() for s in self.micro_states]
        return out


def _score_level(inf: LevelInference, steps: np.ndarray, base: ForwardFilter, test_from_ns: int) -> tuple[
        float, float, int]:
    in_test = inf.close_ns > test_from_ns
    b_steps = _baseline_steps(base, inf.level.z, inf.level.valid)
    ok = in_test & np.isfinite(steps) & np.isfinite(b_steps)
    n = int(ok.sum())
    if not n:
        return float("nan"), float("nan"), 0
    return float(steps[ok].mean()), float(b_steps[ok].mean()), n


def score_oos(model: RegimeModel, context_and_test: BarArrays, test_from_ns: int,
              train_bars: BarArrays) -> dict[str, Any]:
    """Out-of-sample log-likelihood per bar (HMM vs 1-state baseline) and regime stats on the test bars.

    `context_and_test` starts early enough for the features to be ready on the first
    test bar; only bars closing after `test_from_ns` are scored.
    """
    macro, micro, regime = infer_levels(model, context_and_test)
    base = model.base_interval_s
    tr_macro = prepare_level("macro", train_bars, model.macro.features, model.macro.interval_s, base,
                             scaler=model.macro.scaler)
    tr_micro = prepare_level("micro", train_bars, model.micro.features, model.micro.interval_s, base,
                             scaler=model.micro.scaler)
    m_ll, m_base, m_n = _score_level(macro, macro.loglik_steps[0], gaussian_baseline(tr_macro.z), test_from_ns)
    # The micro score of a bar is the predictive density of the micro HMM active at it.
    active = np.full(len(micro.level.bars), np.nan)
    for h, steps in enumerate(micro.loglik_steps):
        sel = regime == h
        active[sel] = steps[sel]
    u_ll, u_base, u_n = _score_level(micro, active, gaussian_baseline(tr_micro.z), test_from_ns)
    m_in = macro.close_ns > test_from_ns
    m_post = macro.posteriors[0]
    m_state = np.where(~np.isnan(m_post[:, 0]), np.nan_to_num(m_post).argmax(axis=1), -1)
    ret_col = 0  # ret_1 is always column 0
    macro_stats = state_summaries(model.macro.hmm.labels, m_state[m_in], macro.level.raw[m_in, ret_col])
    u_in = micro.close_ns > test_from_ns
    u_state = np.full(len(micro.level.bars), -1)
    for h, post in enumerate(micro.posteriors):
        sel = (regime == h) & ~np.isnan(post[:, 0])
        u_state[sel] = np.nan_to_num(post[sel]).argmax(axis=1)
    micro_labels = model.micro.hmms[0].labels
    micro_stats = state_summaries(micro_labels, u_state[u_in], micro.level.raw[u_in, ret_col])
    return {"macro": (m_ll, m_base, m_n), "micro": (u_ll, u_base, u_n), "macro_states": macro_stats,
            "micro_states": micro_stats, "macro_inference": macro}


# ---------------------------------------------------------------- walk-forward


@dataclass(slots=True)
class EvaluationReport:
    """All folds and the totals."""

    data_path: str
    instrument: str
    base_interval_s: int
    folds: list[FoldResult]
    config: dict[str, Any]

    def totals(self) -> dict[str, Any]:
        """Sums and bar-weighted means over folds."""
        f = self.folds

        def wmean(attr: str, n_attr: str) -> float:
            num = sum(getattr(x, attr) * getattr(x, n_attr) for x in f if getattr(x, n_attr))
            den = sum(getattr(x, n_attr) for x in f)
            return float(num / den) if den else float("nan")

        return {
            "folds": len(f),
            "test_bars": sum(x.test_bars for x in f),
            "macro_loglik_per_bar": wmean("macro_loglik_per_bar", "macro_bars_scored"),
            "macro_baseline_per_bar": wmean("macro_baseline_per_bar", "macro_bars_scored"),
            "micro_loglik_per_bar": wmean("micro_loglik_per_bar", "micro_bars_scored"),
            "micro_baseline_per_bar": wmean("micro_baseline_per_bar", "micro_bars_scored"),
            "policy_pnl_frac": float(sum(x.policy_pnl_frac for x in f)),
            "buy_hold_pnl_frac": float(sum(x.buy_hold_pnl_frac for x in f)),
            "fills": int(sum(x.backtest.get("fills", 0) for x in f)),
            "fees": float(sum(x.backtest.get("fees", 0.0) for x in f)),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {"data": self.data_path, "instrument": self.instrument, "base_interval_s": self.base_interval_s,
                "totals": self.totals(), "folds": [x.to_dict() for x in self.folds], "config": self.config}


def fold_bounds(n_bars: int, folds: int, train_fraction: float, window_bars: int,
                min_train_bars: int) -> list[tuple[int, int, int]]:
    """(train_start, test_start, test_stop) per fold; raises ValueError when the data is too short."""
    if folds < 1:
        raise ValueError(f"folds = {folds}: must be >= 1")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction = {train_fraction}: must be in (0, 1)")
    first = int(n_bars * train_fraction)
    if first < min_train_bars:
        raise ValueError(f"{n_bars} bars x train_fraction {train_fraction} = {first} training bars; "
                         f"the model needs at least {min_train_bars}")
    step = (n_bars - first) // folds
    if step < 1:
        raise ValueError(f"{n_bars - first} test bars cannot make {folds} folds")
    out = []
    for i in range(folds):
        test_start = first + i * step
        test_stop = n_bars if i == folds - 1 else test_start + step
        out.append((max(0, test_start - window_bars), test_start, test_stop))
    return out


def _buy_and_hold(test: BarArrays, capital: float, fee: float) -> list[float]:
    """PnL fractions of capital per bar: buy at the first open, fee in; the last value also pays the fee out."""
    units = capital * (1.0 - fee) / float(test.open[0])
    eq = (units * test.close / capital - 1.0).tolist()
    eq[-1] = units * float(test.close[-1]) * (1.0 - fee) / capital - 1.0
    return eq


def run_fold(cfg: Any, bars: BarArrays, market: Any, bounds: tuple[int, int, int], fold: int,
             instrument: str, on_progress: TrainingProgress | None = None) -> FoldResult:
    """Train on [train_start, test_start), score and backtest [test_start, test_stop).

    `on_progress(done, total, what)` follows the training's restarts, then the backtest (the last step)."""
    from nautilus_hmm.backtest import Backtest, sim_venue_config
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.hmm.train import train_model
    from nautilus_hmm.messages import PolicyDecision
    from nautilus_hmm.strategies.hmm import HmmStrategy, required_history_bars

    hcfg = cfg.hmm
    a, b, c = bounds
    train = bars.slice(a, b)
    model = train_model(train, hcfg.features.spec(), hcfg.train, instrument=instrument, on_progress=on_progress)
    ctx_len = required_history_bars(hcfg, (model,))
    ctx_start = max(a, b - ctx_len)
    test_from_ns = int(bars.ts_open_ns[b])  # bars closing after the first test bar opened
    scores = score_oos(model, bars.slice(ctx_start, c), test_from_ns, train)

    iid = InstrumentId.parse(instrument)
    interval_s = int(market.interval_s)
    strategy = HmmStrategy("hmm", (iid,), hcfg, model, f"fold{fold}", bar_interval_s=interval_s)
    bt_cfg = dataclasses.replace(cfg, strategy=dataclasses.replace(cfg.strategy, kind="hmm",
                                                                   instruments=(instrument,)))
    base_ns = model.base_interval_s * NS_PER_S
    m_start = int(np.searchsorted(market.ts_open_ns, int(bars.ts_open_ns[b])))
    m_stop = int(np.searchsorted(market.ts_open_ns, int(bars.ts_open_ns[c - 1]) + base_ns))
    test_market = market.slice(m_start, m_stop)
    bt = Backtest(bt_cfg, test_market, strategy, instrument)
    strategy.warm_up(iid, bars.slice(ctx_start, b))
    decisions: dict[str, int] = {}
    bt.bus.subscribe(PolicyDecision, lambda d: decisions.__setitem__(d.action, decisions.get(d.action, 0) + 1))
    result, equity = bt.run()
    if on_progress is not None:
        steps = training_restarts(hcfg.train) + 1
        on_progress(steps, steps, "backtest")
    capital = hcfg.policy.capital_usd
    start_eq = result.initial_equity
    test = bars.slice(b, c)
    bh = _buy_and_hold(test, capital, sim_venue_config(cfg).taker_fee)
    macro_inf = scores["macro_inference"]
    m_post = macro_inf.posteriors[0]
    m_state = np.where(~np.isnan(m_post[:, 0]), np.nan_to_num(m_post).argmax(axis=1), -1)
    idx = np.searchsorted(macro_inf.close_ns, test.ts_open_ns + model.base_interval_s * NS_PER_S, side="right") - 1
    state_at = np.where(idx >= 0, m_state[np.clip(idx, 0, None)], -1)
    # Equity points are per data bar; the base-bar curves are sampled at base-bar closes.
    eq_by_ts = dict(equity)
    curve = []
    for i in range(len(test)):
        close_ns = int(test.ts_open_ns[i]) + model.base_interval_s * NS_PER_S
        e = eq_by_ts.get(close_ns)
        if e is None:
            continue
        curve.append((close_ns, (e - start_eq) / capital, bh[i], int(state_at[i])))
    m_ll, m_base, m_n = scores["macro"]
    u_ll, u_base, u_n = scores["micro"]
    return FoldResult(
        fold=fold, train_first_ns=int(train.ts_open_ns[0]), train_last_ns=int(train.ts_open_ns[-1]), train_bars=len(train),
        test_first_ns=int(test.ts_open_ns[0]), test_last_ns=int(test.ts_open_ns[-1]), test_bars=len(test),
        macro_loglik_per_bar=m_ll, macro_baseline_per_bar=m_base, macro_bars_scored=m_n,
        micro_loglik_per_bar=u_ll, micro_baseline_per_bar=u_base, micro_bars_scored=u_n,
        macro_states=scores["macro_states"], micro_states=scores["micro_states"],
        backtest=result.as_dict(), policy_pnl_frac=(result.final_equity - start_eq) / capital,
        buy_hold_pnl_frac=bh[-1], decisions=decisions, equity=curve, model=model)


def walk_forward(cfg: Any, market: Any, *, folds: int = 3, train_fraction: float = 0.5,
                 instrument: str | None = None, progress: ProgressFactory | None = None) -> EvaluationReport:
    """Walk-forward evaluation of `market` bars (a marketdata.replay.BarArrays); see the module doc.

    Raises ValueError (too short), BarDataError (interval does not fit), TrainingError.
    """
    from nautilus_hmm.backtest import sim_venue_config
    from nautilus_hmm.hmm.data import to_base_interval

    hcfg = cfg.hmm
    base_s = hcfg.train.base_interval_s
    interval_s = int(market.interval_s)
    bars = to_base_interval(market, interval_s, base_s, market.path or "data")
    if interval_s != base_s:
        # Keep the market bars aligned with whole base bars (the first bucket may be partial).
        first_ns = int(bars.ts_open_ns[0])
        start = int(np.searchsorted(market.ts_open_ns, first_ns))
        market = market.slice(start)
    iid = instrument or cfg.strategy.instruments[0]
    need = min_training_bars(hcfg.train, hcfg.features.spec())
    bounds = fold_bounds(len(bars), folds, train_fraction, hcfg.train.window_bars, need)
    per_fold = training_restarts(hcfg.train) + 1  # the restarts, then the backtest
    results = []
    with (progress or no_progress)(len(bounds) * per_fold, "evaluate", "steps") as shown:
        for i, bd in enumerate(bounds):
            def step(done: int, total: int, what: str, i: int = i) -> None:
                shown.set_description(f"evaluate fold {i + 1}/{len(bounds)} {what}")
                shown.set(i * per_fold + done)

            results.append(run_fold(cfg, bars, market, bd, i, iid, on_progress=step))
    config = {"hmm": _asdict(hcfg), "taker_fee": sim_venue_config(cfg).taker_fee, "folds": folds,
              "train_fraction": train_fraction}
    return EvaluationReport(market.path, iid, base_s, results, config)


def _asdict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _asdict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return list(obj)
    return obj


# ---------------------------------------------------------------- picture


def plot_report(report: EvaluationReport, market: Any, path: str) -> None:
    """PNG: close price coloured by the macro regime in force, equity curves (PnL / capital) beneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    palette = ("#d62728", "#7f7f7f", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b")
    close_by_ts = dict(zip((market.ts_open_ns + market.interval_s * NS_PER_S).tolist(), market.close.tolist(),
                           strict=True))
    offset_p = offset_b = 0.0
    labels_seen: set[str] = set()
    for f in report.folds:
        if not f.equity:
            continue
        ts = np.array([e[0] for e in f.equity])
        t = ts.astype("datetime64[ns]")
        price = np.array([close_by_ts.get(int(x), np.nan) for x in ts])
        states = np.array([e[3] for e in f.equity])
        labels = f.model.macro.hmm.labels if f.model is not None else ()
        for k in np.unique(states):
            sel = states == k
            name = labels[k] if 0 <= k < len(labels) else "warming up"
            colour = "#bbbbbb" if k < 0 else palette[int(k) % len(palette)]
            if len(labels) == 2 and k == 1:
                colour = palette[2]  # down / up: red / green
            ax1.scatter(t[sel], price[sel], s=1.5, color=colour, label=None if name in labels_seen else name)
            labels_seen.add(name)
        pol = np.array([e[1] for e in f.equity]) + offset_p
        bh = np.array([e[2] for e in f.equity]) + offset_b
        ax2.plot(t, pol * 100, color="#1f77b4", lw=1, label="policy" if f.fold == 0 else None)
        ax2.plot(t, bh * 100, color="#ff7f0e", lw=1, label="buy & hold" if f.fold == 0 else None)
        offset_p, offset_b = pol[-1], bh[-1]
        for ax in (ax1, ax2):
            ax.axvline(t[0], color="#999999", lw=0.6, ls="--")
    ax1.set_ylabel("close")
    ax1.set_title(f"{report.instrument}: macro regime (filtered argmax) and walk-forward PnL")
    ax1.legend(markerscale=6, loc="best", fontsize=8)
    ax2.set_ylabel("PnL, % of capital")
    ax2.axhline(0, color="#555555", lw=0.5)
    ax2.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ evaluate


def evaluate(data: str, out: str, config: str | None = None, folds: int = 3, train_fraction: float = 0.5,
             instrument: str | None = None, plot: bool = True,
             progress: ProgressFactory | None = None) -> dict[str, Any]:
    """Walk-forward evaluation; writes report.json, report.md, equity.csv, evaluate.png and the fold models."""
    from nautilus_hmm.hmm.errors import TrainingError
    from nautilus_hmm.marketdata.replay import BarDataError

    if plot and importlib.util.find_spec("matplotlib") is None:
        raise CliError(EXIT_OTHER, "evaluate.png needs matplotlib, which is not installed: "
                                   "pip install -e '.[train]' (or pass --no-plot)")
    cfg = load_config_arg(config)
    market = load_market_arg(data)
    try:
        report = walk_forward(cfg, market, folds=folds, train_fraction=train_fraction, instrument=instrument,
                              progress=progress)
    except (TrainingError, BarDataError) as exc:
        raise CliError(EXIT_DATAERR, f"{data}: {exc}") from exc
    except ValueError as exc:
        raise CliError(EXIT_DATAERR, f"{data}: {exc}") from exc
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = report.to_dict()
    (out_dir / "report.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    (out_dir / "report.md").write_text(report_markdown(doc))
    with (out_dir / "equity.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fold", "ts_ns", "policy_pnl_frac", "buy_hold_pnl_frac", "macro_state"])
        for f in report.folds:
            w.writerows((f.fold, ts, f"{p:.8f}", f"{b:.8f}", s) for ts, p, b, s in f.equity)
    for f in report.folds:
        if f.model is not None:
            f.model.save(out_dir / f"fold{f.fold}" / "model.json")
    if plot:
        plot_report(report, market, str(out_dir / "evaluate.png"))
    return doc


def _pct(x: float) -> str:
    return f"{x * 100:+.2f} %"


def report_markdown(doc: dict[str, Any]) -> str:
    """A short Markdown summary of a report.json document."""
    t = doc["totals"]
    lines = [f"# Walk-forward evaluation: {doc['instrument']} ({Path(doc['data']).name})", "",
             f"{t['folds']} folds, {t['test_bars']} test bars of {doc['base_interval_s']} s; "
             f"PnL as a fraction of capital_usd = {doc['config']['hmm']['policy']['capital_usd']:g}.", "",
             "| fold | test from (UTC) | macro LL/bar (1-state) | micro LL/bar (1-state) | policy | buy & hold | fills |",
             "|---|---|---|---|---|---|---|"]
    from datetime import UTC, datetime

    for f in doc["folds"]:
        when = datetime.fromtimestamp(f["test_first_ns"] / 1e9, UTC).strftime("%Y-%m-%d %H:%M")
        lines.append(f"| {f['fold']} | {when} | {f['macro_loglik_per_bar']:.3f} ({f['macro_baseline_per_bar']:.3f}) "
                     f"| {f['micro_loglik_per_bar']:.3f} ({f['micro_baseline_per_bar']:.3f}) "
                     f"| {_pct(f['policy_pnl_frac'])} | {_pct(f['buy_hold_pnl_frac'])} | {f['backtest']['fills']} |")
    lines.append(f"| all | | {t['macro_loglik_per_bar']:.3f} ({t['macro_baseline_per_bar']:.3f}) "
                 f"| {t['micro_loglik_per_bar']:.3f} ({t['micro_baseline_per_bar']:.3f}) "
                 f"| {_pct(t['policy_pnl_frac'])} | {_pct(t['buy_hold_pnl_frac'])} | {t['fills']} |")
    lines += ["", "Macro regimes on the test bars (filtered argmax):", "",
              "| fold | state | occupancy | mean 1-bar log return | volatility | mean dwell (bars) |",
              "|---|---|---|---|---|---|"]
    for f in doc["folds"]:
        for s in f["macro_states"]:
            lines.append(f"| {f['fold']} | {s['label']} | {s['occupancy']:.2f} | {s['mean_return']:+.5f} "
                         f"| {s['volatility']:.5f} | {s['mean_dwell_bars']:.1f} |")
    return "\n".join(lines) + "\n"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from nautilus_hmm.models_cli import instrument_arg, output_dir_arg
    from nautilus_hmm.obs.progress import progress_factory

    output_dir_arg(args.out, "--out")  # checked before the data is read and any fold trained
    instrument_arg(args.instrument)
    doc = evaluate(args.data, args.out, args.config, args.folds, args.train_fraction, args.instrument,
                   plot=not args.no_plot, progress=progress_factory(enabled=not args.quiet))
    print(orjson.dumps(doc["totals"], option=orjson.OPT_INDENT_2).decode())
    print(f"wrote {args.out}/report.json, report.md, equity.csv" + ("" if args.no_plot else ", evaluate.png"),
          file=sys.stderr)
    return EXIT_OK


def add_command(subparsers: Any) -> None:
    """Add `evaluate` to the top-level subparsers."""
    from nautilus_hmm.venues.sim.factory import VENUE_NAME as SIM_VENUE

    ev = subparsers.add_parser("evaluate", help="walk-forward evaluation: out-of-sample fit, regimes, backtest")
    ev.add_argument("--data", required=True, help="klines CSV")
    ev.add_argument("--out", required=True, help="directory for report.json, report.md, equity.csv, evaluate.png")
    ev.add_argument("--config", help=f"config file ([hmm], [venues.{SIM_VENUE}] fees, [risk]); default: built-in defaults")
    ev.add_argument("--folds", type=int, default=3, help="test parts (default 3)")
    ev.add_argument("--train-fraction", type=float, default=0.5, help="share of the data before the first test part")
    ev.add_argument("--instrument", help="sim instrument to trade (default: the first [strategy] instrument)")
    ev.add_argument("--no-plot", action="store_true", help="skip evaluate.png")
    ev.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    ev.set_defaults(func=run_command(_cmd_evaluate))
