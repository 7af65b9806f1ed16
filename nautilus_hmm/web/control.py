"""Control-plane routes: GET /strategies, /strategies/{id}, /allocations, /governance and the
token-guarded admin actions POST /admin/strategies/{id}/enable|disable|reduce and
POST /admin/allocations.

The routes hold the control plane through `ControlPlanePort` (the web layer sits above
`control/`, so it names no class of it). Answers are JSON; the admin actions are
`AdminAct`s, so the server guards them with the bearer token, audits them (log line +
`AdminAction` event, which the journal records) and lists them in /openapi.json.

Bad input is answered before anything changes, never with a traceback:
- an unknown strategy id is 404 naming the id and the known ids (the port raises
  KeyError; `strategy_id` or the KeyError's first argument names it);
- a malformed allocation body (shares not an object of numbers, no expiry) is 400 naming
  the field, checked here before the port is called;
- shares the plane refuses (outside a strategy's [min_share, max_share], not summing to 1,
  an expiry out of range) are 400: the port raises an exception carrying `field`, `value`
  and `message` (control's AllocationError; any exception with the three attributes), and
  the answer is `"<field> = <value>: <message>"` with `field` and `value` beside it;
- a state change the plane refuses with another ValueError is 409 with its message.

The port's methods may be plain or coroutine functions; a returned awaitable is awaited.
A plane that also has `clear_allocation_override(source) -> dict` (optional, not part of
the port) gets POST /admin/allocations/clear_override: the override ends now.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from nautilus_hmm.web.routes import Param, Route, json_type_name
from nautilus_hmm.web.server import AdminAct, error, json_response

Result = tuple[int, dict[str, Any]]

STATE_ACTIONS: tuple[str, ...] = ("enable", "disable", "reduce")  # -> active | disabled | reduce
ADMIN_SOURCE = "admin"  # the `source` of every change made through these routes


class ControlPlanePort(Protocol):
    """What the control-plane routes need from the node's control plane."""

    def strategy_views(self) -> list[dict[str, Any]]:
        """One row per configured strategy: id, state, allocation, positions, PnL, equity, last decision."""
        ...

    def strategy_view(self, strategy_id: str) -> dict[str, Any] | None:
        """One strategy's row (more detail allowed), or None for an unknown id."""
        ...

    def set_strategy_state(self, strategy_id: str, action: str, reason: str, source: str) -> dict[str, Any]:
        """Apply enable | disable | reduce; KeyError for an unknown id; returns the strategy's view."""
        ...

    def allocation_view(self) -> dict[str, Any]:
        """GET /allocations: applied shares, their source, bounds, override, last rebalance inputs."""
        ...

    def set_allocation_override(self, shares: Mapping[str, float], expires_s: float,
                                source: str) -> dict[str, Any]:
        """Manual shares until expiry; KeyError for an unknown id, an InputError for bad shares."""
        ...

    def governance_view(self) -> dict[str, Any]:
        """GET /governance: rules, their status per strategy, recent decisions with evidence."""
        ...


@runtime_checkable
class InputError(Protocol):
    """An exception naming the input it refuses (control's AllocationError has this shape)."""

    field: str
    value: object
    message: str


def input_problem(exc: BaseException) -> tuple[str, object, str] | None:
    """(field, value, message) when `exc` carries all three, else None."""
    if isinstance(exc, InputError) and isinstance(exc.field, str) and isinstance(exc.message, str):
        return exc.field, exc.value, exc.message
    return None


def unknown_id(exc: KeyError, fallback: str) -> str:
    """The strategy id a KeyError is about (`strategy_id` attribute, first argument, or `fallback`)."""
    named = getattr(exc, "strategy_id", None)
    if isinstance(named, str):
        return named
    return str(exc.args[0]) if exc.args else fallback


def check_shares(shares: Any) -> tuple[dict[str, float], list[str]]:
    """The `shares` body field as {id: float}, or the problems naming each bad entry."""
    if not isinstance(shares, dict):
        return {}, [f"shares = {shares!r}: expected an object of strategy id -> share "
                    f"(got {json_type_name(shares)})"]
    if not shares:
        return {}, ["shares = {}: expected at least one strategy id -> share"]
    out: dict[str, float] = {}
    problems: list[str] = []
    for sid, v in shares.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            problems.append(f"shares.{sid} = {v!r}: expected a number (got {json_type_name(v)})")
        elif not math.isfinite(float(v)):
            problems.append(f"shares.{sid} = {v!r}: expected a finite number")
        else:
            out[str(sid)] = float(v)
    return out, problems


def _ids(views: list[dict[str, Any]]) -> list[str]:
    ids = []
    for v in views:
        sid = v.get("strategy_id", v.get("id")) if isinstance(v, dict) else None
        if sid is not None:
            ids.append(str(sid))
    return ids


