"""Offline analysis of regime models: inference tables and walk-forward evaluation.

`infer_table` runs a model over base bars exactly as the live tracker does (batch
features equal online ones; each filter starts at its level's first complete feature
row and treats a NaN row as missing) and returns, per bar of each level and per HMM,
the standardised feature vector it consumed and its filtered posterior.

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
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from nautilus_hmm.hmm.bars import NS_PER_S, BarArrays
from nautilus_hmm.hmm.filter import ForwardFilter
from nautilus_hmm.hmm.model import HmmParams, RegimeModel
from nautilus_hmm.hmm.train import LevelData, min_training_bars, prepare_level

LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------- inference


@dataclass(frozen=True, slots=True)
class LevelInference:
    """One level over some bars: features, and each HMM's filtered posteriors (NaN before ready)."""

    level: LevelData
    interval_s: int
    posteriors: tuple[np.ndarray, ...]  # per HMM: (T, K)
    loglik_steps: tuple[np.ndarray, ...]  # per HMM: (T,) one-step predictive log-density (NaN if none)

    @property
    def close_ns(self) -> np.ndarray:
        """When each bar of the level closed."""
        return self.level.bars.ts_ns + self.interval_s * NS_PER_S


def _run_filter(params: HmmParams, z: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors and per-step predictive log-densities from the first valid row on."""
    t_len, k = z.shape[0], params.n_states
    post = np.full((t_len, k), np.nan)
    steps = np.full(t_len, np.nan)
    first = np.flatnonzero(valid)
    if not first.size:
        return post, steps
    filt: ForwardFilter = params.filter()
    for t in range(int(first[0]), t_len):
        before = filt.log_likelihood
        post[t] = filt.update(z[t])
        if valid[t]:
            steps[t] = filt.log_likelihood - before
    return post, steps


def infer_levels(model: RegimeModel, bars: BarArrays) -> tuple[LevelInference, LevelInference, np.ndarray]:
    """Macro and micro inference over base bars, and the macro regime in force at each micro bar (-1 = none)."""
    base = model.base_interval_s
    macro = prepare_level("macro", bars, model.macro.features, model.macro.interval_s, base,
                          scaler=model.macro.scaler)
    micro = prepare_level("micro", bars, model.micro.features, model.micro.interval_s, base,
                          scaler=model.micro.scaler)
    m_post, m_steps = _run_filter(model.macro.hmm, macro.z, macro.valid)
    micro_runs = [_run_filter(h, micro.z, micro.valid) for h in model.micro.hmms]
    macro_inf = LevelInference(macro, model.macro.interval_s, (m_post,), (m_steps,))
    micro_inf = LevelInference(micro, model.micro.interval_s, tuple(p for p, _ in micro_runs),
                               tuple(s for _, s in micro_runs))
    # The regime of a micro bar: argmax of the last macro bar closed at or before it closed.
    macro_close = macro.bars.ts_ns + model.macro.interval_s * NS_PER_S
    micro_close = micro.bars.ts_ns + model.micro.interval_s * NS_PER_S
    idx = np.searchsorted(macro_close, micro_close, side="right") - 1
    regime = np.full(len(micro.bars), -1, dtype=np.int64)
    ok = idx >= 0
    ready = ~np.isnan(m_post[:, 0])
    arg = np.where(ready, np.nan_to_num(m_post).argmax(axis=1), -1)
    regime[ok] = arg[idx[ok]]
    return macro_inf, micro_inf, regime


def _fmt_time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def infer_table(model: RegimeModel, bars: BarArrays) -> tuple[list[str], list[list[Any]]]:
    """CSV header and rows: per bar of each level and per HMM, z features and posteriors.

    Columns: level, hmm, ts_open_ns, time_utc, active, state, z_<feature>..., p_0...
    (documented in docs/HMM.md). Rows are in the order the live tracker processes bars
    (by close time; macro before micro on a shared close).
    """
    macro, micro, regime = infer_levels(model, bars)
    names = list(model.macro.features.names)
    names += [n for n in model.micro.features.names if n not in names]
    k_max = max(model.macro.hmm.n_states, *(h.n_states for h in model.micro.hmms))
    header = ["level", "hmm", "ts_open_ns", "time_utc", "active", "state",
              *(f"z_{n}" for n in names), *(f"p_{i}" for i in range(k_max))]
    keyed: list[tuple[int, int, int, list[Any]]] = []

    def emit(level: str, inf: LevelInference, h: int, params: HmmParams, active: np.ndarray, order: int) -> None:
        cols = [names.index(n) for n in (model.macro.features.names if level == "macro"
                                         else model.micro.features.names)]
        z, post = inf.level.z, inf.posteriors[h]
        ts, close = inf.level.bars.ts_ns, inf.close_ns
        for t in range(len(ts)):
            zrow: list[Any] = [""] * len(names)
            if inf.level.valid[t]:
                for j, c in enumerate(cols):
                    zrow[c] = repr(float(z[t, j]))
            ready = not np.isnan(post[t, 0])
            prow: list[Any] = [""] * k_max
            state = ""
            if ready:
                for i in range(params.n_states):
                    prow[i] = repr(float(post[t, i]))
                state = params.labels[int(post[t].argmax())]
            row = [level, h, int(ts[t]), _fmt_time(int(ts[t])), int(bool(active[t])), state, *zrow, *prow]
            keyed.append((int(close[t]), order, h, row))

    emit("macro", macro, 0, model.macro.hmm, np.ones(len(macro.level.bars), dtype=bool), 0)
    for h, params in enumerate(model.micro.hmms):
        emit("micro", micro, h, params, regime == h, 1)
    keyed.sort(key=lambda r: (r[0], r[1], r[2]))
    return header, [r[3] for r in keyed]


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
             instrument: str) -> FoldResult:
    """Train on [train_start, test_start), score and backtest [test_start, test_stop)."""
    from nautilus_hmm.backtest import Backtest
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.hmm.strategy import HmmStrategy, required_history_bars
    from nautilus_hmm.hmm.train import train_model
    from nautilus_hmm.messages import PolicyDecision

    hcfg = cfg.hmm
    a, b, c = bounds
    train = bars.slice(a, b)
    model = train_model(train, hcfg.features.spec(), hcfg.train, instrument=instrument)
    ctx_len = required_history_bars(hcfg, (model,))
    ctx_start = max(a, b - ctx_len)
    test_from_ns = int(bars.ts_ns[b])  # bars closing after the first test bar opened
    scores = score_oos(model, bars.slice(ctx_start, c), test_from_ns, train)

    iid = InstrumentId.parse(instrument)
    interval_s = int(market.interval_s)
    strategy = HmmStrategy("hmm", (iid,), hcfg, model, f"fold{fold}", bar_interval_s=interval_s)
    bt_cfg = dataclasses.replace(cfg, strategy=dataclasses.replace(cfg.strategy, kind="hmm",
                                                                   instruments=(instrument,)))
    base_ns = model.base_interval_s * NS_PER_S
    m_start = int(np.searchsorted(market.ts_open_ns, int(bars.ts_ns[b])))
    m_stop = int(np.searchsorted(market.ts_open_ns, int(bars.ts_ns[c - 1]) + base_ns))
    test_market = market.slice(m_start, m_stop)
    bt = Backtest(bt_cfg, test_market, strategy, instrument)
    strategy.warm_up(iid, bars.slice(ctx_start, b))
    decisions: dict[str, int] = {}
    bt.bus.subscribe(PolicyDecision, lambda d: decisions.__setitem__(d.action, decisions.get(d.action, 0) + 1))
    result, equity = bt.run()
    capital = hcfg.policy.capital_usd
    start_eq = result.initial_equity
    test = bars.slice(b, c)
    bh = _buy_and_hold(test, capital, cfg.venues.sim.taker_fee)
    macro_inf = scores["macro_inference"]
    m_post = macro_inf.posteriors[0]
    m_state = np.where(~np.isnan(m_post[:, 0]), np.nan_to_num(m_post).argmax(axis=1), -1)
    idx = np.searchsorted(macro_inf.close_ns, test.ts_ns + model.base_interval_s * NS_PER_S, side="right") - 1
    state_at = np.where(idx >= 0, m_state[np.clip(idx, 0, None)], -1)
    # Equity points are per data bar; the base-bar curves are sampled at base-bar closes.
    eq_by_ts = dict(equity)
    curve = []
    for i in range(len(test)):
        close_ns = int(test.ts_ns[i]) + model.base_interval_s * NS_PER_S
        e = eq_by_ts.get(close_ns)
        if e is None:
            continue
        curve.append((close_ns, (e - start_eq) / capital, bh[i], int(state_at[i])))
    m_ll, m_base, m_n = scores["macro"]
    u_ll, u_base, u_n = scores["micro"]
    return FoldResult(
        fold=fold, train_first_ns=int(train.ts_ns[0]), train_last_ns=int(train.ts_ns[-1]), train_bars=len(train),
        test_first_ns=int(test.ts_ns[0]), test_last_ns=int(test.ts_ns[-1]), test_bars=len(test),
        macro_loglik_per_bar=m_ll, macro_baseline_per_bar=m_base, macro_bars_scored=m_n,
        micro_loglik_per_bar=u_ll, micro_baseline_per_bar=u_base, micro_bars_scored=u_n,
        macro_states=scores["macro_states"], micro_states=scores["micro_states"],
        backtest=result.as_dict(), policy_pnl_frac=(result.final_equity - start_eq) / capital,
        buy_hold_pnl_frac=bh[-1], decisions=decisions, equity=curve, model=model)


def walk_forward(cfg: Any, market: Any, *, folds: int = 3, train_fraction: float = 0.5,
                 instrument: str | None = None) -> EvaluationReport:
    """Walk-forward evaluation of `market` bars (a marketdata.replay.BarArrays); see the module doc.

    Raises ValueError (too short), BarDataError (interval does not fit), TrainingError.
    """
    from nautilus_hmm.hmm.data import from_market_bars, to_base_interval

    hcfg = cfg.hmm
    base_s = hcfg.train.base_interval_s
    interval_s = int(market.interval_s)
    bars = to_base_interval(from_market_bars(market), interval_s, base_s, market.path or "data")
    if interval_s != base_s:
        # Keep the market bars aligned with whole base bars (the first bucket may be partial).
        first_ns = int(bars.ts_ns[0])
        start = int(np.searchsorted(market.ts_open_ns, first_ns))
        market = market.slice(start)
    iid = instrument or cfg.strategy.instruments[0]
    need = min_training_bars(hcfg.train, hcfg.features.spec())
    bounds = fold_bounds(len(bars), folds, train_fraction, hcfg.train.window_bars, need)
    results = [run_fold(cfg, bars, market, bd, i, iid) for i, bd in enumerate(bounds)]
    config = {"hmm": _asdict(hcfg), "taker_fee": cfg.venues.sim.taker_fee, "folds": folds,
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
