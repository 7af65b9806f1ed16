"""Risk rails: pure checks returning None (pass) or a `Denial`, and small stateful helpers.

Every check is a plain function of its inputs. The stateful helpers (`TokenBucket`,
`CircuitBreaker`) take `now` (monotonic seconds) as an argument and never read a clock,
so the gate and the tests drive time. Reason codes are stable: they are metric labels.

Notionals and exposures here are floats in USD (the quote asset of every instrument is
taken as a USD stablecoin); they feed limit comparisons only, never an order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from nautilus_hmm.domain.enums import BreakerState, Side, TradingState

# ---------------------------------------------------------------- reason codes

TRADING_HALTED = "trading_halted"
REDUCING_ONLY = "reducing_only"
VENUE_HALTED = "venue_halted"
VENUE_REDUCING_ONLY = "venue_reducing_only"
NOTIONAL_BELOW_MIN = "notional_below_min"
NOTIONAL_ABOVE_MAX = "notional_above_max"
SYMBOL_EXPOSURE = "symbol_exposure"
GROSS_EXPOSURE = "gross_exposure"
MAX_OPEN_ORDERS = "max_open_orders"
RATE_LIMITED = "rate_limited"
PRICE_COLLAR = "price_collar"
STALE_DATA = "stale_data"
BOOK_INVALID = "book_invalid"
BREAKER_OPEN = "breaker_open"
NO_MARK_PRICE = "no_mark_price"

DAILY_LOSS_LIMIT = "daily_loss_limit"
MAX_DRAWDOWN = "max_drawdown"

REASONS = (
    TRADING_HALTED,
    REDUCING_ONLY,
    VENUE_HALTED,
    VENUE_REDUCING_ONLY,
    NOTIONAL_BELOW_MIN,
    NOTIONAL_ABOVE_MAX,
    SYMBOL_EXPOSURE,
    GROSS_EXPOSURE,
    MAX_OPEN_ORDERS,
    RATE_LIMITED,
    PRICE_COLLAR,
    STALE_DATA,
    BOOK_INVALID,
    BREAKER_OPEN,
    NO_MARK_PRICE,
)
"""Every denial reason an order check can return (the metric label set)."""

_NS_PER_S = 1_000_000_000
# Enum members bound once: class attribute lookup on an Enum costs more than a global.
_BUY = Side.BUY
_SELL = Side.SELL
_ACTIVE = TradingState.ACTIVE
_HALTED = TradingState.HALTED


@dataclass(frozen=True, slots=True)
class Denial:
    """Why an order may not pass: a stable `reason` code and a human `detail`."""

    reason: str
    detail: str


# ---------------------------------------------------------------- exposure direction


def reduces_exposure(
    side: Side, qty: Decimal, position_qty: Decimal, open_reducing_qty: Decimal = Decimal(0)
) -> bool:
    """True iff the order only reduces the position: opposite side, and qty fits in it.

    `open_reducing_qty` is the quantity of other open orders on the same (reducing)
    side: they are counted against the position first, so two orders that each fit but
    together would flip the position are not both "reducing".
    """
    if position_qty > 0:
        return side is _SELL and (qty + open_reducing_qty if open_reducing_qty else qty) <= position_qty
    if position_qty < 0:
        return side is _BUY and (qty + open_reducing_qty if open_reducing_qty else qty) <= -position_qty
    return False


# ---------------------------------------------------------------- pure checks


def check_trading_state(state: TradingState, reduces: bool) -> Denial | None:
    """HALTED denies every order; REDUCING denies orders that do not reduce exposure."""
    if state is _ACTIVE:
        return None
    if state is _HALTED:
        return Denial(TRADING_HALTED, "trading is halted")
    if reduces:
        return None
    return Denial(REDUCING_ONLY, "trading is reducing-only and this order does not reduce exposure")


def check_venue_state(venue: str, state: TradingState, reason: str, reduces: bool) -> Denial | None:
    """One venue's own state: HALTED denies every order to it (reducing ones too: the venue
    cannot be trusted to take them), REDUCING denies its orders that add exposure."""
    if state is _ACTIVE:
        return None
    if state is _HALTED:
        return Denial(VENUE_HALTED, f"venue {venue} is halted: {reason}")
    if reduces:
        return None
    return Denial(VENUE_REDUCING_ONLY, f"venue {venue} is reducing-only ({reason}) and this order adds exposure")


def check_notional(notional_usd: float, min_usd: float, max_usd: float) -> Denial | None:
    """The order's notional must lie in [min_usd, max_usd]."""
    if notional_usd < min_usd:
        return Denial(NOTIONAL_BELOW_MIN, f"notional {notional_usd:.2f} < min {min_usd:.2f}")
    if notional_usd > max_usd:
        return Denial(NOTIONAL_ABOVE_MAX, f"notional {notional_usd:.2f} > max {max_usd:.2f}")
    return None


