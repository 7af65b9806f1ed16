"""The admin HTTP server: auth, body validation, SSE, OpenAPI, metrics exposition."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from decimal import Decimal

import orjson
import pytest

from nautilus_hmm.domain.enums import Liquidity, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import AdminAction, Fill, TradeTick
from tests.nodeharness import TOKEN, auth, client, running_node

PROTECTED = [("POST", "/admin/reload"), ("POST", "/admin/kill"), ("POST", "/admin/resume"),
             ("POST", "/admin/reduce"), ("GET", "/events")]


async def test_every_protected_route_answers_401_json_without_or_with_a_wrong_token(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        for method, path in PROTECTED:
            for headers in ({}, auth("wrong-token"), {"Authorization": TOKEN}):
                async with s.request(method, url + path, headers=headers) as r:
                    assert r.status == 401, (path, headers)
                    assert (await r.json()) == {"error": "missing or invalid bearer token"}


async def test_every_admin_route_answers_200_with_the_token_and_is_audited(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        audit: list[AdminAction] = []
        node.bus.subscribe(AdminAction, audit.append)
        for path in ("/admin/reload", "/admin/kill", "/admin/resume", "/admin/reduce"):
            async with s.post(url + path, headers=auth()) as r:
                assert r.status == 200, path
        assert [a.action for a in audit] == ["reload", "kill", "resume", "reduce"]
        assert node.trading_state.value == "REDUCING"


async def test_events_stream_opens_with_the_token(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/events", headers=auth()) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            assert await r.content.readline() == b": connected\n"


async def test_malformed_json_body_is_400_naming_the_problem(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.post(url + "/admin/kill", headers=auth(), data=b"{not json") as r:
            assert r.status == 400
            assert (await r.json())["error"].startswith("invalid JSON body")
        async with s.post(url + "/admin/kill", headers=auth(), data=b"[1,2]") as r:
            assert r.status == 400
            assert (await r.json())["error"] == "body must be a JSON object, got array"


async def test_unknown_field_and_wrong_type_are_400_and_change_nothing(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        before = node.trading_state
        async with s.post(url + "/admin/kill", headers=auth(), json={"flaten": True}) as r:
            assert r.status == 400
            assert "flaten: unknown field" in (await r.json())["error"]
        async with s.post(url + "/admin/kill", headers=auth(), json={"cancel_orders": "yes"}) as r:
            assert r.status == 400
            assert (await r.json())["error"] == "cancel_orders = 'yes': expected boolean"
        assert node.trading_state is before


async def test_body_over_64_kib_is_413(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        before = node.trading_state
        big = orjson.dumps({"reason": "x" * (70 * 1024)})
        async with s.post(url + "/admin/kill", headers=auth(), data=big) as r:
            assert r.status == 413
            assert "65536" in (await r.json())["error"]
        assert node.trading_state is before


async def test_unknown_route_is_404_json(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/nope") as r:
            assert r.status == 404
            assert "error" in await r.json()


async def test_sse_delivers_bus_messages_filtered_by_type(tmp_path, monkeypatch) -> None:
    iid = InstrumentId("sim", "BTCUSDT")
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/events?types=Fill", headers=auth()) as r:
            assert await r.content.readline() == b": connected\n"
            await r.content.readline()
            node.bus.publish(TradeTick(ts_event_ns=1, ts_init_ns=1, instrument_id=iid, price=1.0, size=1.0,
                                       aggressor=None, trade_id="1"))
            node.bus.publish(Fill(ts_event_ns=2, ts_init_ns=2, instrument_id=iid, client_order_id="c1",
                                  venue_order_id="v1", trade_id="t1", side=Side.BUY, qty=Decimal("0.1"),
                                  price=Decimal("100.5"), fee=Decimal("0.01"), fee_asset="USDT",
                                  liquidity=Liquidity.TAKER))
            assert await r.content.readline() == b"event: Fill\n"
            data = orjson.loads((await r.content.readline())[len("data: "):])
            assert data["type"] == "Fill" and data["instrument_id"] == "sim:BTCUSDT"
            assert data["qty"] == "0.1" and data["price"] == "100.5" and data["side"] == "BUY"


async def test_sse_unknown_type_is_400(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/events?types=Nope", headers=auth()) as r:
            assert r.status == 400
            assert "Nope" in (await r.json())["error"]


async def test_slow_sse_client_is_disconnected_not_buffered(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch, extra="sse_queue_size = 8\n") as (node, url):
        port = int(url.rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, f"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        for _ in range(100):
            await asyncio.sleep(0)
            if any(q.name.startswith("sse:") for q in node.bus.queue_subscribers):
                break
        (sub,) = [q for q in node.bus.queue_subscribers if q.name.startswith("sse:")]
        iid = InstrumentId("sim", "BTCUSDT")
        # The client never reads: socket buffers fill, then the bounded queue overflows.
        for i in range(20000):
            node.bus.publish(TradeTick(ts_event_ns=i, ts_init_ns=i, instrument_id=iid, price=1.0, size=1.0,
                                       aggressor=None, trade_id="x" * 200))
            if sub.closed:
                break
            if i % 50 == 0:
                await asyncio.sleep(0)
        assert sub.closed and "too slow" in sub.close_reason
        assert node.bus.stats.dropped[sub.name] >= 1
        assert sub not in node.bus.queue_subscribers
        sock.close()


async def test_openapi_describes_every_route(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/openapi.json") as r:
            doc = await r.json()
        paths = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        served = {(r.method, r.resource.canonical) for r in node.web._runner.app.router.routes()
                  if r.method != "HEAD"}
        assert paths == served
        for route in ("/health", "/ready", "/status", "/metrics", "/openapi.json", "/events"):
            assert ("GET", route) in paths
        assert doc["paths"]["/admin/kill"]["post"]["security"] == [{"bearer": []}]
        assert "flatten" in doc["paths"]["/admin/kill"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]


async def test_status_and_health_and_ready(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/health") as r:
            assert r.status == 200 and (await r.json())["status"] == "alive"
        async with s.get(url + "/status") as r:
            st = await r.json()
        assert st["config"]["hash"] == node.config.hash
        assert set(st["components"]) >= {"http", "loop_monitor", "heartbeat"}
        async with s.get(url + "/ready") as r:
            assert r.status == 200


async def test_ready_is_503_with_reasons_when_a_component_is_unhealthy(tmp_path, monkeypatch) -> None:
    from nautilus_hmm.core.lifecycle import Health

    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        node.loop_monitor._health = Health(False, "event loop lag 2.000s")
        async with s.get(url + "/ready") as r:
            assert r.status == 503
            assert (await r.json())["reasons"] == ["loop_monitor: event loop lag 2.000s"]


async def test_admin_reload_answers_400_with_errors_and_409_for_restart_fields(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        cfg_path = node.config.path
        good = cfg_path.read_text()
        cfg_path.write_text(good + "[risk]\nmax_order_notional_usd = -5\n")
        async with s.post(url + "/admin/reload", headers=auth()) as r:
            assert r.status == 400
            assert (await r.json())["errors"] == ["risk.max_order_notional_usd = -5: must be > 0"]
        cfg_path.write_text(good.replace("port = 0", "port = 1"))
        async with s.post(url + "/admin/reload", headers=auth()) as r:
            assert r.status == 409
            assert (await r.json())["restart_required"] == ["http.port"]
        cfg_path.write_text(good + '[log]\nlevel = "debug"\n')
        async with s.post(url + "/admin/reload", headers=auth()) as r:
            body = await r.json()
            assert r.status == 200 and body["changed"] == ["log.level"]
        from nautilus_hmm.obs.logging import current_level, set_level
        assert current_level() == "debug"
        set_level("info")


async def test_metrics_pass_promtool_check(tmp_path, monkeypatch) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("NAUTILUS_HMM_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is required (install Debian's prometheus package)")
        pytest.skip("promtool not installed")
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        await s.post(url + "/admin/kill", headers=auth())
        await s.get(url + "/status")
        async with s.get(url + "/metrics") as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await r.read()
    for name in (b"config_reloads_total", b"http_requests_total", b"event_loop_lag_seconds_bucket",
                 b"bus_messages_published_total", b"component_up", b"nautilus_hmm_build_info",
                 b"admin_actions_total", b'account_currency_info{currency="USDT"} 1.0'):
        assert name in text, name
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


async def test_wrong_method_is_405_with_an_allow_header(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.get(url + "/admin/kill", headers=auth()) as r:
            assert r.status == 405
            assert r.headers["Allow"] == "POST"
            assert "error" in await r.json()
        async with s.post(url + "/status") as r:
            assert r.status == 405
            assert set(r.headers["Allow"].split(",")) >= {"GET"}


@pytest.mark.parametrize("body", [b"null", b"3", b'"kill"', b"true"])
async def test_a_json_body_that_is_not_an_object_is_400_and_changes_nothing(tmp_path, monkeypatch, body) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        before = node.trading_state
        for path in ("/admin/kill", "/admin/reduce", "/admin/resume"):
            async with s.post(url + path, headers=auth(), data=body) as r:
                assert r.status == 400, (path, body)
                assert (await r.json())["error"].startswith("body must be a JSON object, got "), path
        assert node.trading_state is before


async def test_an_empty_body_is_still_an_empty_object(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        async with s.post(url + "/admin/reduce", headers=auth()) as r:
            assert r.status == 200


async def test_a_foreign_host_header_is_refused_on_every_route(tmp_path, monkeypatch) -> None:
    # A DNS-rebinding page at http://evil.example:PORT reaches the loopback listener with
    # its own name in Host: nothing, not even the unauthenticated reads, may answer it.
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s:
        port = node.web.bound_port
        before = node.trading_state
        for path in ("/positions", "/status", "/health", "/metrics"):
            async with s.get(url + path, headers={"Host": f"evil.example:{port}"}) as r:
                assert r.status == 421, path
                body = await r.json()
                assert "evil.example" in body["error"] and "allowed_hosts" in body["error"]
        async with s.post(url + "/admin/kill", headers={**auth(), "Host": "evil.example"}) as r:
            assert r.status == 421
        assert node.trading_state is before


async def test_loopback_names_the_hostname_and_configured_names_are_accepted(tmp_path, monkeypatch) -> None:
    extra = 'allowed_hosts = ["dash.example.org"]\n'  # appended to the harness's [http] table
    async with running_node(tmp_path, monkeypatch, extra=extra) as (node, url), client() as s:
        port = node.web.bound_port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}",
                     f"{socket.gethostname()}:{port}", f"dash.example.org:{port}", "DASH.example.org"):
            async with s.get(url + "/health", headers={"Host": host}) as r:
                assert r.status == 200, host
