"""`sma_cross`: long/flat crossover of two simple moving averages (a plain baseline)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Bar
from nautilus_hmm.strategies.base import BarStrategy

if TYPE_CHECKING:
    from nautilus_hmm.strategies.config import StrategyInstanceConfig


class SmaCross(BarStrategy):
    """Long/flat crossover of two simple moving averages of bar closes.

    Goes long when the fast SMA crosses above the slow one, flat when it crosses below.
    Long is `exposure` of the strategy's capital (exposure mode), or a fixed `quantity` in
    base units when `quantity` > 0 (quantity mode: the SMA anchor). Running sums are kept
    exactly as a plain loop does (add the new close, subtract the one leaving the window)
    so crossings match such loops bar for bar. A bar whose close is not finite and > 0 is
    skipped and counted (the sums never see it). Its own `on_bar` (the hot path of the
    anchor) checks the close only; attach/detach and the bar frame are `BarStrategy`'s.
    """

    kind = "sma_cross"

    def __init__(self, strategy_id: str, instruments: tuple[InstrumentId, ...], fast: int, slow: int,
                 quantity: Decimal, bar_interval_s: int, exposure: float = 1.0) -> None:
        if fast >= slow:
            raise ValueError(f"fast ({fast}) must be < slow ({slow})")
        if not (math.isfinite(exposure) and exposure > 0):
            raise ValueError(f"exposure ({exposure!r}) must be finite and > 0")
        if quantity < 0:
            raise ValueError(f"quantity ({quantity}) must be >= 0")
        super().__init__(strategy_id, instruments, bar_interval_s)
        self.fast = fast
        self.slow = slow
        self.quantity = quantity
        self.exposure = exposure
        self._state = {iid: _SmaState(slow) for iid in self.instruments}

    def set_quantity(self, quantity: Decimal) -> None:
        """Live-reloadable position size (quantity mode; 0 switches to exposure mode)."""
        self.quantity = quantity

    def update_params(self, cfg: StrategyInstanceConfig) -> None:
        """Live parameters: exposure and quantity (the windows need a new strategy)."""
        self.exposure = cfg.sma_cross.exposure
        self.quantity = cfg.sma_cross.quantity

    def on_bar(self, bar: Bar) -> None:
        """Update the averages; on a crossing, state the new target."""
        st = self._state.get(bar.instrument_id)
        if st is None or bar.interval_s != self.bar_interval_s:
            return
        c = bar.close
        if not (c > 0.0 and c != math.inf):  # NaN fails the first test
            self.bars_rejected += 1
            return
        ring = st.ring  # the last `slow` closes; ring[n % slow] is the oldest once full
        slow = self.slow
        fast = self.fast
        n = st.n
        sum_fast = st.sum_fast + c
        sum_slow = st.sum_slow + c
        if n >= fast:
            sum_fast -= ring[(n - fast) % slow]
        if n >= slow:
            sum_slow -= ring[n % slow]
        ring[n % slow] = c
        st.sum_fast = sum_fast
        st.sum_slow = sum_slow
        st.n = n = n + 1
        if n < slow:
            return
        diff = sum_fast / fast - sum_slow / slow
        prev = st.prev_diff
        st.prev_diff = diff
        if prev is None:
            return
        if diff > 0.0 >= prev:
            self._emit(bar, True, "sma_cross_up")
        elif diff < 0.0 <= prev:
            self._emit(bar, False, "sma_cross_down")

    def _emit(self, bar: Bar, long: bool, reason: str) -> None:
        self.signals += 1
        ctx = self._ctx
        if ctx is None:
            return
        ts_close_ns = bar.ts_event_ns + bar.interval_s * 1_000_000_000
        if self.quantity > 0:
            ctx.target(bar.instrument_id, self.quantity if long else Decimal(0), reason, ts_close_ns)
        else:
            ctx.target_exposure(bar.instrument_id, self.exposure if long else 0.0, reason, ts_close_ns)

    def status(self) -> dict[str, object]:
        """Averages per instrument."""
        out: dict[str, object] = {"kind": "sma_cross", "signals": self.signals, "bars_rejected": self.bars_rejected,
                                  "mode": "quantity" if self.quantity > 0 else "exposure"}
        for iid, st in self._state.items():
            out[str(iid)] = {"bars": st.n, "diff": st.prev_diff}
        return out


class _SmaState:
    __slots__ = ("n", "prev_diff", "ring", "sum_fast", "sum_slow")

    def __init__(self, slow: int) -> None:
        self.ring: list[float] = [0.0] * slow
        self.sum_fast = 0.0
        self.sum_slow = 0.0
        self.n = 0
        self.prev_diff: float | None = None
