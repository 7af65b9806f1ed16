"""The sequence high-water mark: a small file beside the journal, outside SQLite and its WAL.

`<journal>.seq` holds one JSON object: the journal id, `reserved_seq` (every sequence
below it may have been handed out, so a start never hands it out again) and `clean`
(written by a clean close, when `reserved_seq` is exactly the journal's committed next
sequence). The writer reserves sequences ahead in blocks of `BLOCK_SEQS`, writing this
file (temp file, fsync, rename, fsync of the directory) before the intent of any
sequence at or above the old mark is acknowledged, so the hot path pays one file write
per block, not per order.

`none_reserved` (written only when true) says that no sequence of this journal was ever
reserved for an order: a journal's first open writes it with `reserved_seq` equal to its
next sequence (nothing reserved), so the first intent ever acknowledged rewrites the mark
without it; a later open keeps it only while the database holds no order and the intent
log no record. A start that finds it can prove that no order was ever sent under this
journal (execution/reconcile.py: a first start killed before it journaled its baseline
balances need not halt the next one).

A start compares the mark with the database: `next_seq = max(database, mark)`, and the
comparison says whether rows may be lost (`TailStatus`). A mark of another journal (the
database was moved away and a new one created) is ignored. A mark that cannot be read
is reported, not trusted; the per-start epoch in client order ids (core.ids) still keeps
ids unique then.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import orjson

from nautilus_hmm.core.files import write_atomic

# A reservation costs two fsyncs on the writer thread: at 30k intents/s, 10,000 a block is
# three a second. An unclean restart skips up to this many sequence numbers (harmless).
BLOCK_SEQS = 10_000


class TailStatus(enum.Enum):
    """What the mark says about the journal's newest rows at this start."""

    NEW = "new"  # a journal created by this start
    CLEAN = "clean"  # the last run closed cleanly and the database has all it committed
    UNVERIFIED = "unverified"  # the last run did not close cleanly (crash, kill): rows may be lost
    LOST = "lost"  # the database is behind what the last clean close committed: rows were lost
    NO_MARK = "no_mark"  # an existing journal without a readable mark of its own (upgrade, deleted file)
    REPLACED = "replaced"  # a journal created where another journal's mark still lies: the old one is gone


@dataclass(frozen=True, slots=True)
class HighWaterMark:
    """The contents of the mark file."""

    journal_id: str
    reserved_seq: int
    clean: bool
    none_reserved: bool = False  # no sequence of this journal was ever reserved for an order


def mark_path(journal_path: str) -> str:
    """Where the mark of the journal at `journal_path` lives."""
    return f"{journal_path}.seq"


def read(path: str) -> HighWaterMark | None:
    """The mark at `path`; None if there is none. ValueError (naming the file) if it cannot be parsed."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        data = orjson.loads(raw)
        # Only a literal true proves that nothing was reserved; an older mark has no such key.
        mark = HighWaterMark(str(data["journal_id"]), int(data["reserved_seq"]), bool(data["clean"]),
                             none_reserved=data.get("none_reserved") is True)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a sequence mark ({exc}): {raw[:80]!r}") from exc
    if mark.reserved_seq < 0:
        raise ValueError(f"{path}: reserved_seq {mark.reserved_seq} is negative")
    return mark


def write(path: str, mark: HighWaterMark) -> None:
    """Replace the mark atomically and durably (mode 0600); OSError on failure."""
    doc: dict[str, object] = {"journal_id": mark.journal_id, "reserved_seq": mark.reserved_seq, "clean": mark.clean}
    if mark.none_reserved:
        doc["none_reserved"] = True
    body = orjson.dumps(doc)
    write_atomic(path, body + b"\n")


def tail_status(mark: HighWaterMark | None, journal_id: str, db_next_seq: int, created: bool) -> TailStatus:
    """Classify this start (see TailStatus)."""
    if created:
        return TailStatus.NEW if mark is None else TailStatus.REPLACED
    if mark is None or mark.journal_id != journal_id:
        return TailStatus.NO_MARK
    if not mark.clean:
        return TailStatus.UNVERIFIED
    return TailStatus.CLEAN if mark.reserved_seq <= db_next_seq else TailStatus.LOST
