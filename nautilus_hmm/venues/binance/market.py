"""Which Binance market a message or instrument belongs to."""

from __future__ import annotations

from enum import StrEnum

VENUE_SPOT = "binance_spot"
VENUE_USDM = "binance_usdm"


class Market(StrEnum):
    """Binance spot or USD-M (USDⓈ-margined) futures; the wire formats differ."""

    SPOT = "spot"
    USDM = "usdm"

    @property
    def default_venue(self) -> str:
        """The venue name used in instrument ids (`binance_spot` / `binance_usdm`)."""
        return VENUE_SPOT if self is Market.SPOT else VENUE_USDM
