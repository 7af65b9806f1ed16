"""Loop-lag monitor (which also pings the systemd watchdog) and the heartbeat log line."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import structlog

from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.obs.systemd import Notifier

log = structlog.get_logger("monitor")


class LoopLagMonitor(BaseComponent):
    """Measures how late the loop wakes a timer; pings the watchdog on every wake.

    The ping comes from the loop itself, so a blocked loop stops the pings and systemd's
    WatchdogSec restarts the process. A lag above `unhealthy_lag_s` marks the monitor
    unhealthy (readiness fails) until the loop recovers.

    While `starting` is set (the node sets it until READY=1), every ping also extends
    systemd's start timeout by `START_EXTEND_S`: a start that waits out a venue ban or
    fetches history keeps going as long as the loop is alive (each of those waits is
    bounded), and a start whose loop is stuck still times out within START_EXTEND_S.
    """

    START_EXTEND_S = 30.0

    name = "loop_monitor"

    def __init__(
        self,
        clock: Clock,
        interval_s: float,
        notifier: Notifier,
        observe: Callable[[float], None],
        unhealthy_lag_s: float = 1.0,
        window: int = 240,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._interval_s = interval_s
        self._notifier = notifier
        self._observe = observe
        self._unhealthy_lag_s = unhealthy_lag_s
        self.samples: deque[float] = deque(maxlen=window)
        self.ticks = 0
        self.starting = False

    async def run(self) -> None:
        """Sleep an interval, measure how late we woke, ping the watchdog, repeat."""
        clock = self._clock
        while True:
            deadline = clock.monotonic() + self._interval_s
            await clock.sleep(self._interval_s)
            lag = max(0.0, clock.monotonic() - deadline)
            self.samples.append(lag)
            self._observe(lag)
            self.ticks += 1
            self._notifier.watchdog(self.START_EXTEND_S if self.starting else None)
            ok = lag < self._unhealthy_lag_s
            if ok != self._health.ok:
                self._health = Health(ok, "" if ok else f"event loop lag {lag:.3f}s")

    def lag_quantile_s(self, q: float) -> float:
        """Quantile of recent lag samples (0 when none)."""
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


class Heartbeat(BaseComponent):
    """Logs one `heartbeat` line per interval with uptime, trading state and loop lag."""

    name = "heartbeat"

    def __init__(self, clock: Clock, interval_s: Callable[[], float], fields: Callable[[], dict[str, object]]) -> None:
        super().__init__()
        self._clock = clock
        self._interval_s = interval_s
        self._fields = fields
        self.beats = 0

    async def run(self) -> None:
        """Log, sleep, repeat (the interval is re-read each time: live-reloadable)."""
        while True:
            await self._clock.sleep(self._interval_s())
            self.beats += 1
            log.info("heartbeat", **self._fields())
            await asyncio.sleep(0)
