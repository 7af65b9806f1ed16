"""Deterministic client order ids.

`<prefix>-<journal id>-<sequence>`: the journal id is a random tag made once when the
journal database is created, the sequence is journaled before the order is sent. The
same journal therefore never produces the same id twice, and a recovered node continues
the sequence instead of reusing it. At most 36 characters of `[A-Za-z0-9_-]`, which
Binance (`newClientOrderId`, 36) and Bybit (`orderLinkId`, 36) both accept.
"""

from __future__ import annotations

import re

CLIENT_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def client_order_id(prefix: str, journal_id: str, seq: int) -> str:
    """Build the client order id for sequence number `seq`."""
    if seq < 0:
        raise ValueError(f"sequence must be >= 0, got {seq}")
    cid = f"{prefix}-{journal_id}-{seq}"
    if not CLIENT_ORDER_ID_RE.match(cid):
        raise ValueError(f"client order id {cid!r} is not 1-36 chars of [A-Za-z0-9_-]")
    return cid


def parse_sequence(cid: str, prefix: str, journal_id: str) -> int | None:
    """The sequence number of one of our ids, or None if the id is not ours."""
    head = f"{prefix}-{journal_id}-"
    if not cid.startswith(head):
        return None
    tail = cid[len(head):]
    return int(tail) if tail.isdigit() else None
