"""BybitVenue against the Bybit emulator, both in this process, over loopback.

The emulator and the adapter share one ManualClock: server time, rate-limit windows,
bans, request timeouts and backoffs move only when a test advances it. The emulator's
market does not tick on its own (`run_market=False`): tests call `emulator.step()`.
Waiting is on conditions (`until`), bounded, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.venues.bybit.adapter import BybitOptions, BybitVenue
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.config import BybitConfig
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator
from nautilus_hmm.venues.ws import WsSettings
from tests.integration.waits import WAIT_S, Recorder, stop_venue, until  # noqa: F401 (re-exported to the tests)

API_KEY = "bybitEmuKey0123456789ab"
API_SECRET = "bybitEmuSecret0123456789abcdefABCDEF"
SPOT_BTC = InstrumentId("bybit_spot", "BTCUSDT")
LINEAR_BTC = InstrumentId("bybit_linear", "BTCUSDT")


def make_venue(emu: BybitEmulator, category: str, bus: Bus, clock: ManualClock, *, streams: bool = False,
               **cfg: Any) -> BybitVenue:
    """An adapter pointed at the emulator (every URL overridden; fast-reconnect settings; 1 m klines)."""
    config = BybitConfig(
        enabled=True, rest_url=emu.url, ws_public_url=f"{emu.ws_public_url}/{category}",
        ws_private_url=emu.ws_private_url, ws_trade_url=emu.ws_trade_url,
        symbols=cfg.pop("symbols", ("BTCUSDT",)), request_timeout_s=cfg.pop("request_timeout_s", 5.0), **cfg)
    ws = WsSettings(ping_interval_s=300.0, dead_after_s=600.0, jitter=0.0)
    options = BybitOptions(bar_interval_s=60, streams=streams, public_ws=ws, private_ws=ws, trade_ws=ws)
    return BybitVenue(config, category, bus, clock, credentials=Credentials(API_KEY, API_SECRET), options=options)


def make_emulator(clock: ManualClock, **kw: Any) -> BybitEmulator:
    """An emulator on a free loopback port that ticks only when told."""
    return BybitEmulator(api_key=API_KEY, api_secret=API_SECRET, symbols=kw.pop("symbols", ["BTCUSDT", "ETHUSDT"]),
                         clock=clock, run_market=False, **kw)


class Harness:
    """A started emulator and adapter, with the adapter's run() in a task."""

    def __init__(self, emu: BybitEmulator, venue: BybitVenue, bus: Bus, clock: ManualClock) -> None:
        self.emu = emu
        self.venue = venue
        self.bus = bus
        self.clock = clock
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the adapter and run it (its websockets, if any, connect in the background)."""
        await self.venue.start()
        self.task = asyncio.get_running_loop().create_task(self.venue.run(), name="test:bybit-venue-run")
        if self.venue.ws_trade is not None:
            await until(lambda: self.venue.ws_trade is not None and self.venue.ws_trade.connected,
                        what="trade WebSocket authenticated")

    async def stop(self) -> None:
        """Cancel run(), stop the adapter."""
        await stop_venue(self.task, self.venue)

    def orders_at_venue(self) -> list[str]:
        """The orderLinkId of every order the emulator holds, in the order it took them."""
        return [o["order_link_id"] for o in self.emu.state()["orders"]]

    def creates_sent(self, cid: str) -> int:
        """How many order creates with this orderLinkId reached the emulator (any transport)."""
        return sum(1 for r in self.emu.new_order_requests if r["order_link_id"] == cid)


def limit_buy(iid: InstrumentId, cid: str, price: str = "50000.0", qty: str = "0.010") -> OrderRequest:
    """A GTC limit buy well below the emulator's market."""
    return OrderRequest(cid, iid, Side.BUY, OrderType.LIMIT, Decimal(qty), Decimal(price))


def market(iid: InstrumentId, cid: str, side: Side = Side.BUY, qty: str = "0.010") -> OrderRequest:
    """A market order."""
    return OrderRequest(cid, iid, side, OrderType.MARKET, Decimal(qty))
