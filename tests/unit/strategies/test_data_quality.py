"""Data quality told to the strategies: the data-quality book keeps what venues publish
(`MarketDataQualityChanged`), the context reads it, and by default a strategy stands aside
(states no target) while an instrument's data is not live; a strategy may opt out."""

from __future__ import annotations

from decimal import Decimal

from structlog.testing import capture_logs

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import DataQuality
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.quality import DataQualityBook
from nautilus_hmm.messages import MarketDataQualityChanged, StrategyTarget
from nautilus_hmm.messages.codec import message_to_dict
from nautilus_hmm.strategies.base import StrategyContext
from nautilus_hmm.strategies.sma_cross import SmaCross
from tests.unit.strategies.kit import INTERVAL_S, T0, bar

AAPL = InstrumentId("ibkr", "AAPL")
ES = InstrumentId("ibkr", "ES-202612")
CLOSES = [10.0, 10.0, 10.0, 11.0, 9.0, 8.0, 8.0]  # fast 2 / slow 3: a cross up at bar 3, down at bar 5


class Rig:
    def __init__(self) -> None:
        self.bus, self.clock = Bus(), ManualClock(T0)
        self.book = DataQualityBook()
        self.book.attach(self.bus)
        self.targets: list[StrategyTarget] = []
        self.bus.subscribe(StrategyTarget, self.targets.append)
        self.ctx = StrategyContext("s1", self.bus, self.clock, lambda iid: Decimal(0),
                                   data_quality=self.book.quality)

    def quality(self, iid: InstrumentId, q: DataQuality, previous: DataQuality | None = None) -> None:
        self.bus.publish(MarketDataQualityChanged(ts_event_ns=T0, ts_init_ns=T0, venue="ibkr", instrument_id=iid,
                                                  quality=q, previous=previous, detail="IB marketDataType 3"))


def test_an_instrument_never_reported_is_live() -> None:
    rig = Rig()
    assert rig.ctx.data_quality(AAPL) is DataQuality.LIVE and rig.book.degraded() == {}
    assert StrategyContext("s", rig.bus, rig.clock, lambda iid: Decimal(0)).data_quality(AAPL) is DataQuality.LIVE


def test_the_context_reads_the_latest_quality_per_instrument() -> None:
    rig = Rig()
    rig.quality(AAPL, DataQuality.DELAYED)
    assert rig.ctx.data_quality(AAPL) is DataQuality.DELAYED and rig.ctx.data_quality(ES) is DataQuality.LIVE
    assert rig.book.degraded() == {"ibkr:AAPL": "delayed: IB marketDataType 3"}
    rig.quality(AAPL, DataQuality.LIVE, DataQuality.DELAYED)
    assert rig.ctx.data_quality(AAPL) is DataQuality.LIVE and rig.book.degraded() == {}


def test_targets_on_data_that_is_not_live_are_not_stated_and_counted_logged_once() -> None:
    rig = Rig()
    for q in (DataQuality.DELAYED, DataQuality.FROZEN, DataQuality.NONE):
        rig.quality(AAPL, q)
        with capture_logs() as logs:
            rig.ctx.target_exposure(AAPL, 0.5, "signal", T0)
            rig.ctx.target(AAPL, Decimal(3), "signal", T0)
        assert rig.targets == []
        assert [e["event"] for e in logs] == (["strategy_stands_aside"] if q is DataQuality.DELAYED else [])
    assert rig.ctx.stood_aside == 6
    rig.ctx.target_exposure(ES, 0.5, "signal", T0)  # another instrument's data is live
    assert [t.instrument_id for t in rig.targets] == [ES]
    rig.quality(AAPL, DataQuality.LIVE)
    with capture_logs() as logs:
        rig.ctx.target_exposure(AAPL, 0.5, "signal", T0)
    assert [t.instrument_id for t in rig.targets] == [ES, AAPL]
    assert [e["event"] for e in logs] == ["strategy_data_live_again"]


def test_a_strategy_that_opts_out_states_targets_on_delayed_data() -> None:
    rig = Rig()
    rig.quality(AAPL, DataQuality.DELAYED)
    rig.ctx.stand_aside_unless_live = False
    rig.ctx.target_exposure(AAPL, 0.5, "signal", T0)
    assert len(rig.targets) == 1 and rig.ctx.stood_aside == 0


def test_a_bar_strategy_stands_aside_on_delayed_data() -> None:
    rig = Rig()
    strategy = SmaCross("s1", (AAPL,), 2, 3, Decimal(0), INTERVAL_S, exposure=0.5)
    strategy.attach(rig.bus, rig.ctx)
    rig.quality(AAPL, DataQuality.DELAYED)
    for i, c in enumerate(CLOSES):
        rig.bus.publish(bar(i, c, iid=AAPL))
    assert rig.targets == [] and strategy.signals == 2 and rig.ctx.stood_aside == 2


def test_the_change_encodes_for_the_event_stream_and_the_journal() -> None:
    m = MarketDataQualityChanged(ts_event_ns=T0, ts_init_ns=T0, venue="ibkr", instrument_id=AAPL,
                                 quality=DataQuality.DELAYED, previous=None, detail="IB marketDataType delayed")
    assert message_to_dict(m) == {"type": "MarketDataQualityChanged", "ts_event_ns": T0, "ts_init_ns": T0,
                                  "venue": "ibkr", "instrument_id": "ibkr:AAPL", "quality": "delayed",
                                  "previous": None, "detail": "IB marketDataType delayed"}
