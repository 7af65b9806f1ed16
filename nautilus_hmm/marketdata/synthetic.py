"""A seeded regime-switching market: trades and quotes per symbol, deterministic per seed.

Each symbol follows a geometric Brownian motion whose drift, volatility, spread and
trade size depend on a hidden regime. The regime is a continuous-time Markov chain: in
regime k the chance of leaving during a step of `dt` seconds is
`1 - exp(-dt / mean_duration_s[k])`, and where it goes is drawn from row k of
`switch_matrix` (zero diagonal, rows sum to 1). Making switching depend on elapsed time,
not on the number of calls, keeps the regime statistics independent of the tick rate.

Determinism: every symbol has its own RNGs seeded from `(seed, symbol)`, so a symbol's
path depends only on the seed and the timestamps it is asked for; adding a symbol or
asking for quotes does not change any other path.

Continuity: `state()` is the market as JSON-able data (per symbol: price, log price,
regime, last trade time and both RNG states); `restore(state)` continues from it, so a
paper market that stops and starts again resumes at its last price and regime instead of
jumping back to the seed price. The time it was stopped is a pause: the first trade after
a restore steps one `tick_interval_s`, as the uninterrupted market's next trade would.

Pure: no asyncio, no clock, no files; the caller passes timestamps and stores the state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nautilus_hmm.domain.enums import Side
from nautilus_hmm.marketdata.replay import BarArrays

NS_PER_S = 1_000_000_000
STATE_VERSION = 1  # of SyntheticMarket.state()
HISTORY_CHUNK_BARS = 2048  # bars generated at a time by SyntheticMarket.history
_S_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Regime:
    """Parameters of one hidden regime (returns are log returns)."""

    name: str
    drift_per_day: float
    vol_per_day: float
    mean_duration_s: float
    spread_bps: float
    size_mult: float


DEFAULT_REGIMES: tuple[Regime, ...] = (
    Regime("calm_up", drift_per_day=0.03, vol_per_day=0.02, mean_duration_s=6 * 3600.0,
           spread_bps=1.0, size_mult=1.0),
    Regime("calm_down", drift_per_day=-0.03, vol_per_day=0.02, mean_duration_s=6 * 3600.0,
           spread_bps=1.0, size_mult=1.0),
    Regime("volatile", drift_per_day=0.0, vol_per_day=0.08, mean_duration_s=2 * 3600.0,
           spread_bps=4.0, size_mult=2.5),
)

# Where a regime goes when it ends (rows: from, columns: to).
DEFAULT_SWITCH_MATRIX: tuple[tuple[float, ...], ...] = (
    (0.0, 0.5, 0.5),
    (0.5, 0.0, 0.5),
    (0.5, 0.5, 0.0),
)


@dataclass(frozen=True, slots=True)
class SyntheticTrade:
    """One generated trade. `aggressor` is the taker side."""

    price: float
    size: float
    aggressor: Side


@dataclass(frozen=True, slots=True)
class SyntheticQuote:
    """Best bid/ask around the current price."""

    bid: float
    bid_size: float
    ask: float
    ask_size: float


class _SymbolState:
    __slots__ = ("decimals", "last_ts_ns", "log_price", "price", "quote_rng", "regime",
                 "rng", "tick")

    def __init__(self, seed: int, symbol: str, price: float, tick: float) -> None:
        # String seeds hash with SHA-512 in CPython: stable across runs and processes.
        self.rng = random.Random(f"{seed}:{symbol}:trades")
        self.quote_rng = random.Random(f"{seed}:{symbol}:quotes")
        self.log_price = math.log(price)
        self.tick = tick
        self.decimals = max(0, -math.floor(math.log10(tick)) + 1)
        self.price = _round_to(price, tick, self.decimals)
        self.regime = 0
        self.last_ts_ns = -1


def _round_to(price: float, tick: float, decimals: int) -> float:
    return round(round(price / tick) * tick, decimals)


class SyntheticMarket:
    """Regime-switching trade/quote generator for a set of symbols (see module doc)."""

    def __init__(
        self,
        initial_prices: Mapping[str, float],
        seed: int = 7,
        tick_interval_s: float = 1.0,
        *,
        regimes: Sequence[Regime] = DEFAULT_REGIMES,
        switch_matrix: Sequence[Sequence[float]] = DEFAULT_SWITCH_MATRIX,
        tick_sizes: Mapping[str, float] | None = None,
        mean_trade_notional: float = 20_000.0,
    ) -> None:
        if not initial_prices:
            raise ValueError("initial_prices must name at least one symbol")
        if tick_interval_s <= 0:
            raise ValueError(f"tick_interval_s must be > 0, got {tick_interval_s}")
        _check_switch_matrix(switch_matrix, len(regimes))
        for sym, px in initial_prices.items():
            if not (px > 0 and math.isfinite(px)):
                raise ValueError(f"initial price of {sym} must be a positive number, got {px!r}")
        self.seed = seed
        self.tick_interval_s = tick_interval_s
        self.regimes = tuple(regimes)
        self.switch_matrix = tuple(tuple(r) for r in switch_matrix)
        self.mean_trade_notional = mean_trade_notional
        self._drift_per_s = [r.drift_per_day / _S_PER_DAY for r in self.regimes]
        self._vol_per_sqrt_s = [r.vol_per_day / math.sqrt(_S_PER_DAY) for r in self.regimes]
        self._cum_switch = [_cumulative(row) for row in self.switch_matrix]
        ticks = tick_sizes or {}
        self._states: dict[str, _SymbolState] = {}
        for sym, px in initial_prices.items():
            st = _SymbolState(seed, sym, px, ticks.get(sym, _default_tick(px)))
            st.regime = st.rng.randrange(len(self.regimes))
            self._states[sym] = st

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols this market generates."""
        return tuple(self._states)

    def price(self, symbol: str) -> float:
        """Current (last traded) price."""
        return self._state(symbol).price

    def regime(self, symbol: str) -> int:
        """Index of the current hidden regime (for tests and research labels)."""
        return self._state(symbol).regime

    def regime_name(self, symbol: str) -> str:
        """Name of the current hidden regime."""
        return self.regimes[self._state(symbol).regime].name

    def next_trade(self, symbol: str, ts_ns: int) -> SyntheticTrade:
        """Advance `symbol` to `ts_ns` and return the trade printed there.

        The first call steps `tick_interval_s`; later calls step the elapsed time (a call
        at the same or an earlier timestamp steps zero: price unchanged, a new print).
        """
        price, size, buy = self._step(self._state(symbol), ts_ns)
        return SyntheticTrade(price, size, Side.BUY if buy else Side.SELL)

    def _step(self, st: _SymbolState, ts_ns: int) -> tuple[float, float, bool]:
        """One trade: (price, size, taker is buyer)."""
        rng = st.rng
        dt_s = self.tick_interval_s if st.last_ts_ns < 0 else max(0.0, (ts_ns - st.last_ts_ns) / NS_PER_S)
        if ts_ns > st.last_ts_ns:
            st.last_ts_ns = ts_ns
        k = st.regime
        if dt_s > 0.0:
            leave_p = 1.0 - math.exp(-dt_s / self.regimes[k].mean_duration_s)
            if rng.random() < leave_p:
                u = rng.random()
                cum = self._cum_switch[k]
                k = next((j for j, c in enumerate(cum) if u < c), len(cum) - 1)
                st.regime = k
            ret = self._drift_per_s[k] * dt_s + self._vol_per_sqrt_s[k] * math.sqrt(dt_s) * rng.gauss(0.0, 1.0)
        else:
            ret = 0.0
        st.log_price += ret
        price = _round_to(math.exp(st.log_price), st.tick, st.decimals)
        if price <= 0.0:
            price = st.tick
        st.price = price
        # Takers lean with the move: 70/30 in its direction, 50/50 when flat.
        p_buy = 0.5 if ret == 0.0 else (0.7 if ret > 0.0 else 0.3)
        buy = rng.random() < p_buy
        mean_size = self.mean_trade_notional * self.regimes[k].size_mult / price
        size = round(max(rng.expovariate(1.0 / mean_size), mean_size * 1e-3), 8)
        return price, size, buy

    def quote(self, symbol: str) -> SyntheticQuote:
        """Best bid/ask around the current price: the regime's spread, at least one tick."""
        st = self._state(symbol)
        rng = st.quote_rng
        half = max(st.price * self.regimes[st.regime].spread_bps / 20_000.0, st.tick / 2.0)
        bid = _round_to(math.floor((st.price - half) / st.tick) * st.tick, st.tick, st.decimals)
        ask = _round_to(math.ceil((st.price + half) / st.tick) * st.tick, st.tick, st.decimals)
        if ask <= bid:
            ask = _round_to(bid + st.tick, st.tick, st.decimals)
        if bid <= 0.0:
            bid = st.tick
            ask = max(ask, 2 * st.tick)
        mean_size = self.mean_trade_notional * 5.0 / st.price
        return SyntheticQuote(
            bid, round(rng.expovariate(1.0 / mean_size), 8) or mean_size,
            ask, round(rng.expovariate(1.0 / mean_size), 8) or mean_size,
        )

    def generate_bars(
        self, symbol: str, start_ns: int, n_bars: int, interval_s: int = 60, trades_per_bar: int = 4
    ) -> tuple[BarArrays, np.ndarray]:
        """`n_bars` bars of `symbol` from `trades_per_bar` evenly spaced trades each.

        Returns the bars and the hidden regime index at each bar's close (int8), for
        training and testing regime models on data whose truth is known. Advances this
        symbol's state like the equivalent `next_trade` calls would.
        """
        if n_bars < 1 or trades_per_bar < 1 or interval_s < 1:
            raise ValueError("n_bars, trades_per_bar and interval_s must be >= 1")
        ival_ns = interval_s * NS_PER_S
        step_ns = ival_ns // trades_per_bar
        ts = np.empty(n_bars, dtype=np.int64)
        o = np.empty(n_bars)
        h = np.empty(n_bars)
        lo = np.empty(n_bars)
        c = np.empty(n_bars)
        v = np.empty(n_bars)
        labels = np.empty(n_bars, dtype=np.int8)
        start = start_ns - start_ns % ival_ns
        st = self._state(symbol)
        step = self._step
        for i in range(n_bars):
            bar_ns = start + i * ival_ns
            bo, bv, _ = step(st, bar_ns)
            bh = bl = bc = bo
            for j in range(1, trades_per_bar):
                p, sz, _ = step(st, bar_ns + j * step_ns)
                bv += sz
                if p > bh:
                    bh = p
                elif p < bl:
                    bl = p
                bc = p
            ts[i] = bar_ns
            o[i], h[i], lo[i], c[i], v[i] = bo, bh, bl, bc, bv
            labels[i] = st.regime
        return BarArrays(ts, o, h, lo, c, v, interval_s, f"synthetic:{symbol}:seed={self.seed}"), labels

    def history(self, symbol: str, end_ns: int, n_bars: int, interval_s: int = 60, *,
                end_price: float | None = None, max_trades_per_bar: int = 240) -> BarArrays:
        """`n_bars` closed bars of `symbol` before `end_ns`, ending at its current price.

        A past for the live path: the same regimes, switching and trade rate
        (`interval_s / tick_interval_s` trades per bar, so volumes and ranges look like
        the live bars'), drawn with numpy from an RNG seeded by (seed, symbol, end) and
        pinned so the last close is the symbol's current price (or `end_price`); at most
        `max_trades_per_bar` trades make a bar. Deterministic; does not
        touch the live state. Vectorised: 43,200 one-minute bars at 2 trades/s take well
        under a second.
        """
        if n_bars < 1 or interval_s < 1:
            raise ValueError("n_bars and interval_s must be >= 1")
        st = self._state(symbol)
        ival_ns = interval_s * NS_PER_S
        last_open = end_ns - end_ns % ival_ns - ival_ns  # the last bar closed at or before end_ns
        per_bar = max(1, min(max_trades_per_bar, round(interval_s / self.tick_interval_s)))
        dt_s = interval_s / per_bar
        rng = np.random.default_rng(list(f"{self.seed}:{symbol}:history:{last_open}".encode()))
        regimes = self._history_regimes(rng, st.regime, n_bars * per_bar, dt_s)
        drift = np.asarray(self._drift_per_s) * dt_s
        vol = np.asarray(self._vol_per_sqrt_s) * math.sqrt(dt_s)
        # Fewer trades than the live rate (max_trades_per_bar): each one bigger, same volume.
        live_per_bar = max(1.0, interval_s / self.tick_interval_s)
        size_scale = np.asarray([r.size_mult for r in self.regimes]) * self.mean_trade_notional * (
            live_per_bar / per_bar)
        # Bars in chunks (a few MB at a time, not n_bars x per_bar arrays at once), in log
        # price from 0; shifted at the end so the last close is the end price. A trade's size
        # is notional / price, so the shift divides every volume by exp(shift).
        ohlc = np.empty((4, n_bars))
        volume = np.empty(n_bars)
        carry = 0.0
        for b0 in range(0, n_bars, HISTORY_CHUNK_BARS):
            b1 = min(n_bars, b0 + HISTORY_CHUNK_BARS)
            reg = regimes[b0 * per_bar:b1 * per_bar]
            lp = carry + np.cumsum(drift[reg] + vol[reg] * rng.standard_normal(reg.shape[0]))
            carry = float(lp[-1])
            sizes = rng.exponential(size_scale[reg] * np.exp(-lp))
            bars = lp.reshape(b1 - b0, per_bar)
            ohlc[0, b0:b1], ohlc[1, b0:b1] = bars[:, 0], bars.max(axis=1)
            ohlc[2, b0:b1], ohlc[3, b0:b1] = bars.min(axis=1), bars[:, -1]
            volume[b0:b1] = sizes.reshape(b1 - b0, per_bar).sum(axis=1)
        shift = math.log(st.price if end_price is None else end_price) - carry
        px = np.maximum(np.round(np.exp(ohlc + shift) / st.tick) * st.tick, st.tick)
        ts = last_open - (n_bars - 1 - np.arange(n_bars, dtype=np.int64)) * ival_ns
        return BarArrays(ts, px[0], px[1], px[2], px[3], volume * math.exp(-shift),
                         interval_s, f"synthetic-history:{symbol}:seed={self.seed}")

    def _history_regimes(self, rng: np.random.Generator, last: int, n_steps: int, dt_s: float) -> np.ndarray:
        """Regime index per step, the chain run backwards in time from `last` (step n-1)."""
        out = np.empty(n_steps, dtype=np.int8)
        k, end = last, n_steps
        leave = [1.0 - math.exp(-dt_s / r.mean_duration_s) for r in self.regimes]
        while end > 0:
            dwell = int(rng.geometric(leave[k]))
            out[max(0, end - dwell):end] = k
            end -= dwell
            u = rng.random()
            cum = self._cum_switch[k]
            k = next((j for j, c in enumerate(cum) if u < c), len(cum) - 1)
        return out

    def state(self) -> dict[str, Any]:
        """The market's state as JSON-able data, for `restore` (see the module doc)."""
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "symbols": {
                sym: {"price": st.price, "log_price": st.log_price, "regime": st.regime,
                      "last_ts_ns": st.last_ts_ns, "rng": _rng_state_to_json(st.rng.getstate()),
                      "quote_rng": _rng_state_to_json(st.quote_rng.getstate())}
                for sym, st in self._states.items()
            },
        }

    def restore(self, state: Mapping[str, Any]) -> list[str]:
        """Continue from a `state()`; returns the symbols restored.

        All or nothing: every field is checked before any symbol changes; a bad one raises
        ValueError naming its path (`symbols.BTCUSDT.price`). A state of another seed is
        not applied (the operator asked for another market); a symbol the state lacks
        starts from its initial price, a symbol this market lacks is ignored. The first
        trade after a restore steps one tick interval (downtime is a pause).
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"market state: expected an object, got {type(state).__name__}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"version: {state.get('version')!r} is not {STATE_VERSION}")
        symbols = state.get("symbols")
        if not isinstance(symbols, Mapping):
            raise ValueError(f"symbols: expected an object, got {type(symbols).__name__}")
        if state.get("seed") != self.seed:
            return []
        parsed: dict[str, tuple[float, float, int, tuple[Any, ...], tuple[Any, ...]]] = {}
        for sym, st in self._states.items():
            doc = symbols.get(sym)
            if doc is None:
                continue
            where = f"symbols.{sym}"
            if not isinstance(doc, Mapping):
                raise ValueError(f"{where}: expected an object, got {type(doc).__name__}")
            price = _positive_float(doc.get("price"), f"{where}.price")
            log_price = doc.get("log_price")
            if (not isinstance(log_price, int | float) or isinstance(log_price, bool)
                    or not math.isfinite(log_price) or abs(math.exp(log_price) - price) > max(st.tick, price * 1e-6)):
                raise ValueError(f"{where}.log_price: {log_price!r} does not match price {price!r}")
            regime = doc.get("regime")
            if not isinstance(regime, int) or isinstance(regime, bool) or not 0 <= regime < len(self.regimes):
                raise ValueError(f"{where}.regime: {regime!r} is not a regime index (0..{len(self.regimes) - 1})")
            rng = _rng_state_from_json(doc.get("rng"), f"{where}.rng")
            quote_rng = _rng_state_from_json(doc.get("quote_rng"), f"{where}.quote_rng")
            parsed[sym] = (price, float(log_price), regime, rng, quote_rng)
        for sym, (price, log_price, regime, rng, quote_rng) in parsed.items():
            st = self._states[sym]
            st.rng.setstate(rng)
            st.quote_rng.setstate(quote_rng)
            st.log_price = log_price
            st.price = _round_to(price, st.tick, st.decimals)
            st.regime = regime
            st.last_ts_ns = -1  # downtime is a pause: the next trade steps one tick interval
        return list(parsed)

    def _state(self, symbol: str) -> _SymbolState:
        try:
            return self._states[symbol]
        except KeyError:
            raise KeyError(f"synthetic market has no symbol {symbol!r}; it has {list(self._states)}") from None


def _positive_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: {value!r} is not a positive number")
    return float(value)


def _rng_state_to_json(state: tuple[Any, ...]) -> list[Any]:
    """random.Random.getstate() (version, 625 words, gauss_next) as JSON-able lists."""
    version, words, gauss_next = state
    return [version, list(words), gauss_next]


def _rng_state_from_json(value: Any, where: str) -> tuple[Any, ...]:
    """The inverse of `_rng_state_to_json`, checked (and tried on a scratch Random)."""
    ok = (isinstance(value, list) and len(value) == 3 and isinstance(value[1], list) and len(value[1]) == 625
          and all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**32 for w in value[1][:624])
          and (value[2] is None or isinstance(value[2], float)))
    if ok:
        state = (value[0], tuple(value[1]), value[2])
        try:
            random.Random().setstate(state)
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise ValueError(f"{where}: not a random.Random state (version, 625 words, gauss_next)")
    return state


def _default_tick(price: float) -> float:
    """A tick about 1e-6 of the price, a power of ten (60000 → 0.01, 150 → 0.0001)."""
    return 10.0 ** (math.floor(math.log10(price)) - 6)


def _cumulative(row: Sequence[float]) -> list[float]:
    out, acc = [], 0.0
    for p in row:
        acc += p
        out.append(acc)
    return out


def _check_switch_matrix(matrix: Sequence[Sequence[float]], n: int) -> None:
    if n < 1:
        raise ValueError("at least one regime is needed")
    if len(matrix) != n or any(len(row) != n for row in matrix):
        raise ValueError(f"switch_matrix must be {n}x{n} (one row and column per regime)")
    for i, row in enumerate(matrix):
        if any(p < 0 for p in row) or (n > 1 and abs(sum(row) - 1.0) > 1e-9):
            raise ValueError(f"switch_matrix row {i} must be non-negative and sum to 1, got {list(row)}")
        if n > 1 and row[i] != 0.0:
            raise ValueError(f"switch_matrix row {i}: the diagonal must be 0 (staying is the duration's job)")
