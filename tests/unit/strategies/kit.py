"""A strategy on a real bus and manual clock, with the StrategyTargets it states recorded."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Bar, StrategyTarget
from nautilus_hmm.strategies.base import StrategyContext

IID = InstrumentId("sim", "BTCUSDT")
NS = 1_000_000_000
T0 = 1_700_000_000 * NS
INTERVAL_S = 60


def bar(i: int, close: float, high: float | None = None, low: float | None = None,
        interval_s: int = INTERVAL_S, iid: InstrumentId = IID) -> Bar:
    """Bar number `i` (opens at T0 + i intervals); high/low default to the close."""
    ts = T0 + i * interval_s * NS
    return Bar(ts_event_ns=ts, ts_init_ns=ts + interval_s * NS, instrument_id=iid, interval_s=interval_s,
               open=close, high=close if high is None else high, low=close if low is None else low, close=close,
               volume=1.0)


class Rig:
    """Publishes bars to an attached strategy and records its targets by bar number."""

    def __init__(self, strategy: object) -> None:
        self.bus = Bus()
        self.clock = ManualClock(T0)
        self.targets: list[StrategyTarget] = []
        self.bus.subscribe(StrategyTarget, self.targets.append)
        self.strategy = strategy
        self.ctx = StrategyContext("s1", self.bus, self.clock, lambda iid: Decimal(0))
        strategy.attach(self.bus, self.ctx)  # type: ignore[attr-defined]

    def run(self, bars: Iterable[Bar]) -> None:
        for b in bars:
            self.clock.set_time_ns(b.ts_init_ns)
            self.bus.publish(b)

    def signals(self) -> list[tuple[int, float | Decimal | None]]:
        """(bar number, exposure or quantity) of every target stated, the bar numbered by its close."""
        out = []
        for t in self.targets:
            i = (t.ts_event_ns - T0) // (INTERVAL_S * NS) - 1
            out.append((i, t.exposure if t.target_qty is None else t.target_qty))
        return out
