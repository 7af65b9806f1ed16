"""Registers Bybit v5 spot (`[venues.bybit_spot]`) and USDT perpetuals (`[venues.bybit_linear]`).

A venue's API key and secret come from the environment or systemd credentials
(`core.secrets.venue_credentials(credential_prefix)`); without both the adapter refuses
to build (a start failure naming the variables). Its klines follow the strategy's bar
interval. In monitor mode (`ctx.read_only`) it writes nothing to the account and
refuses order entry (adapter.py), so a read-only key suffices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nautilus_hmm.venues.bybit.config import BybitConfig
from nautilus_hmm.venues.registry import VenueContext, VenueKind

if TYPE_CHECKING:
    from nautilus_hmm.domain.venue import Venue

VENUE_SPOT = "bybit_spot"
VENUE_LINEAR = "bybit_linear"
CATEGORY_BY_VENUE = {VENUE_SPOT: "spot", VENUE_LINEAR: "linear"}

# Bybit v5 kline intervals (minutes, then D/W/M) by bar length in seconds.
KLINE_INTERVALS: dict[int, str] = {
    60: "1", 180: "3", 300: "5", 900: "15", 1800: "30", 3600: "60", 7200: "120", 14400: "240",
    21600: "360", 43200: "720", 86400: "D", 604800: "W",
}


def _symbol_check(venue: str) -> Callable[[BybitConfig, str], str | None]:
    def check_bybit_symbol(cfg: BybitConfig, symbol: str) -> str | None:
        """The adapter trades its configured symbols only (`_symbol` refuses the others)."""
        return None if symbol in cfg.symbols else f"symbol is not in venues.{venue}.symbols"

    return check_bybit_symbol


def check_bybit_bar_interval(cfg: BybitConfig, bar_interval_s: int) -> str | None:
    """Bybit has klines of 1 m .. 1 W only; bars of another length cannot come from it."""
    del cfg
    if bar_interval_s not in KLINE_INTERVALS:
        return f"Bybit has no {bar_interval_s} s klines (it has {sorted(KLINE_INTERVALS)} s)"
    return None


def _factory(venue: str) -> Callable[[BybitConfig, VenueContext], Venue]:
    def build_bybit_venue(cfg: BybitConfig, ctx: VenueContext) -> Venue:
        """A Bybit venue of `venue`'s category, not started."""
        from nautilus_hmm.core.secrets import venue_credentials
        from nautilus_hmm.venues.bybit.adapter import BybitOptions, BybitVenue
        from nautilus_hmm.venues.bybit.auth import Credentials

        key, secret = venue_credentials(cfg.credential_prefix)
        creds = Credentials(key, secret) if key and secret else None
        return BybitVenue(cfg, CATEGORY_BY_VENUE[venue], ctx.bus, ctx.clock, name=venue, credentials=creds,
                          options=BybitOptions(bar_interval_s=ctx.bar_interval_s,
                                               read_only=ctx.read_only))

    return build_bybit_venue


# `nautilus-hmm emulator bybit`: spot + linear REST and WebSockets on loopback (docs/BYBIT.md).
EMULATOR = ("bybit", "nautilus_hmm.venues.bybit.emulator")

VENUE_KINDS = (
    VenueKind(VENUE_SPOT, BybitConfig, "Bybit v5 spot", _factory(VENUE_SPOT),
              check_symbol=_symbol_check(VENUE_SPOT), check_bar_interval=check_bybit_bar_interval),
    VenueKind(VENUE_LINEAR, BybitConfig, "Bybit v5 USDT perpetuals", _factory(VENUE_LINEAR),
              check_symbol=_symbol_check(VENUE_LINEAR), check_bar_interval=check_bybit_bar_interval),
)
