"""RiskGate with a real Bus and a ManualClock: decisions, published events, state."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import BreakerState, OrderType, Side, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import (
    Bar,
    BookValidityChanged,
    BreakerStateChanged,
    MarkPrice,
    QuoteTick,
    RiskDenied,
    TradeTick,
    TradingStateChanged,
)
from nautilus_hmm.risk.config import RiskConfig
from nautilus_hmm.risk.gate import ALLOWED, OrderContext, RiskGate

D = Decimal
IID = InstrumentId("sim", "BTCUSDT")
OTHER = InstrumentId("other", "BTCUSDT")
CFG = RiskConfig(
    min_order_notional_usd=10.0,
    max_order_notional_usd=10_000.0,
    max_symbol_exposure_usd=20_000.0,
    max_gross_exposure_usd=50_000.0,
    max_open_orders_per_symbol=3,
    orders_per_s=1.0,
    order_burst=2,
    price_collar_bps=100.0,
    stale_data_s=10.0,
    daily_loss_limit_usd=1_000.0,
    max_drawdown_pct=10.0,
    breaker_error_threshold=2,
    breaker_cooldown_s=30.0,
)
FLAT = OrderContext()


class Recorder:
    """Collects every risk message published on the bus."""

    def __init__(self, bus: Bus) -> None:
        self.denied: list[RiskDenied] = []
        self.states: list[TradingStateChanged] = []
        self.breakers: list[BreakerStateChanged] = []
        bus.subscribe(RiskDenied, self.denied.append)
        bus.subscribe(TradingStateChanged, self.states.append)
        bus.subscribe(BreakerStateChanged, self.breakers.append)


@pytest.fixture
def rec(bus: Bus) -> Recorder:
    return Recorder(bus)


@pytest.fixture
def gate(bus: Bus, clock: ManualClock) -> RiskGate:
    g = RiskGate(CFG, bus, clock)
    g.attach()
    return g


def quote(bus: Bus, clock: ManualClock, bid: float = 99.0, ask: float = 101.0, iid: InstrumentId = IID) -> None:
    now = clock.time_ns()
    bus.publish(QuoteTick(ts_event_ns=now, ts_init_ns=now, instrument_id=iid, bid=bid, bid_size=1.0, ask=ask, ask_size=1.0))


def active(gate: RiskGate, bus: Bus, clock: ManualClock) -> RiskGate:
    gate.set_state(TradingState.ACTIVE, "test", "test")
    quote(bus, clock)
    return gate


def order(
    side: Side = Side.BUY,
    qty: str = "1",
    price: str | None = None,
    iid: InstrumentId = IID,
    cid: str = "nh-x-1",
) -> OrderRequest:
    ot = OrderType.MARKET if price is None else OrderType.LIMIT
    return OrderRequest(cid, iid, side, ot, D(qty), None if price is None else D(price))


def ctx(**kw: Any) -> OrderContext:
    return OrderContext(**kw)


# ------------------------------------------------------------ trading state


def test_gate_starts_halted_and_denies(gate: RiskGate, rec: Recorder) -> None:
    assert gate.state is TradingState.HALTED
    d = gate.check(order(), "s1", FLAT)
    assert (d.allowed, d.reason) == (False, "trading_halted")
    assert [(m.reason, m.strategy_id, m.side, m.quantity, m.instrument_id) for m in rec.denied] == [
        ("trading_halted", "s1", Side.BUY, D(1), IID)
    ]


def test_denial_logs_risk_denied(gate: RiskGate) -> None:
    with capture_logs() as logs:
        gate.check(order(), "s1", FLAT)
    assert [(e["event"], e["log_level"], e["reason"], e["client_order_id"]) for e in logs] == [
        ("risk_denied", "warning", "trading_halted", "nh-x-1")
    ]


def test_set_state_publishes_the_change(gate: RiskGate, rec: Recorder, clock: ManualClock) -> None:
    assert gate.set_state(TradingState.ACTIVE, "reconciled", "node") is True
    [m] = rec.states
    assert (m.old, m.new, m.reason, m.source, m.ts_event_ns) == (
        TradingState.HALTED, TradingState.ACTIVE, "reconciled", "node", clock.time_ns(),
    )


def test_set_state_to_current_state_is_silent(gate: RiskGate, rec: Recorder) -> None:
    assert gate.set_state(TradingState.HALTED, "again", "op") is False
    assert rec.states == []


def test_active_gate_passes_a_sane_order_silently(gate: RiskGate, bus: Bus, clock: ManualClock, rec: Recorder) -> None:
    active(gate, bus, clock)
    with capture_logs() as logs:
        d = gate.check(order(), "s1", FLAT)
    assert d is ALLOWED and bool(d)
    assert (rec.denied, logs) == ([], [])


def test_reducing_state_passes_reducing_orders(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    gate.set_state(TradingState.REDUCING, "operator", "admin")
    assert gate.check(order(Side.SELL, "1"), "s1", ctx(position_qty=D(2))).allowed


def test_reducing_state_denies_orders_that_add(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    gate.set_state(TradingState.REDUCING, "operator", "admin")
    assert gate.check(order(Side.BUY, "1"), "s1", ctx(position_qty=D(2))).reason == "reducing_only"


def test_reducing_state_counts_other_open_reducing_orders(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    gate.set_state(TradingState.REDUCING, "operator", "admin")
    c = ctx(position_qty=D(2), open_sell_qty=D("1.5"))
    assert gate.check(order(Side.SELL, "1"), "s1", c).reason == "reducing_only"


def test_cancels_pass_even_when_halted(gate: RiskGate) -> None:
    assert gate.check_cancel("nh-x-1") is ALLOWED


# ------------------------------------------------------------ market data


def test_no_market_data_is_stale(gate: RiskGate) -> None:
    gate.set_state(TradingState.ACTIVE, "t", "t")
    assert gate.check(order(), "s1", FLAT).reason == "stale_data"


def test_old_market_data_is_stale(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    clock.advance(10.0)
    assert gate.check(order(), "s1", FLAT).allowed
    clock.advance(0.001)
    assert gate.check(order(), "s1", FLAT).reason == "stale_data"


def test_freshness_uses_receipt_time_not_bar_open_time(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    gate.set_state(TradingState.ACTIVE, "t", "t")
    now = clock.time_ns()
    bar_open = now - 3_600 * 10**9
    bus.publish(Bar(ts_event_ns=bar_open, ts_init_ns=now, instrument_id=IID, interval_s=3600,
                    open=1.0, high=2.0, low=1.0, close=100.0, volume=5.0))
    assert gate.check(order(), "s1", FLAT).allowed
    assert gate.marks[IID] == 100.0


def test_quote_mid_trade_and_mark_price_set_the_mark(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    quote(bus, clock, 99.0, 101.0)
    assert gate.marks[IID] == 100.0
    now = clock.time_ns()
    bus.publish(TradeTick(ts_event_ns=now, ts_init_ns=now, instrument_id=IID, price=102.0, size=1.0, aggressor=None, trade_id="t"))
    assert gate.marks[IID] == 102.0
    bus.publish(MarkPrice(ts_event_ns=now, ts_init_ns=now, instrument_id=IID, price=103.0))
    assert gate.marks[IID] == 103.0


def test_invalid_book_denies_until_resynced(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    now = clock.time_ns()
    bus.publish(BookValidityChanged(ts_event_ns=now, ts_init_ns=now, instrument_id=IID, valid=False, reason="gap"))
    assert gate.check(order(), "s1", FLAT).reason == "book_invalid"
    bus.publish(BookValidityChanged(ts_event_ns=now, ts_init_ns=now, instrument_id=IID, valid=True, reason="synced"))
    assert gate.check(order(), "s1", FLAT).allowed


def test_fresh_data_without_a_price_has_no_mark(gate: RiskGate, clock: ManualClock) -> None:
    gate.set_state(TradingState.ACTIVE, "t", "t")
    gate.on_market_data(IID, None, clock.time_ns())
    assert gate.check(order(), "s1", FLAT).reason == "no_mark_price"


def test_detach_stops_market_data_updates(bus: Bus, clock: ManualClock) -> None:
    g = RiskGate(CFG, bus, clock)
    g.attach()()
    quote(bus, clock)
    assert IID not in g.marks


# ------------------------------------------------------------ price, size, exposure


def test_limit_buy_through_the_collar_is_denied(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)  # mark 100, collar 1%
    assert gate.check(order(price="101.01"), "s1", FLAT).reason == "price_collar"
    assert gate.check(order(price="101.00"), "s1", FLAT).allowed


def test_notional_below_min_is_denied(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    assert gate.check(order(qty="0.09"), "s1", FLAT).reason == "notional_below_min"


def test_notional_above_max_is_denied(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    d = gate.check(order(qty="100.01"), "s1", FLAT)
    assert d.reason == "notional_above_max"


def test_symbol_exposure_counts_position_and_open_orders(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    # worst case long 150 + 40 + 11 = 201 x 100 = 20_100 > 20_000
    c = ctx(position_qty=D(150), open_buy_qty=D(40), gross_exposure_usd=15_000.0)
    assert gate.check(order(qty="11"), "s1", c).reason == "symbol_exposure"
    assert gate.check(order(qty="10"), "s1", c).allowed


def test_reducing_order_passes_exposure_limits(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    c = ctx(position_qty=D(500), gross_exposure_usd=90_000.0)
    assert gate.check(order(Side.SELL, "50"), "s1", c).allowed


def test_gross_exposure_replaces_this_symbols_part(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    # gross 45_000 incl. this symbol's 5_000; after: 40_000 + (50 + 51) x 100 = 50_100
    c = ctx(position_qty=D(50), gross_exposure_usd=45_000.0)
    assert gate.check(order(qty="51"), "s1", c).reason == "gross_exposure"
    assert gate.check(order(qty="50"), "s1", c).allowed  # exactly 50_000


def test_short_side_exposure_counts_open_sells(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    c = ctx(position_qty=D(-150), open_sell_qty=D(45))
    assert gate.check(order(Side.SELL, "6"), "s1", c).reason == "symbol_exposure"


def test_open_orders_limit(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    assert gate.check(order(), "s1", ctx(open_order_count=3)).reason == "max_open_orders"
    assert gate.check(order(), "s1", ctx(open_order_count=2)).allowed


# ------------------------------------------------------------ rate limit and breaker


def test_rate_limit_per_venue_after_burst(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    quote(bus, clock, iid=OTHER)
    assert [gate.check(order(), "s1", FLAT).reason for _ in range(3)] == ["", "", "rate_limited"]
    assert gate.check(order(iid=OTHER), "s1", FLAT).allowed
    clock.advance(1.0)
    assert gate.check(order(), "s1", FLAT).allowed


def test_denied_orders_spend_no_rate_tokens(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    for _ in range(5):
        gate.check(order(qty="0.01"), "s1", FLAT)  # notional_below_min
    assert [gate.check(order(), "s1", FLAT).allowed for _ in range(2)] == [True, True]


def test_breaker_opens_on_errors_and_denies(gate: RiskGate, bus: Bus, clock: ManualClock, rec: Recorder) -> None:
    active(gate, bus, clock)
    gate.record_venue_error("sim", "HTTP 503")
    gate.record_venue_error("sim", "HTTP 503")
    assert [(m.venue, m.old, m.new) for m in rec.breakers] == [("sim", BreakerState.CLOSED, BreakerState.OPEN)]
    assert "2 consecutive errors: HTTP 503" in rec.breakers[0].reason
    assert gate.check(order(), "s1", FLAT).reason == "breaker_open"


def test_breaker_half_open_trial_and_close(gate: RiskGate, bus: Bus, clock: ManualClock, rec: Recorder) -> None:
    gate.set_state(TradingState.ACTIVE, "t", "t")
    gate.record_venue_error("sim")
    gate.record_venue_error("sim")
    clock.advance(30.0)
    quote(bus, clock)
    assert gate.check(order(), "s1", FLAT).allowed  # the single trial
    assert gate.check(order(), "s1", FLAT).reason == "breaker_open"
    gate.record_venue_success("sim")
    assert [(m.old, m.new) for m in rec.breakers] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert gate.breaker_state("sim") is BreakerState.CLOSED


# ------------------------------------------------------------ config reload


def test_update_config_applies_new_limits(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    gate.update_config(replace(CFG, max_order_notional_usd=50.0))
    assert gate.check(order(), "s1", FLAT).reason == "notional_above_max"


def test_update_config_keeps_rate_limit_and_breaker_state(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    gate.check(order(), "s1", FLAT)
    gate.check(order(), "s1", FLAT)
    gate.record_venue_error("sim")
    gate.update_config(replace(CFG, order_burst=5, breaker_error_threshold=3))
    assert gate.check(order(), "s1", FLAT).reason == "rate_limited"
    gate.record_venue_error("sim")
    assert gate.breaker_state("sim") is BreakerState.CLOSED
    gate.record_venue_error("sim")
    assert gate.breaker_state("sim") is BreakerState.OPEN


# ------------------------------------------------------------ loss monitor


def test_daily_loss_breach_halts_trading(gate: RiskGate, bus: Bus, clock: ManualClock, rec: Recorder) -> None:
    active(gate, bus, clock)
    breach = gate.on_equity(clock.time_ns(), D("99000"), D("-1000"), D("1"))
    assert breach is not None and breach.reason == "daily_loss_limit"
    assert gate.state is TradingState.HALTED
    last = rec.states[-1]
    assert (last.new, last.source) == (TradingState.HALTED, "loss_monitor")
    assert last.reason.startswith("daily_loss_limit: ")


def test_drawdown_breach_halts_trading(gate: RiskGate, bus: Bus, clock: ManualClock, rec: Recorder) -> None:
    active(gate, bus, clock)
    gate.on_equity(clock.time_ns(), 90_000.0, 0.0, 10.5)
    assert gate.state is TradingState.HALTED
    assert rec.states[-1].reason.startswith("max_drawdown: ")


def test_equity_inside_limits_changes_nothing(gate: RiskGate, bus: Bus, clock: ManualClock, rec: Recorder) -> None:
    active(gate, bus, clock)
    assert gate.on_equity(clock.time_ns(), 100_000.0, -999.0, 9.9) is None
    assert gate.state is TradingState.ACTIVE
    assert len(rec.states) == 1


def test_breach_while_halted_publishes_nothing_more(gate: RiskGate, rec: Recorder, clock: ManualClock) -> None:
    assert gate.on_equity(clock.time_ns(), 1.0, -5_000.0, 50.0) is not None
    assert rec.states == []


# ------------------------------------------------------------ status


def test_status_reports_state_breakers_and_tokens(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    gate.check(order(), "s1", FLAT)
    st = gate.status()
    assert (st["state"], st["state_source"], st["breakers"], st["rate_tokens"]) == ("ACTIVE", "test", {"sim": "closed"}, {"sim": 1.0})
    assert st["data_age_s"] == {"sim:BTCUSDT": 0.0}


# ------------------------------------------------------------ per-venue trading state


def test_a_halted_venue_denies_its_own_orders_only(gate: RiskGate, bus: Bus, clock: ManualClock,
                                                   rec: Recorder) -> None:
    active(gate, bus, clock)
    quote(bus, clock, iid=OTHER)
    assert gate.set_venue_state("other", TradingState.HALTED, "venue component other gave up", "supervisor")
    d = gate.check(order(iid=OTHER), "s1", FLAT)
    assert (d.allowed, d.reason) == (False, "venue_halted")
    assert "other" in d.detail and "gave up" in d.detail
    assert gate.check(order(cid="nh-x-2"), "s1", FLAT) is ALLOWED
    assert gate.state is TradingState.ACTIVE


def test_a_halted_venue_denies_reducing_orders_too(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    quote(bus, clock, iid=OTHER)
    gate.set_venue_state("other", TradingState.HALTED, "down", "supervisor")
    d = gate.check(order(Side.SELL, iid=OTHER), "s1", ctx(position_qty=D(2)))
    assert d.reason == "venue_halted"


def test_a_reducing_venue_passes_only_reducing_orders(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    active(gate, bus, clock)
    quote(bus, clock, iid=OTHER)
    gate.set_venue_state("other", TradingState.REDUCING, "op", "admin")
    assert gate.check(order(iid=OTHER), "s1", FLAT).reason == "venue_reducing_only"
    assert gate.check(order(Side.SELL, iid=OTHER, cid="nh-x-2"), "s1", ctx(position_qty=D(2))) is ALLOWED


def test_venue_state_change_is_published_and_shown_in_status(gate: RiskGate, bus: Bus, clock: ManualClock) -> None:
    from nautilus_hmm.messages import VenueTradingStateChanged

    seen: list[VenueTradingStateChanged] = []
    bus.subscribe(VenueTradingStateChanged, seen.append)
    gate.add_venues(["sim", "other"])
    gate.set_venue_state("other", TradingState.HALTED, "gave up", "supervisor")
    assert gate.set_venue_state("other", TradingState.HALTED, "again", "supervisor") is False
    [m] = seen
    assert (m.venue, m.old, m.new, m.reason, m.source) == (
        "other", TradingState.ACTIVE, TradingState.HALTED, "gave up", "supervisor")
    venues = gate.status()["venues"]
    assert venues["sim"] == {"state": "ACTIVE", "reason": "", "source": ""}
    assert venues["other"] == {"state": "HALTED", "reason": "gave up", "source": "supervisor"}
    assert gate.set_venue_state("other", TradingState.ACTIVE, "resume", "admin") is True
    assert gate.venue_state("other") is TradingState.ACTIVE
