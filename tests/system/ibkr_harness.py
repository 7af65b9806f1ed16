"""The daemon and the IBKR emulator as two real processes, and the money audit between them.

The IBKR twin of `tests/system/bybit_harness.py`, sharing `tests/system/binance_harness.py`'s
machinery: the daemon process (`DaemonProcess`, READY over `$NOTIFY_SOCKET`), the SIGKILL
cycles (`chaos_cycles`), the final HALTED start, the journal reader and the audit itself.
What differs:

* `IbkrEmulatorProcess` runs `nautilus-hmm emulator ibkr` (API and control ports read from
  its output) with `--always-open` (sessions never depend on the wall clock's hour or
  weekday) and `--market-time-scale` (5-second real-time bars close every 5/scale s of wall
  time). Its `faults()` speaks the chaos cycles' Binance-shaped requests: `reset` clears the
  order faults, `delay_ms` becomes the emulator's `order_delay_ms` (every placeOrder held
  that long before it is processed).
* `IbkrDaemonProcess` writes `[venues.ibkr]` (no credentials: IB Gateway holds the login).
* `binance_shaped(state)` turns the emulator's `/_emulator/state` into the shape `audit`
  reads: orderRefs as client order ids, executions (execId = trade id) as fills with their
  USD commissions, IB's statuses as Binance's wire names, and the account as balances: the
  USD cash plus every stock position as an asset of its own (a stock fill moves the cash
  by price x quantity and the commission, as a spot fill moves the quote asset).
* `order_id_problems(state)`: what the audit cannot see in orderRefs alone: an IB order id
  accepted twice as a new order, or a placeOrder the emulator took as a modification of an
  open order (an id reused while its order was live).

Error 103 (duplicate order id) refuses an order before IB processes it: the same orderRef
may then legitimately arrive again (the engine's retry). Anything else received twice is a
duplicate.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.system import binance_harness as bh
from tests.system.binance_harness import (
    ChaosRun,
    DaemonProcess,
    EmulatorProcess,
    audit,
    chaos_cycles,
    final_clean_run,
    read_journal,
    recovery_totals,
)
from tests.system.forkserver import ForkServer
from tests.system.processes import wait_for

QUOTE = "USD"
ORDER_PATH = "placeOrder"  # chaos_cycles' name for the delayed endpoint (see IbkrEmulatorProcess.faults)
HELD_FAULT = "drop_next_orders"  # the order is accepted and executed, then the connection is cut unanswered
# Refused before IB processed the order: the same orderRef may arrive again (its retry).
REFUSED_BEFORE_PROCESSING = {103}
# IB's order status → Binance's wire name (audit maps those onto the journal's statuses).
WIRE_STATUS = {"PendingSubmit": "NEW", "ApiPending": "NEW", "PreSubmitted": "NEW", "Submitted": "NEW",
               "PendingCancel": "PENDING_CANCEL", "Cancelled": "CANCELED", "ApiCancelled": "CANCELED",
               "Filled": "FILLED", "Inactive": "REJECTED"}
_LISTENING = re.compile(rb"ibkr emulator listening: api [\d.]+:(\d+) account \S+ control (http://[\d.]+:\d+)/")


class IbkrEmulatorProcess(EmulatorProcess):
    """`nautilus-hmm emulator ibkr` as a child process (API port `api_port`, control routes at `url`)."""

    def __init__(self, workdir: Path, *, seed: int = 7, tick_interval_s: float = 0.05,
                 market_time_scale: float = 20.0, always_open: bool = True, extra_args: tuple[str, ...] = ()) -> None:
        super().__init__(workdir, symbols=(), tick_interval_s=tick_interval_s, market_time_scale=market_time_scale,
                         seed=seed)
        self.args = ["--port", "0", "--control-port", "0", "--seed", str(seed), "--tick-interval",
                     str(tick_interval_s), "--market-time-scale", str(market_time_scale),
                     *(["--always-open"] if always_open else []), *extra_args]
        self.api_port = 0

    def start(self) -> IbkrEmulatorProcess:
        """Start it and wait until it prints its ports."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "nautilus_hmm", "emulator", "ibkr", *self.args],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

        def listening() -> re.Match[bytes] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"emulator exited {self.proc.returncode}: {self.log_tail()}")
            return _LISTENING.search(self.log_path.read_bytes())

        m = wait_for(listening, "the IBKR emulator to listen")
        self.api_port = int(m.group(1))
        self.url = m.group(2).decode()
        return self

    def faults(self, **doc: Any) -> dict[str, Any]:
        """POST /_emulator/faults (GET when no fault is given), taking chaos_cycles' keys too:
        `reset=True` clears the order faults, `delay_ms={"placeOrder": ms}` delays every placeOrder."""
        if doc.pop("reset", False):
            doc = {"drop_next_orders": 0, "withhold_order_status": 0, "order_delay_ms": 0, **doc}
        delays = doc.pop("delay_ms", None)
        if delays is not None:
            unknown = set(delays) - {ORDER_PATH}
            assert not unknown, f"the IBKR emulator delays only {ORDER_PATH}, not {unknown}"
            doc["order_delay_ms"] = int(delays.get(ORDER_PATH, 0))
        return super().faults(**doc)

    def tick(self, n: int = 1) -> None:
        """POST /_emulator/step (market steps now)."""
        self.post("/_emulator/step", {"n": n})


