"""Tick-to-order latency through the real daemon, as a ratio to ../shared/bench/floor_bench.py.

A trade message leaves the Binance emulator (its own process; timestamped just before the
frame is written), the daemon (another process) parses it, publishes it on the bus, a
strategy decides on it, the engine plans the order, the router and the risk gate pass
it, the intent is committed to the journal (durable: fsync), and the signed order
arrives at the emulator (timestamped when its handler starts): a REST request with
`order_entry = "rest"`, a WebSocket API frame (`order.place`) with `order_entry =
"ws_api"`. The emulator sends the next trade once the order arrived (ping-pong,
`POST /_emulator/bench/ping_pong`), like the floor does. Both timestamps are the
emulator's `time.perf_counter_ns()`.

`--venue bybit` does the same against the Bybit emulator (tests/system/bybit_harness.py):
a `publicTrade` frame of `bybit_spot:BTCUSDT` in, an `/v5/order/create` request
(`--order-entry rest`) or an `order.create` frame on the trade WebSocket (`ws_trade`) out.
The adapter paces order creates by the emulator's `X-Bapi-Limit*` headers (20 per second,
as on Bybit; sent even when unmetered), so a run faster than that measures the pacing in
the p99 ("sign+send setup"): use `--gap-ms 60` for the latency alone.

`--venue ibkr` (benchmarks/ibkr_bench.py): tick-by-tick ES trades from the IBKR emulator
through ib_async into the daemon, a placeOrder frame out; then an IB Gateway restart and the
time from the Gateway listening again to the daemon reconnected and reconciled. ES trades
about 23 h on weekdays: on a weekend the run says the market is closed.

The decision per tick: the daemon's own strategies decide on bars, so the benchmark runs
the daemon with a benchmark-only strategy (`Ladder`: every trade raises the target
position by one step, so every trade is exactly one BUY MARKET order through the normal
target → plan → risk → journal → venue path). `python tick_to_order_bench.py daemon
--config C --strategy ladder|count` is that daemon: `nautilus_hmm.node.run_node` with
the strategy swapped in (everything else is the production node), plus probes that
timestamp the stages in the daemon (`perf_counter_ns`, the same clock as the emulator's
on Linux: CLOCK_MONOTONIC) and report them in /status → strategy.

    .venv/bin/python benchmarks/tick_to_order_bench.py [--orders 3000] [--gap-ms 2]
        [--journal full normal] [--order-entry rest ws_api] [--skip-floor] [--profile DIR]
        [--no-gc-tune]
    .venv/bin/python benchmarks/tick_to_order_bench.py --venue bybit [--order-entry rest ws_trade] ...

Prints, in one run: both floors (plain, and `--durable`: one 128-byte append + fdatasync
per order, in the directory the journals live in), ours per (order entry, journal mode)
combination (p50/p99 in µs; the ratio of `full` is to the durable floor, of `normal` to
the plain floor), p50/p99 per stage, and the daemon's event-loop lag while it runs (a 1 ms
probe timer: how late it fires). `--profile DIR` runs each daemon under cProfile and
prints its top frames by own time. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLOOR = ROOT.parent / "shared" / "bench" / "floor_bench.py"
sys.path.insert(0, str(ROOT))



# ---------------------------------------------------------------- in the daemon process


class Probe:
    """Stage timestamps of the daemon, per client order id (perf_counter_ns)."""

    def __init__(self) -> None:
        self.current: tuple[int, int] | None = None  # (strategy entered, decision returned)
        self.current_cpu: tuple[int, int] | None = None  # the loop thread's CPU clock at the same two points
        self.lag_probe = True  # the 1 ms loop-lag timer (off: ~1000 wake-ups/s less CPU, for CPU per order)
        self.stages: dict[str, list[int]] = {}
        self.trades = 0
        self.burst_first_ns = 0
        self.burst_last_ns = 0
        self.burst_count = 0
        self.lag_us: list[float] = []  # how late a 1 ms timer fired, while trades flow
        # The same, counting only the loop thread's CPU time (how much work ran past the
        # deadline, without the time the process was descheduled): the pipeline's own share.
        self.lag_cpu_us: list[float] = []
        self.lag_total = 0  # samples taken so far (the list keeps the newest)
        self.lag_at_burst_first = 0  # lag_total at the first trade of the current burst (a stream's window)
        self.lag_at_last_trade = 0  # lag_total when the latest trade was handled (the window's end)
        self.gc_pauses_us: list[tuple[int, float]] = []  # (generation, pause) of each collection
        self._gc_t0 = 0
        self._lag_task: Any = None

    def on_trade(self, now_ns: int) -> None:
        """Count trades; a trade after a 0.5 s pause starts a new burst (throughput)."""
        if self._lag_task is None:
            import asyncio
            import gc

            self._lag_task = (asyncio.get_running_loop().create_task(self._measure_lag()) if self.lag_probe
                              else False)
            gc.callbacks.append(self._on_gc)
        self.trades += 1
        if now_ns - self.burst_last_ns > 500_000_000:
            self.burst_first_ns = now_ns
            self.burst_count = 0
            self.lag_at_burst_first = self.lag_total
        self.burst_last_ns = now_ns
        self.burst_count += 1
        self.lag_at_last_trade = self.lag_total

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """Time each garbage collection (gc.callbacks), from the first trade on."""
        if phase == "start":
            self._gc_t0 = time.perf_counter_ns()
        elif self._gc_t0:
            self.gc_pauses_us.append((info["generation"], (time.perf_counter_ns() - self._gc_t0) / 1000))
            del self.gc_pauses_us[:-10_000]

    async def _measure_lag(self) -> None:
        """Sleep 1 ms again and again; record how late each wake-up is (loop lag), the newest 20-40k;
        and the loop thread's CPU time past the period in the same interval (lag_cpu_us)."""
        import asyncio

        period_ns = 1_000_000
        lag, lag_cpu = self.lag_us, self.lag_cpu_us
        perf, cpu = time.perf_counter_ns, time.thread_time_ns
        while True:
            t0, c0 = perf(), cpu()
            await asyncio.sleep(0.001)
            lag.append((perf() - t0 - period_ns) / 1000)
            lag_cpu.append(max(0, cpu() - c0 - period_ns) / 1000)
            self.lag_total += 1
            if len(lag) > 40_000:  # bounded: the soak reads this process's RSS
                del lag[:20_000]
                del lag_cpu[:20_000]

    def instrument(self, stack: Any) -> None:
        """Wrap the journal's record_intent and the order send (REST or WebSocket API) to timestamp them."""
        import time as _time

        journal = stack.journal
        record_intent = journal.record_intent

        cpu = _time.thread_time_ns  # the loop thread's CPU clock (every stamp is taken on the loop)

        def timed_intent(req: Any, strategy_id: str, ts_ns: int) -> Any:
            called, called_cpu = _time.perf_counter_ns(), cpu()
            fut = record_intent(req, strategy_id, ts_ns)
            decided = self.current or (0, 0)
            decided_cpu = self.current_cpu or (0, 0)
            # [5 wall stamps (see the driver), then the loop thread's CPU clock at each of them]
            row = self.stages.setdefault(req.client_order_id, [decided[0], decided[1], called, 0, 0,
                                                               decided_cpu[0], decided_cpu[1], called_cpu, 0, 0])

            def durable(_f: Any = None) -> None:
                row[3], row[8] = _time.perf_counter_ns(), cpu()

            if fut.done():  # journaled on the loop thread: durable now
                durable()
            else:
                fut.add_done_callback(durable)
            return fut

        def stamp_send(row: list[int] | None) -> None:
            if row is not None:
                row[4], row[9] = _time.perf_counter_ns(), cpu()

        journal.record_intent = timed_intent
        for venue in stack.venues.values():
            rest = getattr(venue, "rest", None)
            if rest is None:
                continue
            send = rest._send

            async def timed_send(method: str, url: Any, headers: dict[str, str], *body: Any, _send: Any = send) -> Any:
                if method == "POST":
                    if url.path.endswith("/order"):  # Binance: the id is in the query
                        row = self.stages.get(url.query.get("newClientOrderId", ""))
                    elif url.path.endswith("/v5/order/create") and body and body[0]:  # Bybit: in the JSON body
                        raw = bytes(body[0])
                        i = raw.find(b'"orderLinkId":"') + 15
                        row = self.stages.get(raw[i:raw.find(b'"', i)].decode()) if i >= 15 else None
                    else:
                        row = None
                    stamp_send(row)
                return await _send(method, url, headers, *body)

            rest._send = timed_send
            ws_api = getattr(venue, "ws_api", None)
            if ws_api is not None:
                transmit = ws_api._transmit

                async def timed_transmit(frame: dict[str, Any], _transmit: Any = transmit) -> Any:
                    if frame.get("method") == "order.place":
                        stamp_send(self.stages.get(frame["params"].get("newClientOrderId", "")))
                    return await _transmit(frame)

                ws_api._transmit = timed_transmit
            ws_trade = getattr(venue, "ws_trade", None)
            if ws_trade is not None:
                transmit_trade = ws_trade._transmit

                async def timed_trade(frame: dict[str, Any], _transmit: Any = transmit_trade) -> Any:
                    if frame.get("op") == "order.create":
                        stamp_send(self.stages.get(frame["args"][0].get("orderLinkId", "")))
                    return await _transmit(frame)

                ws_trade._transmit = timed_trade

    @staticmethod
    def cpu_ns() -> dict[str, Any]:
        """CPU used so far: the whole process, the loop thread (this one: /status runs on the loop),
        and each Python thread by name (/proc/self/task/<native id>/stat utime + stime, ns)."""
        import os
        import threading

        tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        threads: dict[str, int] = {}
        for t in threading.enumerate():
            try:
                with open(f"/proc/self/task/{t.native_id}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = "loop" if t is threading.current_thread() else t.name
            threads[name] = threads.get(name, 0) + (int(fields[11]) + int(fields[12])) * tick_ns
        return {"process": time.process_time_ns(), "loop": time.thread_time_ns(), "threads": threads}

    def as_dict(self) -> dict[str, Any]:
        """For /status → strategy."""
        return {"kind": "bench", "cpu_ns": self.cpu_ns(), "trades": self.trades, "burst_first_ns": self.burst_first_ns,
                "burst_last_ns": self.burst_last_ns, "burst_count": self.burst_count, "stages": self.stages,
                "lag_us": self.lag_us[-20_000:], "lag_total": self.lag_total,
                "lag_at_burst_first": self.lag_at_burst_first, "lag_at_last_trade": self.lag_at_last_trade,
                "gc_pauses_us": self.gc_pauses_us}


class Ladder:
    """Every trade of the instrument raises the target position by `step`: one BUY per trade."""

    kind = "bench"

    def __init__(self, instrument_id: Any, step: Decimal, probe: Probe) -> None:
        self.strategy_id = "bench_ladder"
        self.instrument_id = instrument_id
        self.instruments = (instrument_id,)
        self._unsubscribe: Any = None
        self.step = step
        self.target = Decimal(0)
        self.probe = probe
        self._ctx: Any = None

    def attach(self, bus: Any, ctx: Any) -> None:
        """Listen to trades."""
        from nautilus_hmm.messages import TradeTick

        self._ctx = ctx
        self.target = ctx.position(self.instrument_id)
        self._unsubscribe = bus.subscribe(TradeTick, self.on_trade, name="strategy:bench_ladder")

    def detach(self) -> None:
        """Stop listening."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def update_params(self, cfg: Any) -> None:
        """No live parameters."""

    def on_trade(self, t: Any) -> None:
        """State the next rung as the target."""
        if t.instrument_id != self.instrument_id:
            return
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        self.probe.on_trade(t0)
        self.target += self.step
        self._ctx.target(self.instrument_id, self.target, "bench", t.ts_event_ns)
        self.probe.current = (t0, time.perf_counter_ns())
        self.probe.current_cpu = (c0, time.thread_time_ns())

    def status(self) -> dict[str, Any]:
        """Probe figures."""
        return self.probe.as_dict()


class Pulse(Ladder):
    """The soak's strategy (benchmarks/soak.py): on a trade, once `every_s` has passed since its
    last order, the target flips between 0 and `step`: one order every `every_s`, position bounded."""

    def __init__(self, instrument_id: Any, step: Decimal, probe: Probe, every_s: float) -> None:
        super().__init__(instrument_id, step, probe)
        self.strategy_id = "bench_pulse"
        self.every_ns = int(every_s * 1e9)
        self.last_ns = 0

    def on_trade(self, t: Any) -> None:
        """Flip the target when the period is over."""
        if t.instrument_id != self.instrument_id:
            self.probe.on_trade(time.perf_counter_ns())
            return
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        self.probe.on_trade(t0)
        if t0 - self.last_ns < self.every_ns:
            return
        self.last_ns = t0
        self.target = self.step if self.target == 0 else Decimal(0)
        self._ctx.target(self.instrument_id, self.target, "soak", t.ts_event_ns)
        self.probe.current = (t0, time.perf_counter_ns())
        self.probe.current_cpu = (c0, time.thread_time_ns())


class Count:
    """Counts trades (market-data throughput): no decisions."""

    kind = "bench"

    def __init__(self, instrument_id: Any, probe: Probe) -> None:
        self.strategy_id = "bench_count"
        self.instruments = (instrument_id,)
        self.probe = probe
        self._unsubscribe: Any = None

    def attach(self, bus: Any, ctx: Any) -> None:
        """Listen to trades."""
        from nautilus_hmm.messages import TradeTick

        self._unsubscribe = bus.subscribe(TradeTick, self.on_trade, name="strategy:bench_count")

    def detach(self) -> None:
        """Stop listening."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def update_params(self, cfg: Any) -> None:
        """No live parameters."""

    def on_trade(self, t: Any) -> None:
        """One more trade."""
        self.probe.on_trade(time.perf_counter_ns())

    def status(self) -> dict[str, Any]:
        """Probe figures (no stages). The loop-lag lists go packed (float64, base64: `unpack_lag`):
        /status runs on the daemon's loop, and 40k floats through its JSON conversion would hold
        that loop ~20 ms at every read, inside the window being measured."""
        import base64
        from array import array

        d = self.probe.as_dict()
        d.pop("stages")
        d["lag_cpu_us"] = self.probe.lag_cpu_us[-20_000:]
        for key in ("lag_us", "lag_cpu_us"):
            d[key] = base64.b64encode(array("d", d[key]).tobytes()).decode()
        return d


def unpack_lag(packed: str) -> list[float]:
    """The list `Count.status` packed."""
    import base64
    from array import array

    return array("d", base64.b64decode(packed)).tolist()


def run_daemon(config_path: str, strategy: str, step: str, profile: str = "", gc_tune: bool = True,
               every_s: float = 3.0, lag_probe: bool = True) -> int:
    """The production node with a benchmark strategy swapped in (see the module docstring).

    `profile`: write a cProfile of the whole run there. `gc_tune=False`: start-up GC tuning
    (node.tune_gc: freeze, thresholds) skipped, to measure what it buys."""
    import uvloop

    import nautilus_hmm.node as node_mod
    from nautilus_hmm.cli import load_config_or_report
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.obs import logging as obs_logging

    cfg = load_config_or_report(config_path, "; not starting")
    if cfg is None:
        return 78
    obs_logging.configure(cfg.log.level, cfg.log.format)
    probe = Probe()
    probe.lag_probe = lag_probe
    build_stack = node_mod.build_stack

    def bench_stack(cfg: Any, bus: Any, clock: Any, journal: Any, venues: Any, *, durable: bool,
                    strategy_obj: Any = None) -> Any:
        iid = InstrumentId.parse(cfg.strategy.instruments[0])
        if strategy == "ladder":
            strat: Any = Ladder(iid, Decimal(step), probe)
        elif strategy == "pulse":
            strat = Pulse(iid, Decimal(step), probe, every_s)
        else:
            strat = Count(iid, probe)
        stack = build_stack(cfg, bus, clock, journal, venues, durable=durable, strategy=strat)
        probe.instrument(stack)
        return stack

    node_mod.build_stack = bench_stack  # type: ignore[assignment]
    if not gc_tune and hasattr(node_mod, "tune_gc"):
        node_mod.tune_gc = lambda: None  # type: ignore[attr-defined]
    if not profile:
        return int(uvloop.run(node_mod.run_node(cfg, config_path)))
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        return int(uvloop.run(node_mod.run_node(cfg, config_path)))
    finally:
        prof.disable()
        prof.dump_stats(profile)


# ---------------------------------------------------------------- the driver


def run_floor(n: int, durable: bool = False) -> dict[str, float]:
    """../shared/bench/floor_bench.py N --uvloop [--durable] with this interpreter; its figures.

    The durable floor's file goes where the daemons' journals go (the temp directory)."""
    args = [sys.executable, str(FLOOR), str(n), "--uvloop", *(["--durable"] if durable else [])]
    with tempfile.TemporaryDirectory(prefix="t2o-floor-") as cwd:
        out = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True, cwd=cwd).stdout
    m = re.search(r"stream_msgs_per_s=(\d+) tick_to_order_us p50=([\d.]+) p99=([\d.]+) n=(\d+)", out)
    if m is None:
        raise RuntimeError(f"unexpected floor output: {out!r}")
    return {"stream_msgs_per_s": float(m.group(1)), "p50_us": float(m.group(2)), "p99_us": float(m.group(3)),
            "n": int(m.group(4)), "line": out.strip()}


