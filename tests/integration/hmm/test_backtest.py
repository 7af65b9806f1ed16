"""The regime policy as a strategy of the trading core: trained on the first days of real
klines, replayed on the following days through the live engine path (Backtest)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from nautilus_hmm.backtest import Backtest
from nautilus_hmm.config.schema import Config
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.marketdata.replay import BarArrays
from nautilus_hmm.messages import PolicyDecision, RegimeUpdate, StrategyTarget, TargetPosition
from nautilus_hmm.strategies.hmm import HmmStrategy
from tests.integration.hmm.conftest import TRAIN_BARS

IID = InstrumentId("sim", "BTCUSDT")
TEST_BARS = 4 * 1440


def test_hmm_strategy_trades_out_of_sample_days_through_the_engine_and_publishes_telemetry(
        config: Config, klines: BarArrays, trained: RegimeModel) -> None:
    strategy = HmmStrategy("hmm", (IID,), config.hmm, trained, "m-test", bar_interval_s=60)
    bt = Backtest(config, klines.slice(TRAIN_BARS, TRAIN_BARS + TEST_BARS), strategy)
    assert strategy.warm_up(IID, klines.slice(TRAIN_BARS - 2000, TRAIN_BARS)) == 2000
    decisions: list[PolicyDecision] = []
    regimes: list[RegimeUpdate] = []
    stated: list[StrategyTarget] = []  # the strategy's own targets (exposures of its capital)
    targets: list[TargetPosition] = []  # the router's net targets to the engine
    bt.bus.subscribe(PolicyDecision, decisions.append)
    bt.bus.subscribe(RegimeUpdate, regimes.append)
    bt.bus.subscribe(StrategyTarget, stated.append)
    bt.bus.subscribe(TargetPosition, targets.append)
    result, equity = bt.run()

    assert result.fills > 0 and len(bt.fills) == result.fills
    assert len(decisions) == TEST_BARS // 5  # one per closed 5-minute bar, from the first one (warmed up)
    assert not any(d.reason.startswith("warmup") for d in decisions)
    assert Counter(r.level for r in regimes)["micro"] == len(decisions)
    assert {d.model_id for d in decisions} == {"m-test"} and not any(d.shadow for d in decisions)
    traded = [d for d in decisions if d.action in ("target", "flat")]
    assert len(stated) == len(traded) and all(t.strategy_id == "hmm" for t in stated)
    # the router sends the engine a net target only when it changes
    assert 0 < len(targets) <= len(stated) and {t.strategy_id for t in targets} == {"router"}
    assert all(t.exposure is not None and 0 <= t.exposure <= config.hmm.policy.max_exposure for t in stated)
    # sized by the router: the one strategy's capital is the account's equity
    peak = max(e for _, e in equity)
    cap = Decimal(repr(peak * config.hmm.policy.max_exposure))
    assert all(0 <= t.target_qty * Decimal(repr(float(klines.close.min()))) <= cap * Decimal("1.0001") for t in targets)
    assert all(f.qty * f.price <= cap * Decimal("1.01") for f in bt.fills)
    assert len(equity) == TEST_BARS
    st = strategy.status()[str(IID)]
    assert st["state"] == "active" and st["bars_rejected"] == 0
