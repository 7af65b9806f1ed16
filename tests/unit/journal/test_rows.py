"""Row conversion: a stored value that does not parse names the file, table, row and value."""

from __future__ import annotations

import pytest

from nautilus_hmm.journal.errors import JournalCorruptError
from nautilus_hmm.journal.rows import RowParser

GOOD_ORDER = ("t-abc123-1", 1, "sim:BTCUSDT", "s", "BUY", "LIMIT", "0.5", "100", "GTC", 0, "NEW",
              "0", None, None, "", 1, 1)


def test_good_order_row_parses() -> None:
    (row,) = RowParser("j.db").orders([GOOD_ORDER])
    assert str(row.quantity) == "0.5" and row.price is not None and row.avg_px is None


def test_bad_decimal_names_table_row_column_and_value() -> None:
    bad = (*GOOD_ORDER[:6], "lots", *GOOD_ORDER[7:])
    with pytest.raises(JournalCorruptError, match=r"j\.db: table orders row t-abc123-1: bad quantity 'lots'"):
        RowParser("j.db").orders([bad])


def test_unknown_status_is_refused() -> None:
    bad = (*GOOD_ORDER[:10], "LOST", *GOOD_ORDER[11:])
    with pytest.raises(JournalCorruptError, match="bad status 'LOST'"):
        RowParser("j.db").orders([bad])


def test_bad_instrument_id_in_fill_is_refused() -> None:
    row = (1, "sim", "T1", "c", "v", "BTCUSDT", "BUY", "1", "1", "0", "USDT", "MAKER", 5)
    with pytest.raises(JournalCorruptError, match="table fills row sim/T1: bad instrument_id 'BTCUSDT'"):
        RowParser("j.db").fills([row])
