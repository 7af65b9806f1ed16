"""Readers of recorded tick data: the Binance websocket captures (hftbacktest's collector
format: one `<local receive ns> <combined-stream JSON>` per line, gzip), and the marks a
slippage fit needs (mid and spread over time); Binance depth CSVs (snapshot + `set` rows).

Event tuples (plain tuples: a capture holds tens of thousands of events, replayed in a loop):

* `(ts_ns, TRADE, price, qty, buyer_is_maker)` — `buyer_is_maker` True: a seller hit the bid.
* `(ts_ns, QUOTE, bid, bid_qty, ask, ask_qty)` — best bid/offer (`@bookTicker`).
* `(ts_ns, DEPTH, bids, asks)` — level updates `[(price, qty), ...]`, qty 0 removes a level.
* `(ts_ns, SNAPSHOT, bids, asks)` — a REST depth snapshot: replaces the book.

`ts_ns` is the collector's local receive time (the capture's first column): the time a
strategy on that machine would have seen the event. A line that does not parse raises
`CaptureError` naming the file, the line and the value; a truncated gzip too.
"""

from __future__ import annotations

import gzip
import itertools
import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

TRADE, QUOTE, DEPTH, SNAPSHOT = 0, 1, 2, 3
_GZ_PIECE = 1 << 16  # bytes fed per step when locating the damage in a gzip

Event = tuple[Any, ...]


