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

Where the parts live: this module opens (or refuses) the journal, hands out sequences
and runs its lifecycle; `writer` holds the write API and the writer thread, `reads` the
read API, `files` the checks, creation and migration of the files before the open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from nautilus_hmm.core.clock import Clock, LiveClock
from nautilus_hmm.core.ids import client_order_id as make_client_order_id
from nautilus_hmm.core.ids import new_epoch, parse_journal_sequence
from nautilus_hmm.core.lifecycle import Health
from nautilus_hmm.journal import chain, files, hwm, intentlog
from nautilus_hmm.journal.config import JournalConfig
from nautilus_hmm.journal.errors import JournalCorruptError, JournalError, JournalWriteError
from nautilus_hmm.journal.files import FIRST_SEQ, JOURNAL_ID_LEN, MEMORY
from nautilus_hmm.journal.intentlog import IntentLog
from nautilus_hmm.journal.reads import JournalReads
from nautilus_hmm.journal.rows import RowParser
from nautilus_hmm.journal.schema import SCHEMA_VERSION, migrate
from nautilus_hmm.journal.writer import (
    _SET_NEXT_SEQ,
    _STOP,
    JournalWriter,
    _Item,
    insert_intent_row,
)

__all__ = ["FIRST_SEQ", "JOURNAL_ID_LEN", "MEMORY", "SEQ_GAP_UNSYNCED", "Journal"]

log = structlog.get_logger("journal")

# With synchronous=NORMAL a power loss may take the last commits, intents included; the
# sequence jumps this far on every open so such an id is never minted twice.
SEQ_GAP_UNSYNCED = 10_000
# Journals of an older schema were written before the sequence mark existed.
_FIRST_VERSION_WITH_MARK = 3
# WAL checkpoints run on their own thread and connection every CHECKPOINT_INTERVAL_S
# (PASSIVE: never waits for, nor blocks, the writer), not inside a commit: SQLite's
# automatic checkpoint (wal_autocheckpoint) runs in whichever commit crosses 1000 pages
# and fsyncs the database file there, a multi-millisecond stall on the order path.
CHECKPOINT_INTERVAL_S = 1.0
# With synchronous=NORMAL the loop thread commits intents itself and waits for a writer
# batch in progress (no fsync in it): the writer takes at most this many items per batch
# (a loop turn's hand-off bundle may add its rows beyond), bounding that wait.
NORMAL_MAX_BATCH_ROWS = 200
# After a checkpoint reset, the WAL file is truncated back to this size (bytes).
WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024


_SET_INTENT_LOG = (
    "INSERT INTO meta (key, value, chk) VALUES ('intent_log', ?1, nh_chk('intent_log', ?1))"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, chk = excluded.chk"
)


