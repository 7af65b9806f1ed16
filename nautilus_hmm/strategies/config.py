"""[strategy] — which strategy drives target positions, and its parameters."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nautilus_hmm.core.fields import non_empty, section, setting


@dataclass(frozen=True, slots=True)
class SmaCrossConfig:
    """[strategy.sma_cross] — long/flat SMA crossover on bar closes."""

    fast: int = setting(10, live=False, ge=1, le=100_000, doc="fast SMA window (bars)")
    slow: int = setting(30, live=False, ge=2, le=100_000, doc="slow SMA window (bars)")
    quantity: Decimal = setting(Decimal("0.1"), live=True, gt=0, doc="position size when long (base units)")

    def validate(self) -> list[tuple[str, object, str]]:
        """fast < slow."""
        if self.fast >= self.slow:
            return [("fast", self.fast, f"must be < slow ({self.slow})")]
        return []


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """[strategy]"""

    kind: str = setting("hmm", live=False, choices=("sma_cross", "hmm"), doc="strategy that drives positions")
    instruments: tuple[str, ...] = setting(
        ("sim:BTCUSDT",), live=False, check=non_empty, doc="instrument ids traded, as venue:SYMBOL"
    )
    bar_interval_s: int = setting(
        10, live=False, ge=1, le=86_400, doc="bar length the strategy consumes (a backtest uses its data's interval)")
    sma_cross: SmaCrossConfig = section(SmaCrossConfig, doc="sma_cross parameters")
