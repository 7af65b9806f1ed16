"""The strategy interface: what a strategy may do (`StrategyContext`) and what it is (`Strategy`).

A strategy sees bars (and optionally trades/quotes) and states *targets* for its own
virtual sub-account: a signed exposure (a fraction of its capital) or a signed quantity
(base units). It never places orders and never sees another strategy's position: the
strategy router nets every strategy's targets per instrument, sizes exposures with each
strategy's capital and sends one net target to the engine, so the same strategy code runs
live, on paper and in a backtest. Strategies are plain objects with synchronous handlers:
they are on the hot path.

Data quality: `ctx.data_quality(iid)` is the instrument's market data quality (LIVE unless a
venue said otherwise: IBKR's 15-minute delayed data without a subscription, frozen data,
none). By default a strategy **stands aside** on anything but live data: the context does
not state its targets (its last target stands, so the position is held; counted in
`stood_aside`, logged once per spell); a signal computed from 15-minute-old prices would
be sent at today's. A strategy that knows better sets `ctx.stand_aside_unless_live = False`
in `attach` and reads `data_quality` itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Protocol

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.domain.enums import DataQuality
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import QTY_QUANTUM
from nautilus_hmm.messages import Bar, StrategyTarget

if TYPE_CHECKING:
    from nautilus_hmm.domain.sessions import TradingSessions
    from nautilus_hmm.strategies.config import StrategyInstanceConfig

LANES = ("production", "canary")
log = structlog.get_logger("strategies")


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

    __slots__ = ("_aside", "_bus", "_capital", "_clock", "_mark", "_position", "_quality", "_sessions",
                 "stand_aside_unless_live", "stood_aside", "strategy_id")

    def __init__(self, strategy_id: str, bus: Bus, clock: Clock,
                 position: Callable[[InstrumentId], Decimal],
                 mark: Callable[[InstrumentId], float | None] | None = None,
                 capital: Callable[[str], float] | None = None,
                 sessions: Callable[[InstrumentId], TradingSessions | None] | None = None,
                 data_quality: Callable[[InstrumentId], DataQuality] | None = None) -> None:
        self.strategy_id = strategy_id
        self._bus = bus
        self._clock = clock
        self._position = position
        self._mark = mark
        self._capital = capital
        self._sessions = sessions
        self._quality = data_quality
        self.stand_aside_unless_live = True  # targets on delayed/frozen/no data are not stated
        self.stood_aside = 0  # targets not stated for want of live data
        self._aside: set[InstrumentId] = set()  # instruments in a stand-aside spell (logged once)

    def data_quality(self, instrument_id: InstrumentId) -> DataQuality:
        """The instrument's market data quality: LIVE, or DELAYED / FROZEN / NONE as its venue said."""
        return DataQuality.LIVE if self._quality is None else self._quality(instrument_id)

    def _stands_aside(self, instrument_id: InstrumentId, reason: str) -> bool:
        """True (counted; logged once per spell) when a target must not be stated: not live data."""
        if not self.stand_aside_unless_live or self._quality is None:
            return False
        quality = self._quality(instrument_id)
        if quality is DataQuality.LIVE:
            if instrument_id in self._aside:
                self._aside.discard(instrument_id)
                log.info("strategy_data_live_again", strategy=self.strategy_id, instrument=str(instrument_id))
            return False
        self.stood_aside += 1
        if instrument_id not in self._aside:
            self._aside.add(instrument_id)
            log.warning("strategy_stands_aside", strategy=self.strategy_id, instrument=str(instrument_id),
                        data_quality=quality.value, target_reason=reason,
                        action="no target while the data is not live; the last target stands")
        return True

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
        """State a target position of `lane` in signed base units (not on data that is not live)."""
        if self._stands_aside(instrument_id, reason):
            return
        self._bus.publish(StrategyTarget(
            ts_event_ns=ts_event_ns, ts_init_ns=self._clock.time_ns(), strategy_id=self.strategy_id,
            instrument_id=instrument_id, target_qty=qty, reason=reason, lane=lane,
        ))

    def target_exposure(self, instrument_id: InstrumentId, exposure: float, reason: str, ts_event_ns: int,
                        lane: str = "production", edge_bps: float | None = None) -> None:
        """State a target exposure of `lane`: a signed fraction of its capital (1.0 = long all of it).
        `edge_bps`: the expected gain of the move (bps of the notional it adds), for the router's cost check.
        Not stated on data that is not live (see the module docstring)."""
        if self._stands_aside(instrument_id, reason):
            return
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
                                  "last_reject": self.last_reject or None,
                                  "stood_aside": self._ctx.stood_aside if self._ctx is not None else 0}
        for iid in self.instruments:
            out[str(iid)] = self._kind_status(iid)
        return out
