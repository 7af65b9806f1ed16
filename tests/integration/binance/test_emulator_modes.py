"""The emulator's run modes and test routes over loopback: market time scale, unmetered weights,
the weight of open orders of every symbol, the request log's arrival times, withheld order
answers in the state, and the benchmark routes."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import yarl

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import RateLimited
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.binance.auth import API_KEY_HEADER, Credentials, signed_query
from nautilus_hmm.venues.binance.emulator.cli import build_parser
from nautilus_hmm.venues.binance.emulator.exchange import EmulatedExchange
from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator
from nautilus_hmm.venues.binance.market import Market
from tests.integration.binance.conftest import API_KEY, API_SECRET, Harness, until

T0_NS = 1_700_000_000 * 10**9
T0_MS = T0_NS // 10**6
WEIGHT = "X-MBX-USED-WEIGHT-1M"


class Client:
    """Raw (optionally signed) requests and stream connections to one emulator."""

    def __init__(self, emu: BinanceEmulator, session: aiohttp.ClientSession, clock: ManualClock) -> None:
        self.emu = emu
        self.session = session
        self.clock = clock
        self.creds = Credentials(API_KEY, API_SECRET)

    async def call(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                   signed: bool = False) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, headers) of one request."""
        if signed:
            query = signed_query(self.creds, params or {}, timestamp_ms=self.clock.time_ns() // 10**6)
        else:
            query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        url = yarl.URL(f"{self.emu.url}{path}?{query}", encoded=True)
        headers = {API_KEY_HEADER: API_KEY} if signed else {}
        async with self.session.request(method, url, headers=headers) as resp:
            return resp.status, orjson.loads(await resp.read()), dict(resp.headers)

    async def control(self, path: str, body: Any) -> tuple[int, Any]:
        """POST a control route (JSON in, JSON out)."""
        async with self.session.post(f"{self.emu.url}{path}", data=orjson.dumps(body)) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def stream(self, *streams: str) -> aiohttp.ClientWebSocketResponse:
        """A raw market-stream connection, once the emulator has registered it."""
        before = self.emu.ws_connects["market"]
        ws = await self.session.ws_connect(f"{self.emu.ws_url}/ws/{'/'.join(streams)}")
        await until(lambda: self.emu.ws_connects["market"] > before, what="stream registered")
        return ws


@contextlib.asynccontextmanager
async def served(clock: ManualClock, market: Market = Market.SPOT, **kw: Any) -> AsyncIterator[Client]:
    """A started emulator (no market ticks of its own) and a client of it."""
    emu = BinanceEmulator(market, api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT"], clock=clock,
                          run_market=False, **kw)
    await emu.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Client(emu, session, clock)
    finally:
        await emu.stop()


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """The next text frame, decoded (bounded wait)."""
    msg = await asyncio.wait_for(ws.receive(), 5.0)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


# ---------------------------------------------------------------- market time scale


async def test_market_time_scale_runs_market_event_times_faster_than_server_time(clock: ManualClock) -> None:
    async with served(clock, market_time_scale=20) as c:
        ws = await c.stream("btcusdt@trade")
        clock.advance(1.0)
        await c.emu.step()
        trade = await next_json(ws)
        assert trade["E"] == trade["T"] == T0_MS + 20_000
        _, body, _ = await c.call("GET", "/api/v3/time")
        assert body["serverTime"] == T0_MS + 1_000
        await ws.close()


async def test_at_market_time_scale_20_a_one_second_kline_closes_every_50_ms() -> None:
    ex = EmulatedExchange(Market.SPOT, ["BTCUSDT"], start_ns=T0_NS, market_time_scale=20)
    ex.want_kline("BTCUSDT", "1s")
    closed = []
    for i in range(5):
        for stream, payload in ex.tick(T0_NS + i * 50_000_000).market:
            if stream == "btcusdt@kline_1s" and payload["k"]["x"]:
                closed.append(payload["k"]["t"])
    assert closed == [T0_MS + i * 1000 for i in range(4)]


async def test_orders_and_fills_stay_on_the_wall_clock_at_any_market_time_scale(clock: ManualClock) -> None:
    async with served(clock, market_time_scale=20) as c:
        clock.advance(1.0)
        status, order, _ = await c.call("POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
            "newClientOrderId": "scale-1"}, signed=True)  # a timestamp on the wall clock is accepted
        assert status == 200 and order["transactTime"] == T0_MS + 1_000
        _, [trade], _ = await c.call("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}, signed=True)
        assert trade["time"] == T0_MS + 1_000


def test_command_line_takes_market_time_scale_and_unmetered() -> None:
    args = build_parser().parse_args(["--api-key", "k", "--api-secret", "s", "--market-time-scale", "20",
                                      "--unmetered"])
    assert (args.market_time_scale, args.unmetered) == (20.0, True)
    defaults = build_parser().parse_args(["--api-key", "k", "--api-secret", "s"])
    assert (defaults.market_time_scale, defaults.unmetered) == (1.0, False)


def test_a_market_time_scale_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="market_time_scale must be > 0, got 0"):
        EmulatedExchange(Market.SPOT, ["BTCUSDT"], market_time_scale=0)


