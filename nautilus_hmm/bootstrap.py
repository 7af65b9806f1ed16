"""Building the trading stack from the config: venues, risk gate, portfolio, journal,
execution engine, reconciler, the strategies and the strategy router. Used by the live
node and by the backtest, so both run the same strategy, router, risk and portfolio code.

Subscription order on the bus matters for a bar: the venue publishes its fills first,
then the bar; the one mark book (attached by the risk gate: freshness, marks) and the
engine (equity at the close) see the bar before the router, and the router (its fills
attributed, its equity sampled) before the strategies, whose targets are then sized
against fresh marks and their own up-to-date virtual positions.

Live reload of `[[strategies]]` is all-or-nothing (`TradingStack.apply_config`): every new
or changed strategy object is built first (a failure raises before anything changed),
then the old ones are detached and the new attached in the same loop turn. A strategy
removed by a reload is disabled at the router (its target 0: its sub-account is closed
by netting); an HMM strategy cannot be added, removed or rebuilt without a restart
(`restart_needed` names it; the node's ModelService per HMM strategy is built at start).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from nautilus_hmm.config.loader import diff
from nautilus_hmm.config.schema import Config
from nautilus_hmm.control.router import Route, StrategyRouter, routes_from
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.lifecycle import BaseComponent, Health
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.sessions import TradingSessions
from nautilus_hmm.domain.venue import Venue
from nautilus_hmm.execution.engine import ExecutionEngine
from nautilus_hmm.execution.portfolio import Portfolio
from nautilus_hmm.execution.reconcile import Reconciler
from nautilus_hmm.marketdata.marks import MarkBook
from nautilus_hmm.marketdata.quality import DataQualityBook
from nautilus_hmm.messages import Bar, TradingStateChanged
from nautilus_hmm.risk.gate import RiskGate
from nautilus_hmm.strategies.base import Strategy, StrategyContext
from nautilus_hmm.strategies.config import StrategyInstanceConfig
from nautilus_hmm.strategies.factory import build_strategy

log = structlog.get_logger("bootstrap")


def build_strategies(cfg: Config, instances: tuple[StrategyInstanceConfig, ...] | None = None) -> dict[str, Strategy]:
    """Every configured strategy (enabled or not) by id, not attached; ValueError names
    `strategies[i].<field>` (or `strategy.<field>` for the shorthand)."""
    chosen = cfg.strategy_instances() if instances is None else instances
    index = {s.id: i for i, s in enumerate(cfg.strategy_instances())}
    out: dict[str, Strategy] = {}
    for inst in chosen:
        try:
            out[inst.id] = build_strategy(inst, cfg.hmm)
        except ValueError as exc:
            where = f"strategies[{index.get(inst.id, '?')}]" if cfg.strategies else "strategy"
            raise ValueError(f"{where}.{exc}") from exc
    return out


def structural_changes(old: StrategyInstanceConfig, new: StrategyInstanceConfig) -> list[str]:
    """Fields of an instance that a running strategy cannot take (kind, instruments, windows):
    a change rebuilds the strategy object."""
    return [c.path for c in diff(old, new) if not c.live]


def restart_needed(old: Config, new: Config) -> list[str]:
    """What a reload from `old` to `new` cannot apply to running HMM strategies (each has a
    ModelService built at start), as `strategies[i]...: why` entries; [] when it can."""
    out: list[str] = []
    before = {s.id: s for s in old.strategy_instances()}
    after = new.strategy_instances()
    named = (lambda i: f"strategies[{i}]") if new.strategies else (lambda i: "strategy")
    for i, s in enumerate(after):
        o = before.get(s.id)
        if o is None:
            if s.kind == "hmm":
                out.append(f"{named(i)} (id {s.id!r}): adding an hmm strategy needs a restart")
        elif "hmm" in (o.kind, s.kind):
            out.extend(f"{named(i)}.{path} (id {s.id!r}): changing it on an hmm strategy needs a restart"
                       for path in structural_changes(o, s))
    ids = {s.id for s in after}
    out.extend(f"strategies (id {o.id!r}): removing an hmm strategy needs a restart"
               for o in before.values() if o.kind == "hmm" and o.id not in ids)
    for venue in sorted({i.partition(":")[0] for s in after for i in s.instruments}):
        if old.venue_bar_interval_s(venue) != new.venue_bar_interval_s(venue):
            out.append(f"strategies: the bar interval of venue {venue!r} "
                       f"({old.venue_bar_interval_s(venue)} -> {new.venue_bar_interval_s(venue)}) needs a restart")
    return out


def strategy_routes(strategies: Mapping[str, Strategy],
                    instances: Mapping[str, StrategyInstanceConfig]) -> dict[str, Route]:
    """The router's routes: one per strategy, its quota, canary share and state from its config
    (a strategy built in code without a config entry trades its instruments unbounded)."""
    out: list[Route] = []
    for sid, strategy in strategies.items():
        inst = instances.get(sid)
        if inst is None:
            out.append(Route(sid, tuple(strategy.instruments)))
        else:
            out.append(Route(sid, tuple(strategy.instruments), quota_usd=inst.quota_usd,
                             canary_share=inst.canary_share, state="active" if inst.enabled else "disabled"))
    return routes_from(out)


@dataclass(slots=True)
class StrategyPlan:
    """A reload's strategy changes, every new object already built (nothing applied yet)."""

    instances: dict[str, StrategyInstanceConfig]
    build: dict[str, Strategy]        # added or rebuilt
    remove: list[str]                 # gone from the config
    update: list[str]                 # same object, new live parameters


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
    strategies: dict[str, Strategy]
    router: StrategyRouter
    reconciler: Reconciler | None = None
    detach: list[Callable[[], None]] = field(default_factory=list)
    strategies_attached: bool = False
    router_attached: bool = False
    _unsub_end_batch: Callable[[], None] | None = None
    instances: dict[str, StrategyInstanceConfig] = field(default_factory=dict)
    data_quality: DataQualityBook = field(default_factory=DataQualityBook)  # venues' MarketDataQualityChanged

    @property
    def strategy(self) -> Strategy:
        """The first configured strategy (for callers of the one-strategy era)."""
        return next(iter(self.strategies.values()))

    @property
    def marks(self) -> MarkBook:
        """The one mark book (the risk gate's)."""
        return self.gate.mark_book

    def instruments_by_strategy(self) -> dict[str, tuple[InstrumentId, ...]]:
        """Each running strategy's instruments."""
        return {sid: tuple(s.instruments) for sid, s in self.strategies.items()}

    def traded_instruments(self) -> list[InstrumentId]:
        """Every running strategy's instruments, first mention first."""
        return list(dict.fromkeys(i for s in self.strategies.values() for i in s.instruments))

    def attach_market(self) -> None:
        """Risk gate and engine listen to market data and reports (before the router and the strategies)."""
        self.detach.append(self.gate.attach())
        self.engine.attach()

    def attach_router(self) -> None:
        """The router hears targets, the engine's fills (attribution) and bars (after the mark
        book and the engine, before the strategies); idempotent."""
        if not self.router_attached:
            self.detach.append(self.router.attach())
            self.router_attached = True

    def _context(self, strategy_id: str) -> StrategyContext:
        router = self.router
        return StrategyContext(
            strategy_id, self.bus, self.clock,
            position=lambda iid: router.position(strategy_id, iid),  # its virtual position
            mark=self.marks.mark,
            capital=lambda lane="production": router.capital_usd(strategy_id, lane),
            sessions=self.instrument_sessions,
            data_quality=self.data_quality.quality,
        )

    def instrument_sessions(self, iid: InstrumentId) -> TradingSessions | None:
        """An instrument's trading sessions from the engine's (live) instrument map; None = 24/7."""
        inst = self.engine.instruments.get(iid)
        return None if inst is None else inst.sessions

    def attach_strategies(self) -> None:
        """The strategies start receiving bars and stating targets (through the router). The
        router holds routing while a bar reaches the strategies and nets their targets after
        the last one (`_end_batch_after_strategies`)."""
        self.attach_router()
        self.detach.append(self.bus.subscribe(Bar, self.router.begin_batch, name="router:batch"))
        for sid, strategy in self.strategies.items():
            strategy.attach(self.bus, self._context(sid))
        self.strategies_attached = True
        self._end_batch_after_strategies()

    def _end_batch_after_strategies(self) -> None:
        """(Re)subscribe the router's end of a bar's batch after every strategy's bar handler."""
        if self._unsub_end_batch is not None:
            self._unsub_end_batch()
        self._unsub_end_batch = self.bus.subscribe(Bar, self.router.end_batch, name="router:batch")

    def attach_strategy(self) -> None:
        """`attach_strategies` (the one-strategy name)."""
        self.attach_strategies()

    # ------------------------------------------------------------------ reload

    def plan_strategies(self, cfg: Config) -> StrategyPlan:
        """Build every added or rebuilt strategy of `cfg` (ValueError names the field; nothing
        is applied): the first half of an all-or-nothing reload."""
        new = {s.id: s for s in cfg.strategy_instances()}
        changed = {sid: inst for sid, inst in new.items()
                   if sid not in self.instances or structural_changes(self.instances[sid], inst)}
        built = build_strategies(cfg, tuple(changed.values())) if changed else {}
        update = [sid for sid, inst in new.items() if sid not in changed and inst != self.instances.get(sid)]
        return StrategyPlan(new, built, [sid for sid in self.instances if sid not in new], update)

    def swap_strategies(self, plan: StrategyPlan) -> None:
        """Apply a plan in one loop turn (no await): detach the removed and replaced strategies,
        attach the new ones, hand live parameters to the others."""
        for sid in (*plan.remove, *plan.build):
            old = self.strategies.pop(sid, None)
            if old is not None:
                old.detach()
        for sid in plan.update:
            if sid in self.strategies:
                self.strategies[sid].update_params(plan.instances[sid])
        for sid, strategy in plan.build.items():
            self.strategies[sid] = strategy
            if self.strategies_attached:
                strategy.attach(self.bus, self._context(sid))
        if plan.build and self.strategies_attached:
            self._end_batch_after_strategies()
        # config order (a dict keeps insertion order; /status and views follow it)
        self.strategies = {sid: self.strategies[sid] for sid in plan.instances if sid in self.strategies}
        self.instances = dict(plan.instances)
        # A removed strategy's target becomes 0 (its sub-account closes by netting); a state
        # changed in the config ([[strategies]] enabled) is applied, an admin's stands otherwise.
        self.router.configure(strategy_routes(self.strategies, self.instances))
        if plan.build or plan.remove or plan.update:
            log.info("strategies_applied", added_or_rebuilt=sorted(plan.build), removed=plan.remove,
                     updated=plan.update)

    def apply_config(self, cfg: Config) -> None:
        """Live-reloadable parts of [risk], [execution], [venues] and the strategies (all or nothing:
        the new strategy objects are built before anything changes)."""
        plan = self.plan_strategies(cfg)
        self.gate.update_config(cfg.risk)
        self.engine.update_config(cfg.execution)
        for venue in self.venues.values():
            reconfigure = getattr(venue, "reconfigure", None)
            section = getattr(cfg.venues, venue.name, None)
            if reconfigure is not None and section is not None:
                reconfigure(section)
        self.router.config = cfg.control.router
        self.swap_strategies(plan)
        self.cfg = cfg


