"""Local order book sync on real recorded Binance traffic (spot and USD-M)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.binance.book import BookState, LocalOrderBook, Outcome
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import (
    BinanceParser,
    DepthDiff,
    DepthSnapshot,
    parse_depth_snapshot,
)
from tests.conftest import fixture_path
from tests.unit.venues.binance.captures import cryptofeed_http, cryptofeed_ws, hft_lines

SPOT_ID = InstrumentId("binance_spot", "TESTUSDT")


# ---------------------------------------------------------------- cryptofeed captures (2021)


def _cryptofeed_events(market: Market) -> tuple[BinanceParser, list[tuple[float, int, Any]]]:
    """Snapshots and diffs of a cryptofeed capture, in receive order (snapshot after equal-time diffs)."""
    prefix = "BINANCE" if market is Market.SPOT else "BINANCE_FUTURES"
    parser = BinanceParser(market)
    events: list[tuple[float, int, Any]] = []
    for ts, raw in cryptofeed_ws(f"{prefix}.ws.1.0.txt"):
        ev = parser.market_frame(raw, 0)
        if isinstance(ev, DepthDiff):
            events.append((ts, 0, ev))
    for symbol, ts, body in cryptofeed_http(f"{prefix}.http.0.0.txt"):
        events.append((ts, 1, parse_depth_snapshot(body, parser.ids(symbol), 0)))  # type: ignore[arg-type]
    events.sort(key=lambda e: (e[0], e[1]))
    return parser, events


def _replay(market: Market, events: list[tuple[float, int, Any]]) -> tuple[dict[str, LocalOrderBook], list[tuple[str, Outcome]]]:
    books: dict[str, LocalOrderBook] = {}
    outcomes: list[tuple[str, Outcome]] = []
    for _, is_snapshot, ev in events:
        sym = ev.instrument_id.symbol
        book = books.setdefault(sym, LocalOrderBook(ev.instrument_id, market))
        out = book.on_snapshot(ev) if is_snapshot else book.on_diff(ev)
        outcomes.append((sym, out))
    return books, outcomes


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_cryptofeed_replay_syncs_every_symbol_and_never_gaps(market: Market) -> None:
    _, events = _cryptofeed_events(market)
    books, outcomes = _replay(market, events)
    assert len(books) == 4
    assert Outcome.GAP not in {o for _, o in outcomes}  # a crossed book would be a GAP too
    for sym, book in books.items():
        assert book.state is BookState.VALID, (sym, book.reason)
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None and ask is not None and bid[0] < ask[0]
    applied = sum(o is Outcome.APPLIED for _, o in outcomes)
    assert applied > (100 if market is Market.SPOT else 700)


def test_spot_first_diff_contained_in_the_snapshot_is_dropped() -> None:
    parser, events = _cryptofeed_events(Market.SPOT)
    nkn = [e for e in events if e[2].instrument_id.symbol == "NKNUSDT"]
    book = LocalOrderBook(parser.ids("NKNUSDT"), Market.SPOT)
    first_diff = nkn[0][2]
    assert (first_diff.first_update_id, first_diff.final_update_id) == (499869750, 499869752)
    assert book.on_diff(first_diff) is Outcome.BUFFERED
    snapshot = next(e[2] for e in nkn if e[1] == 1)
    assert snapshot.last_update_id == 499869752
    # The buffered diff (u == lastUpdateId) is already in the snapshot: nothing bridges yet.
    assert book.on_snapshot(snapshot) is Outcome.WAITING
    nxt = next(e[2] for e in nkn if e[1] == 0 and e[2].first_update_id == 499869753)
    assert book.on_diff(nxt) is Outcome.SYNCED
    assert book.last_update_id == nxt.final_update_id


def _first_valid_then_drop(market: Market, symbol: str) -> tuple[LocalOrderBook, DepthDiff, Outcome]:
    """Replay one symbol until valid, skip one diff, feed the next: returns its outcome."""
    _, events = _cryptofeed_events(market)
    mine = [e for e in events if e[2].instrument_id.symbol == symbol]
    book = LocalOrderBook(mine[0][2].instrument_id, market)
    it: Iterator[tuple[float, int, Any]] = iter(mine)
    for _, is_snapshot, ev in it:
        out = book.on_snapshot(ev) if is_snapshot else book.on_diff(ev)
        if out is Outcome.SYNCED and book.state is BookState.VALID:
            break
    for _ in range(3):
        book.on_diff(next(it)[2])
    next(it)  # dropped on the floor
    after = next(it)[2]
    return book, after, book.on_diff(after)


def test_spot_missing_diff_is_a_gap_with_reason() -> None:
    book, after, out = _first_valid_then_drop(Market.SPOT, "NKNUSDT")
    assert out is Outcome.GAP
    assert book.state is BookState.INVALID and book.needs_snapshot
    assert f"U={after.first_update_id}" in book.reason
    assert book.best_bid() is None and book.top(5) is None and book.imbalance() is None
    assert book.gaps == 1


def test_usdm_missing_diff_is_a_gap_on_pu() -> None:
    book, after, out = _first_valid_then_drop(Market.USDM, "SUSHIUSDT")
    assert out is Outcome.GAP
    assert f"pu={after.prev_final_update_id}" in book.reason


def test_after_a_gap_the_stream_is_buffered_for_the_next_snapshot() -> None:
    book, _, _ = _first_valid_then_drop(Market.SPOT, "NKNUSDT")
    assert book.buffered() == 1  # the diff that revealed the gap is newer than the book: kept


# ---------------------------------------------------------------- hftbacktest captures (2024)


def _hft_replay(names: list[str], market: Market, symbol: str) -> dict[str, Any]:
    """Replay depth (and check against bookTicker at every update id both have)."""
    parser = BinanceParser(market)
    book = LocalOrderBook(parser.ids(symbol), market)
    tickers: dict[int, tuple[float, float]] = {}
    stats: dict[str, Any] = {"checked": 0, "outcomes": [], "book": book}
    for name in names:
        for _, recv_ns, raw in hft_lines(name):
            if b"@trade" in raw:
                continue
            d = orjson.loads(raw)
            if "lastUpdateId" in d:
                stats["outcomes"].append(book.on_snapshot(parse_depth_snapshot(d, book.instrument_id, recv_ns)))
                continue
            data = d["data"]
            if "b" in data and "U" not in data:  # bookTicker
                tickers[data["u"]] = (float(data["b"]), float(data["a"]))
                continue
            diff = parser.market_event(d, recv_ns)
            assert isinstance(diff, DepthDiff)
            stats["outcomes"].append(book.on_diff(diff))
            top = tickers.get(book.last_update_id)
            if book.is_valid and top is not None:
                bid, ask = book.best_bid(), book.best_ask()
                assert (bid[0], ask[0]) == top, f"{name}: book != bookTicker at u={book.last_update_id}"  # type: ignore[index]
                stats["checked"] += 1
    return stats


@pytest.mark.parametrize(("name", "market", "symbol"), [
    ("spot_ethusdt_20240808.gz", Market.SPOT, "ETHUSDT"),
    ("usdm_btcusdt_20240808.gz", Market.USDM, "BTCUSDT"),
])
def test_hftbacktest_replay_stays_valid_and_matches_book_ticker(name: str, market: Market, symbol: str) -> None:
    stats = _hft_replay([name], market, symbol)
    book: LocalOrderBook = stats["book"]
    assert book.state is BookState.VALID, book.reason
    assert Outcome.GAP not in stats["outcomes"]
    assert stats["checked"] > 500  # best bid/ask equal the venue's bookTicker at the same update id


def test_spot_book_stays_valid_across_the_midnight_file_boundary() -> None:
    stats = _hft_replay(["spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"], Market.SPOT, "BTCUSDT")
    assert stats["book"].state is BookState.VALID
    assert Outcome.GAP not in stats["outcomes"]
    assert stats["outcomes"].count(Outcome.APPLIED) > 6000
    assert stats["checked"] > 1000


def _usdm_snapshot_and_diffs(n_after: int) -> tuple[DepthSnapshot, list[DepthDiff]]:
    """The USD-M capture's snapshot and the first `n_after` diffs not contained in it."""
    parser = BinanceParser(Market.USDM)
    snap: DepthSnapshot | None = None
    diffs: list[DepthDiff] = []
    for _, recv_ns, raw in hft_lines("usdm_btcusdt_20240808.gz"):
        if b"@depth" in raw:
            diff = parser.market_frame(raw, recv_ns)
            assert isinstance(diff, DepthDiff)
            diffs.append(diff)
        elif raw.startswith(b'{"lastUpdateId"'):
            snap = parse_depth_snapshot(orjson.loads(raw), parser.ids("BTCUSDT"), recv_ns)
            diffs = [d for d in diffs if d.final_update_id >= snap.last_update_id]
        if snap is not None and len(diffs) >= n_after:
            break
    assert snap is not None
    return snap, diffs


