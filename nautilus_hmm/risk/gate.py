"""The risk gate: the one check every order passes before it may leave the process.

`RiskGate.check` runs the rails in this fixed order and stops at the first denial:

     1. trading state      trading_halted (HALTED) / reducing_only (REDUCING, order adds),
                           then the order's venue's own state: venue_halted /
                           venue_reducing_only
     2. market data age    stale_data   (last update older than stale_data_s, or none)
     3. order book         book_invalid (the instrument's book is resyncing)
     4. mark price         no_mark_price
     5. price collar       price_collar (priced orders only)
     6. order notional     notional_below_min / notional_above_max
     7. symbol exposure    symbol_exposure (skipped for reducing orders)
     8. gross exposure     gross_exposure  (skipped for reducing orders)
     9. open orders        max_open_orders
    10. rate limit         rate_limited (takes a token of the venue's bucket)
    11. venue breaker      breaker_open (takes the half-open trial)

The two checks that consume something come last, so an order denied for another reason
never spends a rate-limit token or the breaker's single half-open trial. Cancels always
pass (`check_cancel`). Every rail applies to reducing orders except the exposure limits
and the REDUCING state: a reducing order still needs fresh data, a mark and a sane price.

Exposure uses the worst case: the symbol's position plus every open order on the
order's side plus the order itself, valued at the mark (x multiplier); gross exposure
is the caller's current gross with this symbol's part replaced by that worst case.
Notionals are floats in USD (quote assets taken as USD-stable): they feed comparisons
only, never an order.

A denial publishes `RiskDenied` and logs `risk_denied`; the pass path allocates nothing
and logs nothing. The gate starts HALTED: the node moves it to `risk.initial_state`
once start-up reconciliation has passed.

Per-venue state: besides the global state each venue has its own (ACTIVE unless set).
A venue whose component gave up is HALTED alone: orders to its instruments are denied,
other venues trade on. It is lifted only by an explicit `set_venue_state` (the admin
resume of that venue); a global resume does not lift it, since the supervisor does not
restart a component that gave up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.domain.enums import BreakerState, Side, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.marketdata.marks import MarkBook
from nautilus_hmm.messages import (
    BookValidityChanged,
    BreakerStateChanged,
    RiskDenied,
    TradingStateChanged,
    VenueTradingStateChanged,
)
from nautilus_hmm.risk import rails
from nautilus_hmm.risk.config import RiskConfig
from nautilus_hmm.risk.rails import CircuitBreaker, Denial, LossMonitor, TokenBucket

log = structlog.get_logger("risk")

_ZERO = Decimal(0)
_NS_PER_S = 1_000_000_000
_BUY = Side.BUY
_ACTIVE = TradingState.ACTIVE


@dataclass(slots=True)
class OrderContext:
    """What the engine knows about the order's symbol when it asks the gate.

    Quantities are base units; `open_*` exclude the order being checked;
    `gross_exposure_usd` is the current sum of |position| x mark over all symbols
    (this one included), e.g. `float(portfolio.gross_exposure())`.
    """

    position_qty: Decimal = _ZERO
    open_order_count: int = 0
    open_buy_qty: Decimal = _ZERO
    open_sell_qty: Decimal = _ZERO
    gross_exposure_usd: float = 0.0
    multiplier: float = 1.0


class Decision:
    """The gate's answer: allowed, or denied with a stable reason code and a detail."""

    __slots__ = ("allowed", "detail", "reason")

    def __init__(self, allowed: bool, reason: str = "", detail: str = "") -> None:
        self.allowed = allowed
        self.reason = reason
        self.detail = detail

    def __bool__(self) -> bool:
        return self.allowed

    def __repr__(self) -> str:
        return "Decision(allowed)" if self.allowed else f"Decision(denied {self.reason}: {self.detail})"


ALLOWED = Decision(True)
"""The shared pass decision (no allocation on the pass path)."""


