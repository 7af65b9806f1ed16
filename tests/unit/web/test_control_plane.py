"""The control routes over the real ControlPlane (control.plane) and a real Allocator, with a
fake router: the plane's errors reach the client as 400/404 naming the field or id, and a
refused request changes neither the router nor the allocator's state file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nautilus_hmm.control.allocation import ShareBounds
from nautilus_hmm.control.allocator import Allocator, AllocatorConfig
from nautilus_hmm.control.plane import ControlPlane
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.messages import AllocationChanged
from tests.unit.web.test_control import AUTH, serving


class FakeRouter:
    """control.plane.RouterPort: states and shares in dicts, plus the house account's row."""

    def __init__(self) -> None:
        self.states = {"trend": "active", "hmm": "active"}
        self.shares: dict[str, float] = {}
        self.changes: list[tuple[str, str, str, str]] = []

    def views(self) -> list[dict[str, Any]]:
        rows = [{"strategy_id": s, "state": st, "share": self.shares.get(s)} for s, st in self.states.items()]
        return [*rows, {"strategy_id": "_house", "state": "active", "share": None}]

    def set_state(self, strategy_id: str, state: str, reason: str, source: str) -> None:
        self.state(strategy_id)
        self.states[strategy_id] = state
        self.changes.append((strategy_id, state, reason, source))

    def state(self, strategy_id: str) -> str:
        return self.states[strategy_id]

    def pnl_series(self, strategy_id: str) -> list[tuple[int, float]]:
        return []

    def stats(self, strategy_id: str) -> Any:
        return None

    def capital_usd(self, strategy_id: str, lane: str = "production") -> float:
        return 0.0

    def collect_metrics(self) -> list[Any]:
        return []

    def set_shares(self, shares: Mapping[str, float]) -> None:
        self.shares = dict(shares)


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, FakeRouter, Bus, aiohttp.ClientSession, str]]:
    router, bus = FakeRouter(), Bus()
    bounds = {"trend": ShareBounds(0.0, 0.5, 1.0), "hmm": ShareBounds(0.2, 1.0, 1.0)}
    allocator = Allocator(AllocatorConfig, ManualClock(), bus, router.pnl_series, lambda: bounds,
                          router.set_shares, tmp_path / "allocations.json")
    allocator.restore()
    cp = ControlPlane(router, allocator)
    async with serving(cp, bus) as (url, _), aiohttp.ClientSession() as s:
        yield cp, router, bus, s, url


async def test_strategies_are_the_routers_rows_without_the_house_account(plane) -> None:
    _, _, _, s, url = plane
    async with s.get(url + "/strategies") as r:
        rows = (await r.json())["strategies"]
    assert [row["strategy_id"] for row in rows] == ["trend", "hmm"] and rows[0]["share"] == 0.5
    async with s.get(url + "/strategies/_house") as r:
        assert r.status == 404


async def test_disable_reaches_the_router_and_an_unknown_id_changes_nothing(plane) -> None:
    _, router, _, s, url = plane
    async with s.post(url + "/admin/strategies/trend/disable", headers=AUTH, json={"reason": "review"}) as r:
        assert r.status == 200 and (await r.json())["state"] == "disabled"
    async with s.post(url + "/admin/strategies/ghost/reduce", headers=AUTH) as r:
        assert r.status == 404 and (await r.json())["id"] == "ghost"
    assert router.changes == [("trend", "disabled", "review", "admin")]


async def test_an_override_reaches_the_router_and_is_an_allocation_changed_event(plane) -> None:
    _, router, bus, s, url = plane
    events: list[AllocationChanged] = []
    bus.subscribe(AllocationChanged, events.append)
    async with s.post(url + "/admin/allocations", headers=AUTH,
                      json={"shares": {"trend": 0.25, "hmm": 0.75}, "expires_s": 3600}) as r:
        assert r.status == 200
        view = await r.json()
    assert view["source"] == "override" and view["override"]["source"] == "admin"
    assert router.shares == {"trend": 0.25, "hmm": 0.75}
    assert [(e.shares, e.source) for e in events] == [({"trend": 0.25, "hmm": 0.75}, "override")]


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"shares": {"trend": 0.9, "hmm": 0.1}, "expires_s": 60}, 400,
     "shares.trend = 0.9: must be within [0.0, 0.5] (min_share, max_share)"),
    ({"shares": {"trend": 0.5, "hmm": 0.4}, "expires_s": 60}, 400, "shares = 0.9: must sum to 1"),
    ({"shares": {"trend": 0.5, "hmm": 0.5}, "expires_s": 86_400 * 31}, 400,
     "expires_s = 2678400.0: must be a number of seconds in (0, 2592000]"),
    ({"shares": {"trend": 0.5, "ghost": 0.5}, "expires_s": 60}, 404, "unknown strategy 'ghost'"),
])
async def test_a_refused_override_names_the_field_and_changes_nothing(plane, tmp_path, body, status, error) -> None:
    _, router, _, s, url = plane
    before = dict(router.shares)
    async with s.post(url + "/admin/allocations", headers=AUTH, json=body) as r:
        assert r.status == status
        assert (await r.json())["error"] == error
    assert router.shares == before and not (tmp_path / "allocations.json").exists()
    async with s.get(url + "/allocations") as r:
        assert (await r.json())["source"] != "override"


async def test_an_override_without_an_allocator_is_400_saying_so() -> None:
    async with serving(ControlPlane(FakeRouter())) as (url, _), aiohttp.ClientSession() as s, \
            s.post(url + "/admin/allocations", headers=AUTH, json={"shares": {"trend": 1.0}, "expires_s": 60}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "shares = {'trend': 1.0}: no allocator runs in this process"
