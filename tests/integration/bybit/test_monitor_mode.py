"""A whole node in monitor mode against the Bybit emulator (bybit_linear), both in this process
over loopback on one manual clock, with a read-only API key (the emulator answers any signed
write 10005): the venue starts without touching position mode or leverage, reconciliation runs
and keeps a foreign open order, the strategy sees bars and states targets, admin flatten and
cancel answer 409, and the emulator's request counts show that not one account write (order
create / cancel / cancel-all, set-leverage, switch-mode; REST or trade WebSocket) arrived.
The control (trade mode, a full key): the same counts do see this node's writes.
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
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import TargetPosition
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator
from tests.integration.bybit.adapter_harness import API_KEY, API_SECRET, make_emulator, until
from tests.integration.bybit.test_adapter_read_only import account_writes
from tests.nodeharness import TOKEN, auth

VENUE = "bybit_linear"
CONFIG = """
[node]
state_dir = "{state}"
mode = "{mode}"
[http]
port = 0
[venues.sim]
enabled = false
[venues.bybit_linear]
enabled = true
rest_url = "{rest}"
ws_public_url = "{ws_public}/linear"
ws_private_url = "{ws_private}"
ws_trade_url = "{ws_trade}"
order_entry = "ws_trade"
symbols = ["BTCUSDT"]
[strategy]
kind = "sma_cross"
instruments = ["bybit_linear:BTCUSDT"]
bar_interval_s = 60
[strategy.sma_cross]
fast = 1
slow = 2
quantity = "0.01"
[risk]
initial_state = "ACTIVE"
orders_per_s = 1000.0
order_burst = 1000
stale_data_s = 600.0
[execution]
unknown_orders = "cancel"
"""


@contextlib.asynccontextmanager
async def node_on_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, mode: str, read_only_key: bool,
                           ) -> AsyncIterator[tuple[Node, BybitEmulator, ManualClock, str]]:
    """The emulator (a foreign limit sell resting on it) and a started node pointed at it."""
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_API_KEY", API_KEY)
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_API_SECRET", API_SECRET)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    clock = ManualClock()
    emu = make_emulator(clock, symbols=["BTCUSDT"], unmetered=True, read_only_key=read_only_key)
    await emu.start()
    node: Node | None = None
    try:
        await emu.step(3)
        # Someone else's order on this account, placed on the exchange itself: far above the market.
        ask = emu.exchange.quotes[("linear", "BTCUSDT")][2]
        emu.exchange.create_order({"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Limit",
                                   "qty": "0.01", "price": str(round(float(ask) * 1.05, 1)),
                                   "orderLinkId": "manual-1"}, clock.time_ns())
        path = tmp_path / "config.toml"
        path.write_text(CONFIG.format(state=tmp_path / "state", mode=mode, rest=emu.url, ws_public=emu.ws_public_url,
                                      ws_private=emu.ws_private_url, ws_trade=emu.ws_trade_url))
        node = Node(load_config(str(path)), path, clock=clock, notifier=Notifier(""))
        await node.start()
        yield node, emu, clock, f"http://127.0.0.1:{node.web.bound_port}"
    finally:
        if node is not None:
            await node.stop()
        await emu.stop()


async def drive_until_targets(node: Node, emu: BybitEmulator, clock: ManualClock,
                              targets: list[TargetPosition], n: int = 2) -> None:
    """A minute of market at a time (one 1 m kline closes) until the strategy stated `n` nonzero
    targets. After each tick, waits (bounded) until the adapter has read every market frame the
    emulator wrote (its one public connection)."""
    public_ws = node.stack.venues[VENUE].public.ws
    for _ in range(60):
        if sum(1 for t in targets if t.target_qty != 0) >= n:
            return
        for _ in range(4):  # 15 s steps: the public stream's 60 s staleness watchdog stays quiet
            await clock.advance_settle(15.0)
            sent, read = emu.streams.public_sent, public_ws.stats.messages
            await emu.step(1)
            expected = read + emu.streams.public_sent - sent
            await until(lambda expected=expected: public_ws.stats.messages >= expected, what="the tick's frames read")
    raise AssertionError(f"the strategy stated {len(targets)} target(s) in 60 bars: {targets}")


async def post(s: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with s.post(url, json=body, headers=auth()) as resp:
        return resp.status, await resp.json()


async def test_monitor_mode_with_a_read_only_key_streams_reconciles_and_never_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with node_on_emulator(tmp_path, monkeypatch, mode="monitor", read_only_key=True) as (
            node, emu, clock, url):
        targets: list[TargetPosition] = []
        node.bus.subscribe(TargetPosition, targets.append, name="test")
        result = node.stack.reconciler.last[VENUE]
        assert (result.adopted_foreign, result.canceled_foreign) == (1, 0)  # kept, not cancelled
        assert emu.ws_connects["trade"] == 0 and emu.ws_connects["private"] >= 1
        await drive_until_targets(node, emu, clock, targets)
        gate = node.stack.engine.order_gate
        await until(lambda: gate.counts["submit"] >= 1, what="a plan withheld")
        async with aiohttp.ClientSession() as s:
            flatten = await post(s, f"{url}/admin/kill", {"flatten": True, "reason": "test"})
            cancel = await post(s, f"{url}/admin/kill", {"cancel_orders": True})
            async with s.get(f"{url}/status") as resp:
                status = await resp.json()
        for code, body in (flatten, cancel):
            assert code == 409 and body["mode"] == "monitor" and "monitor mode" in body["error"], body
        assert status["mode"] == "monitor" and status["monitor"]["withheld_orders"]["submit"] >= 1
        # A foreign fill (someone else's market buy) reaches the monitor over the private stream.
        iid = next(iter(node.stack.engine.instruments))
        _result, frames = emu.exchange.create_order({"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                     "orderType": "Market", "qty": "0.02",
                                                     "orderLinkId": "manual-2"}, clock.time_ns())
        await emu.private_send(frames)
        await until(lambda: node.stack.portfolio.position_qty(iid) == Decimal("0.02"), what="the foreign fill booked")
        assert account_writes(emu) == {} and emu.new_order_requests == []
        assert [o["order_link_id"] for o in emu.state()["orders"] if o["status"] == "New"] == ["manual-1"]
        assert node.stack.engine.counts["orders"] == 0


async def test_the_same_setup_in_trade_mode_does_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: with a full key in trade mode the same counts see the node's writes."""
    async with node_on_emulator(tmp_path, monkeypatch, mode="trade", read_only_key=False) as (
            node, emu, clock, _url):
        targets: list[TargetPosition] = []
        node.bus.subscribe(TargetPosition, targets.append, name="test")
        writes = account_writes(emu)
        assert writes.get("POST /v5/position/switch-mode") == 1 and writes.get("POST /v5/position/set-leverage") == 1
        assert node.stack.reconciler.last[VENUE].canceled_foreign == 1
        await drive_until_targets(node, emu, clock, targets)
        await until(lambda: emu.new_order_requests, what="an order at the emulator")
        assert account_writes(emu).get("WS order.create", 0) >= 1
