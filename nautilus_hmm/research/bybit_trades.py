"""Bybit public trade dumps (public.bybit.com) read and aggregated into klines. Pure, no I/O
beyond reading the one file.

Layout (the base URL is `--base-url`, default `https://public.bybit.com`)::

    {base}/trading/BTCUSDT/BTCUSDT2025-03-05.csv.gz    (derivatives: --category linear)
    {base}/spot/BTCUSDT/BTCUSDT_2025-03-05.csv.gz      (--category spot)

One gzip member holding a CSV with a header. Derivatives files:
`timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional`
(newer files add `RPI`), `timestamp` in epoch **seconds** with a fraction (`1741132800.1234`),
`side` `Buy`/`Sell` (the taker), `size` in base units; rows are often newest first. Spot
files: `id,timestamp,price,volume,side` (+ `rpi`), `timestamp` in epoch ms, side
`buy`/`sell`. Columns are found by header name, so either layout (and extra columns) reads.

Bybit publishes no checksum for these files: integrity is the gzip format's own CRC-32 and
length trailer, checked by decompressing the whole member (`read_trade_dump`; a truncated or
bit-flipped file fails there), plus every row parsing.

Aggregation (`trades_to_klines`): trades sorted by time (stable: same-millisecond trades
keep the file's order, read oldest first) are bucketed by `floor(ts_ms / interval) *
interval`; open/close are the first/last trade's price, high/low the extremes (written at the
file's price precision); volume = sum of size, quote volume = sum of price x size, count = trades, taker
buy volume / quote volume from the `Buy` trades. An interval without a trade has no bar: gaps
stay gaps (the quality report counts them). Output rows use the 12-column Binance kline
layout `research.download` writes (close time = open + interval - 1, `ignore` = 0).
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from dataclasses import dataclass
from datetime import date
from itertools import repeat
from pathlib import Path

import numpy as np

from nautilus_hmm.core.errors import DataError

PUBLIC_HOST = "https://public.bybit.com"
_SIZE_NAMES = ("size", "volume")
_US_THRESHOLD = 10**14
_MS_THRESHOLD = 10**11  # an integer timestamp at or above this is ms, below: seconds
_MIN_MS, _MAX_MS = 1_420_070_400_000, 4_102_444_800_000  # 2015-01-01 .. 2100-01-01: a trade's plausible time


def dump_rel(category: str, symbol: str, day: date) -> str:
    """Path of one day's trade dump under the public host."""
    if category == "spot":
        return f"spot/{symbol}/{symbol}_{day:%Y-%m-%d}.csv.gz"
    return f"trading/{symbol}/{symbol}{day:%Y-%m-%d}.csv.gz"


@dataclass(slots=True, eq=False)
class Trades:
    """One file's trades as columns, oldest first, with the decimals the file wrote."""

    ts_ms: np.ndarray  # int64
    price: np.ndarray  # float64
    size: np.ndarray  # float64
    buy: np.ndarray  # bool: the taker bought
    size_decimals: int
    price_decimals: int

    def __len__(self) -> int:
        return len(self.ts_ms)


def decompress(path: str | Path, name: str) -> bytes:
    """The whole gzip member, CRC and length checked; DataError naming `name` when damaged."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; truncation is EOFError
        raise DataError(name, None, f"damaged gzip ({type(exc).__name__}: {exc})") from None


def parse_trades(data: bytes, name: str) -> Trades:
    """Trades of a dump's CSV text; DataError naming `name`, the line and the value.

    Columns are parsed by numpy's C reader (a day of BTCUSDT is millions of rows); when it
    refuses, or a check fails, the slow row-by-row walk finds the first bad line to name it.
    Second timestamps are taken to the µs (Bybit writes 4 fractional digits), then floored to ms."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(name, None, f"not ASCII text (byte {exc.start})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(name, 1, "empty file: no header")
    header = [h.strip() for h in lines[0].split(",")]
    cols = {h.lower(): i for i, h in enumerate(header)}
    i_ts, i_px, i_side = cols.get("timestamp"), cols.get("price"), cols.get("side")
    i_sz = next((cols[n] for n in _SIZE_NAMES if n in cols), None)
    if i_ts is None or i_px is None or i_side is None or i_sz is None:
        raise DataError(name, 1, f"header {lines[0][:160]!r}: expected timestamp, price, side and size "
                                 "(or volume) columns")
    body = lines[1:]
    n = len(body)
    if n == 0:
        return Trades(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), 0, 0)
    try:
        if set(map(str.count, body, repeat(","))) != {len(header) - 1}:
            raise ValueError
        num = np.loadtxt(body, delimiter=",", usecols=(i_ts, i_px, i_sz), dtype=np.float64, ndmin=2,
                         comments=None)
        side = np.loadtxt(body, delimiter=",", usecols=(i_side,), dtype="U8", ndmin=1, comments=None)
        px, sz = np.ascontiguousarray(num[:, 1]), np.ascontiguousarray(num[:, 2])
        if not (np.isfinite(px).all() and np.isfinite(sz).all() and (px > 0).all() and (sz > 0).all()):
            raise ValueError
        side = np.char.strip(side)
        buy = (side == "Buy") | (side == "buy") | (side == "BUY")
        if not (buy | (side == "Sell") | (side == "sell") | (side == "SELL")).all():
            raise ValueError
        ts = _ms(num[:, 0])
        if bool((ts < _MIN_MS).any() or (ts > _MAX_MS).any()):  # also a sign or exponent gone astray
            raise ValueError
    except ValueError:
        _first_bad_row(lines, len(header), i_ts, i_px, i_sz, i_side, name)
        raise DataError(name, None, "cannot be read as trades") from None
    if ts[0] > ts[-1]:  # newest first, as Bybit writes many files: read oldest first
        ts, px, sz, buy = ts[::-1], px[::-1], sz[::-1], buy[::-1]
    if bool((np.diff(ts) < 0).any()):
        order = np.argsort(ts, kind="stable")
        ts, px, sz, buy = ts[order], px[order], sz[order], buy[order]
    return Trades(np.ascontiguousarray(ts), np.ascontiguousarray(px), np.ascontiguousarray(sz),
                  np.ascontiguousarray(buy), _decimals(sz), _decimals(px))


