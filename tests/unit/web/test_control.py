"""The control-plane routes over HTTP (web.control) against a fake plane on a loopback server:
views, state changes, allocation overrides, bad input (400/404, nothing changes), the token
and the audit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import aiohttp
import numpy as np
import pytest

from nautilus_hmm.control.allocation import ShareBounds, validate_override
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import AdminAction, Message
from nautilus_hmm.obs.metrics import NodeMetrics
from nautilus_hmm.web.control import ControlPlanePort, control_routes
from nautilus_hmm.web.server import WebContext, WebServer

TOKEN = "control-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATES = {"enable": "active", "disable": "disabled", "reduce": "reduce"}


class FakePlane:
    """A control plane of two strategies; overrides are checked by control's own validation."""

    def __init__(self) -> None:
        self.states = {"trend": "active", "hmm": "active"}
        self.bounds = {"trend": ShareBounds(0.0, 0.5, 1.0), "hmm": ShareBounds(0.2, 1.0, 1.0)}
        self.shares = {"trend": 0.5, "hmm": 0.5}
        self.source = "static"
        self.changes: list[tuple[str, str, str, str]] = []

    def strategy_views(self) -> list[dict[str, Any]]:
        return [self._view(s) for s in self.states]

    def strategy_view(self, strategy_id: str) -> dict[str, Any] | None:
        return self._view(strategy_id) if strategy_id in self.states else None

    def _view(self, sid: str) -> dict[str, Any]:
        return {"strategy_id": sid, "kind": "sma_cross" if sid == "trend" else "hmm", "state": self.states[sid],
                "share": self.shares[sid], "capital_usd": 10_000.0 * self.shares[sid],
                "positions": {"sim:BTCUSDT": Decimal("0.015")}, "equity_usd": 5_012.5,
                "pnl_usd": Decimal("12.50"), "last_target": {"lane": "production", "instrument": "sim:BTCUSDT", "exposure": 0.8,
                                "target_qty": None, "reason": "fast > slow", "ts_ns": 1}}

    def set_strategy_state(self, strategy_id: str, action: str, reason: str, source: str) -> dict[str, Any]:
        if strategy_id not in self.states:
            raise KeyError(strategy_id)
        self.states[strategy_id] = STATES[action]
        self.changes.append((strategy_id, action, reason, source))
        return self._view(strategy_id)

    def allocation_view(self) -> dict[str, Any]:
        return {"shares": dict(self.shares), "source": self.source,
                "bounds": {s: b._asdict() for s, b in self.bounds.items()}}

    def set_allocation_override(self, shares: Mapping[str, float], expires_s: float, source: str) -> dict[str, Any]:
        self.shares = validate_override(shares, self.bounds, expires_s)
        self.source = f"override by {source} for {expires_s:g}s"
        return self.allocation_view()

    def governance_view(self) -> dict[str, Any]:
        return {"dry_run": False, "decisions": [{"rule": "drawdown", "strategy_id": "trend", "action": "reduce",
                                                 "evidence": {"drawdown_pct": Decimal("12.5")}}]}


def test_the_fake_implements_the_port() -> None:
    plane: ControlPlanePort = FakePlane()  # mypy checks the shape; this keeps the fake honest at runtime
    for name in ("strategy_views", "strategy_view", "set_strategy_state", "allocation_view",
                 "set_allocation_override", "governance_view"):
        assert callable(getattr(plane, name))


@contextlib.asynccontextmanager
async def serving(plane: Any, bus: Bus | None = None) -> AsyncIterator[tuple[str, Bus]]:
    """A WebServer with the control routes on 127.0.0.1:<free port>; yields its URL and bus."""
    bus = bus if bus is not None else Bus()
    extra, admin = control_routes(plane)
    ctx = WebContext(bus=bus, clock=ManualClock(), metrics=NodeMetrics(bus), token=lambda: TOKEN,
                     status=dict, readiness=lambda: (True, []),
                     message_types={c.__name__: c for c in Message.__subclasses__()},
                     sse_queue_size=lambda: 64, sse_heartbeat_s=lambda: 3600.0, admin=admin, extra_routes=extra)
    server = WebServer(ctx, "127.0.0.1", 0)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.bound_port}", bus
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_strategies_lists_every_strategy_with_decimals_as_strings(http) -> None:
    async with serving(FakePlane()) as (url, _), http.get(url + "/strategies") as r:
        assert r.status == 200
        rows = (await r.json())["strategies"]
    assert [row["strategy_id"] for row in rows] == ["trend", "hmm"]
    assert rows[0]["state"] == "active" and rows[0]["positions"] == {"sim:BTCUSDT": "0.015"}
    assert rows[0]["pnl_usd"] == "12.50"


