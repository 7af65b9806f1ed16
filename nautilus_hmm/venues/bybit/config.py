"""[venues.bybit] — Bybit v5's config section (the adapter is not available yet)."""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import setting


@dataclass(frozen=True, slots=True)
class BybitConfig:
    """[venues.bybit] — Bybit v5 (not implemented yet; must stay disabled)."""

    enabled: bool = setting(False, live=False, doc="connect to this venue")
    testnet: bool = setting(True, live=False, doc="use the testnet URLs")
    category: str = setting("linear", live=False, choices=("spot", "linear"), doc="v5 category")
    symbols: tuple[str, ...] = setting((), live=False, doc="symbols to trade")