# ---------------------------------------------------------------- weights


async def test_unmetered_requests_weigh_nothing_and_are_never_limited(clock: ManualClock) -> None:
    async with served(clock, weight_limit_1m=25, unmetered=True) as c:
        answers = [await c.call("GET", "/api/v3/exchangeInfo") for _ in range(5)]  # 5 x 20 > 25
        assert [(status, headers[WEIGHT]) for status, _, headers in answers] == [(200, "0")] * 5
        state = c.emu.state()
        assert (state["used_weight_1m"], state["bans"], state["limited_until_ms"]) == (0, 0, 0)


@pytest.mark.parametrize(("market", "path", "one", "every"), [
    (Market.SPOT, "/api/v3/openOrders", 6, 80),
    (Market.USDM, "/fapi/v1/openOrders", 1, 40),
])
async def test_open_orders_of_every_symbol_weigh_more_than_of_one(
        clock: ManualClock, market: Market, path: str, one: int, every: int) -> None:
    async with served(clock, market) as c:
        _, _, headers = await c.call("GET", path, {"symbol": "BTCUSDT"}, signed=True)
        assert int(headers[WEIGHT]) == one
        _, _, headers = await c.call("GET", path, signed=True)
        assert int(headers[WEIGHT]) == one + every


async def test_adapter_counts_open_orders_of_every_symbol_at_their_weight(spot: Harness) -> None:
    rest = spot.venue.rest
    used = rest.used_weight_1m
    rest.weight_limit_1m = math.ceil((used + 50) / 0.8)  # reads may use 50 more: 6 fits, 80 does not
    sent = spot.emu.state()["requests"].get("GET /api/v3/openOrders", 0)
    with pytest.raises(RateLimited, match="local weight budget"):
        await spot.venue.open_orders()
    assert await spot.venue.open_orders(InstrumentId("binance_spot", "BTCUSDT")) == []
    assert spot.emu.state()["requests"]["GET /api/v3/openOrders"] == sent + 1


# ---------------------------------------------------------------- state and request log


async def test_request_log_has_the_arrival_and_the_answer_time(clock: ManualClock) -> None:
    async with served(clock) as c:
        c.emu.faults.apply({"delay_ms": {"/api/v3/time": 500}})
        call = asyncio.get_running_loop().create_task(c.call("GET", "/api/v3/time"))
        await until(lambda: c.emu.request_counts["GET /api/v3/time"] == 1, what="request arrived")
        await clock.advance_settle(0.5)
        status, _, _ = await call
        [entry] = c.emu.state()["request_log"]
        assert (status, entry["received_ms"], entry["ts_ms"]) == (200, T0_MS, T0_MS + 500)


@pytest.mark.parametrize(("fault", "how"), [("timeout_order_responses", "timeout"),
                                            ("drop_order_responses", "dropped")])
