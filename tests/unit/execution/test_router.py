"""Router: filter rounding, sizing, fees, explicit order checks and target planning."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from nautilus_hmm.domain.enums import InstrumentKind, Liquidity, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.execution import router as r
from nautilus_hmm.execution.router import (
    OrderSpec,
    Reject,
    Skip,
    check_order,
    estimate_fee,
    limit_price,
    plan_target,
    quote_to_qty,
    round_price,
    round_qty_down,
)

D = Decimal
GTC = TimeInForce.GTC
MKT = OrderType.MARKET
LMT = OrderType.LIMIT

SPOT = Instrument(
    id=InstrumentId("sim", "BTCUSDT"),
    base_asset="BTC",
    quote_asset="USDT",
    kind=InstrumentKind.SPOT,
    tick_size=D("0.01"),
    step_size=D("0.00001"),
    min_qty=D("0.00001"),
    max_qty=D("9000"),
    min_notional=D("5"),
    maker_fee=D("0.001"),
    taker_fee=D("0.002"),
    market_step_size=D("0.001"),
    market_max_qty=D("50"),
)
PERP = Instrument(
    id=InstrumentId("sim", "BTCUSDT-PERP"),
    base_asset="BTC",
    quote_asset="USDT",
    kind=InstrumentKind.PERPETUAL,
    tick_size=D("0.1"),
    step_size=D("0.001"),
    min_qty=D("0.001"),
    max_qty=D("1000"),
    min_notional=D("100"),
    maker_fee=D("0.0002"),
    taker_fee=D("0.0005"),
    market_max_qty=D("120"),
)


def plan(
    inst: Instrument = SPOT,
    current: str = "0",
    target: str = "1",
    ref: str = "100",
    order_type: OrderType = MKT,
    open_buy: str = "0",
    open_sell: str = "0",
    offset_bps: float = 0.0,
) -> r.RoutePlan:
    return plan_target(inst, D(current), D(open_buy), D(open_sell), D(target), D(ref), order_type, offset_bps, GTC)


# ------------------------------------------------------------ rounding


def test_round_qty_down_truncates_to_step() -> None:
    assert round_qty_down(D("1.23456"), D("0.001")) == D("1.234")


def test_round_qty_down_keeps_exact_multiples() -> None:
    assert round_qty_down(D("0.3"), D("0.1")) == D("0.3")


def test_round_qty_down_rejects_non_positive_step() -> None:
    with pytest.raises(ValueError, match="step must be > 0"):
        round_qty_down(D(1), D(0))


def test_buy_price_rounds_down() -> None:
    assert round_price(D("100.123"), D("0.05"), Side.BUY) == D("100.10")


def test_sell_price_rounds_up() -> None:
    assert round_price(D("100.123"), D("0.05"), Side.SELL) == D("100.15")


def test_round_price_keeps_prices_on_the_grid() -> None:
    assert round_price(D("100.15"), D("0.05"), Side.SELL) == D("100.15")


steps = st.sampled_from([D("1"), D("0.1"), D("0.001"), D("0.00001"), D("0.25"), D("5"), D("0.00000001")])
amounts = st.decimals(min_value=D("0"), max_value=D("1e9"), places=12, allow_nan=False, allow_infinity=False)


@given(amounts, steps)
def test_rounded_qty_is_the_largest_step_multiple_not_above(qty: Decimal, step: Decimal) -> None:
    out = round_qty_down(qty, step)
    assert out % step == 0
    assert out <= qty
    assert qty - out < step
    assert round_qty_down(out, step) == out


@given(amounts.filter(lambda x: x > 0), steps, st.sampled_from(list(Side)))
def test_rounded_price_is_on_grid_and_never_more_aggressive(price: Decimal, tick: Decimal, side: Side) -> None:
    out = round_price(price, tick, side)
    assert out % tick == 0
    assert abs(out - price) < tick
    if side is Side.BUY:
        assert out <= price
    else:
        assert out >= price


# ------------------------------------------------------------ sizing and fees


def test_quote_to_qty_rounds_down_to_step() -> None:
    assert quote_to_qty(D("1000"), D("30000"), SPOT) == D("0.03333")


def test_quote_to_qty_for_market_uses_market_step() -> None:
    assert quote_to_qty(D("1000"), D("30000"), SPOT, MKT) == D("0.033")


def test_quote_to_qty_refuses_non_positive_price() -> None:
    with pytest.raises(ValueError, match="price must be > 0"):
        quote_to_qty(D(1), D(0), SPOT)


@given(amounts, st.decimals(min_value=D("0.01"), max_value=D("1e6"), places=2))
def test_quote_to_qty_never_spends_more_than_the_amount(amount: Decimal, price: Decimal) -> None:
    qty = quote_to_qty(amount, price, SPOT)
    assert qty * price <= amount
    assert qty % SPOT.step_size == 0


def test_taker_fee_estimate() -> None:
    assert estimate_fee(D("0.5"), D("30000"), SPOT, Liquidity.TAKER) == D("30")


def test_maker_fee_estimate() -> None:
    assert estimate_fee(D("-0.5"), D("30000"), SPOT, Liquidity.MAKER) == D("15")


def test_limit_price_is_passive_by_the_offset() -> None:
    assert limit_price(D("100"), Side.BUY, D("10"), D("0.01")) == D("99.90")
    assert limit_price(D("100"), Side.SELL, D("10"), D("0.01")) == D("100.10")


# ------------------------------------------------------------ explicit orders


def test_valid_explicit_order_passes() -> None:
    assert check_order(SPOT, Side.BUY, D("0.001"), D("30000.01")) is None


def test_explicit_order_below_min_qty_is_rejected() -> None:
    inst = replace(SPOT, min_qty=D("0.001"))
    rej = check_order(inst, Side.BUY, D("0.0005"), D("30000"))
    assert rej == Reject("below_min_qty", "BUY BTCUSDT: qty 0.0005 < min qty 0.001")


def test_explicit_order_below_min_notional_is_rejected() -> None:
    rej = check_order(SPOT, Side.SELL, D("0.0001"), D("30000"))
    assert isinstance(rej, Reject) and rej.reason == "below_min_notional"


def test_explicit_order_above_max_qty_is_rejected() -> None:
    rej = check_order(PERP, Side.BUY, D("1000.001"), D("100"))
    assert isinstance(rej, Reject) and rej.reason == "above_max_qty"


def test_explicit_market_order_uses_market_max_qty() -> None:
    rej = check_order(SPOT, Side.BUY, D("51"), None, MKT, ref_price=D("100"))
    assert isinstance(rej, Reject) and rej.reason == "above_max_qty"


def test_explicit_order_off_step_is_rejected() -> None:
    rej = check_order(SPOT, Side.BUY, D("0.000015"), D("30000"))
    assert isinstance(rej, Reject) and rej.reason == "qty_not_step_multiple"


def test_explicit_order_off_tick_is_rejected() -> None:
    rej = check_order(SPOT, Side.BUY, D("0.001"), D("30000.005"))
    assert isinstance(rej, Reject) and rej.reason == "price_not_tick_multiple"


def test_explicit_limit_without_price_is_rejected() -> None:
    rej = check_order(SPOT, Side.BUY, D("0.001"), None, LMT)
    assert isinstance(rej, Reject) and rej.reason == "no_price"


def test_explicit_order_on_untradable_instrument_is_rejected() -> None:
    rej = check_order(replace(SPOT, tradable=False), Side.BUY, D("0.001"), D("30000"))
    assert isinstance(rej, Reject) and rej.reason == "not_tradable"


def test_explicit_order_outside_percent_price_band_is_rejected() -> None:
    inst = replace(SPOT, percent_price_up=D("1.05"), percent_price_down=D("0.95"))
    rej = check_order(inst, Side.BUY, D("0.001"), D("31600"), ref_price=D("30000"))
    assert isinstance(rej, Reject) and rej.reason == "price_out_of_band"


def test_explicit_market_order_without_reference_skips_notional_check() -> None:
    assert check_order(SPOT, Side.BUY, D("0.001"), None, MKT) is None


# ------------------------------------------------------------ target planning


def test_flat_to_long_buys_the_delta_at_market() -> None:
    assert plan(target="0.5") == OrderSpec(Side.BUY, D("0.5"), MKT, None, GTC, False, ())


def test_target_equal_to_position_is_no_change() -> None:
    p = plan(current="0.5", target="0.5")
    assert isinstance(p, Skip) and p.reason == "no_change"


def test_open_orders_count_toward_the_projected_position() -> None:
    p = plan(current="0.2", open_buy="0.3", target="0.5")
    assert isinstance(p, Skip) and p.reason == "no_change"


def test_market_qty_rounds_down_to_market_step() -> None:
    p = plan(target="0.12345")
    assert isinstance(p, OrderSpec) and p.qty == D("0.123")


def test_limit_qty_rounds_down_to_lot_step_and_is_priced_passively() -> None:
    p = plan(target="0.12345678", order_type=LMT, offset_bps=5.0, ref="30000")
    assert isinstance(p, OrderSpec)
    assert (p.qty, p.price, p.order_type) == (D("0.12345"), D("29985.00"), LMT)


def test_limit_sell_price_rounds_up() -> None:
    p = plan(current="1", target="0", order_type=LMT, offset_bps=1.0, ref="100.005")
    assert isinstance(p, OrderSpec) and p.side is Side.SELL and p.price == D("100.02")


def test_tiny_delta_below_min_notional_is_skipped_as_noise() -> None:
    p = plan(current="0.5", target="0.52")  # 0.02 x 100 = 2 < 5
    assert isinstance(p, Skip) and p.reason == "below_min_notional"


def test_tiny_delta_below_min_qty_is_skipped_as_noise() -> None:
    p = plan(inst=PERP, current="0.5", target="0.5004", ref="1000000")
    assert isinstance(p, Skip) and p.reason == "below_min_qty"


def test_unclosable_leftover_position_is_dust() -> None:
    p = plan(current="0.0004", target="0")  # market step 0.001: rounds to 0
    assert isinstance(p, Skip) and p.reason == "dust_position"


def test_leftover_below_min_notional_is_dust() -> None:
    p = plan(current="0.04", target="0", order_type=LMT)  # 0.04 x 100 = 4 < 5
    assert isinstance(p, Skip) and p.reason == "dust_position"


def test_delta_above_max_qty_is_capped() -> None:
    p = plan(inst=PERP, target="150", order_type=MKT)
    assert isinstance(p, OrderSpec)
    assert (p.qty, p.notes) == (D("120"), ("capped_to_max_qty",))


def test_limit_delta_uses_lot_max_qty() -> None:
    p = plan(inst=PERP, target="1500", order_type=LMT)
    assert isinstance(p, OrderSpec) and p.qty == D("1000")


def test_spot_negative_target_is_clamped_to_flat() -> None:
    p = plan(current="0.5", target="-1")
    assert isinstance(p, OrderSpec)
    assert (p.side, p.qty, p.notes) == (Side.SELL, D("0.5"), ("spot_short_clamped",))


def test_spot_negative_target_when_flat_is_no_change() -> None:
    p = plan(current="0", target="-1")
    assert isinstance(p, Skip) and p.reason == "no_change"


def test_spot_sell_never_exceeds_free_holdings() -> None:
    # projected = 1 + 1 (open buy) - 0 = 2 -> target 0 wants to sell 2; only 1 is held
    p = plan(current="1", open_buy="1", target="0")
    assert isinstance(p, OrderSpec)
    assert (p.side, p.qty, p.notes) == (Side.SELL, D("1"), ("spot_sell_capped",))


def test_spot_sell_with_only_open_buys_waits_for_them() -> None:
    p = plan(current="0", open_buy="1", target="0")
    assert isinstance(p, Skip) and p.reason == "open_orders_pending"


def test_perp_can_go_short() -> None:
    p = plan(inst=PERP, current="0", target="-2")
    assert isinstance(p, OrderSpec)
    assert (p.side, p.qty, p.reduce_only) == (Side.SELL, D("2"), False)


def test_perp_partial_close_is_reduce_only() -> None:
    p = plan(inst=PERP, current="2", target="0.5")
    assert isinstance(p, OrderSpec) and p.reduce_only is True


def test_perp_flip_is_not_reduce_only() -> None:
    p = plan(inst=PERP, current="2", target="-1")
    assert isinstance(p, OrderSpec)
    assert (p.side, p.qty, p.reduce_only) == (Side.SELL, D("3"), False)


def test_perp_close_of_short_is_reduce_only() -> None:
    p = plan(inst=PERP, current="-2", target="0")
    assert isinstance(p, OrderSpec) and (p.side, p.reduce_only) == (Side.BUY, True)


def test_spot_orders_are_never_reduce_only() -> None:
    p = plan(current="2", target="1")
    assert isinstance(p, OrderSpec) and p.reduce_only is False


def test_missing_reference_price_is_rejected() -> None:
    p = plan_target(SPOT, D(0), D(0), D(0), D(1), None, MKT, 0.0, GTC)
    assert isinstance(p, Reject) and p.reason == "no_price"


def test_untradable_instrument_is_rejected() -> None:
    p = plan(inst=replace(SPOT, tradable=False))
    assert isinstance(p, Reject) and p.reason == "not_tradable"


qtys = st.decimals(min_value=D("-200"), max_value=D("200"), places=5)
pos_qtys = st.decimals(min_value=D("0"), max_value=D("50"), places=5)


@given(
    st.sampled_from([SPOT, PERP]),
    qtys,
    pos_qtys,
    pos_qtys,
    qtys,
    st.decimals(min_value=D("0.5"), max_value=D("100000"), places=2),
    st.sampled_from([MKT, LMT, OrderType.LIMIT_MAKER]),
    st.floats(min_value=0, max_value=100),
)
def test_planned_orders_always_pass_the_filters_and_move_toward_target(
    inst: Instrument,
    current: Decimal,
    open_buy: Decimal,
    open_sell: Decimal,
    target: Decimal,
    ref: Decimal,
    order_type: OrderType,
    offset_bps: float,
) -> None:
    if inst.kind is InstrumentKind.SPOT:
        current = abs(current)
        assume(open_sell <= current)
    p = plan_target(inst, current, open_buy, open_sell, target, ref, order_type, offset_bps, GTC)
    assert isinstance(p, OrderSpec | Skip)
    if not isinstance(p, OrderSpec):
        return
    eff_target = D(0) if inst.kind is InstrumentKind.SPOT and target < 0 else target
    delta = eff_target - (current + open_buy - open_sell)
    assert p.side.sign * delta > 0
    assert p.qty <= abs(delta)
    assert check_order(inst, p.side, p.qty, p.price, order_type, ref_price=ref) is None
    if inst.kind is InstrumentKind.SPOT and p.side is Side.SELL:
        assert p.qty <= current - open_sell
