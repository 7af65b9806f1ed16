"""The strategy router: strategies' targets in, one net target per instrument to the engine out.

Flow. A strategy states a `StrategyTarget` for one lane of it ("production", or "canary"
for the target of its canary model). The router sizes it into a quantity for that lane's
virtual account (control/accounts.py: `<id>`, `<id>:canary`, and the house account):

* exposure -> qty = exposure x capital_usd(lane) / mark / multiplier, rounded toward zero
  to 1e-12; without a mark yet the target is held until the instrument's first bar.
  `target_qty` is used as given.
* capital_usd(strategy) = share x account equity (shares from the allocator; before the
  first `set_shares`, equal shares). A strategy with canary share f > 0 trades (1 - f) of
  its capital on the production lane and f on the canary lane. With f = 0 the canary
  lane is a SHADOW account: it is sized on the whole capital, books paper fills at the
  mark (so governance sees its shadow PnL), and never contributes to the net.
* state: `active` as stated; `reduce` clipped toward 0, never past the account's current
  position and never flipping; `disabled` 0 (the account is closed by netting).
* quota: |qty x mark x multiplier| > quota_usd (per lane, 0 = none) is clipped to the
  quota, a `RouterDenied` event and a denial of that strategy.
* no-trade band (`resize_band`, live): when a lane's exposure target is re-sized ONLY because
  the capital changed (`set_shares`, i.e. the allocator; the same stated target, a new share
  or equity or mark), the new quantity replaces the current routed target only when
  |new - current| > resize_band x |current|, the sign is kept, it is not quota-clipped and the
  strategy is active; otherwise the current target stays (no order for a drift of a few %).
  A new `StrategyTarget`, a state change, a reload and a first sizing always go through.
* cost check (`slippage_model`, a fitted model from `research slip-train`; off when empty):
  when a target states its edge (`StrategyTarget.edge_bps`: expected gain in bps of the
  notional it adds, over its holding horizon; the HMM strategy states it), the part of the
  lane's move that ADDS exposure (beyond its current routed target, or the whole new side of
  a flip) is kept only as far as its expected round-trip cost pays: 2 x (taker fee + the
  model's predicted slippage for that notional, with the realised volatility of the bar
  closes over the model's window; the router sees no quotes, so the spread term is 0) must
  not exceed the edge. A move whose cost exceeds its edge is trimmed to the largest addition
  that fits (the cost grows with size), or skipped (the lane keeps its target; a flip closes
  to flat): a `RouterDenied` event with reason `cost_exceeds_edge` naming the cost, the
  edge and the notional, a log line, `cost_trims` in the strategy's view. Not a denial for
  governance (it is a sizing decision, not an error). Reductions and exits are never
  checked; a target without an edge (every other strategy kind) and shadow lanes neither.

Then, per instrument, the routed targets (house: 0) are netted, opposite gaps are
crossed between the accounts at the mark (`FillAttributed` kind "cross"; no venue order),
and when the net changed the router publishes `TargetPosition(strategy_id="router",
target_qty=net)`: the engine trades the difference, so two strategies never cross on the
venue. Every real `Fill` the engine books is split over the accounts by the documented
rule (`FillAttributed` kind "fill"). A trade seen twice (a replay) is booked once.

Journal (schema v4): attribution rows (`strategy_fills`), the latest target per lane
(`strategy_targets`), periodic equity samples (`strategy_equity`, every
`equity_sample_s` at a bar close). All are queued fire-and-forget, off the hot path;
a crash may lose the newest. `recover()` rebuilds the accounts from the attribution rows
and the targets from their rows, attributes the journaled fills that have no attribution
row (the crash window) by the same rule against the recovered targets, and books a real
position the accounts do not explain to the house account. Crosses lost in the crash
window are not replayed: the next target change crosses again at the then mark.

Stats. PnL of a strategy = PnL of its real accounts (production + a trading canary);
equity = capital + PnL. `pnl_series` samples it at bar closes. drawdown_pct = (peak PnL
- PnL) / (capital + peak PnL) x 100, capital at its current value (an allocation change
is not a drawdown). The loss streak counts consecutive losing round trips (flat to flat,
fees included).
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol, TypeVar

import structlog

from nautilus_hmm.control.accounts import HOUSE, QTY_QUANTUM, Book, Share, canary_account
from nautilus_hmm.core.bounded import RecentKeys
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import Clock
from nautilus_hmm.core.fields import setting
from nautilus_hmm.domain.enums import Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.journal.errors import JournalError
from nautilus_hmm.journal.rows import FillRow, StrategyEquityRow, StrategyFillRow, StrategyTargetRow
from nautilus_hmm.marketdata.marks import MarkBook
from nautilus_hmm.messages import (
    Bar,
    Fill,
    FillAttributed,
    RouterDenied,
    StrategyStateChanged,
    StrategyTarget,
    TargetPosition,
)
from nautilus_hmm.obs.metrics import counter_family, gauge_family
from nautilus_hmm.venues.sim.slippage_model import (
    RealisedVol,
    SlippageModel,
    load_model,
    model_file_problem,
)

log = structlog.get_logger("router")

T = TypeVar("T")
STATES = ("active", "reduce", "disabled")
LANES = ("production", "canary")
ROUTER_STRATEGY_ID = "router"
_ZERO = Decimal(0)
_ONE = Decimal(1)
_NS_PER_S = 1_000_000_000
_HOUSE_KEY = "\x00house"  # the house account's key in the PnL cache (no strategy id has a NUL)


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """[control.router]"""

    equity_sample_s: float = setting(60.0, live=True, ge=1, le=86_400,
                                     doc="seconds between journaled equity samples per strategy (taken at bar closes)")
    pnl_series_max: int = setting(20_000, live=False, ge=10, le=10_000_000,
                                  doc="PnL samples kept in memory per strategy (one per bar close)")
    resize_band: float = setting(0.1, live=True, ge=0, le=10,
                                 doc="no-trade band of a capital/share re-size: an exposure target is re-sent "
                                     "only when it moves by more than this fraction of the current target "
                                     "(a new target from the strategy always goes through; 0 = always re-size)")
    slippage_model: str = setting("", live=False,
                                  doc="a slippage_model.json (research slip-train): a move that adds exposure is "
                                      "trimmed to what its stated edge pays after fees and predicted slippage "
                                      "(round trip); empty = no cost check")

    def validate(self) -> list[tuple[str, object, str]]:
        """The model file must exist and load (check-config fails on it, not the running daemon)."""
        if not self.slippage_model:
            return []
        problem = model_file_problem(self.slippage_model)
        return [("slippage_model", self.slippage_model, problem)] if problem else []


@dataclass(frozen=True, slots=True)
class Route:
    """One strategy as the router sees it (built from its [[strategies]] entry)."""

    strategy_id: str
    instruments: tuple[InstrumentId, ...]
    quota_usd: float = 0.0  # max |target notional| per instrument and lane; 0 = none
    canary_share: float = 0.0  # share of its capital the canary lane trades; 0 = shadow
    state: str = "active"  # active | reduce | disabled


@dataclass(frozen=True, slots=True)
class StrategyStats:
    """A strategy's sub-account statistics (what governance and the views read)."""

    strategy_id: str
    drawdown_pct: float
    loss_streak: int
    round_trips: int
    fills: int
    orders: int
    denials: int
    errors: int
    pnl_usd: float
    equity_usd: float
    capital_usd: float


