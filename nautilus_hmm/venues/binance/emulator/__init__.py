"""A Binance-compatible exchange on loopback, for integration tests and end-to-end rehearsals.

* `exchange` — the pure exchange state (symbols, matching via `venues.sim`, accounts,
  synthetic or replayed market, depth book with update ids, user events).
* `wire`     — Binance JSON shapes (REST answers, executionReport, ORDER_TRADE_UPDATE ...).
* `faults`   — run-time fault injection (POST /_emulator/faults).
* `server`   — `BinanceEmulator`: the aiohttp server composing `rest` (route tables and the
  request path), `market_data` (public market endpoints: tickers, trades, avgPrice,
  premiumIndex), `wsapi` (WebSocket API order entry), `streams` (market and user-data websockets) and `control` (`/_emulator/...`).
* `cli`      — `main(argv)`: `nautilus-hmm emulator binance --port P --api-key K --api-secret S
               [--market spot|usdm] [--symbols ...] [--replay FILE] [--seed N]`.

See docs/BINANCE.md for the control API and an end-to-end rehearsal of the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator

__all__ = ["BinanceEmulator", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted (see `cli.main`)."""
    from nautilus_hmm.venues.binance.emulator.cli import main as _main

    return _main(argv)


def __getattr__(name: str) -> Any:
    if name == "BinanceEmulator":
        from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator

        return BinanceEmulator
    raise AttributeError(name)
