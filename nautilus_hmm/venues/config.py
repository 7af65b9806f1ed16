"""[venues.*] — one table per venue kind; `enabled` switches it on.

Credentials are never here: they come from the environment or systemd credentials
(names given per venue in the README).
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import existing_file, non_empty, section, setting


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
        live=False, doc="synthetic: starting price per symbol",
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
    quote_asset: str = setting("USDT", live=False, doc="quote asset of every symbol")
    initial_balances: dict[str, float] = setting(
        live=False, doc="paper account balances on first start",
        default_factory=lambda: {"USDT": 100_000.0},
    )
    maker_fee: float = setting(0.001, live=True, ge=0, lt=0.1, doc="maker fee rate")
    taker_fee: float = setting(0.001, live=True, ge=0, lt=0.1, doc="taker fee rate")
    latency_ms: float = setting(0.0, live=True, ge_or_zero=0.001, le=60_000, doc="added latency of every request")
    reject_rate: float = setting(0.0, live=True, ge=0, le=1, doc="probability that a new order is rejected (fault injection)")
    market: SimMarketConfig = section(SimMarketConfig, doc="market data source")


@dataclass(frozen=True, slots=True)
class BinanceConfig:
    """[venues.binance_spot] / [venues.binance_usdm] — Binance spot or USD-M futures."""

    enabled: bool = setting(False, live=False, doc="connect to this venue")
    testnet: bool = setting(True, live=False, doc="use the testnet URLs")
    rest_url: str = setting("", live=False, doc="override the REST base URL (empty = by testnet flag)")
    ws_url: str = setting("", live=False, doc="override the market-stream base URL")
    symbols: tuple[str, ...] = setting((), live=False, doc="symbols to trade")
    recv_window_ms: int = setting(5000, live=True, gt=0, le=60000, doc="recvWindow of signed requests")
    request_timeout_s: float = setting(10.0, live=True, ge=0.1, le=300, doc="REST timeout; a timed-out order is queried, never resent")
    leverage: int = setting(1, live=False, ge=1, le=125, doc="USD-M: leverage set at start")
    margin_type: str = setting("CROSSED", live=False, choices=("CROSSED", "ISOLATED"), doc="USD-M: margin type set at start")
    hedge_mode: bool = setting(False, live=False, doc="USD-M: dual position side")
    credential_prefix: str = setting("binance", live=False, doc="env NAUTILUS_HMM_<PREFIX>_API_KEY / credential <prefix>-api-key")
    # Restart-only: the transport is chosen when the adapter is built, its connection is
    # one of the tasks run() keeps, and a switch while orders are in flight would leave
    # their answers on the old transport; a restart reconciles with the venue first.
    order_entry: str = setting(
        "rest", live=False, choices=("rest", "ws_api"),
        doc="new orders and cancels over signed REST, or over Binance's WebSocket API (one authenticated "
            "connection, lower latency); queries and reconciliation stay on REST",
    )
    ws_api_url: str = setting("", live=False, doc="override the WebSocket API URL, path included (empty = by testnet flag)")

    def validate(self) -> list[tuple[str, object, str]]:
        """ws_api order entry against an overridden venue needs the WebSocket API URL overridden too."""
        if self.order_entry == "ws_api" and (self.rest_url or self.ws_url) and not self.ws_api_url:
            return [("ws_api_url", self.ws_api_url, "must be set when rest_url or ws_url is overridden and "
                                                    "order_entry = \"ws_api\" (else orders would go to Binance's own "
                                                    "WebSocket API, not to the overridden venue)")]
        return []


@dataclass(frozen=True, slots=True)
class BybitConfig:
    """[venues.bybit] — Bybit v5 (not implemented yet; must stay disabled)."""

    enabled: bool = setting(False, live=False, doc="connect to this venue")
    testnet: bool = setting(True, live=False, doc="use the testnet URLs")
    category: str = setting("linear", live=False, choices=("spot", "linear"), doc="v5 category")
    symbols: tuple[str, ...] = setting((), live=False, doc="symbols to trade")


@dataclass(frozen=True, slots=True)
class VenuesConfig:
    """[venues] — the venues this node connects to."""

    sim: SimVenueConfig = section(SimVenueConfig, doc="simulated venue")
    binance_spot: BinanceConfig = section(BinanceConfig, doc="Binance spot")
    binance_usdm: BinanceConfig = section(BinanceConfig, doc="Binance USD-M futures")
    bybit: BybitConfig = section(BybitConfig, doc="Bybit v5")

    def validate(self) -> list[tuple[str, object, str]]:
        """At least one venue; venues not built yet stay off."""
        out: list[tuple[str, object, str]] = []
        if not any(v.enabled for v in (self.sim, self.binance_spot, self.binance_usdm, self.bybit)):
            out.append(("sim.enabled", False, "at least one venue must be enabled"))
        if self.bybit.enabled:
            out.append(("bybit.enabled", True, "the Bybit adapter is not available in this version"))
        return out
