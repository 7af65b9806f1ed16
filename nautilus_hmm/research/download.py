"""Verified kline history: Binance public data dumps (+ REST tail) and Bybit REST klines.

`nautilus-hmm data download --venue binance_spot|binance_usdm|bybit --symbols BTCUSDT ...
--interval 1m --from 2025-01-01 --to 2025-03-31 --out DIR` writes one file per symbol and
calendar month, `DIR/<venue>/<SYMBOL>/<interval>/<SYMBOL>-<interval>-<YYYY-MM>.csv`, in the
12-column Binance kline layout with the USD-M dumps' header (`open_time,open,...,ignore`;
open and close times in epoch **ms**; prices and volumes exactly as the venue wrote them),
which `marketdata.replay.load_bars` (backtest, train, evaluate) reads. Beside each file,
`<stem>.quality.json` (`research.quality`); the run prints one summary line per file.

Binance (data.binance.vision layout, `--base-url` for a mirror)::

    {base}/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2025-03.zip   (+ .zip.CHECKSUM)
    {base}/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-04-01.zip
    {base}/data/futures/um/monthly/klines/...                          (binance_usdm)

Rules:

* A calendar month wholly inside `[--from, --to]` comes from its monthly zip; the ragged
  edges (and a month whose monthly zip is not published) from daily zips.
* Each zip is checked against its published `.CHECKSUM` (`sha256sum` format: hex digest,
  two spaces, file name). A mismatch (or a transport error) is retried once; the second
  failure fails the file **naming its URL**, both digests and the tries, and that month is
  not written. The zip is streamed into a temporary file beside its destination and
  renamed only once verified: a file whose checksum fails never appears under `--out`.
* Verified zips are kept under `DIR/_dumps/` (the data.binance.vision paths) and listed in
  `DIR/manifest.json` with their SHA-256; a later run re-hashes them and skips the
  download (resumable). A month file built only from verified dumps over the same range
  is final: a later run skips that month without touching the network.
* Open/close times in µs (spot dumps from 2025-01-01 on) or ms are normalized to ms.
* Days not in any published dump (the tail after the last daily dump, or a missing
  month) are filled from REST klines (`--rest-url`, default the venue's API; `--no-rest`
  turns it off, and such days are then reported as missing: exit status 3). REST rows are
  checked with the adapter's parser (`venues.binance.parse.parse_rest_klines`); only
  closed bars are kept. A month with REST rows is rebuilt on the next run (a dump
  published since then replaces them).

Bybit: `GET /v5/market/kline` (category `--category`, default spot), which lists the
newest bars first; pages are walked backwards (`end` = the oldest start seen - 1) with the
adapter's parser (`venues.bybit.parse.parse_klines`). Bybit rows have no close time, trade
count or taker volumes: close time = open + interval - 1, turnover goes to `quote_volume`,
the other columns are empty. A Bybit month that had ended when it was fetched is final.

Bybit trade dumps (`--source trades`, where no kline history is wanted or available, or
behind a mirror; `--source auto`: REST klines, and the trade dumps for the days REST has no
bar for, e.g. before the venue's kline history): one gzip CSV per day from `--base-url` (default `https://public.bybit.com`;
`trading/SYMBOL/SYMBOLYYYY-MM-DD.csv.gz`, spot: `spot/SYMBOL/SYMBOL_YYYY-MM-DD.csv.gz`),
aggregated into bars of `--interval` (`research.bybit_trades`: OHLC from the trades, volume,
quote volume, trade count, taker-buy volumes; an interval without a trade has no bar, gaps
stay gaps). Bybit publishes no checksum: a dump is streamed into a temporary file and kept
(`DIR/_dumps/bybit/...`, in the manifest with its SHA-256) only when its gzip CRC-32 and length
trailer check out and its header names the needed columns; a damaged file is retried once,
then fails naming its URL, and that month is not written. Days without a dump (404, today) are
filled from REST klines unless `--no-rest` (then: missing, exit 3).

Bad input never gives a traceback: a damaged zip, a row with a wrong column count or a
non-numeric field is a `DataError` naming `zip!member:line` and the value.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from nautilus_hmm.core.errors import (
    DataError,
    NautilusError,
    RateLimited,
    RetryableError,
    VenueError,
)
from nautilus_hmm.obs.progress import ProgressFactory, no_progress
from nautilus_hmm.research import bybit_trades
from nautilus_hmm.research.bybit_trades import PUBLIC_HOST as BYBIT_PUBLIC_HOST
from nautilus_hmm.research.quality import QualityReport, assess

MS_PER_DAY = 86_400_000
US_THRESHOLD = 10**14  # open times at or above this are µs (ms stays below until year 5138)
HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
          "taker_buy_quote_volume,ignore")
KLINE_COLUMNS = 12
CHUNK_BYTES = 1 << 16
MANIFEST_NAME = "manifest.json"
DUMPS_DIR = "_dumps"
MANIFEST_VERSION = 1

DATA_HOST = "https://data.binance.vision"
VENUES = ("binance_spot", "binance_usdm", "bybit")
DEFAULT_REST_URL = {
    "binance_spot": "https://api.binance.com",
    "binance_usdm": "https://fapi.binance.com",
    "bybit": "https://api.bybit.com",
}
DUMP_ROOT = {"binance_spot": "data/spot", "binance_usdm": "data/futures/um"}
# data.binance.vision interval names (1mo has no fixed length: not supported here)
INTERVAL_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000,
}
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
# a line whose open_time (column 1) and close_time (column 7) are plain digits
_DIGIT_TIMES = re.compile(r"^[0-9]+,(?:[^,\n]*,){5}[0-9]+,", re.M)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INCOMPLETE = 3


class DownloadError(NautilusError):
    """A file could not be fetched or verified: names the URL and what went wrong."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"{url}: {problem}")


class ChecksumMismatch(DownloadError):
    """A zip's SHA-256 differs from its published `.CHECKSUM` (after the retry)."""


