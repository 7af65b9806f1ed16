"""The Bybit emulator's websockets over loopback: public books and topics, private topics, the trade WS.

The emulator runs on a ManualClock and its market ticks only when a test calls `step()`.
Frames are read with a bounded timeout; "nothing came" is shown by a ping whose pong
arrives first (frames of a tick are written before the ping is answered).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator
from tests.integration.bybit.test_emulator_rest import API_KEY, API_SECRET, NS_PER_MS, Client

READ_S = 5.0


@pytest.fixture
async def emu() -> AsyncIterator[BybitEmulator]:
    clock = ManualClock(1_750_000_000_000 * NS_PER_MS)
    emu = BybitEmulator(api_key=API_KEY, api_secret=API_SECRET, symbols=["BTCUSDT", "ETHUSDT"], clock=clock,
                        run_market=False)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=READ_S)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def until_pong(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Send a ping; every frame that arrives before its pong."""
    await ws.send_str('{"op": "ping", "req_id": "p"}')
    frames = []
    while True:
        doc = await recv(ws)
        if doc.get("op") in ("ping", "pong"):
            return frames
        frames.append(doc)


def auth_args(emu: BybitEmulator, secret: str = API_SECRET, expires_in_ms: int = 10_000) -> list[Any]:
    expires = emu.server_ms() + expires_in_ms
    sig = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    return [API_KEY, expires, sig]


def apply(book: dict[str, dict[Decimal, Decimal]], data: dict[str, Any]) -> None:
    for side, key in (("bids", "b"), ("asks", "a")):
        for px, qty in data[key]:
            if Decimal(qty) == 0:
                book[side].pop(Decimal(px), None)
            else:
                book[side][Decimal(px)] = Decimal(qty)


# ---------------------------------------------------------------- public


async def test_orderbook_snapshot_then_deltas_rebuild_the_venue_book(emu, session) -> None:
    async with session.ws_connect(f"{emu.ws_public_url}/linear") as ws:
        await ws.send_str('{"op": "subscribe", "args": ["orderbook.50.BTCUSDT"], "req_id": "s1"}')
        ack = await recv(ws)
        assert ack["success"] is True and ack["op"] == "subscribe" and ack["req_id"] == "s1"
        snap = await recv(ws)
        assert snap["topic"] == "orderbook.50.BTCUSDT" and snap["type"] == "snapshot"
        book = {"bids": {}, "asks": {}}
        apply(book, snap["data"])
        u, seq = snap["data"]["u"], snap["data"]["seq"]
        for _ in range(5):
            emu.clock.advance(1)
            await emu.step()
            delta = await recv(ws)
            assert delta["type"] == "delta" and delta["data"]["u"] == u + 1 and delta["data"]["seq"] > seq
            u, seq = delta["data"]["u"], delta["data"]["seq"]
            apply(book, delta["data"])
        async with session.get(f"{emu.url}/v5/market/orderbook",
                               params={"category": "linear", "symbol": "BTCUSDT", "limit": "50"}) as r:
            rest = (await r.json())["result"]
        assert [[str(p), str(q)] for p, q in sorted(book["bids"].items(), reverse=True)] == rest["b"]
        assert [[str(p), str(q)] for p, q in sorted(book["asks"].items())] == rest["a"]
        assert max(book["bids"]) < min(book["asks"])


async def test_a_skipped_delta_shows_as_a_gap_in_u(emu, session) -> None:
    async with session.ws_connect(f"{emu.ws_public_url}/spot") as ws:
        await ws.send_str('{"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}')
        await recv(ws)
        u = (await recv(ws))["data"]["u"]
        await emu.set_faults({"skip_book_deltas": 1})
        emu.clock.advance(1)
        await emu.step()
        assert await until_pong(ws) == []
        emu.clock.advance(1)
        await emu.step()
        assert (await recv(ws))["data"]["u"] == u + 2


