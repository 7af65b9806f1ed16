"""The two bar builders (trades → bars, bars → longer bars) and the last known prices.

Two builders because their inputs and their closing rules differ, not two copies:

* `BarAggregator` builds `messages.Bar`s from trades: a trade carries no interval end, so
  a bar closes on a later trade or on a timer (`flush`).
* `BarResampler` (online) and `resample_bars` (batch, `BarArrays`) group base bars into
  longer bars: a base bar carries its own end, so a bucket closes with its last base bar.

`BarAggregator` builds fixed-interval bars aligned to the epoch (a 60 s bar opens at a
whole minute). Rules:

* A bar closes when a trade of a later interval arrives, or when `flush(now_ns)` is
  called at or after the bar's end, so a quiet market still closes its bars on time.
* An interval with no trades produces no bar: there is no price to put in it, and a
  flat "filler" bar would invent volume-less prices. Consumers see a gap in
  `ts_event_ns` instead.
* A trade older than the open bar's interval (a late print after that bar closed) is
  counted in `late_trades` and not applied: a published bar is never changed.

Resampling groups base bars into buckets aligned to multiples of the target interval
since the epoch; a bucket's bar is stamped with the bucket start (the open time, like
`messages.Bar`). Online (`BarResampler`) and batch (`resample_bars`) produce the same
bars: a bucket is emitted once its last base bar arrived, or, when base bars are missing,
once a bar of a later bucket arrives (it then holds the bars it got). The batch version
drops a trailing bucket that is not complete, because online it would not be emitted yet.

All are pure (no asyncio); the owner feeds them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.replay import QUOTE_FIELDS, BarArrays, BarDataError
from nautilus_hmm.messages import Bar, MarkPrice, Message, QuoteTick, TradeTick

if TYPE_CHECKING:
    from nautilus_hmm.core.bus import Bus

NS_PER_S = 1_000_000_000


class BarAggregator:
    """Time bars of one instrument from its trades; O(1) per trade."""

    __slots__ = (
        "_close", "_high", "_low", "_open", "_open_ns", "_volume",
        "instrument_id", "interval_ns", "interval_s", "late_trades",
    )

    def __init__(self, instrument_id: InstrumentId, interval_s: int) -> None:
        if interval_s < 1:
            raise ValueError(f"interval_s must be >= 1, got {interval_s}")
        self.instrument_id = instrument_id
        self.interval_s = interval_s
        self.interval_ns = interval_s * NS_PER_S
        self.late_trades = 0
        self._open_ns = -1  # open time of the bar being built; -1 = none
        self._open = self._high = self._low = self._close = self._volume = 0.0

    @property
    def open_bar_ts_ns(self) -> int | None:
        """Open time of the bar being built, or None."""
        return self._open_ns if self._open_ns >= 0 else None

    def on_trade(self, price: float, size: float, ts_ns: int) -> Bar | None:
        """Add a trade; returns the previous bar if this trade closed it."""
        start = ts_ns - ts_ns % self.interval_ns
        open_ns = self._open_ns
        if start == open_ns:
            if price > self._high:
                self._high = price
            elif price < self._low:
                self._low = price
            self._close = price
            self._volume += size
            return None
        if start < open_ns:
            self.late_trades += 1
            return None
        closed = self._emit(ts_ns) if open_ns >= 0 else None
        self._open_ns = start
        self._open = self._high = self._low = self._close = price
        self._volume = size
        return closed

    def on_trade_tick(self, tick: TradeTick) -> Bar | None:
        """`on_trade` for a TradeTick."""
        return self.on_trade(tick.price, tick.size, tick.ts_event_ns)

    def flush(self, now_ns: int) -> Bar | None:
        """Close the open bar if `now_ns` is at or past its end; otherwise None."""
        if self._open_ns < 0 or now_ns < self._open_ns + self.interval_ns:
            return None
        bar = self._emit(now_ns)
        self._open_ns = -1
        return bar

    def _emit(self, ts_init_ns: int) -> Bar:
        return Bar(
            ts_event_ns=self._open_ns, ts_init_ns=ts_init_ns, instrument_id=self.instrument_id,
            interval_s=self.interval_s, open=self._open, high=self._high, low=self._low,
            close=self._close, volume=self._volume,
        )


class OhlcvBar(NamedTuple):
    """One bar: open time (ns) and OHLCV."""

    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def bucket_start_ns(ts_ns: int, interval_s: int) -> int:
    """Start of the interval-aligned bucket holding `ts_ns`."""
    step = interval_s * NS_PER_S
    return (ts_ns // step) * step


def _check_intervals(interval_s: int, base_interval_s: int) -> None:
    if base_interval_s <= 0 or interval_s <= 0:
        raise BarDataError("interval_s", None, f"intervals must be > 0 (got {interval_s}, base {base_interval_s})")
    if interval_s % base_interval_s:
        raise BarDataError(
            "interval_s", None, f"{interval_s} s is not a multiple of the base interval {base_interval_s} s"
        )


class BarResampler:
    """Online resampling of base bars into `interval_s` bars (O(1) per bar)."""

    __slots__ = ("_base_ns", "_bucket", "_close", "_high", "_last_emit", "_last_ts", "_low", "_open",
                 "_stamp", "_starts", "_step_ns", "_volume", "base_interval_s", "interval_s")

    def __init__(self, interval_s: int, base_interval_s: int) -> None:
        _check_intervals(interval_s, base_interval_s)
        self.interval_s = interval_s
        self.base_interval_s = base_interval_s
        self._step_ns = interval_s * NS_PER_S
        self._base_ns = base_interval_s * NS_PER_S
        self._bucket: int | None = None
        self._last_ts: int | None = None
        self._open = self._high = self._low = self._close = self._volume = 0.0
        # Session-aware path only (`update_session`): the open bar's stamp and whether it
        # opens a trading session, and the last stamp emitted.
        self._stamp: int | None = None
        self._starts = False
        self._last_emit: int | None = None

    def update(self, ts_ns: int, open: float, high: float, low: float, close: float,
               volume: float) -> list[OhlcvBar]:
        """Feed one base bar; return the bars completed by it (usually none or one).

        A bar not after the previous one is rejected with BarDataError (state unchanged).
        """
        if self._last_ts is not None and ts_ns <= self._last_ts:
            raise BarDataError("ts_ns", None, f"{ts_ns} is not after the previous bar's {self._last_ts}")
        out: list[OhlcvBar] = []
        bucket = (ts_ns // self._step_ns) * self._step_ns
        if self._bucket is not None and bucket != self._bucket:
            out.append(self._emit())  # a gap: the previous bucket never got its last bar
        self._fold(bucket, ts_ns, open, high, low, close, volume)
        if ts_ns + self._base_ns >= bucket + self._step_ns:
            out.append(self._emit())
        return out

    def _fold(self, bucket: int, ts_ns: int, open: float, high: float, low: float, close: float,
              volume: float) -> None:
        """Open the bucket with this base bar, or fold the bar into the open one."""
        if self._bucket is None:
            self._bucket = bucket
            self._open, self._high, self._low, self._volume = open, high, low, volume
        else:
            self._high = max(self._high, high)
            self._low = min(self._low, low)
            self._volume += volume
        self._close = close
        self._last_ts = ts_ns

    def _emit(self) -> OhlcvBar:
        assert self._bucket is not None
        bar = OhlcvBar(self._bucket, self._open, self._high, self._low, self._close, self._volume)
        self._bucket = None
        return bar

    def update_session(self, ts_ns: int, open: float, high: float, low: float, close: float,
                       volume: float, session_start: bool) -> list[tuple[OhlcvBar, bool]]:
        """`update` for an instrument with trading sessions: a base bar with `session_start`
        first closes the open bucket (the last bar of the previous session is never joined to
        the first of the next), then opens a new one. Each bar comes with whether it opens a
        session. A bucket reopened in the same interval after a break is stamped with its
        first base bar's open time, so stamps keep increasing. `resample_session_bars` is the
        batch twin."""
        if self._last_ts is not None and ts_ns <= self._last_ts:
            raise BarDataError("ts_ns", None, f"{ts_ns} is not after the previous bar's {self._last_ts}")
        out: list[tuple[OhlcvBar, bool]] = []
        bucket = (ts_ns // self._step_ns) * self._step_ns
        if self._bucket is not None and (bucket != self._bucket or session_start):
            out.append(self._emit_session())
        if self._bucket is None:
            self._stamp = bucket if self._last_emit is None or bucket > self._last_emit else ts_ns
            self._starts = session_start
        self._fold(bucket, ts_ns, open, high, low, close, volume)
        if ts_ns + self._base_ns >= bucket + self._step_ns:
            out.append(self._emit_session())
        return out

    def _emit_session(self) -> tuple[OhlcvBar, bool]:
        assert self._bucket is not None
        stamp = self._bucket if self._stamp is None else self._stamp  # None: opened by `update`
        self._stamp = None
        bar = OhlcvBar(stamp, self._open, self._high, self._low, self._close, self._volume)
        self._bucket = None
        self._last_emit = stamp
        starts, self._starts = self._starts, False
        return bar, starts


def resample_bars(bars: BarArrays, interval_s: int, base_interval_s: int) -> BarArrays:
    """Batch resampling with the same buckets and emission rule as BarResampler.

    Quote columns, when present, take the last value of each bucket; the result's
    `interval_s` is `interval_s`.
    """
    _check_intervals(interval_s, base_interval_s)
    n = len(bars)
    if n == 0:
        return dataclasses.replace(bars, interval_s=interval_s)
    step = interval_s * NS_PER_S
    buckets = (bars.ts_open_ns // step) * step
    starts, ends, high, low = _emitted_groups(bars, buckets, np.r_[True, buckets[1:] != buckets[:-1]], step,
                                              base_interval_s)
    if starts.size == 0:
        return dataclasses.replace(bars.slice(0, 0), interval_s=interval_s)
    return _group_bars(bars, buckets[starts], starts, ends, high, low, interval_s)


def _emitted_groups(bars: BarArrays, buckets: np.ndarray, new_group: np.ndarray, step: int,
                    base_interval_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The groups of base bars (one opens where `new_group`) that are emitted: their [starts,
    ends) and highs and lows. A trailing bucket is emitted only once its last base bar has
    arrived."""
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(bars)]  # exclusive
    high = np.maximum.reduceat(bars.high, starts)
    low = np.minimum.reduceat(bars.low, starts)
    keep = starts.size
    if bars.ts_open_ns[-1] + base_interval_s * NS_PER_S < buckets[-1] + step:
        keep -= 1
    return starts[:keep], ends[:keep], high[:keep], low[:keep]


