"""Operator-surface benchmark (issue 11): dashboard latency under live streams, the daemon's
memory with the dashboard open, and the notifications figure.

1. `/` and `/positions` latency (and `/health`, the floor), p50/p99/max in ms over
   `--requests` sequential requests each, first with no stream open, then with `--sse-clients` (20) clients on
   `/events/public` (the dashboard's stream) reading every event.
2. The daemon's RSS (VmRSS of its process) while the dashboard is open for `--minutes`
   (default 10; `--quick` = 1): a real headless chromium on `/` when Debian's chromium and
   chromedriver are installed (its JS heap is reported too), else a client doing what the
   page does (the public stream, /status + /positions every 5 s). Sampled every 10 s.
3. Loop lag p99 while 1,000 notifications are coalesced to a 1 s receiver:
   benchmarks/notify_bench.py, run as a child process, its JSON included (`--skip-notify`).

The daemon is a real process (`nautilus-hmm run`) paper trading on the simulated venue
(fast synthetic ticks, an SMA strategy trading every bar or two), on a free loopback port.

    .venv/bin/python benchmarks/operator_bench.py [--quick] [--minutes 10] [--sse-clients 20]
        [--requests 500] [--skip-notify] [--no-browser]

Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from tests.system.processes import free_port, http_json, start_daemon, wait_for

ROOT = Path(__file__).resolve().parent.parent

TOKEN = "operator-bench-token-0123456789"
PATHS = ("/", "/positions", "/health")  # /health: the floor (the loop and HTTP, no work)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CONFIG = """
[node]
state_dir = "{state}"
[log]
level = "warning"
[http]
port = {port}
[journal]
snapshot_interval_s = 5
[venues.sim]
symbols = ["BTCUSDT", "ETHUSDT"]
[venues.sim.market]
tick_interval_s = 0.05
bar_interval_s = 1
initial_prices = {{ BTCUSDT = 60000.0, ETHUSDT = 3000.0 }}
[strategy]
kind = "sma_cross"
bar_interval_s = 1
[strategy.sma_cross]
fast = 1
slow = 2
quantity = "0.01"
[risk]
initial_state = "ACTIVE"
stale_data_s = 5.0
"""


def quantiles_ms(samples: list[float]) -> dict[str, float]:
    """p50, p99 and max of latencies (s), in ms."""
    ordered = sorted(samples)
    if not ordered:
        return {}
    p99 = ordered[min(len(ordered) - 1, int(0.99 * (len(ordered) - 1) + 0.5))]
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 3), "p99_ms": round(p99 * 1e3, 3),
            "max_ms": round(ordered[-1] * 1e3, 3), "n": len(ordered)}


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def latencies(s: aiohttp.ClientSession, url: str, n: int) -> dict[str, float]:
    """n sequential GETs of url (body read); their latency quantiles."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with s.get(url) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"{url}: HTTP {r.status}")
        out.append(time.perf_counter() - t0)
    return quantiles_ms(out)


async def sse_reader(s: aiohttp.ClientSession, url: str, counts: list[int], i: int, ready: asyncio.Event,
                     opened: list[int]) -> None:
    """Read an event stream until cancelled, counting events."""
    async with s.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
        opened[0] += 1
        if opened[0] == len(counts):
            ready.set()
        async for line in r.content:
            if line.startswith(b"event: "):
                counts[i] += 1


async def latency_part(base: str, clients: int, n: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s:
        for path in PATHS:  # warm up
            await latencies(s, base + path, 20)
        idle = {path: await latencies(s, base + path, n) for path in PATHS}
        counts = [0] * clients
        ready, opened = asyncio.Event(), [0]
        async with aiohttp.ClientSession() as streams:
            tasks = [asyncio.create_task(sse_reader(streams, base + "/events/public", counts, i, ready, opened))
                     for i in range(clients)]
            await asyncio.wait_for(ready.wait(), 30)
            t0 = time.perf_counter()
            loaded = {path: await latencies(s, base + path, n) for path in PATHS}
            elapsed = time.perf_counter() - t0
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"requests_each": n, "no_streams": idle, f"with_{clients}_sse_clients": loaded,
            "events_per_client": {"min": min(counts), "max": max(counts),
                                  "per_s": round(statistics.mean(counts) / elapsed, 1)}}


def browser_available() -> bool:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return False
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return True


