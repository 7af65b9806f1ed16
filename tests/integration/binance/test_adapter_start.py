"""BinanceVenue.start() against the emulator: rate limits and bans are waited out, a failed start
closes its HTTP session.

Each test starts the adapter in a task and synchronises on the `binance_start_waiting` log
event: it is emitted right before the adapter sleeps on the ManualClock, so once the test
sees it the clock can be advanced (no real sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import AuthError, VenueBanned
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.binance.adapter import START_WAIT_MAX_S, BinanceVenue
from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.rest import BAN_MARGIN_NS, RATE_LIMIT_MARGIN_S
from tests.integration.binance.conftest import API_KEY, API_SECRET, make_venue, until

MARGIN_S = BAN_MARGIN_NS / 1e9  # the adapter never knocks on the door early

BTC = InstrumentId("binance_spot", "BTCUSDT")
EXCHANGE_INFO = "GET /api/v3/exchangeInfo"
NS_PER_MS = 1_000_000


@contextlib.asynccontextmanager
async def emulator(clock: ManualClock, **kw: Any) -> AsyncIterator[BinanceEmulator]:
    """A started spot emulator on the test clock (no market ticks of its own)."""
    emu = BinanceEmulator(Market.SPOT, api_key=kw.pop("api_key", API_KEY), api_secret=API_SECRET,
                          symbols=["BTCUSDT"], clock=clock, run_market=False, **kw)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@contextlib.asynccontextmanager
async def starting(venue: BinanceVenue) -> AsyncIterator[asyncio.Task[None]]:
    """venue.start() in a task; stops the venue (or cancels a start still running) at the end."""
    task = asyncio.get_running_loop().create_task(venue.start(), name="test:venue-start")
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await venue.stop()


def waits(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `binance_start_waiting` events captured so far."""
    return [e for e in logs if e["event"] == "binance_start_waiting"]


async def test_start_waits_out_a_418_ban_on_exchange_info_then_starts(clock: ManualClock, bus: Bus) -> None:
    async with emulator(clock) as emu:
        emu.faults.apply({"errors": [{"path": "/api/v3/exchangeInfo", "status": 418, "code": -1003,
                                      "retry_after_s": 120}]})
        venue = make_venue(emu, Market.SPOT, bus, clock)
        with capture_logs() as logs:
            async with starting(venue) as start:
                [wait] = await until(lambda: waits(logs), what="start waiting for the ban")
                assert (wait["venue"], wait["step"], wait["wait_s"], wait["log_level"]) == (
                    "binance_spot", "instruments", 120.0 + MARGIN_S, "warning")
                await clock.advance_settle(120.0)
                assert not start.done()
                assert emu.state()["requests"][EXCHANGE_INFO] == 1  # nothing sent during the ban
                await clock.advance_settle(MARGIN_S)
                await until(start.done, what="start finished after the ban")
                await start
                assert venue.instruments()[BTC].tradable and venue.user is not None and venue.user.listen_key
        log = emu.state()["request_log"]
        info = [r for r in log if r["path"] == "/api/v3/exchangeInfo"]
        assert [r["status"] for r in info] == [418, 200]
        assert info[1]["received_ms"] >= emu.banned_until_ms


async def test_start_waits_out_a_429_on_exchange_info_for_retry_after_without_a_ban(
        clock: ManualClock, bus: Bus) -> None:
    async with emulator(clock) as emu:
        emu.faults.apply({"errors": [{"path": "/api/v3/exchangeInfo", "status": 429, "code": -1003,
                                      "retry_after_s": 30}]})
        venue = make_venue(emu, Market.SPOT, bus, clock)
        with capture_logs() as logs:
            async with starting(venue) as start:
                [wait] = await until(lambda: waits(logs), what="start waiting for Retry-After")
                assert (wait["step"], wait["wait_s"]) == ("instruments", 30.0)
                await clock.advance_settle(29.0)
                assert not start.done() and emu.state()["requests"][EXCHANGE_INFO] == 1
                await clock.advance_settle(1.0 + RATE_LIMIT_MARGIN_S)  # the local gate adds a margin
                for _ in range(3):
                    if start.done():
                        break
                    await clock.advance_settle(1.0)
                await until(start.done, what="start finished after Retry-After")
                await start
        state = emu.state()
        assert state["requests"][EXCHANGE_INFO] == 2 and state["bans"] == 0 and BTC in venue.instruments()