class StrategyJournal(Protocol):
    """What the router needs of the journal (journal.store.Journal implements it)."""

    def record_strategy_fill(self, ts_ns: int, strategy_id: str, instrument_id: InstrumentId, kind: str,
                             qty: Decimal, price: Decimal, fee: Decimal, trade_id: str = "",
                             client_order_id: str = "") -> None:
        """Queue one attribution row."""
        ...

    def record_strategy_target(self, ts_ns: int, strategy_id: str, lane: str, instrument_id: InstrumentId,
                               exposure: float | None, target_qty: Decimal | None, effective_qty: Decimal,
                               reason: str = "") -> None:
        """Queue the latest target of a lane."""
        ...

    def record_strategy_equity(self, ts_ns: int, strategy_id: str, equity_usd: float, realized_usd: float,
                               unrealized_usd: float, fees_usd: float, capital_usd: float) -> None:
        """Queue an equity sample."""
        ...

    def load_strategy_fills(self, since_id: int = 0) -> list[StrategyFillRow]:
        """Attribution rows in journal order."""
        ...

    def load_strategy_targets(self) -> list[StrategyTargetRow]:
        """Latest target rows."""
        ...

    def strategy_equity(self, strategy_id: str | None = None, since_ns: int = 0,
                        limit: int = 100_000) -> list[StrategyEquityRow]:
        """Equity samples, oldest first."""
        ...

    def load_fills(self, since_ns: int = 0) -> list[FillRow]:
        """The real fills in replay order."""
        ...

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a sync read off the event loop."""
        ...


@dataclass(slots=True)
class _Request:
    """A lane's target as stated."""

    exposure: float | None
    target_qty: Decimal | None
    reason: str
    ts_ns: int
    edge_bps: float | None = None


# Bounded memories (a daemon runs for months; `core.bounded`). The router's trade window
# only fronts the engine's fill intake, which publishes each fill once (the journal's key).
SEEN_TRADES_KEPT = 20_000  # trades attributed, newest (recovery's and live fills overlap)
ORDER_IDS_KEPT = 1_000  # per strategy: the newest orders its fills came from


@dataclass(slots=True)
class _Tally:
    """Per-strategy counters."""

    fills: int = 0
    denials: int = 0
    cost_trims: int = 0
    errors: int = 0
    loss_streak: int = 0
    round_trips: int = 0
    orders: int = 0  # distinct orders with a fill attributed to the strategy
    # The newest of those orders' ids: an order's later fills are not counted again.
    order_ids: RecentKeys[str] = field(default_factory=lambda: RecentKeys(ORDER_IDS_KEPT))
    peak_pnl: float = 0.0
    series: collections.deque[tuple[int, float]] = field(default_factory=collections.deque)
    last_target: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _PnlCache:
    """A strategy's PnL in float: base (cash - fees) + qty x multiplier x mark per leg."""

    version: int  # sum of its accounts' booking versions when built
    base: float
    legs: list[tuple[InstrumentId, float, float]]  # (instrument, qty x multiplier, avg price)
    total: float = 0.0
    bar_seq: int = -1  # the bar `total` was computed at


class _Multipliers:
    """Instrument multipliers read live from the instrument map (loaded after construction)."""

    __slots__ = ("_instruments",)

    def __init__(self, instruments: Mapping[InstrumentId, Instrument]) -> None:
        self._instruments = instruments

    def get(self, iid: InstrumentId, default: Decimal = _ONE) -> Decimal:
        inst = self._instruments.get(iid)
        return default if inst is None else inst.multiplier


class _MarkView:
    """The mark book's float marks as Decimal, converted on read (only what a reader needs)."""

    __slots__ = ("_book", "_cache")

    def __init__(self, book: MarkBook) -> None:
        self._book = book
        self._cache: dict[InstrumentId, Decimal | None] = {}

    def get(self, iid: InstrumentId) -> Decimal | None:
        try:
            return self._cache[iid]
        except KeyError:
            m = self._book.mark(iid)
            v = self._cache[iid] = None if m is None else _dec(m)
            return v


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


