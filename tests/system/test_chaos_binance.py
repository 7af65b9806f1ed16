"""Chaos: the daemon trades against the Binance emulator (two processes) in an order storm and
is SIGKILLed at random moments, 50 times; afterwards the journal and the venue agree.

The storm: `sma_cross` fast=1 slow=2 on 1 s klines of two symbols, with the emulator's
market time running 20x the wall clock (a kline closes every 50 ms), so the strategy flips
a few times per symbol in every half second of trading. Kills land after READY while
trading (a random 0.05-0.8 s), during start-up recovery, and every tenth one while an
order has been executed by the venue but its answer withheld. Each cycle puts a random
delay on the order endpoint so that kills often catch a request in flight. The emulator
is unmetered: 50 starts a minute need ~28k request weight a minute, far over Binance's
6000 (the weight rules have their own tests).

A final start in HALTED (nothing trades) must reconcile cleanly and stop on SIGTERM;
then the journal, opened read-only, is audited against `GET /_emulator/state`
(`tests/system/binance_harness.audit`).
"""

from __future__ import annotations

import pytest

from tests.system.binance_harness import ChaosRun, run_chaos

KILLS = 50
SEED = 20261124
MIN_ORDERS = 100


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> ChaosRun:
    """Run the storm with its kills once for every test of this module."""
    return run_chaos(tmp_path_factory.mktemp("chaos"), KILLS, SEED)


def test_the_storm_traded_and_every_kill_landed(chaos: ChaosRun) -> None:
    assert chaos.stats.kills == KILLS
    assert chaos.stats.early_exits == [], "the daemon exited on its own"
    assert chaos.audit.summary["venue_orders"] >= MIN_ORDERS, chaos.audit.summary
    # Kills with an executed order whose answer never came were resolved by query.
    assert chaos.stats.kills_with_held_order >= KILLS // 10
    assert chaos.recovery["resolved_orders"] >= chaos.stats.kills_with_held_order, chaos.recovery


def test_no_client_order_id_reached_the_venue_twice(chaos: ChaosRun) -> None:
    assert chaos.audit.requests == []


def test_every_order_the_venue_saw_was_journaled_and_no_id_was_minted_twice(chaos: ChaosRun) -> None:
    assert chaos.audit.ids == []


def test_no_fill_was_lost_or_counted_twice(chaos: ChaosRun) -> None:
    assert chaos.audit.fills == []
    assert chaos.audit.summary["journal_fills"] == chaos.audit.summary["venue_fills"] > 0


def test_balances_from_the_journal_equal_the_venue_including_fees(chaos: ChaosRun) -> None:
    assert chaos.audit.balances == []


def test_every_journaled_order_has_the_venue_final_status(chaos: ChaosRun) -> None:
    assert chaos.audit.orders == []


def test_no_order_was_doubled_positions_stay_long_or_flat(chaos: ChaosRun) -> None:
    assert chaos.audit.positions == []


def test_every_start_reconciled_cleanly(chaos: ChaosRun) -> None:
    assert chaos.stats.halted_after_start == []
    assert chaos.final_status["reconciliation"]["binance_spot"]["ok"] is True, chaos.final_status["reconciliation"]
    assert chaos.final_status["execution"]["unknown_outcome"] == []
    assert chaos.final_status["open_orders"] == []
