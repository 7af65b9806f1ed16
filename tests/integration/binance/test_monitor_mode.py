"""A whole node in monitor mode against the Binance emulator, both in this process over
loopback on one manual clock: the venue connects (REST, market and user streams),
reconciliation runs and tracks a foreign open order, the strategy sees bars and states
targets, admin flatten and cancel answer 409, and the emulator's own request log shows that
not one order-entry request (new order, cancel, cancel-all; REST or WebSocket API) arrived.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nautilus_hmm.config import load_config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import AuthError
from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import TargetPosition
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier
from nautilus_hmm.venues.binance.adapter import BinanceOptions, BinanceVenue
from nautilus_hmm.venues.binance.auth import Credentials
from nautilus_hmm.venues.binance.config import BinanceConfig
from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.market import Market
from tests.integration.binance.conftest import API_KEY, API_SECRET, until
from tests.nodeharness import TOKEN, auth

CONFIG = """
[node]
state_dir = "{state}"
mode = "{mode}"
[http]
port = 0
[venues.sim]
enabled = false
[venues.{venue}]
enabled = true
rest_url = "{rest}"
ws_url = "{ws}"
{ws_api}
symbols = ["BTCUSDT"]
[strategy]
kind = "sma_cross"
instruments = ["{venue}:BTCUSDT"]
bar_interval_s = 1
[strategy.sma_cross]
fast = 1
slow = 2
quantity = "0.01"
[risk]
initial_state = "ACTIVE"
orders_per_s = 1000.0
order_burst = 1000
stale_data_s = 30.0
[execution]
unknown_orders = "cancel"
"""
# What a read-only key may still do: keep its user stream's listenKey.
LISTEN_KEY_PATHS = ("/api/v3/userDataStream", "/fapi/v1/listenKey")


def account_writes(emu: BinanceEmulator) -> dict[str, int]:
    """Requests the emulator received that write to the account, by route: new orders,
    cancels, cancel-all, leverage, margin type, position mode (REST), anything but a status
    query on the WebSocket API. Empty: none."""
    out = {}
    for key, n in emu.request_counts.items():
        method, _, path = key.partition(" ")
        write = (method in ("POST", "PUT", "DELETE") and path not in LISTEN_KEY_PATHS) or (
            method == "WS" and path != "order.status")
        if write and n:
            out[key] = n
    return out


@contextlib.asynccontextmanager
async def monitor_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, mode: str = "monitor",
                       ws_api: bool = False, market: Market = Market.SPOT, read_only_key: bool = False,
                       ) -> AsyncIterator[tuple[Node, BinanceEmulator, ManualClock, str]]:
    """The emulator (with a foreign open order resting on it) and a started node pointed at it;
    `read_only_key`: the emulator refuses every signed write of the key (-2015)."""
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_SECRET", API_SECRET)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    clock = ManualClock()
    emu = BinanceEmulator(market, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False, unmetered=True, read_only_key=read_only_key)
    await emu.start()
    node: Node | None = None
    try:
        await emu.step(3)
        # Placed on the exchange itself, not over the wire: someone else's order on this account.
        # A sell far above the market: it rests (and the engine counts it when planning).
        ask = emu.exchange.quotes["BTCUSDT"][2]
        emu.exchange.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                                "quantity": "0.01", "price": str(round(float(ask) * 1.05, 1)),
                                "newClientOrderId": "manual-1"}, clock.time_ns())
        path = tmp_path / "config.toml"
        path.write_text(CONFIG.format(state=tmp_path / "state", mode=mode, rest=emu.url, ws=emu.ws_url,
                                      venue=market.default_venue,
                                      ws_api=f'order_entry = "ws_api"\nws_api_url = "{emu.ws_api_url}"'
                                      if ws_api else ""))
        node = Node(load_config(str(path)), path, clock=clock, notifier=Notifier(""))
        await node.start()
        yield node, emu, clock, f"http://127.0.0.1:{node.web.bound_port}"
    finally:
        if node is not None:
            await node.stop()
        await emu.stop()


async def drive_until_targets(node: Node, emu: BinanceEmulator, clock: ManualClock,
                              targets: list[TargetPosition], n: int = 2) -> None:
    """Tick the emulator's market a second at a time until the strategy stated `n` nonzero
    targets. After each tick, waits (bounded) until the adapter has read every market frame the
    emulator wrote (its one market connection)."""
    market_ws = next(v for v in node.stack.venues.values() if isinstance(v, BinanceVenue)).markets.ws
    for _ in range(120):
        if sum(1 for t in targets if t.target_qty != 0) >= n:
            return
        await clock.advance_settle(1.0)
        sent, read = emu.streams.market_sent, market_ws.stats.messages
        await emu.step(2)
        expected = read + emu.streams.market_sent - sent
        await until(lambda expected=expected: market_ws.stats.messages >= expected, what="the tick's frames read")
    raise AssertionError(f"the strategy stated {len(targets)} target(s) in 120 bars: {targets}")


async def post(s: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with s.post(url, json=body, headers=auth()) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize(("market", "ws_api"), [(Market.SPOT, False), (Market.SPOT, True), (Market.USDM, False)],
                         ids=["spot-rest", "spot-ws_api", "usdm-rest"])
async def test_monitor_mode_with_a_read_only_key_streams_reconciles_and_never_sends_an_order(
        tmp_path: Path, monkeypatch, market: Market, ws_api: bool) -> None:
    async with monitor_node(tmp_path, monkeypatch, ws_api=ws_api, market=market, read_only_key=True) as (
            node, emu, clock, url):
        venue = market.default_venue
        targets: list[TargetPosition] = []
        node.bus.subscribe(TargetPosition, targets.append, name="test")
        # Reconciliation ran against the venue and kept the foreign order (no cancel in monitor mode).
        result = node.stack.reconciler.last[venue]
        assert (result.adopted_foreign, result.canceled_foreign) == (1, 0)
        await drive_until_targets(node, emu, clock, targets)
        gate = node.stack.engine.order_gate
        await until(lambda: gate.counts["submit"] >= 1, what="a plan withheld")
        async with aiohttp.ClientSession() as s:
            flatten = await post(s, f"{url}/admin/kill", {"flatten": True, "reason": "test"})
            cancel = await post(s, f"{url}/admin/kill", {"cancel_orders": True})
            async with s.get(f"{url}/status") as resp:
                status = await resp.json()
            async with s.get(f"{url}/metrics") as resp:
                metrics = await resp.text()
            async with s.get(f"{url}/orders?open=true") as resp:
                open_orders = await resp.json()
            halt = await post(s, f"{url}/admin/kill", {"reason": "plain kill"})
        for code, body in (flatten, cancel):
            assert code == 409, body
            assert body["mode"] == "monitor" and "monitor mode" in body["error"]
            assert 'mode = "trade"' in body["hint"] and "restart" in body["hint"]
        assert flatten[1]["action"] == "flatten" and cancel[1]["action"] == "cancel_orders"
        assert halt[0] == 200 and halt[1]["trading_state"] == "HALTED"
        assert status["trading_state"] == "ACTIVE"  # a refused act changed nothing
        assert status["mode"] == "monitor" and status["monitor"]["would_send"]
        assert status["monitor"]["withheld_orders"]["submit"] >= 1
        assert 'nautilus_hmm_node_mode{mode="monitor"} 1.0' in metrics
        assert 'nautilus_hmm_node_mode{mode="trade"} 0.0' in metrics
        assert "manual-1" in str(open_orders)
        # More bars while halted and after: still nothing.
        await drive_until_targets(node, emu, clock, targets, n=3)
        assert account_writes(emu) == {}
        assert emu.new_order_requests == []
        # It did read the venue: open orders, balances or positions, its fills.
        assert sum(n for k, n in emu.request_counts.items() if k.startswith("GET ") and "openOrders" in k) >= 1
        assert [o["clientOrderId"] for o in emu.exchange.open_orders("BTCUSDT")] == ["manual-1"]
        assert node.stack.engine.counts["orders"] == 0


async def test_the_same_setup_in_trade_mode_does_send_orders(tmp_path: Path, monkeypatch) -> None:
    """The control: the emulator's request count is able to see orders from this node."""
    async with monitor_node(tmp_path, monkeypatch, mode="trade") as (node, emu, clock, _url):
        targets: list[TargetPosition] = []
        node.bus.subscribe(TargetPosition, targets.append, name="test")
        assert node.stack.reconciler.last["binance_spot"].canceled_foreign == 1
        await drive_until_targets(node, emu, clock, targets)
        await until(lambda: emu.new_order_requests, what="an order at the emulator")
        assert account_writes(emu).get("POST /api/v3/order", 0) >= 1
        assert account_writes(emu).get("DELETE /api/v3/order", 0) == 1  # the foreign order


