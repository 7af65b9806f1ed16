"""The data-quality book: each instrument's latest market data quality, one place.

Venues publish `MarketDataQualityChanged` when an instrument's data changes quality (IBKR:
live, 15-minute delayed, frozen, none); a venue whose data is always live never does, so
an instrument never reported is LIVE. The strategies read it through their context
(`StrategyContext.data_quality`), which also makes them stand aside on anything but live
data unless a strategy opts in (docs/IBKR.md, "Delayed data").
"""

from __future__ import annotations

from collections.abc import Callable

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.domain.enums import DataQuality
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import MarketDataQualityChanged


class DataQualityBook:
    """Latest `DataQuality` (and its detail) per instrument; LIVE when never reported."""

    __slots__ = ("details", "qualities")

    def __init__(self) -> None:
        self.qualities: dict[InstrumentId, DataQuality] = {}
        self.details: dict[InstrumentId, str] = {}

    def quality(self, instrument_id: InstrumentId) -> DataQuality:
        """The instrument's data quality (LIVE until a venue says otherwise)."""
        return self.qualities.get(instrument_id, DataQuality.LIVE)

    def on_change(self, m: MarketDataQualityChanged) -> None:
        """A venue reported a new quality."""
        self.qualities[m.instrument_id] = m.quality
        self.details[m.instrument_id] = m.detail

    def degraded(self) -> dict[str, str]:
        """Instruments whose data is not live: `{id: "delayed: detail"}` (for /status)."""
        return {str(i): f"{q.value}: {self.details.get(i, '')}".rstrip(": ")
                for i, q in self.qualities.items() if q is not DataQuality.LIVE}

    def attach(self, bus: Bus, name: str = "data_quality") -> Callable[[], None]:
        """Subscribe (before the strategies); returns a function that unsubscribes."""
        return bus.subscribe(MarketDataQualityChanged, self.on_change, name=name)
