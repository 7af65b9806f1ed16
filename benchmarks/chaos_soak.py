"""Chaos soak: the daemon trades against the Binance emulator and is SIGKILLed N times (default 500).

The long version of `tests/system/test_chaos_binance.py` (same harness: two processes,
an order storm, kills at random moments, every tenth with an executed order whose answer
is withheld), optionally with venue faults injected while trading (`--faults`: dropped
and withheld order answers, 5xx after execution, websocket drops, depth gaps, duplicated
and reordered frames, listenKey expiry, refused orders). Every `--audit-every` kills the
daemon is started HALTED, must reconcile cleanly and stop on SIGTERM, and its journal is
audited against the emulator (no id sent twice, no fill lost or doubled, balances equal,
final statuses equal, and the long/flat position never outside 0..quantity); the soak
then goes on.

    .venv/bin/python benchmarks/chaos_soak.py [--kills 500] [--seed 1] [--audit-every 100] [--faults]
        [--metered] [--market spot|usdm] [--workdir DIR]
    .venv/bin/python benchmarks/chaos_soak.py --venue bybit [--market spot|linear] [--order-entry rest|ws_trade] ...
    .venv/bin/python benchmarks/chaos_soak.py --venue ibkr [--faults] ...

`--venue bybit` soaks against the Bybit emulator (tests/system/bybit_harness.py: 1 m klines
with market time 1200x, orderLinkIds, executions, the unified wallet); its `--faults` are
Bybit's (withheld and dropped order answers, a 502 after execution, 10006 and 110007
refusals, 10002 from a skewed server clock, websocket drops, skipped book deltas, malformed
and muted public frames).

`--venue ibkr` soaks against the IBKR emulator (tests/system/ibkr_harness.py: 5 s bars of AAPL
and MSFT, market time 50x, always open; the audit adds IB order ids accepted twice or reused);
its `--faults` are a withheld orderStatus, an order executed and its connection cut before any
answer, and 1101 (market data subscriptions dropped).

Prints one progress line per audit and a JSON summary; exit status 1 if any audit found
a problem or a start did not reconcile.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.system.binance_harness import (
    DaemonProcess,
    EmulatorProcess,
    audit,
    chaos_cycles,
    final_clean_run,
    read_journal,
    recovery_totals,
)
from tests.system.bybit_harness import HELD_FAULT as BYBIT_HELD_FAULT
from tests.system.bybit_harness import ORDER_PATH as BYBIT_ORDER_PATH
from tests.system.bybit_harness import BybitDaemonProcess, BybitEmulatorProcess, binance_shaped
from tests.system.ibkr_harness import FAULTS as IBKR_FAULTS
from tests.system.ibkr_harness import HELD_FAULT as IBKR_HELD_FAULT
from tests.system.ibkr_harness import ORDER_PATH as IBKR_ORDER_PATH
from tests.system.ibkr_harness import IbkrDaemonProcess, IbkrEmulatorProcess, audit_ibkr


def faults(order_path: str) -> tuple[dict[str, Any], ...]:
    """The venue faults injected with --faults (the order endpoint of the market)."""
    return (
        {"drop_order_responses": 1},
        {"timeout_order_responses": 1},
        {"errors": [{"path": order_path, "method": "POST", "status": 503, "code": -1007, "execute": True}]},
        {"errors": [{"path": order_path, "method": "POST", "status": 400, "code": -2010}]},
        *COMMON_FAULTS,
    )


def bybit_faults() -> tuple[dict[str, Any], ...]:
    """The Bybit emulator's faults injected with --venue bybit --faults."""
    create = BYBIT_ORDER_PATH
    return (
        {"drop_order_responses": 1},
        {"withhold_order_responses": 1},
        {"errors": [{"path": create, "method": "POST", "http_status": 502, "ret_code": 10016, "execute": True}]},
        {"errors": [{"path": create, "method": "POST", "ret_code": 110007}]},
        {"rate_limit": {"path": create, "count": 1, "reset_ms": 500}},
        {"time_skew_ms": 30000},
        {"close_websockets": "all"},
        {"close_websockets": "private"},
        {"skip_book_deltas": 1},
        {"malformed_frames": 3},
    )