async def _started_adapter(emu: BinanceEmulator, bus: Bus, clock: ManualClock, *, read_only: bool) -> BinanceVenue:
    config = BinanceConfig(enabled=True, rest_url=emu.url, ws_url=emu.ws_url, symbols=("BTCUSDT",))
    venue = BinanceVenue(config, emu.market, bus, clock, credentials=Credentials(API_KEY, API_SECRET),
                         options=BinanceOptions(bar_interval_s=60, read_only=read_only))
    await venue.start()
    return venue


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM], ids=["spot", "usdm"])
async def test_a_read_only_adapter_refuses_order_entry_before_any_request(clock: ManualClock, bus: Bus,
                                                                         market: Market) -> None:
    """The venue's own line behind the engine's gate: nothing leaves, not even a signed request."""
    emu = BinanceEmulator(market, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False, read_only_key=True)
    await emu.start()
    venue = await _started_adapter(emu, bus, clock, read_only=True)
    try:
        iid = InstrumentId(venue.name, "BTCUSDT")
        req = OrderRequest("nh-test-1", iid, Side.BUY, OrderType.LIMIT, Decimal("0.01"), Decimal("1000"))
        with pytest.raises(AuthError, match="new_order refused: read-only"):
            await venue.submit_order(req)
        with pytest.raises(AuthError, match="cancel_order refused: read-only"):
            await venue.cancel_order(iid, "nh-test-1")
        with pytest.raises(AuthError, match="cancel_all refused: read-only"):
            await venue.cancel_all(iid)
        assert await venue.open_orders() == []  # reads still work with the read-only key
        assert account_writes(emu) == {} and emu.new_order_requests == []
    finally:
        await venue.stop()
        await emu.stop()


