"""Client order ids that never repeat, even when the journal lost its newest rows.

`<prefix>-<journal id>-<epoch>-<sequence>`:

* the journal id is a random tag made once when the journal database is created;
* the epoch is a random tag made at every open of the journal (a start), so a start
  whose journal lost its tail (a deleted or damaged WAL, a restored backup) still mints
  ids no venue has seen, even if it hands out a sequence number again;
* the sequence is journaled before the order is sent and reserved ahead in a
  high-water-mark file outside the database (journal/store.py), so it also keeps rising
  across starts.

At most 36 characters of `[A-Za-z0-9_-]`, which Binance (`newClientOrderId`, 36) and
Bybit (`orderLinkId`, 36) both accept. Ids of the older form `<prefix>-<journal id>-<seq>`
(journals written before the epoch existed) are still recognised as ours.
"""

from __future__ import annotations

import re
import secrets
import string

CLIENT_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
EPOCH_LEN = 4
_EPOCH_ALPHABET = string.ascii_lowercase + string.digits
_EPOCH_RE = re.compile(r"^[a-z0-9]{4}$")


def new_epoch() -> str:
    """A random per-start tag of EPOCH_LEN chars [a-z0-9] (1.7 million values)."""
    return "".join(secrets.choice(_EPOCH_ALPHABET) for _ in range(EPOCH_LEN))


def client_order_id(prefix: str, journal_id: str, seq: int, epoch: str = "") -> str:
    """Build the client order id for sequence number `seq` (of start `epoch`; "" = the old form)."""
    if seq < 0:
        raise ValueError(f"sequence must be >= 0, got {seq}")
    if epoch and not _EPOCH_RE.match(epoch):
        raise ValueError(f"epoch {epoch!r} is not {EPOCH_LEN} chars of [a-z0-9]")
    cid = f"{prefix}-{journal_id}-{epoch}-{seq}" if epoch else f"{prefix}-{journal_id}-{seq}"
    if not CLIENT_ORDER_ID_RE.match(cid):
        raise ValueError(f"client order id {cid!r} is not 1-36 chars of [A-Za-z0-9_-]")
    return cid


def parse_sequence(cid: str, prefix: str, journal_id: str) -> int | None:
    """The sequence number of one of our ids (either form), or None if the id is not ours."""
    head = f"{prefix}-{journal_id}-"
    if not cid.startswith(head):
        return None
    tail = cid[len(head):]
    if tail.isdigit():
        return int(tail)
    epoch, sep, digits = tail.partition("-")
    if sep and _EPOCH_RE.match(epoch) and digits.isdigit():
        return int(digits)
    return None


def parse_journal_sequence(cid: str, journal_id: str) -> int | None:
    """The sequence of an id minted by journal `journal_id` under any prefix, or None."""
    marker = f"-{journal_id}-"
    at = cid.find(marker)
    while at > 0:
        seq = parse_sequence(cid, cid[:at], journal_id)
        if seq is not None:
            return seq
        at = cid.find(marker, at + 1)
    return None
