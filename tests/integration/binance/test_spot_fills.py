"""BinanceVenue (spot) fills and user-stream gaps, against the emulator.

The adapter publishes every fill report it sees (a FULL answer's fills and the user
stream's copies) and, on every user-stream connect, a `UserStreamGap`; it reads nothing
itself. The engine's fill intake books each trade once, whichever way it arrives; the
reconciler re-reads the venue once per gap (one request of each kind)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import FillReport, OrderStatusReport, UserStreamGap
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
CFG = {
    "strategy": {"kind": "sma_cross", "instruments": ["binance_spot:BTCUSDT"]},
    "venues": {"sim": {"enabled": False}, "binance_spot": {"enabled": True, "symbols": ["BTCUSDT"]}},
}


def market_buy(cid: str, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(cid, BTC, Side.BUY, OrderType.MARKET, Decimal(qty))


def streamed_filled(rec: Recorder, cid: str) -> bool:
    """The user stream reported `cid` FILLED (its trade event was handled just before)."""
    return any(m.order.client_order_id == cid and m.order.status is OrderStatus.FILLED
               for m in rec.of(OrderStatusReport))


class Books:
    """What the node runs over the adapter, without a strategy: journal, engine with its report
    consumer, reconciler (start-up pass done) with its periodic and gap workers."""

    def __init__(self, h: Harness, state_dir: Path) -> None:
        self.h = h
        self.journal = Journal.open(state_dir / "journal.sqlite3")
        self.st: TradingStack = build_stack(parse(Config, CFG), h.bus, h.clock, self.journal,
                                            {h.venue.name: h.venue}, durable=True)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        st = self.st
        assert st.reconciler is not None
        await st.engine.start()
        self._tasks.append(asyncio.get_running_loop().create_task(st.engine.run(), name="test:reports"))
        st.engine.add_instruments(self.h.venue.instruments().values())
        await st.reconciler.recover_from_journal()
        st.attach_market()
        assert await st.reconciler.reconcile_startup()
        self._tasks.append(asyncio.get_running_loop().create_task(st.reconciler.run(), name="test:reconciler"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self.st.engine.detach()
        for undo in self.st.detach:
            undo()
        await self.journal.aclose()


@pytest.fixture
async def books(spot: Harness, tmp_path: Path) -> AsyncIterator[Books]:
    b = Books(spot, tmp_path)
    await b.start()
    yield b
    await b.stop()


async def drop_user_stream(spot: Harness) -> None:
    """Close the user stream at the emulator and let the adapter reconnect (one gap)."""
    await spot.emu.close_websockets("user")
    await until(lambda: not spot.venue.user.ws.connected, what="user stream down")  # type: ignore[union-attr]
    await spot.clock.advance_settle(1.0)  # the reconnect backoff


async def test_a_full_answer_fill_and_its_user_stream_copy_are_both_published(spot: Harness) -> None:
    rec = Recorder(spot.bus, FillReport, OrderStatusReport)
    await spot.venue.submit_order(market_buy("d-full-1"))
    # Both copies handled: the FULL answer's and the executionReport's (either may come first).
    await until(lambda: streamed_filled(rec, "d-full-1"), what="the user-stream copy of the fill")
    [emu_fill] = spot.emu.state()["fills"]
    assert [(m.fill.trade_id, m.fill.client_order_id) for m in rec.of(FillReport)] == [
        (emu_fill["trade_id"], "d-full-1")] * 2
    assert "fills_deduplicated" not in spot.venue.health().info  # the engine counts copies, not the adapter


async def test_a_fill_from_the_answer_the_stream_and_a_gap_re_read_is_booked_once(
        spot: Harness, books: Books) -> None:
    rec = Recorder(spot.bus, OrderStatusReport)
    await spot.venue.submit_order(market_buy("d-gap-1"))
    await until(lambda: streamed_filled(rec, "d-gap-1"), what="the user-stream copy of the fill")
    await books.st.engine.idle()
    position = books.st.portfolio.position_qty(BTC)
    assert position > 0
    await drop_user_stream(spot)
    assert books.st.reconciler is not None
    await until(lambda: books.st.reconciler.gap_passes == 1, what="the gap pass")  # type: ignore[union-attr]
    await books.st.engine.idle()
    assert spot.emu.state()["requests"]["GET /api/v3/myTrades"] >= 2  # the trade was read again
    assert books.st.portfolio.position_qty(BTC) == position
    assert books.st.engine.counts["fills"] == 1
    assert books.st.engine.counts["duplicate_fills"] == 2  # the stream's copy and the re-read
    assert len(books.journal.load_fills()) == 1
    assert books.st.reconciler.last["binance_spot"].ok  # type: ignore[union-attr]


async def test_one_user_stream_gap_is_one_read_of_each_kind_at_the_venue(spot: Harness, books: Books) -> None:
    log = spot.emu.request_log
    before = len(log)
    await drop_user_stream(spot)
    assert books.st.reconciler is not None
    await until(lambda: books.st.reconciler.gap_passes == 1, what="the gap pass")  # type: ignore[union-attr]
    reads = Counter(f"{e['method']} {e['path']}" for e in list(log)[before:])
    assert reads == {"GET /api/v3/myTrades": 1, "GET /api/v3/openOrders": 1, "GET /api/v3/account": 1}


async def test_the_first_user_stream_connect_reports_a_gap_from_start_and_reads_nothing(
        clock: ManualClock, bus: Bus) -> None:
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False)
    await emu.start()
    h = Harness(emu, make_venue(emu, Market.SPOT, bus, clock), bus, clock)
    rec = Recorder(bus, UserStreamGap, FillReport)
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
        await until(lambda: rec.of(UserStreamGap), what="the first connect's gap")
        (gap,) = rec.of(UserStreamGap)
        before_ns, after_ns = (int(f["ts_ms"]) * 1_000_000 for f in emu.state()["fills"])
        assert gap.venue == "binance_spot" and gap.reason == "user stream connected"
        assert before_ns < gap.since_ns <= after_ns
        assert rec.of(FillReport) == []
        assert "GET /api/v3/myTrades" not in emu.state()["requests"]
    finally:
        await h.stop()
        await emu.stop()
