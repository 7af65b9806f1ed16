"""[venues.ibkr] — Interactive Brokers through IB Gateway (or TWS) over the TWS socket API.

No credentials here or anywhere in the daemon: IB Gateway holds the login (IBC types it
in at the daily restart, docs/IBKR.md); the daemon only connects to its API port.
Symbols: `AAPL` (stock, SMART, USD), `ES-202612` (future of that month), `EUR.USD` (FX,
IDEALPRO); a `[venues.ibkr.contracts."<symbol>"]` table overrides the exchange, currency,
primary exchange or security type the symbol's form implies (contracts.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from nautilus_hmm.core.fields import setting

EXTRA_MISSING = "needs the 'ibkr' extra: pip install 'nautilus-hmm[ibkr]'"
SEC_TYPES = ("STK", "FUT", "CASH")


def ib_async_installed() -> bool:
    """True when ib_async (the `ibkr` extra) is importable; nothing is imported."""
    return importlib.util.find_spec("ib_async") is not None


@dataclass(frozen=True, slots=True)
class IbkrContractConfig:
    """[venues.ibkr.contracts."<symbol>"] — what the symbol's form does not say (empty = implied)."""

    exchange: str = setting("", live=False, doc="exchange (e.g. CME for ES; empty: SMART / IDEALPRO / any)")
    currency: str = setting("", live=False, doc="currency of the contract (empty: USD, or the FX pair's quote)")
    primary_exchange: str = setting("", live=False, doc="primary listing exchange of a SMART-routed stock (e.g. NASDAQ)")
    sec_type: str = setting("", live=False, choices=("", *SEC_TYPES),
                            doc="security type (empty: by the symbol's form)")


@dataclass(frozen=True, slots=True)
class IbkrConfig:
    """[venues.ibkr] — Interactive Brokers stocks, futures and FX through IB Gateway."""

    enabled: bool = setting(False, live=False, doc="connect to IB Gateway")
    host: str = setting("127.0.0.1", live=False, doc="IB Gateway / TWS API host")
    port: int = setting(4002, live=False, ge=1, le=65535,
                        doc="API port (IB Gateway: 4001 live, 4002 paper; TWS: 7496 / 7497)")
    client_id: int = setting(1, live=False, ge=0, le=2_147_483_647,
                             doc="API client id (unique per connection to the Gateway; order ids are per client id)")
    account: str = setting("", live=False, doc="account id (empty: the Gateway's only managed account)")
    symbols: tuple[str, ...] = setting((), live=False, doc="symbols to trade: AAPL, ES-202612, EUR.USD")
    contracts: dict[str, IbkrContractConfig] = setting(  # noqa: RUF009 (a field with a default_factory)
        default_factory=dict, live=False,
        doc="per symbol: exchange, currency, primary_exchange, sec_type overrides")
    market_data: str = setting(
        "bars_5s", live=False, choices=("bars_5s", "tick_by_tick"),
        doc="5-second real-time bars (reqRealTimeBars) or tick-by-tick trades and quotes, aggregated "
            "into the strategy's bars")
    delayed_data: bool = setting(
        True, live=False,
        doc="without a market data subscription take IB's delayed data (said in /status) instead of none")
    outside_rth: bool = setting(
        False, live=False,
        doc="allow orders outside the instrument's regular trading hours (IB's outsideRth flag is set)")
    max_msgs_per_s: int = setting(50, live=False, ge=1, le=50,
                                  doc="messages per second to the Gateway (IB's limit is 50)")
    request_timeout_s: float = setting(10.0, live=True, ge=0.1, le=300,
                                       doc="a request unanswered this long fails; an order then is queried, never resent")
    connect_timeout_s: float = setting(10.0, live=False, ge=0.5, le=300, doc="handshake and start-up sync timeout")
    reconnect_initial_s: float = setting(1.0, live=False, ge=0.1, le=600,
                                         doc="first delay before reconnecting to the Gateway; doubles per failure")
    reconnect_max_s: float = setting(30.0, live=False, ge=0.1, le=3600, doc="reconnect delay cap")
    commission_wait_s: float = setting(
        2.0, live=True, ge=0.01, le=60,
        doc="a fill waits this long for its commissionReport before it is published with fee 0 (counted)")

    def validate(self) -> list[tuple[str, object, str]]:
        """The extra is installed; symbols parse; every contracts table names a configured symbol."""
        from nautilus_hmm.venues.ibkr.contracts import parse_symbol

        out: list[tuple[str, object, str]] = []
        if self.enabled and not ib_async_installed():
            out.append(("enabled", True, EXTRA_MISSING))
        if self.enabled and not self.symbols:
            out.append(("symbols", [], "must list at least one symbol when the venue is enabled"))
        for i, sym in enumerate(self.symbols):
            try:
                parse_symbol(sym, self.contracts.get(sym))
            except ValueError as exc:
                out.append((f"symbols[{i}]", sym, str(exc)))
        for sym in self.contracts:
            if sym not in self.symbols:
                out.append((f"contracts.{sym}", {}, "not in venues.ibkr.symbols"))
        if self.reconnect_max_s < self.reconnect_initial_s:
            out.append(("reconnect_max_s", self.reconnect_max_s, "must be >= reconnect_initial_s"))
        return out
