"""The daemon and the Binance emulator as two real processes, and the money audit between them.

Shared by the system tests (`test_chaos_binance.py`, `test_binance_scenarios.py`) and the
benchmarks (`benchmarks/chaos_soak.py`): `EmulatorProcess` runs `nautilus-hmm emulator
binance` (port 0: the printed port is read from its output), `DaemonProcess` runs
`nautilus-hmm run` on a config pointed at it (READY comes over `$NOTIFY_SOCKET`, as under
systemd), `chaos_cycles` SIGKILLs the daemon at random moments, and `audit` compares the
daemon's journal (read-only, after it stopped) with the emulator's state:

* every client order id reached the emulator at most once (`new_order_requests`; a
  request refused before processing, e.g. -1021, may be followed by its retry), and every
  id the venue saw was journaled (the intent is committed before the request leaves);
* no id or sequence minted twice in the journal;
* every fill of our orders at the emulator is in the journal, none twice, same fields;
* balances implied by the journal (baseline + fills, fees included) equal the emulator's;
* every journaled order has the emulator's final status, or was never sent (REJECTED).

Nothing here sleeps a fixed time to let something happen: waits poll a condition with a
deadline (the processes run on the wall clock).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm.core.ids import parse_sequence
from tests.system.forkserver import ForkedProcess, ForkServer
from tests.system.processes import DEADLINE_S, http_json, wait_for

API_KEY = "chaosKey0123456789abcdefABCDEF"
API_SECRET = "chaosSecret0123456789abcdefABCDEF0123"
ADMIN_TOKEN = "chaos-admin-token-0123456789"
QUOTE = "USDT"
PREFIX = "nh"
_ZERO = Decimal(0)
# Binance wire status → the journal's status.
WIRE_STATUS = {"NEW": "ACCEPTED", "PARTIALLY_FILLED": "PARTIALLY_FILLED", "FILLED": "FILLED",
               "CANCELED": "CANCELED", "EXPIRED": "EXPIRED", "REJECTED": "REJECTED",
               "EXPIRED_IN_MATCH": "EXPIRED", "PENDING_CANCEL": "PENDING_CANCEL"}
# Refused before the venue processed anything: the same id may legitimately be sent again.
REFUSED_BEFORE_PROCESSING = {-1021, -1003, -1022, -2014, -2015}
_LISTENING = re.compile(rb"listening: rest (http://[\d.]+:(\d+)) ws (ws://[\d.]+:\d+)")


# ---------------------------------------------------------------- the emulator


class EmulatorProcess:
    """`nautilus-hmm emulator binance` as a child process (see the module docstring)."""

    def __init__(self, workdir: Path, *, symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT"), tick_interval_s: float = 0.01,
                 market_time_scale: float = 1.0, seed: int = 7, balances: Iterable[str] = (),
                 extra_args: Iterable[str] = ()) -> None:
        self.workdir = workdir
        self.symbols = list(symbols)
        self.args = ["--port", "0", "--api-key", API_KEY, "--api-secret", API_SECRET, "--symbols", *self.symbols,
                     "--tick-interval", str(tick_interval_s), "--market-time-scale", str(market_time_scale),
                     "--seed", str(seed), *[a for b in balances for a in ("--balance", b)], *extra_args]
        self.log_path = workdir / "emulator.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.ws_url = ""

    def start(self) -> EmulatorProcess:
        """Start it and wait until it prints its port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "nautilus_hmm", "emulator", "binance", *self.args],
                                     stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

        def listening() -> re.Match[bytes] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"emulator exited {self.proc.returncode}: {self.log_tail()}")
            return _LISTENING.search(self.log_path.read_bytes())

        m = wait_for(listening, "the emulator to listen")
        self.url, self.ws_url = m.group(1).decode(), m.group(3).decode()
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 4000) -> str:
        """The end of its output."""
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def state(self) -> dict[str, Any]:
        """GET /_emulator/state."""
        status, body = http_json(self.url + "/_emulator/state")
        assert status == 200, body
        return body

    def faults(self, **doc: Any) -> dict[str, Any]:
        """POST /_emulator/faults (GET when no fault is given): the faults now."""
        status, body = http_json(self.url + "/_emulator/faults", doc if doc else None)
        assert status == 200, body
        return body

    def tick(self, n: int = 1) -> None:
        """POST /_emulator/tick."""
        status, body = http_json(self.url + "/_emulator/tick", {"n": n})
        assert status == 200, body

    def post(self, path: str, doc: dict[str, Any], timeout_s: float = 600.0) -> Any:
        """POST a control route; the decoded answer."""
        status, body = http_json(self.url + path, doc, timeout_s=timeout_s)
        assert status == 200, body
        return body


