"""Live tracker: base bars in, the same regimes and posteriors as the batch path out."""

from __future__ import annotations

import numpy as np
import pytest

from nautilus_hmm.hmm.errors import FeatureError
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.hmm.runtime import RegimeSnapshot, RegimeTracker
from nautilus_hmm.hmm.train import macro_regime_per_micro_bar, prepare_level
from nautilus_hmm.marketdata.replay import BarArrays, BarDataError
from tests.unit.hmm.conftest import SMALL_SPEC


def feed(tracker: RegimeTracker, bars: BarArrays) -> list[RegimeSnapshot]:
    out = []
    for i in range(len(bars)):
        snap = tracker.on_bar(int(bars.ts_open_ns[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i],
                              bars.volume[i])
        if snap is not None:
            out.append(snap)
    return out


def test_tracker_reproduces_the_training_regimes_and_micro_posteriors(
        small_training: tuple[BarArrays, RegimeModel]) -> None:
    bars, model = small_training
    snaps = feed(RegimeTracker(model), bars)
    micro = prepare_level("micro", bars, SMALL_SPEC, 300, 60, scaler=model.micro.scaler)
    macro = prepare_level("macro", bars, SMALL_SPEC, 1800, 60, scaler=model.macro.scaler)
    assert [s.ts_ns for s in snaps] == micro.bars.ts_open_ns.tolist()
    regime = macro_regime_per_micro_bar(macro, model.macro.hmm, micro, 1800, 300)
    live = [-1 if s.macro_state is None else s.macro_state for s in snaps]
    assert live == regime.tolist()
    warm = SMALL_SPEC.warmup_bars
    batch = [h.filter().filter_sequence(micro.z[warm:])[0] for h in model.micro.hmms]
    checked = 0
    for j, s in enumerate(snaps):
        if s.ready:
            assert s.macro_state is not None
            np.testing.assert_allclose(s.micro_posterior, batch[s.macro_state][j - warm], atol=1e-9)
            checked += 1
    assert checked > 1000


def test_snapshots_are_not_ready_until_both_levels_warm_up(
        small_training: tuple[BarArrays, RegimeModel]) -> None:
    bars, model = small_training
    tracker = RegimeTracker(model)
    snaps = feed(tracker, bars.slice(0, tracker.warmup_base_bars + 60))
    assert not snaps[0].ready and snaps[0].confidence == 0.0
    assert snaps[-1].ready and 0.5 <= snaps[-1].confidence <= 1.0


def test_a_bad_bar_is_rejected_before_any_state_changes(
        small_training: tuple[BarArrays, RegimeModel]) -> None:
    bars, model = small_training
    part = bars.slice(0, 600)
    clean, dirty = RegimeTracker(model), RegimeTracker(model)
    a = feed(clean, part)
    b = []
    for i in range(len(part)):
        args = (int(part.ts_open_ns[i]), part.open[i], part.high[i], part.low[i], part.close[i], part.volume[i])
        if i == 300:
            with pytest.raises(FeatureError, match="volume"):
                dirty.on_bar(*args[:5], float("nan"))
        snap = dirty.on_bar(*args)
        if snap is not None:
            b.append(snap)
    assert [s.micro_posterior is None or s.micro_posterior.tolist() for s in a] == \
           [s.micro_posterior is None or s.micro_posterior.tolist() for s in b]


def test_a_bar_out_of_order_is_rejected(small_training: tuple[BarArrays, RegimeModel]) -> None:
    _, model = small_training
    tracker = RegimeTracker(model)
    tracker.on_bar(120 * 10**9, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(BarDataError, match="not after"):
        tracker.on_bar(60 * 10**9, 1.0, 1.0, 1.0, 1.0, 1.0)
