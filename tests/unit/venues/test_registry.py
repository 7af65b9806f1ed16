"""The venue registry: each venue package registers its kinds; config and factory follow it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nautilus_hmm.config import Config, ConfigError
from nautilus_hmm.config.loader import parse
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues import factory, registry
from nautilus_hmm.venues.config import VenuesConfig
from nautilus_hmm.venues.factory import build_venues
from nautilus_hmm.venues.registry import VenueContext, VenueKind, venue_kinds
from nautilus_hmm.venues.sim.venue import SimVenue


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    venue_kinds.cache_clear()
    yield
    monkeypatch.undo()
    venue_kinds.cache_clear()


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(Config, data)
    return info.value.errors


def test_venues_section_has_one_table_per_registered_kind() -> None:
    assert [f.name for f in dataclasses.fields(VenuesConfig)] == list(venue_kinds())
    assert {"sim", "binance_spot", "binance_usdm", "bybit_spot", "bybit_linear"} <= set(venue_kinds())
    for name, kind in venue_kinds().items():
        assert isinstance(getattr(VenuesConfig(), name), kind.config_type)


def test_enabling_a_kind_without_an_adapter_is_a_config_error_naming_its_table(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nautilus_hmm.venues import config as venues_config

    kinds = dict(venue_kinds())
    kinds["bybit_linear"] = dataclasses.replace(kinds["bybit_linear"], build=None)
    monkeypatch.setattr(venues_config, "venue_kinds", lambda: kinds)
    section = dataclasses.replace(VenuesConfig().bybit_linear, enabled=True, symbols=("BTCUSDT",))
    assert dataclasses.replace(VenuesConfig(), bybit_linear=section).validate() == [
        ("bybit_linear.enabled", True, "the Bybit v5 USDT perpetuals adapter is not available in this version")
    ]


def test_an_enabled_bybit_table_without_symbols_is_a_config_error_naming_it() -> None:
    assert errors_of({"venues": {"bybit_spot": {"enabled": True}}}) == [
        "venues.bybit_spot.symbols = []: must list at least one symbol when the venue is enabled"
    ]


def test_a_bybit_instrument_must_be_a_configured_symbol_with_a_kline_interval() -> None:
    errors = errors_of({"venues": {"bybit_linear": {"enabled": True, "symbols": ["BTCUSDT"]}},
                        "strategy": {"instruments": ["bybit_linear:BTCUSDT", "bybit_linear:DOGEUSDT"],
                                     "bar_interval_s": 15}})
    assert "strategy.instruments[1] = \"bybit_linear:DOGEUSDT\": symbol is not in venues.bybit_linear.symbols" in errors
    assert any(e.startswith("strategy.bar_interval_s = 15: Bybit has no 15 s klines") for e in errors)


def test_an_overridden_bybit_url_needs_the_others_overridden_too() -> None:
    errors = errors_of({"venues": {"bybit_linear": {"symbols": ["BTCUSDT"], "order_entry": "ws_trade",
                                                    "rest_url": "http://127.0.0.1:1"}}})
    assert [e.split(" = ")[0] for e in errors] == [
        "venues.bybit_linear.ws_public_url", "venues.bybit_linear.ws_private_url", "venues.bybit_linear.ws_trade_url"]


def test_no_venue_enabled_is_a_config_error() -> None:
    assert errors_of({"venues": {"sim": {"enabled": False}}, "strategy": {"instruments": []}})[0].startswith(
        "venues.sim.enabled = false: at least one venue must be enabled"
    )


def test_instrument_symbol_is_checked_by_its_venue_kind() -> None:
    assert errors_of({"strategy": {"instruments": ["sim:DOGEUSDT"]}}) == [
        "strategy.instruments[0] = \"sim:DOGEUSDT\": symbol is not in venues.sim.symbols"
    ]


def test_build_venues_builds_every_enabled_kind_with_its_own_factory(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built: list[tuple[str, Any, VenueContext]] = []

    def fake_build(name: str) -> Any:
        return lambda section, ctx: built.append((name, section, ctx)) or name

    kinds = {
        "alpha": VenueKind("alpha", object, "Alpha", fake_build("alpha")),
        "beta": VenueKind("beta", object, "Beta", fake_build("beta")),
        "gamma": VenueKind("gamma", object, "Gamma", None),  # no adapter: never built
    }
    monkeypatch.setattr(factory, "venue_kinds", lambda: kinds)
    alpha, beta, gamma = (SimpleNamespace(enabled=e) for e in (True, False, True))
    cfg = SimpleNamespace(venues=SimpleNamespace(alpha=alpha, beta=beta, gamma=gamma),
                          venue_bar_interval_s=lambda venue: {"alpha": 60}.get(venue, 10))
    clock = ManualClock()

    venues = build_venues(cfg, Bus(), clock, tmp_path)  # type: ignore[arg-type]

    assert venues == {"alpha": "alpha"}
    [(name, section, ctx)] = built
    assert section is alpha
    assert (ctx.clock, ctx.state_dir, ctx.bar_interval_s) == (clock, tmp_path, 60)


def test_default_config_builds_the_sim_venue(tmp_path: Path) -> None:
    venues = build_venues(Config(), Bus(), ManualClock(), tmp_path)
    assert list(venues) == ["sim"] and isinstance(venues["sim"], SimVenue)


def test_a_kind_registered_twice_is_refused(monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> None:
    monkeypatch.setattr(registry, "VENUE_PACKAGES", ("nautilus_hmm.venues.sim", "nautilus_hmm.venues.sim"))
    with pytest.raises(RuntimeError, match="'sim' registered twice"):
        venue_kinds()


def test_a_package_without_a_factory_module_is_refused(
        monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> None:
    monkeypatch.setattr(registry, "VENUE_PACKAGES", ("nautilus_hmm.domain",))
    with pytest.raises(ModuleNotFoundError, match="nautilus_hmm.domain.factory"):
        venue_kinds()


def test_strategy_bar_interval_must_be_one_the_traded_venue_serves() -> None:
    interval_s = Config().venues.sim.market.bar_interval_s
    assert errors_of({"strategy": {"bar_interval_s": interval_s * 6}}) == [
        f"strategy.bar_interval_s = {interval_s * 6}: must equal venues.sim.market.bar_interval_s "
        f"({interval_s}): the strategy would never see a bar"
    ]


def test_emulators_are_declared_by_their_venue_package_and_listed_without_importing_them() -> None:
    import importlib
    import subprocess
    import sys

    from nautilus_hmm.venues.registry import venue_emulators

    assert venue_emulators() == {"binance": "nautilus_hmm.venues.binance.emulator",
                                 "bybit": "nautilus_hmm.venues.bybit.emulator",
                                 "ibkr": "nautilus_hmm.venues.ibkr.emulator"}
    assert callable(importlib.import_module(venue_emulators()["binance"]).main)
    code = ("import sys\nfrom nautilus_hmm.venues.registry import venue_emulators\nvenue_emulators()\n"
            "print('nautilus_hmm.venues.binance.emulator' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
