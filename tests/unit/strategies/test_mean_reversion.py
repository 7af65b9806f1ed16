"""MeanReversion: the exact bars where it goes long, flat or short; a flat window; drift-free sums."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from nautilus_hmm.strategies.config import MeanReversionParams, StrategyInstanceConfig
from nautilus_hmm.strategies.mean_reversion import MeanReversion, RollingZ
from tests.unit.strategies.kit import IID, INTERVAL_S, Rig, bar

# window 4, entry 1.2, exit 0.2.
# bar 3: window 100,101,99,100 -> z = 0
# bar 4: window 101,99,100,96: mean 99, std 1.871 -> z(96) = -1.60 < -1.2: long
# bar 5: window 99,100,96,98: mean 98.25, std 1.479 -> z(98) = -0.17 > -0.2: flat
# bar 6: window 100,96,98,103: mean 99.25, std 2.586 -> z(103) = +1.45 > 1.2: short (with short)
# bar 7: window 96,98,103,100: mean 99.25, std 2.586 -> z(100) = +0.29 (not < 0.2: still short)
# bar 8: window 98,103,100,100: mean 100.25, std 1.785 -> z(100) = -0.14 < 0.2: flat
CLOSES = [100.0, 101.0, 99.0, 100.0, 96.0, 98.0, 103.0, 100.0, 100.0]


def mr(short: bool = False) -> MeanReversion:
    return MeanReversion("s1", (IID,), 4, 1.2, 0.2, INTERVAL_S, exposure=0.5, short=short)


def test_long_below_minus_entry_z_and_flat_above_minus_exit_z() -> None:
    rig = Rig(mr())
    rig.run(bar(i, c) for i, c in enumerate(CLOSES))
    assert rig.signals() == [(4, 0.5), (5, 0.0)]
    assert rig.targets[0].reason == "mean_reversion_long: z = -1.604"


def test_with_short_the_symmetric_side_trades_too() -> None:
    rig = Rig(mr(short=True))
    rig.run(bar(i, c) for i, c in enumerate(CLOSES))
    assert rig.signals() == [(4, 0.5), (5, 0.0), (6, -0.5), (8, 0.0)]


def test_a_flat_window_gives_no_z_and_no_signal() -> None:
    rig = Rig(mr(short=True))
    rig.run(bar(i, 100.0) for i in range(20))
    assert rig.signals() == []
    assert rig.strategy.status()[str(IID)]["z"] is None  # type: ignore[attr-defined]


def test_a_bad_close_is_skipped_and_counted() -> None:
    rig = Rig(mr())
    bars = [bar(i, c) for i, c in enumerate(CLOSES)]
    rig.run([*bars[:4], bar(4, float("nan")), *bars[4:]])
    assert rig.signals() == [(4, 0.5), (5, 0.0)]
    assert rig.strategy.status()["bars_rejected"] == 1  # type: ignore[attr-defined]


def test_the_running_z_equals_a_plain_computation_over_a_long_run() -> None:
    rng = random.Random(7)
    z = RollingZ(30)
    closes = [85_000.0]
    for _ in range(5_000):
        closes.append(closes[-1] * math.exp(rng.gauss(0, 0.001)))
    for i, c in enumerate(closes):
        got = z.push(c)
        if i < 29:
            assert got is None
            continue
        window = closes[i - 29:i + 1]
        want = (c - statistics.fmean(window)) / statistics.pstdev(window)
        assert got == pytest.approx(want, abs=1e-7)


def test_live_params_change_the_thresholds() -> None:
    s = mr()
    rig = Rig(s)
    rig.run(bar(i, c) for i, c in enumerate(CLOSES[:4]))
    s.update_params(StrategyInstanceConfig(id="s1", kind="mean_reversion",
                                           mean_reversion=MeanReversionParams(window=4, entry_z=2.0, exit_z=0.2)))
    rig.run(bar(i, c) for i, c in list(enumerate(CLOSES))[4:])
    assert rig.signals() == []  # z = -1.60 no longer enters


def test_exit_z_not_below_entry_z_is_refused() -> None:
    with pytest.raises(ValueError, match=r"exit_z \(1.5\) must be >= 0 and < entry_z \(1.2\)"):
        MeanReversion("s1", (IID,), 4, 1.2, 1.5, INTERVAL_S)
