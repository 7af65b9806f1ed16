"""The strategy interface: what a strategy may do (`StrategyContext`) and what it is (`Strategy`).

A strategy sees bars (and optionally trades/quotes) and states *targets* for its own
virtual sub-account: a signed exposure (a fraction of its capital) or a signed quantity
(base units). It never places orders and never sees another strategy's position: the
strategy router nets every strategy's targets per instrument, sizes exposures with each
strategy's capital and sends one net target to the engine, so the same strategy code runs
live, on paper and in a backtest. Strategies are plain objects with synchronous handlers:
they are on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Protocol

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import QTY_QUANTUM
from nautilus_hmm.messages import Bar, StrategyTarget

if TYPE_CHECKING:
    from nautilus_hmm.domain.sessions import TradingSessions
    from nautilus_hmm.strategies.config import StrategyInstanceConfig

LANES = ("production", "canary")


def exposure_to_qty(exposure: float, capital_usd: float, price: float) -> Decimal:
    """Signed base quantity for an exposure fraction of `capital_usd` at `price` (toward zero, to 1e-12)."""
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price {price!r}: must be finite and > 0")
    qty = Decimal(repr(float(capital_usd * exposure / price))).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
    return qty if qty else Decimal(0)


class StrategyContext:
    """What a strategy may do: read time, its virtual position, its capital and marks; state targets.

    `position(iid)` is the strategy's own (virtual) position, `capital(lane)` its capital in
    USD (the router's: share x account equity). Without `capital` (no router wired) the
    strategy falls back to a capital of its own configuration (`capital_usd` is None).
    """

    __slots__ = ("_bus", "_capital", "_clock", "_mark", "_position", "_sessions", "strategy_id")

    def __init__(self, strategy_id: str, bus: Bus, clock: Clock,
                 position: Callable[[InstrumentId], Decimal],
                 mark: Callable[[InstrumentId], float | None] | None = None,
                 capital: Callable[[str], float] | None = None,
                 sessions: Callable[[InstrumentId], TradingSessions | None] | None = None) -> None:
        self.strategy_id = strategy_id
        self._bus = bus
        self._clock = clock
        self._position = position
        self._mark = mark
        self._capital = capital
        self._sessions = sessions

    def sessions(self, instrument_id: InstrumentId) -> TradingSessions | None:
        """The instrument's trading sessions (IBKR); None = it trades 24/7 (crypto) or unknown."""
        return None if self._sessions is None else self._sessions(instrument_id)

    @property
    def routed(self) -> bool:
        """True when a router sizes this strategy (its capital and virtual position are the router's)."""
        return self._capital is not None

    def mark(self, instrument_id: InstrumentId) -> float | None:
        """The instrument's mark from the node's one mark book (what the risk gate and the
        engine use); None before any price, or without a book."""
        return None if self._mark is None else self._mark(instrument_id)

    def position(self, instrument_id: InstrumentId) -> Decimal:
        """The strategy's own (virtual) position in base units."""
        return self._position(instrument_id)

    def capital_usd(self, lane: str = "production") -> float | None:
        """The capital of the strategy's `lane` in USD; None without a router (use a configured capital)."""
        return None if self._capital is None else self._capital(lane)

    def now_ns(self) -> int:
        """Current time of the node's clock."""
        return self._clock.time_ns()

    def target(self, instrument_id: InstrumentId, qty: Decimal, reason: str, ts_event_ns: int,
               lane: str = "production") -> None:
        """State a target position of `lane` in signed base units."""
        self._bus.publish(StrategyTarget(
            ts_event_ns=ts_event_ns, ts_init_ns=self._clock.time_ns(), strategy_id=self.strategy_id,
            instrument_id=instrument_id, target_qty=qty, reason=reason, lane=lane,
        ))

    def target_exposure(self, instrument_id: InstrumentId, exposure: float, reason: str, ts_event_ns: int,
                        lane: str = "production", edge_bps: float | None = None) -> None:
        """State a target exposure of `lane`: a signed fraction of its capital (1.0 = long all of it).
        `edge_bps`: the expected gain of the move (bps of the notional it adds), for the router's cost check."""
        self._bus.publish(StrategyTarget(
            ts_event_ns=ts_event_ns, ts_init_ns=self._clock.time_ns(), strategy_id=self.strategy_id,
            instrument_id=instrument_id, exposure=float(exposure), reason=reason, lane=lane, edge_bps=edge_bps,
        ))


class Strategy(Protocol):
    """A strategy: subscribes itself to what it needs in `attach`, and unsubscribes in `detach`."""

    strategy_id: str
    kind: str
    instruments: tuple[InstrumentId, ...]

    def attach(self, bus: Bus, ctx: StrategyContext) -> None:
        """Subscribe handlers on the bus."""
        ...

    def detach(self) -> None:
        """Unsubscribe every handler `attach` subscribed (idempotent)."""
        ...

    def update_params(self, cfg: StrategyInstanceConfig) -> None:
        """Apply the live (`live=True`) parameters of a reloaded instance config."""
        ...

    def status(self) -> dict[str, object]:
        """State for /status."""
        ...


class BarStrategy:
    """Common frame of the bar-driven baselines: one bar interval, a set of instruments, targets
    stated at the bar's close, and bad bars (a non-finite or non-positive price) skipped and counted.

    Subclasses implement `on_valid_bar(bar)` and `_kind_status(iid)`; `_target(bar, exposure, reason)`
    states an exposure of the strategy's capital on the production lane.
    """

    kind = ""

    def __init__(self, strategy_id: str, instruments: tuple[InstrumentId, ...], bar_interval_s: int) -> None:
        self.strategy_id = strategy_id
        self.instruments = tuple(instruments)
        self._iids = frozenset(self.instruments)
        self.bar_interval_s = bar_interval_s
        self.signals = 0
        self.bars_rejected = 0
        self.last_reject = ""
        self._ctx: StrategyContext | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, bus: Bus, ctx: StrategyContext) -> None:
        """Listen to bars."""
        self.detach()
        self._ctx = ctx
        self._unsubscribe = bus.subscribe(Bar, self.on_bar, name=f"strategy:{self.strategy_id}")

    def detach(self) -> None:
        """Stop listening to bars (idempotent); the indicator state is kept."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_bar(self, bar: Bar) -> None:
        """A bar of this strategy's interval and instruments goes to `on_valid_bar` unless it is bad."""
        if bar.interval_s != self.bar_interval_s or bar.instrument_id not in self._iids:
            return
        for name in ("high", "low", "close"):
            v = getattr(bar, name)
            if not (math.isfinite(v) and v > 0.0):
                self.bars_rejected += 1
                self.last_reject = f"{bar.instrument_id} ts_ns={bar.ts_event_ns}: {name} = {v!r}: must be finite and > 0"
                return
        self.on_valid_bar(bar)

    def on_valid_bar(self, bar: Bar) -> None:
        """Update the indicator with a good bar; state a target on a signal."""
        raise NotImplementedError

    def _target(self, bar: Bar, exposure: float, reason: str) -> None:
        self.signals += 1
        if self._ctx is not None:
            self._ctx.target_exposure(bar.instrument_id, exposure, reason,
                                      bar.ts_event_ns + bar.interval_s * 1_000_000_000)

    def _kind_status(self, iid: InstrumentId) -> dict[str, object]:
        raise NotImplementedError

    def status(self) -> dict[str, object]:
        """Signals, rejected bars and the indicator per instrument."""
        out: dict[str, object] = {"kind": self.kind, "signals": self.signals, "bars_rejected": self.bars_rejected,
                                  "last_reject": self.last_reject or None}
        for iid in self.instruments:
            out[str(iid)] = self._kind_status(iid)
        return out
