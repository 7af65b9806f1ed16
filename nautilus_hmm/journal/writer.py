"""The journal's write path: the write API (called on the event loop thread), the writer
thread with group commit, the write statements and the chained checksums of every row
(journal/chain.py), and the sequence high-water mark reservations (journal/hwm.py).

The write methods are plain functions on the loop thread: a durable one creates a future
and puts one tuple on a `queue.SimpleQueue`. The writer thread takes everything queued,
executes it in one transaction, commits once, then resolves the batch's futures with one
`call_soon_threadsafe` per batch. In memory mode (`inline`) a write runs on the caller's
thread and its future is already resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from decimal import Decimal
from typing import Any

import orjson
import structlog

from nautilus_hmm.core.ids import parse_journal_sequence
from nautilus_hmm.domain.enums import OrderStatus
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.journal import chain, hwm
from nautilus_hmm.journal.errors import (
    DuplicateClientOrderIdError,
    JournalClosedError,
    JournalWriteError,
)
from nautilus_hmm.journal.intentlog import IntentLog

log = structlog.get_logger("journal")

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
_INSERT_STRATEGY_FILL = _insert("strategy_fills", chain.CHAINED["strategy_fills"][1])
_INSERT_STRATEGY_EQUITY = _insert("strategy_equity", chain.CHAINED["strategy_equity"][1])
_UPSERT_STRATEGY_TARGET = (
    f"INSERT INTO strategy_targets ({', '.join(chain.STRATEGY_TARGET_COLUMNS)}, chk)"
    f" VALUES ({', '.join('?' * (len(chain.STRATEGY_TARGET_COLUMNS) + 1))})"
    " ON CONFLICT (strategy_id, lane, instrument_id) DO UPDATE SET exposure = excluded.exposure,"
    " target_qty = excluded.target_qty, effective_qty = excluded.effective_qty, reason = excluded.reason,"
    " ts_ns = excluded.ts_ns, chk = excluded.chk"
)
_UPDATE_ORDER_UNCHECKED = (  # the in-memory journal keeps no checksums
    "UPDATE orders SET status = ?1, filled_qty = ?2, avg_px = COALESCE(?3, avg_px),"
    " venue_order_id = COALESCE(?4, venue_order_id), reason = COALESCE(?5, reason), updated_ns = ?6"
    " WHERE client_order_id = ?7"
)
_SET_NEXT_SEQ = "UPDATE meta SET value = ?1, chk = nh_chk('next_seq', ?1) WHERE key = 'next_seq'"


class JournalWriter:
    """Write methods and the writer thread of `store.Journal` (a mixin: the attributes
    below are set by its constructor)."""

    path: str
    journal_id: str
    max_queue_rows: int
    commit_interval_ms: float
    max_batch_rows: int
    rows_written: int
    commits: int
    last_commit_latency_s: float
    last_batch_latency_s: float
    last_batch_rows: int
    duplicate_fills: int
    failed_rows: int
    dropped_rows: int
    _wconn: sqlite3.Connection
    _wlock: threading.Lock
    _inline: bool
    _intent_on_loop: bool
    _closed: bool
    _stored_next_seq: int
    _batch_max_seq: int
    _batch_fold_lsn: int
    _tails: dict[str, int] | None
    _mark_path: str | None
    _reserved_seq: int
    _mark_lock: threading.Lock
    _ilog: IntentLog | None
    _log_base_seq: int
    _log_seen: bytearray
    _queue: queue.SimpleQueue[_Item]
    _handoff_buf: list[_Item]
    # The loop whose timer will hand `_handoff_buf` over (its commit window); None: no timer.
    _handoff_armed: asyncio.AbstractEventLoop | None = None
    _rows_handed: int = 0  # rows put on the queue (loop thread only)
    _rows_taken: int = 0  # rows taken off the queue (writer thread only)
    _fatal: JournalWriteError | None
    _fatal_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]

    def _seq_of(self, cid: str) -> int:
        raise NotImplementedError  # store.Journal

    def observe_seq(self, seq: int) -> None:
        """A sequence of ours seen elsewhere: never hand it out (store.Journal)."""
        raise NotImplementedError

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
        if seq >= self._log_base_seq and not self._take_seq(seq):
            # Already journaled in this run (checked here: with the intent log SQLite sees it later).
            fut.set_exception(DuplicateClientOrderIdError(
                self.path, f"intent {req.client_order_id} (seq {seq}) is already journaled; do not send it"))
            return fut
        values = _intent_values(req, strategy_id, ts_ns, seq)
        ilog = self._ilog
        if ilog is not None and seq >= self._log_base_seq:
            # synchronous=FULL with the intent log: durable once the log's group fdatasync
            # returned (journal-intent-log thread); SQLite gets the row off the order path,
            # as a fire-and-forget row of the next writer batch (docs/JOURNAL.md).
            try:
                lsn = ilog.append(values, fut)
            except ValueError:  # a row too long for a log record: the SQLite path below
                pass
            else:
                self._submit((self._op_fold, None, None, (values, lsn)))
                return fut
        item: _Item = (self._op_intent, fut, loop, values)
        if self._intent_on_loop:
            # synchronous=NORMAL: a commit is a write into the WAL (no fsync), ~15 µs; the
            # writer thread's hand-off and wake-up back would cost 10x that. Committed when
            # this returns: the future is already resolved (see docs/JOURNAL.md).
            self._run_batch([item], _resolve_now)
        else:
            self._submit(item)
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

    def record_adopted_order(self, vo: VenueOrder, strategy_id: str, ts_ns: int) -> asyncio.Future[bool | None]:
        """Journal an order found at a venue that the journal lacks, durably; resolves True, or None if known.

        Its sequence (when the id is ours) is taken out of circulation, so the id is never
        minted again even by a journal that lost it.
        """
        self._check_writable()
        seq = parse_journal_sequence(vo.client_order_id, self.journal_id)
        if seq is not None:
            self.observe_seq(seq)
            if seq >= self._log_base_seq:
                self._take_seq(seq)  # an intent of this sequence would be a duplicate
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

    def record_strategy_fill(
        self,
        ts_ns: int,
        strategy_id: str,
        instrument_id: InstrumentId,
        kind: str,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        trade_id: str = "",
        client_order_id: str = "",
    ) -> None:
        """Queue one attribution row of the strategy router (fire-and-forget, never shed: it is
        the strategies' books; a crash may lose the last ones, which recovery re-attributes)."""
        self._check_writable()
        for name, value in (("qty", qty), ("price", price), ("fee", fee)):
            if not value.is_finite():
                raise ValueError(f"strategy fill {strategy_id}/{instrument_id}: {name} must be finite, got {value}")
        self._submit((self._op_strategy_fill, None, None, (
            ts_ns, strategy_id, str(instrument_id), kind, str(qty), str(price), str(fee), trade_id, client_order_id,
        )))

    def record_strategy_target(
        self,
        ts_ns: int,
        strategy_id: str,
        lane: str,
        instrument_id: InstrumentId,
        exposure: float | None,
        target_qty: Decimal | None,
        effective_qty: Decimal,
        reason: str = "",
    ) -> None:
        """Queue the latest target of a strategy lane on an instrument (fire-and-forget, upserted, never shed)."""
        self._check_writable()
        self._submit((self._op_strategy_target, None, None, (
            strategy_id, lane, str(instrument_id), None if exposure is None else repr(float(exposure)),
            None if target_qty is None else str(target_qty), str(effective_qty), reason, ts_ns,
        )))

    def record_strategy_equity(
        self,
        ts_ns: int,
        strategy_id: str,
        equity_usd: float,
        realized_usd: float,
        unrealized_usd: float,
        fees_usd: float,
        capital_usd: float,
    ) -> None:
        """Queue a periodic equity sample of a strategy. Shed when the queue is full."""
        self._check_writable()
        if self._shed():
            return
        self._submit((self._op_strategy_equity, None, None, (
            ts_ns, strategy_id, float(equity_usd), float(realized_usd), float(unrealized_usd), float(fees_usd),
            float(capital_usd),
        )))

    @property
    def queue_depth(self) -> int:
        """Rows recorded and not yet taken by the writer (gathered on the loop or queued; a bundle
        counts its rows). Each counter has one writing thread, so no lock is needed."""
        return self._rows_handed - self._rows_taken + len(self._handoff_buf)

    def _shed(self) -> bool:
        # Overflow policy: only snapshots and events are shed; intents, fills, order
        # updates and audit rows are never dropped. Counted in rows: a bundle of a commit
        # window is one queue item, so the queue's length alone would let a stalled writer's
        # backlog grow without bound.
        depth = self.queue_depth
        if depth < self.max_queue_rows:
            return False
        self.dropped_rows += 1
        if self.dropped_rows % 1000 == 1:
            log.warning("journal_rows_dropped", dropped_total=self.dropped_rows, queue_depth=depth)
        return True

    def _take_seq(self, seq: int) -> bool:
        """Mark a sequence of this run (>= `_log_base_seq`) as journaled; False if it already was.
        A bit per sequence on the loop thread (125 KB per million orders)."""
        i = seq - self._log_base_seq
        byte, bit = divmod(i, 8)
        seen = self._log_seen
        if byte >= len(seen):
            seen.extend(bytes(max(byte + 1 - len(seen), len(seen), 1024)))
        mask = 1 << bit
        if seen[byte] & mask:
            return False
        seen[byte] |= mask
        return True

    def _check_writable(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise JournalClosedError(self.path, "journal is closed")

    def _submit(self, item: _Item) -> None:
        if self._inline:
            self._run_batch([item], _resolve_now)
            return
        if item[1] is None:
            # Fire-and-forget: gathered on the loop and handed to the writer at most once per
            # commit window (commit_interval_ms: the batching window these rows have anyway),
            # sooner when a durable write follows (below), a batch is full or the journal
            # closes. A hand-off is a queue put that wakes the writer thread: ~3.6 per order
            # when it was once per loop turn, each 60-80 µs of the loop's time on a 2-vCPU VM
            # (the woken thread preempts the loop, then waits for the GIL).
            buf = self._handoff_buf
            buf.append(item)
            if len(buf) >= self.max_batch_rows:
                self._handoff()
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (start-up, sync callers): hand over now
                self._handoff()
                return
            if self._handoff_armed is not loop:  # no timer yet on this loop (or one on a loop since gone)
                self._handoff_armed = loop
                loop.call_later(self.commit_interval_ms / 1000.0, self._handoff_window_over)
            return
        if self._handoff_buf:
            # Rows recorded before a durable write commit no later than it: they go with it,
            # one bundle, one put (one writer wake-up, ~10 µs of the loop's CPU here).
            self._handoff_buf.append(item)
            self._handoff()
            return
        self._rows_handed += 1
        self._queue.put(item)

    def _handoff_window_over(self) -> None:
        """The commit window of the oldest gathered row is over: hand the rows over (loop timer)."""
        self._handoff_armed = None
        self._handoff()

    def _handoff(self) -> None:
        """Give the gathered fire-and-forget rows to the writer thread (one queue put of one bundle,
        which the writer commits without waiting for more company: the window was spent gathering)."""
        buf = self._handoff_buf
        if not buf:
            return
        self._handoff_buf = []
        self._rows_handed += len(buf)
        self._queue.put((_op_bundle, None, None, buf))

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

    def _op_intent(self, conn: sqlite3.Connection, values: tuple[Any, ...]) -> int:
        """An intent's order row and its NEW event (`values` from _intent_values); returns its seq."""
        seq = values[1]
        insert_intent_row(conn, self._tails, values, self.path)
        if seq > self._batch_max_seq:
            self._batch_max_seq = seq
        return seq

    def _op_fold(self, conn: sqlite3.Connection, p: tuple[tuple[Any, ...], int]) -> object:
        """An intent already durable in the intent log, folded into SQLite (fire-and-forget)."""
        values, lsn = p
        if lsn > self._batch_fold_lsn:
            self._batch_fold_lsn = lsn
        try:
            self._op_intent(conn, values)
        except DuplicateClientOrderIdError as exc:
            # Refused before the send (record_intent's check): reaching here is a bug. The
            # order is in the log; the next start folds nothing twice. Loud, not fatal.
            self.failed_rows += 1
            log.error("intent_fold_failed", client_order_id=values[0], seq=values[1], error=exc.problem)
            return _SKIPPED
        return None

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

    def _op_strategy_fill(self, conn: sqlite3.Connection, p: tuple[Any, ...]) -> None:
        self._append(conn, _INSERT_STRATEGY_FILL, "strategy_fills", p)

    def _op_strategy_equity(self, conn: sqlite3.Connection, p: tuple[Any, ...]) -> None:
        self._append(conn, _INSERT_STRATEGY_EQUITY, "strategy_equity", p)

    def _op_strategy_target(self, conn: sqlite3.Connection, p: tuple[Any, ...]) -> None:
        chk = None if self._tails is None else chain.row_chk(*p)
        conn.execute(_UPSERT_STRATEGY_TARGET, (*p, chk))

    def _reserve_seqs(self, upto_seq: int) -> None:
        """Write the mark before any sequence below `upto_seq` is acknowledged (writer thread)."""
        assert self._mark_path is not None
        # The writer thread and the intent log's thread both reserve (one at a time).
        with self._mark_lock:
            if upto_seq <= self._reserved_seq:
                return
            reserved = upto_seq + hwm.BLOCK_SEQS
            try:
                hwm.write(self._mark_path, hwm.HighWaterMark(self.journal_id, reserved, clean=False))
            except OSError as exc:
                raise JournalWriteError(self.path, f"cannot write the sequence mark {self._mark_path}: {exc}") from exc
            self._reserved_seq = reserved

    def _log_durable(self, max_seq: int) -> None:
        """The intent log's thread, after a group's fdatasync and before its futures resolve:
        the mark must cover every sequence about to be acknowledged."""
        if self._mark_path is not None and max_seq >= self._reserved_seq:
            self._reserve_seqs(max_seq + 1)

    def _log_failed(self, err: JournalWriteError) -> None:
        """The intent log's write or fsync failed: the journal stops (never retried)."""
        self._set_fatal(err, _resolve_threadsafe)

    def _writer_main(self) -> None:
        q = self._queue
        try:
            while True:
                first = q.get()
                bundle = first[0] is _op_bundle
                batch = list(first[3]) if bundle else [first]
                stop = first is _STOP
                taken = 0 if stop else len(batch)
                urgent = stop or bundle or first[1] is not None
                deadline = time.monotonic() + self.commit_interval_ms / 1000.0
                # Group commit: a durable write, or a bundle the loop gathered for a commit
                # window (_submit), commits as soon as the queue is drained; a lone
                # fire-and-forget row waits up to commit_interval_ms for company.
                while len(batch) < self.max_batch_rows:
                    try:
                        if urgent:
                            item = q.get_nowait()
                        else:
                            remaining = deadline - time.monotonic()
                            item = q.get(timeout=remaining) if remaining > 0 else q.get_nowait()
                    except queue.Empty:
                        break
                    if item[0] is _op_bundle:  # rows of a commit window (and maybe a durable write)
                        batch.extend(item[3])
                        taken += len(item[3])
                        urgent = True
                        continue
                    batch.append(item)
                    if item is _STOP:
                        stop = urgent = True
                    else:
                        taken += 1
                        if item[1] is not None:
                            urgent = True
                self._rows_taken += taken
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
            self._batch_fold_lsn = 0
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
                corrupt = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
                self._set_fatal(JournalWriteError(self.path, f"commit failed, journal stopped: {exc!r}", corrupt), resolve)
                resolve([(fut, self._fatal, True) for _, fut, _, _ in batch if fut is not None])
                return
            # Under the lock: the loop thread commits intents itself (synchronous=NORMAL).
            if self._batch_max_seq >= self._stored_next_seq:
                self._stored_next_seq = self._batch_max_seq + 1
            self.rows_written += rows
            self.commits += 1
            self.last_commit_latency_s = t2 - t1
            self.last_batch_latency_s = t2 - t0
            self.last_batch_rows = rows
            if self._batch_fold_lsn and self._ilog is not None:
                self._ilog.note_folded(self._batch_fold_lsn)  # committed: the log notes it
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
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            for _, fut, _, _ in (item[3] if item[0] is _op_bundle else (item,)):  # type: ignore[union-attr]
                if fut is not None:
                    pending.append((fut, self._fatal, True))
        resolve(pending)


# --------------------------------------------------------------------- ops


def insert_intent_row(conn: sqlite3.Connection, tails: dict[str, int] | None, values: tuple[Any, ...],
                      path: str) -> None:
    """An intent's order row (status NEW) and its NEW event, chained (`tails` moves; None: no checksums).
    DuplicateClientOrderIdError if the id or sequence is journaled. The writer's and the intent
    log replay's (store.Journal.open) one way of writing an intent."""
    cid, seq, ts_ns = values[0], values[1], values[10]
    state = (cid, "NEW", "0", None, None, "", ts_ns)
    event = (cid, ts_ns, "NEW", "0", None, None, "")
    try:
        if tails is None:
            conn.execute(_INSERT_ORDER, (*values, None, *state[1:], None))
        else:
            chk = chain.link(tails["orders"], values)
            conn.execute(_INSERT_ORDER, (*values, chk, *state[1:], chain.row_chk(*state)))
            tails["orders"] = chk  # only once the insert succeeded (a duplicate id raises above)
    except sqlite3.IntegrityError as exc:
        raise DuplicateClientOrderIdError(
            path, f"intent {cid} (seq {seq}) is already journaled: {exc}; do not send it"
        ) from exc
    if tails is None:
        conn.execute(_INSERT_ORDER_EVENT, (*event, None))
    else:
        echk = chain.link(tails["order_events"], event)
        conn.execute(_INSERT_ORDER_EVENT, (*event, echk))
        tails["order_events"] = echk


def _intent_values(req: OrderRequest, strategy_id: str, ts_ns: int, seq: int) -> tuple[Any, ...]:
    """An intent's order row in chain.CHAINED["orders"] order (also an intent log record's payload)."""
    return (
        req.client_order_id, seq, str(req.instrument_id), strategy_id, req.side.value,
        req.order_type.value, str(req.quantity), None if req.price is None else str(req.price),
        req.time_in_force.value, 1 if req.reduce_only else 0, ts_ns,
    )


def _op_noop(conn: sqlite3.Connection, payload: None) -> object:
    return _SKIPPED


def _op_bundle(conn: sqlite3.Connection, payload: list[_Item]) -> object:
    """Marks a queue item carrying fire-and-forget items (the writer unpacks it; never run)."""
    raise AssertionError("a bundle is unpacked by the writer, never executed")


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
