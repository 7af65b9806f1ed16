"""Journal throughput and recovery time (numbers, not pass/fail).

    .venv/bin/python benchmarks/journal_bench.py [--intents 20000] [--concurrency 1000]
        [--orders 100000] [--dir DIR] [--no-uvloop] [--intent-log off on] [--skip-recovery]
        [--rounds 6]

Measures, on a durable (synchronous=FULL) file journal in DIR (default: a temporary
directory beside this file, so it is on the real disk rather than a tmpfs):

1. the loop-side cost of one `record_intent` call (future + queue put), in µs;
2. durable intents/s with `--concurrency` awaits in flight (group commit at work), plus
   rows per commit and commit (fsync) latency;
3. the latency of one awaited intent with nothing else in flight (p50/p99);
4. durable fills/s at the same concurrency;
5. recovery on a journal of `--orders` orders (each FILLED with one fill, 1% left open):
   `Journal.open` (incl. quick_check), `load_orders()`, `load_orders(open_only=True)`,
   `load_fills()`, and `load_recovery_state`.

Sections 1-4 run once per `--intent-log` setting (`off`: each intent is a SQLite commit on
the writer thread; `on`: fsynced in the append-only intent log, folded into SQLite
later), and before them the floor of section 3 on the same disk: one 128-byte `pwrite` +
`fdatasync` of a preallocated file, timed alone (no event loop, no thread).

`--rounds R` (the steadier comparison on a shared disk): R rounds of 100 floor
`fdatasync`s, 100 single awaited intents with the intent log, 100 without, interleaved,
p50 of each per round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill
from nautilus_hmm.journal.recovery import load_recovery_state
from nautilus_hmm.journal.store import Journal

INSTRUMENTS = [InstrumentId("sim", s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")]


def _request(j: Journal, i: int) -> OrderRequest:
    return OrderRequest(
        client_order_id=j.next_client_order_id("bench"),
        instrument_id=INSTRUMENTS[i % len(INSTRUMENTS)],
        side=Side.BUY if i % 2 else Side.SELL,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.00123"),
        price=Decimal("64123.45"),
    )


def _fill(req: OrderRequest, i: int) -> VenueFill:
    return VenueFill(
        instrument_id=req.instrument_id, client_order_id=req.client_order_id, venue_order_id=f"V{i}",
        trade_id=f"T{i}", side=req.side, qty=req.quantity, price=Decimal("64120.01"),
        fee=Decimal("0.0000012"), fee_asset="BNB", liquidity=Liquidity.MAKER, ts_ns=1_700_000_000_000_000_000 + i,
    )


async def _in_waves(n: int, concurrency: int, make: object) -> float:
    """Run n awaited writes, `concurrency` at a time; returns elapsed seconds."""
    t0 = time.perf_counter()
    for start in range(0, n, concurrency):
        await asyncio.gather(*(make(i) for i in range(start, min(n, start + concurrency))))  # type: ignore[operator]
    return time.perf_counter() - t0


def _fdatasync_latencies(path: Path, n: int) -> list[float]:
    """Seconds each of `n` 128-byte pwrites + fdatasync to `path`, preallocated (written) first."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, bytes(128 * n), 0)
        os.fsync(fd)
        lat = []
        for i in range(n):
            t = time.perf_counter()
            os.pwrite(fd, b"x" * 128, 128 * i)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return lat


def bench_fdatasync_floor(d: Path, n: int = 500) -> None:
    """One 128-byte append + fdatasync to a preallocated (written) file: the least a durable intent costs."""
    lat = sorted(_fdatasync_latencies(d / "floor.bin", n))
    print(f"floor: 128-byte pwrite + fdatasync: p50 {statistics.median(lat) * 1e3:.3f} ms, "
          f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.3f} ms")


async def bench_rounds(d: Path, rounds: int, n: int = 100) -> None:
    """Interleaved rounds: floor fdatasync, one awaited intent with the log, without it (p50 ms each)."""
    async def single(j: Journal) -> float:
        lat = []
        for i in range(n):
            t = time.perf_counter()
            await j.record_intent(_request(j, i), "bench", 1)
            lat.append(time.perf_counter() - t)
        return statistics.median(lat) * 1e3

    def floor() -> float:
        return statistics.median(_fdatasync_latencies(d / "round-floor.bin", n)) * 1e3

    on = Journal.open(d / "rounds-on.sqlite3", intent_log=True)
    off = Journal.open(d / "rounds-off.sqlite3")
    print("round  floor fdatasync p50 ms  intent, log on p50 ms  intent, log off p50 ms")
    try:
        for r in range(rounds):
            f = floor()
            a = await single(on)
            b = await single(off)
            print(f"{r:>5}  {f:>21.3f}  {a:>21.3f}  {b:>22.3f}", flush=True)
    finally:
        await on.aclose()
        await off.aclose()


