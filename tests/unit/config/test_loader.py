"""Config loading: every class of error is reported with its dotted path and value."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from nautilus_hmm.config import Config, ConfigError, load_config
from nautilus_hmm.config.loader import config_hash, diff, field_docs, parse
from nautilus_hmm.strategies.config import StrategyInstanceConfig
from tests.conftest import REPO


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(Config, data)
    return info.value.errors


def test_default_config_file_is_valid_and_equals_the_schema_defaults_apart_from_its_strategies() -> None:
    cfg = load_config(str(REPO / "config.toml"))
    defaults = parse(Config, {})
    # the demo sets governance limits (off by default) so a new user sees governance act
    limits = {k: getattr(defaults.control.governance, k)
              for k in ("max_drawdown_pct", "max_loss_streak", "max_error_rate", "stale_data_s")}
    control = dataclasses.replace(cfg.control, governance=dataclasses.replace(cfg.control.governance, **limits))
    assert config_hash(dataclasses.replace(cfg, strategies=(), control=control)) == config_hash(defaults)
    # the default paper-trades several strategies under the allocator (two on one instrument)
    enabled = [s for s in cfg.strategies if s.enabled]
    assert len(enabled) >= 2 and len({s.kind for s in enabled}) >= 2
    traded = [i for s in enabled for i in s.instruments]
    assert len(traded) > len(set(traded))


def test_default_config_file_documents_every_key() -> None:
    text = (REPO / "config.toml").read_text()
    missing = []
    docs = {**field_docs(Config), **field_docs(StrategyInstanceConfig, "strategies.")}
    for path, (doc, live) in docs.items():
        if live is None or path == "strategies":
            continue  # a table; [[strategies]] is documented key by key
        key = path.rsplit(".", 1)[-1]
        if not re.search(rf"^{re.escape(key)}\s*=.*#", text, re.M):
            missing.append(path)
        assert doc, f"{path} has no doc"
    assert missing == []


def test_range_error_names_path_value_and_rule() -> None:
    assert errors_of({"risk": {"max_order_notional_usd": -5}}) == [
        "risk.max_order_notional_usd = -5: must be > 0"
    ]


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    assert errors_of({"risk": {"max_order_notional": 5.0}}) == [
        "risk.max_order_notional = 5.0: unknown key (did you mean 'max_order_notional_usd'?)"
    ]


def test_unknown_table_is_an_error() -> None:
    assert errors_of({"riks": {}}) == ["riks = {...}: unknown key (did you mean 'risk'?)"]


def test_wrong_type_is_an_error() -> None:
    assert errors_of({"http": {"port": "8080"}}) == ['http.port = "8080": expected an integer']


def test_bool_is_not_accepted_as_a_number() -> None:
    assert errors_of({"risk": {"orders_per_s": True}}) == ["risk.orders_per_s = true: expected a number"]


def test_choice_error_lists_the_allowed_values() -> None:
    assert errors_of({"log": {"level": "verbose"}}) == [
        "log.level = \"verbose\": must be one of 'debug', 'info', 'warning', 'error'"
    ]


def test_cross_field_rule_is_checked() -> None:
    assert errors_of({"strategy": {"sma_cross": {"fast": 80, "slow": 60}}}) == [
        "strategy.sma_cross.fast = 80: must be < slow (60)"
    ]


def test_cross_section_rule_checks_instruments_against_enabled_venues() -> None:
    assert errors_of({"strategy": {"instruments": ["binance_spot:BTCUSDT"]}}) == [
        "strategy.instruments[0] = \"binance_spot:BTCUSDT\": venue 'binance_spot' is not enabled"
    ]


def test_secret_in_the_file_is_an_error_and_its_value_is_not_echoed() -> None:
    errs = errors_of({"venues": {"binance_spot": {"api_secret": "s3cr3t-value"}}})
    assert len(errs) == 1
    assert errs[0].startswith("venues.binance_spot.api_secret = <redacted>: secrets must not be written")
    assert "s3cr3t-value" not in errs[0]


def test_admin_token_in_the_file_is_an_error() -> None:
    errs = errors_of({"http": {"admin_token": "abcdef"}})
    assert "http.admin_token = <redacted>" in errs[0]


def test_all_problems_are_reported_at_once() -> None:
    errs = errors_of({
        "http": {"port": 70000, "host": "not-an-ip"},
        "risk": {"max_drawdown_pct": 0, "bogus": 1},
        "log": {"level": 3},
    })
    assert len(errs) == 5
    assert "http.port = 70000: must be <= 65535" in errs
    assert 'http.host = "not-an-ip": must be an IP address such as 127.0.0.1 or ::1' in errs
    assert "risk.max_drawdown_pct = 0: must be > 0" in errs
    assert "log.level = 3: expected a string" in errs


def test_toml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[node]\nname = "x"\nport = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(p))
    msg = str(info.value)
    assert str(p) in msg
    assert "line 3" in msg and "column" in msg


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "nope.toml"))


def test_decimal_fields_accept_strings_and_numbers() -> None:
    cfg = parse(Config, {"strategy": {"sma_cross": {"quantity": "0.25"}}})
    assert str(cfg.strategy.sma_cross.quantity) == "0.25"
    assert errors_of({"strategy": {"sma_cross": {"quantity": "abc"}}}) == [
        'strategy.sma_cross.quantity = "abc": expected a decimal number'
    ]


def test_diff_tags_each_change_live_or_restart() -> None:
    a = parse(Config, {})
    b = parse(Config, {"log": {"level": "debug"}, "http": {"port": 9000}})
    changes = {c.path: c.live for c in diff(a, b)}
    assert changes == {"log.level": True, "http.port": False}


def test_check_config_cli_exits_78_and_prints_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nautilus_hmm.cli import main

    p = tmp_path / "c.toml"
    p.write_text("[risk]\nmax_order_notional_usd = -5\n[http]\nport = 'x'\n")
    assert main(["check-config", str(p)]) == 78
    err = capsys.readouterr().err
    assert "risk.max_order_notional_usd = -5: must be > 0" in err
    assert "http.port = \"x\": expected an integer" in err
