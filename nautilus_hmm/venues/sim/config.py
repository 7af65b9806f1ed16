"""[venues.sim] — the simulated venue's config section (registered in `venues.sim.factory`)."""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import (
    at_least,
    existing_file,
    greater_than,
    non_empty,
    section,
    setting,
)


@dataclass(frozen=True, slots=True)
class SimMarketConfig:
    """[venues.sim.market] — what feeds the simulated venue."""

    source: str = setting(
        "synthetic", live=False, choices=("synthetic", "replay"),
        doc="synthetic = seeded regime-switching process; replay = a recorded file",
    )
    seed: int = setting(7, live=False, ge=0, le=2**32 - 1, doc="seed of the synthetic market")
    tick_interval_s: float = setting(0.5, live=False, ge=0.001, le=3600, doc="synthetic: seconds between trades per symbol")
    bar_interval_s: int = setting(10, live=False, ge=1, le=86_400, doc="bar length built from trades")
    replay_file: str = setting("", live=False, doc="replay: klines CSV (Binance dump or OHLCV with header) or trades CSV")
    replay_speed: float = setting(1.0, live=False, ge=0, doc="replay: 1.0 = real time, 0 = as fast as possible")
    initial_prices: dict[str, float] = setting(
        live=False, each=greater_than(0), doc="synthetic: starting price per symbol",
        default_factory=lambda: {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0},
    )

    def validate(self) -> list[tuple[str, object, str]]:
        """A replaying sim venue needs its file, checked here so check-config fails on it."""
        if self.source != "replay":
            return []
        if not self.replay_file:
            return [("replay_file", self.replay_file, "must name a file when source = \"replay\"")]
        problem = existing_file(self.replay_file)
        return [("replay_file", self.replay_file, problem)] if problem else []


@dataclass(frozen=True, slots=True)
class SimVenueConfig:
    """[venues.sim] — the in-process simulated venue (paper trading)."""

    enabled: bool = setting(True, live=False, doc="run the simulated venue")
    symbols: tuple[str, ...] = setting(
        ("BTCUSDT", "ETHUSDT", "SOLUSDT"), live=False, check=non_empty, doc="symbols it lists"
    )
    quote_asset: str = setting("USDT", live=False, check=non_empty, doc="quote asset of every symbol")
    initial_balances: dict[str, float] = setting(
        live=False, each=at_least(0), doc="paper account balances on first start",
        default_factory=lambda: {"USDT": 100_000.0},
    )
    maker_fee: float = setting(0.001, live=True, ge=0, lt=0.1, doc="maker fee rate")
    taker_fee: float = setting(0.001, live=True, ge=0, lt=0.1, doc="taker fee rate")
    latency_ms: float = setting(0.0, live=True, ge_or_zero=0.001, le=60_000, doc="added latency of every request")
    reject_rate: float = setting(0.0, live=True, ge=0, le=1, doc="probability that a new order is rejected (fault injection)")
    slippage_model: str = setting(
        "", live=False,
        doc="a slippage_model.json (research slip-train): taker fills move against the taker by its "
            "predicted cost; empty = fill at the arrival price",
    )
    market: SimMarketConfig = section(SimMarketConfig, doc="market data source")

    def validate(self) -> list[tuple[str, object, str]]:
        """Every symbol is <base><quote_asset>, and a synthetic market has its starting price:
        the venue could not list or generate it (refused here, so check-config fails on it)."""
        problems: list[tuple[str, object, str]] = []
        if self.slippage_model:
            from nautilus_hmm.venues.sim.slippage_model import model_file_problem

            problem = model_file_problem(self.slippage_model)
            if problem:
                problems.append(("slippage_model", self.slippage_model, problem))
        for i, sym in enumerate(self.symbols):
            if not sym.endswith(self.quote_asset) or sym == self.quote_asset:
                problems.append((f"symbols[{i}]", sym,
                                 f'must end with the quote asset "{self.quote_asset}" (venues.sim.quote_asset)'))
            elif self.market.source == "synthetic" and sym not in self.market.initial_prices:
                problems.append((f"symbols[{i}]", sym, "has no starting price in venues.sim.market.initial_prices "
                                 '(source = "synthetic")'))
        return problems
