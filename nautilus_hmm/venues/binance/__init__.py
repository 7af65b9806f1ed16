"""Binance spot and USD-M futures: the pure layer (no I/O).

* `market`      — which Binance market (spot / USD-M) and its default venue name.
* `auth`        — credentials, HMAC-SHA256 / Ed25519 signing, signed query builders,
                  server-time offset.
* `errors`      — Binance error codes and HTTP statuses → `core.errors` types.
* `parse`       — decoded JSON frames and REST bodies → neutral types.
* `instruments` — exchangeInfo → `domain.instruments.Instrument`.
* `book`        — local order book kept in sync by Binance's documented procedure.

The adapter (websockets, REST, listenKey) and the emulator build on these modules;
raw Binance dicts never leave this package.
"""

from __future__ import annotations

from nautilus_hmm.venues.binance.market import VENUE_SPOT, VENUE_USDM, Market

__all__ = ["VENUE_SPOT", "VENUE_USDM", "Market"]
