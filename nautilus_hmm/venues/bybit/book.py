"""Local order book for Bybit v5 `orderbook.{depth}.{symbol}` (pure; the stream does I/O).

Rules (docs/v5/websocket/public/orderbook.mdx, checked against the recorded ob500 dump):

1. A snapshot replaces the whole book, whatever came before: Bybit sends one after
   subscribing, and again whenever its service restarts (then `u` restarts at 1) or,
   for depth 1, every few seconds without a change (with the same `u`).
2. A delta applies on top: sizes are absolute, size 0 deletes the level (deleting a
   level the book does not hold is normal).
3. Continuity: a delta's `u` is the previous `u` + 1; its `seq` (cross sequence) never
   goes down. A delta with `u` <= the book's `u` is a stale repeat and is ignored. Any
   other `u` (a missed frame), a `seq` going backwards, or a book that ends up crossed
   (best bid >= best ask) is a gap: `apply` raises `BookGap`, the book becomes invalid
   and ignores deltas until the next snapshot (the caller resubscribes or loads a REST
   snapshot, which is a snapshot like any other).
4. The book holds at most `depth` levels per side (Bybit keeps the top `depth` and sends
   a level again when it re-enters the window); deeper levels are trimmed.

Queries return None unless the book is valid, so nobody reads a book known to be wrong.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from enum import StrEnum

from nautilus_hmm.core.errors import NautilusError
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import QuoteTick
from nautilus_hmm.venues.bybit.parse import BookUpdate, Level


class BookGap(NautilusError):
    """The book missed an update (or went crossed): it is invalid until a new snapshot."""

    def __init__(self, instrument_id: InstrumentId, reason: str, expected_u: int | None = None,
                 got_u: int | None = None) -> None:
        self.instrument_id = instrument_id
        self.reason = reason
        self.expected_u = expected_u
        self.got_u = got_u
        super().__init__(f"{instrument_id}: order book gap: {reason}")


class Applied(StrEnum):
    """What one `apply` did (a gap raises instead)."""

    SNAPSHOT = "snapshot"  # the book was reset from a snapshot (and is valid)
    DELTA = "delta"  # applied to a valid book
    STALE = "stale"  # a delta already contained in the book: ignored
    WAITING = "waiting"  # a delta while no valid snapshot is loaded: ignored


class BybitBook:
    """One instrument's L2 book from `orderbook.{depth}` snapshots and deltas."""

    __slots__ = (
        "_ask_keys", "_asks", "_bid_keys", "_bids", "depth", "gaps", "instrument_id", "last_event_ns",
        "reason", "seq", "snapshots", "update_id", "valid",
    )

    def __init__(self, instrument_id: InstrumentId, depth: int = 0) -> None:
        if depth < 0:
            raise ValueError(f"depth must be >= 0 (0 = unlimited), got {depth}")
        self.instrument_id = instrument_id
        self.depth = depth
        self.valid = False
        self.reason = "no snapshot yet"
        self.update_id = 0
        self.seq = 0
        self.last_event_ns = 0
        self.gaps = 0
        self.snapshots = 0
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_keys: list[float] = []  # ascending; best bid last
        self._ask_keys: list[float] = []  # ascending; best ask first

    def apply(self, upd: BookUpdate) -> Applied:
        """Apply one snapshot or delta; raises BookGap (and invalidates the book) on a gap."""
        if upd.instrument_id != self.instrument_id:
            raise ValueError(f"update for {upd.instrument_id} fed to the book of {self.instrument_id}")
        if upd.is_snapshot:
            return self._snapshot(upd)
        if not self.valid:
            return Applied.WAITING
        u = upd.update_id
        if u <= self.update_id:
            return Applied.STALE
        if u != self.update_id + 1:
            raise self._gap(f"missed updates: u={u} after u={self.update_id}", self.update_id + 1, u)
        if upd.seq < self.seq:
            raise self._gap(f"seq went backwards: {upd.seq} after {self.seq} (u={u})", self.update_id + 1, u)
        _apply(self._bids, self._bid_keys, upd.bids)
        _apply(self._asks, self._ask_keys, upd.asks)
        self.update_id = u
        self.seq = upd.seq
        self.last_event_ns = upd.ts_event_ns
        bk, ak = self._bid_keys, self._ask_keys
        if bk and ak and bk[-1] >= ak[0]:
            raise self._gap(f"crossed book after u={u}: best bid {bk[-1]} >= best ask {ak[0]}")
        if self.depth:
            self._trim()
        return Applied.DELTA

    def _snapshot(self, upd: BookUpdate) -> Applied:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        _apply(self._bids, self._bid_keys, upd.bids)
        _apply(self._asks, self._ask_keys, upd.asks)
        self.update_id = upd.update_id
        self.seq = upd.seq
        self.last_event_ns = upd.ts_event_ns
        self.snapshots += 1
        bk, ak = self._bid_keys, self._ask_keys
        if bk and ak and bk[-1] >= ak[0]:
            raise self._gap(f"crossed snapshot u={upd.update_id}: best bid {bk[-1]} >= best ask {ak[0]}")
        if self.depth:
            self._trim()
        self.valid = True
        self.reason = ""
        return Applied.SNAPSHOT

    def _trim(self) -> None:
        depth = self.depth
        bk, ak = self._bid_keys, self._ask_keys
        if len(bk) > depth:
            for p in bk[:len(bk) - depth]:
                del self._bids[p]
            del bk[:len(bk) - depth]
        if len(ak) > depth:
            for p in ak[depth:]:
                del self._asks[p]
            del ak[depth:]

    def _gap(self, reason: str, expected_u: int | None = None, got_u: int | None = None) -> BookGap:
        self.valid = False
        self.reason = reason
        self.gaps += 1
        return BookGap(self.instrument_id, reason, expected_u, got_u)

    def invalidate(self, reason: str) -> None:
        """Mark the book invalid (e.g. the stream reconnected): deltas are ignored until a snapshot."""
        self.valid = False
        self.reason = reason

    # ------------------------------------------------------------ queries (None unless valid)

    def best_bid(self) -> Level | None:
        """(price, size) of the best bid."""
        if not self.valid or not self._bid_keys:
            return None
        p = self._bid_keys[-1]
        return p, self._bids[p]

    def best_ask(self) -> Level | None:
        """(price, size) of the best ask."""
        if not self.valid or not self._ask_keys:
            return None
        p = self._ask_keys[0]
        return p, self._asks[p]

    def mid(self) -> float | None:
        """Mid price."""
        bid, ask = self.best_bid(), self.best_ask()
        return (bid[0] + ask[0]) / 2 if bid and ask else None

    def spread(self) -> float | None:
        """Best ask minus best bid."""
        bid, ask = self.best_bid(), self.best_ask()
        return ask[0] - bid[0] if bid and ask else None

    def top(self, n: int) -> tuple[list[Level], list[Level]] | None:
        """The best `n` levels per side, best first: (bids, asks)."""
        if not self.valid:
            return None
        if n <= 0:
            return [], []
        bids = [(p, self._bids[p]) for p in self._bid_keys[:-n - 1:-1]]
        asks = [(p, self._asks[p]) for p in self._ask_keys[:n]]
        return bids, asks

    def quote(self, ts_init_ns: int) -> QuoteTick | None:
        """Best bid/ask as a QuoteTick (event time = the last update's), or None."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return QuoteTick(ts_event_ns=self.last_event_ns, ts_init_ns=ts_init_ns, instrument_id=self.instrument_id,
                         bid=bid[0], bid_size=bid[1], ask=ask[0], ask_size=ask[1])

    def levels(self) -> tuple[int, int]:
        """Number of (bid, ask) levels held."""
        return len(self._bid_keys), len(self._ask_keys)


def _apply(levels: dict[float, float], keys: list[float], updates: list[Level]) -> None:
    for price, qty in updates:
        if qty == 0.0:
            if levels.pop(price, None) is not None:
                del keys[bisect_left(keys, price)]
        else:
            if price not in levels:
                insort(keys, price)
            levels[price] = qty
