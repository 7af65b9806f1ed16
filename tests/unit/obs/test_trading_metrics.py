"""Money metrics keep their *_usd names (dashboards use them) but are in the account
currency, which account_currency_info names."""

from __future__ import annotations

from nautilus_hmm.bootstrap import build_stack
from nautilus_hmm.config import Config
from nautilus_hmm.config.loader import parse
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.obs.metrics import NodeMetrics
from nautilus_hmm.obs.trading_metrics import TradingMetrics

MONEY_METRICS = ("position_exposure_usd", "unrealized_pnl_usd", "realized_pnl_usd", "equity_usd", "gross_exposure_usd")


def metrics_of_a_stack_quoted_in(quote: str) -> tuple[NodeMetrics, object]:
    cfg = parse(Config, {
        "strategy": {"kind": "sma_cross", "instruments": [f"sim:BTC{quote}"]},
        "venues": {"sim": {"quote_asset": quote, "symbols": [f"BTC{quote}"], "initial_balances": {quote: 1000},
                           "market": {"initial_prices": {f"BTC{quote}": 50_000}}}},
    })
    bus = Bus()
    stack = build_stack(cfg, bus, ManualClock(), None, {}, durable=False)
    stack.portfolio.set_base_currency(quote)  # what the start chooses from the traded instruments
    metrics = NodeMetrics(bus)
    TradingMetrics(metrics, stack)
    return metrics, stack


def test_account_currency_info_names_the_currency_money_metrics_are_in() -> None:
    metrics, _ = metrics_of_a_stack_quoted_in("EUR")
    assert metrics.registry.get_sample_value("account_currency_info", {"currency": "EUR"}) == 1.0
    text = metrics.render().decode()
    for name in MONEY_METRICS:
        [help_line] = [line for line in text.splitlines() if line.startswith(f"# HELP {name} ")]
        assert "in the account currency (see account_currency_info)" in help_line, help_line


def test_account_currency_info_follows_the_portfolio_at_scrape_time() -> None:
    metrics, stack = metrics_of_a_stack_quoted_in("USDT")
    stack.portfolio.set_base_currency("USDC")
    assert metrics.registry.get_sample_value("account_currency_info", {"currency": "USDC"}) == 1.0
    assert metrics.registry.get_sample_value("account_currency_info", {"currency": "USDT"}) is None
