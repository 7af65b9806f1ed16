"""Market-data throughput through the whole daemon, as a ratio to ../shared/bench/floor_bench.py,
and the daemon's RSS with ten symbols streaming.

Throughput: the Binance emulator (its own process) writes N trade frames to the daemon's
market websocket as fast as the connection takes them (`POST /_emulator/bench/stream`);
the daemon (another process: the production node with a counting strategy, see
`tick_to_order_bench.py daemon --strategy count`) parses each frame, publishes the
TradeTick on the bus, where the risk gate (freshness, marks), the engine (marks) and the
strategy (count, timestamp) handle it. The rate, as the floor counts it: N / (the last
trade handled by the strategy - the first frame leaving the emulator), both
perf_counter_ns (CLOCK_MONOTONIC on Linux, comparable across processes); also the steady
rate between the first and the last trade handled. The floor's figure is its client's
receive+parse rate of the same Binance trade frames.

RSS: the emulator ticks ten symbols (trade, bookTicker, diff depth, 1 s klines each)
every `--rss-tick-s`; the daemon runs the ordinary `nautilus-hmm run` with `sma_cross` on
the ten instruments (local books on all ten); VmRSS is sampled every second for
`--rss-seconds`, and VmHWM (peak) read at the end.

Stream (the issue's case: loop lag at 50k msgs/s over 10 symbols): the same counting
daemon subscribed to ten symbols' trade streams, with a bar length that has no Binance kline
(`--stream-bar-s 10`) so the adapter builds the bars from the trades (parse → bars → bus →
marks, risk gate, engine → strategy). The emulator offers `--stream-rate` trade frames/s
round robin over the ten symbols for `--stream-seconds` (`POST /_emulator/bench/stream`
with `rate`: paced on its monotonic clock; when the daemon falls behind, the websocket's
flow control slows the sender). Printed: offered and sent rate, the pipeline's msgs/s
(frames handled by the strategy / (last handled - first sent)) and its ratio to the floor's
stream rate, and the daemon's loop lag (how late a 1 ms timer fires) p50/p99/max over
exactly the samples taken between the stream's start and its last trade handled. Then the
same ten symbols unpaced (`--stream-rate 0` alone runs only that): the most the pipeline
takes.

    .venv/bin/python benchmarks/md_throughput_bench.py [--n 50000] [--rss-seconds 30] [--skip-floor]
        [--stream-rate 50000] [--stream-seconds 5] [--stream-only] [--profile FILE]
    .venv/bin/python benchmarks/md_throughput_bench.py --micro    # the hot path in-process, CPU µs/frame
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tick_to_order_bench import bench_daemon, print_profile, quantile, run_floor, unpack_lag

from tests.system.binance_harness import DaemonProcess, EmulatorProcess, wait_for

TEN = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "LTCUSDT", "DOTUSDT", "LINKUSDT")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


def throughput(n: int, warmup: int) -> dict[str, Any]:
    """Daemon trades/s for one burst of `n` frames (after a warm-up burst)."""
    emu, daemon, work = bench_daemon("count", "full")
    try:
        def burst(k: int) -> tuple[dict[str, Any], dict[str, Any]]:
            before = daemon.status()["strategy"]["trades"]
            sent = emu.post("/_emulator/bench/stream", {"symbols": ["BTCUSDT"], "n": k})
            st = wait_for(lambda: (lambda s: s if s["trades"] >= before + k else None)(daemon.status()["strategy"]),
                          f"the daemon to handle {k} trades", timeout_s=300, poll_s=0.1)
            return sent, st

        burst(warmup)
        time.sleep(0.6)  # a pause ends the warm-up burst (the probe starts a new one after 0.5 s)
        sent, st = burst(n)
        rss = proc_status(daemon.proc.pid) if daemon.proc is not None else {}
    finally:
        daemon.terminate()
        daemon.close()
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    span_s = (st["burst_last_ns"] - st["burst_first_ns"]) / 1e9
    # As the floor counts: from the first frame leaving the sender to the last one handled
    # (both perf_counter_ns, CLOCK_MONOTONIC: comparable across the two processes).
    e2e_s = (st["burst_last_ns"] - sent["t0_ns"]) / 1e9
    return {"n": st["burst_count"], "daemon_msgs_per_s": round(st["burst_count"] / e2e_s),
            "daemon_steady_msgs_per_s": round((st["burst_count"] - 1) / span_s),
            "emulator_send_msgs_per_s": round(sent["msgs_per_s"]), "daemon_rss_mb_after": round(rss.get("VmRSS", 0) / 1024, 1)}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat, clock ticks)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_handled(daemon: Any, total: int, timeout_s: float) -> dict[str, Any]:
    """Poll the probe until the strategy has handled `total` trades; its figures.

    Every /status read serializes the probe's 20k lag samples on the daemon's loop (a few
    ms): called once the emulator has sent everything, and 0.2 s apart, so at most a
    couple of reads fall inside a stream's window (below the p99 of thousands of samples)."""
    end = time.monotonic() + timeout_s
    while True:
        st = daemon.status()["strategy"]
        if st["trades"] >= total:
            return st
        if time.monotonic() > end:
            raise AssertionError(f"the daemon handled {st['trades']} of {total} trades within {timeout_s} s")
        time.sleep(0.2)


