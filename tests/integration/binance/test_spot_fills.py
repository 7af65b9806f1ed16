"""BinanceVenue (spot) fills: each trade is published once, whichever way it arrives (FULL answer,
user stream, gap re-read), and the first user-stream connect re-reads only trades since start()."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import FillReport, OrderStatusReport
from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.market import Market
from tests.integration.binance.conftest import (
    API_KEY,
    API_SECRET,
    Harness,
    Recorder,
    make_venue,
    until,
)

BTC = InstrumentId("binance_spot", "BTCUSDT")


def market_buy(cid: str, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(cid, BTC, Side.BUY, OrderType.MARKET, Decimal(qty))


def streamed_filled(rec: Recorder, cid: str) -> bool:
    """The user stream reported `cid` FILLED (its trade event was handled just before)."""
    return any(m.order.client_order_id == cid and m.order.status is OrderStatus.FILLED
               for m in rec.of(OrderStatusReport))


async def test_a_full_answer_fill_is_published_once_when_the_user_stream_repeats_it(spot: Harness) -> None:
    rec = Recorder(spot.bus, FillReport, OrderStatusReport)
    await spot.venue.submit_order(market_buy("d-full-1"))
    # Both copies handled: the FULL answer's and the executionReport's (either may come first).
    await until(lambda: streamed_filled(rec, "d-full-1"), what="the user-stream copy of the fill")
    [emu_fill] = spot.emu.state()["fills"]
    assert [(m.fill.trade_id, m.fill.client_order_id) for m in rec.of(FillReport)] == [
        (emu_fill["trade_id"], "d-full-1")]
    assert spot.venue.health().info["fills_deduplicated"] == 1


async def test_a_gap_re_read_does_not_publish_a_fill_again(spot: Harness) -> None:
    rec = Recorder(spot.bus, FillReport, OrderStatusReport)
    await spot.venue.submit_order(market_buy("d-gap-1"))
    await until(lambda: streamed_filled(rec, "d-gap-1"), what="the user-stream copy of the fill")
    reconciles = spot.venue.gap_reconciles
    await spot.emu.close_websockets("user")
    await until(lambda: not spot.venue.user.ws.connected, what="user stream down")  # type: ignore[union-attr]
    await spot.clock.advance_settle(1.0)  # the reconnect backoff
    await until(lambda: spot.venue.gap_reconciles == reconciles + 1, what="gap reconciled after the reconnect")
    assert spot.emu.state()["requests"]["GET /api/v3/myTrades"] >= 2  # the trade was read again
    assert spot.venue.fills_deduplicated == 2
    assert [m.fill.client_order_id for m in rec.of(FillReport)] == ["d-gap-1"]


async def test_the_first_user_stream_connect_re_reads_trades_since_start_only(clock: ManualClock, bus: Bus) -> None:
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False)
    await emu.start()
    h = Harness(emu, make_venue(emu, Market.SPOT, bus, clock), bus, clock)
    rec = Recorder(bus, FillReport)
    try:
        # Account history from before this start: the node's start-up reconciliation books it.
        emu.exchange.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
                                "newClientOrderId": "before-start"}, clock.time_ns())
        clock.advance(10.0)
        await h.venue.start()
        # Between start() and the user stream's first connect: this one may be missed.
        clock.advance(1.0)
        emu.exchange.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.02",
                                "newClientOrderId": "after-start"}, clock.time_ns())
        h.task = asyncio.get_running_loop().create_task(h.venue.run(), name="test:venue-run")
        await until(lambda: h.venue.gap_reconciles >= 1, what="first user-stream reconcile")
        assert [m.fill.client_order_id for m in rec.of(FillReport)] == ["after-start"]
        assert rec.of(FillReport)[0].fill.qty == Decimal("0.02")
    finally:
        await h.stop()
        await emu.stop()
