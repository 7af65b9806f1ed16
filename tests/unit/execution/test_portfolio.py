"""Portfolio accounting, checked against hand-computed numbers."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nautilus_hmm.domain.enums import InstrumentKind, Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.execution.portfolio import NS_PER_DAY, UNATTRIBUTED, Portfolio, Position

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
DAY0 = 19_675 * NS_PER_DAY  # 2023-11-14 00:00 UTC
T = DAY0 + 3_600 * 10**9


def inst(symbol: str, kind: InstrumentKind, quote: str = "USDT") -> Instrument:
    return Instrument(
        id=InstrumentId("sim", symbol),
        base_asset=symbol[:3],
        quote_asset=quote,
        kind=kind,
        tick_size=D("0.01"),
        step_size=D("0.001"),
        min_qty=D("0.001"),
        max_qty=None,
        min_notional=D("5"),
    )


SPOT = inst("BTCUSDT", InstrumentKind.SPOT)
PERP = inst("ETHUSDT", InstrumentKind.PERPETUAL)
USDC_SPOT = inst("SOLUSDC", InstrumentKind.SPOT, quote="USDC")


def pos() -> Position:
    return Position.for_instrument(PERP)


# ------------------------------------------------------------ Position


def test_open_sets_entry_price() -> None:
    p = pos()
    assert p.apply(BUY, D(1), D(100)) == 0
    assert (p.qty, p.avg_px) == (D(1), D(100))


def test_add_reaverages_entry_price() -> None:
    p = pos()
    p.apply(BUY, D(1), D(100))
    p.apply(BUY, D(3), D(120))
    assert (p.qty, p.avg_px) == (D(4), D(115))  # (100 + 360) / 4


def test_partial_close_realizes_closed_part_and_keeps_entry() -> None:
    p = pos()
    p.apply(BUY, D(2), D(105))
    assert p.apply(SELL, D("0.5"), D(120)) == D("7.5")  # 0.5 x 15
    assert (p.qty, p.avg_px, p.realized_pnl) == (D("1.5"), D(105), D("7.5"))


def test_full_close_goes_flat_with_zero_entry() -> None:
    p = pos()
    p.apply(BUY, D(2), D(100))
    assert p.apply(SELL, D(2), D(90)) == D(-20)
    assert (p.qty, p.avg_px, p.is_flat) == (0, 0, True)


def test_flip_long_to_short_realizes_the_long_and_opens_short_at_fill_price() -> None:
    p = pos()
    p.apply(BUY, D(1), D(100))
    assert p.apply(SELL, D(3), D(90)) == D(-10)
    assert (p.qty, p.avg_px, p.realized_pnl) == (D(-2), D(90), D(-10))
    assert p.unrealized(D(80)) == D(20)  # -2 x (80 - 90)


def test_short_cover_realizes_profit_when_price_falls() -> None:
    p = pos()
    p.apply(SELL, D(2), D(50))
    assert p.apply(BUY, D(1), D(40)) == D(10)
    assert (p.qty, p.avg_px) == (D(-1), D(50))


def test_entry_price_is_kept_to_twelve_places() -> None:
    p = pos()
    p.apply(BUY, D(1), D(1))
    p.apply(BUY, D(2), D(2))
    assert p.avg_px == D("1.666666666667")


def test_unrealized_of_long() -> None:
    p = pos()
    p.apply(BUY, D("0.5"), D(100))
    assert p.unrealized(D(130)) == D(15)


@pytest.mark.parametrize(("qty", "price"), [("0", "1"), ("-1", "1"), ("1", "0")])
def test_non_positive_fill_is_refused(qty: str, price: str) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        pos().apply(BUY, D(qty), D(price))


# ------------------------------------------------------------ Portfolio: spot


def test_anchor_round_trip_with_quote_fees() -> None:
    pf = Portfolio("USDT", {"USDT": D("100000")})
    # BUY 0.1 @ 100: pays 10, fee 0.1% of 10 = 0.01
    pf.apply_fill(SPOT, BUY, D("0.1"), D("100"), D("0.01"), "USDT", T)
    assert pf.cash["USDT"] == D("99989.99")
    # SELL 0.1 @ 110: receives 11, fee 0.1% of 11 = 0.011
    p = pf.apply_fill(SPOT, SELL, D("0.1"), D("110"), D("0.011"), "USDT", T + 1)
    assert pf.cash["USDT"] == D("100000.979")  # 99989.99 + 11 - 0.011
    assert p.realized_pnl == D("1.0")  # 0.1 x (110 - 100)
    assert p.fees == D("0.021")
    assert p.net_realized_pnl == D("0.979")
    assert pf.day_realized_pnl == D("0.979")
    assert (p.qty, p.avg_px) == (0, 0)
    assert pf.equity() == D("100000.979")
    assert pf.peak_equity == D("100000.979")
    assert pf.drawdown_pct() == 0


def test_spot_buy_holds_base_valued_at_mark() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.apply_fill(SPOT, BUY, D(2), D(100), D(0), "USDT", T)
    pf.mark(SPOT.id, D(110), T)
    assert pf.cash["USDT"] == D(800)
    assert pf.equity() == D(1020)  # 800 + 2 x 110


def test_spot_fee_in_base_reduces_the_base_received() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    p = pf.apply_fill(SPOT, BUY, D(1), D(100), D("0.001"), "BTC", T)
    assert pf.cash["USDT"] == D(900)
    assert (p.qty, p.avg_px, p.fees) == (D("0.999"), D(100), D("0.1"))
    assert pf.day_realized_pnl == D("-0.1")
    assert pf.equity() == D("999.9")  # 900 + 0.999 x 100


def test_fee_in_other_asset_is_tracked_apart() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    p = pf.apply_fill(SPOT, BUY, D(1), D(100), D("0.0002"), "BNB", T)
    assert pf.other_fees == {"BNB": D("0.0002")}
    assert (pf.cash["USDT"], p.fees, pf.day_realized_pnl) == (D(900), 0, 0)


def test_negative_quote_fee_is_a_rebate() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.apply_fill(SPOT, BUY, D(1), D(100), D("-0.02"), "USDT", T)
    assert pf.cash["USDT"] == D("900.02")


def test_a_balance_without_a_mark_in_the_base_currency_is_unvalued_not_zero() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000), "USDC": D(500)})
    pf.apply_fill(USDC_SPOT, BUY, D(1), D(100), D(0), "USDC", T)
    assert pf.equity() == D(1000)  # USDC and the base bought with it have no USDT mark
    val = pf.valuation()
    assert val["USDT"] == (D(1000), D(1), D(1000))
    assert val["USDC"] == (D(400), None, None)
    assert val[USDC_SPOT.base_asset] == (D(1), None, None)


def test_equity_values_every_balance_at_its_mark() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000), "BTC": D(1), "ETH": D(10)})
    btc = Instrument(InstrumentId("sim", "BTCUSDT"), "BTC", "USDT", InstrumentKind.SPOT, D("0.01"), D("0.00001"),
                     D("0.00001"), None, D(5))
    eth = Instrument(InstrumentId("sim", "ETHUSDT"), "ETH", "USDT", InstrumentKind.SPOT, D("0.01"), D("0.0001"),
                     D("0.0001"), None, D(5))
    pf.add_price_source(btc)
    pf.add_price_source(eth)
    assert pf.equity() == D(1000)  # no marks yet: BTC and ETH are unvalued
    pf.mark(btc.id, D(60000), T)
    pf.mark(eth.id, D(3000), T)
    assert pf.equity() == D(1000) + D(60000) + D(30000)
    pf.apply_fill(btc, BUY, D("0.1"), D(60000), D(6), "USDT", T)
    assert pf.cash["BTC"] == D("1.1") and pf.cash["USDT"] == D(1000) - D(6000) - D(6)
    assert pf.equity() == D(91000) - D(6)


def test_position_without_mark_is_valued_at_entry() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.apply_fill(SPOT, BUY, D(1), D(100), D(0), "USDT", T)
    assert pf.equity() == D(1000)
    assert pf.exposure(SPOT.id) == D(100)


# ------------------------------------------------------------ Portfolio: perpetual


def test_perp_cash_moves_only_by_realized_pnl_and_fees() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.apply_fill(PERP, BUY, D(2), D(100), D("0.1"), "USDT", T)
    assert pf.cash["USDT"] == D("999.9")
    pf.mark(PERP.id, D(110), T)
    assert pf.equity() == D("1019.9")  # 999.9 + 2 x 10 unrealized
    pf.apply_fill(PERP, SELL, D(2), D(105), D("0.105"), "USDT", T)
    assert pf.cash["USDT"] == D("1009.795")  # 999.9 + 10 - 0.105
    assert pf.day_realized_pnl == D("9.795")


def test_perp_short_equity_includes_unrealized() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.apply_fill(PERP, SELL, D(1), D(100), D(0), "USDT", T)
    pf.mark(PERP.id, 120.0, T)
    assert pf.equity() == D(980)
    assert pf.unrealized(PERP.id) == D(-20)


def test_perp_fee_in_base_is_charged_to_quote_cash() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    p = pf.apply_fill(PERP, BUY, D(1), D(100), D("0.001"), "ETH", T)
    assert (pf.cash["USDT"], p.qty, p.fees) == (D("999.9"), D(1), D("0.1"))


# ------------------------------------------------------------ peak, drawdown, day


def test_drawdown_from_peak_equity() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.apply_fill(SPOT, BUY, D(1), D(100), D(0), "USDT", T)
    pf.mark(SPOT.id, D(200), T)
    pf.mark(SPOT.id, D(45), T)
    assert pf.peak_equity == D(1100)
    assert pf.equity() == D(945)
    assert pf.drawdown_pct() == D(155) / D(1100) * 100


def test_reset_peak_restarts_drawdown() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.set_cash("USDT", D(500), UNATTRIBUTED)
    assert pf.drawdown_pct() == 50
    pf.reset_peak()
    assert pf.drawdown_pct() == 0


def test_day_pnl_resets_on_a_new_utc_day() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.apply_fill(PERP, BUY, D(1), D(100), D(0), "USDT", T)
    pf.apply_fill(PERP, SELL, D(1), D(90), D(0), "USDT", T + 1)
    assert pf.day_realized_pnl == D(-10)
    pf.mark(PERP.id, D(90), DAY0 + NS_PER_DAY)
    assert pf.day_realized_pnl == 0
    assert pf.current_day == 19_676


def test_late_fill_from_previous_day_counts_today() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.roll_day(DAY0 + NS_PER_DAY + 5)
    pf.apply_fill(PERP, BUY, D(1), D(100), D(0), "USDT", T)
    pf.apply_fill(PERP, SELL, D(1), D(95), D(0), "USDT", T)
    assert (pf.current_day, pf.day_realized_pnl) == (19_676, D(-5))


def test_mark_refuses_non_positive_price() -> None:
    with pytest.raises(ValueError, match="mark price must be > 0"):
        Portfolio().mark(SPOT.id, 0.0, T)


# ------------------------------------------------------------ exposure


def test_exposure_per_symbol_and_gross() -> None:
    pf = Portfolio("USDT", {"USDT": D(100_000)})
    pf.apply_fill(SPOT, BUY, D("0.5"), D(30000), D(0), "USDT", T)
    pf.apply_fill(PERP, SELL, D(2), D(90), D(0), "USDT", T)
    pf.mark(SPOT.id, D(30000), T)
    pf.mark(PERP.id, D(100), T)
    assert pf.exposure(SPOT.id) == D(15000)
    assert pf.exposure(PERP.id) == D(200)
    assert pf.exposures() == {SPOT.id: D(15000), PERP.id: D(200)}
    assert pf.gross_exposure() == D(15200)


def test_flat_and_unknown_positions_have_no_exposure() -> None:
    pf = Portfolio()
    assert pf.exposure(SPOT.id) == 0
    assert pf.gross_exposure() == 0
    assert pf.position_qty(SPOT.id) == 0


def test_set_position_overwrites_quantity_and_entry() -> None:
    pf = Portfolio()
    p = pf.set_position(PERP, D("-3"), D(50))
    assert (p.qty, p.avg_px) == (D(-3), D(50))


# ------------------------------------------------------------ persistence


def test_snapshot_is_json_and_restores_the_same_state() -> None:
    pf = Portfolio("USDT", {"USDT": D(1000)})
    pf.apply_fill(SPOT, BUY, D(1), D(100), D("0.1"), "USDT", T)
    pf.apply_fill(PERP, SELL, D(2), D(50), D("0.001"), "BNB", T)
    pf.mark(SPOT.id, D(120), T)
    snap = orjson.loads(orjson.dumps(pf.snapshot()))
    other = Portfolio()
    other.restore(snap)
    assert other.snapshot() == pf.snapshot()
    assert other.equity() == pf.equity()


def test_restore_names_a_missing_field() -> None:
    snap = Portfolio().snapshot()
    del snap["cash"]
    with pytest.raises(ValueError, match="missing field 'cash'"):
        Portfolio().restore(snap)


# ------------------------------------------------------------ properties

fills = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 100), st.integers(1, 1000), st.integers(0, 50)),
    min_size=1,
    max_size=25,
)


@given(fills)
def test_perp_cash_change_equals_net_realized(seq: list[tuple[Side, int, int, int]]) -> None:
    pf = Portfolio("USDT", {"USDT": D(0)})
    for side, q, px, fee_milli in seq:
        pf.apply_fill(PERP, side, D(q), D(px), D(fee_milli) / 1000, "USDT", T)
    p = pf.positions[PERP.id]
    assert pf.cash["USDT"] == p.realized_pnl - p.fees
    assert pf.day_realized_pnl == p.realized_pnl - p.fees


@given(fills, st.integers(1, 1000))
def test_closing_everything_turns_equity_into_cash_plus_realized(
    seq: list[tuple[Side, int, int, int]], close_px: int
) -> None:
    pf = Portfolio("USDT", {"USDT": D(10**6)})
    for side, q, px, _ in seq:
        pf.apply_fill(PERP, side, D(q), D(px), D(0), "USDT", T)
    p = pf.positions[PERP.id]
    pf.mark(PERP.id, D(close_px), T)
    equity_before = pf.equity()
    if p.qty != 0:
        pf.apply_fill(PERP, SELL if p.qty > 0 else BUY, abs(p.qty), D(close_px), D(0), "USDT", T)
    assert p.qty == 0
    assert pf.equity() == equity_before == D(10**6) + p.realized_pnl


def test_cash_is_kept_per_venue_and_equity_sums_the_venues() -> None:
    import dataclasses

    spot_b = dataclasses.replace(SPOT, id=InstrumentId("binance_spot", "BTCUSDT"))
    perp_b = dataclasses.replace(PERP, id=InstrumentId("binance_usdm", "ETHUSDT"))
    pf = Portfolio("USDT")
    pf.set_cash("USDT", D(1000), "binance_spot")
    pf.set_cash("BTC", D(1), "binance_spot")
    pf.set_cash("USDT", D(500), "binance_usdm")  # USD-M's margin wallet: USDT too
    pf.apply_fill(spot_b, BUY, D("0.1"), D(100), D("0.01"), "USDT", T)
    pf.apply_fill(perp_b, BUY, D(1), D(100), D("0.02"), "USDT", T)
    pf.apply_fill(perp_b, SELL, D(1), D(110), D("0.02"), "USDT", T)
    assert pf.cash_at("binance_spot", "USDT") == D(1000) - D(10) - D("0.01")
    assert pf.cash_at("binance_spot", "BTC") == D("1.1")
    assert pf.cash_at("binance_usdm", "USDT") == D(500) + D(10) - D("0.04")
    assert pf.cash_at("binance_usdm", "BTC") == 0
    assert pf.cash["USDT"] == pf.cash_at("binance_spot", "USDT") + pf.cash_at("binance_usdm", "USDT")
    # A sync of one venue's USDT leaves the other's share; equity values the total at its mark.
    pf.set_cash("USDT", D(400), "binance_usdm")
    assert pf.cash["USDT"] == pf.cash_at("binance_spot", "USDT") + D(400)
    pf.mark(spot_b.id, D(200), T)
    assert pf.equity() == pf.cash["USDT"] + D("1.1") * 200
    other = Portfolio()
    other.restore(orjson.loads(orjson.dumps(pf.snapshot())))
    assert other.venue_cash == pf.venue_cash and other.cash == pf.cash
