"""The journal's files: lock, checks before trusting a file, creation, migration with a
backup, connections and their settings, the meta row, permissions. Module functions used
by `store.Journal.open`; nothing here runs after the open.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import sqlite3
import string
from typing import Any
from urllib.parse import quote

import structlog

from nautilus_hmm.core.clock import Clock
from nautilus_hmm.journal import chain, hwm
from nautilus_hmm.journal.errors import (
    JournalCorruptError,
    JournalError,
    JournalInUseError,
    JournalSchemaError,
)
from nautilus_hmm.journal.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
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


def acquire_lock(path: str) -> int:
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


def release_lock(fd: int | None) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def check_file(path: str) -> None:
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
            "or move the file and its .seq mark aside to start a new journal (client order ids get a new journal id)"
        )
    if not header.startswith(_SQLITE_MAGIC):
        raise JournalCorruptError(
            path, f"not a SQLite database (header starts {header[:16]!r}); refusing to start, file left untouched"
        )
    if len(header) < _SQLITE_HEADER_LEN:
        raise JournalCorruptError(path, f"truncated: {size} bytes is shorter than the SQLite header")


def check_database(path: str, thorough: bool = False) -> int:
    """quick_check, application id and schema version on a read-only connection; returns the version.

    `thorough` runs `PRAGMA integrity_check` instead (it also checks every index against its
    table, reading the whole file): the check for a database whose WAL was lost after a
    crash, since a checkpoint the crash interrupted leaves table and index pages from
    different commits, which quick_check does not see.
    """
    check = "integrity_check" if thorough else "quick_check"
    has_journal = os.path.exists(f"{path}-wal") or os.path.exists(f"{path}-journal")
    # Without a WAL to replay, `immutable` reads the file without creating -wal/-shm files.
    mode = "ro" if has_journal else "ro&immutable=1"
    try:
        conn = connect(path, mode)
    except sqlite3.Error as exc:
        raise JournalCorruptError(path, f"cannot open as SQLite: {exc}") from exc
    try:
        try:
            problems = [r[0] for r in conn.execute(f"PRAGMA {check}").fetchmany(_QUICK_CHECK_MAX_ROWS)]
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            # A damaged page can make SQLite's own error text invalid UTF-8 (UnicodeDecodeError).
            raise JournalCorruptError(
                path, f"corrupt ({exc}); refusing to start, file left untouched. Restore a backup"
            ) from exc
        if problems != ["ok"]:
            lost = (f" (the last run did not close cleanly and {path}-wal is missing: the WAL held pages "
                    "the database needs; restore the -wal file if you have it, else a backup)") if thorough else ""
            raise JournalCorruptError(
                path, f"fails PRAGMA {check}: {'; '.join(map(str, problems))}{lost}; refusing to start, "
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


def connect(path: str, mode: str) -> sqlite3.Connection:
    """A connection by URI: `mode=rw` never creates the file; `ro` never writes it."""
    uri = f"file:{quote(path)}?mode={mode}"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def configure(conn: sqlite3.Connection, synchronous: str) -> dict[str, Any]:
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


def new_journal_id() -> str:
    return "".join(secrets.choice(_JOURNAL_ID_ALPHABET) for _ in range(JOURNAL_ID_LEN))


def init_meta(conn: sqlite3.Connection, clock: Clock) -> None:
    conn.execute("BEGIN IMMEDIATE")
    rows = [("journal_id", new_journal_id()), ("next_seq", str(FIRST_SEQ)), ("created_ns", str(clock.time_ns()))]
    conn.executemany(
        "INSERT INTO meta (key, value, chk) VALUES (?, ?, ?)", [(k, v, chain.row_chk(k, v)) for k, v in rows]
    )
    conn.execute("COMMIT")


def create_database(path: str, clock: Clock) -> None:
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
        init_meta(conn, clock)
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


def backup_and_migrate(path: str, version: int, clock: Clock) -> None:
    """Copy the database aside (`<path>.v<N>-<ns>.bak`), then apply the forward migrations."""
    backup = f"{path}.v{version}-{clock.time_ns()}.bak"
    conn = connect(path, "rw")
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


def wal_lost(path: str) -> bool:
    """Whether the journal at `path` lacks the WAL its last run left: that run did not close
    cleanly (its sequence mark says so, or the mark cannot be read) yet no -wal file exists.
    A clean close checkpoints and removes the WAL; a crash leaves it."""
    if os.path.exists(f"{path}-wal"):
        return False
    try:
        mark = hwm.read(hwm.mark_path(path))
    except ValueError:
        return True
    return mark is not None and not mark.clean


def read_mark(path: str) -> hwm.HighWaterMark | None:
    """The sequence mark, or None (logged) when it cannot be read: the id epoch still keeps ids unique."""
    try:
        return hwm.read(path)
    except ValueError as exc:
        log.error("journal_mark_unreadable", path=path, error=str(exc),
                  detail="treated as missing; it is rewritten now")
        return None


def unwritable(path: str, exc: BaseException, what: str | None = None) -> JournalError:
    """The journal (or its mark file) cannot be written: name the file and what to do."""
    target = what or path
    directory = os.path.dirname(os.path.abspath(target))
    return JournalError(
        path, f"cannot write {target}: {exc}; the node needs to write the journal, its -wal/-shm/.lock/.seq "
        f"files and their directory {directory} (read-only filesystem or wrong owner/permissions? "
        f"fix with chown/chmod, or point [node] state_dir elsewhere)"
    )


def warn_if_readable_by_others(path: str) -> None:
    """The journal holds every order and fill: warn when group or others may read it."""
    for p in (path, os.path.dirname(os.path.abspath(path))):
        with contextlib.suppress(OSError):
            mode = os.stat(p).st_mode & 0o777
            if mode & 0o077:
                log.warning("journal_permissions_too_open", path=p, mode=oct(mode),
                            hint=f"chmod {'600' if p == path else '700'} {p}")


def load_meta(conn: sqlite3.Connection, path: str) -> tuple[str, int]:
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
