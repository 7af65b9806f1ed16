"""[risk] — limits the risk gate enforces. All live-reloadable."""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import setting


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Risk rails every order passes."""

    initial_state: str = setting(
        "ACTIVE", live=False, choices=("ACTIVE", "REDUCING", "HALTED"),
        doc="trading state after start-up reconciliation passes (HALTED = wait for an operator)",
    )
    min_order_notional_usd: float = setting(0.0, live=True, ge=0, doc="smallest order notional")
    max_order_notional_usd: float = setting(50_000.0, live=True, gt=0, doc="largest order notional")
    max_symbol_exposure_usd: float = setting(100_000.0, live=True, gt=0, doc="cap on |position| x mark per symbol")
    max_gross_exposure_usd: float = setting(250_000.0, live=True, gt=0, doc="cap on the sum of |position| x mark")
    max_open_orders_per_symbol: int = setting(10, live=True, ge=1, le=10_000, doc="open orders allowed per symbol")
    orders_per_s: float = setting(5.0, live=True, ge=0.001, le=100_000, doc="token-bucket refill rate per venue")
    order_burst: int = setting(10, live=True, ge=1, le=100_000, doc="token-bucket capacity per venue")
    price_collar_bps: float = setting(200.0, live=True, gt=0, doc="LIMIT price may not be this far through the mark")
    stale_data_s: float = setting(10.0, live=True, ge=0.1, le=86_400, doc="no order when the symbol's last market update is older")
    daily_loss_limit_usd: float = setting(5_000.0, live=True, gt=0, doc="realized loss per UTC day that halts trading")
    max_drawdown_pct: float = setting(10.0, live=True, gt=0, le=100, doc="drawdown from the equity peak that halts trading")
    breaker_error_threshold: int = setting(5, live=True, ge=1, le=10_000, doc="consecutive venue errors that open the breaker")
    breaker_cooldown_s: float = setting(30.0, live=True, ge=0.1, le=86_400, doc="open breaker waits this long before half-open")

    def validate(self) -> list[tuple[str, object, str]]:
        """Cross-field rules."""
        out: list[tuple[str, object, str]] = []
        if self.min_order_notional_usd >= self.max_order_notional_usd:
            out.append(("min_order_notional_usd", self.min_order_notional_usd,
                        f"must be < max_order_notional_usd ({self.max_order_notional_usd})"))
        if self.max_symbol_exposure_usd > self.max_gross_exposure_usd:
            out.append(("max_symbol_exposure_usd", self.max_symbol_exposure_usd,
                        f"must be <= max_gross_exposure_usd ({self.max_gross_exposure_usd})"))
        return out
