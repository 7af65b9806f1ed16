"""Virtual sub-accounts: crossing and fill attribution follow the documented rule."""

from __future__ import annotations

from decimal import Decimal

from nautilus_hmm.control.accounts import HOUSE, Book, canary_account, strategy_of
from nautilus_hmm.domain.instruments import InstrumentId

BTC = InstrumentId("sim", "BTCUSDT")
D = Decimal


def test_opposite_gaps_cross_at_the_mark_without_fees() -> None:
    book = Book()
    shares = book.cross(BTC, {"a": D("2"), "b": D("-1")}, D("100"))
    assert {(s.account, s.qty, s.price, s.fee) for s in shares} == {("a", D("1"), D("100"), D(0)),
                                                                    ("b", D("-1"), D("100"), D(0))}
    assert book.total_position(BTC) == 0


def test_crossing_is_pro_rata_when_one_side_is_larger() -> None:
    book = Book()
    book.cross(BTC, {"a": D("3"), "b": D("1"), "c": D("-2")}, D("10"))
    assert book.position("a", BTC) == D("1.5")
    assert book.position("b", BTC) == D("0.5")
    assert book.position("c", BTC) == D("-2")


def test_same_direction_gaps_do_not_cross() -> None:
    book = Book()
    assert book.cross(BTC, {"a": D("1"), "b": D("2")}, D("10")) == []


def test_fill_goes_to_gaps_in_its_direction_pro_rata() -> None:
    book = Book()
    shares = book.attribute(BTC, D("3"), D("100"), D("0.3"), {"a": D("2"), "b": D("4"), "c": D("-1")})
    got = {s.account: (s.qty, s.fee) for s in shares}
    assert got == {"a": (D("1"), D("0.1")), "b": (D("2"), D("0.2"))}


def test_fill_beyond_every_gap_goes_to_the_house() -> None:
    book = Book()
    book.attribute(BTC, D("5"), D("100"), D(0), {"a": D("2")})
    assert book.position("a", BTC) == 2
    assert book.position(HOUSE, BTC) == 3


def test_flatten_reduces_positions_pro_rata_without_flipping() -> None:
    book = Book()
    book.attribute(BTC, D("4"), D("100"), D(0), {"a": D("1"), "b": D("3")})
    book.attribute(BTC, D("-4"), D("90"), D(0), {"a": D("1"), "b": D("3")})  # the engine's flatten
    assert book.position("a", BTC) == 0 and book.position("b", BTC) == 0
    assert book.pnl("a", {}) == D("-10") and book.pnl("b", {}) == D("-30")


def test_house_position_closes_when_the_engine_trades_it_away() -> None:
    book = Book()
    book.attribute(BTC, D("2"), D("100"), D(0), {})  # found at start
    shares = book.attribute(BTC, D("-2"), D("110"), D(0), {"a": D(0)})
    assert [(s.account, s.qty) for s in shares] == [(HOUSE, D("-2"))]
    assert book.pnl(HOUSE, {}) == D("20")


def test_split_residue_goes_to_the_last_account_so_sums_are_exact() -> None:
    book = Book()
    shares = book.attribute(BTC, D("1"), D("3"), D("0.01"), {"a": D("1"), "b": D("1"), "c": D("1")})
    assert sum(s.qty for s in shares) == D("1")
    assert sum(s.fee for s in shares) == D("0.01")
    assert shares[-1].qty >= shares[0].qty


def test_base_asset_fee_shrinks_the_positions_and_is_booked_once() -> None:
    book = Book()
    book.attribute(BTC, D("2"), D("100"), D("0.2"), {"a": D("1"), "b": D("1")}, base_fee_qty=D("0.002"))
    assert book.total_position(BTC) == D("1.998")
    # at the fill price the only loss is the fee
    assert book.pnl("a", {BTC: D("100")}) + book.pnl("b", {BTC: D("100")}) == D("-0.2")


def test_multiplier_scales_pnl() -> None:
    book = Book({BTC: D("10")})
    book.attribute(BTC, D("1"), D("100"), D(0), {"a": D("1")})
    assert book.pnl("a", {BTC: D("101")}) == D("10")


def test_closed_round_trip_reports_its_net_pnl_with_both_fees() -> None:
    book = Book()
    book.attribute(BTC, D("1"), D("100"), D("1"), {"a": D("1")})
    book.attribute(BTC, D("-1"), D("99"), D("1"), {"a": D("0")})
    assert book.on_trip == [("a", D("-3"))]


def test_canary_account_names() -> None:
    assert canary_account("hmm") == "hmm:canary"
    assert strategy_of("hmm:canary") == "hmm" and strategy_of("hmm") == "hmm" and strategy_of(HOUSE) == HOUSE
