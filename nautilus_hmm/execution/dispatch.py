"""How venue reports reach the engine's state functions, live: in arrival order, by one
consumer task, fills durable before they apply.

Every report (order status, fill, balance update) goes on one queue. The consumer takes
everything queued as a batch, journals the batch's fills at once (one group commit),
then applies the reports in arrival order, each fill after its own commit is confirmed.
A report for a closed order the engine no longer holds in memory recalls it from the
journal first (`execution.closed`; before the batch's fills are journaled). Which fills are new is
the fill intake's call (`execution.fills`: the journal's unique key, fronted by the keys
it recently confirmed): a copy is counted, never applied. Balance updates share
the queue: a venue sends a fill before the balance it produced, and applying the balance
first would count that fill twice.

Inline (backtest, `durable=False`) the engine applies each report as it is published and
the same intake deduplicates fills in memory; both paths call the same state-application functions
(`ReportSink`), so strategy, router, risk and portfolio code is shared by construction.

Failure behaviour: a report the order state machine refuses (an illegal transition, an
impossible fill) is a discrepancy (logged, kept for /status), never an exception out of
the consumer. Items leave the batch only once applied, so a cancelled consumer leaves the
rest for `drain()` at stop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from nautilus_hmm.domain.orders import VenueFill, VenueOrder
from nautilus_hmm.execution.fills import FillIntake
from nautilus_hmm.execution.orders import IllegalTransition, InvalidFill
from nautilus_hmm.messages import BalanceUpdate, FillReport, Message, OrderStatusReport


class ReportSink(Protocol):
    """The engine's side: where fills are admitted and reports applied."""

    fill_intake: FillIntake

    def must_recall(self, client_order_id: str) -> bool: ...

    async def recall(self, client_order_id: str) -> Any: ...

    def _apply_fill(self, venue: str, fill: VenueFill) -> None: ...

    def _apply_report(self, venue: str, vo: VenueOrder) -> None: ...

    def _apply_balance(self, msg: BalanceUpdate) -> None: ...

    def _discrepancy(self, text: str) -> None: ...


class ReportQueue:
    """The live report queue and its consumer (run by the engine's `run()`)."""

    __slots__ = ("_batch", "_batch_done", "_busy", "_queue", "_sink")

    def __init__(self, sink: ReportSink) -> None:
        self._sink = sink
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._batch: deque[Message] = deque()
        self._batch_done = asyncio.Event()
        self._busy = False  # a batch is being applied

    def put(self, msg: Message) -> None:
        """Queue one report (from a bus handler: never blocks, never drops)."""
        self._queue.put_nowait(msg)

    @property
    def pending(self) -> bool:
        """True while a batch is being applied or reports wait in the queue."""
        return self._busy or not self._queue.empty()

    async def run(self) -> None:
        """Apply reports in arrival order, batch by batch, forever."""
        q = self._queue
        batch = self._batch
        while True:
            self._busy = False
            self._batch_done.set()
            batch.append(await q.get())
            self._busy = True
            self._batch_done.clear()
            while not q.empty():
                batch.append(q.get_nowait())
            await self.apply_batch(batch)

    async def apply_batch(self, batch: deque[Message]) -> None:
        """Journal every fill of `batch` at once (one group commit), then apply the reports
        in arrival order, each fill after its own commit is confirmed."""
        sink = self._sink
        intake = sink.fill_intake
        # Forgotten closed orders the batch names are read back first, before its fills are
        # journaled: the journal's copy is the order as it was before this batch.
        for m in batch:
            if isinstance(m, FillReport):
                cid = m.fill.client_order_id
            elif isinstance(m, OrderStatusReport):
                cid = m.order.client_order_id
            else:
                continue
            if sink.must_recall(cid):
                await sink.recall(cid)
        # None: a copy the intake refused without a journal round trip (already counted).
        writes = {id(m): intake.claim(m.venue, m.fill) for m in batch if isinstance(m, FillReport)}
        while batch:
            msg = batch[0]
            try:
                if isinstance(msg, FillReport):
                    write = writes[id(msg)] if id(msg) in writes else intake.claim(msg.venue, msg.fill)
                    if write is not None and intake.settle(msg.venue, msg.fill, await write):
                        sink._apply_fill(msg.venue, msg.fill)
                elif isinstance(msg, OrderStatusReport):
                    sink._apply_report(msg.venue, msg.order)
                elif isinstance(msg, BalanceUpdate):
                    sink._apply_balance(msg)
            except (IllegalTransition, InvalidFill) as exc:
                sink._discrepancy(f"report for {getattr(msg, 'order', getattr(msg, 'fill', None))}: {exc}")
            batch.popleft()

    def release(self) -> None:
        """The consumer is stopping: nobody waits on a batch any more."""
        self._busy = False
        self._batch_done.set()

    async def drain(self) -> None:
        """Apply what was received (the interrupted batch first) so its fills reach the journal."""
        while not self._queue.empty():
            self._batch.append(self._queue.get_nowait())
        await self.apply_batch(self._batch)

    async def settle_step(self) -> None:
        """Wait for the batch being applied, or give the consumer a turn."""
        if self._busy:
            await self._batch_done.wait()
        else:
            await asyncio.sleep(0)
