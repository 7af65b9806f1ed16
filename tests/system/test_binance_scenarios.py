"""Venue faults against the running daemon: the daemon and the Binance emulator as two processes.

A start into an IP ban has its own pair. One daemon and one emulator serve every other
scenario of this module, in file order (the daemon keeps trading the storm of
`test_chaos_binance` between them): a websocket drop, a depth gap, HTTP 429 and 418,
-1021 and an order whose answer never comes. What the
daemon did is read from the emulator's request log (`GET /_emulator/state`: arrival and
answer times in server ms), the daemon's /status, /ready and /metrics, and at the end
from its journal, audited against the emulator like after the chaos test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.system.binance_harness import (
    DaemonProcess,
    EmulatorProcess,
    audit,
    final_clean_run,
    http_json,
    read_journal,
    wait_for,
)

# Scenario knobs of the daemon: a short request timeout (timed-out order), a breaker that
# opens after two venue errors and half-opens after a second (418).
EXTRA_RISK = "breaker_error_threshold = 2\nbreaker_cooldown_s = 1.0\n"
MARGIN_MS = 50  # a request sent just before the daemon learnt of a fault may still arrive
# On a loaded machine (two test workers, other jobs) the emulator may read an order the daemon
# sent before the fault's answer reached it later than MARGIN_MS: the other symbol's order, one
# request at most, within IN_FLIGHT_MS. Anything later, or a second one, was sent during the fault.
IN_FLIGHT_MS = 1000


def sent_during(log: list[dict[str, Any]], answered_ms: int, until_ms: int) -> list[dict[str, Any]]:
    """Requests of `log` the daemon sent while it knew of a fault answered at `answered_ms` that
    lasts until `until_ms` (see IN_FLIGHT_MS)."""
    late = [r for r in log if answered_ms + MARGIN_MS <= r["received_ms"] < until_ms]
    if len(late) == 1 and late[0]["received_ms"] < answered_ms + IN_FLIGHT_MS:
        return []
    return late


@dataclass
class Pair:
    """The running emulator and daemon."""

    emu: EmulatorProcess
    daemon: DaemonProcess

    def now_ms(self) -> int:
        """The emulator's server time."""
        return int(self.emu.state()["server_time_ms"])

    def mark(self) -> int:
        """How many new-order requests arrived so far (for `orders_after`)."""
        return len(self.emu.state()["new_order_requests"])

    def orders_after(self, mark: int, ok: bool | None = None) -> list[dict[str, Any]]:
        """New-order requests that arrived after `mark` (answered 2xx or not)."""
        reqs = self.emu.state()["new_order_requests"][mark:]
        return [r for r in reqs if ok is None or (r.get("status", 0) < 300) == ok]

    def orders_since(self, ts_ms: int, symbol: str | None = None, ok: bool | None = None) -> list[dict[str, Any]]:
        """New-order requests that arrived at or after server time `ts_ms` (of one symbol; answered 2xx or not)."""
        out = []
        for r in self.emu.state()["new_order_requests"]:
            if r["ts_ms"] < ts_ms or (symbol is not None and r.get("symbol") != symbol):
                continue
            if ok is not None and (r.get("status", 0) < 300) != ok:
                continue
            out.append(r)
        return out

    def wait_trading(self, since_ms: int, what: str, symbol: str | None = None) -> dict[str, Any]:
        """Wait until an order of `symbol` arrived after `since_ms` and was accepted."""
        return wait_for(lambda: next(iter(self.orders_since(since_ms, symbol, ok=True)), None), what, poll_s=0.05)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """The emulator (metered, like Binance) and the daemon trading on it."""
    work = tmp_path_factory.mktemp("scenarios")
    emu = EmulatorProcess(work, symbols=("BTCUSDT", "ETHUSDT"), tick_interval_s=0.005, market_time_scale=20).start()
    daemon = DaemonProcess(work, emu, request_timeout_s=1.0, extra_toml=EXTRA_RISK)
    try:
        daemon.start()
        daemon.wait_ready()
        p = Pair(emu, daemon)
        p.wait_trading(0, "the first order")
        yield p
    finally:
        daemon.close()
        emu.stop()


