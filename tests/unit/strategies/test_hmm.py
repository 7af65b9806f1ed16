"""HmmStrategy: bars in, regime telemetry and target positions out, through the real bus."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.hmm.config import HmmConfig
from nautilus_hmm.hmm.data import from_ohlcv
from nautilus_hmm.hmm.errors import ModelError
from nautilus_hmm.hmm.features import Scaler
from nautilus_hmm.marketdata.bars import OhlcvBar
from nautilus_hmm.messages import (
    Bar,
    FillAttributed,
    PolicyDecision,
    PositionChanged,
    RegimeUpdate,
    TargetPosition,
)
from nautilus_hmm.strategies.base import StrategyContext
from nautilus_hmm.strategies.hmm import HmmStrategy, exposure_to_qty
from tests.unit.hmm.kit import IID, NS, T0, FakeEngine, Feed, context, decisive_model


class Rig:
    """A strategy on a real bus and manual clock, a fake engine and a bar feed."""

    def __init__(self, cfg: HmmConfig | None = None, interval_s: int = 60,
                 capital: Callable[[str], float] | None = None,
                 position: Callable[[InstrumentId], Decimal] | None = None, **kw: object) -> None:
        self.cfg = cfg or HmmConfig()
        self.bus = Bus()
        self.clock = ManualClock(T0)
        self.engine = FakeEngine(self.bus, self.clock)
        self.feed = Feed(self.bus, self.clock, interval_s=interval_s)
        self.strategy = HmmStrategy("hmm", (IID,), self.cfg, **kw)  # type: ignore[arg-type]
        ctx = (context(self.bus, self.clock, self.engine) if capital is None else
               StrategyContext("hmm", self.bus, self.clock, position or self.engine.position, capital=capital))
        self.strategy.attach(self.bus, ctx)
        self.decisions: list[PolicyDecision] = []
        self.regimes: list[RegimeUpdate] = []
        self.bus.subscribe(PolicyDecision, self.decisions.append)
        self.bus.subscribe(RegimeUpdate, self.regimes.append)

    @property
    def targets(self) -> list[TargetPosition]:
        return self.engine.targets


def test_an_uptrend_gives_one_long_target_sized_by_the_policy() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    rig.feed.run(600, 0.0005)
    assert len(rig.targets) == 1
    t = rig.targets[0]
    d = next(d for d in rig.decisions if d.action == "target")
    assert t.target_qty > 0
    assert t.reason.startswith("hmm m1: target: micro up/up")
    assert d.target_exposure == pytest.approx(0.6046, abs=1e-3)


def test_the_target_quantity_is_capital_times_exposure_over_the_close_of_the_deciding_bar() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    closes: dict[int, float] = {}
    rig.bus.subscribe(Bar, lambda b: closes.__setitem__(b.ts_init_ns, b.close))
    rig.feed.run(600, 0.0005)
    t = rig.targets[0]
    d = next(d for d in rig.decisions if d.action == "target")
    assert t.target_qty == exposure_to_qty(d.target_exposure, 10_000.0, closes[t.ts_event_ns])


def test_a_downtrend_after_the_uptrend_takes_the_position_to_zero() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    rig.feed.run(600, 0.0005)
    rig.feed.run(600, -0.0005)
    assert rig.targets[0].target_qty > 0
    assert rig.targets[-1].target_qty == Decimal(0)
    assert rig.engine.position(IID) == 0


def test_the_same_bars_give_the_same_targets() -> None:
    runs = []
    for _ in range(2):
        rig = Rig(model=decisive_model(), model_id="m1")
        rig.feed.run(600, 0.0005)
        rig.feed.run(600, -0.0005)
        runs.append([(t.ts_event_ns, t.target_qty) for t in rig.targets])
    assert runs[0] == runs[1] and len(runs[0]) >= 2


def test_every_snapshot_publishes_a_decision_and_micro_posteriors() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    rig.feed.run(600, 0.0005)
    assert len(rig.decisions) == 600 // 5
    micro = [r for r in rig.regimes if r.level == "micro"]
    macro = [r for r in rig.regimes if r.level == "macro"]
    assert micro and macro and len(macro) < len(micro)
    assert all(abs(sum(r.posteriors) - 1.0) < 1e-9 and r.model_id == "m1" for r in rig.regimes)


def test_a_shadow_canary_publishes_decisions_but_never_trades() -> None:
    bullish = decisive_model()
    rig = Rig(model=decisive_model(micro_next=1e-7), model_id="prod", canary=bullish, canary_id="can")
    rig.feed.run(600, 0.0005)
    shadow = [d for d in rig.decisions if d.shadow]
    assert {d.model_id for d in shadow} == {"can"}
    assert any(d.action == "target" for d in shadow)
    assert rig.targets == []
    assert rig.strategy.status()["canary_mode"] == "shadow"


def test_a_canary_states_its_own_exposure_on_the_canary_lane_and_production_is_not_blended() -> None:
    rig = Rig(model=decisive_model(micro_next=1e-7), model_id="prod", canary=decisive_model(), canary_id="can",
              canary_share=0.25)
    rig.feed.run(600, 0.0005)
    canary_decision = next(d for d in rig.decisions if d.shadow and d.action == "target")
    canary_targets = [t for t in rig.engine.strategy_targets if t.lane == "canary"]
    assert [(t.exposure, t.target_qty, t.ts_event_ns) for t in canary_targets[:1]] == \
        [(canary_decision.target_exposure, None, canary_decision.ts_event_ns)]
    assert canary_targets[0].reason.startswith("hmm can: target:")
    assert not any(t.lane == "production" for t in rig.engine.strategy_targets)  # production never decided to trade
    assert rig.targets == []  # the canary lane is the router's to weigh, never traded here
    assert rig.strategy.status()["canary_mode"] == "trades 0.25"


def test_the_production_lane_states_an_exposure_not_a_quantity() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    rig.feed.run(600, 0.0005)
    (t,) = rig.engine.strategy_targets
    d = next(d for d in rig.decisions if d.action == "target")
    assert (t.strategy_id, t.lane, t.exposure, t.target_qty) == ("hmm", "production", d.target_exposure, None)
    assert rig.strategy.status()[str(IID)]["target_exposure"] == d.target_exposure
    assert {d.strategy_id for d in rig.decisions} == {"hmm"}  # several HMM strategies may run


def test_every_decision_of_a_ready_model_carries_its_predictive_log_likelihood_per_base_bar() -> None:
    prod_model = decisive_model()
    # The canary scales micro features by a tenth of their real size: it explains the same bars worse.
    mis_scaled = dataclasses.replace(prod_model.micro, scaler=Scaler(np.zeros(3), prod_model.micro.scaler.std / 10))
    rig = Rig(model=prod_model, model_id="prod", canary=dataclasses.replace(prod_model, micro=mis_scaled),
              canary_id="can")
    rig.feed.run(600, 0.0005)
    prod = [d.log_likelihood for d in rig.decisions if not d.shadow]
    canary = [d.log_likelihood for d in rig.decisions if d.shadow]
    assert prod[0] is None  # the first snapshot has no previous one to difference against
    assert all(isinstance(x, float) and math.isfinite(x) for x in prod[-50:] + canary[-50:])
    assert sum(prod[-50:]) > sum(canary[-50:]) + 50  # type: ignore[arg-type]
    assert rig.strategy.status()[str(IID)]["log_likelihood"] == prod[-1]


def test_a_hot_swap_rewarms_from_history_and_decides_on_the_next_bar() -> None:
    rig = Rig(model=decisive_model(micro_next=1e-7), model_id="old")
    rig.feed.run(600, 0.0005)
    assert rig.targets == []
    rig.strategy.set_model(decisive_model(), "new")
    assert rig.strategy.status()[str(IID)]["state"] == "active"
    before = len(rig.decisions)
    rig.feed.run(5, 0.0005)
    assert [d.model_id for d in rig.decisions[before:]] == ["new"]
    rig.feed.run(20, 0.0005)
    assert rig.targets and rig.targets[0].reason.startswith("hmm new:")


def test_a_model_with_another_base_interval_is_refused_and_the_old_one_keeps_running() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    other = dataclasses.replace(decisive_model(), base_interval_s=30)
    with pytest.raises(ModelError, match="base_interval_s: 30 does not match"):
        rig.strategy.set_model(other, "m2")
    rig.feed.run(400, 0.0005)
    assert {d.model_id for d in rig.decisions} == {"m1"}


def test_without_a_model_bars_are_kept_and_status_says_no_model() -> None:
    rig = Rig()
    rig.feed.run(100, 0.0)
    st = rig.strategy.status()[str(IID)]
    assert (st["state"], st["history_bars"]) == ("no_model", 100)
    assert rig.decisions == []


def test_status_reports_warming_up_until_the_tracker_is_ready() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    rig.feed.run(200, 0.0)
    st = rig.strategy.status()[str(IID)]
    assert st["state"] == "warming_up" and st["warmup_bars_left"] == 100
    rig.feed.run(120, 0.0)
    assert rig.strategy.status()[str(IID)]["state"] == "active"


def test_warm_up_from_history_makes_the_first_live_bar_decide() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    history = rig.feed.bars(400, 0.0)
    rows = [OhlcvBar(b.ts_event_ns, b.open, b.high, b.low, b.close, b.volume) for b in history]
    assert rig.strategy.warm_up(IID, from_ohlcv(rows)) == 400
    assert rig.decisions == []
    rig.feed.run(5, 0.0)
    assert len(rig.decisions) == 1
    assert not rig.decisions[0].reason.startswith("warmup")


def test_the_timer_halts_once_when_bars_stop() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    rig.feed.run(600, 0.0005)
    n = len(rig.decisions)
    stale_s = rig.cfg.policy.stale_data_s
    rig.strategy.tick(rig.clock.time_ns() + int((stale_s - 1) * NS))
    assert len(rig.decisions) == n
    for k in range(3):
        rig.strategy.tick(rig.clock.time_ns() + int((stale_s + 60 * (k + 1)) * NS))
    halts = rig.decisions[n:]
    assert [(d.action, d.reason.split(":")[0]) for d in halts] == [("halt", "stale_data")]
    assert rig.strategy.status()[str(IID)]["state"] == "stale"
    assert len(rig.targets) == 1


def test_the_timer_reports_no_data_when_no_bar_ever_came() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    rig.strategy.tick(T0 + int((rig.cfg.policy.stale_data_s + 1) * NS))
    assert [(d.action, d.reason[:24]) for d in rig.decisions] == [("halt", "stale_data: no bar for 9")]


def test_a_bad_bar_is_skipped_and_counted_and_tracking_goes_on() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    bars = rig.feed.bars(10, 0.0)
    bad = dataclasses.replace(bars[5], close=float("nan"))
    for b in (*bars[:5], bad, bars[4], *bars[6:]):
        rig.bus.publish(b)
    st = rig.strategy.status()[str(IID)]
    assert (st["bars"], st["bars_rejected"]) == (9, 2)
    assert "close" in st["last_reject"] or "not after" in st["last_reject"]


def test_ten_second_bars_are_resampled_to_the_base_interval() -> None:
    rig = Rig(interval_s=10, model=decisive_model(), model_id="m1", bar_interval_s=10)
    rig.feed.run(6 * 320, 0.0)
    st = rig.strategy.status()[str(IID)]
    assert st["bars"] == 320 and st["state"] == "active"


def test_bars_of_another_interval_are_ignored() -> None:
    rig = Rig(interval_s=10, model=decisive_model(), model_id="m1")
    rig.feed.run(12, 0.0)
    assert rig.strategy.status()[str(IID)]["bars"] == 0
    assert rig.strategy.bars_ignored == 12


def losing_round_trip(rig: Rig, loss: Decimal) -> None:
    now = rig.clock.time_ns()
    for qty in (Decimal(1), Decimal(0)):
        if not qty:
            rig.engine.realized -= loss
        rig.bus.publish(PositionChanged(ts_event_ns=now, ts_init_ns=now, instrument_id=IID, qty=qty,
                                        avg_px=Decimal(100), realized_pnl=rig.engine.realized, fees=Decimal(0)))


def test_a_streak_of_losing_trades_starts_the_cooldown() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    for _ in range(rig.cfg.policy.loss_streak):
        losing_round_trip(rig, Decimal(5))
    st = rig.strategy.status()[str(IID)]
    assert st["trades_closed"] == 3
    assert st["cooldown_until_ns"] == rig.clock.time_ns() + int(rig.cfg.policy.cooldown_s * NS)


def test_metrics_report_state_probabilities_decisions_and_model_tags() -> None:
    rig = Rig(model=decisive_model(), model_id="m1", canary=decisive_model(), canary_id="c1")
    rig.feed.run(600, 0.0005)
    fams = {f.name: f for f in rig.strategy.collect_metrics()}
    probs = fams["hmm_state_probability"].samples
    assert {s.labels["model"] for s in probs} == {"m1", "c1"}
    assert {s.labels["level"] for s in probs} == {"macro", "micro"}
    up = next(s for s in probs if s.labels == {"symbol": "BTCUSDT", "model": "m1", "level": "micro",
                                               "state": "up"})
    assert up.value > 0.5
    decided = {(s.labels["action"], s.labels["reason"]): s.value for s in fams["policy_decisions"].samples}
    assert decided[("target", "signal")] == 1.0
    assert sum(decided.values()) == 120
    assert {(s.labels["id"], s.labels["tag"]) for s in fams["hmm_model_info"].samples} == \
        {("m1", "production"), ("c1", "canary")}


def test_exposure_to_qty_rounds_toward_zero_and_refuses_a_bad_price() -> None:
    assert exposure_to_qty(0.5, 10_000.0, 3.0) == Decimal("1666.666666666666")
    assert exposure_to_qty(-0.5, 10_000.0, 3.0) == Decimal("-1666.666666666666")
    assert exposure_to_qty(0.0, 10_000.0, 3.0) == Decimal(0)
    with pytest.raises(ValueError, match="price nan"):
        exposure_to_qty(0.5, 10_000.0, float("nan"))


def test_a_swap_prepared_off_the_loop_equals_a_direct_swap_with_bars_in_between() -> None:
    direct, prepared = Rig(), Rig()
    for rig in (direct, prepared):
        rig.feed.run(400, 0.0005)
    snapshot = prepared.strategy.history_snapshot()
    ready = HmmStrategy.prepare(decisive_model(), "new", snapshot)
    for rig in (direct, prepared):
        rig.feed.run(7, 0.0005)  # bars that arrive while the trackers warm up
    direct.strategy.set_model(decisive_model(), "new")
    prepared.strategy.set_model(ready.model, "new", ready)
    for rig in (direct, prepared):
        rig.feed.run(200, 0.0005)
    assert [(d.ts_event_ns, d.action, d.target_exposure) for d in prepared.decisions] == \
        [(d.ts_event_ns, d.action, d.target_exposure) for d in direct.decisions]
    assert prepared.strategy.status()[str(IID)]["warmup_bars_left"] == 0


def test_a_live_bar_carries_the_top_of_book_seen_during_it_to_the_trackers_and_listeners() -> None:
    from nautilus_hmm.messages import QuoteTick

    rig = Rig(model=decisive_model(), model_id="m1")
    seen: list[tuple[int, object]] = []
    rig.strategy.base_bar_listeners.append(lambda iid, bar, quote: seen.append((bar.ts_ns, quote)))
    fed: list[object] = []
    runner = rig.strategy._lanes[IID].prod
    assert runner is not None
    real = runner.tracker.on_bar
    runner.tracker.on_bar = lambda *a: (fed.append(a[6]), real(*a))[1]  # type: ignore[method-assign]
    bars = rig.feed.bars(3, 0.0)

    def quote(ts_ns: int, bid: float) -> QuoteTick:
        return QuoteTick(ts_event_ns=ts_ns, ts_init_ns=ts_ns, instrument_id=IID, bid=bid, bid_size=2.0,
                         ask=bid + 0.5, ask_size=1.0)

    rig.bus.publish(quote(bars[0].ts_event_ns + 10 * NS, 99.0))  # during bar 0
    rig.bus.publish(quote(bars[0].ts_event_ns + 20 * NS, -1.0))  # a broken quote is ignored
    for b in bars[:2]:  # bar 1 saw no new quote: bar 0's is stale for it
        rig.clock.set_time_ns(b.ts_init_ns)
        rig.bus.publish(b)
    rig.strategy.warm_up(IID, from_ohlcv([OhlcvBar(bars[2].ts_event_ns, 1.0, 1.0, 1.0, 1.0, 1.0)]))
    assert seen == [(bars[0].ts_event_ns, (99.0, 99.5, 2.0, 1.0)), (bars[1].ts_event_ns, None),
                    (bars[2].ts_event_ns, None)]  # history bars have no quote
    assert fed == [(99.0, 99.5, 2.0, 1.0), None, None]


def attributed(rig: Rig, qty: str, price: str, strategy_id: str = "hmm") -> None:
    now = rig.clock.time_ns()
    rig.bus.publish(FillAttributed(ts_event_ns=now, ts_init_ns=now, strategy_id=strategy_id, instrument_id=IID,
                                   qty=Decimal(qty), price=Decimal(price), fee=Decimal("0.1"), kind="fill"))


def test_with_a_router_the_exposure_resyncs_to_the_virtual_position_and_the_routers_capital() -> None:
    virtual = {IID: Decimal(0)}
    rig = Rig(model=decisive_model(), model_id="m1", capital=lambda lane: 2_000.0, position=virtual.__getitem__)
    rig.feed.run(600, 0.0)
    close = rig.strategy.regimes()[str(IID)]["last_close"]
    virtual[IID] = Decimal(5)  # the router booked 5 units to this strategy
    attributed(rig, "5", "100")
    assert rig.strategy.regimes()[str(IID)]["production"]["exposure"] == pytest.approx(5 * close / 2_000.0)


def test_with_a_router_only_its_own_attributed_fills_close_trades_for_the_loss_streak() -> None:
    virtual = {IID: Decimal(0)}
    rig = Rig(model=decisive_model(), model_id="m1", capital=lambda lane: 2_000.0, position=virtual.__getitem__)
    for _ in range(rig.cfg.policy.loss_streak):
        attributed(rig, "1", "100")
        attributed(rig, "-1", "95")
        attributed(rig, "1", "100", strategy_id="hmm:canary")  # the canary lane's book is not this one's
        attributed(rig, "2", "100", strategy_id="trend")
    # The net position moving (another strategy's fill) closes none of this strategy's trades.
    now = rig.clock.time_ns()
    rig.bus.publish(PositionChanged(ts_event_ns=now, ts_init_ns=now, instrument_id=IID, qty=Decimal(0),
                                    avg_px=Decimal(100), realized_pnl=Decimal(-100), fees=Decimal(0)))
    st = rig.strategy.status()[str(IID)]
    assert st["trades_closed"] == 3
    assert st["cooldown_until_ns"] == rig.clock.time_ns() + int(rig.cfg.policy.cooldown_s * NS)


def test_a_detached_strategy_takes_no_more_bars() -> None:
    rig = Rig(model=decisive_model(), model_id="m1")
    rig.feed.run(10, 0.0)
    rig.strategy.detach()
    rig.strategy.detach()
    rig.feed.run(10, 0.0)
    assert rig.strategy.status()[str(IID)]["bars"] == 10
