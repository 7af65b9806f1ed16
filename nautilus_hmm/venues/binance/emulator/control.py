"""The emulator's control routes (not Binance): faults, state, ticks and benchmarks.

`POST /_emulator/faults` (see faults.py; a malformed body is HTTP 400 `{"error"}` naming the
key and value), `GET /_emulator/faults`, `GET /_emulator/state`, `POST /_emulator/tick`
(`{"n": 3}`: produce market ticks now, 1..10000). Benchmarks: `POST
/_emulator/bench/ping_pong` (`{"symbol", "n", "timeout_s", "gap_ms", "side"}`: one trade
frame, wait for the next new-order request, repeat; answers the perf_counter_ns pairs) and
`POST /_emulator/bench/stream` (`{"symbols", "n", "rate"}`: trade frames round robin over
the symbols, as fast as the connections take them, or paced at `rate` frames/s when
`rate` > 0). A benchmark with no connection subscribed to its stream, or a bad `n` /
`rate`, is HTTP 400 `{"error"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import web

from nautilus_hmm.venues.binance.emulator.exchange import EmulatorError
from nautilus_hmm.venues.binance.emulator.faults import FaultError
from nautilus_hmm.venues.emulator_common import OrderWaiter, ping_pong_samples
from nautilus_hmm.venues.emulator_common import json_response as _json

if TYPE_CHECKING:
    from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator

log = structlog.get_logger("venues.binance.emulator")


class Control:
    """The `/_emulator/...` routes."""

    def __init__(self, emu: BinanceEmulator) -> None:
        self.emu = emu

    def add_routes(self, app: web.Application) -> None:
        """Register the control and benchmark routes."""
        app.router.add_post("/_emulator/faults", self._post_faults)
        app.router.add_get("/_emulator/faults", self._get_faults)
        app.router.add_get("/_emulator/state", self._get_state)
        app.router.add_post("/_emulator/tick", self._post_tick)
        app.router.add_post("/_emulator/bench/ping_pong", self._post_ping_pong)
        app.router.add_post("/_emulator/bench/stream", self._post_stream)

    async def _post_faults(self, request: web.Request) -> web.Response:
        emu = self.emu
        try:
            doc = orjson.loads(await request.read())
            actions = emu.faults.apply(doc)
        except (orjson.JSONDecodeError, FaultError) as exc:
            return web.json_response({"error": str(exc)}, status=400, dumps=lambda o: orjson.dumps(o).decode())
        if "close_websockets" in actions:
            await emu.close_websockets(actions["close_websockets"])
        if actions.get("expire_listen_keys"):
            for key in list(emu.streams.listen_keys):
                await emu.expire_listen_key(key)
        log.info("binance_emulator_faults_set", faults=emu.faults.as_dict(), actions=sorted(actions))
        return _json(emu.faults.as_dict())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return _json(self.emu.faults.as_dict())

    async def _get_state(self, request: web.Request) -> web.Response:
        return _json(self.emu.state())

    async def _post_tick(self, request: web.Request) -> web.Response:
        n = 1
        if request.can_read_body:
            with contextlib.suppress(Exception):
                n = int(orjson.loads(await request.read()).get("n", 1))
        await self.emu.step(max(1, min(n, 10_000)))
        return _json({"ticks": n})

    # ------------------------------------------------------------ benchmarks

    async def bench_ping_pong(self, symbol: str, n: int, timeout_s: float = 2.0,
                              gap_s: float = 0.0, side: str | None = None) -> dict[str, Any]:
        """Tick-to-order: send one trade, wait for the next new-order request, repeat `n` times.

        Each sample is (perf_counter_ns just before the trade frame is written, perf_counter_ns
        when the order request reached the handler, its client order id). A trade that
        brings no order within `timeout_s` is counted in `missed`. `gap_s` pauses after each
        order so that the client can settle (answer, fills) before the next trade. With
        `side`, only orders of that side count (e.g. a client's corrective orders are not
        answers to a trade).
        """
        emu = self.emu
        rest = emu.rest
        rest.order_waiter_side = side

        def prepare(_: int) -> Callable[[], Awaitable[None]]:
            stream, payload = emu.exchange.trade_frame(symbol, emu.clock.time_ns())

            async def send() -> None:
                if not await emu.streams.send_frame(stream, payload):
                    raise ValueError(f"no market connection subscribes {stream}")

            return send

        def arm(waiter: OrderWaiter | None) -> None:
            rest.order_waiter = waiter

        return await ping_pong_samples(n, prepare, arm, timeout_s, gap_s)

    async def bench_stream(self, symbols: list[str], n: int, rate: float = 0.0) -> dict[str, Any]:
        """Send `n` trade frames (round robin over `symbols`) as fast as the connections take them,
        or paced at `rate` frames/s (`rate` > 0).

        Pacing is on the real monotonic clock (a benchmark against a real process): frames go
        out in bursts of whatever is due, at most ~1 ms apart, so the offered rate holds while
        the client keeps up; when it does not, the websocket's flow control (drain) slows the
        sender and `msgs_per_s` is what the client took. Each frame is the same trade with a
        new trade id (pre-encoded per symbol: the sender's own cost stays small).
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not (rate >= 0.0) or rate == float("inf"):
            raise ValueError(f"rate must be a finite number >= 0 (frames/s; 0 = unpaced), got {rate}")
        emu = self.emu
        ex = emu.exchange
        mark = 987654321987654321  # a trade id no real frame has: split the encoded frame around it
        templates = []
        for s in symbols:
            stream, payload = ex.trade_frame(s, emu.clock.time_ns())
            conns = [c for c in emu.streams.market_conns if stream in c.streams and not c.ws.closed]
            if not conns:
                raise ValueError(f"no market connection subscribes {stream}")
            msg = dict(payload)
            msg["t" if "t" in msg else "a"] = mark
            per_conn = []
            for c in conns:
                head, _, tail = orjson.dumps({"stream": stream, "data": msg} if c.combined else msg).decode().partition(
                    str(mark))
                per_conn.append((c.ws, head, tail))
            templates.append(per_conn)
        k = len(templates)
        base = max(ex.public_trade_id.values()) + 1
        t0 = time.perf_counter_ns()
        i = 0
        if rate <= 0.0:
            for i in range(n):
                tid = str(base + i)
                for ws, head, tail in templates[i % k]:
                    await ws.send_str(head + tid + tail)
        else:
            ns_per_msg = 1e9 / rate
            while i < n:
                due = min(n, int((time.perf_counter_ns() - t0) / ns_per_msg) + 1)
                while i < due:
                    tid = str(base + i)
                    for ws, head, tail in templates[i % k]:
                        await ws.send_str(head + tid + tail)
                    i += 1
                if i < n:  # ahead of the schedule: wait for the next frame's time (at most 1 ms)
                    wait_ns = t0 + i * ns_per_msg - time.perf_counter_ns()
                    await asyncio.sleep(min(max(wait_ns, 0.0), 1e6) / 1e9)
        elapsed_s = (time.perf_counter_ns() - t0) / 1e9
        for s in symbols:
            ex.public_trade_id[s] = base + n
        return {"sent": n, "elapsed_s": elapsed_s, "msgs_per_s": n / elapsed_s if elapsed_s > 0 else 0.0,
                "t0_ns": t0, "rate": rate}

    async def _post_ping_pong(self, request: web.Request) -> web.Response:
        emu = self.emu
        doc = orjson.loads(await request.read()) if request.can_read_body else {}
        try:
            out = await self.bench_ping_pong(str(doc.get("symbol", emu.exchange.symbols[0])), int(doc.get("n", 1000)),
                                             float(doc.get("timeout_s", 2.0)), float(doc.get("gap_ms", 0.0)) / 1000,
                                             doc.get("side"))
        except (ValueError, EmulatorError) as exc:
            return web.json_response({"error": str(exc)}, status=400, dumps=lambda o: orjson.dumps(o).decode())
        return _json(out)

    async def _post_stream(self, request: web.Request) -> web.Response:
        emu = self.emu
        doc = orjson.loads(await request.read()) if request.can_read_body else {}
        try:
            out = await self.bench_stream([str(s) for s in doc.get("symbols", emu.exchange.symbols[:1])],
                                          int(doc.get("n", 50_000)), float(doc.get("rate", 0.0)))
        except (ValueError, TypeError, EmulatorError) as exc:
            return web.json_response({"error": str(exc)}, status=400, dumps=lambda o: orjson.dumps(o).decode())
        return _json(out)
