"""[hmm] — regime model, policy and guardrails (used when strategy.kind = "hmm").

Training settings ([hmm.features], [hmm.train]) apply to the next training run, so they are
live (except hmm.train.base_interval_s: the strategy is built around it); a running model
keeps the settings it was trained with (they are stored in it).
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import each_between, existing_file, non_empty, section, setting
from nautilus_hmm.hmm.errors import FeatureError
from nautilus_hmm.hmm.features import FeatureSpec


@dataclass(frozen=True, slots=True)
class HmmFeaturesConfig:
    """[hmm.features] — feature windows, in bars of each level (macro and micro)."""

    return_horizons: tuple[int, ...] = setting(
        (1, 5, 15), live=True, check=each_between(1, 100_000), doc="log-return horizons (bars); must include 1")
    vol_windows: tuple[int, ...] = setting((15, 60), live=True, check=each_between(1, 100_000), doc="realized-volatility windows (bars)")
    volume_window: int = setting(60, live=True, ge=0, le=100_000, doc="volume z-score window (bars); 0 = off")
    atr_window: int = setting(14, live=True, ge=0, le=100_000, doc="average true range window (bars); 0 = off")
    trend_window: int = setting(30, live=True, ge=0, le=100_000, doc="log-close regression slope window (bars); 0 = off")
    include_quotes: bool = setting(False, live=True, doc="add spread_bps and imbalance (needs quotes)")

    def spec(self) -> FeatureSpec:
        """The FeatureSpec these settings describe."""
        return FeatureSpec(
            return_horizons=self.return_horizons, vol_windows=self.vol_windows,
            volume_window=self.volume_window, atr_window=self.atr_window,
            trend_window=self.trend_window, include_quotes=self.include_quotes,
        )

    def validate(self) -> list[tuple[str, object, str]]:
        """The windows must form a valid FeatureSpec."""
        try:
            self.spec()
        except FeatureError as exc:
            return [(exc.field, getattr(self, exc.field, None), exc.problem)]
        return []


@dataclass(frozen=True, slots=True)
class HmmTrainConfig:
    """[hmm.train] — hierarchical HMM training (pomegranate, in a worker process)."""

    # Restart-only: the strategy aggregates bars and checks every model against the base
    # interval it was built with; a model trained at a new one could never be loaded.
    base_interval_s: int = setting(
        60, live=False, ge=1, le=86_400, doc="interval of the bars fed to training and to the tracker")
    macro_interval_s: int = setting(3600, live=True, ge=1, le=30 * 86_400, doc="slow bars of the macro model")
    micro_interval_s: int = setting(300, live=True, ge=1, le=7 * 86_400, doc="fast bars of the micro models")
    macro_states: int = setting(3, live=True, ge=2, le=12, doc="macro regimes (K)")
    micro_states: int = setting(3, live=True, ge=2, le=12, doc="micro states per macro regime (K)")
    covariance_type: str = setting("full", live=True, choices=("full", "diag"), doc="Gaussian emission covariance")
    n_restarts: int = setting(3, live=True, ge=1, le=50, doc="seeded k-means restarts; the best log-likelihood wins")
    max_iter: int = setting(100, live=True, ge=1, le=100_000, doc="Baum-Welch iterations per restart")
    tol: float = setting(1e-4, live=True, ge=0, le=1, doc="stop when the mean log-likelihood per bar improves less")
    min_covar: float = setting(1e-4, live=True, ge=1e-12, le=10, doc="added to covariance diagonals (standardised units)")
    seed: int = setting(7, live=True, ge=0, le=2**31 - 1, doc="seed of restart r is seed + r")
    chunk_bars: int = setting(128, live=True, ge=16, le=1_000_000, doc="training sequences are cut into chunks this long to batch EM")
    min_bars_per_state: int = setting(30, live=True, ge=2, le=1_000_000, doc="usable bars needed per state (else a clear error)")
    min_regime_bars: int = setting(
        500, live=True, ge=0, le=10_000_000,
        doc="fast bars a macro regime needs for its own micro model (else the pooled one)")
    timeout_s: float = setting(900.0, live=True, ge=1, le=7 * 86_400, doc="training worker is killed after this")
    torch_threads: int = setting(1, live=True, ge=1, le=256, doc="torch threads in the worker (leave the daemon a core)")
    window_bars: int = setting(
        43_200, live=True, ge=100, le=10_000_000,
        doc="base bars a full training uses: the rolling window of received bars, or the tail of training_data")
    retrain_interval_s: float = setting(0.0, live=True, ge_or_zero=1, le=366 * 86_400, doc="full retrain period in the daemon; 0 = on demand only")
    update_interval_s: float = setting(
        0.0, live=True, ge_or_zero=1, le=366 * 86_400, doc="partial update period (EM warm-started from production on the recent window); 0 = off")
    update_window_bars: int = setting(20_160, live=True, ge=100, le=10_000_000, doc="base bars of the recent window a partial update fits")
    update_max_iter: int = setting(20, live=True, ge=1, le=100_000, doc="Baum-Welch iterations of a partial update")
    auto_promote: bool = setting(
        False, live=True,
        doc="governance may promote the canary on live evidence ([control.governance.promotion]); "
            "a trained model is always the canary first (production only if there is none)")

    def validate(self) -> list[tuple[str, object, str]]:
        """Intervals must nest: base | micro | macro."""
        out: list[tuple[str, object, str]] = []
        if self.micro_interval_s % self.base_interval_s:
            out.append(("micro_interval_s", self.micro_interval_s,
                        f"must be a multiple of base_interval_s ({self.base_interval_s})"))
        if self.macro_interval_s % self.micro_interval_s or self.macro_interval_s <= self.micro_interval_s:
            out.append(("macro_interval_s", self.macro_interval_s,
                        f"must be a larger multiple of micro_interval_s ({self.micro_interval_s})"))
        return out


@dataclass(frozen=True, slots=True)
class HmmPolicyConfig:
    """[hmm.policy] — posteriors → target exposure, and the guardrails around it."""

    target_vol_annual: float = setting(0.4, live=True, gt=0, doc="annualized volatility the position is sized for")
    max_exposure: float = setting(1.0, live=True, gt=0, le=10, doc="cap on |target exposure| (fraction of allocated capital)")
    allow_short: bool = setting(False, live=True, doc="allow negative exposure (false on spot)")
    min_edge: float = setting(0.1, live=True, ge=0, doc="|expected return| / volatility per micro bar needed to take a side")
    min_confidence: float = setting(0.6, live=True, ge=0, le=1, doc="max micro posterior needed to enter or add")
    min_dwell_bars: int = setting(3, live=True, ge=1, le=100_000, doc="bars the (macro, micro) state must persist before a new side")
    max_flips_per_hour: int = setting(4, live=True, ge=1, le=3600, doc="side changes allowed in any 60 minutes")
    disagreement: str = setting("flat", live=True, choices=("flat", "reduce"),
                                doc="when macro and micro point opposite ways: go flat or scale down")
    disagreement_scale: float = setting(0.5, live=True, ge=0, le=1, doc="scale applied when disagreement = reduce")
    loss_streak: int = setting(3, live=True, ge=1, le=1000, doc="consecutive losing trades that start a cool-down")
    cooldown_s: float = setting(3600.0, live=True, ge_or_zero=1, le=30 * 86_400, doc="flat for this long after a loss streak")
    stale_data_s: float = setting(900.0, live=True, ge=1, le=30 * 86_400, doc="halt (no new targets) when the last bar is older")
    rebalance_threshold: float = setting(0.05, live=True, ge=0, doc="hold when |target - current| is below this")
    capital_usd: float = setting(
        10_000.0, live=True, gt=0, doc="capital per instrument (quote units); target qty = capital x exposure / price")
    canary_capital_fraction: float = setting(
        0.0, live=True, ge=0, le=1,
        doc="share of capital_usd the canary model trades; 0 = shadow only (decisions published, never traded)")


@dataclass(frozen=True, slots=True)
class HmmConfig:
    """[hmm] — regime model registry, training and policy."""

    registry_dir: str = setting("models", live=False, check=non_empty, doc="model registry; relative paths are under node.state_dir")
    training_data: str = setting(
        "", live=True, check=existing_file,
        doc="klines file (Binance dump or OHLCV CSV) the daemon trains on; empty = the bars it received")
    history_from_venue: bool = setting(
        True, live=False,
        doc="at start, warm up (and fill the training window) from the venue's past bars when training_data is empty")
    features: HmmFeaturesConfig = section(HmmFeaturesConfig, doc="feature windows")  # noqa: RUF009 (a field with a default_factory)
    train: HmmTrainConfig = section(HmmTrainConfig, doc="training")  # noqa: RUF009 (a field with a default_factory)
    policy: HmmPolicyConfig = section(HmmPolicyConfig, doc="policy and guardrails")  # noqa: RUF009 (a field with a default_factory)
