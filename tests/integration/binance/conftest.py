"""The Binance adapter against the emulator, both in this process, over loopback.

The emulator and the adapter share one ManualClock: server time, weights windows, bans,
Retry-After, backoffs, keepalives and request timeouts all move only when a test
advances it. The emulator's market does not tick on its own (`run_market=False`): tests
call `emulator.step()`. Waiting is on conditions (`until`), bounded, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.binance.adapter import BinanceOptions, BinanceVenue
from nautilus_hmm.venues.binance.auth import Credentials
from nautilus_hmm.venues.binance.config import BinanceConfig
from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.streams import SNAPSHOT_RETRY_S
from nautilus_hmm.venues.ws import WsSettings
from tests.integration.waits import WAIT_S, Recorder, stop_venue, until  # noqa: F401 (re-exported to the tests)

API_KEY = "emulatorKey0123456789abcdefABCDEF"
API_SECRET = "emulatorSecret0123456789abcdefABCDEF0123"


def make_venue(emu: BinanceEmulator, market: Market, bus: Bus, clock: ManualClock, **cfg: Any) -> BinanceVenue:
    """An adapter pointed at the emulator (fast-reconnect settings; klines of 1 m)."""
    config = BinanceConfig(enabled=True, rest_url=emu.url, ws_url=emu.ws_url, symbols=("BTCUSDT",),
                           request_timeout_s=cfg.pop("request_timeout_s", 5.0), **cfg)
    options = BinanceOptions(
        bar_interval_s=60,
        market_ws=WsSettings(stale_after_s=120.0, dead_after_s=600.0, ping_interval_s=300.0, jitter=0.0),
        user_ws=WsSettings(dead_after_s=600.0, ping_interval_s=300.0, jitter=0.0),
    )
    return BinanceVenue(config, market, bus, clock, credentials=Credentials(API_KEY, API_SECRET), options=options)


class Harness:
    """A started emulator and adapter, with the adapter's run() in a task."""

    def __init__(self, emu: BinanceEmulator, venue: BinanceVenue, bus: Bus, clock: ManualClock) -> None:
        self.emu = emu
        self.venue = venue
        self.bus = bus
        self.clock = clock
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the adapter, run it, wait for both streams and the first book sync."""
        await self.venue.start()
        self.task = asyncio.get_running_loop().create_task(self.venue.run(), name="test:venue-run")
        await until(lambda: self.venue.markets.ws.connected and self.venue.user is not None
                    and self.venue.user.ws.connected, what="streams connected")
        await until(lambda: self.venue.user_stream_gaps >= 1, what="first user-stream connect reported")
        await self.sync_books()

    async def sync_books(self) -> None:
        """Tick until every book is valid."""
        await until(lambda: self.venue.markets.subscribed, what="subscribed")
        for i in range(50):
            if all(v is True for v in self.venue.markets.book_published.values()):
                return
            await self.emu.step()
            await asyncio.sleep(0.005)
            if i % 10 == 9:
                # A snapshot older than the stream (the two raced) is fetched again after
                # SNAPSHOT_RETRY_S on the venue's clock, which only the test moves.
                await self.clock.advance_settle(SNAPSHOT_RETRY_S)
        raise AssertionError(f"books not valid: {self.venue.markets.book_published}")

    async def stop(self) -> None:
        """Cancel run(), stop the adapter."""
        await stop_venue(self.task, self.venue)


@pytest.fixture
async def spot(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    """A spot emulator with an adapter started against it."""
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False)
    await emu.start()
    h = Harness(emu, make_venue(emu, Market.SPOT, bus, clock), bus, clock)
    try:
        await h.start()
        yield h
    finally:
        await h.stop()
        await emu.stop()


@pytest.fixture
async def usdm(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    """A USD-M emulator with an adapter started against it (leverage 3, ISOLATED)."""
    emu = BinanceEmulator(Market.USDM, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False)
    await emu.start()
    h = Harness(emu, make_venue(emu, Market.USDM, bus, clock, leverage=3, margin_type="ISOLATED"), bus, clock)
    try:
        await h.start()
        yield h
    finally:
        await h.stop()
        await emu.stop()
