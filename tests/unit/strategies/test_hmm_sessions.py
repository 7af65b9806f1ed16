"""The HMM strategy's stale-data guardrail and trading sessions (issue 14): quiet while the
instrument's session is closed (a weekend), counting from the open inside the next session,
firing as before inside a session and once the listed calendar has run out."""

from __future__ import annotations

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.sessions import TradingSessions
from nautilus_hmm.hmm.config import HmmConfig
from nautilus_hmm.messages import PolicyDecision
from nautilus_hmm.strategies.base import StrategyContext
from nautilus_hmm.strategies.hmm import HmmStrategy
from tests.unit.hmm.kit import IID, NS, T0, FakeEngine, Feed, decisive_model

HOUR = 3600 * NS
DAY = 24 * HOUR


class SessionRig:
    """HmmStrategy on a real bus and manual clock; its context answers `sessions` from
    `self.sessions` (set after the feed ran, since the calendar depends on the last bar)."""

    def __init__(self) -> None:
        self.cfg = HmmConfig()
        self.bus, self.clock = Bus(), ManualClock(T0)
        self.engine = FakeEngine(self.bus, self.clock)
        self.feed = Feed(self.bus, self.clock, interval_s=60)
        self.sessions: TradingSessions | None = None
        self.strategy = HmmStrategy("hmm", (IID,), self.cfg, model=decisive_model(), model_id="m1")
        ctx = StrategyContext("hmm", self.bus, self.clock, self.engine.position,
                              sessions=lambda iid: self.sessions if iid == IID else None)
        self.strategy.attach(self.bus, ctx)
        self.decisions: list[PolicyDecision] = []
        self.bus.subscribe(PolicyDecision, self.decisions.append)
        self.stale_ns = int(self.cfg.policy.stale_data_s * NS)

    def halts_since(self, n: int) -> list[str]:
        return [d.reason.split(":")[0] for d in self.decisions[n:] if d.action == "halt"]


def friday_then_monday(close_ns: int) -> TradingSessions:
    """A session that closed at `close_ns` (Friday) and the next opening two days later."""
    monday = close_ns + 2 * DAY
    return TradingSessions(((T0 - HOUR, close_ns), (monday, monday + 6 * HOUR)), "UTC", monday + DAY)


def test_the_guardrail_is_quiet_over_a_weekend_and_counts_from_the_open() -> None:
    rig = SessionRig()
    rig.feed.run(600, 0.0005)
    close = rig.clock.time_ns()
    rig.sessions = s = friday_then_monday(close)
    n = len(rig.decisions)
    for h in (1, 12, 30, 47):  # Saturday and Sunday
        rig.strategy.tick(close + h * HOUR)
    assert rig.halts_since(n) == []
    monday = s.intervals_ns[1][0]
    rig.strategy.tick(monday + rig.stale_ns - NS)  # the first bar has the whole limit to come
    assert rig.halts_since(n) == []
    rig.strategy.tick(monday + rig.stale_ns + NS)
    assert rig.halts_since(n) == ["stale_data"]


def test_inside_a_session_the_guardrail_fires_as_without_sessions() -> None:
    rig = SessionRig()
    rig.feed.run(600, 0.0005)
    now = rig.clock.time_ns()
    rig.sessions = TradingSessions(((T0 - HOUR, now + DAY),), "UTC", now + 2 * DAY)
    n = len(rig.decisions)
    rig.strategy.tick(now + rig.stale_ns - NS)
    assert rig.halts_since(n) == []
    rig.strategy.tick(now + rig.stale_ns + NS)
    assert rig.halts_since(n) == ["stale_data"]


def test_a_calendar_that_ran_out_does_not_keep_the_guardrail_quiet() -> None:
    rig = SessionRig()
    rig.feed.run(600, 0.0005)
    close = rig.clock.time_ns()
    rig.sessions = TradingSessions(((T0 - HOUR, close),), "UTC", close + HOUR)
    n = len(rig.decisions)
    rig.strategy.tick(close + 30 * 60 * NS)  # closed, inside the calendar: quiet
    assert rig.halts_since(n) == []
    rig.strategy.tick(close + 2 * HOUR)  # past the calendar: stale
    assert rig.halts_since(n) == ["stale_data"]


def test_no_bar_yet_on_a_closed_session_is_not_reported_until_after_the_open() -> None:
    rig = SessionRig()
    opens = T0 + 3 * DAY
    rig.sessions = TradingSessions(((opens, opens + 6 * HOUR),), "UTC", opens + DAY)
    rig.strategy.tick(T0 + DAY)
    rig.strategy.tick(opens + rig.stale_ns - NS)
    assert rig.halts_since(0) == []
    rig.strategy.tick(opens + rig.stale_ns + NS)
    assert rig.halts_since(0) == ["stale_data"]


def test_trackers_built_before_attach_get_the_sessions_and_a_refreshed_calendar() -> None:
    cal = TradingSessions(((T0 - HOUR, T0 + DAY),), "UTC", T0 + 2 * DAY)
    bus, clock = Bus(), ManualClock(T0)
    engine = FakeEngine(bus, clock)
    strategy = HmmStrategy("hmm", (IID,), HmmConfig(), model=decisive_model(), model_id="m1")
    lane = strategy._lanes[IID]
    assert lane.prod is not None and lane.prod.tracker.sessions is None  # built without a context
    current = {"s": cal}
    strategy.attach(bus, StrategyContext("hmm", bus, clock, engine.position, sessions=lambda iid: current["s"]))
    assert lane.prod.tracker.sessions is cal  # re-warmed with the instrument's sessions
    current["s"] = fresh = TradingSessions(((T0 - HOUR, T0 + 3 * DAY),), "UTC", T0 + 4 * DAY)
    strategy.tick(T0 + 60 * NS)
    assert lane.prod.tracker.sessions is fresh


def test_sessions_known_only_after_attach_rewarm_the_trackers_at_the_next_tick() -> None:
    rig = SessionRig()  # attached while the instrument had no sessions yet
    rig.feed.run(120, 0.0005)
    lane = rig.strategy._lanes[IID]
    assert lane.prod is not None and lane.prod.tracker.sessions is None
    rig.sessions = cal = TradingSessions(((T0 - HOUR, T0 + DAY),), "UTC", T0 + 2 * DAY)
    rig.strategy.tick(rig.clock.time_ns())
    assert lane.prod.tracker.sessions is cal and lane.prod.bars_fed == 120
