"""A first start SIGKILLed after it opened its journal but before it journaled its baseline
balances: the next start reconciles ok and trades (no order was ever sent under the journal,
and its sequence mark proves it); the money audit then agrees with the venue.

The daemon and the Binance emulator run as two processes. The kill lands for certain before
the baseline: the emulator holds the start's account (balances) request, and the kill follows
as soon as the emulator has received it (the journal is open by then: it opens before any
venue call). Its control: the same kill with the mark's proof taken away (a mark written before
`none_reserved` existed) still halts the next start (tests/unit/execution/test_reconcile_baseline.py
flips every other condition).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from tests.system.binance_harness import (
    DaemonProcess,
    EmulatorProcess,
    audit,
    final_clean_run,
    read_journal,
    wait_for,
)

ACCOUNT = "/api/v3/account"
HOLD_MS = 600_000  # the held balances request is never answered while the start lives


def _baselines(journal: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT kind FROM events WHERE kind = 'baseline_balances'")]
    finally:
        conn.close()


def _kill_in_the_balances_request(daemon: DaemonProcess) -> None:
    """A first start, SIGKILLed while the emulator holds its account (balances) request."""
    emu = daemon.emulator
    emu.faults(delay_ms={ACCOUNT: HOLD_MS})
    daemon.start()
    wait_for(lambda: emu.state()["requests"].get(f"GET {ACCOUNT}", 0) >= 1, "the first start's balances request")
    assert daemon.kill() is None, f"the first start exited on its own: {daemon.log_tail()}"
    mark = orjson.loads((daemon.state_dir / "journal.sqlite3.seq").read_bytes())
    assert mark["clean"] is False and mark["none_reserved"] is True, mark
    assert _baselines(daemon.journal_path) == []  # killed before its baseline
    assert emu.state()["new_order_requests"] == []


def test_a_first_start_killed_before_its_baseline_lets_the_next_start_trade(tmp_path: Path) -> None:
    emu = EmulatorProcess(tmp_path, symbols=("BTCUSDT",), tick_interval_s=0.01, market_time_scale=20).start()
    # The held request must not time out before the kill (a start that gave up on it would exit).
    daemon = DaemonProcess(tmp_path, emu, symbols=("BTCUSDT",), request_timeout_s=300.0)
    try:
        _kill_in_the_balances_request(daemon)

        emu.faults(reset=True)
        daemon.start()
        daemon.wait_ready()
        st = daemon.status()
        assert st["trading_state"] == "ACTIVE", st["trading_state_reason"]
        assert st["reconciliation"]["binance_spot"]["ok"] is True, st["reconciliation"]
        late = daemon.log_events("baseline_balances_late")
        assert len(late) == 1 and late[0]["tail"] == "unverified", late
        wait_for(lambda: [r for r in emu.state()["new_order_requests"] if r.get("status", 0) < 300],
                 "an order of the second start", poll_s=0.05)
        assert daemon.terminate() == 0

        status = final_clean_run(daemon)  # one more start: the journal's books agree with the venue
        assert status["trading_state"] == "HALTED" and status["reconciliation"]["binance_spot"]["ok"] is True
        j = read_journal(daemon.journal_path)
        assert sum(1 for e in j.events if e["kind"] == "baseline_balances") == 1
        problems = audit(j, emu.state()).problems
        assert problems == [], problems
    finally:
        daemon.close()
        emu.stop()


def test_without_the_marks_proof_the_same_kill_keeps_the_next_start_halted(tmp_path: Path) -> None:
    emu = EmulatorProcess(tmp_path, symbols=("BTCUSDT",), tick_interval_s=0.01, market_time_scale=20).start()
    daemon = DaemonProcess(tmp_path, emu, symbols=("BTCUSDT",), request_timeout_s=300.0)
    try:
        _kill_in_the_balances_request(daemon)
        mark_file = daemon.state_dir / "journal.sqlite3.seq"
        mark = orjson.loads(mark_file.read_bytes())
        del mark["none_reserved"]  # as a mark written before the key existed
        mark_file.write_bytes(orjson.dumps(mark))
        emu.faults(reset=True)
        daemon.start()
        daemon.wait_ready()
        st = daemon.status()
        assert st["trading_state"] == "HALTED", st
        (finding,) = [d for d in st["reconciliation"]["binance_spot"]["discrepancies"] if "no baseline" in d]
        assert "sequence mark" in finding, finding
        assert emu.state()["new_order_requests"] == []
    finally:
        daemon.close()
        emu.stop()
