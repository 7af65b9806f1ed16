"""Journal errors. Each names the database file and says what the operator must do."""

from __future__ import annotations

from nautilus_hmm.core.errors import NautilusError


class JournalError(NautilusError):
    """Base of journal errors: `path` is the database file, `problem` what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"journal {path}: {problem}")


class JournalCorruptError(JournalError):
    """The file is not a SQLite database, is truncated, or fails `PRAGMA quick_check`."""


class JournalSchemaError(JournalError):
    """The database is not a nautilus-hmm journal, or its schema is newer than this code."""


class JournalInUseError(JournalError):
    """Another process (or another Journal in this process) holds the journal's lock."""


class JournalClosedError(JournalError):
    """A write or read was attempted after `close()`."""


class JournalWriteError(JournalError):
    """A commit failed (I/O error, disk full). Fatal: the journal refuses further writes.

    `corrupt` is set when SQLite found the file damaged (SQLITE_CORRUPT, SQLITE_NOTADB),
    not merely unwritable."""

    def __init__(self, path: str, problem: str, corrupt: bool = False) -> None:
        super().__init__(path, problem)
        self.corrupt = corrupt


class DuplicateClientOrderIdError(JournalError):
    """An intent reused a client order id that is already journaled; the order must not be sent."""