# ---------------------------------------------------------------- the daemon

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
ws_url = "{ws}"
symbols = {symbols}
request_timeout_s = {request_timeout_s}
[strategy]
kind = "sma_cross"
instruments = {instruments}
bar_interval_s = 1
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
class DaemonProcess:
    """`nautilus-hmm run` against an emulator, restartable on the same state directory."""

    workdir: Path
    emulator: EmulatorProcess
    venue: str = "binance_spot"  # or "binance_usdm" (the emulator started with --market usdm)
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    quantity: str = "0.01"
    request_timeout_s: float = 2.0
    extra_toml: str = ""
    command: tuple[str, ...] = ("-m", "nautilus_hmm", "run")
    # 0: every start binds a free port, read back from its `http_listening` log line (a port
    # picked in advance could be taken by another process's connection while the daemon is
    # down between two starts).
    port: int = 0
    proc: subprocess.Popen[bytes] | ForkedProcess | None = None
    starts: int = 0
    # Starts as forks of a server that has imported the daemon (tests/system/forkserver.py):
    # the same `python -m nautilus_hmm run` without 1.3 s of imports each time. None: a new
    # interpreter per start.
    launcher: ForkServer | None = None

    def __post_init__(self) -> None:
        self.state_dir = self.workdir / "state"
        self.log_path = self.workdir / "daemon.log"
        # AF_UNIX paths are limited to ~107 bytes: keep the socket in a short directory.
        self._sock_dir = tempfile.mkdtemp(prefix="nh-notify-")
        self.notify_path = os.path.join(self._sock_dir, "notify.sock")
        self._rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # The kernel attaches each sender's pid (as systemd reads it): a READY=1 that a start
        # sent just before its SIGKILL, still queued, is not taken for the next start's.
        self._rx.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._rx.bind(self.notify_path)
        # A reader thread keeps the socket drained (a full socket makes the daemon's
        # sd_notify fail) and hands READY=1 (by sender pid) over to wait_ready().
        self._ready = threading.Condition()
        self._ready_pids: set[int] = set()
        self._closing = False
        self._log_offset = 0  # where this start's lines begin in daemon.log
        self._bound_port: int | None = None
        self._reader = threading.Thread(target=self._read_notify, name="notify-reader", daemon=True)
        self._reader.start()

    def _read_notify(self) -> None:
        creds = struct.Struct("3i")  # struct ucred: pid, uid, gid
        while not self._closing:
            try:
                data, ancillary, _flags, _addr = self._rx.recvmsg(4096, socket.CMSG_SPACE(creds.size))
            except OSError:
                return
            pids = [creds.unpack(cdata[:creds.size])[0] for level, kind, cdata in ancillary
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
            if b"READY=1" in data.split(b"\n"):
                with self._ready:
                    self._ready_pids.update(pids)
                    self._ready.notify_all()

    @property
    def base(self) -> str:
        """The daemon's HTTP base URL (this start's port)."""
        return f"http://127.0.0.1:{self.port or self.bound_port()}"

    def bound_port(self) -> int:
        """The port this start listens on (its `http_listening` log line); AssertionError before it."""
        if self._bound_port is None:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                lines = f.read().splitlines()
            for line in lines:
                if b'"http_listening"' in line:
                    self._bound_port = int(orjson.loads(line[line.find(b"{"):])["port"])
            assert self._bound_port is not None, f"start {self.starts} is not listening yet: {self.log_tail()}"
        return self._bound_port

    @property
    def journal_path(self) -> Path:
        """The journal file."""
        return self.state_dir / "journal.sqlite3"

    def write_config(self, initial_state: str = "ACTIVE") -> Path:
        """The config file for the next start."""
        path = self.workdir / "config.toml"
        path.write_text(CONFIG.format(
            state=self.state_dir, port=self.port, venue=self.venue, rest=self.emulator.url, ws=self.emulator.ws_url,
            symbols=json.dumps(list(self.symbols)),
            instruments=json.dumps([f"{self.venue}:{s}" for s in self.symbols]), quantity=self.quantity,
            request_timeout_s=self.request_timeout_s, initial_state=initial_state, extra=self.extra_toml))
        return path

    def start(self, initial_state: str = "ACTIVE") -> DaemonProcess:
        """Start a new process (logs appended to daemon.log)."""
        assert self.proc is None or self.proc.poll() is not None, "the daemon is still running"
        cfg = self.write_config(initial_state)
        self._bound_port = None
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, "NAUTILUS_HMM_ADMIN_TOKEN": ADMIN_TOKEN, **self.credential_env(),
               "NOTIFY_SOCKET": self.notify_path}
        env.pop("JOURNAL_STREAM", None)
        env.pop("STATE_DIRECTORY", None)
        if self.launcher is not None and self.command[:2] == ("-m", self.launcher.module):
            self.proc = self.launcher.spawn([*self.command[2:], "--config", str(cfg)], env, self.log_path)
        else:
            log = self.log_path.open("ab")  # a file, not a pipe: a full pipe would block the daemon's loop
            self.proc = subprocess.Popen([sys.executable, *self.command, "--config", str(cfg)], env=env,
                                         stdout=subprocess.DEVNULL, stderr=log)
            log.close()
        self.starts += 1
        return self

    def credential_env(self) -> dict[str, str]:
        """The venue's API key and secret as the daemon reads them (environment)."""
        return {"NAUTILUS_HMM_BINANCE_API_KEY": API_KEY, "NAUTILUS_HMM_BINANCE_API_SECRET": API_SECRET}

    def wait_ready(self, timeout_s: float = DEADLINE_S) -> float:
        """Block until READY=1 (seconds waited); AssertionError if it exits or times out."""
        t0 = time.monotonic()
        end = t0 + timeout_s
        assert self.proc is not None
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"daemon not READY within {timeout_s} s: {self.log_tail()}")
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} before READY: {self.log_tail()}")
            with self._ready:
                if self._ready.wait_for(lambda: self.proc.pid in self._ready_pids, min(left, 0.01)):
                    return time.monotonic() - t0

    def kill(self) -> int | None:
        """SIGKILL and reap; the exit code it had if it had already exited on its own."""
        assert self.proc is not None
        early = self.proc.poll()
        if early is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return early

    def terminate(self, timeout_s: float = DEADLINE_S) -> int:
        """SIGTERM; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not stop within {timeout_s} s after SIGTERM") from None

    def close(self) -> None:
        """Kill a daemon still running; remove the notify socket."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._closing = True
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as tx, contextlib.suppress(OSError):
            tx.sendto(b"", self.notify_path)  # wakes the reader
        self._reader.join(timeout=2)
        self._rx.close()
        try:
            os.unlink(self.notify_path)
            os.rmdir(self._sock_dir)
        except OSError:
            pass

    def get(self, path: str) -> Any:
        """GET a JSON route of the daemon (200 expected)."""
        status, body = http_json(self.base + path, timeout_s=10)
        assert status == 200, (path, status, body)
        return body

    def status(self) -> dict[str, Any]:
        """GET /status."""
        return self.get("/status")

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent)."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            metric, _, rest = key.partition("{")
            got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
            if metric == name and got == want:
                return float(value)
        return 0.0

    def metric_sum(self, name: str) -> float:
        """The sum of every sample of one metric of /metrics (all label sets)."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith("#") and line.partition("{")[0].partition(" ")[0] == name:
                total += float(line.rpartition(" ")[2])
        return total

    def log_tail(self, n: int = 6000) -> str:
        """The end of the daemon's log."""
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def log_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """Every JSON log line (of one event name) the daemon wrote, all starts included."""
        out = []
        for line in self.log_path.read_bytes().splitlines():
            start = line.find(b"{")
            if start < 0:
                continue
            try:
                doc = orjson.loads(line[start:])
            except orjson.JSONDecodeError:
                continue
            if event is None or doc.get("event") == event:
                out.append(doc)
        return out


# ---------------------------------------------------------------- chaos


@dataclass
class ChaosStats:
    """What a chaos run did."""

    kills: int = 0
    kills_before_ready: int = 0
    kills_with_held_order: int = 0
    ready_s: list[float] = field(default_factory=list)
    trading_s: list[float] = field(default_factory=list)
    halted_after_start: list[str] = field(default_factory=list)
    early_exits: list[int] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Summary figures."""
        r = sorted(self.ready_s)
        return {"kills": self.kills, "kills_before_ready": self.kills_before_ready,
                "kills_with_held_order": self.kills_with_held_order,
                "ready_s_p50": round(r[len(r) // 2], 3) if r else None, "ready_s_max": round(r[-1], 3) if r else None,
                "trading_s_total": round(sum(self.trading_s), 2), "halted_after_start": len(self.halted_after_start),
                "early_exits": self.early_exits, "faults": self.faults}


def chaos_cycles(daemon: DaemonProcess, rng: random.Random, kills: int, *, trade_s: tuple[float, float] = (0.05, 1.0),
                 before_ready_fraction: float = 0.15, order_delays_ms: tuple[int, ...] = (0, 0, 20, 50),
                 held_order_every: int = 10, check_start: bool = True,
                 fault_choices: Sequence[dict[str, Any]] = (), fault_probability: float = 0.0,
                 on_cycle: Callable[[int], None] | None = None, order_path: str | None = None,
                 held_fault: str = "timeout_order_responses") -> ChaosStats:
    """Start the daemon and SIGKILL it `kills` times at random moments.

    Most kills come a random `trade_s` after READY (trading); `before_ready_fraction` of
    them come during start-up recovery, before READY, and so does the first start's, always:
    a first start killed before it journals its baseline balances leaves a journal whose
    sequence mark proves that no order was ever sent (`none_reserved`), and the next start
    takes the baseline then and must reach ACTIVE like any other. The first start is killed
    0-0.1 s after its journal's mark is on disk (its baseline comes ~70 ms after the mark with
    forked starts, so the kill lands on either side of it); killed inside the creating open,
    before the mark, the journal could not be told from one whose mark was deleted, and the
    next start would halt (`no_mark`). Each cycle sets a random delay on
    the emulator's order endpoint (`order_delays_ms`) so that kills often land while an
    order request is in flight, and every `held_order_every`-th kill lands for certain
    while one is: the emulator executes the next order and withholds the answer, and the
    kill follows as soon as it has been taken. With `check_start`, /status is read after
    READY and a start that did not reach ACTIVE is recorded (reconciliation found
    something). With `fault_probability`, one of `fault_choices` (POST /_emulator/faults
    bodies) is injected after READY in that share of the trading cycles. `order_path` (the
    delayed endpoint) and `held_fault` (the emulator's fault that withholds an executed
    order's answer) default to Binance's; the Bybit harness passes its own.
    """
    stats = ChaosStats()
    emu = daemon.emulator
    for i in range(kills):
        delay = rng.choice(order_delays_ms)
        if order_path is None:
            order_path = "/api/v3/order" if daemon.venue == "binance_spot" else "/fapi/v1/order"
        emu.faults(reset=True, delay_ms={order_path: delay} if delay else {})
        daemon.start()
        if held_order_every and i % held_order_every == held_order_every - 1:
            daemon.wait_ready()
            emu.faults(**{held_fault: 1})
            wait_for(lambda: emu.faults()[held_fault] == 0, "an order whose answer is withheld", poll_s=0.005)
            stats.kills_with_held_order += 1
        elif rng.random() < before_ready_fraction or i == 0:  # (the draw is made for i == 0 too)
            if i == 0:  # from its journal's mark: before or just after its baseline (~70 ms later, forked)
                wait_for(lambda: Path(f"{daemon.journal_path}.seq").exists(), "the first start's sequence mark",
                         poll_s=0.002)
            time.sleep(rng.uniform(0.0, 0.1) if i == 0 else rng.uniform(0.1, 0.5))
            stats.kills_before_ready += 1
        else:
            stats.ready_s.append(daemon.wait_ready())
            t0 = time.monotonic()
            if fault_choices and rng.random() < fault_probability:
                fault = rng.choice(list(fault_choices))
                emu.faults(**fault)
                stats.faults[next(iter(fault))] = stats.faults.get(next(iter(fault)), 0) + 1
            if check_start:
                st = daemon.status()
                if st["trading_state"] != "ACTIVE":
                    stats.halted_after_start.append(f"start {daemon.starts}: {st['trading_state_reason']}")
            time.sleep(max(0.0, rng.uniform(*trade_s) - (time.monotonic() - t0)))
            stats.trading_s.append(time.monotonic() - t0)
        early = daemon.kill()
        if early is not None:
            stats.early_exits.append(early)
        stats.kills += 1
        if on_cycle is not None:
            on_cycle(i)
    emu.faults(reset=True)
    return stats


def final_clean_run(daemon: DaemonProcess) -> dict[str, Any]:
    """Start HALTED (nothing trades), wait for READY and reconciliation, SIGTERM; the /status at READY."""
    daemon.start(initial_state="HALTED")
    daemon.wait_ready()
    status = daemon.status()
    rc = daemon.terminate()
    assert rc == 0, f"clean stop exited {rc}: {daemon.log_tail()}"
    return status


# ---------------------------------------------------------------- the journal


@dataclass
class JournalView:
    """What the journal holds, read-only."""

    journal_id: str
    orders: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    baseline: dict[str, Decimal]
    events: list[dict[str, Any]]


def read_journal(path: Path) -> JournalView:
    """Open the journal read-only (the daemon must have stopped) and read it whole."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        orders = [dict(r) for r in conn.execute("SELECT * FROM orders ORDER BY seq")]
        fills = [dict(r) for r in conn.execute("SELECT * FROM fills ORDER BY id")]
        events = [{"ts_ns": r["ts_ns"], "kind": r["kind"], "data": orjson.loads(r["data"])}
                  for r in conn.execute("SELECT ts_ns, kind, data FROM events ORDER BY id")]
    finally:
        conn.close()
    base = [e for e in events if e["kind"] == "baseline_balances"]
    baseline: dict[str, Decimal] = {}
    for balances in (base[0]["data"]["venues"].values() if base else ()):  # per venue: summed
        for k, v in balances.items():
            baseline[k] = baseline.get(k, _ZERO) + Decimal(v)
    return JournalView(meta.get("journal_id", ""), orders, fills, baseline, events)


def journal_balances(j: JournalView, quote: str = QUOTE) -> dict[str, Decimal]:
    """Balances implied by the journal: the baseline plus every fill (fees included)."""
    bal = dict(j.baseline)
    for f in j.fills:
        symbol = f["instrument_id"].split(":", 1)[1]
        base = symbol.removesuffix(quote)
        qty, price, fee = Decimal(f["qty"]), Decimal(f["price"]), Decimal(f["fee"])
        sign = 1 if f["side"] == "BUY" else -1
        bal[base] = bal.get(base, _ZERO) + sign * qty
        bal[quote] = bal.get(quote, _ZERO) - sign * qty * price
        bal[f["fee_asset"]] = bal.get(f["fee_asset"], _ZERO) - fee
    return bal


@dataclass
class Audit:
    """The result of comparing a journal with the emulator: problems by category, and figures."""

    ids: list[str]  # ids minted twice, or sent without a journaled intent
    requests: list[str]  # an id received by the venue more than once
    fills: list[str]  # fills lost, counted twice or different
    balances: list[str]  # journal-implied balances differ from the venue's
    orders: list[str]  # final statuses differ
    positions: list[str]  # the position left the strategy's range at some fill (a double trade)
    summary: dict[str, Any]

    @property
    def problems(self) -> list[str]:
        """Every problem found."""
        return self.ids + self.requests + self.fills + self.balances + self.orders + self.positions


def futures_book(j: JournalView, quote: str = QUOTE) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """USD-M: the wallet and net positions implied by the journal: the baseline wallet plus
    the PnL each fill realizes against the average entry, minus fees (Binance's one-way rule)."""
    wallet = j.baseline.get(quote, _ZERO)
    book: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (signed qty, entry)
    for f in j.fills:
        symbol = f["instrument_id"].split(":", 1)[1]
        qty, price = Decimal(f["qty"]), Decimal(f["price"])
        pos, entry = book.get(symbol, (_ZERO, _ZERO))
        signed = qty if f["side"] == "BUY" else -qty
        if pos == 0 or (pos > 0) == (signed > 0):
            new = pos + signed
            entry = (abs(pos) * entry + qty * price) / abs(new)
        else:
            wallet += min(abs(pos), qty) * (price - entry) * (1 if pos > 0 else -1)
            new = pos + signed
            entry = _ZERO if new == 0 else (price if (new > 0) != (pos > 0) else entry)
        book[symbol] = (new, entry)
        wallet -= Decimal(f["fee"])
    return {quote: wallet}, {sym: q for sym, (q, _) in book.items()}


def audit(j: JournalView, emu: dict[str, Any], prefix: str = PREFIX, quote: str = QUOTE,
          position_range: tuple[Decimal, Decimal] | None = None) -> Audit:
    """Every money invariant between the journal and the emulator (see the module docstring).

    `position_range`: the positions the strategy can ask for (e.g. long/flat `sma_cross`:
    0 .. quantity); replaying the journaled fills in order, every symbol's position must
    stay inside it, or an order was sent beyond what the strategy asked for.
    """
    ours = f"{prefix}-{j.journal_id}-"
    ids: list[str] = []
    reqs_bad: list[str] = []
    fills_bad: list[str] = []
    bal_bad: list[str] = []
    orders_bad: list[str] = []

    # Client order ids: minted once, journaled before sending, received once.
    cids = [o["client_order_id"] for o in j.orders]
    seqs = [o["seq"] for o in j.orders if o["seq"] is not None]
    ids += [f"journal: client order id {c} twice" for c, n in Counter(cids).items() if n > 1]
    ids += [f"journal: sequence {s} twice" for s, n in Counter(seqs).items() if n > 1]
    for o in j.orders:
        if o["seq"] is not None and parse_sequence(o["client_order_id"], prefix, j.journal_id) != o["seq"]:
            ids.append(f"journal: {o['client_order_id']} does not carry its sequence {o['seq']}")
    journaled = set(cids)
    requests: dict[str, list[dict[str, Any]]] = {}
    for r in emu["new_order_requests"]:
        requests.setdefault(r["client_order_id"], []).append(r)
    for cid, reqs in requests.items():
        processed = [r for r in reqs if r.get("code") not in REFUSED_BEFORE_PROCESSING]
        if len(processed) > 1:
            reqs_bad.append(f"emulator: {cid} received {len(processed)} times: {processed}")
        if cid.startswith(ours) and cid not in journaled:
            ids.append(f"emulator: {cid} reached the venue but is not in the journal")
    reqs_bad += [f"emulator: {c} reached matching {n} times"
                 for c, n in Counter(emu["client_order_ids"]).items() if n > 1]

    # Fills: none lost, none twice, the same on both sides.
    jf = {(f["instrument_id"].split(":", 1)[1], f["trade_id"]): f for f in j.fills}
    if len(jf) != len(j.fills):
        fills_bad.append(f"journal: {len(j.fills) - len(jf)} fill(s) counted twice")
    ef = {(f["symbol"], f["trade_id"]): f for f in emu["fills"] if f["client_order_id"].startswith(ours)}
    for key, f in ef.items():
        g = jf.get(key)
        if g is None:
            fills_bad.append(f"fill lost: {key} of {f['client_order_id']} is not in the journal")
            continue
        for a, b in (("qty", "qty"), ("price", "price"), ("fee", "fee")):
            if Decimal(f[a]) != Decimal(g[b]):
                fills_bad.append(f"fill {key}: {a} {f[a]} at the venue, {g[b]} in the journal")
        if f["side"] != g["side"] or f["client_order_id"] != g["client_order_id"] or f["fee_asset"] != g["fee_asset"]:
            fills_bad.append(f"fill {key}: side/order/fee asset differ: venue {f}, journal {g}")
    fills_bad += [f"journal fill {k} unknown to the venue" for k in jf if k not in ef]

    # Balances: baseline + journaled fills = the venue's balances, asset by asset (USD-M:
    # the wallet, and the net position of every symbol).
    venue = {a: Decimal(b["free"]) + Decimal(b["locked"]) for a, b in emu["balances"].items()}
    if emu.get("market") == "usdm":
        mine, net = futures_book(j, quote)
        theirs = {s: Decimal(p["qty"]) for s, p in emu["positions"].items()}
        for sym in sorted(set(net) | set(theirs)):
            if net.get(sym, _ZERO) != theirs.get(sym, _ZERO):
                bal_bad.append(f"position {sym}: {net.get(sym, _ZERO)} from the journal, "
                               f"{theirs.get(sym, _ZERO)} at the venue")
    else:
        mine = journal_balances(j, quote)
    for asset in sorted(set(mine) | set(venue)):
        if mine.get(asset, _ZERO) != venue.get(asset, _ZERO):
            bal_bad.append(f"balance {asset}: {mine.get(asset, _ZERO)} from the journal, "
                            f"{venue.get(asset, _ZERO)} at the venue")

    # Orders: the venue's final word, or never sent.
    eo = {o["client_order_id"]: o for o in emu["orders"]}
    statuses: Counter[str] = Counter()
    for o in j.orders:
        cid = o["client_order_id"]
        statuses[o["status"]] += 1
        v = eo.get(cid)
        if v is None:
            if o["status"] != "REJECTED":
                orders_bad.append(f"order {cid}: {o['status']} in the journal, unknown to the venue")
            continue
        if WIRE_STATUS.get(v["status"], v["status"]) != o["status"]:
            orders_bad.append(f"order {cid}: {o['status']} in the journal, {v['status']} at the venue")
        if Decimal(v["filled_qty"]) != Decimal(o["filled_qty"]):
            orders_bad.append(f"order {cid}: filled {o['filled_qty']} in the journal, {v['filled_qty']} at the venue")

    # Positions: never outside what the strategy can ask for.
    pos_bad: list[str] = []
    if position_range is not None:
        lo, hi = position_range
        running: dict[str, Decimal] = {}
        for f in sorted(j.fills, key=lambda f: (f["ts_ns"], f["id"])):
            iid = f["instrument_id"]
            signed = Decimal(f["qty"]) if f["side"] == "BUY" else -Decimal(f["qty"])
            running[iid] = running.get(iid, _ZERO) + signed
            if not lo <= running[iid] <= hi:
                pos_bad.append(f"{iid}: position {running[iid]} after fill {f['trade_id']} of "
                               f"{f['client_order_id']} is outside {lo}..{hi}")

    summary = {
        "journal_orders": len(j.orders), "order_statuses": dict(statuses), "journal_fills": len(j.fills),
        "venue_orders": sum(1 for c in eo if c.startswith(ours)), "venue_fills": len(ef),
        "new_order_requests": sum(len(v) for v in requests.values()),
        "balances": {a: str(v) for a, v in sorted(venue.items())},
    }
    return Audit(ids, reqs_bad, fills_bad, bal_bad, orders_bad, pos_bad, summary)


def recovery_totals(daemon: DaemonProcess) -> dict[str, int]:
    """Sums over every start-up/periodic reconciliation the daemon logged (resolved orders, ...)."""
    keys = ("resolved_orders", "closed_unsent", "recovered_fills", "canceled_foreign", "adopted_foreign",
            "discrepancies")
    out = dict.fromkeys(keys, 0)
    for e in daemon.log_events("reconciliation_completed"):
        for k in keys:
            out[k] += int(e.get(k, 0))
    out["outcome_unknown"] = len(daemon.log_events("order_outcome_unknown"))
    out["outcome_resolved"] = len(daemon.log_events("order_outcome_resolved"))
    return out


@dataclass
class ChaosRun:
    """The outcome of one chaos run: kills, the last clean run, the money audit, the emulator's receipts."""

    stats: ChaosStats
    final_status: dict[str, Any]
    audit: Audit
    recovery: dict[str, int]
    transports: Counter[str]


def run_chaos(work: Path, kills: int, seed: int, daemon_cls: type[DaemonProcess] = DaemonProcess,
              market: str = "spot", **cycles: Any) -> ChaosRun:
    """The storm: an emulator of `market` (BTCUSDT, ETHUSDT, market time x20, unmetered), a
    daemon of `daemon_cls`, `kills` SIGKILLs (`chaos_cycles(**cycles)`), a final clean run, the audit.

    The storm's starts are forks of a server that has imported the daemon (`launcher`:
    tests/system/forkserver.py), so its kills land in start-up recovery and trading rather than
    in 1.3 s of imports; the final start is a new interpreter (`python -m nautilus_hmm run`)."""
    emu = EmulatorProcess(work, symbols=("BTCUSDT", "ETHUSDT"), tick_interval_s=0.005, market_time_scale=20,
                          extra_args=["--unmetered", "--market", market]).start()
    launcher = ForkServer(["nautilus_hmm.venues.binance.adapter"])
    daemon = daemon_cls(work, emu, venue="binance_spot" if market == "spot" else "binance_usdm", launcher=launcher)
    try:
        stats = chaos_cycles(daemon, random.Random(seed), kills, trade_s=(0.05, 0.8), **cycles)
        daemon.launcher = None  # the final start is a new interpreter, as under systemd
        final = final_clean_run(daemon)
        state = emu.state()
        recovery = recovery_totals(daemon)
    finally:
        daemon.close()
        launcher.close()
        emu.stop()
    transports = Counter(r.get("transport") for r in state["new_order_requests"])
    # sma_cross is long/flat: a position outside 0..quantity means an order was doubled.
    position_range = (Decimal(0), Decimal(daemon.quantity))
    return ChaosRun(stats, final, audit(read_journal(daemon.journal_path), state, position_range=position_range),
                    recovery, transports)
