"""Every Bybit payload in the shared fixtures parses, or is deliberately classified.

The table names what each file is and what it must parse to. A new fixture file fails
`test_every_fixture_file_is_classified` until it is added here. The nautilus_trader
files are shape-accurate but many values are hand-made (fixtures README); their
`ws_public_trade.json` uses a topic that v5 does not have and must be refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import Balance, VenueFill, VenueOrder
from nautilus_hmm.messages import TradeTick
from nautilus_hmm.venues.bybit.errors import BybitApiError, check_response
from nautilus_hmm.venues.bybit.parse import (
    AuthResult,
    BookUpdate,
    BybitParseError,
    BybitParser,
    BybitPosition,
    Category,
    Executions,
    OrderAck,
    OrderUpdates,
    Pong,
    PositionUpdates,
    PublicTrades,
    SubscribeResult,
    Ticker,
    TradeResponse,
    WalletUpdate,
    parse_executions,
    parse_fee_rates,
    parse_instruments,
    parse_klines,
    parse_order_ack,
    parse_orderbook,
    parse_orders,
    parse_positions,
    parse_recent_trades,
    parse_server_time,
    parse_tickers,
    parse_wallet_balance,
    position_from_item,
)
from tests.conftest import FIXTURES, fixture_path
from tests.unit.venues.bybit.docs import de_elide, load_documents, load_labelled

L, S = Category.LINEAR, Category.SPOT
TS = 1_700_000_000_000_000_000
DOC = "docs_v5/"
ERR = "errors_observed/"
NT = "nautilus_trader/crate_test_data/"

# path → (kind, category, expectation): for "rest_*" the number of items, for "ws" the
# event type (None = known but unused / nothing of this category), for "skip" the reason.
TABLE: dict[str, tuple[str, Category, Any]] = {
    DOC + "error_codes.mdx": ("skip", L, "retCode tables: every code is classified in test_errors"),
    DOC + "rest_GET_v5_account_wallet-balance.json": ("rest_wallet", S, 1),
    DOC + "rest_GET_v5_execution_list.json": ("rest_executions", L, 1),
    DOC + "rest_GET_v5_market_instruments-info_linear.jsonc": ("rest_instruments", L, 1),  # per document
    DOC + "rest_GET_v5_market_instruments-info_spot.json": ("rest_instruments", S, 1),
    DOC + "rest_GET_v5_market_kline.json": ("rest_klines", L, 3),
    DOC + "rest_GET_v5_market_orderbook.json": ("rest_orderbook", S, 1),
    DOC + "rest_GET_v5_market_recent-trade.json": ("rest_recent_trades", S, 1),
    DOC + "rest_GET_v5_market_tickers_spot.json": ("rest_tickers", S, 1),
    DOC + "rest_GET_v5_market_time.json": ("rest_time", S, 1),
    DOC + "rest_GET_v5_order_realtime.json": ("rest_orders", L, 1),
    DOC + "rest_GET_v5_position_list.json": ("rest_positions", L, 1),
    DOC + "rest_POST_v5_order_cancel.json": ("rest_ack", L, 1),
    DOC + "rest_POST_v5_order_create.json": ("rest_ack", S, 1),
    DOC + "ws_auth_request.jsonc": ("skip", L, "a request we send: its shape is checked in test_auth"),
    DOC + "ws_auth_success_response.json": ("ws", L, AuthResult),
    DOC + "ws_pong_linear.json": ("ws", L, Pong),
    DOC + "ws_pong_private.json": ("ws", L, Pong),
    DOC + "ws_private_execution.json": ("ws", L, Executions),
    DOC + "ws_private_order.json": ("ws", L, None),  # category option: not this node's
    DOC + "ws_private_position.json": ("ws", L, PositionUpdates),
    DOC + "ws_private_wallet.json": ("ws", S, WalletUpdate),
    DOC + "ws_public_kline.json": ("ws", L, None),  # confirm false: the bar is still open
    DOC + "ws_public_orderbook_delta.json": ("ws", L, BookUpdate),
    DOC + "ws_public_orderbook_snapshot.elided.txt": ("elided", L, BookUpdate),
    DOC + "ws_public_ticker_linear.labelled.txt": ("labelled", L, Ticker),
    DOC + "ws_public_ticker_spot.json": ("ws", S, Ticker),
    DOC + "ws_public_trade.json": ("ws", S, PublicTrades),
    ERR + "10001_request_parameter_error.reconstructed.json": ("error", L, 10001),
    ERR + "10006_rate_limit.reconstructed.json": ("error", L, 10006),
    ERR + "110007_insufficient_balance.verbatim.json": ("error", L, 110007),
    NT + "http_get_account_info.json": ("skip", L, "account info (margin mode): not used"),
    NT + "http_get_executions.json": ("rest_executions", L, 2),
    NT + "http_get_fee_rate.json": ("rest_fees", L, 3),
    NT + "http_get_funding_history.json": ("skip", L, "funding history: not used"),
    NT + "http_get_instruments_inverse.json": ("rest_instruments", L, 0),  # inverse: skipped with a reason
    NT + "http_get_instruments_inverse_symbol_type.json": ("rest_instruments", L, 0),
    NT + "http_get_instruments_linear.json": ("rest_instruments", L, 2),
    NT + "http_get_instruments_linear_symbol_type.json": ("rest_instruments", L, 1),
    NT + "http_get_instruments_option.json": ("rest_instruments", L, 0),  # option: skipped with a reason
    NT + "http_get_instruments_option_symbol_id.json": ("rest_instruments", L, 0),
    NT + "http_get_instruments_spot.json": ("rest_instruments", S, 2),
    NT + "http_get_instruments_spot_xstocks.json": ("rest_instruments", S, 1),
    NT + "http_get_klines_linear.json": ("rest_klines", L, 1),
    NT + "http_get_order_partially_filled_rejected.json": ("rest_orders", L, 1),
    NT + "http_get_orderbook.json": ("rest_orderbook", L, 1),
    NT + "http_get_orders_history.json": ("rest_orders", L, 1),
    NT + "http_get_orders_history_with_duplicate.json": ("rest_orders", L, 2),
    NT + "http_get_orders_realtime.json": ("rest_orders", L, 2),
    NT + "http_get_orders_realtime_tp_sl.json": ("rest_orders", L, 2),
    NT + "http_get_positions.json": ("rest_positions", L, 3),
    NT + "http_get_positions_with_open_time.json": ("rest_positions", L, 1),
    NT + "http_get_trades_recent.json": ("rest_recent_trades", L, 1),
    NT + "http_get_user_escrow_sub_members.json": ("skip", L, "sub-accounts: not used"),
    NT + "http_get_user_query_api.json": ("skip", L, "API key management: not used"),
    NT + "http_get_user_sub_apikeys.json": ("skip", L, "API key management: not used"),
    NT + "http_get_user_sub_members.json": ("skip", L, "sub-accounts: not used"),
    NT + "http_get_user_sub_members_paged.json": ("skip", L, "sub-accounts: not used"),
    NT + "http_get_wallet_balance.json": ("rest_wallet", L, 3),
    NT + "http_get_wallet_balance_spot_short.json": ("rest_wallet", S, 2),
    NT + "http_get_wallet_balance_with_spot_borrow.json": ("rest_wallet", S, 1),
    NT + "http_post_user_update_master_api.json": ("skip", L, "API key management: not used"),
    NT + "http_post_user_update_sub_api.json": ("skip", L, "API key management: not used"),
    NT + "ws_account_execution.json": ("ws", L, Executions),
    NT + "ws_account_execution_adl.json": ("ws", L, Executions),  # no fill; the ADL is listed as ignored
    NT + "ws_account_execution_fast.json": ("ws", L, None),  # execution.fast: no fees, not booked
    NT + "ws_account_execution_fast_envelope_id.json": ("ws", L, None),
    NT + "ws_account_order.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_buy_stop_market.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_filled.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_limit_if_touched.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_market_if_touched.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_partially_filled_rejected.json": ("ws", S, OrderUpdates),
    NT + "ws_account_order_sell_market_if_touched.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_stop_limit.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_stop_loss.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_stop_market.json": ("ws", L, OrderUpdates),
    NT + "ws_account_order_take_profit.json": ("ws", L, OrderUpdates),
    NT + "ws_account_position.json": ("ws", L, PositionUpdates),
    NT + "ws_account_position_short.json": ("ws", L, PositionUpdates),
    NT + "ws_account_position_with_open_time.json": ("position_item", L, BybitPosition),  # one bare item
    NT + "ws_account_wallet.json": ("ws", L, WalletUpdate),
    NT + "ws_account_wallet_locked_exceeds_total.json": ("ws", L, WalletUpdate),
    NT + "ws_account_wallet_small_order.json": ("ws", L, WalletUpdate),
    NT + "ws_auth_failure.json": ("ws", L, AuthResult),
    NT + "ws_auth_success.json": ("ws", L, AuthResult),
    NT + "ws_kline.json": ("ws", L, None),  # confirm false
    NT + "ws_order_response.json": ("ws", L, TradeResponse),
    NT + "ws_orderbook_delta.json": ("ws", L, BookUpdate),
    NT + "ws_orderbook_snapshot.json": ("ws", L, BookUpdate),
    NT + "ws_public_trade.json": ("refused", L, "trade.linear.BTCUSDT"),  # not a v5 topic
    NT + "ws_subscription_ack.json": ("ws", L, SubscribeResult),
    NT + "ws_subscription_failure.json": ("ws", L, SubscribeResult),
    NT + "ws_ticker_linear.json": ("ws", L, Ticker),
    NT + "ws_ticker_option.json": ("ws", L, Ticker),  # option field names: no bid1/ask1, so no quote
}


def _venue(cat: Category) -> str:
    return cat.default_venue


def _rest(kind: str, body: Any, cat: Category) -> list[Any]:
    venue = _venue(cat)
    if kind == "rest_wallet":
        out = parse_wallet_balance(body)
        assert all(isinstance(b, Balance) and b.total == b.free + b.locked for b in out.values())
        return list(out.values())
    if kind == "rest_executions":
        fills, _cursor = parse_executions(body, venue)
        assert all(isinstance(f, VenueFill) and f.qty > 0 and f.price > 0 and f.trade_id for f in fills)
        return fills
    if kind == "rest_instruments":
        skipped: list[tuple[str, str]] = []
        insts, _cursor = parse_instruments(body, venue, cat, skipped=skipped)
        n_items = len(body["result"]["list"])
        assert len(insts) + len(skipped) == n_items  # nothing dropped silently
        assert all(reason for _, reason in skipped)
        return list(insts.values())
    if kind == "rest_klines":
        bars = parse_klines(body, InstrumentId(venue, "BTCUSDT"), 3600, TS)
        assert [b.ts_event_ns for b in bars] == sorted(b.ts_event_ns for b in bars)
        return bars
    if kind == "rest_orderbook":
        return [parse_orderbook(body, venue, TS)]
    if kind == "rest_recent_trades":
        return parse_recent_trades(body, venue, TS)
    if kind == "rest_tickers":
        return parse_tickers(body, venue, TS)
    if kind == "rest_time":
        return [parse_server_time(body)]
    if kind == "rest_orders":
        orders, _cursor = parse_orders(body, venue)
        assert all(isinstance(o, VenueOrder) for o in orders)
        return orders
    if kind == "rest_positions":
        positions, _cursor = parse_positions(body, venue)
        return positions
    if kind == "rest_ack":
        ack = parse_order_ack(body)
        assert isinstance(ack, OrderAck) and ack.order_id and ack.order_link_id
        return [ack]
    if kind == "rest_fees":
        return list(parse_fee_rates(body).items())
    raise AssertionError(kind)


@pytest.mark.parametrize("rel", sorted(TABLE))
def test_fixture_parses(rel: str) -> None:
    path = fixture_path("bybit", *rel.split("/"))
    kind, cat, expect = TABLE[rel]
    if kind == "skip":
        assert expect
        return
    if kind.startswith("rest_"):
        for body in load_documents(path):
            assert body["retCode"] == 0
            assert len(_rest(kind, body, cat)) == expect
        return
    if kind == "error":
        with pytest.raises(BybitApiError) as info:
            check_response(path.read_bytes(), 200, venue=_venue(cat), now_ns=TS)
        assert info.value.ret_code == expect
        return
    parser = BybitParser(cat)
    if kind == "ws":
        ev = parser.parse(path.read_bytes(), TS)
        assert (ev is None) if expect is None else isinstance(ev, expect), ev
        return
    if kind == "refused":
        with pytest.raises(BybitParseError) as info:
            parser.parse(path.read_bytes(), TS)
        assert expect in str(info.value)
        return
    if kind == "elided":
        raw = path.read_text()
        with pytest.raises(BybitParseError, match="not JSON"):
            parser.parse(raw, TS)  # the docs' "..." is not JSON: refused, not guessed at
        ev = parser.parse(de_elide(raw), TS)
        assert isinstance(ev, expect) and ev.is_snapshot
        return
    if kind == "labelled":
        docs = load_labelled(path)
        assert [label for label, _ in docs] == ["LinearPerpetual", "LinearFutures"]
        for _label, doc in docs:
            assert isinstance(parser.parse(orjson.dumps(doc), TS), expect)
        return
    if kind == "position_item":
        assert isinstance(position_from_item(orjson.loads(path.read_bytes()), parser.ids), expect)
        return
    raise AssertionError(kind)


def test_every_fixture_file_is_classified() -> None:
    root = fixture_path("bybit")
    found = {p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.is_file()}
    assert found, f"no Bybit fixtures under {FIXTURES}"
    assert found - set(TABLE) == set(), "new fixture files: classify them in TABLE"
    assert set(TABLE) - found == set(), "TABLE names files that are gone"


def test_shape_only_trade_topic_is_refused_but_its_frame_parses_under_the_real_topic() -> None:
    raw = orjson.loads(fixture_path("bybit", NT + "ws_public_trade.json").read_bytes())
    raw["topic"] = "publicTrade.BTCUSDT"
    ev = BybitParser(L).parse(orjson.dumps(raw), TS)
    assert isinstance(ev, PublicTrades) and isinstance(ev.trades[0], TradeTick)
