"""Bybit local book: snapshot resets, deltas by u+1, gaps raise BookGap; the real ob500 dump replays."""

from __future__ import annotations

import zipfile

import orjson
import pytest

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.bybit.book import Applied, BookGap, BybitBook
from nautilus_hmm.venues.bybit.parse import BookUpdate, BybitParser, parse_orderbook
from tests.conftest import fixture_path

IID = InstrumentId("bybit_linear", "BTCUSDT")
TS = 1_700_000_000_000_000_000


def upd(u: int, bids: list[tuple[float, float]] = (), asks: list[tuple[float, float]] = (), *,
        snapshot: bool = False, seq: int | None = None) -> BookUpdate:
    return BookUpdate(IID, 50, snapshot, u, seq if seq is not None else u * 10, list(bids), list(asks),
                      TS + u, TS + u)


def valid_book() -> BybitBook:
    book = BybitBook(IID, depth=50)
    assert book.apply(upd(100, [(99.0, 1.0), (98.0, 2.0)], [(101.0, 1.5), (102.0, 3.0)], snapshot=True)) \
        is Applied.SNAPSHOT
    return book


def test_snapshot_then_delta_applies_and_size_zero_deletes() -> None:
    book = valid_book()
    assert book.apply(upd(101, [(99.0, 0.0), (99.5, 4.0)], [(101.0, 0.7)])) is Applied.DELTA
    assert book.best_bid() == (99.5, 4.0) and book.best_ask() == (101.0, 0.7)
    assert book.top(5) == ([(99.5, 4.0), (98.0, 2.0)], [(101.0, 0.7), (102.0, 3.0)])
    assert book.update_id == 101 and book.mid() == pytest.approx(100.25)
    # Deleting a level the book does not hold is normal.
    assert book.apply(upd(102, [(50.0, 0.0)])) is Applied.DELTA and book.levels() == (2, 2)


def test_deltas_before_a_snapshot_are_ignored() -> None:
    book = BybitBook(IID)
    assert book.apply(upd(5, [(1.0, 1.0)])) is Applied.WAITING
    assert book.best_bid() is None and not book.valid


def test_a_missed_update_raises_book_gap_and_invalidates() -> None:
    book = valid_book()
    with pytest.raises(BookGap) as info:
        book.apply(upd(102, [(99.0, 5.0)]))
    assert (info.value.expected_u, info.value.got_u) == (101, 102)
    assert "u=102 after u=100" in str(info.value) and str(IID) in str(info.value)
    assert not book.valid and book.gaps == 1
    assert book.best_bid() is None and book.quote(TS) is None  # nobody reads a book known to be wrong
    # Later deltas wait for the snapshot instead of raising again.
    assert book.apply(upd(103)) is Applied.WAITING
    assert book.apply(upd(7, [(10.0, 1.0)], [(11.0, 1.0)], snapshot=True)) is Applied.SNAPSHOT
    assert book.valid and book.best_bid() == (10.0, 1.0) and book.levels() == (1, 1)


def test_a_stale_repeat_is_ignored() -> None:
    book = valid_book()
    book.apply(upd(101, [(99.0, 7.0)]))
    assert book.apply(upd(101, [(99.0, 1.0)])) is Applied.STALE
    assert book.best_bid() == (99.0, 7.0)


def test_seq_going_backwards_is_a_gap() -> None:
    book = valid_book()
    with pytest.raises(BookGap, match="seq went backwards"):
        book.apply(upd(101, [(99.0, 1.0)], seq=5))


def test_a_crossed_book_is_a_gap() -> None:
    book = valid_book()
    with pytest.raises(BookGap, match="crossed"):
        book.apply(upd(101, [(101.5, 1.0)]))
    assert not book.valid


def test_a_new_snapshot_resets_the_book_even_when_u_restarts_at_one() -> None:
    book = valid_book()
    book.apply(upd(101, [(97.0, 1.0)]))
    assert book.apply(upd(1, [(50.0, 1.0)], [(51.0, 2.0)], snapshot=True)) is Applied.SNAPSHOT
    assert book.levels() == (1, 1) and book.update_id == 1
    assert book.apply(upd(2, [(50.5, 1.0)])) is Applied.DELTA


def test_depth_is_kept() -> None:
    book = BybitBook(IID, depth=2)
    book.apply(upd(1, [(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)], [(4.0, 1.0), (5.0, 1.0), (6.0, 1.0)], snapshot=True))
    assert book.top(5) == ([(3.0, 1.0), (2.0, 1.0)], [(4.0, 1.0), (5.0, 1.0)])
    book.apply(upd(2, [(3.5, 1.0)]))
    assert book.top(5)[0] == [(3.5, 1.0), (3.0, 1.0)]


