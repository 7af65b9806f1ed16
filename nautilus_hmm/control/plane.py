"""The control plane: the strategy router, the allocator (with its bandit) and governance
behind one object, which the web routes hold through `web.control.ControlPlanePort`.

Who owns what: the router owns the strategies' states, sub-accounts and shares; the
allocator decides the shares (and the overrides); governance decides state changes and
model promotions on evidence. This module only composes them: an operator's
enable/disable/reduce is the router's `set_state` (source "admin"), an override is the
allocator's, and the views are theirs, joined per strategy. Without an allocator (a plane
built for tests or a backtest that asks for none) the shares are the static weights;
without governance its view says it is off.

`RouterGovernanceInputs` adapts the router, the mark book and the venues' health to
governance's `GovernanceInputs` port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from nautilus_hmm.control.allocation import AllocationError
from nautilus_hmm.control.allocator import Allocator
from nautilus_hmm.control.governance import Governance, StrategyStatsView
from nautilus_hmm.core.clock import NS_PER_S, Clock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.sessions import TradingSessions, data_age_ref_ns

# POST /admin/strategies/{id}/<action> -> the router's state
ACTION_STATES: Mapping[str, str] = {"enable": "active", "disable": "disabled", "reduce": "reduce"}


class RouterPort(Protocol):
    """What the plane reads and commands of the strategy router (control.router.StrategyRouter)."""

    def views(self) -> list[dict[str, Any]]:
        """One row per strategy (GET /strategies)."""
        ...

    def set_state(self, strategy_id: str, state: str, reason: str, source: str) -> None:
        """active | reduce | disabled; KeyError for an unknown strategy."""
        ...

    def state(self, strategy_id: str) -> str:
        """The strategy's state; KeyError for an unknown strategy."""
        ...

    def pnl_series(self, strategy_id: str) -> list[tuple[int, float]]:
        """(ts_ns, cumulative PnL USD) sampled per bar close."""
        ...

    def stats(self, strategy_id: str) -> Any:
        """Drawdown, loss streak, orders and errors of the strategy's sub-account."""
        ...

    def capital_usd(self, strategy_id: str, lane: str = "production") -> float:
        """The lane's capital: share x account equity (x canary share for the canary lane)."""
        ...

    def collect_metrics(self) -> list[Any]:
        """Per-strategy Prometheus families."""
        ...


