"""[journal] — the SQLite (WAL) journal."""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import non_empty, setting


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """Durable record of intents, orders, fills, positions and the admin audit."""

    path: str = setting("journal.sqlite3", live=False, check=non_empty, doc="database file; relative paths are under node.state_dir")
    synchronous: str = setting(
        "full", live=False, choices=("full", "normal"),
        doc="full = fsync every commit (an intent survives power loss); normal = survives a process "
        "crash only, ~0.2 ms faster per order (see docs/JOURNAL.md)",
    )
    intent_log: bool = setting(
        True, live=False,
        doc="with synchronous = full: intents are fsynced to an append-only log (<path>.intents) and folded "
        "into SQLite off the order path; false = each intent is its own SQLite commit (see docs/JOURNAL.md)",
    )
    commit_interval_ms: float = setting(50.0, live=True, ge=0.1, le=5000, doc="batching window for non-critical writes")
    snapshot_interval_s: float = setting(60.0, live=True, ge=1, le=86_400, doc="position snapshot period")
