"""The intent log of `synchronous = "full"`: an append-only file, fsynced before an order leaves.

`<journal>.intents` beside the database. With `[journal] intent_log = true` (the default)
a durable intent is not a SQLite transaction on the writer thread any more: the loop
encodes one record (a few µs) and hands it to the `journal-intent-log` thread, which
writes every record handed over since its last pass with one `pwrite` and makes them
durable with one `os.fdatasync` (group commit), reserves sequences in the high-water
mark when the group crosses it, and only then resolves the intents' futures. The same
intent is queued for the SQLite writer as a fire-and-forget row ("the fold"): it reaches
the `orders` table with the next batch, off the order path. At every open the log is
read back and every record SQLite lacks is folded in before anything else reads the
journal (recovery, reconciliation), then a fresh log is started.

The file is preallocated with written zeros (`PREALLOCATE_BYTES`, extended by the same
amount ahead of need), so a group's `fdatasync` overwrites allocated blocks and flushes
data only: no size or extent metadata per order.
Past ROTATE_BYTES, once SQLite has committed every intent written to the file (the fold
marks below), the log starts over in a new file (lsns continue).

Layout: a 64-byte header (`MAGIC`, the journal id, the first record's log sequence
number `base_lsn`, the journal's next client-order sequence when the log was started
`base_seq`, the creation time, CRC-32 of those) and then records, each 8-byte aligned:

    u32 payload length | u32 CRC-32 of (length, lsn, payload) | u64 lsn | payload | zero pad

The payload is the order row as JSON (`orjson`): client order id, sequence, instrument,
strategy, side, type, quantity, price, time in force, reduce-only, created ns. Record
lsns are consecutive from `base_lsn`. Zeros (a length of 0) end the log.

Reading it back (`scan`), money safety first:

* the first record that is not valid (bad CRC, a length past the file's end, zeros)
  ends the log **only if no valid record follows it anywhere in the file**: a torn write
  of the last group at a crash. That group's `fdatasync` never returned, so none of its
  orders was sent. Its bytes are ignored (logged `intent_log_torn_tail` with the offset);
* a bad record followed by a valid one is damage in the middle: refused
  (`JournalCorruptError` naming the file and the offset) — an order there may have been
  sent, and what follows proves the log went on after it;
* an lsn out of sequence (a gap, a repeat), a record whose client-order sequence is
  lower than the journal's sequence when this log started (`base_seq`: the log does not
  belong to this database's history), a header of another journal or a damaged header
  are refused the same way.

Pure file code plus the sync thread; the Journal wires it (store.py, writer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from nautilus_hmm.journal.errors import JournalCorruptError, JournalError, JournalWriteError

log = structlog.get_logger("journal")

MAGIC = b"NHMMILG1"
_HEADER = struct.Struct("<8s8sQQQ")  # magic, journal id (NUL padded), base_lsn, base_seq, created_ns
HEADER_LEN = 64
_REC = struct.Struct("<IIQ")  # payload length, crc32, lsn
REC_HEADER_LEN = _REC.size  # 16
_LEN_LSN = struct.Struct("<IQ")
_PADS = tuple(bytes(i) for i in range(8))
ALIGN = 8
MAX_PAYLOAD = 4096  # an intent's record is ~100-150 bytes; anything longer takes the SQLite path
PREALLOCATE_BYTES = 1024 * 1024  # ~8000 intents; extended by as much ahead of need
# Past this size, once SQLite has committed every intent written to it, the log starts over
# in a new file (a start reads the whole log back: this bounds it, ~130k intents).
ROTATE_BYTES = 16 * 1024 * 1024
_ZERO_CHUNK = bytes(1024 * 1024)
# A record with lsn 0 is a fold mark, ["folded", lsn]: every intent up to that lsn was
# committed (fsynced) into SQLite. An intent at or below it that SQLite lacks at the next
# open means the database lost committed rows (a damaged or deleted WAL), not crash lag.
FOLD_MARK_LSN = 0


def log_path(journal_path: str) -> str:
    """Where the intent log of the journal at `journal_path` lives."""
    return f"{journal_path}.intents"


def encode(lsn: int, values: tuple[Any, ...]) -> bytes:
    """One record, padded to ALIGN. ValueError if the row is longer than MAX_PAYLOAD."""
    payload = orjson.dumps(values)
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueError(f"intent record of {n} bytes is longer than {MAX_PAYLOAD}")
    crc = zlib.crc32(payload, zlib.crc32(_LEN_LSN.pack(n, lsn)))
    return b"".join((_REC.pack(n, crc, lsn), payload, _PADS[-(REC_HEADER_LEN + n) % ALIGN]))


def _header_bytes(journal_id: str, base_lsn: int, base_seq: int, created_ns: int) -> bytes:
    body = _HEADER.pack(MAGIC, journal_id.encode().ljust(8, b"\0"), base_lsn, base_seq, created_ns)
    return (body + struct.pack("<I", zlib.crc32(body))).ljust(HEADER_LEN, b"\0")


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One intent read back: its lsn, offset in the file and the order row (`values`)."""

    lsn: int
    offset: int
    values: tuple[Any, ...]

    @property
    def client_order_id(self) -> str:
        return str(self.values[0])

    @property
    def seq(self) -> int:
        return int(self.values[1])