def check_symbol_exposure(projected_usd: float, limit_usd: float, reduces: bool) -> Denial | None:
    """Worst-case |position| x mark after the order may not exceed the limit (reducers pass)."""
    if reduces or projected_usd <= limit_usd:
        return None
    return Denial(SYMBOL_EXPOSURE, f"symbol exposure would be {projected_usd:.2f} > {limit_usd:.2f}")


def check_gross_exposure(projected_usd: float, limit_usd: float, reduces: bool) -> Denial | None:
    """Worst-case sum of |position| x mark after the order may not exceed the limit."""
    if reduces or projected_usd <= limit_usd:
        return None
    return Denial(GROSS_EXPOSURE, f"gross exposure would be {projected_usd:.2f} > {limit_usd:.2f}")


def check_open_orders(open_count: int, limit: int) -> Denial | None:
    """A symbol may have at most `limit` open orders, this one included."""
    if open_count < limit:
        return None
    return Denial(MAX_OPEN_ORDERS, f"{open_count} open orders on the symbol, limit {limit}")


def check_price_collar(side: Side, price: float | None, mark: float, collar_bps: float) -> Denial | None:
    """A priced order may not be more than `collar_bps` through the mark (market orders pass).

    Through means worse for us: a BUY above mark x (1 + collar), a SELL below
    mark x (1 - collar). Passive prices of any distance pass.
    """
    if price is None:
        return None
    if side is _BUY:
        bound = mark * (1.0 + collar_bps / 10_000.0)
        if price > bound:
            return Denial(PRICE_COLLAR, f"BUY at {price} > mark {mark} + {collar_bps} bps ({bound:.8g})")
    else:
        bound = mark * (1.0 - collar_bps / 10_000.0)
        if price < bound:
            return Denial(PRICE_COLLAR, f"SELL at {price} < mark {mark} - {collar_bps} bps ({bound:.8g})")
    return None


def check_stale(now_ns: int, last_data_ns: int | None, max_age_s: float) -> Denial | None:
    """Deny when the instrument's last market data is older than `max_age_s` (or absent)."""
    if last_data_ns is None:
        return Denial(STALE_DATA, "no market data received for the instrument")
    age_ns = now_ns - last_data_ns
    if age_ns > max_age_s * _NS_PER_S:
        return Denial(STALE_DATA, f"last market data {age_ns / _NS_PER_S:.3f} s old > {max_age_s} s")
    return None


def check_book(valid: bool | None) -> Denial | None:
    """Deny while the instrument's local book is invalid; None means no book is kept."""
    if valid is False:
        return Denial(BOOK_INVALID, "order book is resyncing")
    return None


def check_mark(mark: float | None) -> Denial | None:
    """Deny without a positive mark price (nothing to value the order against)."""
    if mark is None or not mark > 0.0:
        return Denial(NO_MARK_PRICE, "no mark price for the instrument")
    return None


# ---------------------------------------------------------------- loss limits


class LossMonitor:
    """Says whether realized daily loss or drawdown require a trading halt."""

    __slots__ = ("daily_loss_limit_usd", "max_drawdown_pct")

    def __init__(self, daily_loss_limit_usd: float, max_drawdown_pct: float) -> None:
        self.daily_loss_limit_usd = daily_loss_limit_usd
        self.max_drawdown_pct = max_drawdown_pct

    def check(self, day_realized_pnl_usd: float, drawdown_pct: float) -> Denial | None:
        """`daily_loss_limit` when the day's realized loss reaches the limit, `max_drawdown`
        when the drawdown from the equity peak reaches its limit; None otherwise."""
        if day_realized_pnl_usd <= -self.daily_loss_limit_usd:
            return Denial(
                DAILY_LOSS_LIMIT,
                f"realized PnL today {day_realized_pnl_usd:.2f} <= -{self.daily_loss_limit_usd:.2f}",
            )
        if drawdown_pct >= self.max_drawdown_pct:
            return Denial(MAX_DRAWDOWN, f"drawdown {drawdown_pct:.2f}% >= {self.max_drawdown_pct:.2f}%")
        return None


