"""Monitor mode on Bybit: BybitVenue with `read_only` against the emulator playing a read-only
API key (`BybitEmulator(read_only_key=True)`: signed writes answer retCode 10005), both in this
process over loopback on one manual clock.

The read-only adapter starts (no set-leverage / switch-mode), opens its public and private
streams but no trade WebSocket, reads orders, executions, positions and balances, lets the
real reconciler run over the venue, and refuses every create / cancel / cancel-all itself:
the emulator's request counts show none arrived. The control: a trading adapter with the same
key is refused 10005 by the emulator (an AuthError), so those counts could see a write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nautilus_hmm.bootstrap import build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import AuthError
from nautilus_hmm.domain.enums import Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.execution.mode import MONITOR, OrderGate
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import FillReport
from nautilus_hmm.venues.bybit.adapter import BybitOptions, BybitVenue
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.config import BybitConfig
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator
from nautilus_hmm.venues.ws import WsSettings
from tests.integration.bybit.adapter_harness import (
    API_KEY,
    API_SECRET,
    Harness,
    Recorder,
    limit_buy,
    make_emulator,
    market,
    until,
)

# Order entry and account settings: what a read-only key must never be used for.
WRITE_PATHS = ("/v5/order/create", "/v5/order/amend", "/v5/order/cancel", "/v5/order/cancel-all",
               "/v5/position/set-leverage", "/v5/position/switch-mode")


def account_writes(emu: BybitEmulator) -> dict[str, int]:
    """Requests that reached the emulator and write to the account (REST or trade WebSocket)."""
    return {k: n for k, n in emu.rest.request_counts.items()
            if n and (k.startswith("WS ") or k.partition(" ")[2] in WRITE_PATHS)}


def adapter(emu: BybitEmulator, category: str, bus: Bus, clock: ManualClock, *, read_only: bool,
            streams: bool = True) -> BybitVenue:
    """A ws_trade adapter pointed at the emulator: in read-only mode even that opens no trade socket."""
    config = BybitConfig(
        enabled=True, rest_url=emu.url, ws_public_url=f"{emu.ws_public_url}/{category}",
        ws_private_url=emu.ws_private_url, ws_trade_url=emu.ws_trade_url, symbols=("BTCUSDT",),
        request_timeout_s=5.0, order_entry="ws_trade")
    ws = WsSettings(ping_interval_s=300.0, dead_after_s=600.0, jitter=0.0)
    options = BybitOptions(bar_interval_s=60, streams=streams, public_ws=ws, private_ws=ws, trade_ws=ws,
                           read_only=read_only)
    return BybitVenue(config, category, bus, clock, credentials=Credentials(API_KEY, API_SECRET), options=options)


async def foreign_market_buy(emu: BybitEmulator, category: str, link_id: str, qty: str = "0.010") -> None:
    """Someone else's market buy on this account (placed on the exchange itself, not over the
    wire); its private frames go out on the stream the monitor listens to."""
    _result, frames = emu.exchange.create_order(
        {"category": category, "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": qty,
         "orderLinkId": link_id, **({"marketUnit": "baseCoin"} if category == "spot" else {})},
        emu.clock.time_ns())
    await emu.private_send(frames)


@pytest.fixture(params=["spot", "linear"])
async def monitor(request: pytest.FixtureRequest, clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    emu = make_emulator(clock, read_only_key=True)
    await emu.start()
    h = Harness(emu, adapter(emu, request.param, bus, clock, read_only=True), bus, clock)
    try:
        await h.start()
        await until(lambda: h.venue.public.subscribed and h.venue.private.subscribed, what="both streams subscribed")
        yield h
    finally:
        await h.stop()
        await emu.stop()


async def test_start_streams_and_reads_work_and_no_account_write_arrives(monitor: Harness) -> None:
    venue, emu = monitor.venue, monitor.emu
    assert venue.ws_trade is None and emu.ws_connects["trade"] == 0  # order_entry = "ws_trade", yet no socket
    assert emu.ws_connects["private"] == 1 and venue.health().ok, venue.health().detail
    iid = InstrumentId(venue.name, "BTCUSDT")
    assert iid in venue.instruments()
    assert await venue.open_orders() == []
    assert "USDT" in await venue.balances()
    if venue.category.value == "linear":
        assert await venue.positions() in ({}, {iid: Decimal(0)})
    rec = Recorder(monitor.bus, FillReport)
    await foreign_market_buy(emu, venue.category.value, "manual-1")
    await until(lambda: rec.of(FillReport), what="the foreign fill over the private stream")
    [fill] = rec.of(FillReport)
    assert fill.fill.client_order_id == "manual-1" and fill.fill.qty == Decimal("0.010")
    fills = await venue.fills_since(iid, monitor.clock.time_ns() - 3600 * 10**9)
    assert [f.trade_id for f in fills] == [fill.fill.trade_id]
    assert (await venue.query_order(iid, "manual-1")) is not None
    assert account_writes(emu) == {} and emu.new_order_requests == []
    assert sum(n for k, n in emu.rest.request_counts.items() if k.startswith("GET /v5/")) >= 5


async def test_order_entry_is_refused_by_the_adapter_before_any_request(monitor: Harness) -> None:
    venue, emu = monitor.venue, monitor.emu
    iid = InstrumentId(venue.name, "BTCUSDT")
    await foreign_market_buy(emu, venue.category.value, "manual-2")  # an order a cancel could name
    before = dict(emu.rest.request_counts)
    with pytest.raises(AuthError, match=r"new_order refused: read-only \(monitor mode\); nothing was sent"):
        await venue.submit_order(limit_buy(iid, "nh-ro-1"))
    with pytest.raises(AuthError, match="new_order refused: read-only"):
        await venue.submit_order(market(iid, "nh-ro-2", side=Side.SELL))
    with pytest.raises(AuthError, match="cancel_order refused: read-only"):
        await venue.cancel_order(iid, "manual-2")
    with pytest.raises(AuthError, match="cancel_all refused: read-only"):
        await venue.cancel_all(iid)
    with pytest.raises(AuthError, match="cancel_all refused: read-only"):
        await venue.cancel_all()
    assert dict(emu.rest.request_counts) == before  # not even a read went out for them
    assert account_writes(emu) == {} and emu.new_order_requests == []
    assert [o["order_link_id"] for o in emu.state()["orders"]] == ["manual-2"]


@pytest.mark.parametrize("category", ["spot", "linear"])
async def test_the_real_reconciler_runs_over_a_read_only_venue(tmp_path: Path, clock: ManualClock,
                                                               category: str) -> None:
    """Startup reconciliation and a pass after a foreign fill: reads only, the fill booked once."""
    emu = make_emulator(clock, read_only_key=True)
    await emu.start()
    bus = Bus()
    venue = adapter(emu, category, bus, clock, read_only=True, streams=False)
    iid = InstrumentId(venue.name, "BTCUSDT")
    cfg: dict[str, Any] = {
        "node": {"mode": "monitor"},
        "strategy": {"kind": "sma_cross", "instruments": [str(iid)], "bar_interval_s": 60},
        "venues": {"sim": {"enabled": False}, venue.name: {"enabled": True, "symbols": ["BTCUSDT"]}},
    }
    journal = Journal.open(tmp_path / "journal.sqlite3")
    st = build_stack(parse(Config, cfg), bus, clock, journal, {venue.name: venue}, durable=True)
    st.engine.order_gate = OrderGate(MONITOR)
    assert st.reconciler is not None
    try:
        await venue.start()
        st.engine.add_instruments(venue.instruments().values())
        assert await st.reconciler.startup()
        clock.advance(5.0)
        await foreign_market_buy(emu, category, "manual-3")  # no stream here: only reconciliation sees it
        (first,) = await st.reconciler.reconcile_now()
        for _ in range(3):
            await st.engine.idle()
            await journal.flush()
        assert first.recovered_fills == 1, first.discrepancies
        if category == "linear":
            assert st.portfolio.position_qty(iid) == Decimal("0.010") == (await venue.positions())[iid]
        (second,) = await st.reconciler.reconcile_now()
        assert second.recovered_fills == 0, second.discrepancies
        assert account_writes(emu) == {} and emu.new_order_requests == []
    finally:
        await venue.stop()
        await journal.aclose()
        await emu.stop()


@pytest.mark.parametrize("category", ["spot", "linear"])
async def test_the_emulator_refuses_a_read_only_keys_writes_with_10005(clock: ManualClock, bus: Bus,
                                                                      category: str) -> None:
    """The control for the read-only key: an adapter that does write is refused (AuthError naming
    10005), linear already at start (switch-mode), spot at its first order; nothing is placed."""
    emu = make_emulator(clock, read_only_key=True)
    await emu.start()
    venue = adapter(emu, category, bus, clock, read_only=False, streams=False)
    try:
        if category == "linear":
            with pytest.raises(AuthError, match="10005"):
                await venue.start()
            assert account_writes(emu) == {"POST /v5/position/switch-mode": 1}
        else:
            await venue.start()
            venue.ws_trade = None  # REST order entry (run() is not running: no trade socket)
            with pytest.raises(AuthError, match="10005"):
                await venue.submit_order(limit_buy(InstrumentId(venue.name, "BTCUSDT"), "nh-ro-3"))
            assert account_writes(emu) == {"POST /v5/order/create": 1}
        assert emu.state()["orders"] == []
    finally:
        await venue.stop()
        await emu.stop()


async def test_the_emulator_refuses_a_read_only_keys_order_on_the_trade_websocket_too(clock: ManualClock,
                                                                                     bus: Bus) -> None:
    """The trade WebSocket's order.create with a read-only key: 10005 (AuthError), not taken,
    and not resent by REST (a refusal is not a connection that was down)."""
    emu = make_emulator(clock, read_only_key=True)
    await emu.start()
    h = Harness(emu, adapter(emu, "spot", bus, clock, read_only=False, streams=False), bus, clock)
    try:
        await h.start()  # waits for the trade WebSocket's auth: the key itself is valid
        with pytest.raises(AuthError, match="10005"):
            await h.venue.submit_order(limit_buy(InstrumentId(h.venue.name, "BTCUSDT"), "nh-ro-4"))
        assert account_writes(emu) == {"WS order.create": 1}
        assert h.venue.ws_trade_fallbacks == 0 and emu.state()["orders"] == []
    finally:
        await h.stop()
        await emu.stop()
