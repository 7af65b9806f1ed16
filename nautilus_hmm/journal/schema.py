"""Journal schema: an ordered list of forward migrations; `PRAGMA user_version` is the version.

Version n is reached by applying `MIGRATIONS[n-1]` to a version n-1 database. Each step
runs in its own transaction together with the `user_version` bump, so a failed step
leaves the database at the previous version. Steps are append-only: a released step is
never edited, a change is a new step. A database whose version is newer than
`SCHEMA_VERSION` is refused (this code does not know what the newer one changed).

`PRAGMA application_id` marks the file as a nautilus-hmm journal, so another
application's SQLite file is never mistaken for an empty journal.

Money columns (quantities, prices, fees) are TEXT holding `str(Decimal)`, so nothing is
rounded through a float. Timestamps are integer nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from nautilus_hmm.journal import chain

APPLICATION_ID = 0x4E484D4D  # "NHMM"

# Statuses after which an order can no longer change (mirrors OrderStatus.is_terminal);
# the partial index `orders_open` covers the rest, which is what recovery loads.
TERMINAL_STATUSES = ("FILLED", "CANCELED", "REJECTED", "EXPIRED")


@dataclass(frozen=True, slots=True)
class Migration:
    """One forward step: `statements` (then `backfill`, if any) take the database from `version - 1` to `version`."""

    version: int
    description: str
    statements: tuple[str, ...]
    backfill: Callable[[sqlite3.Connection], None] | None = None


_V1 = (
    f"PRAGMA application_id = {APPLICATION_ID}",
    # key/value: journal_id (random tag, made once), next_seq (next client order sequence),
    # created_ns.
    """CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # One row per client order id. `seq` is the sequence of ids minted by this journal
    # (NULL for orders found at the venue that we did not create).
    """CREATE TABLE orders (
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
    )""",
    f"""CREATE INDEX orders_open ON orders (status)
        WHERE status NOT IN ({", ".join(repr(s) for s in TERMINAL_STATUSES)})""",
    # Append-only history of every status the journal was told about.
    """CREATE TABLE order_events (
        id              INTEGER PRIMARY KEY,
        client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
        ts_ns           INTEGER NOT NULL,
        status          TEXT NOT NULL,
        filled_qty      TEXT NOT NULL,
        avg_px          TEXT,
        venue_order_id  TEXT,
        reason          TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX order_events_cid ON order_events (client_order_id, id)",
    # Executions. No foreign key to orders: a fill of an order placed outside this node
    # (manual trade, previous journal) must still be recorded. Venue trade ids are only
    # unique per symbol on some venues (Binance), hence the instrument in the key.
    """CREATE TABLE fills (
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
    )""",
    "CREATE INDEX fills_ts ON fills (ts_ns)",
    "CREATE INDEX fills_venue_ts ON fills (venue, ts_ns)",
    """CREATE TABLE position_snapshots (
        id    INTEGER PRIMARY KEY,
        ts_ns INTEGER NOT NULL,
        data  TEXT NOT NULL
    )""",
    """CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        ts_ns  INTEGER NOT NULL,
        action TEXT NOT NULL,
        remote TEXT NOT NULL,
        params TEXT NOT NULL,
        result TEXT NOT NULL
    )""",
)

# v2: the generic event log (policy decisions, risk denials).
_V2 = (
    """CREATE TABLE events (
        id    INTEGER PRIMARY KEY,
        ts_ns INTEGER NOT NULL,
        kind  TEXT NOT NULL,
        data  TEXT NOT NULL
    )""",
    "CREATE INDEX events_kind_ts ON events (kind, ts_ns)",
    "CREATE INDEX events_ts ON events (ts_ns)",
)

# v3: chained row checksums (journal/chain.py); rows already there are checksummed by the
# step, so the chain starts trusted at the migration.
_V3 = (
    *(f"ALTER TABLE {t} ADD COLUMN chk INTEGER" for t in ("meta", *chain.V3_TABLES)),
    "ALTER TABLE orders ADD COLUMN state_chk INTEGER",
)

# v4: the strategy router's books (control/router.py). `strategy_fills`: every share of a
# real fill (kind "fill"), internal cross ("cross"), shadow paper fill ("paper") or
# recovery adjustment ("adjust") booked to one virtual account; qty signed (+ buy), fee in
# the quote asset. `strategy_targets`: the latest target per strategy, lane and instrument
# (exposure or target_qty as stated, effective_qty as routed; upserted, row-local chk).
# `strategy_equity`: periodic equity samples per strategy (floats: reporting, not money
# that trades). New tables start empty, so the chain needs no backfill.
_V4 = (
    """CREATE TABLE strategy_fills (
        id              INTEGER PRIMARY KEY,
        ts_ns           INTEGER NOT NULL,
        strategy_id     TEXT NOT NULL,
        instrument_id   TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('fill', 'cross', 'paper', 'adjust')),
        qty             TEXT NOT NULL,
        price           TEXT NOT NULL,
        fee             TEXT NOT NULL,
        trade_id        TEXT NOT NULL DEFAULT '',
        client_order_id TEXT NOT NULL DEFAULT '',
        chk             INTEGER
    )""",
    "CREATE INDEX strategy_fills_trade ON strategy_fills (instrument_id, trade_id)",
    "CREATE INDEX strategy_fills_strategy ON strategy_fills (strategy_id, id)",
    """CREATE TABLE strategy_targets (
        strategy_id   TEXT NOT NULL,
        lane          TEXT NOT NULL,
        instrument_id TEXT NOT NULL,
        exposure      TEXT,
        target_qty    TEXT,
        effective_qty TEXT NOT NULL,
        reason        TEXT NOT NULL DEFAULT '',
        ts_ns         INTEGER NOT NULL,
        chk           INTEGER,
        PRIMARY KEY (strategy_id, lane, instrument_id)
    )""",
    """CREATE TABLE strategy_equity (
        id             INTEGER PRIMARY KEY,
        ts_ns          INTEGER NOT NULL,
        strategy_id    TEXT NOT NULL,
        equity_usd     REAL NOT NULL,
        realized_usd   REAL NOT NULL,
        unrealized_usd REAL NOT NULL,
        fees_usd       REAL NOT NULL,
        capital_usd    REAL NOT NULL,
        chk            INTEGER
    )""",
    "CREATE INDEX strategy_equity_strategy_ts ON strategy_equity (strategy_id, ts_ns)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "orders, order events, fills, position snapshots, audit", _V1),
    Migration(2, "generic event log (decisions, risk denials)", _V2),
    Migration(3, "chained row checksums", _V3, backfill=chain.backfill),
    Migration(4, "strategy router: attribution rows, latest targets, equity samples", _V4),
)
SCHEMA_VERSION = len(MIGRATIONS)

assert all(m.version == i + 1 for i, m in enumerate(MIGRATIONS)), "migration versions must be 1..n"


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version stored in the database header."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def application_id(conn: sqlite3.Connection) -> int:
    """The application id stored in the database header (0 when never set)."""
    return int(conn.execute("PRAGMA application_id").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply every step above the current version up to `target`; returns the versions applied.

    `conn` must be in autocommit mode (isolation_level=None). Each step is one
    transaction; a failing step is rolled back and re-raised, leaving the previous version.
    """
    current = user_version(conn)
    if current > target:
        raise ValueError(f"database schema version {current} is newer than target {target}")
    applied: list[int] = []
    for step in MIGRATIONS[current:target]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in step.statements:
                conn.execute(statement)
            if step.backfill is not None:
                chain.register(conn)
                step.backfill(conn)
            # PRAGMA takes no parameters; the version is an int from MIGRATIONS.
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(step.version)
    return applied