async def test_the_emulator_refuses_a_read_only_keys_order_as_binance_does(clock: ManualClock, bus: Bus) -> None:
    """The control for the read-only key: a trading adapter's order is refused -2015 (nothing placed)."""
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False, read_only_key=True)
    await emu.start()
    venue = await _started_adapter(emu, bus, clock, read_only=False)
    try:
        req = OrderRequest("nh-test-2", InstrumentId(venue.name, "BTCUSDT"), Side.BUY, OrderType.LIMIT,
                           Decimal("0.01"), Decimal("1000"))
        with pytest.raises(AuthError, match="-2015"):
            await venue.submit_order(req)
        assert account_writes(emu) == {"POST /api/v3/order": 1}
        assert emu.exchange.open_orders("BTCUSDT") == []
    finally:
        await venue.stop()
        await emu.stop()


async def test_a_fill_of_someone_elses_order_moves_the_monitors_position(tmp_path: Path, monkeypatch) -> None:
    """Monitoring is real: a trade on the account (not ours) arrives over the user stream and is
    booked, while the monitor itself still sends nothing."""
    async with monitor_node(tmp_path, monkeypatch, read_only_key=True) as (node, emu, clock, url):
        iid = next(iter(node.stack.engine.instruments))
        assert node.stack.portfolio.position_qty(iid) == 0
        _answer, user = emu.exchange.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                "quantity": "0.02", "newClientOrderId": "manual-2"},
                                               clock.time_ns())
        await emu.streams.send_user(user)
        await until(lambda: node.stack.portfolio.position_qty(iid) == Decimal("0.02"), what="the foreign fill booked")
        async with aiohttp.ClientSession() as s, s.get(f"{url}/positions") as resp:
            positions = (await resp.json())["positions"]
        assert [Decimal(p["qty"]) for p in positions if p["instrument_id"] == str(iid)] == [Decimal("0.02")]
        assert account_writes(emu) == {} and emu.new_order_requests == []
