"""[venues.binance_spot] / [venues.binance_usdm] — one section type for both Binance markets.

Credentials are never here: they come from the environment or systemd credentials
(`credential_prefix`; see the README).
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import setting


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
