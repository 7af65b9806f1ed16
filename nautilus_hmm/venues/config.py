"""[venues] — one table per registered venue kind (`venues.registry`); `enabled` switches it on.

Each venue package owns its section type (`venues.sim.config`, `venues.binance.config`
...); this section is built from the registry, so a new venue adds no field here.
Credentials are never in the config: they come from the environment or systemd
credentials (names given per venue in the README).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from nautilus_hmm.core.fields import section
from nautilus_hmm.venues.registry import venue_kinds


def _validate(self: Any) -> list[tuple[str, object, str]]:
    """At least one venue; venues whose adapter is not built yet stay off."""
    out: list[tuple[str, object, str]] = []
    kinds = venue_kinds()
    if not any(getattr(self, name).enabled for name in kinds):
        out.append((f"{next(iter(kinds))}.enabled", False, "at least one venue must be enabled"))
    for name, kind in kinds.items():
        if kind.build is None and getattr(self, name).enabled:
            out.append((f"{name}.enabled", True, f"the {kind.doc} adapter is not available in this version"))
    return out


def enabled_venues(cfg: Any) -> list[str]:
    """Names of the enabled venues of a `VenuesConfig`, in registry order."""
    return [name for name in venue_kinds() if getattr(cfg, name).enabled]


def check_venue_symbol(cfg: Any, venue: str, symbol: str) -> str | None:
    """Why `venue` does not list `symbol` according to its config section, or None."""
    kind = venue_kinds()[venue]
    return kind.check_symbol(getattr(cfg, venue), symbol) if kind.check_symbol else None


def check_venue_bar_interval(cfg: Any, venue: str, bar_interval_s: int) -> str | None:
    """Why the strategy's bars (`bar_interval_s`) cannot come from `venue`, or None."""
    kind = venue_kinds()[venue]
    return kind.check_bar_interval(getattr(cfg, venue), bar_interval_s) if kind.check_bar_interval else None


if TYPE_CHECKING:

    class VenuesConfig:
        """What a type checker sees: one section per registered venue kind, by name."""

        def __getattr__(self, name: str) -> Any: ...

        def validate(self) -> list[tuple[str, object, str]]: ...

else:
    VenuesConfig = dataclasses.make_dataclass(
        "VenuesConfig",
        [(name, kind.config_type, section(kind.config_type, doc=kind.doc)) for name, kind in venue_kinds().items()],
        namespace={"validate": _validate, "__doc__": "[venues] — the venues this node connects to."},
        frozen=True,
        slots=True,
    )
    VenuesConfig.__module__ = __name__
