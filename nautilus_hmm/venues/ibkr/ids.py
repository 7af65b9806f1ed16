"""IB order ids: above every id used before, across restarts, made durable before the send.

IB identifies an API order by (client id, order id); `nextValidId` tells the lowest id the
Gateway accepts now, but a Gateway that was reset (or a paper account, or another
Gateway) may hand out an id this daemon already used, and an order id reused while the
old order is known to IB is refused (103) or, worse, read as a modification. So the id of
each order is `max(nextValidId, high-water mark + 1)`, where the high-water mark covers
every id this daemon ever handed out or saw (open orders, executions).

Durability follows the journal's sequence mark (journal/hwm.py): ids are reserved in
blocks of `BLOCK_IDS`; the file `<state_dir>/ibkr_order_ids.json` (`{"reserved_below": N}`,
every id below N may have been used) is replaced atomically (fsync, rename, fsync of the
directory) BEFORE an id at or above the old mark leaves, so the hot path pays one file
write per block. A crash skips at most a block of ids (harmless). The client order id
(`orderRef`) is the engine's journaled id; this id only has to never repeat.

Pure: no asyncio. The adapter runs `reserve_write` in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from nautilus_hmm.core.files import write_atomic

ID_FILE = "ibkr_order_ids.json"
BLOCK_IDS = 100
MAX_ORDER_ID = 2**31 - 1  # IB order ids are signed 32-bit


@dataclass(slots=True)
class OrderIdBook:
    """The next IB order id and the durable mark below which every id may have been used."""

    path: Path
    reserved_below: int = 0  # durable: every id below it may have been handed out
    next_id: int = 1  # the lowest id not yet handed out or seen

    @classmethod
    def load(cls, state_dir: Path) -> OrderIdBook:
        """The book of `state_dir`; ValueError naming the file when it is damaged (never a silent reset)."""
        path = Path(state_dir) / ID_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        try:
            data = orjson.loads(raw)
            mark = data["reserved_below"]
            if not isinstance(mark, int) or isinstance(mark, bool) or not 0 <= mark <= MAX_ORDER_ID + 1:
                raise ValueError(f"reserved_below {mark!r} is not an order id")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not an IB order id mark ({exc}): {raw[:80]!r}; "
                             "the ids it protects cannot be known: move it away only if no order of "
                             "this account's client id is open or recent") from None
        return cls(path, reserved_below=mark, next_id=max(1, mark))

    def observe(self, order_id: int) -> None:
        """An id seen at the venue (open order, execution, nextValidId): never hand it out again."""
        if order_id >= self.next_id:
            self.next_id = order_id + 1

    def take(self, next_valid_id: int) -> tuple[int, int | None]:
        """The id for the next order and the new mark to make durable first (None: already covered).

        The caller writes the mark (`reserve_write`) before the order with that id leaves; on
        failure the id is not used and the book is unchanged.
        """
        oid = max(self.next_id, next_valid_id)
        if oid > MAX_ORDER_ID:
            raise ValueError(f"IB order id {oid} exceeds {MAX_ORDER_ID}")
        new_mark = None
        if oid >= self.reserved_below:
            new_mark = min(oid + BLOCK_IDS, MAX_ORDER_ID + 1)
        return oid, new_mark

    def commit(self, oid: int, new_mark: int | None) -> None:
        """`oid` was handed out (and `new_mark`, if any, written)."""
        if new_mark is not None:
            self.reserved_below = max(self.reserved_below, new_mark)
        self.observe(oid)

    def reserve_write(self, new_mark: int) -> None:
        """Write the mark durably (OSError propagates: then no order may leave)."""
        write_atomic(self.path, orjson.dumps({"reserved_below": new_mark}) + b"\n")
