"""IbkrVenue against the IBKR emulator, both in this process, over loopback, through ib_async.

The emulator and the adapter share one ManualClock: market steps, request timeouts,
commission waits, reconnect backoffs and the Gateway's restart window move only when a
test advances it. Waiting is on conditions (`until`), bounded, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import Bar, FillReport, OrderStatusReport, QuoteTick, UserStreamGap
from nautilus_hmm.venues.ibkr import emulator
from nautilus_hmm.venues.ibkr.adapter import IbkrOptions, IbkrVenue
from nautilus_hmm.venues.ibkr.config import IbkrConfig
from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator
from tests.integration.ibkr.emulator_harness import TUESDAY_10_ET_NS
from tests.integration.waits import WAIT_S, Recorder, stop_venue, until  # noqa: F401 (re-exported to the tests)

AAPL = InstrumentId("ibkr", "AAPL")
ES = InstrumentId("ibkr", "ES-202612")
EURUSD = InstrumentId("ibkr", "EUR.USD")
SYMBOLS = ("AAPL", "ES-202612", "EUR.USD")
GUARD_S = 30.0


def bounded(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """A safety net: a test that waits on a future nothing will resolve fails after GUARD_S
    (real time) instead of hanging the suite. The tests' own waits are bounded conditions."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        async with asyncio.timeout(GUARD_S):
            await test(*args, **kwargs)

    return run


def make_venue(port: int, bus: Bus, clock: ManualClock, state_dir: Path, *, market_data: bool = False,
               bar_interval_s: int | None = 60, options: dict[str, Any] | None = None, **cfg: Any) -> IbkrVenue:
    """An adapter pointed at the emulator's port (fast reconnects; market data only when asked;
    `market_data_mode` is the config's `market_data`; `options`: further IbkrOptions fields)."""
    if "market_data_mode" in cfg:
        cfg["market_data"] = cfg.pop("market_data_mode")
    config = IbkrConfig(enabled=True, port=port, symbols=cfg.pop("symbols", SYMBOLS),
                        reconnect_initial_s=cfg.pop("reconnect_initial_s", 1.0),
                        reconnect_max_s=cfg.pop("reconnect_max_s", 4.0),
                        connect_timeout_s=cfg.pop("connect_timeout_s", 5.0), **cfg)
    return IbkrVenue(config, bus, clock, state_dir=state_dir,
                     options=IbkrOptions(bar_interval_s=bar_interval_s, market_data=market_data, **(options or {})))


class Harness:
    """A started emulator and adapter, with the adapter's run() in a task and a bus recorder."""

    def __init__(self, emu: IbkrEmulator, venue: IbkrVenue, bus: Bus, clock: ManualClock,
                 state_dir: Path) -> None:
        self.emu = emu
        self.venue = venue
        self.bus = bus
        self.clock = clock
        self.state_dir = state_dir
        self.rec = Recorder(bus, OrderStatusReport, FillReport, UserStreamGap, Bar, QuoteTick)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.venue.start()
        self.task = asyncio.get_running_loop().create_task(self.venue.run(), name="test:ibkr-venue-run")

    async def stop(self) -> None:
        await stop_venue(self.task, self.venue)

    async def step(self, seconds: float = 1.0) -> None:
        """Advance the shared clock (the emulator's market steps once per second of it)."""
        await self.clock.advance_settle(seconds)

    def orders_at_venue(self, ref: str) -> list[Any]:
        """Every order the emulator holds with this orderRef (open or done)."""
        return [o for o in self.emu.engine.orders.values() if o.order_ref == ref]

    def fills(self, cid: str | None = None) -> list[Any]:
        return [m.fill for m in self.rec.of(FillReport) if cid is None or m.fill.client_order_id == cid]

    def gaps(self) -> list[UserStreamGap]:
        return self.rec.of(UserStreamGap)


@asynccontextmanager
async def harness(tmp_path: Path, *, start_ns: int = TUESDAY_10_ET_NS, emu_options: dict[str, Any] | None = None,
                  **venue_kw: Any) -> AsyncIterator[Harness]:
    """Emulator + started adapter on one ManualClock; both closed at the end."""
    clock = ManualClock(start_ns)
    emu = await emulator.start("127.0.0.1", 0, seed=7, clock=clock, **(emu_options or {}))
    bus = Bus()
    h = Harness(emu, make_venue(emu.port, bus, clock, tmp_path, **venue_kw), bus, clock, tmp_path)
    try:
        await h.start()
        yield h
    finally:
        await h.stop()
        await emu.close()


def market(iid: InstrumentId, cid: str, side: Side = Side.BUY, qty: str = "10") -> OrderRequest:
    return OrderRequest(cid, iid, side, OrderType.MARKET, Decimal(qty))


def limit(iid: InstrumentId, cid: str, price: str, side: Side = Side.BUY, qty: str = "10") -> OrderRequest:
    return OrderRequest(cid, iid, side, OrderType.LIMIT, Decimal(qty), Decimal(price))
