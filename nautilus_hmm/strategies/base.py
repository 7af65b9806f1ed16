"""The strategy interface: what a strategy may do (`StrategyContext`) and what it is (`Strategy`).

A strategy sees bars (and optionally trades/quotes) and states *target positions*; it
never places orders itself. The engine turns targets into orders through the router and
the risk gate, so the same strategy code runs live, on paper and in a backtest.
Strategies are plain objects with synchronous handlers: they are on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import TargetPosition


class StrategyContext:
    """What a strategy may do: read time, positions and marks, state targets."""

    __slots__ = ("_bus", "_clock", "_mark", "_position", "strategy_id")

    def __init__(self, strategy_id: str, bus: Bus, clock: Clock,
                 position: Callable[[InstrumentId], Decimal],
                 mark: Callable[[InstrumentId], float | None] | None = None) -> None:
        self.strategy_id = strategy_id
        self._bus = bus
        self._clock = clock
        self._position = position
        self._mark = mark

    def mark(self, instrument_id: InstrumentId) -> float | None:
        """The instrument's mark from the node's one mark book (what the risk gate and the
        engine use); None before any price, or without a book."""
        return None if self._mark is None else self._mark(instrument_id)

    def position(self, instrument_id: InstrumentId) -> Decimal:
        """Current net position in base units."""
        return self._position(instrument_id)

    def now_ns(self) -> int:
        """Current time of the node's clock."""
        return self._clock.time_ns()

    def target(self, instrument_id: InstrumentId, qty: Decimal, reason: str, ts_event_ns: int) -> None:
        """State a target position (signed base units)."""
        self._bus.publish(TargetPosition(
            ts_event_ns=ts_event_ns, ts_init_ns=self._clock.time_ns(), strategy_id=self.strategy_id,
            instrument_id=instrument_id, target_qty=qty, reason=reason,
        ))


class Strategy(Protocol):
    """A strategy: subscribes itself to what it needs in `attach`."""

    strategy_id: str

    def attach(self, bus: Bus, ctx: StrategyContext) -> None:
        """Subscribe handlers on the bus."""
        ...

    def status(self) -> dict[str, object]:
        """State for /status."""
        ...
