"""Registers the `[venues.bybit]` table; no factory until the adapter exists."""

from __future__ import annotations

from nautilus_hmm.venues.bybit.config import BybitConfig
from nautilus_hmm.venues.registry import VenueKind

VENUE_KINDS = (VenueKind("bybit", BybitConfig, "Bybit v5", build=None),)
