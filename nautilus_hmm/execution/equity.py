"""The float equity book: equity, its peak and the day's PnL, checked against the loss
limits on every bar close and every fill.

Loss limits are float comparisons, and a Decimal revaluation of the portfolio per bar
would dominate a backtest, so equity is tracked here in floats: what the portfolio holds
is re-read (`refresh`) only when it changes (a fill, a balance update); a bar close
re-values it at the shared mark book's floats (`on_bar`). The Decimal portfolio stays the
books of record; this is its fast view.

Rules:

* Equity = base-currency cash + every other balance with a price source x its mark (its
  spot position's entry price while no mark is known; a balance without a price source
  is unvalued and left out) + perpetual unrealized PnL, as `Portfolio.equity`.
* The peak is never below an equity seen (`peak_at`); it survives a restart through the
  journal's position snapshots (`restore_peak`).
* A bar close in a later UTC day rolls the portfolio's day PnL.
* The gate is called only near a limit (it logs and halts): inside the limits a bar
  costs two float comparisons.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog

from nautilus_hmm.domain.enums import InstrumentKind
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.execution.portfolio import Portfolio
from nautilus_hmm.messages import Bar
from nautilus_hmm.risk.gate import RiskGate

log = structlog.get_logger("execution")

_ZERO = Decimal(0)
_SPOT = InstrumentKind.SPOT
_FX = InstrumentKind.FX  # a balance of its base currency, like spot
_STOCK = InstrumentKind.STOCK
_NS_PER_DAY = 86_400_000_000_000


class EquityBook:
    """Float equity, peak and day PnL of one portfolio, valued at one mark book."""

    __slots__ = (
        "_book",
        "_cash_f",
        "_day",
        "_day_pnl_f",
        "book_iids",
        "gate",
        "last_equity_f",
        "marks",
        "peak_equity_f",
        "portfolio",
    )

    def __init__(self, portfolio: Portfolio, marks: dict[InstrumentId, float], gate: RiskGate) -> None:
        self.portfolio = portfolio
        self.marks = marks
        self.gate = gate
        self.peak_equity_f = 0.0
        self.last_equity_f = 0.0  # as of the last bar close, fill or balance update
        self._cash_f = 0.0  # base-currency balance
        # What equity is made of besides base-currency cash: (instrument whose mark values
        # it, units, spot, fallback price). Spot: a balance of the instrument's base asset
        # (units x mark); perpetual: a position (units x (mark - entry)).
        self._book: list[tuple[InstrumentId, float, bool, float]] = []
        self.book_iids: set[InstrumentId] = set()  # instruments whose bar re-values equity
        self._day_pnl_f = 0.0
        self._day: int | None = None

    def refresh(self) -> None:
        """Re-read balances, positions and day PnL from the portfolio (after a fill or a
        balance update)."""
        pf = self.portfolio
        base = pf.base_currency
        self._cash_f = float(pf.cash.get(base, _ZERO))
        book: list[tuple[InstrumentId, float, bool, float]] = []
        sources = pf.price_sources
        for asset, amount in pf.cash.items():
            if asset == base or amount == 0:
                continue
            iid = sources.get(asset)
            if iid is None:
                continue  # unvalued (listed by the views), not counted as zero value
            pos = pf.positions.get(iid)
            avg = float(pos.avg_px) if pos is not None and pos.qty != 0 else 0.0
            book.append((iid, float(amount), True, avg))
        for iid, pos in pf.positions.items():
            kind = pos.kind
            if pos.qty != 0 and kind is not _SPOT and kind is not _FX and pos.quote_asset == base:
                # a stock's notional left cash: valued whole (units x mark), like a balance
                book.append((iid, float(pos.qty) * float(pos.multiplier), kind is _STOCK, float(pos.avg_px)))
        self._book = book
        self.book_iids = {b[0] for b in book}
        self._day_pnl_f = float(pf.day_realized_pnl)
        self._day = pf.current_day
        self.last_equity_f = self.equity_f()

    def equity_f(self) -> float:
        """Equity in the base currency from float marks (balances at mark + perp unrealized)."""
        eq = self._cash_f
        marks = self.marks
        for iid, units, spot, avg in self._book:
            mark = marks.get(iid, avg)
            eq += units * mark if spot else units * (mark - avg)
        return eq

    def on_bar(self, bar: Bar) -> None:
        """A bar closed (the mark book, subscribed first, has made its close the mark)."""
        if bar.instrument_id in self.book_iids:
            self.check(bar.ts_init_ns)

    def check(self, ts_ns: int) -> None:
        """Re-value, move the peak, roll the day, and apply the loss limits near them."""
        # equity_f inlined: this runs on every bar close while something is held.
        eq = self._cash_f
        marks = self.marks
        for iid, units, spot, avg in self._book:
            mark = marks.get(iid, avg)
            eq += units * mark if spot else units * (mark - avg)
        self.last_equity_f = eq
        peak = self.peak_equity_f
        if eq > peak:
            self.peak_equity_f = peak = eq
        dd = (peak - eq) / peak * 100 if peak > 0 else 0.0
        if self._day is not None and ts_ns // _NS_PER_DAY > self._day:
            pf = self.portfolio
            pf.roll_day(ts_ns)
            self._day_pnl_f = float(pf.day_realized_pnl)
            self._day = pf.current_day
        lm = self.gate.loss_monitor
        if dd >= lm.max_drawdown_pct or self._day_pnl_f <= -lm.daily_loss_limit_usd:
            self.gate.on_equity(ts_ns, eq, self._day_pnl_f, dd)

    def peak_at(self, equity: float) -> float:
        """The peak given an equity seen now: never below an equity seen (a mark may move
        between bar closes, which alone update it)."""
        peak = self.peak_equity_f
        if equity > peak:
            self.peak_equity_f = peak = equity
        return peak

    def drawdown_pct_f(self) -> float:
        """Drawdown from the peak, in percent (never negative)."""
        eq = self.equity_f()
        peak = self.peak_at(eq)
        return (peak - eq) / peak * 100 if peak > 0 else 0.0

    def reset_peak(self) -> None:
        """Start drawdown from the current equity (after recovery or a deposit)."""
        self.refresh()
        self.peak_equity_f = self.equity_f()

    def restore_peak(self, snapshot: Any) -> None:
        """After recovery from the journal: drawdown continues from the peak in the newest
        position snapshot (a `PositionSnapshotRow` or None), never below today's equity.

        A snapshot without a usable peak, or in another base currency, is logged and
        ignored: drawdown then starts from the current equity.
        """
        pf = self.portfolio
        pf.reset_peak()
        self.reset_peak()
        if snapshot is None:
            return
        data = getattr(snapshot, "data", None)
        try:
            if data["base_currency"] != pf.base_currency:
                raise ValueError(f"base currency {data['base_currency']} is not {pf.base_currency}")
            peak = Decimal(data["peak_equity"])
            if not peak.is_finite():
                raise ValueError(f"peak_equity = {data['peak_equity']!r}")
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            log.warning("equity_peak_not_restored", snapshot_id=getattr(snapshot, "id", None), error=str(exc),
                        action="drawdown starts from the current equity")
            return
        if peak > pf.peak_equity:
            pf.peak_equity = peak
        self.peak_equity_f = max(self.peak_equity_f, float(peak))
        log.info("equity_peak_restored", peak_equity=str(peak), snapshot_ts_ns=getattr(snapshot, "ts_ns", None))

    def snapshot(self) -> dict[str, Any]:
        """The portfolio's snapshot (its Decimal marks already synced) with this peak, the
        one drawdown is measured from, for the journal's position snapshots."""
        pf = self.portfolio
        snap = pf.snapshot()
        equity = pf.equity()
        peak = max(Decimal(repr(self.peak_at(float(equity)))), pf.peak_equity, equity)
        snap["peak_equity"] = str(peak)
        snap["drawdown_pct"] = str((peak - equity) / peak * 100 if peak > 0 else _ZERO)
        return snap
