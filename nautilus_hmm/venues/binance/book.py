"""Local order book kept in sync with Binance's documented procedure (pure; the adapter does I/O).

Procedure ("How to manage a local order book correctly", spot and USD-M):

1. Open the diff stream and buffer its events (`on_diff` while no snapshot is loaded).
2. Fetch a REST depth snapshot and hand it to `on_snapshot`.
3. Drop buffered events already contained in the snapshot: spot `u <= lastUpdateId`,
   USD-M `u < lastUpdateId`.
4. The first applied event must bridge the snapshot: spot `U <= lastUpdateId+1 <= u`,
   USD-M `U <= lastUpdateId <= u`. If the first remaining event starts after that, the
   snapshot is older than the stream: the book is INVALID and needs a new snapshot.
5. Then continuity: spot `U <= last u + 1 <= u` (with a gap-free stream this is
   `U == last u + 1`); USD-M `pu == last u`. Events with `u <= last u` are stale
   duplicates and ignored. Anything else is a gap: INVALID, and the book needs a new
   snapshot while it buffers the stream again.
6. Quantities are absolute; 0 removes the level (removing an unknown level is normal).

A book that would become crossed (best bid >= best ask) is treated like a gap. Prices and
sizes are floats (market data); queries return None unless the book is VALID, so a
consumer never reads a book that is known to be wrong.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from enum import StrEnum

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import DepthDiff, DepthSnapshot, Level

DEFAULT_MAX_BUFFER = 10_000


class BookState(StrEnum):
    """Where the book is in the sync procedure."""

    AWAITING_SNAPSHOT = "awaiting_snapshot"  # buffering diffs until a snapshot arrives
    SYNCING = "syncing"  # snapshot loaded; waiting for the diff that bridges it
    VALID = "valid"
    INVALID = "invalid"  # gap or crossed book: buffering again, needs a new snapshot


class Outcome(StrEnum):
    """What one `on_diff` / `on_snapshot` call did."""

    BUFFERED = "buffered"  # kept for after the snapshot
    STALE = "stale"  # already contained in the book; ignored
    APPLIED = "applied"  # applied to a valid book
    SYNCED = "synced"  # the book became valid
    WAITING = "waiting"  # snapshot loaded, no bridging diff yet
    GAP = "gap"  # the book became invalid; see `reason`


class LocalOrderBook:
    """One instrument's L2 book built from a depth snapshot plus diff events."""

    __slots__ = (
        "_ask_keys", "_asks", "_bid_keys", "_bids", "_buffer", "buffer_overflows", "gaps",
        "instrument_id", "last_event_ns", "last_update_id", "market", "reason", "state",
    )

    def __init__(self, instrument_id: InstrumentId, market: Market, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
        self.instrument_id = instrument_id
        self.market = market
        self.state = BookState.AWAITING_SNAPSHOT
        self.reason = "no snapshot yet"
        self.last_update_id = 0
        self.last_event_ns = 0
        self.gaps = 0
        self.buffer_overflows = 0
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffer)
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_keys: list[float] = []  # ascending; best bid last
        self._ask_keys: list[float] = []  # ascending; best ask first

    # ------------------------------------------------------------ sync

    @property
    def is_valid(self) -> bool:
        """True when the book is in sync with the venue."""
        return self.state is BookState.VALID

    @property
    def needs_snapshot(self) -> bool:
        """True when the adapter should fetch a REST snapshot."""
        return self.state is BookState.AWAITING_SNAPSHOT or self.state is BookState.INVALID

    def on_diff(self, diff: DepthDiff) -> Outcome:
        """Feed one diff event from the stream."""
        if diff.instrument_id != self.instrument_id:
            raise ValueError(f"diff for {diff.instrument_id} fed to the book of {self.instrument_id}")
        state = self.state
        if state is BookState.VALID:
            return self._continue(diff)
        if state is BookState.SYNCING:
            return self._bridge(diff)
        if len(self._buffer) == self._buffer.maxlen:
            self.buffer_overflows += 1  # oldest dropped; a stale snapshot is then detected at sync
        self._buffer.append(diff)
        return Outcome.BUFFERED

    def on_snapshot(self, snap: DepthSnapshot) -> Outcome:
        """Load a REST snapshot and replay the buffered diffs on top of it (always a full re-sync)."""
        if snap.instrument_id != self.instrument_id:
            raise ValueError(f"snapshot for {snap.instrument_id} fed to the book of {self.instrument_id}")
        self._clear_levels()
        self._apply(self._bids, self._bid_keys, snap.bids)
        self._apply(self._asks, self._ask_keys, snap.asks)
        self.last_update_id = snap.last_update_id
        self.last_event_ns = snap.ts_event_ns or snap.ts_init_ns
        self.state = BookState.SYNCING
        self.reason = "waiting for a diff that bridges the snapshot"
        buffered, self._buffer = list(self._buffer), deque(maxlen=self._buffer.maxlen)
        for diff in buffered:
            # After a gap, on_diff buffers the rest of the stream for the next snapshot.
            self.on_diff(diff)
        if self.state is BookState.VALID:
            return Outcome.SYNCED
        return Outcome.GAP if self.state is BookState.INVALID else Outcome.WAITING

    def invalidate(self, reason: str) -> None:
        """Mark the book invalid (e.g. the stream reconnected); diffs are buffered until a snapshot."""
        self.state = BookState.INVALID
        self.reason = reason
        self._buffer.clear()

    def _is_stale(self, diff: DepthDiff) -> bool:
        if self.market is Market.SPOT:
            return diff.final_update_id <= self.last_update_id
        return diff.final_update_id < self.last_update_id

    def _bridge(self, diff: DepthDiff) -> Outcome:
        if self._is_stale(diff):
            return Outcome.STALE
        target = self.last_update_id + 1 if self.market is Market.SPOT else self.last_update_id
        if diff.first_update_id > target:
            return self._gap(
                f"snapshot lastUpdateId {self.last_update_id} is older than the stream: "
                f"first diff U={diff.first_update_id} u={diff.final_update_id}", diff,
            )
        self._apply_diff(diff)
        if self.state is BookState.INVALID:
            return Outcome.GAP
        self.state = BookState.VALID
        self.reason = ""
        return Outcome.SYNCED

    def _continue(self, diff: DepthDiff) -> Outcome:
        last = self.last_update_id
        if self.market is Market.SPOT:
            if diff.final_update_id <= last:
                return Outcome.STALE
            if diff.first_update_id > last + 1:
                return self._gap(f"missed updates: U={diff.first_update_id} after u={last}", diff)
        elif diff.prev_final_update_id != last:
            if diff.final_update_id <= last:
                return Outcome.STALE
            return self._gap(f"missed updates: pu={diff.prev_final_update_id} != last u={last}", diff)
        self._apply_diff(diff)
        return Outcome.GAP if self.state is BookState.INVALID else Outcome.APPLIED

    def _gap(self, reason: str, keep: DepthDiff | None = None) -> Outcome:
        self.state = BookState.INVALID
        self.reason = reason
        self.gaps += 1
        self._buffer.clear()
        if keep is not None:
            self._buffer.append(keep)  # newer than the book: the next snapshot may need it
        return Outcome.GAP

    def _apply_diff(self, diff: DepthDiff) -> None:
        self._apply(self._bids, self._bid_keys, diff.bids)
        self._apply(self._asks, self._ask_keys, diff.asks)
        self.last_update_id = diff.final_update_id
        self.last_event_ns = diff.ts_event_ns
        bk, ak = self._bid_keys, self._ask_keys
        if bk and ak and bk[-1] >= ak[0]:
            self._gap(f"crossed book after u={diff.final_update_id}: best bid {bk[-1]} >= best ask {ak[0]}")

    @staticmethod
    def _apply(levels: dict[float, float], keys: list[float], updates: list[Level]) -> None:
        for price, qty in updates:
            if qty == 0.0:
                if levels.pop(price, None) is not None:
                    del keys[bisect_left(keys, price)]
            else:
                if price not in levels:
                    insort(keys, price)
                levels[price] = qty

    def _clear_levels(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()

    # ------------------------------------------------------------ queries (None unless VALID)

    def best_bid(self) -> Level | None:
        """(price, size) of the best bid."""
        if self.state is not BookState.VALID or not self._bid_keys:
            return None
        p = self._bid_keys[-1]
        return p, self._bids[p]

    def best_ask(self) -> Level | None:
        """(price, size) of the best ask."""
        if self.state is not BookState.VALID or not self._ask_keys:
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
        if self.state is not BookState.VALID:
            return None
        bids = [(p, self._bids[p]) for p in self._bid_keys[:-n - 1:-1]] if n > 0 else []
        asks = [(p, self._asks[p]) for p in self._ask_keys[:n]] if n > 0 else []
        return bids, asks

    def imbalance(self, n: int = 5) -> float | None:
        """(bid size - ask size) / (bid size + ask size) over the best `n` levels, in [-1, 1]."""
        top = self.top(n)
        if top is None:
            return None
        bid_qty = sum(q for _, q in top[0])
        ask_qty = sum(q for _, q in top[1])
        total = bid_qty + ask_qty
        return (bid_qty - ask_qty) / total if total > 0 else None

    def depth(self) -> tuple[int, int]:
        """Number of (bid, ask) levels held."""
        return len(self._bid_keys), len(self._ask_keys)

    def buffered(self) -> int:
        """Diffs waiting for a snapshot."""
        return len(self._buffer)