async def test_one_strategy_by_id_and_an_unknown_id_is_404_naming_it_and_the_known_ids(http) -> None:
    async with serving(FakePlane()) as (url, _):
        async with http.get(url + "/strategies/hmm") as r:
            assert r.status == 200 and (await r.json())["kind"] == "hmm"
        async with http.get(url + "/strategies/nope") as r:
            assert r.status == 404
            assert await r.json() == {"error": "unknown strategy 'nope'", "id": "nope", "known": ["trend", "hmm"]}


async def test_allocations_and_governance_views(http) -> None:
    async with serving(FakePlane()) as (url, _):
        async with http.get(url + "/allocations") as r:
            assert r.status == 200 and (await r.json())["shares"] == {"trend": 0.5, "hmm": 0.5}
        async with http.get(url + "/governance") as r:
            body = await r.json()
    assert body["decisions"][0]["evidence"] == {"drawdown_pct": "12.5"}


async def test_a_view_holding_numpy_numbers_is_plain_json(http) -> None:
    plane = FakePlane()
    plane.governance_view = lambda: {"evidence": {"t": np.float64(2.5), "bars": np.int64(96)}}  # type: ignore[method-assign]
    async with serving(plane) as (url, _), http.get(url + "/governance") as r:
        assert r.status == 200 and await r.json() == {"evidence": {"t": 2.5, "bars": 96}}


@pytest.mark.parametrize("action", ["enable", "disable", "reduce"])
async def test_a_state_action_changes_the_state_with_its_reason_and_is_audited(http, action) -> None:
    plane = FakePlane()
    plane.states["trend"] = "reduce" if action == "enable" else "active"
    async with serving(plane) as (url, bus):
        audit: list[AdminAction] = []
        bus.subscribe(AdminAction, audit.append)
        async with http.post(url + f"/admin/strategies/trend/{action}", headers=AUTH,
                             json={"reason": "drawdown review"}) as r:
            assert r.status == 200
            assert (await r.json())["state"] == STATES[action]
    assert plane.changes == [("trend", action, "drawdown review", "admin")]
    (a,) = audit
    assert a.action == f"admin_strategies_{{id}}_{action}" and a.result == "ok"
    assert a.params == {"id": "trend", "reason": "drawdown review"}


async def test_a_state_action_without_a_reason_says_who_did_it(http) -> None:
    plane = FakePlane()
    async with serving(plane) as (url, _), http.post(url + "/admin/strategies/hmm/disable", headers=AUTH) as r:
        assert r.status == 200
    assert plane.changes == [("hmm", "disable", "disable by admin", "admin")]


async def test_a_state_action_on_an_unknown_id_is_404_naming_it_audited_and_changes_nothing(http) -> None:
    plane = FakePlane()
    async with serving(plane) as (url, bus):
        audit: list[AdminAction] = []
        bus.subscribe(AdminAction, audit.append)
        async with http.post(url + "/admin/strategies/ghost/disable", headers=AUTH) as r:
            assert r.status == 404
            body = await r.json()
    assert body["error"] == "unknown strategy 'ghost'" and body["id"] == "ghost"
    assert plane.changes == [] and set(plane.states.values()) == {"active"}
    assert [a.result for a in audit] == ["error_404"]


