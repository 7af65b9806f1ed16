"""Every Binance payload in the fixtures tree parses, or is deliberately classified.

The table below names what each file is. A new fixture file fails
`test_every_fixture_file_is_classified` until it is added here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Bar, MarkPrice, QuoteTick, TradeTick
from nautilus_hmm.venues.binance.errors import parse_error_body
from nautilus_hmm.venues.binance.instruments import parse_exchange_info, parse_trading_fees
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.parse import (
    AccountBalances,
    AccountUpdate,
    BalanceDelta,
    BinanceParseError,
    BinanceParser,
    DepthDiff,
    EventStreamTerminated,
    ListenKeyExpired,
    NewOrderResponse,
    OrderUpdate,
    parse_account_trades,
    parse_balances,
    parse_depth_snapshot,
    parse_new_order_response,
    parse_order,
    parse_orders,
    parse_position_mode,
    parse_positions,
    parse_rest_klines,
    parse_rest_trades,
    parse_server_time,
)
from tests.conftest import FIXTURES, fixture_path
from tests.unit.venues.binance.jsonc import load_jsonc

S, U = Market.SPOT, Market.USDM
TS = 1_700_000_000_000_000_000
CF = "cryptofeed_captures/"
DS = "docs_spot/"
CR = "nautilus_trader/crate_test_data/"
PYH = "nautilus_trader/py_test_resources/http_responses/"
PYW = "nautilus_trader/py_test_resources/ws_messages/"

# path → (kind, market, expected type | None | reason text)
TABLE: dict[str, tuple[str, Market, Any]] = {
    CF + "BINANCE.http.0.0.txt": ("http_capture", S, None),
    CF + "BINANCE.ws.1.0.txt": ("ws_capture", S, None),
    CF + "BINANCE_FUTURES.http.0.0.txt": ("http_capture", U, None),
    CF + "BINANCE_FUTURES.ws.1.0.txt": ("ws_capture", U, None),
    DS + "errors.md": ("skip", S, "documentation text, not a payload"),
    DS + "filters.md": ("skip", S, "documentation text, not a payload"),
    DS + "rest/DELETE_api_v3_order.jsonc": ("order", S, None),
    DS + "rest/GET_api_v3_account.jsonc": ("balances", S, None),
    DS + "rest/GET_api_v3_aggTrades.jsonc": ("trades", S, None),
    DS + "rest/GET_api_v3_depth.jsonc": ("depth", S, None),
    DS + "rest/GET_api_v3_exchangeInfo.jsonc": ("exchange_info", S, 0),
    DS + "rest/GET_api_v3_klines.jsonc": ("klines", S, None),
    DS + "rest/GET_api_v3_myTrades.jsonc": ("account_trades", S, None),
    DS + "rest/GET_api_v3_openOrders.jsonc": ("orders", S, None),
    DS + "rest/GET_api_v3_order.jsonc": ("order", S, None),
    DS + "rest/GET_api_v3_time.jsonc": ("server_time", S, None),
    DS + "rest/GET_api_v3_trades.jsonc": ("trades", S, None),
    DS + "rest/POST_api_v3_order_ACK.jsonc": ("new_order", S, None),
    DS + "rest/POST_api_v3_order_FULL.jsonc": ("new_order", S, None),
    DS + "rest/POST_api_v3_order_RESULT.jsonc": ("new_order", S, None),
    DS + "rest/error_payload_sample.jsonc": ("error", S, None),
    DS + "user_data_stream/balanceUpdate.jsonc": ("user", S, BalanceDelta),
    DS + "user_data_stream/eventStreamTerminated.jsonc": ("user", S, EventStreamTerminated),
    DS + "user_data_stream/executionReport.jsonc": ("user", S, OrderUpdate),
    DS + "user_data_stream/outboundAccountPosition.jsonc": ("user", S, AccountBalances),
    DS + "user_data_stream_2025-10_listenKey_era/balanceUpdate.jsonc": ("user", S, BalanceDelta),
    DS + "user_data_stream_2025-10_listenKey_era/executionReport.jsonc": ("user", S, OrderUpdate),
    DS + "user_data_stream_2025-10_listenKey_era/listenKeyExpired.jsonc": ("user", S, ListenKeyExpired),
    DS + "user_data_stream_2025-10_listenKey_era/outboundAccountPosition.jsonc": ("user", S, AccountBalances),
    DS + "ws_streams/aggTrade.jsonc": ("market", S, TradeTick),
    DS + "ws_streams/bookTicker.jsonc": ("market", S, QuoteTick),
    DS + "ws_streams/depthUpdate_diff.jsonc": ("market", S, DepthDiff),
    DS + "ws_streams/depth_partial_levels.jsonc": ("depth", S, None),  # no symbol: the stream name gives it
    DS + "ws_streams/kline_1m.jsonc": ("market", S, None),  # open kline
    DS + "ws_streams/trade.jsonc": ("market", S, TradeTick),
    "errors_observed/spot_-1003_TOO_MANY_REQUESTS.reconstructed.json": ("error", S, None),
    "errors_observed/spot_-1021_INVALID_TIMESTAMP.verbatim.json": ("error", S, None),
    "errors_observed/spot_-2010_insufficient_balance.reconstructed.json": ("error", S, None),
    "errors_observed/usdm_futures_listenKeyExpired_E_is_string.verbatim.json": ("user", U, ListenKeyExpired),
    CR + "futures/http_json/account_info_v2.json": ("account", U, None),
    CR + "futures/http_json/balance.json": ("balances", U, None),
    CR + "futures/http_json/open_algo_orders.json": ("skip", U, "algo (conditional) orders are not used"),
    CR + "futures/http_json/order_response.json": ("order", U, None),
    CR + "futures/http_json/position_risk.json": ("positions", U, None),
    CR + "futures/market_data_json/agg_trade_stream.json": ("market", U, TradeTick),
    CR + "futures/market_data_json/book_ticker_stream.json": ("market", U, QuoteTick),
    CR + "futures/market_data_json/depth_update_stream.json": ("market", U, DepthDiff),
    CR + "futures/market_data_json/kline_stream_closed.json": ("market", U, Bar),
    CR + "futures/market_data_json/kline_stream_open.json": ("market", U, None),
    CR + "futures/market_data_json/liquidation_stream.json": ("market", U, None),  # forceOrder: unused
    CR + "futures/market_data_json/mark_price_stream.json": ("market", U, MarkPrice),
    CR + "futures/market_data_json/ticker_stream.json": ("market", U, None),  # 24hrTicker: unused
    CR + "futures/market_data_json/trade_stream.json": ("market", U, TradeTick),
    CR + "futures/user_data_json/account_update.json": ("user", U, AccountUpdate),
    CR + "futures/user_data_json/account_update_bnfcr.json": ("user", U, AccountUpdate),
    CR + "futures/user_data_json/algo_update_canceled.json": ("user", U, None),
    CR + "futures/user_data_json/algo_update_new.json": ("user", U, None),
    CR + "futures/user_data_json/order_update_adl.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/order_update_calculated.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/order_update_calculated_pending.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/order_update_delivery.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/order_update_insurance.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/order_update_new.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/order_update_settlement.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/order_update_trade.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/order_update_trade_partial.json": ("user", U, OrderUpdate),
    CR + "futures/user_data_json/trade_lite.json": ("user", U, None),  # ORDER_TRADE_UPDATE carries the same fill
    CR + "spot/http_json/account_response.json": ("balances", S, None),
    CR + "spot/http_json/account_trades_response.json": ("account_trades", S, None),
    CR + "spot/http_json/all_orders_response.json": ("orders", S, None),
    CR + "spot/http_json/avg_price_response.json": ("skip", S, "avgPrice: unused"),
    CR + "spot/http_json/book_ticker_response.json": ("skip", S, "REST book ticker: quotes come from the stream"),
    CR + "spot/http_json/cancel_open_orders_response.json": ("orders", S, None),
    CR + "spot/http_json/cancel_order_response.json": ("order", S, None),
    CR + "spot/http_json/depth_response.json": ("depth", S, None),
    CR + "spot/http_json/exchange_info_response.json": ("exchange_info", S, 0),
    CR + "spot/http_json/klines_response.json": ("klines", S, None),
    CR + "spot/http_json/new_order_full_response.json": ("new_order", S, None),
    CR + "spot/http_json/open_orders_response.json": ("orders", S, None),
    CR + "spot/http_json/order_response.json": ("order", S, None),
    CR + "spot/http_json/ping_response.json": ("skip", S, "ping: empty object"),
    CR + "spot/http_json/server_time_response.json": ("server_time", S, None),
    CR + "spot/http_json/ticker_24hr_response.json": ("skip", S, "24h ticker: unused"),
    CR + "spot/http_json/ticker_price_response.json": ("skip", S, "price ticker: unused"),
    CR + "spot/http_json/trades_response.json": ("trades", S, None),
    CR + "spot/user_data_json/account_position.json": ("user", S, AccountBalances),
    CR + "spot/user_data_json/account_position_wrapped.json": ("user", S, AccountBalances),
    CR + "spot/user_data_json/balance_update.json": ("user", S, BalanceDelta),
    CR + "spot/user_data_json/balance_update_wrapped.json": ("user", S, BalanceDelta),
    CR + "spot/user_data_json/execution_report_canceled.json": ("user", S, OrderUpdate),
    CR + "spot/user_data_json/execution_report_expired.json": ("user", S, OrderUpdate),
    CR + "spot/user_data_json/execution_report_new.json": ("user", S, OrderUpdate),
    CR + "spot/user_data_json/execution_report_stop_loss.json": ("user", S, OrderUpdate),
    CR + "spot/user_data_json/execution_report_trade.json": ("user", S, OrderUpdate),
    CR + "spot/user_data_json/execution_report_wrapped.json": ("user", S, OrderUpdate),
    CR + "spot/user_data_json/list_status_wrapped.json": ("user", S, None),  # order lists: unused
    PYH + "http_futures_account_orders.json": ("orders", U, None),
    PYH + "http_futures_account_position_side_dual.json": ("position_mode", U, None),
    PYH + "http_futures_account_positions_hedge.json": ("positions", U, None),
    PYH + "http_futures_account_positions_one_way.json": ("positions", U, None),
    PYH + "http_futures_account_symbol_config.json": ("skip", U, "symbolConfig: leverage is set, not read"),
    PYH + "http_futures_account_trades.json": ("account_trades", U, None),
    PYH + "http_futures_market_agg_trades.json": ("trades", U, None),
    PYH + "http_futures_market_asset_index.json": ("skip", U, "multi-assets index: unused"),
    PYH + "http_futures_market_blvt_nav_kline.json": ("klines", U, None),
    PYH + "http_futures_market_book_ticker.json": ("skip", U, "REST book ticker: quotes come from the stream"),
    PYH + "http_futures_market_continuous_klines.json": ("klines", U, None),
    PYH + "http_futures_market_depth.json": ("depth", U, None),
    PYH + "http_futures_market_exchange_info.json": ("exchange_info", U, 2),
    PYH + "http_futures_market_funding_rate.json": ("skip", U, "funding history: unused"),
    PYH + "http_futures_market_global_long_short_account_ratio.json": ("skip", U, "statistics: unused"),
    PYH + "http_futures_market_historical_trades.json": ("trades", U, None),
    PYH + "http_futures_market_index_info.json": ("skip", U, "composite index: unused"),
    PYH + "http_futures_market_index_price_klines.json": ("klines", U, None),
    PYH + "http_futures_market_klines.json": ("klines", U, None),
    PYH + "http_futures_market_mark_price_klines.json": ("klines", U, None),
    PYH + "http_futures_market_open_interest.json": ("skip", U, "statistics: unused"),
    PYH + "http_futures_market_open_interest_historical.json": ("skip", U, "statistics: unused"),
    PYH + "http_futures_market_premium_index.json": ("skip", U, "mark price comes from the stream"),
    PYH + "http_futures_market_taker_long_short_ratio.json": ("skip", U, "statistics: unused"),
    PYH + "http_futures_market_ticker_24hr.json": ("skip", U, "24h ticker: unused"),
    PYH + "http_futures_market_ticker_price.json": ("skip", U, "price ticker: unused"),
    PYH + "http_futures_market_top_long_short_account_ratio.json": ("skip", U, "statistics: unused"),
    PYH + "http_futures_market_top_long_short_position_ratio.json": ("skip", U, "statistics: unused"),
    PYH + "http_futures_market_trades.json": ("trades", U, None),
    PYH + "http_futures_wallet_commission_rate_btcusdt.json": ("fees", U, None),
    PYH + "http_futures_wallet_commission_rate_btcusdt_quarterly.json": ("fees", U, None),
    PYH + "http_futures_wallet_commission_rate_ethusdt.json": ("fees", U, None),
    PYH + "http_spot_market_agg_trades.json": ("trades", S, None),
    PYH + "http_spot_market_avg_price.json": ("skip", S, "avgPrice: unused"),
    PYH + "http_spot_market_book_ticker.json": ("skip", S, "REST book ticker: quotes come from the stream"),
    PYH + "http_spot_market_depth.json": ("depth", S, None),
    PYH + "http_spot_market_exchange_info.json": ("exchange_info", S, 2),
    PYH + "http_spot_market_historical_trades.json": ("trades", S, None),
    PYH + "http_spot_market_klines.json": ("klines", S, None),
    PYH + "http_spot_market_ping.json": ("skip", S, "ping: empty object"),
    PYH + "http_spot_market_ticker_price.json": ("skip", S, "price ticker: unused"),
    PYH + "http_spot_market_time.json": ("server_time", S, None),
    PYH + "http_spot_market_trades.json": ("trades", S, None),
    PYH + "http_spot_wallet_account.json": ("balances", S, None),
    PYH + "http_wallet_trading_fee.json": ("fees", S, None),
    PYH + "http_wallet_trading_fees.json": ("fees", S, None),
    PYW + "ws_futures_algo_update_finished.json": ("user", U, None),
    PYW + "ws_futures_algo_update_finished_canceled.json": ("user", U, None),
    PYW + "ws_futures_algo_update_triggered.json": ("user", U, None),
    PYW + "ws_futures_algo_update_triggering.json": ("user", U, None),
    PYW + "ws_futures_book_ticker.json": ("market", U, QuoteTick),
    PYW + "ws_futures_depth_diff_update.json": ("market", U, DepthDiff),
    PYW + "ws_futures_depth_update.json": ("market", U, DepthDiff),
    PYW + "ws_futures_order_update_adl.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_adl_filled.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_liquidation.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_liquidation_zero_qty.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_new_limit_if_touched_price_match.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_new_price_match.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_new_reduce_only_qty.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_new_stop_limit_price_match.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_settlement.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_order_update_trade_reduce_only_qty.json": ("user", U, OrderUpdate),
    PYW + "ws_futures_ticker_24hr.json": ("market", U, None),
    PYW + "ws_futures_trade_lite.json": ("user", U, None),
    PYW + "ws_spot_agg_trade.json": ("market", S, TradeTick),
    PYW + "ws_spot_execution_report_binance_us.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_calculated.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_canceled.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_custom_client_id.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_empty_client_id.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_expired.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_new.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_new_limit_if_touched_price_match.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_new_price_match.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_new_stop_limit_price_match.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_pending_cancel.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_rejected.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_trade.json": ("user", S, OrderUpdate),
    # SYNTHETIC: a TRADE of 0.001 at price "0.00000000" cannot be booked; refused loudly.
    PYW + "ws_spot_execution_report_trade_l_zero.json": ("rejected", S, "non-positive price in field 'L'"),
    PYW + "ws_spot_execution_report_trade_l_zero_canceled.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_trade_l_zero_expired.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_trade_l_zero_new.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_trade_l_zero_partial.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_execution_report_trade_prevention.json": ("user", S, OrderUpdate),
    PYW + "ws_spot_ticker_24hr.json": ("market", S, None),
    PYW + "ws_spot_ticker_book.json": ("market", S, QuoteTick),
    PYW + "ws_spot_trade.json": ("market", S, TradeTick),
}


def _root() -> Path:
    return fixture_path("binance")


def test_every_fixture_file_is_classified() -> None:
    root = _root()
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk - set(TABLE) == set(), "unclassified fixture files"
    assert set(TABLE) - on_disk == set(), "table names files that are gone"


def _count_rows(body: list[Any]) -> int:
    return sum(len(r["orderReports"]) if isinstance(r, dict) and "orderReports" in r else 1 for r in body)


def _check(kind: str, market: Market, expected: Any, path: Path) -> None:
    parser = BinanceParser(market)
    ids = parser.ids
    iid = InstrumentId(parser.venue, "BTCUSDT")
    if kind == "http_capture":
        _check_http_capture(path, parser)
        return
    if kind == "ws_capture":
        _check_ws_capture(path, parser)
        return
    body = load_jsonc(path)
    if kind == "market":
        out = parser.market_event(body, TS)
        assert (out is None) if expected is None else isinstance(out, expected), out
    elif kind == "user":
        user = parser.user_event(body)
        assert (user is None) if expected is None else isinstance(user, expected), user
    elif kind == "rejected":
        with pytest.raises(BinanceParseError, match=expected):
            parser.user_event(body)
    elif kind == "order":
        assert parse_order(body, ids).instrument_id.venue == parser.venue
    elif kind == "orders":
        assert len(parse_orders(body, ids)) == _count_rows(body) > 0
    elif kind == "new_order":
        assert isinstance(parse_new_order_response(body, ids), NewOrderResponse)
    elif kind == "account_trades":
        assert len(parse_account_trades(body, ids)) == len(body) > 0
    elif kind == "balances":
        assert parse_balances(body)
    elif kind == "positions":
        assert len(parse_positions(body, ids)) == len(body) > 0
    elif kind == "account":
        assert parse_balances(body) and parse_positions(body, ids)
    elif kind == "depth":
        snap = parse_depth_snapshot(body, iid, TS)
        assert snap.bids and snap.asks
    elif kind == "klines":
        assert len(parse_rest_klines(body, iid, 60, TS)) == len(body) > 0
    elif kind == "trades":
        assert len(parse_rest_trades(body, iid, TS)) == len(body) > 0
    elif kind == "exchange_info":
        info = parse_exchange_info(body, market)
        assert len(info.instruments) == expected
        assert len(info.instruments) + len(info.skipped) == len(body["symbols"])
    elif kind == "fees":
        assert parse_trading_fees(body)
    elif kind == "server_time":
        assert parse_server_time(body) > 1_000_000_000_000
    elif kind == "position_mode":
        assert isinstance(parse_position_mode(body), bool)
    elif kind == "error":
        code, msg = parse_error_body(body)
        assert code is not None and code < 0 and msg
    else:
        raise AssertionError(f"unknown kind {kind}")


def _check_http_capture(path: Path, parser: BinanceParser) -> None:
    lines = [ln for ln in path.read_text().splitlines() if ln]
    assert lines
    for ln in lines:
        url, _, rest = ln.partition(" -> ")
        _, _, body = rest.partition(": ")
        symbol = url.split("symbol=", 1)[1].split("&", 1)[0]
        snap = parse_depth_snapshot(parser.decode(body), parser.ids(symbol), TS)
        assert snap.last_update_id > 0 and snap.bids and snap.asks


def _check_ws_capture(path: Path, parser: BinanceParser) -> None:
    lines = [ln for ln in path.read_text().splitlines() if ln]
    assert " <-> " in lines[0]  # header: url <-> connect time
    produced = 0
    for n, ln in enumerate(lines[1:], start=2):
        _, _, raw = ln.partition(": ")
        try:
            out = parser.market_frame(raw, TS)
        except BinanceParseError as exc:  # pragma: no cover - failure report
            raise AssertionError(f"{path.name}:{n}: {exc}") from exc
        produced += out is not None
    assert produced > len(lines) // 2


@pytest.mark.parametrize("rel", sorted(k for k, v in TABLE.items() if v[0] != "skip"))
def test_fixture_parses_as_classified(rel: str) -> None:
    kind, market, expected = TABLE[rel]
    if not FIXTURES.exists():
        pytest.skip("fixtures absent")
    _check(kind, market, expected, _root() / rel)


# ---------------------------------------------------------------- hftbacktest captures (2024)

HFT_FILES = [
    ("spot_btcusdt_20240808.gz", S, {"TradeTick": 9757, "DepthDiff": 3451, "QuoteTick": 28040, "DepthSnapshot": 1}),
    ("spot_btcusdt_20240809.gz", S, {"TradeTick": 10147, "DepthDiff": 3044, "QuoteTick": 45134}),
    ("spot_ethusdt_20240808.gz", S, {"TradeTick": 6106, "DepthDiff": 3434, "QuoteTick": 24077, "DepthSnapshot": 1}),
    ("usdm_btcusdt_20240808.gz", U, {"TradeTick": 21313, "DepthDiff": 6551, "QuoteTick": 66089, "DepthSnapshot": 1}),
]


@pytest.mark.parametrize(("name", "market", "counts"), HFT_FILES, ids=[f[0] for f in HFT_FILES])
def test_every_line_of_the_hftbacktest_capture_parses(name: str, market: Market, counts: dict[str, int]) -> None:
    from collections import Counter

    from tests.unit.venues.binance.captures import hft_lines

    parser = BinanceParser(market)
    seen: Counter[str] = Counter()
    for n, recv_ns, raw in hft_lines(name):
        try:
            d = parser.decode(raw)
            if "lastUpdateId" in d:  # the collector's REST snapshot, inline
                out: Any = parse_depth_snapshot(d, parser.ids(name.split("_")[1].upper()), recv_ns)
            else:
                out = parser.market_event(d, recv_ns)
        except BinanceParseError as exc:  # pragma: no cover - failure report
            raise AssertionError(f"{name}:{n}: {exc}") from exc
        seen[type(out).__name__] += 1
    assert dict(seen) == counts
