"""The Bybit emulator's control routes (not Bybit): faults, state, ticks, funding, instrument status.

`POST /_emulator/faults` (see faults.py; a malformed body is HTTP 400 `{"error"}` naming the
key and value), `GET /_emulator/faults`, `GET /_emulator/state`, `POST /_emulator/tick`
(`{"n": 3}`: produce market ticks now, 1..10000), `POST /_emulator/funding` (`{"symbol"}`:
settle funding on the linear position: an execution of execType Funding, not a fill),
`POST /_emulator/instrument_status` (`{"category", "symbol", "status"}`: e.g. "Closed"; the
instrument is listed so and refuses new orders). Benchmark: `POST /_emulator/bench/ping_pong`
(`{"category", "symbol", "n", "timeout_s", "gap_ms", "side"}`: one publicTrade frame, wait for
the next order create (REST or trade WebSocket), repeat; answers the perf_counter_ns pairs).
A benchmark with no connection subscribed to its topic is HTTP 400 `{"error"}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import web

from nautilus_hmm.venues.bybit.emulator.exchange import BybitError
from nautilus_hmm.venues.bybit.emulator.faults import FaultError
from nautilus_hmm.venues.emulator_common import OrderWaiter, ping_pong_samples
from nautilus_hmm.venues.emulator_common import json_response as _json

if TYPE_CHECKING:
    from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

log = structlog.get_logger("venues.bybit.emulator")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    doc = orjson.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    return doc


class Control:
    """The `/_emulator/...` routes."""

    def __init__(self, emu: BybitEmulator) -> None:
        self.emu = emu

    def add_routes(self, app: web.Application) -> None:
        """Register the control routes."""
        app.router.add_post("/_emulator/faults", self._post_faults)
        app.router.add_get("/_emulator/faults", self._get_faults)
        app.router.add_get("/_emulator/state", self._get_state)
        app.router.add_post("/_emulator/tick", self._post_tick)
        app.router.add_post("/_emulator/funding", self._post_funding)
        app.router.add_post("/_emulator/instrument_status", self._post_status)
        app.router.add_post("/_emulator/bench/ping_pong", self._post_ping_pong)

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            doc = orjson.loads(await request.read())
            actions = await self.emu.set_faults(doc)
        except (orjson.JSONDecodeError, FaultError) as exc:
            return _json({"error": str(exc)}, 400)
        log.info("bybit_emulator_faults_set", faults=self.emu.faults.as_dict(), actions=sorted(actions))
        return _json(self.emu.faults.as_dict())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return _json(self.emu.faults.as_dict())

    async def _get_state(self, request: web.Request) -> web.Response:
        return _json(self.emu.state())

    async def _post_tick(self, request: web.Request) -> web.Response:
        try:
            n = int((await _body(request)).get("n", 1))
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return _json({"error": f"tick: {exc}"}, 400)
        if not 1 <= n <= 10_000:
            return _json({"error": f"tick.n: expected 1..10000, got {n}"}, 400)
        await self.emu.step(n)
        return _json({"ticks": n})

    async def _post_funding(self, request: web.Request) -> web.Response:
        try:
            doc = await _body(request)
            await self.emu.settle_funding(str(doc.get("symbol", self.emu.exchange.symbols[0])))
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return _json({"error": f"funding: {exc}"}, 400)
        except BybitError as exc:
            return _json({"error": f"funding: {exc.ret_msg}"}, 400)
        return _json({"ok": True})

    async def _post_status(self, request: web.Request) -> web.Response:
        try:
            doc = await _body(request)
            self.emu.exchange.set_status(str(doc.get("category")), str(doc.get("symbol")), str(doc.get("status")))
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return _json({"error": f"instrument_status: {exc}"}, 400)
        except BybitError as exc:
            return _json({"error": f"instrument_status: {exc.ret_msg}"}, 400)
        return _json({"ok": True})

    # ------------------------------------------------------------ benchmarks

    async def bench_ping_pong(self, category: str, symbol: str, n: int, timeout_s: float = 2.0,
                              gap_s: float = 0.0, side: str | None = None) -> dict[str, Any]:
        """Tick-to-order: send one trade, wait for the next order create, repeat `n` times.

        Each sample is (perf_counter_ns just before the trade frame is written,
        perf_counter_ns when the create reached the request path, its orderLinkId). A trade
        that brings no order within `timeout_s` counts in `missed`. `gap_s` pauses after
        each order so the client can settle; with `side` ("Buy"/"Sell"), only creates of
        that side count.
        """
        emu = self.emu
        rest = emu.rest
        rest.order_waiter_side = side

        def prepare(_: int) -> Callable[[], Awaitable[None]]:
            topic, frame = emu.exchange.bench_trade_frame(category, symbol, emu.clock.time_ns())
            conns = [c for c in emu.streams.public if c.kind == category and topic in c.topics and not c.ws.closed]
            if not conns:
                raise ValueError(f"no {category} connection subscribes {topic}")
            text = orjson.dumps(frame).decode()

            async def send() -> None:
                for c in conns:
                    await c.ws.send_str(text)

            return send

        def arm(waiter: OrderWaiter | None) -> None:
            rest.order_waiter = waiter

        return await ping_pong_samples(n, prepare, arm, timeout_s, gap_s)

    async def _post_ping_pong(self, request: web.Request) -> web.Response:
        emu = self.emu
        try:
            doc = await _body(request)
            out = await self.bench_ping_pong(str(doc.get("category", "linear")),
                                             str(doc.get("symbol", emu.exchange.symbols[0])),
                                             int(doc.get("n", 1000)), float(doc.get("timeout_s", 2.0)),
                                             float(doc.get("gap_ms", 0.0)) / 1000, doc.get("side"))
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return _json({"error": f"bench/ping_pong: {exc}"}, 400)
        except BybitError as exc:
            return _json({"error": f"bench/ping_pong: {exc.ret_msg}"}, 400)
        return _json(out)