def _ms(t: np.ndarray) -> np.ndarray:
    """Epoch ms (floored) from epoch seconds with a fraction (below 1e11) or integer ms / µs.
    Seconds x 1e6 stays below 2^53, so rounding to whole µs is exact for up to 6 digits."""
    out = np.empty(len(t), dtype=np.int64)
    sec = t < _MS_THRESHOLD
    if sec.any():
        out[sec] = np.rint(t[sec] * 1e6).astype(np.int64) // 1000
    whole = ~sec
    if whole.any():
        w = t[whole]
        if bool((w != np.floor(w)).any()):
            raise ValueError("a ms/µs timestamp with a fraction")
        wi = w.astype(np.int64)
        out[whole] = np.where(wi >= _US_THRESHOLD, wi // 1000, wi)
    return out


def _decimals(x: np.ndarray, most: int = 12) -> int:
    """The fewest decimals (<= `most`) that write every value of `x` exactly as parsed."""
    u = np.unique(x)
    for d in range(most + 1):
        scaled = u * 10.0**d
        if bool((np.abs(scaled - np.rint(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))).all()):
            return d
    return most


def _first_bad_row(lines: list[str], n_cols: int, i_ts: int, i_px: int, i_sz: int, i_side: int, name: str) -> None:
    """Raise DataError for the first bad line (the slow walk after a column conversion refused)."""
    for k in range(1, len(lines)):
        line_no = k + 1
        row = lines[k].split(",")
        if len(row) != n_cols:
            what = "blank line" if not lines[k].strip() else f"{len(row)} columns"
            raise DataError(name, line_no, f"{what}, the header has {n_cols}: {lines[k][:120]!r}")
        _ts_ms(row[i_ts], name, line_no)
        _positive(row[i_px], "price", name, line_no)
        _positive(row[i_sz], "size", name, line_no)
        if row[i_side].strip() not in ("Buy", "buy", "BUY", "Sell", "sell", "SELL"):
            raise DataError(name, line_no, f"side = {row[i_side]!r}: expected Buy or Sell")


def concat(parts: list[Trades]) -> Trades:
    """Several files' trades as one, oldest first (a trade a file holds past its day lands in
    its own interval, not in a second copy of that interval)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return Trades(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), 0, 0)
    ts = np.concatenate([t.ts_ms for t in parts])
    order = np.argsort(ts, kind="stable")
    return Trades(ts[order], np.concatenate([t.price for t in parts])[order],
                  np.concatenate([t.size for t in parts])[order], np.concatenate([t.buy for t in parts])[order],
                  max(t.size_decimals for t in parts), max(t.price_decimals for t in parts))


def check_dump(path: str, name: str) -> str:
    """'' when the file is a whole gzip member (CRC and length checked) whose CSV header names
    the columns a trade dump needs; else the problem (a string: it crosses a process boundary)."""
    try:
        data = decompress(path, name)
        head = data[:4096].split(b"\n", 1)[0]
        parse_trades(head + b"\n", name)
    except DataError as exc:
        return str(exc)
    return ""


def read_trade_dump(path: str | Path, name: str) -> Trades:
    """Decompress (CRC-checked) and parse one dump; DataError naming `name` on any damage."""
    return parse_trades(decompress(path, name), name)


def _ts_ms(text: str, name: str, line_no: int) -> int:
    """Epoch ms (floored) from seconds with a fraction, or integer ms / µs."""
    sec, dot, frac = text.partition(".")
    if not sec.isdigit() or (dot and not frac.isdigit()):
        raise DataError(name, line_no, f"timestamp = {text!r}: not an epoch time")
    whole = int(sec)
    if dot and whole >= _MS_THRESHOLD:
        raise DataError(name, line_no, f"timestamp = {text!r}: ms or µs with a fraction")
    if dot or whole < _MS_THRESHOLD:  # seconds (with a fraction, as the derivatives dumps write)
        ms = whole * 1000 + int((frac + "000")[:3])
    else:
        ms = whole // 1000 if whole >= _US_THRESHOLD else whole
    if not _MIN_MS <= ms <= _MAX_MS:
        raise DataError(name, line_no, f"timestamp = {text!r}: not between 2015 and 2100")
    return ms


def _positive(text: str, what: str, name: str, line_no: int) -> float:
    try:
        v = float(text)
    except ValueError:
        raise DataError(name, line_no, f"{what} = {text!r}: not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise DataError(name, line_no, f"{what} = {text!r}: must be a positive number")
    return v


def _fmt(x: float, decimals: int) -> str:
    """A sum printed at the input's precision (no float noise, no trailing zeros)."""
    s = f"{x:.{min(decimals, 16)}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def trades_to_klines(tr: Trades, interval_ms: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(open ms, OHLCV float rows (n, 5), 12-column kline lines) of the intervals that had trades."""
    n = len(tr)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 5)), []
    bucket = tr.ts_ms // interval_ms * interval_ms
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [n])) - 1
    opens = bucket[starts]
    high = np.maximum.reduceat(tr.price, starts)
    low = np.minimum.reduceat(tr.price, starts)
    # the extremes as the venue wrote them: the first trade at the extreme in each interval
    hi_idx = _first_index_of(tr.price, high, starts, ends)
    lo_idx = _first_index_of(tr.price, low, starts, ends)
    notional = tr.price * tr.size
    vol = np.add.reduceat(tr.size, starts)
    qvol = np.add.reduceat(notional, starts)
    count = np.diff(np.concatenate((starts, [n])))
    bvol = np.add.reduceat(np.where(tr.buy, tr.size, 0.0), starts)
    bqvol = np.add.reduceat(np.where(tr.buy, notional, 0.0), starts)
    sd, pd = tr.size_decimals, tr.price_decimals
    qd = sd + pd
    px = tr.price.tolist()
    lines = [
        f"{o},{px[a]:.{pd}f},{px[h]:.{pd}f},{px[lo]:.{pd}f},{px[b]:.{pd}f},{_fmt(v, sd)},{o + interval_ms - 1},"
        f"{_fmt(q, qd)},{c},{_fmt(bv, sd)},{_fmt(bq, qd)},0"
        for o, a, h, lo, b, v, q, c, bv, bq in zip(
            opens.tolist(), starts.tolist(), hi_idx.tolist(), lo_idx.tolist(), ends.tolist(), vol.tolist(),
            qvol.tolist(), count.tolist(), bvol.tolist(), bqvol.tolist(), strict=True)
    ]
    ohlcv = np.column_stack((tr.price[starts], high, low, tr.price[ends], vol))
    return opens.astype(np.int64), ohlcv, lines


