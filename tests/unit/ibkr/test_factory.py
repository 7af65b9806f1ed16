"""[venues.ibkr] is registered once, builds an IbkrVenue lazily, and says which bar lengths it can serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.ibkr.config import IbkrConfig
from nautilus_hmm.venues.ibkr.factory import check_ibkr_bar_interval, check_ibkr_symbol
from nautilus_hmm.venues.registry import VenueContext, venue_emulators, venue_kinds


def test_registered_with_its_emulator() -> None:
    kind = venue_kinds()["ibkr"]
    assert kind.config_type is IbkrConfig and kind.build is not None
    assert venue_emulators()["ibkr"] == "nautilus_hmm.venues.ibkr.emulator"


def test_bars_are_multiples_of_5_s_and_symbols_must_be_configured() -> None:
    cfg = IbkrConfig(symbols=("AAPL",))
    assert check_ibkr_bar_interval(cfg, 60) is None and check_ibkr_bar_interval(cfg, 5) is None
    assert "not a multiple of 5 s" in (check_ibkr_bar_interval(cfg, 7) or "")
    assert check_ibkr_symbol(cfg, "AAPL") is None and check_ibkr_symbol(cfg, "MSFT")


def test_the_factory_builds_an_unstarted_venue_that_reads_outside_rth(tmp_path: Path) -> None:
    cfg = IbkrConfig(enabled=True, symbols=("AAPL", "EUR.USD"), outside_rth=True)
    ctx = VenueContext(bus=Bus(), clock=ManualClock(), state_dir=tmp_path, bar_interval_s=60, read_only=True)
    venue = venue_kinds()["ibkr"].build(cfg, ctx)  # type: ignore[misc]
    assert venue.name == "ibkr" and venue.outside_rth is True  # type: ignore[attr-defined]
    assert venue.options.read_only and not venue.health().ok  # type: ignore[attr-defined]


async def test_a_damaged_order_id_mark_fails_the_start_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "ibkr_order_ids.json").write_bytes(b'{"reserved_below": 12')  # truncated
    cfg = IbkrConfig(enabled=True, symbols=("AAPL",))
    ctx = VenueContext(bus=Bus(), clock=ManualClock(), state_dir=tmp_path, bar_interval_s=60)
    venue = venue_kinds()["ibkr"].build(cfg, ctx)  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"ibkr_order_ids\.json: not an IB order id mark"):
        await venue.start()