def open_browser(base: str, profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,2000", f"--user-data-dir={profile}", "--enable-precise-memory-info"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.get(base + "/")
    WebDriverWait(driver, 30).until(lambda d: d.find_element("tag name", "body").get_attribute("data-live") == "1")
    return driver


def js_heap_mb(driver: Any) -> float | None:
    v = driver.execute_script("return performance.memory ? performance.memory.usedJSHeapSize : null")
    return None if v is None else round(v / 2**20, 2)


async def emulated_page(base: str, stop: asyncio.Event) -> None:
    """What the page does when no browser is available: the public stream plus its 5 s refresh."""
    async with aiohttp.ClientSession() as s:
        async def stream() -> None:
            async with s.get(base + "/events/public", timeout=aiohttp.ClientTimeout(total=None)) as r:
                async for _ in r.content:
                    pass
        t = asyncio.create_task(stream())
        try:
            while not stop.is_set():
                for path in ("/status", "/positions"):
                    async with s.get(base + path) as r:
                        await r.read()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5.0)
        finally:
            t.cancel()


async def rss_part(base: str, pid: int, minutes: float, use_browser: bool, tmp: Path) -> dict[str, Any]:
    samples: list[tuple[float, float]] = []
    heap: list[float | None] = []
    driver = open_browser(base, tmp / "chromium-profile") if use_browser else None
    stop = asyncio.Event()
    page = None if driver is not None else asyncio.create_task(emulated_page(base, stop))
    try:
        t0 = time.monotonic()
        end = t0 + minutes * 60
        while True:
            now = time.monotonic()
            samples.append((now - t0, rss_mb(pid)))
            if driver is not None:
                heap.append(js_heap_mb(driver))
            if now >= end:
                break
            await asyncio.sleep(min(10.0, max(0.0, end - now)))
        fills = len(http_json(base + "/fills?limit=10000")[1]["fills"])
    finally:
        stop.set()
        if page is not None:
            await asyncio.gather(page, return_exceptions=True)
        if driver is not None:
            driver.quit()
    first, last = samples[0][1], samples[-1][1]
    half = [r for t, r in samples if t >= samples[-1][0] / 2] or [last]
    return {
        "dashboard": "headless chromium" if driver is not None else "emulated page (no chromium)",
        "minutes": minutes,
        "daemon_rss_mb": {"start": round(first, 1), "end": round(last, 1),
                          "max": round(max(r for _, r in samples), 1),
                          "second_half_growth": round(half[-1] - half[0], 1), "samples": len(samples)},
        **({"page_js_heap_mb": {"start": heap[0], "end": heap[-1]}} if heap else {}),
        "fills_during_run": fills,
    }


def notify_part() -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "notify_bench.py")], capture_output=True,
                         text=True, timeout=600, cwd=ROOT)
    if out.returncode != 0:
        return {"error": f"notify_bench.py exited {out.returncode}", "stderr": out.stderr[-2000:]}
    start = out.stdout.find("\n{")  # a log line may come first
    try:
        return json.loads(out.stdout[start + 1:] if start >= 0 else out.stdout)
    except json.JSONDecodeError:
        return {"error": "notify_bench.py printed no JSON", "stdout": out.stdout[-2000:]}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    minutes = 1.0 if args.quick else args.minutes
    tmp = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp / "config.toml"
    cfg.write_text(CONFIG.format(state=tmp / "state", port=port))
    proc = start_daemon(cfg, tmp / "daemon.log", TOKEN)
    result: dict[str, Any] = {}
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "daemon ready")
        wait_for(lambda: len(http_json(base + "/fills")[1]["fills"]) >= 2, "the daemon trading", timeout_s=60)
        result["latency"] = await latency_part(base, args.sse_clients, args.requests)
        use_browser = not args.no_browser and browser_available()
        result["rss"] = await rss_part(base, proc.pid, minutes, use_browser, tmp)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not os.environ.get("OPERATOR_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.skip_notify:
        result["notifications"] = notify_part()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the dashboard stays open (10)")
    parser.add_argument("--quick", action="store_true", help="one minute instead of --minutes")
    parser.add_argument("--sse-clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=500, help="sequential requests per path and phase")
    parser.add_argument("--skip-notify", action="store_true", help="leave out notify_bench.py")
    parser.add_argument("--no-browser", action="store_true", help="emulate the page even if chromium is there")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
