"""The mark book: one place for each instrument's latest mark and market-data receipt time.

The risk gate (collar, notional, exposure, freshness), the execution engine (planning,
equity, drawdown) and the strategies (through their context) all read this one book, so
they can never disagree about a price. The portfolio's Decimal marks are derived from it
when the portfolio is read (views, fills), never kept apart.

Rules:

* The latest update of any kind sets the mark: a trade's price, a quote's mid (only when
  both sides are > 0), a bar's close, a venue mark price. A price <= 0 never becomes a
  mark (the update still counts for freshness).
* Freshness uses each message's `ts_init_ns` (when this process received it, on the
  injected clock), not venue time: bars carry their open time and venue clocks drift.
  The receipt time only moves forward.

Marks are floats (they feed comparisons, planning references and the float equity
tracker); Decimal prices for orders are computed from them at the edge that needs one.
"""

from __future__ import annotations

from collections.abc import Callable

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Bar, MarkPrice, QuoteTick, TradeTick


class MarkBook:
    """Latest mark (float) and latest market-data receipt time (ns) per instrument."""

    __slots__ = ("last_ns", "marks")

    def __init__(self) -> None:
        self.marks: dict[InstrumentId, float] = {}
        self.last_ns: dict[InstrumentId, int] = {}

    def mark(self, instrument_id: InstrumentId) -> float | None:
        """The instrument's mark, None before any priced update."""
        return self.marks.get(instrument_id)

    def update(self, instrument_id: InstrumentId, price: float | None, ts_ns: int) -> None:
        """A market update for `instrument_id` received at `ts_ns` (our clock); a price > 0 sets the mark."""
        if price is not None and price > 0.0:
            self.marks[instrument_id] = price
        last = self.last_ns.get(instrument_id)
        if last is None or ts_ns > last:
            self.last_ns[instrument_id] = ts_ns

    def on_trade(self, m: TradeTick) -> None:
        """A trade's price is the mark."""
        # update() inlined: this runs once per trade on the live market-data hot path.
        iid = m.instrument_id
        if m.price > 0.0:
            self.marks[iid] = m.price
        ts = m.ts_init_ns
        if ts > self.last_ns.get(iid, -1):
            self.last_ns[iid] = ts

    def on_quote(self, m: QuoteTick) -> None:
        """A two-sided quote's mid is the mark."""
        mid = (m.bid + m.ask) / 2.0 if m.bid > 0.0 and m.ask > 0.0 else None
        self.update(m.instrument_id, mid, m.ts_init_ns)

    def on_bar(self, m: Bar) -> None:
        """A closed bar's close is the mark."""
        # update() inlined: this runs once per bar on the backtest hot path.
        iid = m.instrument_id
        if m.close > 0.0:
            self.marks[iid] = m.close
        ts = m.ts_init_ns
        if ts > self.last_ns.get(iid, -1):
            self.last_ns[iid] = ts

    def on_mark_price(self, m: MarkPrice) -> None:
        """A venue's mark price is the mark."""
        self.update(m.instrument_id, m.price, m.ts_init_ns)

    def attach(self, bus: Bus, name: str = "marks") -> Callable[[], None]:
        """Subscribe to market data; returns a function that unsubscribes.

        Subscribe before every reader that handles the same messages (the engine's bar
        handler checks equity at the bar's close, which must already be the mark).
        """
        unsubs = [
            bus.subscribe(TradeTick, self.on_trade, name=name),
            bus.subscribe(QuoteTick, self.on_quote, name=name),
            bus.subscribe(Bar, self.on_bar, name=name),
            bus.subscribe(MarkPrice, self.on_mark_price, name=name),
        ]

        def detach() -> None:
            for u in unsubs:
                u()

        return detach
