"""Components and the supervisor that owns every long-lived task.

A component has `start()` (acquire resources; failure aborts startup), `run()` (its
long-lived work; may return early or raise), `stop()` (release resources) and
`health()`. The supervisor starts components in order, runs each `run()` in a named,
strongly referenced task, restarts a crashed `run()` with exponential backoff + jitter
inside a restart budget, and applies the component's give-up policy once the budget is
spent. Stop is in reverse start order.

Timing uses the injected clock; tests drive backoffs with a ManualClock.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import structlog

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.message import ComponentStateChanged

log = structlog.get_logger("supervisor")


@dataclass(frozen=True, slots=True)
class Health:
    """A component's view of itself: `ok` gates readiness; `detail` says why not."""

    ok: bool
    detail: str = ""
    info: dict[str, object] = field(default_factory=dict)


class Component(Protocol):
    """A long-lived part of the daemon."""

    name: str

    async def start(self) -> None:
        """Acquire resources. Raising aborts node startup."""
        ...

    async def run(self) -> None:
        """Do the long-lived work until cancelled. Return or raise to be restarted."""
        ...

    async def stop(self) -> None:
        """Release resources. Must be safe to call after a failed start."""
        ...

    def health(self) -> Health:
        """Current health."""
        ...


class BaseComponent:
    """Convenience base: no-op lifecycle, healthy unless `_health` says otherwise."""

    name = "component"

    def __init__(self) -> None:
        self._health = Health(True)

    async def start(self) -> None:
        """No resources by default."""

    async def run(self) -> None:
        """Nothing long-lived by default: park until cancelled."""
        await asyncio.Event().wait()

    async def stop(self) -> None:
        """Nothing to release by default."""

    def health(self) -> Health:
        """The last health the component recorded."""
        return self._health


class GiveUp(str, Enum):
    """What happens when a component's restart budget is spent."""

    SHUTDOWN = "shutdown"  # stop the process with a non-zero exit; systemd restarts it
    HALT_TRADING = "halt_trading"  # trading state → HALTED, the process keeps serving
    HALT_VENUE = "halt_venue"  # that venue's breaker opens; other venues trade on
    IGNORE = "ignore"  # log and leave it stopped (non-essential components)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Restart budget and backoff for one component."""

    max_restarts: int = 5
    window_s: float = 300.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.2  # ± fraction of the backoff
    give_up: GiveUp = GiveUp.SHUTDOWN

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Backoff before restart number `attempt` (1-based): exponential, capped, jittered."""
        base = min(self.backoff_max_s, self.backoff_initial_s * (2 ** (attempt - 1)))
        return max(0.0, base * (1.0 + rng.uniform(-self.jitter, self.jitter)))


GiveUpHandler = Callable[[str, GiveUp, BaseException | None], Awaitable[None] | None]


class _Child:
    __slots__ = ("component", "crashes", "gave_up", "last_error", "policy", "restarts", "state", "task")

    def __init__(self, component: Component, policy: RestartPolicy) -> None:
        self.component = component
        self.policy = policy
        self.task: asyncio.Task[None] | None = None
        self.crashes: deque[float] = deque()
        self.restarts = 0
        self.state = "created"
        self.last_error = ""
        self.gave_up = False


class Supervisor:
    """Starts, watches, restarts and stops components."""

    def __init__(
        self,
        clock: Clock,
        bus: Bus,
        on_give_up: GiveUpHandler,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._bus = bus
        self._on_give_up = on_give_up
        self._rng = rng or random.Random()
        self._children: list[_Child] = []
        self._started: list[_Child] = []
        self._stopping = False

    def add(self, component: Component, policy: RestartPolicy | None = None) -> None:
        """Register a component; start order is registration order."""
        if any(c.component.name == component.name for c in self._children):
            raise ValueError(f"duplicate component name {component.name!r}")
        self._children.append(_Child(component, policy or RestartPolicy()))

    @property
    def components(self) -> list[Component]:
        """Registered components in start order."""
        return [c.component for c in self._children]

    def child_state(self, name: str) -> dict[str, object]:
        """State, restart count and last error of one component."""
        for c in self._children:
            if c.component.name == name:
                return {"state": c.state, "restarts": c.restarts, "last_error": c.last_error}
        raise KeyError(name)

    def restarts(self) -> dict[str, int]:
        """Restart count per component."""
        return {c.component.name: c.restarts for c in self._children}

    def is_running(self, name: str) -> bool:
        """Whether the component's run task is alive."""
        for c in self._children:
            if c.component.name == name:
                return c.state in ("running", "backoff")
        return False

    async def start_all(self) -> None:
        """Start every component in order; on failure stop those already started and raise."""
        for child in self._children:
            name = child.component.name
            try:
                await child.component.start()
            except BaseException as exc:
                child.state = "failed"
                child.last_error = repr(exc)
                self._emit(name, "failed", repr(exc))
                # Info, not error: the exception goes to the caller, which reports the failed
                # start in one line (node.run_node); an error here would say it twice.
                log.info("component_start_failed", component=name, error=repr(exc))
                await self.stop_all()
                raise
            self._started.append(child)
            child.state = "running"
            child.task = asyncio.create_task(self._watch(child), name=f"component:{name}")
            self._emit(name, "started")
            log.info("component_started", component=name)

    async def stop_all(self, timeout_s: float | None = None) -> None:
        """Stop started components in reverse order: cancel run(), then stop()."""
        self._stopping = True
        while self._started:
            child = self._started.pop()
            name = child.component.name
            if child.task is not None and not child.task.done():
                child.task.cancel()
                try:
                    await child.task
                except BaseException:
                    pass
            try:
                await child.component.stop()
            except Exception as exc:
                log.error("component_stop_failed", component=name, error=repr(exc))
            child.state = "stopped"
            self._emit(name, "stopped")
            log.info("component_stopped", component=name)

    async def _watch(self, child: _Child) -> None:
        comp = child.component
        while True:
            try:
                await comp.run()
                error: BaseException | None = None
                if self._stopping:
                    return
                detail = "run() returned"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
                detail = repr(exc)
                log.error("component_crashed", component=comp.name, error=detail, exc_info=exc)
            child.last_error = detail
            now = self._clock.monotonic()
            child.crashes.append(now)
            while child.crashes and now - child.crashes[0] > child.policy.window_s:
                child.crashes.popleft()
            if len(child.crashes) > child.policy.max_restarts:
                child.state = "gave_up"
                child.gave_up = True
                self._emit(comp.name, "gave_up", detail)
                log.critical(
                    "component_gave_up",
                    component=comp.name,
                    policy=child.policy.give_up.value,
                    restarts=child.restarts,
                    error=detail,
                )
                result = self._on_give_up(comp.name, child.policy.give_up, error)
                if asyncio.iscoroutine(result):
                    await result
                return
            delay = child.policy.backoff_s(len(child.crashes), self._rng)
            child.state = "backoff"
            self._emit(comp.name, "crashed", detail)
            log.warning("component_restart_scheduled", component=comp.name, backoff_s=round(delay, 3))
            await self._clock.sleep(delay)
            child.restarts += 1
            child.state = "running"
            self._emit(comp.name, "restarted", f"restart {child.restarts}")

    def _emit(self, name: str, state: str, detail: str = "") -> None:
        now = self._clock.time_ns()
        self._bus.publish(
            ComponentStateChanged(ts_event_ns=now, ts_init_ns=now, component=name, state=state, detail=detail)
        )
