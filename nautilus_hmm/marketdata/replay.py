"""Loaders for recorded market data files, into columnar numpy arrays.

Layouts are detected from the first line:

* `binance_klines`: Binance public-dump klines, 12 columns (`open_time, open, high, low,
  close, volume, close_time, quote_volume, count, taker_buy_base, taker_buy_quote,
  ignore`), headerless (or with the `open_time,...` header of the USD-M dumps). The open
  time is epoch ms or µs (data-vision spot files from 2025 on use µs), told by magnitude.
* `ohlcv`: a header `timestamp,open,high,low,close,volume`; the timestamp is ISO
  (`2025-03-01 03:00:00`; naive means UTC) or epoch s / ms / µs / ns (by magnitude).
* `binance_trades`: data-vision trades `id,price,qty,quote_qty,time,is_buyer_maker
  [,is_best_match]`, with or without header. A buyer-maker trade was sold into: the
  aggressor is SELL.
* `tardis_trades`: `exchange,symbol,timestamp,local_timestamp,id,side,price,amount`
  (µs; `side` is the taker side, `unknown` when the venue did not say).

Every problem raises `core.errors.DataError(path, line, problem)` with the 1-based line
of the first offending row: empty file, unknown layout, wrong column count, a blank or
truncated last line, non-numeric or NaN/inf values, inconsistent OHLC, negative volume,
timestamps not increasing (bars) or going backwards (trades), a bar off the interval grid.
Nothing is skipped silently.

The fast path converts whole columns with numpy; only when that fails is the column
walked row by row to name the offending line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import numpy as np

from nautilus_hmm.core.errors import DataError, NautilusError
from nautilus_hmm.domain.enums import Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Bar, TradeTick

NS_PER_S = 1_000_000_000

AGGRESSOR_BUY = 1
AGGRESSOR_SELL = -1
AGGRESSOR_UNKNOWN = 0

_OHLCV_TIME_NAMES = frozenset({"timestamp", "time", "datetime", "date", "open_time", "ts"})
_OHLCV_REST = ["open", "high", "low", "close", "volume"]
_TARDIS_HEADER = ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"]
_BINANCE_TRADES_HEADER = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker"]
_KLINES_NCOL = 12


class Layout(StrEnum):
    """Recognised file layouts."""

    BINANCE_KLINES = "binance_klines"
    OHLCV = "ohlcv"
    BINANCE_TRADES = "binance_trades"
    TARDIS_TRADES = "tardis_trades"

    @property
    def is_bars(self) -> bool:
        """True for bar (kline) layouts."""
        return self in (Layout.BINANCE_KLINES, Layout.OHLCV)


class BarDataError(NautilusError, ValueError):
    """Bar arrays are unusable: names the array, the index and the value."""

    def __init__(self, field: str, index: int | None, problem: str) -> None:
        self.field = field
        self.index = index
        self.problem = problem
        where = f"{field}[{index}]" if index is not None else field
        super().__init__(f"{where}: {problem}")


PRICE_FIELDS = ("open", "high", "low", "close")
QUOTE_FIELDS = ("bid", "ask", "bid_size", "ask_size")
_COLUMNS = ("ts_open_ns", *PRICE_FIELDS, "volume")


@dataclass(frozen=True, slots=True, eq=False)
class BarArrays:
    """OHLCV bars as columns: what the loaders return, the sim venue replays and the model trains on.

    `ts_open_ns[i]` is bar i's open; it is known at open + interval. `interval_s` is 0 when
    the columns do not say (bars assembled in memory for the model, whose interval is the
    model's base interval); `ts_close_ns` needs it. The quote columns (bid, ask, bid_size,
    ask_size at each bar's close) are optional and travel together. Construction makes every
    column a contiguous int64/float64 array and raises BarDataError on a shape mismatch.
    """

    ts_open_ns: np.ndarray  # int64
    open: np.ndarray  # float64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    interval_s: int = 0
    path: str = ""
    bid: np.ndarray | None = None
    ask: np.ndarray | None = None
    bid_size: np.ndarray | None = None
    ask_size: np.ndarray | None = None

    def __post_init__(self) -> None:
        ts = np.ascontiguousarray(self.ts_open_ns, dtype=np.int64)
        if ts.ndim != 1:
            raise BarDataError("ts_open_ns", None, f"expected a 1-D array, got shape {ts.shape}")
        object.__setattr__(self, "ts_open_ns", ts)
        n = ts.shape[0]
        for name in (*PRICE_FIELDS, "volume", *QUOTE_FIELDS):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.ascontiguousarray(value, dtype=np.float64)
            if arr.shape != (n,):
                raise BarDataError(name, None, f"shape {arr.shape} does not match ts_open_ns ({n},)")
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.ts_open_ns.shape[0])

    @property
    def interval_ns(self) -> int:
        """Bar length in ns."""
        return self.interval_s * NS_PER_S

    @property
    def ts_close_ns(self) -> np.ndarray:
        """When each bar became known: open + interval."""
        return self.ts_open_ns + self.interval_ns

    @property
    def has_quotes(self) -> bool:
        """True when all four quote columns are present."""
        return all(getattr(self, f) is not None for f in QUOTE_FIELDS)

    def slice(self, start: int, stop: int | None = None) -> BarArrays:
        """Rows [start, stop) as a new BarArrays (views, no copy)."""
        s = slice(start, stop)
        quotes = {f: (None if getattr(self, f) is None else getattr(self, f)[s]) for f in QUOTE_FIELDS}
        return BarArrays(
            self.ts_open_ns[s], self.open[s], self.high[s], self.low[s], self.close[s],
            self.volume[s], self.interval_s, self.path, **quotes,
        )

    def validate(self, name: str = "bars") -> None:
        """Raise BarDataError naming the first bad value (non-finite, non-positive price,
        high < low, negative volume, timestamps not strictly increasing)."""
        for f in PRICE_FIELDS:
            arr = getattr(self, f)
            bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0.0))
            if bad.size:
                i = int(bad[0])
                raise BarDataError(f"{name}.{f}", i, f"{float(arr[i])!r}: prices must be finite and > 0")
        bad = np.flatnonzero(~np.isfinite(self.volume) | (self.volume < 0.0))
        if bad.size:
            i = int(bad[0])
            raise BarDataError(f"{name}.volume", i, f"{float(self.volume[i])!r}: must be finite and >= 0")
        bad = np.flatnonzero(self.high < self.low)
        if bad.size:
            i = int(bad[0])
            raise BarDataError(f"{name}.high", i, f"{float(self.high[i])!r} is below low {float(self.low[i])!r}")
        if len(self) > 1:
            bad = np.flatnonzero(np.diff(self.ts_open_ns) <= 0)
            if bad.size:
                i = int(bad[0]) + 1
                raise BarDataError(
                    f"{name}.ts_open_ns", i,
                    f"{int(self.ts_open_ns[i])} is not after the previous bar's {int(self.ts_open_ns[i - 1])}",
                )

    def sha256(self) -> str:
        """Hex sha256 of ts_open_ns (int64 LE) then open, high, low, close, volume (float64 LE)."""
        h = hashlib.sha256()
        for f in _COLUMNS:
            col = getattr(self, f)
            h.update(col.astype("<i8" if f == "ts_open_ns" else "<f8", copy=False).tobytes())
        return h.hexdigest()


@dataclass(frozen=True, slots=True, eq=False)
class TradeArrays:
    """Trades as columns. `aggressor`: +1 buy, -1 sell, 0 unknown (taker side)."""

    ts_ns: np.ndarray  # int64
    price: np.ndarray  # float64
    size: np.ndarray  # float64
    aggressor: np.ndarray  # int8
    trade_id: np.ndarray  # str
    path: str = ""

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])


def aggressor_side(code: int) -> Side | None:
    """Side for an aggressor code (+1 BUY, -1 SELL, 0 None)."""
    if code > 0:
        return Side.BUY
    if code < 0:
        return Side.SELL
    return None


# ---------------------------------------------------------------- public loaders


def detect_layout(path: str | Path) -> Layout:
    """The layout of `path`, from its first line."""
    p = str(path)
    lines, _ = _read_lines(p)
    return _detect(p, lines[0])[0]


def load_bars(path: str | Path, interval_s: int | None = None) -> BarArrays:
    """Load a klines / OHLCV file. `interval_s` overrides the interval inferred from timestamps."""
    p = str(path)
    lines, ends_nl = _read_lines(p)
    layout, has_header = _detect(p, lines[0])
    if not layout.is_bars:
        raise DataError(p, 1, f"this is a trades file (layout {layout.value}), not bars; use load_trades")
    ncol = _KLINES_NCOL if layout is Layout.BINANCE_KLINES else 6
    t = _Table(p, lines, 2 if has_header else 1, ncol, ends_nl)
    if layout is Layout.BINANCE_KLINES:
        ts, scale = t.epoch_ns(0, "open_time")
        if interval_s is None and t.n == 1:
            close_ts = t.ints(6, "close_time")
            interval_s = _interval_from_close(p, int(ts[0]), int(close_ts[0]) * scale, t.first_line)
    elif _looks_numeric(t.cols[0][0]):
        ts, _ = t.epoch_ns(0, "timestamp")
    else:
        ts = t.iso_ns(0, "timestamp")
    o = t.floats(1, "open")
    h = t.floats(2, "high")
    lo = t.floats(3, "low")
    c = t.floats(4, "close")
    v = t.floats(5, "volume")
    _check_ohlc(t, o, h, lo, c, v)
    _check_increasing(t, ts, strict=True)
    ival = _check_interval(t, ts, interval_s)
    return BarArrays(ts, o, h, lo, c, v, ival, p)


def load_trades(path: str | Path) -> TradeArrays:
    """Load a Binance data-vision or Tardis trades file."""
    p = str(path)
    lines, ends_nl = _read_lines(p)
    layout, has_header = _detect(p, lines[0])
    if layout.is_bars:
        raise DataError(p, 1, f"this is a bars file (layout {layout.value}), not trades; use load_bars")
    first_line = 2 if has_header else 1
    if layout is Layout.BINANCE_TRADES:
        # 6 columns (USD-M) or 7 (spot, with is_best_match); decided by the first data row.
        first_row = lines[first_line - 1] if len(lines) >= first_line else ""
        ncol = 7 if first_row.count(",") == 6 else 6
        t = _Table(p, lines, first_line, ncol, ends_nl)
        ids = t.cols[0]
        ts, _ = t.epoch_ns(4, "time")
        aggressor = t.buyer_maker_to_aggressor(5)
        price = t.floats(1, "price")
        size = t.floats(2, "qty")
        px_j, size_j = 1, 2
    else:
        t = _Table(p, lines, first_line, len(_TARDIS_HEADER), ends_nl)
        ids = t.cols[4]
        ts, _ = t.epoch_ns(2, "timestamp")
        aggressor = t.side_to_aggressor(5)
        price = t.floats(6, "price")
        size = t.floats(7, "amount")
        px_j, size_j = 6, 7
    _check_positive(t, price, "price", px_j)
    _check_positive(t, size, "size", size_j)
    _check_increasing(t, ts, strict=False)
    return TradeArrays(ts, price, size, aggressor, np.asarray(ids, dtype=str), p)


def load_market_file(path: str | Path) -> BarArrays | TradeArrays:
    """Load bars or trades, whichever the file holds."""
    layout = detect_layout(path)
    return load_bars(path) if layout.is_bars else load_trades(path)


def iter_bars(bars: BarArrays, instrument_id: InstrumentId) -> Iterator[Bar]:
    """`messages.Bar` per row: `ts_event_ns` = open time, `ts_init_ns` = open + interval.

    A bar becomes known only when it closes, at open + interval; a consumer that acts on
    a bar must act at (or after) `ts_init_ns`, never at `ts_event_ns`.
    """
    ival = bars.interval_s
    ival_ns = ival * NS_PER_S
    for ts, o, h, lo, c, v in zip(
        bars.ts_open_ns.tolist(), bars.open.tolist(), bars.high.tolist(),
        bars.low.tolist(), bars.close.tolist(), bars.volume.tolist(), strict=True,
    ):
        yield Bar(
            ts_event_ns=ts, ts_init_ns=ts + ival_ns, instrument_id=instrument_id,
            interval_s=ival, open=o, high=h, low=lo, close=c, volume=v,
        )


def iter_trade_ticks(trades: TradeArrays, instrument_id: InstrumentId) -> Iterator[TradeTick]:
    """`messages.TradeTick` per row (`ts_init_ns` = `ts_event_ns`)."""
    sides = {1: Side.BUY, -1: Side.SELL, 0: None}
    for ts, px, sz, ag, tid in zip(
        trades.ts_ns.tolist(), trades.price.tolist(), trades.size.tolist(),
        trades.aggressor.tolist(), trades.trade_id.tolist(), strict=True,
    ):
        yield TradeTick(
            ts_event_ns=ts, ts_init_ns=ts, instrument_id=instrument_id,
            price=px, size=sz, aggressor=sides[ag], trade_id=tid,
        )


# ---------------------------------------------------------------- reading and layout


def _read_lines(path: str) -> tuple[list[str], bool]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        # Line 1 even for zero bytes: every data error names FILE:LINE (the first line is missing).
        raise DataError(path, 1, f"empty file ({len(data)} bytes, no rows)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(path, line, f"not UTF-8 text (byte {data[exc.start]:#04x})") from None
    ends_nl = text.endswith("\n")
    lines = text.split("\n")
    if ends_nl:
        lines.pop()
    if "\r" in text:
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    # Trailing blank lines are an editor habit, not data; interior blank lines are errors.
    while lines and not lines[-1].strip():
        lines.pop()
        ends_nl = True
    return lines, ends_nl


def _detect(path: str, first: str) -> tuple[Layout, bool]:
    """(layout, has_header) from the first line."""
    fields = [f.strip().strip('"').lower() for f in first.split(",")]
    if fields[0] in _OHLCV_TIME_NAMES and fields[1:] == _OHLCV_REST:
        return Layout.OHLCV, True
    if fields == _TARDIS_HEADER:
        return Layout.TARDIS_TRADES, True
    if fields[:6] == _BINANCE_TRADES_HEADER and len(fields) in (6, 7):
        return Layout.BINANCE_TRADES, True
    if fields[0] == "open_time" and len(fields) == _KLINES_NCOL:
        return Layout.BINANCE_KLINES, True
    if _looks_numeric(fields[0]):
        if len(fields) == _KLINES_NCOL:
            return Layout.BINANCE_KLINES, False
        if len(fields) in (6, 7) and fields[5] in ("true", "false"):
            return Layout.BINANCE_TRADES, False
    raise DataError(
        path, 1,
        f"unknown layout: first line {first[:120]!r}; expected Binance klines (12 columns, no header), "
        "'timestamp,open,high,low,close,volume', Binance trades "
        "(id,price,qty,quote_qty,time,is_buyer_maker) or Tardis trades "
        "(exchange,symbol,timestamp,local_timestamp,id,side,price,amount)",
    )


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True




class _Table:
    """Rows of one file split into columns, with line-aware converters.

    A value that fails to parse on the last row of a file without a final newline is
    reported as a truncated last line: the writer most likely died mid-row.
    """

    __slots__ = ("cols", "first_line", "n", "ncol", "path", "unterminated")

    def __init__(self, path: str, lines: list[str], first_line: int, ncol: int, ends_nl: bool) -> None:
        self.path = path
        self.first_line = first_line
        self.ncol = ncol
        self.unterminated = not ends_nl
        body = lines[first_line - 1:]
        if not body:
            raise DataError(path, first_line, "no data rows after the header")
        if '"' in body[0] or '"' in body[-1]:
            rows = list(csv.reader(io.StringIO("\n".join(body))))
        else:
            rows = [ln.split(",") for ln in body]
        self.n = len(rows)
        if len(set(map(len, rows))) != 1 or len(rows[0]) != ncol:
            for i, row in enumerate(rows):
                if len(row) != ncol:
                    if len(row) == 1 and not row[0].strip():
                        raise self.error(i, f"blank line; expected {ncol} columns")
                    raise self.error(i, f"wrong column count: {len(row)}, expected {ncol}")
        self.cols = [list(c) for c in zip(*rows, strict=True)]

    def error(self, i: int, problem: str) -> DataError:
        """DataError for data row i (0-based)."""
        if self.unterminated and i == self.n - 1:
            problem = f"truncated last line (no newline at end of file): {problem}"
        return DataError(self.path, self.first_line + i, problem)

    def floats(self, j: int, name: str) -> np.ndarray:
        """Column j as finite float64."""
        col = self.cols[j]
        try:
            arr = np.array(col, dtype=np.float64)
        except ValueError:
            for i, text in enumerate(col):
                try:
                    float(text)
                except ValueError:
                    raise self.error(i, f"{name} {text!r} is not a number") from None
            # Every value parses one by one but not as a column: still a data error, never a traceback.
            raise DataError(self.path, self.first_line, f"{name} column does not convert to numbers") from None
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            raise self.error(i, f"{name} {col[i]!r} is not finite (NaN/inf)")
        return arr

    def ints(self, j: int, name: str) -> np.ndarray:
        """Column j as non-negative int64."""
        col = self.cols[j]
        try:
            arr = np.array(col, dtype=np.int64)
        except (ValueError, OverflowError):
            for i, text in enumerate(col):
                try:
                    value = int(text)
                except ValueError:
                    raise self.error(i, f"{name} {text!r} is not an integer") from None
                if not _INT64_MIN <= value <= _INT64_MAX:
                    raise self.error(i, f"{name} {text!r} is out of range (beyond a 64-bit integer)") from None
            # Every value parses one by one but not as a column: still a data error, never a traceback.
            raise DataError(self.path, self.first_line, f"{name} column does not convert to integers") from None
        bad = np.flatnonzero(arr < 0)
        if bad.size:
            i = int(bad[0])
            raise self.error(i, f"{name} {col[i]!r} is negative")
        return arr

    def epoch_ns(self, j: int, name: str) -> tuple[np.ndarray, int]:
        """Column j of epoch s/ms/µs/ns integers as ns; the unit comes from the first value."""
        raw = self.ints(j, name)
        scale = _epoch_scale(int(raw[0]))
        limit = np.iinfo(np.int64).max // scale
        bad = np.flatnonzero(raw > limit)
        if bad.size:
            i = int(bad[0])
            raise self.error(i, f"{name} {self.cols[j][i]!r} is out of range for the file's unit")
        return raw * scale, scale

    def iso_ns(self, j: int, name: str) -> np.ndarray:
        """Column j of ISO-8601 datetimes as epoch ns; naive means UTC."""
        col = self.cols[j]
        first = col[0]
        if not _has_tz(first):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    # datetime64[ns] wraps silently past 2262; the same column in whole
                    # seconds (range ±2.9e11 years) is what the range check reads.
                    secs = np.array(col, dtype="datetime64[s]").astype(np.int64)
                    arr = np.array(col, dtype="datetime64[ns]")
                if not np.isnat(arr).any():
                    i_bad = _first_bad((secs < 0) | (secs >= _MAX_EPOCH_S))
                    if i_bad is not None:
                        raise self.error(i_bad, _iso_range_problem(name, col[i_bad], int(secs[i_bad]) < 0))
                    return arr.astype(np.int64)
            except (ValueError, UserWarning, DeprecationWarning):
                pass
        out = np.empty(len(col), dtype=np.int64)
        for i, text in enumerate(col):
            try:
                dt = datetime.fromisoformat(text.strip())
            except ValueError:
                raise self.error(i, f"{name} {text!r} is not an ISO-8601 datetime") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            delta = dt - _EPOCH
            value_ns = (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000
            if not 0 <= value_ns < _MAX_EPOCH_S * NS_PER_S:
                raise self.error(i, _iso_range_problem(name, text, value_ns < 0))
            out[i] = value_ns
        return out

    def buyer_maker_to_aggressor(self, j: int) -> np.ndarray:
        """is_buyer_maker true → SELL aggressor, false → BUY."""
        col = self.cols[j]
        low = np.char.lower(np.char.strip(np.asarray(col, dtype=str)))
        is_true = low == "true"
        bad = np.flatnonzero(~(is_true | (low == "false")))
        if bad.size:
            i = int(bad[0])
            raise self.error(i, f"is_buyer_maker {col[i]!r} is not true/false")
        return np.where(is_true, AGGRESSOR_SELL, AGGRESSOR_BUY).astype(np.int8)

    def side_to_aggressor(self, j: int) -> np.ndarray:
        """Tardis taker side buy/sell/unknown → +1/-1/0."""
        col = self.cols[j]
        low = np.char.lower(np.char.strip(np.asarray(col, dtype=str)))
        buy = low == "buy"
        sell = low == "sell"
        bad = np.flatnonzero(~(buy | sell | (low == "unknown") | (low == "")))
        if bad.size:
            i = int(bad[0])
            raise self.error(i, f"side {col[i]!r} is not buy/sell/unknown")
        out = np.zeros(len(col), dtype=np.int8)
        out[buy] = AGGRESSOR_BUY
        out[sell] = AGGRESSOR_SELL
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MIN = int(np.iinfo(np.int64).min)
_INT64_MAX = int(np.iinfo(np.int64).max)
# Epoch ns in int64 end at 2262-04-11T23:47:16.854775807Z; ISO times are accepted up to
# the last whole second before it.
_MAX_EPOCH_S = _INT64_MAX // NS_PER_S


def _iso_range_problem(name: str, text: str, before_epoch: bool) -> str:
    """The problem text for an ISO time outside [1970-01-01, 2262-04-11T23:47:16Z)."""
    if before_epoch:
        return f"{name} {text!r} is before 1970-01-01 (epoch timestamps must not be negative)"
    return f"{name} {text!r} is after 2262-04-11T23:47:16Z (beyond epoch nanoseconds in 64 bits)"


def _has_tz(text: str) -> bool:
    t = text.strip()
    if t.endswith(("Z", "z")):
        return True
    tail = t[10:]  # past the date part
    return "+" in tail or "-" in tail


def _epoch_scale(first: int) -> int:
    """ns per unit, told by magnitude: s < 1e11 <= ms < 1e14 <= µs < 1e17 <= ns."""
    if first < 100_000_000_000:
        return NS_PER_S
    if first < 100_000_000_000_000:
        return 1_000_000
    if first < 100_000_000_000_000_000:
        return 1_000
    return 1


def _interval_from_close(path: str, open_ns: int, close_ns: int, line: int) -> int:
    """Kline interval from one row's close time (close = open + interval - 1 unit)."""
    span_ns = close_ns - open_ns
    ival_s = round(span_ns / NS_PER_S)
    if ival_s < 1 or abs(span_ns - ival_s * NS_PER_S) > NS_PER_S // 100:
        raise DataError(path, line, f"close_time does not give a whole-second interval (span {span_ns} ns)")
    return ival_s


def _first_bad(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _check_ohlc(
    t: _Table, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
) -> None:
    """Prices positive, open/close within [low, high], volume >= 0 (columns 1-5 of both layouts)."""

    def row(i: int) -> str:
        return (f"open={t.cols[1][i]} high={t.cols[2][i]} low={t.cols[3][i]} "
                f"close={t.cols[4][i]}")

    i = _first_bad((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0))
    if i is not None:
        raise t.error(i, f"non-positive price ({row(i)})")
    i = _first_bad(h < lo)
    if i is not None:
        raise t.error(i, f"high {t.cols[2][i]} < low {t.cols[3][i]}")
    i = _first_bad((h < o) | (h < c) | (lo > o) | (lo > c))
    if i is not None:
        raise t.error(i, f"OHLC inconsistent: {row(i)} (open and close must lie within [low, high])")
    i = _first_bad(v < 0)
    if i is not None:
        raise t.error(i, f"negative volume {t.cols[5][i]}")


def _check_positive(t: _Table, arr: np.ndarray, name: str, j: int) -> None:
    i = _first_bad(arr <= 0)
    if i is not None:
        raise t.error(i, f"{name} {t.cols[j][i]} is not positive")


def _check_increasing(t: _Table, ts: np.ndarray, strict: bool) -> None:
    """Bars: strictly increasing; trades: never backwards (equal timestamps are normal)."""
    if ts.shape[0] < 2:
        return
    d = np.diff(ts)
    i = _first_bad(d <= 0 if strict else d < 0)
    if i is not None:
        what = "not after" if strict else "before"
        raise t.error(
            i + 1, f"timestamps not increasing: {_fmt_ns(int(ts[i + 1]))} is {what} "
            f"{_fmt_ns(int(ts[i]))} on line {t.first_line + i}",
        )


def _check_interval(t: _Table, ts: np.ndarray, interval_s: int | None) -> int:
    """Infer the bar interval (the most common step) and check every step is a multiple.

    Gaps (missing bars) are allowed; a bar off the grid is an error.
    """
    if interval_s is None:
        if ts.shape[0] < 2:
            raise DataError(
                t.path, t.first_line, "cannot infer the bar interval from a single row; pass interval_s"
            )
        d = np.diff(ts)
        values, counts = np.unique(d, return_counts=True)
        step_ns = int(values[int(np.argmax(counts))])
        if step_ns % NS_PER_S:
            raise DataError(
                t.path, t.first_line, f"bar interval {step_ns / NS_PER_S} s is not a whole number of seconds"
            )
        interval_s = step_ns // NS_PER_S
    elif interval_s < 1:
        raise ValueError(f"interval_s must be >= 1, got {interval_s}")
    step_ns = interval_s * NS_PER_S
    if ts.shape[0] >= 2:
        i = _first_bad(np.diff(ts) % step_ns != 0)
        if i is not None:
            raise t.error(
                i + 1, f"bar at {_fmt_ns(int(ts[i + 1]))} is off the {interval_s} s grid "
                f"(previous bar {_fmt_ns(int(ts[i]))})",
            )
    return interval_s


def _fmt_ns(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
