"""Bybit streams against a loopback aiohttp WebSocket server that speaks Bybit's v5 protocol.

The server (written here, independent of the emulator) answers `ping`, `subscribe`,
`unsubscribe` and `auth` the way Bybit does (the auth signature is checked with its own
HMAC, not the client's code), and sends whatever frames a test asks for. Time is a
ManualClock: heartbeats, pong timeouts, backoffs and resync deadlines move only when a
test advances it; waits are on conditions, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import random
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import AuthError
from nautilus_hmm.domain.enums import OrderStatus, Side
from nautilus_hmm.domain.orders import VenueOrder
from nautilus_hmm.messages import (
    BalanceUpdate,
    Bar,
    BookValidityChanged,
    FillReport,
    MarkPrice,
    OrderStatusReport,
    QuoteTick,
    TradeTick,
)
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.parse import BybitParser
from nautilus_hmm.venues.bybit.streams import (
    BybitPrivateStream,
    BybitPublicStream,
    kline_interval,
    public_topics,
)
from nautilus_hmm.venues.ws import WsSettings
from tests.conftest import fixture_path
from tests.integration.waits import until

KEY = "streamKey0123456789"
SECRET = "streamSecret0123456789abcdef"
T0_MS = 1_700_000_000_000
SETTINGS = WsSettings(ping_interval_s=1e6, dead_after_s=1e6, backoff_initial_s=2.0, jitter=0.0)
BOOK = "orderbook.50.BTCUSDT"


def load(name: str) -> dict[str, Any]:
    return orjson.loads(fixture_path("bybit", "docs_v5", name).read_bytes())


# ---------------------------------------------------------------- the loopback Bybit


class FakeBybit:
    """Bybit's v5 WebSocket control protocol on loopback; frames on demand."""

    def __init__(self) -> None:
        self.connections: list[web.WebSocketResponse] = []
        self.requests: list[tuple[int, dict[str, Any]]] = []  # (connection number, request)
        self.answer_pings = True
        self.answer_auth = True
        self.answer_subscribe = True
        self.refuse_topics: set[str] = set()
        self.snapshot_on_subscribe: Callable[[str], dict[str, Any] | None] | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(ws)
        n = len(self.connections)
        private = request.path.endswith("/private")
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            req = orjson.loads(msg.data)
            self.requests.append((n, req))
            op, rid = req.get("op"), req.get("req_id", "")
            if op == "ping":
                if not self.answer_pings:
                    continue
                if private:
                    await ws.send_json({"req_id": rid, "op": "pong", "args": [str(T0_MS)], "conn_id": "c1"})
                else:
                    await ws.send_json({"success": True, "ret_msg": "pong", "conn_id": "c1", "req_id": rid,
                                        "op": "ping"})
            elif op == "auth":
                if not self.answer_auth:
                    continue
                key, expires, sig = req["args"]
                want = hmac.new(SECRET.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
                if key == KEY and sig == want:
                    await ws.send_json({"success": True, "ret_msg": "", "op": "auth", "conn_id": "c1"})
                else:
                    await ws.send_json({"op": "auth", "success": False, "retCode": 10004,
                                        "retMsg": "Invalid sign", "connId": "c1"})
            elif op in ("subscribe", "unsubscribe"):
                if not self.answer_subscribe:
                    continue
                bad = [t for t in req["args"] if t in self.refuse_topics]
                if bad:
                    await ws.send_json({"success": False, "ret_msg": f"Invalid topic: {bad[0]}", "conn_id": "c1",
                                        "op": op})
                    continue
                await ws.send_json({"success": True, "ret_msg": "", "conn_id": "c1", "req_id": rid, "op": op})
                if op == "subscribe" and self.snapshot_on_subscribe is not None:
                    for topic in req["args"]:
                        frame = self.snapshot_on_subscribe(topic)
                        if frame is not None:
                            await ws.send_json(frame)
        return ws

    def ops(self, op: str, conn: int | None = None) -> list[list[str]]:
        """The args of every `op` request (of one connection)."""
        return [r.get("args") for n, r in self.requests if r.get("op") == op and (conn is None or n == conn)]

    async def start(self) -> None:
        app = web.Application()
        for path in ("/v5/public/spot", "/v5/public/linear", "/v5/private"):
            app.router.add_get(path, self.handler)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in self.connections:
            with contextlib.suppress(Exception):
                await ws.close()
        assert self.runner is not None
        await self.runner.cleanup()

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def live(self) -> web.WebSocketResponse:
        return self.connections[-1]

    async def send(self, frame: dict[str, Any] | bytes | str) -> None:
        if isinstance(frame, dict):
            await self.live.send_bytes(orjson.dumps(frame))
        elif isinstance(frame, bytes):
            await self.live.send_bytes(frame)
        else:
            await self.live.send_str(frame)


@pytest.fixture
async def server() -> AsyncIterator[FakeBybit]:
    s = FakeBybit()
    await s.start()
    yield s
    await s.stop()


class Recorder:
    def __init__(self, bus: Bus, *types: type) -> None:
        self.messages: list[Any] = []
        for t in types:
            bus.subscribe(t, self.messages.append, name=f"test:{t.__name__}")

    def of(self, t: type) -> list[Any]:
        return [m for m in self.messages if type(m) is t]


class Running:
    """A stream with its run() in a task."""

    def __init__(self, stream: BybitPublicStream | BybitPrivateStream) -> None:
        self.stream = stream
        self.task = asyncio.get_running_loop().create_task(stream.run())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        await self.stream.close()


# ---------------------------------------------------------------- frames


def snapshot(u: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]], topic: str = BOOK,
             seq: int = 1000) -> dict[str, Any]:
    return {"topic": topic, "type": "snapshot", "ts": T0_MS + u, "cts": T0_MS + u,
            "data": {"s": topic.rsplit(".", 1)[1], "b": [list(b) for b in bids], "a": [list(a) for a in asks],
                     "u": u, "seq": seq + u}}


