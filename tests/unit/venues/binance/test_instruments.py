"""exchangeInfo → Instrument on the recorded spot and USD-M answers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from nautilus_hmm.domain.enums import InstrumentKind
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.venues.binance.instruments import (
    instrument_from_symbol,
    parse_exchange_info,
    parse_trading_fees,
    with_fees,
)
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import BinanceParseError
from tests.conftest import fixture_path
from tests.unit.venues.binance.jsonc import load_jsonc

PY = ("binance", "nautilus_trader", "py_test_resources", "http_responses")


def _spot() -> dict:
    return load_jsonc(fixture_path(*PY, "http_spot_market_exchange_info.json"))


def _usdm() -> dict:
    return load_jsonc(fixture_path(*PY, "http_futures_market_exchange_info.json"))


def test_spot_btcusdt_filters_are_read() -> None:
    info = parse_exchange_info(_spot(), Market.SPOT)
    btc = info.instruments[InstrumentId("binance_spot", "BTCUSDT")]
    assert (btc.base_asset, btc.quote_asset, btc.kind) == ("BTC", "USDT", InstrumentKind.SPOT)
    assert btc.tick_size == Decimal("0.01")
    assert btc.step_size == Decimal("0.00001")
    assert btc.min_qty == Decimal("0.00001")
    assert btc.max_qty == Decimal("9000")
    assert btc.min_notional == Decimal("10")
    assert btc.percent_price_up == Decimal("5")
    assert btc.percent_price_down == Decimal("0.2")
    assert btc.max_num_orders == 200
    assert btc.tradable


def test_spot_market_lot_size_with_zero_step_is_disabled_but_max_is_kept() -> None:
    eth = parse_exchange_info(_spot(), Market.SPOT).instruments[InstrumentId("binance_spot", "ETHUSDT")]
    assert eth.market_step_size is None
    assert eth.market_max_qty == Decimal("1630.44517663")
    assert eth.step_size == Decimal("0.0001")


def test_tick_and_step_sizes_have_no_exponent_form() -> None:
    btc = parse_exchange_info(_spot(), Market.SPOT).instruments[InstrumentId("binance_spot", "BTCUSDT")]
    assert format(btc.tick_size, "f") == "0.01"
    assert str(btc.max_qty) == "9000"


def test_usdm_perpetual_uses_notional_key_and_limit_key() -> None:
    info = parse_exchange_info(_usdm(), Market.USDM)
    btc = info.instruments[InstrumentId("binance_usdm", "BTCUSDT")]
    assert btc.kind is InstrumentKind.PERPETUAL
    assert btc.tick_size == Decimal("0.1")
    assert btc.step_size == Decimal("0.001")
    assert btc.min_notional == Decimal("10")
    assert btc.max_num_orders == 200
    assert btc.percent_price_up == Decimal("1.1")
    assert btc.percent_price_down == Decimal("0.5454")
    assert btc.market_step_size is None  # same as LOT_SIZE
    assert btc.market_max_qty == Decimal("1000")
    assert (btc.maker_fee, btc.taker_fee) == (Decimal("0.0002"), Decimal("0.0005"))


def test_usdm_dated_contract_is_skipped_with_a_reason() -> None:
    info = parse_exchange_info(_usdm(), Market.USDM)
    assert set(i.symbol for i in info.instruments) == {"BTCUSDT", "ETHUSDT"}
    assert len(info.skipped) == 1
    symbol, reason = info.skipped[0]
    assert symbol == "BTCUSDT_220325"
    assert "CURRENT_QUARTER" in reason


def test_docs_example_without_filters_is_skipped_not_dropped() -> None:
    body = load_jsonc(fixture_path("binance", "docs_spot", "rest", "GET_api_v3_exchangeInfo.jsonc"))
    info = parse_exchange_info(body, Market.SPOT)
    assert info.instruments == {}
    assert info.skipped[0][0] == "ETHBTC"
    assert "PRICE_FILTER" in info.skipped[0][1]
    assert info.server_time_ms == 1565246363776


def _symbol(**over: object) -> dict[str, Any]:
    s: dict[str, Any] = {
        "symbol": "NEWUSDT", "status": "TRADING", "baseAsset": "NEW", "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0", "maxPrice": "0", "tickSize": "0.00100000"},
            {"filterType": "LOT_SIZE", "minQty": "1.00000000", "maxQty": "0", "stepSize": "1.00000000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "1.2", "askMultiplierDown": "0.8", "avgPriceMins": 1},
        ],
    }
    s.update(over)
    return s


def test_notional_filter_gives_min_notional() -> None:
    assert instrument_from_symbol(_symbol(), Market.SPOT).min_notional == Decimal("5")


def test_percent_price_by_side_takes_the_tighter_bound() -> None:
    inst = instrument_from_symbol(_symbol(), Market.SPOT)
    assert (inst.percent_price_up, inst.percent_price_down) == (Decimal("1.2"), Decimal("0.8"))


def test_zero_max_qty_means_no_limit() -> None:
    assert instrument_from_symbol(_symbol(), Market.SPOT).max_qty is None


def test_status_other_than_trading_is_not_tradable() -> None:
    assert not instrument_from_symbol(_symbol(status="BREAK"), Market.SPOT).tradable


def test_usdm_non_perpetual_raises_naming_the_contract_type() -> None:
    with pytest.raises(BinanceParseError, match="NEXT_QUARTER"):
        instrument_from_symbol(_symbol(contractType="NEXT_QUARTER"), Market.USDM)


def test_bad_filter_value_names_the_symbol_and_key() -> None:
    s = _symbol()
    s["filters"][0] = {"filterType": "PRICE_FILTER", "tickSize": "abc"}
    with pytest.raises(BinanceParseError, match=r"NEWUSDT.*tickSize"):
        instrument_from_symbol(s, Market.SPOT)


def test_venue_name_can_be_overridden() -> None:
    inst = instrument_from_symbol(_symbol(), Market.SPOT, "binance_spot_testnet")
    assert inst.id == InstrumentId("binance_spot_testnet", "NEWUSDT")


def test_trading_fees_from_usdm_commission_rate_and_spot_trade_fee() -> None:
    usdm = parse_trading_fees(load_jsonc(fixture_path(*PY, "http_futures_wallet_commission_rate_btcusdt.json")))
    spot = parse_trading_fees(load_jsonc(fixture_path(*PY, "http_wallet_trading_fees.json")))
    assert usdm == {"BTCUSDT": (Decimal("0.0002"), Decimal("0.0005"))}
    assert spot["ETHUSDT"] == (Decimal("0.001"), Decimal("0.001"))


def test_with_fees_replaces_rates_of_listed_symbols_only() -> None:
    info = parse_exchange_info(_usdm(), Market.USDM)
    out = with_fees(info.instruments, {"ETHUSDT": (Decimal("0.0001"), Decimal("0.0004"))})
    assert out[InstrumentId("binance_usdm", "ETHUSDT")].taker_fee == Decimal("0.0004")
    assert out[InstrumentId("binance_usdm", "BTCUSDT")].taker_fee == Decimal("0.0005")
