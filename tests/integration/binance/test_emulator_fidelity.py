"""The emulator speaks Binance: its payloads carry the fields of real recorded payloads and
parse with the same parsers (venues/binance/parse.py) that parse the real fixtures.

Reference payloads: live captures (hftbacktest 2024, cryptofeed 2021) for streams, Binance's
documentation examples for REST and user data, nautilus' USD-M fixtures for USD-M shapes.
"""

from __future__ import annotations

import gzip
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
import yarl

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import AuthError, OrderRejected, RateLimited, VenueBanned
from nautilus_hmm.venues.binance.auth import API_KEY_HEADER, Credentials, signed_query
from nautilus_hmm.venues.binance.emulator.exchange import EmulatedExchange
from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.errors import TimestampError, classify
from nautilus_hmm.venues.binance.instruments import parse_exchange_info
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import (
    AccountBalances,
    AccountUpdate,
    BinanceParser,
    DepthDiff,
    OrderUpdate,
    parse_account_trades,
    parse_balances,
    parse_depth_snapshot,
    parse_new_order_response,
    parse_order,
    parse_orders,
    parse_positions,
)
from tests.conftest import fixture_path
from tests.integration.binance.conftest import API_KEY, API_SECRET
from tests.unit.venues.binance.jsonc import load_jsonc

NOW_NS = 1_700_000_000 * 10**9


def keys(d: dict[str, Any]) -> set[str]:
    return set(d)


def capture_keys(name: str) -> dict[str, set[str]]:
    """Field names of the first frame of each stream kind in a live hftbacktest capture."""
    out: dict[str, set[str]] = {}
    with gzip.open(fixture_path("marketdata", "binance_ws_captures_hftbacktest", name)) as fh:
        for line in fh:
            d = orjson.loads(line.split(b" ", 1)[1])
            kind = d["stream"].split("@", 1)[1].split("@", 1)[0]
            out.setdefault(kind, set(d["data"]))
            if len(out) == 3:
                return out
    return out


def jsonc(*parts: str) -> Any:
    return load_jsonc(fixture_path("binance", *parts))


def nautilus(*parts: str) -> Any:
    return orjson.loads(fixture_path("binance", "nautilus_trader", *parts).read_bytes())


def ticked(market: Market) -> tuple[EmulatedExchange, dict[str, dict[str, Any]]]:
    ex = EmulatedExchange(market, ["BTCUSDT"], start_ns=NOW_NS)
    ex.want_kline("BTCUSDT", "1m")
    frames: dict[str, dict[str, Any]] = {}
    for i in range(3):
        for stream, payload in ex.tick(NOW_NS + i * 30 * 10**9).market:
            frames[stream] = payload
    return ex, frames


# ---------------------------------------------------------------- market streams


@pytest.mark.parametrize("market,capture", [(Market.SPOT, "spot_btcusdt_20240808.gz"),
                                            (Market.USDM, "usdm_btcusdt_20240808.gz")])
def test_trade_book_ticker_and_depth_frames_have_the_live_capture_fields(market: Market, capture: str) -> None:
    _, frames = ticked(market)
    live = capture_keys(capture)
    assert keys(frames["btcusdt@trade"]) == live["trade"]
    assert keys(frames["btcusdt@bookTicker"]) == live["bookTicker"]
    assert keys(frames["btcusdt@depth@100ms"]) == live["depth"]


def test_spot_agg_trade_and_kline_frames_have_the_documented_fields() -> None:
    _, frames = ticked(Market.SPOT)
    assert keys(frames["btcusdt@aggTrade"]) == keys(jsonc("docs_spot", "ws_streams", "aggTrade.jsonc"))
    doc = jsonc("docs_spot", "ws_streams", "kline_1m.jsonc")
    assert keys(frames["btcusdt@kline_1m"]) == keys(doc)
    assert keys(frames["btcusdt@kline_1m"]["k"]) == keys(doc["k"])


