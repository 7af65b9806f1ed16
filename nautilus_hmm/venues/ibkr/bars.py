"""5-second real-time bars and trade ticks → the strategy's bars. Pure: no asyncio.

IB streams 5-second bars (`reqRealTimeBars`) or single trades (`reqTickByTickData`); the
strategy consumes bars of `interval_s`. A bar is the aggregate of what IB sent inside its
interval, never more: no bar is invented for an interval without data (outside the
session IB sends nothing, so nothing comes out), and a bar whose interval IB left
incomplete (a gap, a session end) is closed with what it has when data of a later
interval arrives (or `flush_due` passes its end). A 5-second bar closes its interval when
it is the interval's last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.messages import Bar

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class _Partial:
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class BarAggregator:
    """Aggregates one instrument's 5-s bars or trades into closed bars of `interval_s`."""

    def __init__(self, instrument_id: InstrumentId, interval_s: int) -> None:
        if interval_s <= 0:
            raise ValueError(f"bar interval must be > 0 s, got {interval_s}")
        self.instrument_id = instrument_id
        self.interval_s = interval_s
        self._interval_ns = interval_s * NS_PER_S
        self._cur: _Partial | None = None
        self.last_start_ns = -1  # newest input start seen (late or repeated inputs are dropped)
        self.dropped = 0

    def _close(self, ts_init_ns: int) -> Bar | None:
        cur, self._cur = self._cur, None
        if cur is None:
            return None
        return Bar(ts_event_ns=cur.start_ns, ts_init_ns=ts_init_ns, instrument_id=self.instrument_id,
                   interval_s=self.interval_s, open=cur.open, high=cur.high, low=cur.low, close=cur.close,
                   volume=cur.volume)

    def add(self, start_ns: int, span_s: int, o: float, h: float, low: float, c: float, v: float,
            ts_init_ns: int) -> list[Bar]:
        """Add a bar of `span_s` seconds starting at `start_ns` (a trade: span 0, o=h=l=c).

        Returns the bars this closes (0, 1 or 2), oldest first. Inputs older than the newest
        one seen, or repeated, are dropped (counted): IB resends nothing, a replay must not
        double volume.
        """
        if start_ns < self.last_start_ns or (span_s > 0 and start_ns == self.last_start_ns):
            self.dropped += 1
            return []
        self.last_start_ns = start_ns
        out: list[Bar] = []
        bucket = start_ns - start_ns % self._interval_ns
        cur = self._cur
        if cur is not None and cur.start_ns != bucket:
            closed = self._close(ts_init_ns)
            if closed is not None:
                out.append(closed)
            cur = None
        if cur is None:
            self._cur = _Partial(bucket, o, h, low, c, v)
        else:
            cur.high = max(cur.high, h)
            cur.low = min(cur.low, low)
            cur.close = c
            cur.volume += v
        if span_s > 0 and start_ns + span_s * NS_PER_S >= bucket + self._interval_ns:
            closed = self._close(ts_init_ns)
            if closed is not None:
                out.append(closed)
        return out

    def flush_due(self, now_ns: int) -> Bar | None:
        """Close the bar in progress once its interval has ended (trades: no later trade may come)."""
        cur = self._cur
        if cur is not None and now_ns >= cur.start_ns + self._interval_ns:
            return self._close(now_ns)
        return None


def bars_to_arrays(bars: list[Bar], interval_s: int, path: str) -> BarArrays:
    """Bars (oldest first) → `BarArrays` (what `history_bars` returns)."""
    n = len(bars)
    return BarArrays(np.fromiter((b.ts_event_ns for b in bars), dtype=np.int64, count=n),
                     *(np.fromiter((getattr(b, f) for b in bars), dtype=np.float64, count=n)
                       for f in ("open", "high", "low", "close", "volume")),
                     interval_s=interval_s, path=path)