class CaptureError(ValueError):
    """A capture file cannot be read: `path`, `line` (1-based, 0 for the file) and what is wrong."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")


def _levels(raw: Any) -> list[tuple[float, float]]:
    out = [(float(p), float(q)) for p, q in raw]
    if not math.isfinite(sum(p + q for p, q in out)):  # NaN and inf survive a sum
        raise ValueError("non-finite price or size")
    return out


def _parse(line: bytes) -> Event | None:
    sp = line.index(b" ")
    ts_ns = int(line[:sp])
    msg = orjson.loads(line[sp + 1:])
    data = msg.get("data")
    if data is None:
        if "lastUpdateId" in msg:
            return (ts_ns, SNAPSHOT, _levels(msg["bids"]), _levels(msg["asks"]))
        return None
    stream = msg.get("stream", "")
    if stream.endswith("@trade"):
        p, q = float(data["p"]), float(data["q"])
        if not math.isfinite(p + q):
            raise ValueError("non-finite price or size")
        return (ts_ns, TRADE, p, q, bool(data["m"]))
    if stream.endswith("@bookTicker"):
        b, bq, a, aq = float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"])
        if not math.isfinite(b + bq + a + aq):
            raise ValueError("non-finite price or size")
        return (ts_ns, QUOTE, b, bq, a, aq)
    if "@depth" in stream:
        return (ts_ns, DEPTH, _levels(data["b"]), _levels(data["a"]))
    return None  # a stream this replay has no use for (e.g. aggTrade): skipped


def _read(p: Path) -> bytes:
    try:
        raw = p.read_bytes()
    except FileNotFoundError as exc:
        raise CaptureError(p, 0, "no such file") from exc
    except OSError as exc:
        raise CaptureError(p, 0, f"cannot be read ({exc.strerror or exc})") from exc
    if p.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # Name how far it got: the lines before the damage are readable. Fed in pieces, so
        # what decoded before a broken deflate block is kept.
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        parts: list[bytes] = []
        why = str(exc)
        for i in range(0, len(raw), _GZ_PIECE):
            try:
                parts.append(d.decompress(raw[i:i + _GZ_PIECE]))
            except zlib.error as piece_exc:
                why = f"{why}; {piece_exc}"
                break
        if "CRC" in why or "incorrect data check" in why:
            # Every block decoded but the checksum disagrees: a changed byte, somewhere.
            raise CaptureError(p, 0, f"damaged gzip: its CRC32 does not match the content ({exc}); "
                                     "the damaged line cannot be located") from exc
        n = b"".join(parts).count(b"\n")
        raise CaptureError(p, n + 1, f"damaged or truncated gzip after {n} complete lines ({exc})") from exc


def iter_capture(path: str | Path, raw: bytes | None = None) -> Iterator[Event]:
    """The events of one capture file in file order (see the module doc); `raw`: its bytes, already read."""
    p = Path(path)
    for n, line in enumerate((_read(p) if raw is None else raw).split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            ev = _parse(line)
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # orjson.JSONDecodeError is a ValueError
            raise CaptureError(p, n, f"not a capture line ({type(exc).__name__}: {exc}): "
                                     f"{line[:120].decode('utf-8', 'replace')!r}") from exc
        if ev is not None:
            yield ev


DEPTH_CSV_COLUMNS = ("symbol", "timestamp", "first_update_id", "last_update_id", "side", "update_type",
                     "price", "qty", "pu")


def iter_depth_csv(path: str | Path, raw: bytes | None = None) -> Iterator[Event]:
    """Book events of a Binance depth CSV (`symbol,timestamp,first_update_id,last_update_id,
    side,update_type,price,qty,pu`; `timestamp` in ms; `update_type` `snap` or `set`): the
    rows of one update (same timestamp, update id and type) become one SNAPSHOT or DEPTH event."""
    p = Path(path)
    lines = (_read(p) if raw is None else raw).decode("utf-8", "replace").splitlines()
    if not lines or tuple(c.strip() for c in lines[0].split(",")) != DEPTH_CSV_COLUMNS:
        raise CaptureError(p, 1, f"header is not {','.join(DEPTH_CSV_COLUMNS)}: {lines[0][:120] if lines else ''!r}")
    key: tuple[int, str, str] | None = None
    bids: list[tuple[float, float]] = []
    asks: list[tuple[float, float]] = []

    def event() -> Event:
        assert key is not None
        return (key[0], SNAPSHOT if key[2] == "snap" else DEPTH, bids, asks)

    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split(",")
        try:
            if len(cells) != len(DEPTH_CSV_COLUMNS):
                raise ValueError(f"{len(cells)} cells, expected {len(DEPTH_CSV_COLUMNS)}")
            ts_ns = int(cells[1]) * 1_000_000
            side, kind = cells[4], cells[5]
            if side not in ("b", "a") or kind not in ("snap", "set"):
                raise ValueError(f"side {side!r} / update_type {kind!r}: expected b|a and snap|set")
            price, qty = float(cells[6]), float(cells[7])
            if not (math.isfinite(price + qty) and price > 0 and qty >= 0):
                raise ValueError(f"price {cells[6]!r} / qty {cells[7]!r}")
        except ValueError as exc:
            raise CaptureError(p, n, f"bad depth row ({exc}): {line[:120]!r}") from exc
        k = (ts_ns, cells[3], kind)
        if k != key:
            if key is not None:
                yield event()
            key, bids, asks = k, [], []
        (bids if side == "b" else asks).append((price, qty))
    if key is not None:
        yield event()


def capture_symbol(path: str | Path) -> str:
    """The symbol a capture or depth CSV is about (upper case): the stream name of its first
    stream line (`btcusdt@trade` -> BTCUSDT), or a depth CSV's `symbol` column. CaptureError
    naming the file when it has none, or when it mixes symbols (a combined capture of several
    symbols is not one instrument's market)."""
    p = Path(path)
    return _symbol_of(p, _read(p))


def _is_csv(p: Path) -> bool:
    return str(p).endswith((".csv", ".csv.gz"))


def _symbol_of(p: Path, raw: bytes) -> str:
    found: str | None = None
    if _is_csv(p):
        for n, row in enumerate(raw.decode("utf-8", "replace").splitlines()[1:], 2):
            cell = row.split(",", 1)[0].strip().upper()
            if not cell:
                continue
            if found is None:
                found = cell
            elif cell != found:
                raise CaptureError(p, n, f"symbol {cell!r} after {found!r}: one file, one symbol")
    else:
        for n, line in enumerate(raw.split(b"\n"), 1):
            i = line.find(b'"stream":"')
            if i < 0:
                continue
            j = line.find(b"@", i + 10)
            if j < 0:
                raise CaptureError(p, n, f"stream name without '@': {line[:120].decode('utf-8', 'replace')!r}")
            sym = line[i + 10:j].decode("utf-8", "replace").upper()
            if found is None:
                found = sym
            elif sym != found:
                raise CaptureError(p, n, f"stream of {sym} after {found}: one file, one symbol")
    if not found:
        raise CaptureError(p, 0, "no stream line (no symbol): not a websocket capture or depth CSV")
    return found


def load_events(*paths: str | Path) -> list[Event]:
    """Events of several files (captures `.gz`/`.jsonl`, depth CSVs `.csv`) merged by time
    (stable: a snapshot file given first stays ahead of updates at the same instant)."""
    events: list[Event] = []
    for path in paths:
        it = iter_depth_csv(path) if str(path).endswith((".csv", ".csv.gz")) else iter_capture(path)
        events.extend(it)
    events.sort(key=lambda e: e[0])
    return events


def load_by_symbol(*paths: str | Path) -> dict[str, list[Event]]:
    """Events of several files grouped by the symbol each is about (`capture_symbol`), each
    group merged by time as `load_events` does; every file is read once. Files of one symbol
    that overlap in time (two captures of the same market, or of spot and futures) are refused
    naming both: one instrument replays one market."""
    groups: dict[str, list[tuple[Path, list[Event]]]] = {}
    for path in paths:
        p = Path(path)
        raw = _read(p)
        sym = _symbol_of(p, raw)
        evs = list(iter_depth_csv(p, raw) if _is_csv(p) else iter_capture(p, raw))
        groups.setdefault(sym, []).append((p, evs))
    out: dict[str, list[Event]] = {}
    for sym, files in groups.items():
        spans = sorted(((evs[0][0], evs[-1][0], p) for p, evs in files if evs and not _is_csv(p)),
                       key=lambda x: x[0])
        for (_, end0, p0), (start1, _, p1) in itertools.pairwise(spans):
            if start1 <= end0:
                raise CaptureError(p1, 0, f"overlaps {p0} in time (both {sym}): one instrument replays "
                                          "one market; give one of them")
        merged = [e for _, evs in files for e in evs]
        merged.sort(key=lambda e: e[0])
        out[sym] = merged
    return out


def load_capture(path: str | Path) -> list[Event]:
    """All events of a capture, sorted by receive time (stable: file order within a tie)."""
    return load_events(path)
