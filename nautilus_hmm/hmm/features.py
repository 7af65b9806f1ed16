"""Bar features, one definition served two ways: online (O(1) per bar) and batch (numpy).

Features at bar t (lc = log close, r1 = 1-bar log return, windows end at t inclusive):

* `ret_<h>`     lc[t] - lc[t-h]
* `rv_<w>`      sqrt(mean(r1^2)) over the last w returns (realized volatility per bar)
* `volz_<w>`    z-score of log1p(volume[t]) against the last w bars (population std;
                0 when the window is constant)
* `atr_<w>`     mean true range over the last w bars / close[t]
* `trend_<w>`   OLS slope of lc over the last w bars (per bar) / sqrt(mean(r1^2)) over the
                w-1 returns inside that window (a dimensionless, t-stat-like trend)
* `spread_bps`, `imbalance` (optional, when quotes exist): (ask-bid)/mid*1e4 and
                (bid_size-ask_size)/(bid_size+ask_size) at the bar close. A missing quote
                gives NaN in those columns; the filter then predicts only for that bar.

Session gaps (instruments with trading sessions, issue 14): a bar flagged `session_start`
(the first bar after a session break) is glued to the previous close. Every price feature is
computed on a gap-adjusted log close: at a session start the overnight jump
log(open) - log(previous close) is added to a running offset that is subtracted from every
later log close. So the first return of a session is log(close/open) of its first bar (what
happened in that bar), never the overnight move as if it were one bar's return; `ret_h`,
`rv_w` and `trend_w` windows that span a break see no jump; the true range of the first bar
is its own high - low (its open stands in for the previous close). Volume is unchanged.
Without flags (every crypto instrument) nothing changes.

Online windows keep running sums of values measured from an anchor; every `size` pushes
the anchor moves to the newest value and the sums are recomputed exactly (math.fsum),
and also at once when an outgoing value dwarfs what stays (catastrophic cancellation).
That bounds the rounding drift of add/subtract updates (amortized O(1)), so online equals
batch to ~1e-12 relative over any number of bars (tests/unit/hmm/test_features.py).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nautilus_hmm.domain.sessions import TradingSessions, is_session_break
from nautilus_hmm.hmm.errors import FeatureError
from nautilus_hmm.marketdata.replay import QUOTE_FIELDS, BarArrays

STD_EPS = 1e-12  # below this a window is treated as constant (z-score 0, trend 0)
CANCEL_RATIO = 1e3  # an outgoing squared deviation this much above the rest forces a recompute


def _positive_ints(name: str, values: Any, minimum: int) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise FeatureError(name, f"{values!r}: expected a list of integers") from exc
    if any(isinstance(v, bool) or int(v) != v for v in values):
        raise FeatureError(name, f"{values!r}: expected a list of integers")
    if not out:
        raise FeatureError(name, "must not be empty")
    if any(v < minimum for v in out):
        raise FeatureError(name, f"{list(out)}: every value must be >= {minimum}")
    if len(set(out)) != len(out) or list(out) != sorted(out):
        raise FeatureError(name, f"{list(out)}: must be strictly increasing")
    return out


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which features, over which windows (bars). Serialisable to JSON; stored in a model."""

    return_horizons: tuple[int, ...] = (1, 5, 15)
    vol_windows: tuple[int, ...] = (15, 60)
    volume_window: int = 60
    atr_window: int = 14
    trend_window: int = 30
    include_quotes: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "return_horizons",
                           _positive_ints("return_horizons", self.return_horizons, 1))
        if self.return_horizons[0] != 1:
            raise FeatureError("return_horizons", f"{list(self.return_horizons)}: must include 1 "
                               "(state labels are ordered by the 1-bar return)")
        object.__setattr__(self, "vol_windows", _positive_ints("vol_windows", self.vol_windows, 2))
        for name in ("volume_window", "atr_window", "trend_window"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or v >= 2):
                raise FeatureError(name, f"{v!r}: must be 0 (off) or an integer >= 2")
        if not isinstance(self.include_quotes, bool):
            raise FeatureError("include_quotes", f"{self.include_quotes!r}: expected true or false")

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names in column order."""
        out = [f"ret_{h}" for h in self.return_horizons]
        out += [f"rv_{w}" for w in self.vol_windows]
        if self.volume_window:
            out.append(f"volz_{self.volume_window}")
        if self.atr_window:
            out.append(f"atr_{self.atr_window}")
        if self.trend_window:
            out.append(f"trend_{self.trend_window}")
        if self.include_quotes:
            out += ["spread_bps", "imbalance"]
        return tuple(out)

    @property
    def n_features(self) -> int:
        """Number of feature columns (D)."""
        return len(self.names)

    @property
    def warmup_bars(self) -> int:
        """Bars before the first complete feature row (online returns None for these)."""
        need = [self.return_horizons[-1], self.vol_windows[-1]]
        if self.volume_window:
            need.append(self.volume_window - 1)
        if self.atr_window:
            need.append(self.atr_window)
        if self.trend_window:
            need.append(self.trend_window - 1)
        return max(need)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "return_horizons": list(self.return_horizons),
            "vol_windows": list(self.vol_windows),
            "volume_window": self.volume_window,
            "atr_window": self.atr_window,
            "trend_window": self.trend_window,
            "include_quotes": self.include_quotes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of to_dict; unknown or missing keys are FeatureErrors."""
        if not isinstance(data, Mapping):
            raise FeatureError("feature_spec", f"expected an object, got {type(data).__name__}")
        known = ("return_horizons", "vol_windows", "volume_window", "atr_window", "trend_window",
                 "include_quotes")
        extra = sorted(set(data) - set(known))
        if extra:
            raise FeatureError(extra[0], "unknown key in feature spec")
        missing = [k for k in known if k not in data]
        if missing:
            raise FeatureError(missing[0], "missing from feature spec")
        return cls(**{k: data[k] for k in known})


