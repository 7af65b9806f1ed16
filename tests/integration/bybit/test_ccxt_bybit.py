"""A real third-party client (ccxt's `bybit`) against the Bybit emulator.

ccxt signs its requests with its own code (HMAC over timestamp + key + recv_window +
query or body), so a mistake shared by our signer and the emulator's check cannot pass
here. ccxt is a test dependency only; the test is skipped where it is not installed. ccxt
signs with the wall clock, so the emulator runs on the LiveClock; its market does not tick
on its own and nothing here waits on time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

ccxt_async = pytest.importorskip("ccxt.async_support")

API_KEY = "bybitEmulatorKey0123456789"
API_SECRET = "bybitEmulatorSecret0123456789abcdef"


@pytest.fixture
async def exchange() -> AsyncIterator[tuple[Any, BybitEmulator]]:
    emu = BybitEmulator(api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT", "ETHUSDT"], run_market=False)
    await emu.start()
    ex = ccxt_async.bybit({
        "apiKey": API_KEY, "secret": API_SECRET, "enableRateLimit": False,
        "options": {"fetchMarkets": {"types": ["spot", "linear"]}},
    })
    # Every base URL points at the emulator: nothing this client does can leave loopback.
    ex.urls["api"] = dict.fromkeys(ex.urls["api"], emu.url)
    try:
        yield ex, emu
    finally:
        await ex.close()
        await emu.stop()


async def test_ccxt_loads_spot_and_linear_markets_and_reads_the_balance(exchange: tuple[Any, BybitEmulator]) -> None:
    ex, emu = exchange
    markets = await ex.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"} <= set(markets)
    assert markets["BTC/USDT"]["precision"]["price"] == 0.01
    assert markets["BTC/USDT:USDT"]["precision"]["price"] == 0.1
    assert markets["BTC/USDT:USDT"]["precision"]["amount"] == 0.001
    assert markets["BTC/USDT:USDT"]["linear"] is True and markets["BTC/USDT"]["spot"] is True
    balance = await ex.fetch_balance()
    assert balance["USDT"]["total"] == 100_000 and balance["BTC"]["total"] == 1
    # ccxt's signed calls (account info, coin info, wallet) all passed the emulator's signature check.
    assert emu.request_counts["GET /v5/account/wallet-balance"] == 1


async def test_ccxt_places_queries_and_cancels_a_spot_limit_order(exchange: tuple[Any, BybitEmulator]) -> None:
    ex, emu = exchange
    await ex.load_markets()
    order = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 50_000, {"orderLinkId": "ccxt-spot-1"})
    assert order["id"] and order["clientOrderId"] == "ccxt-spot-1"
    fetched = await ex.fetch_open_order(order["id"], "BTC/USDT")
    assert fetched["status"] == "open" and fetched["price"] == 50_000 and fetched["amount"] == 0.01
    await ex.cancel_order(order["id"], "BTC/USDT")
    closed = await ex.fetch_order(order["id"], "BTC/USDT", {"acknowledged": True})
    assert closed["status"] == "canceled"
    assert emu.state()["orders"][0]["status"] == "Cancelled"
    assert emu.state()["balances"]["USDT"]["locked"] == "0"


async def test_ccxt_trades_linear_and_sees_the_position(exchange: tuple[Any, BybitEmulator]) -> None:
    ex, emu = exchange
    assert emu.exchange.linear.leverage["BTCUSDT"] == 10
    await ex.load_markets()
    order = await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    fetched = await ex.fetch_order(order["id"], "BTC/USDT:USDT", {"acknowledged": True})
    assert fetched["status"] == "closed" and fetched["filled"] == 0.01
    positions = await ex.fetch_positions(["BTC/USDT:USDT"])
    assert len(positions) == 1 and positions[0]["contracts"] == 0.01 and positions[0]["side"] == "long"
    trades = await ex.fetch_my_trades("BTC/USDT:USDT")
    assert [t["amount"] for t in trades] == [0.01] and trades[0]["order"] == order["id"]
    assert Decimal(emu.state()["positions"]["BTCUSDT"]["qty"]) == Decimal("0.01")


async def test_ccxt_fetches_a_ticker_and_the_order_book(exchange: tuple[Any, BybitEmulator]) -> None:
    ex, emu = exchange
    await ex.load_markets()
    await emu.step(3)
    ticker = await ex.fetch_ticker("BTC/USDT")
    assert ticker["bid"] < ticker["ask"] and ticker["last"] > 0
    book = await ex.fetch_order_book("BTC/USDT:USDT", limit=50)
    assert len(book["bids"]) == 50 and len(book["asks"]) == 50
    assert book["bids"][0][0] < book["asks"][0][0]
    assert book["bids"] == sorted(book["bids"], reverse=True) and book["asks"] == sorted(book["asks"])