def quantile(values: list[float], q: float) -> float:
    """The floor's quantile: sorted[int(q * (n - 1))]."""
    s = sorted(values)
    return s[int(q * (len(s) - 1))]


def bench_daemon(strategy: str, journal_mode: str, *, symbols: tuple[str, ...] = ("BTCUSDT",),
                 step: str = "0.0002", extra_toml: str = "", order_entry: str = "rest",
                 daemon_args: tuple[str, ...] = (), venue: str = "binance",
                 config_edit: Any = None) -> tuple[Any, Any, Path]:
    """Start the emulator (no ticks of its own, unmetered) and the bench daemon; both running.

    `config_edit` (Binance): a function of the config text returning the text to run with."""
    if venue == "bybit":
        return bench_bybit_daemon(strategy, journal_mode, symbols=symbols, step=step, extra_toml=extra_toml,
                                  order_entry=order_entry, daemon_args=daemon_args)
    from tests.system.binance_harness import DaemonProcess, EmulatorProcess, wait_for

    class BenchDaemon(DaemonProcess):
        def write_config(self, initial_state: str = "ACTIVE") -> Path:
            path = super().write_config(initial_state)
            if order_entry != "rest":
                # The harness template has no hook inside [venues.binance_spot]: add the keys there.
                text = path.read_text().replace(
                    "[venues.binance_spot]\n", f'[venues.binance_spot]\norder_entry = "{order_entry}"\n'
                                               f'ws_api_url = "{self.emulator.ws_url}/ws-api/v3"\n', 1)
                path.write_text(text)
            if config_edit is not None:
                path.write_text(config_edit(path.read_text()))
            return path

    work = Path(tempfile.mkdtemp(prefix="t2o-"))
    emu = EmulatorProcess(work, symbols=symbols, tick_interval_s=3600.0, extra_args=["--unmetered"]).start()
    # extra_toml continues the harness config's [risk] table (orders_per_s 1000, burst 1000).
    daemon = BenchDaemon(work, emu, symbols=symbols, command=(str(Path(__file__).resolve()), "daemon",
                                                              "--strategy", strategy, "--step", step,
                                                              *daemon_args),
                         extra_toml=extra_toml + f'\n[journal]\nsynchronous = "{journal_mode}"\n')

    def books_valid() -> bool:
        emu.tick(1)
        return not daemon.status()["risk"]["books_invalid"]

    try:
        daemon.start()
        daemon.wait_ready()
        wait_for(books_valid, "the books to sync", poll_s=0.05)
        if order_entry == "ws_api":
            wait_for(lambda: emu.state()["ws_api_connections"] == 1, "the WebSocket API connection")
    except BaseException:  # no emulator or daemon left behind by a failed start
        daemon.close()  # kills a daemon still running
        emu.stop()
        raise
    return emu, daemon, work


