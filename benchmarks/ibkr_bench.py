"""`tick_to_order_bench.py --venue ibkr`: tick-to-order through the real daemon against the IBKR
emulator, as a ratio to the floor, and reconnect-to-reconciled after an IB Gateway restart.

Two processes besides this driver, as for Binance and Bybit: the IBKR emulator
(`nautilus_hmm.venues.ibkr.emulator` on the wall clock, market steps off; this file's
`emulator` subcommand adds the benchmark's ping-pong to it) and the bench daemon
(`tick_to_order_bench.py daemon --strategy ladder`: the production node with the Ladder
strategy, every trade one BUY MARKET order of one ES contract through target → plan → risk →
journal → the adapter → ib_async → the socket). The daemon takes tick-by-tick trades of
`ibkr:ES-202612` (`market_data = "tick_by_tick"`, `outside_rth = true`: ES trades ~23 h on
weekdays; on a weekend every session is closed and the run says so). The emulator writes a
`tickByTickAllLast` frame (timestamped just before the write) and the next one once the
placeOrder frame has been read (timestamped when its handler starts): both
`time.perf_counter_ns()` in the emulator process.

Then the Gateway restart: the emulator closes every connection and refuses new ones for
`--restart-refuse-s`; the figures are from the moment it listens again to the daemon's
`ibkr_reconnected` log line (the residue of the reconnect backoff), and from there to the
next `reconciliation_completed` of venue ibkr (contracts re-resolved, market data
resubscribed, the reconciler's pass over open orders, executions and positions).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ES_CON_ID = 637533641  # ES December 2026 in the emulator
MIN_GAP_MS = 25.0  # 1000 ms / IB's 50 messages per second

CONFIG = """
[node]
state_dir = "{state}"
[log]
level = "info"
format = "json"
[http]
port = 0
[venues.sim]
enabled = false
[venues.ibkr]
enabled = true
port = {port}
symbols = ["ES-202612"]
market_data = "tick_by_tick"
outside_rth = true
reconnect_initial_s = 0.2
reconnect_max_s = 2.0
[strategy]
kind = "sma_cross"
instruments = ["ibkr:ES-202612"]
bar_interval_s = 60
[risk]
initial_state = "ACTIVE"
orders_per_s = 100000.0
order_burst = 100000
stale_data_s = 600.0
max_order_notional_usd = 1e12
max_symbol_exposure_usd = 1e15
max_gross_exposure_usd = 1e15
daily_loss_limit_usd = 1e12
max_drawdown_pct = 100.0
max_open_orders_per_symbol = 10000
[journal]
synchronous = "{journal}"
"""


# ---------------------------------------------------------------- the emulator process


def run_emulator(port_file: str) -> int:
    """The IBKR emulator on the wall clock with the ping-pong driver; commands as JSON lines on stdin."""
    return asyncio.run(_emulator_main(port_file))


async def _emulator_main(port_file: str) -> int:
    from nautilus_hmm.core.clock import LiveClock
    from nautilus_hmm.obs import logging as obs_logging
    from nautilus_hmm.venues.ibkr import emulator

    obs_logging.configure("warning", "json", stream=sys.stderr)  # stdout carries the command answers
    # always_open: ES trades 00:00-24:00 every day here, so the figures do not depend on the
    # wall clock (its real hours have a daily 16:00-17:00 CT break and the weekend).
    emu = await emulator.start("127.0.0.1", 0, seed=7, clock=LiveClock(), tick_interval_s=3600.0, always_open=True)
    received: dict[str, int] = {}
    arrived = asyncio.Event()
    place = emu._place_order

    def timed_place(s: Any, fields: list[str]) -> None:
        t = time.perf_counter_ns()
        before = len(emu.engine.orders)
        place(s, fields)
        if len(emu.engine.orders) > before:
            received[next(reversed(emu.engine.orders.values())).order_ref] = t
            arrived.set()

    emu._place_order = timed_place  # type: ignore[method-assign]
    emu._handlers = {**type(emu)._handlers, 3: lambda self, s, f: timed_place(s, f)}  # placeOrder is message 3
    Path(port_file).write_text(str(emu.port))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["cmd"] == "ping_pong":
                out = await _ping_pong(emu, received, arrived, cmd["n"], cmd["gap_ms"], cmd.get("timeout_s", 2.0))
            elif cmd["cmd"] == "subscribed":
                out = {"subscribed": bool(_tbt_subs(emu))}
            elif cmd["cmd"] == "restart":
                await emu.daily_restart(cmd["refuse_s"])
                await asyncio.wait_for(_relistened(emu), cmd["refuse_s"] + 30)
                out = {"listening_again_unix_s": time.time()}
            else:
                out = {"error": f"unknown command {cmd!r}"}
            print(json.dumps(out), flush=True)
    finally:
        await emu.close()
    return 0


async def _relistened(emu: Any) -> None:
    while not emu.listening.is_set():
        await asyncio.sleep(0.001)


def _tbt_subs(emu: Any) -> list[tuple[Any, int]]:
    return [(s, req_id) for s in emu.sessions.values() if not s.closed
            for req_id, sub in s.tbt.items() if sub.spec.con_id == ES_CON_ID and sub.kind in ("Last", "AllLast")]


async def _ping_pong(emu: Any, received: dict[str, int], arrived: asyncio.Event, n: int, gap_ms: float,
                     timeout_s: float) -> dict[str, Any]:
    """Send a trade, wait for the order it causes, `n` times: (sent_ns, received_ns, orderRef) samples."""
    samples: list[tuple[int, int, str]] = []
    missed = 0
    for i in range(n):
        subs = _tbt_subs(emu)
        if not subs:
            return {"samples": samples, "missed": missed, "error": "no tick-by-tick subscription"}
        arrived.clear()
        known = set(received)
        # The emulator's own last price (orders fill at its market: a tick far from it would mark
        # the growing position at a loss until the drawdown rail halts trading).
        spec = subs[0][0].tbt[subs[0][1]].spec
        price = float(emu.market.quote(spec, time.time_ns()).last)
        t = int(time.time())
        sent = time.perf_counter_ns()
        for s, req_id in subs:
            s.send(99, req_id, 1, t, price, 1 + i % 7, 0, "CME", "")
        try:
            await asyncio.wait_for(arrived.wait(), timeout_s)
        except TimeoutError:
            missed += 1
            continue
        new = [r for r in received if r not in known]
        if new:
            samples.append((sent, received[new[0]], new[0]))
        if gap_ms:
            await asyncio.sleep(gap_ms / 1000)
    return {"samples": samples, "missed": missed}


@dataclass
class EmulatorChild:
    """The emulator subprocess and its command pipe."""

    proc: subprocess.Popen[bytes]
    port: int

    def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator exited {self.proc.poll()}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_emulator(work: Path) -> EmulatorChild:
    from tests.system.processes import wait_for

    port_file = work / "emulator.port"
    log = (work / "emulator.log").open("ab")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "emulator", str(port_file)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    port = int(wait_for(lambda: port_file.exists() and port_file.read_text(), "the IBKR emulator to listen"))
    return EmulatorChild(proc, port)


# ---------------------------------------------------------------- the driver


def _daemon(work: Path, emu: EmulatorChild, journal: str, daemon_args: tuple[str, ...]) -> Any:
    from tests.system.binance_harness import DaemonProcess

    bench = str(Path(__file__).resolve().parent / "tick_to_order_bench.py")

    @dataclass
    class IbkrBenchDaemon(DaemonProcess):
        def write_config(self, initial_state: str = "ACTIVE") -> Path:
            path = self.workdir / "config.toml"
            path.write_text(CONFIG.format(state=self.state_dir, port=emu.port, journal=journal))
            return path

        def credential_env(self) -> dict[str, str]:
            return {}  # IB Gateway holds the login

    return IbkrBenchDaemon(work, emu, venue="ibkr", symbols=("ES-202612",),  # type: ignore[arg-type]
                           command=(bench, "daemon", "--strategy", "ladder", "--step", "1", *daemon_args))


def _ts(doc: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp()


def bench_ibkr(args: Any, floors: dict[str, dict[str, Any]], quantile: Any) -> dict[str, Any]:
    """The tick-to-order runs (one per journal mode) and the restart figures; printed and returned."""
    from tests.system.processes import wait_for

    results: dict[str, Any] = {"venue": "ibkr"}
    # Each order is one placeOrder, and the daemon paces the Gateway at IB's 50 messages/s:
    # trades closer than 25 ms apart would measure that pacer's queue, not the path.
    gap_ms = max(args.gap_ms, MIN_GAP_MS)
    if gap_ms != args.gap_ms:
        print(f"ibkr: --gap-ms {args.gap_ms} raised to {gap_ms} (IB's 50 messages/s: the pacer would hold orders)",
              flush=True)
    for mode in args.journal:
        work = Path(tempfile.mkdtemp(prefix="t2o-ibkr-"))
        emu = start_emulator(work)
        daemon = _daemon(work, emu, mode, ("--no-gc-tune",) if args.no_gc_tune else ())
        try:
            daemon.start()
            daemon.wait_ready()
            wait_for(lambda e=emu: e.call(cmd="subscribed")["subscribed"], "the tick-by-tick subscription")
            emu.call(cmd="ping_pong", n=args.warmup, gap_ms=gap_ms)
            out = emu.call(cmd="ping_pong", n=args.orders, gap_ms=gap_ms, timeout_s=2.0)
            probe = daemon.status()["strategy"]
            restart = emu.call(cmd="restart", refuse_s=args.restart_refuse_s)
            up_s = restart["listening_again_unix_s"]

            def reconciled(daemon: Any = daemon, up_s: float = up_s) -> tuple[float, float] | None:
                rec = [e for e in daemon.log_events("ibkr_reconnected") if _ts(e) >= up_s - 1]
                done = [e for e in daemon.log_events("reconciliation_completed")
                        if e.get("venue") == "ibkr" and rec and _ts(e) >= _ts(rec[0])]
                return (_ts(rec[0]), _ts(done[0])) if done else None

            t_rec, t_done = wait_for(reconciled, "reconciliation after the Gateway restart", timeout_s=60)
        finally:
            rc = daemon.terminate()
            daemon.close()
            emu.stop()
            if args.keep:
                print(f"kept {work}", flush=True)
            else:
                shutil.rmtree(work, ignore_errors=True)
        lat_us = [(r - s) / 1000 for s, r, _ in out["samples"]]
        if not lat_us:
            raise RuntimeError(f"no order reached the emulator: {out}")
        p50, p99 = quantile(lat_us, 0.5), quantile(lat_us, 0.99)
        row: dict[str, Any] = {"n": len(lat_us), "missed": out["missed"], "p50_us": round(p50, 1),
                               "p99_us": round(p99, 1), "mean_us": round(statistics.fmean(lat_us), 1),
                               "daemon_exit": rc, "journal": mode,
                               "gateway_up_to_reconnected_ms": round((t_rec - up_s) * 1000, 1),
                               "reconnected_to_reconciled_ms": round((t_done - t_rec) * 1000, 1),
                               "gateway_up_to_reconciled_ms": round((t_done - up_s) * 1000, 1)}
        stages = probe.get("stages", {})
        parts: dict[str, list[float]] = {"wire+parse+bus": [], "strategy+plan+risk": [], "spawn→journal call": [],
                                         "journal commit (durable)": [], "commit→venue handler": []}
        for send_ns, recv_ns, cid in out["samples"]:
            st = stages.get(cid)
            if not st or not all(st[:4]):
                continue
            t_strat, t_dec, t_call, t_done_j = st[:4]
            parts["wire+parse+bus"].append((t_strat - send_ns) / 1000)
            parts["strategy+plan+risk"].append((t_dec - t_strat) / 1000)
            parts["spawn→journal call"].append((t_call - t_dec) / 1000)
            parts["journal commit (durable)"].append((t_done_j - t_call) / 1000)
            parts["commit→venue handler"].append((recv_ns - t_done_j) / 1000)
        row["stages_p50_us"] = {k: round(statistics.median(v), 1) for k, v in parts.items() if v}
        floor = floors.get("durable" if mode == "full" else "plain")
        if floor:
            row["floor"] = "durable" if mode == "full" else "plain"
            row["ratio_p50"] = round(p50 / floor["p50_us"], 2)
            row["ratio_p99"] = round(p99 / floor["p99_us"], 2)
        results[f"tws_api_journal_{mode}"] = row
        print(f"daemon venue=ibkr journal={mode}: tick_to_order_us p50={p50:.1f} p99={p99:.1f} n={len(lat_us)} "
              f"missed={out['missed']}"
              + (f" vs {row['floor']} floor: ratio_p50={row['ratio_p50']} ratio_p99={row['ratio_p99']}"
                 if floor else ""), flush=True)
        print("  stages p50 µs: " + ", ".join(f"{k}={v}" for k, v in row["stages_p50_us"].items()), flush=True)
        print(f"  Gateway restart (refused {args.restart_refuse_s} s): listening again → reconnected "
              f"{row['gateway_up_to_reconnected_ms']} ms, reconnected → reconciled "
              f"{row['reconnected_to_reconciled_ms']} ms, total {row['gateway_up_to_reconciled_ms']} ms",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["emulator"]:
        sys.exit(run_emulator(sys.argv[2]))
    print("run it as: tick_to_order_bench.py --venue ibkr", file=sys.stderr)
    sys.exit(2)
