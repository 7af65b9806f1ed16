"""build_venues constructs the Bybit venues the config enables (the registry's factories)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.bybit.adapter import BybitVenue
from nautilus_hmm.venues.bybit.parse import Category
from nautilus_hmm.venues.factory import build_venues


def config_with_bybit(**tables: dict[str, object]) -> Config:
    cfg = Config()
    venues = cfg.venues
    for name, fields in tables.items():
        venues = replace(venues, **{name: replace(getattr(venues, name), enabled=True, symbols=("BTCUSDT",),
                                                  **fields)})
    return replace(cfg, venues=venues)


def test_both_bybit_kinds_are_built_with_credentials_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_API_KEY", "k" * 18)
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_API_SECRET", "s" * 36)
    cfg = config_with_bybit(bybit_spot={}, bybit_linear={"order_entry": "ws_trade", "leverage": 2})
    venues = build_venues(cfg, Bus(), ManualClock(), tmp_path)
    spot, linear = venues["bybit_spot"], venues["bybit_linear"]
    assert isinstance(spot, BybitVenue) and isinstance(linear, BybitVenue)
    assert (spot.category, linear.category) == (Category.SPOT, Category.LINEAR)
    assert spot.rest_url == "https://api-testnet.bybit.com"
    assert spot.ws_public_url == "wss://stream-testnet.bybit.com/v5/public/spot"
    assert linear.ws_public_url == "wss://stream-testnet.bybit.com/v5/public/linear"
    assert linear.ws_trade_url == "wss://stream-testnet.bybit.com/v5/trade" and spot.ws_trade is None
    assert "k" * 18 not in repr(spot.credentials) and "s" * 36 not in repr(spot.credentials)


def test_production_urls_when_testnet_is_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_API_KEY", "k" * 18)
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_API_SECRET", "s" * 36)
    venue = build_venues(config_with_bybit(bybit_linear={"testnet": False}), Bus(), ManualClock(), tmp_path)
    assert isinstance(v := venue["bybit_linear"], BybitVenue)
    assert (v.rest_url, v.ws_private_url) == ("https://api.bybit.com", "wss://stream.bybit.com/v5/private")


def test_missing_credentials_name_the_variables_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("NAUTILUS_HMM_BYBIT_API_KEY", "NAUTILUS_HMM_BYBIT_API_SECRET", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match=r"venues\.bybit_spot: no API credentials: set NAUTILUS_HMM_BYBIT_API_KEY"):
        build_venues(config_with_bybit(bybit_spot={}), Bus(), ManualClock(), tmp_path)


def test_a_credential_prefix_selects_other_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_SUB_API_KEY", "k" * 18)
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_SUB_API_SECRET", "s" * 36)
    monkeypatch.delenv("NAUTILUS_HMM_BYBIT_API_KEY", raising=False)
    cfg = config_with_bybit(bybit_spot={"credential_prefix": "bybit-sub"})
    assert isinstance(build_venues(cfg, Bus(), ManualClock(), tmp_path)["bybit_spot"], BybitVenue)
