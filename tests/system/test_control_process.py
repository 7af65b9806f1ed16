"""Two strategies trading one instrument in a real daemon process, SIGKILLed and restarted:
each strategy's position is recovered from the journal as it was, and the strategies'
positions (with the house account's) sum to what the venue holds. GET /strategies shows both."""

from __future__ import annotations

import signal
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from tests.nodeharness import TOKEN
from tests.system.processes import DEADLINE_S, free_port, http_json, start_daemon, wait_for

TWO = """
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
[[strategies]]
id = "fast"
kind = "sma_cross"
instruments = ["sim:BTCUSDT"]
bar_interval_s = 1
enabled = {enabled}
[strategies.sma_cross]
fast = 1
slow = 2
quantity = "0.01"
[[strategies]]
id = "slow"
kind = "sma_cross"
instruments = ["sim:BTCUSDT"]
bar_interval_s = 1
enabled = {enabled}
[strategies.sma_cross]
fast = 2
slow = 4
quantity = "0.03"
[control.governance]
enabled = false
[risk]
initial_state = "{initial}"
stale_data_s = 5.0
"""


def start(tmp: Path, port: int, initial: str) -> subprocess.Popen:
    cfg = tmp / f"config-{initial}.toml"
    # Restarted HALTED with both strategies disabled: nothing trades and no target changes,
    # so the books stay as recovered (the strategies are long/flat: no internal cross either).
    enabled = "true" if initial == "ACTIVE" else "false"
    cfg.write_text(TWO.format(state=tmp / "state", port=port, initial=initial, enabled=enabled))
    return start_daemon(cfg, tmp / f"daemon-{initial}.log", TOKEN)


def strategies(base: str) -> dict[str, dict[str, Any]]:
    return {row["strategy_id"]: row for row in http_json(base + "/strategies")[1]["strategies"]}


def btc(positions: dict[str, str]) -> Decimal:
    return Decimal(positions.get("sim:BTCUSDT", "0"))


def test_two_strategies_survive_sigkill_with_positions_that_sum_to_the_venue(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, "ACTIVE")
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "ready")
        wait_for(lambda: all(row["fills"] >= 3 for row in strategies(base).values()),
                 "fills of both strategies", timeout_s=90)
        # Halt (no new orders), let what is in flight settle, and disable both strategies (their
        # targets stop changing: no cross either); the books the crash must keep are then still.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert http_json(base + "/admin/kill", {"reason": "test"}, headers=auth)[0] == 200
        wait_for(lambda: not http_json(base + "/orders?open=true")[1]["orders"], "no open order")
        for sid in ("fast", "slow"):
            assert http_json(base + f"/admin/strategies/{sid}/disable", {"reason": "test"}, headers=auth)[0] == 200

        def still() -> dict[str, Decimal] | None:
            # Disabled (targets 0, both long/flat: no cross), no order open (no fill can come) and
            # nothing queued for the journal: the books can no longer move and are on disk.
            rows = strategies(base)
            journal = http_json(base + "/status")[1]["components"]["journal"]["info"]
            if (all(row["state"] == "disabled" for row in rows.values()) and journal["queue_depth"] == 0
                    and not http_json(base + "/orders?open=true")[1]["orders"]):
                return {sid: btc(row["positions"]) for sid, row in rows.items()}
            return None

        before = wait_for(still, "books that stay still")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()

    # Restart HALTED: nothing trades after recovery, the books must match the venue as left.
    proc = start(tmp_path, port, "HALTED")
    try:
        wait_for(lambda: http_json(base + "/ready")[0] == 200, "ready after restart")
        status = http_json(base + "/status")[1]
        assert status["reconciliation"]["sim"]["ok"] is True, status["reconciliation"]
        rows = strategies(base)
        assert list(rows) == ["fast", "slow"] and all(row["fills"] > 0 for row in rows.values())
        account = orjson.loads((tmp_path / "state" / "sim_account.json").read_bytes())
        venue_btc = Decimal(account["balances"]["BTC"]["free"]) + Decimal(account["balances"]["BTC"]["locked"])
        parts = btc(rows["fast"]["positions"]) + btc(rows["slow"]["positions"]) + btc(status["house"]["positions"])
        assert parts == venue_btc
        assert {sid: btc(row["positions"]) for sid, row in rows.items()} == before
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