class StrategyRouter:
    """Sizes, clips, nets and crosses strategies' targets; attributes fills; keeps their books."""

    name = "router"

    def __init__(self, bus: Bus, clock: Clock, marks: MarkBook, instruments: Mapping[InstrumentId, Instrument],
                 journal: StrategyJournal | None, equity_usd: Callable[[], float], config: RouterConfig) -> None:
        self.bus = bus
        self.clock = clock
        self.marks = marks
        self.instruments = instruments
        self.journal = journal
        self.equity_usd = equity_usd
        self.config = config
        mult = _Multipliers(instruments)
        self.book = Book(mult)  # real accounts: their positions sum to the real position
        self.shadow = Book(mult)  # shadow canary lanes: paper fills at the mark
        self._routes: dict[str, Route] = {}
        self._states: dict[str, str] = {}
        self._shares: dict[str, float] = {}
        self._requests: dict[tuple[str, InstrumentId], _Request] = {}  # (account, iid)
        self._targets: dict[InstrumentId, dict[str, Decimal]] = {}  # routed targets of real accounts
        self._shadow_targets: dict[InstrumentId, dict[str, Decimal]] = {}
        self._held: set[tuple[str, InstrumentId]] = set()  # exposure targets waiting for a mark
        self._net: dict[InstrumentId, Decimal] = {}  # last net target published
        self._seen_trades: RecentKeys[tuple[InstrumentId, str]] = RecentKeys(SEEN_TRADES_KEPT)
        self._tally: dict[str, _Tally] = {}
        self._last_equity_ns = 0
        self._pnl_cache: dict[str, _PnlCache] = {}  # per strategy: float PnL legs (`_sample_pnl`)
        self._accounts: dict[str, tuple[str, ...]] = {}  # per strategy: its real accounts (per configure)
        self._bar_seq = 0  # moves at every bar the router sees (the marks moved)
        self.journal_errors = 0
        self._batching = False  # between begin_batch and end_batch (one bar's dispatch)
        self._pending: dict[InstrumentId, tuple[int, str]] = {}
        # the cost check (module docstring): the model (restart-only) and bar-close volatility
        self.slippage: SlippageModel | None = load_model(config.slippage_model) if config.slippage_model else None
        self._vols: dict[InstrumentId, RealisedVol] = {}

    # ------------------------------------------------------------ configuration

    def configure(self, routes: Mapping[str, Route]) -> None:
        """Set the routed strategies (start, reload). A removed strategy's targets become 0
        (its accounts close by netting); a state that changed in the config is applied."""
        old = self._routes
        for sid, route in routes.items():
            if route.state not in STATES:
                raise ValueError(f"route {sid}: state {route.state!r} must be one of {', '.join(STATES)}")
        self._routes = dict(routes)
        self._accounts.clear()  # a canary share may have changed: real accounts and their caches
        self._pnl_cache.clear()
        for sid, route in routes.items():
            self._tally.setdefault(sid, self._new_tally())
            prev = old.get(sid)
            if prev is None and sid not in self._states:
                self._states[sid] = route.state
            elif prev is None or prev.state != route.state:
                self._change_state(sid, route.state, "configuration changed", "config")
        now = self.clock.time_ns()
        for sid in old.keys() - routes.keys():
            for key in [k for k in self._requests if self._owner(k[0]) == sid]:
                del self._requests[key]
            self._held = {k for k in self._held if self._owner(k[0]) != sid}
            self._states.pop(sid, None)
        touched = self._resize_all(now)
        for sid in old.keys() - routes.keys():
            for acct in (sid, canary_account(sid)):
                for iid in self.book.holdings.get(acct, {}):
                    self._targets.setdefault(iid, {})[acct] = _ZERO
                    touched.add(iid)
                for iid in list(self._shadow_targets):
                    self._shadow_targets[iid].pop(acct, None)
        for iid in touched:
            self._route(iid, now, "configure")

    def set_shares(self, shares: Mapping[str, float]) -> None:
        """Capital shares from the allocator; exposure targets are re-sized with them, within the
        no-trade band (`RouterConfig.resize_band`, module docstring)."""
        self._shares = {k: float(v) for k, v in shares.items()}
        now = self.clock.time_ns()
        for iid in self._resize_all(now, banded=True):
            self._route(iid, now, "allocation")

    def share(self, strategy_id: str) -> float:
        """The strategy's capital share (equal shares before the allocator's first; once shares
        are set, a strategy they leave out, e.g. one disabled in the config, has none)."""
        s = self._shares.get(strategy_id)
        if s is not None:
            return s
        if self._shares:
            return 0.0
        return 1.0 / len(self._routes) if strategy_id in self._routes else 0.0

    def capital_usd(self, strategy_id: str, lane: str = "production") -> float:
        """The capital of a strategy's lane: share x account equity, split by its canary share."""
        route = self._routes.get(strategy_id)
        f = route.canary_share if route is not None else 0.0
        capital = self.share(strategy_id) * float(self.equity_usd())
        if lane == "canary":
            return capital * f if f > 0 else capital  # a shadow lane is sized like production
        return capital * (1.0 - f)

    def set_state(self, strategy_id: str, state: str, reason: str, source: str) -> None:
        """active | reduce | disabled; KeyError for an unknown strategy, ValueError for an unknown state."""
        if strategy_id not in self._routes:
            raise KeyError(strategy_id)
        if state not in STATES:
            raise ValueError(f"state {state!r} must be one of {', '.join(STATES)}")
        self._change_state(strategy_id, state, reason, source)
        now = self.clock.time_ns()
        for iid in self._resize_strategy(strategy_id, now):
            self._route(iid, now, f"{strategy_id} {state}")

    def state(self, strategy_id: str) -> str:
        """The strategy's current state; KeyError for an unknown strategy."""
        if strategy_id not in self._routes:
            raise KeyError(strategy_id)
        return self._states[strategy_id]

    def strategy_ids(self) -> list[str]:
        """The routed strategies, in configuration order."""
        return list(self._routes)

    def note_error(self, strategy_id: str) -> None:
        """Count an error of a strategy (a failing handler, a rejected order on its behalf)."""
        self._tally.setdefault(strategy_id, self._new_tally()).errors += 1

    # ------------------------------------------------------------ reads

    def position(self, strategy_id: str, iid: InstrumentId, lane: str = "production") -> Decimal:
        """The virtual position of a strategy's lane (a shadow lane's paper position)."""
        if lane == "canary":
            acct = canary_account(strategy_id)
            return (self.shadow if self._is_shadow(acct) else self.book).position(acct, iid)
        return self.book.position(strategy_id, iid)

    def target(self, strategy_id: str, iid: InstrumentId, lane: str = "production") -> Decimal | None:
        """The routed target of a lane (None: no target)."""
        acct = strategy_id if lane == "production" else canary_account(strategy_id)
        table = self._shadow_targets if self._is_shadow(acct) else self._targets
        return table.get(iid, {}).get(acct)

    def net_target(self, iid: InstrumentId) -> Decimal | None:
        """The last net target published for `iid`."""
        return self._net.get(iid)

    def pnl_usd(self, strategy_id: str) -> float:
        """Total PnL (realized + unrealized at the marks - fees) of the strategy's real accounts."""
        marks = self._marks()
        return float(sum((self.book.pnl(a, marks) for a in self._real_accounts(strategy_id)), _ZERO))

    def shadow_pnl_usd(self, strategy_id: str) -> float:
        """PnL of a strategy's shadow canary lane (paper fills at the mark, no fees)."""
        return float(self.shadow.pnl(canary_account(strategy_id), self._marks()))

    def pnl_series(self, strategy_id: str, last_n: int | None = None) -> list[tuple[int, float]]:
        """(ts_ns, cumulative PnL) sampled at bar closes, oldest first; only the newest `last_n`
        when given (copies those alone, not the whole series)."""
        t = self._tally.get(strategy_id)
        if t is None:
            return []
        series = t.series
        if last_n is None or last_n >= len(series):
            return list(series)
        if last_n <= 0:
            return []
        tail = list(itertools.islice(reversed(series), last_n))
        tail.reverse()
        return tail

    def stats(self, strategy_id: str) -> StrategyStats:
        """Drawdown, loss streak, fills, denials and errors of a strategy; KeyError if unknown."""
        if strategy_id not in self._tally:
            raise KeyError(strategy_id)
        t = self._tally[strategy_id]
        pnl = self.pnl_usd(strategy_id)
        account_equity = float(self.equity_usd())
        share = self.share(strategy_id)
        capital = share * account_equity
        peak = max(t.peak_pnl, pnl)
        base = capital + peak
        dd = 100.0 * (peak - pnl) / base if base > 0 else 0.0
        # Equity = its share of the account's equity before anyone's PnL, plus its own PnL: the
        # strategies' equities (with the house's PnL) sum to the account's equity. (capital + PnL
        # would count the PnL twice: the account's equity already holds it.)
        marks = self._marks()
        everyone = float(sum((self.book.pnl(a, marks) for a in self.book.accounts()), _ZERO))
        equity = share * (account_equity - everyone) + pnl
        return StrategyStats(
            strategy_id=strategy_id, drawdown_pct=max(0.0, dd), loss_streak=t.loss_streak,
            round_trips=t.round_trips, fills=t.fills, orders=t.orders, denials=t.denials,
            errors=t.errors + t.denials, pnl_usd=pnl, equity_usd=equity, capital_usd=capital,
        )

    def equity_rows(self) -> list[tuple[str, float, float, float]]:
        """(strategy id, equity, PnL, capital) of every routed strategy, in float from the cached
        holdings (`_sample_pnl`): the per-bar rows of a backtest. Equity as in `stats`."""
        account_equity = float(self.equity_usd())
        pnls = {sid: self._sample_pnl(sid) for sid in self._routes}
        everyone = sum(pnls.values())
        if HOUSE in self.book.holdings:
            everyone += self._sample_pnl(_HOUSE_KEY, (HOUSE,))
        rows = []
        for sid, pnl in pnls.items():
            share = self.share(sid)
            rows.append((sid, share * (account_equity - everyone) + pnl, pnl, share * account_equity))
        return rows

    def views(self) -> list[dict[str, Any]]:
        """One row per routed strategy (GET /strategies)."""
        return [self.view(sid) for sid in self._routes]

    def view(self, strategy_id: str) -> dict[str, Any]:
        """One strategy's row; KeyError if unknown."""
        route = self._routes[strategy_id]
        marks = self._marks()
        st = self.stats(strategy_id)
        realized = unrealized = fees = _ZERO
        for acct in self._real_accounts(strategy_id):
            for iid, h in self.book.holdings.get(acct, {}).items():
                realized += h.realized
                unrealized += h.unrealized(marks.get(iid))
                fees += h.fees
        canary = canary_account(strategy_id)
        canary_book = self.shadow if self._is_shadow(canary) else self.book
        return {
            "strategy_id": strategy_id,
            "state": self._states[strategy_id],
            "share": self.share(strategy_id),
            "capital_usd": st.capital_usd,
            "canary_share": route.canary_share,
            "canary_mode": "shadow" if route.canary_share <= 0 else "trading",
            "quota_usd": route.quota_usd,
            "instruments": [str(i) for i in route.instruments],
            "positions": {str(i): _qty_text(h.qty) for i, h in self.book.holdings.get(strategy_id, {}).items()
                          if h.qty},
            "targets": {str(i): str(t[strategy_id]) for i, t in self._targets.items() if strategy_id in t},
            "canary_positions": {str(i): _qty_text(h.qty) for i, h in canary_book.holdings.get(canary, {}).items()
                                 if h.qty},
            "pnl_usd": st.pnl_usd,
            "realized_usd": float(realized),
            "unrealized_usd": float(unrealized),
            "fees_usd": float(fees),
            "equity_usd": st.equity_usd,
            "shadow_pnl_usd": self.shadow_pnl_usd(strategy_id) if route.canary_share <= 0 else None,
            "drawdown_pct": st.drawdown_pct,
            "loss_streak": st.loss_streak,
            "fills": st.fills,
            "denials": st.denials,
            "cost_trims": self._tally[strategy_id].cost_trims,
            "errors": st.errors,
            "last_target": dict(self._tally[strategy_id].last_target),
        }

    def house_view(self) -> dict[str, Any]:
        """The house account: what no strategy owns (positions found at start, flatten residue)."""
        marks = self._marks()
        return {
            "positions": {str(i): _qty_text(h.qty) for i, h in self.book.holdings.get(HOUSE, {}).items() if h.qty},
            "pnl_usd": float(self.book.pnl(HOUSE, marks)),
        }

    def collect_metrics(self) -> list[Any]:
        """Prometheus families: per-strategy equity, PnL, capital, positions, targets, denials, fills."""
        marks = self._marks()
        equity, pnl, capital, position, target, denials, fills = [], [], [], [], [], [], []
        for sid in self._routes:
            st = self.stats(sid)
            equity.append(([sid], st.equity_usd))
            pnl.append(([sid], st.pnl_usd))
            capital.append(([sid], st.capital_usd))
            denials.append(([sid], float(st.denials)))
            fills.append(([sid], float(st.fills)))
        pnl.append(([HOUSE], float(self.book.pnl(HOUSE, marks))))
        for acct, by_iid in self.book.holdings.items():
            for iid, h in by_iid.items():
                position.append(([acct, str(iid)], float(h.qty)))
        for iid, by_acct in self._targets.items():
            for acct, qty in by_acct.items():
                target.append(([acct, str(iid)], float(qty)))
        return [
            gauge_family("strategy_equity_usd", "Strategy equity: capital + PnL, in the account currency",
                         ["strategy"], equity),
            gauge_family("strategy_pnl_usd", "Strategy PnL (realized + unrealized - fees) of its virtual "
                         "accounts, in the account currency", ["strategy"], pnl),
            gauge_family("strategy_capital_usd", "Strategy capital: allocation share x account equity",
                         ["strategy"], capital),
            gauge_family("strategy_position", "Virtual position in base units per account and instrument",
                         ["strategy", "instrument"], position),
            gauge_family("strategy_target_qty", "Routed target in base units per account and instrument",
                         ["strategy", "instrument"], target),
            counter_family("strategy_denials", "Router denials (quota clips, unroutable targets) per strategy",
                           ["strategy"], denials),
            counter_family("strategy_fills", "Fill shares attributed per strategy", ["strategy"], fills),
        ]

    # ------------------------------------------------------------ bus

    def attach(self) -> Callable[[], None]:
        """Subscribe StrategyTarget, Fill and Bar (after the mark book); returns the unsubscriber."""
        unsubs = [
            self.bus.subscribe(StrategyTarget, self.on_target, name="router"),
            self.bus.subscribe(Fill, self.on_fill, name="router"),
            self.bus.subscribe(Bar, self.on_bar, name="router"),
        ]

        def detach() -> None:
            for u in unsubs:
                u()

        return detach

    def on_target(self, m: StrategyTarget) -> None:
        """A strategy's lane states a target: size, clip, net, cross, publish the net."""
        sid, iid = m.strategy_id, m.instrument_id
        route = self._routes.get(sid)
        requested = m.target_qty if m.target_qty is not None else _ZERO
        if route is None:
            self._deny(sid, iid, requested, _ZERO, "unknown_strategy", f"{sid} is not a configured strategy")
            return
        if iid not in route.instruments:
            self._deny(sid, iid, requested, _ZERO, "instrument_not_routed",
                       f"{iid} is not one of {sid}'s instruments")
            return
        if m.lane not in LANES:
            self._deny(sid, iid, requested, _ZERO, "unknown_lane", f"lane {m.lane!r}")
            return
        if (m.exposure is None) == (m.target_qty is None):
            self._deny(sid, iid, requested, _ZERO, "bad_target", "exactly one of exposure and target_qty must be set")
            return
        acct = sid if m.lane == "production" else canary_account(sid)
        self._requests[(acct, iid)] = _Request(m.exposure, m.target_qty, m.reason, m.ts_event_ns, m.edge_bps)
        self._tally[sid].last_target = {
            "lane": m.lane, "instrument": str(iid), "exposure": m.exposure,
            "target_qty": None if m.target_qty is None else str(m.target_qty), "reason": m.reason,
            "ts_ns": m.ts_event_ns,
        }
        if self._resize(acct, iid, m.ts_event_ns):
            self._route(iid, m.ts_event_ns, f"{sid}: {m.reason}" if m.reason else sid)

    def on_fill(self, m: Fill) -> None:
        """A real fill booked by the engine: split it over the accounts (each trade once)."""
        key = (m.instrument_id, m.trade_id)
        if key in self._seen_trades:
            return
        self._seen_trades.add(key)
        self._attribute(m.instrument_id, m.side, m.qty, m.price, m.fee, m.fee_asset, m.trade_id,
                        m.client_order_id, m.ts_event_ns)

    def on_bar(self, m: Bar) -> None:
        """A closed bar: size the targets held for a mark, sample PnL, journal equity when due."""
        iid = m.instrument_id
        self._bar_seq += 1
        if self.slippage is not None:
            vol = self._vols.get(iid)
            if vol is None:
                vol = self._vols[iid] = RealisedVol(self.slippage.vol_window_s)
            vol.update(m.ts_event_ns + m.interval_s * _NS_PER_S, m.close)
        held = [k for k in self._held if k[1] == iid] if self._held else None
        if held:
            changed = False
            for acct, _ in held:
                changed = self._resize(acct, iid, m.ts_event_ns) or changed
            if changed:
                self._route(iid, m.ts_event_ns, "first mark")
        ts_close = m.ts_event_ns + m.interval_s * _NS_PER_S
        for sid, route in self._routes.items():
            if iid not in route.instruments:
                continue
            t = self._tally[sid]
            pnl = self._sample_pnl(sid)
            if t.series and t.series[-1][0] == ts_close:
                t.series[-1] = (ts_close, pnl)
            else:
                t.series.append((ts_close, pnl))
            t.peak_pnl = max(t.peak_pnl, pnl)
        now = self.clock.time_ns()
        if self.journal is not None and now - self._last_equity_ns >= self.config.equity_sample_s * _NS_PER_S:
            self._last_equity_ns = now
            self._journal_equity(now, self._marks())

    # ------------------------------------------------------------ recovery

    async def recover(self) -> None:
        """Rebuild accounts and targets from the journal; attribute the crash window's fills.

        Call after `configure` and before reconciliation publishes missed fills.
        """
        j = self.journal
        if j is None:
            return
        rows = await j.read(j.load_strategy_fills)
        target_rows = await j.read(j.load_strategy_targets)
        fills = await j.read(j.load_fills)
        equity_rows = await j.read(j.strategy_equity)
        attributed: set[tuple[InstrumentId, str]] = set()
        last_px: dict[InstrumentId, Decimal] = {}
        for r in rows:
            last_px[r.instrument_id] = r.price
            share = Share(r.strategy_id, r.qty, r.price, _ZERO if r.kind == "paper" else r.fee)
            if r.kind == "paper":
                self.shadow.book(share, r.instrument_id)
            else:
                self.book.book(share, r.instrument_id)
                if r.kind == "fill":
                    attributed.add((r.instrument_id, r.trade_id))
                    self._count_fill(r.strategy_id, r.client_order_id)
        self._drain_trips()
        for t in target_rows:
            acct = t.strategy_id if t.lane == "production" else canary_account(t.strategy_id)
            if t.strategy_id in self._routes:
                self._requests[(acct, t.instrument_id)] = _Request(t.exposure, t.target_qty, t.reason, t.ts_ns)
            table = self._shadow_targets if self._is_shadow(acct) else self._targets
            table.setdefault(t.instrument_id, {})[acct] = t.effective_qty
        # Strategies no longer configured hold a target of 0 (closed by netting).
        for by_acct in self._targets.values():
            for acct in list(by_acct):
                if acct != HOUSE and self._owner(acct) not in self._routes:
                    by_acct[acct] = _ZERO
        real: dict[InstrumentId, Decimal] = {}
        recovered = 0
        for f in fills:
            key = (f.instrument_id, f.trade_id)
            self._seen_trades.add(key)
            signed = f.qty if f.side is Side.BUY else -f.qty
            _, base_fee = self._fees(f.instrument_id, f.price, f.fee, f.fee_asset)
            real[f.instrument_id] = real.get(f.instrument_id, _ZERO) + signed - base_fee
            last_px[f.instrument_id] = f.price
            if key not in attributed:
                self._attribute(f.instrument_id, f.side, f.qty, f.price, f.fee, f.fee_asset, f.trade_id,
                                f.client_order_id, f.ts_ns, publish=False)
                recovered += 1
        now = self.clock.time_ns()
        adjusted = 0
        for iid in set(real) | self.book.instruments():
            diff = real.get(iid, _ZERO) - self.book.total_position(iid)
            if diff == 0:
                continue
            # at the newest price known (a fill's, an attribution's), else the mark
            px = last_px.get(iid) or self._mark(iid)
            if px is None:
                log.error("router_unexplained_position", instrument=str(iid), qty=str(diff),
                          detail="no price to book it to the house account at")
                continue
            share = Share(HOUSE, diff, px, _ZERO)
            self.book.book(share, iid)
            self._record_fill(now, share, iid, "adjust", "", "")
            adjusted += 1
            log.warning("router_position_to_house", instrument=str(iid), qty=str(diff), price=str(px))
        for r in equity_rows:
            t = self._tally.get(r.strategy_id)
            if t is None:
                continue
            pnl = r.equity_usd - r.capital_usd
            t.series.append((r.ts_ns, pnl))
            t.peak_pnl = max(t.peak_pnl, pnl)
        log.info("router_recovered", attribution_rows=len(rows), targets=len(target_rows),
                 fills_attributed_now=recovered, adjusted=adjusted)

    # ------------------------------------------------------------ internals

    def _sample_pnl(self, sid: str, accounts: tuple[str, ...] | None = None) -> float:
        """The strategy's PnL for the series, in float from a per-strategy cache of its holdings
        (cash - fees, and qty x multiplier per instrument), rebuilt only after a booking: a bar
        costs one multiply per instrument, not a Decimal pass over every holding. The cache key
        is the sum of its accounts' booking versions (they only grow, so any booking moves it);
        the total is reused until the next booking or the next bar the router sees (marks that
        move between bars, e.g. by trade ticks, are read at the next bar: the samples and the
        backtest's per-bar rows are bar-close figures)."""
        if accounts is None:
            accounts = self._accounts.get(sid)
            if accounts is None:
                accounts = self._accounts[sid] = self._real_accounts(sid)
        vget = self.book.versions.get
        version = 0
        for a in accounts:
            version += vget(a, 0)
        c = self._pnl_cache.get(sid)
        if c is None or c.version != version:
            base = _ZERO
            legs: list[tuple[InstrumentId, float, float]] = []
            for a in accounts:
                for i, h in self.book.holdings.get(a, {}).items():
                    base += h.cash - h.fees
                    if h.qty:
                        legs.append((i, float(h.qty * h.multiplier), float(h.avg_px)))
            c = self._pnl_cache[sid] = _PnlCache(version, float(base), legs)
        elif c.bar_seq == self._bar_seq:
            return c.total
        total = c.base
        if c.legs:
            marks = self.marks.marks
            for i, qm, avg in c.legs:
                total += qm * marks.get(i, avg)
        c.total = total
        c.bar_seq = self._bar_seq
        return total

    def _new_tally(self) -> _Tally:
        return _Tally(series=collections.deque(maxlen=self.config.pnl_series_max))

    def _owner(self, account: str) -> str:
        return account[: -len(":canary")] if account.endswith(":canary") else account

    def _is_shadow(self, account: str) -> bool:
        if not account.endswith(":canary"):
            return False
        route = self._routes.get(self._owner(account))
        return route is not None and route.canary_share <= 0

    def _real_accounts(self, strategy_id: str) -> tuple[str, ...]:
        canary = canary_account(strategy_id)
        return (strategy_id,) if self._is_shadow(canary) else (strategy_id, canary)

    def _mark(self, iid: InstrumentId) -> Decimal | None:
        m = self.marks.mark(iid)
        return None if m is None else _dec(m)

    def _marks(self) -> _MarkView:
        return _MarkView(self.marks)

    def _multiplier(self, iid: InstrumentId) -> Decimal:
        inst = self.instruments.get(iid)
        return _ONE if inst is None else inst.multiplier

    def _change_state(self, sid: str, new: str, reason: str, source: str) -> None:
        old = self._states.get(sid, "active")
        self._states[sid] = new
        if old == new:
            return
        now = self.clock.time_ns()
        log.info("strategy_state_changed", strategy=sid, old=old, new=new, reason=reason, source=source)
        self.bus.publish(StrategyStateChanged(ts_event_ns=now, ts_init_ns=now, strategy_id=sid, old=old, new=new,
                                              reason=reason, source=source))

    def _resize_all(self, ts_ns: int, banded: bool = False) -> set[InstrumentId]:
        touched: set[InstrumentId] = set()
        for sid in self._routes:
            touched |= self._resize_strategy(sid, ts_ns, banded)
        return touched

    def _resize_strategy(self, sid: str, ts_ns: int, banded: bool = False) -> set[InstrumentId]:
        """Re-size every target of a strategy's lanes (and close positions without one when not active)."""
        touched: set[InstrumentId] = set()
        for acct in (sid, canary_account(sid)):
            iids = ({iid for (a, iid) in self._requests if a == acct} | set(self.book.holdings.get(acct, {}))
                    | set(self.shadow.holdings.get(acct, {})))
            for iid in iids:
                if self._resize(acct, iid, ts_ns, banded):
                    touched.add(iid)
        return touched

    def _resize(self, acct: str, iid: InstrumentId, ts_ns: int, banded: bool = False) -> bool:
        """Compute a lane's routed target; True when it changed. `banded`: a re-size for a capital
        change only, held within the no-trade band (module docstring)."""
        sid = self._owner(acct)
        route = self._routes.get(sid)
        shadow = self._is_shadow(acct)
        table = self._shadow_targets if shadow else self._targets
        book = self.shadow if shadow else self.book
        req = self._requests.get((acct, iid))
        state = self._states.get(sid, "disabled")
        switched = False
        if shadow:
            # a canary lane that became a shadow: its real account closes by netting
            real = self._targets.get(iid, {})
            if real.get(acct, _ZERO) != 0 or (acct in real and self.book.position(acct, iid) != 0):
                real[acct] = _ZERO
                switched = True
        else:
            self._shadow_targets.get(iid, {}).pop(acct, None)  # a shadow lane that now trades
        mark = self._mark(iid)
        mult = self._multiplier(iid)
        qty: Decimal | None
        if state == "disabled" or route is None:
            qty = _ZERO
        elif req is None:
            qty = None if state == "active" else _ZERO  # reduce without a target: toward 0
        elif req.target_qty is not None:
            qty = req.target_qty
        else:
            if mark is None:
                self._held.add((acct, iid))
                return switched
            lane = "canary" if acct.endswith(":canary") else "production"
            raw = Decimal(repr(float(req.exposure or 0.0) * self.capital_usd(sid, lane)))
            qty = (raw / (mark * mult)).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
        self._held.discard((acct, iid))
        if qty is None:
            return switched
        if state == "reduce":
            pos = book.position(acct, iid)
            qty = min(max(qty, _ZERO), pos) if pos > 0 else (max(min(qty, _ZERO), pos) if pos < 0 else _ZERO)
        old = table.get(iid, {}).get(acct)
        if (banded and old and qty and req is not None and req.exposure is not None and state == "active"
                and (old > 0) == (qty > 0) and not self._quota_clips(route, qty, mark, mult)
                and abs(qty - old) <= Decimal(repr(float(self.config.resize_band))) * abs(old)):
            return switched  # within the no-trade band: the current target stays
        if route is not None and route.quota_usd > 0 and qty != 0:
            if mark is None:
                self._held.add((acct, iid))
                return switched
            limit = Decimal(repr(float(route.quota_usd)))
            if abs(qty) * mark * mult > limit:
                allowed = (limit / (mark * mult)).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
                allowed = allowed if qty > 0 else -allowed
                self._deny(sid, iid, qty, allowed, "quota",
                           f"|{qty} x {mark} x {mult}| > quota_usd {route.quota_usd} ({acct})")
                qty = allowed
        if (self.slippage is not None and req is not None and req.edge_bps is not None and not shadow
                and state == "active" and mark is not None and qty != 0):
            qty = self._cost_check(sid, acct, iid, old if old is not None else _ZERO, qty, req.edge_bps, mark,
                                   mult, ts_ns)
        if old == qty:
            return switched
        table.setdefault(iid, {})[acct] = qty
        if self.journal is not None:
            lane = "canary" if acct.endswith(":canary") else "production"
            self._safe(self.journal.record_strategy_target, ts_ns, sid, lane, iid,
                       None if req is None else req.exposure, None if req is None else req.target_qty, qty,
                       "" if req is None else req.reason)
        return True

    def _cost_check(self, sid: str, acct: str, iid: InstrumentId, old: Decimal, qty: Decimal, edge_bps: float,
                    mark: Decimal, mult: Decimal, ts_ns: int) -> Decimal:
        """`qty` with the part that adds exposure trimmed to what `edge_bps` pays (module docstring)."""
        assert self.slippage is not None
        base = old if old == 0 or (old > 0) == (qty > 0) else _ZERO  # a flip: the old side closes
        add = abs(qty) - abs(base)
        if add <= 0:
            return qty  # a reduction: never held back by its cost
        inst = self.instruments.get(iid)
        fee_bps = float(inst.taker_fee) * 1e4 if inst is not None else 0.0
        unit = mark * mult
        add_notional = float(add * unit)
        vol = self._vols.get(iid)
        vol_bps = vol.bps(ts_ns) if vol is not None else 0.0
        model = self.slippage
        slip_bps = model.predict_bps(add_notional, math.nan, vol_bps)
        cost_bps = 2.0 * (fee_bps + slip_bps)
        if cost_bps <= edge_bps:
            return qty
        budget = edge_bps / 2.0 - fee_bps  # what one leg's slippage may cost
        fits = model.max_notional_within(budget, add_notional, math.nan, vol_bps)
        kept = (Decimal(repr(fits)) / unit).quantize(QTY_QUANTUM, rounding=ROUND_DOWN) if fits > 0 else _ZERO
        kept = min(kept, add)
        new = base + kept if qty > 0 else base - kept
        detail = (f"round-trip cost {cost_bps:.2f} bps (fee {fee_bps:.2f} + slippage {slip_bps:.2f}, x2; "
                  f"vol {vol_bps:.1f} bps) on {add_notional:.2f} added notional > edge {edge_bps:.2f} bps: "
                  f"{'kept ' + str(kept) + ' of ' + str(add) if kept > 0 else 'nothing added'} ({acct})")
        t = self._tally.get(sid)
        if t is not None:
            t.cost_trims += 1
        now = self.clock.time_ns()
        log.info("router_cost_trimmed", strategy=sid, instrument=str(iid), requested=str(qty), allowed=str(new),
                 detail=detail)
        self.bus.publish(RouterDenied(ts_event_ns=now, ts_init_ns=now, strategy_id=sid, instrument_id=iid,
                                      requested_qty=qty, allowed_qty=new, reason="cost_exceeds_edge", detail=detail))
        return new

    @staticmethod
    def _quota_clips(route: Route | None, qty: Decimal, mark: Decimal | None, mult: Decimal) -> bool:
        """Whether the lane's quota would clip `qty` (or cannot be checked without a mark)."""
        if route is None or route.quota_usd <= 0:
            return False
        return mark is None or abs(qty) * mark * mult > Decimal(repr(float(route.quota_usd)))

    def begin_batch(self, _msg: object = None) -> None:
        """Hold routing until `end_batch`: the strategies' targets of one bar are netted together,
        so a bar where one strategy buys and another sells sends the engine one net target (two
        targets routed one by one could leave a buy resting on the venue beside a sell)."""
        self._batching = True

    def end_batch(self, _msg: object = None) -> None:
        """Route every instrument whose targets changed since `begin_batch` (a no-op outside one)."""
        self._batching = False
        pending, self._pending = self._pending, {}
        for iid, (ts_ns, reason) in pending.items():
            self._route(iid, ts_ns, reason)

    def _route(self, iid: InstrumentId, ts_ns: int, reason: str) -> None:
        """Cross opposite gaps at the mark, book shadow paper fills, publish the net if it changed."""
        if self._batching:
            self._pending.setdefault(iid, (ts_ns, reason))
            return
        mark = self._mark(iid)
        targets = self._targets.get(iid, {})
        if mark is not None:
            for share in self.book.cross(iid, targets, mark):
                self._emit(ts_ns, share, iid, "cross", "", "")
            self._drain_trips()
            for acct, tgt in self._shadow_targets.get(iid, {}).items():
                gap = tgt - self.shadow.position(acct, iid)
                if gap != 0:
                    share = Share(acct, gap, mark, _ZERO)
                    self.shadow.book(share, iid)
                    self._emit(ts_ns, share, iid, "paper", "", "")
            self.shadow.on_trip.clear()
        if not targets:
            return
        net = sum(targets.values(), _ZERO)
        if self._net.get(iid) == net:
            return
        self._net[iid] = net
        self.bus.publish(TargetPosition(ts_event_ns=ts_ns, ts_init_ns=self.clock.time_ns(),
                                        strategy_id=ROUTER_STRATEGY_ID, instrument_id=iid, target_qty=net,
                                        reason=reason))

    def _fees(self, iid: InstrumentId, price: Decimal, fee: Decimal, fee_asset: str) -> tuple[Decimal, Decimal]:
        """(fee in the quote asset, base quantity the fee removes from a spot position)."""
        inst = self.instruments.get(iid)
        if inst is None or fee == 0:
            return fee if inst is None else _ZERO, _ZERO
        if fee_asset == inst.pnl_currency:
            return fee, _ZERO
        if fee_asset == inst.base_asset:
            return fee * price * inst.multiplier, (fee if inst.kind.holds_base else _ZERO)
        return _ZERO, _ZERO  # another asset (BNB): outside equity, as in the portfolio

    def _attribute(self, iid: InstrumentId, side: Side, qty: Decimal, price: Decimal, fee: Decimal,
                   fee_asset: str, trade_id: str, client_order_id: str, ts_ns: int, publish: bool = True) -> None:
        fee_quote, base_fee = self._fees(iid, price, fee, fee_asset)
        signed = qty if side is Side.BUY else -qty
        shares = self.book.attribute(iid, signed, price, fee_quote, self._targets.get(iid, {}), base_fee)
        for share in shares:
            self._count_fill(share.account, client_order_id)
            if publish:
                self._emit(ts_ns, share, iid, "fill", trade_id, client_order_id)
            else:
                self._record_fill(ts_ns, share, iid, "fill", trade_id, client_order_id)
        self._drain_trips()

    def _count_fill(self, account: str, client_order_id: str) -> None:
        t = self._tally.get(self._owner(account))
        if t is not None:
            t.fills += 1
            if client_order_id and t.order_ids.add(client_order_id):
                t.orders += 1

    def _drain_trips(self) -> None:
        for acct, pnl in self.book.on_trip:
            t = self._tally.get(self._owner(acct))
            if t is None:
                continue
            t.round_trips += 1
            t.loss_streak = t.loss_streak + 1 if pnl < 0 else 0
        self.book.on_trip.clear()

    def _emit(self, ts_ns: int, share: Share, iid: InstrumentId, kind: str, trade_id: str, cid: str) -> None:
        self._record_fill(ts_ns, share, iid, kind, trade_id, cid)
        self.bus.publish(FillAttributed(ts_event_ns=ts_ns, ts_init_ns=self.clock.time_ns(), strategy_id=share.account,
                                        instrument_id=iid, qty=share.qty, price=share.price, fee=share.fee,
                                        kind=kind, trade_id=trade_id, client_order_id=cid))

    def _record_fill(self, ts_ns: int, share: Share, iid: InstrumentId, kind: str, trade_id: str, cid: str) -> None:
        if self.journal is None:
            return
        self._safe(self.journal.record_strategy_fill, ts_ns, share.account, iid, kind, share.qty, share.price,
                   share.fee, trade_id, cid)
        if share.base_fee_qty:
            # the base-fee sale as its own row, so a replay books exactly what was booked
            self._safe(self.journal.record_strategy_fill, ts_ns, share.account, iid, "adjust", -share.base_fee_qty,
                       share.price, _ZERO, trade_id, cid)

    def _journal_equity(self, now: int, marks: _MarkView) -> None:
        assert self.journal is not None
        equity = {row[0]: row[1] for row in self.equity_rows()}  # counted as in stats: PnL once
        for sid in self._routes:
            realized = unrealized = fees = _ZERO
            for acct in self._real_accounts(sid):
                for iid, h in self.book.holdings.get(acct, {}).items():
                    realized += h.realized
                    unrealized += h.unrealized(marks.get(iid))
                    fees += h.fees
            capital = self.share(sid) * float(self.equity_usd())
            pnl = float(realized + unrealized - fees)
            self._safe(self.journal.record_strategy_equity, now, sid, equity.get(sid, capital + pnl),
                       float(realized), float(unrealized), float(fees), capital)

    def _deny(self, sid: str, iid: InstrumentId, requested: Decimal, allowed: Decimal, reason: str, detail: str) -> None:
        t = self._tally.get(sid)
        if t is not None:
            t.denials += 1
        now = self.clock.time_ns()
        log.warning("router_denied", strategy=sid, instrument=str(iid), requested=str(requested),
                    allowed=str(allowed), reason=reason, detail=detail)
        self.bus.publish(RouterDenied(ts_event_ns=now, ts_init_ns=now, strategy_id=sid, instrument_id=iid,
                                      requested_qty=requested, allowed_qty=allowed, reason=reason, detail=detail))

    def _safe(self, fn: Callable[..., None], *args: Any) -> None:
        """A journal write; a failing journal is its own component's fatal error (logged once here)."""
        try:
            fn(*args)
        except JournalError as exc:
            self.journal_errors += 1
            if self.journal_errors == 1:
                log.error("router_journal_write_failed", error=str(exc))


def _qty_text(qty: Decimal) -> str:
    """A quantity as the views show it: plain notation, no trailing zeros of the 1e-12 grid."""
    text = format(qty.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def routes_from(items: Iterable[Route]) -> dict[str, Route]:
    """Routes keyed by strategy id (configuration order kept)."""
    return {r.strategy_id: r for r in items}
