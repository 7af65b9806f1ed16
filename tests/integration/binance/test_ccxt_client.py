"""A real third-party client (ccxt's `binance`) against the spot emulator.

ccxt is a test dependency only; the test is skipped where it is not installed. ccxt
signs with the wall clock, so this emulator runs on the LiveClock (its market does not
tick; nothing here waits on time).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.market import Market
from tests.integration.binance.conftest import API_KEY, API_SECRET

ccxt_async = pytest.importorskip("ccxt.async_support")


@pytest.fixture
async def exchange() -> AsyncIterator[tuple[Any, BinanceEmulator]]:
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT", "ETHUSDT"],
                          run_market=False)
    await emu.start()
    ex = ccxt_async.binance({
        "apiKey": API_KEY, "secret": API_SECRET, "enableRateLimit": False,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False,
                    "defaultType": "spot"},
    })
    # Every base URL points at the emulator: nothing this client does can leave loopback.
    ex.urls["api"] = {k: f"{emu.url}{urlsplit(v).path}" for k, v in ex.urls["api"].items()}
    try:
        yield ex, emu
    finally:
        await ex.close()
        await emu.stop()


async def test_ccxt_loads_markets_places_queries_cancels_and_fetches_balance(
        exchange: tuple[Any, BinanceEmulator]) -> None:
    ex, emu = exchange
    markets = await ex.load_markets()
    assert {"BTC/USDT", "ETH/USDT"} <= set(markets)
    assert markets["BTC/USDT"]["precision"]["price"] == 0.01
    order = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 50_000)
    assert order["status"] == "open" and order["price"] == 50_000
    fetched = await ex.fetch_order(order["id"], "BTC/USDT")
    assert fetched["id"] == order["id"] and fetched["status"] == "open"
    canceled = await ex.cancel_order(order["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    balance = await ex.fetch_balance()
    assert balance["USDT"]["free"] == 100_000 and balance["BTC"]["total"] == 1
    assert emu.state()["orders"][0]["status"] == "CANCELED"