# ---------------------------------------------------------------- rate limit


class TokenBucket:
    """Token bucket: `burst` capacity, refilled at `rate_per_s`; starts full.

    Time going backwards refills nothing.
    """

    __slots__ = ("_last", "burst", "rate_per_s", "tokens")

    def __init__(self, rate_per_s: float, burst: float, now: float | None = None) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"token bucket: rate_per_s must be > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        last = self._last
        if last is None or now > last:
            if last is not None:
                tokens = self.tokens + (now - last) * self.rate_per_s
                self.tokens = tokens if tokens < self.burst else self.burst
            self._last = now

    def try_take(self, now: float, n: float = 1.0) -> bool:
        """Take `n` tokens if available (True), else take nothing (False)."""
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def available(self, now: float) -> float:
        """Tokens available at `now`."""
        self._refill(now)
        return self.tokens

    def update(self, rate_per_s: float, burst: float) -> None:
        """Change rate and capacity, keeping the current tokens (capped at the new burst)."""
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"token bucket: rate_per_s must be > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        if self.tokens > self.burst:
            self.tokens = self.burst


# ---------------------------------------------------------------- circuit breaker

BreakerListener = Callable[[BreakerState, BreakerState, str], None]


class CircuitBreaker:
    """Per-venue error breaker: CLOSED → OPEN after `threshold` consecutive errors →
    HALF_OPEN once `cooldown_s` has passed → CLOSED on the trial's success, OPEN again on
    its failure.

    HALF_OPEN lets exactly one trial request through; if the trial's outcome is never
    recorded, another trial is allowed after a further `cooldown_s`. Errors recorded
    while OPEN (late answers to requests sent before it opened) do not extend the
    cool-down. `on_change(old, new, reason)` is called on every state change.
    """

    __slots__ = (
        "_errors",
        "_opened_at",
        "_state",
        "_trial_at",
        "cooldown_s",
        "on_change",
        "threshold",
    )

    def __init__(self, threshold: int, cooldown_s: float, on_change: BreakerListener | None = None) -> None:
        if threshold < 1 or cooldown_s <= 0:
            raise ValueError(f"breaker: threshold must be >= 1 and cooldown_s > 0, got {threshold}, {cooldown_s}")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.on_change = on_change
        self._state = BreakerState.CLOSED
        self._errors = 0
        self._opened_at = 0.0
        self._trial_at: float | None = None

    @property
    def consecutive_errors(self) -> int:
        """Errors since the last success."""
        return self._errors

    def _move(self, new: BreakerState, reason: str) -> None:
        old = self._state
        if new is old:
            return
        self._state = new
        if self.on_change is not None:
            self.on_change(old, new, reason)

    def state(self, now: float) -> BreakerState:
        """The state at `now` (an OPEN breaker past its cool-down becomes HALF_OPEN)."""
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.cooldown_s:
            self._trial_at = None
            self._move(BreakerState.HALF_OPEN, f"cool-down of {self.cooldown_s} s elapsed")
        return self._state

    def allow(self, now: float) -> bool:
        """Whether a request may go out now; in HALF_OPEN this takes the single trial."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        trial_at = self._trial_at
        if trial_at is None or now - trial_at >= self.cooldown_s:
            self._trial_at = now
            return True
        return False

    def record_success(self, now: float) -> None:
        """A request succeeded: reset the error count; a HALF_OPEN breaker closes."""
        self._errors = 0
        if self.state(now) is BreakerState.HALF_OPEN:
            self._trial_at = None
            self._move(BreakerState.CLOSED, "trial request succeeded")

    def record_error(self, now: float, detail: str = "") -> None:
        """A request failed: count it; open at the threshold or on a failed trial."""
        self._errors += 1
        state = self.state(now)
        suffix = f": {detail}" if detail else ""
        if state is BreakerState.CLOSED and self._errors >= self.threshold:
            self._opened_at = now
            self._move(BreakerState.OPEN, f"{self._errors} consecutive errors{suffix}")
        elif state is BreakerState.HALF_OPEN:
            self._opened_at = now
            self._trial_at = None
            self._move(BreakerState.OPEN, f"trial request failed{suffix}")

    def update(self, threshold: int, cooldown_s: float) -> None:
        """Change threshold and cool-down, keeping state and counts."""
        if threshold < 1 or cooldown_s <= 0:
            raise ValueError(f"breaker: threshold must be >= 1 and cooldown_s > 0, got {threshold}, {cooldown_s}")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
