"""What a failed daemon start tells the operator: one line naming what failed, the file,
path or address involved and the problem, a hint saying what to do, and the exit code.

Rules: every failure the node can meet while building or starting (state directory,
journal, paper account, model registry, admin token file, venue, config values checked
at build time) is described from the exception's own fields, never from a traceback. An
exception of no known kind is a bug: it still gets one line, and its traceback goes to
the log at debug level only. Exit 78 (EX_CONFIG, systemd does not restart) when the
config must change; 1 otherwise (systemd may restart: a venue can come back).
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nautilus_hmm.config import Config, ConfigError
from nautilus_hmm.core.errors import AuthError, DataError, VenueError
from nautilus_hmm.core.secrets import CredentialError
from nautilus_hmm.hmm.errors import HmmError
from nautilus_hmm.hmm.registry import TAGS_FILE, RegistryError
from nautilus_hmm.journal.errors import (
    JournalCorruptError,
    JournalError,
    JournalInUseError,
    JournalSchemaError,
)
from nautilus_hmm.venues.sim.account import ACCOUNT_FILE

EXIT_FATAL = 1
EXIT_CONFIG = 78  # EX_CONFIG: RestartPreventExitStatus=78 stops a restart loop

STATE_DIR_HINT = ("[node] state_dir (or $STATE_DIRECTORY under systemd) must name a directory "
                  "this user can write: fix its owner or mode, or point it elsewhere")


class StartError(Exception):
    """A start-up step failed on `what` at `path`: `problem` says what is wrong, `hint` what to do."""

    def __init__(self, what: str, path: str | Path, problem: str, hint: str, exit_code: int = EXIT_FATAL) -> None:
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        self.exit_code = exit_code
        super().__init__(f"{what} {path}: {problem}")


@dataclass(frozen=True, slots=True)
class StartFailure:
    """The one line a failed start logs, and the process exit code."""

    error: str
    hint: str
    exit_code: int = EXIT_FATAL
    known: bool = True  # False: no rule matched (a bug); the traceback is logged at debug level

    def fields(self) -> dict[str, str]:
        """The log line's fields."""
        return {"error": self.error, "hint": self.hint}


def _os_error(exc: OSError, state_dir: Path) -> StartFailure:
    path = exc.filename if exc.filename is not None else state_dir
    problem = exc.strerror or str(exc)
    misplaced_file = isinstance(exc, FileExistsError | NotADirectoryError)
    if misplaced_file:
        problem = f"{problem} (a file is where a directory is needed)"
    if Path(path) == state_dir:
        return StartFailure(f"state directory {state_dir}: {problem}", STATE_DIR_HINT)
    if state_dir in Path(path).parents or Path(path) in state_dir.parents:
        hint = (f"move the file {path} aside: a directory is needed there" if misplaced_file and
                state_dir in Path(path).parents else STATE_DIR_HINT)
        return StartFailure(f"state directory {state_dir}: {path}: {problem}", hint)
    return StartFailure(f"{path}: {problem}", "check that the path exists, is of the right kind and is readable")


def _journal(exc: JournalError) -> StartFailure:
    if isinstance(exc, JournalInUseError):
        hint = "another nautilus-hmm process uses this state directory: stop it first"
    elif isinstance(exc, JournalSchemaError):
        hint = ("the file was written by a newer nautilus-hmm or is not a journal: run the version that "
                "wrote it, or point [journal] path elsewhere; the file is left untouched")
    elif isinstance(exc, JournalCorruptError) and exc.path.endswith(".intents"):
        hint = (f"the intent log {exc.path} is left untouched: restore it from a backup, or, after checking "
                "the venue's orders, move it aside: the start then counts the journal's tail as lost and "
                "trading stays halted until you resume (docs/JOURNAL.md, the intent log)")
    elif isinstance(exc, JournalCorruptError) or getattr(exc, "corrupt", False):
        hint = ("the journal files are left untouched: restore them from a backup, or move "
                f"{exc.path}* aside to start a new journal (reconciliation then rebuilds open orders "
                "from the venue)")
    else:
        hint = (f"{exc.path} must be a file (and its .lock, -wal, -shm beside it) that this user can "
                "read and write: check [journal] path and [node] state_dir, owner and mode")
    return StartFailure(str(exc), hint)