def _lag_window(st: dict[str, Any], key: str = "lag_us") -> list[float]:
    """The loop-lag samples (`key`) taken from the burst's first trade to its last (the stream's window)."""
    lag, total, last = unpack_lag(st[key]), st["lag_total"], st["lag_at_last_trade"]
    first_total = st["lag_at_burst_first"]
    start = total - len(lag)  # sample number of lag[0]
    if first_total < start:
        print(f"  (loop lag: {start - first_total} samples of the window were no longer kept)", flush=True)
    return lag[max(0, first_total - start):max(0, last - start)]


def stream_case(rate: float, seconds: float, symbols: tuple[str, ...], bar_s: int, journal: str,
                warmup: int, profile: str = "", unpaced: bool = True, idle_s: float = 3.0) -> dict[str, Any]:
    """`rate` trade frames/s over `symbols` for `seconds` through the whole pipeline: loop lag, msgs/s.

    Then (`unpaced`) the same number of frames as fast as the connection takes them."""
    def edit(text: str) -> str:
        # A bar length with no kline interval: bars are built from the trade stream.
        return text.replace("bar_interval_s = 1\n", f"bar_interval_s = {bar_s}\n", 1)

    daemon_args = ("--profile", str(Path(profile).resolve())) if profile else ()
    emu, daemon, work = bench_daemon("count", journal, symbols=symbols, config_edit=edit, daemon_args=daemon_args)
    out: dict[str, Any] = {"symbols": len(symbols), "bar_interval_s": bar_s, "journal": journal}
    try:
        handled = daemon.status()["strategy"]["trades"]
        assert daemon.proc is not None
        pid = daemon.proc.pid

        def run(n: int, r: float) -> dict[str, Any]:
            nonlocal handled
            before = daemon.status()["strategy"]
            time.sleep(0.6)  # a pause: the probe starts a new burst (and loop-lag window) at the next trade
            cpu0 = cpu_s(pid)
            sent = emu.post("/_emulator/bench/stream", {"symbols": list(symbols), "n": n, "rate": r})
            st = _wait_handled(daemon, handled + n, timeout_s=max(120.0, 20 * n / 1000))
            cpu = cpu_s(pid) - cpu0
            handled += n
            lag = _lag_window(st)
            lag_cpu = _lag_window(st, "lag_cpu_us")
            e2e_s = (st["burst_last_ns"] - sent["t0_ns"]) / 1e9
            row: dict[str, Any] = {
                "n": n, "offered_msgs_per_s": round(r) if r > 0 else "unpaced",
                "emulator_sent_msgs_per_s": round(sent["msgs_per_s"]),
                "pipeline_msgs_per_s": round(st["burst_count"] / e2e_s),
                "lag_p50_us": round(quantile(lag, 0.5), 1) if lag else None,
                "lag_p99_us": round(quantile(lag, 0.99), 1) if lag else None,
                "lag_max_us": round(max(lag), 1) if lag else None, "lag_samples": len(lag),
                "lag_over_2ms_pct": round(100 * sum(1 for v in lag if v >= 2000) / len(lag), 2) if lag else None,
                # Loop-thread CPU past the 1 ms deadline (descheduled time left out): the pipeline's own lag.
                "cpu_lag_p99_us": round(quantile(lag_cpu, 0.99), 1) if lag_cpu else None,
                "cpu_lag_max_us": round(max(lag_cpu), 1) if lag_cpu else None,
                # The daemon's CPU per frame (all threads, incl. the few status reads): what the
                # pipeline costs whatever else the machine runs; 1e6 / it = msgs/s on one free core.
                "daemon_cpu_us_per_msg": round(cpu * 1e6 / n, 2),
            }
            # Garbage collections in the window (the probe keeps the newest 10k).
            pauses = [us for _, us in st["gc_pauses_us"][len(before["gc_pauses_us"]):]]
            row["gc_collections"] = len(pauses)
            row["gc_pause_max_us"] = round(max(pauses), 1) if pauses else 0
            if st["burst_count"] != n:
                row["burst_count"] = st["burst_count"]  # a pause > 0.5 s inside the stream split it
            return row

        run(warmup, 0.0)  # warm-up: the connection, the probe's lag timer, the caches
        # The machine's share: the same daemon idle (no frames) for a few seconds; its loop lag
        # is what descheduling and the daemon's own timers cost, with no market data at all.
        st0 = daemon.status()["strategy"]
        time.sleep(idle_s)
        st1 = daemon.status()["strategy"]
        k = st1["lag_total"] - st0["lag_total"]
        idle = unpack_lag(st1["lag_us"])[-k:][2:]  # the first ones waited for st0's read
        idle_cpu = unpack_lag(st1["lag_cpu_us"])[-k:][2:]
        if idle:
            out["idle"] = {"lag_p50_us": round(quantile(idle, 0.5), 1), "lag_p99_us": round(quantile(idle, 0.99), 1),
                           "lag_max_us": round(max(idle), 1), "lag_samples": len(idle),
                           "cpu_lag_p99_us": round(quantile(idle_cpu, 0.99), 1)}
        n = max(1, int(rate * seconds)) if rate > 0 else 0
        if n:
            out["paced"] = run(n, rate)
        if unpaced or not n:
            out["unpaced"] = run(n or max(1, int(50_000 * seconds)), 0.0)
        out["daemon_rss_mb_after"] = round(proc_status(pid)["VmRSS"] / 1024, 1)
        out["bus_messages_published"] = daemon.metric_sum("bus_messages_published_total")
    finally:
        rc = daemon.terminate()
        daemon.close()
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    out["daemon_exit"] = rc
    return out


