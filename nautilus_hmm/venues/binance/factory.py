"""Registers Binance spot (`[venues.binance_spot]`) and USD-M futures (`[venues.binance_usdm]`).

A venue's API key and secret come from the environment or systemd credentials
(`core.secrets.venue_credentials(credential_prefix)`); without both the adapter is
built without credentials. Its klines follow the strategy's bar interval.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nautilus_hmm.venues.binance.config import BinanceConfig
from nautilus_hmm.venues.binance.market import VENUE_SPOT, VENUE_USDM, Market
from nautilus_hmm.venues.registry import VenueContext, VenueKind

if TYPE_CHECKING:
    from nautilus_hmm.domain.venue import Venue


def _factory(market: Market) -> Callable[[BinanceConfig, VenueContext], Venue]:
    def build_binance_venue(cfg: BinanceConfig, ctx: VenueContext) -> Venue:
        """A Binance venue of `market`, not started."""
        from nautilus_hmm.core.secrets import venue_credentials
        from nautilus_hmm.venues.binance.adapter import BinanceOptions, BinanceVenue
        from nautilus_hmm.venues.binance.auth import Credentials

        key, secret = venue_credentials(cfg.credential_prefix)
        creds = Credentials(key, secret) if key and secret else None
        return BinanceVenue(
            cfg, market, ctx.bus, ctx.clock, name=market.default_venue, credentials=creds,
            options=BinanceOptions(bar_interval_s=ctx.bar_interval_s, read_only=ctx.read_only),
        )

    return build_binance_venue


# `nautilus-hmm emulator binance`: spot + USD-M REST and WebSocket on loopback (docs/BINANCE.md).
EMULATOR = ("binance", "nautilus_hmm.venues.binance.emulator")

VENUE_KINDS = (
    VenueKind(VENUE_SPOT, BinanceConfig, "Binance spot", _factory(Market.SPOT)),
    VenueKind(VENUE_USDM, BinanceConfig, "Binance USD-M futures", _factory(Market.USDM)),
)
