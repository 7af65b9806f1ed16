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
        r.register(_BusCollector(bus.stats))
        bus.subscribe(RiskDenied, self._on_denied, name="metrics")
        bus.subscribe(BreakerStateChanged, self._on_breaker, name="metrics")
        bus.subscribe(TradingStateChanged, self._on_trading_state, name="metrics")
        bus.subscribe(ConfigApplied, lambda m: self.config_reloads.labels("applied").inc(), name="metrics")
        bus.subscribe(ConfigRejected, self._on_rejected, name="metrics")
        bus.subscribe(JournalGapDetected, lambda m: self.journal_gaps.labels(m.venue).inc(), name="metrics")
        bus.subscribe(AdminAction, lambda m: self.admin_actions.labels(m.action, m.result).inc(), name="metrics")
        for result in ("applied", "invalid", "restart_required", "failed"):
            self.config_reloads.labels(result)

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
