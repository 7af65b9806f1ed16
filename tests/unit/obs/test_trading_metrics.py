"""Money metrics keep their *_usd names (dashboards use them) but are in the account
currency, which account_currency_info names."""

from __future__ import annotations

from nautilus_hmm.bootstrap import build_stack
from nautilus_hmm.config import Config
from nautilus_hmm.config.loader import parse
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.obs.metrics import NodeMetrics
from nautilus_hmm.obs.trading_metrics import TradingMetrics, VenueMetricsSnapshot

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


def test_market_data_age_counts_from_the_last_receipt_per_instrument() -> None:
    metrics, stack = metrics_of_a_stack_quoted_in("USDT")
    clock = stack.clock
    iid = InstrumentId("sim", "BTCUSDT")
    assert metrics.registry.get_sample_value("market_data_age_seconds", {"instrument": str(iid)}) is None
    stack.engine.mark_book.update(iid, 50_000.0, clock.time_ns())
    clock.advance(30.0)
    assert metrics.registry.get_sample_value("market_data_age_seconds", {"instrument": str(iid)}) == 30.0
    stack.engine.mark_book.update(iid, None, clock.time_ns())  # a priceless update still counts
    clock.advance(2.5)
    assert metrics.registry.get_sample_value("market_data_age_seconds", {"instrument": str(iid)}) == 2.5


class FakeBinance:
    """A venue that reports metrics, beside the sim venue that does not."""

    def metrics_snapshot(self) -> VenueMetricsSnapshot:
        return VenueMetricsSnapshot(ws_reconnects={"market": 3, "user": 1}, ws_connected={"market": True, "user": False},
                                    weight_used_1m=5_400, weight_limit_1m=6_000)


def test_venue_metrics_come_from_venues_that_report_them() -> None:
    metrics, stack = metrics_of_a_stack_quoted_in("USDT")
    stack.venues["binance_spot"] = FakeBinance()
    get = metrics.registry.get_sample_value
    assert get("venue_ws_reconnects_total", {"venue": "binance_spot", "stream": "market"}) == 3.0
    assert get("venue_ws_connected", {"venue": "binance_spot", "stream": "user"}) == 0.0
    assert get("venue_rate_limit_weight_remaining", {"venue": "binance_spot"}) == 600.0
    assert get("venue_rate_limit_weight_limit", {"venue": "binance_spot"}) == 6_000.0
    assert get("venue_rate_limit_weight_remaining", {"venue": "sim"}) is None


def test_venue_families_are_named_in_a_scrape_without_such_venues() -> None:
    metrics, _ = metrics_of_a_stack_quoted_in("USDT")
    text = metrics.render().decode()
    for name in ("venue_ws_reconnects_total", "venue_ws_connected", "venue_rate_limit_weight_remaining",
                 "venue_error_answers_total", "market_data_age_seconds"):
        assert f"# TYPE {name} " in text, name
