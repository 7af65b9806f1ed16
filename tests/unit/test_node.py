"""Node wiring: watchdog pings from the loop monitor, heartbeat, give-up policies."""

from __future__ import annotations

import socket

from structlog.testing import capture_logs

from nautilus_hmm.core.lifecycle import GiveUp
from nautilus_hmm.node import EXIT_FATAL, all_message_types
from nautilus_hmm.obs.systemd import Notifier
from tests.nodeharness import running_node


async def test_loop_monitor_pings_the_watchdog_on_every_tick(tmp_path, monkeypatch) -> None:
    path = str(tmp_path / "n.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.setblocking(False)
    def drain() -> list[bytes]:
        out = []
        while True:
            try:
                out.append(rx.recv(4096))
            except BlockingIOError:
                return out

    async with running_node(tmp_path, monkeypatch, notifier=Notifier(path)) as (node, url):
        assert any(d.startswith(b"READY=1") for d in drain())
        await node.clock.advance_settle(5.0)  # 10 ticks of 0.5 s
        assert drain().count(b"WATCHDOG=1") == 10
        assert node.loop_monitor.ticks == 10
    assert drain()[0] == b"STOPPING=1"
    rx.close()


async def test_heartbeat_logs_uptime_trading_state_and_loop_lag(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        with capture_logs() as logs:
            await node.clock.advance_settle(120.0)
        beats = [e for e in logs if e["event"] == "heartbeat"]
        assert len(beats) == 2
        assert beats[0]["trading_state"] == "ACTIVE"  # start-up reconciliation passed
        assert {"uptime_s", "loop_lag_p99_ms", "config_hash"} <= set(beats[0])


async def test_give_up_shutdown_requests_a_non_zero_exit(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        await node._on_give_up("journal", GiveUp.SHUTDOWN, RuntimeError("disk full"))
        assert node._stop_requested.is_set()
        assert node.exit_code == EXIT_FATAL


async def test_give_up_halt_trading_halts_but_keeps_serving(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        node.set_trading_state(node.trading_state.ACTIVE, "test", "test")
        await node._on_give_up("policy", GiveUp.HALT_TRADING, RuntimeError("x"))
        assert node.trading_state.value == "HALTED"
        assert not node._stop_requested.is_set()


def test_all_message_types_include_venue_reports_for_the_sse_filter() -> None:
    names = all_message_types()
    assert {"Fill", "OrderEvent", "TradeTick", "OrderStatusReport", "FillReport", "ConfigApplied"} <= set(names)


async def test_give_up_halt_venue_halts_only_that_venues_instruments(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        node.set_trading_state(node.trading_state.ACTIVE, "test", "test")
        await node._on_give_up("sim", GiveUp.HALT_VENUE, RuntimeError("feed died"))
        gate = node.stack.gate
        assert node.trading_state.value == "ACTIVE"  # other venues trade on
        assert gate.state.value == "ACTIVE"
        assert gate.venue_state("sim").value == "HALTED"
        assert node.status()["risk"]["venues"]["sim"]["state"] == "HALTED"
        metrics = node.metrics.render().decode()
        assert 'venue_trading_state{state="HALTED",venue="sim"} 1.0' in metrics
        assert not node._stop_requested.is_set()


async def test_admin_resume_of_a_venue_lifts_only_that_venues_halt(tmp_path, monkeypatch) -> None:
    from tests.nodeharness import auth, client

    async with running_node(tmp_path, monkeypatch) as (node, url):
        await node._on_give_up("sim", GiveUp.HALT_VENUE, RuntimeError("feed died"))
        async with client() as s:
            async with s.post(f"{url}/admin/resume", json={"venue": "nope"}, headers=auth()) as r:
                assert r.status == 400 and "nope" in (await r.json())["error"]
            async with s.post(f"{url}/admin/resume", json={"venue": "sim", "reason": "feed back"},
                              headers=auth()) as r:
                assert r.status == 200 and (await r.json())["venue_state"] == "ACTIVE"
        assert node.stack.gate.venue_state("sim").value == "ACTIVE"
