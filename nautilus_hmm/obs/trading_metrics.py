"""Scrape-time metrics of the trading stack: orders, fills, fees, positions, equity, journal.

Money metrics keep their `_usd` names (dashboards and alert rules use them) but are in the
account currency: the quote asset the traded instruments share, which need not be USD.
`account_currency_info{currency}` (always 1) names it, read from the portfolio at scrape time.

`market_data_age_seconds{instrument}` is read from the one mark book's receipt times (our
clock): an instrument that has had no data yet counts from when these metrics were built.
Venues that implement `VenueMetricsSource` (the Binance adapter) add websocket reconnects and
the request-weight budget; every family is emitted even without samples, so a rule or a
dashboard that queries one always finds its name in a scrape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from prometheus_client.core import Metric

from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.messages import Fill, OrderEvent
from nautilus_hmm.obs.metrics import NodeMetrics, counter_family, gauge_family

_IN_ACCOUNT_CURRENCY = ", in the account currency (see account_currency_info)"
_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class VenueMetricsSnapshot:
    """What a venue adds to a scrape: reconnects and connection state per stream, request weight."""

    ws_reconnects: Mapping[str, int] = field(default_factory=dict)  # by stream name (market, user, ws_api)
    ws_connected: Mapping[str, bool] = field(default_factory=dict)
    weight_used_1m: int | None = None  # None: the venue has no request-weight budget
    weight_limit_1m: int | None = None
    error_answers: Mapping[str, int] = field(default_factory=dict)  # error answers by venue code (Bybit retCode)


@runtime_checkable
class VenueMetricsSource(Protocol):
    """A venue that reports metrics at scrape time (optional beside the Venue port)."""

    def metrics_snapshot(self) -> VenueMetricsSnapshot:
        """Counters and budgets as of now; cheap, no I/O."""
        ...


class TradingMetrics:
    """Counts order events and fills from the bus; reads positions and equity at scrape time."""

    def __init__(self, metrics: NodeMetrics, stack: Any) -> None:
        self.stack = stack
        self.order_events: Counter[str] = Counter()
        self.fills: Counter[tuple[str, str]] = Counter()
        self.fees: dict[str, float] = {}
        stack.bus.subscribe(OrderEvent, self._on_order, name="metrics")
        stack.bus.subscribe(Fill, self._on_fill, name="metrics")
        self._since_ns = stack.clock.time_ns()
        metrics.add_collector(self.collect)
        metrics.add_collector(self.collect_market_and_venues)

    def _on_order(self, m: OrderEvent) -> None:
        self.order_events[m.status.value] += 1

    def _on_fill(self, m: Fill) -> None:
        iid = str(m.instrument_id)
        self.fills[(iid, m.side.value)] += 1
        self.fees[iid] = self.fees.get(iid, 0.0) + float(m.fee)

    def collect(self) -> list[Metric]:
        """Metric families at scrape time."""
        eng = self.stack.engine
        pf = eng.portfolio
        open_by_iid = {str(i): len(o) for i, o in eng.open_orders.items()}
        positions, exposure, unreal = [], [], []
        for iid, pos in pf.positions.items():
            mark = eng.marks_f.get(iid, float(pos.avg_px))
            qty = float(pos.qty)
            positions.append(([str(iid)], qty))
            exposure.append(([str(iid)], abs(qty) * mark))
            unreal.append(([str(iid)], qty * (mark - float(pos.avg_px))))
        realized = sum(float(p.realized_pnl) for p in pf.positions.values())
        peak = eng.peak_equity_f
        equity = eng.equity_f()
        j = self.stack.journal
        out = [
            counter_family("order_events", "Order state changes by new status", ["status"],
                           [([s], float(n)) for s, n in self.order_events.items()]),
            gauge_family("open_orders", "Open orders per instrument", ["instrument"],
                         [([i], float(n)) for i, n in open_by_iid.items()]),
            counter_family("fills", "Fills by instrument and side", ["instrument", "side"],
                           [([i, s], float(n)) for (i, s), n in self.fills.items()]),
            counter_family("fees_paid", "Fees paid in the quote asset", ["instrument"],
                           [([i], v) for i, v in self.fees.items()]),
            gauge_family("position_quantity", "Net position in base units", ["instrument"], positions),
            gauge_family("account_currency_info", "The account currency the *_usd money metrics are in "
                         "(always 1)", ["currency"], [([pf.base_currency], 1.0)]),
            gauge_family("position_exposure_usd", "Absolute position value at the mark" + _IN_ACCOUNT_CURRENCY,
                         ["instrument"], exposure),
            gauge_family("unrealized_pnl_usd", "Unrealized PnL at the mark" + _IN_ACCOUNT_CURRENCY,
                         ["instrument"], unreal),
            gauge_family("realized_pnl_usd", "Realized PnL (gross of fees) since the journal began"
                         + _IN_ACCOUNT_CURRENCY, [], [([], realized)]),
            gauge_family("equity_usd", "Account equity" + _IN_ACCOUNT_CURRENCY, [], [([], equity)]),
            gauge_family("equity_drawdown_ratio", "Drawdown from the equity peak (0..1)", [],
                         [([], (peak - equity) / peak if peak > 0 else 0.0)]),
            gauge_family("gross_exposure_usd", "Sum of absolute position values" + _IN_ACCOUNT_CURRENCY, [],
                         [([], sum(v for _, v in exposure))]),
            gauge_family("venue_trading_state", "1 for each venue's own trading state (a venue whose "
                         "component gave up is HALTED alone)", ["venue", "state"],
                         [([v, s.value], 1.0 if s is cur else 0.0)
                          for v, cur in eng.gate.venue_states().items() for s in TradingState]),
        ]
        if j is not None and hasattr(j, "rows_written"):
            out += [
                counter_family("journal_rows_written", "Rows committed to the journal", [],
                               [([], float(j.rows_written))]),
                counter_family("journal_commits", "Journal commits", [], [([], float(j.commits))]),
                gauge_family("journal_queue_depth", "Rows waiting for the journal writer", [],
                             [([], float(j.queue_depth))]),
                gauge_family("journal_last_commit_seconds", "Duration of the last journal commit", [],
                             [([], float(j.last_commit_latency_s or 0.0))]),
            ]
        return out

    def collect_market_and_venues(self) -> list[Metric]:
        """Market-data age per instrument; reconnects and request weight per venue."""
        eng = self.stack.engine
        now_ns = self.stack.clock.time_ns()
        last_ns = eng.mark_book.last_ns
        ages = []
        for iid in sorted(set(eng.instruments) | set(last_ns), key=str):
            ages.append(([str(iid)], max(0.0, (now_ns - last_ns.get(iid, self._since_ns)) / _NS_PER_S)))
        # Instruments with trading sessions (IBKR) only: the data-age alert is quiet while 0.
        # Past the listed calendar it says 1 (fail safe: an expired calendar must not mute it).
        sessions_open = [([str(iid)], 0.0 if inst.sessions.is_known(now_ns) and not inst.sessions.is_open(now_ns)
                          else 1.0)
                         for iid, inst in sorted(eng.instruments.items(), key=lambda kv: str(kv[0]))
                         if inst.sessions is not None]
        reconnects, connected, used, limit, left, errors = [], [], [], [], [], []
        for name, venue in self.stack.venues.items():
            if not isinstance(venue, VenueMetricsSource):
                continue
            snap = venue.metrics_snapshot()
            reconnects += [([name, s], float(n)) for s, n in snap.ws_reconnects.items()]
            connected += [([name, s], 1.0 if up else 0.0) for s, up in snap.ws_connected.items()]
            errors += [([name, code], float(n)) for code, n in snap.error_answers.items()]
            if snap.weight_limit_1m is not None and snap.weight_used_1m is not None:
                used.append(([name], float(snap.weight_used_1m)))
                limit.append(([name], float(snap.weight_limit_1m)))
                left.append(([name], float(max(0, snap.weight_limit_1m - snap.weight_used_1m))))
        return [
            gauge_family("market_data_age_seconds", "Seconds since the last market data of the instrument was "
                         "received (since metrics began if none yet)", ["instrument"], ages),
            gauge_family("market_session_open", "1 while the instrument's trading session is open, 0 while "
                         "closed (only instruments with sessions; 24/7 ones have no series)", ["instrument"],
                         sessions_open),
            counter_family("venue_ws_reconnects", "Websocket reconnects by venue and stream", ["venue", "stream"],
                           reconnects),
            gauge_family("venue_ws_connected", "1 while the venue's websocket stream is connected",
                         ["venue", "stream"], connected),
            gauge_family("venue_rate_limit_weight_used", "Request weight used in the current minute",
                         ["venue"], used),
            gauge_family("venue_rate_limit_weight_limit", "Request weight allowed per minute", ["venue"], limit),
            gauge_family("venue_rate_limit_weight_remaining", "Request weight left in the current minute",
                         ["venue"], left),
            counter_family("venue_error_answers", "Error answers of the venue by its code (Bybit retCode)",
                           ["venue", "code"], errors),
        ]