def _book_from(snap: DepthSnapshot, diffs: list[DepthDiff]) -> LocalOrderBook:
    book = LocalOrderBook(snap.instrument_id, Market.USDM)
    book.on_snapshot(snap)
    for d in diffs:
        book.on_diff(d)
    assert book.is_valid, book.reason
    return book


def test_resync_after_a_gap_rebuilds_the_same_book() -> None:
    snap, live = _usdm_snapshot_and_diffs(2000)
    reference = _book_from(snap, live[:2000])
    gapped = _book_from(snap, live[:1000])
    assert gapped.on_diff(live[1001]) is Outcome.GAP  # live[1000] lost
    assert all(gapped.on_diff(d) is Outcome.BUFFERED for d in live[1002:2000])
    # A fresh snapshot taken mid-stream: the venue's state after live[1500].
    fresh = _book_from(snap, live[:1501])
    bids, asks = fresh.top(100_000)  # type: ignore[misc]
    resnap = DepthSnapshot(snap.instrument_id, fresh.last_update_id, bids, asks, None, 0)
    assert gapped.on_snapshot(resnap) is Outcome.SYNCED
    assert gapped.last_update_id == reference.last_update_id == live[1999].final_update_id
    assert gapped.top(100_000) == reference.top(100_000)


def test_usdm_snapshot_older_than_the_stream_is_refused() -> None:
    """nautilus's recorded snapshot (u=2098021528332) and update (U=2098041693435) do not line up."""
    iid = InstrumentId("binance_usdm", "BTCUSDT")
    snap_rows = list(csv.DictReader(fixture_path("marketdata", "nautilus_trader", "binance_btcusdt-depth-snap.csv").open()))
    upd_rows = list(csv.DictReader(fixture_path("marketdata", "nautilus_trader", "binance_btcusdt-depth-update.csv").open()))
    snap = DepthSnapshot(
        iid, int(snap_rows[0]["last_update_id"]),
        [(float(r["price"]), float(r["qty"])) for r in snap_rows if r["side"] == "b"],
        [(float(r["price"]), float(r["qty"])) for r in snap_rows if r["side"] == "a"], None, 0,
    )
    u = upd_rows[0]
    diff = DepthDiff(
        iid, int(u["first_update_id"]), int(u["last_update_id"]), int(u["pu"]),
        [(float(r["price"]), float(r["qty"])) for r in upd_rows if r["side"] == "b"],
        [(float(r["price"]), float(r["qty"])) for r in upd_rows if r["side"] == "a"], 0, 0,
    )
    book = LocalOrderBook(iid, Market.USDM)
    assert book.on_snapshot(snap) is Outcome.WAITING
    assert book.on_diff(diff) is Outcome.GAP
    assert "older than the stream" in book.reason
    assert book.needs_snapshot


