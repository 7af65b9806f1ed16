"""Values the daemon cannot use are refused when the config is checked, naming the dotted
path and the value: negative paper balances, prices at or below zero, empty paths, sim
symbols its quote asset cannot make, a synthetic symbol without a starting price."""

from __future__ import annotations

from pathlib import Path

import pytest

from nautilus_hmm.cli import EXIT_CONFIG, main
from nautilus_hmm.config import Config, ConfigError
from nautilus_hmm.config.loader import parse


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(Config, data)
    return info.value.errors


def test_check_config_refuses_a_negative_balance_and_an_empty_state_dir(tmp_path: Path, capsys) -> None:
    p = tmp_path / "config.toml"
    p.write_text('[node]\nstate_dir = ""\n[venues.sim]\ninitial_balances = { USDT = -5 }\n')
    assert main(["check-config", str(p)]) == EXIT_CONFIG
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"{p}: 2 error(s)")
    assert sorted(lines[1:]) == ['  node.state_dir = "": must not be empty',
                                 "  venues.sim.initial_balances.USDT = -5: must be >= 0"]


@pytest.mark.parametrize("value", [-5, -0.01, -1e-300])
def test_a_negative_paper_balance_names_its_asset(value) -> None:
    errors = errors_of({"venues": {"sim": {"initial_balances": {"USDT": 1000, "BTC": value}}}})
    assert errors == [f"venues.sim.initial_balances.BTC = {value}: must be >= 0"]


def test_a_zero_paper_balance_is_accepted() -> None:
    cfg = parse(Config, {"venues": {"sim": {"initial_balances": {"USDT": 0}}}})
    assert cfg.venues.sim.initial_balances == {"USDT": 0.0}


def test_an_empty_asset_name_in_the_paper_balances_is_refused() -> None:
    errors = errors_of({"venues": {"sim": {"initial_balances": {"": 5}}}})
    assert errors == ['venues.sim.initial_balances."" = 5: key must not be empty']


@pytest.mark.parametrize("value", [0, -1, -60000.5])
def test_a_starting_price_at_or_below_zero_names_its_symbol(value) -> None:
    errors = errors_of({"venues": {"sim": {"market": {"initial_prices": {
        "BTCUSDT": value, "ETHUSDT": 3000, "SOLUSDT": 150}}}}})
    assert errors == [f"venues.sim.market.initial_prices.BTCUSDT = {value}: must be > 0"]


def test_a_synthetic_symbol_without_a_starting_price_is_refused() -> None:
    errors = errors_of({"venues": {"sim": {"symbols": ["BTCUSDT", "DOGEUSDT"]}}})
    assert errors == ['venues.sim.symbols[1] = "DOGEUSDT": has no starting price in '
                      "venues.sim.market.initial_prices (source = \"synthetic\")"]


def test_a_replaying_sim_needs_no_starting_prices(tmp_path: Path) -> None:
    replay = tmp_path / "trades.csv"
    replay.write_text("x\n")
    cfg = parse(Config, {"strategy": {"instruments": ["sim:DOGEUSDT"]}, "venues": {"sim": {
        "symbols": ["DOGEUSDT"], "market": {"source": "replay", "replay_file": str(replay), "initial_prices": {}}}}})
    assert cfg.venues.sim.symbols == ("DOGEUSDT",)


def test_a_sim_symbol_that_does_not_end_with_the_quote_asset_is_refused() -> None:
    errors = errors_of({"venues": {"sim": {"symbols": ["BTCUSDT", "BTCEUR", "USDT"]}}})
    assert errors == ['venues.sim.symbols[1] = "BTCEUR": must end with the quote asset "USDT" (venues.sim.quote_asset)',
                      'venues.sim.symbols[2] = "USDT": must end with the quote asset "USDT" (venues.sim.quote_asset)']


def test_an_empty_quote_asset_is_refused() -> None:
    errors = errors_of({"venues": {"sim": {"quote_asset": ""}}})
    assert errors == ['venues.sim.quote_asset = "": must not be empty']


@pytest.mark.parametrize("path", ["node.state_dir", "hmm.registry_dir", "journal.path"])
def test_an_empty_path_is_refused(path) -> None:
    section, key = path.split(".")
    assert errors_of({section: {key: ""}}) == [f'{path} = "": must not be empty']
