"""[venues.bybit_spot] / [venues.bybit_linear] — one section type for both Bybit v5 categories.

Credentials are never here: they come from the environment or systemd credentials
(`credential_prefix`; see the README and docs/BYBIT.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_hmm.core.fields import setting


@dataclass(frozen=True, slots=True)
class BybitConfig:
    """[venues.bybit_spot] / [venues.bybit_linear] — Bybit v5 spot or USDT perpetuals (one-way mode)."""

    enabled: bool = setting(False, live=False, doc="connect to this venue")
    testnet: bool = setting(True, live=False, doc="use the testnet URLs")
    rest_url: str = setting("", live=False, doc="override the REST base URL (empty = by testnet flag)")
    ws_public_url: str = setting(
        "", live=False, doc="override the public stream URL, path included (e.g. .../v5/public/spot; "
                            "empty = by testnet flag and category)")
    ws_private_url: str = setting("", live=False, doc="override the private stream URL, path included (.../v5/private)")
    ws_trade_url: str = setting("", live=False, doc="override the trade WebSocket URL, path included (.../v5/trade)")
    symbols: tuple[str, ...] = setting((), live=False, doc="symbols to trade")
    recv_window_ms: int = setting(5000, live=True, gt=0, le=60000, doc="X-BAPI-RECV-WINDOW of signed requests")
    request_timeout_s: float = setting(10.0, live=True, ge=0.1, le=300,
                                       doc="REST timeout; a timed-out order is queried, never resent")
    leverage: int = setting(1, live=False, ge=1, le=100, doc="linear: leverage set at start (one-way mode)")
    credential_prefix: str = setting("bybit", live=False,
                                     doc="env NAUTILUS_HMM_<PREFIX>_API_KEY / credential <prefix>-api-key")
    # Restart-only, as for Binance: the transport is chosen when the adapter is built and
    # a switch while orders are in flight would leave their answers on the old one.
    order_entry: str = setting(
        "rest", live=False, choices=("rest", "ws_trade"),
        doc="new orders and cancels over signed REST, or over Bybit's trade WebSocket (order.create / "
            "order.cancel); queries and reconciliation stay on REST",
    )

    def validate(self) -> list[tuple[str, object, str]]:
        """An overridden venue needs every URL the adapter will use overridden too."""
        out: list[tuple[str, object, str]] = []
        if self.enabled and not self.symbols:
            out.append(("symbols", [], "must list at least one symbol when the venue is enabled"))
        overridden = bool(self.rest_url or self.ws_public_url or self.ws_private_url or self.ws_trade_url)
        if not overridden:
            return out
        needed = ["rest_url", "ws_public_url", "ws_private_url"]
        if self.order_entry == "ws_trade":
            needed.append("ws_trade_url")
        for name in needed:
            if not getattr(self, name):
                out.append((name, "", "must be set when another Bybit URL is overridden (else this part would go "
                                      "to Bybit itself, not to the overridden venue)"))
        return out
