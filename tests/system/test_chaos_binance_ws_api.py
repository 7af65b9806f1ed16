"""Kills and withheld answers with `order_entry = "ws_api"`: the chaos storm of
tests/system/test_chaos_binance.py, shorter, with orders over the WebSocket API.

The daemon and the emulator run as two processes (tests/system/binance_harness.py). The
harness's config template has no hook inside `[venues.binance_spot]`, so the two keys
are added to the written file. The harness's order faults reach the WebSocket API too:
its delay on `/api/v3/order` applies to the `order.place` twin, and
`timeout_order_responses` withholds the answer frame of an executed order. 20 SIGKILLs
(every fifth while such an answer is withheld), then a clean HALTED start and the money
audit: no client order id processed twice, nothing lost or doubled.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.binance_harness import ChaosRun, DaemonProcess, run_chaos

KILLS = 20
HELD_EVERY = 5
SEED = 20261125
MIN_ORDERS = 30


class WsApiDaemon(DaemonProcess):
    """The harness daemon with `order_entry = "ws_api"` pointed at the emulator's WebSocket API."""

    def write_config(self, initial_state: str = "ACTIVE") -> Path:
        """The harness config plus the two keys inside [venues.binance_spot]."""
        path = super().write_config(initial_state)
        text = path.read_text()
        keys = f'order_entry = "ws_api"\nws_api_url = "{self.emulator.ws_url}/ws-api/v3"\n'
        assert "[venues.binance_spot]\n" in text
        path.write_text(text.replace("[venues.binance_spot]\n", "[venues.binance_spot]\n" + keys, 1))
        return path


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> ChaosRun:
    """Run the storm with its kills once for every test of this module."""
    return run_chaos(tmp_path_factory.mktemp("chaos-ws-api"), KILLS, SEED, WsApiDaemon, held_order_every=HELD_EVERY)


def test_orders_went_over_the_ws_api_and_every_kill_landed(chaos: ChaosRun) -> None:
    assert chaos.stats.kills == KILLS and chaos.stats.early_exits == []
    assert chaos.audit.summary["venue_orders"] >= MIN_ORDERS, chaos.audit.summary
    # A few orders may go by REST: sent before the WebSocket API connected after a start.
    assert chaos.transports["ws_api"] >= 0.8 * sum(chaos.transports.values()), chaos.transports
    assert chaos.stats.kills_with_held_order == KILLS // HELD_EVERY
    assert chaos.recovery["resolved_orders"] >= chaos.stats.kills_with_held_order, chaos.recovery


def test_no_client_order_id_reached_the_venue_twice(chaos: ChaosRun) -> None:
    assert chaos.audit.requests == []
    assert chaos.audit.ids == []


def test_no_fill_was_lost_or_counted_twice_and_balances_agree(chaos: ChaosRun) -> None:
    assert chaos.audit.fills == [] and chaos.audit.balances == []
    assert chaos.audit.summary["journal_fills"] == chaos.audit.summary["venue_fills"] > 0


def test_every_order_has_the_venue_status_and_none_was_doubled(chaos: ChaosRun) -> None:
    assert chaos.audit.orders == [] and chaos.audit.positions == []


def test_every_start_reconciled_cleanly(chaos: ChaosRun) -> None:
    assert chaos.stats.halted_after_start == []
    assert chaos.final_status["reconciliation"]["binance_spot"]["ok"] is True, chaos.final_status["reconciliation"]
    assert chaos.final_status["execution"]["unknown_outcome"] == []
    assert chaos.final_status["open_orders"] == []