def _group_bars(bars: BarArrays, ts_open_ns: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                high: np.ndarray, low: np.ndarray, interval_s: int) -> BarArrays:
    """The bars of base-bar groups [starts, ends): stamped `ts_open_ns`, the first open, the
    given high/low, the last close and quote columns, the summed volume."""
    last = ends - 1
    kw: dict[str, np.ndarray | None] = {
        "ts_open_ns": ts_open_ns,
        "open": bars.open[starts],
        "high": high,
        "low": low,
        "close": bars.close[last],
        "volume": _sequential_segment_sums(bars.volume, starts, ends),
    }
    for f in QUOTE_FIELDS:
        col = getattr(bars, f)
        kw[f] = None if col is None else col[last]
    return BarArrays(**kw, interval_s=interval_s, path=bars.path)  # type: ignore[arg-type]


def resample_session_bars(bars: BarArrays, interval_s: int, base_interval_s: int,
                          session_starts: np.ndarray) -> tuple[BarArrays, np.ndarray, np.ndarray]:
    """Batch twin of `BarResampler.update_session`: buckets also break at base bars flagged in
    `session_starts`; returns the bars, which of them open a session, and when the online
    resampler emits each (the close time of the base bar whose update returns it: its own
    last one when the bucket completes, else the next group's first)."""
    _check_intervals(interval_s, base_interval_s)
    n = len(bars)
    starts_in = np.asarray(session_starts, dtype=bool)
    if starts_in.shape != (n,):
        raise BarDataError("session_starts", None, f"shape {starts_in.shape}: expected ({n},)")
    empty = np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    if n == 0:
        return dataclasses.replace(bars, interval_s=interval_s), *empty
    step = interval_s * NS_PER_S
    buckets = (bars.ts_open_ns // step) * step
    new_group = np.r_[True, (buckets[1:] != buckets[:-1]) | starts_in[1:]]
    starts, ends, high, low = _emitted_groups(bars, buckets, new_group, step, base_interval_s)
    keep = starts.size
    if keep == 0:
        return dataclasses.replace(bars.slice(0, 0), interval_s=interval_s), *empty
    base_ns = base_interval_s * NS_PER_S
    last_ts = bars.ts_open_ns[ends - 1]
    complete = last_ts + base_ns >= buckets[starts] + step
    emit_idx = np.where(complete, ends - 1, np.minimum(ends, n - 1))
    emitted_ns = bars.ts_open_ns[emit_idx] + base_ns
    stamps = buckets[starts].copy()
    for k in range(1, keep):  # a bucket reopened after a break: its first base bar's time
        if stamps[k] <= stamps[k - 1]:
            stamps[k] = bars.ts_open_ns[starts[k]]
    out = _group_bars(bars, stamps, starts, ends, high, low, interval_s)
    return out, starts_in[starts], emitted_ns.astype(np.int64)


def _sequential_segment_sums(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Left-to-right sums of each segment (the same order the online resampler adds in)."""
    width = int((ends - starts).max())
    out = values[starts].copy()
    for k in range(1, width):
        idx = starts + k
        ok = idx < ends
        out[ok] += values[idx[ok]]
    return out


@dataclass(frozen=True, slots=True)
class PricePoint:
    """A price and when it was observed (event time, ns)."""

    price: float
    ts_ns: int
    source: str  # "mark", "mid", "trade" or "bar"


class _Entry:
    __slots__ = ("ask", "bar_close", "bar_ts_ns", "bid", "mark", "mark_ts_ns", "quote_ts_ns",
                 "trade", "trade_ts_ns")

    def __init__(self) -> None:
        self.trade = self.bid = self.ask = self.mark = self.bar_close = 0.0
        self.trade_ts_ns = self.quote_ts_ns = self.mark_ts_ns = self.bar_ts_ns = -1


class PriceCache:
    """Last trade, quote, mark and bar close per instrument, each with its timestamp.

    `mark()` is what risk values positions at: the venue mark price if there is one,
    else the quote mid, else the last trade, else the last bar close. A bar's price is
    stamped at its close (open + interval), when it became known. Staleness is judged
    on the freshest of them (`last_update_ns`).
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[InstrumentId, _Entry] = {}

    def _entry(self, instrument_id: InstrumentId) -> _Entry:
        e = self._entries.get(instrument_id)
        if e is None:
            e = self._entries[instrument_id] = _Entry()
        return e

    # ------------------------------------------------------------ updates

    def update_trade(self, instrument_id: InstrumentId, price: float, ts_ns: int) -> None:
        """Record a trade price."""
        e = self._entry(instrument_id)
        if ts_ns >= e.trade_ts_ns:
            e.trade = price
            e.trade_ts_ns = ts_ns

    def update_quote(self, instrument_id: InstrumentId, bid: float, ask: float, ts_ns: int) -> None:
        """Record best bid/ask."""
        e = self._entry(instrument_id)
        if ts_ns >= e.quote_ts_ns:
            e.bid = bid
            e.ask = ask
            e.quote_ts_ns = ts_ns

    def update_mark(self, instrument_id: InstrumentId, price: float, ts_ns: int) -> None:
        """Record a venue mark price."""
        e = self._entry(instrument_id)
        if ts_ns >= e.mark_ts_ns:
            e.mark = price
            e.mark_ts_ns = ts_ns

    def update_bar(self, bar: Bar) -> None:
        """Record a closed bar's close, stamped at the bar's end."""
        e = self._entry(bar.instrument_id)
        ts_ns = bar.ts_event_ns + bar.interval_s * NS_PER_S
        if ts_ns >= e.bar_ts_ns:
            e.bar_close = bar.close
            e.bar_ts_ns = ts_ns

    def on_message(self, msg: Message) -> None:
        """Bus handler for TradeTick, QuoteTick, MarkPrice and Bar."""
        if isinstance(msg, TradeTick):
            self.update_trade(msg.instrument_id, msg.price, msg.ts_event_ns)
        elif isinstance(msg, QuoteTick):
            self.update_quote(msg.instrument_id, msg.bid, msg.ask, msg.ts_event_ns)
        elif isinstance(msg, Bar):
            self.update_bar(msg)
        elif isinstance(msg, MarkPrice):
            self.update_mark(msg.instrument_id, msg.price, msg.ts_event_ns)

    def attach(self, bus: Bus) -> None:
        """Subscribe to the market data types on the bus."""
        for cls in (TradeTick, QuoteTick, Bar, MarkPrice):
            bus.subscribe(cls, self.on_message, name="price_cache")

    # ------------------------------------------------------------ reads

    def last_trade(self, instrument_id: InstrumentId) -> PricePoint | None:
        """Last trade price, or None."""
        e = self._entries.get(instrument_id)
        if e is None or e.trade_ts_ns < 0:
            return None
        return PricePoint(e.trade, e.trade_ts_ns, "trade")

    def quote(self, instrument_id: InstrumentId) -> tuple[float, float, int] | None:
        """(bid, ask, ts_ns) of the last quote, or None."""
        e = self._entries.get(instrument_id)
        if e is None or e.quote_ts_ns < 0:
            return None
        return e.bid, e.ask, e.quote_ts_ns

    def mid(self, instrument_id: InstrumentId) -> PricePoint | None:
        """Mid of the last quote, or None."""
        e = self._entries.get(instrument_id)
        if e is None or e.quote_ts_ns < 0:
            return None
        return PricePoint((e.bid + e.ask) / 2.0, e.quote_ts_ns, "mid")

    def mark(self, instrument_id: InstrumentId) -> PricePoint | None:
        """Best valuation price: venue mark, else quote mid, else last trade, else bar close."""
        e = self._entries.get(instrument_id)
        if e is None:
            return None
        if e.mark_ts_ns >= 0:
            return PricePoint(e.mark, e.mark_ts_ns, "mark")
        if e.quote_ts_ns >= 0:
            return PricePoint((e.bid + e.ask) / 2.0, e.quote_ts_ns, "mid")
        if e.trade_ts_ns >= 0:
            return PricePoint(e.trade, e.trade_ts_ns, "trade")
        if e.bar_ts_ns >= 0:
            return PricePoint(e.bar_close, e.bar_ts_ns, "bar")
        return None

    def last_update_ns(self, instrument_id: InstrumentId) -> int | None:
        """Timestamp of the freshest price of any kind, or None."""
        e = self._entries.get(instrument_id)
        if e is None:
            return None
        ts = max(e.trade_ts_ns, e.quote_ts_ns, e.mark_ts_ns, e.bar_ts_ns)
        return ts if ts >= 0 else None

    def age_s(self, instrument_id: InstrumentId, now_ns: int) -> float | None:
        """Seconds since the freshest price, or None when nothing is known."""
        ts = self.last_update_ns(instrument_id)
        return None if ts is None else (now_ns - ts) / NS_PER_S

    def is_stale(self, instrument_id: InstrumentId, now_ns: int, max_age_s: float) -> bool:
        """True when nothing is known or the freshest price is older than `max_age_s`."""
        age = self.age_s(instrument_id, now_ns)
        return age is None or age > max_age_s

    def instruments(self) -> list[InstrumentId]:
        """Instruments with any price."""
        return list(self._entries)
