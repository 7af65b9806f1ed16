"""sd_notify over `$NOTIFY_SOCKET`: READY, RELOADING, STOPPING, STATUS, WATCHDOG.

A no-op when not started by systemd. The watchdog is pinged by the loop-lag monitor,
never by a thread: a blocked event loop stops the pings and systemd restarts us.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger("systemd")


class Notifier:
    """Sends sd_notify datagrams; silently does nothing without NOTIFY_SOCKET."""

    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._addr: str | bytes | None = None
        self._sock: socket.socket | None = None
        if path:
            self._addr = "\0" + path[1:] if path.startswith("@") else path
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        self.sent = 0

    @property
    def enabled(self) -> bool:
        """True when a notify socket is configured."""
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send `KEY=VALUE` lines as one datagram; False when not sent."""
        if self._sock is None or self._addr is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self._addr)
        except OSError as exc:
            log.warning("sd_notify_failed", error=repr(exc))
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        """READY=1 (after start, and after a reload)."""
        return self.notify("READY=1", *( [f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """RELOADING=1 with the MONOTONIC_USEC systemd >= 253 asks for."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        """STOPPING=1."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """STATUS=<text> (shown by systemctl status)."""
        return self.notify(f"STATUS={text}")

    def watchdog(self, extend_start_s: float | None = None) -> bool:
        """WATCHDOG=1; while starting, also EXTEND_TIMEOUT_USEC: the start may take `extend_start_s` more."""
        if extend_start_s is None:
            return self.notify("WATCHDOG=1")
        return self.notify("WATCHDOG=1", f"EXTEND_TIMEOUT_USEC={int(extend_start_s * 1_000_000)}")

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """The watchdog timeout systemd set for this process (WATCHDOG_USEC), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return int(usec) / 1_000_000
    except ValueError:
        return None