class _Window:
    """Last `size` values with anchored sums Σd, Σd², Σj·d (d = x - anchor, j = 0 oldest)."""

    __slots__ = ("anchor", "pushes", "s1", "s2", "size", "sj", "values")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: deque[float] = deque(maxlen=size)
        self.anchor = 0.0
        self.s1 = self.s2 = self.sj = 0.0
        self.pushes = 0

    def push(self, x: float) -> None:
        d = x - self.anchor
        n = len(self.values)
        if n == self.size:
            old = self.values[0] - self.anchor
            # Dropping the oldest shifts every index down by one.
            self.sj += (n - 1) * d - (self.s1 - old)
            self.s1 += d - old
            self.s2 += d * d - old * old
            if old * old > CANCEL_RATIO * self.s2:
                # A value far larger than what remains left the window: the subtraction
                # cancelled most digits, so rebuild the sums exactly now.
                self.values.append(x)
                self._recompute()
                return
        else:
            self.sj += n * d
            self.s1 += d
            self.s2 += d * d
        self.values.append(x)
        self.pushes += 1
        if self.pushes >= self.size:
            self._recompute()

    def _recompute(self) -> None:
        a = self.values[-1]
        ds = [v - a for v in self.values]
        self.anchor = a
        self.s1 = math.fsum(ds)
        self.s2 = math.fsum(d * d for d in ds)
        self.sj = math.fsum(j * d for j, d in enumerate(ds))
        self.pushes = 0

    @property
    def full(self) -> bool:
        return len(self.values) == self.size

    def mean(self) -> float:
        return self.anchor + self.s1 / self.size

    def var(self) -> float:
        n = self.size
        return max(0.0, (self.s2 - self.s1 * self.s1 / n) / n)

    def slope(self) -> float:
        n = self.size
        return (self.sj - 0.5 * (n - 1) * self.s1) / (n * (n * n - 1) / 12.0)


def check_bar(open: float, high: float, low: float, close: float, volume: float) -> None:
    """Raise FeatureError naming the field of a non-finite or inconsistent bar value."""
    for name, v in (("open", open), ("high", high), ("low", low), ("close", close)):
        if not (math.isfinite(v) and v > 0.0):
            raise FeatureError(name, f"{v!r}: prices must be finite and > 0")
    if high < low:
        raise FeatureError("high", f"{high!r} is below low {low!r}")
    if not (math.isfinite(volume) and volume >= 0.0):
        raise FeatureError("volume", f"{volume!r}: must be finite and >= 0")