def test_usdm_mark_price_frame_has_the_recorded_fields() -> None:
    _, frames = ticked(Market.USDM)
    recorded = nautilus("crate_test_data", "futures", "market_data_json", "mark_price_stream.json")
    assert keys(recorded) - {"st"} <= keys(frames["btcusdt@markPrice@1s"])


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_every_market_frame_parses_with_the_adapter_parser(market: Market) -> None:
    _, frames = ticked(market)
    parser = BinanceParser(market)
    parsed = {stream: parser.market_event(payload, NOW_NS) for stream, payload in frames.items()}
    assert all(v is not None for s, v in parsed.items() if "kline" not in s)
    assert isinstance(parsed["btcusdt@depth@100ms"], DepthDiff)


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_depth_snapshot_lines_up_with_the_diff_stream(market: Market) -> None:
    ex = EmulatedExchange(market, ["BTCUSDT"], start_ns=NOW_NS)
    ex.tick(NOW_NS)
    snap = parse_depth_snapshot(ex.depth_snapshot("BTCUSDT", 1000, NOW_NS // 10**6), BinanceParser(market).ids("BTCUSDT"),
                                NOW_NS)
    diff = next(p for s, p in ex.tick(NOW_NS + 10**9).market if s.endswith("@depth@100ms"))
    assert diff["U"] == snap.last_update_id + 1
    if market is Market.USDM:
        assert diff["pu"] == snap.last_update_id


# ---------------------------------------------------------------- REST and user data over HTTP


class Client:
    """Signed raw requests to the emulator."""

    def __init__(self, emu: BinanceEmulator, session: aiohttp.ClientSession, clock: ManualClock) -> None:
        self.emu = emu
        self.session = session
        self.clock = clock
        self.creds = Credentials(API_KEY, API_SECRET)

    async def call(self, method: str, path: str, params: dict[str, Any] | None = None, *, signed: bool = True,
                   key: str | None = API_KEY, skew_ms: int = 0) -> tuple[int, Any, dict[str, str]]:
        query = signed_query(self.creds, params or {}, timestamp_ms=self.clock.time_ns() // 10**6 + skew_ms) \
            if signed else "&".join(f"{k}={v}" for k, v in (params or {}).items())
        url = yarl.URL(f"{self.emu.url}{path}?{query}", encoded=True)
        headers = {API_KEY_HEADER: key} if key else {}
        async with self.session.request(method, url, headers=headers) as resp:
            return resp.status, orjson.loads(await resp.read()), dict(resp.headers)


@pytest.fixture
async def spot_http(clock: ManualClock) -> Any:
    emu = BinanceEmulator(Market.SPOT, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False)
    await emu.start()
    async with aiohttp.ClientSession() as session:
        yield Client(emu, session, clock)
    await emu.stop()


@pytest.fixture
async def usdm_http(clock: ManualClock) -> Any:
    emu = BinanceEmulator(Market.USDM, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False)
    await emu.start()
    async with aiohttp.ClientSession() as session:
        yield Client(emu, session, clock)
    await emu.stop()


async def test_spot_exchange_info_parses_with_every_symbol_tradable(spot_http: Client) -> None:
    status, body, headers = await spot_http.call("GET", "/api/v3/exchangeInfo", signed=False, key=None)
    assert status == 200 and "X-MBX-USED-WEIGHT-1M" in headers
    info = parse_exchange_info(body, Market.SPOT)
    assert info.skipped == () and len(info.instruments) == 1
    real = nautilus("py_test_resources", "http_responses", "http_spot_market_exchange_info.json")["symbols"][0]
    assert keys(real) - {"quoteOrderQtyMarketAllowed"} <= keys(body["symbols"][0]) | {"quoteOrderQtyMarketAllowed"}


async def test_spot_order_lifecycle_bodies_have_the_documented_fields_and_parse(spot_http: Client) -> None:
    c = spot_http
    status, full, _ = await c.call("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                             "quantity": "0.01", "newClientOrderId": "f-1"})
    assert status == 200
    assert keys(jsonc("docs_spot", "rest", "POST_api_v3_order_FULL.jsonc")) <= keys(full)
    assert keys(jsonc("docs_spot", "rest", "POST_api_v3_order_FULL.jsonc")["fills"][0]) <= keys(full["fills"][0])
    nr = parse_new_order_response(full, "binance_spot")
    assert nr.order is not None and nr.fills and nr.fills[0].qty == Decimal("0.01")
    _, result, _ = await c.call("POST", "/api/v3/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
        "price": "50000", "newClientOrderId": "f-2", "newOrderRespType": "RESULT"})
    assert keys(jsonc("docs_spot", "rest", "POST_api_v3_order_RESULT.jsonc")) <= keys(result)
    _, got, _ = await c.call("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "f-2"})
    assert keys(jsonc("docs_spot", "rest", "GET_api_v3_order.jsonc")) <= keys(got)
    assert parse_order(got, "binance_spot").client_order_id == "f-2"
    _, opened, _ = await c.call("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert [o.client_order_id for o in parse_orders(opened, "binance_spot")] == ["f-2"]
    _, canceled, _ = await c.call("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "f-2"})
    assert keys(jsonc("docs_spot", "rest", "DELETE_api_v3_order.jsonc")) <= keys(canceled)
    assert parse_order(canceled, "binance_spot").client_order_id == "f-2"
    _, trades, _ = await c.call("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    assert keys(jsonc("docs_spot", "rest", "GET_api_v3_myTrades.jsonc")[0]) <= keys(trades[0])
    assert len(parse_account_trades(trades, "binance_spot")) == 1
    _, account, _ = await c.call("GET", "/api/v3/account")
    assert keys(jsonc("docs_spot", "rest", "GET_api_v3_account.jsonc")) <= keys(account)
    assert {b.asset for b in parse_balances(account)} >= {"BTC", "USDT"}


async def test_spot_user_events_have_the_documented_fields_and_parse(clock: ManualClock) -> None:
    ex = EmulatedExchange(Market.SPOT, ["BTCUSDT"], start_ns=NOW_NS)
    _, events = ex.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
                              "newClientOrderId": "u-1"}, NOW_NS)
    doc = jsonc("docs_spot", "user_data_stream_2025-10_listenKey_era", "executionReport.jsonc")
    reports = [e for e in events if e["e"] == "executionReport"]
    assert [r["x"] for r in reports] == ["NEW", "TRADE"]
    assert keys(doc) - {"v"} <= keys(reports[1])
    doc_pos = jsonc("docs_spot", "user_data_stream_2025-10_listenKey_era", "outboundAccountPosition.jsonc")
    position = next(e for e in events if e["e"] == "outboundAccountPosition")
    assert keys(doc_pos) <= keys(position)
    parser = BinanceParser(Market.SPOT)
    parsed = [parser.user_event(e) for e in events]
    trade = next(p for p in parsed if isinstance(p, OrderUpdate) and p.fill is not None)
    assert trade.fill is not None and trade.fill.client_order_id == "u-1"
    assert any(isinstance(p, AccountBalances) for p in parsed)


async def test_usdm_bodies_and_events_have_the_recorded_fields_and_parse(usdm_http: Client) -> None:
    c = usdm_http
    status, order, _ = await c.call("POST", "/fapi/v1/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010",
        "price": "50000.0", "newClientOrderId": "uf-1", "newOrderRespType": "RESULT"})
    assert status == 200
    assert keys(nautilus("crate_test_data", "futures", "http_json", "order_response.json")) <= keys(order)
    assert parse_new_order_response(order, "binance_usdm").order is not None
    _, positions, _ = await c.call("GET", "/fapi/v3/positionRisk")
    assert parse_positions(positions, "binance_usdm")[0].qty == 0
    _, account, _ = await c.call("GET", "/fapi/v3/account")
    assert parse_balances(account)[0].asset == "USDT"
    ex = c.emu.exchange
    _, events = ex.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.010",
                              "newClientOrderId": "uf-2"}, NOW_NS)
    recorded = nautilus("crate_test_data", "futures", "user_data_json", "order_update_trade.json")
    update = next(e for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE")
    assert keys(recorded) <= keys(update) and keys(recorded["o"]) <= keys(update["o"])
    recorded_acct = nautilus("crate_test_data", "futures", "user_data_json", "account_update.json")
    acct = next(e for e in events if e["e"] == "ACCOUNT_UPDATE")
    assert keys(recorded_acct["a"]["P"][0]) <= keys(acct["a"]["P"][0])
    parser = BinanceParser(Market.USDM)
    parsed = [parser.user_event(e) for e in events]
    assert any(isinstance(p, AccountUpdate) and p.positions[0].qty == Decimal("-0.010") for p in parsed)
    _, trades, _ = await c.call("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
    recorded_trade = nautilus("py_test_resources", "http_responses", "http_futures_account_trades.json")[0]
    assert keys(recorded_trade) <= keys(trades[0])


# ---------------------------------------------------------------- errors


async def test_error_answers_classify_to_the_right_types(spot_http: Client) -> None:
    c = spot_http
    now = c.clock.time_ns()

    async def err(*a: Any, **kw: Any) -> Any:
        status, body, headers = await c.call(*a, **kw)
        return classify(status, body, venue="binance_spot", order_entry=False, now_ns=now, headers=headers)

    assert isinstance(await err("GET", "/api/v3/account", key=None), AuthError)
    assert isinstance(await err("GET", "/api/v3/account", key="wrong" * 8), AuthError)
    assert isinstance(await err("GET", "/api/v3/account", skew_ms=-60_000), TimestampError)
    unknown = await err("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"})
    assert isinstance(unknown, OrderRejected) and unknown.code == "-2013"
    bad_sig = Credentials(API_KEY, "another-secret")
    c.creds = bad_sig
    forged = await err("GET", "/api/v3/account")
    assert isinstance(forged, AuthError) and forged.code == "-1022"


async def test_requests_during_a_429_backoff_get_the_ip_banned_except_those_that_crossed_it(spot_http: Client) -> None:
    c = spot_http
    c.emu.weight_limit_1m = 25
    status, body, headers = await c.call("GET", "/api/v3/exchangeInfo", signed=False, key=None)
    assert status == 200
    status, body, headers = await c.call("GET", "/api/v3/exchangeInfo", signed=False, key=None)
    limited = classify(status, body, venue="v", order_entry=False, now_ns=c.clock.time_ns(), headers=headers)
    assert status == 429 and isinstance(limited, RateLimited) and limited.retry_after_s > 0
    # A request that crossed the 429 on the wire gets the 429 again, not a ban ...
    status, body, headers = await c.call("GET", "/api/v3/time", signed=False, key=None)
    assert status == 429 and c.emu.bans == 0
    # ... one sent after the 429 could have been read is a failure to back off: banned.
    c.clock.advance(0.2)
    status, body, headers = await c.call("GET", "/api/v3/time", signed=False, key=None)
    banned = classify(status, body, venue="v", order_entry=False, now_ns=c.clock.time_ns(), headers=headers)
    assert status == 418 and isinstance(banned, VenueBanned)
    assert banned.until_ns == c.emu.banned_until_ms * 10**6
