"""Node metrics that follow bus events."""

from __future__ import annotations

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.messages import JournalGapDetected, ModelChanged, ReconciliationCompleted
from nautilus_hmm.obs.metrics import NodeMetrics


def test_a_journal_gap_is_counted_per_venue() -> None:
    bus = Bus()
    metrics = NodeMetrics(bus)
    gap = JournalGapDetected(ts_event_ns=1, ts_init_ns=1, venue="binance_spot", client_order_ids=("nh-a-b-7",),
                             fills=1, detail="lost tail")
    bus.publish(gap)
    bus.publish(gap)
    assert metrics.registry.get_sample_value("journal_gaps_detected_total", {"venue": "binance_spot"}) == 2.0
    assert b"journal_gaps_detected_total" in metrics.render()


def test_reconciliation_passes_and_discrepancies_are_counted_per_venue() -> None:
    bus = Bus()
    metrics = NodeMetrics(bus)
    bus.publish(ReconciliationCompleted(ts_event_ns=1, ts_init_ns=1, venue="sim", ok=True, discrepancies=()))
    get = metrics.registry.get_sample_value
    assert get("reconciliation_discrepancies_total", {"venue": "sim"}) == 0.0
    bus.publish(ReconciliationCompleted(ts_event_ns=2, ts_init_ns=2, venue="sim", ok=False,
                                        discrepancies=("a: open here, unknown to the venue", "USDT: balance")))
    assert get("reconciliation_discrepancies_total", {"venue": "sim"}) == 2.0
    assert get("reconciliations_total", {"venue": "sim", "result": "mismatch"}) == 1.0
    assert get("reconciliations_total", {"venue": "sim", "result": "ok"}) == 1.0


def test_last_trained_timestamp_is_absent_until_a_training_succeeds() -> None:
    bus = Bus()
    metrics = NodeMetrics(bus)
    get = metrics.registry.get_sample_value
    assert get("model_last_trained_timestamp_seconds") is None
    assert get("model_events_total", {"event": "training_failed"}) == 0.0
    bus.publish(ModelChanged(ts_event_ns=5 * 10**9, ts_init_ns=5 * 10**9, model_id="", event="training_failed"))
    assert get("model_last_trained_timestamp_seconds") is None
    bus.publish(ModelChanged(ts_event_ns=7 * 10**9, ts_init_ns=7 * 10**9, model_id="m1", event="trained"))
    assert get("model_last_trained_timestamp_seconds") == 7.0
    assert get("model_events_total", {"event": "training_failed"}) == 1.0
