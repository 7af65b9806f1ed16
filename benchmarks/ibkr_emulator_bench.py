"""The IBKR emulator's floors, with a bare ib_async client (no adapter, no daemon): what the
adapter's tick-to-order and reconnect figures are a ratio to.

* tick-to-order floor: the emulator writes a trade print (tick-by-tick AllLast), the bare
  client places an order on it, the emulator reads the placeOrder (`bench_ping_pong`, both
  timestamps the emulator's perf_counter_ns). ib_async's own 45 msg/s throttle is off.
* order round trip: placeOrder of a marketable order -> orderStatus Filled at the client.
* reconnect: after the daily restart (refusal window 0 on a ManualClock), connectAsync with
  its full start-up sync (positions, open/completed orders, account, executions) until done;
  once on an empty account, once with the state the other phases left (it grows with it).

    .venv/bin/python benchmarks/ibkr_emulator_bench.py [--n 2000] [--orders 500] [--reconnects 50]

Prints p50/p99 (µs or ms). Numbers, not pass/fail; the emulator and the client share one
process and loop (as in the adapter's integration tests).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

from ib_async import IB, LimitOrder, MarketOrder, Stock

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.ibkr import emulator

TUESDAY_10_ET_NS = int(datetime(2026, 12, 1, 15, 0, tzinfo=UTC).timestamp()) * 1_000_000_000


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def show(name: str, values: list[float], unit: str) -> None:
    print(f"{name:<34} n={len(values):<6} p50={pct(values, 0.5):9.1f} {unit}  p99={pct(values, 0.99):9.1f} {unit}  "
          f"mean={statistics.fmean(values):9.1f} {unit}")


async def tick_to_order(emu, ib: IB, aapl, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    prints = ib.reqTickByTickData(aapl, "AllLast")
    while not any(s.tbt for s in emu.sessions.values()):
        await asyncio.sleep(0.001)
    seq = iter(range(10**9))

    def on_print(ticker) -> None:  # type: ignore[no-untyped-def]
        for _ in ticker.tickByTicks:
            ib.placeOrder(aapl, LimitOrder("BUY", 1, 1.00, orderRef=f"t2o-{next(seq)}"))

    prints.updateEvent += on_print
    out = await emu.bench_ping_pong("AAPL", n, timeout_s=5)
    prints.updateEvent -= on_print
    ib.cancelTickByTickData(aapl, "AllLast")
    if out["missed"]:
        print(f"  tick-to-order: {out['missed']} prints brought no order within 5 s")
    return [(arrival - send) / 1000 for send, arrival, _ in out["samples"]]


async def round_trip(ib: IB, aapl, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        done = asyncio.Event()
        t0 = time.perf_counter_ns()
        trade = ib.placeOrder(aapl, MarketOrder("BUY" if i % 2 == 0 else "SELL", 1))
        trade.filledEvent += lambda _t, done=done: done.set()
        await asyncio.wait_for(done.wait(), 5)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


async def reconnects(emu, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        await emu.daily_restart(0)
        await asyncio.wait_for(emu.listening.wait(), 5)
        ib = IB()
        t0 = time.perf_counter_ns()
        await ib.connectAsync("127.0.0.1", emu.port, clientId=2, timeout=10)
        out.append((time.perf_counter_ns() - t0) / 1e6)
        ib.disconnect()
    return out


async def main(args: argparse.Namespace) -> None:
    emu = await emulator.start("127.0.0.1", 0, seed=7, clock=ManualClock(TUESDAY_10_ET_NS), tick_interval_s=3600)
    try:
        show("reconnect after restart (empty)", await reconnects(emu, args.reconnects), "ms")
        ib = IB()
        await ib.connectAsync("127.0.0.1", emu.port, clientId=1, timeout=10)
        ib.client.MaxRequests = 0
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        show("tick-to-order floor (bare ib_async)", await tick_to_order(emu, ib, aapl, args.n), "µs")
        show("order round trip (MKT -> Filled)", await round_trip(ib, aapl, args.orders), "µs")
        ib.disconnect()
        state = (f"{len(emu.engine.open_orders())} open orders, {len(emu.engine.completed_orders())} completed, "
                 f"{len(emu.engine.executions)} executions")
        show("reconnect after restart (with state)", await reconnects(emu, args.reconnects), "ms")
        print(f"  state at the second reconnect run: {state} (the start-up sync reads them all)")
    finally:
        await emu.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="tick-to-order samples")
    p.add_argument("--orders", type=int, default=500, help="round-trip orders")
    p.add_argument("--reconnects", type=int, default=50, help="restart + connectAsync cycles")
    asyncio.run(main(p.parse_args()))