# ---------------------------------------------------------------- rules on small books


def _diff(u_first: int, u_last: int, bids: list[tuple[float, float]] = (), asks: list[tuple[float, float]] = (),  # type: ignore[assignment]
          pu: int | None = None, iid: InstrumentId = SPOT_ID) -> DepthDiff:
    return DepthDiff(iid, u_first, u_last, pu, list(bids), list(asks), u_last, 0)


def _valid_spot_book() -> LocalOrderBook:
    book = LocalOrderBook(SPOT_ID, Market.SPOT)
    book.on_snapshot(DepthSnapshot(SPOT_ID, 10, [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)],
                                   [(101.0, 1.5), (102.0, 2.5)], None, 0))
    assert book.on_diff(_diff(9, 11)) is Outcome.SYNCED
    return book


def test_diffs_before_the_snapshot_are_buffered_and_replayed() -> None:
    book = LocalOrderBook(SPOT_ID, Market.SPOT)
    assert book.needs_snapshot
    assert book.on_diff(_diff(5, 8, bids=[(100.0, 9.0)])) is Outcome.BUFFERED  # in the snapshot: dropped
    assert book.on_diff(_diff(9, 12, bids=[(100.0, 4.0)])) is Outcome.BUFFERED  # bridges 10+1
    assert book.on_diff(_diff(13, 13, asks=[(101.0, 0.0)])) is Outcome.BUFFERED
    snap = DepthSnapshot(SPOT_ID, 10, [(100.0, 1.0)], [(101.0, 1.0), (102.0, 2.0)], None, 0)
    assert book.on_snapshot(snap) is Outcome.SYNCED
    assert book.best_bid() == (100.0, 4.0)
    assert book.best_ask() == (102.0, 2.0)
    assert book.last_update_id == 13