def build_stack(cfg: Config, bus: Bus, clock: Clock, journal: Any, venues: dict[str, Venue],
                *, durable: bool, strategy: Strategy | None = None,
                strategies: Mapping[str, Strategy] | None = None) -> TradingStack:
    """Wire the trading components (not started). `strategy` / `strategies`: objects built by
    the caller (a backtest with a trained model) instead of the configured ones."""
    marks = MarkBook()  # the one mark book: gate, engine, router and strategies read it
    gate = RiskGate(cfg.risk, bus, clock, marks=marks)
    # The account currency is the traded instruments' quote asset, chosen once the venues'
    # instruments are loaded (TradingStarter.start, Backtest): no venue is named here.
    portfolio = Portfolio()
    engine = ExecutionEngine(bus=bus, clock=clock, gate=gate, portfolio=portfolio, journal=journal,
                             venues=venues, config=cfg.execution, id_prefix=cfg.node.order_id_prefix,
                             durable=durable, marks=marks)
    if strategies is None:
        strategies = {strategy.strategy_id: strategy} if strategy is not None else build_strategies(cfg)
    # Capital = share x the account's equity at the marks (what the engine and the risk gate value).
    # The router journals its books only where they must survive a crash (the node, not a backtest).
    router = StrategyRouter(bus, clock, marks, engine.instruments, journal if durable else None, engine.equity_f,
                            cfg.control.router)
    stack = TradingStack(cfg, bus, clock, venues, gate, portfolio, journal, engine, dict(strategies), router)
    stack.instances = {s.id: s for s in cfg.strategy_instances() if s.id in stack.strategies}
    router.configure(strategy_routes(stack.strategies, stack.instances))
    stack.reconciler = Reconciler(engine, journal, venues, bus, clock,
                                  interval_s=lambda: stack.cfg.execution.reconcile_interval_s,
                                  unknown_orders=lambda: stack.cfg.execution.unknown_orders)
    # User-stream gaps reach the reconciler from the first connect on (it owns the re-read);
    # so do the venues' data-quality changes the data-quality book keeps for the strategies.
    stack.detach.append(stack.reconciler.attach())
    stack.detach.append(stack.data_quality.attach(bus))
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
        st.engine.choose_account_currency(st.traded_instruments())
        assert st.reconciler is not None
        # Rebuild from the journal before the engine hears any venue report: a fill booked
        # during the rebuild would be wiped by the baseline. Reports published before
        # `attach_market` are not lost: reconciliation re-fetches fills since the journal's
        # newest one, and queries every open order, right after.
        await st.reconciler.recover_from_journal()
        # The strategies' sub-accounts from the journal, before reconciliation publishes the
        # fills missed while down: the router (attached after the engine) attributes those.
        await st.router.recover()
        st.attach_market()
        st.attach_router()
        st.bus.subscribe(TradingStateChanged, self._on_state, name="trading")
        # A user-stream gap reported before this pass reads a venue is covered by it; one
        # reported later gets the reconciler's own gap pass once it runs (execution.reconcile).
        ok = await st.reconciler.reconcile_startup()
        self.reconciled = ok
        st.attach_strategies()
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

