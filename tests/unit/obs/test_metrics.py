"""Node metrics that follow bus events."""

from __future__ import annotations

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.messages import JournalGapDetected
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
