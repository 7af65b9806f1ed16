"""The aiohttp server: health, readiness, status, metrics, SSE events and admin routes.

Runs in the node's event loop as a supervised component. `/admin/*` and `/events` need
`Authorization: Bearer <token>` (constant-time comparison). The dashboard (`/`, see
`web.dashboard`) and `/events/public` (the read-only event classes in
`PUBLIC_EVENT_TYPES`, at most `MAX_PUBLIC_SSE_CLIENTS` at once) need none. Errors are JSON:
401 for a missing or wrong token, 400 for a malformed body or one that is not a JSON
object (naming the problem), 413 for a body over 64 KiB, 404 for unknown routes, 405
with an `Allow` header for a wrong method. Every admin request is audited: a log line
and an `AdminAction` bus event (which the journal records).

Host check (DNS rebinding): a browser page on a name the attacker controls can resolve
that name to 127.0.0.1 and read the unauthenticated routes (/positions ...); its
requests carry the attacker's name in `Host`. Every request whose Host names something
else than the bind address, a loopback name (when bound to loopback), an IP literal
(when bound to a wildcard address), this machine's hostname or an `[http] allowed_hosts`
entry is answered 421, naming the host and the setting. A request without Host (HTTP/1.0
tools, never a browser) passes.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from aiohttp import web

from nautilus_hmm import __version__
from nautilus_hmm.core.bus import Bus, Overflow
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.messages import (
    AdminAction,
    AllocationChanged,
    BalanceUpdate,
    BreakerStateChanged,
    ComponentStateChanged,
    Fill,
    Message,
    ModelChanged,
    OrderEvent,
    PositionChanged,
    RegimeUpdate,
    StrategyStateChanged,
    TradingStateChanged,
    VenueTradingStateChanged,
)
from nautilus_hmm.messages.codec import message_to_dict, to_jsonable
from nautilus_hmm.obs.metrics import CONTENT_TYPE, NodeMetrics
from nautilus_hmm.web.dashboard import dashboard_routes
from nautilus_hmm.web.routes import Param, Route, openapi, validate_body

log = structlog.get_logger("web")

MAX_BODY_BYTES = 64 * 1024
AdminFn = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass(slots=True)
class AdminAct:
    """An admin action: accepted body fields and the coroutine that performs it."""

    path: str
    summary: str
    fn: AdminFn
    body: tuple[Param, ...] = ()
    responses: dict[int, str] = field(default_factory=lambda: {200: "done"})


@dataclass(slots=True)
class WebContext:
    """What the server needs from the node."""

    bus: Bus
    clock: Clock
    metrics: NodeMetrics
    token: Callable[[], str | None]
    status: Callable[[], dict[str, Any]]
    readiness: Callable[[], tuple[bool, list[str]]]
    message_types: dict[str, type[Message]]
    sse_queue_size: Callable[[], int]
    sse_heartbeat_s: Callable[[], float]
    admin: list[AdminAct] = field(default_factory=list)
    extra_routes: list[Route] = field(default_factory=list)
    allowed_hosts: Callable[[], Sequence[str]] = lambda: ()


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which `Host` header names the server answers (see the module docstring)."""

    bind_host: str
    extra: Callable[[], Sequence[str]] = lambda: ()
    hostname: str = field(default_factory=socket.gethostname)

    def allows(self, host_header: str | None) -> bool:
        """True when the Host header (name[:port]) may be answered."""
        if host_header is None:
            return True
        name = host_name(host_header)
        if name in {h.lower().rstrip(".") for h in self.extra()}:
            return True
        if name in (self.hostname.lower(), self.hostname.lower().split(".", 1)[0]):
            return True
        bind = self.bind_host.lower()
        literal = _ip(name)
        if literal is not None and literal == _ip(bind):
            return True
        if name == bind:
            return True
        if is_loopback(bind) and (name == "localhost" or (literal is not None and literal.is_loopback)):
            return True
        bound = _ip(bind)
        return bound is not None and bound.is_unspecified and (literal is not None or name == "localhost")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def host_name(host_header: str) -> str:
    """The name part of a Host header, lower-case: `[::1]:80` → `::1`, `Example.org:8080` → `example.org`."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h[1:]
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


CTX = web.AppKey("ctx", WebContext)
ROUTES = web.AppKey("routes", list)
HOSTS = web.AppKey("hosts", HostPolicy)


# numpy scalars (a statistics result in an event's evidence) are plain JSON numbers.
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(
        body=orjson.dumps(to_jsonable(data), option=JSON_OPTIONS),
        status=status,
        content_type="application/json",
    )


def error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error body: {"error": message, ...}."""
    return json_response({"error": message, **extra}, status)