async def _call(fn: Any, *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


STRATEGY_SCHEMA = {"type": "object", "description": "one strategy: id, kind, state, share, capital, "
                   "positions, PnL, equity, last target and denials (see docs/CONTROL.md)"}


def control_routes(plane: ControlPlanePort) -> tuple[list[Route], list[AdminAct]]:
    """Read-only routes and admin actions over a control plane."""

    async def known_ids() -> list[str]:
        return _ids(await _call(plane.strategy_views))

    async def not_found(sid: str) -> dict[str, Any]:
        return {"error": f"unknown strategy {sid!r}", "id": sid, "known": await known_ids()}

    async def strategies(request: web.Request) -> web.Response:
        return json_response({"strategies": await _call(plane.strategy_views)})

    async def strategy(request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        view = await _call(plane.strategy_view, sid)
        if view is None:
            body = await not_found(sid)
            return error(404, body.pop("error"), **body)
        return json_response(view)

    async def allocations(request: web.Request) -> web.Response:
        return json_response(await _call(plane.allocation_view))

    async def governance(request: web.Request) -> web.Response:
        return json_response(await _call(plane.governance_view))

    def state_act(action: str) -> Any:
        async def act(params: dict[str, Any]) -> Result:
            sid = str(params["id"])
            reason = str(params.get("reason") or f"{action} by admin")
            try:
                return 200, await _call(plane.set_strategy_state, sid, action, reason, ADMIN_SOURCE)
            except KeyError as exc:
                return 404, await not_found(unknown_id(exc, sid))
            except ValueError as exc:
                problem = input_problem(exc)
                if problem is not None:
                    f, v, m = problem
                    return 400, {"error": f"{f} = {v!r}: {m}", "field": f, "value": v}
                return 409, {"error": f"{action} {sid!r}: {exc}", "id": sid}
        return act

    async def set_allocations(params: dict[str, Any]) -> Result:
        shares, problems = check_shares(params.get("shares"))
        expires = float(params["expires_s"])  # required, a number: validate_body checked both
        if not (math.isfinite(expires) and expires > 0):
            problems.append(f"expires_s = {expires!r}: expected a number of seconds above 0")
        if problems:
            return 400, {"error": "; ".join(problems), "problems": problems}
        try:
            view = await _call(plane.set_allocation_override, shares, expires, ADMIN_SOURCE)
        except KeyError as exc:
            return 404, await not_found(unknown_id(exc, "?"))
        except ValueError as exc:
            problem = input_problem(exc)
            if problem is None:
                return 400, {"error": str(exc)}
            f, v, m = problem
            return 400, {"error": f"{f} = {v!r}: {m}", "field": f, "value": v}
        return 200, view

    clear = getattr(plane, "clear_allocation_override", None)

    async def clear_allocations(params: dict[str, Any]) -> Result:
        return 200, await _call(clear, ADMIN_SOURCE)

    routes = [
        Route("GET", "/strategies", strategies, "Every configured strategy: state, allocation, positions, "
              "PnL, equity, last decision", tag="control",
              schemas={200: _obj({"strategies": {"type": "array", "items": STRATEGY_SCHEMA}}, ("strategies",))}),
        Route("GET", "/strategies/{id}", strategy, "One strategy's view", tag="control",
              responses={200: "the strategy", 404: "unknown strategy id, with the known ids"},
              schemas={200: STRATEGY_SCHEMA}),
        Route("GET", "/allocations", allocations, "Capital shares per strategy: applied, computed, static, "
              "bounds, override and the last rebalance's inputs", tag="control"),
        Route("GET", "/governance", governance, "Governance rules, their status per strategy and recent "
              "decisions with the evidence that triggered them", tag="control"),
    ]
    reason = Param("reason", str, "why, for the audit log and the StrategyStateChanged event")
    what = {"enable": "Make a strategy active again",
            "disable": "Disable a strategy: its targets become 0 and its sub-account is closed by netting",
            "reduce": "Make a strategy reduce-only: its targets are clipped toward 0, never flipping"}
    acts = [
        AdminAct(f"/admin/strategies/{{id}}/{action}", what[action], state_act(action), body=(reason,),
                 responses={200: "state set (the strategy's view)", 400: "malformed body",
                            404: "unknown strategy id", 409: "the plane refuses the change now"})
        for action in STATE_ACTIONS
    ]
    acts.append(AdminAct(
        "/admin/allocations", "Override the allocator's shares until an expiry (shares of the enabled "
        "strategies, each within its [min_share, max_share], summing to 1; a strategy left out gets 0)",
        set_allocations,
        body=(Param("shares", dict, "strategy id -> share of the account's equity", required=True),
              Param("expires_s", float, "seconds the override holds before the computed shares return",
                    required=True)),
        responses={200: "override applied (the allocations view)",
                   400: "malformed body or shares outside their bounds, naming the field",
                   404: "unknown strategy id"}))
    if callable(clear):
        acts.append(AdminAct("/admin/allocations/clear_override", "End the manual allocation override now "
                             "(the computed shares return)", clear_allocations,
                             body=(Param("reason", str, "why, for the audit log"),),
                             responses={200: "no override holds (the allocations view)"}))
    return routes, acts