class RiskGate:
    """Trading state, per-venue rate limits and breakers, market-data freshness and marks."""

    def __init__(self, config: RiskConfig, bus: Bus, clock: Clock, marks: MarkBook | None = None) -> None:
        self.bus = bus
        self.clock = clock
        self.state = TradingState.HALTED
        self.state_reason = "start-up: waiting for reconciliation"
        self.state_source = "risk_gate"
        # Venues whose own state is not ACTIVE: venue -> (state, reason, source). Empty in
        # normal operation, so the check's pass path costs one truth test.
        self._venue_states: dict[str, tuple[TradingState, str, str]] = {}
        self._venues: list[str] = []
        # The shared mark book (one fact per instrument, also read by the engine and the
        # strategies); `marks` and `last_data_ns` are its dicts, not copies.
        self.mark_book = marks if marks is not None else MarkBook()
        self.marks: dict[InstrumentId, float] = self.mark_book.marks
        self.last_data_ns: dict[InstrumentId, int] = self.mark_book.last_ns
        self.book_valid: dict[InstrumentId, bool] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self.config = config
        self.loss_monitor = LossMonitor(config.daily_loss_limit_usd, config.max_drawdown_pct)
        self._apply_limits(config)

    # ------------------------------------------------------------ configuration

    def _apply_limits(self, cfg: RiskConfig) -> None:
        self._min_notional = cfg.min_order_notional_usd
        self._max_notional = cfg.max_order_notional_usd
        self._max_symbol = cfg.max_symbol_exposure_usd
        self._max_gross = cfg.max_gross_exposure_usd
        self._max_open = cfg.max_open_orders_per_symbol
        self._collar_bps = cfg.price_collar_bps
        self._stale_s = cfg.stale_data_s

    def update_config(self, cfg: RiskConfig) -> None:
        """Apply new limits live; token buckets and breakers keep their state."""
        self.config = cfg
        self._apply_limits(cfg)
        for bucket in self._buckets.values():
            bucket.update(cfg.orders_per_s, cfg.order_burst)
        for breaker in self._breakers.values():
            breaker.update(cfg.breaker_error_threshold, cfg.breaker_cooldown_s)
        self.loss_monitor.daily_loss_limit_usd = cfg.daily_loss_limit_usd
        self.loss_monitor.max_drawdown_pct = cfg.max_drawdown_pct
        log.info("risk_config_applied", state=self.state.value)

    def bucket(self, venue: str) -> TokenBucket:
        """The venue's order token bucket (created full on first use)."""
        b = self._buckets.get(venue)
        if b is None:
            cfg = self.config
            b = self._buckets[venue] = TokenBucket(cfg.orders_per_s, cfg.order_burst, self.clock.monotonic())
        return b

    def breaker(self, venue: str) -> CircuitBreaker:
        """The venue's error circuit breaker (created closed on first use)."""
        b = self._breakers.get(venue)
        if b is None:
            cfg = self.config
            b = self._breakers[venue] = CircuitBreaker(
                cfg.breaker_error_threshold, cfg.breaker_cooldown_s, self._breaker_listener(venue)
            )
        return b

    def _breaker_listener(self, venue: str) -> Callable[[BreakerState, BreakerState, str], None]:
        def on_change(old: BreakerState, new: BreakerState, reason: str) -> None:
            now_ns = self.clock.time_ns()
            level = log.warning if new is BreakerState.OPEN else log.info
            level("breaker_state_changed", venue=venue, old=old.value, new=new.value, reason=reason)
            self.bus.publish(
                BreakerStateChanged(
                    ts_event_ns=now_ns, ts_init_ns=now_ns, venue=venue, old=old, new=new, reason=reason
                )
            )

        return on_change

    # ------------------------------------------------------------ trading state

    def set_state(self, new: TradingState, reason: str, source: str) -> bool:
        """Move the trading state; publishes TradingStateChanged. False if already there."""
        old = self.state
        if new is old:
            return False
        self.state = new
        self.state_reason = reason
        self.state_source = source
        now_ns = self.clock.time_ns()
        level = log.warning if new is not TradingState.ACTIVE else log.info
        level("trading_state_changed", old=old.value, new=new.value, reason=reason, source=source)
        self.bus.publish(
            TradingStateChanged(
                ts_event_ns=now_ns, ts_init_ns=now_ns, old=old, new=new, reason=reason, source=source
            )
        )
        return True

    def add_venues(self, venues: Iterable[str]) -> None:
        """Venues this gate reports a state for in `status()` (all ACTIVE until set)."""
        for v in venues:
            if v not in self._venues:
                self._venues.append(v)

    def venue_state(self, venue: str) -> TradingState:
        """The venue's own trading state (ACTIVE unless set)."""
        entry = self._venue_states.get(venue)
        return _ACTIVE if entry is None else entry[0]

    def set_venue_state(self, venue: str, new: TradingState, reason: str, source: str) -> bool:
        """Move one venue's own state; publishes VenueTradingStateChanged. False if already there."""
        self.add_venues((venue,))
        old = self.venue_state(venue)
        if new is old:
            return False
        if new is _ACTIVE:
            del self._venue_states[venue]
        else:
            self._venue_states[venue] = (new, reason, source)
        now_ns = self.clock.time_ns()
        level = log.warning if new is not TradingState.ACTIVE else log.info
        level("venue_trading_state_changed", venue=venue, old=old.value, new=new.value, reason=reason,
              source=source)
        self.bus.publish(
            VenueTradingStateChanged(
                ts_event_ns=now_ns, ts_init_ns=now_ns, venue=venue, old=old, new=new, reason=reason, source=source
            )
        )
        return True

    def venue_states(self) -> dict[str, TradingState]:
        """Every known venue's own state."""
        return {v: self.venue_state(v) for v in self._venues}

    def on_equity(
        self,
        ts_ns: int,
        equity: Decimal | float,
        day_realized_pnl: Decimal | float,
        drawdown_pct: Decimal | float,
    ) -> Denial | None:
        """Apply the loss limits after a fill or a mark; a breach HALTs trading.

        Returns the breach (also when already HALTED), None when inside the limits. The
        halt is not lifted automatically: an operator (or the node) must set the state.
        """
        breach = self.loss_monitor.check(float(day_realized_pnl), float(drawdown_pct))
        if breach is not None and self.state is not TradingState.HALTED:
            log.error(
                "loss_limit_breached",
                reason=breach.reason,
                detail=breach.detail,
                equity=str(equity),
                ts_ns=ts_ns,
            )
            self.set_state(TradingState.HALTED, f"{breach.reason}: {breach.detail}", "loss_monitor")
        return breach

    # ------------------------------------------------------------ venue outcomes

    def record_venue_success(self, venue: str) -> None:
        """A request to `venue` succeeded (closes a half-open breaker)."""
        self.breaker(venue).record_success(self.clock.monotonic())

    def record_venue_error(self, venue: str, detail: str = "") -> None:
        """A request to `venue` failed in a way that counts toward its breaker."""
        self.breaker(venue).record_error(self.clock.monotonic(), detail)

    def breaker_state(self, venue: str) -> BreakerState:
        """The venue breaker's state now."""
        return self.breaker(venue).state(self.clock.monotonic())

    # ------------------------------------------------------------ market data

    def on_market_data(self, instrument_id: InstrumentId, price: float | None, ts_ns: int) -> None:
        """A market update for `instrument_id` received at `ts_ns` (our clock); sets the mark
        in the shared mark book."""
        self.mark_book.update(instrument_id, price, ts_ns)

    def set_book_valid(self, instrument_id: InstrumentId, valid: bool) -> None:
        """Record whether the instrument's local order book is in sync."""
        self.book_valid[instrument_id] = valid

    def _on_book_validity(self, m: BookValidityChanged) -> None:
        self.set_book_valid(m.instrument_id, m.valid)

    def attach(self) -> Callable[[], None]:
        """Subscribe the mark book (marks, freshness: see `marketdata.marks`) and the gate
        (book validity) to the bus; returns a function that unsubscribes.

        Called before the engine and the strategy attach, so a bar's close is the mark
        before anyone plans or values against it.
        """
        unsubs = [
            self.mark_book.attach(self.bus, name="risk_gate"),
            self.bus.subscribe(BookValidityChanged, self._on_book_validity, name="risk_gate"),
        ]

        def detach() -> None:
            for u in unsubs:
                u()

        return detach

    # ------------------------------------------------------------ the check

    def check_cancel(self, client_order_id: str) -> Decision:
        """Cancels always pass: they only ever reduce risk."""
        return ALLOWED

    def check(self, req: OrderRequest, strategy_id: str, ctx: OrderContext) -> Decision:
        """Run the rails on an order request (see the module docstring for the order)."""
        iid = req.instrument_id
        side = req.side
        qty = req.quantity
        pos = ctx.position_qty
        buy = side is _BUY
        open_same = ctx.open_buy_qty if buy else ctx.open_sell_qty
        reduces = rails.reduces_exposure(side, qty, pos, open_same) if pos else False

        state = self.state
        d = None if state is _ACTIVE else rails.check_trading_state(state, reduces)
        if d is None and self._venue_states:
            entry = self._venue_states.get(iid.venue)
            if entry is not None:
                d = rails.check_venue_state(iid.venue, entry[0], entry[1], reduces)
        if d is None:
            d = rails.check_stale(self.clock.time_ns(), self.last_data_ns.get(iid), self._stale_s)
        if d is None:
            d = rails.check_book(self.book_valid.get(iid))
        mark = self.marks.get(iid)
        if d is None:
            d = rails.check_mark(mark)
        if d is not None or mark is None:
            return self._deny(req, strategy_id, d or Denial(rails.NO_MARK_PRICE, "no mark price"))

        price = req.price
        px = mark if price is None else float(price)
        mult = ctx.multiplier
        qty_f = float(qty)
        d = rails.check_price_collar(side, None if price is None else px, mark, self._collar_bps)
        if d is None:
            d = rails.check_notional(qty_f * px * mult, self._min_notional, self._max_notional)
        if d is None and not reduces:
            pos_f = float(pos) if pos else 0.0
            open_f = float(open_same) if open_same else 0.0
            worst_qty = pos_f + open_f + qty_f if buy else pos_f - open_f - qty_f
            symbol_usd = abs(worst_qty) * mark * mult
            d = rails.check_symbol_exposure(symbol_usd, self._max_symbol, False)
            if d is None:
                gross_usd = ctx.gross_exposure_usd - abs(pos_f) * mark * mult + symbol_usd
                d = rails.check_gross_exposure(gross_usd, self._max_gross, False)
        if d is None:
            d = rails.check_open_orders(ctx.open_order_count, self._max_open)
        if d is not None:
            return self._deny(req, strategy_id, d)

        venue = iid.venue
        now_s = self.clock.monotonic()
        bucket = self._buckets.get(venue) or self.bucket(venue)
        if not bucket.try_take(now_s):
            cfg = self.config
            return self._deny(
                req,
                strategy_id,
                Denial(rails.RATE_LIMITED, f"venue {venue}: over {cfg.orders_per_s}/s (burst {cfg.order_burst})"),
            )
        breaker = self._breakers.get(venue) or self.breaker(venue)
        if not breaker.allow(now_s):
            return self._deny(
                req, strategy_id, Denial(rails.BREAKER_OPEN, f"venue {venue}: breaker {breaker.state(now_s).value}")
            )
        return ALLOWED

    def _deny(self, req: OrderRequest, strategy_id: str, denial: Denial) -> Decision:
        now_ns = self.clock.time_ns()
        log.warning(
            "risk_denied",
            reason=denial.reason,
            detail=denial.detail,
            client_order_id=req.client_order_id,
            instrument=str(req.instrument_id),
            strategy=strategy_id,
            side=req.side.value,
            qty=str(req.quantity),
            price=None if req.price is None else str(req.price),
        )
        self.bus.publish(
            RiskDenied(
                ts_event_ns=now_ns,
                ts_init_ns=now_ns,
                instrument_id=req.instrument_id,
                strategy_id=strategy_id,
                side=req.side,
                quantity=req.quantity,
                reason=denial.reason,
                detail=denial.detail,
            )
        )
        return Decision(False, denial.reason, denial.detail)

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Plain dict for /status."""
        now_s = self.clock.monotonic()
        now_ns = self.clock.time_ns()
        return {
            "state": self.state.value,
            "state_reason": self.state_reason,
            "state_source": self.state_source,
            "venues": {v: {"state": self.venue_state(v).value,
                           "reason": self._venue_states.get(v, (None, "", ""))[1],
                           "source": self._venue_states.get(v, (None, "", ""))[2]} for v in self._venues},
            "breakers": {v: b.state(now_s).value for v, b in self._breakers.items()},
            "rate_tokens": {v: round(b.available(now_s), 3) for v, b in self._buckets.items()},
            "data_age_s": {str(i): (now_ns - t) / _NS_PER_S for i, t in self.last_data_ns.items()},
            "books_invalid": sorted(str(i) for i, ok in self.book_valid.items() if not ok),
        }
