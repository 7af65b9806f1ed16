"""A journal whose damage makes SQLite's own error text invalid UTF-8 is refused at open with
JournalCorruptError naming the file (it was a bare UnicodeDecodeError from quick_check)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.journal.errors import JournalCorruptError
from nautilus_hmm.journal.store import Journal


async def test_bit_flips_that_garble_sqlite_messages_are_a_corrupt_journal(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal", durable=False)
    try:
        for k in range(30):
            req = OrderRequest(j.next_client_order_id("t"), InstrumentId("sim", "BTCUSDT"), Side.BUY,
                               OrderType.MARKET, Decimal("1"))
            await j.record_intent(req, "s", k)
    finally:
        j.close()
    data = bytearray(p.read_bytes())
    for i in range(200, len(data), 97):
        data[i] ^= 0xFF
    p.write_bytes(bytes(data))
    damaged = p.read_bytes()
    with pytest.raises(JournalCorruptError) as e:
        Journal.open(p)
    assert str(p) in str(e.value) and "Restore a backup" in str(e.value)
    assert p.read_bytes() == damaged  # left untouched
