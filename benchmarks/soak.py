"""Soak: the daemon for a long while with 10 symbols streaming and an order every few seconds.

The Binance emulator (its own process) streams trades of 10 symbols on its own timer; the
daemon (another process: `tick_to_order_bench.py daemon --strategy pulse`, i.e. the
production node with a benchmark strategy) flips its BTCUSDT target between 0 and one step
every `--order-every-s`, so one MARKET order goes through the whole path (strategy → router
→ engine → risk → journal → venue) every few seconds and the position stays bounded.

Every `--window-min` minutes it prints the daemon's RSS, the tick-to-order p99 of the orders
of that window measured inside the daemon (trade handed to the strategy → order on the
wire: perf_counter_ns), the loop lag p99 (a 1 ms timer) and the trades received. At the end:
RSS at start and end and the growth in %.

    .venv/bin/python benchmarks/soak.py [--minutes 60] [--window-min 10] [--order-every-s 3]
        [--journal full|normal] [--order-entry rest|ws_api] [--tick-interval-s 0.002]
        [--tracemalloc FILE] [--small-bounds N]

`--tracemalloc FILE` (diagnosis of RSS growth, slows the daemon): after the start RSS
reading the soak signals the daemon (SIGUSR1: `tracemalloc` starts, 10 frames), and before
stopping it (SIGUSR2) the daemon writes to FILE the allocations made since and still
alive, by traceback, biggest first.

`--small-bounds N` (diagnosis, with `--tracemalloc`): every per-order memory bound of the
daemon (closed orders kept, the fill window, the order-id caches, the router's windows) is
set to N, so a short traced run passes them all: what still grows per order is what is left.

The goal the issue sets: RSS under 120 MB, growth under 1 %, p99 flat from window to window.
Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH = Path(__file__).resolve().parent / "tick_to_order_bench.py"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "LTCUSDT", "DOTUSDT",
           "LINKUSDT")


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def quantile(values: list[float], q: float) -> float:
    """sorted[int(q * (n - 1))]; nan when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[int(q * (len(s) - 1))]


STAGES_KEPT = 2_000  # the probe's per-order stage rows kept (the soak reads them every 5 s)


class BoundedStages(dict):  # type: ignore[type-arg]
    """The probe's per-order stage rows, the newest `STAGES_KEPT` only: the benchmark's probe
    keeps every order's row (and /status sends them all), which would add ~0.3 KB per order
    to the very RSS the soak measures."""

    def setdefault(self, key: Any, default: Any = None) -> Any:
        row = super().setdefault(key, default)
        while len(self) > STAGES_KEPT:
            del self[next(iter(self))]
        return row


def shrink_bounds(n: int) -> None:
    """Every per-order / per-fill memory bound of the daemon set to `n` (diagnosis: a short
    traced run passes the bounds, so what still grows per order after them is what is left)."""
    from nautilus_hmm.control import router
    from nautilus_hmm.execution import closed, fills
    from nautilus_hmm.venues.binance import adapter as binance
    from nautilus_hmm.venues.bybit import adapter as bybit

    router.SEEN_TRADES_KEPT = router.ORDER_IDS_KEPT = n
    binance.ORDER_ID_CACHE_KEPT = bybit.ORDER_ID_CACHE_KEPT = n
    closed_init, intake_init = closed.ClosedOrders.__init__, fills.FillIntake.__init__

    def closed_small(self: Any, orders: Any, kept: int | None) -> None:
        closed_init(self, orders, None if kept is None else min(kept, n))

    def intake_small(self: Any, journal: Any, durable: bool, counts: Any, recent_max: int = n) -> None:
        intake_init(self, journal, durable, counts, min(recent_max, n))

    closed.ClosedOrders.__init__ = closed_small  # type: ignore[method-assign]
    fills.FillIntake.__init__ = intake_small  # type: ignore[method-assign]


