"""The venue registry: every venue kind by its `[venues.<name>]` table.

A venue package declares its kinds in its own `factory` module (`VENUE_KINDS`): the table
name (also the venue name in instrument ids), the config section type, and a factory
that builds the venue. This module lists those packages, once; the `[venues]` config
section (`venues.config.VenuesConfig`) and the node's `venues.factory.build_venues` are
derived from it. Adding a venue therefore touches its own package and one line here.

A factory imports its adapter when it is called, so reading the config never imports a
venue's network stack. A package may also declare a loopback emulator (`EMULATOR`), run by
`nautilus-hmm emulator NAME`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nautilus_hmm.core.bus import Bus
    from nautilus_hmm.core.clock import Clock
    from nautilus_hmm.domain.venue import Venue

# The one line to extend when a venue package is added (order = order in the config).
VENUE_PACKAGES: tuple[str, ...] = (
    "nautilus_hmm.venues.sim",
    "nautilus_hmm.venues.binance",
    "nautilus_hmm.venues.bybit",
    "nautilus_hmm.venues.ibkr",
)


@dataclass(frozen=True, slots=True)
class VenueContext:
    """What every venue factory gets besides its own config section."""

    bus: Bus
    clock: Clock
    state_dir: Path
    bar_interval_s: int
    # Monitor mode ([node] mode = "monitor"): the venue writes nothing to the account (no
    # order, cancel, leverage, margin or position-mode change) and opens no order-entry
    # connection; read-only API keys suffice.
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class VenueKind:
    """One `[venues.<name>]` table: its section type and how to build its venue.

    `build` is None for a kind whose adapter is not available in this version (its table
    parses, and enabling it is a config error). `check_symbol` answers whether the venue
    lists a symbol, and `check_bar_interval` whether it can serve bars of the strategy's
    interval (an error message, or None), where the config alone tells.
    """

    name: str
    config_type: type[Any]
    doc: str
    build: Callable[[Any, VenueContext], Venue] | None
    check_symbol: Callable[[Any, str], str | None] | None = None
    check_bar_interval: Callable[[Any, int], str | None] | None = None


@cache
def venue_kinds() -> dict[str, VenueKind]:
    """Every registered venue kind by name, in `VENUE_PACKAGES` order.

    A package without a `factory.VENUE_KINDS`, or two kinds with one name, is a
    RuntimeError at import time (a programming error, not a config one).
    """
    kinds: dict[str, VenueKind] = {}
    for package in VENUE_PACKAGES:
        module = importlib.import_module(f"{package}.factory")
        declared = getattr(module, "VENUE_KINDS", None)
        if not declared:
            raise RuntimeError(f"{package}.factory declares no VENUE_KINDS")
        for kind in declared:
            if kind.name in kinds:
                raise RuntimeError(f"venue kind {kind.name!r} registered twice ({package})")
            kinds[kind.name] = kind
    return kinds


@cache
def venue_emulators() -> dict[str, str]:
    """Loopback emulators by name (`nautilus-hmm emulator NAME`): the module whose `main(argv)` runs it.

    A venue package offers one by declaring `EMULATOR = (name, module)` in its factory.
    Listing them imports no emulator; the caller imports the module it runs.
    """
    emulators: dict[str, str] = {}
    for package in VENUE_PACKAGES:
        declared = getattr(importlib.import_module(f"{package}.factory"), "EMULATOR", None)
        if declared is not None:
            name, module = declared
            emulators[name] = module
    return emulators