@dataclass(frozen=True, slots=True)
class Scan:
    """What `scan` read: header fields, the valid records, where the log ends, a torn tail."""

    path: str
    journal_id: str
    base_lsn: int
    base_seq: int
    records: list[LogRecord]
    end_offset: int
    torn_offset: int | None  # offset of an ignored torn tail (non-zero bytes after the end)
    folded_lsn: int = 0  # the newest "folded into SQLite up to" marker (0: none)

    @property
    def next_lsn(self) -> int:
        return self.records[-1].lsn + 1 if self.records else self.base_lsn

    @property
    def max_seq(self) -> int:
        return max((r.seq for r in self.records), default=-1)


def corrupt(path: str, problem: str) -> JournalCorruptError:
    return JournalCorruptError(
        path, f"{problem}; refusing to start (an order recorded there may have been sent). The file is "
        "left untouched: restore it from a backup, or move it aside to start without it (the start then "
        "counts the journal's tail as lost: reconciliation looks for our orders at the venues and trading "
        "stays halted until you resume)"
    )


def _record_at(data: bytes, off: int) -> tuple[int, int, bytes] | None:
    """(length, lsn, payload) of a valid record at `off`, else None."""
    if off + REC_HEADER_LEN > len(data):
        return None
    n, crc, lsn = _REC.unpack_from(data, off)
    if n == 0 or n > MAX_PAYLOAD or off + REC_HEADER_LEN + n > len(data):
        return None
    payload = data[off + REC_HEADER_LEN: off + REC_HEADER_LEN + n]
    if zlib.crc32(payload, zlib.crc32(_LEN_LSN.pack(n, lsn))) != crc:
        return None
    return n, lsn, payload


_NONZERO = re.compile(rb"[^\x00]")


def _next_valid(data: bytes, start: int) -> int | None:
    """Offset of the first valid record at or after `start` (ALIGN steps), jumping over runs of zeros.

    A record's length field (its first 4 bytes) is never zero, so a record whose first
    non-zero byte is at `p` starts at `p` rounded down to ALIGN."""
    off = start + (-start % ALIGN)
    size = len(data)
    while off + REC_HEADER_LEN <= size:
        m = _NONZERO.search(data, off)
        if m is None:
            return None
        p = m.start()
        off = max(off, p - p % ALIGN)
        if _record_at(data, off) is not None:
            return off
        off += ALIGN
    return None


