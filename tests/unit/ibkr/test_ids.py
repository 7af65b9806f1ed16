"""IB order ids: above every id used before, across restarts; the mark is written before an id of a new block."""

from __future__ import annotations

from pathlib import Path

import pytest

from nautilus_hmm.venues.ibkr.ids import BLOCK_IDS, ID_FILE, OrderIdBook


def hand_out(book: OrderIdBook, next_valid_id: int) -> int:
    oid, mark = book.take(next_valid_id)
    if mark is not None:
        book.reserve_write(mark)
    book.commit(oid, mark)
    return oid


def test_first_id_is_next_valid_id_and_a_block_is_reserved_first(tmp_path: Path) -> None:
    book = OrderIdBook.load(tmp_path)
    oid, mark = book.take(12)
    assert oid == 12 and mark == 12 + BLOCK_IDS
    assert not (tmp_path / ID_FILE).exists()  # take() writes nothing: the caller writes, then sends
    book.reserve_write(mark)
    book.commit(oid, mark)
    assert OrderIdBook.load(tmp_path).reserved_below == 12 + BLOCK_IDS


def test_ids_inside_a_reserved_block_need_no_write(tmp_path: Path) -> None:
    book = OrderIdBook.load(tmp_path)
    hand_out(book, 12)
    oid, mark = book.take(12)
    assert (oid, mark) == (13, None)


def test_a_restart_never_reuses_an_id_even_when_the_gateway_says_lower(tmp_path: Path) -> None:
    book = OrderIdBook.load(tmp_path)
    used = [hand_out(book, 1) for _ in range(5)]
    restarted = OrderIdBook.load(tmp_path)
    # A reset Gateway (or a paper account) hands out 1 again: the mark wins.
    oid = hand_out(restarted, 1)
    assert oid > max(used) and oid >= BLOCK_IDS


def test_next_valid_id_above_the_mark_wins(tmp_path: Path) -> None:
    book = OrderIdBook.load(tmp_path)
    hand_out(book, 1)
    assert hand_out(book, 5000) == 5000
    assert OrderIdBook.load(tmp_path).reserved_below == 5000 + BLOCK_IDS


def test_ids_seen_at_the_venue_are_never_handed_out(tmp_path: Path) -> None:
    book = OrderIdBook.load(tmp_path)
    book.observe(700)
    assert hand_out(book, 10) == 701


@pytest.mark.parametrize("body", [b"", b"{", b'{"reserved_below": "12"}', b'{"reserved_below": -1}',
                                  b'{"other": 3}', b'{"reserved_below": true}'])
def test_a_damaged_mark_is_an_error_naming_the_file(tmp_path: Path, body: bytes) -> None:
    (tmp_path / ID_FILE).write_bytes(body)
    with pytest.raises(ValueError) as info:
        OrderIdBook.load(tmp_path)
    assert str(tmp_path / ID_FILE) in str(info.value)


def test_a_failed_mark_write_hands_out_nothing(tmp_path: Path) -> None:
    book = OrderIdBook.load(tmp_path / "missing-dir")
    oid, mark = book.take(3)
    with pytest.raises(OSError):
        book.reserve_write(mark)  # type: ignore[arg-type]
    assert book.take(3) == (oid, mark)  # not committed: the same id comes again, nothing was sent
