"""Registers the simulated venue (`[venues.sim]`) with the venue registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nautilus_hmm.venues.registry import VenueContext, VenueKind
from nautilus_hmm.venues.sim.config import SimVenueConfig

if TYPE_CHECKING:
    from nautilus_hmm.domain.venue import Venue

VENUE_NAME = "sim"


def build_sim_venue(cfg: SimVenueConfig, ctx: VenueContext) -> Venue:
    """The simulated venue, not started (its paper account lives in `ctx.state_dir`)."""
    from nautilus_hmm.venues.sim.venue import SimVenue

    return SimVenue(cfg, ctx.bus, ctx.clock, ctx.state_dir)


def check_sim_symbol(cfg: SimVenueConfig, symbol: str) -> str | None:
    """The simulated venue lists only its configured symbols."""
    return None if symbol in cfg.symbols else f"symbol is not in venues.{VENUE_NAME}.symbols"


def check_sim_bar_interval(cfg: SimVenueConfig, bar_interval_s: int) -> str | None:
    """The simulated venue builds bars of one length only: the strategy's must match it."""
    if cfg.market.bar_interval_s == bar_interval_s:
        return None
    return (f"must equal venues.{VENUE_NAME}.market.bar_interval_s ({cfg.market.bar_interval_s}): "
            "the strategy would never see a bar")


VENUE_KINDS = (
    VenueKind(VENUE_NAME, SimVenueConfig, "simulated venue", build_sim_venue,
              check_symbol=check_sim_symbol, check_bar_interval=check_sim_bar_interval),
)
