"""Build the enabled venues from the config (live node)."""

from __future__ import annotations

from pathlib import Path

from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.venues.base import Venue


def build_venues(cfg: Config, bus: Bus, clock: Clock, state_dir: Path) -> dict[str, Venue]:
    """Every enabled venue by name, not started."""
    venues: dict[str, Venue] = {}
    if cfg.venues.sim.enabled:
        from nautilus_hmm.venues.sim.venue import SimVenue

        venues["sim"] = SimVenue(cfg.venues.sim, bus, clock, state_dir)
    return venues
