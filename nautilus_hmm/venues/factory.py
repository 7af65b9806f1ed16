"""Build the enabled venues from the config (live node), through the venue registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.domain.venue import Venue
from nautilus_hmm.venues.registry import VenueContext, venue_kinds


class VenueHostConfig(Protocol):
    """The parts of the root config the venues are built from (`config.schema.Config`)."""

    @property
    def venues(self) -> Any: ...

    def venue_bar_interval_s(self, venue: str) -> int:
        """The bar length the strategies trading on `venue` consume (one per venue)."""
        ...


def build_venues(cfg: VenueHostConfig, bus: Bus, clock: Clock, state_dir: Path,
                 read_only: bool = False) -> dict[str, Venue]:
    """Every enabled venue by name, not started, built by its registered factory
    (`read_only`: monitor mode, see `VenueContext.read_only`).

    A factory may raise ValueError for a config it cannot build (e.g. credentials named
    but missing); that propagates to the caller, which reports it as a start failure.
    """
    venues: dict[str, Venue] = {}
    for name, kind in venue_kinds().items():
        section = getattr(cfg.venues, name)
        if section.enabled and kind.build is not None:
            ctx = VenueContext(bus=bus, clock=clock, state_dir=state_dir,
                               bar_interval_s=cfg.venue_bar_interval_s(name), read_only=read_only)
            venues[name] = kind.build(section, ctx)
    return venues