def scan(path: str, journal_id: str) -> Scan | None:
    """Read the log at `path` back; None if there is none. JournalCorruptError on damage (see module doc)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JournalError(path, f"cannot read the intent log: {exc}") from exc
    if len(data) < HEADER_LEN:
        raise corrupt(path, f"intent log is {len(data)} bytes, shorter than its {HEADER_LEN}-byte header")
    body = data[:_HEADER.size]
    (crc,) = struct.unpack_from("<I", data, _HEADER.size)
    magic, jid_raw, base_lsn, base_seq, _created = _HEADER.unpack(body)
    if magic != MAGIC or zlib.crc32(body) != crc:
        raise corrupt(path, f"intent log header at offset 0 is damaged or not an intent log (starts {data[:8]!r})")
    jid = jid_raw.rstrip(b"\0").decode("ascii", "replace")
    if jid != journal_id:
        raise corrupt(path, f"intent log of journal {jid!r}, not of this journal {journal_id!r}")
    records: list[LogRecord] = []
    off = HEADER_LEN
    expected = base_lsn
    torn: int | None = None
    folded = 0
    while True:
        rec = _record_at(data, off)
        if rec is None:
            later = _next_valid(data, off + ALIGN)
            if later is not None:
                lsn = _REC.unpack_from(data, later)[2]
                raise corrupt(path, f"damaged intent record at offset {off} (expected lsn {expected}) with a "
                               f"valid record after it (offset {later}, lsn {lsn})")
            if data[off:].strip(b"\0"):
                torn = off
                log.warning("intent_log_torn_tail", path=path, offset=off, lsn=expected,
                            detail="an incomplete last write (a crash during its fsync): its orders were never "
                            "sent; ignored")
            break
        n, lsn, payload = rec
        step = REC_HEADER_LEN + n + (-(REC_HEADER_LEN + n) % ALIGN)
        if lsn == FOLD_MARK_LSN:
            try:
                kind, upto = orjson.loads(payload)
                if kind != "folded" or not isinstance(upto, int):
                    raise ValueError(kind)
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                raise corrupt(path, f"record at offset {off} (lsn 0) is not a fold mark: {exc}") from exc
            folded = max(folded, upto)
            off += step
            continue
        if lsn != expected:
            raise corrupt(path, f"intent record at offset {off} has lsn {lsn}, expected {expected} "
                           f"({'a gap' if lsn > expected else 'out of order'})")
        try:
            values = tuple(orjson.loads(payload))
            seq = int(values[1])
            str(values[0])
        except (orjson.JSONDecodeError, TypeError, ValueError, IndexError) as exc:
            raise corrupt(path, f"intent record at offset {off} (lsn {lsn}) is not an order row: {exc}") from exc
        if len(values) != 11:
            raise corrupt(path, f"intent record at offset {off} (lsn {lsn}) has {len(values)} fields, expected 11")
        if seq < base_seq:
            raise corrupt(path, f"intent record at offset {off} (lsn {lsn}, {values[0]}) has client order sequence "
                           f"{seq}, lower than the journal's sequence {base_seq} when this log was started")
        records.append(LogRecord(lsn, off, values))
        expected = lsn + 1
        off += step
    return Scan(path, jid, base_lsn, base_seq, records, off, torn, folded)


def _fsync_dir(path: str) -> None:
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _zero_fill(fd: int, start: int, nbytes: int) -> None:
    off = start
    end = start + nbytes
    while off < end:
        chunk = _ZERO_CHUNK[: min(len(_ZERO_CHUNK), end - off)]
        off += os.pwrite(fd, chunk, off)


def create(path: str, journal_id: str, base_lsn: int, base_seq: int, created_ns: int,
           preallocate: int | None = None) -> None:
    """Start a new, empty log at `path` (atomically: temp file, zero fill, fsync, rename, fsync dir);
    `preallocate` bytes of written zeros (PREALLOCATE_BYTES)."""
    if preallocate is None:
        preallocate = PREALLOCATE_BYTES
    tmp = f"{path}.new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, _header_bytes(journal_id, base_lsn, base_seq, created_ns), 0)
        _zero_fill(fd, HEADER_LEN, max(preallocate - HEADER_LEN, 0))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path)


class IntentLog:
    """The open log: `append` on the loop thread, the `journal-intent-log` thread writes and fsyncs.

    `on_durable(max_seq)` runs on the sync thread after each group's fdatasync and before
    its futures resolve (the Journal reserves sequences in the mark there); `on_fatal(err)`
    when a write or fsync fails (the journal stops; a failed fsync is never retried).
    """

    def __init__(self, path: str, base_lsn: int, *, on_durable: Callable[[int], None],
                 on_fatal: Callable[[JournalWriteError], None], journal_path: str,
                 journal_id: str = "", base_seq: int = 0) -> None:
        self.path = path
        self._journal_path = journal_path
        self._journal_id = journal_id
        self._base_seq = base_seq  # every intent of this run has a sequence at or above it
        self._fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        self._size = os.fstat(self._fd).st_size
        self._offset = HEADER_LEN  # next write (sync thread)
        self._next_lsn = base_lsn  # loop thread
        self._on_durable = on_durable
        self._on_fatal = on_fatal
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # wakes the sync thread
        self._idle = threading.Condition(lock)  # wakes wait_idle() callers
        self._pending: list[bytes] = []
        self._futs: list[tuple[asyncio.Future[int], int]] = []
        self._max_seq = -1
        self._pending_lsn = base_lsn - 1  # lsn of the newest pending intent (under _cond)
        self._written_lsn = base_lsn - 1  # lsn of the newest intent written (sync thread)
        self.rotations = 0
        self._folded = 0  # newest lsn SQLite committed (writer thread, under _cond)
        self._folded_written = 0  # the newest fold mark written (sync thread)
        self._stop = False
        self._busy = False  # a pass of the sync thread is running (under _cond)
        self._failed: JournalWriteError | None = None
        # Metrics (sync thread): groups fsynced, records made durable, the last fdatasync's duration.
        self.groups = 0
        self.records = 0
        self.last_sync_s = 0.0
        self._thread = threading.Thread(target=self._main, name="journal-intent-log", daemon=True)
        self._thread.start()

    def append(self, values: tuple[Any, ...], fut: asyncio.Future[int]) -> int:
        """Hand one intent row to the sync thread; `fut` resolves to its sequence once it is on disk.
        Returns its lsn. ValueError if the row is too long (the caller takes the SQLite path)."""
        lsn = self._next_lsn
        rec = encode(lsn, values)
        self._next_lsn = lsn + 1
        seq = values[1]
        with self._cond:
            if self._failed is not None:
                raise self._failed
            self._pending.append(rec)
            self._pending_lsn = lsn
            self._futs.append((fut, seq))
            if seq > self._max_seq:
                self._max_seq = seq
            if len(self._pending) == 1:
                self._cond.notify()
        return lsn

    def note_folded(self, lsn: int) -> None:
        """The writer committed every intent up to `lsn` into SQLite: the sync thread writes a
        fold mark (with the next group, or on its own without an fsync when no intent waits)."""
        with self._cond:
            if lsn > self._folded:
                self._folded = lsn
                self._cond.notify()

    def _main(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._pending and not self._stop and self._folded <= self._folded_written:
                    cond.wait()
                if not self._pending and self._folded <= self._folded_written:
                    self._idle.notify_all()
                    return
                recs, futs, max_seq = self._pending, self._futs, self._max_seq
                self._pending, self._futs, self._max_seq = [], [], -1
                folded = self._folded
                group_lsn = self._pending_lsn
                self._busy = True
            try:
                if not self._pass(recs, futs, max_seq, folded, group_lsn):
                    return
            finally:
                with cond:
                    self._busy = False
                    self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until everything handed over is written and every fold noted is marked (tests,
        tools); False on timeout."""
        with self._cond:
            return self._idle.wait_for(
                lambda: self._failed is not None or (
                    not self._busy and not self._pending and self._folded <= self._folded_written), timeout)

    def _pass(self, recs: list[bytes], futs: list[tuple[asyncio.Future[int], int]], max_seq: int, folded: int,
              group_lsn: int) -> bool:
        """Write (and fsync, when intents wait) one group; False once the log failed."""
        if folded > self._folded_written:
            recs.insert(0, encode(FOLD_MARK_LSN, ("folded", folded)))
            self._folded_written = folded
        data = recs[0] if len(recs) == 1 else b"".join(recs)
        try:
            if self._offset + len(data) > self._size:
                self._extend(len(data))
            written = os.pwrite(self._fd, data, self._offset)
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
            self._offset += len(data)
            self._written_lsn = group_lsn
            if not futs:  # a fold mark alone: the next group's fdatasync carries it
                return self._maybe_rotate(folded)
            t0 = time.perf_counter()
            os.fdatasync(self._fd)
            self.last_sync_s = time.perf_counter() - t0
            self._on_durable(max_seq)
        except Exception as exc:  # I/O error, disk full, the mark: stop; never retry an fsync
            err = exc if isinstance(exc, JournalWriteError) else JournalWriteError(
                self._journal_path, f"intent log {self.path}: write or fsync failed, journal stopped: {exc!r}")
            self._fail(err, futs)
            return False
        self.groups += 1
        self.records += len(futs)
        _resolve(futs, None)
        if not self._maybe_rotate(folded):
            return False
        if self._size - self._offset < PREALLOCATE_BYTES // 4:
            try:
                self._extend(0)
            except OSError as exc:  # retried before the next write that needs it
                log.warning("intent_log_extend_failed", path=self.path, error=repr(exc))
        return True

    def _fail(self, err: JournalWriteError, futs: list[tuple[asyncio.Future[int], int]]) -> None:
        """Stop: fail `futs` and everything pending, tell the journal."""
        with self._cond:
            self._failed = err
            futs = futs + self._futs
            self._pending, self._futs = [], []
        self._on_fatal(err)
        _resolve(futs, err)

    def _maybe_rotate(self, folded: int) -> bool:
        """Start over in a new file once this one is past ROTATE_BYTES and SQLite committed every
        intent written to it (`folded`); False if that failed (the journal is stopped then: the
        file at `path` may already be the new one while we still write the old)."""
        if self._offset < ROTATE_BYTES or folded < self._written_lsn or not self._journal_id:
            return True
        try:
            create(self.path, self._journal_id, self._written_lsn + 1, self._base_seq, time.time_ns())
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._fail(JournalWriteError(self._journal_path, f"intent log {self.path}: could not start a new "
                                         f"log file, journal stopped: {exc!r}"), [])
            return False
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._offset = HEADER_LEN
        self.rotations += 1
        log.info("intent_log_rotated", path=self.path, base_lsn=self._written_lsn + 1)
        return True

    def _extend(self, need: int) -> None:
        """Zero-fill PREALLOCATE_BYTES more (at least `need`) at the end, fsync with the size."""
        grow = max(PREALLOCATE_BYTES, need + PREALLOCATE_BYTES // 4)
        _zero_fill(self._fd, self._size, grow)
        os.fsync(self._fd)
        self._size += grow

    def close(self) -> None:
        """Write what is pending, stop the thread, close the file."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _resolve(futs: list[tuple[asyncio.Future[int], int]], err: BaseException | None) -> None:
    """Resolve on each future's loop (one call_soon_threadsafe per loop)."""
    if not futs:
        return
    groups: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
    for item in futs:
        groups.setdefault(item[0].get_loop(), []).append(item)
    for loop, items in groups.items():
        with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
            loop.call_soon_threadsafe(_set, items, err)


def _set(items: list[tuple[asyncio.Future[int], int]], err: BaseException | None) -> None:
    for fut, seq in items:
        if fut.done():
            continue
        if err is None:
            fut.set_result(seq)
        else:
            fut.set_exception(err)
