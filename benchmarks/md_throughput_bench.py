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

    .venv/bin/python benchmarks/md_throughput_bench.py [--n 50000] [--rss-seconds 30] [--skip-floor]
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

from tick_to_order_bench import bench_daemon, run_floor

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
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    floor = None if args.skip_floor else run_floor(args.floor_n)
    if floor:
        print(f"floor: {floor['line']}", flush=True)
        results["floor"] = floor
    thr = throughput(args.n, args.warmup)
    if floor:
        thr["ratio_to_floor"] = round(thr["daemon_msgs_per_s"] / floor["stream_msgs_per_s"], 3)
    results["throughput"] = thr
    print("throughput: " + " ".join(f"{k}={v}" for k, v in thr.items()), flush=True)
    if not args.skip_rss:
        rss = rss_ten_symbols(args.rss_seconds, args.rss_tick_s)
        results["rss_ten_symbols"] = rss
        print("rss ten symbols: " + " ".join(f"{k}={v}" for k, v in rss.items()), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