def bench_bybit_daemon(strategy: str, journal_mode: str, *, symbols: tuple[str, ...], step: str, extra_toml: str,
                       order_entry: str, daemon_args: tuple[str, ...]) -> tuple[Any, Any, Path]:
    """bench_daemon against the Bybit emulator (bybit_spot; orders over REST or the trade WebSocket)."""
    from tests.system.bybit_harness import BybitDaemonProcess, BybitEmulatorProcess
    from tests.system.processes import wait_for

    work = Path(tempfile.mkdtemp(prefix="t2o-bybit-"))
    emu = BybitEmulatorProcess(work, symbols=symbols, tick_interval_s=3600.0, extra_args=("--unmetered",)).start()
    daemon = BybitDaemonProcess(work, emu, symbols=symbols, venue="bybit_spot", order_entry=order_entry,
                                command=(str(Path(__file__).resolve()), "daemon", "--strategy", strategy,
                                         "--step", step, *daemon_args),
                                extra_toml=extra_toml + f'\n[journal]\nsynchronous = "{journal_mode}"\n')

    def books_valid() -> bool:
        emu.tick(1)
        return not daemon.status()["risk"]["books_invalid"]

    try:
        daemon.start()
        daemon.wait_ready()
        wait_for(books_valid, "the books to sync", poll_s=0.05)
        if order_entry == "ws_trade":
            wait_for(lambda: emu.state()["connections"]["trade"] == 1, "the trade WebSocket connection")
    except BaseException:
        daemon.close()
        emu.stop()
        raise
    return emu, daemon, work


