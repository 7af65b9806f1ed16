"""Shared by the IBKR emulator tests: the emulator on a ManualClock, ib_async clients, raw sockets."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.ibkr import emulator
from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator
from tests.integration.waits import until  # noqa: F401 (re-exported to the emulator tests)

NS = 1_000_000_000
# Tuesday 2026-12-01 10:00 New York: stocks in regular hours, ES and FX open.
TUESDAY_10_ET_NS = int(datetime(2026, 12, 1, 15, 0, tzinfo=UTC).timestamp()) * NS
# Tuesday 2026-12-01 08:00 New York: stocks pre-market (trading hours, not regular hours).
TUESDAY_08_ET_NS = int(datetime(2026, 12, 1, 13, 0, tzinfo=UTC).timestamp()) * NS
WAIT_S = 5.0


@asynccontextmanager
async def running(start_ns: int = TUESDAY_10_ET_NS, **options) -> AsyncIterator[IbkrEmulator]:  # type: ignore[no-untyped-def]
    """A started emulator on a ManualClock at `start_ns` (reach the clock as `emu.clock`)."""
    emu = await emulator.start("127.0.0.1", 0, seed=7, clock=ManualClock(start_ns), **options)
    try:
        yield emu
    finally:
        await emu.close()


@asynccontextmanager
async def client(emu: IbkrEmulator, client_id: int = 1, **kwargs):  # type: ignore[no-untyped-def]
    """An ib_async IB connected (connectAsync) to the emulator."""
    from ib_async import IB

    ib = IB()
    await ib.connectAsync("127.0.0.1", emu.port, clientId=client_id, timeout=5, **kwargs)
    try:
        yield ib
    finally:
        ib.disconnect()


async def step(emu: IbkrEmulator, seconds: float = 1.0) -> None:
    """Advance the emulator's clock by `seconds`, one market step per second, letting the loop run."""
    clock = emu.clock
    assert isinstance(clock, ManualClock)
    await clock.advance_settle(seconds)


def frame(payload: bytes) -> bytes:
    """A length-prefixed API message."""
    return struct.pack(">I", len(payload)) + payload


def msg(*fields: object) -> bytes:
    """A framed message of `fields` (each NUL-terminated)."""
    return frame("".join(f"{f}\0" for f in fields).encode())


class RawClient:
    """A hand-written TWS API client over a plain socket (for damage the real client never sends)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.server_version = 0

    @classmethod
    async def connect(cls, port: int, client_id: int | None = 77, versions: bytes = b"v157..178") -> RawClient:
        """Connect, handshake and (unless client_id is None) startApi; read up to nextValidId."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        c = cls(reader, writer)
        writer.write(b"API\0" + frame(versions))
        version, _time = await c.read()
        c.server_version = int(version)
        if client_id is not None:
            writer.write(msg(71, 2, client_id, ""))
            await c.read_until(lambda f: f[0] == "9")
        return c

    async def read(self, timeout_s: float = WAIT_S) -> list[str]:
        """The next message's fields."""
        head = await asyncio.wait_for(self.reader.readexactly(4), timeout_s)
        body = await asyncio.wait_for(self.reader.readexactly(struct.unpack(">I", head)[0]), timeout_s)
        return body.decode().split("\0")[:-1]

    async def read_until(self, pred, timeout_s: float = WAIT_S) -> list[str]:  # type: ignore[no-untyped-def]
        """Read messages until one satisfies `pred(fields)`; returns it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            fields = await self.read(max(0.01, deadline - loop.time()))
            if pred(fields):
                return fields

    async def error(self, code: int) -> list[str]:
        """The next errMsg with `code`."""
        return await self.read_until(lambda f: f[0] == "4" and f[3] == str(code))

    async def closed(self, timeout_s: float = WAIT_S) -> bool:
        """Whether the server closes the connection (EOF) within `timeout_s` (messages read past)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), max(0.01, deadline - loop.time()))
            except ConnectionError:
                return True
            except TimeoutError:
                return False
            if not data:
                return True
        return False

    def close(self) -> None:
        """Close the socket."""
        self.writer.close()
