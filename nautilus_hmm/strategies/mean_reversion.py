"""`mean_reversion`: z-score of the close against its rolling mean (a counter-trend baseline).

Rules, per instrument, on bars of the strategy's interval:

* z = (close - mean) / std over the last `window` closes, this bar's included
  (population standard deviation); no signal before `window` closes, nor when std = 0.
* Long (`exposure` of the strategy's capital) when z < -entry_z; flat again when
  z > -exit_z. With `short`, symmetric: short when z > entry_z, flat when z < exit_z.
  An exit and the opposite entry on one bar go straight to the other side.
* A target is stated only when the side changes.

The sums are kept relative to an anchor (the window's mean when last rebuilt) and rebuilt
exactly (math.fsum) every `window` bars, so float drift never accumulates: O(1)
amortized per bar. Bad bars (a non-finite or non-positive price) are skipped and counted.
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


class RollingZ:
    """Mean and population standard deviation of the last `size` values; z of the newest."""

    __slots__ = ("anchor", "pushes", "s1", "s2", "size", "values")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: deque[float] = deque(maxlen=size)
        self.anchor = 0.0
        self.s1 = 0.0  # sum of (x - anchor)
        self.s2 = 0.0  # sum of (x - anchor)^2
        self.pushes = 0

    def push(self, x: float) -> float | None:
        """Add `x`; its z-score against the window (None before the window is full or when flat)."""
        vals = self.values
        if len(vals) == self.size:
            old = vals[0] - self.anchor
            self.s1 -= old
            self.s2 -= old * old
        vals.append(x)
        d = x - self.anchor
        self.s1 += d
        self.s2 += d * d
        self.pushes += 1
        if self.pushes % self.size == 0:
            self._rebuild()
        n = len(vals)
        if n < self.size:
            return None
        mean_d = self.s1 / n
        var = self.s2 / n - mean_d * mean_d
        # A variance below float noise of the anchored sums is a flat window.
        if var <= 1e-12 * (self.s2 / n + 1e-300):
            return None
        return (x - self.anchor - mean_d) / math.sqrt(var)  # the anchor may have just moved

    def _rebuild(self) -> None:
        self.anchor = math.fsum(self.values) / len(self.values)
        a = self.anchor
        self.s1 = math.fsum(v - a for v in self.values)
        self.s2 = math.fsum((v - a) * (v - a) for v in self.values)


class _State:
    __slots__ = ("last_z", "side", "z")

    def __init__(self, window: int) -> None:
        self.z = RollingZ(window)
        self.side = 0
        self.last_z: float | None = None


class MeanReversion(BarStrategy):
    """Long when the close is `entry_z` deviations below its rolling mean, flat when back within `exit_z`."""

    kind = "mean_reversion"

    def __init__(self, strategy_id: str, instruments: tuple[InstrumentId, ...], window: int, entry_z: float,
                 exit_z: float, bar_interval_s: int, exposure: float = 1.0, short: bool = False) -> None:
        if window < 2:
            raise ValueError(f"window ({window}) must be >= 2")
        if not (math.isfinite(entry_z) and entry_z > 0):
            raise ValueError(f"entry_z ({entry_z!r}) must be finite and > 0")
        if not (math.isfinite(exit_z) and 0 <= exit_z < entry_z):
            raise ValueError(f"exit_z ({exit_z!r}) must be >= 0 and < entry_z ({entry_z!r})")
        if not (math.isfinite(exposure) and exposure > 0):
            raise ValueError(f"exposure ({exposure!r}) must be finite and > 0")
        super().__init__(strategy_id, instruments, bar_interval_s)
        self.window = window
        self.entry_z = entry_z
        self.exit_z = exit_z
        self.exposure = exposure
        self.short = short
        self._st = {iid: _State(window) for iid in self.instruments}

    def update_params(self, cfg: StrategyInstanceConfig) -> None:
        """Live parameters: thresholds, exposure and short (the window needs a new strategy)."""
        p = cfg.mean_reversion
        self.entry_z, self.exit_z, self.exposure, self.short = p.entry_z, p.exit_z, p.exposure, p.short

    def on_valid_bar(self, bar: Bar) -> None:
        """Update the window; on a change of side, state the new target."""
        st = self._st[bar.instrument_id]
        z = st.z.push(bar.close)
        st.last_z = z
        if z is None:
            return
        side = st.side
        if (side == 1 and z > -self.exit_z) or (side == -1 and z < self.exit_z):
            side = 0
        if side == 0:
            if z < -self.entry_z:
                side = 1
            elif self.short and z > self.entry_z:
                side = -1
        if side != st.side:
            st.side = side
            reason = {1: "mean_reversion_long", 0: "mean_reversion_exit", -1: "mean_reversion_short"}[side]
            self._target(bar, side * self.exposure, f"{reason}: z = {z:.3f}")

    def side(self, iid: InstrumentId) -> int:
        """The side last stated for `iid`: 1 long, 0 flat, -1 short."""
        return self._st[iid].side

    def _kind_status(self, iid: InstrumentId) -> dict[str, object]:
        st = self._st[iid]
        return {"bars": st.z.pushes, "side": st.side, "z": st.last_z}
