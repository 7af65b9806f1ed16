"""[[strategies]]: the effective strategy tuple, and the cross-section rules that reject a
whole config (or reload) naming the field and the value."""

from __future__ import annotations

from typing import Any

import pytest

from nautilus_hmm.config import Config, ConfigError
from nautilus_hmm.config.loader import parse


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(Config, data)
    return info.value.errors


def two(**second: Any) -> dict[str, Any]:
    return {"strategies": [{"id": "trend", "kind": "sma_cross"},
                           {"id": "break", "kind": "breakout", "instruments": ["sim:ETHUSDT"], **second}]}


def test_strategies_tables_are_the_effective_strategies_in_order() -> None:
    cfg = parse(Config, two())
    assert [(s.id, s.kind) for s in cfg.strategy_instances()] == [("trend", "sma_cross"), ("break", "breakout")]
    assert cfg.traded_instruments() == ("sim:BTCUSDT", "sim:ETHUSDT")


def test_without_strategies_the_strategy_table_is_one_strategy_whose_id_is_its_kind() -> None:
    cfg = parse(Config, {"strategy": {"kind": "sma_cross", "sma_cross": {"fast": 20, "slow": 60, "quantity": "0.1"}}})
    (only,) = cfg.strategy_instances()
    assert (only.id, only.kind, only.instruments) == ("sma_cross", "sma_cross", ("sim:BTCUSDT",))
    assert (only.sma_cross.fast, only.sma_cross.slow, str(only.sma_cross.quantity)) == (20, 60, "0.1")


def test_both_the_shorthand_and_strategies_tables_are_refused() -> None:
    data = {**two(), "strategy": {"kind": "sma_cross"}}
    assert errors_of(data) == ["strategy = {...}: set either [[strategies]] or the [strategy] shorthand, not both"]


def test_duplicate_strategy_ids_are_refused_naming_the_second() -> None:
    assert errors_of(two(id="trend")) == ['strategies[1].id = "trend": duplicate: strategies[0] has the same id']


def test_an_instrument_on_a_disabled_venue_is_refused_even_for_a_disabled_strategy() -> None:
    assert errors_of(two(enabled=False, instruments=["sim:ETHUSDT", "binance_spot:ETHUSDT"])) == [
        "strategies[1].instruments[1] = \"binance_spot:ETHUSDT\": venue 'binance_spot' is not enabled"]


def test_an_instrument_the_venue_does_not_list_is_refused() -> None:
    errors = errors_of(two(instruments=["sim:DOGEUSDT"]))
    assert len(errors) == 1 and errors[0].startswith('strategies[1].instruments[0] = "sim:DOGEUSDT": ')


def test_a_bar_interval_the_venue_cannot_build_is_refused_per_strategy() -> None:
    errors = errors_of(two(bar_interval_s=7))
    assert len(errors) == 1 and errors[0].startswith("strategies[1].bar_interval_s = 7: ")


def test_min_shares_of_enabled_strategies_summing_past_one_are_refused() -> None:
    data = {"strategies": [{"id": "a", "kind": "sma_cross", "min_share": 0.6},
                           {"id": "b", "kind": "breakout", "min_share": 0.5},
                           {"id": "c", "kind": "breakout", "min_share": 0.9, "enabled": False}]}
    assert errors_of(data) == ["strategies[*].min_share = 1.1: the enabled strategies' min_share sum to more "
                               "than 1 (the account): lower them"]


def test_max_shares_of_enabled_strategies_summing_below_one_are_refused() -> None:
    data = {"strategies": [{"id": "a", "kind": "sma_cross", "max_share": 0.3},
                           {"id": "b", "kind": "breakout", "max_share": 0.3}]}
    assert errors_of(data)[0].startswith("strategies[*].max_share = 0.6: ")


def test_a_strategy_missing_its_id_and_kind_names_both() -> None:
    assert errors_of({"strategies": [{"instruments": ["sim:BTCUSDT"]}]}) == [
        "strategies[0].id: required key is missing", "strategies[0].kind: required key is missing"]


def test_an_unknown_key_in_a_strategy_is_named_with_its_index() -> None:
    errors = errors_of({"strategies": [{"id": "a", "kind": "sma_cross", "wieght": 2.0}]})
    assert errors == ["strategies[0].wieght = 2.0: unknown key (did you mean 'weight'?)"]


def test_strategies_on_one_venue_share_one_bar_interval() -> None:
    data = {"venues": {"binance_spot": {"enabled": True, "symbols": ["BTCUSDT"]}},
            "strategies": [{"id": "a", "kind": "sma_cross", "instruments": ["binance_spot:BTCUSDT"],
                            "bar_interval_s": 60},
                           {"id": "b", "kind": "breakout", "instruments": ["binance_spot:BTCUSDT"],
                            "bar_interval_s": 300}]}
    assert errors_of(data) == ["strategies[1].bar_interval_s = 300: strategies[0] trades venue 'binance_spot' "
                               "with bar_interval_s = 60: the strategies of one venue share one bar interval"]
    cfg = parse(Config, {**data, "strategies": data["strategies"][:1]})
    assert cfg.venue_bar_interval_s("binance_spot") == 60 and cfg.venue_bar_interval_s("sim") == 60
