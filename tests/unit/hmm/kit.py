"""Helpers for strategy/service tests: a decisive toy model, a bar feed, a fake engine."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.hmm.features import Scaler
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.messages import Bar, PositionChanged, StrategyTarget, TargetPosition
from nautilus_hmm.strategies.base import StrategyContext, exposure_to_qty
from tests.unit.hmm.toy import state, toy_model

IID = InstrumentId("sim", "BTCUSDT")
NS = 1_000_000_000
T0 = 1_700_002_800 * NS  # a whole hour


def decisive_model(micro_next: float = 0.001) -> RegimeModel:
    """The toy model with scalers sized to real returns, so trends give confident posteriors."""
    micro = (state("down", -micro_next, 0.002), state("up", micro_next, 0.002))
    m = toy_model(micro_states=(micro, micro))
    return dataclasses.replace(
        m,
        macro=dataclasses.replace(m.macro, scaler=Scaler(np.zeros(3), np.array([0.01, 0.03, 0.01]))),
        micro=dataclasses.replace(m.micro, scaler=Scaler(np.zeros(3), np.array([0.002, 0.006, 0.002]))),
    )


class FakeEngine:
    """Fills every target at once at the last bar close and publishes PositionChanged (the engine's interface).

    A StrategyTarget of the production lane is taken as the one-strategy pass-through does
    (exposure x `capital_usd` / last close); canary-lane targets are shadows (dropped)."""

    def __init__(self, bus: Bus, clock: ManualClock, capital_usd: float = 10_000.0) -> None:
        self.bus = bus
        self.clock = clock
        self.qty: dict[InstrumentId, Decimal] = {}
        self.targets: list[TargetPosition] = []
        self.strategy_targets: list[StrategyTarget] = []
        self.price = 100.0
        self.capital_usd = capital_usd
        self.realized = Decimal(0)
        bus.subscribe(TargetPosition, self.on_target)
        bus.subscribe(StrategyTarget, self.on_strategy_target)
        bus.subscribe(Bar, self.on_bar)

    def on_strategy_target(self, msg: StrategyTarget) -> None:
        self.strategy_targets.append(msg)
        if msg.lane != "production":
            return
        qty = msg.target_qty
        if qty is None:
            assert msg.exposure is not None
            qty = exposure_to_qty(msg.exposure, self.capital_usd, self.price)
        self.bus.publish(TargetPosition(ts_event_ns=msg.ts_event_ns, ts_init_ns=msg.ts_init_ns,
                                        strategy_id=msg.strategy_id, instrument_id=msg.instrument_id,
                                        target_qty=qty, reason=msg.reason))

    def position(self, iid: InstrumentId) -> Decimal:
        return self.qty.get(iid, Decimal(0))

    def on_bar(self, bar: Bar) -> None:
        self.price = bar.close

    def on_target(self, msg: TargetPosition) -> None:
        self.targets.append(msg)
        self.qty[msg.instrument_id] = msg.target_qty
        now = self.clock.time_ns()
        self.bus.publish(PositionChanged(ts_event_ns=now, ts_init_ns=now, instrument_id=msg.instrument_id,
                                         qty=msg.target_qty, avg_px=Decimal(repr(self.price)),
                                         realized_pnl=self.realized, fees=Decimal(0)))


class Feed:
    """Publishes 1-minute bars of a drifting price on the bus, moving the clock to each close."""

    def __init__(self, bus: Bus, clock: ManualClock, seed: int = 0, interval_s: int = 60) -> None:
        self.bus = bus
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        self.price = 100.0
        self.k = 0
        self.interval_s = interval_s

    def bars(self, n: int, drift: float, noise: float = 0.0003) -> list[Bar]:
        out = []
        step = self.interval_s * NS
        for _ in range(n):
            ts = T0 + self.k * step
            self.k += 1
            o = self.price
            self.price = float(o * np.exp(drift + noise * self.rng.standard_normal()))
            c = self.price
            out.append(Bar(ts_event_ns=ts, ts_init_ns=ts + step, instrument_id=IID, interval_s=self.interval_s,
                           open=o, high=max(o, c), low=min(o, c), close=c, volume=1.0))
        return out

    def run(self, n: int, drift: float, noise: float = 0.0003) -> None:
        for bar in self.bars(n, drift, noise):
            self.clock.set_time_ns(bar.ts_init_ns)
            self.bus.publish(bar)


def context(bus: Bus, clock: ManualClock, engine: FakeEngine) -> StrategyContext:
    return StrategyContext("hmm", bus, clock, engine.position)
