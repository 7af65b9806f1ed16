"""The dashboard's routes (/ and /dashboard/<file>, never an error page for a token) and the
public read-only event stream /events/public (no token; never the admin audit)."""

from __future__ import annotations

import re
from decimal import Decimal
from importlib import resources

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nautilus_hmm.domain.enums import Liquidity, Side, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import AdminAction, ConfigRejected, Fill, RiskDenied, TradingStateChanged
from nautilus_hmm.web import server
from nautilus_hmm.web.dashboard import ASSETS, dashboard_routes
from tests.nodeharness import TOKEN, auth, client, running_node

BTC = InstrumentId("sim", "BTCUSDT")


def _fill(trade_id: str) -> Fill:
    return Fill(ts_event_ns=2, ts_init_ns=2, instrument_id=BTC, client_order_id="c1", venue_order_id="v1",
                trade_id=trade_id, side=Side.BUY, qty=Decimal("0.1"), price=Decimal("100.5"), fee=Decimal("0.01"),
                fee_asset="USDT", liquidity=Liquidity.TAKER)


async def _next_event(r: aiohttp.ClientResponse) -> tuple[str, dict]:
    """The next `event:`/`data:` pair of an SSE stream (comments skipped)."""
    name = ""
    while True:
        line = (await r.content.readline()).decode()
        if line.startswith("event: "):
            name = line[7:].strip()
        elif line.startswith("data: "):
            return name, orjson.loads(line[6:])


# ------------------------------------------------------------------ files


def test_the_files_ship_in_the_package_and_load_nothing_from_elsewhere() -> None:
    root = resources.files("nautilus_hmm.web.dashboard")
    for name in ASSETS:
        text = root.joinpath(name).read_text()
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), f"{name} names another origin"
    html = root.joinpath("index.html").read_text()
    assert "<script>" not in html and "style=" not in html  # no inline script or style: the CSP forbids them
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref == "data:," or ref.removeprefix("/dashboard/") in ASSETS, ref  # data:, = no favicon request


def test_every_dashboard_file_is_package_data() -> None:
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "nautilus_hmm.web.dashboard"]
    for name in ASSETS:  # a wheel without one of them serves a 503 page
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
        assert (root / "nautilus_hmm" / "web" / "dashboard" / name).is_file(), name


async def test_root_serves_the_page_without_a_token_and_with_a_wrong_one(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (_node, url), client() as s:
        for headers, query in (({}, ""), ({"Authorization": "Bearer wrong"}, ""), ({"Authorization": "garbage"}, ""),
                               ({}, "?token=wrong"), (auth(), "")):
            async with s.get(url + "/" + query, headers=headers) as r:
                assert r.status == 200, (headers, query)
                assert r.headers["Content-Type"].startswith("text/html")
                assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                assert '<main>' in await r.text()
        async with s.get(url + "/dashboard/dashboard.js") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/javascript")
            assert "EventSource(\"/events/public\")" in await r.text()
        async with s.get(url + "/dashboard/dashboard.css") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/css")


async def test_unknown_or_traversing_asset_names_are_404_json(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (_node, url), client() as s:
        for name in ("x.js", "..%2f__init__.py", "__init__.py", "%2e%2e%2fserver.py", "index.html%00.js"):
            async with s.get(url + "/dashboard/" + name) as r:
                assert r.status == 404, name
                body = await r.json()  # a JSON error, never a file from elsewhere in the package
            assert "error" in body and "import" not in str(body), (name, body)


async def test_a_file_missing_from_the_install_is_a_503_page_naming_it() -> None:
    app = web.Application()
    for route in dashboard_routes({"index.html": None, "dashboard.css": b"", "dashboard.js": None}):
        app.router.add_route(route.method, route.path, route.handler)
    async with TestClient(TestServer(app)) as c:
        r = await c.get("/")
        assert r.status == 503 and "index.html is missing" in await r.text()
        r = await c.get("/dashboard/dashboard.js")
        assert r.status == 503 and "dashboard.js is missing" in await r.text()


# ------------------------------------------------------------------ public stream


async def test_public_stream_needs_no_token_and_never_carries_the_audit(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s, s.get(url + "/events/public") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        assert await r.content.readline() == b": connected\n"
        now = node.clock.time_ns()
        node.bus.publish(AdminAction(ts_event_ns=now, ts_init_ns=now, action="kill", remote="x",
                                     params={"reason": "secret plan"}, result="ok"))
        node.bus.publish(ConfigRejected(ts_event_ns=now, ts_init_ns=now, errors=("x",), restart_required=(),
                                        source="admin"))
        node.bus.publish(RiskDenied(ts_event_ns=now, ts_init_ns=now, instrument_id=BTC, strategy_id="s",
                                    side=Side.BUY, quantity=Decimal(1), reason="r", detail="d"))
        node.bus.publish(_fill("t1"))
        node.bus.publish(TradingStateChanged(ts_event_ns=now, ts_init_ns=now, old=TradingState.ACTIVE,
                                             new=TradingState.HALTED, reason="r", source="admin"))
        first = await _next_event(r)
        second = await _next_event(r)
    assert first[0] == "Fill" and first[1]["trade_id"] == "t1" and first[1]["qty"] == "0.1"
    assert second[0] == "TradingStateChanged" and second[1]["new"] == "HALTED"


async def test_public_stream_refuses_a_non_public_type_by_name(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        for types in ("AdminAction", "Fill,AdminAction", "ConfigApplied", "Nope"):
            async with s.get(url + "/events/public?types=" + types) as r:
                assert r.status == 400, types
                body = await r.json()
            assert types.split(",")[-1] in body["error"] and "AdminAction" not in body["known"]
        async with s.get(url + "/events/public?types=TradingStateChanged") as r:
            assert r.status == 200
            await r.content.readline()
            node.bus.publish(_fill("t2"))
            now = node.clock.time_ns()
            node.bus.publish(TradingStateChanged(ts_event_ns=now, ts_init_ns=now, old=TradingState.ACTIVE,
                                                 new=TradingState.REDUCING, reason="r", source="admin"))
            name, _ = await _next_event(r)
            assert name == "TradingStateChanged"  # the Fill before it was filtered out


async def test_public_streams_are_capped_and_the_slot_is_freed_on_disconnect(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(server, "MAX_PUBLIC_SSE_CLIENTS", 2)
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        a = await s.get(url + "/events/public")
        b = await s.get(url + "/events/public")
        assert (a.status, b.status) == (200, 200)
        await a.content.readline()
        await b.content.readline()
        async with s.get(url + "/events/public") as r:
            assert r.status == 503 and "2 public event streams" in (await r.json())["error"]
        async with s.get(url + "/events", headers=auth()) as r:  # the token stream is not counted
            assert r.status == 200
        b.close()
        # The server learns that b left when it next writes to it: publish until a slot is free
        # (each round is an HTTP round trip; bounded).
        status = 503
        for _ in range(200):
            node.bus.publish(_fill("t3"))
            async with s.get(url + "/events/public") as r:
                status = r.status
            if status == 200:
                break
        a.close()
    assert status == 200


async def test_token_stream_still_needs_the_token(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (_node, url), client() as s:
        async with s.get(url + "/events") as r:
            assert r.status == 401
        async with s.get(url + "/events", headers={"Authorization": f"Bearer {TOKEN}x"}) as r:
            assert r.status == 401
