"""Notifications benchmark: event-loop lag while a storm of notices is coalesced and sent to a
slow webhook (issue 11, item 1).

One event loop holds everything, as in the daemon: a webhook receiver on loopback that
answers each request after `--receiver-delay-s` (1 s), the Notifier (real clock, apprise
json:// through its sender threads) and a lag probe that sleeps 10 ms and records how late
it wakes. The storm: `--events` risk denials and as many fills, published in bursts of
`--burst` every 10 ms, plus one trading-state change per second.

    .venv/bin/python benchmarks/notify_bench.py [--events 1000] [--burst 50] [--receiver-delay-s 1.0]
        [--seconds 10]

Prints a JSON summary: loop lag p50/p99/max in ms (with and without the storm), publish
cost per message, messages received by the webhook and the notifier's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from nautilus_hmm.config.loader import parse
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import LiveClock
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.messages import TradingStateChanged
from nautilus_hmm.notify.channels import AppriseTransport
from nautilus_hmm.notify.config import NotifyConfig
from nautilus_hmm.notify.notifier import Notifier
from tests.unit.notify.helpers import denial, fill

PROBE_S = 0.010


async def probe(samples: list[float], stop: asyncio.Event) -> None:
    """Sleep PROBE_S, record how late the loop woke us."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        samples.append(max(0.0, time.perf_counter() - t0 - PROBE_S))


def quantiles_ms(samples: list[float]) -> dict[str, float]:
    """p50, p99 and max of the lag samples, in ms."""
    ordered = sorted(samples)
    if not ordered:
        return {}
    p99 = ordered[min(len(ordered) - 1, int(0.99 * (len(ordered) - 1) + 0.5))]
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 3), "p99_ms": round(p99 * 1e3, 3),
            "max_ms": round(ordered[-1] * 1e3, 3), "samples": len(ordered)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        await asyncio.sleep(args.receiver_delay_s)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    cfg: NotifyConfig = parse(NotifyConfig, {
        "enabled": True, "gather_s": 1.0, "coalesce_window_s": 5.0,
        "channels": {"ops": {"rate_per_min": 60, "burst": 5}},
        "routes": {"fills": ["ops"], "risk_denials": ["ops"], "trading_state": ["ops"]},
    })
    bus = Bus()
    clock = LiveClock()
    notifier = Notifier(cfg, bus, clock, node_name="bench",
                        transports={"ops": AppriseTransport(f"json://127.0.0.1:{port}/hook")})
    await notifier.start()
    run = asyncio.create_task(notifier.run())

    stop = asyncio.Event()
    idle: list[float] = []
    t = asyncio.create_task(probe(idle, stop))
    await asyncio.sleep(2.0)
    stop.set()
    await t

    stop = asyncio.Event()
    busy: list[float] = []
    t = asyncio.create_task(probe(busy, stop))
    publish_s = 0.0
    published = 0
    i = 0
    started = time.perf_counter()
    while i < args.events:
        t0 = time.perf_counter()
        for k in range(i, min(i + args.burst, args.events)):
            bus.publish(denial(k))
            bus.publish(fill(k))
            published += 2
        publish_s += time.perf_counter() - t0
        i += args.burst
        await asyncio.sleep(0.010)
    n = 0
    while time.perf_counter() - started < args.seconds:
        now = clock.time_ns()
        old, new = (TradingState.ACTIVE, TradingState.REDUCING) if n % 2 == 0 else (
            TradingState.REDUCING, TradingState.ACTIVE)
        bus.publish(TradingStateChanged(ts_event_ns=now, ts_init_ns=now, old=old, new=new, reason="bench",
                                        source="bench"))
        published += 1
        n += 1
        await asyncio.sleep(1.0)
    stop.set()
    await t
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await notifier.stop()
    await runner.cleanup()
    counts = notifier.health().info["ops"]
    return {
        "events_published": published,
        "publish_us_per_message": round(publish_s / max(published, 1) * 1e6, 3),
        "loop_lag_idle": quantiles_ms(idle),
        "loop_lag_storm": quantiles_ms(busy),
        "webhook_requests": len(received),
        "notifier": counts,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--receiver-delay-s", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