async def test_depth_one_is_always_a_snapshot_and_trades_tickers_klines_flow(emu, session) -> None:
    async with session.ws_connect(f"{emu.ws_public_url}/linear") as ws:
        topics = ["orderbook.1.BTCUSDT", "publicTrade.BTCUSDT", "tickers.BTCUSDT", "kline.1.BTCUSDT"]
        await ws.send_str(orjson.dumps({"op": "subscribe", "args": topics}).decode())
        assert (await recv(ws))["success"] is True
        first = await until_pong(ws)
        assert [(f["topic"], f["type"]) for f in first] == [("orderbook.1.BTCUSDT", "snapshot"),
                                                           ("tickers.BTCUSDT", "snapshot")]
        for _ in range(2):
            emu.clock.advance(1)
            await emu.step()
        frames = await until_pong(ws)
        kinds = [(f["topic"], f["type"]) for f in frames]
        assert kinds.count(("orderbook.1.BTCUSDT", "snapshot")) == 2
        assert kinds.count(("tickers.BTCUSDT", "delta")) == 2
        trades = [f for f in frames if f["topic"] == "publicTrade.BTCUSDT"]
        assert len(trades) == 2 and trades[0]["data"][0]["S"] in ("Buy", "Sell")
        assert set(trades[0]["data"][0]) >= {"T", "s", "S", "v", "p", "L", "i", "BT", "seq"}
        klines = [f for f in frames if f["topic"] == "kline.1.BTCUSDT"]
        assert klines and klines[-1]["data"][0]["interval"] == "1" and klines[-1]["data"][0]["confirm"] is False


async def test_bad_requests_are_answered_and_the_connection_kept(emu, session) -> None:
    async with session.ws_connect(f"{emu.ws_public_url}/spot") as ws:
        await ws.send_str("not json at all")
        assert (await recv(ws))["success"] is False
        await ws.send_str('{"op": "subscribe", "args": ["orderbook.500.BTCUSDT"]}')  # spot has no 500
        bad = await recv(ws)
        assert bad["success"] is False and "orderbook.500.BTCUSDT" in bad["ret_msg"]
        await ws.send_str('{"op": "subscribe", "args": ["publicTrade.NOPEUSDT"]}')
        assert (await recv(ws))["success"] is False
        await ws.send_str('{"op": "ping", "req_id": "x"}')
        pong = await recv(ws)
        assert pong == {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"], "req_id": "x", "op": "ping"}


async def test_a_muted_stream_stays_open_and_sends_nothing(emu, session) -> None:
    async with session.ws_connect(f"{emu.ws_public_url}/linear") as ws:
        await ws.send_str('{"op": "subscribe", "args": ["publicTrade.BTCUSDT"]}')
        await recv(ws)
        await emu.set_faults({"mute_public_streams": True})
        emu.clock.advance(1)
        await emu.step(3)
        assert await until_pong(ws) == []
        await emu.set_faults({"mute_public_streams": False})
        emu.clock.advance(1)
        await emu.step()
        assert [f["topic"] for f in await until_pong(ws)] == ["publicTrade.BTCUSDT"]


async def test_malformed_frames_fault_sends_text_that_is_not_json(emu, session) -> None:
    async with session.ws_connect(f"{emu.ws_public_url}/linear") as ws:
        await ws.send_str('{"op": "subscribe", "args": ["publicTrade.BTCUSDT"]}')
        await recv(ws)
        await emu.set_faults({"malformed_frames": 1})
        await emu.step()
        raw = await ws.receive(timeout=READ_S)
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw.data)
        assert (await recv(ws))["topic"] == "publicTrade.BTCUSDT"


async def test_closing_websockets_by_fault_is_a_1001_close(emu, session) -> None:
    async with session.ws_connect(f"{emu.ws_public_url}/spot") as ws:
        await emu.set_faults({"close_websockets": "public"})
        msg = await ws.receive(timeout=READ_S)
        assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1001


# ---------------------------------------------------------------- private


async def test_private_needs_auth_then_streams_order_execution_position_wallet(emu, session) -> None:
    async with session.ws_connect(emu.ws_private_url) as ws:
        await ws.send_str('{"op": "subscribe", "args": ["order"]}')
        assert (await recv(ws))["ret_msg"] == "Request not authorized"
        await ws.send_str(orjson.dumps({"op": "auth", "args": auth_args(emu, secret="wrong")}).decode())
        assert (await recv(ws))["success"] is False
        await ws.send_str(orjson.dumps({"op": "auth", "args": auth_args(emu, expires_in_ms=-1)}).decode())
        assert (await recv(ws))["success"] is False
        await ws.send_str(orjson.dumps({"op": "auth", "args": auth_args(emu)}).decode())
        assert (await recv(ws))["success"] is True
        await ws.send_str('{"op": "subscribe", "args": ["order", "execution", "position", "wallet"], "req_id": "9"}')
        assert (await recv(ws))["success"] is True
        client = Client(emu, session)
        await client.create(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.01",
                            orderLinkId="priv-1")
        frames = await until_pong(ws)
        by_topic = {f["topic"]: f for f in frames}
        assert set(by_topic) == {"order", "execution", "position", "wallet"}
        assert [o["orderStatus"] for o in by_topic["order"]["data"]] == ["New", "Filled"]
        ex = by_topic["execution"]["data"][0]
        assert ex["execType"] == "Trade" and ex["orderLinkId"] == "priv-1" and ex["category"] == "linear"
        assert by_topic["position"]["data"][0]["size"] == "0.010"
        assert by_topic["wallet"]["data"][0]["accountType"] == "UNIFIED"