def micro(n: int, repeats: int) -> dict[str, Any]:
    """The daemon's per-frame hot path in this process, no sockets: CPU µs per trade frame.

    The production pieces the stream case's frames go through after the websocket: the
    Binance market-stream handler (`MarketStreams.on_frame`: orjson, parser, bar
    aggregator for a 10 s bar), the bus, the mark book and a counting subscriber, over
    `n` pre-encoded trade frames of the ten symbols. CPU time (process_time), the best of
    `repeats`: steady whatever else the machine runs, for before/after of a hot-path change.
    """
    import orjson

    from nautilus_hmm.core.bus import Bus
    from nautilus_hmm.core.clock import LiveClock
    from nautilus_hmm.marketdata.marks import MarkBook
    from nautilus_hmm.messages import TradeTick
    from nautilus_hmm.venues.binance.market import Market
    from nautilus_hmm.venues.binance.parse import BinanceParser
    from nautilus_hmm.venues.binance.rest import BinanceRest
    from nautilus_hmm.venues.binance.streams import MarketStreams
    from nautilus_hmm.venues.ws import WsSettings

    clock = LiveClock()
    bus = Bus()
    parser = BinanceParser(Market.SPOT, "binance_spot")
    MarkBook().attach(bus)
    seen = [0]

    def count(t: Any) -> None:
        seen[0] += 1

    bus.subscribe(TradeTick, count, name="strategy:count")
    streams = MarketStreams(venue="binance_spot", market=Market.SPOT, ws_url="ws://127.0.0.1:9", parser=parser,
                            bus=bus, clock=clock,
                            rest=BinanceRest(Market.SPOT, "http://127.0.0.1:9", clock, venue="binance_spot"),
                            streams=[f"{s.lower()}@trade" for s in TEN], book_symbols=(), settings=WsSettings(),
                            trade_bar_interval_s=10)
    t_ms = 1_700_000_000_000
    frames = [orjson.dumps({"e": "trade", "E": t_ms + i // 10, "s": TEN[i % 10], "t": i, "p": "43250.12000000",
                            "q": "0.00100000", "T": t_ms + i // 10, "m": bool(i & 1), "M": True}).decode()
              for i in range(n)]
    on_frame = streams.on_frame
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        for f in frames:
            on_frame(f, clock.time_ns())
        best = min(best, time.process_time() - c0)
    assert seen[0] == n * repeats, seen
    return {"frames": n, "repeats": repeats, "cpu_us_per_frame_best": round(best * 1e6 / n, 3),
            "msgs_per_s_one_core": round(n / best)}


def rss_ten_symbols(seconds: float, tick_s: float) -> dict[str, Any]:
    """The ordinary daemon with ten symbols streaming: RSS over time."""
    work = Path(tempfile.mkdtemp(prefix="md-rss-"))
    emu = EmulatorProcess(work, symbols=TEN, tick_interval_s=tick_s, extra_args=["--unmetered"]).start()
    daemon = DaemonProcess(work, emu, symbols=TEN)
    samples: list[int] = []
    try:
        daemon.start()
        ready_s = daemon.wait_ready()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        after_ready = proc_status(pid)["VmRSS"]
        published0 = daemon.metric_sum("bus_messages_published_total")
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            samples.append(proc_status(pid)["VmRSS"])
        elapsed = time.monotonic() - t0
        published = daemon.metric_sum("bus_messages_published_total") - published0
        hwm = proc_status(pid)["VmHWM"]
        st = daemon.status()
    finally:
        daemon.terminate()
        daemon.close()
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    mb = lambda kib: round(kib / 1024, 1)  # noqa: E731
    return {"symbols": len(TEN), "seconds": round(elapsed, 1), "ready_s": round(ready_s, 2),
            "bus_msgs_per_s": round(published / elapsed), "rss_mb_after_ready": mb(after_ready),
            "rss_mb_end": mb(samples[-1]), "rss_mb_max_sampled": mb(max(samples)), "vm_hwm_mb": mb(hwm),
            "rss_growth_mb_first_to_last_sample": mb(samples[-1] - samples[0]),
            "books_invalid_at_end": st["risk"]["books_invalid"]}


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50000, help="trade frames in the measured burst")
    ap.add_argument("--warmup", type=int, default=5000)
    ap.add_argument("--floor-n", type=int, default=50000)
    ap.add_argument("--rss-seconds", type=float, default=30.0)
    ap.add_argument("--rss-tick-s", type=float, default=0.02, help="emulator tick period with ten symbols")
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--stream-rate", type=float, default=50_000.0,
                    help="the stream case's offered trade frames/s over the ten symbols (0: unpaced only)")
    ap.add_argument("--stream-seconds", type=float, default=5.0)
    ap.add_argument("--stream-bar-s", type=int, default=10, help="bar length with no kline: bars built from trades")
    ap.add_argument("--stream-journal", choices=("full", "normal"), default="full")
    ap.add_argument("--skip-stream", action="store_true")
    ap.add_argument("--stream-only", action="store_true", help="the floor and the stream case only")
    ap.add_argument("--profile", default="", metavar="FILE",
                    help="run the stream case's daemon under cProfile, write FILE, print its top frames")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", default="")
    ap.add_argument("--micro", action="store_true",
                    help="only the in-process hot-path microbenchmark (CPU µs per frame), no processes")
    ap.add_argument("--micro-n", type=int, default=100_000)
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    if args.micro:
        m = micro(args.micro_n, 7)
        print("micro (in-process hot path): " + " ".join(f"{k}={v}" for k, v in m.items()), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"micro": m}, indent=2))
        return 0
    floor = None if args.skip_floor else run_floor(args.floor_n)
    if floor:
        print(f"floor: {floor['line']}", flush=True)
        results["floor"] = floor
    if not args.stream_only:
        thr = throughput(args.n, args.warmup)
        if floor:
            thr["ratio_to_floor"] = round(thr["daemon_msgs_per_s"] / floor["stream_msgs_per_s"], 3)
        results["throughput"] = thr
        print("throughput: " + " ".join(f"{k}={v}" for k, v in thr.items()), flush=True)
    if not args.skip_stream:
        sc = stream_case(args.stream_rate, args.stream_seconds, TEN, args.stream_bar_s, args.stream_journal,
                         args.warmup, args.profile)
        for key in ("paced", "unpaced"):
            if key in sc and floor:
                sc[key]["ratio_to_floor"] = round(sc[key]["pipeline_msgs_per_s"] / floor["stream_msgs_per_s"], 3)
        results["stream"] = sc
        head = {k: v for k, v in sc.items() if k not in ("idle", "paced", "unpaced")}
        print("stream: " + " ".join(f"{k}={v}" for k, v in head.items()), flush=True)
        for key in ("idle", "paced", "unpaced"):
            if key in sc:
                print(f"  {key}: " + " ".join(f"{k}={v}" for k, v in sc[key].items()), flush=True)
        if args.profile:
            print_profile(str(Path(args.profile).resolve()), args.top)
    if not args.skip_rss and not args.stream_only:
        rss = rss_ten_symbols(args.rss_seconds, args.rss_tick_s)
        results["rss_ten_symbols"] = rss
        print("rss ten symbols: " + " ".join(f"{k}={v}" for k, v in rss.items()), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
