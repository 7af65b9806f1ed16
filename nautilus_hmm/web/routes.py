"""Route declarations: one table drives the router, the auth check and /openapi.json.

A `Route` names its method, path, handler, whether it needs the bearer token, its query
parameters and, for admin actions, the JSON body fields it accepts (`Param`). Request
bodies are validated against those fields before the handler runs: unknown keys, wrong
types and malformed JSON are answered 400 with the field and the value named.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Param:
    """One body field or query parameter."""

    name: str
    type: type  # bool, int, float, str, list
    doc: str
    required: bool = False
    choices: tuple[Any, ...] = ()  # when set, the only accepted values


@dataclass(frozen=True, slots=True)
class Route:
    """A declared HTTP route."""

    method: str
    path: str
    handler: Handler
    summary: str
    auth: bool = False
    body: tuple[Param, ...] = ()
    query: tuple[Param, ...] = ()
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    content_type: str = "application/json"
    tag: str = "status"
    schemas: dict[int, dict[str, Any]] = field(default_factory=dict)  # JSON schema of a response body


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type: object, array, string, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def validate_body(data: Any, params: tuple[Param, ...]) -> tuple[dict[str, Any], list[str]]:
    """Check a decoded JSON body against declared params; return (values, errors).

    The body must be a JSON object: `null`, an array, a string or a number is an error
    (the caller passes {} for an empty body).
    """
    if not isinstance(data, dict):
        return {}, [f"body must be a JSON object, got {json_type_name(data)}"]
    known = {p.name: p for p in params}
    errors = [f"{k}: unknown field (accepted: {', '.join(known) or 'none'})" for k in data if k not in known]
    values: dict[str, Any] = {}
    for p in params:
        if p.name not in data:
            if p.required:
                errors.append(f"{p.name}: required field is missing")
            continue
        v = data[p.name]
        ok = isinstance(v, p.type) and not (p.type in (int, float) and isinstance(v, bool))
        if p.type is float and isinstance(v, int) and not isinstance(v, bool):
            ok, v = True, float(v)
        if not ok:
            errors.append(f"{p.name} = {v!r}: expected {_JSON_TYPES.get(p.type, p.type.__name__)}")
            continue
        if p.choices and v not in p.choices:
            errors.append(f"{p.name} = {v!r}: must be one of {', '.join(repr(c) for c in p.choices)}")
            continue
        values[p.name] = v
    return values, errors


def openapi(routes: list[Route], version: str) -> dict[str, Any]:
    """An OpenAPI 3.0 document describing every declared route."""
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": (r.method.lower() + r.path.replace("/", "_").replace("{", "").replace("}", "")),
            "responses": {
                str(code): {"description": desc,
                            **({"content": {r.content_type: ({"schema": r.schemas[code]} if code in r.schemas
                                                             else {})}} if code < 300 else {})}
                for code, desc in r.responses.items()
            },
        }
        params = [
            {"name": q.name, "in": "query", "required": q.required, "description": q.doc,
             "schema": {"type": _JSON_TYPES.get(q.type, "string")}}
            for q in r.query
        ]
        params += [
            {"name": seg[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for seg in r.path.split("/") if seg.startswith("{")
        ]
        if params:
            op["parameters"] = params
        op["responses"].setdefault("421", {"description": "Host header names neither this server nor an "
                                                          "[http] allowed_hosts entry"})
        if r.auth:
            op["security"] = [{"bearer": []}]
            op["responses"].setdefault("401", {"description": "missing or wrong bearer token"})
        if r.body:
            op["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {p.name: {"type": _JSON_TYPES.get(p.type, "string"), "description": p.doc,
                                            **({"enum": list(p.choices)} if p.choices else {})}
                                   for p in r.body},
                    "required": [p.name for p in r.body if p.required],
                }}},
            }
            op["responses"].setdefault("400", {"description": "malformed body, naming the problem"})
            op["responses"].setdefault("413", {"description": "body over 64 KiB"})
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "nautilus-hmm admin API", "version": version},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