async def test_category_topics_carry_only_that_category(emu, session) -> None:
    async with session.ws_connect(emu.ws_private_url) as ws:
        await ws.send_str(orjson.dumps({"op": "auth", "args": auth_args(emu)}).decode())
        await recv(ws)
        await ws.send_str('{"op": "subscribe", "args": ["execution.spot"]}')
        await recv(ws)
        client = Client(emu, session)
        await client.create(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.01")
        await client.create(category="spot", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.001",
                            marketUnit="baseCoin", orderLinkId="spot-x")
        frames = await until_pong(ws)
        assert [(f["topic"], f["data"][0]["orderLinkId"]) for f in frames] == [("execution.spot", "spot-x")]


async def test_private_ping_is_answered_in_the_private_shape(emu, session) -> None:
    async with session.ws_connect(emu.ws_private_url) as ws:
        await ws.send_str('{"op": "ping", "req_id": "r7"}')
        pong = await recv(ws)
        assert pong["op"] == "pong" and pong["req_id"] == "r7" and pong["args"] == [str(emu.server_ms())]


# ---------------------------------------------------------------- trade websocket


def create_frame(emu: BybitEmulator, req_id: str, **order: Any) -> str:
    return orjson.dumps({"reqId": req_id, "header": {"X-BAPI-TIMESTAMP": str(emu.server_ms()),
                                                     "X-BAPI-RECV-WINDOW": "5000"},
                         "op": "order.create", "args": [order]}).decode()


ORDER = {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.01",
         "price": "50000"}


async def test_trade_ws_creates_cancels_and_refuses_duplicates(emu, session) -> None:
    async with session.ws_connect(emu.ws_trade_url) as ws:
        await ws.send_str(create_frame(emu, "r0", **ORDER, orderLinkId="tw-0"))
        assert (await recv(ws))["retCode"] == 10003  # not authenticated yet
        await ws.send_str(orjson.dumps({"op": "auth", "args": auth_args(emu)}).decode())
        assert (await recv(ws))["retCode"] == 0
        await ws.send_str(create_frame(emu, "r1", **ORDER, orderLinkId="tw-1"))
        ok = await recv(ws)
        assert ok["reqId"] == "r1" and ok["retCode"] == 0 and ok["op"] == "order.create"
        assert ok["data"]["orderLinkId"] == "tw-1" and ok["data"]["orderId"]
        assert set(ok["header"]) >= {"X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp"}
        await ws.send_str(create_frame(emu, "r2", **ORDER, orderLinkId="tw-1"))
        assert (await recv(ws))["retCode"] == 110072
        await ws.send_str(orjson.dumps({"reqId": "r3", "header": {"X-BAPI-TIMESTAMP": str(emu.server_ms())},
                                        "op": "order.cancel", "args": [{"category": "spot", "symbol": "BTCUSDT",
                                                                        "orderLinkId": "tw-1"}]}).decode())
        cancel = await recv(ws)
        assert cancel["reqId"] == "r3" and cancel["retCode"] == 0
    assert emu.state()["orders"][0]["status"] == "Cancelled"
    # The unauthenticated create never reached the request path; the duplicate did.
    assert [(r["order_link_id"], r["ret_code"]) for r in emu.new_order_requests] == [("tw-1", 0), ("tw-1", 110072)]


async def test_trade_ws_stale_header_timestamp_is_10002(emu, session) -> None:
    async with session.ws_connect(emu.ws_trade_url) as ws:
        await ws.send_str(orjson.dumps({"op": "auth", "args": auth_args(emu)}).decode())
        await recv(ws)
        frame = orjson.loads(create_frame(emu, "r1", **ORDER))
        frame["header"]["X-BAPI-TIMESTAMP"] = str(emu.server_ms() - 10_000)
        await ws.send_str(orjson.dumps(frame).decode())
        assert (await recv(ws))["retCode"] == 10002
    assert emu.exchange.orders == {}


async def test_trade_ws_withheld_answer_and_dropped_connection_both_execute(emu, session) -> None:
    async with session.ws_connect(emu.ws_trade_url) as ws:
        await ws.send_str(orjson.dumps({"op": "auth", "args": auth_args(emu)}).decode())
        await recv(ws)
        await emu.set_faults({"withhold_order_responses": 1})
        await ws.send_str(create_frame(emu, "held", **ORDER, orderLinkId="tw-held"))
        assert await until_pong(ws) == []  # no answer for "held", the connection alive
        await emu.set_faults({"drop_order_responses": 1})
        await ws.send_str(create_frame(emu, "drop", **ORDER, orderLinkId="tw-drop"))
        msg = await ws.receive(timeout=READ_S)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert {"tw-held", "tw-drop"} <= set(emu.exchange.orders)
    assert [w["how"] for w in emu.withheld_orders] == ["timeout", "dropped"]


# ---------------------------------------------------------------- benchmark route


async def test_ping_pong_bench_pairs_each_trade_with_the_order_it_caused(emu, session) -> None:
    async with session.ws_connect(f"{emu.ws_public_url}/linear") as pub, session.ws_connect(emu.ws_trade_url) as tr:
        await pub.send_str('{"op": "subscribe", "args": ["publicTrade.BTCUSDT"]}')
        await recv(pub)
        await tr.send_str(orjson.dumps({"op": "auth", "args": auth_args(emu)}).decode())
        await recv(tr)

        async def trader() -> None:  # one order per trade seen
            for i in range(3):
                frame = await recv(pub)
                assert frame["topic"] == "publicTrade.BTCUSDT"
                await tr.send_str(create_frame(emu, f"b{i}", category="linear", symbol="BTCUSDT", side="Buy",
                                               orderType="Limit", qty="0.001", price="50000",
                                               orderLinkId=f"bench-{i}"))
                assert (await recv(tr))["retCode"] == 0

        task = asyncio.get_running_loop().create_task(trader())
        out = await emu.bench_ping_pong("linear", "BTCUSDT", 3, timeout_s=READ_S)
        await task
    assert out["missed"] == 0 and [s[2] for s in out["samples"]] == ["bench-0", "bench-1", "bench-2"]
    assert all(arrival > sent for sent, arrival, _ in out["samples"])
    with pytest.raises(ValueError, match=r"no linear connection subscribes publicTrade\.BTCUSDT"):
        await emu.bench_ping_pong("linear", "BTCUSDT", 1)


@pytest.mark.parametrize("path", ["/v5/public/linear", "/v5/private", "/v5/trade"])
async def test_damaged_client_frames_are_refused_and_the_connection_kept(emu, session, path) -> None:
    async with session.ws_connect(f"{emu.ws_public_url[: -len('/v5/public')]}{path}") as ws:
        await ws.send_bytes(b"\x00\xff binary")  # ignored: Bybit speaks text frames
        for bad in ('{"op": "subscribe", "args": "orderbook.50.BTCUSDT"}', "[1, 2, 3]", '{"op": 7}',
                    '{"op": "subscribe", "args": [1]}', "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")):
            await ws.send_str(bad)
            answer = await recv(ws)
            assert answer.get("success") is False or answer.get("retCode", 0) != 0, (bad, answer)
        await ws.send_str('{"op": "ping", "req_id": "still"}')
        assert (await recv(ws))["op"] in ("ping", "pong")