def soak_daemon(trace_out: str, argv: list[str]) -> int:
    """`tick_to_order_bench.py daemon ARGV` with the probe's stage rows bounded; with
    `trace_out`, under tracemalloc: SIGUSR1 = baseline, SIGUSR2 = write the growth.
    `--small-bounds N` before ARGV: `shrink_bounds(N)`."""
    import signal
    import tracemalloc

    if argv[:1] == ["--small-bounds"]:
        shrink_bounds(int(argv[1]))
        argv = argv[2:]

    sys.path.insert(0, str(BENCH.parent))
    import tick_to_order_bench

    base_probe = tick_to_order_bench.Probe

    class SoakProbe(base_probe):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.stages = BoundedStages()

    tick_to_order_bench.Probe = SoakProbe  # type: ignore[misc]
    if not trace_out:
        return tick_to_order_bench.main(argv)

    snaps: dict[str, Any] = {}

    def baseline(*_: Any) -> None:  # tracing from here on: start-up under tracemalloc is too slow
        tracemalloc.start(10)
        snaps["base"] = tracemalloc.take_snapshot()

    def dump(*_: Any) -> None:
        now = tracemalloc.take_snapshot()
        base = snaps.get("base") or now
        lines = [f"traced now {tracemalloc.get_traced_memory()[0] / 1e6:.1f} MB; growth since baseline, by line:"]
        for st in now.compare_to(base, "lineno")[:25]:
            lines.append(f"{st.size_diff / 1e3:+.1f} kB {st.count_diff:+d} blocks (now {st.size / 1e3:.1f} kB) "
                         f"{st.traceback.format()[0].strip()}")
        lines.append("")
        lines.append("growth since baseline, by traceback:")
        for st in now.compare_to(base, "traceback")[:25]:
            lines.append(f"{st.size_diff / 1e3:+.1f} kB {st.count_diff:+d} blocks (now {st.size / 1e3:.1f} kB)")
            lines.extend(f"    {line}" for line in st.traceback.format()[-12:])
        tmp = Path(trace_out + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(trace_out)  # whole or absent: the soak waits for it to exist

    signal.signal(signal.SIGUSR1, baseline)
    signal.signal(signal.SIGUSR2, dump)
    return tick_to_order_bench.main(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print one line per window and a summary."""
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["soak-daemon"]:  # the daemon process: ["soak-daemon", TRACE_FILE or "", *bench argv]
        return soak_daemon(argv[1], argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--window-min", type=float, default=10.0)
    ap.add_argument("--order-every-s", type=float, default=3.0)
    ap.add_argument("--journal", choices=("full", "normal"), default="full")
    ap.add_argument("--order-entry", choices=("rest", "ws_api"), default="rest")
    ap.add_argument("--tick-interval-s", type=float, default=0.002, help="the emulator's tick period per symbol")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (journal, logs)")
    ap.add_argument("--tracemalloc", default="", metavar="FILE",
                    help="run the daemon under tracemalloc; write the allocations that grew to FILE")
    ap.add_argument("--small-bounds", type=int, default=0, metavar="N",
                    help="diagnosis: the daemon's per-order memory bounds (closed orders kept, fill window, "
                         "order-id caches, router windows) set to N, so a short traced run passes them")
    args = ap.parse_args(argv)

    from tests.system.binance_harness import DaemonProcess, EmulatorProcess, wait_for

    entry = args.order_entry

    class SoakDaemon(DaemonProcess):
        def write_config(self, initial_state: str = "ACTIVE") -> Path:
            path = super().write_config(initial_state)
            if entry != "rest":
                text = path.read_text().replace(
                    "[venues.binance_spot]\n", f'[venues.binance_spot]\norder_entry = "{entry}"\n'
                                               f'ws_api_url = "{self.emulator.ws_url}/ws-api/v3"\n', 1)
                path.write_text(text)
            return path

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    emu = EmulatorProcess(work, symbols=SYMBOLS, tick_interval_s=args.tick_interval_s,
                          extra_args=["--unmetered"]).start()
    traced = (str(Path(__file__).resolve()), "soak-daemon",
              str(Path(args.tracemalloc).resolve()) if args.tracemalloc else "",
              *(("--small-bounds", str(args.small_bounds)) if args.small_bounds > 0 else ()))
    daemon = SoakDaemon(work, emu, symbols=SYMBOLS, command=(*traced, "daemon", "--strategy", "pulse",
                                                             "--step", "0.0002",
                                                             "--order-every-s", str(args.order_every_s)),
                        extra_toml=f'\n[journal]\nsynchronous = "{args.journal}"\n')
    print(f"soak: {args.minutes} min, windows of {args.window_min} min, an order every {args.order_every_s} s, "
          f"{len(SYMBOLS)} symbols every {args.tick_interval_s} s, journal={args.journal}, order_entry={entry}, "
          f"dir {work}", flush=True)
    try:
        daemon.start()
        daemon.wait_ready()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        wait_for(lambda: not daemon.status()["risk"]["books_invalid"], "the books to sync", poll_s=0.1)
        rss_start = rss_mb(pid)
        print(f"rss_start_mb={rss_start:.1f}", flush=True)
        if args.tracemalloc:
            os.kill(pid, signal.SIGUSR1)
        t_end = time.monotonic() + args.minutes * 60
        window_s = args.window_min * 60
        seen_orders: set[str] = set()
        lag_seen = 0
        trades_seen = 0
        window = 0
        rows: list[dict[str, Any]] = []
        while time.monotonic() < t_end:
            t_window_end = min(t_end, time.monotonic() + window_s)
            lat_us: list[float] = []
            lag_us: list[float] = []
            while time.monotonic() < t_window_end:
                time.sleep(min(5.0, max(0.0, t_window_end - time.monotonic())))
                probe = daemon.status()["strategy"]
                for cid, st in probe["stages"].items():
                    if cid not in seen_orders and all(st[:5]):
                        seen_orders.add(cid)
                        lat_us.append((st[4] - st[0]) / 1000)
                new = probe["lag_total"] - lag_seen
                lag_seen = probe["lag_total"]
                if new > 0:
                    lag_us.extend(probe["lag_us"][-new:])
            trades = probe["trades"] - trades_seen
            trades_seen = probe["trades"]
            window += 1
            row = {"window": window, "rss_mb": round(rss_mb(pid), 1), "orders": len(lat_us),
                   "t2o_p50_us": round(quantile(lat_us, 0.5), 1), "t2o_p99_us": round(quantile(lat_us, 0.99), 1),
                   "lag_p99_us": round(quantile(lag_us, 0.99), 1), "trades": trades}
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        rss_end = rss_mb(pid)
        state = emu.state()
        if args.tracemalloc:
            out = Path(args.tracemalloc)
            out.unlink(missing_ok=True)
            os.kill(pid, signal.SIGUSR2)
            wait_for(out.exists, "the tracemalloc report", timeout_s=120, poll_s=0.5)
            print(f"tracemalloc report: {out}", flush=True)
        print(f"rss_start_mb={rss_start:.1f} rss_end_mb={rss_end:.1f} growth_pct={100 * (rss_end / rss_start - 1):.2f} "
              f"orders_at_venue={len(state['orders'])} windows={len(rows)}", flush=True)
    finally:
        rc = daemon.terminate()
        daemon.close()
        emu.stop()
        print(f"daemon exit {rc}", flush=True)
        if args.keep:
            print(f"kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