def test_zero_quantity_removes_a_level_and_unknown_removals_are_harmless() -> None:
    book = _valid_spot_book()
    assert book.on_diff(_diff(12, 12, bids=[(100.0, 0.0), (50.0, 0.0)])) is Outcome.APPLIED
    assert book.best_bid() == (99.0, 2.0)
    assert book.depth() == (2, 2)


def test_stale_duplicate_diff_is_ignored() -> None:
    book = _valid_spot_book()
    assert book.on_diff(_diff(10, 11, bids=[(100.0, 7.0)])) is Outcome.STALE
    assert book.best_bid() == (100.0, 1.0)


def test_crossed_book_invalidates() -> None:
    book = _valid_spot_book()
    assert book.on_diff(_diff(12, 12, bids=[(101.5, 1.0)])) is Outcome.GAP
    assert "crossed" in book.reason and not book.is_valid


def test_snapshot_older_than_buffered_stream_is_a_gap_that_keeps_the_stream() -> None:
    book = LocalOrderBook(SPOT_ID, Market.SPOT)
    book.on_diff(_diff(20, 25))
    book.on_diff(_diff(26, 30))
    assert book.on_snapshot(DepthSnapshot(SPOT_ID, 10, [(1.0, 1.0)], [(2.0, 1.0)], None, 0)) is Outcome.GAP
    assert "older than the stream" in book.reason
    assert book.buffered() == 2
    assert book.on_snapshot(DepthSnapshot(SPOT_ID, 27, [(1.0, 1.0)], [(2.0, 1.0)], None, 0)) is Outcome.SYNCED


def test_usdm_bridge_accepts_diff_ending_at_the_snapshot_id() -> None:
    iid = InstrumentId("binance_usdm", "X")
    book = LocalOrderBook(iid, Market.USDM)
    book.on_snapshot(DepthSnapshot(iid, 100, [(1.0, 1.0)], [(2.0, 1.0)], None, 0))
    assert book.on_diff(_diff(90, 99, pu=80, iid=iid)) is Outcome.STALE
    assert book.on_diff(_diff(95, 100, pu=94, iid=iid)) is Outcome.SYNCED  # U <= 100 <= u
    assert book.on_diff(_diff(101, 105, pu=100, iid=iid)) is Outcome.APPLIED


def test_buffer_overflow_drops_the_oldest_and_counts_it() -> None:
    book = LocalOrderBook(SPOT_ID, Market.SPOT, max_buffer=2)
    for n in range(3):
        book.on_diff(_diff(n * 10 + 1, n * 10 + 10))
    assert book.buffered() == 2 and book.buffer_overflows == 1


def test_invalidate_on_reconnect_needs_a_snapshot() -> None:
    book = _valid_spot_book()
    book.invalidate("stream reconnected")
    assert book.needs_snapshot and book.reason == "stream reconnected" and book.mid() is None


def test_diff_of_another_instrument_is_refused() -> None:
    with pytest.raises(ValueError, match="fed to the book of"):
        LocalOrderBook(SPOT_ID, Market.SPOT).on_diff(_diff(1, 2, iid=InstrumentId("binance_spot", "OTHER")))


def test_top_mid_spread_and_imbalance() -> None:
    book = _valid_spot_book()
    assert book.top(2) == ([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.5), (102.0, 2.5)])
    assert book.mid() == 100.5 and book.spread() == 1.0
    assert book.imbalance(2) == pytest.approx((3.0 - 4.0) / 7.0)
    assert book.top(0) == ([], [])
