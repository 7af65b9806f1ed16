"""The capital allocator: rebalances the strategies' shares on a schedule.

Every `interval_s` on the injected clock it reads each enabled strategy's PnL curve
(`pnl_series`), feeds the new PnL steps to the bandit (when one is given), computes new
shares with `allocation.compute_shares` (formula in nautilus_hmm/control/allocation.py:
a rolling t-statistic of the per-step returns minus a drawdown penalty, softmax, blended
with the bandit, clamped to [min_share, max_share], moved at most max_step, projected to
sum 1), applies them (the router's `set_shares`), publishes `AllocationChanged` with the
inputs, logs one line and persists the state atomically.

Cost rules: a rebalance reads only the newest `lookback + 1` points of each curve
(`pnl_series(id, last_n)`); a disabled allocator does not rebalance on its schedule (it
only puts the static weights back once, without writing); the state (this file and the
bandit's) is written only when the applied or computed shares, their source or the
override changed, or when the bandit has unsaved steps older than MAX_UNSAVED_S on the
clock (so a restart re-feeds the bandit at most that much); `state_path` None = never
read nor written (a backtest).

Sources of an `AllocationChanged`: "static" (no evidence yet, or the allocator disabled),
"rebalance", "restore" (shares read back at start), "override" (an admin's manual shares),
"override_expired" (the override ended: back to the allocator's own computed shares,
which kept evolving during the override).

State file (`state_path`, written with write_atomic): applied shares, their source, the
allocator's computed shares, the override with its wall-clock expiry, and the timestamp
of the last PnL step given to the bandit per strategy (so a restart does not feed the
bandit the same steps twice). A damaged file is a warning naming it; the static weights
are used instead. A file that cannot be written is an error log line; the shares still
apply in memory and the next write tries again.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog

from nautilus_hmm.control.allocation import (
    AllocationError,
    AllocatorConfig,
    ShareBounds,
    UnknownStrategyError,
    check_bounds,
    compute_shares,
    project_shares,
    static_shares,
    validate_override,
)
from nautilus_hmm.control.bandit import BPS_PER_UNIT
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import NS_PER_S, Clock
from nautilus_hmm.core.files import write_atomic
from nautilus_hmm.core.lifecycle import BaseComponent
from nautilus_hmm.messages import AllocationChanged

__all__ = [
    "AllocationError",
    "Allocator",
    "AllocatorConfig",
    "BanditPort",
    "ShareBounds",
    "UnknownStrategyError",
    "check_bounds",
    "compute_shares",
    "static_shares",
]

log = structlog.get_logger("allocator")

STATE_VERSION = 1
MAX_UNSAVED_S = 3600.0  # bandit steps fed but not yet written are saved at most this late


class BanditPort(Protocol):
    """What the allocator needs of the bandit (control.bandit.BanditFeedback implements it)."""

    @property
    def enabled(self) -> bool:
        """Whether the bandit is updated and blended."""
        ...

    def observe(self, strategy_id: str, reward_bps: float) -> None:
        """One PnL step's reward in bps of the strategy's capital."""
        ...

    def weights(self, strategy_ids: Sequence[str]) -> dict[str, float]:
        """P(best) per strategy."""
        ...

    def save(self) -> None:
        """Persist the state (errors logged, not raised)."""
        ...

    def view(self) -> dict[str, Any]:
        """State for GET /allocations."""
        ...


# pnl_series(id, last_n): the newest last_n samples (the router's signature); a one-argument
# callable (the whole curve) is accepted too and sliced here.
PnlSeries = Callable[..., Sequence[tuple[int, float]]]
BoundsPort = Callable[[], Mapping[str, "ShareBounds | tuple[float, float, float]"]]
ApplyShares = Callable[[Mapping[str, float]], None]
CapitalPort = Callable[[str], float]


@dataclass(slots=True)
class _Override:
    shares: dict[str, float]
    expires_ns: int
    source: str
    set_ns: int


class StateFileError(ValueError):
    """The allocations file is malformed; the message names the field."""


class Allocator(BaseComponent):
    """Rebalances strategy shares on a schedule; overrides with expiry; persisted state."""

    name = "allocator"

    def __init__(
        self,
        config: Callable[[], AllocatorConfig],
        clock: Clock,
        bus: Bus,
        pnl_series: PnlSeries,
        bounds: BoundsPort,
        apply: ApplyShares,
        state_path: str | Path | None,
        bandit: BanditPort | None = None,
        *,
        capital_usd: CapitalPort | None = None,
    ) -> None:
        """`pnl_series(id)`: (ts_ns, cumulative PnL USD) samples; `bounds()`: enabled strategies'
        (min_share, max_share, weight); `apply(shares)`: the router's set_shares;
        `capital_usd(id)`: the strategy's capital (returns are PnL steps over it; a strategy
        with no capital is measured against the sum of all strategies' capital; None: 1 USD,
        i.e. the drawdown is in USD). `state_path` None: nothing is read or written (the
        bandit's state included)."""
        super().__init__()
        self._config = config
        self._clock = clock
        self._bus = bus
        self._pnl_series = pnl_series
        self._bounds = bounds
        self._apply = apply
        self._capital_usd = capital_usd
        self.state_path = None if state_path is None else Path(state_path)
        self._tail = _accepts_last_n(pnl_series)
        self._bandit = bandit
        self._saved_key: Any = None  # what the state file holds (shares, computed, source, override)
        self._bandit_unsaved_ns: int | None = None  # clock time of the oldest unsaved bandit step
        self._shares: dict[str, float] = {}
        self._computed: dict[str, float] = {}
        self._source = "static"
        self._override: _Override | None = None
        self._bandit_seen_ns: dict[str, int] = {}
        self._last_inputs: dict[str, Any] | None = None
        self._last_rebalance_ns: int | None = None
        self._rebalances = 0
        self._next_rebalance_mono: float | None = None
        self._wake = asyncio.Event()
        self._write_error = ""

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Restore the persisted shares (or the static weights) and apply them."""
        self.restore()
        self._next_rebalance_mono = self._clock.monotonic() + self._config().interval_s

    async def run(self) -> None:
        """Rebalance every interval_s; end an override at its expiry."""
        while True:
            await self._sleep_or_wake(self._seconds_to_due())
            self.tick()

    def tick(self) -> None:
        """Expire a due override, then rebalance if one is due (the run loop's step)."""
        if self._override is not None and self._clock.time_ns() >= self._override.expires_ns:
            self._end_override(cleared_by=None)
        now = self._clock.monotonic()
        if self._next_rebalance_mono is None or now >= self._next_rebalance_mono:
            cfg = self._config()
            self._next_rebalance_mono = now + cfg.interval_s
            if cfg.enabled:
                self.rebalance()
            else:
                self._back_to_static()

    def _back_to_static(self) -> None:
        """Disabled: no rebalance, no write; shares left by an earlier rebalance go back to the
        static weights once (an override holds until it ends)."""
        if self._override is not None or self._source == "static":
            return
        static = static_shares(self._bounds_now())
        self._computed = dict(static)
        self._set(static, "static")
        self._publish(static, "static", {"reason": "allocator disabled", "static": static})

    def _seconds_to_due(self) -> float:
        now = self._clock.monotonic()
        nxt = self._next_rebalance_mono if self._next_rebalance_mono is not None else now
        delay = max(0.0, nxt - now)
        if self._override is not None:
            delay = min(delay, max(0.0, (self._override.expires_ns - self._clock.time_ns()) / NS_PER_S))
        return delay

    async def _sleep_or_wake(self, delay_s: float) -> None:
        # An override set while sleeping wakes the loop so its expiry is scheduled.
        self._wake.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(delay_s))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    # ------------------------------------------------------------------ allocation
    def _bounds_now(self) -> dict[str, ShareBounds]:
        out: dict[str, ShareBounds] = {}
        for s, b in self._bounds().items():
            out[s] = b if isinstance(b, ShareBounds) else ShareBounds(float(b[0]), float(b[1]), float(b[2]))
        return out

    def _capitals(self, ids: Sequence[str]) -> dict[str, float]:
        if self._capital_usd is None:
            return {s: 1.0 for s in ids}
        caps = {s: float(self._capital_usd(s)) for s in ids}
        pool = math.fsum(c for c in caps.values() if c > 0 and math.isfinite(c))
        return {s: (c if c > 0 and math.isfinite(c) else pool) for s, c in caps.items()}

    def _series(self, sid: str, last_n: int) -> Sequence[tuple[int, float]]:
        if self._tail:
            return self._pnl_series(sid, last_n)
        return list(self._pnl_series(sid)[-last_n:])

    def _feed_bandit(self, series: Mapping[str, Sequence[tuple[int, float]]], capitals: Mapping[str, float],
                     lookback: int) -> None:
        """Give the bandit every PnL step newer than the last one it saw (at most `lookback`)."""
        assert self._bandit is not None
        fed = False
        for s, points in series.items():
            cap = capitals.get(s, 0.0)
            seen = self._bandit_seen_ns.get(s)
            tail = points[-(lookback + 1):]
            if seen is not None:
                # only the steps after the newest one seen (usually one): scan from the end
                start = len(tail) - 1
                while start > 0 and tail[start - 1][0] > seen:
                    start -= 1
                tail = tail[max(0, start - 1):]
            for (_, prev), (ts, cur) in itertools.pairwise(tail):
                if seen is not None and ts <= seen:
                    continue
                if cap > 0 and math.isfinite(prev) and math.isfinite(cur):
                    self._bandit.observe(s, BPS_PER_UNIT * (cur - prev) / cap)
                    fed = True
            if tail:
                self._bandit_seen_ns[s] = max(tail[-1][0], seen or tail[-1][0])
        if fed and self._bandit_unsaved_ns is None:
            self._bandit_unsaved_ns = self._clock.time_ns()

    def rebalance(self) -> dict[str, float]:
        """Compute shares now; apply them unless an override holds. Returns the computed shares."""
        cfg = self._config()
        bounds = self._bounds_now()
        now_ns = self._clock.time_ns()
        ids = list(bounds)
        series = {s: self._series(s, cfg.lookback + 1) for s in ids} if cfg.enabled else {}
        capitals = self._capitals(ids) if cfg.enabled else {}
        bandit_weights: dict[str, float] | None = None
        if self._bandit is not None and cfg.enabled and self._bandit.enabled:
            self._feed_bandit(series, capitals, cfg.lookback)
            bandit_weights = self._bandit.weights(ids)
        current = self._computed if self._computed else self._shares
        try:
            computed, inputs = compute_shares(cfg, bounds, series, capitals, current, bandit_weights)
        except AllocationError as exc:
            log.error("allocator_rebalance_failed", error=str(exc), field=exc.field, shares=self._shares)
            return dict(self._computed)
        self._computed = computed
        self._rebalances += 1
        self._last_rebalance_ns = now_ns
        source = "rebalance" if inputs["mode"] == "rebalance" else "static"
        applied = self._override is None
        inputs["applied"] = applied
        if not applied:
            assert self._override is not None
            inputs["override_expires_ns"] = self._override.expires_ns
        self._last_inputs = inputs
        if applied and (computed != self._shares or source != self._source):
            self._set(computed, source)  # unchanged shares are not re-applied (no router re-size)
        self._publish(computed, source, inputs)
        log.info("allocator_rebalanced", source=source, applied=applied,
                 shares={s: round(v, 6) for s, v in computed.items()},
                 scores={s: row["score"] for s, row in inputs["strategies"].items()},
                 evidence=sorted(s for s, row in inputs["strategies"].items() if row["evidence"]),
                 step_relaxed=inputs["step_relaxed"])
        self._persist(changed_only=True)
        return dict(computed)

    def rebalance_now(self) -> dict[str, float]:
        """Rebalance out of schedule (e.g. after a reload changed the strategies); restarts the period."""
        self._next_rebalance_mono = self._clock.monotonic() + self._config().interval_s
        out = self.rebalance()
        self._wake.set()
        return out

    def _set(self, shares: Mapping[str, float], source: str) -> None:
        self._shares = dict(shares)
        self._source = source
        self._apply(dict(shares))

    def _publish(self, shares: Mapping[str, float], source: str, inputs: dict[str, Any]) -> None:
        now = self._clock.time_ns()
        self._bus.publish(AllocationChanged(ts_event_ns=now, ts_init_ns=now, shares=dict(shares),
                                            source=source, inputs=inputs))

    # ------------------------------------------------------------------ override
    def set_override(self, shares: Mapping[str, float], expires_s: float, source: str) -> dict[str, Any]:
        """Apply manual shares until `expires_s` from now; returns view().

        UnknownStrategyError (a KeyError) for an id that is not an enabled strategy;
        AllocationError(field, value, message) for a share outside its bounds, shares not
        summing to 1 within 1e-9, or a bad expiry. Nothing changes on error."""
        bounds = self._bounds_now()
        checked = validate_override(shares, bounds, expires_s)
        now = self._clock.time_ns()
        self._override = _Override(checked, now + round(float(expires_s) * NS_PER_S), str(source), now)
        self._set(checked, "override")
        self._publish(checked, "override", {"requested_by": str(source), "expires_s": float(expires_s),
                                            "expires_ns": self._override.expires_ns,
                                            "computed": dict(self._computed)})
        log.info("allocator_override_set", shares=checked, expires_s=float(expires_s), source=str(source))
        self._persist()
        self._wake.set()
        return self.view()

    def clear_override(self, source: str) -> dict[str, Any]:
        """End the override now (back to the computed shares); returns view()."""
        if self._override is not None:
            self._end_override(cleared_by=str(source))
        return self.view()

    def _end_override(self, cleared_by: str | None) -> None:
        assert self._override is not None
        ended = self._override
        self._override = None
        bounds = self._bounds_now()
        shares = self._computed_within(bounds)
        self._computed = shares
        self._set(shares, "override_expired")
        self._publish(shares, "override_expired", {"override": ended.shares, "requested_by": ended.source,
                                                   "expires_ns": ended.expires_ns, "cleared_by": cleared_by})
        log.info("allocator_override_ended", shares=shares, cleared_by=cleared_by, override_source=ended.source)
        self._persist()

    def _computed_within(self, bounds: Mapping[str, ShareBounds]) -> dict[str, float]:
        """The computed shares, restricted to today's strategies and projected into their bounds."""
        if not bounds:
            return {}
        if not self._computed:
            return static_shares(bounds)
        target = {s: self._computed.get(s, 0.0) for s in bounds}
        return project_shares(target, {s: b.min_share for s, b in bounds.items()},
                              {s: b.max_share for s, b in bounds.items()})

    # ------------------------------------------------------------------ persistence
    def restore(self) -> None:
        """Read the state file and apply its shares (source "restore"), else the static weights."""
        bounds = self._bounds_now()
        cfg = self._config()
        static = static_shares(bounds)
        doc = self._read_state(static) if cfg.enabled else None
        if doc is None:
            self._computed = dict(static)
            self._set(static, "static")
            self._publish(static, "static", {"reason": "no saved allocation" if cfg.enabled else "allocator disabled",
                                             "static": static})
            return
        box_lo = {s: b.min_share for s, b in bounds.items()}
        box_hi = {s: b.max_share for s, b in bounds.items()}
        shares = project_shares({s: doc["shares"].get(s, 0.0) for s in bounds}, box_lo, box_hi) if bounds else {}
        computed = doc["computed"] or doc["shares"]
        self._computed = project_shares({s: computed.get(s, 0.0) for s in bounds}, box_lo, box_hi) if bounds else {}
        self._bandit_seen_ns = doc["bandit_seen_ns"]
        ov = doc["override"]
        if ov is not None and ov.expires_ns > self._clock.time_ns():
            try:
                ov.shares = validate_override(ov.shares, bounds, 1.0)
                self._override = ov
                shares = ov.shares
            except (AllocationError, UnknownStrategyError) as exc:
                log.warning("allocator_override_dropped", file=str(self.state_path), error=str(exc))
        self._set(shares, "override" if self._override is not None else "restore")
        self._publish(shares, "restore", {"file": str(self.state_path), "saved_source": doc["source"],
                                          "override_expires_ns": None if self._override is None else self._override.expires_ns})
        log.info("allocator_restored", file=str(self.state_path), shares=shares,
                 override=self._override is not None)
        if ov is not None and self._override is None:
            self._persist()

    def _read_state(self, static: Mapping[str, float]) -> dict[str, Any] | None:
        if self.state_path is None:
            return None
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("allocator_state_unreadable", file=str(self.state_path),
                        error=exc.strerror or repr(exc), fallback="static weights", static=dict(static))
            return None
        try:
            return _parse_state(orjson.loads(raw))
        except (orjson.JSONDecodeError, StateFileError) as exc:
            log.warning("allocator_state_damaged", file=str(self.state_path), error=str(exc),
                        fallback="static weights", static=dict(static))
            return None

    def _persist(self, changed_only: bool = False) -> None:
        """Write the state (and the bandit's); `changed_only`: skip it when the shares, their
        source and the override are what the file holds and no bandit step is overdue."""
        if self.state_path is None:
            return
        ov = self._override
        key = (dict(self._shares), self._source, dict(self._computed),
               None if ov is None else (dict(ov.shares), ov.expires_ns, ov.source))
        now_ns = self._clock.time_ns()
        overdue = (self._bandit_unsaved_ns is not None
                   and now_ns - self._bandit_unsaved_ns >= MAX_UNSAVED_S * NS_PER_S)
        if changed_only and key == self._saved_key and not overdue:
            return
        if self._bandit is not None and self._bandit_unsaved_ns is not None:
            self._bandit.save()
            self._bandit_unsaved_ns = None
        doc = {
            "version": STATE_VERSION,
            "shares": self._shares,
            "source": self._source,
            "computed": self._computed,
            "override": None if ov is None else {"shares": ov.shares, "expires_ns": ov.expires_ns,
                                                 "source": ov.source, "set_ns": ov.set_ns},
            "updated_ns": self._clock.time_ns(),
            "bandit_seen_ns": self._bandit_seen_ns,
        }
        try:
            write_atomic(self.state_path, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
            self._write_error = ""
            self._saved_key = key
        except OSError as exc:
            self._write_error = f"{self.state_path}: {exc.strerror or exc}"
            log.error("allocator_state_write_failed", file=str(self.state_path), error=exc.strerror or repr(exc))

    # ------------------------------------------------------------------ surface
    @property
    def shares(self) -> dict[str, float]:
        """The applied shares."""
        return dict(self._shares)

    def view(self) -> dict[str, Any]:
        """GET /allocations: applied shares and source, static weights, bounds, override,
        last rebalance inputs and time, bandit state."""
        cfg = self._config()
        bounds = self._bounds_now()
        now_ns = self._clock.time_ns()
        ov = self._override
        nxt = self._next_rebalance_mono
        return {
            "enabled": cfg.enabled,
            "shares": dict(self._shares),
            "source": self._source,
            "computed": dict(self._computed),
            "static": static_shares(bounds) if not check_bounds(bounds) else {},
            "bounds": {s: {"min_share": b.min_share, "max_share": b.max_share, "weight": b.weight}
                       for s, b in bounds.items()},
            "override": None if ov is None else {
                "shares": dict(ov.shares), "source": ov.source, "set_ns": ov.set_ns,
                "expires_ns": ov.expires_ns, "expires_in_s": max(0.0, (ov.expires_ns - now_ns) / NS_PER_S)},
            "last_rebalance_ns": self._last_rebalance_ns,
            "last_inputs": self._last_inputs,
            "rebalances": self._rebalances,
            "interval_s": cfg.interval_s,
            "next_rebalance_in_s": None if nxt is None else max(0.0, nxt - self._clock.monotonic()),
            "bandit": None if self._bandit is None else self._bandit.view(),
            "state_file": None if self.state_path is None else str(self.state_path),
            "state_write_error": self._write_error or None,
        }

    def collect_metrics(self) -> list[Any]:
        """strategy_allocation_ratio{strategy}, allocator_rebalances_total, allocator_override_active."""
        from nautilus_hmm.obs.metrics import counter_family, gauge_family

        return [
            gauge_family("strategy_allocation_ratio", "Share of the account's capital allocated to the strategy",
                         ["strategy"], [([s], v) for s, v in sorted(self._shares.items())]),
            counter_family("allocator_rebalances", "Allocator rebalances computed", [],
                           [([], float(self._rebalances))]),
            gauge_family("allocator_override_active", "1 while a manual allocation override holds", [],
                         [([], 1.0 if self._override is not None else 0.0)]),
        ]


def _accepts_last_n(fn: Callable[..., Any]) -> bool:
    """Whether `fn(id, last_n)` can be called (the router's pnl_series), else `fn(id)`."""
    try:
        inspect.signature(fn).bind("id", 1)
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): assume the router's
        return True
    return True


def _shares_of(where: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise StateFileError(f"{where}: must be an object")
    out: dict[str, float] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= 1:
            raise StateFileError(f"{where}.{k}: {v!r} is not a share in [0, 1]")
        out[str(k)] = float(v)
    return out


def _parse_state(doc: Any) -> dict[str, Any]:
    """The allocations file's content, checked; StateFileError names the bad field."""
    if not isinstance(doc, dict):
        raise StateFileError("state: must be a JSON object")
    if doc.get("version") != STATE_VERSION:
        raise StateFileError(f"version: {doc.get('version')!r} is not {STATE_VERSION}")
    shares = _shares_of("shares", doc.get("shares"))
    computed = _shares_of("computed", doc.get("computed", {}))
    source = doc.get("source", "")
    if not isinstance(source, str):
        raise StateFileError(f"source: {source!r} is not a string")
    seen = doc.get("bandit_seen_ns", {})
    if not isinstance(seen, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in seen.values()):
        raise StateFileError("bandit_seen_ns: must be an object of integer timestamps")
    ov_doc = doc.get("override")
    override = None
    if ov_doc is not None:
        if not isinstance(ov_doc, dict):
            raise StateFileError("override: must be an object or null")
        exp, set_ns = ov_doc.get("expires_ns"), ov_doc.get("set_ns", 0)
        if isinstance(exp, bool) or not isinstance(exp, int) or isinstance(set_ns, bool) or not isinstance(set_ns, int):
            raise StateFileError(f"override.expires_ns: {exp!r} is not an integer timestamp")
        override = _Override(_shares_of("override.shares", ov_doc.get("shares")), exp,
                             str(ov_doc.get("source", "")), set_ns)
    return {"shares": shares, "computed": computed, "source": source,
            "bandit_seen_ns": {str(k): int(v) for k, v in seen.items()}, "override": override}
