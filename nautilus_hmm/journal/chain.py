"""Chained row checksums: the journal detects its own damage.

SQLite has no page checksums: a flipped bit in a row's bytes passes `PRAGMA quick_check`
and silently changes the value (`sma_cross_down` read back as `sma_crocs_down`). So
every appended row carries `chk = crc32(canonical row bytes, previous row's chk)`: the
CRC-32 of the table's whole canonical byte stream up to and including that row, a chain
per table in rowid order. A changed, removed or reordered row breaks the chain at that
row (a single flipped bit always does: CRC-32 catches every burst of up to 32 bits; other
damage slips through with odds of 2^-32). CRC-32 rather than blake2b: it is ~3x cheaper
per row in Python (no object per call), and the writer computes three per order intent
on the hot path and a start verifies every row; the chain detects damage, it does not
stand against an attacker who can write the file. The mutable part of an order row (status, fills, ...) cannot sit in the chain
(an update would re-link every later row), so it carries a row-local `state_chk`; the
immutable part of the order (id, sequence, instrument, strategy, side, type, quantity,
price ...) is chained. `meta` rows carry a row-local `chk` over key and value.

What the chain cannot see: rows missing from the end (a deleted or truncated WAL). The
high-water-mark file (journal/hwm.py) and reconciliation cover that case.

Canonical bytes: `orjson.dumps` of the tuple of the column values exactly as SQLite
returns them (TEXT as str, INTEGER as int, NULL as None), so a writer that binds the same
Python values it later reads back computes the same bytes.

Pure functions; no event loop.
"""

from __future__ import annotations

import sqlite3
import zlib

import orjson

from nautilus_hmm.journal.errors import JournalCorruptError

GENESIS = 0

# Per chained table: its key column (named in errors) and the chained columns, in order.
# Row ids are not chained (the writer does not know them before the insert); a removed or
# moved row still breaks the chain at the row after it.
CHAINED: dict[str, tuple[str, tuple[str, ...]]] = {
    "orders": ("client_order_id", (
        "client_order_id", "seq", "instrument_id", "strategy_id", "side", "order_type", "quantity", "price",
        "time_in_force", "reduce_only", "created_ns",
    )),
    "order_events": ("id", (
        "client_order_id", "ts_ns", "status", "filled_qty", "avg_px", "venue_order_id", "reason",
    )),
    "fills": ("id", (
        "venue", "trade_id", "client_order_id", "venue_order_id", "instrument_id", "side", "qty", "price",
        "fee", "fee_asset", "liquidity", "ts_ns",
    )),
    "position_snapshots": ("id", ("ts_ns", "data")),
    "audit": ("id", ("ts_ns", "action", "remote", "params", "result")),
    "events": ("id", ("ts_ns", "kind", "data")),
    # v4: the strategy router's attribution rows and equity samples (append-only)
    "strategy_fills": ("id", (
        "ts_ns", "strategy_id", "instrument_id", "kind", "qty", "price", "fee", "trade_id", "client_order_id",
    )),
    "strategy_equity": ("id", (
        "ts_ns", "strategy_id", "equity_usd", "realized_usd", "unrealized_usd", "fees_usd", "capital_usd",
    )),
}
# The chained tables as schema v3 introduced the columns: its migration step (released, never
# edited) adds and backfills checksums of exactly these.
V3_TABLES = ("orders", "order_events", "fills", "position_snapshots", "audit", "events")
# Upserted tables (one latest row per key) carry a row-local checksum over these columns.
STRATEGY_TARGET_COLUMNS = (
    "strategy_id", "lane", "instrument_id", "exposure", "target_qty", "effective_qty", "reason", "ts_ns",
)
ORDER_STATE_COLUMNS = ("client_order_id", "status", "filled_qty", "avg_px", "venue_order_id", "reason", "updated_ns")


def link(prev: int, values: tuple[object, ...]) -> int:
    """The checksum of a row with column `values` following a row whose checksum is `prev`."""
    return zlib.crc32(orjson.dumps(values), prev)


