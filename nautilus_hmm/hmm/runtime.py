"""Live regime tracking for one instrument: base bars in, filtered regime posteriors out.

`RegimeTracker` resamples base bars to the model's macro and micro intervals, computes the
features online, standardises them with the model's scalers and runs the forward filters:
one macro filter and one filter per micro model. All micro filters see every fast bar
(they stay warm), and the one of the current macro regime (filtered argmax) is reported
as active. On a base bar that closes both, the macro bar is processed first, as in
training. numpy only; no I/O, no asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nautilus_hmm.domain.sessions import TradingSessions, is_session_break
from nautilus_hmm.hmm.features import FeatureEngine, check_bar
from nautilus_hmm.hmm.filter import ForwardFilter
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.marketdata.bars import NS_PER_S, BarResampler, OhlcvBar
from nautilus_hmm.marketdata.replay import BarDataError

Quote = tuple[float, float, float, float]  # bid, ask, bid_size, ask_size


@dataclass(frozen=True, slots=True)
class RegimeSnapshot:
    """Regime state after a fast (micro) bar closed. Posteriors are None until warmed up."""

    ts_ns: int  # open time of the micro bar just closed
    close_ts_ns: int  # when it closed (ts_ns + micro interval)
    macro_posterior: np.ndarray | None
    micro_posterior: np.ndarray | None  # of the active micro model (the macro argmax's)
    macro_state: int | None
    micro_state: int | None
    macro_updated: bool  # a macro bar closed on the same base bar

    @property
    def ready(self) -> bool:
        """Both levels have posteriors."""
        return self.macro_posterior is not None and self.micro_posterior is not None

    @property
    def confidence(self) -> float:
        """Max posterior of the active micro model (0 when not ready)."""
        return 0.0 if self.micro_posterior is None else float(self.micro_posterior.max())


class RegimeTracker:
    """Features → filters for one instrument, fed with base bars."""

    def __init__(self, model: RegimeModel, sessions: TradingSessions | None = None) -> None:
        self.model = model
        # Trading sessions of the instrument (IBKR); None or always-open = 24/7, the path as
        # before. With sessions a base bar after a session break closes the open macro and
        # micro buckets and its level bars carry the break into the features (session gaps:
        # docs/HMM.md).
        self.sessions = None if sessions is None or sessions.always else sessions
        self.session_breaks = 0
        base = model.base_interval_s
        self._macro_rs = BarResampler(model.macro.interval_s, base)
        self._micro_rs = BarResampler(model.micro.interval_s, base)
        self._macro_fe = FeatureEngine(model.macro.features)
        self._micro_fe = FeatureEngine(model.micro.features)
        self._macro_filter = model.macro.hmm.filter()
        self._micro_filters: list[ForwardFilter] = [h.filter() for h in model.micro.hmms]
        self._macro_post: np.ndarray | None = None
        self._micro_posts: list[np.ndarray] | None = None
        self._last_ts: int | None = None

    @property
    def warmup_base_bars(self) -> int:
        """Base bars needed (from a bucket start) before the first ready snapshot."""
        m = self.model
        macro = (m.macro.features.warmup_bars + 1) * (m.macro.interval_s // m.base_interval_s)
        micro = (m.micro.features.warmup_bars + 1) * (m.micro.interval_s // m.base_interval_s)
        return max(macro, micro)

    def on_bar(self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float,
               quote: Quote | None = None) -> RegimeSnapshot | None:
        """Feed one closed base bar; a snapshot when it closed a micro bar, else None.

        A bad bar raises FeatureError (naming the field) before any state changes; a bar
        not after the previous one raises BarDataError.
        """
        check_bar(open, high, low, close, volume)
        if self._last_ts is not None and ts_ns <= self._last_ts:
            raise BarDataError("ts_ns", None, f"{ts_ns} is not after the previous bar's {self._last_ts}")
        if self.sessions is not None:
            return self._on_session_bar(ts_ns, open, high, low, close, volume, quote)
        self._last_ts = ts_ns
        macro_updated = False
        for bar in self._macro_rs.update(ts_ns, open, high, low, close, volume):
            feats = self._feed(self._macro_fe, bar, quote)
            if feats is not None:
                self._macro_post = self._macro_filter.update(self.model.macro.scaler.transform(feats))
                macro_updated = True
        snap: RegimeSnapshot | None = None
        for bar in self._micro_rs.update(ts_ns, open, high, low, close, volume):
            feats = self._feed(self._micro_fe, bar, quote)
            if feats is not None:
                z = self.model.micro.scaler.transform(feats)
                self._micro_posts = [f.update(z) for f in self._micro_filters]
            snap = self._snapshot(bar.ts_ns, macro_updated)
        return snap

    def _on_session_bar(self, ts_ns: int, open: float, high: float, low: float, close: float, volume: float,
                        quote: Quote | None) -> RegimeSnapshot | None:
        """`on_bar` for an instrument with trading sessions (the bar is already checked)."""
        brk = is_session_break(self.sessions, self._last_ts, ts_ns, self.model.base_interval_s)
        self.session_breaks += brk
        self._last_ts = ts_ns
        macro_updated = False
        for bar, starts in self._macro_rs.update_session(ts_ns, open, high, low, close, volume, brk):
            feats = self._feed(self._macro_fe, bar, quote, starts)
            if feats is not None:
                self._macro_post = self._macro_filter.update(self.model.macro.scaler.transform(feats))
                macro_updated = True
        snap: RegimeSnapshot | None = None
        for bar, starts in self._micro_rs.update_session(ts_ns, open, high, low, close, volume, brk):
            feats = self._feed(self._micro_fe, bar, quote, starts)
            if feats is not None:
                z = self.model.micro.scaler.transform(feats)
                self._micro_posts = [f.update(z) for f in self._micro_filters]
            snap = self._snapshot(bar.ts_ns, macro_updated)
        return snap

    def log_likelihoods(self) -> tuple[float, tuple[float, ...]]:
        """Cumulative filtered log-likelihoods of the macro filter and of each micro filter.

        Each one's increment over a new observation is its one-step-ahead predictive
        log-likelihood log p(x_t | x_<t) (missing observations add nothing)."""
        return self._macro_filter.log_likelihood, tuple(f.log_likelihood for f in self._micro_filters)

    @staticmethod
    def _feed(engine: FeatureEngine, bar: OhlcvBar, quote: Quote | None,
              session_start: bool = False) -> np.ndarray | None:
        if quote is None:
            return engine.update(bar.open, bar.high, bar.low, bar.close, bar.volume, session_start=session_start)
        bid, ask, bid_size, ask_size = quote
        return engine.update(bar.open, bar.high, bar.low, bar.close, bar.volume,
                             bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size, session_start=session_start)

    def _snapshot(self, ts_ns: int, macro_updated: bool) -> RegimeSnapshot:
        close_ts = ts_ns + self.model.micro.interval_s * NS_PER_S
        macro_post = self._macro_post
        if macro_post is None:
            return RegimeSnapshot(ts_ns, close_ts, None, None, None, None, macro_updated)
        macro_state = int(macro_post.argmax())
        micro_post = None if self._micro_posts is None else self._micro_posts[macro_state]
        micro_state = None if micro_post is None else int(micro_post.argmax())
        return RegimeSnapshot(ts_ns, close_ts, macro_post.copy(),
                              None if micro_post is None else micro_post.copy(),
                              macro_state, micro_state, macro_updated)
