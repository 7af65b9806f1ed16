"""Pacing of requests to IB Gateway, on an injected clock.

* `MessagePacer`: every message to the Gateway takes a token from a bucket of
  `max_msgs_per_s` tokens a second (burst the same): IB disconnects a client that sends
  more than 50 messages a second. A request waits for its token; the waits are counted
  (`stats()`, exported as metrics through the adapter's health and metrics snapshot).
  ib_async keeps its own throttle at the same rate as a backstop for the messages it
  sends by itself (start-up sync), which this bucket does not see.
* `HistoricalPacer`: IB's historical-data rules: no identical request within 15 s, no
  more than 5 requests for one contract within 2 s, no more than 60 requests in any
  10 minutes. A request waits until all three allow it; after a pacing violation (162)
  the next request waits `violation_backoff_s`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from nautilus_hmm.core.clock import Clock
from nautilus_hmm.risk.rails import TokenBucket

HIST_IDENTICAL_S = 15.0
HIST_SAME_CONTRACT_N = 5
HIST_SAME_CONTRACT_S = 2.0
HIST_WINDOW_N = 60
HIST_WINDOW_S = 600.0


class MessagePacer:
    """A token bucket on the clock; `await acquire()` before every message."""

    def __init__(self, clock: Clock, max_msgs_per_s: float, burst: int | None = None) -> None:
        self.clock = clock
        self.rate_per_s = float(max_msgs_per_s)
        self.bucket = TokenBucket(self.rate_per_s, float(burst or max_msgs_per_s), clock.monotonic())
        self.sent = 0
        self.waits = 0
        self.waited_s = 0.0
        self._recent: deque[float] = deque()  # send times of the last minute

    async def acquire(self) -> None:
        """Wait for a token (none: sleep until the next one is due), then take it."""
        waited = False
        while not self.bucket.try_take(self.clock.monotonic()):
            waited = True
            delay = (1.0 - self.bucket.tokens) / self.rate_per_s
            self.waited_s += delay
            await self.clock.sleep(max(delay, 1e-4))
        if waited:
            self.waits += 1
        self.sent += 1
        now = self.clock.monotonic()
        self._recent.append(now)
        if len(self._recent) > 4 * 60 * self.rate_per_s:
            self._trim(now)

    def _trim(self, now: float) -> None:
        recent = self._recent
        while recent and now - recent[0] >= 60.0:
            recent.popleft()

    def sent_last_minute(self) -> int:
        """Messages sent in the last 60 s (the metrics' 'weight used')."""
        self._trim(self.clock.monotonic())
        return len(self._recent)

    def stats(self) -> dict[str, Any]:
        """Messages paced, how many waited and how long in all, tokens left now."""
        tokens = self.bucket.available(self.clock.monotonic())
        return {"rate_per_s": self.rate_per_s, "sent": self.sent, "sent_last_minute": self.sent_last_minute(),
                "waits": self.waits, "waited_s": round(self.waited_s, 3), "tokens": round(tokens, 2)}


class HistoricalPacer:
    """IB's historical-data pacing rules (module docstring)."""

    def __init__(self, clock: Clock, violation_backoff_s: float = 60.0) -> None:
        self.clock = clock
        self.violation_backoff_s = violation_backoff_s
        self._all: deque[float] = deque()
        self._by_contract: dict[Any, deque[float]] = {}
        self._identical: dict[Any, float] = {}
        self._not_before_s = 0.0
        self.requests = 0
        self.waits = 0
        self.waited_s = 0.0
        self.violations = 0

    def delay_s(self, key: Any, contract_key: Any) -> float:
        """How long a request `key` (for `contract_key`) must wait now (0: it may go)."""
        now = self.clock.monotonic()
        while self._all and now - self._all[0] >= HIST_WINDOW_S:
            self._all.popleft()
        waits = [self._not_before_s - now]
        if len(self._all) >= HIST_WINDOW_N:
            waits.append(self._all[0] + HIST_WINDOW_S - now)
        recent = self._by_contract.get(contract_key)
        if recent is not None:
            while recent and now - recent[0] >= HIST_SAME_CONTRACT_S:
                recent.popleft()
            if len(recent) >= HIST_SAME_CONTRACT_N:
                waits.append(recent[0] + HIST_SAME_CONTRACT_S - now)
        last = self._identical.get(key)
        if last is not None:
            waits.append(last + HIST_IDENTICAL_S - now)
        return max(0.0, *waits)

    async def acquire(self, key: Any, contract_key: Any) -> None:
        """Wait until the request may go, then record it."""
        delay = self.delay_s(key, contract_key)
        if delay > 0:
            self.waits += 1
        while delay > 0:
            self.waited_s += delay
            await self.clock.sleep(delay)
            delay = self.delay_s(key, contract_key)
        now = self.clock.monotonic()
        self._all.append(now)
        self._by_contract.setdefault(contract_key, deque()).append(now)
        self._identical[key] = now
        self.requests += 1

    def violation(self) -> None:
        """IB said 162 pacing violation: nothing goes for `violation_backoff_s`."""
        self.violations += 1
        self._not_before_s = self.clock.monotonic() + self.violation_backoff_s

    def stats(self) -> dict[str, Any]:
        """Requests, waits, seconds waited, violations."""
        return {"requests": self.requests, "waits": self.waits, "waited_s": round(self.waited_s, 3),
                "violations": self.violations}
