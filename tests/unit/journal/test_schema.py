"""Schema versions and forward migrations."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import OrderStatus
from nautilus_hmm.journal import schema
from nautilus_hmm.journal.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    migrate,
    user_version,
)
from nautilus_hmm.journal.store import Journal

# The version 1 layout exactly as released. Frozen here on purpose: if MIGRATIONS[0] is
# edited, `test_released_v1_step_is_unchanged` fails (change the schema with a new step).
V1_DDL = """
PRAGMA application_id = 1313361229;
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY,
    seq             INTEGER UNIQUE,
    instrument_id   TEXT NOT NULL,
    strategy_id     TEXT NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type      TEXT NOT NULL,
    quantity        TEXT NOT NULL,
    price           TEXT,
    time_in_force   TEXT NOT NULL,
    reduce_only     INTEGER NOT NULL CHECK (reduce_only IN (0, 1)),
    status          TEXT NOT NULL,
    filled_qty      TEXT NOT NULL,
    avg_px          TEXT,
    venue_order_id  TEXT,
    reason          TEXT NOT NULL DEFAULT '',
    created_ns      INTEGER NOT NULL,
    updated_ns      INTEGER NOT NULL
);
CREATE INDEX orders_open ON orders (status)
    WHERE status NOT IN ('FILLED', 'CANCELED', 'REJECTED', 'EXPIRED');
CREATE TABLE order_events (
    id              INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
    ts_ns           INTEGER NOT NULL,
    status          TEXT NOT NULL,
    filled_qty      TEXT NOT NULL,
    avg_px          TEXT,
    venue_order_id  TEXT,
    reason          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX order_events_cid ON order_events (client_order_id, id);
CREATE TABLE fills (
    id              INTEGER PRIMARY KEY,
    venue           TEXT NOT NULL,
    trade_id        TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    venue_order_id  TEXT NOT NULL,
    instrument_id   TEXT NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    qty             TEXT NOT NULL,
    price           TEXT NOT NULL,
    fee             TEXT NOT NULL,
    fee_asset       TEXT NOT NULL,
    liquidity       TEXT NOT NULL,
    ts_ns           INTEGER NOT NULL,
    UNIQUE (venue, instrument_id, trade_id)
);
CREATE INDEX fills_ts ON fills (ts_ns);
CREATE INDEX fills_venue_ts ON fills (venue, ts_ns);
CREATE TABLE position_snapshots (
    id    INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    data  TEXT NOT NULL
);
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY,
    ts_ns  INTEGER NOT NULL,
    action TEXT NOT NULL,
    remote TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT NOT NULL
);
PRAGMA user_version = 1;
"""


def make_v1_journal(path: Path) -> None:
    """A journal as version 1 of the code left it: one open order, one fill, WAL mode."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V1_DDL)
    conn.executescript(
        """
        INSERT INTO meta VALUES ('journal_id', 'abc123'), ('next_seq', '8'), ('created_ns', '1');
        INSERT INTO orders VALUES ('t-abc123-7', 7, 'sim:BTCUSDT', 's', 'BUY', 'LIMIT', '0.5',
            '100.5', 'GTC', 0, 'ACCEPTED', '0', NULL, 'V7', '', 10, 11);
        INSERT INTO order_events (client_order_id, ts_ns, status, filled_qty)
            VALUES ('t-abc123-7', 10, 'NEW', '0');
        INSERT INTO fills (venue, trade_id, client_order_id, venue_order_id, instrument_id, side,
            qty, price, fee, fee_asset, liquidity, ts_ns)
            VALUES ('sim', 'T1', 'x-1', 'V1', 'sim:BTCUSDT', 'SELL', '1', '99', '0', 'USDT', 'MAKER', 5);
        """
    )
    conn.close()


def _schema_sql(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every object's DDL, whitespace-normalised."""
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return [(name, " ".join(sql.split())) for name, sql in rows]


def test_versions_are_numbered_one_to_n() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_migrate_builds_every_table_on_an_empty_database() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(conn) == list(range(1, SCHEMA_VERSION + 1))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "orders", "order_events", "fills", "position_snapshots", "audit", "events"} <= tables
    assert user_version(conn) == SCHEMA_VERSION


def test_released_v1_step_is_unchanged() -> None:
    released = sqlite3.connect(":memory:", isolation_level=None)
    released.executescript(V1_DDL)
    current = sqlite3.connect(":memory:", isolation_level=None)
    migrate(current, target=1)
    assert _schema_sql(current) == _schema_sql(released)
    assert current.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_failed_step_leaves_the_previous_version(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = (*MIGRATIONS, schema.Migration(SCHEMA_VERSION + 1, "broken", ("CREATE TABLE x (a)", "SELECT nope")))
    monkeypatch.setattr(schema, "MIGRATIONS", broken)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, target=SCHEMA_VERSION + 1)
    assert user_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'x'").fetchone() is None


async def test_v1_journal_is_migrated_forward_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    make_v1_journal(path)
    j = Journal.open(path)
    try:
        assert j.schema_version == SCHEMA_VERSION
        assert j.journal_id == "abc123"
        assert j.next_seq == 8
        (order,) = j.load_orders(open_only=True)
        assert (order.client_order_id, order.status, order.price) == ("t-abc123-7", OrderStatus.ACCEPTED, Decimal("100.5"))
        assert [f.trade_id for f in j.load_fills()] == ["T1"]
        j.record_event(20, "decision", {"ok": True})  # the v2 table
        await j.flush()
        assert [e.kind for e in j.events()] == ["decision"]
    finally:
        j.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_migration_keeps_a_backup_of_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    make_v1_journal(path)
    Journal.open(path).close()
    (backup,) = tmp_path.glob("journal.sqlite3.v1-*.bak")
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    assert old.execute("SELECT client_order_id FROM orders").fetchall() == [("t-abc123-7",)]
