"""The durable journal: SQLite in WAL mode, one writer thread, group commit.

Durability points (see docs/JOURNAL.md):

* `record_intent` and `record_fill` (and `flush`) return awaitable futures that resolve
  only after the transaction holding their rows is committed with `synchronous=FULL`
  (fsync of the WAL). The execution engine sends an order only after its intent resolved,
  so a client order id that reached a venue is always on disk, and a recovered node never
  re-issues its sequence number.
* Order status updates, position snapshots, audit rows and events are fire-and-forget:
  queued and written in the next commit (at most `commit_interval_ms` later, sooner when
  a durable write arrives). A crash can lose only these, and only those queued after the
  last commit.

Threading: one writer thread owns the write connection. It takes everything queued,
executes it in one transaction, commits once, then resolves the awaiting futures with a
single `call_soon_threadsafe` per batch, so the event loop never waits on fsync and the
hot path costs a future and a queue put. Reads use a separate read-only connection:
the sync `load_*` API (startup recovery, may block) and `query_*` / `read()` coroutines
that run on a dedicated read thread (HTTP endpoints). Write methods must be called from
the event loop thread.

`Journal.open(":memory:")` is the backtest mode: no file, no fsync, no thread; writes
execute inline and their futures are already resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import re
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, is_dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import orjson
import structlog

from nautilus_hmm.core.clock import Clock, LiveClock
from nautilus_hmm.core.ids import client_order_id as make_client_order_id
from nautilus_hmm.core.ids import new_epoch, parse_journal_sequence
from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.domain.enums import OrderStatus
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.journal import chain, hwm
from nautilus_hmm.journal.config import JournalConfig
from nautilus_hmm.journal.errors import (
    DuplicateClientOrderIdError,
    JournalClosedError,
    JournalCorruptError,
    JournalError,
    JournalInUseError,
    JournalSchemaError,
    JournalWriteError,
)
from nautilus_hmm.journal.rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    ORDER_EVENT_COLUMNS,
    AuditRow,
    EventRow,
    FillRow,
    OrderEventRow,
    OrderRow,
    PositionSnapshotRow,
    RowParser,
)
from nautilus_hmm.journal.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    TERMINAL_STATUSES,
    application_id,
    migrate,
    user_version,
)

log = structlog.get_logger("journal")

MEMORY = ":memory:"
FIRST_SEQ = 1
JOURNAL_ID_LEN = 6
_JOURNAL_ID_ALPHABET = string.ascii_lowercase + string.digits
_JOURNAL_ID_RE = re.compile(r"^[a-z0-9]{6}$")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_HEADER_LEN = 100
_QUICK_CHECK_MAX_ROWS = 5
_TABLES = ("orders", "order_events", "fills", "position_snapshots", "audit", "events")
_OPEN_ONLY = f"status NOT IN ({', '.join(repr(s) for s in TERMINAL_STATUSES)})"

T = TypeVar("T")

# A queued write: (op, future or None, loop or None, payload). `op` runs on the write
# connection inside the batch transaction and returns the future's result.
_Op = Callable[[sqlite3.Connection, Any], Any]
_Item = tuple[_Op | None, "asyncio.Future[Any] | None", "asyncio.AbstractEventLoop | None", Any]
_STOP: _Item = (None, None, None, None)
_SKIPPED = object()  # an op's result when it wrote nothing (not counted in rows_written)


def _insert(table: str, columns: tuple[str, ...], tail: str = "") -> str:
    """INSERT binding `columns` then `chk` (the chained columns first, in chain.CHAINED order)."""
    cols = (*columns, "chk")
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}){tail}"


# An order row: its chained (immutable) columns and chk, then its state and state_chk.
_ORDER_INSERT_COLUMNS = (*chain.CHAINED["orders"][1], "chk", *chain.ORDER_STATE_COLUMNS[1:], "state_chk")
_INSERT_ORDER = (
    f"INSERT INTO orders ({', '.join(_ORDER_INSERT_COLUMNS)}) VALUES ({', '.join('?' * len(_ORDER_INSERT_COLUMNS))})"
)
_INSERT_ORDER_EVENT = _insert("order_events", chain.CHAINED["order_events"][1])
# None keeps the stored avg_px / venue_order_id / reason; state_chk covers the result.
_UPDATE_ORDER = (
    "UPDATE orders SET status = ?1, filled_qty = ?2, avg_px = COALESCE(?3, avg_px),"
    " venue_order_id = COALESCE(?4, venue_order_id), reason = COALESCE(?5, reason), updated_ns = ?6,"
    " state_chk = nh_chk(client_order_id, ?1, ?2, COALESCE(?3, avg_px), COALESCE(?4, venue_order_id),"
    " COALESCE(?5, reason), ?6) WHERE client_order_id = ?7"
)
# Only the (venue, instrument, trade id) conflict is a replay; any other constraint
# violation (bad side ...) must raise, which `INSERT OR IGNORE` would hide.
_INSERT_FILL = _insert("fills", chain.CHAINED["fills"][1], " ON CONFLICT (venue, instrument_id, trade_id) DO NOTHING")
_INSERT_SNAPSHOT = _insert("position_snapshots", chain.CHAINED["position_snapshots"][1])
_INSERT_AUDIT = _insert("audit", chain.CHAINED["audit"][1])
_INSERT_EVENT = _insert("events", chain.CHAINED["events"][1])
_UPDATE_ORDER_UNCHECKED = (  # the in-memory journal keeps no checksums
    "UPDATE orders SET status = ?1, filled_qty = ?2, avg_px = COALESCE(?3, avg_px),"
    " venue_order_id = COALESCE(?4, venue_order_id), reason = COALESCE(?5, reason), updated_ns = ?6"
    " WHERE client_order_id = ?7"
)
_SET_NEXT_SEQ = "UPDATE meta SET value = ?1, chk = nh_chk('next_seq', ?1) WHERE key = 'next_seq'"


# With synchronous=NORMAL a power loss may take the last commits, intents included; the
# sequence jumps this far on every open so such an id is never minted twice.
SEQ_GAP_UNSYNCED = 10_000

class Journal:
    """The durable journal. Create with `Journal.open(path)`; stop with `close()`/`aclose()`."""

    name = "journal"

    def __init__(
        self,
        *,
        path: str,
        write_conn: sqlite3.Connection,
        read_conn: sqlite3.Connection,
        shared_conn: bool,
        lock_fd: int | None,
        journal_id: str,
        next_seq: int,
        schema_version: int,
        durable: bool,
        inline: bool,
        commit_interval_ms: float,
        max_batch_rows: int,
        max_queue_rows: int,
        pragmas: dict[str, Any],
        chain_tails: dict[str, int] | None = None,
        mark_path: str | None = None,
        reserved_seq: int = 0,
        tail_status: hwm.TailStatus = hwm.TailStatus.NEW,
    ) -> None:
        """Use `Journal.open`; this constructor takes already validated connections."""
        self.path = path
        self.journal_id = journal_id
        # Random per open: client order ids of this start differ from every earlier start's
        # even where a lost journal tail makes a sequence number come round again.
        self.epoch = new_epoch()
        self._own_infix = f"-{journal_id}-{self.epoch}-"
        # What the sequence mark said about rows lost before this start (hwm.TailStatus);
        # reconciliation reads it.
        self.tail_status = tail_status
        self.opened_next_seq = next_seq
        self.schema_version = schema_version
        self.durable = durable
        self.pragmas = pragmas  # the write connection's settings, read back after open
        self.max_batch_rows = max_batch_rows
        self.max_queue_rows = max_queue_rows
        self.commit_interval_ms = commit_interval_ms
        # Metrics (plain attributes, written by the writer thread; the integrator exports).
        self.rows_written = 0  # logical records committed (an intent, a fill, an update ...)
        self.commits = 0
        self.last_commit_latency_s = 0.0  # duration of the COMMIT (the fsync)
        self.last_batch_latency_s = 0.0  # execute + commit of the last batch
        self.last_batch_rows = 0
        self.duplicate_fills = 0  # replayed fills ignored
        self.failed_rows = 0  # fire-and-forget rows that could not be written (logged)
        self.dropped_rows = 0  # snapshots/events shed because the queue was over max_queue_rows

        self._wconn = write_conn
        self._rconn = read_conn
        self._wlock = threading.Lock()
        # In memory mode both APIs share one connection, so reads take the write lock.
        self._rlock = self._wlock if shared_conn else threading.Lock()
        self._lock_fd = lock_fd
        self._inline = inline
        self._next_seq = next_seq  # next sequence to hand out (event loop thread only)
        self._stored_next_seq = next_seq  # meta.next_seq as committed (writer only)
        self._batch_max_seq = -1
        # Chained checksums (journal/chain.py): the newest chk per table, writer thread
        # only; None turns them off (the in-memory backtest journal has no file to damage).
        self._tails = chain_tails
        # Sequence high-water mark outside the database (journal/hwm.py); None in memory.
        self._mark_path = mark_path
        self._reserved_seq = reserved_seq  # writer only: sequences below it are reserved on disk
        self._parser = RowParser(path)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._closed = False
        self._fatal: JournalWriteError | None = None
        self._fatal_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._reader: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        if not inline:
            self._thread = threading.Thread(target=self._writer_main, name="journal-writer", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ open

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        durable: bool = True,
        synchronous: str | None = None,
        commit_interval_ms: float = 50.0,
        max_batch_rows: int = 1000,
        max_queue_rows: int = 100_000,
        clock: Clock | None = None,
    ) -> Journal:
        """Open (creating or migrating) the journal at `path`, or refuse with a JournalError.

        `synchronous` is "full" (fsync every commit: survives power loss; the default when
        durable) or "normal" (WAL without fsync per commit: survives a process crash,
        may lose the last commits on power loss). With "normal" the order sequence skips
        ahead by SEQ_GAP_UNSYNCED on every open, so an id whose intent a power loss took
        is never minted again.

        Refuses, leaving the file untouched: a file that is empty, not SQLite, truncated
        or fails `PRAGMA quick_check`; a SQLite file that is not a nautilus-hmm journal;
        a schema newer than this code; a journal held open by another process. Never
        recreates or overwrites an existing file. `durable=False` turns fsync off
        (backtests on a file); `":memory:"` needs no file at all.
        """
        clock = clock or LiveClock()
        p = os.fspath(path)
        if p == MEMORY:
            return cls._open_memory(commit_interval_ms, max_batch_rows, max_queue_rows, clock)
        lock_fd = _acquire_lock(p)
        try:
            created = not os.path.exists(p)
            if created:
                if not create:
                    raise JournalError(p, "does not exist (create=False)")
                if os.path.exists(f"{p}-wal"):
                    # SQLite would replay this orphan WAL into the new database.
                    raise JournalCorruptError(
                        p, f"the database is missing but {p}-wal exists (incomplete delete or lost file); "
                        "restore the database or move the -wal file aside"
                    )
                _create_database(p, clock)
            else:
                _check_file(p)
                _warn_if_readable_by_others(p)
            version = _check_database(p)
            if version < SCHEMA_VERSION:
                _backup_and_migrate(p, version, clock)
            sync = (synchronous or ("full" if durable else "off")).upper()
            if sync not in ("FULL", "NORMAL", "OFF"):
                raise ValueError(f"journal synchronous = {synchronous!r}: must be full, normal or off")
            try:
                wconn = _connect(p, "rw")
            except sqlite3.Error as exc:
                raise _unwritable(p, exc) from exc
            try:
                pragmas = _configure(wconn, sync)
                tails = chain.verify(wconn, p)
                journal_id, db_next_seq = _load_meta(wconn, p)
                mark_file = hwm.mark_path(p)
                mark = _read_mark(mark_file)
                status = hwm.tail_status(mark, journal_id, db_next_seq, created)
                next_seq = db_next_seq
                if mark is not None and mark.journal_id == journal_id:
                    next_seq = max(next_seq, mark.reserved_seq)
                if sync != "FULL":
                    next_seq += SEQ_GAP_UNSYNCED
                # The database never lags the mark it starts from; the write also proves, before
                # anything trades, that the journal can be written at all.
                wconn.execute(_SET_NEXT_SEQ, (str(next_seq),))
                reserved_seq = next_seq + hwm.BLOCK_SEQS
                hwm.write(mark_file, hwm.HighWaterMark(journal_id, reserved_seq, clean=False))
                rconn = _connect(p, "ro")
                rconn.execute("PRAGMA query_only = ON")
            except sqlite3.OperationalError as exc:
                wconn.close()
                raise _unwritable(p, exc) from exc
            except OSError as exc:
                wconn.close()
                raise _unwritable(p, exc, hwm.mark_path(p)) from exc
            except BaseException:
                wconn.close()
                raise
        except BaseException:
            _release_lock(lock_fd)
            raise
        log.info(
            "journal_opened", path=p, journal_id=journal_id, schema_version=SCHEMA_VERSION,
            next_seq=next_seq, durable=durable, synchronous=pragmas["synchronous"], tail=status.value,
        )
        if status is hwm.TailStatus.UNVERIFIED:
            log.warning("journal_tail_unverified", path=p, next_seq=next_seq,
                        detail="the last run did not close cleanly; reconciliation checks the venues for "
                        "orders and fills of ours that the journal lacks")
        elif status in (hwm.TailStatus.LOST, hwm.TailStatus.NO_MARK):
            log.error("journal_tail_lost" if status is hwm.TailStatus.LOST else "journal_mark_missing",
                      path=p, mark=mark_file, db_next_seq=db_next_seq, next_seq=next_seq,
                      detail="rows may be missing; reconciliation adopts what the venues know and trading "
                      "stays halted until an operator resumes")
        return cls(
            path=p, write_conn=wconn, read_conn=rconn, shared_conn=False, lock_fd=lock_fd,
            journal_id=journal_id, next_seq=next_seq, schema_version=SCHEMA_VERSION,
            durable=durable, inline=False, commit_interval_ms=commit_interval_ms,
            max_batch_rows=max_batch_rows, max_queue_rows=max_queue_rows, pragmas=pragmas,
            chain_tails=tails, mark_path=mark_file, reserved_seq=reserved_seq, tail_status=status,
        )

    @classmethod
    def open_config(cls, cfg: JournalConfig, state_dir: str | os.PathLike[str]) -> Journal:
        """Open from a `JournalConfig`; a relative `cfg.path` is under `state_dir`."""
        p = Path(cfg.path)
        if not p.is_absolute() and cfg.path != MEMORY:
            p = Path(state_dir) / p
        target = MEMORY if cfg.path == MEMORY else p
        return cls.open(target, synchronous=cfg.synchronous, commit_interval_ms=cfg.commit_interval_ms)

    @classmethod
    def _open_memory(
        cls, commit_interval_ms: float, max_batch_rows: int, max_queue_rows: int, clock: Clock
    ) -> Journal:
        conn = sqlite3.connect(MEMORY, isolation_level=None, check_same_thread=False)
        migrate(conn)
        _init_meta(conn, clock)
        pragmas = _configure(conn, "OFF")
        journal_id, next_seq = _load_meta(conn, MEMORY)
        return cls(
            path=MEMORY, write_conn=conn, read_conn=conn, shared_conn=True, lock_fd=None,
            journal_id=journal_id, next_seq=next_seq, schema_version=SCHEMA_VERSION,
            durable=False, inline=True, commit_interval_ms=commit_interval_ms,
            max_batch_rows=max_batch_rows, max_queue_rows=max_queue_rows, pragmas=pragmas,
        )

    # ------------------------------------------------------------- sequences

    @property
    def next_seq(self) -> int:
        """The sequence `allocate_seq()` will hand out next."""
        return self._next_seq

    def allocate_seq(self) -> int:
        """Hand out the next client order sequence (in memory; made durable by record_intent).

        A sequence is committed together with its intent row before the order may be
        sent; one allocated but never journaled (crash before the commit) never reached a
        venue, so handing it out again after a restart cannot duplicate an order.
        """
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq

    def next_client_order_id(self, prefix: str) -> str:
        """Allocate a sequence and return `<prefix>-<journal id>-<epoch>-<seq>` (see core.ids)."""
        return make_client_order_id(prefix, self.journal_id, self.allocate_seq(), self.epoch)

    def observe_seq(self, seq: int) -> None:
        """A sequence of ours seen elsewhere (at a venue): never hand it out, nor any below it."""
        if seq >= self._next_seq:
            self._next_seq = seq + 1

    def _seq_of(self, cid: str) -> int:
        head, _, tail = cid.rpartition("-")
        # Fast path (the hot path): an id of this start, `<prefix>-<journal id>-<epoch>-<seq>`.
        if tail.isdigit() and len(head) >= len(self._own_infix) and (head + "-").endswith(self._own_infix):
            return int(tail)
        seq = parse_journal_sequence(cid, self.journal_id)
        if seq is None:
            raise ValueError(
                f"client order id {cid!r} was not minted by journal {self.journal_id!r} "
                f"(expected '<prefix>-{self.journal_id}-<epoch>-<seq>')"
            )
        return seq

    # ---------------------------------------------------------------- writes

    def record_intent(self, req: OrderRequest, strategy_id: str, ts_ns: int) -> asyncio.Future[int]:
        """Journal a new order (status NEW) durably; await it before sending. Resolves to its seq.

        The id must come from `next_client_order_id` (or carry this journal's id). The
        future fails with DuplicateClientOrderIdError if the id or its sequence is
        already journaled: that order must not be sent.
        """
        self._check_writable()
        seq = self._seq_of(req.client_order_id)
        qty = req.quantity
        if not qty.is_finite() or qty <= 0:
            raise ValueError(f"order {req.client_order_id}: quantity must be finite and > 0, got {qty}")
        if req.price is not None and (not req.price.is_finite() or req.price <= 0):
            raise ValueError(f"order {req.client_order_id}: price must be finite and > 0, got {req.price}")
        self.observe_seq(seq)
        fut = (loop := asyncio.get_running_loop()).create_future()
        self._submit((self._op_intent, fut, loop, (req, strategy_id, ts_ns, seq)))
        return fut

    def record_fill(self, venue: str, fill: VenueFill) -> asyncio.Future[bool]:
        """Journal an execution durably; resolves True, or False if (venue, instrument, trade_id) exists."""
        self._check_writable()
        for name in ("qty", "price", "fee"):
            value = getattr(fill, name)
            if not value.is_finite():
                raise ValueError(f"fill {venue}/{fill.trade_id}: {name} must be finite, got {value}")
        fut = (loop := asyncio.get_running_loop()).create_future()
        self._submit((self._op_fill, fut, loop, (venue, fill)))
        return fut

    def record_adopted_order(self, vo: VenueOrder, strategy_id: str, ts_ns: int) -> asyncio.Future[bool]:
        """Journal an order found at a venue that the journal lacks, durably; resolves False if known.

        Its sequence (when the id is ours) is taken out of circulation, so the id is never
        minted again even by a journal that lost it.
        """
        self._check_writable()
        seq = parse_journal_sequence(vo.client_order_id, self.journal_id)
        if seq is not None:
            self.observe_seq(seq)
        fut = (loop := asyncio.get_running_loop()).create_future()
        self._submit((self._op_adopt, fut, loop, (vo, strategy_id, ts_ns, seq)))
        return fut

    def flush(self) -> asyncio.Future[None]:
        """Resolves once everything queued before this call is committed."""
        self._check_writable()
        fut = (loop := asyncio.get_running_loop()).create_future()
        self._submit((_op_noop, fut, loop, None))
        return fut

    def record_order_update(
        self,
        client_order_id: str,
        status: OrderStatus,
        filled_qty: Decimal,
        avg_px: Decimal | None,
        venue_order_id: str | None,
        reason: str | None,
        ts_ns: int,
    ) -> None:
        """Queue an order's new state and a history row (fire-and-forget; next commit).

        `avg_px`, `venue_order_id` and `reason` of None keep the stored value. An update
        of an order the journal does not know is logged and counted in `failed_rows`.
        """
        self._check_writable()
        if not filled_qty.is_finite() or (avg_px is not None and not avg_px.is_finite()):
            raise ValueError(f"order {client_order_id}: filled_qty/avg_px must be finite, got {filled_qty}/{avg_px}")
        self._submit((
            self._op_order_update, None, None,
            (client_order_id, status.value, str(filled_qty), None if avg_px is None else str(avg_px),
             venue_order_id, reason, ts_ns),
        ))

    def record_position_snapshot(self, ts_ns: int, data: Any) -> None:
        """Queue a position snapshot (JSON-able; Decimal becomes text). Shed when the queue is full."""
        self._check_writable()
        if self._shed():
            return
        self._submit((self._op_snapshot, None, None, (ts_ns, _dumps(data))))

    def record_audit(self, ts_ns: int, action: str, remote: str, params: Any, result: str) -> None:
        """Queue an admin audit row (never shed)."""
        self._check_writable()
        self._submit((self._op_audit, None, None, (ts_ns, action, remote, _dumps(params), result)))

    def record_event(self, ts_ns: int, kind: str, data: Any) -> None:
        """Queue a generic event (decision, risk denial). Shed when the queue is full."""
        self._check_writable()
        if self._shed():
            return
        self._submit((self._op_event, None, None, (ts_ns, kind, _dumps(data))))

    @property
    def queue_depth(self) -> int:
        """Writes queued and not yet committed."""
        return self._queue.qsize()

    def _shed(self) -> bool:
        # Overflow policy: only snapshots and events are shed; intents, fills, order
        # updates and audit rows are never dropped.
        if self._queue.qsize() < self.max_queue_rows:
            return False
        self.dropped_rows += 1
        if self.dropped_rows % 1000 == 1:
            log.warning("journal_rows_dropped", dropped_total=self.dropped_rows, queue_depth=self._queue.qsize())
        return True

    def _check_writable(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise JournalClosedError(self.path, "journal is closed")

    def _submit(self, item: _Item) -> None:
        if self._inline:
            self._run_batch([item], _resolve_now)
        else:
            self._queue.put(item)

    # ---------------------------------------------------------- writer side

    def _append(self, conn: sqlite3.Connection, sql: str, table: str, values: tuple[Any, ...]) -> sqlite3.Cursor:
        """Insert a chained row (`sql` binds `values` then chk) and move the table's chain tail."""
        tails = self._tails
        if tails is None:
            return conn.execute(sql, (*values, None))
        chk = chain.link(tails[table], values)
        cur = conn.execute(sql, (*values, chk))
        if cur.rowcount == 1:
            tails[table] = chk
        return cur

    def _insert_order(self, conn: sqlite3.Connection, order: tuple[Any, ...], state: tuple[Any, ...]) -> None:
        """One order row: `order` in chain.CHAINED order, `state` in chain.ORDER_STATE_COLUMNS order."""
        tails = self._tails
        if tails is None:
            conn.execute(_INSERT_ORDER, (*order, None, *state[1:], None))
            return
        chk = chain.link(tails["orders"], order)
        conn.execute(_INSERT_ORDER, (*order, chk, *state[1:], chain.row_chk(*state)))
        tails["orders"] = chk  # only once the insert succeeded (a duplicate id raises above)

    def _op_intent(self, conn: sqlite3.Connection, p: tuple[OrderRequest, str, int, int]) -> int:
        req, strategy_id, ts_ns, seq = p
        cid = req.client_order_id
        try:
            self._insert_order(conn, (
                cid, seq, str(req.instrument_id), strategy_id, req.side.value,
                req.order_type.value, str(req.quantity), None if req.price is None else str(req.price),
                req.time_in_force.value, 1 if req.reduce_only else 0, ts_ns,
            ), (cid, "NEW", "0", None, None, "", ts_ns))
        except sqlite3.IntegrityError as exc:
            raise DuplicateClientOrderIdError(
                self.path, f"intent {cid} (seq {seq}) is already journaled: {exc}; do not send it"
            ) from exc
        self._append(conn, _INSERT_ORDER_EVENT, "order_events", (cid, ts_ns, "NEW", "0", None, None, ""))
        if seq > self._batch_max_seq:
            self._batch_max_seq = seq
        return seq

    def _op_adopt(self, conn: sqlite3.Connection, p: tuple[VenueOrder, str, int, int | None]) -> bool | object:
        vo, strategy_id, ts_ns, seq = p
        cid = vo.client_order_id
        if conn.execute("SELECT 1 FROM orders WHERE client_order_id = ?", (cid,)).fetchone():
            return _SKIPPED
        if seq is not None and conn.execute("SELECT 1 FROM orders WHERE seq = ?", (seq,)).fetchone():
            seq_col = None  # the sequence came round again (a start without the mark): keep both orders
        else:
            seq_col = seq
        avg_px = None if vo.avg_px is None else str(vo.avg_px)
        state = (cid, vo.status.value, str(vo.filled_qty), avg_px, vo.venue_order_id or None,
                 vo.reason or "adopted from the venue", ts_ns)
        self._insert_order(conn, (
            cid, seq_col, str(vo.instrument_id), strategy_id, vo.side.value, vo.order_type.value,
            str(vo.quantity), None if vo.price is None else str(vo.price), "GTC", 0, vo.ts_ns,
        ), state)
        self._append(conn, _INSERT_ORDER_EVENT, "order_events", (cid, ts_ns, *state[1:6]))
        if seq is not None and seq > self._batch_max_seq:
            self._batch_max_seq = seq
        return True

    def _op_fill(self, conn: sqlite3.Connection, p: tuple[str, VenueFill]) -> bool:
        venue, f = p
        cur = self._append(conn, _INSERT_FILL, "fills", (
            venue, f.trade_id, f.client_order_id, f.venue_order_id, str(f.instrument_id),
            f.side.value, str(f.qty), str(f.price), str(f.fee), f.fee_asset, f.liquidity.value, f.ts_ns,
        ))
        if cur.rowcount == 1:
            return True
        self.duplicate_fills += 1
        return False

    def _op_order_update(self, conn: sqlite3.Connection, p: tuple[Any, ...]) -> object:
        cid, status, filled_qty, avg_px, venue_order_id, reason, ts_ns = p
        sql = _UPDATE_ORDER if self._tails is not None else _UPDATE_ORDER_UNCHECKED
        cur = conn.execute(sql, (status, filled_qty, avg_px, venue_order_id, reason, ts_ns, cid))
        if cur.rowcount == 0:
            # Not journaled (an order placed elsewhere): no row to update or attach history to.
            self.failed_rows += 1
            log.warning("journal_update_unknown_order", client_order_id=cid, status=status)
            return _SKIPPED
        self._append(conn, _INSERT_ORDER_EVENT, "order_events",
                     (cid, ts_ns, status, filled_qty, avg_px, venue_order_id, reason or ""))
        return None

    def _op_snapshot(self, conn: sqlite3.Connection, p: tuple[int, str]) -> None:
        self._append(conn, _INSERT_SNAPSHOT, "position_snapshots", p)

    def _op_audit(self, conn: sqlite3.Connection, p: tuple[int, str, str, str, str]) -> None:
        self._append(conn, _INSERT_AUDIT, "audit", p)

    def _op_event(self, conn: sqlite3.Connection, p: tuple[int, str, str]) -> None:
        self._append(conn, _INSERT_EVENT, "events", p)

    def _reserve_seqs(self, upto_seq: int) -> None:
        """Write the mark before any sequence below `upto_seq` is acknowledged (writer thread)."""
        assert self._mark_path is not None
        reserved = upto_seq + hwm.BLOCK_SEQS
        try:
            hwm.write(self._mark_path, hwm.HighWaterMark(self.journal_id, reserved, clean=False))
        except OSError as exc:
            raise JournalWriteError(self.path, f"cannot write the sequence mark {self._mark_path}: {exc}") from exc
        self._reserved_seq = reserved

    def _writer_main(self) -> None:
        q = self._queue
        try:
            while True:
                first = q.get()
                batch = [first]
                stop = first is _STOP
                urgent = stop or first[1] is not None
                deadline = time.monotonic() + self.commit_interval_ms / 1000.0
                # Group commit: a durable write commits as soon as the queue is drained;
                # fire-and-forget rows wait up to commit_interval_ms for company.
                while len(batch) < self.max_batch_rows:
                    try:
                        if urgent:
                            item = q.get_nowait()
                        else:
                            remaining = deadline - time.monotonic()
                            item = q.get(timeout=remaining) if remaining > 0 else q.get_nowait()
                    except queue.Empty:
                        break
                    batch.append(item)
                    if item is _STOP:
                        stop = urgent = True
                    elif item[1] is not None:
                        urgent = True
                self._run_batch(batch, _resolve_threadsafe)
                if stop:
                    return
        except BaseException as exc:  # a bug in the writer: fail loudly, never hang callers
            self._set_fatal(JournalWriteError(self.path, f"writer thread crashed: {exc!r}"), _resolve_threadsafe)
            self._fail_queued(_resolve_threadsafe)
            raise

    def _run_batch(self, batch: list[_Item], resolve: Callable[[list[tuple[Any, Any, bool]]], None]) -> None:
        """Execute `batch` in one transaction, commit, then resolve its futures."""
        if self._fatal is not None:
            resolve([(fut, self._fatal, True) for _, fut, _, _ in batch if fut is not None])
            return
        results: list[tuple[Any, Any, bool]] = []
        rows = 0
        conn = self._wconn
        t0 = time.perf_counter()
        with self._wlock:
            self._batch_max_seq = -1
            try:
                conn.execute("BEGIN IMMEDIATE")
                for op, fut, _, payload in batch:
                    if op is None:
                        continue
                    try:
                        value = op(conn, payload)
                    except DuplicateClientOrderIdError as exc:
                        # Statement-level failure: SQLite keeps the rest of the transaction.
                        results.append((fut, exc, True))
                        continue
                    if value is _SKIPPED:
                        value = None
                    else:
                        rows += 1
                    if fut is not None:
                        results.append((fut, value, False))
                if self._batch_max_seq >= self._stored_next_seq:
                    conn.execute(_SET_NEXT_SEQ, (str(self._batch_max_seq + 1),))
                if self._mark_path is not None and self._batch_max_seq >= self._reserved_seq:
                    self._reserve_seqs(self._batch_max_seq + 1)
                t1 = time.perf_counter()
                conn.execute("COMMIT")
                t2 = time.perf_counter()
            except Exception as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                self._set_fatal(JournalWriteError(self.path, f"commit failed, journal stopped: {exc!r}"), resolve)
                resolve([(fut, self._fatal, True) for _, fut, _, _ in batch if fut is not None])
                return
        if self._batch_max_seq >= self._stored_next_seq:
            self._stored_next_seq = self._batch_max_seq + 1
        self.rows_written += rows
        self.commits += 1
        self.last_commit_latency_s = t2 - t1
        self.last_batch_latency_s = t2 - t0
        self.last_batch_rows = rows
        if results:
            resolve(results)

    def _set_fatal(self, err: JournalWriteError, resolve: Callable[..., None]) -> None:
        if self._fatal is not None:
            return
        self._fatal = err
        log.error("journal_write_failed", path=self.path, error=err.problem)
        for loop, event in list(self._fatal_waiters):
            if resolve is _resolve_now:
                event.set()
            else:
                with contextlib.suppress(RuntimeError):  # loop already closed
                    loop.call_soon_threadsafe(event.set)

    def _fail_queued(self, resolve: Callable[[list[tuple[Any, Any, bool]]], None]) -> None:
        pending: list[tuple[Any, Any, bool]] = []
        while True:
            try:
                _, fut, _, _ = self._queue.get_nowait()
            except queue.Empty:
                break
            if fut is not None:
                pending.append((fut, self._fatal, True))
        resolve(pending)

    # ------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Commit everything queued, stop the writer, close connections, release the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finish_close()

    def _finish_close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
        if self._reader is not None:
            self._reader.shutdown(wait=True)
        if self._mark_path is not None and self._fatal is None:
            # Everything is committed: the next start continues right after it, and can tell
            # from this mark whether the database still holds all of it.
            try:
                hwm.write(self._mark_path, hwm.HighWaterMark(self.journal_id, self._stored_next_seq, clean=True))
            except OSError as exc:
                log.error("journal_mark_write_failed", path=self._mark_path, error=str(exc))
        with self._rlock:
            if self._rconn is not self._wconn:
                self._rconn.close()
        with self._wlock:
            # The last connection to close checkpoints the WAL into the database file.
            self._wconn.close()
        _release_lock(self._lock_fd)
        self._lock_fd = None
        log.info("journal_closed", path=self.path, rows_written=self.rows_written, commits=self.commits)

    async def aclose(self) -> None:
        """`close()` without blocking the event loop on the final commit."""
        if self._closed:
            return
        self._closed = True  # on the loop thread: no write can be queued behind the stop marker
        await asyncio.get_running_loop().run_in_executor(None, self._finish_close)

    async def start(self) -> None:
        """Component hook: the journal is ready once `open()` returned."""

    async def run(self) -> None:
        """Component hook: returns never while healthy; raises JournalWriteError when writes fail."""
        if self._fatal is None:
            event = asyncio.Event()
            waiter = (asyncio.get_running_loop(), event)
            self._fatal_waiters.append(waiter)
            try:
                if self._fatal is None:
                    await event.wait()
            finally:
                self._fatal_waiters.remove(waiter)
        assert self._fatal is not None
        raise self._fatal

    async def stop(self) -> None:
        """Component hook: flush and close."""
        await self.aclose()

    def health(self) -> Health:
        """Unhealthy once a commit failed or after close; `info` carries the counters."""
        info: dict[str, object] = {
            "journal_id": self.journal_id,
            "rows_written": self.rows_written,
            "commits": self.commits,
            "last_commit_latency_s": self.last_commit_latency_s,
            "queue_depth": self.queue_depth,
            "dropped_rows": self.dropped_rows,
            "failed_rows": self.failed_rows,
        }
        if self._fatal is not None:
            return Health(False, self._fatal.problem, info)
        if self._closed:
            return Health(False, "closed", info)
        return Health(True, "", info)

    # ----------------------------------------------------------------- reads

    def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._closed:
            raise JournalClosedError(self.path, "journal is closed")
        with self._rlock:
            return self._rconn.execute(sql, params).fetchall()

    def load_orders(self, open_only: bool = False) -> list[OrderRow]:
        """Orders in journal order; `open_only` keeps the non-terminal ones (recovery)."""
        where = f" WHERE {_OPEN_ONLY}" if open_only else ""
        return self._parser.orders(self._select(f"SELECT {ORDER_COLUMNS} FROM orders{where} ORDER BY rowid"))

    def get_order(self, client_order_id: str) -> OrderRow | None:
        """One order by client order id, or None."""
        rows = self._select(f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,))
        return self._parser.orders(rows)[0] if rows else None

    def order_history(self, client_order_id: str) -> list[OrderEventRow]:
        """An order's status history, oldest first."""
        rows = self._select(
            f"SELECT {ORDER_EVENT_COLUMNS} FROM order_events WHERE client_order_id = ? ORDER BY id",
            (client_order_id,),
        )
        return self._parser.order_events(rows)

    def load_fills(self, since_ns: int = 0) -> list[FillRow]:
        """Fills with ts_ns >= since_ns, in (ts_ns, journal order): the order to replay them in."""
        rows = self._select(f"SELECT {FILL_COLUMNS} FROM fills WHERE ts_ns >= ? ORDER BY ts_ns, id", (since_ns,))
        return self._parser.fills(rows)

    def last_fill_ts_ns(self, venue: str) -> int | None:
        """Timestamp of the newest journaled fill of `venue`, or None."""
        return self._select("SELECT MAX(ts_ns) FROM fills WHERE venue = ?", (venue,))[0][0]

    def fill_exists(self, venue: str, trade_id: str, instrument_id: InstrumentId | str) -> bool:
        """True if this fill is journaled (trade ids are only unique per symbol on some venues)."""
        rows = self._select(
            "SELECT 1 FROM fills WHERE venue = ? AND instrument_id = ? AND trade_id = ?",
            (venue, str(instrument_id), trade_id),
        )
        return bool(rows)

    def latest_position_snapshot(self) -> PositionSnapshotRow | None:
        """The newest position snapshot, or None."""
        rows = self._select("SELECT id, ts_ns, data FROM position_snapshots ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        rid, ts_ns, data = rows[0]
        return PositionSnapshotRow(rid, ts_ns, orjson.loads(data))

    def audit_rows(self, limit: int = 100) -> list[AuditRow]:
        """The newest `limit` audit rows, newest first."""
        rows = self._select(
            "SELECT id, ts_ns, action, remote, params, result FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [AuditRow(r[0], r[1], r[2], r[3], orjson.loads(r[4]), r[5]) for r in rows]

    def events(self, kind: str | None = None, since_ns: int = 0, limit: int = 1000) -> list[EventRow]:
        """Generic events with ts_ns >= since_ns (of one kind, or all), oldest first."""
        if kind is None:
            rows = self._select(
                "SELECT id, ts_ns, kind, data FROM events WHERE ts_ns >= ? ORDER BY ts_ns, id LIMIT ?",
                (since_ns, limit),
            )
        else:
            rows = self._select(
                "SELECT id, ts_ns, kind, data FROM events WHERE kind = ? AND ts_ns >= ?"
                " ORDER BY ts_ns, id LIMIT ?",
                (kind, since_ns, limit),
            )
        return [EventRow(r[0], r[1], r[2], orjson.loads(r[3])) for r in rows]

    def counts(self) -> dict[str, int]:
        """Row count of every table, plus `open_orders`."""
        out = {t: self._select(f"SELECT COUNT(*) FROM {t}")[0][0] for t in _TABLES}
        out["open_orders"] = self._select(f"SELECT COUNT(*) FROM orders WHERE {_OPEN_ONLY}")[0][0]
        return out

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a sync read (e.g. `journal.load_orders`) on the read thread; the loop never blocks."""
        if self._closed:
            raise JournalClosedError(self.path, "journal is closed")
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-read")
        return await asyncio.get_running_loop().run_in_executor(self._reader, lambda: fn(*args))

    async def query_fills(self, since_ns: int = 0, limit: int = 1000) -> list[FillRow]:
        """Up to `limit` fills with ts_ns >= since_ns, oldest first, read off the loop."""
        return await self.read(self._fills_page, since_ns, limit)

    async def query_events(self, kind: str | None = None, since_ns: int = 0, limit: int = 1000) -> list[EventRow]:
        """`events()` read off the loop."""
        return await self.read(self.events, kind, since_ns, limit)

    async def query_audit(self, limit: int = 100) -> list[AuditRow]:
        """`audit_rows()` read off the loop."""
        return await self.read(self.audit_rows, limit)

    def _fills_page(self, since_ns: int, limit: int) -> list[FillRow]:
        rows = self._select(
            f"SELECT {FILL_COLUMNS} FROM fills WHERE ts_ns >= ? ORDER BY ts_ns, id LIMIT ?", (since_ns, limit)
        )
        return self._parser.fills(rows)


# --------------------------------------------------------------------- ops


def _op_noop(conn: sqlite3.Connection, payload: None) -> object:
    return _SKIPPED


# ------------------------------------------------------------- resolution


def _set_results(results: list[tuple[Any, Any, bool]]) -> None:
    for fut, value, is_exc in results:
        if fut.done():  # the awaiting task was cancelled
            continue
        if is_exc:
            fut.set_exception(value)
        else:
            fut.set_result(value)


def _resolve_now(results: list[tuple[Any, Any, bool]]) -> None:
    """Inline mode: we are on the loop thread."""
    _set_results(results)


def _resolve_threadsafe(results: list[tuple[Any, Any, bool]]) -> None:
    """Writer thread: one call_soon_threadsafe per loop per batch."""
    if not results:
        return
    loop = results[0][0].get_loop()
    if all(r[0].get_loop() is loop for r in results):
        groups = {loop: results}
    else:
        groups = {}
        for r in results:
            groups.setdefault(r[0].get_loop(), []).append(r)
    for lp, items in groups.items():
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            lp.call_soon_threadsafe(_set_results, items)


# ------------------------------------------------------------------- JSON


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, InstrumentId):
        return str(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _stringify_keys(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {(k if type(k) is str else str(getattr(k, "value", k))): _stringify_keys(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_stringify_keys(v) for v in obj]
    return obj


def _dumps(obj: Any) -> str:
    """JSON text; Decimal and InstrumentId become strings, non-str keys become str(key)."""
    opts = orjson.OPT_PASSTHROUGH_DATACLASS
    try:
        return orjson.dumps(obj, default=_json_default, option=opts).decode()
    except TypeError:
        return orjson.dumps(_stringify_keys(obj), default=_json_default, option=opts).decode()


# ------------------------------------------------------------ file checks


def _acquire_lock(path: str) -> int:
    """Exclusive advisory lock on `<path>.lock`: two nodes on one journal would mint the same ids."""
    lock_path = f"{path}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError as exc:
        raise JournalError(path, f"directory {os.path.dirname(path) or '.'!r} does not exist") from exc
    except OSError as exc:
        raise JournalError(path, f"cannot open lock file {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise JournalInUseError(path, f"in use by another process or Journal (lock {lock_path} is held)") from exc
    return fd


def _release_lock(fd: int | None) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _check_file(path: str) -> None:
    """Refuse what SQLite would treat as a new empty database or cannot read: read-only check."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header = f.read(_SQLITE_HEADER_LEN)
    except OSError as exc:
        raise JournalError(path, f"cannot read: {exc}") from exc
    if size == 0:
        raise JournalCorruptError(
            path, "file is empty (0 bytes), not a journal; refusing to start. Restore a backup, "
            "or remove the file to start a new journal (client order ids get a new journal id)"
        )
    if not header.startswith(_SQLITE_MAGIC):
        raise JournalCorruptError(
            path, f"not a SQLite database (header starts {header[:16]!r}); refusing to start, file left untouched"
        )
    if len(header) < _SQLITE_HEADER_LEN:
        raise JournalCorruptError(path, f"truncated: {size} bytes is shorter than the SQLite header")


def _check_database(path: str) -> int:
    """quick_check, application id and schema version on a read-only connection; returns the version."""
    has_journal = os.path.exists(f"{path}-wal") or os.path.exists(f"{path}-journal")
    # Without a WAL to replay, `immutable` reads the file without creating -wal/-shm files.
    mode = "ro" if has_journal else "ro&immutable=1"
    try:
        conn = _connect(path, mode)
    except sqlite3.Error as exc:
        raise JournalCorruptError(path, f"cannot open as SQLite: {exc}") from exc
    try:
        try:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check").fetchmany(_QUICK_CHECK_MAX_ROWS)]
        except sqlite3.DatabaseError as exc:
            raise JournalCorruptError(
                path, f"corrupt ({exc}); refusing to start, file left untouched. Restore a backup"
            ) from exc
        if problems != ["ok"]:
            raise JournalCorruptError(
                path, f"fails PRAGMA quick_check: {'; '.join(map(str, problems))}; refusing to start, "
                "file left untouched. Restore a backup"
            )
        app = application_id(conn)
        version = user_version(conn)
    finally:
        conn.close()
    if app != APPLICATION_ID:
        raise JournalSchemaError(
            path, f"is a SQLite database but not a nautilus-hmm journal (application_id {app:#x}, "
            f"expected {APPLICATION_ID:#x}); refusing to touch it"
        )
    if version > SCHEMA_VERSION:
        raise JournalSchemaError(
            path, f"schema version {version} is newer than this code knows ({SCHEMA_VERSION}); "
            "run a newer nautilus-hmm or restore a backup"
        )
    if version < 1:
        raise JournalSchemaError(path, f"has no schema version (user_version {version}); refusing to touch it")
    return version


def _connect(path: str, mode: str) -> sqlite3.Connection:
    """A connection by URI: `mode=rw` never creates the file; `ro` never writes it."""
    uri = f"file:{quote(path)}?mode={mode}"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def _configure(conn: sqlite3.Connection, synchronous: str) -> dict[str, Any]:
    """WAL, fsync policy, foreign keys; returns the settings as SQLite reports them.

    synchronous=FULL fsyncs the WAL at every commit, so a committed intent survives power
    loss, not only a process crash (NORMAL in WAL mode may lose the last commits on power
    loss: an order could be live at the venue while its intent and sequence are gone).
    """
    chain.register(conn)
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    return {
        "journal_mode": str(mode).lower(),
        "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[conn.execute("PRAGMA synchronous").fetchone()[0]],
        "foreign_keys": bool(conn.execute("PRAGMA foreign_keys").fetchone()[0]),
    }


def _new_journal_id() -> str:
    return "".join(secrets.choice(_JOURNAL_ID_ALPHABET) for _ in range(JOURNAL_ID_LEN))


def _init_meta(conn: sqlite3.Connection, clock: Clock) -> None:
    conn.execute("BEGIN IMMEDIATE")
    rows = [("journal_id", _new_journal_id()), ("next_seq", str(FIRST_SEQ)), ("created_ns", str(clock.time_ns()))]
    conn.executemany(
        "INSERT INTO meta (key, value, chk) VALUES (?, ?, ?)", [(k, v, chain.row_chk(k, v)) for k, v in rows]
    )
    conn.execute("COMMIT")


def _create_database(path: str, clock: Clock) -> None:
    """Build a new journal beside `path`, then link it into place: never a half-made file at `path`."""
    tmp = f"{path}.creating"
    for stale in (tmp, f"{tmp}-wal", f"{tmp}-shm"):  # a crashed creation, ours (we hold the lock)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    # Private from the first byte: SQLite gives -wal and -shm the main file's mode.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn)
        _init_meta(conn, clock)
    finally:
        conn.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails instead of overwriting if something appeared at `path`
    except FileExistsError as exc:
        os.unlink(tmp)
        raise JournalError(path, "appeared while the journal was being created; refusing to overwrite") from exc
    os.unlink(tmp)
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    log.info("journal_created", path=path, schema_version=SCHEMA_VERSION)


def _backup_and_migrate(path: str, version: int, clock: Clock) -> None:
    """Copy the database aside (`<path>.v<N>-<ns>.bak`), then apply the forward migrations."""
    backup = f"{path}.v{version}-{clock.time_ns()}.bak"
    conn = _connect(path, "rw")
    try:
        os.close(os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        dst = sqlite3.connect(backup)
        try:
            conn.backup(dst)
        finally:
            dst.close()
        log.info("journal_backup_written", path=path, backup=backup, schema_version=version)
        try:
            applied = migrate(conn)
        except sqlite3.Error as exc:
            raise JournalSchemaError(
                path, f"migration from version {user_version(conn)} failed: {exc}; backup at {backup}"
            ) from exc
    finally:
        conn.close()
    log.info("journal_migrated", path=path, from_version=version, to_version=SCHEMA_VERSION,
             applied=applied, backup=backup)


def _read_mark(path: str) -> hwm.HighWaterMark | None:
    """The sequence mark, or None (logged) when it cannot be read: the id epoch still keeps ids unique."""
    try:
        return hwm.read(path)
    except ValueError as exc:
        log.error("journal_mark_unreadable", path=path, error=str(exc),
                  detail="treated as missing; it is rewritten now")
        return None


def _unwritable(path: str, exc: BaseException, what: str | None = None) -> JournalError:
    """The journal (or its mark file) cannot be written: name the file and what to do."""
    target = what or path
    directory = os.path.dirname(os.path.abspath(target))
    return JournalError(
        path, f"cannot write {target}: {exc}; the node needs to write the journal, its -wal/-shm/.lock/.seq "
        f"files and their directory {directory} (read-only filesystem or wrong owner/permissions? "
        f"fix with chown/chmod, or point [node] state_dir elsewhere)"
    )


def _warn_if_readable_by_others(path: str) -> None:
    """The journal holds every order and fill: warn when group or others may read it."""
    for p in (path, os.path.dirname(os.path.abspath(path))):
        with contextlib.suppress(OSError):
            mode = os.stat(p).st_mode & 0o777
            if mode & 0o077:
                log.warning("journal_permissions_too_open", path=p, mode=oct(mode),
                            hint=f"chmod {'600' if p == path else '700'} {p}")


def _load_meta(conn: sqlite3.Connection, path: str) -> tuple[str, int]:
    """journal_id and the next sequence: max(meta.next_seq, highest journaled seq + 1)."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    journal_id = meta.get("journal_id", "")
    if not _JOURNAL_ID_RE.match(journal_id):
        raise JournalCorruptError(path, f"meta.journal_id is {journal_id!r}, expected 6 chars of [a-z0-9]")
    try:
        next_seq = int(meta["next_seq"])
    except (KeyError, ValueError) as exc:
        raise JournalCorruptError(path, f"meta.next_seq is {meta.get('next_seq')!r}, expected an integer") from exc
    max_seq = conn.execute("SELECT MAX(seq) FROM orders").fetchone()[0]
    if max_seq is not None and max_seq >= next_seq:
        next_seq = max_seq + 1
    return journal_id, next_seq
