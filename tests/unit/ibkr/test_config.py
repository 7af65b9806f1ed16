"""[venues.ibkr] validation: every error names its path and value; the missing extra names the extra."""

from __future__ import annotations

import pytest

from nautilus_hmm.config import Config, ConfigError
from nautilus_hmm.config.loader import parse
from nautilus_hmm.venues.ibkr import config as ibkr_config


def errors_of(venue: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(Config, {"venues": {"ibkr": venue}})
    return info.value.errors


def test_enabling_ibkr_without_the_extra_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ibkr_config, "ib_async_installed", lambda: False)
    errs = errors_of({"enabled": True, "symbols": ["AAPL"]})
    assert "venues.ibkr.enabled = true: needs the 'ibkr' extra: pip install 'nautilus-hmm[ibkr]'" in errs


def test_a_bad_symbol_and_a_stray_contracts_table_are_named() -> None:
    errs = errors_of({"enabled": False, "symbols": ["AAPL", "es-2026"],
                      "contracts": {"NQ-202612": {"exchange": "CME"}}})
    assert any(e.startswith("venues.ibkr.symbols[1] = \"es-2026\": symbol 'es-2026'") for e in errs)
    assert any(e.startswith("venues.ibkr.contracts.NQ-202612") and "not in venues.ibkr.symbols" in e for e in errs)


def test_bounds_and_choices() -> None:
    errs = errors_of({"max_msgs_per_s": 51, "market_data": "ticks", "contracts": {"AAPL": {"sec_type": "OPT"}},
                      "symbols": ["AAPL"]})
    joined = "\n".join(errs)
    assert "venues.ibkr.max_msgs_per_s = 51: must be <= 50" in joined
    assert "venues.ibkr.market_data = \"ticks\"" in joined
    assert "venues.ibkr.contracts.AAPL.sec_type = \"OPT\"" in joined


def test_a_valid_section_parses_with_overrides() -> None:
    cfg = parse(Config, {"venues": {"sim": {"enabled": True}, "ibkr": {
        "symbols": ["AAPL", "ES-202612", "EUR.USD"], "contracts": {"ES-202612": {"exchange": "CME"}}}}})
    assert cfg.venues.ibkr.contracts["ES-202612"].exchange == "CME"
