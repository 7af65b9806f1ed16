"""Bybit streams against the Bybit emulator over loopback: its faults (a skipped delta, malformed
frames, a muted stream, a dropped connection) seen from the client side.

The emulator and the streams share one ManualClock; the market ticks only on `emu.step()`.
Waits are on conditions, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import BookValidityChanged
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator
from nautilus_hmm.venues.bybit.parse import BybitParser
from nautilus_hmm.venues.bybit.streams import BybitPrivateStream, BybitPublicStream
from nautilus_hmm.venues.ws import WsSettings
from tests.integration.waits import until

API_KEY = "streamsEmuKey0123456789"
API_SECRET = "streamsEmuSecret0123456789abcdef"
NS_PER_MS = 1_000_000
SETTINGS = WsSettings(ping_interval_s=1e6, dead_after_s=1e6, backoff_initial_s=1.0, jitter=0.0)
TOPIC = "orderbook.50.BTCUSDT"


@pytest.fixture
async def emu() -> AsyncIterator[BybitEmulator]:
    clock = ManualClock(1_750_000_000_000 * NS_PER_MS)
    e = BybitEmulator(api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT", "ETHUSDT"], clock=clock,
                      run_market=False)
    await e.start()
    yield e
    await e.stop()


class Run:
    def __init__(self, stream: BybitPublicStream | BybitPrivateStream) -> None:
        self.stream = stream
        self.task = asyncio.get_running_loop().create_task(stream.run())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        await self.stream.close()


async def public(emu: BybitEmulator, bus: Bus, category: str = "linear", **kw: Any) -> Run:
    parser = BybitParser(category)
    stream = BybitPublicStream(venue=parser.venue, url=f"{emu.ws_public_url}/{category}", parser=parser, bus=bus,
                               clock=emu.clock, topics=[TOPIC, "publicTrade.BTCUSDT"], settings=SETTINGS,
                               rng=random.Random(3), **kw)
    r = Run(stream)
    iid = parser.ids("BTCUSDT")
    await until(lambda: stream.subscribed and stream.book_published.get(iid) is True, what="subscribed and synced")
    return r


async def rest_book(emu: BybitEmulator, category: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    async with aiohttp.ClientSession() as s, s.get(f"{emu.url}/v5/market/orderbook",
                                                   params={"category": category, "symbol": "BTCUSDT",
                                                           "limit": "50"}) as r:
        res = (await r.json())["result"]
    return [(float(p), float(q)) for p, q in res["b"]], [(float(p), float(q)) for p, q in res["a"]]


async def test_a_skipped_delta_is_resynced_by_resubscribing_and_the_book_matches_the_venue(emu: BybitEmulator,
                                                                                          bus: Bus) -> None:
    seen: list[BookValidityChanged] = []
    bus.subscribe(BookValidityChanged, seen.append)
    r = await public(emu, bus)
    stream = r.stream
    book = stream.books[stream.parser.ids("BTCUSDT")]
    for _ in range(3):
        emu.clock.advance(1)
        await emu.step()
    await emu.set_faults({"skip_book_deltas": 1})
    for _ in range(2):
        emu.clock.advance(1)
        await emu.step()
    await until(lambda: stream.stats.book_resyncs == 1 and book.valid, what="gap seen, resubscribed, snapshot applied")
    assert [m.valid for m in seen] == [False, True, False, True]
    assert "missed updates" in seen[2].reason
    for _ in range(3):
        emu.clock.advance(1)
        await emu.step()
    u = book.update_id
    await until(lambda: book.update_id > u or stream.stats.book_gaps > 1, what="deltas after the resync")
    bids, asks = await rest_book(emu, "linear")
    top = book.top(50)
    assert top is not None and top == (bids, asks)
    assert stream.stats.book_gaps == 1 and stream.ws.stats.reconnects == 0
    await r.stop()


async def test_malformed_frames_from_the_venue_are_counted_and_the_stream_goes_on(emu: BybitEmulator,
                                                                                 bus: Bus) -> None:
    r = await public(emu, bus, "spot")
    await emu.set_faults({"malformed_frames": 2})
    emu.clock.advance(1)
    await emu.step()
    await until(lambda: r.stream.ws.stats.parse_errors == 2, what="two malformed frames counted")
    book = r.stream.books[r.stream.parser.ids("BTCUSDT")]
    u = book.update_id
    emu.clock.advance(1)
    await emu.step()
    await until(lambda: book.update_id > u, what="the next delta applies")
    assert r.stream.ws.connected and r.stream.ws.stats.connects == 1 and book.valid
    await r.stop()


async def test_a_muted_stream_is_reopened_after_the_stale_window(emu: BybitEmulator, bus: Bus) -> None:
    r = await public(emu, bus, stale_after_s=60.0)
    await emu.set_faults({"mute_public_streams": True})
    for _ in range(3):
        await emu.clock.advance_settle(20.0)
    await until(lambda: r.stream.stats.stale_drops == 1, what="stale drop")
    await emu.set_faults({"mute_public_streams": False})
    await until(lambda: r.stream.ws.stats.reconnects == 1 and r.stream.subscribed, what="re-opened")
    assert r.stream.stats.pongs >= 2 and r.stream.stats.pong_timeouts == 0
    await r.stop()


async def test_the_private_stream_reauths_after_a_drop_and_reports_each_gap(emu: BybitEmulator, bus: Bus) -> None:
    gaps: list[str] = []
    parser = BybitParser("linear")
    stream = BybitPrivateStream(venue=parser.venue, url=emu.ws_private_url, parser=parser, bus=bus,
                                clock=emu.clock, credentials=Credentials(API_KEY, API_SECRET),
                                on_order=lambda o: None, on_gap=gaps.append, server_time_ms=emu.server_ms,
                                settings=SETTINGS, rng=random.Random(3))
    r = Run(stream)
    await until(lambda: gaps == ["private stream connected"], what="subscribed")
    await emu.close_websockets("private")
    await until(lambda: not stream.ws.connected, what="dropped")
    await emu.clock.advance_settle(1.0)
    await until(lambda: len(gaps) == 2 and stream.subscribed, what="back, re-authenticated")
    assert gaps[1] == "private stream reconnected" and stream.stats.auth_failures == 0
    await emu.clock.advance_settle(20.0)
    await until(lambda: stream.stats.pongs == 1, what="the emulator's private pong is understood")
    await r.stop()


async def test_a_wrong_secret_is_refused_by_the_emulator_and_reported(emu: BybitEmulator, bus: Bus) -> None:
    errors: list[Exception] = []
    parser = BybitParser("spot")
    stream = BybitPrivateStream(venue=parser.venue, url=emu.ws_private_url, parser=parser, bus=bus,
                                clock=emu.clock, credentials=Credentials(API_KEY, "wrong" + API_SECRET),
                                on_order=lambda o: None, on_gap=lambda g: None, on_auth_error=errors.append,
                                server_time_ms=emu.server_ms, settings=SETTINGS)
    r = Run(stream)
    await until(lambda: errors, what="auth refused")
    assert "private stream auth refused" in str(errors[0]) and not stream.authenticated
    await r.stop()