def test_an_update_for_another_instrument_is_a_programming_error() -> None:
    other = BookUpdate(InstrumentId("bybit_linear", "ETHUSDT"), 50, True, 1, 1, [], [], TS, TS)
    with pytest.raises(ValueError, match="ETHUSDT"):
        BybitBook(IID).apply(other)


def test_a_rest_snapshot_resyncs_like_a_stream_snapshot() -> None:
    body = orjson.loads(fixture_path("bybit", "docs_v5", "rest_GET_v5_market_orderbook.json").read_bytes())
    snap = parse_orderbook(body, "bybit_linear", TS)
    book = BybitBook(snap.instrument_id)
    assert book.apply(snap) is Applied.SNAPSHOT
    assert book.best_bid() == (65485.47, 47.081829) and book.update_id == 230704


def _ob500_frames() -> list[bytes]:
    path = fixture_path("marketdata", "bybit", "xrpusdt-ob500_2024-12-01.data.zip")
    with zipfile.ZipFile(path) as z:
        (name,) = z.namelist()
        return z.read(name).splitlines()


def test_the_recorded_ob500_dump_replays_without_a_gap() -> None:
    frames = _ob500_frames()
    parser = BybitParser("linear")
    book = BybitBook(parser.ids("XRPUSDT"), depth=500)
    outcomes = [book.apply(parser.parse(f, TS)) for f in frames]
    assert outcomes[0] is Applied.SNAPSHOT and outcomes[1:] == [Applied.DELTA] * 49
    assert book.update_id == 20254918 and book.levels() == (500, 500)
    assert book.best_bid() == (1.9537, 10605.0) and book.best_ask() == (1.9538, 6702.0)
    q = book.quote(TS)
    assert q is not None and q.ts_event_ns == 1733011205490 * 1_000_000


def test_a_dropped_ob500_frame_is_detected() -> None:
    frames = _ob500_frames()
    parser = BybitParser("linear")
    book = BybitBook(parser.ids("XRPUSDT"), depth=500)
    for f in frames[:10]:
        book.apply(parser.parse(f, TS))
    with pytest.raises(BookGap) as info:
        book.apply(parser.parse(frames[11], TS))  # frame 10 lost
    assert info.value.expected_u == 20254879 and info.value.got_u == 20254880
    # Resubscribing delivers a snapshot: the first frame again resets the book.
    assert book.apply(parser.parse(frames[0], TS)) is Applied.SNAPSHOT and book.valid


def test_random_deltas_match_a_plain_dict_model() -> None:
    import random

    rng = random.Random(7)
    book = BybitBook(IID)
    ref_b = {float(p): 1.0 for p in range(80, 100)}
    ref_a = {float(p): 1.0 for p in range(101, 121)}
    book.apply(upd(1, list(ref_b.items()), list(ref_a.items()), snapshot=True))
    for u in range(2, 600):
        bids = [(float(rng.randint(60, 100)), rng.choice([0.0, 0.5, 2.0])) for _ in range(rng.randint(0, 6))]
        asks = [(float(rng.randint(101, 140)), rng.choice([0.0, 0.5, 2.0])) for _ in range(rng.randint(0, 6))]
        assert book.apply(upd(u, bids, asks)) is Applied.DELTA
        for side, ref in ((bids, ref_b), (asks, ref_a)):
            for p, q in side:
                if q == 0.0:
                    ref.pop(p, None)
                else:
                    ref[p] = q
        top = book.top(1000)
        assert top is not None
        assert top[0] == sorted(ref_b.items(), reverse=True)
        assert top[1] == sorted(ref_a.items())
    assert book.levels() == (len(ref_b), len(ref_a))


def test_a_damaged_ob500_stream_never_crashes_the_parser_or_the_book() -> None:
    import random

    from nautilus_hmm.venues.bybit.parse import BybitParseError

    rng = random.Random(3)
    frames = _ob500_frames()
    parser = BybitParser("linear")
    book = BybitBook(parser.ids("XRPUSDT"), depth=500)
    seen = {"applied": 0, "refused": 0, "gap": 0}
    for _ in range(4):
        for raw in frames:
            damaged = bytearray(raw)
            if rng.random() < 0.3:
                for _ in range(rng.randint(1, 4)):
                    damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            try:
                book.apply(parser.parse(bytes(damaged), TS))
                seen["applied"] += 1
            except BybitParseError:
                seen["refused"] += 1
            except BookGap:
                seen["gap"] += 1
            except ValueError as exc:  # a flipped symbol: the update is for another instrument
                assert "fed to the book of" in str(exc)
    assert seen["applied"] > 0 and seen["refused"] > 0
    assert book.apply(parser.parse(frames[0], TS)) is Applied.SNAPSHOT and book.valid
