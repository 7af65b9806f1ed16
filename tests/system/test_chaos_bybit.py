"""Chaos against the Bybit emulator: the daemon (its own process) trades in an order storm and is
SIGKILLed at random moments, 20 times for spot and 20 times for linear USDT perpetuals (plus a
shorter run with orders over the trade WebSocket); afterwards the journal and the venue agree.

The storm: `sma_cross` fast=1 slow=2 on 1 m klines (Bybit's shortest) of two symbols, with the
emulator's market time running 1200x the wall clock (a kline closes every 50 ms), so the
strategy flips several times per symbol in every half second of trading. Kills land after
READY while trading (a random 0.3-1.5 s: the first bar closes about 0.4 s after READY), during
start-up recovery, and every fifth one
while an order has been executed by the venue but its answer withheld (`withhold_order_responses`:
the daemon sees a timeout, an unknown outcome it must resolve by query, never by resending).
Each cycle puts a random delay on `/v5/order/create` so that kills often catch a request in
flight. The emulator is unmetered (a restart every few seconds would spend Bybit's per-second
order budget; the limits have their own tests).

A final start in HALTED (nothing trades) must reconcile cleanly and stop on SIGTERM; then the
journal, opened read-only, is audited against `GET /_emulator/state` (`tests/system/bybit_harness`):
no orderLinkId processed twice, every id the venue saw journaled first, no fill (execType Trade,
by execId) lost or booked twice, the journal's balances (spot: coins; linear: the USDT wallet by
Bybit's one-way rule, and the net positions) equal to the venue's, every order's final status
equal, and the long/flat strategy's position never outside 0..quantity (a doubled order would be).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from tests.system.binance_harness import ChaosRun
from tests.system.bybit_harness import run_chaos

KILLS = 20
HELD_EVERY = 5
MIN_ORDERS = 10


@dataclass
class Storm:
    """One storm's outcome and what it was."""

    run: ChaosRun
    category: str
    order_entry: str
    kills: int


@pytest.fixture(scope="module", params=[("spot", "rest", KILLS, 20261203), ("linear", "rest", KILLS, 20261204),
                                        ("linear", "ws_trade", 8, 20261205)],
                ids=["spot", "linear", "linear-ws-trade"])
def chaos(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Storm:
    """Run one storm with its kills once for every test of this module."""
    category, order_entry, kills, seed = request.param
    run = run_chaos(tmp_path_factory.mktemp(f"chaos-bybit-{category}-{order_entry}"), kills, seed, category,
                    order_entry=order_entry, held_order_every=HELD_EVERY)
    return Storm(run, category, order_entry, kills)


def test_the_storm_traded_and_every_kill_landed(chaos: Storm) -> None:
    run, kills = chaos.run, chaos.kills
    assert run.stats.kills == kills and run.stats.early_exits == [], "the daemon exited on its own"
    assert run.audit.summary["venue_orders"] >= min(MIN_ORDERS, kills), run.audit.summary
    # Kills with an executed order whose answer never came were resolved by query.
    assert run.stats.kills_with_held_order == kills // HELD_EVERY
    assert run.recovery["resolved_orders"] >= run.stats.kills_with_held_order, run.recovery


def test_orders_went_over_the_configured_transport(chaos: Storm) -> None:
    run = chaos.run
    total = sum(run.transports.values())
    assert total == run.audit.summary["new_order_requests"] > 0
    if chaos.order_entry == "rest":
        assert run.transports == {"rest": total}, run.transports
    else:  # a few may go by REST: sent before the trade WebSocket authenticated after a start
        assert run.transports["ws_trade"] >= 0.8 * total, run.transports


def test_no_order_link_id_reached_the_venue_twice_and_every_one_was_journaled(chaos: Storm) -> None:
    run = chaos.run
    assert run.audit.requests == []
    assert run.audit.ids == []


def test_no_fill_was_lost_or_counted_twice(chaos: Storm) -> None:
    run = chaos.run
    assert run.audit.fills == []
    assert run.audit.summary["journal_fills"] == run.audit.summary["venue_fills"] > 0


def test_balances_and_positions_from_the_journal_equal_the_venue_including_fees(
        chaos: Storm) -> None:
    run, category = chaos.run, chaos.category
    assert run.audit.balances == []
    if category == "linear":
        assert Decimal(run.audit.summary["balances"]["USDT"]) != Decimal(100_000)  # fees and PnL were booked


def test_every_order_has_the_venue_status_and_none_was_doubled(chaos: Storm) -> None:
    run = chaos.run
    assert run.audit.orders == [] and run.audit.positions == []


def test_every_start_reconciled_cleanly(chaos: Storm) -> None:
    run, category = chaos.run, chaos.category
    assert run.stats.halted_after_start == []
    venue = f"bybit_{category}"
    assert run.final_status["reconciliation"][venue]["ok"] is True, run.final_status["reconciliation"]
    assert run.final_status["execution"]["unknown_outcome"] == []
    assert run.final_status["open_orders"] == []