async def test_start_into_a_spent_local_weight_budget_waits_for_the_next_minute(
        clock: ManualClock, bus: Bus) -> None:
    # exchangeInfo announces 28 weight/min: reads may use 22; time (1) + exchangeInfo (20)
    # + listenKey (2) = 23, so the listenKey waits for the next server minute.
    async with emulator(clock, weight_limit_1m=28) as emu:
        venue = make_venue(emu, Market.SPOT, bus, clock)
        to_next_minute_s = 60.0 - (clock.time_ns() // 10**9) % 60
        with capture_logs() as logs:
            async with starting(venue) as start:
                [wait] = await until(lambda: waits(logs), what="start waiting for the weight minute")
                assert (wait["step"], wait["wait_s"]) == ("listenKey", to_next_minute_s)
                assert "local weight budget" in wait["error"]
                await clock.advance_settle(to_next_minute_s)
                await until(start.done, what="start finished in the next minute")
                await start
                state = emu.state()
                assert state["requests"]["POST /api/v3/userDataStream"] == 1
                assert [r["status"] for r in state["request_log"]] == [200, 200, 200]  # never over the limit


async def test_a_ban_longer_than_the_start_wait_limit_fails_the_start_at_once(clock: ManualClock, bus: Bus) -> None:
    async with emulator(clock) as emu:
        emu.faults.apply({"errors": [{"path": "/api/v3/exchangeInfo", "status": 418, "code": -1003,
                                      "retry_after_s": START_WAIT_MAX_S + 1}]})
        venue = make_venue(emu, Market.SPOT, bus, clock)
        t0_ns = clock.time_ns()
        with capture_logs() as logs, pytest.raises(VenueBanned):
            await venue.start()
        assert waits(logs) == [] and clock.time_ns() == t0_ns
        await venue.stop()


async def test_a_failed_start_closes_its_http_session(clock: ManualClock, bus: Bus) -> None:
    async with emulator(clock, api_key="anotherKey0123456789abcdefABCDEF") as emu:
        venue = make_venue(emu, Market.SPOT, bus, clock)
        session = venue.rest.session  # the session start() will use (made lazily, owned by the client)
        with pytest.raises(AuthError):
            await venue.start()  # time and exchangeInfo need no key; the listenKey is refused (-2015)
        assert session.closed
        assert emu.state()["requests"]["POST /api/v3/userDataStream"] == 1


async def test_a_ban_end_in_venue_time_is_waited_out_when_the_local_clock_runs_ahead(
        clock: ManualClock, bus: Bus) -> None:
    async with emulator(clock) as emu:
        emu.faults.apply({"time_skew_ms": -5000,  # venue time = local time - 5 s
                          "errors": [{"path": "/api/v3/exchangeInfo", "status": 418, "code": -1003,
                                      "retry_after_s": 120}]})
        venue = make_venue(emu, Market.SPOT, bus, clock)
        with capture_logs() as logs:
            async with starting(venue) as start:
                [wait] = await until(lambda: waits(logs), what="start waiting for the ban")
                assert venue.rest.time_offset_ms == -5000
                assert wait["wait_s"] == 120.0 + MARGIN_S
                await clock.advance_settle(120.0)
                assert emu.state()["requests"][EXCHANGE_INFO] == 1, "a request was sent while the venue banned us"
                await clock.advance_settle(MARGIN_S)
                await until(start.done, what="start finished after the ban")
                await start
        info = [r for r in emu.state()["request_log"] if r["path"] == "/api/v3/exchangeInfo"]
        assert [r["status"] for r in info] == [418, 200]
