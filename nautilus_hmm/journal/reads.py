"""The journal's read API: a read-only connection of its own (WAL lets reads run while the
writer commits). Sync `load_*` for start-up recovery (they block), `query_*` and `read()`
coroutines that run on a dedicated read thread (HTTP endpoints).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.journal.errors import JournalClosedError
from nautilus_hmm.journal.rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    ORDER_EVENT_COLUMNS,
    STRATEGY_EQUITY_COLUMNS,
    STRATEGY_FILL_COLUMNS,
    STRATEGY_TARGET_COLUMNS,
    AuditRow,
    EquitySampleRow,
    EventRow,
    FillRow,
    OrderEventRow,
    OrderRow,
    PositionSnapshotRow,
    RowParser,
    StrategyEquityRow,
    StrategyFillRow,
    StrategyTargetRow,
)
from nautilus_hmm.journal.schema import TERMINAL_STATUSES

T = TypeVar("T")

TABLES = (
    "orders", "order_events", "fills", "position_snapshots", "audit", "events",
    "strategy_fills", "strategy_targets", "strategy_equity",
)
_OPEN_ONLY = f"status NOT IN ({', '.join(repr(s) for s in TERMINAL_STATUSES)})"

# Position snapshots thinned to at most ? rows (every k-th, k = ceil(n / max), and the
# newest); only the kept rows' JSON is parsed (SQLite's json_extract).
_EQUITY_SAMPLES = """
SELECT ts_ns,
       json_extract(data, '$.equity'), json_extract(data, '$.peak_equity'),
       json_extract(data, '$.drawdown_pct'), json_extract(data, '$.base_currency')
FROM (SELECT ts_ns, CASE WHEN json_valid(data) THEN data END AS data,
             ROW_NUMBER() OVER (ORDER BY ts_ns, id) AS rn, COUNT(*) OVER () AS n
      FROM position_snapshots WHERE ts_ns >= ?)
WHERE (rn - 1) % ((n + ? - 1) / ?) = 0 OR rn = n
ORDER BY rn"""


class JournalReads:
    """Read methods of `store.Journal` (a mixin: the attributes below are set by its constructor)."""

    path: str
    _closed: bool
    _rlock: threading.Lock
    _rconn: sqlite3.Connection
    _parser: RowParser
    _reader: ThreadPoolExecutor | None

    def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._closed:
            raise JournalClosedError(self.path, "journal is closed")
        with self._rlock:
            return self._rconn.execute(sql, params).fetchall()

    def load_orders(self, open_only: bool = False) -> list[OrderRow]:
        """Orders in journal order; `open_only` keeps the non-terminal ones (recovery)."""
        where = f" WHERE {_OPEN_ONLY}" if open_only else ""
        return self._parser.orders(self._select(f"SELECT {ORDER_COLUMNS} FROM orders{where} ORDER BY rowid"))

    def recent_orders(self, limit: int) -> list[OrderRow]:
        """The `limit` orders journaled last, newest first (/orders beyond the engine's memory)."""
        rows = self._select(f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY rowid DESC LIMIT ?", (limit,))
        return self._parser.orders(rows)

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

    def load_strategy_fills(self, since_id: int = 0) -> list[StrategyFillRow]:
        """The strategy router's attribution rows with id > since_id, in journal order (recovery)."""
        rows = self._select(f"SELECT {STRATEGY_FILL_COLUMNS} FROM strategy_fills WHERE id > ? ORDER BY id", (since_id,))
        return self._parser.strategy_fills(rows)

    def load_strategy_targets(self) -> list[StrategyTargetRow]:
        """The latest target of every strategy lane and instrument."""
        rows = self._select(f"SELECT {STRATEGY_TARGET_COLUMNS} FROM strategy_targets ORDER BY rowid")
        return self._parser.strategy_targets(rows)

    def strategy_equity(
        self, strategy_id: str | None = None, since_ns: int = 0, limit: int = 100_000
    ) -> list[StrategyEquityRow]:
        """Equity samples with ts_ns >= since_ns (of one strategy, or all), oldest first."""
        if strategy_id is None:
            rows = self._select(
                f"SELECT {STRATEGY_EQUITY_COLUMNS} FROM strategy_equity WHERE ts_ns >= ? ORDER BY ts_ns, id LIMIT ?",
                (since_ns, limit),
            )
        else:
            rows = self._select(
                f"SELECT {STRATEGY_EQUITY_COLUMNS} FROM strategy_equity WHERE strategy_id = ? AND ts_ns >= ?"
                " ORDER BY ts_ns, id LIMIT ?",
                (strategy_id, since_ns, limit),
            )
        return [StrategyEquityRow(*r) for r in rows]

    def equity_samples(self, since_ns: int = 0, max_points: int = 2000) -> list[EquitySampleRow]:
        """The account's equity, peak and drawdown from the position snapshots with ts_ns >=
        since_ns, oldest first: at most `max_points` evenly spaced rows, the newest always
        among them. A snapshot whose data is not JSON or lacks `equity` is left out."""
        rows = self._select(_EQUITY_SAMPLES, (since_ns, max_points, max_points))
        return [EquitySampleRow(r[0], str(r[1]), str(r[2] if r[2] is not None else r[1]),
                                str(r[3] if r[3] is not None else "0"), str(r[4] or ""))
                for r in rows if r[1] is not None]

    async def query_equity_samples(self, since_ns: int = 0, max_points: int = 2000) -> list[EquitySampleRow]:
        """`equity_samples()` read off the loop."""
        return await self.read(self.equity_samples, since_ns, max_points)

    def counts(self) -> dict[str, int]:
        """Row count of every table, plus `open_orders`."""
        out = {t: self._select(f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}
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
