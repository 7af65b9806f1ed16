"""The chaos storm against a USD-M futures emulator: SIGKILLs at random moments (every
fifth while an executed order's answer is withheld), then a clean HALTED start and the
money audit. On futures the audit also replays the journaled fills into Binance's one-way
book (average entry, realized PnL, fees) and finds the venue's wallet and net positions.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.system.binance_harness import ChaosRun, run_chaos

KILLS = 20
HELD_EVERY = 5
SEED = 20261126
MIN_ORDERS = 30


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> ChaosRun:
    """Run the storm with its kills once for every test of this module."""
    return run_chaos(tmp_path_factory.mktemp("chaos-usdm"), KILLS, SEED, market="usdm", held_order_every=HELD_EVERY)


def test_the_storm_traded_futures_and_every_kill_landed(chaos: ChaosRun) -> None:
    assert chaos.stats.kills == KILLS and chaos.stats.early_exits == []
    assert chaos.audit.summary["venue_orders"] >= MIN_ORDERS, chaos.audit.summary
    assert chaos.stats.kills_with_held_order == KILLS // HELD_EVERY
    assert chaos.recovery["resolved_orders"] >= chaos.stats.kills_with_held_order, chaos.recovery


def test_no_client_order_id_reached_the_venue_twice(chaos: ChaosRun) -> None:
    assert chaos.audit.requests == []
    assert chaos.audit.ids == []


def test_no_fill_was_lost_or_counted_twice(chaos: ChaosRun) -> None:
    assert chaos.audit.fills == []
    assert chaos.audit.summary["journal_fills"] == chaos.audit.summary["venue_fills"] > 0


def test_wallet_and_net_positions_from_the_journal_equal_the_venue(chaos: ChaosRun) -> None:
    assert chaos.audit.balances == []
    assert Decimal(chaos.audit.summary["balances"]["USDT"]) != Decimal(100_000)  # fees were paid


def test_every_order_has_the_venue_status_and_none_was_doubled(chaos: ChaosRun) -> None:
    assert chaos.audit.orders == [] and chaos.audit.positions == []


def test_every_start_reconciled_cleanly(chaos: ChaosRun) -> None:
    assert chaos.stats.halted_after_start == []
    assert chaos.final_status["reconciliation"]["binance_usdm"]["ok"] is True, chaos.final_status["reconciliation"]
    assert chaos.final_status["execution"]["unknown_outcome"] == []
    assert chaos.final_status["open_orders"] == []
