"""A small scripted Bybit v5 REST server on loopback (for BybitRest and adapter damage tests).

Answers are scripted per path, in order; every request is recorded with whether its
X-BAPI-SIGN verifies over the exact query string / body received. `/v5/market/time`
answers the clock (plus `server_offset_ms`) unless scripted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.bybit.auth import verify_rest_signature

KEY = "loopbackKey0123456789"
SECRET = "loopbackSecret0123456789abcdef"
NS_PER_MS = 1_000_000

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


def ok(result: Any, headers: dict[str, str] | None = None) -> web.Response:
    body = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1}
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


def fail(code: int, msg: str, headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
    body = {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": 1}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


class LoopbackBybit:
    """Scripted answers per path; every request recorded with its signature verdict."""

    def __init__(self, clock: ManualClock, server_offset_ms: int = 0) -> None:
        self.clock = clock
        self.server_offset_ms = server_offset_ms
        self.script: dict[str, list[Handler | web.Response]] = {}
        self.requests: list[dict[str, Any]] = []
        self.received = asyncio.Event()
        self.release = asyncio.Event()  # for answers that wait
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()

    def on(self, path: str, *answers: Handler | web.Response) -> None:
        self.script.setdefault(path, []).extend(answers)

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        query = request.raw_path.partition("?")[2]  # as sent (query_string is decoded)
        payload = query if request.method == "GET" else raw.decode()
        signed = "X-BAPI-SIGN" in request.headers
        self.requests.append({
            "method": request.method, "path": request.path, "query": query, "body": raw,
            "headers": dict(request.headers), "signed": signed,
            "sig_ok": verify_rest_signature(SECRET, request.headers, payload) if signed else None,
        })
        self.received.set()
        if request.path == "/v5/market/time" and not self.script.get(request.path):
            now_ns = self.clock.time_ns() + self.server_offset_ms * NS_PER_MS
            return ok({"timeSecond": str(now_ns // 10**9), "timeNano": str(now_ns)})
        answers = self.script.get(request.path)
        if not answers:
            return fail(10017, f"route not scripted: {request.path}", status=404)
        answer = answers.pop(0)
        if isinstance(answer, web.Response):
            return answer
        return await answer(request, raw)