COMMON_FAULTS: tuple[dict[str, Any], ...] = (
    {"close_websockets": "all"},
    {"close_websockets": "user"},
    {"skip_depth_updates": 1},
    {"duplicate_stream_messages": 5},
    {"reorder_stream_messages": 2},
    {"expire_listen_keys": True},
)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when every audit passed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--audit-every", type=int, default=100, help="clean start + audit every N kills (0: at the end)")
    ap.add_argument("--faults", action="store_true", help="inject venue faults in 30%% of the trading cycles")
    ap.add_argument("--metered", action="store_true", help="Binance's request weights (the default is unmetered)")
    ap.add_argument("--symbols", nargs="+", default=None,
                    help="default BTCUSDT ETHUSDT (binance, bybit), AAPL MSFT (ibkr: stocks the emulator lists)")
    ap.add_argument("--venue", choices=("binance", "bybit", "ibkr"), default="binance",
                    help="which emulator and adapter")
    ap.add_argument("--market", choices=("spot", "usdm", "linear"), default="spot",
                    help="the emulator's market: spot | usdm (binance), spot | linear (bybit), spot (ibkr: stocks)")
    ap.add_argument("--order-entry", choices=("rest", "ws_trade"), default="rest", help="bybit: order entry")
    ap.add_argument("--workdir", default="", help="keep logs, journal and state here (default: a temp dir, removed)")
    args = ap.parse_args(argv)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="chaos-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    bybit = args.venue == "bybit"
    ibkr = args.venue == "ibkr"
    if args.market not in {"binance": ("spot", "usdm"), "bybit": ("spot", "linear"), "ibkr": ("spot",)}[args.venue]:
        ap.error(f"--market {args.market} is not a {args.venue} market")
    if args.symbols is None:
        args.symbols = ["AAPL", "MSFT"] if ibkr else ["BTCUSDT", "ETHUSDT"]
    if ibkr:
        emu: Any = IbkrEmulatorProcess(work, seed=args.seed % 10_000).start()
        daemon: Any = IbkrDaemonProcess(work, emu, venue="ibkr", symbols=tuple(args.symbols), quantity="5")
        order_path, held_fault = IBKR_ORDER_PATH, IBKR_HELD_FAULT
        fault_choices = IBKR_FAULTS
    elif bybit:
        balances = ("USDT=100000",) if args.market == "linear" else ()
        emu = BybitEmulatorProcess(work, symbols=tuple(args.symbols), tick_interval_s=0.005,
                                        market_time_scale=1200.0, balances=balances,
                                        extra_args=() if args.metered else ("--unmetered",)).start()
        daemon = BybitDaemonProcess(work, emu, symbols=tuple(args.symbols), venue=f"bybit_{args.market}",
                                         order_entry=args.order_entry)
        order_path, held_fault = BYBIT_ORDER_PATH, BYBIT_HELD_FAULT
        fault_choices = bybit_faults()
    else:
        emu = EmulatorProcess(work, symbols=args.symbols, tick_interval_s=0.005, market_time_scale=20,
                              extra_args=["--market", args.market, *([] if args.metered else ["--unmetered"])]).start()
        daemon = DaemonProcess(work, emu, symbols=tuple(args.symbols),
                               venue="binance_spot" if args.market == "spot" else "binance_usdm")
        order_path = "/api/v3/order" if args.market == "spot" else "/fapi/v1/order"
        held_fault = "timeout_order_responses"
        fault_choices = faults(order_path)
    t_start = time.monotonic()
    audits: list[dict[str, Any]] = []
    totals: dict[str, Any] = {"kills": 0, "kills_before_ready": 0, "kills_with_held_order": 0, "faults": {},
                              "halted_after_start": [], "early_exits": []}
    ready_s: list[float] = []
    failed = False
    try:
        step = args.audit_every or args.kills
        done = 0
        while done < args.kills:
            n = min(step, args.kills - done)
            # Bybit: the first bar closes ~0.4 s after READY (1 m klines at 1200x), so trade longer.
            stats = chaos_cycles(daemon, rng, n, trade_s=(0.3, 1.5) if bybit or ibkr else (0.05, 1.0),
                                 order_path=order_path, held_fault=held_fault,
                                 fault_choices=fault_choices if args.faults else (), fault_probability=0.3)
            done += n
            for k in ("kills", "kills_before_ready", "kills_with_held_order"):
                totals[k] += getattr(stats, k)
            for k, v in stats.faults.items():
                totals["faults"][k] = totals["faults"].get(k, 0) + v
            totals["halted_after_start"] += stats.halted_after_start
            totals["early_exits"] += stats.early_exits
            ready_s += stats.ready_s
            final = final_clean_run(daemon)
            # sma_cross is long/flat: a position outside 0..quantity is an order beyond the target.
            state = emu.state()
            if ibkr:
                result = audit_ibkr(read_journal(daemon.journal_path), state, daemon.quantity)
            else:
                result = audit(read_journal(daemon.journal_path), binance_shaped(state, args.market) if bybit else state,
                               position_range=(Decimal(0), Decimal(daemon.quantity)))
            ok = final["reconciliation"][daemon.venue]["ok"] and not result.problems
            failed |= not ok or bool(stats.halted_after_start) or bool(stats.early_exits)
            audits.append({"after_kills": done, "ok": ok, "problems": result.problems[:20], **result.summary})
            print(f"[{time.monotonic() - t_start:7.1f} s] kills={done} orders={result.summary['venue_orders']} "
                  f"fills={result.summary['venue_fills']} reconciled={final['reconciliation'][daemon.venue]['ok']} "
                  f"problems={len(result.problems)} halted_starts={len(totals['halted_after_start'])}", flush=True)
            for p in result.problems[:10]:
                print(f"    {p}", flush=True)
    finally:
        recovery = recovery_totals(daemon) if daemon.log_path.exists() else {}
        daemon.close()
        emu.stop()
    ready_s.sort()
    summary = {
        "elapsed_s": round(time.monotonic() - t_start, 1), "venue": daemon.venue, "seed": args.seed,
        "faults_enabled": args.faults,
        **{k: v for k, v in totals.items() if k != "halted_after_start"},
        "halted_after_start": totals["halted_after_start"][:20],
        "ready_s_p50": round(ready_s[len(ready_s) // 2], 3) if ready_s else None,
        "ready_s_p99": round(ready_s[int(0.99 * (len(ready_s) - 1))], 3) if ready_s else None,
        "recovery": recovery, "last_audit": audits[-1] if audits else None,
        "audits_failed": [a["after_kills"] for a in audits if not a["ok"]],
        "workdir": str(work) if args.workdir else None,
    }
    print(json.dumps(summary, indent=2))
    if not args.workdir and not failed:
        shutil.rmtree(work, ignore_errors=True)
    elif not args.workdir:
        print(f"state, journal and logs kept in {work}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
