"""The control routes on a running node (the sma_cross shorthand config: one strategy): served,
in /openapi.json, a state change reaches the router and the SSE stream, bad input changes nothing."""

from __future__ import annotations

import asyncio

import orjson

from nautilus_hmm.messages import AdminAction
from tests.nodeharness import auth, client, running_node

CONTROL = [("GET", "/strategies"), ("GET", "/strategies/{id}"), ("GET", "/allocations"), ("GET", "/governance"),
           ("POST", "/admin/strategies/{id}/enable"), ("POST", "/admin/strategies/{id}/disable"),
           ("POST", "/admin/strategies/{id}/reduce"), ("POST", "/admin/allocations")]


async def test_the_node_serves_the_control_routes_and_lists_them_in_openapi(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (_, url), client() as s:
        async with s.get(url + "/openapi.json") as r:
            paths = {(m.upper(), p) for p, ops in (await r.json())["paths"].items() for m in ops}
        assert set(CONTROL) <= paths
        async with s.get(url + "/strategies") as r:
            rows = (await r.json())["strategies"]
        assert [(row["strategy_id"], row["state"], row["share"]) for row in rows] == [("sma_cross", "active", 1.0)]


async def test_reduce_on_the_node_reaches_the_router_the_audit_and_the_sse_stream(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url), client() as s, \
            s.get(url + "/events?types=StrategyStateChanged", headers=auth()) as events:
        assert await events.content.readline() == b": connected\n"
        audit: list[AdminAction] = []
        node.bus.subscribe(AdminAction, audit.append)
        async with s.post(url + "/admin/strategies/sma_cross/reduce", headers=auth(), json={"reason": "test"}) as r:
            assert r.status == 200 and (await r.json())["state"] == "reduce"
        line = await asyncio.wait_for(events.content.readline(), 10.0)
        while line == b"\n":
            line = await asyncio.wait_for(events.content.readline(), 10.0)
        assert line == b"event: StrategyStateChanged\n"
        data = orjson.loads((await events.content.readline())[len(b"data: "):])
        assert (data["strategy_id"], data["old"], data["new"], data["reason"], data["source"]) == \
            ("sma_cross", "active", "reduce", "test", "admin")
        assert [a.result for a in audit] == ["ok"]


async def test_bad_input_on_the_node_is_a_clear_error_and_changes_nothing(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (_, url), client() as s:
        async with s.post(url + "/admin/strategies/nope/disable", headers=auth()) as r:
            assert r.status == 404
            assert await r.json() == {"error": "unknown strategy 'nope'", "id": "nope", "known": ["sma_cross"]}
        async with s.post(url + "/admin/allocations", headers=auth(),
                          json={"shares": {"sma_cross": 0.5}, "expires_s": 60}) as r:
            assert r.status == 400 and (await r.json())["error"] == "shares = 0.5: must sum to 1"
        async with s.get(url + "/allocations") as r:
            view = await r.json()
        assert view["override"] is None and view["shares"] == {"sma_cross": 1.0}
        async with s.get(url + "/strategies/sma_cross") as r:
            assert (await r.json())["state"] == "active"
