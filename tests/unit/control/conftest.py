"""Router test helpers: a bus with recorders, a manual clock, a mark book, two instruments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nautilus_hmm.control.router import Route, RouterConfig, StrategyJournal, StrategyRouter
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import InstrumentKind, Liquidity, Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
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

BTC = InstrumentId("sim", "BTCUSDT")
ETH = InstrumentId("sim", "ETHUSDT")


def instrument(iid: InstrumentId, multiplier: str = "1", kind: InstrumentKind = InstrumentKind.SPOT) -> Instrument:
    """A plain instrument quoted in USDT."""
    return Instrument(id=iid, base_asset=iid.symbol.removesuffix("USDT"), quote_asset="USDT", kind=kind,
                      tick_size=Decimal("0.01"), step_size=Decimal("0.0001"), min_qty=Decimal("0.0001"),
                      max_qty=None, min_notional=Decimal(0), multiplier=Decimal(multiplier))


@dataclass
class Rig:
    """A router wired to a bus, with every message it publishes recorded."""

    router: StrategyRouter
    bus: Bus
    clock: ManualClock
    marks: MarkBook
    equity: list[float]
    seen: dict[type, list[Any]] = field(default_factory=dict)
    trade_seq: int = 0

    def of(self, cls: type) -> list[Any]:
        return self.seen.get(cls, [])

    def bar(self, iid: InstrumentId, close: float, interval_s: int = 60) -> None:
        self.clock.advance(interval_s)
        now = self.clock.time_ns()
        self.bus.publish(Bar(ts_event_ns=now - interval_s * 1_000_000_000, ts_init_ns=now, instrument_id=iid,
                             interval_s=interval_s, open=close, high=close, low=close, close=close, volume=1.0))

    def target(self, sid: str, iid: InstrumentId, *, exposure: float | None = None, qty: str | None = None,
               lane: str = "production") -> None:
        now = self.clock.time_ns()
        self.bus.publish(StrategyTarget(ts_event_ns=now, ts_init_ns=now, strategy_id=sid, instrument_id=iid,
                                        exposure=exposure, target_qty=None if qty is None else Decimal(qty),
                                        reason="test", lane=lane))

    def fill(self, iid: InstrumentId, side: Side, qty: str, price: str, fee: str = "0", trade_id: str | None = None,
             fee_asset: str = "USDT") -> Fill:
        if trade_id is None:
            self.trade_seq += 1
            trade_id = f"T{self.trade_seq}"
        now = self.clock.time_ns()
        m = Fill(ts_event_ns=now, ts_init_ns=now, instrument_id=iid, client_order_id=f"c-{trade_id}",
                 venue_order_id=None, trade_id=trade_id, side=side, qty=Decimal(qty), price=Decimal(price),
                 fee=Decimal(fee), fee_asset=fee_asset, liquidity=Liquidity.TAKER)
        self.bus.publish(m)
        return m

    def of_target(self) -> list[TargetPosition]:
        return self.of(TargetPosition)

    def net(self, iid: InstrumentId) -> Decimal | None:
        nets = [m.target_qty for m in self.of(TargetPosition) if m.instrument_id == iid]
        return nets[-1] if nets else None


def make_rig(routes: list[Route], *, equity_usd: float = 10_000.0, journal: StrategyJournal | None = None,
             instruments: dict[InstrumentId, Instrument] | None = None,
             config: RouterConfig | None = None) -> Rig:
    """A router over `routes`, attached after the mark book."""
    bus, clock, marks = Bus(), ManualClock(), MarkBook()
    marks.attach(bus)
    inst = instruments if instruments is not None else {BTC: instrument(BTC), ETH: instrument(ETH)}
    equity = [equity_usd]
    router = StrategyRouter(bus, clock, marks, inst, journal, lambda: equity[0], config or RouterConfig())
    router.configure({r.strategy_id: r for r in routes})
    router.attach()
    rig = Rig(router, bus, clock, marks, equity)
    for cls in (TargetPosition, FillAttributed, RouterDenied, StrategyStateChanged):
        rig.seen[cls] = []
        bus.subscribe(cls, _recorder(rig.seen[cls]), name="test")
    return rig


def _recorder(into: list[Any]) -> Callable[[Any], None]:
    return into.append
