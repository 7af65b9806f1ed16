"""A whole node in monitor mode against the Binance emulator, both in this process over
loopback on one manual clock: the venue connects (REST, market and user streams),
reconciliation runs and tracks a foreign open order, the strategy sees bars and states
targets, admin flatten and cancel answer 409, and the emulator's own request log shows that
not one order-entry request (new order, cancel, cancel-all; REST or WebSocket API) arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nautilus_hmm.config import load_config
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import TargetPosition
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier
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
[venues.binance_spot]
enabled = true
rest_url = "{rest}"
ws_url = "{ws}"
{ws_api}
symbols = ["BTCUSDT"]
[strategy]
kind = "sma_cross"
instruments = ["binance_spot:BTCUSDT"]
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
# Every order-entry route of the emulator (REST and WebSocket API); reads are allowed.
ORDER_ENTRY = ("POST /api/v3/order", "DELETE /api/v3/order", "DELETE /api/v3/openOrders", "POST /api/v3/order/test",
               "WS order.place", "WS order.cancel", "WS order.cancelReplace", "WS openOrders.cancelAll")


def order_entry_requests(emu: BinanceEmulator) -> dict[str, int]:
    """Order-entry requests the emulator received, by route (empty: none)."""
    counts = emu.request_counts
    seen = {k: n for k, n in counts.items() if k in ORDER_ENTRY or k.startswith(("WS order.", "WS openOrders.cancel"))}
    return {k: n for k, n in seen.items() if n}


@contextlib.asynccontextmanager
async def monitor_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, mode: str = "monitor",
                       ws_api: bool = False) -> AsyncIterator[tuple[Node, BinanceEmulator, ManualClock, str]]:
    """The emulator (with a foreign open order resting on it) and a started node pointed at it."""
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_SECRET", API_SECRET)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    clock = ManualClock()
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False, unmetered=True)
    await emu.start()
    node: Node | None = None
    try:
        await emu.step(3)
        # Placed on the exchange itself, not over the wire: someone else's order on this account.
        # A sell far above the market: it rests (and the engine counts it when planning).
        ask = emu.exchange.quotes["BTCUSDT"][2]
        emu.exchange.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                                "quantity": "0.01", "price": str(round(float(ask) * 1.05, 2)),
                                "newClientOrderId": "manual-1"}, clock.time_ns())
        path = tmp_path / "config.toml"
        path.write_text(CONFIG.format(state=tmp_path / "state", mode=mode, rest=emu.url, ws=emu.ws_url,
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
    """Tick the emulator's market a second at a time until the strategy stated `n` nonzero targets."""
    for _ in range(120):
        if sum(1 for t in targets if t.target_qty != 0) >= n:
            return
        await clock.advance_settle(1.0)
        await emu.step(2)
        await asyncio.sleep(0.01)  # the market stream's frames reach the adapter over loopback
    raise AssertionError(f"the strategy stated {len(targets)} target(s) in 120 bars: {targets}")


async def post(s: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with s.post(url, json=body, headers=auth()) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("ws_api", [False, True], ids=["rest", "ws_api"])
async def test_monitor_mode_streams_reconciles_and_never_sends_an_order(tmp_path: Path, monkeypatch, ws_api) -> None:
    async with monitor_node(tmp_path, monkeypatch, ws_api=ws_api) as (node, emu, clock, url):
        targets: list[TargetPosition] = []
        node.bus.subscribe(TargetPosition, targets.append, name="test")
        # Reconciliation ran against the venue and kept the foreign order (no cancel in monitor mode).
        result = node.stack.reconciler.last["binance_spot"]
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
        assert status["mode"] == "monitor" and status["monitor"]["would_send"]
        assert status["monitor"]["withheld_orders"]["submit"] >= 1
        assert 'nautilus_hmm_node_mode{mode="monitor"} 1.0' in metrics
        assert 'nautilus_hmm_node_mode{mode="trade"} 0.0' in metrics
        assert "manual-1" in str(open_orders)
        # More bars while halted and after: still nothing.
        await drive_until_targets(node, emu, clock, targets, n=3)
        assert order_entry_requests(emu) == {}
        assert emu.new_order_requests == []
        assert emu.request_counts["GET /api/v3/openOrders"] >= 1  # it did read the venue
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
        assert order_entry_requests(emu).get("POST /api/v3/order", 0) >= 1
        assert order_entry_requests(emu).get("DELETE /api/v3/order", 0) == 1  # the foreign order
