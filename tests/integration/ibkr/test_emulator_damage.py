"""Damage the IBKR emulator's socket protocol: malformed frames and fields, unknown message ids,
a client gone mid-message, oversized length prefixes, bad handshakes. The emulator answers what
it can (320, 505, 504, 321), logs, closes only the broken connection, and keeps serving the
others (an ib_async client trades throughout)."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from structlog.testing import capture_logs

from tests.integration.ibkr.emulator_harness import (
    RawClient,
    client,
    frame,
    msg,
    running,
    step,
    until,
)

ib_async = pytest.importorskip("ib_async")
from ib_async import MarketOrder, Stock  # noqa: E402


async def still_trades(emu, ib) -> None:  # type: ignore[no-untyped-def]
    """The ib_async client on `emu` still qualifies, trades and reads positions."""
    [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    trade = ib.placeOrder(aapl, MarketOrder("BUY", 1))
    await until(lambda: trade.orderStatus.status == "Filled", what="the other client still trades")
    assert any(p.contract.conId == 265598 for p in await ib.reqPositionsAsync())


def place_order_ending_at_quantity(qty: str) -> bytes:
    """placeOrder (3) of order 100, BUY `qty` AAPL on SMART, its fields cut after totalQuantity."""
    return msg(3, 100, 265598, "AAPL", "STK", "", 0.0, "", "", "SMART", "", "USD", "", "", "", "", "BUY", qty)


async def current_time(raw: RawClient) -> int:
    """reqCurrentTime answered on this connection (it is still served)."""
    raw.writer.write(msg(49, 1))
    fields = await raw.read_until(lambda f: f[0] == "49")
    return int(fields[2])


async def test_frame_not_utf8_or_without_final_nul_is_320_and_the_connection_served() -> None:
    async with running() as emu, client(emu) as ib:
        raw = await RawClient.connect(emu.port)
        raw.writer.write(frame(b"\xff\xfe\x00"))
        err = await raw.error(320)
        assert "UTF-8" in err[4]
        raw.writer.write(frame(b"49\x001"))  # no NUL after the last field
        err = await raw.error(320)
        assert "NUL" in err[4]
        assert await current_time(raw) == emu.clock.time_ns() // 1_000_000_000
        await still_trades(emu, ib)
        raw.close()


async def test_unknown_message_id_is_505_and_a_non_numeric_id_320() -> None:
    async with running() as emu, client(emu) as ib:
        raw = await RawClient.connect(emu.port)
        raw.writer.write(msg(4242, 1, "x"))
        assert "4242" in (await raw.error(505))[4]
        raw.writer.write(msg("PLACE", 1))
        assert "'PLACE'" in (await raw.error(320))[4]
        assert await current_time(raw) > 0
        await still_trades(emu, ib)
        raw.close()


async def test_bad_field_names_the_field_and_value() -> None:
    async with running() as emu:
        raw = await RawClient.connect(emu.port)
        raw.writer.write(msg(9, 8, "abc"))  # reqContractDetails with a non-numeric reqId
        err = await raw.error(320)
        assert "'reqId'" in err[4] and "'abc'" in err[4]
        raw.writer.write(msg(9, 8, 12, 0, "AAPL"))  # truncated: the contract's fields stop early
        err = await raw.error(320)
        assert err[2] == "12" and "missing" in err[4]
        raw.writer.write(msg(59, 1, 9))  # reqMarketDataType 9
        assert "marketDataType" in (await raw.error(320))[4]
        raw.close()


async def test_truncated_place_order_is_321_naming_the_field_and_nothing_is_placed() -> None:
    async with running() as emu:
        raw = await RawClient.connect(emu.port)
        raw.writer.write(place_order_ending_at_quantity("ten"))
        err = await raw.error(321)
        assert err[2] == "100" and "totalQuantity" in err[4] and "'ten'" in err[4]
        assert emu.engine.orders == {}
        raw.close()


async def test_request_before_start_api_is_504() -> None:
    async with running() as emu:
        raw = await RawClient.connect(emu.port, client_id=None)
        raw.writer.write(msg(61, 1))
        assert "startApi" in (await raw.error(504))[4]
        raw.close()


async def test_client_gone_mid_message_is_logged_and_others_keep_trading() -> None:
    async with running() as emu, client(emu) as ib:
        with capture_logs() as logs:
            raw = await RawClient.connect(emu.port)
            raw.writer.write(struct.pack(">I", 200) + b"9\x008\x00")  # 200 bytes announced, 4 sent
            await raw.writer.drain()
            raw.close()
            await until(lambda: len(emu.sessions) == 1, what="the cut connection is dropped")
            half = await RawClient.connect(emu.port, client_id=None)
            half.writer.write(b"\x00\x00")  # half a length prefix, then gone
            await half.writer.drain()
            half.close()
            await until(lambda: len(emu.sessions) == 1)
        events = [e for e in logs if e["event"] == "ibkr_emulator_client_closed_mid_message"]
        assert events and events[0]["expected_bytes"] == 200 and events[0]["got_bytes"] == 4
        assert any(e.get("got_bytes") == 2 for e in events)
        await still_trades(emu, ib)


async def test_oversized_length_prefix_closes_only_that_connection() -> None:
    async with running() as emu, client(emu) as ib:
        with capture_logs() as logs:
            raw = await RawClient.connect(emu.port)
            raw.writer.write(struct.pack(">I", 0x7FFFFFFF))
            assert await raw.closed()
        assert any("exceeds" in e.get("reason", "") for e in logs)
        await still_trades(emu, ib)


@pytest.mark.parametrize("opening", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"API\0" + frame(b"hello"),
    b"API\0" + frame(b"v100..120"),  # no common version
    b"API\0" + frame(b"v180..170"),  # min above max
])
async def test_bad_handshake_closes_that_connection_and_others_are_served(opening: bytes) -> None:
    async with running() as emu, client(emu) as ib:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(opening)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
        writer.close()
        await still_trades(emu, ib)


async def test_negotiated_version_is_the_highest_both_speak() -> None:
    async with running() as emu:
        raw = await RawClient.connect(emu.port, versions=b"v100..165")
        assert raw.server_version == 165
        raw.close()
        raw = await RawClient.connect(emu.port, versions=b"v176..200 +PACEAPI")
        assert raw.server_version == 178
        raw.close()


async def test_flood_of_garbage_messages_does_not_stop_the_market_or_other_clients() -> None:
    async with running() as emu, client(emu) as ib:
        raw = await RawClient.connect(emu.port)
        for i in range(200):
            raw.writer.write(msg(i % 7 + 200, "junk", i))
        raw.writer.write(msg(49, 1))
        await raw.read_until(lambda f: f[0] == "49")
        await still_trades(emu, ib)
        raw.close()


async def test_out_of_range_number_in_place_order_is_321_and_the_connection_served() -> None:
    async with running() as emu:
        raw = await RawClient.connect(emu.port)
        raw.writer.write(place_order_ending_at_quantity("1e999999"))
        err = await raw.error(321)
        assert "out of range" in err[4] and "1e999999" in err[4]
        assert await current_time(raw) > 0
        raw.close()


async def test_a_failing_request_handler_is_322_and_the_connection_served(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator

    def broken(self, s, fields):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setitem(IbkrEmulator._handlers, 61, broken)
    async with running() as emu:
        raw = await RawClient.connect(emu.port)
        raw.writer.write(msg(61, 1))
        assert "RuntimeError: boom" in (await raw.error(322))[4]
        assert await current_time(raw) > 0 and emu.errors_logged == 1
        raw.close()


async def test_a_client_that_stops_reading_is_cut_and_others_served(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from nautilus_hmm.venues.ibkr.emulator import server

    monkeypatch.setattr(server, "MAX_UNREAD_BYTES", 64 * 1024)
    async with running() as emu, client(emu) as ib:
        raw = await RawClient.connect(emu.port)
        raw.writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        [session] = [s for s in emu.sessions.values() if s.client_id == 77]
        session.writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        with capture_logs() as logs:
            # ~0.5 MB of 1-second bars, never read: far more than the small socket buffers hold
            raw.writer.write(msg(20, 500, 0, "EUR", "CASH", "", 0.0, "", "", "IDEALPRO", "", "USD", "", "", 0, "",
                                 "1 secs", "9000 S", 0, "MIDPOINT", 2, 0, ""))
            await until(lambda: any(e["event"] == "ibkr_emulator_slow_client_cut" for e in logs), 20,
                        "the non-reading client is cut")
        await until(lambda: len(emu.sessions) == 1)
        await still_trades(emu, ib)
        raw.close()


def real_requests() -> list[list[str]]:
    """Requests as ib_async's own Client writes them at server version 178 (captured, not sent)."""
    from ib_async import ExecutionFilter, Forex, Future, LimitOrder
    from ib_async.client import Client

    captured: list[list[str]] = []
    c = Client(wrapper=None)
    c._serverVersion = 178
    c.connState = Client.CONNECTED
    c._apiReady = True
    c.sendMsg = lambda text: captured.append(text.split("\0")[:-1])  # type: ignore[method-assign]
    aapl, es, eur = Stock("AAPL", "SMART", "USD"), Future("ES", "202612", "CME"), Forex("EURUSD")
    c.placeOrder(1, aapl, LimitOrder("BUY", 10, 100.0, orderRef="fuzz", tif="GTC"))
    c.placeOrder(2, es, MarketOrder("SELL", 1))
    c.cancelOrder(1)
    c.reqContractDetails(3, es)
    c.reqMktData(4, aapl, "", False, False, [])
    c.reqHistoricalData(5, eur, "", "3600 S", "1 min", "MIDPOINT", False, 2, False, [])
    c.reqRealTimeBars(6, aapl, 5, "TRADES", True, [])
    c.reqTickByTickData(7, aapl, "BidAsk", 0, False)
    c.reqExecutions(8, ExecutionFilter(clientId=1, time="20261201 14:00:00 UTC"))
    c.reqAccountSummary(9, "All", "NetLiquidation,TotalCashValue")
    c.reqAccountUpdates(True, "DU1234567")
    c.reqPositions()
    c.reqOpenOrders()
    c.reqCompletedOrders(False)
    c.reqMarketDataType(3)
    c.cancelMktData(4)
    return captured