def _order_sizes(journal: Path) -> dict[str, int]:
    """Orders by (side, quantity) in a kept journal: every one should be a BUY of one step."""
    import sqlite3

    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT side, CAST(quantity AS REAL), count(*) FROM orders GROUP BY 1, 2 ORDER BY 3 DESC")
        return {f"{side} {qty:g}": n for side, qty, n in rows.fetchall()[:8]}
    finally:
        conn.close()


def print_profile(path: str, top: int) -> None:
    """The top frames of a daemon's cProfile by own time (where the CPU went)."""
    import pstats

    if not Path(path).exists():
        print(f"  (no profile at {path}: the daemon did not stop cleanly)", flush=True)
        return
    st = pstats.Stats(path)
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    total = st.total_tt  # type: ignore[attr-defined]
    print(f"  profile {path} (total {total:.2f} s): top {top} by own time", flush=True)
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"    {tottime:7.3f}s own {cumtime:7.3f}s cum {ncalls:8d} calls  {func}  {where}", flush=True)


def start_py_spy(pid: int, out: str, rate_hz: int) -> subprocess.Popen[bytes]:
    """py-spy sampling the daemon (its Python threads, by name) until stopped with SIGINT; raw
    collapsed stacks to `out`. --nonblocking: the daemon is never paused to be read."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        raise SystemExit("--py-spy needs py-spy (pip install py-spy; it is in the dev extra)")
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw",
                             "--output", out, "--nonblocking", "--gil", "--threads", "--full-filenames"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # py-spy attaches (reads the interpreter's memory layout) before the measured orders
    return proc


def stop_py_spy(proc: subprocess.Popen[bytes]) -> None:
    """Stop sampling; py-spy writes its file on SIGINT."""
    import signal

    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def py_spy_cpu(path: str, rate_hz: int, orders: int) -> dict[str, Any]:
    """CPU per order from py-spy's raw stacks (a sample = 1/rate s of a thread on CPU): by thread, by
    own frame (the leaf: function and file, lines merged) and by inclusive frame, in µs per order."""
    per_sample_us = 1e6 / rate_hz / max(1, orders)
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        threads[frames[0]] += int(n)
        names = []
        for fr in frames[1:]:
            m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", fr)
            func, file = (m.group(1), m.group(2)) if m else (fr, "")
            file = re.sub(r".*/(site-packages|nautilus_hmm|lib/python3\.\d+)/", r"\1/", file)
            names.append(f"{func} {file}")
        if names:
            own[names[-1]] += int(n)
            for name in set(names):
                incl[name] += int(n)

    def scaled(c: Counter[str], top: int) -> list[tuple[str, float]]:
        return [(k, round(v * per_sample_us, 1)) for k, v in c.most_common(top)]

    return {"threads_us_per_order": dict(scaled(threads, 20)), "own_us_per_order": scaled(own, 40),
            "inclusive_us_per_order": scaled(incl, 60), "samples": sum(threads.values())}


def print_py_spy(fig: dict[str, Any], top: int) -> None:
    """The py-spy figures: threads, then the top own and inclusive frames (µs of CPU per order)."""
    print(f"  py-spy ({fig['samples']} samples) CPU µs per order by thread: "
          + ", ".join(f"{k}={v}" for k, v in fig["threads_us_per_order"].items()), flush=True)
    print(f"  py-spy top {top} frames by own CPU µs per order:", flush=True)
    for name, us in fig["own_us_per_order"][:top]:
        print(f"    {us:8.1f}  {name}", flush=True)
    print(f"  py-spy top {top} frames by inclusive CPU µs per order:", flush=True)
    for name, us in fig["inclusive_us_per_order"][:top]:
        print(f"    {us:8.1f}  {name}", flush=True)


def cpu_per_order(before: dict[str, Any], after: dict[str, Any], orders: int) -> dict[str, Any]:
    """µs of CPU per measured order: the process, the loop thread, and each thread (between two probe reads)."""
    def us(a: int, b: int) -> float:
        return round((b - a) / 1000 / max(1, orders), 1)

    threads = {k: us(before["threads"].get(k, 0), v) for k, v in after["threads"].items()}
    return {"process": us(before["process"], after["process"]), "loop": us(before["loop"], after["loop"]),
            "threads": {k: v for k, v in sorted(threads.items(), key=lambda kv: -kv[1]) if v > 0}}


def print_table(results: dict[str, Any], combos: list[tuple[str, str]]) -> None:
    """One line per (order entry, journal mode): p50/p99, ratios to the floor it is held to, loop lag p99."""
    print("\nentry   journal  floor    p50_us   p99_us  x_p50  x_p99  lag_p99_us  cpu_us/order", flush=True)
    for entry, mode in combos:
        r = results[f"{entry}_journal_{mode}"]
        print(f"{entry:<7} {mode:<8} {r.get('floor', '-'):<8} {r['p50_us']:>7} {r['p99_us']:>8} "
              f"{r.get('ratio_p50', '-'):>6} {r.get('ratio_p99', '-'):>6} "
              f"{r.get('loop_lag_us', {}).get('p99', '-'):>10}  "
              f"{r.get('cpu_us_per_order', {}).get('process', '-'):>12}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with `daemon`, be the benchmark daemon)."""
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["daemon"]:
        ap = argparse.ArgumentParser(prog="tick_to_order_bench.py daemon")
        ap.add_argument("--config", required=True)
        ap.add_argument("--strategy", choices=("ladder", "count", "pulse"), default="ladder")
        ap.add_argument("--order-every-s", type=float, default=3.0, help="pulse: seconds between orders")
        ap.add_argument("--step", default="0.0002")
        ap.add_argument("--profile", default="")
        ap.add_argument("--no-gc-tune", action="store_true")
        ap.add_argument("--no-lag-probe", action="store_true")
        a = ap.parse_args(argv[1:])
        return run_daemon(a.config, a.strategy, a.step, a.profile, not a.no_gc_tune, a.order_every_s,
                          not a.no_lag_probe)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=3000, help="measured orders per journal mode")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--gap-ms", type=float, default=2.0, help="pause after each order before the next trade")
    ap.add_argument("--journal", nargs="+", default=["full", "normal"], choices=("full", "normal"))
    ap.add_argument("--venue", choices=("binance", "bybit", "ibkr"), default="binance",
                    help="the emulator and adapter (binance_spot, bybit_spot, or ibkr: benchmarks/ibkr_bench.py)")
    ap.add_argument("--restart-refuse-s", type=float, default=2.0,
                    help="ibkr: seconds the emulated IB Gateway restart refuses connections")
    ap.add_argument("--order-entry", nargs="+", default=None, choices=("rest", "ws_api", "ws_trade"),
                    help="order_entry values to measure (each with every journal mode); default: rest and "
                         "ws_api (binance) / ws_trade (bybit)")
    ap.add_argument("--floor-n", type=int, default=50000)
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep each run's directory (journal, logs)")
    ap.add_argument("--profile", default="", metavar="DIR",
                    help="run each daemon under cProfile, write DIR/<entry>_<journal>.prof, print its top frames")
    ap.add_argument("--top", type=int, default=20, help="frames to print per profile")
    ap.add_argument("--no-gc-tune", action="store_true", help="daemons skip the start-up GC tuning (node.tune_gc)")
    ap.add_argument("--no-lag-probe", action="store_true",
                    help="daemons run without the 1 ms loop-lag timer (its ~1000 wake-ups/s are CPU too)")
    ap.add_argument("--py-spy", default="", metavar="DIR",
                    help="sample each daemon with py-spy during the measured orders (DIR/<entry>_<journal>.txt); "
                         "print CPU µs per order by thread and by frame")
    ap.add_argument("--py-spy-rate", type=int, default=1000, help="py-spy samples per second")
    args = ap.parse_args(argv)
    if args.venue == "ibkr":  # ES tick-by-tick through the TWS API; then a Gateway restart (ibkr_bench.py)
        from ibkr_bench import bench_ibkr

        ibkr_floors = {} if args.skip_floor else {k: run_floor(args.floor_n, durable=k == "durable")
                                                  for k in ("plain", "durable")}
        for kind, fl in ibkr_floors.items():
            print(f"floor {kind}: {fl['line']}", flush=True)
        bench_ibkr(args, ibkr_floors, quantile)
        return 0
    bybit = args.venue == "bybit"
    ws_entry = "ws_trade" if bybit else "ws_api"
    if args.order_entry is None:
        args.order_entry = ["rest", ws_entry]
    for entry in args.order_entry:
        if entry not in ("rest", ws_entry):
            ap.error(f"--order-entry {entry} is not an order entry of {args.venue} (rest or {ws_entry})")

    results: dict[str, Any] = {"venue": args.venue}
    floors: dict[str, dict[str, Any]] = {}
    if not args.skip_floor:
        for kind in ("plain", "durable"):
            floors[kind] = run_floor(args.floor_n, durable=kind == "durable")
            print(f"floor {kind}: {floors[kind]['line']}", flush=True)
        results["floor"] = floors["plain"]
        results["floor_durable"] = floors["durable"]
    combos = [(entry, mode) for entry in args.order_entry for mode in args.journal]
    for entry, mode in combos:
        daemon_args: tuple[str, ...] = (("--no-gc-tune",) if args.no_gc_tune else ()) + (
            ("--no-lag-probe",) if args.no_lag_probe else ())
        prof_path = ""
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            prof_path = str(Path(args.profile).resolve() / f"{entry}_{mode}.prof")
            daemon_args += ("--profile", prof_path)
        emu, daemon, work = bench_daemon("ladder", mode, order_entry=entry, daemon_args=daemon_args,
                                         venue=args.venue)
        try:
            # Only BUYs answer a trade: a SELL is the engine correcting an over-fill (see the report).
            where = {"category": "spot", "side": "Buy"} if bybit else {"side": "BUY"}
            emu.post("/_emulator/bench/ping_pong", {"symbol": "BTCUSDT", "n": args.warmup, "gap_ms": args.gap_ms,
                                                    **where})
            # The daemon's CPU with no trade for a second (its timers, the probe's lag timer):
            # subtracted per measured second from the CPU per order ("net").
            idle_before, idle_t0 = daemon.status()["strategy"]["cpu_ns"], time.monotonic()
            time.sleep(1.0)
            cpu_before, idle_t1 = daemon.status()["strategy"]["cpu_ns"], time.monotonic()
            idle_us_per_s = (cpu_before["process"] - idle_before["process"]) / 1000 / (idle_t1 - idle_t0)
            run_t0 = time.monotonic()
            spy = spy_path = None
            if args.py_spy:
                Path(args.py_spy).mkdir(parents=True, exist_ok=True)
                spy_path = str(Path(args.py_spy).resolve() / f"{entry}_{mode}.txt")
                assert daemon.proc is not None
                spy = start_py_spy(daemon.proc.pid, spy_path, args.py_spy_rate)
            try:
                out = emu.post("/_emulator/bench/ping_pong", {"symbol": "BTCUSDT", "n": args.orders, **where,
                                                              "gap_ms": args.gap_ms, "timeout_s": 2.0})
            finally:
                if spy is not None:
                    stop_py_spy(spy)
            run_s = time.monotonic() - run_t0
            probe = daemon.status()["strategy"]
            stages, lag_us = probe["stages"], probe.get("lag_us", [])
            gc_pauses = probe.get("gc_pauses_us", [])
            emu_state = emu.state()
        finally:
            rc = daemon.terminate()
            daemon.close()
            emu.stop()
            if args.keep:
                print(f"kept {work}", flush=True)
            else:
                shutil.rmtree(work, ignore_errors=True)
        sizes = _order_sizes(work / "state" / "journal.sqlite3") if args.keep else {}
        lat_us = [(r - s) / 1000 for s, r, _ in out["samples"]]
        cpu = cpu_per_order(cpu_before, probe["cpu_ns"], len(lat_us))
        cpu["idle_us_per_s"] = round(idle_us_per_s, 1)
        cpu["net"] = round(cpu["process"] - idle_us_per_s * run_s / max(1, len(lat_us)), 1)
        p50, p99 = quantile(lat_us, 0.5), quantile(lat_us, 0.99)
        row: dict[str, Any] = {"n": len(lat_us), "missed": out["missed"], "p50_us": round(p50, 1),
                               "p99_us": round(p99, 1), "mean_us": round(statistics.fmean(lat_us), 1),
                               "daemon_exit": rc, "orders_at_venue": len(emu_state["orders"]),
                               "order_entry": entry, "journal": mode, "cpu_us_per_order": cpu,
                               "orders_by_transport": dict(Counter(r.get("transport", "rest")
                                                                   for r in emu_state["new_order_requests"]))}
        # Stage breakdown (medians, µs): emulator send → strategy → decided → intent call →
        # intent durable → order send (HTTP request / WS frame) → emulator receipt.
        parts: dict[str, list[float]] = {k: [] for k in (
            "wire+parse+bus", "strategy+plan+risk", "spawn→journal call", "journal commit (durable)",
            "sign+send setup", "send→venue handler")}
        # The loop thread's CPU in the daemon's own stages (the same stamps, its thread_time_ns clock):
        # what the loop spent, whoever else ran; "journal commit" is the loop's work while it waits.
        cpu_parts: dict[str, list[float]] = {k: [] for k in (
            "strategy+plan+risk", "spawn→journal call", "journal commit (durable)", "sign+send setup")}
        for send_ns, recv_ns, cid in out["samples"]:
            st = stages.get(cid)
            if not st or not all(st):
                continue
            t_strat, t_dec, t_call, t_done, t_http = st[:5]
            parts["wire+parse+bus"].append((t_strat - send_ns) / 1000)
            parts["strategy+plan+risk"].append((t_dec - t_strat) / 1000)
            parts["spawn→journal call"].append((t_call - t_dec) / 1000)
            parts["journal commit (durable)"].append((t_done - t_call) / 1000)
            parts["sign+send setup"].append((t_http - t_done) / 1000)
            parts["send→venue handler"].append((recv_ns - t_http) / 1000)
            if len(st) >= 10:
                c_strat, c_dec, c_call, c_done, c_http = st[5:10]
                cpu_parts["strategy+plan+risk"].append((c_dec - c_strat) / 1000)
                cpu_parts["spawn→journal call"].append((c_call - c_dec) / 1000)
                cpu_parts["journal commit (durable)"].append((c_done - c_call) / 1000)
                cpu_parts["sign+send setup"].append((c_http - c_done) / 1000)
        row["stages_p50_us"] = {k: round(statistics.median(v), 1) for k, v in parts.items() if v}
        row["stages_p99_us"] = {k: round(quantile(v, 0.99), 1) for k, v in parts.items() if v}
        row["stages_loop_cpu_mean_us"] = {k: round(statistics.fmean(v), 1) for k, v in cpu_parts.items() if v}
        if lag_us:
            row["loop_lag_us"] = {"p50": round(quantile(lag_us, 0.5), 1), "p99": round(quantile(lag_us, 0.99), 1),
                                  "max": round(max(lag_us), 1), "n": len(lag_us)}
        # `full` pays a durable write before each send: its limit is the durable floor.
        floor = floors.get("durable" if mode == "full" else "plain")
        if floor:
            row["floor"] = "durable" if mode == "full" else "plain"
            row["ratio_p50"] = round(p50 / floor["p50_us"], 2)
            row["ratio_p99"] = round(p99 / floor["p99_us"], 2)
        if sizes:
            row["order_sizes"] = sizes
            print(f"  order sizes (journal): {sizes}", flush=True)
        results[f"{entry}_journal_{mode}"] = row
        print(f"daemon order_entry={entry} journal={mode}: tick_to_order_us p50={p50:.1f} p99={p99:.1f} "
              f"n={len(lat_us)} missed={out['missed']}"
              + (f" vs {row['floor']} floor: ratio_p50={row['ratio_p50']} ratio_p99={row['ratio_p99']}"
                 if floor else "")
              + f" orders_by_transport={row['orders_by_transport']}", flush=True)
        print("  stages p50 µs: " + ", ".join(f"{k}={v}" for k, v in row["stages_p50_us"].items()), flush=True)
        print("  stages p99 µs: " + ", ".join(f"{k}={v}" for k, v in row["stages_p99_us"].items()), flush=True)
        print("  stages loop-thread CPU mean µs: "
              + ", ".join(f"{k}={v}" for k, v in row["stages_loop_cpu_mean_us"].items()), flush=True)
        print(f"  CPU µs per order: process={cpu['process']} net of idle={cpu['net']} (idle "
              f"{cpu['idle_us_per_s']} µs/s) loop={cpu['loop']} by thread: "
              + ", ".join(f"{k}={v}" for k, v in cpu["threads"].items()), flush=True)
        if spy_path is not None and Path(spy_path).exists():
            row["py_spy"] = py_spy_cpu(spy_path, args.py_spy_rate, len(lat_us))
            print_py_spy(row["py_spy"], args.top)
        pauses = [p for _, p in gc_pauses]
        row["gc"] = {"collections": len(pauses), "gen2": sum(1 for g, _ in gc_pauses if g == 2),
                     "pause_p50_us": round(quantile(pauses, 0.5), 1) if pauses else 0,
                     "pause_max_us": round(max(pauses), 1) if pauses else 0,
                     "pause_total_ms": round(sum(pauses) / 1000, 1)}
        print("  gc during the run: " + ", ".join(f"{k}={v}" for k, v in row["gc"].items()), flush=True)
        if lag_us:
            lag = row["loop_lag_us"]
            print(f"  loop lag µs (1 ms timer): p50={lag['p50']} p99={lag['p99']} max={lag['max']} n={lag['n']}",
                  flush=True)
        if prof_path:
            print_profile(prof_path, args.top)
    if len(combos) > 1:
        print_table(results, combos)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