CONFIG = """
[node]
state_dir = "{state}"
[log]
level = "info"
format = "json"
[http]
port = {port}
[venues.sim]
enabled = false
[venues.ibkr]
enabled = true
port = {api_port}
client_id = 1
symbols = {symbols}
request_timeout_s = {request_timeout_s}
connect_timeout_s = 5.0
reconnect_initial_s = 0.2
reconnect_max_s = 1.0
[strategy]
kind = "sma_cross"
instruments = {instruments}
bar_interval_s = 5
[strategy.sma_cross]
fast = 1
slow = 2
quantity = "{quantity}"
[execution]
order_timeout_s = 1.0
[risk]
initial_state = "{initial_state}"
orders_per_s = 1000.0
order_burst = 1000
stale_data_s = 5.0
{extra}
"""


@dataclass
class IbkrDaemonProcess(DaemonProcess):
    """`nautilus-hmm run` against the IBKR emulator (venue `ibkr`)."""

    def write_config(self, initial_state: str = "ACTIVE") -> Path:
        """The config file for the next start."""
        emu = self.emulator
        assert isinstance(emu, IbkrEmulatorProcess)
        path = self.workdir / "config.toml"
        path.write_text(CONFIG.format(
            state=self.state_dir, port=self.port, api_port=emu.api_port, symbols=json.dumps(list(self.symbols)),
            instruments=json.dumps([f"{self.venue}:{s}" for s in self.symbols]), quantity=self.quantity,
            request_timeout_s=self.request_timeout_s, initial_state=initial_state, extra=self.extra_toml))
        return path

    def credential_env(self) -> dict[str, str]:
        """None: IB Gateway holds the login."""
        return {}


def binance_shaped(state: dict[str, Any]) -> dict[str, Any]:
    """The IBKR emulator's state in the shape `binance_harness.audit` reads (module docstring)."""
    requests = []
    for r in state["new_order_requests"]:
        code = r.get("code")
        # audit() skips requests whose code is in Binance's refused set: map 103 onto one of them.
        requests.append({"client_order_id": r.get("client_order_id") or "", "transport": "tws_api",
                         "code": next(iter(bh.REFUSED_BEFORE_PROCESSING)) if code in REFUSED_BEFORE_PROCESSING
                         else code})
    ours = {o["client_order_id"] for o in state["orders"]}
    orders = [{"client_order_id": o["client_order_id"], "filled_qty": o["filled_qty"],
               "status": "PARTIALLY_FILLED" if o["status"] in ("Submitted", "PreSubmitted")
               and Decimal(o["filled_qty"]) > 0 else WIRE_STATUS.get(o["status"], o["status"])}
              for o in state["orders"]]
    balances = {cur: {"free": amount, "locked": "0"} for cur, amount in state["cash"].items()}
    for symbol, p in state["positions"].items():
        balances[symbol] = {"free": p["qty"], "locked": "0"}
    return {"new_order_requests": requests, "client_order_ids": [c for c in state["client_order_ids"] if c in ours],
            "fills": state["fills"], "orders": orders, "balances": balances, "market": "spot"}