class UnverifiableDump(DownloadError):
    """A zip has no usable `.CHECKSUM` (absent, unreadable, naming another file): never used."""


class NotPublished(NautilusError):
    """The mirror answered 404: the file does not exist (yet)."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"{url}: not published (HTTP 404)")


# ------------------------------------------------------------------ the request


@dataclass(slots=True)
class DownloadRequest:
    """One `data download` run (what the CLI parses into)."""

    venue: str
    symbols: list[str]
    interval: str
    start: date  # first day, UTC
    end: date  # last day, UTC, inclusive
    out: Path
    base_url: str = ""  # "": the venue's dumps host (data.binance.vision, public.bybit.com)
    rest_url: str | None = None  # None: the venue's default; "" : no REST
    fmt: str = "csv"
    category: str = "spot"  # bybit only
    source: str = "rest"  # bybit only: rest (kline history) | trades (daily trade dumps aggregated) | auto
    jobs: int = 4
    now_ms: int | None = None  # None: the wall clock (tests inject it)
    workers: int | None = None  # processes that parse and write months; None: min(jobs, CPUs); 0: a thread
    request_timeout_s: float = 60.0  # connect, and silence between two reads

    def __post_init__(self) -> None:
        if self.venue not in VENUES:
            raise ValueError(f"--venue {self.venue!r}: expected one of {', '.join(VENUES)}")
        if self.interval not in INTERVAL_MS:
            raise ValueError(f"--interval {self.interval!r}: expected one of {', '.join(INTERVAL_MS)}")
        if self.venue == "bybit" and self.interval == "1s":
            raise ValueError("--interval '1s': Bybit has no 1 s klines")
        if not self.symbols:
            raise ValueError("--symbols: name at least one symbol")
        self.symbols = [s.strip().upper() for s in self.symbols]
        for s in self.symbols:
            if not _SYMBOL_RE.match(s):
                raise ValueError(f"--symbols {s!r}: expected letters and digits, e.g. BTCUSDT")
        if self.end < self.start:
            raise ValueError(f"--to {self.end.isoformat()} is before --from {self.start.isoformat()}")
        if self.fmt not in ("csv", "parquet"):
            raise ValueError(f"--format {self.fmt!r}: expected csv or parquet")
        if self.category not in ("spot", "linear"):
            raise ValueError(f"--category {self.category!r}: expected spot or linear")
        if self.source not in ("rest", "trades", "auto"):
            raise ValueError(f"--source {self.source!r}: expected rest, trades or auto")
        if self.source != "rest" and self.venue != "bybit":
            raise ValueError(f"--source {self.source}: only for --venue bybit (Binance history comes from its "
                             "kline dumps)")
        if self.jobs < 1:
            raise ValueError(f"--jobs {self.jobs}: must be >= 1")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"--workers {self.workers}: must be >= 0")
        if self.rest_url is None:
            self.rest_url = DEFAULT_REST_URL[self.venue]
        if not self.base_url:
            self.base_url = BYBIT_PUBLIC_HOST if self.venue == "bybit" else DATA_HOST
        self.base_url = self.base_url.rstrip("/")
        self.rest_url = self.rest_url.rstrip("/")

    @property
    def interval_ms(self) -> int:
        """Bar length in ms."""
        return INTERVAL_MS[self.interval]


# ------------------------------------------------------------------ periods and paths


def month_start(d: date) -> date:
    """First day of d's month."""
    return d.replace(day=1)


def next_month(d: date) -> date:
    """First day of the month after d's."""
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def day_ms(d: date) -> int:
    """Epoch ms of d 00:00 UTC."""
    return calendar.timegm(d.timetuple()) * 1000


def ms_day(ts_ms: int) -> date:
    """The UTC day of epoch ms."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).date()


def months_between(start: date, end: date) -> list[date]:
    """First days of the months touching [start, end] (inclusive)."""
    out, m = [], month_start(start)
    while m <= end:
        out.append(m)
        m = next_month(m)
    return out


def monthly_rel(venue: str, symbol: str, interval: str, m: date) -> str:
    """data.binance.vision path of a monthly klines zip."""
    return f"{DUMP_ROOT[venue]}/monthly/klines/{symbol}/{interval}/{symbol}-{interval}-{m:%Y-%m}.zip"


def daily_rel(venue: str, symbol: str, interval: str, d: date) -> str:
    """data.binance.vision path of a daily klines zip."""
    return f"{DUMP_ROOT[venue]}/daily/klines/{symbol}/{interval}/{symbol}-{interval}-{d:%Y-%m-%d}.zip"


def output_rel(venue: str, symbol: str, interval: str, m: date, fmt: str = "csv") -> str:
    """Path (under --out) of one month's output file."""
    return f"{venue}/{symbol}/{interval}/{symbol}-{interval}-{m:%Y-%m}.{fmt}"


# ------------------------------------------------------------------ parsing


@dataclass(slots=True, eq=False)
class KlineBlock:
    """Klines as columns: open times (ms), OHLCV as floats (for the quality report) and each
    row's output line (open/close time in ms, every other column as the venue wrote it)."""

    open_ms: np.ndarray  # int64
    ohlcv: np.ndarray  # float64, shape (n, 5)
    lines: list[str]

    def __len__(self) -> int:
        return len(self.lines)

    @staticmethod
    def empty() -> KlineBlock:
        """No rows."""
        return KlineBlock(np.zeros(0, dtype=np.int64), np.zeros((0, 5)), [])

    @staticmethod
    def concat(blocks: Sequence[KlineBlock]) -> KlineBlock:
        """Blocks one after the other (order kept)."""
        if not blocks:
            return KlineBlock.empty()
        return KlineBlock(np.concatenate([b.open_ms for b in blocks]),
                          np.concatenate([b.ohlcv for b in blocks]).reshape(-1, 5),
                          [ln for b in blocks for ln in b.lines])

    def take(self, idx: np.ndarray) -> KlineBlock:
        """Rows at `idx`, in that order."""
        return KlineBlock(self.open_ms[idx], self.ohlcv[idx], [self.lines[i] for i in idx.tolist()])