async def test_seeded_fuzz_of_real_requests_never_breaks_a_handler() -> None:
    """ib_async's own requests with one to three fields replaced by hostile values (seeded): each
    is answered or refused, no handler raises (errors_logged stays 0), the connection and the
    market keep going, and an ib_async client trades throughout."""
    import random

    rng = random.Random(14)
    pool = ["", "0", "1", "-1", "7", "265598", "637533641", "AAPL", "ES", "EUR", "STK", "FUT", "CASH", "BAG",
            "SMART", "CME", "IDEALPRO", "USD", "BUY", "SELL", "HOLD", "MKT", "LMT", "STP", "IOC", "100", "0.5",
            "1e3", "NaN", "inf", "-5", "1e999999", "1 min", "5 secs", "0 S", "9 Y", "TRADES", "SCHEDULE",
            "AllLast", "20261201 14:00:00 UTC", "20261301 99:00:00", "x" * 300, "\u00e9", "99999999999999999999",
            "1.7976931348623157E308", "2147483647", "DU0000000"]
    templates = real_requests()
    async with running() as emu, client(emu) as ib:
        raw = await RawClient.connect(emu.port)
        for i in range(800):
            fields = list(rng.choice(templates))
            for _ in range(rng.randint(1, 3)):
                fields[rng.randrange(1, len(fields))] = rng.choice(pool)
            raw.writer.write(msg(*fields))
            if i % 50 == 0:
                await step(emu)
                await raw.writer.drain()
        assert await current_time(raw) > 0  # still served, in order, after all of it
        assert emu.errors_logged == 0
        codes = {r["code"] for r in emu.order_requests}
        assert None in codes and len(codes) >= 3  # mutated orders were both accepted and refused
        await still_trades(emu, ib)
        raw.close()