# ---------------------------------------------------------------- heartbeat


async def test_a_connection_that_stops_pinging_is_closed_after_its_alive_duration(emu, session) -> None:
    clock = emu.clock
    async with session.ws_connect(f"{emu.ws_public_url}/linear") as pub, \
            session.ws_connect(f"{emu.ws_private_url}?max_active_time=30s") as priv:
        await clock.advance_settle(25)
        await priv.send_str('{"op": "ping"}')  # the private client pings: its 30 s start again
        assert (await recv(priv))["op"] == "pong"
        await clock.advance_settle(29)
        await priv.send_str('{"op": "ping"}')
        assert (await recv(priv))["op"] == "pong"
        await clock.advance_settle(30)
        msg = await priv.receive(timeout=READ_S)
        assert msg.type is aiohttp.WSMsgType.CLOSE  # 30 s without a frame
        await pub.send_str('{"op": "ping"}')
        assert (await recv(pub))["op"] == "ping"  # the public one (600 s) is alive
        await clock.advance_settle(600)
        assert (await pub.receive(timeout=READ_S)).type is aiohttp.WSMsgType.CLOSE


async def test_a_bad_alive_duration_is_refused_naming_it(emu, session) -> None:
    for bad in ("5s", "11m", "x", "30"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await session.ws_connect(f"{emu.ws_trade_url}?max_active_time={bad}")
        assert exc.value.status == 400
