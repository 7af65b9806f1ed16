"""The trading stack's portfolio on Binance spot (adapter against the emulator): equity
values every balance at its mark, and balances follow fills and the venue's balance
updates (outboundAccountPosition)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from nautilus_hmm.bootstrap import build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import BalanceUpdate
from tests.integration.binance.conftest import Harness, Recorder, until

BTC = InstrumentId("binance_spot", "BTCUSDT")
CFG = {
    "strategy": {"kind": "sma_cross", "instruments": ["binance_spot:BTCUSDT"]},
    "venues": {"sim": {"enabled": False}, "binance_spot": {"enabled": True, "symbols": ["BTCUSDT"]}},
}


async def test_equity_values_base_balances_and_cash_follows_a_filled_buy(spot: Harness, tmp_path: Path) -> None:
    cfg = parse(Config, CFG)
    journal = Journal.open(tmp_path / "journal.sqlite3")
    st = build_stack(cfg, spot.bus, spot.clock, journal, {spot.venue.name: spot.venue}, durable=True)
    await st.engine.start()
    consumer = asyncio.create_task(st.engine.run())
    try:
        st.engine.add_instruments(spot.venue.instruments().values())
        assert st.reconciler is not None
        await st.reconciler.recover_from_journal()  # the baseline: the venue's balances
        st.attach_market()
        await spot.emu.step()
        await until(lambda: BTC in st.engine.marks_f, what="a BTCUSDT mark")
        mark = Decimal(repr(st.engine.marks_f[BTC]))
        pnl = st.engine.pnl_view()
        assert Decimal(pnl["equity"]) == Decimal(100_000) + 1 * mark  # BTC 1 at its mark
        assert pnl["currency"] == "USDT"
        assert pnl["unvalued"] == ["ETH"]  # ETH 10: no ETHUSDT instrument, so no mark
        assert pnl["balances"]["ETH"] == {"total": "10.00000000", "mark": None, "value": None}

        rec = Recorder(spot.bus, BalanceUpdate)
        await spot.venue.submit_order(OrderRequest("t-buy-1", BTC, Side.BUY, OrderType.MARKET, Decimal("0.01")))
        await until(lambda: rec.of(BalanceUpdate, asset="BTC"), what="the venue's balance update")
        await st.engine.idle()
        venue_bal = await spot.venue.balances()
        assert st.portfolio.cash["BTC"] == venue_bal["BTC"].total == Decimal("1.01") - _base_fee(spot)
        assert st.portfolio.cash["USDT"] == venue_bal["USDT"].total
        assert st.portfolio.position_qty(BTC) == Decimal("0.01") - _base_fee(spot)
    finally:
        consumer.cancel()
        await journal.aclose()


def _base_fee(spot: Harness) -> Decimal:
    """Fees the emulator charged in BTC (none when it charges the quote asset)."""
    return sum((Decimal(f["fee"]) for f in spot.emu.state()["fills"] if f.get("fee_asset") == "BTC"), Decimal(0))
