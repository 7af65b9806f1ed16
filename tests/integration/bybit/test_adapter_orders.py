"""BybitVenue (REST order entry) against the Bybit emulator: start, instruments, orders, unknown outcomes, fills."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import OrderRejected, RateLimited, UnknownOutcome, VenueBanned
from nautilus_hmm.domain.enums import OrderStatus, OrderType, Side
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.messages import InstrumentsUpdated
from tests.integration.bybit.adapter_harness import (
    LINEAR_BTC,
    SPOT_BTC,
    Harness,
    Recorder,
    limit_buy,
    make_emulator,
    make_venue,
    market,
    until,
)


async def _harness(clock: ManualClock, bus: Bus, category: str, **cfg: object) -> Harness:
    emu = make_emulator(clock)
    await emu.start()
    h = Harness(emu, make_venue(emu, category, bus, clock, **cfg), bus, clock)
    try:
        await h.start()
    except BaseException:
        await emu.stop()
        raise
    return h


@pytest.fixture
async def spot(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    h = await _harness(clock, bus, "spot")
    try:
        yield h
    finally:
        await h.stop()
        await h.emu.stop()


@pytest.fixture
async def linear(clock: ManualClock, bus: Bus) -> AsyncIterator[Harness]:
    h = await _harness(clock, bus, "linear", leverage=3)
    try:
        yield h
    finally:
        await h.stop()
        await h.emu.stop()


# ------------------------------------------------------------ start and instruments


async def test_instruments_info_becomes_the_configured_instruments(spot: Harness, linear: Harness) -> None:
    s = spot.venue.instruments()[SPOT_BTC]
    assert (s.tick_size, s.step_size, s.min_notional) == (Decimal("0.01"), Decimal("0.000001"), Decimal(5))
    assert s.base_asset == "BTC" and s.quote_asset == "USDT" and s.tradable
    f = linear.venue.instruments()[LINEAR_BTC]
    assert (f.tick_size, f.step_size, f.min_qty) == (Decimal("0.1"), Decimal("0.001"), Decimal("0.001"))
    assert list(linear.venue.instruments()) == [LINEAR_BTC]  # only the configured symbols


async def test_linear_start_sets_one_way_mode_and_the_configured_leverage(linear: Harness) -> None:
    requests = linear.emu.state()["requests"]
    assert requests["POST /v5/position/switch-mode"] == 1 and requests["POST /v5/position/set-leverage"] == 1
    assert str(linear.emu.state()["leverage"]["BTCUSDT"]) in ("3", "3.00", "3.0")


async def test_a_restart_tolerates_settings_that_are_already_in_place(linear: Harness, bus: Bus,
                                                                       clock: ManualClock) -> None:
    again = make_venue(linear.emu, "linear", bus, clock, leverage=3)
    await again.start()  # "not modified" answers (110025 / 110043) are not failures
    await again.stop()


async def test_a_symbol_the_venue_does_not_list_fails_start_naming_the_config_field(
        clock: ManualClock, bus: Bus) -> None:
    emu = make_emulator(clock)
    await emu.start()
    try:
        venue = make_venue(emu, "spot", bus, clock, symbols=("BTCUSDT", "NOPEUSDT"))
        with pytest.raises(ValueError, match=r"venues\.bybit_spot\.symbols: .*NOPEUSDT"):
            await venue.start()
    finally:
        await emu.stop()


async def test_an_instrument_that_leaves_trading_is_published_and_gets_no_more_orders(spot: Harness) -> None:
    rec = Recorder(spot.bus, InstrumentsUpdated)
    spot.emu.exchange.set_status("spot", "BTCUSDT", "PreLaunch")
    changed = await spot.venue.refresh_instruments()
    assert [i.id for i in changed] == [SPOT_BTC] and not changed[0].tradable
    assert rec.of(InstrumentsUpdated, venue="bybit_spot")[0].instruments == changed
    with pytest.raises(OrderRejected, match="not in Trading status"):
        await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-halted-1"))
    assert spot.creates_sent("t-halted-1") == 0
    assert "bybit_spot:BTCUSDT" in spot.venue.health().info["not_trading"]  # type: ignore[operator]
    spot.emu.exchange.set_status("spot", "BTCUSDT", "Trading")
    assert [i.tradable for i in await spot.venue.refresh_instruments()] == [True]
    assert (await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-halted-2"))).status is OrderStatus.ACCEPTED


# ------------------------------------------------------------ orders


async def test_limit_order_is_placed_with_the_client_id_queried_listed_and_cancelled(spot: Harness) -> None:
    ack = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-limit-1"))
    assert ack.status is OrderStatus.ACCEPTED and ack.client_order_id == "t-limit-1" and ack.venue_order_id
    assert spot.orders_at_venue() == ["t-limit-1"]
    queried = await spot.venue.query_order(SPOT_BTC, "t-limit-1")
    assert queried is not None and queried.venue_order_id == ack.venue_order_id
    assert queried.price == Decimal("50000") and queried.quantity == Decimal("0.010")
    assert [o.client_order_id for o in await spot.venue.open_orders()] == ["t-limit-1"]
    canceled = await spot.venue.cancel_order(SPOT_BTC, "t-limit-1")
    assert canceled.client_order_id == "t-limit-1" and canceled.status is OrderStatus.CANCELED
    assert await spot.venue.open_orders(SPOT_BTC) == []


async def test_cancel_of_an_unknown_order_is_a_final_rejection(spot: Harness) -> None:
    with pytest.raises(OrderRejected):
        await spot.venue.cancel_order(SPOT_BTC, "never-sent")


async def test_query_of_an_order_the_venue_never_saw_is_none(spot: Harness, linear: Harness) -> None:
    assert await spot.venue.query_order(SPOT_BTC, "never-sent") is None
    assert await linear.venue.query_order(LINEAR_BTC, "never-sent") is None


async def test_a_closed_order_is_found_by_query(spot: Harness) -> None:
    await spot.venue.submit_order(market(SPOT_BTC, "t-closed-1"))
    vo = await spot.venue.query_order(SPOT_BTC, "t-closed-1")
    assert vo is not None and vo.status is OrderStatus.FILLED


async def test_spot_market_buy_is_sized_in_the_base_coin(spot: Harness) -> None:
    await spot.venue.submit_order(market(SPOT_BTC, "t-mkt-1", qty="0.010"))
    [order] = spot.emu.state()["orders"]
    assert (order["order_link_id"], order["status"]) == ("t-mkt-1", "Filled")
    assert Decimal(order["filled_qty"]) == Decimal("0.010")  # 0.01 BTC, not 0.01 USDT worth


async def test_post_only_limit_is_sent_as_post_only(spot: Harness) -> None:
    req = OrderRequest("t-maker-1", SPOT_BTC, Side.BUY, OrderType.LIMIT_MAKER, Decimal("0.010"), Decimal("50000"))
    assert spot.venue.order_params(req)["timeInForce"] == "PostOnly"
    await spot.venue.submit_order(req)
    vo = await spot.venue.query_order(SPOT_BTC, "t-maker-1")
    assert vo is not None and vo.status is OrderStatus.ACCEPTED


async def test_linear_orders_are_one_way_and_reduce_only_is_sent(linear: Harness) -> None:
    buy = await linear.venue.submit_order(market(LINEAR_BTC, "t-lin-1", qty="0.010"))
    assert buy.status is OrderStatus.ACCEPTED
    assert await linear.venue.positions() == {LINEAR_BTC: Decimal("0.010")}
    [pos] = await linear.venue.position_details()
    assert pos.position_idx == 0 and pos.avg_price > 0
    reduce = OrderRequest("t-lin-2", LINEAR_BTC, Side.SELL, OrderType.MARKET, Decimal("0.020"), reduce_only=True)
    assert linear.venue.order_params(reduce)["reduceOnly"] is True
    await linear.venue.submit_order(reduce)
    assert await linear.venue.positions() == {}  # reduce-only: closed, never flipped short


async def test_cancel_all_cancels_every_open_order_and_reports_each(linear: Harness) -> None:
    for i in range(3):
        await linear.venue.submit_order(limit_buy(LINEAR_BTC, f"t-ca-{i}", price=f"{50000 + i}.0"))
    out = await linear.venue.cancel_all()
    assert sorted(o.client_order_id for o in out) == ["t-ca-0", "t-ca-1", "t-ca-2"]
    assert {o.status for o in out} == {OrderStatus.CANCELED}
    assert await linear.venue.open_orders() == []


async def test_an_order_the_venue_refuses_is_rejected_with_its_ret_code(spot: Harness) -> None:
    with pytest.raises(OrderRejected) as info:
        await spot.venue.submit_order(market(SPOT_BTC, "t-big-1", qty="80"))  # far more than the balance
    assert info.value.code is not None and info.value.code.isdigit()


# ------------------------------------------------------------ unknown outcomes: query, never resend


async def test_a_withheld_answer_is_an_unknown_outcome_and_the_order_is_found_by_query(
        spot: Harness, clock: ManualClock) -> None:
    await spot.emu.set_faults({"withhold_order_responses": 1})
    task = asyncio.ensure_future(spot.venue.submit_order(limit_buy(SPOT_BTC, "t-wh-1")))
    await until(lambda: spot.creates_sent("t-wh-1") == 1, what="create reached the venue")
    await clock.advance_settle(5.0)
    with pytest.raises(UnknownOutcome):
        await asyncio.wait_for(task, 5)
    vo = await spot.venue.query_order(SPOT_BTC, "t-wh-1")
    assert vo is not None and vo.status is OrderStatus.ACCEPTED
    assert spot.creates_sent("t-wh-1") == 1  # never resent


async def test_a_dropped_connection_after_execution_is_an_unknown_outcome(linear: Harness) -> None:
    await linear.emu.set_faults({"drop_order_responses": 1})
    with pytest.raises(UnknownOutcome):
        await linear.venue.submit_order(market(LINEAR_BTC, "t-drop-1"))
    vo = await linear.venue.query_order(LINEAR_BTC, "t-drop-1")
    assert vo is not None and vo.status is OrderStatus.FILLED and linear.creates_sent("t-drop-1") == 1


async def test_a_5xx_after_execution_is_an_unknown_outcome_not_a_rejection(spot: Harness) -> None:
    await spot.emu.set_faults({"errors": [{"path": "/v5/order/create", "ret_code": 10016, "http_status": 502,
                                           "execute": True, "count": 1}]})
    with pytest.raises(UnknownOutcome):
        await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-5xx-1"))
    assert (await spot.venue.query_order(SPOT_BTC, "t-5xx-1")) is not None


async def test_duplicate_order_link_id_returns_the_existing_order_without_a_second_one(spot: Harness) -> None:
    first = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-dup-1"))
    again = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-dup-1"))
    assert again.venue_order_id == first.venue_order_id and again.status is OrderStatus.ACCEPTED
    assert spot.orders_at_venue() == ["t-dup-1"] and spot.venue.duplicate_link_ids == 1


# ------------------------------------------------------------ limits and errors


async def test_rate_limit_10006_is_rate_limited_and_not_a_new_order(spot: Harness) -> None:
    await spot.emu.set_faults({"rate_limit": {"path": "/v5/order/create", "count": 1, "reset_ms": 5000}})
    with pytest.raises(RateLimited) as info:
        await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-rl-1"))
    assert info.value.code == "10006" and spot.orders_at_venue() == []
    assert spot.venue.metrics_snapshot().error_answers == {"10006": 1}  # venue_error_answers_total{code}


async def test_a_skewed_server_clock_is_resynced_and_the_order_retried_once(spot: Harness) -> None:
    await spot.emu.set_faults({"time_skew_ms": 30_000})
    ack = await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-skew-1"))
    assert ack.status is OrderStatus.ACCEPTED and spot.orders_at_venue() == ["t-skew-1"]
    assert 29_000 <= spot.venue.rest.time_offset_ms <= 31_000


async def test_an_ip_ban_halts_the_venue_for_ten_minutes(spot: Harness, clock: ManualClock) -> None:
    await spot.emu.set_faults({"ip_ban_s": 600})
    with pytest.raises(VenueBanned):
        await spot.venue.balances()
    with pytest.raises(VenueBanned):
        await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-ban-1"))
    assert spot.creates_sent("t-ban-1") == 0
    assert "IP rate limit" in spot.venue.health().detail
    await clock.advance_settle(601.5)
    assert "USDT" in await spot.venue.balances()


# ------------------------------------------------------------ fills, balances, history


async def test_fills_since_reads_trade_executions_with_client_ids_oldest_first(linear: Harness) -> None:
    t0 = linear.clock.time_ns()
    await linear.venue.submit_order(market(LINEAR_BTC, "t-f-1"))
    linear.clock.advance(1.0)
    await linear.venue.submit_order(market(LINEAR_BTC, "t-f-2", side=Side.SELL))
    await linear.emu.settle_funding("BTCUSDT")  # a Funding execution: not a fill
    fills = await linear.venue.fills_since(LINEAR_BTC, t0)
    assert [f.client_order_id for f in fills] == ["t-f-1", "t-f-2"]
    assert len({f.trade_id for f in fills}) == 2 and all(f.qty == Decimal("0.010") for f in fills)
    execs = linear.emu.state()["executions"]
    assert {e["exec_type"] for e in execs} >= {"Trade"}


async def test_fills_since_walks_seven_day_windows(linear: Harness, clock: ManualClock) -> None:
    t0 = clock.time_ns()
    await linear.venue.submit_order(market(LINEAR_BTC, "t-w-1"))
    clock.advance(20 * 24 * 3600.0)
    await linear.venue.submit_order(market(LINEAR_BTC, "t-w-2", side=Side.SELL))
    before = linear.emu.state()["requests"].get("GET /v5/execution/list", 0)
    fills = await linear.venue.fills_since(LINEAR_BTC, t0 - 10**9)
    assert [f.client_order_id for f in fills] == ["t-w-1", "t-w-2"]
    assert linear.emu.state()["requests"]["GET /v5/execution/list"] - before == 3  # 20 days: 3 windows


async def test_balances_are_read_from_the_unified_wallet(spot: Harness) -> None:
    bal = await spot.venue.balances()
    assert bal["USDT"].total == Decimal(100_000) and bal["BTC"].total == Decimal(1)
    await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-bal-1", price="50000.0", qty="0.100"))
    after = await spot.venue.balances()
    # The order's value (and, in the emulator, its fee) is held: locked, still in the total.
    assert Decimal("5000") <= after["USDT"].locked <= Decimal("5005") and after["USDT"].total == Decimal(100_000)


async def test_history_bars_are_closed_klines_oldest_first(linear: Harness) -> None:
    bars = await linear.venue.history_bars(LINEAR_BTC, 60, 1500)
    assert len(bars.ts_open_ns) == 1500
    assert (bars.ts_open_ns[1:] - bars.ts_open_ns[:-1] == 60 * 10**9).all()
    now_ms = linear.venue.rest.server_time_ms()
    assert int(bars.ts_open_ns[-1]) // 1_000_000 + 60_000 <= now_ms


async def test_history_bars_of_an_interval_bybit_lacks_is_a_clear_error(linear: Harness) -> None:
    with pytest.raises(ValueError, match="no 10 s klines"):
        await linear.venue.history_bars(LINEAR_BTC, 10, 100)


async def test_start_waits_out_a_rate_limit_instead_of_failing(clock: ManualClock, bus: Bus) -> None:
    emu = make_emulator(clock)
    await emu.start()
    try:
        await emu.set_faults({"rate_limit": {"path": "/v5/position/set-leverage", "count": 1, "reset_ms": 1500}})
        venue = make_venue(emu, "linear", bus, clock, leverage=2)
        task = asyncio.ensure_future(venue.start())
        await until(lambda: emu.state()["requests"].get("POST /v5/position/set-leverage", 0) == 1,
                    what="first set-leverage refused with 10006")
        await clock.settle(20)
        assert not task.done()  # waiting on the clock, not failing
        await clock.advance_settle(1.6)
        await asyncio.wait_for(task, 5)
        assert emu.state()["requests"]["POST /v5/position/set-leverage"] == 2
        assert LINEAR_BTC in venue.instruments()
        await venue.stop()
    finally:
        await emu.stop()


async def test_reconfigure_applies_the_live_fields_to_rest(spot: Harness) -> None:
    from dataclasses import replace

    spot.venue.reconfigure(replace(spot.venue.config, recv_window_ms=9000, request_timeout_s=2.5,
                                   symbols=("ETHUSDT",)))
    assert (spot.venue.rest.recv_window_ms, spot.venue.rest.request_timeout_s) == (9000, 2.5)
    assert spot.venue.config.symbols == ("BTCUSDT",)  # restart-only fields stay
    await spot.venue.submit_order(limit_buy(SPOT_BTC, "t-rc-1"))
    assert spot.orders_at_venue() == ["t-rc-1"]
