"""build_venues constructs the Binance venues that the config enables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.binance.adapter import BinanceVenue
from nautilus_hmm.venues.factory import build_venues


def config_with_binance(**binance: object) -> Config:
    cfg = Config()
    spot = replace(cfg.venues.binance_spot, enabled=True, symbols=("BTCUSDT",), **binance)
    return replace(cfg, venues=replace(cfg.venues, binance_spot=spot))


def test_enabled_binance_spot_is_built_with_credentials_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_KEY", "k" * 16)
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_SECRET", "s" * 32)
    venues = build_venues(config_with_binance(rest_url="http://127.0.0.1:1"), Bus(), ManualClock(), tmp_path)
    venue = venues["binance_spot"]
    assert isinstance(venue, BinanceVenue)
    assert venue.rest_url == "http://127.0.0.1:1" and venue.credentials is not None
    assert "k" * 16 not in repr(venue.credentials)


def test_missing_credentials_name_the_variables_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NAUTILUS_HMM_BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("NAUTILUS_HMM_BINANCE_API_SECRET", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ValueError, match="NAUTILUS_HMM_BINANCE_API_KEY"):
        build_venues(config_with_binance(), Bus(), ManualClock(), tmp_path)