def _remote(request: web.Request) -> str:
    return request.remote or "unknown"


def authorized(request: web.Request) -> bool:
    """Constant-time bearer token check."""
    token = request.app[CTX].token()
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


# ------------------------------------------------------------------ middlewares


@web.middleware
async def _observe(request: web.Request, handler: Any) -> web.StreamResponse:
    ctx = request.app[CTX]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    t0 = time.perf_counter()
    status = 500
    try:
        host = request.headers.get("Host")
        if not request.app[HOSTS].allows(host):
            status = 421
            log.warning("http_host_refused", host=host, path=request.path, remote=_remote(request))
            return error(421, f"Host {host!r} is not a name of this server; add it to [http] allowed_hosts "
                              "if it is (a foreign name is how a DNS-rebinding page reaches a loopback API)")
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPRequestEntityTooLarge:
        status = 413
        return error(413, f"request body over {MAX_BODY_BYTES} bytes")
    except web.HTTPException as exc:
        status = exc.status
        if exc.status >= 400:
            resp = error(exc.status, exc.reason)
            if "Allow" in exc.headers:  # 405 must say which methods the resource takes
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        raise
    except asyncio.CancelledError:
        status = 499
        raise
    except Exception as exc:
        log.error("http_handler_error", route=route, error=repr(exc), exc_info=exc)
        return error(500, "internal error")
    finally:
        ctx.metrics.http_requests.labels(route, request.method, str(status)).inc()
        ctx.metrics.http_latency.labels(route).observe(time.perf_counter() - t0)