def order_id_problems(state: dict[str, Any]) -> list[str]:
    """IB order ids accepted twice as new orders, and placeOrders taken as modifications (an id reused)."""
    accepted = Counter((r["client_id"], r["order_id"]) for r in state["new_order_requests"]
                       if r.get("code") is None and r.get("kind") == "new")
    out = [f"emulator: client {c} order id {oid} accepted as a new order {n} times"
           for (c, oid), n in accepted.items() if n > 1]
    out += [f"emulator: order id {r['order_id']} ({r['client_order_id']}) reused for a live order: taken as a "
            f"modification" for r in state["new_order_requests"] if r.get("kind") == "modify"]
    return out


# Faults a trading cycle may get (chaos_cycles' fault_choices): a withheld orderStatus, an order
# executed and its connection cut before any answer, 1101 (market data subscriptions dropped).
FAULTS: tuple[dict[str, Any], ...] = ({"withhold_order_status": 1}, {"drop_next_orders": 1},
                                      {"connectivity": "restored_data_lost"})


def audit_ibkr(j: bh.JournalView, state: dict[str, Any], quantity: str) -> bh.Audit:
    """`audit` of the journal against the emulator's state (`binance_shaped`), with the IB order id
    checks in `requests` and the order id figures in the summary.

    The position replay (never outside 0..quantity) takes the fills in the order IB executed
    them: a journaled fill carries IB's stamp, whole seconds, and within a second the journal's
    order is the booking order, in which a fill recovered by reconciliation comes after a later
    order's live fill (an order resolved FILLED by query, the next one sent on that knowledge,
    its fill booked first: correct trading, a transient -5 in booking order)."""
    position_range = (Decimal(0), Decimal(quantity))  # sma_cross: long or flat
    executed_ns = {f["trade_id"]: f["ts_ns"] for f in state["fills"]}
    j = replace(j, fills=[{**f, "ts_ns": executed_ns.get(f["trade_id"], f["ts_ns"])} for f in j.fills])
    result = audit(j, binance_shaped(state), quote=QUOTE, position_range=position_range)
    result.requests += order_id_problems(state)
    result.summary["ib_orders_accepted"] = sum(1 for r in state["new_order_requests"] if r.get("code") is None)
    result.summary["duplicate_order_id_refusals"] = sum(1 for r in state["new_order_requests"] if r.get("code") == 103)
    return result


def run_chaos(work: Path, kills: int, seed: int, *, symbols: tuple[str, ...] = ("AAPL", "MSFT"),
              market_time_scale: float = 50.0, trade_s: tuple[float, float] = (0.3, 1.5), **cycles: Any) -> ChaosRun:
    """The storm against the IBKR emulator: `kills` SIGKILLs (`chaos_cycles(**cycles)`), a final
    clean HALTED run, the audit (module docstring; the IB order id checks land in `audit.requests`).

    `trade_s`: how long each cycle trades after READY before its kill: the first 5-second bar
    of a start closes up to 5/scale s after its subscription, the second one feeds sma_cross's
    first cross (so shorter windows would mostly kill a daemon that has not ordered yet)."""
    emu = IbkrEmulatorProcess(work, seed=seed % 10_000, market_time_scale=market_time_scale).start()
    launcher = ForkServer(["nautilus_hmm.venues.ibkr.adapter"])  # as binance_harness.run_chaos
    daemon = IbkrDaemonProcess(work, emu, venue="ibkr", symbols=symbols, quantity="5", launcher=launcher)
    try:
        stats = chaos_cycles(daemon, random.Random(seed), kills, trade_s=trade_s, order_path=ORDER_PATH,
                             held_fault=HELD_FAULT, **cycles)
        daemon.launcher = None  # the final start is a new interpreter, as under systemd
        final = final_clean_run(daemon)
        state = emu.state()
        recovery = recovery_totals(daemon)
    finally:
        daemon.close()
        launcher.close()
        emu.stop()
    transports = Counter(r["transport"] for r in binance_shaped(state)["new_order_requests"])
    return ChaosRun(stats, final, audit_ibkr(read_journal(daemon.journal_path), state, daemon.quantity), recovery,
                    transports)