class ControlPlane:
    """Router + allocator + governance; implements web.control.ControlPlanePort."""

    def __init__(self, router: RouterPort, allocator: Allocator | None = None,
                 governance: Governance | None = None,
                 describe: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        """`describe(id)`: the strategy's own fields joined to its router row (kind, instruments, status)."""
        self.router = router
        self.allocator = allocator
        self.governance = governance
        self._describe = describe

    # ------------------------------------------------------------------ strategies

    def _row(self, row: dict[str, Any]) -> dict[str, Any]:
        sid = row.get("id", row.get("strategy_id"))
        if self._describe is not None and isinstance(sid, str):
            extra = self._describe(sid)
            return {**{k: v for k, v in extra.items() if k not in row}, **row}
        return row

    def strategy_views(self) -> list[dict[str, Any]]:
        """GET /strategies: one row per configured strategy."""
        return [self._row(r) for r in self.router.views()
                if not str(r.get("id", r.get("strategy_id", ""))).startswith("_")]

    def strategy_view(self, strategy_id: str) -> dict[str, Any] | None:
        """GET /strategies/{id}: the strategy's row, None for an unknown id."""
        for row in self.strategy_views():
            if row.get("id", row.get("strategy_id")) == strategy_id:
                return row
        return None

    def set_strategy_state(self, strategy_id: str, action: str, reason: str, source: str) -> dict[str, Any]:
        """enable | disable | reduce one strategy (the router publishes StrategyStateChanged);
        KeyError for an unknown id, ValueError for an unknown action."""
        state = ACTION_STATES.get(action)
        if state is None:
            raise ValueError(f"action = {action!r}: must be one of {', '.join(ACTION_STATES)}")
        self.router.state(strategy_id)  # KeyError before anything changes
        self.router.set_state(strategy_id, state, reason, source)
        view = self.strategy_view(strategy_id)
        return view if view is not None else {"id": strategy_id, "state": self.router.state(strategy_id)}

    # ------------------------------------------------------------------ allocations

    def allocation_view(self) -> dict[str, Any]:
        """GET /allocations: the allocator's view (shares, source, bounds, override, last inputs)."""
        if self.allocator is None:
            return {"enabled": False, "shares": {}, "source": "static"}
        return self.allocator.view()

    def set_allocation_override(self, shares: Mapping[str, float], expires_s: float,
                                source: str) -> dict[str, Any]:
        """Manual shares until expiry (the allocator checks them: AllocationError names the field)."""
        if self.allocator is None:
            raise AllocationError("shares", dict(shares), "no allocator runs in this process")
        return self.allocator.set_override(shares, expires_s, source)

    def clear_allocation_override(self, source: str) -> dict[str, Any]:
        """End a manual override now (back to the allocator's computed shares)."""
        if self.allocator is None:
            raise AllocationError("override", None, "no allocator runs in this process")
        return self.allocator.clear_override(source)

    # ------------------------------------------------------------------ governance

    def governance_view(self) -> dict[str, Any]:
        """GET /governance: rules, their status per strategy, recent decisions with evidence."""
        if self.governance is None:
            return {"enabled": False, "rules": [], "decisions": []}
        return self.governance.view()

    # ------------------------------------------------------------------ metrics

    def collect_metrics(self) -> list[Any]:
        """Router, allocator and governance families (one collector for the node's registry)."""
        out = list(self.router.collect_metrics())
        if self.allocator is not None:
            out.extend(self.allocator.collect_metrics())
        if self.governance is not None:
            out.extend(self.governance.collect_metrics())
        return out


class RouterGovernanceInputs:
    """Governance's inputs from the router (stats, PnL), the strategies (instruments), the mark
    book (data age) and the venues (health): the `GovernanceInputs` port."""

    def __init__(self, router: RouterPort, clock: Clock,
                 instruments: Callable[[], Mapping[str, Sequence[InstrumentId]]],
                 marks: Mapping[InstrumentId, float], last_data_ns: Mapping[InstrumentId, int],
                 venue_ok: Callable[[str], bool],
                 sessions: Callable[[InstrumentId], TradingSessions | None] | None = None) -> None:
        """`marks` and `last_data_ns`: the mark book's dicts (read, never copied); `sessions`:
        an instrument's trading sessions (None: every instrument trades 24/7)."""
        self._sessions = sessions
        self._router = router
        self._marks = marks
        self._clock = clock
        self._instruments = instruments
        self._last_data_ns = last_data_ns
        self._venue_ok = venue_ok

    def strategy_ids(self) -> Sequence[str]:
        """The configured strategies (what the stack runs now)."""
        return list(self._instruments())

    def stats(self, strategy_id: str) -> StrategyStatsView:
        """The router's stats of the strategy's sub-account."""
        stats: StrategyStatsView = self._router.stats(strategy_id)
        return stats

    def instruments(self, strategy_id: str) -> Sequence[InstrumentId]:
        """The strategy's instruments (empty for one that is gone)."""
        return tuple(self._instruments().get(strategy_id, ()))

    def data_age_s(self, instrument_id: InstrumentId) -> float | None:
        """Seconds since the mark book last heard of the instrument; None before any data, and
        while its trading session is closed (no data expected). Inside a session the age counts
        from the later of the last data and the session's start (`data_age_ref_ns`)."""
        last = self._last_data_ns.get(instrument_id)
        if last is None:
            return None
        now = self._clock.time_ns()
        if self._sessions is not None:
            sessions = self._sessions(instrument_id)
            if sessions is not None:
                ref = data_age_ref_ns(sessions, last, now)
                if ref is None:
                    return None
                last = ref
        return max(0.0, (now - last) / NS_PER_S)

    def venue_ok(self, venue: str) -> bool:
        """The venue is running, healthy and not halted."""
        return self._venue_ok(venue)

    def mark(self, instrument_id: InstrumentId) -> float | None:
        """The instrument's mark from the one mark book."""
        return self._marks.get(instrument_id)

    def capital_usd(self, strategy_id: str) -> float:
        """The strategy's production capital (the router's: share x account equity)."""
        return float(self._router.capital_usd(strategy_id))
