"""The daemon and the Bybit emulator as two real processes, and the money audit between them.

The Bybit twin of `tests/system/binance_harness.py`, sharing its machinery: the daemon
process (`DaemonProcess`, READY over `$NOTIFY_SOCKET`), the SIGKILL cycles (`chaos_cycles`),
the final HALTED start, the journal reader and the audit itself. What differs:

* `BybitEmulatorProcess` runs `nautilus-hmm emulator bybit` (its port read from its
  output) with `--market-time-scale` so 1 m klines (Bybit's shortest) close fast enough
  for a storm;
* `BybitDaemonProcess` writes `[venues.bybit_spot]` / `[venues.bybit_linear]` with the
  four URLs and passes `NAUTILUS_HMM_BYBIT_API_KEY` / `_SECRET`;
* `binance_shaped(state, category)` turns the emulator's `/_emulator/state` into the shape
  `audit` reads: orderLinkIds as client order ids, executions of `execType` Trade as fills
  (execId = trade id), the unified wallet as balances, linear positions. An order create
  refused before the venue processed it (10002 recv window, 10003/10004 key and
  signature, 10006/10429 rate limits) may be followed by its retry with the same id;
  anything else received twice is a duplicate.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.system import binance_harness as bh
from tests.system.binance_harness import (
    API_KEY,
    API_SECRET,
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

ORDER_PATH = "/v5/order/create"
HELD_FAULT = "withhold_order_responses"
# Refused before processing: the same orderLinkId may legitimately arrive again (its retry).
REFUSED_BEFORE_PROCESSING = {10002, 10003, 10004, 10006, 10429}
WIRE_SIDE = {"Buy": "BUY", "Sell": "SELL"}
_LISTENING = re.compile(rb"listening: rest (http://[\d.]+:(\d+)) ws_public (ws://[\d.:]+/v5/public)/\S+ "
                        rb"ws_private (ws://\S+) ws_trade (ws://\S+)")


class BybitEmulatorProcess(EmulatorProcess):
    """`nautilus-hmm emulator bybit` as a child process."""

    def __init__(self, workdir: Path, *, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
                 tick_interval_s: float = 0.01, market_time_scale: float = 1.0, seed: int = 7,
                 balances: tuple[str, ...] = (), extra_args: tuple[str, ...] = ()) -> None:
        super().__init__(workdir, symbols=symbols, tick_interval_s=tick_interval_s,
                         market_time_scale=market_time_scale, seed=seed, balances=balances, extra_args=extra_args)
        self.ws_public = ""
        self.ws_private = ""
        self.ws_trade = ""

    def start(self) -> BybitEmulatorProcess:
        """Start it and wait until it prints its URLs."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "nautilus_hmm", "emulator", "bybit", *self.args],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

        def listening() -> re.Match[bytes] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"emulator exited {self.proc.returncode}: {self.log_tail()}")
            return _LISTENING.search(self.log_path.read_bytes())

        m = wait_for(listening, "the Bybit emulator to listen")
        self.url = m.group(1).decode()
        self.ws_public, self.ws_private, self.ws_trade = (m.group(i).decode() for i in (3, 4, 5))
        self.ws_url = self.ws_public
        return self


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
[venues.{venue}]
enabled = true
rest_url = "{rest}"
ws_public_url = "{ws_public}"
ws_private_url = "{ws_private}"
ws_trade_url = "{ws_trade}"
symbols = {symbols}
request_timeout_s = {request_timeout_s}
order_entry = "{order_entry}"
[strategy]
kind = "sma_cross"
instruments = {instruments}
bar_interval_s = 60
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
class BybitDaemonProcess(DaemonProcess):
    """`nautilus-hmm run` against the Bybit emulator (`venue`: bybit_spot or bybit_linear)."""

    order_entry: str = "rest"

    def write_config(self, initial_state: str = "ACTIVE") -> Path:
        """The config file for the next start."""
        emu = self.emulator
        assert isinstance(emu, BybitEmulatorProcess)
        category = self.venue.removeprefix("bybit_")
        path = self.workdir / "config.toml"
        path.write_text(CONFIG.format(
            state=self.state_dir, port=self.port, venue=self.venue, rest=emu.url,
            ws_public=f"{emu.ws_public}/{category}", ws_private=emu.ws_private, ws_trade=emu.ws_trade,
            symbols=json.dumps(list(self.symbols)), order_entry=self.order_entry,
            instruments=json.dumps([f"{self.venue}:{s}" for s in self.symbols]), quantity=self.quantity,
            request_timeout_s=self.request_timeout_s, initial_state=initial_state, extra=self.extra_toml))
        return path

    def credential_env(self) -> dict[str, str]:
        """Bybit's key and secret (the emulator's)."""
        return {"NAUTILUS_HMM_BYBIT_API_KEY": API_KEY, "NAUTILUS_HMM_BYBIT_API_SECRET": API_SECRET}


