"""Paper trading as a real process: it trades, is SIGKILLed, restarts into books that
agree with the venue, with no fill lost and no client order id sent twice."""

from __future__ import annotations

import signal
import subprocess
from decimal import Decimal
from pathlib import Path

import orjson

from tests.nodeharness import TOKEN
from tests.system.processes import (
    DEADLINE_S,
    free_port,
    http_json,
    start_daemon,
    stop_daemon,
    wait_for,
)

FAST = """
[node]
state_dir = "{state}"
[http]
port = {port}
[venues.sim]
symbols = ["BTCUSDT"]
[venues.sim.market]
tick_interval_s = 0.02
bar_interval_s = 1
initial_prices = {{ BTCUSDT = 60000.0 }}
[strategy]
kind = "sma_cross"
bar_interval_s = 1
[strategy.sma_cross]
fast = 1
slow = 2
quantity = "0.01"
[risk]
initial_state = "{initial}"
stale_data_s = 5.0
"""


def start(tmp: Path, port: int, initial: str, name: str | None = None) -> subprocess.Popen:
    """The FAST daemon on `port`, state in tmp/state; its config and log files are named
    after `name` (default: the initial trading state)."""
    name = name or initial
    cfg = tmp / f"config-{name}.toml"
    cfg.write_text(FAST.format(state=tmp / "state", port=port, initial=initial))
    return start_daemon(cfg, tmp / f"daemon-{name}.log", TOKEN)


def venue_cids(state: Path) -> list[str]:
    """The client order ids of every order the sim venue holds (its account file), in order."""
    account = orjson.loads((state / "sim_account.json").read_bytes())
    return [o["client_order_id"] for o in account["orders"]]


def wait_reconciled_or_exited(proc: subprocess.Popen, base: str) -> None:
    """Wait until the daemon at `base` has a start-up reconciliation result for the sim venue
    (/ready stays 503 while reconciliation has failed: wait for its result instead), or exited."""
    def reconciled_or_exited() -> bool:
        return proc.poll() is not None or "sim" in http_json(base + "/status")[1]["reconciliation"]

    wait_for(reconciled_or_exited, "start-up reconciliation or a refusal")


def fills(base: str) -> list[dict]:
    return http_json(base + "/fills?limit=10000")[1]["fills"]


def test_sigkill_mid_trading_restarts_into_the_same_books_without_duplicates(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, "ACTIVE")
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "ready")
        wait_for(lambda: len(fills(base)) >= 6, "six fills", timeout_s=60)
        before = fills(base)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()

    # Restart HALTED so nothing trades after recovery: the books must match the venue as left.
    proc = start(tmp_path, port, "HALTED")
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "ready after restart")
        status = http_json(base + "/status")[1]
        assert status["reconciliation"]["sim"]["ok"] is True, status["reconciliation"]
        assert status["trading_state"] == "HALTED"
        after = fills(base)
        ids_after = [f["trade_id"] for f in after]
        assert len(ids_after) == len(set(ids_after)), "a fill was counted twice"
        assert {f["trade_id"] for f in before} <= set(ids_after), "a fill was lost"
        # Position = signed sum of journaled fills = what the venue holds.
        signed = sum(Decimal(f["qty"]) * (1 if f["side"] == "BUY" else -1) for f in after)
        (pos,) = [p for p in http_json(base + "/positions")[1]["positions"] if p["instrument_id"] == "sim:BTCUSDT"]
        assert Decimal(pos["qty"]) == signed
        account = orjson.loads((tmp_path / "state" / "sim_account.json").read_bytes())
        venue_btc = Decimal(account["balances"]["BTC"]["free"]) + Decimal(account["balances"]["BTC"]["locked"])
        assert venue_btc == signed
        # No client order id reached the venue twice: every order the venue holds has a
        # unique id, and none of them was refused as a duplicate.
        cids = [o["client_order_id"] for o in account["orders"]]
        assert len(cids) == len(set(cids))
        logs = b"".join(p.read_bytes() for p in tmp_path.glob("daemon-*.log"))
        assert b"Duplicate order" not in logs
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_with_flatten_closes_positions_then_halts(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, "ACTIVE")
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "ready")

        def long_now() -> bool:
            pos = http_json(base + "/positions")[1]["positions"]
            return any(Decimal(p["qty"]) > 0 for p in pos)

        wait_for(long_now, "a long position", timeout_s=60)
        import urllib.request

        req = urllib.request.Request(base + "/admin/kill", data=b'{"flatten": true, "reason": "test"}',
                                     method="POST", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert orjson.loads(r.read())["trading_state"] == "REDUCING"
        wait_for(lambda: http_json(base + "/status")[1]["trading_state"] == "HALTED", "halted after flatten")
        pos = http_json(base + "/positions")[1]["positions"]
        assert all(Decimal(p["qty"]) == 0 for p in pos)
    finally:
        stop_daemon(proc)
