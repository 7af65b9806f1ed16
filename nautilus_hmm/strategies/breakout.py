"""`breakout`: Donchian channel breakout (a trend-following baseline of another character than SMA).

Rules, per instrument, on bars of the strategy's interval:

* upper = highest high of the previous `lookback` bars, lower = lowest low of the previous
  `exit_lookback` bars (the bar being decided is not in its own channel).
* close > upper: long (`exposure` of the strategy's capital), from flat or short.
* close < lower: flat when long; with `short`, short (-`exposure`) from flat or long.
* A target is stated only when the side changes; no signal before both channels are full.

Highest high and lowest low are kept with monotonic deques: O(1) amortized per bar. Bad
bars (a non-finite or non-positive price) are skipped and counted (BarStrategy).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Bar
from nautilus_hmm.strategies.base import BarStrategy

if TYPE_CHECKING:
    from nautilus_hmm.strategies.config import StrategyInstanceConfig


class _Extreme:
    """Max (or min) of the last `size` values pushed, O(1) amortized (a monotonic deque)."""

    __slots__ = ("_q", "maximum", "n", "size")

    def __init__(self, size: int, maximum: bool) -> None:
        self.size = size
        self.maximum = maximum
        self.n = 0  # values pushed so far
        self._q: deque[tuple[int, float]] = deque()  # (index, value), values monotonic from the front

    @property
    def full(self) -> bool:
        """`size` values have been pushed."""
        return self.n >= self.size

    def value(self) -> float:
        """The extreme of the last `size` values (call when full)."""
        return self._q[0][1]

    def push(self, x: float) -> None:
        """Add a value; the one `size` pushes ago leaves the window."""
        q = self._q
        if self.maximum:
            while q and q[-1][1] <= x:
                q.pop()
        else:
            while q and q[-1][1] >= x:
                q.pop()
        q.append((self.n, x))
        self.n += 1
        if q[0][0] <= self.n - 1 - self.size:
            q.popleft()


class _Channel:
    __slots__ = ("low", "side", "up")

    def __init__(self, lookback: int, exit_lookback: int) -> None:
        self.up = _Extreme(lookback, maximum=True)
        self.low = _Extreme(exit_lookback, maximum=False)
        self.side = 0  # -1 short, 0 flat, 1 long


class Breakout(BarStrategy):
    """Donchian channel breakout: long on a break of the upper channel, flat (or short) on the lower."""

    kind = "breakout"

    def __init__(self, strategy_id: str, instruments: tuple[InstrumentId, ...], lookback: int, exit_lookback: int,
                 bar_interval_s: int, exposure: float = 1.0, short: bool = False) -> None:
        if lookback < 2:
            raise ValueError(f"lookback ({lookback}) must be >= 2")
        if exit_lookback < 1:
            raise ValueError(f"exit_lookback ({exit_lookback}) must be >= 1")
        if not (math.isfinite(exposure) and exposure > 0):
            raise ValueError(f"exposure ({exposure!r}) must be finite and > 0")
        super().__init__(strategy_id, instruments, bar_interval_s)
        self.lookback = lookback
        self.exit_lookback = exit_lookback
        self.exposure = exposure
        self.short = short
        self._chan = {iid: _Channel(lookback, exit_lookback) for iid in self.instruments}

    def update_params(self, cfg: StrategyInstanceConfig) -> None:
        """Live parameters: exposure and short (the channel lengths need a new strategy)."""
        self.exposure = cfg.breakout.exposure
        self.short = cfg.breakout.short

    def on_valid_bar(self, bar: Bar) -> None:
        """Compare the close with the channels of the previous bars, then add this bar to them."""
        ch = self._chan[bar.instrument_id]
        c = bar.close
        if ch.up.full and ch.low.full:
            upper, lower = ch.up.value(), ch.low.value()
            if c > upper and ch.side != 1:
                ch.side = 1
                self._target(bar, self.exposure, f"breakout_up: close {c:g} > {self.lookback}-bar high {upper:g}")
            elif c < lower and ch.side == 1 and not self.short:
                ch.side = 0
                self._target(bar, 0.0, f"breakout_exit: close {c:g} < {self.exit_lookback}-bar low {lower:g}")
            elif c < lower and self.short and ch.side != -1:
                ch.side = -1
                self._target(bar, -self.exposure,
                             f"breakout_down: close {c:g} < {self.exit_lookback}-bar low {lower:g}")
        ch.up.push(bar.high)
        ch.low.push(bar.low)

    def side(self, iid: InstrumentId) -> int:
        """The side last stated for `iid`: 1 long, 0 flat, -1 short."""
        return self._chan[iid].side

    def _kind_status(self, iid: InstrumentId) -> dict[str, object]:
        ch = self._chan[iid]
        return {"bars": ch.up.n, "side": ch.side,
                "upper": ch.up.value() if ch.up.full else None, "lower": ch.low.value() if ch.low.full else None}
