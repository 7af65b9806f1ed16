"""`sma_cross`: long/flat crossover of two simple moving averages (a plain baseline)."""

from __future__ import annotations

from decimal import Decimal

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Bar
from nautilus_hmm.strategies.base import StrategyContext


class SmaCross:
    """Long/flat crossover of two simple moving averages of bar closes.

    Goes long `quantity` when the fast SMA crosses above the slow one, flat when it
    crosses below. Running sums are kept exactly as a plain loop does (add the new close,
    subtract the one leaving the window) so crossings match such loops bar for bar.
    """

    def __init__(self, strategy_id: str, instruments: tuple[InstrumentId, ...], fast: int, slow: int,
                 quantity: Decimal, bar_interval_s: int) -> None:
        if fast >= slow:
            raise ValueError(f"fast ({fast}) must be < slow ({slow})")
        self.strategy_id = strategy_id
        self.fast = fast
        self.slow = slow
        self.quantity = quantity
        self.bar_interval_s = bar_interval_s
        self._state = {iid: _SmaState(slow) for iid in instruments}
        self._ctx: StrategyContext | None = None
        self.signals = 0

    def attach(self, bus: Bus, ctx: StrategyContext) -> None:
        """Listen to bars."""
        self._ctx = ctx
        bus.subscribe(Bar, self.on_bar, name=f"strategy:{self.strategy_id}")

    def set_quantity(self, quantity: Decimal) -> None:
        """Live-reloadable position size."""
        self.quantity = quantity

    def on_bar(self, bar: Bar) -> None:
        """Update the averages; on a crossing, state the new target."""
        st = self._state.get(bar.instrument_id)
        if st is None or bar.interval_s != self.bar_interval_s:
            return
        c = bar.close
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
            self._emit(bar, self.quantity, "sma_cross_up")
        elif diff < 0.0 <= prev:
            self._emit(bar, Decimal(0), "sma_cross_down")

    def _emit(self, bar: Bar, qty: Decimal, reason: str) -> None:
        self.signals += 1
        if self._ctx is not None:
            self._ctx.target(bar.instrument_id, qty, reason, bar.ts_event_ns + bar.interval_s * 1_000_000_000)

    def status(self) -> dict[str, object]:
        """Averages per instrument."""
        out: dict[str, object] = {"kind": "sma_cross", "signals": self.signals}
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
