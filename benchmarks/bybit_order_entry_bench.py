"""Bybit order entry against the loopback emulator: REST vs the trade WebSocket, and pacing.

Run: `python benchmarks/bybit_order_entry_bench.py [--orders 400] [--limit-per-s 20]`

Two figures per transport (`order_entry = "rest"` and `"ws_trade"`, category linear):

* **round trip**: `BybitVenue.submit_order` (a GTC limit far from the market) until its
  acknowledgement, with the emulator's order/create limit lifted, p50/p90/p99 in µs
  (the first 50 orders are warm-up);
* **pacing**: the same burst with the emulator's limit at `--limit-per-s` (Bybit's default
  for order/create is 20/s): how many requests the client held back on `X-Bapi-Limit-Status`
  and how many 10006 answers it still got (the goal: 0), and the burst's wall time.

Real time (LiveClock), loopback only; the figures are printed, nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from decimal import Decimal

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import LiveClock
from nautilus_hmm.domain.enums import OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.venues.bybit.adapter import BybitOptions, BybitVenue
from nautilus_hmm.venues.bybit.auth import Credentials
from nautilus_hmm.venues.bybit.config import BybitConfig
from nautilus_hmm.venues.bybit.emulator import rest as emulator_rest
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

KEY, SECRET = "benchKey0123456789abc", "benchSecret0123456789abcdefABC"
CREATE = "/v5/order/create"
WARMUP = 50


async def burst(entry: str, n_orders: int, limit_per_s: int) -> dict[str, float]:
    """`n_orders` limit orders one after another over `entry`; latencies and pacing counts."""
    emulator_rest.ENDPOINT_LIMITS_PER_S[CREATE] = limit_per_s
    clock = LiveClock()
    emu = BybitEmulator(api_key=KEY, api_secret=SECRET, symbols=["BTCUSDT"], clock=clock, run_market=False)
    await emu.start()
    cfg = BybitConfig(enabled=True, rest_url=emu.url, ws_public_url=f"{emu.ws_public_url}/linear",
                      ws_private_url=emu.ws_private_url, ws_trade_url=emu.ws_trade_url, symbols=("BTCUSDT",),
                      order_entry=entry)
    venue = BybitVenue(cfg, "linear", Bus(), clock, credentials=Credentials(KEY, SECRET),
                       options=BybitOptions(streams=False))
    await venue.start()
    task = asyncio.ensure_future(venue.run())
    try:
        while venue.ws_trade is not None and not venue.ws_trade.connected:
            await asyncio.sleep(0.005)
        iid = InstrumentId("bybit_linear", "BTCUSDT")
        lat_us: list[float] = []
        t_start = time.perf_counter()
        for i in range(n_orders):
            req = OrderRequest(f"bench-{entry}-{i}", iid, Side.BUY, OrderType.LIMIT, Decimal("0.001"),
                               Decimal("30000.0"))
            t0 = time.perf_counter()
            await venue.submit_order(req)
            lat_us.append((time.perf_counter() - t0) * 1e6)
        wall_s = time.perf_counter() - t_start
        lat = sorted(lat_us[WARMUP:]) or sorted(lat_us)

        def q(p: float) -> float:
            return lat[int(p * (len(lat) - 1))]

        return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "n": len(lat), "wall_s": wall_s,
                "paced": venue.rest.stats.paced, "rate_limited": venue.rest.stats.ret_codes.get(10006, 0)}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await venue.stop()
        await emu.stop()


async def main(n_orders: int, limit_per_s: int) -> None:
    """Print the round-trip and pacing figures of both transports."""
    default_limit = emulator_rest.ENDPOINT_LIMITS_PER_S[CREATE]
    try:
        print(f"Bybit order entry, {n_orders} limit orders one after another, loopback emulator (linear)")
        for entry in ("rest", "ws_trade"):
            r = await burst(entry, n_orders, 1_000_000)
            print(f"  {entry:8s} round trip: p50 {r['p50']:7.0f} µs  p90 {r['p90']:7.0f} µs  p99 {r['p99']:7.0f} µs"
                  f"  (n={r['n']:.0f}, no venue limit)")
        for entry in ("rest", "ws_trade"):
            r = await burst(entry, n_orders, limit_per_s)
            print(f"  {entry:8s} pacing at {limit_per_s}/s: {r['paced']:.0f} requests held back, "
                  f"{r['rate_limited']:.0f} answered 10006, {n_orders} orders in {r['wall_s']:.2f} s "
                  f"({n_orders / r['wall_s']:.1f}/s)")
    finally:
        emulator_rest.ENDPOINT_LIMITS_PER_S[CREATE] = default_limit


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=400, help="orders per burst (default 400)")
    parser.add_argument("--limit-per-s", type=int, default=20, help="the emulator's order/create limit (default 20)")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    asyncio.run(main(args.orders, args.limit_per_s))