def _data(exc: DataError) -> StartFailure:
    if Path(exc.path).name == ACCOUNT_FILE:
        return StartFailure(
            str(exc),
            "the paper account file is damaged and left untouched: restore it from a backup, or move it "
            "aside to open a new paper account with [venues.sim] initial_balances",
        )
    return StartFailure(f"data file {exc}", "fix the file or point the config at another one")


def _venue(exc: VenueError, addresses: Mapping[str, str]) -> StartFailure:
    address = addresses.get(exc.venue)
    at = f" at {address}" if address else ""
    if isinstance(exc, AuthError):
        # A restart would send the refused key again (and risk an IP ban): a config error.
        return StartFailure(
            f"venue {exc.venue}{at} refused the API key at start: {exc.message}",
            f"check the key and secret of [venues.{exc.venue}] credential_prefix (environment or systemd "
            "credentials), their permissions and IP allow-list, and testnet vs live",
            EXIT_CONFIG,
        )
    return StartFailure(
        f"venue {exc.venue}{at} failed at start: {exc.message}",
        f"check the network and [venues.{exc.venue}] rest_url/ws_url and the API keys; "
        "the start is retried when the process is restarted",
    )


def bind_failure(exc: OSError, address: str) -> StartFailure:
    """The HTTP listener could not bind `address` (host:port): in use (exit 1: it may free up),
    not an address of this machine or a privileged port (exit 78: the config must change)."""
    problem = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno == errno.EADDRINUSE:
        return StartFailure(f"http {address}: {problem}", "another process listens there; stop it or change [http] port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartFailure(f"http {address}: {problem}",
                            "[http] host is not an address of this machine: use 127.0.0.1 (or one of its own "
                            "addresses)", EXIT_CONFIG)
    if exc.errno == errno.EACCES:
        return StartFailure(f"http {address}: {problem}",
                            "ports below 1024 need privileges: set [http] port to 1024 or above (default 8080)",
                            EXIT_CONFIG)
    return StartFailure(f"http {address}: {problem}", "check [http] host and port")


def _config_sections() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Config))


def describe(exc: BaseException, state_dir: Path, venue_addresses: Mapping[str, str] | None = None) -> StartFailure:
    """The start failure `exc` as one line: what failed, where, and what to do."""
    if isinstance(exc, StartError):
        return StartFailure(str(exc), exc.hint, exc.exit_code)
    if isinstance(exc, ConfigError):
        return StartFailure("config: " + "; ".join(exc.errors), "fix the config file, then start again",
                            EXIT_CONFIG)
    if isinstance(exc, JournalError):
        return _journal(exc)
    if isinstance(exc, DataError):
        return _data(exc)
    if isinstance(exc, RegistryError) and exc.path is not None and Path(exc.path).name == TAGS_FILE:
        return StartFailure(
            f"model registry {exc}",
            "the tags file is damaged and left untouched: restore it from a backup, or move it aside to "
            "start with no production model, then tag one: nautilus-hmm models promote ID",
        )
    if isinstance(exc, HmmError):
        return StartFailure(
            f"model registry: {exc}",
            "restore the registry file from a backup, or move the registry directory ([hmm] registry_dir) "
            "aside: a new first model is then trained",
        )
    if isinstance(exc, VenueError):
        return _venue(exc, venue_addresses or {})
    if isinstance(exc, CredentialError):
        return StartFailure(f"credential {exc.filename}: {exc.strerror}",
                            "write the secret as UTF-8 text into the systemd credential (LoadCredential=), "
                            "or set its NAUTILUS_HMM_* environment variable instead (see README, Secrets)")
    if isinstance(exc, OSError):
        return _os_error(exc, state_dir)
    text = str(exc)
    if isinstance(exc, ValueError) and text.split(".", 1)[0] in _config_sections():
        # A value the schema accepts but the component refuses names its dotted config path.
        return StartFailure(f"config: {text}", "fix what it names (config file, environment or credentials), "
                                               "then start again", EXIT_CONFIG)
    return StartFailure(f"{type(exc).__name__}: {text}",
                        'this is a bug: report it with the log of a start at [log] level = "debug" '
                        "(it holds the traceback)", known=False)
