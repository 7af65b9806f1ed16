"""The notifier component: bus queue -> notices -> per-channel coalescing, rate limit, retry
-> one sender thread per channel.

Off the hot path by construction:
  * it reads a bounded bus queue (`Overflow.DISCONNECT`: every message it takes is critical,
    which DROP_OLDEST would never drop; a queue that fills is cut, the message that did not
    fit is dropped and counted by the bus (`bus_messages_dropped_total{subscriber="notify"}`),
    and a fresh queue takes over at once, while the old one is drained);
  * the event loop only classifies, merges and counts (pure, `events` and `coalesce`);
  * every send is blocking network I/O in that channel's own daemon thread: a dead or slow
    channel holds its thread, never the loop nor another channel. Its messages wait in its
    bounded outbox; the oldest is dropped and counted when it is full.
All timing (gather, windows, token bucket, retry backoff, the daily summary) is on the
injected clock; the threads never sleep.

Failure behaviour: a send that fails is retried after a doubling backoff up to the
channel's `max_retries`, then dropped, counted (`notifications_failed_total`) and logged
with apprise's reason (URL parts scrubbed). A message that cannot be described or routed is
logged and counted, never raised: the component keeps running. It is never unhealthy: a
broken channel must not make the daemon unready (the metrics and logs say it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import queue
import threading
from collections import deque
from collections.abc import Callable, Mapping

import structlog
from prometheus_client.core import Metric

from nautilus_hmm.core.bus import Bus, Overflow, QueueSubscription
from nautilus_hmm.core.clock import NS_PER_S, Clock
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.messages import Message
from nautilus_hmm.notify.channels import Transport, build_transports
from nautilus_hmm.notify.coalesce import Coalescer, Outgoing, TokenBucket, retry_delay_s
from nautilus_hmm.notify.config import ChannelConfig, NotifyConfig
from nautilus_hmm.notify.events import (
    MESSAGE_TYPES,
    Notice,
    TradingSummary,
    daemon_notice,
    describe,
    summary_notice,
)
from nautilus_hmm.obs.metrics import counter_family, gauge_family

log = structlog.get_logger("notify")

# The port the node provides for the daily summary: cumulative figures, read on the loop.
SummarySource = Callable[[], TradingSummary]

COUNTERS = ("sent", "failed", "dropped", "retries")  # the coalesced count is the coalescer's own


class _Channel:
    """One destination's state; everything but `inbox` is touched on the event loop only."""

    def __init__(self, name: str, cfg: ChannelConfig, transport: Transport, notify: NotifyConfig,
                 now_s: float) -> None:
        self.name = name
        self.cfg = cfg
        self.transport = transport
        self.coalescer = Coalescer(name, notify.gather_s, notify.coalesce_window_s, notify.examples)
        self.bucket = TokenBucket(cfg.rate_per_min / 60.0, cfg.burst, now_s)
        self.outbox: deque[Outgoing] = deque()
        self.in_flight: Outgoing | None = None
        self.retry_at_s: float | None = None
        self.inbox: queue.SimpleQueue[Outgoing | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.last_error = ""

    def snapshot(self) -> dict[str, object]:
        """Counters, outbox length and last error (for health info and metrics)."""
        return {**self.counts, "coalesced": self.coalescer.coalesced, "outbox": len(self.outbox),
                "last_error": self.last_error}

    @property
    def idle(self) -> bool:
        return self.in_flight is None and not self.outbox and self.coalescer.next_due_s() is None


class Notifier(BaseComponent):
    """Sends routed bus events to notification channels (see the module docstring)."""

    name = "notify"

    def __init__(self, cfg: NotifyConfig, bus: Bus, clock: Clock, *, node_name: str = "nautilus-hmm",
                 version: str = "", summary: SummarySource | None = None,
                 transports: Mapping[str, Transport] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self._bus = bus
        self._clock = clock
        self._node_name = node_name
        self._version = version
        self._summary = summary
        self._transports = dict(transports) if transports is not None else None
        routed = cfg.routed() if cfg.enabled else {}
        # event class -> channel names (only classes routed somewhere); the message types they need
        self._routes: dict[str, tuple[str, ...]] = routed
        self._types = tuple(t for cls in routed for t in MESSAGE_TYPES.get(cls, ()))
        self._channels: dict[str, _Channel] = {}
        self._subs: deque[QueueSubscription] = deque()
        self._wake: asyncio.Event | None = None
        self._get_task: asyncio.Task[Message | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._summary_due_s: float | None = None
        self._last_summary: TradingSummary | None = None
        self.queue_overflows = 0
        self.describe_errors = 0
        # Set on the loop after each send finished (delivered or not): tests and `stop` wait on it.
        self.send_finished = asyncio.Event()
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Read and check every channel's URL (a missing or unknown one fails the start, naming
        its variable), subscribe, start the sender threads, say the daemon started."""
        if not self.cfg.enabled:
            self._health = Health(True, "disabled")
            return
        # Off the loop: importing apprise (its plugins) takes most of a second.
        transports = (self._transports if self._transports is not None
                      else await asyncio.to_thread(build_transports, self.cfg))
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        now_s = self._clock.monotonic()
        for name, ch_cfg in self.cfg.channels.items():
            ch = _Channel(name, ch_cfg, transports[name], self.cfg, now_s)
            ch.thread = threading.Thread(target=self._sender, args=(ch,), name=f"notify:{name}", daemon=True)
            ch.thread.start()
            self._channels[name] = ch
        if self._types:
            self._subscribe()
        if "daily_summary" in self._routes:
            self._summary_due_s = self._next_summary_s()
        self._started = True
        detail = f"version {self._version}" if self._version else ""
        self._route(daemon_notice(self._node_name, "started", detail))
        log.info("notify_started", channels=sorted(self._channels), routes=sorted(self._routes))

    async def run(self) -> None:
        """Drain the bus queue, flush due batches, hand messages to the senders, wait; repeat."""
        if not self._started:
            await super().run()
            return
        while True:
            self._drain()
            self._pump()
            await self._wait(self._next_deadline_s())

    async def stop(self) -> None:
        """Say the daemon is stopping, flush everything held and wait up to `stop_timeout_s`
        (on the clock) for the channels to send it; then release the threads."""
        if not self._started:
            return
        self._started = False
        try:
            task = self._get_task  # a message the cancelled run() had taken but not yet ingested
            if task is not None and task.done() and not task.cancelled() and task.exception() is None:
                self._get_task = None
                msg = task.result()
                if msg is not None:
                    self._ingest(msg)
            self._drain()
            self._route(daemon_notice(self._node_name, "stopping"))
            now_s = self._clock.monotonic()
            for ch in self._channels.values():
                for out in ch.coalescer.due(now_s, force=True):
                    self._enqueue(ch, out)
            deadline_s = now_s + self.cfg.stop_timeout_s
            while True:
                self._pump()
                now_s = self._clock.monotonic()
                if all(ch.idle for ch in self._channels.values()) or now_s >= deadline_s:
                    break
                nxt = self._next_deadline_s()
                await self._wait(deadline_s if nxt is None else min(nxt, deadline_s))
            left = {n: len(ch.outbox) + (ch.in_flight is not None) for n, ch in self._channels.items()}
            if any(left.values()):
                log.warning("notify_stop_unsent", unsent=left, timeout_s=self.cfg.stop_timeout_s)
        finally:
            if self._get_task is not None:
                self._get_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._get_task
                self._get_task = None
            while self._subs:
                self._subs.popleft().close()
            for ch in self._channels.values():
                ch.inbox.put(None)  # the thread exits after its current send (daemon: never waited on)

    def health(self) -> Health:
        """Always ok (a broken channel must not make the daemon unready); info per channel."""
        info: dict[str, object] = {name: ch.snapshot() for name, ch in self._channels.items()}
        return Health(True, self._health.detail, info)

    # ------------------------------------------------------------------ bus side

    def _subscribe(self) -> None:
        sub = self._bus.subscribe_queue("notify", self._types, maxsize=self.cfg.queue_size,
                                        overflow=Overflow.DISCONNECT)
        sub.on_close = self._on_queue_closed
        self._subs.append(sub)

    def _on_queue_closed(self, reason: str) -> None:
        # Called inside publish when the queue overflowed: a fresh queue takes the rest of the
        # storm at once; the old one is still drained (get_nowait works on a closed queue).
        if not self._started or reason == "closed":
            return
        self.queue_overflows += 1
        self._subscribe()

    def _drain(self) -> None:
        """Take every queued bus message (oldest queue first) into the coalescers."""
        while self._subs:
            sub = self._subs[0]
            msg = sub.get_nowait()
            while msg is not None:
                self._ingest(msg)
                msg = sub.get_nowait()
            if sub.closed and len(self._subs) > 1:
                self._subs.popleft()
                continue
            break

    def _ingest(self, msg: Message) -> None:
        try:
            notice = describe(msg)
        except Exception as exc:  # a message this module cannot render: counted, never raised
            self.describe_errors += 1
            log.error("notify_describe_failed", message_type=type(msg).__name__, error=repr(exc))
            return
        if notice is not None:
            self._route(notice)

    def _route(self, notice: Notice) -> None:
        now_s = self._clock.monotonic()
        for name in self._routes.get(notice.event_class, ()):
            ch = self._channels.get(name)
            if ch is not None:
                ch.coalescer.add(notice, now_s)

    # ------------------------------------------------------------------ channel side

    def _enqueue(self, ch: _Channel, out: Outgoing) -> None:
        if len(ch.outbox) >= ch.cfg.outbox_size:
            lost = ch.outbox.popleft()
            ch.counts["dropped"] += 1
            log.warning("notify_outbox_full", channel=ch.name, dropped_class=lost.event_class,
                        outbox_size=ch.cfg.outbox_size)
        ch.outbox.append(out)

    def _pump(self) -> None:
        """Due batches into outboxes; the head of an idle channel's outbox to its thread when
        its retry delay has passed and the rate limit has a token."""
        now_s = self._clock.monotonic()
        if self._summary_due_s is not None and now_s >= self._summary_due_s:
            self._daily_summary()
        for ch in self._channels.values():
            for out in ch.coalescer.due(now_s):
                self._enqueue(ch, out)
            if ch.in_flight is not None or not ch.outbox:
                continue
            if ch.retry_at_s is not None and now_s < ch.retry_at_s:
                continue
            if not ch.bucket.try_take(now_s):
                continue
            ch.retry_at_s = None
            ch.in_flight = ch.outbox.popleft()
            ch.inbox.put(ch.in_flight)

    def _next_deadline_s(self) -> float | None:
        now_s = self._clock.monotonic()
        times: list[float] = []
        if self._summary_due_s is not None:
            times.append(self._summary_due_s)
        for ch in self._channels.values():
            due = ch.coalescer.next_due_s()
            if due is not None:
                times.append(due)
            if ch.in_flight is None and ch.outbox:
                times.append(max(ch.retry_at_s or now_s, ch.bucket.ready_at_s(now_s)))
        return min(times) if times else None

    async def _wait(self, deadline_s: float | None) -> None:
        """Until a bus message, a send result or `deadline_s` (clock seconds)."""
        assert self._wake is not None
        if self._wake.is_set():
            self._wake.clear()
            return
        waits: list[asyncio.Future[object]] = []
        if self._subs and self._get_task is None:
            self._get_task = asyncio.ensure_future(self._subs[-1].get())
        if self._get_task is not None:
            waits.append(self._get_task)  # type: ignore[arg-type]
        wake = asyncio.ensure_future(self._wake.wait())
        waits.append(wake)
        timer = None
        if deadline_s is not None:
            timer = asyncio.ensure_future(self._clock.sleep(max(0.0, deadline_s - self._clock.monotonic())))
            waits.append(timer)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
            if timer is not None:
                timer.cancel()
        self._wake.clear()
        task = self._get_task
        if task is not None and task.done():
            self._get_task = None
            msg = task.result()
            if msg is not None:
                self._ingest(msg)

    def _sender(self, ch: _Channel) -> None:
        """The channel's thread: send what it is handed, report back to the loop; exits on None."""
        loop = self._loop
        assert loop is not None
        while True:
            item = ch.inbox.get()
            if item is None:
                return
            try:
                error = ch.transport.send(item.title, item.body, item.severity)
            except Exception as exc:  # a transport that raises is a failed send, reported as one
                error = f"{type(exc).__name__}: {exc}"
            try:
                loop.call_soon_threadsafe(self._on_result, ch, item, error)
            except RuntimeError:  # the loop is closed: the process is ending
                return

    def _on_result(self, ch: _Channel, item: Outgoing, error: str | None) -> None:
        """A send finished (on the loop): count it, or schedule its retry, or give it up."""
        ch.in_flight = None
        attempts = item.attempt + 1
        if error is None:
            ch.counts["sent"] += 1
            if attempts > 1:
                log.info("notify_sent_after_retry", channel=ch.name, event_class=item.event_class,
                         attempts=attempts)
        elif attempts <= ch.cfg.max_retries:
            delay_s = retry_delay_s(attempts, ch.cfg.retry_backoff_s, ch.cfg.retry_backoff_max_s)
            ch.counts["retries"] += 1
            ch.last_error = error
            ch.retry_at_s = self._clock.monotonic() + delay_s
            ch.outbox.appendleft(dataclasses.replace(item, attempt=attempts))
            log.warning("notify_send_retry", channel=ch.name, event_class=item.event_class,
                        attempt=attempts, retry_in_s=round(delay_s, 3), error=error)
        else:
            ch.counts["failed"] += 1
            ch.last_error = error
            log.error("notify_send_failed", channel=ch.name, event_class=item.event_class,
                      attempts=attempts, error=error)
        self.send_finished.set()
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ daily summary

    def _next_summary_s(self) -> float:
        """The clock's monotonic time of the next [notify] daily_summary_at (UTC)."""
        now_ns = self._clock.time_ns()
        now = dt.datetime.fromtimestamp(now_ns / NS_PER_S, tz=dt.UTC)
        hh, mm = (int(x) for x in self.cfg.daily_summary_at.split(":"))
        at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if at <= now:
            at += dt.timedelta(days=1)
        return self._clock.monotonic() + (at - now).total_seconds()

    def _daily_summary(self) -> None:
        self._summary_due_s = self._next_summary_s()
        if self._summary is None:
            return
        day = dt.datetime.fromtimestamp(self._clock.time_ns() / NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%d")
        try:
            current = self._summary()
        except Exception as exc:  # the summary is skipped, the notifier keeps running
            log.error("notify_summary_failed", error=repr(exc))
            return
        self._route(summary_notice(self._node_name, day, current, self._last_summary))
        self._last_summary = current

    # ------------------------------------------------------------------ metrics

    def collect_metrics(self) -> list[Metric]:
        """notifications_{sent,failed,dropped,coalesced}_total and notification_retries_total
        by channel, and each channel's outbox length (for NodeMetrics.add_collector)."""
        docs = {
            "sent": ("notifications_sent", "Notifications delivered, by channel"),
            "failed": ("notifications_failed", "Notifications given up after their retries, by channel"),
            "dropped": ("notifications_dropped", "Notifications dropped because a channel's outbox was full"),
            "coalesced": ("notifications_coalesced", "Notices merged into another message (a message of "
                                                     "n notices counts n - 1)"),
            "retries": ("notification_retries", "Failed sends that were retried, by channel"),
        }
        out: list[Metric] = [
            counter_family(name, doc, ["channel"],
                           [([n], float(ch.snapshot()[key])) for n, ch in self._channels.items()])  # type: ignore[arg-type]
            for key, (name, doc) in docs.items()
        ]
        out.append(gauge_family("notification_outbox_messages", "Messages waiting for a channel", ["channel"],
                                [([n], float(len(ch.outbox))) for n, ch in self._channels.items()]))
        return out