def _guard(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    if not route.auth:
        return route.handler

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not authorized(request):
            log.warning("admin_unauthorized", path=request.path, remote=_remote(request))
            return error(401, "missing or invalid bearer token")
        return await route.handler(request)

    return guarded


# ------------------------------------------------------------------ handlers


async def _health(request: web.Request) -> web.Response:
    return json_response({"status": "alive", "version": __version__})


async def _ready(request: web.Request) -> web.Response:
    ok, reasons = request.app[CTX].readiness()
    return json_response({"ready": ok, "reasons": reasons}, 200 if ok else 503)


async def _status(request: web.Request) -> web.Response:
    return json_response(request.app[CTX].status())


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[CTX].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _openapi(request: web.Request) -> web.Response:
    return json_response(openapi(request.app[ROUTES], __version__))


# What the unauthenticated /events/public stream carries (the dashboard's live view): what
# the read routes already show to anyone who reaches the port (fills, orders, positions,
# balances, trading and venue state, component health, regimes, model tags, strategy state
# and allocations). Never the admin audit (AdminAction), config events, risk denials,
# commands, raw venue reports or market data.
PUBLIC_EVENT_TYPES: tuple[type[Message], ...] = (
    Fill, OrderEvent, PositionChanged, BalanceUpdate, TradingStateChanged, VenueTradingStateChanged,
    BreakerStateChanged, ComponentStateChanged, RegimeUpdate, ModelChanged, StrategyStateChanged,
    AllocationChanged,
)
MAX_PUBLIC_SSE_CLIENTS = 64  # a further /events/public client is answered 503 (the port may be shared)


@dataclass(slots=True)
class _PublicStreams:
    open: int = 0


PUBLIC_STREAMS = web.AppKey("public_streams", _PublicStreams)


def _wanted_types(request: web.Request, allowed: dict[str, type[Message]]) -> list[type[Message]] | web.Response:
    """The `types` query parameter as message classes out of `allowed` (all of them when absent)."""
    wanted = request.query.get("types", "")
    if not wanted:
        return list(allowed.values())
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        return error(400, f"types: unknown message type(s) {', '.join(unknown)}", known=sorted(allowed))
    return [allowed[n] for n in names]


async def _events(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    types = _wanted_types(request, ctx.message_types)
    if isinstance(types, web.Response):
        return types
    return await _stream(request, types if request.query.get("types") else None, "sse")


async def _events_public(request: web.Request) -> web.StreamResponse:
    types = _wanted_types(request, {t.__name__: t for t in PUBLIC_EVENT_TYPES})
    if isinstance(types, web.Response):
        return types
    streams = request.app[PUBLIC_STREAMS]
    if streams.open >= MAX_PUBLIC_SSE_CLIENTS:
        return error(503, f"{MAX_PUBLIC_SSE_CLIENTS} public event streams are open; try again later")
    streams.open += 1
    try:
        return await _stream(request, types, "sse-public")
    finally:
        streams.open -= 1


async def _stream(request: web.Request, types: list[type[Message]] | None, kind: str) -> web.StreamResponse:
    """Server-sent events of bus messages of `types` (None: every type) until the client leaves."""
    ctx = request.app[CTX]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    sub = ctx.bus.subscribe_queue(
        f"{kind}:{_remote(request)}:{id(resp):x}", types, ctx.sse_queue_size(), Overflow.DISCONNECT
    )
    transport = request.transport
    # A client too slow to drain its queue is cut: closing the transport also frees a
    # writer stuck waiting for the socket to drain.
    sub.on_close = lambda reason: transport.close() if transport and reason != "closed" else None
    ctx.metrics.sse_clients.inc()
    lock = asyncio.Lock()

    async def heartbeat() -> None:
        while True:
            await ctx.clock.sleep(ctx.sse_heartbeat_s())
            async with lock:
                await resp.write(b": keepalive\n\n")

    hb = asyncio.create_task(heartbeat(), name="sse-heartbeat")
    try:
        async with lock:
            await resp.write(b": connected\n\n")
        async for msg in sub:
            try:
                payload = orjson.dumps(message_to_dict(msg), option=JSON_OPTIONS)
            except TypeError as exc:  # a field orjson cannot encode: that event is skipped, the stream goes on
                log.error("sse_event_unserializable", type=type(msg).__name__, error=str(exc))
                continue
            async with lock:
                await resp.write(b"event: " + type(msg).__name__.encode() + b"\ndata: " + payload + b"\n\n")
    except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
        pass
    finally:
        hb.cancel()
        sub.close()
        ctx.metrics.sse_clients.dec()
    return resp


def _admin_handler(act: AdminAct) -> Callable[[web.Request], Awaitable[web.Response]]:
    action = act.path.rsplit("/", 1)[-1] if "{" not in act.path else act.path.strip("/").replace("/", "_")

    async def handle(request: web.Request) -> web.Response:
        ctx = request.app[CTX]
        raw = await request.read()
        data: Any = {}  # no body at all is an empty object; an explicit `null` is refused below
        if raw.strip():
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                log.warning("admin_bad_request", action=action, remote=_remote(request), error=str(exc))
                return error(400, f"invalid JSON body: {exc}")
        params, problems = validate_body(data, act.body)
        if problems:
            log.warning("admin_bad_request", action=action, remote=_remote(request), problems=problems)
            return error(400, "; ".join(problems), problems=problems)
        params.update(request.match_info)
        try:
            status, result = await act.fn(params)
        except Exception as exc:
            log.error("admin_action_failed", action=action, error=repr(exc), exc_info=exc)
            status, result = 500, {"error": f"{action} failed: {exc}"}
        outcome = "ok" if status < 400 else f"error_{status}"
        now = ctx.clock.time_ns()
        ctx.bus.publish(AdminAction(ts_event_ns=now, ts_init_ns=now, action=action,
                                    remote=_remote(request), params=params, result=outcome))
        log.warning("admin_action", action=action, remote=_remote(request), params=params, result=outcome)
        return json_response(result, status)

    return handle


def build_routes(ctx: WebContext) -> list[Route]:
    """Every route of the server."""
    routes = [
        Route("GET", "/health", _health, "Liveness: the process answers"),
        Route("GET", "/ready", _ready, "Readiness: every component healthy",
              responses={200: "ready", 503: "not ready, with reasons"}),
        Route("GET", "/status", _status, "Version, uptime, trading state, components, config hash"),
        Route("GET", "/metrics", _metrics, "Prometheus metrics", content_type="text/plain"),
        Route("GET", "/openapi.json", _openapi, "This document"),
        Route("GET", "/events", _events, "Server-sent events of bus messages", auth=True,
              query=(Param("types", str, "comma-separated message type names"),),
              content_type="text/event-stream", responses={200: "event stream", 400: "unknown type"}),
        Route("GET", "/events/public", _events_public, "Server-sent events of the read-only classes "
              f"({', '.join(t.__name__ for t in PUBLIC_EVENT_TYPES)}), no token: the dashboard's live view",
              query=(Param("types", str, "comma-separated names out of the public classes"),),
              content_type="text/event-stream",
              responses={200: "event stream", 400: "unknown or non-public type",
                         503: f"{MAX_PUBLIC_SSE_CLIENTS} public streams already open"}),
        *dashboard_routes(),
    ]
    for act in ctx.admin:
        routes.append(Route("POST", act.path, _admin_handler(act), act.summary, auth=True,
                            body=act.body, responses=dict(act.responses), tag="admin"))
    routes.extend(ctx.extra_routes)
    return routes


def build_app(ctx: WebContext, bind_host: str = "127.0.0.1") -> web.Application:
    """The aiohttp application for a node listening on `bind_host`."""
    app = web.Application(middlewares=[_observe], client_max_size=MAX_BODY_BYTES)
    app[CTX] = ctx
    app[HOSTS] = HostPolicy(bind_host, ctx.allowed_hosts)
    app[PUBLIC_STREAMS] = _PublicStreams()
    routes = build_routes(ctx)
    app[ROUTES] = routes
    for r in routes:
        app.router.add_route(r.method, r.path, _guard(r))
    return app


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (OSError when the address is in use or not ours).

    The daemon binds before it creates anything else, so a start that cannot listen
    leaves no journal, token or account file behind.
    """
    family = socket.AF_INET6 if _ip(host) is not None and ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=128)  # SO_REUSEADDR on POSIX
    sock.setblocking(False)
    return sock


class WebServer(BaseComponent):
    """Serves the app on [http] host:port inside the node's loop.

    With `sock` (from `bind_listener`), the first start serves on that socket; a restart
    after a failure binds host:port again.
    """

    name = "http"

    def __init__(self, ctx: WebContext, host: str, port: int, sock: socket.socket | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.host = host
        self.port = port
        self.bound_port: int | None = None
        self._runner: web.AppRunner | None = None
        self._sock = sock

    async def start(self) -> None:
        """Bind the listener (a non-loopback bind logs a SECURITY warning)."""
        if not is_loopback(self.host):
            log.warning("SECURITY_admin_api_not_loopback", host=self.host, port=self.port,
                        hint="the admin API is reachable from the network; firewall it or bind 127.0.0.1")
        self._runner = web.AppRunner(build_app(self.ctx, self.host), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site, self._sock = web.SockSite(self._runner, self._sock), None
        else:
            site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        log.info("http_listening", host=self.host, port=self.bound_port)

    async def stop(self) -> None:
        """Close the listener and open connections."""
        if self._sock is not None:  # bound but never served
            self._sock.close()
            self._sock = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def health(self) -> Health:
        """Healthy while listening."""
        return Health(self._runner is not None, "" if self._runner else "not listening")