def _replay_intent_log(conn: sqlite3.Connection, path: str, journal_id: str, tails: dict[str, int],
                       status: hwm.TailStatus, *, keep: bool, restore_sync: str,
                       created: bool = False, none_reserved: bool = False) -> tuple[hwm.TailStatus, int, int, int]:
    """Fold the intents of `<path>.intents` that SQLite lacks into it (one FULL commit).

    Returns (tail status, the next sequence the log implies, the next log sequence number,
    intents folded). Refuses (JournalCorruptError) a damaged log (intentlog.scan) and a log
    whose intent disagrees with SQLite on an id's sequence. A log the database says is in
    use (meta `intent_log`) that is missing after a run that did not close cleanly may have
    held sent orders: the tail counts as lost (reconciliation fails, trading stays halted),
    unless this journal's mark says that no sequence was ever reserved (`none_reserved`: no
    intent was ever acknowledged, so the log held none; a start killed while creating it).
    Without `keep` (normal mode, the log turned off) the replayed log is removed afterwards.
    A log left beside a journal this start created (the old database is gone) belongs to
    that old journal: it is moved aside, kept for the operator, and the tail is `replaced`.
    """
    log_file = intentlog.log_path(path)
    if created and os.path.exists(log_file):
        aside = f"{log_file}.orphan-{time.time_ns()}"
        os.replace(log_file, aside)
        log.error("journal_intent_log_orphaned", path=path, intent_log=aside,
                  detail="an intent log lay where this start created a new journal: the journal it belongs to "
                  "is gone (its intents may have been sent); kept aside, reconciliation fails and trading "
                  "stays halted until an operator resumes")
        return hwm.TailStatus.REPLACED, 0, 1, 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'intent_log'").fetchone()
    meta_lsn = int(row[0]) if row is not None and str(row[0]).isdigit() else None
    scanned = intentlog.scan(log_file, journal_id)
    if scanned is None:
        if meta_lsn is not None and status not in (hwm.TailStatus.CLEAN, hwm.TailStatus.NEW) and not none_reserved:
            log.error("journal_intent_log_missing", path=path, intent_log=log_file,
                      detail="the intent log is gone after a run that did not close cleanly: intents of "
                      "orders that may have been sent can be lost; reconciliation fails and trading stays "
                      "halted until an operator resumes")
            status = hwm.TailStatus.LOST
        if meta_lsn is not None and not keep:
            conn.execute("DELETE FROM meta WHERE key = 'intent_log'")
        return status, 0, meta_lsn or 1, 0
    to_fold: list[intentlog.LogRecord] = []
    lost: list[intentlog.LogRecord] = []  # folded (committed) before, gone from SQLite since
    for rec in scanned.records:
        cid, seq = rec.client_order_id, rec.seq
        held = conn.execute("SELECT seq FROM orders WHERE client_order_id = ?", (cid,)).fetchone()
        if held is not None:
            if held[0] != seq:
                raise intentlog.corrupt(log_file, f"intent record at offset {rec.offset} (lsn {rec.lsn}): {cid} has "
                                        f"sequence {seq} but the database has it with {held[0]}")
            continue
        other = conn.execute("SELECT client_order_id FROM orders WHERE seq = ?", (seq,)).fetchone()
        if other is not None:
            raise intentlog.corrupt(log_file, f"intent record at offset {rec.offset} (lsn {rec.lsn}): sequence {seq} "
                                    f"of {cid} is held in the database by {other[0]}")
        to_fold.append(rec)
        if rec.lsn <= scanned.folded_lsn:
            lost.append(rec)
    if lost:
        # Not the lag of a crash: SQLite had committed these (the log's fold mark says so) and
        # lost them since (a damaged or deleted WAL, a restored database). Folded back in,
        # but what else that commit held is gone: the start must not trade on it unchecked.
        log.error("journal_rows_lost_from_database", path=path, intent_log=log_file, intents=len(lost),
                  first=lost[0].client_order_id, last=lost[-1].client_order_id, folded_lsn=scanned.folded_lsn,
                  detail="intents the database had committed are missing from it; they are restored from the "
                  "intent log, but other rows of those commits (fills, order updates) may be lost: "
                  "reconciliation fails and trading stays halted until an operator resumes")
        status = hwm.TailStatus.LOST
    if to_fold:
        conn.execute("PRAGMA synchronous = FULL")  # the log may be replaced right after this commit
        conn.execute("BEGIN IMMEDIATE")
        try:
            for rec in to_fold:
                insert_intent_row(conn, tails, rec.values, path)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute(f"PRAGMA synchronous = {restore_sync}")
        log.warning("journal_intents_replayed", path=path, intent_log=log_file, count=len(to_fold),
                    first=to_fold[0].client_order_id, last=to_fold[-1].client_order_id,
                    detail="intents made durable in the intent log but not yet in the database, folded in; "
                    "recovery asks the venues about each")
    if not keep:
        conn.execute("DELETE FROM meta WHERE key = 'intent_log'")
        os.unlink(log_file)
    return status, scanned.max_seq + 1, scanned.next_lsn, len(to_fold)


def _never_reserved(conn: sqlite3.Connection, mark: hwm.HighWaterMark | None, journal_id: str,
                    status: hwm.TailStatus, log_next_seq: int, replayed: int) -> bool:
    """Whether no sequence of this journal was ever reserved for an order (hwm.py `none_reserved`):
    a journal this start created where no other journal's mark lay, or this journal's mark says
    so, the tail is not lost, and neither the database nor the intent log holds an order."""
    if status is hwm.TailStatus.NEW:
        return True
    if status not in (hwm.TailStatus.UNVERIFIED, hwm.TailStatus.CLEAN):
        return False
    if mark is None or mark.journal_id != journal_id or not mark.none_reserved:
        return False
    if log_next_seq or replayed:
        return False
    return conn.execute("SELECT 1 FROM orders LIMIT 1").fetchone() is None


