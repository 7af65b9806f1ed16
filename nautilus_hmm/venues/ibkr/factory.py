"""Registers Interactive Brokers (`[venues.ibkr]`): stocks, futures and FX through IB Gateway.

No credentials: IB Gateway holds the login (IBC for the daily restart; docs/IBKR.md). The
factory imports the adapter (and with it ib_async, the `ibkr` extra) only when called, so a
daemon without the extra reads its config and starts; enabling the venue without the
extra is a config error naming the extra (config.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nautilus_hmm.venues.ibkr.config import IbkrConfig
from nautilus_hmm.venues.registry import VenueContext, VenueKind

if TYPE_CHECKING:
    from nautilus_hmm.domain.venue import Venue

VENUE = "ibkr"
# The strategy's bars are built from 5-second bars or ticks: any whole multiple of 5 s.
BAR_MULTIPLE_S = 5


def check_ibkr_symbol(cfg: IbkrConfig, symbol: str) -> str | None:
    """The adapter trades its configured symbols only."""
    return None if symbol in cfg.symbols else "symbol is not in venues.ibkr.symbols"


def check_ibkr_bar_interval(cfg: IbkrConfig, bar_interval_s: int) -> str | None:
    """Bars are aggregated from 5-second bars (or ticks): the interval must be a multiple of 5 s."""
    del cfg
    if bar_interval_s % BAR_MULTIPLE_S:
        return f"IBKR bars are built from 5-second bars: {bar_interval_s} s is not a multiple of 5 s"
    return None


def build_ibkr_venue(cfg: IbkrConfig, ctx: VenueContext) -> Venue:
    """An IBKR venue, not started."""
    from nautilus_hmm.venues.ibkr.adapter import IbkrOptions, IbkrVenue

    return IbkrVenue(cfg, ctx.bus, ctx.clock, state_dir=ctx.state_dir, name=VENUE,
                     options=IbkrOptions(bar_interval_s=ctx.bar_interval_s, read_only=ctx.read_only))


# `nautilus-hmm emulator ibkr --port P`: the TWS-protocol emulator on loopback (docs/IBKR.md).
EMULATOR = ("ibkr", "nautilus_hmm.venues.ibkr.emulator")

VENUE_KINDS = (
    VenueKind(VENUE, IbkrConfig, "Interactive Brokers (IB Gateway, TWS API)", build_ibkr_venue,
              check_symbol=check_ibkr_symbol, check_bar_interval=check_ibkr_bar_interval),
)