def _first_index_of(values: np.ndarray, per_group: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Index of the first element of each group [start, end] equal to that group's value."""
    group = np.repeat(np.arange(len(starts)), ends - starts + 1)
    hit = np.flatnonzero(values == per_group[group])
    first = np.unique(group[hit], return_index=True)[1]
    return hit[first]


def dump_csv(rows: list[tuple[int, str, str, str]], category: str, symbol: str, newest_first: bool = True) -> bytes:
    """A dump's CSV in Bybit's layout from (ts_ms, side 'Buy'|'Sell', size, price) rows (the
    loopback mirror and the benchmark build real-format files with it)."""
    out = io.StringIO()
    ordered = sorted(rows, key=lambda r: r[0])
    if newest_first:  # the exact reverse: same-millisecond trades read back in their order
        ordered.reverse()
    if category == "spot":
        out.write("id,timestamp,price,volume,side,rpi\n")
        for k, (ts, side, size, price) in enumerate(ordered, 1):
            out.write(f"{k},{ts},{price},{size},{side.lower()},0\n")
    else:
        out.write("timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
                  "foreignNotional\n")
        for k, (ts, side, size, price) in enumerate(ordered):
            q = float(price) * float(size)
            out.write(f"{ts // 1000}.{ts % 1000:03d}0,{symbol},{side},{size},{price},ZeroPlusTick,"
                      f"{k:08x}-0000-5000-8000-{ts:012x},{q * 1e8:.1f},{size},{q:.8g}\n")
    return out.getvalue().encode("ascii")
