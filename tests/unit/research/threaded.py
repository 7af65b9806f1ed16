"""A mirror (any object with async start() / stop()) served on its own event loop in a
thread, for tests of a command that runs its own asyncio.run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def served_in_thread(server: Any, timeout_s: float = 10) -> Iterator[None]:
    """Start `server` on a new loop in a daemon thread; stop it, the loop and the thread on exit."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(timeout_s)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        t.join(timeout_s)
        loop.close()
