"""Governance's stale-data input and trading sessions (issue 14): `data_age_s` is None (not
stale) while the instrument's session is closed, counts from the open inside a session, and
is the plain age for a 24/7 instrument or once the listed calendar ran out."""

from __future__ import annotations

from nautilus_hmm.control.plane import RouterGovernanceInputs
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.sessions import TradingSessions
from tests.unit.test_control_plane import BTC, plane_of

AAPL = InstrumentId("ibkr", "AAPL")
NS = 1_000_000_000
HOUR = 3600 * NS
T0 = ManualClock().time_ns()  # where plane_of's clock starts


def inputs_with(sessions: TradingSessions | None):
    _plane, router, _bus, marks, clock = plane_of("a")
    inputs = RouterGovernanceInputs(router, clock, lambda: {"a": (AAPL, BTC)}, marks.marks, marks.last_ns,
                                    lambda venue: True, lambda iid: sessions if iid == AAPL else None)
    return inputs, marks, clock


def test_closed_session_reads_as_no_age_and_the_open_restarts_the_count() -> None:
    t0 = T0
    close, reopen = t0 + HOUR, t0 + 50 * HOUR
    s = TradingSessions(((t0 - HOUR, close), (reopen, reopen + 6 * HOUR)), "UTC", reopen + 24 * HOUR)
    inputs, marks, clock = inputs_with(s)
    marks.update(AAPL, 190.0, close - NS)
    marks.update(BTC, 60_000.0, close - NS)
    clock.set_time_ns(close + 10 * HOUR)  # the weekend
    assert inputs.data_age_s(AAPL) is None
    assert inputs.data_age_s(BTC) == 10 * 3600 + 1  # 24/7: the plain age, as before
    clock.set_time_ns(reopen + 5 * NS)
    assert inputs.data_age_s(AAPL) == 5.0  # from the open, not from Friday's last trade
    marks.update(AAPL, 191.0, reopen + 4 * NS)
    assert inputs.data_age_s(AAPL) == 1.0


def test_past_the_calendar_the_plain_age_comes_back() -> None:
    t0 = T0
    s = TradingSessions(((t0 - HOUR, t0),), "UTC", t0 + HOUR)
    inputs, marks, clock = inputs_with(s)
    marks.update(AAPL, 190.0, t0 - NS)
    clock.set_time_ns(t0 + 2 * HOUR)
    assert inputs.data_age_s(AAPL) == 2 * 3600 + 1


def test_without_a_sessions_lookup_nothing_changes() -> None:
    _plane, router, _bus, marks, clock = plane_of("a")
    inputs = RouterGovernanceInputs(router, clock, lambda: {"a": (AAPL,)}, marks.marks, marks.last_ns,
                                    lambda venue: True)
    marks.update(AAPL, 190.0, clock.time_ns())
    clock.advance(7)
    assert inputs.data_age_s(AAPL) == 7.0
