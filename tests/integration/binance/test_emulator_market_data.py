"""The emulator's public market endpoints over loopback: Binance's shapes, weights and errors,
and a real third-party client (ccxt) reading tickers, trades, books and klines from them.

Shapes are compared field by field (names and JSON types; spot decimals too, where the
reference is a live capture) with recorded payloads in ../shared/fixtures. The USD-M
references are older doc examples: today's venue adds `nq` to aggTrades and `isRPITrade` to
trades (Binance's USD-M SDK models), which the emulator sends as well.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
import pytest
import yarl

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.market import Market
from tests.conftest import fixture_path
from tests.integration.binance.conftest import API_KEY, API_SECRET
from tests.unit.venues.binance.jsonc import load_jsonc

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def recorded(*parts: str) -> Any:
    """A recorded payload under fixtures/binance (JSON or JSONC)."""
    path = fixture_path("binance", *parts)
    return load_jsonc(path) if path.suffix == ".jsonc" else orjson.loads(path.read_bytes())


def py_resource(name: str) -> Any:
    return recorded("nautilus_trader", "py_test_resources", "http_responses", name)


def decimals(v: str) -> int:
    return len(v.partition(".")[2])


def assert_same_shape(ours: dict[str, Any], reference: dict[str, Any], *, added: tuple[str, ...] = (),
                      same_decimals: bool = False) -> None:
    """`ours` has exactly the reference's fields (plus `added`), each of the reference's JSON type."""
    assert set(ours) == set(reference) | set(added), (sorted(ours), sorted(reference))
    for k, v in reference.items():
        assert type(ours[k]) is type(v), f"{k}: ours {ours[k]!r}, recorded {v!r}"
        if same_decimals and isinstance(v, str) and v.replace(".", "").lstrip("-").isdigit():
            assert decimals(ours[k]) == decimals(v), f"{k}: ours {ours[k]!r}, recorded {v!r}"


class Http:
    """Unsigned GETs to one emulator."""

    def __init__(self, emu: BinanceEmulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session

    async def get(self, path: str, query: str = "") -> tuple[int, Any, int]:
        """(status, JSON body, X-MBX-USED-WEIGHT-1M)."""
        url = yarl.URL(f"{self.emu.url}{path}{'?' + query if query else ''}", encoded=True)
        async with self.session.get(url) as resp:
            return resp.status, orjson.loads(await resp.read()), int(resp.headers["X-MBX-USED-WEIGHT-1M"])

    async def weight_of(self, path: str, query: str = "") -> int:
        """The request weight one GET is charged."""
        before = self.emu.state()["used_weight_1m"]
        status, body, used = await self.get(path, query)
        assert status == 200, body
        return used - before


async def _http(market: Market, clock: ManualClock) -> AsyncIterator[Http]:
    emu = BinanceEmulator(market, api_key=API_KEY, api_secret=API_SECRET, symbols=SYMBOLS, clock=clock,
                          run_market=False)
    await emu.start()
    try:
        await emu.step(3)
        async with aiohttp.ClientSession() as session:
            yield Http(emu, session)
    finally:
        await emu.stop()


@pytest.fixture
async def spot(clock: ManualClock) -> AsyncIterator[Http]:
    async for h in _http(Market.SPOT, clock):
        yield h


@pytest.fixture
async def usdm(clock: ManualClock) -> AsyncIterator[Http]:
    async for h in _http(Market.USDM, clock):
        yield h


# ---------------------------------------------------------------- shapes


async def test_spot_market_endpoints_answer_in_the_recorded_shapes(spot: Http) -> None:
    q = "symbol=BTCUSDT"
    _, ticker, _ = await spot.get("/api/v3/ticker/24hr", q)
    assert_same_shape(ticker, recorded("nautilus_trader", "crate_test_data", "spot", "http_json",
                                       "ticker_24hr_response.json"), same_decimals=True)
    _, price, _ = await spot.get("/api/v3/ticker/price", q)
    assert_same_shape(price, py_resource("http_spot_market_ticker_price.json"), same_decimals=True)
    _, book, _ = await spot.get("/api/v3/ticker/bookTicker", q)
    assert_same_shape(book, py_resource("http_spot_market_book_ticker.json"), same_decimals=True)
    _, avg, _ = await spot.get("/api/v3/avgPrice", q)
    assert_same_shape(avg, recorded("nautilus_trader", "crate_test_data", "spot", "http_json",
                                    "avg_price_response.json"), same_decimals=True)
    _, trades, _ = await spot.get("/api/v3/trades", q)
    assert_same_shape(trades[0], py_resource("http_spot_market_trades.json")[0], same_decimals=True)
    assert_same_shape(trades[0], recorded("docs_spot", "rest", "GET_api_v3_trades.jsonc")[0])
    _, agg, _ = await spot.get("/api/v3/aggTrades", q)
    assert_same_shape(agg[0], py_resource("http_spot_market_agg_trades.json")[0], same_decimals=True)
    assert_same_shape(agg[0], recorded("docs_spot", "rest", "GET_api_v3_aggTrades.jsonc")[0])


async def test_usdm_market_endpoints_answer_in_the_recorded_shapes(usdm: Http) -> None:
    q = "symbol=BTCUSDT"
    _, ticker, _ = await usdm.get("/fapi/v1/ticker/24hr", q)
    assert_same_shape(ticker, py_resource("http_futures_market_ticker_24hr.json"))
    for path in ("/fapi/v1/ticker/price", "/fapi/v2/ticker/price"):
        _, price, _ = await usdm.get(path, q)
        assert_same_shape(price, py_resource("http_futures_market_ticker_price.json"))
    _, book, _ = await usdm.get("/fapi/v1/ticker/bookTicker", q)
    assert_same_shape(book, py_resource("http_futures_market_book_ticker.json"))
    _, mark, _ = await usdm.get("/fapi/v1/premiumIndex", q)
    assert_same_shape(mark, py_resource("http_futures_market_premium_index.json"))
    _, trades, _ = await usdm.get("/fapi/v1/trades", q)
    assert_same_shape(trades[0], py_resource("http_futures_market_trades.json")[0], added=("isRPITrade",))
    _, agg, _ = await usdm.get("/fapi/v1/aggTrades", q)
    assert_same_shape(agg[0], py_resource("http_futures_market_agg_trades.json")[0], added=("nq",))


async def test_one_symbol_is_an_object_none_an_array_of_every_symbol_and_symbols_an_array(spot: Http) -> None:
    for path in ("/api/v3/ticker/24hr", "/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
        _, one, _ = await spot.get(path, "symbol=ETHUSDT")
        assert isinstance(one, dict) and one["symbol"] == "ETHUSDT"
        _, every, _ = await spot.get(path)
        assert [r["symbol"] for r in every] == SYMBOLS
        _, listed, _ = await spot.get(path, "symbols=" + quote('["ETHUSDT","BTCUSDT"]'))
        assert [r["symbol"] for r in listed] == ["ETHUSDT", "BTCUSDT"]
        _, raw, _ = await spot.get(path, 'symbols=["BTCUSDT"]')
        assert [r["symbol"] for r in raw] == ["BTCUSDT"]


async def test_usdm_without_a_symbol_answers_every_symbol(usdm: Http) -> None:
    for path in ("/fapi/v1/ticker/24hr", "/fapi/v1/ticker/price", "/fapi/v1/ticker/bookTicker",
                 "/fapi/v1/premiumIndex"):
        _, every, _ = await usdm.get(path)
        assert [r["symbol"] for r in every] == SYMBOLS


# ---------------------------------------------------------------- errors and weights


@pytest.mark.parametrize("path", ["/api/v3/ticker/24hr", "/api/v3/ticker/price", "/api/v3/ticker/bookTicker",
                                  "/api/v3/avgPrice", "/api/v3/trades", "/api/v3/aggTrades"])
async def test_spot_unknown_symbol_is_minus_1121(spot: Http, path: str) -> None:
    status, body, _ = await spot.get(path, "symbol=NOPEUSDT")
    assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})


@pytest.mark.parametrize("path", ["/fapi/v1/ticker/24hr", "/fapi/v1/ticker/price", "/fapi/v2/ticker/price",
                                  "/fapi/v1/ticker/bookTicker", "/fapi/v1/trades", "/fapi/v1/aggTrades",
                                  "/fapi/v1/premiumIndex"])
async def test_usdm_unknown_symbol_is_minus_1121(usdm: Http, path: str) -> None:
    status, body, _ = await usdm.get(path, "symbol=NOPEUSDT")
    assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})


async def test_spot_symbol_with_symbols_and_malformed_symbols_are_refused(spot: Http) -> None:
    status, body, _ = await spot.get("/api/v3/ticker/24hr", "symbol=BTCUSDT&symbols=" + quote('["BTCUSDT"]'))
    assert (status, body["code"]) == (400, -1128)
    status, body, _ = await spot.get("/api/v3/ticker/price", "symbols=BTCUSDT")
    assert (status, body["code"]) == (400, -1100) and "'symbols'" in body["msg"]
    status, body, _ = await spot.get("/api/v3/trades")
    assert (status, body["code"]) == (400, -1102)


async def test_spot_market_endpoints_weigh_what_binance_charges(spot: Http) -> None:
    two = quote('["BTCUSDT","ETHUSDT"]')
    assert [await spot.weight_of(p, q) for p, q in [
        ("/api/v3/ticker/24hr", "symbol=BTCUSDT"), ("/api/v3/ticker/24hr", f"symbols={two}"),
        ("/api/v3/ticker/24hr", ""), ("/api/v3/ticker/price", "symbol=BTCUSDT"), ("/api/v3/ticker/price", ""),
        ("/api/v3/ticker/bookTicker", "symbol=BTCUSDT"), ("/api/v3/ticker/bookTicker", f"symbols={two}"),
        ("/api/v3/avgPrice", "symbol=BTCUSDT"), ("/api/v3/trades", "symbol=BTCUSDT"),
        ("/api/v3/aggTrades", "symbol=BTCUSDT"),
    ]] == [2, 2, 80, 2, 4, 2, 4, 2, 25, 4]


async def test_usdm_market_endpoints_weigh_what_binance_charges(usdm: Http) -> None:
    assert [await usdm.weight_of(p, q) for p, q in [
        ("/fapi/v1/ticker/24hr", "symbol=BTCUSDT"), ("/fapi/v1/ticker/24hr", ""),
        ("/fapi/v1/ticker/price", "symbol=BTCUSDT"), ("/fapi/v1/ticker/price", ""), ("/fapi/v2/ticker/price", ""),
        ("/fapi/v1/ticker/bookTicker", "symbol=BTCUSDT"), ("/fapi/v1/ticker/bookTicker", ""),
        ("/fapi/v1/trades", "symbol=BTCUSDT"), ("/fapi/v1/aggTrades", "symbol=BTCUSDT"),
        ("/fapi/v1/premiumIndex", "symbol=BTCUSDT"), ("/fapi/v1/premiumIndex", ""),
    ]] == [1, 40, 1, 2, 2, 2, 5, 5, 20, 1, 10]


async def test_depth_weighs_by_its_limit(spot: Http, usdm: Http) -> None:
    assert [await spot.weight_of("/api/v3/depth", f"symbol=BTCUSDT{q}") for q in (
        "", "&limit=5", "&limit=100", "&limit=500", "&limit=1000", "&limit=5000")] == [5, 5, 5, 25, 50, 250]
    assert [await usdm.weight_of("/fapi/v1/depth", f"symbol=BTCUSDT{q}") for q in (
        "", "&limit=5", "&limit=50", "&limit=100", "&limit=500", "&limit=1000")] == [10, 2, 2, 5, 10, 20]


async def test_spot_ticker_agrees_with_the_trades_and_the_depth_snapshot(spot: Http) -> None:
    _, trades, _ = await spot.get("/api/v3/trades", "symbol=BTCUSDT")
    _, ticker, _ = await spot.get("/api/v3/ticker/24hr", "symbol=BTCUSDT")
    _, depth, _ = await spot.get("/api/v3/depth", "symbol=BTCUSDT&limit=5")
    assert (ticker["lastPrice"], ticker["lastQty"], ticker["lastId"]) == \
        (trades[-1]["price"], trades[-1]["qty"], trades[-1]["id"])
    assert ticker["count"] == len(trades) == 3
    assert [ticker["bidPrice"], ticker["bidQty"]] == depth["bids"][0]
    assert [ticker["askPrice"], ticker["askQty"]] == depth["asks"][0]


# ---------------------------------------------------------------- a third-party client

ccxt_async = pytest.importorskip("ccxt.async_support")


async def _ccxt(market: Market) -> AsyncIterator[tuple[Any, BinanceEmulator]]:
    # A manual clock from now (ccxt's public calls are unsigned; the clock's start only
    # keeps the times realistic); the market ticks once a second when the test steps it.
    clock = ManualClock(time.time_ns())
    emu = BinanceEmulator(market, api_key=API_KEY, api_secret=API_SECRET, symbols=SYMBOLS, clock=clock,
                          run_market=False)
    await emu.start()
    spot = market is Market.SPOT
    ex = ccxt_async.binance({
        "apiKey": API_KEY, "secret": API_SECRET, "enableRateLimit": False,
        "options": {"fetchMarkets": {"types": ["spot"] if spot else ["linear"]}, "fetchCurrencies": False,
                    "fetchMargins": False, "defaultType": "spot" if spot else "swap"},
    })
    # Every base URL points at the emulator: nothing this client does can leave loopback.
    ex.urls["api"] = {k: f"{emu.url}{urlsplit(v).path}" for k, v in ex.urls["api"].items()}
    try:
        for _ in range(5):
            clock.advance(1.0)
            await emu.step()
        yield ex, emu
    finally:
        await ex.close()
        await emu.stop()


@pytest.fixture
async def ccxt_spot() -> AsyncIterator[tuple[Any, BinanceEmulator]]:
    async for pair in _ccxt(Market.SPOT):
        yield pair


@pytest.fixture
async def ccxt_usdm() -> AsyncIterator[tuple[Any, BinanceEmulator]]:
    async for pair in _ccxt(Market.USDM):
        yield pair


def tape(emu: BinanceEmulator, symbol: str = "BTCUSDT") -> list[Any]:
    return list(emu.exchange.tape[symbol])


async def _reads_market_data_consistently(ex: Any, emu: BinanceEmulator, sym: str, eth: str) -> None:
    ticker = await ex.fetch_ticker(sym)
    fetched = await ex.fetch_trades(sym)
    trades = tape(emu)
    book_top = emu.rest.public.book_top("BTCUSDT")
    assert ticker["last"] == float(trades[-1].price) and ticker["open"] == float(trades[0].price)
    assert ticker["baseVolume"] == float(sum(t.qty for t in trades))
    assert ticker["high"] == float(max(t.price for t in trades))
    assert ticker["low"] == float(min(t.price for t in trades))
    tickers = await ex.fetch_tickers([sym, eth])
    assert set(tickers) == {sym, eth} and tickers[sym]["last"] == ticker["last"]
    assert tickers[eth]["last"] == float(tape(emu, "ETHUSDT")[-1].price)
    assert [(t["id"], t["price"], t["amount"], t["timestamp"], t["side"]) for t in fetched] == \
        [(str(t.trade_id), float(t.price), float(t.qty), t.time_ms, "sell" if t.buyer_maker else "buy")
         for t in trades]
    since = await ex.fetch_trades(sym, since=trades[2].time_ms)
    assert [t["id"] for t in since] == [str(t.trade_id) for t in trades[2:]]
    book = await ex.fetch_order_book(sym, 5)
    assert book["bids"][0] == [float(book_top[0]), float(book_top[1])]
    assert book["asks"][0] == [float(book_top[2]), float(book_top[3])]
    bids_asks = await ex.fetch_bids_asks([sym])
    assert (bids_asks[sym]["bid"], bids_asks[sym]["ask"]) == (book["bids"][0][0], book["asks"][0][0])
    last_prices = await ex.fetch_last_prices([sym])
    assert last_prices[sym]["price"] == ticker["last"]
    candles = await ex.fetch_ohlcv(sym, "1m", limit=5)
    assert len(candles) == 5 and candles[-1][4] == 60_000.0  # the past ends where the market started
    assert all(c[0] < trades[0].time_ms for c in candles)  # the klines are the market's past


async def test_ccxt_reads_spot_tickers_trades_books_and_klines_from_the_streams_state(
        ccxt_spot: tuple[Any, BinanceEmulator]) -> None:
    ex, emu = ccxt_spot
    await _reads_market_data_consistently(ex, emu, "BTC/USDT", "ETH/USDT")
    ticker = await ex.fetch_ticker("BTC/USDT")
    top = emu.rest.public.book_top("BTCUSDT")
    assert (ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]) == tuple(float(v) for v in top)


async def test_ccxt_reads_usdm_tickers_trades_books_klines_and_mark_price_from_the_streams_state(
        ccxt_usdm: tuple[Any, BinanceEmulator]) -> None:
    ex, emu = ccxt_usdm
    sym = "BTC/USDT:USDT"
    await _reads_market_data_consistently(ex, emu, sym, "ETH/USDT:USDT")
    funding = await ex.fetch_funding_rate(sym)
    assert funding["markPrice"] == float(tape(emu)[-1].price) and funding["fundingRate"] == 0.0001
    assert Decimal(str(funding["markPrice"])) == emu.exchange.futures.marks[emu.exchange.ids["BTCUSDT"]]