def to_ms(value: int) -> int:
    """Epoch ms from epoch ms or µs (told by magnitude)."""
    return value // 1000 if value >= US_THRESHOLD else value


def parse_kline_csv(text: str, where: str) -> KlineBlock:
    """Rows of a data-vision klines CSV (headerless, or with the `open_time,...` header);
    µs times become ms. Raises DataError naming `where`, the line and the value."""
    lines = text.splitlines()
    first_line = 1
    if lines and lines[0].startswith("open_time"):
        lines, first_line = lines[1:], 2
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(where, first_line, "no kline rows")
    if set(map(str.count, lines, repeat(","))) != {KLINE_COLUMNS - 1}:
        for i, ln in enumerate(lines):
            n = ln.count(",") + 1
            if n != KLINE_COLUMNS:
                what = "blank line" if not ln.strip() else f"wrong column count: {n}"
                raise DataError(where, first_line + i, f"{what}, expected {KLINE_COLUMNS}: {ln[:120]!r}")
    body = "\n".join(lines)
    if len(_DIGIT_TIMES.findall(body)) != len(lines):  # a time as 1.6e12 or signed: not what Binance writes
        raise _first_bad_value(where, first_line, lines)
    try:
        # numpy's C reader; µs times (< 2^53) are exact in float64
        table = np.loadtxt(io.StringIO(body), delimiter=",", usecols=range(7), dtype=np.float64, ndmin=2)
    except ValueError:
        raise _first_bad_value(where, first_line, lines) from None
    vals = np.ascontiguousarray(table[:, 1:6])
    if not np.isfinite(table).all():
        bad = int(np.flatnonzero(~np.isfinite(table).all(axis=1))[0])
        raise DataError(where, first_line + bad, f"not a finite number in {lines[bad][:120]!r}")
    open_raw = table[:, 0].astype(np.int64)
    close_raw = table[:, 6].astype(np.int64)
    if bool((table[:, 0] != np.floor(table[:, 0])).any() or (table[:, 6] != np.floor(table[:, 6])).any()):
        raise _first_bad_value(where, first_line, lines)
    open_ms = np.where(open_raw >= US_THRESHOLD, open_raw // 1000, open_raw)
    close_ms = np.where(close_raw >= US_THRESHOLD, close_raw // 1000, close_raw)
    if bool((open_ms != open_raw).any() or (close_ms != close_raw).any()):
        out = []
        for o, c, ln in zip(open_ms.tolist(), close_ms.tolist(), lines, strict=True):
            p = ln.split(",", 7)
            out.append(f"{o},{p[1]},{p[2]},{p[3]},{p[4]},{p[5]},{c},{p[7]}")
        lines = out
    return KlineBlock(open_ms, vals, lines)


def _first_bad_value(where: str, first_line: int, lines: list[str]) -> DataError:
    """DataError for the first value that does not parse (the slow walk after numpy refused)."""
    names = ("open_time", "open", "high", "low", "close", "volume", "close_time")
    for i, ln in enumerate(lines):
        cols = ln.split(",")
        for j, name in enumerate(names):
            text = cols[j]
            try:
                x = int(text) if j in (0, 6) else float(text)
            except ValueError:
                kind = "an integer" if j in (0, 6) else "a number"
                return DataError(where, first_line + i, f"{name} = {text!r}: not {kind}")
            if not math.isfinite(x):
                return DataError(where, first_line + i, f"{name} = {text!r}: not a finite number")
    return DataError(where, None, "cannot be read as klines")


def read_kline_zip(path: Path, name: str) -> KlineBlock:
    """Rows of a data-vision klines zip (exactly one CSV member). `name` is used in errors."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) != 1 or not members[0].filename.endswith(".csv"):
                raise DataError(name, None, f"expected one .csv member, found {[m.filename for m in members]}")
            member = members[0].filename
            data = zf.read(member)
    except zipfile.BadZipFile as exc:
        raise DataError(name, None, f"not a readable zip: {exc}") from None
    except (OSError, EOFError, zipfile.LargeZipFile) as exc:  # truncated member, CRC error
        raise DataError(name, None, f"cannot read zip: {exc}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}!{member}", None, f"not ASCII text (byte {exc.start})") from None
    return parse_kline_csv(text, f"{name}!{member}")


def parse_checksum(text: str, zip_name: str, url: str) -> str:
    """The hex SHA-256 in a `.CHECKSUM` file (`<hex>  <file name>`), lower-case."""
    parts = text.strip().split()
    if not parts or not _HEX64_RE.match(parts[0]):
        raise UnverifiableDump(url, f"unreadable .CHECKSUM: {text[:100]!r} (expected '<sha256 hex>  {zip_name}')")
    if len(parts) > 1 and parts[-1].lstrip("*") != zip_name:
        raise UnverifiableDump(url, f".CHECKSUM names {parts[-1]!r}, not {zip_name!r}")
    return parts[0].lower()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ one month's file (in a worker)


@dataclass(frozen=True, slots=True)
class ZipPart:
    """A verified dump on disk, read by the worker that builds the month."""

    path: str
    name: str  # its URL, for errors


@dataclass(frozen=True, slots=True)
class TradeDumpPart:
    """A checked Bybit trade dump on disk: the month's worker aggregates its trades into bars."""

    path: str
    name: str  # its URL, for errors


@dataclass(slots=True)
class MonthJob:
    """What a worker needs to build one month's file (picklable)."""

    rel: str
    out_dir: str
    lo: int
    hi: int
    interval_ms: int
    fmt: str
    parts: list[KlineBlock | ZipPart | TradeDumpPart]  # in priority order: the first copy of an open time wins


@dataclass(slots=True)
class MonthBuilt:
    """What the worker did (errors as text: a DataError does not cross the process boundary)."""

    rows: int = 0
    sha256: str = ""
    quality: QualityReport | None = None
    error: str = ""
    error_path: str = ""
    error_line: int | None = None


def build_month_file(job: MonthJob) -> MonthBuilt:
    """Read the parts, keep [lo, hi), assess, drop duplicates, write the file and its
    `.quality.json` atomically (nothing when no row is left)."""
    try:
        blocks = [read_kline_zip(Path(p.path), p.name) if isinstance(p, ZipPart) else p for p in job.parts
                  if not isinstance(p, TradeDumpPart)]
        dumps = [p for p in job.parts if isinstance(p, TradeDumpPart)]
        if dumps:  # all of the month's trades aggregated at once: a trade past its file's day is not a 2nd bar
            trades = bybit_trades.concat([bybit_trades.read_trade_dump(p.path, p.name) for p in dumps])
            opens, ohlcv, lines = bybit_trades.trades_to_klines(trades, job.interval_ms)
            first = next(i for i, p in enumerate(job.parts) if isinstance(p, TradeDumpPart))
            blocks.insert(first, KlineBlock(opens, ohlcv, lines))
    except DataError as exc:
        return MonthBuilt(error=exc.problem, error_path=exc.path, error_line=exc.line)
    block = KlineBlock.concat(blocks)
    block = block.take(np.flatnonzero((block.open_ms >= job.lo) & (block.open_ms < job.hi)))
    quality = assess(job.rel, block.open_ms, block.ohlcv, interval_ms=job.interval_ms, start_ms=job.lo,
                     end_ms=job.hi)
    if not len(block):
        return MonthBuilt(quality=quality)
    # the first copy of an open time wins: dumps come before REST, monthly before daily
    _, first = np.unique(block.open_ms, return_index=True)  # sorted by open time
    unique = block.take(first)
    if job.fmt == "parquet":
        data = _parquet_bytes(unique)
    else:
        data = ("\n".join([HEADER, *unique.lines]) + "\n").encode("ascii")
    path = Path(job.out_dir) / job.rel
    atomic_write_bytes(path, data)
    atomic_write_bytes(path.with_name(path.stem + ".quality.json"),
                       json.dumps(quality.as_dict(), indent=1).encode())
    return MonthBuilt(rows=len(unique), sha256=hashlib.sha256(data).hexdigest(), quality=quality)


# ------------------------------------------------------------------ manifest


class Manifest:
    """`DIR/manifest.json`: verified dumps and final month files, by path. Written atomically."""

    SAVE_EVERY_S = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dumps: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.warning = ""
        self._saved_at = float("-inf")
        self._dirty = False
        if path.exists():
            try:
                d = json.loads(path.read_text())
                if d.get("version") != MANIFEST_VERSION:
                    raise ValueError(f"version {d.get('version')!r}, expected {MANIFEST_VERSION}")
                self.dumps = dict(d.get("dumps", {}))
                self.outputs = dict(d.get("outputs", {}))
            except (ValueError, AttributeError, TypeError, OSError) as exc:
                # Losing the manifest only costs re-verification: every file is checked again.
                self.warning = f"{path}: unreadable ({exc}); every file will be verified again"

    def save(self) -> None:
        """Write the manifest (temp file + rename)."""
        atomic_write_bytes(self.path, json.dumps({"version": MANIFEST_VERSION, "dumps": self.dumps,
                                                  "outputs": self.outputs}, indent=1, sort_keys=True).encode())
        self._saved_at = time.monotonic()
        self._dirty = False

    def save_soon(self) -> None:
        """Save when the last save is `SAVE_EVERY_S` old (a run of thousands of files does not
        rewrite it thousands of times); `flush` at the end. An entry lost to a crash in
        between only costs that file's re-verification."""
        self._dirty = True
        if time.monotonic() - self._saved_at >= self.SAVE_EVERY_S:
            self.save()

    def flush(self) -> None:
        """Save if anything changed since the last save."""
        if self._dirty:
            self.save()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------ results


@dataclass(slots=True)
class MonthResult:
    """What happened to one (symbol, month)."""

    symbol: str
    month: date
    path: str = ""  # output file, relative to --out ("" when not written)
    status: str = ""  # written | skipped | failed | incomplete | empty
    rows: int = 0
    sources: list[str] = field(default_factory=list)
    missing: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ms not published, no REST
    error: str = ""
    quality: QualityReport | None = None


@dataclass(slots=True)
class DownloadSummary:
    """The run's results, bytes and time."""

    months: list[MonthResult] = field(default_factory=list)
    bytes_downloaded: int = 0
    bytes_verified: int = 0  # downloaded and checked against their .CHECKSUM
    files_downloaded: int = 0
    files_cached: int = 0
    rest_requests: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all written, 1 a file failed, 3 data missing (not published, REST off)."""
        if any(m.status == "failed" for m in self.months):
            return EXIT_FAILED
        if any(m.status == "incomplete" for m in self.months):
            return EXIT_INCOMPLETE
        return EXIT_OK

    def mb_per_s(self) -> float:
        """Verified MB (10^6 bytes) per second of the run."""
        return self.bytes_verified / 1e6 / self.seconds if self.seconds > 0 else 0.0


# ------------------------------------------------------------------ the downloader


class Downloader:
    """Runs one DownloadRequest (see the module docstring)."""

    def __init__(self, req: DownloadRequest, *, progress: ProgressFactory = no_progress,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.req = req
        self.progress = progress
        self.out = Path(req.out)
        self.manifest = Manifest(self.out / MANIFEST_NAME)
        self.summary = DownloadSummary()
        if self.manifest.warning:
            self.summary.warnings.append(self.manifest.warning)
        self._session = session
        self._own_session = session is None
        self._sem = asyncio.Semaphore(req.jobs)
        self._rest_lock = asyncio.Lock()  # REST pages one at a time: the venue's weight budget
        self._rest: Any = None
        self._pool: ProcessPoolExecutor | None = None
        self.workers = min(req.jobs, os.cpu_count() or 1) if req.workers is None else req.workers
        now_ms = req.now_ms if req.now_ms is not None else time.time_ns() // 1_000_000
        self.now_ms = now_ms
        ival = req.interval_ms
        self.start_ms = day_ms(req.start)
        # only closed bars: the last whole interval before now
        self.end_ms = min(day_ms(req.end + timedelta(days=1)), now_ms // ival * ival)

    # ---------------------------------------------------------- lifecycle

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session for the dumps."""
        if self._session is None:
            # no total: a 100 MB month on a slow link is fine as long as bytes keep coming
            t = self.req.request_timeout_s
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t))
            self._own_session = True
        return self._session

    async def close(self) -> None:
        """Save the manifest; close what this downloader opened."""
        try:
            self.manifest.flush()
        except OSError as exc:
            self.summary.warnings.append(f"{self.manifest.path}: not saved ({exc}); the next run verifies again")
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)  # no worker or manager thread outlives the run
            self._pool = None
        if self._rest is not None:
            await self._rest.close()
            self._rest = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self) -> DownloadSummary:
        """Download, verify and write every (symbol, month); never raises for one file's failure."""
        t0 = time.perf_counter()
        months = months_between(self.req.start, self.req.end)
        units = [(s, m) for s in self.req.symbols for m in months if day_ms(m) < self.end_ms]
        prog = self.progress(len(units), f"data download {self.req.venue} {self.req.interval}", "months")
        try:
            async def one(sym: str, m: date) -> MonthResult:
                try:
                    res = await self._month(sym, m)
                except (NautilusError, OSError, ValueError) as exc:  # one month fails, the run goes on
                    res = MonthResult(sym, m, status="failed", error=str(exc))
                except Exception as exc:  # a bug or an answer nobody expected: named, the others go on
                    res = MonthResult(sym, m, status="failed",
                                      error=f"unexpected {type(exc).__name__}: {exc} (a bug: please report it)")
                prog.update(1)
                return res

            results = await asyncio.gather(*(one(s, m) for s, m in units))
        finally:
            prog.close()
            await self.close()
        self.summary.months = sorted(results, key=lambda r: (r.symbol, r.month))
        self.summary.seconds = time.perf_counter() - t0
        return self.summary

    async def verify_dumps(self, rels: Sequence[str]) -> None:
        """Download and verify dumps by data.binance.vision path into `DIR/_dumps/` (no month
        files; what the benchmark times). Raises the first failure."""
        try:
            await asyncio.gather(*(self._fetch_verified(rel, self.out / DUMPS_DIR / rel) for rel in rels))
        finally:
            await self.close()

    # ---------------------------------------------------------- one month

    async def _month(self, symbol: str, m: date) -> MonthResult:
        req = self.req
        lo = max(self.start_ms, day_ms(m))
        hi = min(self.end_ms, day_ms(next_month(m)))
        res = MonthResult(symbol, m)
        rel = output_rel(req.venue, symbol, req.interval, m, req.fmt)
        if lo >= hi:
            res.status = "empty"
            return res
        if self._final_and_intact(rel, lo, hi):
            res.status, res.path = "skipped", rel
            res.rows = int(self.manifest.outputs[rel]["rows"])
            res.sources = list(self.manifest.outputs[rel]["sources"])
            return res
        groups: list[KlineBlock | ZipPart | TradeDumpPart]
        if req.venue == "bybit" and (req.source == "rest" or (req.source == "auto" and req.rest_url)):
            block = await self._bybit_rows(symbol, lo, hi)
            groups = [block]
            sources = [f"rest:{req.rest_url}/v5/market/kline"]
            final = hi <= self.now_ms - req.interval_ms and hi == min(day_ms(req.end + timedelta(days=1)),
                                                                    day_ms(next_month(m)))
            if req.source == "auto":
                # days REST has no bar for (before the venue's kline history): the trade dumps
                for a, b in self._days_without_rows(block, lo, hi):
                    more, dumps, _ = await self._bybit_trade_groups(symbol, a, b)  # no dump either: a gap
                    groups += more
                    sources += dumps
        else:
            if req.venue == "bybit":
                groups, sources, missing = await self._bybit_trade_groups(symbol, lo, hi)
                rest_rows = self._bybit_rows
            else:
                groups, sources, missing = await self._binance_groups(symbol, m, lo, hi)
                rest_rows = self._binance_rest_rows
            final = not missing and all(not s.startswith("rest:") for s in sources)
            if missing:
                if req.rest_url:
                    for a, b in missing:
                        groups.append(await rest_rows(symbol, a, b))
                    sources.append(f"rest:{req.rest_url}")
                    final = False
                else:
                    res.missing = missing
        res.sources = sources
        job = MonthJob(rel=rel, out_dir=str(self.out), lo=lo, hi=hi, interval_ms=req.interval_ms, fmt=req.fmt,
                       parts=groups)
        built = await self._run_cpu(build_month_file, job)
        if built.error:
            raise DataError(built.error_path, built.error_line, built.error)
        res.quality = built.quality
        if res.missing:
            res.error = self._missing_text(res.missing)
        if not built.rows:
            res.status = "incomplete" if res.missing else "empty"
            self.manifest.outputs.pop(rel, None)
            return res
        res.path, res.rows = rel, built.rows
        res.status = "incomplete" if res.missing else "written"
        if final:
            self.manifest.outputs[rel] = {"start_ms": lo, "end_ms": hi, "rows": built.rows, "sources": sources,
                                          "sha256": built.sha256}
        else:
            self.manifest.outputs.pop(rel, None)
        self.manifest.save_soon()
        return res

    async def _run_cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in a worker process (`workers` > 0) or a thread (0): parsing, the quality
        report and writing never run on the event loop."""
        if self.workers == 0:
            return await asyncio.to_thread(fn, *args)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            # no worker process (a script without a __main__ guard, a process limit, a killed
            # worker): the work is redone in a thread; slower, never wrong
            if self.workers:
                self.summary.warnings.append(f"worker processes failed ({type(exc).__name__}: {exc}); "
                                             "months are built in a thread")
                self.workers = 0
            return await asyncio.to_thread(fn, *args)

    def _missing_text(self, missing: list[tuple[int, int]]) -> str:
        spans = ", ".join(f"{datetime.fromtimestamp(a / 1000, tz=UTC):%Y-%m-%d %H:%M}.."
                          f"{datetime.fromtimestamp(b / 1000, tz=UTC):%Y-%m-%d %H:%M}" for a, b in missing)
        return f"not published and REST is off (--no-rest): {spans} UTC"

    def _final_and_intact(self, rel: str, lo: int, hi: int) -> bool:
        entry = self.manifest.outputs.get(rel)
        path = self.out / rel
        if not entry or entry.get("start_ms") != lo or entry.get("end_ms") != hi or not path.exists():
            return False
        return bool(sha256_file(path) == entry.get("sha256"))

    # ---------------------------------------------------------- Binance dumps

    async def _binance_groups(
        self, symbol: str, m: date, lo: int, hi: int,
    ) -> tuple[list[KlineBlock | ZipPart], list[str], list[tuple[int, int]]]:
        """Rows from the dumps covering [lo, hi) (monthly, else daily), the sources, and the
        [start, end) spans no dump covers."""
        req = self.req
        groups: list[KlineBlock | ZipPart] = []
        sources: list[str] = []
        whole_month = lo == day_ms(m) and hi == day_ms(next_month(m))
        if whole_month:
            rel = monthly_rel(req.venue, symbol, req.interval, m)
            try:
                groups.append(await self._dump_rows(rel))
                sources.append(rel)
                return groups, sources, []
            except NotPublished:
                pass  # the month not published (yet): its days one by one
        today = ms_day(self.now_ms)
        missing: list[tuple[int, int]] = []
        day = ms_day(lo)
        tasks: list[tuple[int, int, Any]] = []
        while day_ms(day) < hi:
            a, b = max(lo, day_ms(day)), min(hi, day_ms(day + timedelta(days=1)))
            if day >= today:  # a daily dump appears the next day: REST straight away
                tasks.append((a, b, None))
            else:
                tasks.append((a, b, asyncio.ensure_future(self._dump_rows(daily_rel(req.venue, symbol,
                                                                                     req.interval, day)))))
            day += timedelta(days=1)
        first_error: BaseException | None = None
        for a, b, fut in tasks:
            if fut is None:
                missing.append((a, b))
                continue
            try:
                rows = await fut
            except NotPublished:
                missing.append((a, b))
                continue
            except BaseException as exc:  # keep waiting for the others, then raise the first
                first_error = first_error or exc
                continue
            groups.append(rows)
            sources.append(daily_rel(req.venue, symbol, req.interval, ms_day(a)))
        if first_error is not None:
            raise first_error
        return groups, sources, _merge_spans(missing)

    async def _dump_rows(self, rel: str) -> ZipPart:
        """One verified dump (downloaded and verified unless already verified), to be read by
        the month's worker."""
        dest = self.out / DUMPS_DIR / rel
        entry = self.manifest.dumps.get(rel)
        if entry and dest.exists() and await asyncio.to_thread(sha256_file, dest) == entry.get("sha256"):
            self.summary.files_cached += 1
        else:
            await self._fetch_verified(rel, dest)
        return ZipPart(str(dest), f"{self.req.base_url}/{rel}")

    async def _fetch_verified(self, rel: str, dest: Path) -> None:
        """Download `rel` and its .CHECKSUM; verify; rename into place; record in the manifest.
        A mismatch or transport error is retried once, then DownloadError names the URL."""
        url = f"{self.req.base_url}/{rel}"
        name = rel.rsplit("/", 1)[-1]
        problems: list[str] = []
        for attempt in (1, 2):
            try:
                got, expected, size = await self._stream_to(url, dest, functools.partial(self._checksum, url, name))
            except (NotPublished, UnverifiableDump):
                raise
            except DownloadError as exc:
                problems.append(f"try {attempt}: {exc.problem}")
                continue
            if got == expected:
                self.summary.files_downloaded += 1
                self.summary.bytes_verified += size
                self.manifest.dumps[rel] = {"sha256": got, "bytes": size, "url": url,
                                            "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
                self.manifest.save_soon()
                return
            problems.append(f"try {attempt}: sha256 {got}, .CHECKSUM says {expected}")
        if all("sha256" in p for p in problems):
            raise ChecksumMismatch(url, "checksum mismatch, not used: " + "; ".join(problems))
        raise DownloadError(url, "failed twice: " + "; ".join(problems))

    async def _get_small(self, url: str) -> bytes:
        async with self._sem:
            try:
                async with self.session.get(url) as resp:
                    if resp.status == 404:
                        raise NotPublished(url)
                    if resp.status != 200:
                        raise DownloadError(url, f"HTTP {resp.status}")
                    body = await resp.read()
                    self.summary.bytes_downloaded += len(body)
                    return body
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DownloadError(url, f"transport error: {exc!r}") from None

    async def _checksum(self, url: str, name: str) -> str:
        """The digest `url`.CHECKSUM publishes (NotPublished when there is none)."""
        text = (await self._get_small(url + ".CHECKSUM")).decode("ascii", "replace")
        return parse_checksum(text, name, url + ".CHECKSUM")

    async def _stream_to(self, url: str, dest: Path, checksum: Callable[[], Awaitable[str]]) -> tuple[str, str, int]:
        """GET url into a temp file beside dest while hashing, with its .CHECKSUM fetched at the
        same time; rename to dest only when the digests agree; returns (digest, published
        digest, bytes). The temp file never survives; the checksum task is always awaited."""
        ck: asyncio.Future[str] = asyncio.ensure_future(checksum())
        tmp: str | None = None
        try:
            tmp, got, size = await self._stream_plain(url, dest)
            try:
                expected = await ck
            except NotPublished:
                raise UnverifiableDump(url, "no .CHECKSUM published beside it: cannot verify, not used") from None
            if got == expected:
                os.replace(tmp, dest)
            return got, expected, size
        finally:
            if not ck.done():
                ck.cancel()
            with contextlib.suppress(BaseException):
                await ck  # retrieved: no "exception never retrieved" for a zip that failed first
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    # ---------------------------------------------------------- Bybit trade dumps

    async def _bybit_trade_groups(
        self, symbol: str, lo: int, hi: int,
    ) -> tuple[list[KlineBlock | ZipPart | TradeDumpPart], list[str], list[tuple[int, int]]]:
        """The checked daily trade dumps covering [lo, hi), their paths, and the [start, end)
        spans no dump covers (404, or today: a day's dump appears the next day)."""
        req = self.req
        today = ms_day(self.now_ms)
        tasks: list[tuple[int, int, str, Any]] = []
        day = ms_day(lo)
        while day_ms(day) < hi:
            a, b = max(lo, day_ms(day)), min(hi, day_ms(day + timedelta(days=1)))
            rel = bybit_trades.dump_rel(req.category, symbol, day)
            tasks.append((a, b, rel, None if day >= today else asyncio.ensure_future(self._trade_dump(rel))))
            day += timedelta(days=1)
        groups: list[KlineBlock | ZipPart | TradeDumpPart] = []
        sources: list[str] = []
        missing: list[tuple[int, int]] = []
        first_error: BaseException | None = None
        for a, b, rel, fut in tasks:
            if fut is None:
                missing.append((a, b))
                continue
            try:
                groups.append(await fut)
                sources.append(f"bybit:{rel}")
            except NotPublished:
                missing.append((a, b))
            except BaseException as exc:  # keep waiting for the others, then raise the first
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return groups, sources, _merge_spans(missing)

    def _days_without_rows(self, block: KlineBlock, lo: int, hi: int) -> list[tuple[int, int]]:
        """[start, end) of the days (cut to [lo, hi), before today) that hold none of `block`'s rows."""
        have = {ms_day(int(o)) for o in block.open_ms.tolist()}
        today = ms_day(self.now_ms)
        out: list[tuple[int, int]] = []
        day = ms_day(lo)
        while day_ms(day) < hi and day < today:
            if day not in have:
                out.append((max(lo, day_ms(day)), min(hi, day_ms(day + timedelta(days=1)))))
            day += timedelta(days=1)
        return _merge_spans(out)

    async def _trade_dump(self, rel: str) -> TradeDumpPart:
        """One checked trade dump (downloaded and checked unless already in the manifest)."""
        key = f"bybit/{rel}"
        dest = self.out / DUMPS_DIR / key
        entry = self.manifest.dumps.get(key)
        if entry and dest.exists() and await asyncio.to_thread(sha256_file, dest) == entry.get("sha256"):
            self.summary.files_cached += 1
        else:
            await self._fetch_gz_checked(rel, key, dest)
        return TradeDumpPart(str(dest), f"{self.req.base_url}/{rel}")

    async def _fetch_gz_checked(self, rel: str, key: str, dest: Path) -> None:
        """GET a trade dump into a temporary file beside `dest`; rename it into place only when
        its gzip CRC/length and header check out (`bybit_trades.check_dump`). A damaged file
        or a transport error is retried once, then DownloadError names the URL."""
        url = f"{self.req.base_url}/{rel}"
        problems: list[str] = []
        for attempt in (1, 2):
            tmp = ""
            try:
                tmp, digest, size = await self._stream_plain(url, dest)
                problem = await self._run_cpu(bybit_trades.check_dump, tmp, url)
                if problem:
                    problems.append(f"try {attempt}: {problem}")
                    continue
                os.replace(tmp, dest)
                tmp = ""
            except DownloadError as exc:
                problems.append(f"try {attempt}: {exc.problem}")
                continue
            finally:
                if tmp:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            self.summary.files_downloaded += 1
            self.summary.bytes_verified += size
            self.manifest.dumps[key] = {"sha256": digest, "bytes": size, "url": url, "check": "gzip crc32+isize",
                                        "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
            self.manifest.save_soon()
            return
        raise DownloadError(url, "damaged or unreadable twice, not used: " + "; ".join(problems))

    async def _stream_plain(self, url: str, dest: Path) -> tuple[str, str, int]:
        """GET url into a new temporary file beside dest (hashing it); returns (temp path, sha256,
        bytes). The temp file is removed on any failure; NotPublished on 404."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        h = hashlib.sha256()
        size = 0
        ok = False
        try:
            async with self._sem:
                try:
                    async with self.session.get(url) as resp:
                        if resp.status == 404:
                            raise NotPublished(url)
                        if resp.status != 200:
                            raise DownloadError(url, f"HTTP {resp.status}")
                        with os.fdopen(fd, "wb") as f:
                            fd = -1
                            async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                                h.update(chunk)
                                f.write(chunk)
                                size += len(chunk)
                        if resp.content_length is not None and size != resp.content_length:
                            raise DownloadError(url, f"connection closed after {size} of {resp.content_length} bytes")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise DownloadError(url, f"transport error after {size} bytes: {exc!r}") from None
            self.summary.bytes_downloaded += size
            ok = True
            return tmp, h.hexdigest(), size
        finally:
            if fd != -1:
                os.close(fd)
            if not ok:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    # ---------------------------------------------------------- REST

    async def _binance_rest_rows(self, symbol: str, lo: int, hi: int) -> KlineBlock:
        """Closed klines [lo, hi) from GET klines (1000 a page, forwards)."""
        from nautilus_hmm.core.clock import LiveClock
        from nautilus_hmm.domain.instruments import InstrumentId
        from nautilus_hmm.venues.binance.market import Market
        from nautilus_hmm.venues.binance.parse import parse_rest_klines
        from nautilus_hmm.venues.binance.rest import BinanceRest

        req = self.req
        if self._rest is None:
            market = Market.SPOT if req.venue == "binance_spot" else Market.USDM
            self._rest = BinanceRest(market, str(req.rest_url), LiveClock(), venue=req.venue,
                                     request_timeout_s=req.request_timeout_s)
        iid = InstrumentId(req.venue, symbol)
        ival = req.interval_ms
        out: list[tuple[int, list[Any]]] = []
        start = lo
        async with self._rest_lock:
            while start < hi:
                params = {"symbol": symbol, "interval": req.interval, "startTime": start, "endTime": hi - 1,
                          "limit": 1000}
                page = await self._rest_call(functools.partial(self._rest.call, "klines", params),
                                             f"{req.rest_url} GET klines {params}")
                bars = parse_rest_klines(page, iid, ival // 1000, 0, now_ms=self.now_ms)
                closed = {b.ts_event_ns // 1_000_000 for b in bars}
                for raw in page:
                    o = int(raw[0])
                    if o in closed and lo <= o < hi:
                        out.append((o, raw))
                if len(page) < 1000 or not page:
                    break
                start = int(page[-1][0]) + ival
        return _block(out, lambda o, raw: [o, *raw[1:6], int(raw[6]), *raw[7:12]])

    async def _bybit_rows(self, symbol: str, lo: int, hi: int) -> KlineBlock:
        """Closed klines [lo, hi) from GET /v5/market/kline, newest first, paged backwards."""
        from nautilus_hmm.core.clock import LiveClock
        from nautilus_hmm.domain.instruments import InstrumentId
        from nautilus_hmm.venues.bybit.parse import INTERVAL_NAMES, parse_klines
        from nautilus_hmm.venues.bybit.rest import BybitRest

        req = self.req
        if not req.rest_url:
            raise VenueError("bybit", "Bybit history comes only over REST: --no-rest leaves nothing to download")
        if self._rest is None:
            self._rest = BybitRest(str(req.rest_url), LiveClock(), venue="bybit",
                                   request_timeout_s=req.request_timeout_s)
        ival = req.interval_ms
        name = INTERVAL_NAMES.get(ival // 1000)
        if name is None:
            raise ValueError(f"--interval {req.interval!r}: Bybit has no such kline interval")
        iid = InstrumentId("bybit", symbol)
        by_open: dict[int, list[Any]] = {}
        end = hi - 1
        async with self._rest_lock:
            while end >= lo:
                params = {"category": req.category, "symbol": symbol, "interval": name, "start": lo, "end": end,
                          "limit": 1000}
                result = await self._rest_call(functools.partial(self._rest.call, "kline", params),
                                               f"{req.rest_url}/v5/market/kline {params}")
                bars = parse_klines(result, iid, ival // 1000, 0, now_ms=self.now_ms)
                raw_rows = result.get("list", []) if isinstance(result, dict) else []
                by_start = {int(r[0]): r for r in raw_rows}
                for b in bars:
                    o = b.ts_event_ns // 1_000_000
                    raw = by_start[o]
                    if lo <= o < hi:
                        by_open[o] = raw
                if not raw_rows:
                    break
                oldest = min(by_start)
                if len(raw_rows) < 1000 or oldest <= lo:
                    break
                end = oldest - 1
        # Bybit has no close time, trade count or taker volumes; turnover is the quote volume
        return _block(sorted(by_open.items()), lambda o, raw: [o, *raw[1:6], o + ival - 1,
                                                                raw[6] if len(raw) > 6 else "", "", "", "", ""])

    async def _rest_call(self, fn: Callable[[], Any], what: str) -> Any:
        """One REST call: a local rate limit waits (bounded), a retryable error is retried once."""
        self.summary.rest_requests += 1
        for attempt in (1, 2, 3):
            try:
                return await fn()
            except RateLimited as exc:
                if attempt == 3:
                    raise
                await asyncio.sleep(min(max(exc.retry_after_s, 0.0), 60.0))
            except RetryableError as exc:
                if attempt >= 2:
                    raise VenueError(exc.venue, f"{what}: failed twice: {exc}") from None
        raise AssertionError("unreachable")


def _merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _block(items: Iterable[tuple[int, list[Any]]], columns: Callable[[int, list[Any]], list[Any]]) -> KlineBlock:
    """A KlineBlock from REST rows: `columns(open_ms, raw)` gives the 12 output columns."""
    lines: list[str] = []
    opens: list[int] = []
    vals: list[list[float]] = []
    for o, raw in items:
        cols = columns(o, raw)
        opens.append(o)
        vals.append([float(x) for x in cols[1:6]])
        lines.append(",".join(str(x) for x in cols))
    return KlineBlock(np.array(opens, dtype=np.int64), np.array(vals, dtype=np.float64).reshape(-1, 5), lines)


def _parquet_bytes(block: KlineBlock) -> bytes:
    try:  # optional (not installed by the README's commands): checked before the run
        import pyarrow as pa  # type: ignore[import-not-found,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ValueError("--format parquet needs pyarrow (pip install pyarrow); --format csv works without it") from exc

    names = HEADER.split(",")
    rows = [ln.split(",") for ln in block.lines]
    table = pa.table({n: (pa.array([int(r[j]) for r in rows], pa.int64()) if n in ("open_time", "close_time")
                          else pa.array([r[j] for r in rows], pa.string())) for j, n in enumerate(names)})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def parquet_available() -> bool:
    """True when pyarrow can be imported (the parquet output format needs it)."""
    try:
        import pyarrow.parquet  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


async def download(req: DownloadRequest, *, progress: ProgressFactory = no_progress,
                   session: aiohttp.ClientSession | None = None) -> DownloadSummary:
    """Run one download (see the module docstring)."""
    return await Downloader(req, progress=progress, session=session).run()