async def test_a_state_the_plane_refuses_is_409_with_its_message(http) -> None:
    plane = FakePlane()

    def refuse(strategy_id: str, action: str, reason: str, source: str) -> dict[str, Any]:
        raise ValueError("its instruments are on a halted venue")

    plane.set_strategy_state = refuse  # type: ignore[method-assign]
    async with serving(plane) as (url, _), http.post(url + "/admin/strategies/trend/enable", headers=AUTH) as r:
        assert r.status == 409
        assert (await r.json())["error"] == "enable 'trend': its instruments are on a halted venue"


@pytest.mark.parametrize("path", ["/admin/strategies/trend/enable", "/admin/strategies/trend/disable",
                                  "/admin/strategies/trend/reduce", "/admin/allocations"])
async def test_every_control_admin_route_needs_the_token_and_changes_nothing_without_it(http, path) -> None:
    plane = FakePlane()
    async with serving(plane) as (url, bus):
        audit: list[AdminAction] = []
        bus.subscribe(AdminAction, audit.append)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.post(url + path, headers=headers,
                                 json={"shares": {"trend": 0.3, "hmm": 0.7}, "expires_s": 60}
                                 if path.endswith("allocations") else {}) as r:
                assert r.status == 401
    assert plane.changes == [] and plane.shares == {"trend": 0.5, "hmm": 0.5} and audit == []


async def test_an_allocation_override_is_applied_and_audited(http) -> None:
    plane = FakePlane()
    async with serving(plane) as (url, bus):
        audit: list[AdminAction] = []
        bus.subscribe(AdminAction, audit.append)
        async with http.post(url + "/admin/allocations", headers=AUTH,
                             json={"shares": {"trend": 0.3, "hmm": 0.7}, "expires_s": 600}) as r:
            assert r.status == 200
            assert (await r.json())["shares"] == {"trend": 0.3, "hmm": 0.7}
    assert plane.source == "override by admin for 600s"
    (a,) = audit
    assert a.action == "allocations" and a.result == "ok"
    assert a.params == {"shares": {"trend": 0.3, "hmm": 0.7}, "expires_s": 600.0}


@pytest.mark.parametrize(("body", "error"), [
    ({"shares": {"trend": 0.9, "hmm": 0.1}, "expires_s": 60},
     "shares.trend = 0.9: must be within [0.0, 0.5] (min_share, max_share)"),
    ({"shares": {"trend": 0.4, "hmm": 0.4}, "expires_s": 60}, "shares = 0.8: must sum to 1"),
    ({"shares": {"trend": 0.5, "hmm": 0.5}, "expires_s": 1e9},
     "expires_s = 1000000000.0: must be a number of seconds in (0, 2592000]"),
])
async def test_shares_the_plane_refuses_are_400_naming_the_field_and_change_nothing(http, body, error) -> None:
    plane = FakePlane()
    async with serving(plane) as (url, _), http.post(url + "/admin/allocations", headers=AUTH, json=body) as r:
        assert r.status == 400
        answer = await r.json()
    assert answer["error"] == error and answer["field"] == error.split(" = ")[0]
    assert plane.shares == {"trend": 0.5, "hmm": 0.5} and plane.source == "static"


async def test_an_override_naming_an_unknown_strategy_is_404_naming_it(http) -> None:
    plane = FakePlane()
    async with serving(plane) as (url, _), http.post(url + "/admin/allocations", headers=AUTH,
                                                     json={"shares": {"ghost": 1.0}, "expires_s": 60}) as r:
        assert r.status == 404
        body = await r.json()
    assert body["error"] == "unknown strategy 'ghost'" and body["known"] == ["trend", "hmm"]
    assert plane.source == "static"