def test_a_start_into_an_ip_ban_waits_it_out_instead_of_exiting(tmp_path: Path) -> None:
    emu = EmulatorProcess(tmp_path, symbols=("BTCUSDT",), tick_interval_s=0.05).start()
    daemon = DaemonProcess(tmp_path, emu, symbols=("BTCUSDT",))
    try:
        emu.faults(errors=[{"path": "/api/v3/exchangeInfo", "status": 418, "code": -1003, "retry_after_s": 2}])
        daemon.start(initial_state="HALTED")
        daemon.wait_ready()
        waits = daemon.log_events("binance_start_waiting")
        # One wait for the ban (a second, local one may follow when the timer ends a few ms
        # before the ban does: nothing is sent then either).
        assert waits and {w["step"] for w in waits} == {"instruments"}, waits
        st = emu.state()
        banned = next(r for r in st["request_log"] if r["status"] == 418)
        during = [r for r in st["request_log"] if banned["ts_ms"] < r["received_ms"] < st["banned_until_ms"]]
        assert during == [], f"requests sent during the ban: {during}"
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        emu.stop()


def test_websocket_drop_reconnects_resubscribes_and_trading_resumes(pair: Pair) -> None:
    emu = pair.emu
    before = emu.state()
    streams = set(before["subscriptions"])
    emu.faults(close_websockets="all")
    wait_for(lambda: (lambda s: s["ws_connects"]["market"] > before["ws_connects"]["market"]
                      and s["ws_connects"]["user"] > before["ws_connects"]["user"]
                      and s["connections"] == {"market": 1, "user": 1}
                      and set(s["subscriptions"]) == streams)(emu.state()), "reconnect and resubscribe")
    pair.wait_trading(pair.now_ms(), "an order after the reconnect")
    st = wait_for(lambda: (lambda s: s if not s["risk"]["books_invalid"] else None)(pair.daemon.status()),
                  "books valid again")
    assert st["components"]["binance_spot"]["healthy"] is True, st["components"]["binance_spot"]


def test_depth_gap_invalidates_the_book_and_no_order_is_placed_on_it_until_resynced(pair: Pair) -> None:
    emu, daemon = pair.emu, pair.daemon
    denied_before = daemon.metric("risk_denials_total", reason="book_invalid")
    t0 = pair.now_ms()
    # The snapshot answer is delayed 1.5 s so the book stays invalid long enough to matter.
    emu.faults(delay_ms={"/api/v3/depth": 1500}, skip_depth_updates=1)

    def snapshot_answered() -> dict[str, Any] | None:
        log = emu.state()["request_log"]
        return next((r for r in log if r["path"] == "/api/v3/depth" and r["received_ms"] >= t0), None)

    snap = wait_for(snapshot_answered, "the resync snapshot")
    emu.faults(delay_ms={})
    invalid_from, invalid_to = snap["received_ms"] + MARGIN_MS, snap["ts_ms"]
    placed = [r for r in pair.orders_since(invalid_from, "BTCUSDT") if r["ts_ms"] < invalid_to]
    assert placed == [], f"orders on BTCUSDT while its book was invalid: {placed}"
    others = [r for r in pair.orders_since(invalid_from, "ETHUSDT") if r["ts_ms"] < invalid_to]
    assert others, "ETHUSDT (valid book) kept trading meanwhile"
    assert daemon.metric("risk_denials_total", reason="book_invalid") > denied_before
    pair.wait_trading(invalid_to, "a BTCUSDT order after the resync", symbol="BTCUSDT")
    assert daemon.status()["risk"]["books_invalid"] == []


def _rest_stats(daemon: DaemonProcess) -> dict[str, int]:
    return dict(daemon.status()["components"]["binance_spot"]["info"]["rest"])


def test_http_429_is_backed_off_for_retry_after_without_a_ban(pair: Pair) -> None:
    emu = pair.emu
    bans_before = emu.state()["bans"]
    held_back = _rest_stats(pair.daemon)["rate_limited_fast"]
    t0 = pair.now_ms()
    emu.faults(errors=[{"path": "/api/v3/order", "method": "POST", "status": 429, "code": -1003,
                        "retry_after_s": 2, "count": 1}])
    limited = wait_for(lambda: next(iter(r for r in emu.state()["request_log"]
                                         if r["received_ms"] >= t0 and r["status"] == 429), None), "the 429")
    until_ms = emu.state()["limited_until_ms"]
    assert until_ms >= limited["received_ms"] + 2000
    pair.wait_trading(until_ms, "an order after Retry-After")
    st = emu.state()
    during = sent_during(st["request_log"], limited["ts_ms"], until_ms)
    assert during == [], f"requests sent during the 429 back-off: {during}"
    assert st["bans"] == bans_before
    assert _rest_stats(pair.daemon)["rate_limited_fast"] > held_back, "the daemon wanted to send meanwhile"