class FeatureEngine:
    """Online features: `update()` per closed bar, O(1) amortized; None during warm-up."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._lc: deque[float] = deque(maxlen=spec.return_horizons[-1] + 1)
        sq_sizes = set(spec.vol_windows)
        if spec.trend_window:
            sq_sizes.add(spec.trend_window - 1)
        self._r2 = {w: _Window(w) for w in sorted(sq_sizes)}
        self._vol = _Window(spec.volume_window) if spec.volume_window else None
        self._tr = _Window(spec.atr_window) if spec.atr_window else None
        self._trend = _Window(spec.trend_window) if spec.trend_window else None
        self._prev_close: float | None = None
        self._gap = 0.0  # sum of the overnight log jumps skipped at session starts
        self._n_bars = 0
        self._warmup = spec.warmup_bars

    @property
    def n_bars(self) -> int:
        """Bars seen so far."""
        return self._n_bars

    @property
    def ready(self) -> bool:
        """True once update() returns feature rows."""
        return self._n_bars > self._warmup

    def update(self, open: float, high: float, low: float, close: float, volume: float,
               bid: float | None = None, ask: float | None = None,
               bid_size: float | None = None, ask_size: float | None = None,
               session_start: bool = False) -> np.ndarray | None:
        """Feed one closed bar; the feature row (D,) or None during warm-up.

        `session_start`: the bar opens a new trading session; the jump from the previous
        close to its open is taken out of every price feature (module docstring).
        A bad bar raises FeatureError naming the field and leaves the state unchanged.
        """
        check_bar(open, high, low, close, volume)
        prev_close = self._prev_close
        if session_start and prev_close is not None:
            self._gap += math.log(open) - math.log(prev_close)
            prev_close = open
        lc = math.log(close) - self._gap if self._gap else math.log(close)
        if prev_close is not None:
            r1 = lc - self._lc[-1]
            r2 = r1 * r1
            for win in self._r2.values():
                win.push(r2)
            if self._tr is not None:
                self._tr.push(max(high, prev_close) - min(low, prev_close))
        self._lc.append(lc)
        if self._vol is not None:
            self._vol.push(math.log1p(volume))
        if self._trend is not None:
            self._trend.push(lc)
        self._prev_close = close
        self._n_bars += 1
        if self._n_bars <= self._warmup:
            return None
        spec = self.spec
        out = np.empty(spec.n_features, dtype=np.float64)
        i = 0
        lcs = self._lc
        for h in spec.return_horizons:
            out[i] = lc - lcs[-1 - h]
            i += 1
        for w in spec.vol_windows:
            out[i] = math.sqrt(max(0.0, self._r2[w].mean()))
            i += 1
        if self._vol is not None:
            std = math.sqrt(self._vol.var())
            out[i] = (math.log1p(volume) - self._vol.mean()) / std if std > STD_EPS else 0.0
            i += 1
        if self._tr is not None:
            out[i] = self._tr.mean() / close
            i += 1
        if self._trend is not None:
            sigma = math.sqrt(max(0.0, self._r2[spec.trend_window - 1].mean()))
            out[i] = self._trend.slope() / sigma if sigma > STD_EPS else 0.0
            i += 1
        if spec.include_quotes:
            out[i], out[i + 1] = _quote_features(bid, ask, bid_size, ask_size)
        return out


def session_starts_for(sessions: TradingSessions | None, ts_open_ns: np.ndarray, base_interval_s: int) -> np.ndarray:
    """Which base bars open a trading session (`domain.sessions.is_session_break` bar by bar,
    as `RegimeTracker` decides live); all False for a 24/7 instrument."""
    ts = np.asarray(ts_open_ns, dtype=np.int64)
    out = np.zeros(ts.shape[0], dtype=bool)
    if sessions is None or sessions.always:
        return out
    prev: int | None = None
    for i, t in enumerate(ts.tolist()):
        out[i] = is_session_break(sessions, prev, t, base_interval_s)
        prev = t
    return out


def _quote_features(bid: float | None, ask: float | None, bid_size: float | None,
                    ask_size: float | None) -> tuple[float, float]:
    nan = float("nan")
    spread = nan
    if bid is not None and ask is not None and bid > 0 and ask > 0 and ask >= bid:
        spread = (ask - bid) / (0.5 * (ask + bid)) * 1e4
    imb = nan
    if bid_size is not None and ask_size is not None and bid_size >= 0 and ask_size >= 0:
        tot = bid_size + ask_size
        imb = (bid_size - ask_size) / tot if tot > 0 else 0.0
    return spread, imb


def _as_bars(arrays: BarArrays | Mapping[str, np.ndarray]) -> BarArrays:
    if isinstance(arrays, BarArrays):
        return arrays
    cols = {k: arrays[k] for k in ("open", "high", "low", "close", "volume")}
    n = np.asarray(arrays["close"]).shape[0]
    ts = arrays["ts_open_ns"] if "ts_open_ns" in arrays else np.arange(n, dtype=np.int64)
    quotes = {k: arrays.get(k) for k in QUOTE_FIELDS}
    return BarArrays(ts_open_ns=ts, **cols, **quotes)


def _rolling_sum(x: np.ndarray, w: int) -> np.ndarray:
    return sliding_window_view(x, w).sum(axis=1)


def compute_batch(spec: FeatureSpec, arrays: BarArrays | Mapping[str, np.ndarray],
                  session_starts: np.ndarray | None = None) -> np.ndarray:
    """Feature matrix (T, D) over whole arrays; the first `spec.warmup_bars` rows are NaN.

    `session_starts` (bool, T): bars that open a trading session; their overnight jump is
    taken out of every price feature, as `FeatureEngine.update(session_start=True)` does.
    """
    bars = _as_bars(arrays)
    bars.validate()
    t_len = len(bars)
    out = np.full((t_len, spec.n_features), np.nan)
    warm = spec.warmup_bars
    if t_len <= warm:
        return out
    lc = np.log(bars.close)
    prev_close = bars.close[:-1]
    if session_starts is not None:
        starts = np.asarray(session_starts, dtype=bool)
        if starts.shape != (t_len,):
            raise FeatureError("session_starts", f"shape {starts.shape}: expected ({t_len},)")
        starts = starts.copy()
        starts[0] = False  # nothing before the first bar to glue to
        if starts.any():
            jump = np.zeros(t_len)
            jump[starts] = np.log(bars.open[starts]) - np.log(bars.close[np.flatnonzero(starts) - 1])
            gap = np.cumsum(jump)  # sequential, like the online running offset
            lc = lc - gap
            prev_close = np.where(starts[1:], bars.open[1:], bars.close[:-1])
    r2 = np.diff(lc) ** 2  # r2[k] is the squared return of bar k+1
    col = 0
    for h in spec.return_horizons:
        out[h:, col] = lc[h:] - lc[:-h]
        col += 1
    for w in spec.vol_windows:
        out[w:, col] = np.sqrt(_rolling_sum(r2, w) / w)
        col += 1
    if spec.volume_window:
        w = spec.volume_window
        y = np.log1p(bars.volume)
        win = sliding_window_view(y, w)
        std = win.std(axis=1)
        z = np.zeros_like(std)
        ok = std > STD_EPS
        z[ok] = (y[w - 1:][ok] - win.mean(axis=1)[ok]) / std[ok]
        out[w - 1:, col] = z
        col += 1
    if spec.atr_window:
        w = spec.atr_window
        prev = prev_close
        tr = np.maximum(bars.high[1:], prev) - np.minimum(bars.low[1:], prev)
        out[w:, col] = _rolling_sum(tr, w) / w / bars.close[w:]
        col += 1
    if spec.trend_window:
        w = spec.trend_window
        win = sliding_window_view(lc, w)
        x = np.arange(w, dtype=np.float64) - 0.5 * (w - 1)
        slope = ((win - win[:, -1:]) @ x) / (w * (w * w - 1) / 12.0)
        sigma = np.sqrt(_rolling_sum(r2, w - 1) / (w - 1))
        trend = np.zeros_like(slope)
        ok = sigma > STD_EPS
        trend[ok] = slope[ok] / sigma[ok]
        out[w - 1:, col] = trend
        col += 1
    if spec.include_quotes:
        if not bars.has_quotes:
            raise FeatureError("bid", "the feature spec includes quote features but the bars have no "
                               "bid/ask/bid_size/ask_size columns")
        bid, ask = bars.bid, bars.ask
        bsz, asz = bars.bid_size, bars.ask_size
        assert bid is not None and ask is not None and bsz is not None and asz is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = (bid > 0) & (ask > 0) & (ask >= bid)
            out[:, col] = np.where(ok, (ask - bid) / (0.5 * (ask + bid)) * 1e4, np.nan)
            tot = bsz + asz
            imb = np.where(tot > 0, (bsz - asz) / tot, 0.0)
            out[:, col + 1] = np.where((bsz >= 0) & (asz >= 0), imb, np.nan)
    out[:warm] = np.nan
    return out


@dataclass(frozen=True, slots=True)
class Scaler:
    """Per-feature standardisation fitted on the training window only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        """Fit on the rows of `x` without NaN; a constant column gets std 1."""
        rows = x[~np.isnan(x).any(axis=1)]
        if rows.shape[0] < 2:
            raise FeatureError("scaler", f"needs at least 2 complete rows, got {rows.shape[0]}")
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        std = np.where(std > STD_EPS, std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(x - mean) / std for one row (D,) or a matrix (T, D); NaN stays NaN."""
        return (x - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Back to feature units."""
        return z * self.std + self.mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}
