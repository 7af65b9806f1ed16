"""Model routes in the real aiohttp app (web.server.build_app) on loopback: auth, 404, 409, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from nautilus_hmm.messages import AdminAction
from nautilus_hmm.obs.metrics import NodeMetrics
from nautilus_hmm.web.models import model_routes
from nautilus_hmm.web.server import WebContext, build_app
from tests.unit.hmm.fakes import FakeJob
from tests.unit.hmm.kit import decisive_model
from tests.unit.hmm.test_service import Rig

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNKNOWN = "m-20990101T000000Z-00000000"


class Web:
    """A Rig (service + strategy + registry) behind the real app."""

    def __init__(self, rig: Rig, client: TestClient) -> None:
        self.rig = rig
        self.client = client
        self.audit: list[AdminAction] = []
        rig.bus.subscribe(AdminAction, self.audit.append)


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[Web]:
    FakeJob.behaviour = "ok"
    rig = Rig(tmp_path)
    await rig.svc.start()
    routes, acts = model_routes(rig.svc)
    ctx = WebContext(bus=rig.bus, clock=rig.clock, metrics=NodeMetrics(rig.bus), token=lambda: TOKEN,
                     status=dict, readiness=lambda: (True, []), message_types={}, sse_queue_size=lambda: 10,
                     sse_heartbeat_s=lambda: 15.0, admin=acts, extra_routes=routes)
    async with TestClient(TestServer(build_app(ctx))) as client:
        yield Web(rig, client)
    await rig.svc.stop()


ADMIN = ["/admin/retrain", f"/admin/models/{UNKNOWN}/promote", f"/admin/models/{UNKNOWN}/rollback",
         f"/admin/models/{UNKNOWN}/canary"]


async def test_admin_model_routes_answer_401_without_the_token(web: Web) -> None:
    for path in ADMIN:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = await web.client.post(path, headers=headers)
            assert r.status == 401, path
            assert await r.json() == {"error": "missing or invalid bearer token"}
    assert web.audit == []


async def test_promote_of_an_unknown_id_is_404_naming_it_and_audited(web: Web) -> None:
    r = await web.client.post(f"/admin/models/{UNKNOWN}/promote", headers=AUTH)
    assert r.status == 404
    body = await r.json()
    assert body["id"] == UNKNOWN and UNKNOWN in body["error"]
    assert [(a.action, a.params, a.result) for a in web.audit] == [
        ("admin_models_{id}_promote", {"id": UNKNOWN}, "error_404")]


async def test_retrain_answers_202_with_the_job_then_409_while_it_runs(web: Web) -> None:
    web.rig.feed.run(2100, 0.0)
    FakeJob.behaviour = "block"
    r = await web.client.post("/admin/retrain", headers=AUTH, json={"reason": "drift"})
    assert r.status == 202
    job = (await r.json())["job"]
    assert (job["reason"], job["mode"], job["status"]) == ("drift", "full", "running")
    r = await web.client.post("/admin/retrain", headers=AUTH)
    assert r.status == 409
    body = await r.json()
    assert body["error"].startswith(f"training {job['id']} is running")
    assert body["training"]["id"] == job["id"]


async def test_retrain_with_too_few_bars_is_409_and_starts_nothing(web: Web) -> None:
    r = await web.client.post("/admin/retrain", headers=AUTH)
    assert r.status == 409
    assert "needs at least" in (await r.json())["error"]
    assert not web.rig.svc.training


async def test_retrain_with_an_unknown_body_field_is_400(web: Web) -> None:
    r = await web.client.post("/admin/retrain", headers=AUTH, json={"reasn": "x"})
    assert r.status == 400


async def test_models_lists_the_registry_with_tags_and_promote_moves_production(web: Web) -> None:
    reg = web.rig.registry
    a, b = reg.add(decisive_model()), reg.add(decisive_model(micro_next=0.002))
    reg.promote(a)
    r = await web.client.post(f"/admin/models/{b}/promote", headers=AUTH)
    assert r.status == 200 and await r.json() == {"production": b, "previous": a}
    listing = await (await web.client.get("/models")).json()
    assert (listing["production"], listing["previous_production"]) == (b, [a])
    assert [(m["id"], m["tag"]) for m in listing["models"]] == [(b, "production"), (a, None)]
    assert web.rig.strategy.model_id == b


async def test_rollback_must_name_the_current_production(web: Web) -> None:
    reg = web.rig.registry
    a, b = reg.add(decisive_model()), reg.add(decisive_model(micro_next=0.002))
    reg.promote(a)
    reg.promote(b)
    r = await web.client.post(f"/admin/models/{a}/rollback", headers=AUTH)
    assert r.status == 409 and "is not the current production" in (await r.json())["error"]
    r = await web.client.post(f"/admin/models/{UNKNOWN}/rollback", headers=AUTH)
    assert r.status == 404
    r = await web.client.post(f"/admin/models/{b}/rollback", headers=AUTH)
    assert r.status == 200 and await r.json() == {"production": a, "rolled_back": b}


async def test_a_model_that_fails_validation_is_422_and_changes_nothing(web: Web) -> None:
    reg = web.rig.registry
    a, b = reg.add(decisive_model()), reg.add(decisive_model(micro_next=0.002))
    reg.promote(a)
    (reg.root / b / "model.json").write_text('{"kind": "x"}')
    r = await web.client.post(f"/admin/models/{b}/promote", headers=AUTH)
    assert r.status == 422
    assert "kind" in (await r.json())["error"]
    assert reg.tags().production == a


async def test_promote_of_a_model_on_another_base_interval_is_422_and_tags_nothing(web: Web) -> None:
    import dataclasses

    reg = web.rig.registry
    a = reg.add(decisive_model())
    reg.promote(a)
    foreign = reg.add(dataclasses.replace(decisive_model(), base_interval_s=300))
    for action in ("promote", "canary"):
        r = await web.client.post(f"/admin/models/{foreign}/{action}", headers=AUTH)
        assert r.status == 422, action
        assert "base_interval_s" in (await r.json())["error"]
    tags = reg.tags()
    assert (tags.production, tags.canary) == (a, None)  # a restart loads what runs now


async def test_retrain_with_an_unknown_mode_is_400_naming_the_accepted_modes(web: Web) -> None:
    web.rig.feed.run(2100, 0.0)
    r = await web.client.post("/admin/retrain", headers=AUTH, json={"mode": "partial"})
    assert r.status == 400
    body = await r.json()
    assert body["error"] == "mode = 'partial': must be one of 'full', 'update'"
    assert not web.rig.svc.training


async def test_regimes_shows_production_and_canary_per_instrument(web: Web) -> None:
    reg = web.rig.registry
    a, b = reg.add(decisive_model()), reg.add(decisive_model(micro_next=0.002))
    reg.promote(a)
    assert (await web.client.post(f"/admin/models/{a}/promote", headers=AUTH)).status == 200
    assert (await web.client.post(f"/admin/models/{b}/canary", headers=AUTH)).status == 200
    web.rig.feed.run(400, 0.0005)
    body = await (await web.client.get("/regimes")).json()
    lane = body["instruments"]["sim:BTCUSDT"]
    assert (body["production"], body["canary"]) == (a, b)
    assert lane["production"]["model_id"] == a and lane["canary"]["model_id"] == b
    assert set(lane["production"]["micro"]["posteriors"]) == {"down", "up"}


async def test_openapi_lists_the_model_routes_as_token_guarded(web: Web) -> None:
    doc = await (await web.client.get("/openapi.json")).json()
    promote = doc["paths"]["/admin/models/{id}/promote"]["post"]
    assert promote["security"] == [{"bearer": []}]
    assert promote["parameters"][0]["name"] == "id"
    assert "404" in promote["responses"]
    assert "/models" in doc["paths"] and "/regimes" in doc["paths"]