def test_http_418_bans_opens_the_breaker_and_trading_continues_after_the_ban(pair: Pair) -> None:
    emu, daemon = pair.emu, pair.daemon
    held_back = _rest_stats(daemon)["banned_fast"]
    t0 = pair.now_ms()
    emu.faults(errors=[{"path": "/api/v3/order", "method": "POST", "status": 418, "code": -1003,
                        "retry_after_s": 3, "count": 1}])
    banned = wait_for(lambda: next(iter(r for r in emu.state()["request_log"]
                                        if r["received_ms"] >= t0 and r["status"] == 418), None), "the 418")
    wait_for(lambda: daemon.status()["risk"]["breakers"].get("binance_spot") == "open", "the breaker open")
    status, ready = http_json(daemon.base + "/ready")
    assert status == 503 and any("banned" in r for r in ready["reasons"]), ready
    until_ms = emu.state()["banned_until_ms"]
    pair.wait_trading(until_ms, "an order after the ban")
    wait_for(lambda: daemon.status()["risk"]["breakers"].get("binance_spot") == "closed", "the breaker closed")
    during = sent_during(emu.state()["request_log"], banned["ts_ms"], until_ms)
    assert during == [], f"requests sent during the ban: {during}"
    assert _rest_stats(daemon)["banned_fast"] > held_back, "the daemon wanted to send meanwhile"


def _offset_ms(daemon: DaemonProcess) -> int:
    return int(daemon.status()["components"]["binance_spot"]["info"]["time_offset_ms"])


def test_timestamp_error_resyncs_time_and_retries_the_order_once(pair: Pair) -> None:
    emu, daemon = pair.emu, pair.daemon
    refused: dict[str, Any] | None = None
    skew_ms = 0
    for skew_ms in (10_000, 20_000, 30_000):  # until the refused request is an order
        mark = pair.mark()
        emu.faults(time_skew_ms=skew_ms)
        wait_for(lambda s=skew_ms: abs(_offset_ms(daemon) - s) < 1000, "the re-sync")
        refused = next((r for r in pair.orders_after(mark) if r.get("code") == -1021), None)
        if refused is not None:
            break
    assert refused is not None, "no order was refused with -1021"
    cid = refused["client_order_id"]
    reqs = wait_for(lambda: (lambda rs: rs if any(r.get("status") == 200 for r in rs) else None)(
        [r for r in pair.orders_after(mark) if r["client_order_id"] == cid]), "the retry of the refused order")
    assert [r.get("code") for r in reqs] == [-1021, None]  # refused, then the one retry, accepted
    assert emu.state()["client_order_ids"].count(cid) == 1
    mark = pair.mark()
    emu.faults(time_skew_ms=0)  # the daemon is now ahead: -1021 again, re-sync again
    wait_for(lambda: abs(_offset_ms(daemon)) < 1000, "the re-sync after the skew is gone")
    wait_for(lambda: pair.orders_after(mark, ok=True), "an order after the skew is gone")


def test_an_order_whose_answer_never_comes_is_resolved_by_query_and_never_resent(pair: Pair) -> None:
    emu, daemon = pair.emu, pair.daemon
    emu.faults(timeout_order_responses=1)
    held = wait_for(lambda: next(iter(emu.state()["withheld_orders"][-1:]), None), "an order whose answer is withheld")
    cid = held["client_order_id"]
    # The daemon gives up waiting after request_timeout_s (1 s) and asks the venue.
    wait_for(lambda: any(r["method"] == "GET" and r["path"] == "/api/v3/order" and r["received_ms"] >= held["ts_ms"] + 900
                         for r in emu.state()["request_log"]), f"a query of {cid} after the timeout")
    wait_for(lambda: daemon.status()["execution"]["unknown_outcome"] == [], "the outcome resolved")
    order = next(o for o in daemon.get("/orders?limit=500")["orders"] if o["client_order_id"] == cid)
    assert order["status"] == "FILLED"
    st = emu.state()
    assert [r["client_order_id"] for r in st["new_order_requests"]].count(cid) == 1
    assert st["client_order_ids"].count(cid) == 1
    fills = daemon.get("/fills?limit=10000")["fills"]
    assert any(f["client_order_id"] == cid for f in fills), "its fill was booked"


def test_after_every_fault_the_journal_agrees_with_the_venue(pair: Pair) -> None:
    daemon = pair.daemon
    assert daemon.terminate() == 0
    final = final_clean_run(daemon)
    assert final["reconciliation"]["binance_spot"]["ok"] is True, final["reconciliation"]
    result = audit(read_journal(daemon.journal_path), pair.emu.state())
    assert result.problems == [], result.problems[:20]
