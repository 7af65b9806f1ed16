"""The in-process pub/sub bus.

Two kinds of subscriber:

* **Handlers** — plain functions called synchronously, in subscription order, inside
  `publish`. They are the hot path (tick → strategy → risk → order). Each is isolated:
  an exception is logged and counted and never reaches the publisher or the other
  handlers.
* **Queues** — for slow consumers (SSE clients, notifications, the journal writer). A
  bounded queue with an explicit overflow policy:
  - `DROP_OLDEST`: when full, the oldest *non-critical* message is dropped (counted);
    critical messages (orders, fills, control) are never dropped, so a queue full of
    critical messages grows past its bound rather than lose one.
  - `DISCONNECT`: when full, the subscription is closed (counted); the consumer sees
    the end of the stream and must resubscribe. Used for SSE: a slow client is cut,
    never buffered without bound.

Dispatch is by exact message type through a per-type tuple cache, rebuilt on
(un)subscribe, so `publish` costs one dict lookup plus the calls.

A handler subscribed with `deferred=True` (the trading log: a line written to a pipe costs
tens of µs) is not called inside `publish` but three event-loop hops later, in publish
order, with the same isolation: after the callbacks that were ready when the message was
published, so an order that the same tick planned is on the wire before the line about it
is formatted. Without a running loop (a backtest, sync code) it is called at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

import structlog

from nautilus_hmm.core.message import Message

log = structlog.get_logger("bus")

Handler = Callable[[Any], None]
# A type's dispatch entry: handlers, queues, publish counter, deferred handlers.
_Entry = tuple[tuple[tuple[str, Handler], ...], tuple["QueueSubscription", ...], list[int],
               tuple[tuple[str, Handler], ...]]


# Loop hops before deferred work runs: behind the task that journals and sends an order,
# behind the task that step starts (a REST request under its timeout), and one more.
OFF_HOT_PATH_HOPS = 3


def call_after_hops(loop: asyncio.AbstractEventLoop, hops: int, callback: Callable[[], None]) -> None:
    """Run `callback` after `hops` trips to the back of the loop's ready queue (hops >= 1):
    behind everything ready now and what that makes ready, `hops` levels deep."""
    if hops > 1:
        loop.call_soon(call_after_hops, loop, hops - 1, callback)
    else:
        loop.call_soon(callback)


class Overflow(str, Enum):
    """What a bounded queue subscriber does when it is full."""

    DROP_OLDEST = "drop_oldest"
    DISCONNECT = "disconnect"


class BusStats:
    """Counters the metrics layer exports (kept here so the bus has no Prometheus import)."""

    __slots__ = ("_counts", "delivered", "dropped", "handler_errors")

    def __init__(self, counts: dict[type, list[int]]) -> None:
        self._counts = counts  # per message class, shared with the bus's dispatch entries
        self.delivered: dict[str, int] = {}  # by subscriber name
        self.dropped: dict[str, int] = {}  # by subscriber name
        self.handler_errors: dict[str, int] = {}  # by subscriber name

    @property
    def published(self) -> dict[str, int]:
        """Messages published so far, by type name."""
        return {cls.__name__: c[0] for cls, c in self._counts.items() if c[0]}


class QueueSubscription:
    """A bounded queue of messages for one slow consumer. Iterate it with `async for`."""

    def __init__(
        self,
        bus: Bus,
        name: str,
        types: frozenset[type] | None,
        maxsize: int,
        overflow: Overflow,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"queue subscriber {name!r}: maxsize must be >= 1, got {maxsize}")
        self.name = name
        self.types = types
        self.maxsize = maxsize
        self.overflow = overflow
        self.closed = False
        self.close_reason = ""
        self._bus = bus
        self._items: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.on_close: Callable[[str], None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, msg: Message) -> None:
        """Enqueue `msg` applying the overflow policy (called by the bus)."""
        if self.closed:
            return
        stats = self._bus.stats
        if len(self._items) >= self.maxsize:
            if self.overflow is Overflow.DISCONNECT:
                stats.dropped[self.name] = stats.dropped.get(self.name, 0) + 1
                self.close(f"queue full ({self.maxsize} messages): consumer too slow")
                return
            if not self._drop_oldest_droppable() and not msg.critical:
                stats.dropped[self.name] = stats.dropped.get(self.name, 0) + 1
                return
        self._items.append(msg)
        stats.delivered[self.name] = stats.delivered.get(self.name, 0) + 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _drop_oldest_droppable(self) -> bool:
        for i, queued in enumerate(self._items):
            if not queued.critical:
                del self._items[i]
                stats = self._bus.stats
                stats.dropped[self.name] = stats.dropped.get(self.name, 0) + 1
                return True
        return False

    def get_nowait(self) -> Message | None:
        """Pop the oldest message, or None when empty."""
        return self._items.popleft() if self._items else None

    async def get(self) -> Message | None:
        """Wait for the next message; None once the subscription is closed and drained."""
        while not self._items:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def __aiter__(self) -> QueueSubscription:
        return self

    async def __anext__(self) -> Message:
        msg = await self.get()
        if msg is None:
            raise StopAsyncIteration
        return msg

    def close(self, reason: str = "closed") -> None:
        """Stop receiving; waiting consumers wake and see the end of the stream."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._bus._remove_queue(self)
        if reason != "closed":
            log.warning("bus_subscriber_disconnected", subscriber=self.name, reason=reason)
        if self.on_close is not None:
            try:
                self.on_close(reason)
            except Exception as exc:
                log.error("bus_on_close_error", subscriber=self.name, error=repr(exc))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Bus:
    """Typed publish/subscribe. See the module docstring for the delivery rules."""

    def __init__(self) -> None:
        self._counts: dict[type, list[int]] = {}
        self.stats = BusStats(self._counts)
        self._handlers: dict[type, list[tuple[str, Handler]]] = {}
        self._deferred_handlers: dict[type, list[tuple[str, Handler]]] = {}
        self._queues: list[QueueSubscription] = []
        self._dispatch: dict[type, _Entry] = {}
        # Deferred deliveries not made yet, in publish order (see the module docstring).
        self._pending: list[tuple[tuple[tuple[str, Handler], ...], Message]] = []

    # ------------------------------------------------------------ subscribe

    def subscribe(self, msg_type: type, handler: Handler, name: str | None = None, *,
                  deferred: bool = False) -> Callable[[], None]:
        """Call `handler(msg)` for every published message of exactly `msg_type`; with
        `deferred`, off the hot path (three loop hops later, in publish order; see the module docstring).

        Returns a function that unsubscribes.
        """
        sub_name = name or getattr(handler, "__qualname__", repr(handler))
        entry = (sub_name, handler)
        table = self._deferred_handlers if deferred else self._handlers
        table.setdefault(msg_type, []).append(entry)
        self._invalidate()

        def unsubscribe() -> None:
            entries = table.get(msg_type, [])
            if entry in entries:
                entries.remove(entry)
                self._invalidate()

        return unsubscribe

    def subscribe_queue(
        self,
        name: str,
        types: Iterable[type] | None = None,
        maxsize: int = 1000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> QueueSubscription:
        """A bounded queue receiving `types` (all message types when None)."""
        sub = QueueSubscription(
            self, name, frozenset(types) if types is not None else None, maxsize, overflow
        )
        self._queues.append(sub)
        self._invalidate()
        return sub

    def _remove_queue(self, sub: QueueSubscription) -> None:
        if sub in self._queues:
            self._queues.remove(sub)
            self._invalidate()

    def _invalidate(self) -> None:
        self._dispatch.clear()


    @property
    def queue_subscribers(self) -> list[QueueSubscription]:
        """Live queue subscriptions (for status and metrics)."""
        return list(self._queues)

    # ------------------------------------------------------------ publish

    def publish(self, msg: Message) -> None:
        """Deliver `msg` to every handler and queue subscribed to its type. Never raises."""
        try:
            handlers, queues, count, deferred = self._dispatch[type(msg)]
        except KeyError:
            handlers, queues, count, deferred = self._resolve(type(msg))
        count[0] += 1
        deliver_now = False
        if deferred:
            # Queued before the handlers run: what they publish comes after this message.
            pending = self._pending
            pending.append((deferred, msg))
            if len(pending) == 1:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop (backtest, sync code): deliver after the handlers
                    deliver_now = True
                else:
                    # Three hops: behind what is ready now (the task that journals and sends
                    # the order this message planned), behind what that step made ready (a
                    # REST request runs in its own task under its timeout), and one more.
                    call_after_hops(loop, OFF_HOT_PATH_HOPS, self._deliver_deferred)
        for sub_name, handler in handlers:
            try:
                handler(msg)
            except Exception as exc:
                self._handler_failed(sub_name, msg, exc)
        if queues:
            for q in queues:
                q.offer(msg)
        if deliver_now:
            self._deliver_deferred()

    def _deliver_deferred(self) -> None:
        """Call the deferred handlers of every message published since the last delivery, in order."""
        pending, self._pending = self._pending, []
        for handlers, msg in pending:
            for sub_name, handler in handlers:
                try:
                    handler(msg)
                except Exception as exc:
                    self._handler_failed(sub_name, msg, exc)

    def _handler_failed(self, sub_name: str, msg: Message, exc: Exception) -> None:
        stats = self.stats
        stats.handler_errors[sub_name] = stats.handler_errors.get(sub_name, 0) + 1
        log.error(
            "bus_handler_error",
            subscriber=sub_name,
            message_type=type(msg).__name__,
            error=repr(exc),
            exc_info=exc,
        )

    def _resolve(self, cls: type) -> _Entry:
        handlers = tuple(self._handlers.get(cls, ()))
        queues = tuple(q for q in self._queues if q.types is None or cls in q.types)
        deferred = tuple(self._deferred_handlers.get(cls, ()))
        # The publish counter lives in the dispatch entry (one list index per publish);
        # it survives cache rebuilds because it is kept per type in `_counts`.
        count = self._counts.setdefault(cls, [0])
        entry = (handlers, queues, count, deferred)
        self._dispatch[cls] = entry
        return entry
