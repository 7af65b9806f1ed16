"""Monitor mode on a whole node (sim venue, manual clock, loopback HTTP): which admin acts
answer 409 and that they change nothing, what /status, /metrics and /openapi.json say, the
audit of a refused act, and a reload that tries to switch the mode."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from nautilus_hmm.config import load_config
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier
from tests.nodeharness import TOKEN, auth

CONFIG = '[strategy]\nkind = "sma_cross"\n[node]\nstate_dir = "{state}"\nmode = "{mode}"\n[http]\nport = 0\n'


@contextlib.asynccontextmanager
async def node_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> AsyncIterator[tuple[Node, str, Path]]:
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state", mode=mode))
    node = Node(load_config(str(path)), path, clock=ManualClock(), notifier=Notifier(""))
    await node.start()
    try:
        yield node, f"http://127.0.0.1:{node.web.bound_port}", path
    finally:
        await node.stop()


async def kill(s: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with s.post(f"{url}/admin/kill", json=body, headers=auth()) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize(("body", "action"), [
    ({"flatten": True}, "flatten"),
    ({"cancel_orders": True}, "cancel_orders"),
    ({"flatten": True, "cancel_orders": True, "reason": "both"}, "flatten"),
])
async def test_a_kill_that_would_send_or_cancel_answers_409_and_changes_nothing(tmp_path, monkeypatch, body,
                                                                                action) -> None:
    async with node_in(tmp_path, monkeypatch, "monitor") as (node, url, _), aiohttp.ClientSession() as s:
        before = node.trading_state
        code, answer = await kill(s, url, body)
        async with s.get(f"{url}/metrics") as resp:
            metrics = await resp.text()
        await node.stack.journal.flush()
        audit = node.stack.journal.audit_rows()
    assert code == 409
    assert answer == {"error": f"{action} refused: the node is in monitor mode and never sends or cancels orders",
                      "mode": "monitor", "action": action,
                      "hint": 'set [node] mode = "trade" in the config file and restart the daemon '
                              "(mode is restart-only)"}
    assert node.trading_state is before and node.stack.engine.flattening is False
    assert 'admin_actions_total{action="kill",result="error_409"} 1.0' in metrics
    assert [(a.action, a.result) for a in audit] == [("kill", "error_409")]


@pytest.mark.parametrize("body", [{}, {"reason": "x"}, {"flatten": False, "cancel_orders": False}])
async def test_a_plain_kill_reduce_and_resume_move_the_state_in_monitor_mode(tmp_path, monkeypatch, body) -> None:
    async with node_in(tmp_path, monkeypatch, "monitor") as (_node, url, _), aiohttp.ClientSession() as s:
        code, answer = await kill(s, url, body)
        assert (code, answer) == (200, {"trading_state": "HALTED"})
        for act, state in (("reduce", "REDUCING"), ("resume", "ACTIVE")):
            async with s.post(f"{url}/admin/{act}", json={}, headers=auth()) as resp:
                assert resp.status == 200 and (await resp.json())["trading_state"] == state


async def test_a_malformed_kill_is_still_a_400_naming_the_field(tmp_path, monkeypatch) -> None:
    async with node_in(tmp_path, monkeypatch, "monitor") as (_node, url, _), aiohttp.ClientSession() as s:
        code, answer = await kill(s, url, {"flatten": "yes"})
    assert code == 400 and "flatten" in answer["error"]


@pytest.mark.parametrize("mode", ["trade", "monitor"])
async def test_status_and_metrics_show_the_mode(tmp_path, monkeypatch, mode) -> None:
    async with node_in(tmp_path, monkeypatch, mode) as (_node, url, _), aiohttp.ClientSession() as s:
        async with s.get(f"{url}/status") as resp:
            status = await resp.json()
        async with s.get(f"{url}/metrics") as resp:
            metrics = await resp.text()
        async with s.get(f"{url}/openapi.json") as resp:
            api = await resp.json()
    other = "trade" if mode == "monitor" else "monitor"
    assert status["mode"] == mode and ("monitor" in status) is (mode == "monitor")
    assert f'nautilus_hmm_node_mode{{mode="{mode}"}} 1.0' in metrics
    assert f'nautilus_hmm_node_mode{{mode="{other}"}} 0.0' in metrics
    assert 'monitor_withheld_total{action="submit"} 0.0' in metrics
    assert "409" in api["paths"]["/admin/kill"]["post"]["responses"]


async def test_a_reload_cannot_switch_monitor_to_trade(tmp_path, monkeypatch) -> None:
    async with node_in(tmp_path, monkeypatch, "monitor") as (node, url, path), aiohttp.ClientSession() as s:
        path.write_text(CONFIG.format(state=tmp_path / "state", mode="trade"))
        async with s.post(f"{url}/admin/reload", json={}, headers=auth()) as resp:
            code, answer = resp.status, await resp.json()
        assert code == 409 and answer["restart_required"] == ["node.mode"]
        assert node.stack.engine.order_gate.monitor and node.config.current.node.mode == "monitor"


async def test_the_heartbeat_and_the_systemd_status_say_monitor(tmp_path, monkeypatch) -> None:
    async with node_in(tmp_path, monkeypatch, "monitor") as (node, _url, _):
        with capture_logs() as logs:
            await node.clock.advance_settle(60.0)
        (beat,) = [e for e in logs if e["event"] == "heartbeat"]
        assert beat["mode"] == "monitor"
        assert node._sd_status().startswith(f"trading={node.trading_state.value} mode=monitor config=")
