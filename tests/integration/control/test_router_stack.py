"""Two strategies on one instrument through the real stack (router, engine, sim venue,
journal): the engine sees one net target, the venue never holds orders of both sides, each
fill is attributed and the strategies' positions sum to the real one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from nautilus_hmm.bootstrap import TradingStack, build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import Bar, FillAttributed, TargetPosition
from nautilus_hmm.strategies.base import StrategyContext
from nautilus_hmm.strategies.config import StrategyInstanceConfig
from nautilus_hmm.venues.sim.venue import SimVenue

BTC = InstrumentId("sim", "BTCUSDT")
CFG: dict[str, Any] = {
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
    "strategies": [{"id": "long", "kind": "sma_cross"}, {"id": "short", "kind": "sma_cross"}],
}


class Scripted:
    """A strategy whose targets the test states (the Strategy protocol, nothing else)."""

    kind = "scripted"

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        self.instruments = (BTC,)
        self.ctx: StrategyContext | None = None
        self.next_qty: str | None = None  # stated at the next bar
        self._unsub: Any = None

    def attach(self, bus: Bus, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self._unsub = bus.subscribe(Bar, self.on_bar)

    def detach(self) -> None:
        if self._unsub is not None:
            self._unsub()
        self.ctx = None

    def on_bar(self, bar: Bar) -> None:
        if self.next_qty is not None:
            self.say(self.next_qty)
            self.next_qty = None

    def update_params(self, cfg: StrategyInstanceConfig) -> None:
        pass

    def status(self) -> dict[str, object]:
        return {"kind": self.kind}

    def say(self, qty: str) -> None:
        assert self.ctx is not None
        self.ctx.target(BTC, Decimal(qty), "test", self.ctx.now_ns())


@contextlib.asynccontextmanager
async def two_strategies(tmp_path: Path) -> AsyncIterator[tuple[TradingStack, SimVenue, ManualClock]]:
    cfg = parse(Config, CFG)
    clock, bus = ManualClock(), Bus()
    journal = Journal.open(tmp_path / "journal.sqlite3")
    venue = SimVenue(cfg.venues.sim, bus, clock, tmp_path)
    await venue.start()
    st = build_stack(cfg, bus, clock, journal, {"sim": venue}, durable=True,
                     strategies={"long": Scripted("long"), "short": Scripted("short")})
    await st.engine.start()
    consumer = asyncio.create_task(st.engine.run())
    try:
        st.engine.add_instruments(venue.instruments().values())
        st.engine.choose_account_currency(st.traded_instruments())
        st.attach_market()
        for asset, bal in (await venue.balances()).items():
            st.portfolio.set_cash(asset, bal.total, venue.name)
        st.engine.reset_equity_peak()
        st.attach_strategies()
        st.gate.set_state(TradingState.ACTIVE, "test", "test")
        venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
        yield st, venue, clock
    finally:
        consumer.cancel()
        await journal.aclose()


async def settle(st: TradingStack) -> None:
    await st.engine.idle()
    await st.journal.flush()
    await st.engine.idle()


def publish_bar(st: TradingStack, clock: ManualClock) -> None:
    """A closed 10 s bar of BTCUSDT at 60,000 (the strategies decide on it)."""
    now = clock.time_ns()
    st.bus.publish(Bar(ts_event_ns=now - 10 * 10**9, ts_init_ns=now, instrument_id=BTC, interval_s=10,
                       open=60000.0, high=60000.0, low=60000.0, close=60000.0, volume=1.0))


def scripted(st: TradingStack, sid: str) -> Scripted:
    strategy = st.strategies[sid]
    assert isinstance(strategy, Scripted)
    return strategy


async def test_opposite_targets_reach_the_engine_as_one_net_target_and_never_cross(tmp_path: Path) -> None:
    async with two_strategies(tmp_path) as (st, venue, clock):
        nets: list[TargetPosition] = []
        attributed: list[FillAttributed] = []
        st.bus.subscribe(TargetPosition, nets.append)
        st.bus.subscribe(FillAttributed, attributed.append)
        sides_open: list[set[str]] = []
        for long_qty, short_qty in (("0.5", "-0.3"), ("0.8", "-0.6"), ("0.2", "-0.4"), ("0.6", "0")):
            # both strategies decide on the same bar (as they do live)
            scripted(st, "long").next_qty = long_qty
            scripted(st, "short").next_qty = short_qty
            publish_bar(st, clock)
            await settle(st)
            sides_open.append({o.side.value for o in st.engine.orders.values() if not o.status.is_terminal})
            clock.advance(1)
            venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
            await settle(st)
            real = st.portfolio.position_qty(BTC)
            parts = [st.router.position(sid, BTC) for sid in ("long", "short", "_house")]
            assert sum(parts, Decimal(0)) == real
        # the engine only ever heard the router, and the venue never held both sides at once
        assert nets and {m.strategy_id for m in nets} == {"router"}
        assert all(len(sides) <= 1 for sides in sides_open), sides_open
        assert st.portfolio.position_qty(BTC) == Decimal("0.6")
        assert (st.router.position("long", BTC), st.router.position("short", BTC)) == (Decimal("0.6"), Decimal(0))
        assert {a.strategy_id for a in attributed} >= {"long", "short"}


async def test_a_strategy_removed_by_a_reload_is_closed_by_netting(tmp_path: Path) -> None:
    async with two_strategies(tmp_path) as (st, venue, clock):
        scripted(st, "long").next_qty = "0.5"
        scripted(st, "short").next_qty = "-0.3"
        publish_bar(st, clock)
        await settle(st)
        clock.advance(1)
        venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
        await settle(st)
        assert st.portfolio.position_qty(BTC) == Decimal("0.2")
        only_long = parse(Config, {**CFG, "strategies": CFG["strategies"][:1]})
        st.apply_config(only_long)
        assert list(st.strategies) == ["long"] and st.router.net_target(BTC) == Decimal("0.5")
        await settle(st)
        clock.advance(1)
        venue.step_trade(BTC, 60000.0, 5.0, clock.time_ns())
        await settle(st)
        assert st.portfolio.position_qty(BTC) == Decimal("0.5")
        assert (st.router.position("long", BTC), st.router.position("short", BTC)) == (Decimal("0.5"), Decimal(0))
