"""Daemon-core figures: startup to READY, idle RSS, loop lag at idle, and /metrics
scrape latency + RSS with the admin server under a steady request rate.

Usage: python benchmarks/daemon_bench.py [--rate 200] [--seconds 10] [--config config.toml]
Prints one `key=value` line per figure. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


async def load(base: str, rate: float, seconds: float, path: str) -> list[float]:
    """Issue `rate` GETs per second for `seconds`; return latencies in seconds."""
    lat: list[float] = []
    interval = 1.0 / rate
    async with aiohttp.ClientSession() as s:

        async def one() -> None:
            t0 = time.perf_counter()
            async with s.get(base + path) as r:
                await r.read()
            lat.append(time.perf_counter() - t0)

        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config.toml"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nh-bench-"))
    port = free_port()
    cfg = tmp / "config.toml"
    text = Path(args.config).read_text()
    text = text.replace('state_dir = "state"', f'state_dir = "{tmp / "state"}"').replace("port = 8080", f"port = {port}")
    cfg.write_text(text)
    notify = tmp / "notify.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(notify))
    rx.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "NAUTILUS_HMM_ADMIN_TOKEN": "bench-token-123456"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "nautilus_hmm", "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not rx.recv(4096).startswith(b"READY=1"):
            pass
        startup_s = time.perf_counter() - t0
        time.sleep(3.0)  # let it idle: a few loop-lag samples, first trades on the sim venue
        idle_rss = rss_mb(proc.pid)
        base = f"http://127.0.0.1:{port}"
        lat = asyncio.run(load(base, args.rate, args.seconds, "/metrics"))
        loaded_rss = rss_mb(proc.pid)
        import urllib.request

        import orjson

        with urllib.request.urlopen(base + "/status") as r:
            status = orjson.loads(r.read())
        print(f"startup_to_ready_s={startup_s:.3f}")
        print(f"idle_rss_mb={idle_rss:.1f}")
        print(f"loop_lag_p99_ms={status['loop_lag_p99_s'] * 1000:.3f}  (sampled every 0.5 s, includes the load phase)")
        print(f"metrics_scrape_rate_per_s={args.rate:.0f} n={len(lat)}")
        print(f"metrics_scrape_p50_ms={pct(lat, 0.5) * 1000:.2f} p99_ms={pct(lat, 0.99) * 1000:.2f}")
        print(f"rss_under_load_mb={loaded_rss:.1f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        rx.close()


if __name__ == "__main__":
    main()
