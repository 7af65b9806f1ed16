"""Metric definitions. One CollectorRegistry per node instance, so tests never share state.

Most metrics are fed by subscribing to the bus (denials, breaker changes, reloads, fills
...) or by collectors that read component state at scrape time (bus counters, component
up/restarts). Names follow Prometheus conventions: base units, `_total` for counters,
`_seconds` for durations.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nautilus_hmm import __version__
from nautilus_hmm.core.bus import Bus, BusStats
from nautilus_hmm.messages import (
    AdminAction,
    BreakerStateChanged,
    ConfigApplied,
    ConfigRejected,
    JournalGapDetected,
    ModelChanged,
    ReconciliationCompleted,
    RiskDenied,
    TradingStateChanged,
)

# `_created` series double the exposition size and no dashboard here uses them.
disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAG_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HTTP_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _BusCollector(Collector):
    def __init__(self, stats: BusStats) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Metric]:
        published = CounterMetricFamily("bus_messages_published", "Messages published by type", labels=["type"])
        for k, v in self.stats.published.items():
            published.add_metric([k], v)
        delivered = CounterMetricFamily(
            "bus_messages_delivered", "Messages enqueued to queue subscribers", labels=["subscriber"]
        )
        for k, v in self.stats.delivered.items():
            delivered.add_metric([k], v)
        dropped = CounterMetricFamily(
            "bus_messages_dropped", "Messages dropped by queue subscribers' overflow policy", labels=["subscriber"]
        )
        for k, v in self.stats.dropped.items():
            dropped.add_metric([k], v)
        errors = CounterMetricFamily(
            "bus_handler_errors", "Exceptions raised by bus handlers", labels=["subscriber"]
        )
        for k, v in self.stats.handler_errors.items():
            errors.add_metric([k], v)
        return [published, delivered, dropped, errors]


class _FuncCollector(Collector):
    """Collects families produced by a callback at scrape time."""

    def __init__(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self.fn = fn

    def collect(self) -> Iterable[Metric]:
        return list(self.fn())


class NodeMetrics:
    """All metrics of one node instance."""

    def __init__(self, bus: Bus, started_monotonic: float | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._started = started_monotonic if started_monotonic is not None else time.monotonic()
        build = Gauge(
            "nautilus_hmm_build_info", "Build information (always 1)", ["version", "python"], registry=r
        )
        build.labels(__version__, platform.python_version()).set(1)
        self.uptime = Gauge("process_uptime_seconds", "Seconds since the node started", registry=r)
        self.uptime.set_function(lambda: time.monotonic() - self._started)
        self.loop_lag = Histogram(
            "event_loop_lag_seconds", "Event-loop scheduling lag", buckets=LAG_BUCKETS_S, registry=r
        )
        self.config_reloads = Counter("config_reloads", "Config reloads by result", ["result"], registry=r)
        self.config_loaded = Gauge(
            "config_last_reload_timestamp_seconds", "When the active config was loaded", registry=r
        )
        self.http_requests = Counter(
            "http_requests", "HTTP requests by route, method and status", ["route", "method", "status"], registry=r
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency by route", ["route"],
            buckets=HTTP_BUCKETS_S, registry=r,
        )
        self.admin_actions = Counter("admin_actions", "Admin actions by action and result", ["action", "result"], registry=r)
        self.risk_denials = Counter("risk_denials", "Orders denied by the risk gate", ["reason"], registry=r)
        self.breaker_state = Gauge(
            "breaker_state", "Venue error breaker: 0 closed, 1 open, 2 half-open", ["venue"], registry=r
        )
        self.trading_state = Gauge(
            "trading_state", "1 for the current trading state", ["state"], registry=r
        )
        for state in ("ACTIVE", "REDUCING", "HALTED"):
            self.trading_state.labels(state).set(1 if state == "HALTED" else 0)
        self.sse_clients = Gauge("sse_clients", "Connected event-stream clients", registry=r)
        self.journal_gaps = Counter(
            "journal_gaps_detected", "Reconciliations that found orders or fills of ours the journal lacked "
            "(adopted; trading halted)", ["venue"], registry=r,
        )
        self.reconciliations = Counter(
            "reconciliations", "Reconciliation passes by venue and result (ok | mismatch)", ["venue", "result"],
            registry=r,
        )
        self.reconcile_discrepancies = Counter(
            "reconciliation_discrepancies", "Discrepancies found between our books and a venue's", ["venue"],
            registry=r,
        )
        self.model_events = Counter(
            "model_events", "Model lifecycle events (trained, training_failed, promoted, rollback, canary ...)",
            ["event"], registry=r,
        )
        # Set by a training that finished in this process; no sample after a restart until the next
        # one (a 0 would read as "trained in 1970"; the ModelStale rule covers it with the uptime).
        self.model_trained_at_s: float | None = None
        self.add_collector(lambda: [gauge_family(
            "model_last_trained_timestamp_seconds", "Unix time of the last successful model training "
            "in this process", [], [([], self.model_trained_at_s)] if self.model_trained_at_s is not None else [],
        )])
        r.register(_BusCollector(bus.stats))
        bus.subscribe(RiskDenied, self._on_denied, name="metrics")
        bus.subscribe(BreakerStateChanged, self._on_breaker, name="metrics")
        bus.subscribe(TradingStateChanged, self._on_trading_state, name="metrics")
        bus.subscribe(ConfigApplied, lambda m: self.config_reloads.labels("applied").inc(), name="metrics")
        bus.subscribe(ConfigRejected, self._on_rejected, name="metrics")
        bus.subscribe(JournalGapDetected, lambda m: self.journal_gaps.labels(m.venue).inc(), name="metrics")
        bus.subscribe(AdminAction, lambda m: self.admin_actions.labels(m.action, m.result).inc(), name="metrics")
        bus.subscribe(ReconciliationCompleted, self._on_reconciled, name="metrics")
        bus.subscribe(ModelChanged, self._on_model_changed, name="metrics")
        for result in ("applied", "invalid", "restart_required", "failed"):
            self.config_reloads.labels(result)
        # Present at 0 from the start, so increase() sees the first training failure.
        for event in ("trained", "training_failed"):
            self.model_events.labels(event)

    def add_collector(self, fn: Callable[[], Iterable[Metric]]) -> None:
        """Register a scrape-time callback producing metric families."""
        self.registry.register(_FuncCollector(fn))

    def _on_denied(self, m: RiskDenied) -> None:
        self.risk_denials.labels(m.reason).inc()

    def _on_breaker(self, m: BreakerStateChanged) -> None:
        self.breaker_state.labels(m.venue).set(m.new.gauge_value)

    def _on_trading_state(self, m: TradingStateChanged) -> None:
        for state in ("ACTIVE", "REDUCING", "HALTED"):
            self.trading_state.labels(state).set(1 if state == m.new.value else 0)

    def _on_reconciled(self, m: ReconciliationCompleted) -> None:
        self.reconciliations.labels(m.venue, "ok" if m.ok else "mismatch").inc()
        # Touched on a clean pass too, so the series exists (at 0) before the first mismatch.
        self.reconcile_discrepancies.labels(m.venue).inc(len(m.discrepancies))

    def _on_model_changed(self, m: ModelChanged) -> None:
        self.model_events.labels(m.event).inc()
        if m.event == "trained":
            self.model_trained_at_s = m.ts_event_ns / 1e9

    def _on_rejected(self, m: ConfigRejected) -> None:
        self.config_reloads.labels(m.result).inc()

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)


def gauge_family(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> GaugeMetricFamily:
    """A gauge family from (label values, value) rows (for scrape-time collectors)."""
    fam = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in rows:
        fam.add_metric(label_values, value)
    return fam


def counter_family(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> CounterMetricFamily:
    """A counter family from (label values, value) rows; `name` without `_total`."""
    fam = CounterMetricFamily(name, doc, labels=labels)
    for label_values, value in rows:
        fam.add_metric(label_values, value)
    return fam