def binance_shaped(state: dict[str, Any], category: str) -> dict[str, Any]:
    """The Bybit emulator's state (one category) in the shape `binance_harness.audit` reads."""
    requests = [{"client_order_id": r.get("order_link_id") or "", "transport": r.get("transport"),
                 "code": None if r.get("ret_code") in REFUSED_BEFORE_PROCESSING else r.get("ret_code"),
                 "refused_before_processing": r.get("ret_code") in REFUSED_BEFORE_PROCESSING}
                for r in state["new_order_requests"] if r.get("category") == category]
    # audit() skips requests whose code is in Binance's own refused set; map ours onto one of them.
    for r in requests:
        if r.pop("refused_before_processing"):
            r["code"] = next(iter(bh.REFUSED_BEFORE_PROCESSING))
    ours = {o["order_link_id"] for o in state["orders"] if o["category"] == category}
    fills = [{"symbol": e["symbol"], "trade_id": e["exec_id"], "client_order_id": e["order_link_id"],
              "qty": e["qty"], "price": e["price"], "fee": e["fee"], "side": WIRE_SIDE[e["side"]],
              "fee_asset": fee_asset(e, category)}
             for e in state["executions"] if e["category"] == category and e["exec_type"] == "Trade"]
    orders = [{"client_order_id": o["order_link_id"], "status": WIRE_STATUS.get(o["status"], o["status"]),
               "filled_qty": o["filled_qty"]} for o in state["orders"] if o["category"] == category]
    out = {"new_order_requests": requests, "client_order_ids": [c for c in state["order_link_ids"] if c in ours],
           "fills": fills, "orders": orders, "balances": state["balances"],
           "market": "usdm" if category == "linear" else "spot"}
    if category == "linear":
        out["positions"] = {s: {"qty": p["qty"]} for s, p in state["positions"].items()}
    return out


def fee_asset(e: dict[str, Any], category: str) -> str:
    """What the emulator charged a fee in: its ledger (venues.sim matching) charges USDT, spot and linear."""
    del e, category
    return bh.QUOTE


# Bybit's orderStatus → the journal's status (audit compares via binance_harness.WIRE_STATUS).
WIRE_STATUS = {"New": "NEW", "PartiallyFilled": "PARTIALLY_FILLED", "Filled": "FILLED", "Cancelled": "CANCELED",
               "PartiallyFilledCanceled": "CANCELED", "Rejected": "REJECTED", "Deactivated": "EXPIRED",
               "Untriggered": "NEW", "Triggered": "NEW"}


def run_chaos(work: Path, kills: int, seed: int, category: str = "spot", *, order_entry: str = "rest",
              market_time_scale: float = 1200.0, trade_s: tuple[float, float] = (0.3, 1.5),
              **cycles: Any) -> ChaosRun:
    """The storm against the Bybit emulator: `kills` SIGKILLs (`chaos_cycles(**cycles)`), a final
    clean HALTED run, the audit (see the module docstring).

    `trade_s`: how long each cycle trades after READY before its kill. Longer than Binance's
    0.05-0.8 s: the first bar closes about 0.4 s after READY here (the public stream subscribes,
    the kline state starts at the first subscription, then two 50 ms klines feed sma_cross),
    so shorter windows would mostly kill a daemon that has not ordered yet."""
    balances = ("USDT=100000",) if category == "linear" else ()
    emu = BybitEmulatorProcess(work, symbols=("BTCUSDT", "ETHUSDT"), tick_interval_s=0.005,
                               market_time_scale=market_time_scale, balances=balances,
                               extra_args=("--unmetered",)).start()
    venue = f"bybit_{category}"
    launcher = ForkServer(["nautilus_hmm.venues.bybit.adapter"])  # as binance_harness.run_chaos
    daemon = BybitDaemonProcess(work, emu, venue=venue, order_entry=order_entry, launcher=launcher)
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
    shaped = binance_shaped(state, category)
    transports = Counter(r.get("transport") for r in shaped["new_order_requests"])
    position_range = (Decimal(0), Decimal(daemon.quantity))  # sma_cross: long or flat
    return ChaosRun(stats, final, audit(read_journal(daemon.journal_path), shaped, position_range=position_range),
                    recovery, transports)