def row_chk(*values: object) -> int:
    """A row-local checksum (order state, meta); also registered as SQL function `nh_chk`."""
    return zlib.crc32(orjson.dumps(values))


def register(conn: sqlite3.Connection) -> None:
    """Make `nh_chk(...)` available to SQL on `conn` (order updates compute state_chk in SQL)."""
    conn.create_function("nh_chk", -1, row_chk, deterministic=True)


def backfill(conn: sqlite3.Connection, tables: tuple[str, ...] = V3_TABLES) -> None:
    """Compute every checksum of `tables` (and orders' state, meta) of a journal that has the columns but no values (migration)."""
    for table in tables:
        columns = CHAINED[table][1]
        prev = GENESIS
        updates: list[tuple[int, int]] = []
        for row in conn.execute(f"SELECT rowid, {', '.join(columns)} FROM {table} ORDER BY rowid"):
            prev = link(prev, tuple(row[1:]))
            updates.append((prev, row[0]))
        conn.executemany(f"UPDATE {table} SET chk = ? WHERE rowid = ?", updates)
    conn.execute(f"UPDATE orders SET state_chk = nh_chk({', '.join(ORDER_STATE_COLUMNS)})")
    conn.execute("UPDATE meta SET chk = nh_chk(key, value)")


def verify(conn: sqlite3.Connection, path: str) -> dict[str, int]:
    """Walk every chain and row checksum; return the tails, or raise JournalCorruptError naming the row.

    The hot loop of a start on a long journal (one pass per table, ~1 µs a row): keep it lean.
    """
    out: dict[str, int] = {}
    for key, value, chk in conn.execute("SELECT key, value, chk FROM meta ORDER BY rowid"):
        if chk != row_chk(key, value):
            _broken(path, "meta", "key", key, "its checksum does not match its value")
    if "strategy_targets" in tables_of(conn):
        for row in conn.execute(f"SELECT chk, {', '.join(STRATEGY_TARGET_COLUMNS)} FROM strategy_targets ORDER BY rowid"):
            if row[0] != row_chk(*row[1:]):
                _broken(path, "strategy_targets", "strategy_id/lane/instrument_id", "/".join(map(str, row[1:4])),
                        "its checksum does not match its value")
    dumps = orjson.dumps
    crc = zlib.crc32
    n_state = len(ORDER_STATE_COLUMNS)
    present = tables_of(conn)
    for table, (key_col, columns) in CHAINED.items():
        prev = GENESIS
        if table not in present:
            continue
        if table == "orders":
            # state_chk, the state columns, chk, the chained columns: one pass over the table
            cur = conn.execute(f"SELECT state_chk, {', '.join(ORDER_STATE_COLUMNS)}, chk, {', '.join(columns)}"
                               " FROM orders ORDER BY rowid")
            split = 1 + n_state
            for row in cur:
                if row[0] != crc(dumps(row[1:split])):
                    _broken(path, "orders", "client_order_id", row[1],
                            "its status/fill state does not match its checksum")
                prev = crc(dumps(row[split + 1:]), prev)
                if row[split] != prev:
                    _broken(path, table, key_col, row[1],
                            "its checksum does not match (the row was changed, or a row before it removed)")
        else:
            cur = conn.execute(f"SELECT chk, {', '.join(columns)}, {key_col} FROM {table} ORDER BY rowid")
            for row in cur:
                prev = crc(dumps(row[1:-1]), prev)
                if row[0] != prev:
                    _broken(path, table, key_col, row[-1],
                            "its checksum does not match (the row was changed, or a row before it removed)")
        out[table] = prev
    return out


def tables_of(conn: sqlite3.Connection) -> set[str]:
    """Names of the tables in the database."""
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _broken(path: str, table: str, key_col: str, key: object, what: str) -> None:
    raise JournalCorruptError(
        path, f"damaged row: table {table}, {key_col} {key!r}: {what}; refusing to start. Restore a backup, "
        "or move the journal files aside to start a new journal (reconciliation then finds the venue's "
        "orders and fills and keeps trading halted until you resume)"
    )
