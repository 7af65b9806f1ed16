"""Strategy configuration: `[[strategies]]` (one `StrategyInstanceConfig` per configured
strategy instance) and the older single `[strategy]` table (`StrategyConfig`), which the
integrator maps to one instance (`StrategyConfig.as_instance`) when `[[strategies]]` is absent.

Reload tags: what a running strategy can take without being rebuilt is `live=True`
(sizes, exposures, quotas, shares, enabled); windows, kinds and instruments are
`live=False` (a strategy with new ones is a new strategy: the integrator rebuilds it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from nautilus_hmm.core.fields import non_empty, section, setting

STRATEGY_KIND_NAMES = ("hmm", "sma_cross", "breakout", "mean_reversion")
# Strategy ids name sub-accounts ("<id>:canary" is the canary lane's), registry scopes
# (<state_dir>/models/<id>) and metric labels: short, lower case, no ':' or '/'.
STRATEGY_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_EXPOSURE = 10.0  # |exposure| bound of every kind (a fraction of the strategy's capital)


def check_strategy_id(value: str) -> str | None:
    """Check: a strategy id is 1-32 of [a-z0-9_-], not starting with '_' or '-' (router accounts)."""
    if STRATEGY_ID_RE.fullmatch(value):
        return None
    return "must be 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"


@dataclass(frozen=True, slots=True)
class SmaCrossConfig:
    """[strategy.sma_cross] — long/flat SMA crossover on bar closes (fixed size)."""

    fast: int = setting(10, live=False, ge=1, le=100_000, doc="fast SMA window (bars)")
    slow: int = setting(30, live=False, ge=2, le=100_000, doc="slow SMA window (bars)")
    quantity: Decimal = setting(  # noqa: RUF009 (a Decimal is immutable)
        Decimal("0.1"), live=True, gt=0, doc="position size when long (base units)")

    def validate(self) -> list[tuple[str, object, str]]:
        """fast < slow."""
        if self.fast >= self.slow:
            return [("fast", self.fast, f"must be < slow ({self.slow})")]
        return []


@dataclass(frozen=True, slots=True)
class SmaCrossParams:
    """[strategies.sma_cross] — long/flat SMA crossover; exposure of its capital, or a fixed size."""

    fast: int = setting(10, live=False, ge=1, le=100_000, doc="fast SMA window (bars)")
    slow: int = setting(30, live=False, ge=2, le=100_000, doc="slow SMA window (bars)")
    exposure: float = setting(1.0, live=True, gt=0, le=MAX_EXPOSURE,
                              doc="exposure when long, a fraction of the strategy's capital")
    quantity: Decimal = setting(  # noqa: RUF009 (a Decimal is immutable)
        Decimal(0), live=True, ge=0, doc="> 0: fixed position size when long (base units) instead of `exposure`")

    def validate(self) -> list[tuple[str, object, str]]:
        """fast < slow."""
        if self.fast >= self.slow:
            return [("fast", self.fast, f"must be < slow ({self.slow})")]
        return []


@dataclass(frozen=True, slots=True)
class BreakoutParams:
    """[strategies.breakout] — Donchian channel breakout on bar highs, lows and closes."""

    lookback: int = setting(20, live=False, ge=2, le=100_000,
                            doc="entry channel: long when the close breaks above the highest high of these bars")
    exit_lookback: int = setting(10, live=False, ge=1, le=100_000,
                                 doc="exit channel: flat (or short) when the close breaks below the lowest low "
                                     "of these bars")
    exposure: float = setting(1.0, live=True, gt=0, le=MAX_EXPOSURE,
                              doc="exposure when in a position, a fraction of the strategy's capital")
    short: bool = setting(False, live=True, doc="go short on the exit break instead of flat")

    def validate(self) -> list[tuple[str, object, str]]:
        """No cross-field rule (any two channel lengths work)."""
        return []


@dataclass(frozen=True, slots=True)
class MeanReversionParams:
    """[strategies.mean_reversion] — z-score of the close against its rolling mean and deviation."""

    window: int = setting(20, live=False, ge=2, le=100_000, doc="bars in the rolling mean and standard deviation")
    entry_z: float = setting(2.0, live=True, gt=0, le=100, doc="long when z < -entry_z (short when z > entry_z)")
    exit_z: float = setting(0.5, live=True, ge=0, le=100, doc="flat again when z > -exit_z (short: z < exit_z)")
    exposure: float = setting(1.0, live=True, gt=0, le=MAX_EXPOSURE,
                              doc="exposure when in a position, a fraction of the strategy's capital")
    short: bool = setting(False, live=True, doc="also trade the symmetric short side")

    def validate(self) -> list[tuple[str, object, str]]:
        """exit_z < entry_z (else an entry exits on the same bar)."""
        if self.exit_z >= self.entry_z:
            return [("exit_z", self.exit_z, f"must be < entry_z ({self.entry_z:g})")]
        return []


@dataclass(frozen=True, slots=True)
class StrategyInstanceConfig:
    """[[strategies]] — one configured strategy: its kind, instruments, capital bounds and parameters."""

    id: str = setting(live=False, check=check_strategy_id, doc="unique strategy id ([a-z0-9_-], 1-32 characters)")
    kind: str = setting(live=False, choices=STRATEGY_KIND_NAMES, doc="what the strategy does")
    instruments: tuple[str, ...] = setting(
        ("sim:BTCUSDT",), live=False, check=non_empty, doc="instrument ids traded, as venue:SYMBOL")
    bar_interval_s: int = setting(10, live=False, ge=1, le=86_400,
                                  doc="bar length the strategy consumes (a backtest uses its data's interval)")
    enabled: bool = setting(True, live=True, doc="false: the strategy's targets are 0 (its sub-account is closed)")
    weight: float = setting(1.0, live=True, ge=0, le=1e6,
                            doc="static weight; static share = weight / sum of the enabled strategies' weights")
    min_share: float = setting(0.0, live=True, ge=0, le=1, doc="allocator floor (share of the account's equity)")
    max_share: float = setting(1.0, live=True, ge=0, le=1, doc="allocator ceiling (share of the account's equity)")
    quota_usd: float = setting(0.0, live=True, ge=0, le=1e15,
                               doc="max |target notional| per instrument in USD; 0 = no quota")
    canary_share: float = setting(0.0, live=True, ge=0, le=1,
                                  doc="hmm only: share of the strategy's capital its canary model trades "
                                      "(0 = the canary is a shadow)")
    sma_cross: SmaCrossParams = section(SmaCrossParams, doc="sma_cross parameters")  # noqa: RUF009 (a field with a default_factory)
    breakout: BreakoutParams = section(BreakoutParams, doc="breakout parameters")  # noqa: RUF009 (a field with a default_factory)
    mean_reversion: MeanReversionParams = section(MeanReversionParams, doc="mean_reversion parameters")  # noqa: RUF009 (a field with a default_factory)

    def validate(self) -> list[tuple[str, object, str]]:
        """Shares in order, canary only for hmm. A kind's own section is checked by its `validate`."""
        out: list[tuple[str, object, str]] = []
        if self.min_share > self.max_share:
            out.append(("min_share", self.min_share, f"must be <= max_share ({self.max_share:g})"))
        if self.canary_share != 0.0 and self.kind != "hmm":
            out.append(("canary_share", self.canary_share,
                        f"only an hmm strategy has a canary model (kind is {self.kind!r}); must be 0"))
        return out

    def check(self) -> list[tuple[str, object, str]]:
        """Every problem of an instance built in code (field checks are the loader's otherwise):
        the id, the kind, the instance rules and the chosen kind's parameter rules."""
        out: list[tuple[str, object, str]] = []
        if msg := check_strategy_id(self.id):
            out.append(("id", self.id, msg))
        if self.kind not in STRATEGY_KIND_NAMES:
            out.append(("kind", self.kind, "must be one of " + ", ".join(repr(k) for k in STRATEGY_KIND_NAMES)))
        out.extend(self.validate())
        params = self.params()
        if params is not None:
            out.extend((f"{self.kind}.{f}", v, m) for f, v, m in params.validate())
        return out

    def params(self) -> SmaCrossParams | BreakoutParams | MeanReversionParams | None:
        """The parameter section of this instance's kind (None for hmm: it reads [hmm])."""
        return {"sma_cross": self.sma_cross, "breakout": self.breakout,
                "mean_reversion": self.mean_reversion}.get(self.kind)


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """[strategy] — the one-strategy shorthand (used when [[strategies]] is absent)."""

    kind: str = setting("hmm", live=False, choices=("sma_cross", "hmm"), doc="strategy that drives positions")
    instruments: tuple[str, ...] = setting(
        ("sim:BTCUSDT",), live=False, check=non_empty, doc="instrument ids traded, as venue:SYMBOL"
    )
    bar_interval_s: int = setting(
        10, live=False, ge=1, le=86_400, doc="bar length the strategy consumes (a backtest uses its data's interval)")
    sma_cross: SmaCrossConfig = section(SmaCrossConfig, doc="sma_cross parameters")  # noqa: RUF009 (a field with a default_factory)

    def as_instance(self, canary_share: float = 0.0) -> StrategyInstanceConfig:
        """This table as the one strategy instance it stands for (id = kind, weight 1, whole account).

        sma_cross keeps its fixed `quantity` (quantity mode), so the SMA anchor is unchanged.
        `canary_share`: the hmm canary's traded share (today's [hmm.policy] canary_capital_fraction).
        """
        sma = SmaCrossParams(fast=self.sma_cross.fast, slow=self.sma_cross.slow, quantity=self.sma_cross.quantity)
        return StrategyInstanceConfig(
            id=self.kind, kind=self.kind, instruments=self.instruments, bar_interval_s=self.bar_interval_s,
            canary_share=canary_share if self.kind == "hmm" else 0.0, sma_cross=sma)
