"""BinanceVenue (USD-M) against the emulator: account settings, orders, positions, streams."""

from __future__ import annotations

from decimal import Decimal

from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import FillReport, MarkPrice, OrderStatusReport
from tests.integration.binance.conftest import Harness, Recorder, until

BTC = InstrumentId("binance_usdm", "BTCUSDT")


async def test_start_applies_leverage_and_margin_type_from_the_config(usdm: Harness) -> None:
    fa = usdm.emu.exchange.futures
    assert fa is not None
    assert fa.leverage["BTCUSDT"] == 3 and fa.margin_type["BTCUSDT"] == "ISOLATED" and fa.dual_side is False


async def test_market_order_fills_moves_the_position_and_reports_on_the_user_stream(usdm: Harness) -> None:
    rec = Recorder(usdm.bus, FillReport, OrderStatusReport)
    ack = await usdm.venue.submit_order(OrderRequest("u-mkt-1", BTC, Side.BUY, OrderType.MARKET, Decimal("0.010")))
    assert ack.status is OrderStatus.FILLED
    await until(lambda: rec.of(FillReport), what="fill from ORDER_TRADE_UPDATE")
    assert rec.of(FillReport)[0].fill.client_order_id == "u-mkt-1"
    assert await usdm.venue.positions() == {BTC: Decimal("0.010")}


async def test_reduce_only_order_closes_the_position(usdm: Harness) -> None:
    await usdm.venue.submit_order(OrderRequest("u-open", BTC, Side.BUY, OrderType.MARKET, Decimal("0.005")))
    close = await usdm.venue.submit_order(
        OrderRequest("u-close", BTC, Side.SELL, OrderType.MARKET, Decimal("0.005"), reduce_only=True))
    assert close.status is OrderStatus.FILLED
    assert await usdm.venue.positions() == {BTC: Decimal(0)}


async def test_post_only_limit_is_sent_as_gtx_and_rests(usdm: Harness) -> None:
    req = OrderRequest("u-gtx", BTC, Side.BUY, OrderType.LIMIT_MAKER, Decimal("0.002"), Decimal("50000.0"))
    assert usdm.venue.order_params(req)["timeInForce"] == "GTX"
    ack = await usdm.venue.submit_order(req)
    assert ack.order_type is OrderType.LIMIT_MAKER and ack.status is OrderStatus.ACCEPTED
    canceled = await usdm.venue.cancel_all(BTC)
    assert [o.client_order_id for o in canceled] == ["u-gtx"]


async def test_mark_price_stream_publishes_mark_prices(usdm: Harness) -> None:
    rec = Recorder(usdm.bus, MarkPrice)
    await usdm.emu.step()
    await until(lambda: rec.of(MarkPrice), what="mark price")
    assert rec.of(MarkPrice)[0].instrument_id == BTC


async def test_listen_key_expired_with_a_string_event_time_recreates_the_key(usdm: Harness) -> None:
    user = usdm.venue.user
    assert user is not None
    await usdm.emu.expire_listen_key(user.listen_key)
    await until(lambda: user.keys_created == 2 and user.ws.connected and user.ws.stats.connects == 2,
                what="new key and stream")
    assert user.ws.stats.parse_errors == 0


async def test_balances_report_the_wallet(usdm: Harness) -> None:
    balances = await usdm.venue.balances()
    assert balances["USDT"].free == Decimal(100_000)
