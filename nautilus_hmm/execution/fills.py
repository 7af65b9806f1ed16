"""The engine's fill intake: the one place a fill is de-duplicated.

Adapters publish every fill report they see and count nothing: a spot order's FULL
answer and the user stream's copy of the same trade, a user-stream gap's re-read, a
reconciliation's `fills_since`. A fill is identified by (venue, symbol, trade id), the
journal's unique key. Rule: a fill is applied once, whichever way and however often it
arrives; every refused copy is counted (`counts["duplicate_fills"]`, /status
`execution.duplicate_fills`).

* Durable (live): the journal's unique key decides, across restarts (`record_fill`
  resolves False for a fill it already has). A bounded memory of the keys the journal
  confirmed answers the usual repeats (the stream's copy of a FULL answer's fill, a gap
  re-read) without a journal round trip. A key enters it only once the journal has the
  fill, so forgetting one costs a round trip, never a second booking; a write that fails
  leaves no key behind.
* In memory (backtest, `durable=False`): a set of every key seen; nothing else
  remembers, so nothing is forgotten.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from nautilus_hmm.domain.orders import VenueFill

# Journal-confirmed keys remembered on the durable path: covers the repeats venues send
# (an answer's fill and the stream's copy, seconds apart; a gap re-read, minutes) many times
# over; a forgotten key costs a journal round trip, never a second booking (a daemon runs for
# months: 100k keys were ~30 MB).
RECENT_FILLS_MAX = 10_000

FillKey = tuple[str, str, str]


def fill_key(venue: str, fill: VenueFill) -> FillKey:
    """(venue, symbol, trade id): what makes two fill reports the same execution."""
    return (venue, fill.instrument_id.symbol, fill.trade_id)


class FillIntake:
    """Decides whether a fill report is new (see the module docstring)."""

    __slots__ = ("_counts", "_journal", "_recent", "_recent_max", "_seen", "durable")

    def __init__(self, journal: Any, durable: bool, counts: dict[str, int],
                 recent_max: int = RECENT_FILLS_MAX) -> None:
        self._journal = journal
        self.durable = durable
        self._counts = counts  # the engine's counters: "duplicate_fills" is kept here
        self._recent: OrderedDict[FillKey, None] = OrderedDict()
        self._recent_max = recent_max
        self._seen: set[FillKey] = set()

    def admit_nowait(self, venue: str, fill: VenueFill) -> bool:
        """In-memory path: True the first time this fill is seen."""
        key = fill_key(venue, fill)
        if key in self._seen:
            self._counts["duplicate_fills"] += 1
            return False
        self._seen.add(key)
        return True

    def claim(self, venue: str, fill: VenueFill) -> asyncio.Future[bool] | None:
        """Durable path, first half: None for a fill the journal is known to have (counted),
        else the journal write; pass its answer to `settle`."""
        key = fill_key(venue, fill)
        recent = self._recent
        if key in recent:
            recent.move_to_end(key)
            self._counts["duplicate_fills"] += 1
            return None
        return self._journal.record_fill(venue, fill)

    def settle(self, venue: str, fill: VenueFill, new: bool) -> bool:
        """Durable path, second half: the journal answered `new`; True when the fill must apply."""
        recent = self._recent
        recent[fill_key(venue, fill)] = None
        if len(recent) > self._recent_max:
            recent.popitem(last=False)
        if not new:
            self._counts["duplicate_fills"] += 1
        return new

    async def admit(self, venue: str, fill: VenueFill) -> bool:
        """True when this fill is new (durable: journaled first); False for a copy (counted)."""
        if not self.durable:
            return self.admit_nowait(venue, fill)
        write = self.claim(venue, fill)
        if write is None:
            return False
        return self.settle(venue, fill, await write)
