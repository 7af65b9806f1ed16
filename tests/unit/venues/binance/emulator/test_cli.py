"""The emulator's command line refuses what it cannot list with one usage error."""

from __future__ import annotations

import pytest

from nautilus_hmm.venues.binance.emulator.cli import build_parser

KEYS = ["--api-key", "k", "--api-secret", "s"]


@pytest.mark.parametrize("symbol", ["", "USDT", "BTC-USDT", "BTCEUR", " "])
def test_a_symbol_it_cannot_list_is_one_usage_error_naming_it(symbol, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*KEYS, "--symbols", "BTCUSDT", symbol])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == [f"nautilus-hmm emulator binance: error: argument --symbols: {symbol!r} is not a symbol "
                      "the emulator lists: expected letters and digits ending with USDT, e.g. BTCUSDT"]


def test_symbols_are_taken_in_any_case() -> None:
    assert build_parser().parse_args([*KEYS, "--symbols", "btcusdt", "EthUsdt"]).symbols == ["BTCUSDT", "ETHUSDT"]
