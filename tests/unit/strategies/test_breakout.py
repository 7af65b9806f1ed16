"""Breakout (Donchian): the exact bars where it goes long, flat or short; bad bars; live params."""

from __future__ import annotations

import dataclasses

import pytest

from nautilus_hmm.strategies.breakout import Breakout
from nautilus_hmm.strategies.config import BreakoutParams, StrategyInstanceConfig
from tests.unit.strategies.kit import IID, INTERVAL_S, Rig, bar

# (high, low, close); lookback 3, exit_lookback 2.
BARS = [
    (10.0, 9.0, 9.5),
    (10.0, 9.0, 9.5),
    (10.0, 9.0, 9.5),   # both channels full from here on
    (10.6, 10.0, 10.5),  # 3: close 10.5 > highest high of bars 0-2 (10.0): long
    (10.6, 10.2, 10.4),  # 4: lower = min low of bars 2-3 = 9.0
    (10.3, 9.9, 10.0),   # 5: lower = min(10.0, 10.2) = 10.0; 10.0 is not below it
    (10.0, 9.5, 9.6),    # 6: lower = min(10.2, 9.9) = 9.9; 9.6 < 9.9: flat (short with short=true)
    (10.0, 9.4, 9.5),    # 7: no new break
    (11.0, 10.0, 10.9),  # 8: upper = max(10.3, 10.0, 10.0) = 10.3; 10.9 > 10.3: long again
]


def bars(rows: list[tuple[float, float, float]] = BARS) -> list:
    return [bar(i, c, h, lo) for i, (h, lo, c) in enumerate(rows)]


def breakout(short: bool = False) -> Breakout:
    return Breakout("s1", (IID,), 3, 2, INTERVAL_S, exposure=0.7, short=short)


def test_long_on_the_upper_break_and_flat_on_the_lower_break() -> None:
    rig = Rig(breakout())
    rig.run(bars())
    assert rig.signals() == [(3, 0.7), (6, 0.0), (8, 0.7)]
    assert rig.targets[0].reason == "breakout_up: close 10.5 > 3-bar high 10"


def test_with_short_the_lower_break_goes_short_and_the_upper_break_back_long() -> None:
    rig = Rig(breakout(short=True))
    rig.run(bars())
    assert rig.signals() == [(3, 0.7), (6, -0.7), (8, 0.7)]


def test_no_signal_before_both_channels_are_full() -> None:
    rig = Rig(breakout())
    rig.run(bars([(10.0, 9.0, 9.5), (10.0, 9.0, 9.5), (20.0, 9.0, 20.0)]))  # a break on bar 2: too early
    assert rig.signals() == []


@pytest.mark.parametrize("field", ["high", "low", "close"])
def test_a_bad_bar_is_skipped_and_counted_and_the_channels_never_see_it(field: str) -> None:
    rig = Rig(breakout())
    good = bars()
    bad = dataclasses.replace(bar(4, 10.0, 10.0, 10.0), **{field: float("nan")})
    rig.run([*good[:5], bad, *good[5:]])
    assert rig.signals() == [(3, 0.7), (6, 0.0), (8, 0.7)]
    st = rig.strategy.status()  # type: ignore[attr-defined]
    assert st["bars_rejected"] == 1 and field in st["last_reject"]


def test_bars_of_another_interval_or_instrument_are_ignored() -> None:
    from nautilus_hmm.domain.instruments import InstrumentId

    rig = Rig(breakout())
    rig.run([bar(i, 100.0, interval_s=10) for i in range(5)])
    rig.run([bar(i, 100.0, iid=InstrumentId("sim", "ETHUSDT")) for i in range(5)])
    assert rig.strategy.status()[str(IID)]["bars"] == 0  # type: ignore[attr-defined]


def test_live_params_change_exposure_and_short() -> None:
    s = breakout()
    rig = Rig(s)
    rig.run(bars()[:5])
    s.update_params(StrategyInstanceConfig(id="s1", kind="breakout",
                                           breakout=BreakoutParams(lookback=3, exit_lookback=2, exposure=0.2,
                                                                   short=True)))
    rig.run(bars()[5:])
    assert rig.signals() == [(3, 0.7), (6, -0.2), (8, 0.2)]
