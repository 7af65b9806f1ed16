"""A Bybit-v5-compatible exchange on loopback (spot + linear), for integration tests and rehearsals.

* `exchange` — the pure exchange state (instruments, matching via `venues.sim`, the unified
  account, synthetic or replayed market, order books with `u`/`seq`, private frames).
* `faults`   — run-time fault injection (POST /_emulator/faults).
* `server`   — `BybitEmulator`: the aiohttp server composing `rest` (the /v5 routes and the
  shared request path), `streams` (public and private websockets), `wsapi` (the trade
  WebSocket) and `control` (`/_emulator/...`).
* `cli`      — `main(argv)`: `nautilus-hmm emulator bybit --port P --api-key K --api-secret S
               [--symbols ...] [--seed N] [--replay FILE]`.

See docs/BYBIT.md for the control API and a rehearsal of the daemon against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

__all__ = ["BybitEmulator", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted (see `cli.main`)."""
    from nautilus_hmm.venues.bybit.emulator.cli import main as _main

    return _main(argv)


def __getattr__(name: str) -> Any:
    if name == "BybitEmulator":
        from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

        return BybitEmulator
    raise AttributeError(name)