@pytest.mark.parametrize(("raw", "error"), [
    (b'{"shares": {"trend": "0.5", "hmm": 0.5}, "expires_s": 60}',
     "shares.trend = '0.5': expected a number (got string)"),
    (b'{"shares": {"trend": true, "hmm": 0.5}, "expires_s": 60}',
     "shares.trend = True: expected a number (got boolean)"),
    (b'{"shares": [0.5, 0.5], "expires_s": 60}', "shares = [0.5, 0.5]: expected object"),
    (b'{"shares": {}, "expires_s": 60}', "shares = {}: expected at least one strategy id -> share"),
    (b'{"shares": {"trend": 0.5, "hmm": 0.5}}', "expires_s: required field is missing"),
    (b'{"shares": {"trend": 0.5, "hmm": 0.5}, "expires_s": -1}', "expires_s = -1.0: expected a number of "
                                                                 "seconds above 0"),
    (b'{"shares": {"trend": 0.5, "hmm": 0.5}, "expires_s": "1h"}', "expires_s = '1h': expected number"),
    (b'{"shares": {"trend": 0.5}, "expires_s": 60, "force": true}',
     "force: unknown field (accepted: shares, expires_s)"),
    (b'{"shares": {"trend": 1e999, "hmm": 0.5}, "expires_s": 60}', None),
    (b'{"shares": ', None),
    (b'null', "body must be a JSON object, got null"),
])
async def test_a_malformed_allocation_body_is_400_naming_the_field_never_a_traceback(http, raw, error) -> None:
    plane = FakePlane()
    async with serving(plane) as (url, _), http.post(url + "/admin/allocations", headers=AUTH, data=raw) as r:
        assert r.status == 400
        answer = await r.json()
    if error is not None:
        assert answer["error"] == error
    assert "Traceback" not in answer["error"] and answer["error"]
    assert plane.shares == {"trend": 0.5, "hmm": 0.5} and plane.source == "static"


async def test_an_async_plane_is_awaited(http) -> None:
    plane = FakePlane()

    class AsyncPlane:
        async def strategy_views(self) -> list[dict[str, Any]]:
            return plane.strategy_views()

        async def allocation_view(self) -> dict[str, Any]:
            return plane.allocation_view()

        def __getattr__(self, name: str) -> Any:
            return getattr(plane, name)

    async with serving(AsyncPlane()) as (url, _):
        async with http.get(url + "/strategies") as r:
            assert len((await r.json())["strategies"]) == 2
        async with http.get(url + "/allocations") as r:
            assert (await r.json())["source"] == "static"


async def test_openapi_lists_the_control_routes_with_the_token_on_admin_ones(http) -> None:
    async with serving(FakePlane()) as (url, _), http.get(url + "/openapi.json") as r:
        doc = await r.json()
    paths = doc["paths"]
    for path in ("/strategies", "/strategies/{id}", "/allocations", "/governance"):
        assert "get" in paths[path] and "security" not in paths[path]["get"], path
    for action in ("enable", "disable", "reduce"):
        op = paths[f"/admin/strategies/{{id}}/{action}"]["post"]
        assert op["security"] == [{"bearer": []}] and "404" in op["responses"]
        assert op["parameters"][0]["name"] == "id"
    body = paths["/admin/allocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["shares"]["type"] == "object" and body["required"] == ["shares", "expires_s"]


class ClearingPlane(FakePlane):
    """A plane that can also end an override early (the optional clear_allocation_override)."""

    def clear_allocation_override(self, source: str) -> dict[str, Any]:
        self.shares, self.source = {"trend": 0.5, "hmm": 0.5}, f"static (override cleared by {source})"
        return self.allocation_view()


async def test_clear_override_is_served_only_for_a_plane_that_can_clear(http) -> None:
    async with serving(FakePlane()) as (url, _), http.post(url + "/admin/allocations/clear_override",
                                                            headers=AUTH) as r:
        assert r.status == 404
    plane = ClearingPlane()
    plane.shares, plane.source = {"trend": 0.2, "hmm": 0.8}, "override"
    async with serving(plane) as (url, bus):
        audit: list[AdminAction] = []
        bus.subscribe(AdminAction, audit.append)
        async with http.post(url + "/admin/allocations/clear_override") as r:
            assert r.status == 401
        async with http.post(url + "/admin/allocations/clear_override", headers=AUTH,
                             json={"reason": "done testing"}) as r:
            assert r.status == 200 and (await r.json())["shares"] == {"trend": 0.5, "hmm": 0.5}
    assert plane.source == "static (override cleared by admin)"
    assert [(a.action, a.params, a.result) for a in audit] == [("clear_override", {"reason": "done testing"}, "ok")]

