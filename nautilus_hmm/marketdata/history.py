"""The past-bars port: a venue that can serve its past bars (REST klines, a simulator's past).

Beside `BarArrays` (the shape it answers in), below `venues/`, so the node asks any
venue for history through this protocol without importing a venue package.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.replay import BarArrays


@runtime_checkable
class HistoryVenue(Protocol):
    """A venue that can serve past bars (REST klines, a simulator's past)."""

    async def history_bars(self, instrument_id: InstrumentId, interval_s: int, n_bars: int) -> BarArrays:
        """Up to `n_bars` closed bars of `interval_s` seconds ending now, oldest first.

        Fewer (or none) when the venue has less; raises VenueError when it cannot answer.
        """
        ...
