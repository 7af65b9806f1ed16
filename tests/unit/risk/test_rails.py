"""Risk rails: pure checks, token bucket, circuit breaker, loss monitor."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nautilus_hmm.domain.enums import BreakerState, Side, TradingState
from nautilus_hmm.risk import rails
from nautilus_hmm.risk.rails import (
    CircuitBreaker,
    Denial,
    LossMonitor,
    TokenBucket,
    check_book,
    check_gross_exposure,
    check_mark,
    check_notional,
    check_open_orders,
    check_price_collar,
    check_stale,
    check_symbol_exposure,
    check_trading_state,
    reduces_exposure,
)

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
S_NS = 1_000_000_000


def reason(d: Denial | None) -> str | None:
    return None if d is None else d.reason


# ------------------------------------------------------------ exposure direction


@pytest.mark.parametrize(
    ("side", "qty", "position", "open_reducing", "expected"),
    [
        (SELL, "1", "2", "0", True),  # partial close of a long
        (SELL, "2", "2", "0", True),  # full close
        (SELL, "3", "2", "0", False),  # flip
        (BUY, "1", "2", "0", False),  # adds
        (BUY, "1", "-2", "0", True),  # covers a short
        (BUY, "3", "-2", "0", False),
        (SELL, "1", "-2", "0", False),
        (SELL, "1", "0", "0", False),  # flat: everything opens
        (BUY, "1", "0", "0", False),
        (SELL, "1", "2", "1", True),  # two reducing orders fit together
        (SELL, "1.5", "2", "1", False),  # together they would flip
        (BUY, "1", "-2", "1.5", False),
    ],
)
def test_reduces_exposure(side: Side, qty: str, position: str, open_reducing: str, expected: bool) -> None:
    assert reduces_exposure(side, D(qty), D(position), D(open_reducing)) is expected


# ------------------------------------------------------------ trading state


def test_active_state_passes_every_order() -> None:
    assert check_trading_state(TradingState.ACTIVE, reduces=False) is None


def test_halted_state_denies_even_reducing_orders() -> None:
    assert reason(check_trading_state(TradingState.HALTED, reduces=True)) == "trading_halted"


def test_reducing_state_passes_reducing_orders() -> None:
    assert check_trading_state(TradingState.REDUCING, reduces=True) is None


def test_reducing_state_denies_orders_that_add_exposure() -> None:
    assert reason(check_trading_state(TradingState.REDUCING, reduces=False)) == "reducing_only"


# ------------------------------------------------------------ size and exposure


def test_notional_inside_limits_passes() -> None:
    assert check_notional(100.0, 10.0, 100.0) is None


def test_notional_below_min_is_denied() -> None:
    d = check_notional(9.99, 10.0, 100.0)
    assert d == Denial("notional_below_min", "notional 9.99 < min 10.00")


def test_notional_above_max_is_denied() -> None:
    assert reason(check_notional(100.01, 10.0, 100.0)) == "notional_above_max"


def test_symbol_exposure_over_limit_is_denied() -> None:
    assert reason(check_symbol_exposure(1001.0, 1000.0, reduces=False)) == "symbol_exposure"


def test_symbol_exposure_at_limit_passes() -> None:
    assert check_symbol_exposure(1000.0, 1000.0, reduces=False) is None


def test_reducing_order_passes_exposure_limits() -> None:
    assert check_symbol_exposure(5000.0, 1000.0, reduces=True) is None
    assert check_gross_exposure(5000.0, 1000.0, reduces=True) is None


def test_gross_exposure_over_limit_is_denied() -> None:
    assert reason(check_gross_exposure(2500.5, 2500.0, reduces=False)) == "gross_exposure"


def test_open_orders_below_limit_pass() -> None:
    assert check_open_orders(9, 10) is None


def test_open_orders_at_limit_are_denied() -> None:
    assert reason(check_open_orders(10, 10)) == "max_open_orders"


# ------------------------------------------------------------ price and data


def test_buy_through_the_collar_is_denied() -> None:
    assert reason(check_price_collar(BUY, 102.01, 100.0, 200.0)) == "price_collar"


def test_sell_through_the_collar_is_denied() -> None:
    assert reason(check_price_collar(SELL, 97.99, 100.0, 200.0)) == "price_collar"


@pytest.mark.parametrize(("side", "price"), [(BUY, 101.99), (BUY, 50.0), (SELL, 98.01), (SELL, 500.0)])
def test_prices_inside_the_collar_or_passive_pass(side: Side, price: float) -> None:
    assert check_price_collar(side, price, 100.0, 200.0) is None


def test_market_orders_pass_the_collar() -> None:
    assert check_price_collar(BUY, None, 100.0, 1.0) is None


def test_fresh_data_passes() -> None:
    assert check_stale(10 * S_NS, 0, 10.0) is None


def test_old_data_is_stale() -> None:
    d = check_stale(10 * S_NS + 1, 0, 10.0)
    assert reason(d) == "stale_data" and d is not None and "10.000 s old" in d.detail


def test_missing_data_is_stale() -> None:
    assert reason(check_stale(1, None, 10.0)) == "stale_data"


def test_invalid_book_is_denied() -> None:
    assert reason(check_book(False)) == "book_invalid"


@pytest.mark.parametrize("valid", [True, None])
def test_valid_or_untracked_book_passes(valid: bool | None) -> None:
    assert check_book(valid) is None


@pytest.mark.parametrize("mark", [None, 0.0, -1.0, math.nan])
def test_missing_mark_is_denied(mark: float | None) -> None:
    assert reason(check_mark(mark)) == "no_mark_price"


def test_reason_codes_are_unique() -> None:
    assert len(set(rails.REASONS)) == len(rails.REASONS) == 15


# ------------------------------------------------------------ loss monitor


def test_loss_monitor_passes_inside_limits() -> None:
    assert LossMonitor(1000.0, 10.0).check(-999.0, 9.9) is None


def test_loss_monitor_halts_on_daily_loss() -> None:
    assert reason(LossMonitor(1000.0, 10.0).check(-1000.0, 0.0)) == "daily_loss_limit"


def test_loss_monitor_halts_on_drawdown() -> None:
    assert reason(LossMonitor(1000.0, 10.0).check(50.0, 10.0)) == "max_drawdown"


# ------------------------------------------------------------ token bucket


def test_bucket_allows_a_burst_then_denies() -> None:
    b = TokenBucket(rate_per_s=1.0, burst=3)
    assert [b.try_take(0.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_its_rate() -> None:
    b = TokenBucket(rate_per_s=2.0, burst=2)
    b.try_take(0.0)
    b.try_take(0.0)
    assert b.try_take(0.4) is False
    assert b.try_take(0.5) is True


def test_bucket_never_exceeds_its_burst() -> None:
    b = TokenBucket(rate_per_s=100.0, burst=2)
    b.try_take(0.0)
    assert b.available(1000.0) == 2.0


def test_bucket_ignores_time_going_backwards() -> None:
    b = TokenBucket(rate_per_s=1.0, burst=1)
    b.try_take(10.0)
    assert b.try_take(5.0) is False
    assert b.try_take(10.5) is False
    assert b.try_take(11.0) is True


def test_bucket_update_keeps_tokens_capped_at_new_burst() -> None:
    b = TokenBucket(rate_per_s=1.0, burst=10)
    b.try_take(0.0)
    b.update(rate_per_s=5.0, burst=4)
    assert (b.available(0.0), b.rate_per_s) == (4.0, 5.0)


def test_bucket_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError, match="rate_per_s must be > 0"):
        TokenBucket(0.0, 1)


@given(
    st.floats(0.1, 50.0),
    st.integers(1, 20),
    st.lists(st.floats(0.0, 0.5), min_size=1, max_size=200),
)
def test_bucket_grants_at_most_burst_plus_rate_times_elapsed(rate: float, burst: int, gaps: list[float]) -> None:
    b = TokenBucket(rate, burst)
    now, granted = 0.0, 0
    for gap in gaps:
        now += gap
        granted += b.try_take(now)
    assert granted <= burst + rate * now + 1e-9


# ------------------------------------------------------------ circuit breaker


def breaker() -> tuple[CircuitBreaker, list[tuple[BreakerState, BreakerState, str]]]:
    changes: list[tuple[BreakerState, BreakerState, str]] = []
    b = CircuitBreaker(threshold=3, cooldown_s=30.0, on_change=lambda o, n, r: changes.append((o, n, r)))
    return b, changes


def test_breaker_starts_closed_and_allows() -> None:
    b, _ = breaker()
    assert (b.state(0.0), b.allow(0.0)) == (BreakerState.CLOSED, True)


def test_breaker_opens_after_threshold_consecutive_errors() -> None:
    b, changes = breaker()
    for t in (1.0, 2.0, 3.0):
        b.record_error(t, "503")
    assert b.state(3.0) is BreakerState.OPEN
    assert b.allow(3.0) is False
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN, "3 consecutive errors: 503")]


def test_success_resets_the_error_count() -> None:
    b, _ = breaker()
    b.record_error(1.0)
    b.record_error(2.0)
    b.record_success(3.0)
    b.record_error(4.0)
    assert (b.state(4.0), b.consecutive_errors) == (BreakerState.CLOSED, 1)


def test_breaker_half_opens_after_cooldown() -> None:
    b, changes = breaker()
    for _ in range(3):
        b.record_error(0.0)
    assert b.state(29.9) is BreakerState.OPEN
    assert b.state(30.0) is BreakerState.HALF_OPEN
    assert changes[-1][:2] == (BreakerState.OPEN, BreakerState.HALF_OPEN)


def test_half_open_allows_exactly_one_trial() -> None:
    b, _ = breaker()
    for _ in range(3):
        b.record_error(0.0)
    assert [b.allow(30.0), b.allow(30.0), b.allow(31.0)] == [True, False, False]


def test_half_open_trial_success_closes() -> None:
    b, changes = breaker()
    for _ in range(3):
        b.record_error(0.0)
    b.allow(30.0)
    b.record_success(30.5)
    assert (b.state(30.5), b.allow(30.5)) == (BreakerState.CLOSED, True)
    assert changes[-1] == (BreakerState.HALF_OPEN, BreakerState.CLOSED, "trial request succeeded")


def test_half_open_trial_failure_reopens_for_a_new_cooldown() -> None:
    b, _ = breaker()
    for _ in range(3):
        b.record_error(0.0)
    b.allow(30.0)
    b.record_error(31.0, "timeout")
    assert b.state(60.0) is BreakerState.OPEN
    assert b.state(61.0) is BreakerState.HALF_OPEN


def test_unanswered_trial_is_retried_after_a_cooldown() -> None:
    b, _ = breaker()
    for _ in range(3):
        b.record_error(0.0)
    assert b.allow(30.0) is True
    assert b.allow(59.0) is False
    assert b.allow(60.0) is True


def test_errors_while_open_do_not_extend_the_cooldown() -> None:
    b, _ = breaker()
    for _ in range(3):
        b.record_error(0.0)
    b.record_error(20.0)
    assert b.state(30.0) is BreakerState.HALF_OPEN


def test_breaker_update_keeps_state() -> None:
    b, _ = breaker()
    for _ in range(3):
        b.record_error(0.0)
    b.update(threshold=5, cooldown_s=10.0)
    assert (b.state(9.0), b.state(10.0)) == (BreakerState.OPEN, BreakerState.HALF_OPEN)


def test_breaker_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError, match="threshold must be >= 1"):
        CircuitBreaker(0, 1.0)