def delta(u: int, bids: list[tuple[str, str]] = (), asks: list[tuple[str, str]] = (), topic: str = BOOK,  # type: ignore[assignment]
          seq: int = 1000) -> dict[str, Any]:
    frame = snapshot(u, bids, asks, topic, seq)
    frame["type"] = "delta"
    return frame


SNAP = snapshot(100, [("30000.0", "1.0"), ("29999.5", "2.0")], [("30000.5", "1.5"), ("30001.0", "3.0")])


async def public(server: FakeBybit, bus: Bus, clock: ManualClock, category: str = "linear",
                 topics: list[str] | None = None, **kw: Any) -> Running:
    parser = BybitParser(category)
    stream = BybitPublicStream(venue=parser.venue, url=server.url(f"/v5/public/{category}"), parser=parser, bus=bus,
                               clock=clock, topics=topics if topics is not None else [BOOK, "publicTrade.BTCUSDT"],
                               settings=kw.pop("settings", SETTINGS), rng=random.Random(1), **kw)
    stream.start_books()
    r = Running(stream)
    await until(lambda: stream.subscribed, what="connected and subscribed")
    return r


async def advance(clock: ManualClock, seconds: float) -> None:
    await clock.advance_settle(seconds)


# ---------------------------------------------------------------- topics


def test_topic_names_follow_bybit_spelling() -> None:
    assert public_topics("BTCUSDT", "linear", depth=200, kline="1") == [
        "orderbook.200.BTCUSDT", "publicTrade.BTCUSDT", "tickers.BTCUSDT", "kline.1.BTCUSDT"]
    assert kline_interval(3600) == "60" and kline_interval(86400) == "D"