async def bench_writes(path: Path, intents: int, concurrency: int, intent_log: bool = False) -> None:
    """Sections 1-4."""
    j = Journal.open(path, intent_log=intent_log)
    print(f"-- intent_log = {'on' if intent_log else 'off'}")
    try:
        # 1. loop-side cost of the call itself
        reqs = [_request(j, i) for i in range(intents)]
        t0 = time.perf_counter()
        futs = [j.record_intent(r, "bench", 1) for r in reqs]
        call_s = time.perf_counter() - t0
        await asyncio.gather(*futs)
        print(f"record_intent call cost on the loop: {call_s / intents * 1e6:.2f} us/call ({intents} calls)")

        # 2. durable intents/s with `concurrency` in flight
        commits0, rows0 = j.commits, j.rows_written
        elapsed = await _in_waves(intents, concurrency, lambda i: j.record_intent(_request(j, i), "bench", 1))
        commits = j.commits - commits0
        print(
            f"durable intents: {intents / elapsed:,.0f}/s with {concurrency} in flight "
            f"({(j.rows_written - rows0) / max(commits, 1):.0f} rows/commit, {commits} commits, "
            f"last commit {j.last_commit_latency_s * 1e3:.2f} ms)"
        )

        # 3. one intent alone: the latency a single order waits before it may be sent
        lat = []
        for i in range(500):
            t = time.perf_counter()
            await j.record_intent(_request(j, i), "bench", 1)
            lat.append(time.perf_counter() - t)
        lat.sort()
        print(
            f"single awaited intent: p50 {statistics.median(lat) * 1e3:.3f} ms, "
            f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.3f} ms ({1 / statistics.mean(lat):,.0f}/s serial)"
        )

        # 4. durable fills/s
        elapsed = await _in_waves(intents, concurrency, lambda i: j.record_fill("sim", _fill(reqs[i], i)))
        print(f"durable fills: {intents / elapsed:,.0f}/s with {concurrency} in flight")
    finally:
        await j.aclose()


async def build_recovery_journal(path: Path, orders: int, concurrency: int) -> float:
    """`orders` intents, each ACCEPTED then FILLED with one fill, except 1% left ACCEPTED."""
    j = Journal.open(path, durable=False)  # building is not what is measured
    t0 = time.perf_counter()
    try:
        async def one(i: int) -> None:
            req = _request(j, i)
            await j.record_intent(req, "bench", i)
            j.record_order_update(req.client_order_id, OrderStatus.ACCEPTED, Decimal(0), None, f"V{i}", None, i + 1)
            if i % 100:
                await j.record_fill("sim", _fill(req, i))
                j.record_order_update(
                    req.client_order_id, OrderStatus.FILLED, req.quantity, Decimal("64120.01"), None, None, i + 2
                )

        await _in_waves(orders, concurrency, one)
        for k in range(100):
            j.record_position_snapshot(k, {str(iid): {"qty": Decimal("0.1")} for iid in INSTRUMENTS})
    finally:
        await j.aclose()
    return time.perf_counter() - t0


def bench_recovery(path: Path) -> None:
    """Section 5: what a restart pays before trading."""
    t0 = time.perf_counter()
    j = Journal.open(path)
    t1 = time.perf_counter()
    try:
        all_orders = j.load_orders()
        t2 = time.perf_counter()
        open_orders = j.load_orders(open_only=True)
        t3 = time.perf_counter()
        fills = j.load_fills()
        t4 = time.perf_counter()
        state = load_recovery_state(j)
        t5 = time.perf_counter()
    finally:
        j.close()
    size_mb = path.stat().st_size / 1e6
    print(f"recovery on {len(all_orders):,} orders / {len(fills):,} fills ({size_mb:.1f} MB):")
    print(f"  Journal.open (quick_check included): {(t1 - t0) * 1e3:8.1f} ms")
    print(f"  load_orders():                       {(t2 - t1) * 1e3:8.1f} ms")
    print(f"  load_orders(open_only=True):         {(t3 - t2) * 1e3:8.1f} ms ({len(open_orders)} open)")
    print(f"  load_fills():                        {(t4 - t3) * 1e3:8.1f} ms")
    print(f"  open + load_orders + load_fills:     {(t1 - t0 + t2 - t1 + t4 - t3) * 1e3:8.1f} ms")
    print(f"  load_recovery_state (all orders):    {(t5 - t4) * 1e3:8.1f} ms ({len(state.in_flight)} in flight)")


def main() -> None:
    """Parse options, run the sections, print the numbers."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--intents", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--intent-log", nargs="+", default=["off", "on"], choices=("off", "on"),
                    help="sections 1-4 per setting, in this order")
    ap.add_argument("--skip-recovery", action="store_true", help="sections 1-4 only")
    ap.add_argument("--rounds", type=int, default=0, help="only the interleaved rounds (see above)")
    args = ap.parse_args()
    run = asyncio.run
    if not args.no_uvloop:
        import uvloop

        run = uvloop.run
    with tempfile.TemporaryDirectory(dir=args.dir or Path(__file__).parent) as d:
        if args.rounds:
            run(bench_rounds(Path(d), args.rounds))
            return
        bench_fdatasync_floor(Path(d))
        for mode in args.intent_log:
            run(bench_writes(Path(d) / f"writes-{mode}.sqlite3", args.intents, args.concurrency, mode == "on"))
        if args.skip_recovery:
            return
        path = Path(d) / "recovery.sqlite3"
        build_s = run(build_recovery_journal(path, args.orders, args.concurrency))
        print(f"built a {args.orders:,}-order journal in {build_s:.1f} s (durable=False)")
        bench_recovery(path)


if __name__ == "__main__":
    main()
