"""The Bybit emulator's /v5 REST over loopback: auth, orders, paging, windows, faults.

The emulator runs on a ManualClock (server time, rate-limit windows and bans move only
when a test advances it) and its market does not tick on its own. Requests are signed
here with a few lines written from Bybit's rule (timestamp + key + recv_window + query or
body), independently of the adapter's signer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

API_KEY = "bybitEmuKey0123456789"
API_SECRET = "bybitEmuSecret0123456789abcdef"
NS_PER_MS = 1_000_000
DAY_MS = 86_400_000


class Client:
    """A minimal signed Bybit v5 client (what the tests send is exactly what is signed)."""

    def __init__(self, emu: BybitEmulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session
        self.key = API_KEY
        self.secret = API_SECRET
        self.recv_window = "5000"

    def headers(self, payload: str, ts_ms: int | None = None) -> dict[str, str]:
        ts = str(ts_ms if ts_ms is not None else self.emu.clock.time_ns() // NS_PER_MS)
        sign = hmac.new(self.secret.encode(), f"{ts}{self.key}{self.recv_window}{payload}".encode(),
                        hashlib.sha256).hexdigest()
        return {"X-BAPI-API-KEY": self.key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": self.recv_window,
                "X-BAPI-SIGN": sign}

    async def get(self, path: str, params: dict[str, Any] | None = None, *, signed: bool = True,
                  ts_ms: int | None = None) -> tuple[int, dict[str, str], Any]:
        query = urlencode(params or {})
        headers = self.headers(query, ts_ms) if signed else {}
        async with self.session.get(f"{self.emu.url}{path}?{query}", headers=headers) as r:
            text = await r.text()
            return r.status, dict(r.headers), orjson.loads(text) if r.content_type == "application/json" else text

    async def post(self, path: str, body: dict[str, Any] | str, *, ts_ms: int | None = None
                   ) -> tuple[int, dict[str, str], Any]:
        raw = body if isinstance(body, str) else orjson.dumps(body).decode()
        headers = {**self.headers(raw, ts_ms), "Content-Type": "application/json"}
        async with self.session.post(f"{self.emu.url}{path}", data=raw, headers=headers) as r:
            text = await r.text()
            return r.status, dict(r.headers), orjson.loads(text) if r.content_type == "application/json" else text

    async def ok(self, method: str, path: str, params: dict[str, Any]) -> Any:
        """`result` of a request that must succeed."""
        if method == "GET":
            _, _, body = await self.get(path, params)
        else:
            _, _, body = await self.post(path, params)
        assert body["retCode"] == 0, body
        return body["result"]

    async def create(self, **params: Any) -> dict[str, Any]:
        """POST /v5/order/create; the whole envelope."""
        _, _, body = await self.post("/v5/order/create", params)
        return body


@pytest.fixture
async def emu_client() -> AsyncIterator[tuple[BybitEmulator, Client]]:
    clock = ManualClock(1_750_000_000_000 * NS_PER_MS)
    emu = BybitEmulator(api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT", "ETHUSDT"], clock=clock,
                        run_market=False)
    await emu.start()
    async with aiohttp.ClientSession() as session:
        yield emu, Client(emu, session)
    await emu.stop()


# ---------------------------------------------------------------- authentication


async def test_signed_request_with_the_right_signature_passes_and_carries_limit_headers(emu_client) -> None:
    emu, c = emu_client
    status, headers, body = await c.get("/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "USDT"})
    assert status == 200 and body["retCode"] == 0
    coin = body["result"]["list"][0]["coin"]
    assert [r["coin"] for r in coin] == ["USDT"] and Decimal(coin[0]["walletBalance"]) == 100_000
    assert headers["X-Bapi-Limit"] == "50" and headers["X-Bapi-Limit-Status"] == "49"
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > emu.server_ms()


async def test_wrong_key_is_10003_wrong_signature_is_10004(emu_client) -> None:
    _emu, c = emu_client
    c.key = "someoneElse"
    _, _, body = await c.get("/v5/order/realtime", {"category": "spot"})
    assert body["retCode"] == 10003
    c.key, c.secret = API_KEY, "wrongSecret"
    _, _, body = await c.get("/v5/order/realtime", {"category": "spot"})
    assert body["retCode"] == 10004 and "origin_string" in body["retMsg"]


async def test_signature_over_other_bytes_than_the_body_sent_is_refused(emu_client) -> None:
    emu, c = emu_client
    raw = orjson.dumps({"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
                        "qty": "0.01", "price": "50000", "orderLinkId": "x1"}).decode()
    headers = {**c.headers(raw.replace("0.01", "0.02")), "Content-Type": "application/json"}
    async with c.session.post(f"{emu.url}/v5/order/create", data=raw, headers=headers) as r:
        body = await r.json()
    assert body["retCode"] == 10004
    assert emu.exchange.orders == {}


async def test_timestamp_outside_the_recv_window_is_10002_and_nothing_executes(emu_client) -> None:
    emu, c = emu_client
    now_ms = emu.clock.time_ns() // NS_PER_MS
    _, _, body = await c.post("/v5/order/create", {"category": "spot", "symbol": "BTCUSDT", "side": "Buy",
                                                   "orderType": "Limit", "qty": "0.01", "price": "50000"},
                              ts_ms=now_ms - 6000)
    assert body["retCode"] == 10002 and "recv_window" in body["retMsg"]
    # A skewed server clock (the fault) refuses a correct client the same way.
    await emu.set_faults({"time_skew_ms": 30_000})
    _, _, body = await c.get("/v5/order/realtime", {"category": "spot"})
    assert body["retCode"] == 10002
    _, _, body = await c.get("/v5/market/time", signed=False)
    assert int(body["result"]["timeNano"]) // NS_PER_MS == now_ms + 30_000
    assert emu.exchange.orders == {}


async def test_a_body_that_is_not_json_is_10001_naming_it(emu_client) -> None:
    _emu, c = emu_client
    _, _, body = await c.post("/v5/order/create", '{"category": "spot", "qty": ')
    assert body["retCode"] == 10001 and "JSON" in body["retMsg"]


# ---------------------------------------------------------------- orders


async def test_duplicate_order_link_id_is_110072_and_the_first_order_stays(emu_client) -> None:
    _emu, c = emu_client
    order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.01",
             "price": "50000", "orderLinkId": "dup-1"}
    first = await c.create(**order)
    assert first["retCode"] == 0 and first["result"]["orderLinkId"] == "dup-1"
    second = await c.create(**order)
    assert second["retCode"] == 110072
    rows = (await c.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "dup-1"}))["list"]
    assert len(rows) == 1 and rows[0]["orderId"] == first["result"]["orderId"] and rows[0]["orderStatus"] == "New"


async def test_spot_market_buy_qty_is_quote_unless_market_unit_is_base_coin(emu_client) -> None:
    _emu, c = emu_client
    by_quote = await c.create(category="spot", symbol="BTCUSDT", side="Buy", orderType="Market", qty="600",
                              orderLinkId="mq")
    by_base = await c.create(category="spot", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.01",
                             marketUnit="baseCoin", orderLinkId="mb")
    assert by_quote["retCode"] == 0 and by_base["retCode"] == 0
    q = (await c.ok("GET", "/v5/order/history", {"category": "spot", "orderLinkId": "mq"}))["list"][0]
    b = (await c.ok("GET", "/v5/order/history", {"category": "spot", "orderLinkId": "mb"}))["list"][0]
    assert q["marketUnit"] == "quoteCoin" and Decimal(q["cumExecValue"]) <= 600
    assert Decimal(q["cumExecQty"]) < Decimal("0.011")  # 600 USDT at ~60,000 is ~0.01 BTC, not 600 BTC
    assert b["marketUnit"] == "baseCoin" and Decimal(b["cumExecQty"]) == Decimal("0.01")
    assert q["orderStatus"] == b["orderStatus"] == "Filled"


async def test_insufficient_balance_has_bybit_codes_per_category(emu_client) -> None:
    emu, c = emu_client
    spot = await c.create(category="spot", symbol="BTCUSDT", side="Sell", orderType="Limit", qty="5",
                          price="60000")
    assert spot["retCode"] == 170131
    linear = await c.create(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="500",
                            price="60000")
    assert linear["retCode"] == 110007 and linear["retMsg"] == "Insufficient available balance"
    assert emu.exchange.orders == {}


async def test_cancel_of_an_unknown_or_finished_order_is_order_does_not_exist(emu_client) -> None:
    _emu, c = emu_client
    _, _, body = await c.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                   "orderLinkId": "never"})
    assert body["retCode"] == 110001
    await c.create(category="spot", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.001",
                   marketUnit="baseCoin", orderLinkId="done")
    _, _, body = await c.post("/v5/order/cancel", {"category": "spot", "symbol": "BTCUSDT", "orderLinkId": "done"})
    assert body["retCode"] == 170213


async def test_resting_limit_fills_on_a_later_trade_and_reports_a_trade_execution(emu_client) -> None:
    emu, c = emu_client
    last = Decimal((await c.ok("GET", "/v5/market/tickers", {"category": "linear", "symbol": "BTCUSDT"}))
                   ["list"][0]["lastPrice"])
    # Inside the spread: it rests (not marketable), and fills once a trade prints at or above it.
    assert (await c.create(category="linear", symbol="BTCUSDT", side="Sell", orderType="Limit", qty="0.01",
                           price=str(last + Decimal("0.1")), orderLinkId="rest-1"))["retCode"] == 0
    assert emu.exchange.executions == []
    for _ in range(200):  # the seeded market wanders up to the limit (bounded)
        emu.clock.advance(60)
        await emu.step()
        if emu.exchange.executions:
            break
    execs = (await c.ok("GET", "/v5/execution/list", {"category": "linear", "orderLinkId": "rest-1"}))["list"]
    assert [e["execType"] for e in execs] == ["Trade"] and execs[0]["isMaker"] is True
    filled = Decimal(execs[0]["execQty"])  # the print may be smaller than the order: a partial fill
    order = (await c.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "rest-1"}))["list"][0]
    assert Decimal(order["cumExecQty"]) == filled
    assert order["orderStatus"] == ("Filled" if filled == Decimal("0.01") else "PartiallyFilled")
    pos = (await c.ok("GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"}))["list"][0]
    assert pos["side"] == "Sell" and Decimal(pos["size"]) == filled and pos["positionIdx"] == 0


async def test_funding_is_an_execution_but_not_a_trade(emu_client) -> None:
    emu, c = emu_client
    await c.create(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.01")
    await emu.settle_funding("BTCUSDT")
    execs = (await c.ok("GET", "/v5/execution/list", {"category": "linear"}))["list"]
    assert sorted(e["execType"] for e in execs) == ["Funding", "Trade"]
    trades = (await c.ok("GET", "/v5/execution/list", {"category": "linear", "execType": "Trade"}))["list"]
    assert len(trades) == 1


async def test_an_instrument_that_leaves_trading_refuses_orders_and_is_listed_so(emu_client) -> None:
    emu, c = emu_client
    emu.exchange.set_status("spot", "ETHUSDT", "Closed")
    info = await c.ok("GET", "/v5/market/instruments-info", {"category": "spot", "symbol": "ETHUSDT"})
    assert info["list"][0]["status"] == "Closed"
    body = await c.create(category="spot", symbol="ETHUSDT", side="Buy", orderType="Limit", qty="0.1",
                          price="2000")
    assert body["retCode"] != 0 and "not trading" in body["retMsg"]


# ---------------------------------------------------------------- paging and windows


async def test_instruments_page_by_cursor_until_it_is_empty(emu_client) -> None:
    _emu, c = emu_client
    seen, cursor, pages = [], "", 0
    while True:
        params = {"category": "linear", "limit": 1, **({"cursor": cursor} if cursor else {})}
        res = await c.ok("GET", "/v5/market/instruments-info", params)
        seen += [r["symbol"] for r in res["list"]]
        pages += 1
        cursor = res["nextPageCursor"]
        if not cursor:
            break
    assert seen == ["BTCUSDT", "ETHUSDT"] and pages == 2
    _, _, body = await c.get("/v5/market/instruments-info", {"category": "linear", "cursor": "garbage"},
                             signed=False)
    assert body["retCode"] == 10001 and "cursor" in body["retMsg"]


async def test_klines_come_newest_first_and_end_before_the_start(emu_client) -> None:
    emu, c = emu_client
    res = await c.ok("GET", "/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "1",
                                                 "limit": 5})
    starts = [int(r[0]) for r in res["list"]]
    assert starts == sorted(starts, reverse=True) and len(starts) == 5
    assert all(b - a == 60_000 for a, b in zip(starts[1:], starts, strict=False))
    assert starts[0] < emu.clock.time_ns() // NS_PER_MS
    end = starts[2]
    older = await c.ok("GET", "/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "1",
                                                   "end": end, "limit": 2})
    assert [int(r[0]) for r in older["list"]] == starts[2:4]
    _, _, body = await c.get("/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "7"},
                             signed=False)
    assert body["retCode"] == 10001


async def test_execution_list_pages_by_cursor_and_refuses_more_than_seven_days(emu_client) -> None:
    emu, c = emu_client
    for i in range(5):
        await c.create(category="spot", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.001",
                       marketUnit="baseCoin", orderLinkId=f"e{i}")
        emu.clock.advance(1)
    ids, cursor = [], ""
    while True:
        res = await c.ok("GET", "/v5/execution/list", {"category": "spot", "limit": 2,
                                                       **({"cursor": cursor} if cursor else {})})
        ids += [r["orderLinkId"] for r in res["list"]]
        cursor = res["nextPageCursor"]
        if not cursor:
            break
    assert ids == ["e4", "e3", "e2", "e1", "e0"]
    now = emu.clock.time_ns() // NS_PER_MS
    _, _, body = await c.get("/v5/execution/list", {"category": "spot", "startTime": now - 8 * DAY_MS,
                                                    "endTime": now})
    assert body["retCode"] == 10001 and "7 days" in body["retMsg"]
    old = await c.ok("GET", "/v5/execution/list", {"category": "spot", "endTime": now - 60_000})
    assert old["list"] == []


# ---------------------------------------------------------------- faults


async def test_rate_limit_fault_is_10006_with_status_zero_and_the_reset(emu_client) -> None:
    emu, c = emu_client
    await emu.set_faults({"rate_limit": {"path": "/v5/order/create", "count": 1, "reset_ms": 2500}})
    _, headers, body = await c.post("/v5/order/create", {"category": "spot", "symbol": "BTCUSDT", "side": "Buy",
                                                         "orderType": "Limit", "qty": "0.01", "price": "50000"})
    assert body["retCode"] == 10006 and headers["X-Bapi-Limit-Status"] == "0"
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) == emu.server_ms() + 2500
    assert emu.exchange.orders == {}
    again = await c.create(category="spot", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.01",
                           price="50000")
    assert again["retCode"] == 0


async def test_real_rate_limit_counts_per_endpoint_per_second(emu_client) -> None:
    emu, c = emu_client
    codes = []
    for _ in range(21):
        _, headers, body = await c.post("/v5/order/cancel", {"category": "spot", "symbol": "BTCUSDT",
                                                             "orderLinkId": "none"})
        codes.append(body["retCode"])
    assert codes[:20] == [170213] * 20 and codes[20] == 10006
    emu.clock.advance(1.0)
    _, headers, body = await c.post("/v5/order/cancel", {"category": "spot", "symbol": "BTCUSDT",
                                                         "orderLinkId": "none"})
    assert body["retCode"] == 170213 and headers["X-Bapi-Limit-Status"] == "19"


async def test_ip_ban_is_http_403_for_ten_minutes(emu_client) -> None:
    emu, c = emu_client
    await emu.set_faults({"ip_ban_s": 600})
    status, _, body = await c.get("/v5/market/time", signed=False)
    assert status == 403 and "access too frequent" in body
    emu.clock.advance(599)
    assert (await c.get("/v5/market/time", signed=False))[0] == 403
    emu.clock.advance(2)
    assert (await c.get("/v5/market/time", signed=False))[0] == 200


async def test_too_many_requests_from_the_ip_get_it_banned(emu_client) -> None:
    emu, c = emu_client
    emu.ip_limit_5s = 5
    statuses = [(await c.get("/v5/market/time", signed=False))[0] for _ in range(7)]
    assert statuses == [200] * 5 + [403, 403] and emu.rest.bans == 1


async def test_an_error_after_execution_leaves_the_order_on_the_venue(emu_client) -> None:
    emu, c = emu_client
    await emu.set_faults({"errors": [{"path": "/v5/order/create", "ret_code": 10016, "http_status": 502,
                                      "execute": True}]})
    status, _, body = await c.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                        "orderType": "Limit", "qty": "0.01", "price": "50000",
                                                        "orderLinkId": "5xx-1"})
    assert status == 502 and body["retCode"] == 10016
    rows = (await c.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "5xx-1"}))["list"]
    assert len(rows) == 1 and rows[0]["orderStatus"] == "New"


async def test_an_error_before_execution_leaves_nothing(emu_client) -> None:
    emu, c = emu_client
    await emu.set_faults({"errors": [{"path": "/v5/order/create", "ret_code": 10016, "http_status": 503}]})
    status, _, _ = await c.post("/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                                     "orderType": "Limit", "qty": "0.01", "price": "50000",
                                                     "orderLinkId": "503-1"})
    assert status == 503 and emu.exchange.orders == {}


async def test_withheld_answer_after_execution_the_order_is_found_by_query(emu_client) -> None:
    emu, c = emu_client
    await emu.set_faults({"withhold_order_responses": 1})
    body = orjson.dumps({"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
                         "qty": "0.01", "price": "50000", "orderLinkId": "held-1"}).decode()
    headers = {**c.headers(body), "Content-Type": "application/json"}

    async def send() -> None:
        async with c.session.post(f"{emu.url}/v5/order/create", data=body, headers=headers) as r:
            await r.read()

    task = asyncio.get_running_loop().create_task(send())
    deadline = asyncio.get_running_loop().time() + 5.0  # bounded: until it is executed and held back
    while not emu.withheld_orders and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.001)
    assert emu.withheld_orders[0]["order_link_id"] == "held-1" and not task.done()
    rows = (await c.ok("GET", "/v5/order/realtime", {"category": "spot", "orderLinkId": "held-1"}))["list"]
    assert rows[0]["orderStatus"] == "New"
    assert not task.done()  # still no answer
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_dropped_connection_after_execution_the_order_exists(emu_client) -> None:
    emu, c = emu_client
    await emu.set_faults({"drop_order_responses": 1})
    body = orjson.dumps({"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
                         "qty": "0.01", "price": "50000", "orderLinkId": "drop-1"}).decode()
    headers = {**c.headers(body), "Content-Type": "application/json"}
    with pytest.raises(aiohttp.ClientError):
        async with c.session.post(f"{emu.url}/v5/order/create", data=body, headers=headers) as r:
            await r.read()
    assert "drop-1" in emu.exchange.orders


@pytest.mark.parametrize("doc, named", [
    ({"nonsense": 1}, "nonsense"),
    ({"errors": [{"path": "/v5/order/create", "ret_code": "10006"}]}, "ret_code"),
    ({"errors": [{"path": "order/create", "ret_code": 10006}]}, "path"),
    ({"rate_limit": {"path": "/v5/order/create", "count": 0}}, "count"),
    ({"close_websockets": "everything"}, "close_websockets"),
    ({"skip_book_deltas": -1}, "skip_book_deltas"),
])
async def test_malformed_fault_requests_are_refused_naming_the_key(emu_client, doc, named) -> None:
    emu, c = emu_client
    async with c.session.post(f"{emu.url}/_emulator/faults", data=orjson.dumps(doc)) as r:
        assert r.status == 400
        assert named in (await r.json())["error"]
    assert emu.faults.as_dict()["errors"] == [] and emu.faults.rate_limits == []


# ---------------------------------------------------------------- bad input


BASE = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.01",
        "price": "50000"}


@pytest.mark.parametrize("change, code, named", [
    ({"category": "inverse"}, 10001, "category"),
    ({"symbol": "NOPEUSDT"}, 10001, "symbol"),
    ({"side": "BUY"}, 10001, "side"),
    ({"orderType": "Stop"}, 10001, "orderType"),
    ({"timeInForce": "GTD"}, 10001, "timeInForce"),
    ({"qty": "abc"}, 10001, "qty"),
    ({"qty": "NaN"}, 10001, "qty"),
    ({"qty": "-1"}, 10001, "qty"),
    ({"qty": "1e400"}, 10001, "qty"),
    ({"qty": None}, 10001, "qty"),
    ({"price": "Infinity"}, 10001, "price"),
    ({"price": None}, 10001, "price"),
    ({"price": "50000.05"}, 10001, "Price"),
    ({"qty": "0.0105"}, 10001, "Qty"),
    ({"orderLinkId": "x" * 37}, 10001, "orderLinkId"),
    ({"orderLinkId": 12345}, 10001, "orderLinkId"),
    ({"orderLinkId": "a b"}, 10001, "orderLinkId"),
    ({"orderLinkId": "nh:1"}, 10001, "orderLinkId"),
    ({"positionIdx": 1}, 10001, "position idx"),
    ({"reduceOnly": True}, 110017, "Reduce-only"),
])
async def test_bad_order_fields_are_refused_naming_the_field_and_nothing_rests(emu_client, change, code,
                                                                                named) -> None:
    emu, c = emu_client
    body = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    answer = await c.create(**body)
    assert answer["retCode"] == code and named in answer["retMsg"], answer
    assert emu.exchange.orders == {}
    assert (await c.create(**BASE))["retCode"] == 0  # the venue keeps working


@pytest.mark.parametrize("path, params, named", [
    ("/v5/order/history", {"category": "spot", "limit": "abc"}, "limit"),
    ("/v5/order/history", {"category": "spot", "limit": "51"}, "limit"),
    ("/v5/execution/list", {"category": "spot", "startTime": "yesterday"}, "startTime"),
    ("/v5/position/list", {"category": "linear"}, "symbol or settleCoin"),
    ("/v5/position/list", {"category": "spot", "symbol": "BTCUSDT"}, "category"),
    ("/v5/account/wallet-balance", {"accountType": "SPOT"}, "UNIFIED"),
    ("/v5/order/realtime", {"category": "linear"}, "settleCoin"),
])
async def test_bad_query_parameters_are_10001_naming_them(emu_client, path, params, named) -> None:
    _, c = emu_client
    _, _, body = await c.get(path, params)
    assert body["retCode"] == 10001 and named in body["retMsg"], body


async def test_amend_changes_price_and_qty_of_a_resting_order(emu_client) -> None:
    _emu, c = emu_client
    await c.create(**BASE, orderLinkId="am-1")
    _, _, same = await c.post("/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "am-1",
                                                  "price": "50000"})
    assert same["retCode"] == 10001
    res = await c.ok("POST", "/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "am-1",
                                                 "price": "49000", "qty": "0.02"})
    assert res["orderLinkId"] == "am-1"
    row = (await c.ok("GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "am-1"}))["list"][0]
    assert (row["price"], row["qty"], row["orderStatus"]) == ("49000.00", "0.020", "New")
    _, _, bad = await c.post("/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "am-1",
                                                 "price": "49000.05"})
    assert bad["retCode"] == 10001 and "Price" in bad["retMsg"]


async def test_cancel_all_cancels_every_open_order_of_the_symbol(emu_client) -> None:
    _emu, c = emu_client
    for i in range(3):
        await c.create(**BASE, orderLinkId=f"ca-{i}")
    res = await c.ok("POST", "/v5/order/cancel-all", {"category": "linear", "symbol": "BTCUSDT"})
    assert sorted(r["orderLinkId"] for r in res["list"]) == ["ca-0", "ca-1", "ca-2"]
    assert (await c.ok("GET", "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"}))["list"] == []
    assert Decimal((await c.ok("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "USDT"}))
                   ["list"][0]["totalInitialMargin"]) == 0


async def test_amend_moves_the_funds_held_and_an_unaffordable_amend_changes_nothing(emu_client) -> None:
    emu, c = emu_client
    await c.create(category="spot", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.1", price="50000",
                   orderLinkId="sa-1")
    locked = emu.exchange.spot.balance("USDT").locked
    assert locked == Decimal("0.1") * 50000 * Decimal("1.001")
    await c.ok("POST", "/v5/order/amend", {"category": "spot", "symbol": "BTCUSDT", "orderLinkId": "sa-1",
                                           "qty": "0.2"})
    assert emu.exchange.spot.balance("USDT").locked == 2 * locked
    _, _, body = await c.post("/v5/order/amend", {"category": "spot", "symbol": "BTCUSDT", "orderLinkId": "sa-1",
                                                  "qty": "50"})
    assert body["retCode"] == 170131
    assert emu.exchange.spot.balance("USDT").locked == 2 * locked
    row = (await c.ok("GET", "/v5/order/realtime", {"category": "spot", "orderLinkId": "sa-1"}))["list"][0]
    assert Decimal(row["qty"]) == Decimal("0.2")
    await c.ok("POST", "/v5/order/cancel", {"category": "spot", "symbol": "BTCUSDT", "orderLinkId": "sa-1"})
    assert emu.exchange.spot.balance("USDT").locked == 0
    assert emu.exchange.spot.balance("USDT").free == 100_000


# ---------------------------------------------------------------- control routes


async def test_control_routes_answer_json_and_refuse_bad_requests_naming_them(emu_client) -> None:
    emu, c = emu_client
    await c.create(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.01",
                   orderLinkId="ctl-1")
    s = c.session
    async with s.post(f"{emu.url}/_emulator/tick", data=b'{"n": 2}') as r:
        assert r.status == 200 and (await r.json()) == {"ticks": 2}
    async with s.post(f"{emu.url}/_emulator/funding", data=b'{"symbol": "BTCUSDT"}') as r:
        assert r.status == 200
    async with s.get(f"{emu.url}/_emulator/state") as r:
        state = await r.json()
    assert state["order_link_ids"] == ["ctl-1"] and state["orders"][0]["status"] == "Filled"
    assert sorted(e["exec_type"] for e in state["executions"]) == ["Funding", "Trade"]
    assert state["new_order_requests"][0]["transport"] == "rest" and state["requests"]["POST /v5/order/create"] == 1
    for path, body, named in (("/_emulator/tick", b'{"n": 0}', "tick.n"),
                              ("/_emulator/tick", b"[1]", "tick"),
                              ("/_emulator/funding", b'{"symbol": "NOPEUSDT"}', "symbol"),
                              ("/_emulator/instrument_status", b'{"category": "option", "symbol": "BTCUSDT"}',
                               "category"),
                              ("/_emulator/bench/ping_pong", b'{"category": "linear", "n": 1}', "no linear"),
                              ("/_emulator/faults", b"not json", "")):
        async with s.post(f"{emu.url}{path}", data=body) as r:
            assert r.status == 400, path
            assert named in (await r.json())["error"], path


async def test_a_client_that_resyncs_on_market_time_passes_a_skewed_server(emu_client) -> None:
    emu, c = emu_client
    await emu.set_faults({"time_skew_ms": -20_000})  # the server's clock is 20 s behind ours
    _, _, body = await c.get("/v5/order/realtime", {"category": "spot"})
    assert body["retCode"] == 10002
    _, _, t = await c.get("/v5/market/time", signed=False)
    offset_ms = int(t["result"]["timeNano"]) // NS_PER_MS - emu.clock.time_ns() // NS_PER_MS
    assert offset_ms == -20_000
    _, _, body = await c.get("/v5/order/realtime", {"category": "spot"},
                             ts_ms=emu.clock.time_ns() // NS_PER_MS + offset_ms)
    assert body["retCode"] == 0
