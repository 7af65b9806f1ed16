"""`HmmStrategy`: the regime policy as a strategy of the daemon (Strategy protocol).

Per traded instrument: bars of the consumed interval are resampled to the model's base
interval; each base bar goes into a rolling history (so a model swap re-warms at once),
into the production tracker and, when a canary is set, into the canary tracker. Every
regime snapshot (a closed micro bar) gives a policy decision; a periodic `tick(now_ns)`
lets the stale-data guardrail fire when bars stop arriving.

Rules:

* The strategy states exposures (`ctx.target_exposure`, a fraction of its capital); the
  router sizes them (capital x exposure / mark). Only TARGET and FLAT decisions state a
  target; HOLD and HALT keep whatever is held.
* The policy assumes its decisions are executed (the router keeps the stated target);
  every fill of the strategy (FillAttributed to it, or PositionChanged without a router)
  re-syncs the production policy's exposure to the strategy's virtual position
  (qty x last close / capital, capital from the context, else [hmm.policy] capital_usd),
  so a partial fill, a quota clip or a flatten is seen.
* Canary: a second tracker and policy on the same bars, stating its own targets on the
  "canary" lane. The router weighs that lane by the strategy's `canary_share` (0: a
  shadow, never traded); no blending happens here. Canary decisions carry shadow=True.
* Closed trades (the strategy's virtual position back to 0 or flipped; without a router
  the net position from PositionChanged) feed the production policy's loss-streak
  cool-down with their PnL net of fees.
* Every decision is published as `PolicyDecision` (with the lane model's predictive
  log-likelihood per base bar of the bar just closed) and the posteriors as
  `RegimeUpdate` (micro on every snapshot, macro when a macro bar closed).

A bad bar (non-finite, inconsistent, out of order) is logged, counted and skipped: the
trackers and the history stay as they were. Pure logic on the bus's synchronous path;
no asyncio.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.sessions import TradingSessions, data_age_ref_ns
from nautilus_hmm.hmm.config import HmmConfig
from nautilus_hmm.hmm.errors import FeatureError, ModelError
from nautilus_hmm.hmm.features import check_bar
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.hmm.policy import Action, PolicyDecisionDetail, RegimePolicy
from nautilus_hmm.hmm.runtime import Quote, RegimeSnapshot, RegimeTracker
from nautilus_hmm.marketdata.bars import NS_PER_S, BarResampler, OhlcvBar
from nautilus_hmm.marketdata.replay import BarArrays, BarDataError
from nautilus_hmm.messages import (
    Bar,
    FillAttributed,
    PolicyDecision,
    PositionChanged,
    QuoteTick,
    RegimeUpdate,
)
from nautilus_hmm.strategies.base import QTY_QUANTUM, exposure_to_qty

__all__ = ["QTY_QUANTUM", "HmmStrategy", "PreparedModel", "build_hmm_strategy", "exposure_to_qty",
           "required_history_bars"]

if TYPE_CHECKING:
    from nautilus_hmm.core.bus import Bus
    from nautilus_hmm.strategies.config import StrategyInstanceConfig

log = structlog.get_logger("hmm")

BaseBarListener = Callable[[InstrumentId, OhlcvBar, Quote | None], None]  # quote at the bar's close, if any


def required_history_bars(cfg: HmmConfig, models: Iterable[RegimeModel | None] = ()) -> int:
    """Base bars a tracker needs to be ready, for the configured and the given models (+1 macro bar)."""
    t = cfg.train
    spec = cfg.features.spec()
    need = max((spec.warmup_bars + 2) * (t.macro_interval_s // t.base_interval_s),
               (spec.warmup_bars + 2) * (t.micro_interval_s // t.base_interval_s))
    for m in models:
        if m is not None:
            need = max(need, RegimeTracker(m).warmup_base_bars + m.macro.interval_s // m.base_interval_s)
    return need


def expected_edge_bps(model: RegimeModel, d: PolicyDecisionDetail) -> float | None:
    """The expected gain of a decision's position, in bps of its notional, for the router's cost
    check: |expected next-bar log return| x the bars the current micro state is expected to last
    (`expected_dwell_bars`: 1 / (1 - its transition self-probability)). None for a move to flat or
    a decision without a state (an exit is never held back by its cost)."""
    if d.action is not Action.TARGET or d.target_exposure == 0.0 or d.macro_state is None or d.micro_state is None:
        return None
    try:
        dwell = model.micro.hmms[d.macro_state].states[d.micro_state].expected_dwell_bars
    except IndexError:
        return None
    edge = abs(d.expected_return) * 1e4 * max(1.0, float(dwell))
    return edge if math.isfinite(edge) else None


@dataclass(slots=True)
class _Runner:
    """One model on one instrument: tracker, policy, last snapshot and decision."""

    model: RegimeModel
    model_id: str
    tracker: RegimeTracker
    policy: RegimePolicy
    shadow: bool
    last_snap: RegimeSnapshot | None = None
    last_decision: PolicyDecisionDetail | None = None
    last_decision_ns: int = 0
    bars_fed: int = 0
    stale: bool = False
    ll_prev: tuple[float, tuple[float, ...]] | None = None  # the tracker's log-likelihoods at the last snapshot
    bars_since_snap: int = 0
    last_ll: float | None = None  # predictive log-likelihood per base bar of the last snapshot


@dataclass(frozen=True, slots=True)
class _Warm:
    """A tracker warmed on a history snapshot up to `last_ts_ns`."""

    tracker: RegimeTracker
    last_snap: RegimeSnapshot | None
    bars_fed: int
    last_ts_ns: int | None


@dataclass(frozen=True, slots=True)
class PreparedModel:
    """Trackers of one model warmed off the loop (see HmmStrategy.prepare)."""

    model: RegimeModel
    model_id: str
    trackers: dict[InstrumentId, _Warm]


@dataclass(slots=True)
class _Lane:
    """Per-instrument state."""

    iid: InstrumentId
    history: deque[OhlcvBar]
    resampler: BarResampler | None
    prod: _Runner | None = None
    canary: _Runner | None = None
    last_ts_ns: int | None = None
    last_close: float | None = None
    quote: Quote | None = None  # the newest top of book (bid, ask, bid_size, ask_size)
    quote_ts_ns: int = -1
    bars_in: int = 0
    bars_rejected: int = 0
    last_reject: str = ""
    stale_no_data: bool = False
    last_target_exposure: float | None = None
    last_canary_exposure: float | None = None
    pos_qty: Decimal = Decimal(0)
    avg_px: Decimal = Decimal(0)  # the strategy's virtual average entry price (router mode)
    net_pnl: Decimal = Decimal(0)
    trade_open_net: Decimal = Decimal(0)
    trades_closed: int = 0
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    shadow_counts: dict[tuple[str, str], int] = field(default_factory=dict)


class HmmStrategy:
    """Regime policy on hierarchical-HMM posteriors; states target positions (never orders)."""

    kind = "hmm"

    def __init__(self, strategy_id: str, instruments: tuple[InstrumentId, ...], cfg: HmmConfig,
                 model: RegimeModel | None = None, model_id: str = "", *, bar_interval_s: int | None = None,
                 canary: RegimeModel | None = None, canary_id: str = "", canary_share: float = 0.0) -> None:
        self.strategy_id = strategy_id
        self.canary_share = canary_share  # the router's weight of the canary lane (shown in status only)
        self.instruments = tuple(instruments)
        self.cfg = cfg
        self.base_interval_s = model.base_interval_s if model is not None else cfg.train.base_interval_s
        self.bar_interval_s = bar_interval_s or self.base_interval_s
        if self.bar_interval_s > self.base_interval_s or self.base_interval_s % self.bar_interval_s:
            raise ValueError(f"bar_interval_s {self.bar_interval_s}: must divide the model's base interval "
                             f"({self.base_interval_s} s)")
        self._history_len = required_history_bars(cfg, (model, canary))
        self._lanes: dict[InstrumentId, _Lane] = {
            iid: _Lane(iid, deque(maxlen=self._history_len),
                       None if self.bar_interval_s == self.base_interval_s
                       else BarResampler(self.base_interval_s, self.bar_interval_s))
            for iid in self.instruments
        }
        self._bus: Bus | None = None
        self._ctx: Any = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._attached_ns = 0
        self.base_bar_listeners: list[BaseBarListener] = []
        self.bars_ignored = 0
        self.model: RegimeModel | None = None
        self.model_id = ""
        self.canary: RegimeModel | None = None
        self.canary_id = ""
        if model is not None:
            self.set_model(model, model_id)
        if canary is not None:
            self.set_canary(canary, canary_id)

    # ------------------------------------------------------------ wiring

    def attach(self, bus: Bus, ctx: Any) -> None:
        """Listen to bars and position changes; targets go through `ctx`."""
        self._bus = bus
        self._ctx = ctx
        self._attached_ns = ctx.now_ns()
        name = f"strategy:{self.strategy_id}"
        self._unsubscribe = [bus.subscribe(Bar, self.on_bar, name=name),
                             bus.subscribe(QuoteTick, self.on_quote, name=name),
                             bus.subscribe(PositionChanged, self.on_position, name=name),
                             bus.subscribe(FillAttributed, self.on_fill_attributed, name=name)]
        # Trackers built before the context existed know no trading sessions: an instrument
        # that has them (IBKR) re-warms its trackers from the history with them.
        if any(self._sessions(iid) is not None for iid in self._lanes):
            if self.model is not None:
                self.set_model(self.model, self.model_id)
            if self.canary is not None:
                self.set_canary(self.canary, self.canary_id)

    def detach(self) -> None:
        """Stop receiving bars and fills (idempotent); models and history are kept."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def update_params(self, cfg: StrategyInstanceConfig) -> None:
        """Live instance parameters: the canary lane's share (the router applies it; kept for status)."""
        self.canary_share = cfg.canary_share

    @property
    def _routed(self) -> bool:
        return self._ctx is not None and bool(getattr(self._ctx, "routed", False))

    def _capital_usd(self) -> float:
        """The production lane's capital: the router's when routed, else [hmm.policy] capital_usd."""
        cap = self._ctx.capital_usd("production") if self._routed else None
        return self.cfg.policy.capital_usd if cap is None else float(cap)

    def update_config(self, cfg: HmmConfig) -> None:
        """Apply a reloaded [hmm] (policy settings at once; counters are kept)."""
        self.cfg = cfg
        for lane in self._lanes.values():
            for runner in (lane.prod, lane.canary):
                if runner is not None:
                    runner.policy.update_config(cfg.policy)
        self._grow_history(required_history_bars(cfg, (self.model, self.canary)))

    def _now_ns(self, fallback: int) -> int:
        return self._ctx.now_ns() if self._ctx is not None else fallback

    def _sessions(self, iid: InstrumentId) -> TradingSessions | None:
        """The instrument's trading sessions from the context; None = 24/7 (crypto, or no context)."""
        lookup = getattr(self._ctx, "sessions", None)
        return None if lookup is None else lookup(iid)

    # ------------------------------------------------------------ models

    def check_model(self, model: RegimeModel) -> None:
        """Raise ModelError if this strategy cannot run `model` (another base interval)."""
        self._check_model(model)

    def _check_model(self, model: RegimeModel) -> None:
        if model.base_interval_s != self.base_interval_s:
            raise ModelError("base_interval_s", f"{model.base_interval_s} does not match the strategy's base "
                             f"interval {self.base_interval_s} s (restart to change it)")

    def _grow_history(self, need: int) -> None:
        if need <= self._history_len:
            return
        self._history_len = need
        for lane in self._lanes.values():
            lane.history = deque(lane.history, maxlen=need)

    def sessions_snapshot(self) -> dict[InstrumentId, TradingSessions | None]:
        """Each instrument's trading sessions (None = 24/7), for `prepare_steps`."""
        return {iid: self._sessions(iid) for iid in self._lanes}

    def history_snapshot(self) -> dict[InstrumentId, list[OhlcvBar]]:
        """A copy of each instrument's base-bar history (call on the loop; feed it to `prepare`)."""
        return {iid: list(lane.history) for iid, lane in self._lanes.items()}

    @staticmethod
    def prepare_steps(model: RegimeModel, model_id: str, history: dict[InstrumentId, list[OhlcvBar]],
                      chunk_bars: int = 128,
                      sessions: Mapping[InstrumentId, TradingSessions | None] | None = None,
                      ) -> Iterator[PreparedModel | None]:
        """Trackers for `model` warmed on a history snapshot (the slow part of a swap), in steps.

        Yields None after every `chunk_bars` bars, then the PreparedModel. The caller may
        yield to the event loop between steps, so a swap never holds the loop for more
        than one chunk (~2 ms); `set_model`/`set_canary` then replay only the bars that
        arrived meanwhile. Touches only new objects.
        """
        out: dict[InstrumentId, _Warm] = {}
        for iid, bars in history.items():
            tracker = RegimeTracker(model, None if sessions is None else sessions.get(iid))
            last: RegimeSnapshot | None = None
            for i, b in enumerate(bars, 1):
                snap = tracker.on_bar(b.ts_ns, b.open, b.high, b.low, b.close, b.volume)
                if snap is not None:
                    last = snap
                if i % chunk_bars == 0:
                    yield None
            out[iid] = _Warm(tracker, last, len(bars), bars[-1].ts_ns if bars else None)
        yield PreparedModel(model, model_id, out)

    @staticmethod
    def prepare(model: RegimeModel, model_id: str, history: dict[InstrumentId, list[OhlcvBar]]) -> PreparedModel:
        """`prepare_steps` in one go."""
        result: PreparedModel | None = None
        for step in HmmStrategy.prepare_steps(model, model_id, history):
            result = step
        assert result is not None
        return result

    def _runner(self, lane: _Lane, model: RegimeModel, model_id: str, shadow: bool,
                policy: RegimePolicy | None, prepared: PreparedModel | None) -> _Runner:
        """A tracker warmed on the lane's history (no decisions, nothing published)."""
        warm = prepared.trackers.get(lane.iid) if prepared is not None and prepared.model is model else None
        sessions = self._sessions(lane.iid)
        if warm is not None and sessions is not None and warm.tracker.sessions != sessions:
            warm = None  # prepared without the instrument's sessions: warm again here
        if warm is None:
            warm = _Warm(RegimeTracker(model, sessions), None, 0, None)
        tracker, last, fed = warm.tracker, warm.last_snap, warm.bars_fed
        for b in lane.history:
            if warm.last_ts_ns is not None and b.ts_ns <= warm.last_ts_ns:
                continue  # already in the prepared tracker
            snap = tracker.on_bar(b.ts_ns, b.open, b.high, b.low, b.close, b.volume)
            fed += 1
            if snap is not None:
                last = snap
        if policy is None:
            policy = RegimePolicy(self.cfg.policy, model)
        else:
            policy.set_model(model)
        return _Runner(model, model_id, tracker, policy, shadow, last_snap=last, bars_fed=fed)

    def set_model(self, model: RegimeModel, model_id: str, prepared: PreparedModel | None = None) -> None:
        """Hot-swap the production model: trackers re-warm from the history, policies keep their counters.

        With `prepared` (from `prepare` on a recent snapshot) only the newer bars are replayed here.
        """
        self._check_model(model)
        self._grow_history(required_history_bars(self.cfg, (model, self.canary)))
        for lane in self._lanes.values():
            policy = lane.prod.policy if lane.prod is not None else None
            lane.prod = self._runner(lane, model, model_id, False, policy, prepared)
        self.model, self.model_id = model, model_id
        log.info("hmm_strategy_model_set", model_id=model_id, history_bars=self._history_bars())

    def set_canary(self, model: RegimeModel | None, model_id: str = "",
                   prepared: PreparedModel | None = None) -> None:
        """Run `model` as the canary next to production (None removes the canary)."""
        if model is None:
            for lane in self._lanes.values():
                lane.canary = None
            self.canary, self.canary_id = None, ""
            log.info("hmm_strategy_canary_cleared")
            return
        self._check_model(model)
        self._grow_history(required_history_bars(self.cfg, (self.model, model)))
        for lane in self._lanes.values():
            lane.canary = self._runner(lane, model, model_id, True, None, prepared)
        self.canary, self.canary_id = model, model_id
        log.info("hmm_strategy_canary_set", model_id=model_id, history_bars=self._history_bars())

    @property
    def history_capacity(self) -> int:
        """Base bars kept per instrument for re-warming trackers after a model swap."""
        return self._history_len

    def _history_bars(self) -> int:
        return min((len(lane.history) for lane in self._lanes.values()), default=0)

    def warm_up(self, instrument_id: InstrumentId, bars: BarArrays) -> int:
        """Feed base bars from history (a file, the venue) without deciding; returns bars taken.

        Bars not after the last one held, or invalid, are skipped (counted as rejected).
        """
        lane = self._lanes[instrument_id]
        taken = 0
        cols = (bars.ts_open_ns.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
                bars.close.tolist(), bars.volume.tolist())
        for row in zip(*cols, strict=True):
            if self._ingest(lane, OhlcvBar(*row), decide=False):
                taken += 1
        return taken

    # ------------------------------------------------------------ bars

    def on_bar(self, bar: Bar) -> None:
        """A closed bar from the bus: resample to the base interval, then track and decide."""
        lane = self._lanes.get(bar.instrument_id)
        if lane is None:
            return
        if bar.interval_s != self.bar_interval_s:
            self.bars_ignored += 1
            return
        row = OhlcvBar(int(bar.ts_event_ns), float(bar.open), float(bar.high), float(bar.low),
                       float(bar.close), float(bar.volume))
        if lane.resampler is None:
            self._ingest(lane, row, decide=True)
            return
        try:
            check_bar(row.open, row.high, row.low, row.close, row.volume)
            done = lane.resampler.update(*row)
        except (FeatureError, BarDataError) as exc:
            self._reject(lane, bar.ts_event_ns, exc)
            return
        for b in done:
            self._ingest(lane, b, decide=True)

    def on_quote(self, q: QuoteTick) -> None:
        """The newest top of book: the spread and imbalance features of the next live bar."""
        lane = self._lanes.get(q.instrument_id)
        if lane is not None and q.bid > 0.0 and q.ask >= q.bid:
            lane.quote = (q.bid, q.ask, q.bid_size, q.ask_size)
            lane.quote_ts_ns = q.ts_init_ns

    def _reject(self, lane: _Lane, ts_ns: int, exc: Exception) -> None:
        lane.bars_rejected += 1
        lane.last_reject = str(exc)
        log.warning("hmm_bar_rejected", instrument=str(lane.iid), ts_ns=ts_ns, error=str(exc))

    def _ingest(self, lane: _Lane, b: OhlcvBar, decide: bool) -> bool:
        try:
            check_bar(b.open, b.high, b.low, b.close, b.volume)
            if lane.last_ts_ns is not None and b.ts_ns <= lane.last_ts_ns:
                raise BarDataError("ts_ns", None, f"{b.ts_ns} is not after the previous bar's {lane.last_ts_ns}")
        except (FeatureError, BarDataError) as exc:
            self._reject(lane, b.ts_ns, exc)
            return False
        lane.last_ts_ns = b.ts_ns
        lane.last_close = b.close
        lane.bars_in += 1
        if decide:
            lane.stale_no_data = False
        lane.history.append(b)
        # A live bar carries the top of book seen during it (none: the quote features are
        # missing for that bar and the filter only predicts). History has no quotes.
        quote = lane.quote if decide and lane.quote_ts_ns >= b.ts_ns else None
        for listener in self.base_bar_listeners:
            listener(lane.iid, b, quote)
        now = self._now_ns(b.ts_ns + self.base_interval_s * NS_PER_S)
        for runner in (lane.prod, lane.canary):
            if runner is None:
                continue
            snap = runner.tracker.on_bar(b.ts_ns, b.open, b.high, b.low, b.close, b.volume, quote)
            runner.bars_fed += 1
            runner.bars_since_snap += 1
            if snap is None:
                continue
            runner.last_snap = snap
            self._track_log_likelihood(runner, snap)
            if decide:
                self._publish_regimes(lane, runner, snap)
                self._decide(lane, runner, snap, now)
        return True

    @staticmethod
    def _track_log_likelihood(runner: _Runner, snap: RegimeSnapshot) -> None:
        """The model's predictive log-likelihood per base bar since its previous snapshot.

        = (increment of the macro filter's log p + increment of the active micro model's
        filter) / base bars since the previous snapshot: each increment is log p(x_t | x_<t)
        under the fixed model, out of sample for bars after its training data. None for the
        first snapshot after the runner was built and while not ready.
        """
        now = runner.tracker.log_likelihoods()
        prev, bars = runner.ll_prev, runner.bars_since_snap
        runner.ll_prev, runner.bars_since_snap = now, 0
        runner.last_ll = None
        if prev is None or bars <= 0 or not snap.ready or snap.macro_state is None:
            return
        k = snap.macro_state
        ll = (now[0] - prev[0]) + (now[1][k] - prev[1][k])
        runner.last_ll = float(ll) / bars if math.isfinite(ll) else None

    # ------------------------------------------------------------ decisions

    def _decide(self, lane: _Lane, runner: _Runner, snap: RegimeSnapshot, now_ns: int) -> None:
        d = runner.policy.decide(snap, now_ns)
        runner.stale = d.guardrail == "stale_data"
        lane.stale_no_data = False
        self._record(lane, runner, d, now_ns, snap.close_ts_ns, runner.last_ll)
        if d.action in (Action.TARGET, Action.FLAT):
            self._state_target(lane, runner, d, snap.close_ts_ns)

    def _record(self, lane: _Lane, runner: _Runner, d: PolicyDecisionDetail, now_ns: int, ts_event_ns: int,
                log_likelihood: float | None = None) -> None:
        runner.last_decision = d
        runner.last_decision_ns = now_ns
        key = (d.action.value, d.guardrail or "signal")
        counts = lane.shadow_counts if runner.shadow else lane.counts
        counts[key] = counts.get(key, 0) + 1
        if self._bus is not None:
            reason = f"{d.guardrail}: {d.reason}" if d.guardrail else d.reason
            self._bus.publish(PolicyDecision(
                ts_event_ns=ts_event_ns, ts_init_ns=now_ns, instrument_id=lane.iid, model_id=runner.model_id,
                action=d.action.value, reason=reason, target_exposure=d.target_exposure, shadow=runner.shadow,
                log_likelihood=log_likelihood, strategy_id=self.strategy_id))

    def _state_target(self, lane: _Lane, runner: _Runner, d: PolicyDecisionDetail, ts_event_ns: int) -> None:
        """The lane's own exposure: production on "production", the canary on "canary" (the router weighs it)."""
        if self._ctx is None:
            return
        reason = f"hmm {runner.model_id}: {d.action.value}: {d.reason}"
        edge = expected_edge_bps(runner.model, d)
        if runner.shadow:
            lane.last_canary_exposure = d.target_exposure
            self._ctx.target_exposure(lane.iid, d.target_exposure, reason, ts_event_ns, lane="canary", edge_bps=edge)
        else:
            lane.last_target_exposure = d.target_exposure
            self._ctx.target_exposure(lane.iid, d.target_exposure, reason, ts_event_ns, lane="production",
                                      edge_bps=edge)

    def _publish_regimes(self, lane: _Lane, runner: _Runner, snap: RegimeSnapshot) -> None:
        if self._bus is None or snap.macro_posterior is None:
            return
        now = self._now_ns(snap.close_ts_ns)
        if snap.macro_updated and snap.macro_state is not None:
            self._bus.publish(RegimeUpdate(
                ts_event_ns=snap.close_ts_ns, ts_init_ns=now, instrument_id=lane.iid, model_id=runner.model_id,
                level="macro", posteriors=tuple(snap.macro_posterior.tolist()), state=snap.macro_state))
        if snap.micro_posterior is not None and snap.micro_state is not None:
            self._bus.publish(RegimeUpdate(
                ts_event_ns=snap.close_ts_ns, ts_init_ns=now, instrument_id=lane.iid, model_id=runner.model_id,
                level="micro", posteriors=tuple(snap.micro_posterior.tolist()), state=snap.micro_state))

    def tick(self, now_ns: int) -> None:
        """Timer: let the stale-data guardrail fire when bars stop (one HALT decision per stale spell)."""
        stale_ns = int(self.cfg.policy.stale_data_s * NS_PER_S)
        rewarm = False
        for lane in self._lanes.values():
            # A closed trading session (IBKR) expects no bars: quiet; after the open the age
            # counts from the open (`data_age_ref_ns`). No sessions (crypto): unchanged.
            sessions = self._sessions(lane.iid)
            if sessions is not None and not sessions.always:
                for r in (lane.prod, lane.canary):
                    if r is None or r.tracker.sessions is sessions:
                        continue
                    if r.tracker.sessions is None:
                        rewarm = True  # sessions known only now: warm again with them (below)
                    else:
                        r.tracker.sessions = sessions  # a refreshed calendar (InstrumentsUpdated)
            if lane.prod is None or lane.prod.last_snap is None:
                ref = (lane.last_ts_ns + self.base_interval_s * NS_PER_S) if lane.last_ts_ns is not None \
                    else self._attached_ns
                if sessions is not None:
                    since_open = data_age_ref_ns(sessions, ref, now_ns)
                    if since_open is None:
                        continue
                    ref = since_open
                age_s = (now_ns - ref) / NS_PER_S
                if now_ns - ref > stale_ns and not lane.stale_no_data and self._bus is not None:
                    lane.stale_no_data = True
                    self._bus.publish(PolicyDecision(
                        ts_event_ns=now_ns, ts_init_ns=now_ns, instrument_id=lane.iid, model_id=self.model_id,
                        action=Action.HALT.value,
                        reason=f"stale_data: no bar for {age_s:.0f} s (> {self.cfg.policy.stale_data_s:g} s)",
                        target_exposure=0.0, strategy_id=self.strategy_id))
                    log.warning("hmm_no_data", instrument=str(lane.iid), age_s=round(age_s, 1))
                continue
            for runner in (lane.prod, lane.canary):
                if runner is None or runner.last_snap is None or runner.stale:
                    continue
                since = runner.last_snap.close_ts_ns
                if sessions is not None:
                    since_open = data_age_ref_ns(sessions, since, now_ns)
                    if since_open is None:
                        continue
                    since = since_open
                if now_ns - since <= stale_ns:
                    continue
                d = runner.policy.decide(runner.last_snap, now_ns)
                runner.stale = True
                self._record(lane, runner, d, now_ns, now_ns)
                if not runner.shadow:
                    log.warning("hmm_stale_data_halt", instrument=str(lane.iid), model_id=runner.model_id,
                                reason=d.reason)
        if rewarm:
            if self.model is not None:
                self.set_model(self.model, self.model_id)
            if self.canary is not None:
                self.set_canary(self.canary, self.canary_id)

    # ------------------------------------------------------------ positions

    def on_position(self, msg: PositionChanged) -> None:
        """The net position moved. Without a router: closed trades (back to flat or flipped)
        feed the production policy's loss streak. Either way: re-sync the exposure."""
        lane = self._lanes.get(msg.instrument_id)
        if lane is None:
            return
        if self._routed:
            self._resync_exposure(lane, float(msg.avg_px))
            return
        self._book_position(lane, msg.qty, msg.realized_pnl - msg.fees, msg.ts_event_ns)
        self._resync_exposure(lane, float(msg.avg_px))

    def on_fill_attributed(self, msg: FillAttributed) -> None:
        """A fill (or an internal cross) booked to this strategy's production account: its own
        trades feed the loss streak; the exposure re-syncs to its virtual position."""
        if msg.strategy_id != self.strategy_id:
            return  # another strategy's, or this strategy's canary lane ("<id>:canary")
        lane = self._lanes.get(msg.instrument_id)
        if lane is None:
            return
        qty, avg, net = _book_fill(lane.pos_qty, lane.avg_px, lane.net_pnl, msg.qty, msg.price, msg.fee)
        lane.avg_px = avg
        self._book_position(lane, qty, net, msg.ts_event_ns)
        self._resync_exposure(lane, float(msg.price))

    def _book_position(self, lane: _Lane, qty: Decimal, net: Decimal, ts_event_ns: int) -> None:
        """Position `qty` with cumulative net PnL `net` (realized - fees): count a closed trade."""
        prev_qty = lane.pos_qty
        if prev_qty != 0 and (qty == 0 or (qty > 0) != (prev_qty > 0)):
            pnl = net - lane.trade_open_net
            lane.trades_closed += 1
            if lane.prod is not None:
                lane.prod.policy.record_trade_pnl(float(pnl), ts_event_ns)
            log.info("hmm_trade_closed", instrument=str(lane.iid), pnl=f"{pnl:.8f}")
        if qty != 0 and (prev_qty == 0 or (qty > 0) != (prev_qty > 0)):
            # The opening fill's fee is in `net` already: start from the figure before it.
            lane.trade_open_net = lane.net_pnl if prev_qty == 0 else net
        lane.pos_qty = qty
        lane.net_pnl = net

    def _resync_exposure(self, lane: _Lane, fallback_px: float) -> None:
        """Production policy's exposure := the strategy's position x last close / its capital.

        The position is the context's (the router's virtual one; without a router, the net
        position); no capital (a share of 0) keeps the exposure the policy asked for."""
        if lane.prod is None:
            return
        qty = self._ctx.position(lane.iid) if self._ctx is not None else lane.pos_qty
        price = lane.last_close or fallback_px
        capital = self._capital_usd()
        if price > 0 and capital > 0:
            lane.prod.policy.set_exposure(float(qty) * price / capital)

    # ------------------------------------------------------------ views

    def _runner_view(self, lane: _Lane, runner: _Runner | None) -> dict[str, Any] | None:
        if runner is None:
            return None
        snap, d, m = runner.last_snap, runner.last_decision, runner.model
        warm_left = max(0, runner.tracker.warmup_base_bars - runner.bars_fed)
        out: dict[str, Any] = {"model_id": runner.model_id, "shadow": runner.shadow,
                               "ready": bool(snap is not None and snap.ready),
                               "warmup_bars_left": warm_left, "exposure": runner.policy.exposure,
                               "stale": runner.stale}
        if snap is not None and snap.ready:
            assert snap.macro_state is not None and snap.micro_state is not None
            assert snap.macro_posterior is not None and snap.micro_posterior is not None
            macro_labels = m.macro.hmm.labels
            micro_labels = m.micro.hmms[snap.macro_state].labels
            out["ts_ns"] = snap.ts_ns
            out["macro"] = {"state": macro_labels[snap.macro_state],
                            "posteriors": dict(zip(macro_labels, np.round(snap.macro_posterior, 6).tolist(),
                                                   strict=True))}
            out["micro"] = {"state": micro_labels[snap.micro_state], "model": snap.macro_state,
                            "posteriors": dict(zip(micro_labels, np.round(snap.micro_posterior, 6).tolist(),
                                                   strict=True))}
        if d is not None:
            out["decision"] = {"action": d.action.value, "guardrail": d.guardrail, "reason": d.reason,
                               "target_exposure": d.target_exposure, "confidence": round(d.confidence, 6),
                               "at_ns": runner.last_decision_ns}
        return out

    def regimes(self) -> dict[str, Any]:
        """Current posteriors and decisions per instrument, production and canary."""
        return {str(iid): {"production": self._runner_view(lane, lane.prod),
                           "canary": self._runner_view(lane, lane.canary),
                           "last_close": lane.last_close}
                for iid, lane in self._lanes.items()}

    def _state(self, lane: _Lane) -> str:
        r = lane.prod
        if r is None:
            return "no_model"
        if r.stale or lane.stale_no_data:
            return "stale"
        if r.last_snap is None or not r.last_snap.ready:
            return "warming_up"
        return "active"

    def status(self) -> dict[str, object]:
        """State for /status: models, and per instrument state, bars, last decision and target."""
        out: dict[str, object] = {
            "kind": "hmm", "model_id": self.model_id or None, "canary_id": self.canary_id or None,
            "canary_mode": ("shadow" if self.canary_share == 0.0 else f"trades {self.canary_share:g}")
            if self.canary is not None else None,
            "base_interval_s": self.base_interval_s, "bar_interval_s": self.bar_interval_s,
            "history_bars_max": self._history_len, "bars_ignored": self.bars_ignored,
        }
        for iid, lane in self._lanes.items():
            prod = self._runner_view(lane, lane.prod)
            out[str(iid)] = {
                "state": self._state(lane), "bars": lane.bars_in, "history_bars": len(lane.history),
                "bars_rejected": lane.bars_rejected, "last_reject": lane.last_reject or None,
                "warmup_bars_left": prod["warmup_bars_left"] if prod else None,
                "decision": prod.get("decision") if prod else None,
                "target_exposure": lane.last_target_exposure,
                "canary_target_exposure": lane.last_canary_exposure,
                "log_likelihood": lane.prod.last_ll if lane.prod else None,
                "trades_closed": lane.trades_closed,
                "cooldown_until_ns": lane.prod.policy.cooldown_until_ns if lane.prod else 0,
            }
        return out

    def collect_metrics(self) -> list[Any]:
        """Prometheus families: state probabilities, decisions, model info."""
        from nautilus_hmm.obs.metrics import counter_family, gauge_family

        probs: list[tuple[list[str], float]] = []
        decisions: dict[tuple[str, str], int] = {}
        shadow: dict[tuple[str, str], int] = {}
        for iid, lane in self._lanes.items():
            for runner in (lane.prod, lane.canary):
                snap = None if runner is None else runner.last_snap
                if runner is None or snap is None or not snap.ready:
                    continue
                assert snap.macro_posterior is not None and snap.micro_posterior is not None
                assert snap.macro_state is not None
                m = runner.model
                for label, p in zip(m.macro.hmm.labels, snap.macro_posterior.tolist(), strict=True):
                    probs.append(([iid.symbol, runner.model_id, "macro", label], p))
                for label, p in zip(m.micro.hmms[snap.macro_state].labels, snap.micro_posterior.tolist(),
                                    strict=True):
                    probs.append(([iid.symbol, runner.model_id, "micro", label], p))
            for key, n in lane.counts.items():
                decisions[key] = decisions.get(key, 0) + n
            for key, n in lane.shadow_counts.items():
                shadow[key] = shadow.get(key, 0) + n
        info = [([mid, tag], 1.0) for mid, tag in ((self.model_id, "production"), (self.canary_id, "canary"))
                if mid]
        return [
            gauge_family("hmm_state_probability", "Filtered posterior of each regime state (active micro model)",
                         ["symbol", "model", "level", "state"], probs),
            counter_family("policy_decisions", "Production policy decisions by action and guardrail",
                           ["action", "reason"], [([a, r], float(n)) for (a, r), n in sorted(decisions.items())]),
            counter_family("policy_shadow_decisions", "Canary (shadow) policy decisions by action and guardrail",
                           ["action", "reason"], [([a, r], float(n)) for (a, r), n in sorted(shadow.items())]),
            gauge_family("hmm_model_info", "Models the strategy runs (always 1)", ["id", "tag"], info),
        ]


