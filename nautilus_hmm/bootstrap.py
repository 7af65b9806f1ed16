"""Building the trading stack from the config: venues, risk gate, portfolio, journal,
execution engine, reconciler and strategy. Used by the live node and by the backtest,
so both run the same strategy, router, risk and portfolio code.

Subscription order on the bus matters for a bar: the venue publishes its fills first,
then the bar; the one mark book (attached by the risk gate: freshness, marks) and the
engine (equity at the close) see the bar before the strategy, whose targets are then
planned against fresh marks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.venue import Venue
from nautilus_hmm.execution.engine import ExecutionEngine
from nautilus_hmm.execution.portfolio import Portfolio
from nautilus_hmm.execution.reconcile import Reconciler
from nautilus_hmm.marketdata.marks import MarkBook
from nautilus_hmm.messages import StrategyTarget, TargetPosition, TradingStateChanged
from nautilus_hmm.risk.gate import RiskGate
from nautilus_hmm.strategies.base import Strategy, StrategyContext, exposure_to_qty
from nautilus_hmm.strategies.sma_cross import SmaCross

log = structlog.get_logger("bootstrap")


def build_strategy(cfg: Config, extra_factories: dict[str, Callable[..., Strategy]] | None = None) -> Strategy:
    """The configured strategy."""
    s = cfg.strategy
    iids = tuple(InstrumentId.parse(t) for t in s.instruments)
    if s.kind == "sma_cross":
        return SmaCross("sma_cross", iids, s.sma_cross.fast, s.sma_cross.slow, s.sma_cross.quantity,
                        s.bar_interval_s)
    if s.kind == "hmm":
        from nautilus_hmm.strategies.hmm import build_hmm_strategy

        return build_hmm_strategy(cfg, iids)
    if extra_factories and s.kind in extra_factories:
        return extra_factories[s.kind](cfg, iids)
    raise ValueError(f"strategy.kind = {s.kind!r}: not available")


@dataclass(slots=True)
class TradingStack:
    """The trading components of one node or backtest."""

    cfg: Config
    bus: Bus
    clock: Clock
    venues: dict[str, Venue]
    gate: RiskGate
    portfolio: Portfolio
    journal: Any
    engine: ExecutionEngine
    strategy: Strategy
    reconciler: Reconciler | None = None
    detach: list[Callable[[], None]] = field(default_factory=list)

    def attach_market(self) -> None:
        """Risk gate and engine listen to market data and reports (before the strategy)."""
        self.detach.append(self.gate.attach())
        self.engine.attach()

    def attach_strategy(self) -> None:
        """The strategy starts receiving bars and stating targets."""
        ctx = StrategyContext(self.strategy.strategy_id, self.bus, self.clock, self.portfolio.position_qty,
                              self.gate.mark_book.mark)
        # TEMPORARY until the router: the one strategy's production-lane StrategyTarget goes
        # straight to the engine as TargetPosition (an exposure is sized with [hmm.policy]
        # capital_usd at the mark, rounded toward zero); canary-lane targets are dropped (shadow).
        self.detach.append(self.bus.subscribe(StrategyTarget, self._pass_through_target, name="router:temporary"))
        self.strategy.attach(self.bus, ctx)

    def _pass_through_target(self, msg: StrategyTarget) -> None:
        """TEMPORARY until the router: StrategyTarget -> TargetPosition for the one strategy."""
        if msg.lane != "production":
            return
        qty = msg.target_qty
        if qty is None:
            mark = self.gate.mark_book.mark(msg.instrument_id)
            if mark is None or msg.exposure is None:
                log.warning("target_without_mark", strategy=msg.strategy_id, instrument=str(msg.instrument_id))
                return
            qty = exposure_to_qty(msg.exposure, self.cfg.hmm.policy.capital_usd, mark)
        self.bus.publish(TargetPosition(ts_event_ns=msg.ts_event_ns, ts_init_ns=msg.ts_init_ns,
                                        strategy_id=msg.strategy_id, instrument_id=msg.instrument_id,
                                        target_qty=qty, reason=msg.reason))

    def apply_config(self, cfg: Config) -> None:
        """Live-reloadable parts of [risk], [execution] and [strategy]."""
        self.gate.update_config(cfg.risk)
        self.engine.update_config(cfg.execution)
        if isinstance(self.strategy, SmaCross):
            self.strategy.set_quantity(cfg.strategy.sma_cross.quantity)
        for venue in self.venues.values():
            reconfigure = getattr(venue, "reconfigure", None)
            section = getattr(cfg.venues, venue.name, None)
            if reconfigure is not None and section is not None:
                reconfigure(section)
        self.cfg = cfg


def build_stack(cfg: Config, bus: Bus, clock: Clock, journal: Any, venues: dict[str, Venue],
                *, durable: bool, strategy: Strategy | None = None) -> TradingStack:
    """Wire the trading components (not started)."""
    marks = MarkBook()  # the one mark book: gate, engine and strategy read it
    gate = RiskGate(cfg.risk, bus, clock, marks=marks)
    # The account currency is the traded instruments' quote asset, chosen once the venues'
    # instruments are loaded (TradingStarter.start, Backtest): no venue is named here.
    portfolio = Portfolio()
    engine = ExecutionEngine(bus=bus, clock=clock, gate=gate, portfolio=portfolio, journal=journal,
                             venues=venues, config=cfg.execution, id_prefix=cfg.node.order_id_prefix,
                             durable=durable, marks=marks)
    stack = TradingStack(cfg, bus, clock, venues, gate, portfolio, journal, engine,
                         strategy or build_strategy(cfg))
    stack.reconciler = Reconciler(engine, journal, venues, bus, clock,
                                  interval_s=lambda: stack.cfg.execution.reconcile_interval_s,
                                  unknown_orders=lambda: stack.cfg.execution.unknown_orders)
    # User-stream gaps reach the reconciler from the first connect on (it owns the re-read).
    stack.detach.append(stack.reconciler.attach())
    return stack


class TradingStarter(BaseComponent):
    """Start-up recovery and reconciliation, then the strategy; trading stays HALTED until the books agree.

    Its `start()` runs after the journal and the venues have started: it loads
    instruments, recovers orders and positions from the journal, resolves in-flight
    orders and missed fills with each venue, and only when every check passes moves the
    risk gate to `risk.initial_state`. Otherwise trading stays HALTED with the
    discrepancies as the reason until an operator resumes.
    """

    name = "trading"

    def __init__(self, stack: TradingStack, initial_state: TradingState,
                 snapshot_interval_s: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.stack = stack
        self.initial_state = initial_state
        self.reconciled = False
        self._snapshot_interval_s = snapshot_interval_s

    async def start(self) -> None:
        """Recover, reconcile, then open the gate."""
        st = self.stack
        for venue in st.venues.values():
            st.engine.add_instruments(venue.instruments().values())
        # Equity is measured in the quote asset of the traded instruments (not a fixed "USDT").
        st.engine.choose_account_currency(InstrumentId.parse(t) for t in st.cfg.strategy.instruments)
        assert st.reconciler is not None
        # Rebuild from the journal before the engine hears any venue report: a fill booked
        # during the rebuild would be wiped by the baseline. Reports published before
        # `attach_market` are not lost: reconciliation re-fetches fills since the journal's
        # newest one, and queries every open order, right after.
        await st.reconciler.recover_from_journal()
        st.attach_market()
        st.bus.subscribe(TradingStateChanged, self._on_state, name="trading")
        # A user-stream gap reported before this pass reads a venue is covered by it; one
        # reported later gets the reconciler's own gap pass once it runs (execution.reconcile).
        ok = await st.reconciler.reconcile_startup()
        self.reconciled = ok
        st.attach_strategy()
        if ok:
            st.gate.set_state(self.initial_state, "start-up reconciliation passed", "node")
        else:
            problems = [d for r in st.reconciler.last.values() for d in r.discrepancies]
            st.gate.state_reason = f"reconciliation failed: {problems[0] if problems else '?'}"
            log.error("trading_halted_after_reconciliation", discrepancies=len(problems),
                      hint="inspect /status, fix the account, then `nautilus-hmm ctl resume`")
            self._health = Health(True, "halted: reconciliation found discrepancies")

    def _on_state(self, msg: TradingStateChanged) -> None:
        if msg.new is TradingState.ACTIVE and not self.stack.engine.flattening:
            self.stack.engine.replan_all()

    async def run(self) -> None:
        """Every few seconds: re-plan targets whose orders were rejected; snapshot positions."""
        st = self.stack
        since_snapshot = 0.0
        while True:
            await st.clock.sleep(5.0)
            st.engine.replan_all()
            since_snapshot += 5.0
            if self._snapshot_interval_s is not None and since_snapshot >= self._snapshot_interval_s():
                since_snapshot = 0.0
                st.engine.record_snapshot()

