"""Build the enabled venues from the config (live node)."""

from __future__ import annotations

from pathlib import Path

from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.venues.base import Venue


def build_venues(cfg: Config, bus: Bus, clock: Clock, state_dir: Path) -> dict[str, Venue]:
    """Every enabled venue by name, not started.

    Binance venues read their API key and secret from the environment or systemd
    credentials (`config.secrets.venue_credentials(credential_prefix)`); a missing key is
    a ValueError naming the variables to set. Their klines follow `strategy.bar_interval_s`.
    """
    venues: dict[str, Venue] = {}
    if cfg.venues.sim.enabled:
        from nautilus_hmm.venues.sim.venue import SimVenue

        venues["sim"] = SimVenue(cfg.venues.sim, bus, clock, state_dir)
    for name, bcfg in (("binance_spot", cfg.venues.binance_spot), ("binance_usdm", cfg.venues.binance_usdm)):
        if not bcfg.enabled:
            continue
        from nautilus_hmm.config.secrets import venue_credentials
        from nautilus_hmm.venues.binance.adapter import BinanceOptions, BinanceVenue
        from nautilus_hmm.venues.binance.auth import Credentials
        from nautilus_hmm.venues.binance.market import Market

        key, secret = venue_credentials(bcfg.credential_prefix)
        creds = Credentials(key, secret) if key and secret else None
        market = Market.SPOT if name == "binance_spot" else Market.USDM
        venues[name] = BinanceVenue(
            bcfg, market, bus, clock, name=name, credentials=creds,
            options=BinanceOptions(bar_interval_s=cfg.strategy.bar_interval_s),
        )
    return venues