class Journal(JournalWriter, JournalReads):
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
        intent_log_path: str | None = None,
        intent_log_lsn: int = 1,
        replayed_intents: int = 0,
        never_reserved: bool = False,
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
        # True when no sequence of this journal was ever reserved for an order before this
        # start (a journal this start created, or the mark said `none_reserved` and the
        # database and intent log hold no order): reconciliation may then prove that no
        # order was ever sent under it (hwm.py).
        self.never_reserved = never_reserved
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
        # synchronous=NORMAL: intents are committed on the loop thread itself (no fsync to wait
        # for, so no thread hand-off); FULL: the writer thread commits them, the loop awaits.
        self._intent_on_loop = not inline and pragmas.get("synchronous") == "NORMAL"
        if self._intent_on_loop:
            # An intent waits on the loop for a writer batch in progress: keep batches short.
            self.max_batch_rows = min(max_batch_rows, NORMAL_MAX_BATCH_ROWS)
        self._next_seq = next_seq  # next sequence to hand out (event loop thread only)
        self._stored_next_seq = next_seq  # meta.next_seq as committed (writer only)
        self._batch_max_seq = -1
        self._batch_fold_lsn = 0  # the newest intent-log lsn folded in the batch (writer)
        # Chained checksums (journal/chain.py): the newest chk per table, writer thread
        # only; None turns them off (the in-memory backtest journal has no file to damage).
        self._tails = chain_tails
        # Sequence high-water mark outside the database (journal/hwm.py); None in memory.
        self._mark_path = mark_path
        self._reserved_seq = reserved_seq  # sequences below it are reserved on disk (under _mark_lock)
        self._mark_lock = threading.Lock()
        # Intents of the log replayed into SQLite by this open (journal/intentlog.py).
        self.replayed_intents = replayed_intents
        self._parser = RowParser(path)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._handoff_buf: list[_Item] = []  # fire-and-forget rows of this loop turn (writer._submit)
        self._closed = False
        self._fatal: JournalWriteError | None = None
        self._fatal_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._reader: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        self.checkpoints = 0  # checkpoint passes run (checkpoint thread)
        self.checkpoint_failures = 0
        self.last_checkpoint_s = 0.0  # duration of the last pass
        # The intent log (synchronous=FULL, intent_log on): intents of this run's sequences
        # (>= _log_base_seq) are durable once fsynced there; a bit each marks it journaled.
        self._ilog: IntentLog | None = None
        self._log_base_seq = sys.maxsize
        self._log_seen = bytearray()
        if intent_log_path is not None:
            self._log_base_seq = next_seq
            self._ilog = IntentLog(intent_log_path, intent_log_lsn, on_durable=self._log_durable,
                                   on_fatal=self._log_failed, journal_path=path, journal_id=journal_id,
                                   base_seq=next_seq)
        if not inline:
            self._thread = threading.Thread(target=self._writer_main, name="journal-writer", daemon=True)
            self._thread.start()
            self._checkpointer = threading.Thread(target=self._checkpoint_main, name="journal-checkpoint",
                                                  daemon=True)
            self._checkpointer.start()

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
        intent_log: bool = False,
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

        `intent_log` (with "full"): intents are made durable in the append-only intent log
        `<path>.intents` (journal/intentlog.py) and folded into SQLite off the order path.
        Whatever the mode, an existing intent log is read back first and every intent in it
        that SQLite lacks is folded in before this returns; a damaged log refuses the start
        (JournalCorruptError naming the file and offset).
        """
        clock = clock or LiveClock()
        p = os.fspath(path)
        if p == MEMORY:
            return cls._open_memory(commit_interval_ms, max_batch_rows, max_queue_rows, clock)
        lock_fd = files.acquire_lock(p)
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
                files.create_database(p, clock)
            else:
                files.check_file(p)
                files.warn_if_readable_by_others(p)
            version = files.check_database(p, thorough=not created and files.wal_lost(p))
            if version < SCHEMA_VERSION:
                files.backup_and_migrate(p, version, clock)
            sync = (synchronous or ("full" if durable else "off")).upper()
            if sync not in ("FULL", "NORMAL", "OFF"):
                raise ValueError(f"journal synchronous = {synchronous!r}: must be full, normal or off")
            try:
                wconn = files.connect(p, "rw")
            except sqlite3.Error as exc:
                raise files.unwritable(p, exc) from exc
            try:
                pragmas = files.configure(wconn, sync)
                # Checkpoints are the checkpoint thread's (CHECKPOINT_INTERVAL_S), never a commit's.
                wconn.execute("PRAGMA wal_autocheckpoint = 0")
                wconn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
                tails = chain.verify(wconn, p)
                journal_id, db_next_seq = files.load_meta(wconn, p)
                mark_file = hwm.mark_path(p)
                mark = files.read_mark(mark_file)
                status = hwm.tail_status(mark, journal_id, db_next_seq, created)
                next_seq = db_next_seq
                if mark is not None and mark.journal_id == journal_id:
                    next_seq = max(next_seq, mark.reserved_seq)
                use_log = intent_log and sync == "FULL"
                status, log_next_seq, log_lsn, replayed = _replay_intent_log(
                    wconn, p, journal_id, tails, status, keep=use_log, restore_sync=sync, created=created,
                    none_reserved=mark is not None and mark.journal_id == journal_id and mark.none_reserved)
                next_seq = max(next_seq, log_next_seq)
                if sync != "FULL":
                    next_seq += SEQ_GAP_UNSYNCED
                never_reserved = _never_reserved(wconn, mark, journal_id, status, log_next_seq, replayed)
                # The database never lags the mark it starts from; the write also proves, before
                # anything trades, that the journal can be written at all.
                wconn.execute(_SET_NEXT_SEQ, (str(next_seq),))
                # A journal that never reserved a sequence reserves none now: its first intent
                # writes the mark (without `none_reserved`) before it is acknowledged.
                reserved_seq = next_seq if never_reserved else next_seq + hwm.BLOCK_SEQS
                hwm.write(mark_file, hwm.HighWaterMark(journal_id, reserved_seq, clean=False,
                                                       none_reserved=never_reserved))
                log_file = None
                if use_log:
                    # The database says a log is in use (a missing one is then a loss), then the
                    # fresh log replaces the replayed one (whose intents SQLite now holds).
                    wconn.execute(_SET_INTENT_LOG, (str(log_lsn),))
                    log_file = intentlog.log_path(p)
                    intentlog.create(log_file, journal_id, log_lsn, next_seq, clock.time_ns())
                rconn = files.connect(p, "ro")
                rconn.execute("PRAGMA query_only = ON")
            except sqlite3.OperationalError as exc:
                wconn.close()
                raise files.unwritable(p, exc) from exc
            except OSError as exc:
                wconn.close()
                # the mark, or the intent log (its file is named in the error, when it has one)
                what = exc.filename if isinstance(exc.filename, str) else hwm.mark_path(p)
                raise files.unwritable(p, exc, what) from exc
            except BaseException:
                wconn.close()
                raise
        except BaseException:
            files.release_lock(lock_fd)
            raise
        log.info(
            "journal_opened", path=p, journal_id=journal_id, schema_version=SCHEMA_VERSION,
            next_seq=next_seq, durable=durable, synchronous=pragmas["synchronous"], tail=status.value,
            intent_log=use_log, replayed_intents=replayed,
        )
        if status is hwm.TailStatus.UNVERIFIED:
            log.warning("journal_tail_unverified", path=p, next_seq=next_seq,
                        detail="the last run did not close cleanly; reconciliation checks the venues for "
                        "orders and fills of ours that the journal lacks")
        elif status is hwm.TailStatus.REPLACED:
            log.error("journal_replaced", path=p, mark=mark_file,
                      previous_journal_id=mark.journal_id if mark is not None else None, journal_id=journal_id,
                      detail="a new journal was created where another journal's sequence mark lies: the old "
                      "journal file is gone; reconciliation fails and trading stays halted until an operator "
                      f"resumes (to start a new journal deliberately, move {p}* aside, the .seq file included)")
        elif status is hwm.TailStatus.NO_MARK and version < _FIRST_VERSION_WITH_MARK:
            log.info("journal_mark_created", path=p, mark=mark_file, next_seq=next_seq,
                     detail=f"first start of this journal with a sequence mark (schema {version} migrated)")
        elif status is hwm.TailStatus.LOST:
            log.error("journal_tail_lost", path=p, mark=mark_file, db_next_seq=db_next_seq, next_seq=next_seq,
                      detail="the database is behind its last clean close: rows were lost; reconciliation "
                      "fails and trading stays halted until an operator resumes")
        elif status is hwm.TailStatus.NO_MARK:
            log.error("journal_mark_missing", path=p, mark=mark_file, db_next_seq=db_next_seq, next_seq=next_seq,
                      detail="no sequence mark of this journal: rows may be missing; reconciliation checks the "
                      "venues for orders and fills of ours that the journal lacks")
        return cls(
            path=p, write_conn=wconn, read_conn=rconn, shared_conn=False, lock_fd=lock_fd,
            journal_id=journal_id, next_seq=next_seq, schema_version=SCHEMA_VERSION,
            durable=durable, inline=False, commit_interval_ms=commit_interval_ms,
            max_batch_rows=max_batch_rows, max_queue_rows=max_queue_rows, pragmas=pragmas,
            chain_tails=tails, mark_path=mark_file, reserved_seq=reserved_seq, tail_status=status,
            intent_log_path=log_file, intent_log_lsn=log_lsn, replayed_intents=replayed,
            never_reserved=never_reserved,
        )

    @classmethod
    def open_config(cls, cfg: JournalConfig, state_dir: str | os.PathLike[str]) -> Journal:
        """Open from a `JournalConfig`; a relative `cfg.path` is under `state_dir`."""
        p = Path(cfg.path)
        if not p.is_absolute() and cfg.path != MEMORY:
            p = Path(state_dir) / p
        target = MEMORY if cfg.path == MEMORY else p
        return cls.open(target, synchronous=cfg.synchronous, commit_interval_ms=cfg.commit_interval_ms,
                        intent_log=cfg.intent_log)

    @classmethod
    def _open_memory(
        cls, commit_interval_ms: float, max_batch_rows: int, max_queue_rows: int, clock: Clock
    ) -> Journal:
        conn = sqlite3.connect(MEMORY, isolation_level=None, check_same_thread=False)
        migrate(conn)
        files.init_meta(conn, clock)
        pragmas = files.configure(conn, "OFF")
        journal_id, next_seq = files.load_meta(conn, MEMORY)
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

    # ------------------------------------------------------------- checkpoints

    def checkpoint(self, conn: sqlite3.Connection | None = None) -> tuple[int, int]:
        """One PASSIVE WAL checkpoint: copies committed frames into the database file without
        waiting for (or blocking) the writer. Returns (frames in the WAL, frames checkpointed).
        Runs on the checkpoint thread; callable directly (tests, tools)."""
        own = conn is None
        if conn is None:
            conn = files.connect(self.path, "rw")
        t0 = time.perf_counter()
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            if own:
                conn.close()
        self.checkpoints += 1
        self.last_checkpoint_s = time.perf_counter() - t0
        return int(row[1]), int(row[2])

    def _checkpoint_main(self) -> None:
        """Checkpoint every CHECKPOINT_INTERVAL_S until close (a failure is logged, the next
        pass tries again; the WAL only grows meanwhile: no row is at risk)."""
        try:
            conn = files.connect(self.path, "rw")
        except sqlite3.Error as exc:
            self.checkpoint_failures += 1
            log.error("journal_checkpoint_failed", path=self.path, error=repr(exc),
                      detail="no checkpoint thread: the WAL grows until the journal is closed")
            return
        try:
            while not self._checkpoint_stop.wait(CHECKPOINT_INTERVAL_S):
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:
                    self.checkpoint_failures += 1
                    if self.checkpoint_failures % 100 == 1:
                        log.warning("journal_checkpoint_failed", path=self.path, error=repr(exc),
                                    failures=self.checkpoint_failures)
        finally:
            conn.close()

    # ------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Commit everything queued, stop the writer, close connections, release the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._handoff()
        self._finish_close()

    def _finish_close(self) -> None:
        if self._ilog is not None:
            self._ilog.close()  # what was appended is fsynced (its folds are queued already)
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
        if self._checkpointer is not None:
            # Before the write connection closes: the last connection to close checkpoints.
            self._checkpoint_stop.set()
            self._checkpointer.join()
        if self._reader is not None:
            self._reader.shutdown(wait=True)
        if self._mark_path is not None and self._fatal is None:
            # Everything is committed: the next start continues right after it, and can tell
            # from this mark whether the database still holds all of it.
            try:
                # Nothing reserved since the open (it reserved none): the mark still says so.
                none_reserved = self.never_reserved and self._reserved_seq <= self.opened_next_seq
                hwm.write(self._mark_path, hwm.HighWaterMark(self.journal_id, self._stored_next_seq, clean=True,
                                                             none_reserved=none_reserved))
            except OSError as exc:
                log.error("journal_mark_write_failed", path=self._mark_path, error=str(exc))
        with self._rlock:
            if self._rconn is not self._wconn:
                self._rconn.close()
        with self._wlock:
            # The last connection to close checkpoints the WAL into the database file.
            self._wconn.close()
        files.release_lock(self._lock_fd)
        self._lock_fd = None
        log.info("journal_closed", path=self.path, rows_written=self.rows_written, commits=self.commits)

    async def aclose(self) -> None:
        """`close()` without blocking the event loop on the final commit."""
        if self._closed:
            return
        self._closed = True  # on the loop thread: no write can be queued behind the stop marker
        self._handoff()
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
            "checkpoints": self.checkpoints,
            "checkpoint_failures": self.checkpoint_failures,
            "dropped_rows": self.dropped_rows,
            "failed_rows": self.failed_rows,
        }
        if self._ilog is not None:
            info["intent_log_groups"] = self._ilog.groups
            info["intent_log_records"] = self._ilog.records
            info["intent_log_last_sync_s"] = self._ilog.last_sync_s
        if self._fatal is not None:
            return Health(False, self._fatal.problem, info)
        if self._closed:
            return Health(False, "closed", info)
        return Health(True, "", info)
