"""sd_notify datagrams arrive on the NOTIFY_SOCKET as systemd expects them."""

from __future__ import annotations

import socket
from pathlib import Path

from nautilus_hmm.obs.systemd import Notifier, watchdog_interval_s


def receiver(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2)
    return s, path


def test_ready_reloading_stopping_status_and_watchdog_datagrams(tmp_path: Path) -> None:
    s, path = receiver(tmp_path)
    n = Notifier(path)
    n.ready("trading=HALTED")
    n.reloading()
    n.status("trading=ACTIVE")
    n.watchdog()
    n.stopping()
    got = [s.recv(4096).decode() for _ in range(5)]
    assert got[0] == "READY=1\nSTATUS=trading=HALTED"
    assert got[1].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert got[2] == "STATUS=trading=ACTIVE"
    assert got[3] == "WATCHDOG=1"
    assert got[4] == "STOPPING=1"
    n.close()
    s.close()


def test_notifier_without_socket_is_a_silent_no_op(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert n.ready() is False


def test_watchdog_interval_comes_from_watchdog_usec(monkeypatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval_s() is None


async def test_watchdog_pings_extend_the_start_timeout_only_while_starting(tmp_path: Path) -> None:
    from nautilus_hmm.core.clock import ManualClock
    from nautilus_hmm.obs.monitor import LoopLagMonitor

    s, path = receiver(tmp_path)
    clock = ManualClock()
    mon = LoopLagMonitor(clock, 0.5, Notifier(path), lambda lag: None)
    import asyncio

    task = asyncio.ensure_future(mon.run())
    mon.starting = True
    await clock.advance_settle(0.5)
    assert s.recv(4096).decode() == "WATCHDOG=1\nEXTEND_TIMEOUT_USEC=30000000"
    mon.starting = False
    await clock.advance_settle(0.5)
    assert s.recv(4096).decode() == "WATCHDOG=1"
    task.cancel()
    s.close()
