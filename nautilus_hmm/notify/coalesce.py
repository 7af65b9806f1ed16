"""Coalescing and rate limiting of one channel's notices (pure: time is passed in, seconds).

Coalescing rule, per event class of a channel:
  * quiet class: the first notice waits `gather_s` for others of its class; what arrived
    by then goes out as one message;
  * after a message of a class went out, the class is hot for `window_s`: notices arriving
    meanwhile are held and go out as one message when the window ends ("1000 risk denials
    in 60 s, e.g. ..."), which starts a new window; a window that ends empty makes the
    class quiet again.
So a storm of any size costs one message per window per class, and a lone event is out
within `gather_s`.

Rate limit: a token bucket (`rate_per_min`, `burst`) per channel; a message that finds no
token waits in the channel's outbox (bounded: the oldest is dropped and counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nautilus_hmm.notify.events import PLURALS, Notice

_SEVERITY_RANK = {"info": 0, "success": 0, "warning": 1, "failure": 2}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready for a channel: `merged` notices went into it; `attempt` counts sends tried."""

    channel: str
    event_class: str
    title: str
    body: str
    severity: str
    merged: int = 1
    attempt: int = 0


@dataclass(slots=True)
class _Batch:
    started_s: float  # the window start (first arrival when quiet, the last flush when hot)
    flush_at_s: float
    count: int = 0
    examples: list[Notice] = field(default_factory=list)
    severity: str = "info"


class Coalescer:
    """Merges one channel's notices per event class (see the module docstring)."""

    def __init__(self, channel: str, gather_s: float, window_s: float, examples: int) -> None:
        self.channel = channel
        self.gather_s = gather_s
        self.window_s = window_s
        self.examples = examples
        self._batches: dict[str, _Batch] = {}
        self._hot_until_s: dict[str, float] = {}
        self._last_flush_s: dict[str, float] = {}
        self.coalesced = 0  # notices merged into another (a message of n notices adds n - 1)

    def add(self, notice: Notice, now_s: float) -> None:
        """Hold `notice` until its class's batch is due."""
        cls = notice.event_class
        batch = self._batches.get(cls)
        if batch is None:
            hot_until = self._hot_until_s.get(cls, float("-inf"))
            if now_s < hot_until:
                batch = _Batch(self._last_flush_s[cls], hot_until)
            else:
                batch = _Batch(now_s, now_s + self.gather_s)
            self._batches[cls] = batch
        batch.count += 1
        if len(batch.examples) < self.examples:
            batch.examples.append(notice)
        if _SEVERITY_RANK.get(notice.severity, 0) > _SEVERITY_RANK.get(batch.severity, 0):
            batch.severity = notice.severity

    def next_due_s(self) -> float | None:
        """When the earliest held batch is due (None when nothing is held)."""
        return min((b.flush_at_s for b in self._batches.values()), default=None)

    def due(self, now_s: float, force: bool = False) -> list[Outgoing]:
        """The messages of every batch due at `now_s` (all of them when `force`)."""
        out: list[Outgoing] = []
        for cls, batch in list(self._batches.items()):
            if not force and batch.flush_at_s > now_s:
                continue
            del self._batches[cls]
            self._hot_until_s[cls] = now_s + self.window_s
            self._last_flush_s[cls] = now_s
            out.append(self._message(cls, batch, now_s))
        return out

    def _message(self, cls: str, batch: _Batch, now_s: float) -> Outgoing:
        if batch.count == 1:
            n = batch.examples[0]
            return Outgoing(self.channel, cls, n.title, n.body, n.severity)
        self.coalesced += batch.count - 1
        span_s = max(now_s - batch.started_s, 0.0)
        noun = PLURALS.get(cls, cls)
        shown = "; ".join(e.body for e in batch.examples)
        body = f"{batch.count} {noun} in {span_s:.0f} s, e.g. {shown}"
        return Outgoing(self.channel, cls, f"{batch.count} {noun}", body, batch.severity, merged=batch.count)


class TokenBucket:
    """`rate_per_s` tokens a second up to `burst`; one send takes one token."""

    def __init__(self, rate_per_s: float, burst: int, now_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at_s = now_s

    def _refill(self, now_s: float) -> None:
        if now_s > self._at_s:
            self._tokens = min(self.burst, self._tokens + (now_s - self._at_s) * self.rate_per_s)
            self._at_s = now_s

    def try_take(self, now_s: float) -> bool:
        """Take a token if one is there."""
        self._refill(now_s)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def ready_at_s(self, now_s: float) -> float:
        """When the next token is there (`now_s` if it is now)."""
        self._refill(now_s)
        if self._tokens >= 1.0:
            return now_s
        return now_s + (1.0 - self._tokens) / self.rate_per_s


def retry_delay_s(attempt: int, initial_s: float, max_s: float) -> float:
    """Delay before retry `attempt` (1-based): doubling from `initial_s`, capped at `max_s`."""
    return min(max_s, initial_s * 2.0 ** (attempt - 1))