@pytest.mark.parametrize(("call", "match"), [
    (lambda: public_topics("BTCUSDT", "spot", depth=500), "depth 500 is not offered for spot"),
    (lambda: public_topics("BTCUSDT", "inverse"), "unknown Bybit category 'inverse'"),
    (lambda: kline_interval(10), "10 s has no Bybit kline"),
])
def test_bad_topic_requests_name_the_value(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- public: subscriptions and books


async def test_every_topic_is_subscribed_in_requests_of_at_most_ten(server: FakeBybit, bus: Bus,
                                                                    clock: ManualClock) -> None:
    topics = [t for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT") for t in public_topics(s, "spot", kline="1")]
    r = await public(server, bus, clock, "spot", topics)
    sent = server.ops("subscribe")
    assert [len(a) for a in sent] == [10, 6] and [t for a in sent for t in a] == topics
    ids = [req["req_id"] for _, req in server.requests if req["op"] == "subscribe"]
    assert len(set(ids)) == 2
    await r.stop()


async def test_snapshot_then_deltas_build_the_book_and_quotes_follow_its_top(server: FakeBybit, bus: Bus,
                                                                            clock: ManualClock) -> None:
    rec = Recorder(bus, BookValidityChanged, QuoteTick)
    r = await public(server, bus, clock)
    await server.send(SNAP)
    await until(lambda: rec.of(QuoteTick), what="first quote")
    await server.send(delta(101, bids=[("30000.0", "0")], asks=[("30000.5", "0.5")]))  # best bid removed
    await server.send(delta(102, bids=[("29000.0", "9")]))  # deep level: top unchanged, no quote
    await server.send(delta(103, asks=[("30000.2", "0.1")]))
    await until(lambda: r.stream.books[r.stream.parser.ids("BTCUSDT")].update_id == 103, what="deltas applied")
    quotes = [(q.bid, q.bid_size, q.ask, q.ask_size) for q in rec.of(QuoteTick)]
    assert quotes == [(30000.0, 1.0, 30000.5, 1.5), (29999.5, 2.0, 30000.5, 0.5), (29999.5, 2.0, 30000.2, 0.1)]
    assert [(m.valid, m.reason) for m in rec.of(BookValidityChanged)] == [
        (False, "awaiting first snapshot"), (True, "snapshot")]
    assert rec.of(QuoteTick)[0].ts_event_ns == (T0_MS + 100) * 1_000_000
    await r.stop()


async def test_a_gap_invalidates_the_book_and_resubscribes_its_topic(server: FakeBybit, bus: Bus,
                                                                    clock: ManualClock) -> None:
    rec = Recorder(bus, BookValidityChanged)
    r = await public(server, bus, clock)
    await server.send(SNAP)
    await until(lambda: rec.of(BookValidityChanged)[-1].valid, what="synced")
    server.snapshot_on_subscribe = lambda t: snapshot(500, [("31000.0", "1")], [("31001.0", "1")]) if t == BOOK \
        else None
    await server.send(delta(102, bids=[("29999.0", "1")]))  # u 101 never came
    await until(lambda: len(rec.of(BookValidityChanged)) == 4, what="invalid, then valid again")
    assert [m.valid for m in rec.of(BookValidityChanged)] == [False, True, False, True]
    assert "missed updates: u=102 after u=100" in rec.of(BookValidityChanged)[2].reason
    assert server.ops("unsubscribe") == [[BOOK]] and server.ops("subscribe")[-1] == [BOOK]
    book = r.stream.books[r.stream.parser.ids("BTCUSDT")]
    assert book.update_id == 500 and book.best_bid() == (31000.0, 1.0)
    assert len(server.connections) == 1 and r.stream.stats.book_gaps == 1 and r.stream.stats.book_resyncs == 1
    await server.send(delta(501, bids=[("31000.5", "2")]))
    await until(lambda: book.update_id == 501, what="deltas after the resync apply")
    await r.stop()


async def test_a_resubscribe_without_a_snapshot_reopens_the_connection(server: FakeBybit, bus: Bus,
                                                                      clock: ManualClock) -> None:
    r = await public(server, bus, clock, resync_timeout_s=10.0)
    await server.send(SNAP)
    await server.send(delta(105))
    await until(lambda: server.ops("unsubscribe"), what="resubscribed")
    await advance(clock, 9.0)
    assert len(server.connections) == 1
    await advance(clock, 1.0)
    await until(lambda: len(server.connections) == 2 and r.stream.subscribed, what="re-opened and subscribed")
    assert server.ops("subscribe", conn=2) == [[BOOK, "publicTrade.BTCUSDT"]]
    assert r.stream.stats.resync_timeouts == 1
    await r.stop()


async def test_pings_go_every_20_s_and_answered_pongs_keep_the_connection(server: FakeBybit, bus: Bus,
                                                                         clock: ManualClock) -> None:
    r = await public(server, bus, clock, stale_after_s=None)
    await advance(clock, 19.0)
    assert server.ops("ping") == []
    for n in (1, 2, 3):
        await advance(clock, 1.0 if n == 1 else 20.0)
        await until(lambda n=n: r.stream.stats.pongs == n, what=f"pong {n}")
    pings = [req for _, req in server.requests if req["op"] == "ping"]
    assert len(pings) == 3 and all(set(p) == {"req_id", "op"} for p in pings)
    assert len(server.connections) == 1 and r.stream.stats.pong_timeouts == 0
    await r.stop()


async def test_a_missing_pong_reopens_the_connection_and_resubscribes(server: FakeBybit, bus: Bus,
                                                                     clock: ManualClock) -> None:
    rec = Recorder(bus, BookValidityChanged)
    r = await public(server, bus, clock, stale_after_s=None)
    await server.send(SNAP)
    await until(lambda: rec.of(BookValidityChanged)[-1].valid, what="synced")
    server.answer_pings = False
    await advance(clock, 20.0)
    await until(lambda: server.ops("ping"), what="ping sent")
    await advance(clock, 9.0)
    assert len(server.connections) == 1
    await advance(clock, 1.0)
    await until(lambda: len(server.connections) == 2 and r.stream.subscribed, what="re-opened and resubscribed")
    assert r.stream.stats.pong_timeouts == 1
    assert server.ops("subscribe", conn=2) == [[BOOK, "publicTrade.BTCUSDT"]]
    assert rec.of(BookValidityChanged)[-1].valid is False  # until the new connection's snapshot
    await r.stop()


async def test_a_dropped_connection_is_reopened_after_the_backoff_and_books_resync(server: FakeBybit, bus: Bus,
                                                                                  clock: ManualClock) -> None:
    rec = Recorder(bus, BookValidityChanged)
    r = await public(server, bus, clock)
    await server.send(SNAP)
    await until(lambda: rec.of(BookValidityChanged)[-1].valid, what="synced")
    server.snapshot_on_subscribe = lambda t: SNAP if t == BOOK else None
    await server.live.close()
    await until(lambda: not rec.of(BookValidityChanged)[-1].valid, what="invalid on disconnect")
    assert "market stream disconnected" in rec.of(BookValidityChanged)[-1].reason
    await advance(clock, 1.9)
    assert len(server.connections) == 1  # still in the 2 s backoff
    await advance(clock, 0.1)
    await until(lambda: rec.of(BookValidityChanged)[-1].valid and len(server.connections) == 2, what="resynced")
    assert server.ops("subscribe", conn=2) == [[BOOK, "publicTrade.BTCUSDT"]]
    assert r.stream.ws.stats.reconnects == 1
    await r.stop()


async def test_a_silent_stream_that_answers_pings_is_reopened(server: FakeBybit, bus: Bus,
                                                             clock: ManualClock) -> None:
    r = await public(server, bus, clock, stale_after_s=60.0)
    for _ in range(3):
        await advance(clock, 20.0)
    await until(lambda: r.stream.stats.stale_drops == 1 and len(server.connections) == 2, what="stale drop")
    assert r.stream.stats.pongs >= 2  # the pongs did not count as data
    await r.stop()


async def test_malformed_frames_are_counted_and_skipped_and_the_connection_kept(server: FakeBybit, bus: Bus,
                                                                               clock: ManualClock) -> None:
    rec = Recorder(bus, BookValidityChanged, TradeTick)
    r = await public(server, bus, clock)
    good = orjson.dumps(SNAP)
    flipped = bytearray(good)
    flipped[good.index(b'"u"') + 1] ^= 0x20  # "u" -> "U": the field is gone
    bad_price = copy.deepcopy(SNAP)
    bad_price["data"]["b"][0][0] = "abc"
    damaged: list[bytes | str] = [
        b"\x00\xff not json", good[: len(good) // 2], bytes(flipped), orjson.dumps(bad_price), "[]",
        orjson.dumps({"topic": "nonsense.BTCUSDT", "data": {}}), orjson.dumps({"op": "subscribe"}),
        orjson.dumps({**load("ws_public_trade.json"), "data": [{"T": T0_MS, "s": "BTCUSDT", "S": "Up", "v": "1",
                                                                "p": "1", "i": "x"}]}),
    ]
    for frame in damaged:
        await server.send(frame)
    await server.send(SNAP)
    await server.send(load("ws_public_trade.json"))
    await until(lambda: rec.of(TradeTick) and rec.of(BookValidityChanged)[-1].valid, what="good frames processed")
    assert r.stream.ws.stats.parse_errors == len(damaged)
    assert r.stream.ws.stats.handler_errors == 0
    assert len(server.connections) == 1 and r.stream.ws.connected
    await r.stop()


async def test_trades_closed_klines_and_linear_marks_are_published(server: FakeBybit, bus: Bus,
                                                                  clock: ManualClock) -> None:
    rec = Recorder(bus, TradeTick, Bar, MarkPrice, QuoteTick)
    topics = ["publicTrade.BTCUSDT", "kline.5.BTCUSDT", "tickers.BTCUSDT"]
    r = await public(server, bus, clock, "linear", topics)
    kline = load("ws_public_kline.json")
    await server.send(kline)  # confirm false: still forming
    closed = copy.deepcopy(kline)
    closed["data"][0]["confirm"] = True
    await server.send(closed)
    await server.send(load("ws_public_trade.json"))
    ticker_text = fixture_path("bybit", "docs_v5", "ws_public_ticker_linear.labelled.txt").read_text()
    linear = ticker_text.split("LinearPerpetual\n", 1)[1].split("LinearFutures", 1)[0]
    await server.send(linear)
    await until(lambda: rec.of(QuoteTick), what="ticker quote (no book for this symbol)")
    (trade,) = rec.of(TradeTick)
    assert (trade.price, trade.size, trade.aggressor, trade.trade_id) == (
        16578.5, 0.001, Side.BUY, "20f43950-d8dd-5b31-9112-a178eb6023af")
    (bar,) = rec.of(Bar)
    assert (bar.interval_s, bar.open, bar.close, bar.ts_event_ns) == (300, 16649.5, 16677.0, 1672324800000 * 10**6)
    assert [m.price for m in rec.of(MarkPrice)] == [66666.6]
    assert [(q.bid, q.ask) for q in rec.of(QuoteTick)] == [(66666.6, 66666.7)]
    await r.stop()


async def test_a_refused_subscription_is_counted_once_and_the_rest_still_flows(server: FakeBybit, bus: Bus,
                                                                              clock: ManualClock) -> None:
    server.refuse_topics = {"publicTrade.BTCUSDT"}
    parser = BybitParser("spot")
    stream = BybitPublicStream(venue=parser.venue, url=server.url("/v5/public/spot"), parser=parser, bus=bus,
                               clock=clock, topics=["publicTrade.BTCUSDT"], settings=SETTINGS)
    r = Running(stream)
    await until(lambda: stream.stats.subscribe_errors == 1, what="refusal seen")
    await until(lambda: stream.subscribed, what="the refused request is answered, not pending")
    await advance(clock, 5.0)
    assert len(server.ops("subscribe")) == 1 and len(server.connections) == 1
    await r.stop()


# ---------------------------------------------------------------- private


class Account:
    """What the adapter hands the private stream: order and gap callbacks."""

    def __init__(self) -> None:
        self.orders: list[VenueOrder] = []
        self.gaps: list[str] = []
        self.auth_errors: list[AuthError] = []


async def private(server: FakeBybit, bus: Bus, clock: ManualClock, account: Account, *, secret: str = SECRET,
                  category: str = "linear", wait: bool = True, **kw: Any) -> Running:
    parser = BybitParser(category)
    stream = BybitPrivateStream(
        venue=parser.venue, url=server.url("/v5/private"), parser=parser, bus=bus, clock=clock,
        credentials=Credentials(KEY, secret), on_order=account.orders.append, on_gap=account.gaps.append,
        on_auth_error=account.auth_errors.append, server_time_ms=lambda: clock.time_ns() // 1_000_000 + 250,
        settings=kw.pop("settings", SETTINGS), rng=random.Random(1), **kw)
    r = Running(stream)
    if wait:
        await until(lambda: stream.subscribed, what="authenticated and subscribed")
    return r


async def test_auth_is_signed_with_a_future_expiry_and_topics_follow_its_answer(server: FakeBybit, bus: Bus,
                                                                               clock: ManualClock) -> None:
    account = Account()
    r = await private(server, bus, clock, account)
    ops = [req["op"] for _, req in server.requests]
    assert ops == ["auth", "subscribe"]
    (auth,) = [req for _, req in server.requests if req["op"] == "auth"]
    assert auth["args"][0] == KEY and auth["args"][1] == clock.time_ns() // 1_000_000 + 250 + 10_000
    assert server.ops("subscribe") == [["order", "execution", "position", "wallet"]]
    await until(lambda: account.gaps, what="gap reported once subscribed")
    assert account.gaps == ["private stream connected"] and r.stream.authenticated
    await r.stop()


async def test_subscribe_waits_for_the_auth_answer(server: FakeBybit, bus: Bus, clock: ManualClock) -> None:
    server.answer_auth = False
    account = Account()
    r = await private(server, bus, clock, account, wait=False, auth_timeout_s=10.0)
    await until(lambda: server.ops("auth"), what="auth sent")
    await advance(clock, 9.0)
    assert server.ops("subscribe") == [] and account.gaps == []
    server.answer_auth = True
    await advance(clock, 1.0)  # no answer in 10 s: a new connection, a new auth
    await until(lambda: r.stream.subscribed and len(server.connections) == 2, what="second connection authenticated")
    assert r.stream.stats.auth_timeouts == 1 and account.gaps == ["private stream reconnected"]
    await r.stop()


async def test_a_refused_auth_is_an_auth_error_and_retries_back_off(server: FakeBybit, bus: Bus,
                                                                   clock: ManualClock) -> None:
    account = Account()
    r = await private(server, bus, clock, account, secret="wrongSecret0123456789", wait=False)
    await until(lambda: account.auth_errors, what="auth refused")
    err = account.auth_errors[0]
    assert isinstance(err, AuthError) and err.code == "10004" and "Invalid sign" in str(err)
    assert server.ops("subscribe") == [] and account.gaps == []
    await until(lambda: not r.stream.ws.connected, what="dropped")
    await advance(clock, 1.9)
    assert len(server.connections) == 1  # waits 2 s after the first refusal
    await advance(clock, 0.1)
    await until(lambda: len(account.auth_errors) == 2, what="second refusal")
    await advance(clock, 3.9)
    assert len(server.connections) == 2  # then 4 s
    await advance(clock, 0.1)
    await until(lambda: len(server.connections) == 3, what="third attempt")
    assert r.stream.stats.auth_failures >= 2 and not r.stream.authenticated
    await r.stop()


async def test_a_dropped_private_stream_reauths_resubscribes_and_reports_a_gap(server: FakeBybit, bus: Bus,
                                                                              clock: ManualClock) -> None:
    account = Account()
    r = await private(server, bus, clock, account)
    await until(lambda: account.gaps, what="first gap")
    await server.live.close()
    await until(lambda: not r.stream.ws.connected, what="dropped")
    await advance(clock, 2.0)
    await until(lambda: len(account.gaps) == 2, what="gap after the reconnect")
    assert account.gaps == ["private stream connected", "private stream reconnected"]
    assert [req["op"] for n, req in server.requests if n == 2] == ["auth", "subscribe"]
    await r.stop()


async def test_a_missing_private_pong_reopens_the_connection(server: FakeBybit, bus: Bus,
                                                            clock: ManualClock) -> None:
    account = Account()
    r = await private(server, bus, clock, account)
    await advance(clock, 20.0)
    await until(lambda: r.stream.stats.pongs == 1, what="private pong ({op: pong}) understood")
    server.answer_pings = False
    await advance(clock, 20.0)
    await advance(clock, 10.0)
    await until(lambda: len(account.gaps) == 2, what="reconnected")
    assert r.stream.stats.pong_timeouts == 1
    await r.stop()


def execution(exec_type: str = "Trade", exec_id: str = "e-1", link: str = "nh-1-7") -> dict[str, Any]:
    frame = load("ws_private_execution.json")
    frame["data"][0].update(execType=exec_type, execId=exec_id, orderLinkId=link)
    return frame


def order_frame(status: str = "Filled", link: str = "nh-1-7") -> dict[str, Any]:
    frame = load("ws_private_order.json")
    frame["data"][0].update(category="linear", symbol="BTCUSDT", orderLinkId=link, orderStatus=status,
                            leavesQty="0", leavesValue="0")
    return frame


async def test_executions_become_fill_reports_and_orders_status_reports(server: FakeBybit, bus: Bus,
                                                                       clock: ManualClock) -> None:
    rec = Recorder(bus, FillReport, OrderStatusReport)
    account = Account()
    r = await private(server, bus, clock, account)
    await until(lambda: account.gaps, what="subscribed")
    await server.send(execution("Funding", "f-1"))  # not a fill
    await server.send(execution("Trade", "e-1"))
    await server.send(order_frame())
    await until(lambda: rec.of(OrderStatusReport), what="order report")
    (fill,) = [m.fill for m in rec.of(FillReport)]
    assert (fill.trade_id, fill.client_order_id, fill.qty, fill.price, fill.fee, fill.side) == (
        "e-1", "nh-1-7", Decimal("0.5"), Decimal("95900.1"), Decimal("26.3725275"), Side.SELL)
    assert str(fill.instrument_id) == "bybit_linear:BTCUSDT" and rec.of(FillReport)[0].venue == "bybit_linear"
    (report,) = rec.of(OrderStatusReport)
    assert report.order.status is OrderStatus.FILLED and account.orders == [report.order]
    assert account.gaps == ["private stream connected"]  # funding moved no position: no reconciliation
    assert r.stream.last_event_ns > 0
    await r.stop()


async def test_an_execution_that_moves_the_position_without_a_fill_asks_for_reconciliation(
        server: FakeBybit, bus: Bus, clock: ManualClock) -> None:
    rec = Recorder(bus, FillReport)
    account = Account()
    r = await private(server, bus, clock, account)
    await until(lambda: account.gaps, what="subscribed")
    await server.send(execution("AdlTrade", "adl-1"))
    await until(lambda: len(account.gaps) == 2, what="gap for the ADL")
    assert "AdlTrade execution adl-1 moved the position without a fill" in account.gaps[1]
    assert rec.of(FillReport) == []
    await r.stop()


async def test_wallet_and_position_frames(server: FakeBybit, bus: Bus, clock: ManualClock) -> None:
    rec = Recorder(bus, BalanceUpdate)
    account = Account()
    r = await private(server, bus, clock, account)
    await server.send(load("ws_private_wallet.json"))
    position = load("ws_private_position.json")
    position["data"][0].update(positionIdx=0, side="Buy", size="0.25", entryPrice="28000")
    await server.send(position)
    await until(lambda: rec.of(BalanceUpdate) and r.stream.positions, what="wallet and position")
    (b,) = rec.of(BalanceUpdate)
    assert (b.venue, b.asset, b.free + b.locked) == ("bybit_linear", "BTC", Decimal("0.00102964"))
    assert r.stream.net_positions() == {r.stream.parser.ids("BTCUSDT"): Decimal("0.25")}
    await r.stop()


async def test_other_categories_are_skipped_and_damaged_private_frames_keep_the_connection(
        server: FakeBybit, bus: Bus, clock: ManualClock) -> None:
    rec = Recorder(bus, FillReport, OrderStatusReport)
    account = Account()
    r = await private(server, bus, clock, account, category="spot")
    await until(lambda: account.gaps, what="subscribed")
    await server.send(execution())  # category linear: not this venue's
    raw = orjson.dumps(execution("Trade", "e-2"))
    await server.send(raw[:-7])  # truncated
    bad_qty = execution("Trade", "e-3")
    bad_qty["data"][0].update(category="spot", execQty="NaN")
    await server.send(bad_qty)
    await server.send({"topic": "order", "data": "not a list"})
    spot = execution("Trade", "e-4")
    spot["data"][0].update(category="spot", execFee="0.0005", feeCurrency="BTC", side="Buy", execQty="0.5")
    await server.send(spot)
    await until(lambda: rec.of(FillReport), what="the good spot fill")
    assert [m.fill.trade_id for m in rec.of(FillReport)] == ["e-4"]
    assert r.stream.ws.stats.parse_errors == 3 and len(server.connections) == 1 and r.stream.ws.connected
    assert r.stream.parser.foreign_items >= 1
    await r.stop()


class FakeRest:
    """The two things the private stream reads of the REST client: venue time and the halt reason."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.halted_reason = ""

    def server_time_ms(self) -> int:
        return self.clock.time_ns() // 1_000_000 - 1_500  # the venue's clock is 1.5 s behind ours


async def test_the_adapter_builds_streams_from_symbols_and_a_rest_client(server: FakeBybit, bus: Bus,
                                                                        clock: ManualClock) -> None:
    parser = BybitParser("spot")
    pub = BybitPublicStream(venue=parser.venue, category="spot", url=server.url("/v5/public/spot"), parser=parser,
                            bus=bus, clock=clock, rest=None, symbols=("BTCUSDT", "ETHUSDT"), book_depth=200,
                            kline_interval="1", settings=SETTINGS)
    assert pub.topics == [*public_topics("BTCUSDT", "spot", depth=200, kline="1"),
                          *public_topics("ETHUSDT", "spot", depth=200, kline="1")]
    assert sorted(str(i) for i in pub.books) == ["bybit_spot:BTCUSDT", "bybit_spot:ETHUSDT"]
    rest = FakeRest(clock)
    account = Account()
    priv = BybitPrivateStream(venue=parser.venue, category="spot", url=server.url("/v5/private"), parser=parser,
                              bus=bus, clock=clock, rest=rest, credentials=Credentials(KEY, "wrongSecret0123456789"),
                              settings=SETTINGS, on_order=account.orders.append, on_gap=account.gaps.append)
    rec = Recorder(bus, BookValidityChanged)
    runs = [Running(pub), Running(priv)]
    await until(lambda: len(rec.of(BookValidityChanged)) == 2, what="books published invalid at run()")
    assert {m.valid for m in rec.of(BookValidityChanged)} == {False}
    await until(lambda: rest.halted_reason, what="a refused signature halts the venue (no hook given)")
    assert "retCode 10004" in rest.halted_reason and "Invalid sign" in rest.halted_reason
    (auth,) = server.ops("auth")
    assert auth[1] == clock.time_ns() // 1_000_000 - 1_500 + 10_000  # expiry in venue time
    for r in runs:
        await r.stop()


async def test_unanswered_private_subscriptions_reopen_the_connection(server: FakeBybit, bus: Bus,
                                                                     clock: ManualClock) -> None:
    server.answer_subscribe = False
    account = Account()
    r = await private(server, bus, clock, account, wait=False, auth_timeout_s=10.0)
    await until(lambda: server.ops("subscribe"), what="subscribe sent")
    await advance(clock, 9.0)
    assert account.gaps == [] and len(server.connections) == 1  # no ack: no gap reported yet
    server.answer_subscribe = True
    await advance(clock, 1.0)
    await until(lambda: account.gaps == ["private stream reconnected"], what="re-opened, acked, gap reported")
    assert r.stream.stats.subscribe_timeouts == 1 and len(server.connections) == 2
    await r.stop()
