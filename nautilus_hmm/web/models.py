"""Regime-model routes: GET /models, GET /regimes, and the token-guarded admin actions
POST /admin/retrain, /admin/models/{id}/promote, /admin/models/{id}/rollback,
/admin/models/{id}/canary.

Answers are JSON. A malformed body (unknown field, unknown `mode`) is 400; an unknown
model id is 404 naming the id; a model that fails validation or that the strategy
cannot run (another base interval) is 422 with the field and problem, and no tag moves;
a training already running, a training
that cannot start (too few bars ...) or a rollback naming a model that is not the
current production is 409. Admin actions are declared as `AdminAct`s, so the server
guards them with the bearer token, audits them and lists them in /openapi.json.

Rollback: `{id}` must be the current production id (or the word `production`): the
request says which model it means to roll back, so a stale or repeated request cannot
roll back a model promoted in between. Canary: `{id}` = `none` clears the canary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from nautilus_hmm.hmm.errors import ModelError
from nautilus_hmm.hmm.registry import RegistryError, UnknownModelError
from nautilus_hmm.strategies.hmm_service import (
    MODES,
    ModelService,
    TrainingBusy,
    TrainingUnavailable,
)
from nautilus_hmm.web.routes import Param, Route
from nautilus_hmm.web.server import AdminAct, json_response

Result = tuple[int, dict[str, Any]]


async def _guarded(model_id: str, action: Any) -> Result:
    """Run a tag action, mapping registry errors to HTTP statuses."""
    try:
        return 200, await action
    except UnknownModelError as exc:
        return 404, {"error": str(exc), "id": model_id}
    except ModelError as exc:
        return 422, {"error": f"model {model_id!r} failed validation: {exc}", "id": model_id}
    except RegistryError as exc:
        return 409, {"error": str(exc), "id": model_id}


def model_routes(service: ModelService,
                 services: Mapping[str, ModelService] | None = None) -> tuple[list[Route], list[AdminAct]]:
    """Read-only routes and admin actions over a ModelService. With several HMM strategies
    (`services` by strategy id) `?strategy=ID` (GET) or `"strategy": "ID"` (POST body) picks
    one; without it the routes serve `service` (the first); an unknown id is 404."""
    by_id = dict(services or {})

    def pick(sid: Any) -> ModelService | None:
        return service if sid is None else by_id.get(str(sid))

    def unknown(sid: Any) -> dict[str, Any]:
        return {"error": f"unknown hmm strategy {sid!r}", "strategy": sid, "known": sorted(by_id)}

    async def models(request: web.Request) -> web.Response:
        svc = pick(request.query.get("strategy"))
        if svc is None:
            return json_response(unknown(request.query.get("strategy")), 404)
        return json_response(await svc.models())

    async def regimes(request: web.Request) -> web.Response:
        svc = pick(request.query.get("strategy"))
        if svc is None:
            return json_response(unknown(request.query.get("strategy")), 404)
        return json_response(svc.regimes())

    async def retrain(params: dict[str, Any]) -> Result:
        svc = pick(params.get("strategy"))
        if svc is None:
            return 404, unknown(params.get("strategy"))
        try:
            run = svc.request_retrain(params.get("reason", "admin"), params.get("mode", "full"))
        except (TrainingBusy, TrainingUnavailable) as exc:
            running = svc.current.view() if svc.current is not None else None
            return 409, {"error": str(exc), "training": running}
        return 202, {"job": run}

    async def promote(params: dict[str, Any]) -> Result:
        svc = pick(params.get("strategy"))
        if svc is None:
            return 404, unknown(params.get("strategy"))
        model_id = str(params["id"])
        return await _guarded(model_id, svc.promote(model_id))

    async def rollback(params: dict[str, Any]) -> Result:
        svc = pick(params.get("strategy"))
        if svc is None:
            return 404, unknown(params.get("strategy"))
        model_id = str(params["id"])
        return await _guarded(model_id, svc.rollback(model_id))

    async def canary(params: dict[str, Any]) -> Result:
        svc = pick(params.get("strategy"))
        if svc is None:
            return 404, unknown(params.get("strategy"))
        model_id = str(params["id"])
        return await _guarded(model_id, svc.set_canary(None if model_id == "none" else model_id))

    strategy = Param("strategy", str, "the HMM strategy whose models (default: the first)")

    routes = [
        Route("GET", "/models", models, "Registered regime models with their tags, newest first", tag="models"),
        Route("GET", "/regimes", regimes, "Current regime posteriors and decisions per instrument "
              "(production and canary)", tag="models"),
    ]
    acts = [
        AdminAct("/admin/retrain", "Train a new regime model in a worker (it becomes the canary)", retrain,
                 body=(Param("reason", str, "why, for the audit log"),
                       Param("mode", str, "full (default) or update (warm-started from production)",
                             choices=MODES), strategy),
                 responses={202: "training started, with its job", 400: "unknown field or mode",
                            409: "a training is running or cannot start"}),
        AdminAct("/admin/models/{id}/promote", "Make a registered model production (hot swap)", promote,
                 body=(strategy,), responses={200: "promoted", 404: "unknown model id", 422: "model failed validation"}),
        AdminAct("/admin/models/{id}/rollback", "Production back to the previous production model; "
                 "{id} must be the current production", rollback, body=(strategy,),
                 responses={200: "rolled back", 404: "unknown model id",
                            409: "{id} is not the current production, or no previous model"}),
        AdminAct("/admin/models/{id}/canary", "Run a registered model as the canary ({id} = none clears it)",
                 canary, body=(strategy,), responses={200: "canary set", 404: "unknown model id", 409: "model is production",
                                    422: "model failed validation"}),
    ]
    return routes, acts