async def test_withheld_order_answers_are_listed_in_the_state(clock: ManualClock, fault: str, how: str) -> None:
    async with served(clock) as c:
        c.emu.faults.apply({fault: 1})
        send = asyncio.get_running_loop().create_task(c.call("POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
            "price": "50000", "newClientOrderId": f"held-{how}"}, signed=True))
        held = await until(lambda: c.emu.state()["withheld_orders"], what="order withheld")
        assert held == [{"client_order_id": f"held-{how}", "how": how, "ts_ms": T0_MS}]
        assert c.emu.state()["client_order_ids"] == [f"held-{how}"]  # executed all the same
        send.cancel()
        with contextlib.suppress(BaseException):
            await send


# ---------------------------------------------------------------- benchmark routes


async def test_bench_stream_sends_n_trade_frames_with_consecutive_ids(clock: ManualClock) -> None:
    async with served(clock) as c:
        ws = await c.stream("btcusdt@trade")
        status, out = await c.control("/_emulator/bench/stream", {"symbols": ["BTCUSDT"], "n": 20})
        assert status == 200 and out["sent"] == 20 and out["msgs_per_s"] > 0 and out["t0_ns"] > 0
        ids = [(await next_json(ws))["t"] for _ in range(20)]
        assert ids == list(range(ids[0], ids[0] + 20))
        await ws.close()


async def test_bench_stream_at_a_rate_sends_every_frame(clock: ManualClock) -> None:
    # Paced on the real monotonic clock: 30 frames at 1e6 frames/s are due within 30 µs, so
    # the test does not wait on time; every frame a whole trade, ids consecutive.
    async with served(clock) as c:
        ws = await c.stream("btcusdt@trade")
        status, out = await c.control("/_emulator/bench/stream", {"symbols": ["BTCUSDT"], "n": 30, "rate": 1e6})
        assert status == 200 and out["sent"] == 30 and out["rate"] == 1e6
        frames = [await next_json(ws) for _ in range(30)]
        assert {f["s"] for f in frames} == {"BTCUSDT"}
        assert [f["t"] for f in frames] == list(range(frames[0]["t"], frames[0]["t"] + 30))
        assert all(f["e"] == "trade" and f["p"] and f["q"] for f in frames)
        await ws.close()


@pytest.mark.parametrize(("doc", "said"), [
    ({"n": 0}, "n must be >= 1, got 0"),
    ({"n": 5, "rate": -1}, "rate must be a finite number >= 0"),
    ({"n": 5, "rate": "fast"}, "could not convert string to float"),
    ({"n": 5, "rate": None}, "float() argument must be"),
])
async def test_bench_stream_refuses_a_bad_count_or_rate(clock: ManualClock, doc: dict, said: str) -> None:
    async with served(clock) as c:
        ws = await c.stream("btcusdt@trade")
        status, out = await c.control("/_emulator/bench/stream", {"symbols": ["BTCUSDT"], **doc})
        assert status == 400 and said in out["error"]
        await ws.close()


async def test_bench_ping_pong_pairs_each_trade_with_the_next_order(clock: ManualClock) -> None:
    async with served(clock) as c:
        ws = await c.stream("btcusdt@trade")

        async def answer_each_trade(n: int) -> None:
            for i in range(n):
                await next_json(ws)
                status, _, _ = await c.call("POST", "/api/v3/order", {
                    "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001",
                    "newClientOrderId": f"pp-{i}"}, signed=True)
                assert status == 200

        responder = asyncio.get_running_loop().create_task(answer_each_trade(3))
        status, out = await c.control("/_emulator/bench/ping_pong", {"n": 3, "timeout_s": 5})
        await responder
        assert status == 200 and out["missed"] == 0
        assert [cid for _, _, cid in out["samples"]] == ["pp-0", "pp-1", "pp-2"]
        assert all(arrival_ns > send_ns for send_ns, arrival_ns, _ in out["samples"])
        await ws.close()


@pytest.mark.parametrize("route", ["/_emulator/bench/stream", "/_emulator/bench/ping_pong"])
async def test_bench_routes_refuse_a_stream_nobody_subscribes(clock: ManualClock, route: str) -> None:
    async with served(clock) as c:
        status, out = await c.control(route, {"symbols": ["BTCUSDT"], "n": 1})
        assert status == 400 and "no market connection subscribes btcusdt@trade" in out["error"]
