"""The emulator's command line and its replay feed."""

from __future__ import annotations

import numpy as np
import pytest

from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.venues.binance.emulator.cli import _balances, build_parser
from nautilus_hmm.venues.binance.emulator.exchange import EmulatedExchange
from nautilus_hmm.venues.binance.market import Market

T0_NS = 1_700_000_000 * 10**9


def test_command_line_takes_the_documented_options() -> None:
    args = build_parser().parse_args(["--port", "18765", "--api-key", "k", "--api-secret", "s", "--market", "usdm",
                                      "--symbols", "BTCUSDT", "ETHUSDT", "--replay", "f.csv", "--seed", "3"])
    assert (args.port, args.market, args.symbols, args.replay, args.seed) == (
        18765, "usdm", ["BTCUSDT", "ETHUSDT"], "f.csv", 3)


def test_bad_balance_argument_names_itself() -> None:
    with pytest.raises(SystemExit, match="USDT=lots"):
        _balances(["USDT=lots"])


def test_replayed_bars_drive_the_first_symbol() -> None:
    closes = np.array([100.0, 101.5, 99.25])
    bars = BarArrays(np.array([0, 60, 120], dtype=np.int64) * 10**9, closes, closes + 1, closes - 1, closes,
                     np.array([1.0, 2.0, 3.0]), 60)
    ex = EmulatedExchange(Market.SPOT, ["BTCUSDT", "ETHUSDT"], replay=bars, start_ns=T0_NS)
    prices = []
    for i in range(3):
        trade = next(p for s, p in ex.tick(T0_NS + i * 10**9).market if s == "btcusdt@trade")
        prices.append(float(trade["p"]))
    assert prices == [100.0, 101.5, 99.25]
