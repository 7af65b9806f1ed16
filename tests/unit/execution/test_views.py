"""Trading read views: decimals are strings in fixed notation, quantized to the instrument
(quantities, prices) or to the asset (money); one type per field."""

from __future__ import annotations

import re
from decimal import Decimal

from nautilus_hmm.execution.views import fixed, price_str, qty_str
from tests.unit.execution.test_engine import BTC, settle, stack, target  # noqa: F401  (fixture)

FIXED = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _decimal_fields(view: dict) -> dict[str, object]:
    skip = {"instrument_id", "quote_asset", "currency", "unvalued", "cash", "balances"}
    return {k: v for k, v in view.items() if k not in skip}


async def test_position_and_pnl_views_show_quantized_fixed_notation_strings(stack) -> None:  # noqa: F811
    st, venue, clock = stack
    target(st, "0.1", clock)
    await settle(st)
    clock.advance(1)
    venue.step_trade(BTC, 60010.0, 5.0, clock.time_ns())
    await settle(st)
    pos = st.portfolio.positions[BTC]
    pos.qty = Decimal("0E-12")  # what a close leaves after fee arithmetic
    pos.realized_pnl = Decimal("17.057004200000027720000000")
    (view,) = st.engine.position_views()
    assert view["qty"] == "0.00000"  # the instrument's step precision
    assert view["realized_pnl"] == "17.05700420"  # USDT: 8 dp
    assert view["mark"] == "60010.00"  # tick precision
    pnl = st.engine.pnl_view()
    for doc in (view, pnl):
        for key, value in _decimal_fields(doc).items():
            assert isinstance(value, str) and FIXED.match(value), (key, value)
    assert all(FIXED.match(v) for v in pnl["cash"].values())


async def test_order_views_quantize_quantities_and_prices(stack) -> None:  # noqa: F811
    st, venue, clock = stack
    target(st, "0.1", clock)
    await settle(st)
    clock.advance(1)
    venue.step_trade(BTC, 60010.0, 5.0, clock.time_ns())
    await settle(st)
    (o,) = st.engine.order_views()
    assert (o["quantity"], o["filled_qty"], o["avg_px"]) == ("0.10000", "0.10000", "60010.00")
    assert "E" not in o["trade_notional"]


async def test_a_value_not_exact_at_instrument_precision_keeps_asset_precision(stack) -> None:  # noqa: F811
    st, _, _ = stack
    inst = st.engine.instruments[BTC]
    assert price_str(Decimal("60003.333333333333333"), inst) == "60003.33333333"
    assert qty_str(Decimal("0.09990123"), inst) == "0.09990123"
    assert fixed(Decimal("-0.000000001"), Decimal("0.01")) == "0.00"