def build_hmm_strategy(cfg: Any, instruments: tuple[InstrumentId, ...]) -> HmmStrategy:
    """The strategy for `[strategy] kind = "hmm"` (bootstrap factory); models come from the ModelService."""
    return HmmStrategy("hmm", instruments, cfg.hmm, bar_interval_s=cfg.strategy.bar_interval_s,
                       canary_share=cfg.hmm.policy.canary_capital_fraction)


def _book_fill(pos: Decimal, avg_px: Decimal, net: Decimal, qty: Decimal, price: Decimal,
               fee: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """(position, average entry price, cumulative realized - fees) after a signed fill at `price`.

    Average cost: a fill that adds keeps the weighted average; one that reduces realizes
    (price - avg) x closed qty; one that flips opens the rest at `price`."""
    net -= fee
    new = pos + qty
    if pos == 0 or (pos > 0) == (qty > 0):
        avg_px = (avg_px * abs(pos) + price * abs(qty)) / abs(new) if new != 0 else Decimal(0)
        return new, avg_px, net
    closed = min(abs(qty), abs(pos))
    net += (price - avg_px) * closed * (1 if pos > 0 else -1)
    if new == 0:
        return new, Decimal(0), net
    if (new > 0) != (pos > 0):
        return new, price, net
    return new, avg_px, net
