"""The IBKR emulator against the real client: ib_async 2.1.0 connects (connectAsync), qualifies
contracts, places and cancels orders, sees fills with their commission reports, reads positions,
executions, the account, market data and bars. The emulator's clock is a ManualClock; waits are
bounded waits on conditions."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

import pytest

from nautilus_hmm.domain.sessions import TradingSessions
from tests.integration.ibkr.emulator_harness import (
    NS,
    TUESDAY_08_ET_NS,
    client,
    running,
    step,
    until,
)

ib_async = pytest.importorskip("ib_async")
from ib_async import (  # noqa: E402
    Contract,
    ExecutionFilter,
    Forex,
    Future,
    LimitOrder,
    MarketOrder,
    Stock,
)

AAPL = 265598


def errors_of(ib) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
    """Every (reqId, code, text) errorEvent of `ib`, appended as they come."""
    seen: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, text, contract: seen.append((req_id, code, text))
    return seen


def subscribed(emu, kind: str) -> int:  # type: ignore[no-untyped-def]
    """How many subscriptions of `kind` (mkt, rt_bars, tbt, hist) the emulator holds."""
    return sum(len(getattr(s, kind)) for s in emu.sessions.values())


# --- the decisive flow, at several negotiated server versions --------------------------------


@pytest.mark.parametrize("client_max", [178, 176, 170, 165, 163, 157])
async def test_ib_async_connects_qualifies_trades_and_reads_positions(client_max: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ib_async.client import Client

    monkeypatch.setattr(Client, "MaxClientVersion", client_max)
    async with running() as emu, client(emu) as ib:
        assert ib.isConnected()
        assert ib.client.serverVersion() == client_max
        assert ib.managedAccounts() == ["DU1234567"]

        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        assert aapl.conId == AAPL and aapl.primaryExchange == "NASDAQ"

        # a resting limit order: Submitted, orderRef kept, then cancelled (orderStatus + 202)
        errors = errors_of(ib)
        rest = ib.placeOrder(aapl, LimitOrder("BUY", 10, 100.00, orderRef="cid-rest-1"))
        await until(lambda: rest.orderStatus.status == "Submitted", what="resting order submitted")
        [open_trade] = await ib.reqOpenOrdersAsync()
        assert open_trade.order.orderRef == "cid-rest-1" and open_trade.order.permId > 0
        ib.cancelOrder(rest.order)
        await until(lambda: rest.orderStatus.status == "Cancelled", what="cancelled")
        await until(lambda: any(code == 202 for _, code, _ in errors), what="error 202")
        assert await ib.reqOpenOrdersAsync() == []

        # a marketable order: filled with its commission report
        fill_order = ib.placeOrder(aapl, MarketOrder("BUY", 100, orderRef="cid-mkt-1"))
        await until(lambda: fill_order.orderStatus.status == "Filled", what="filled")
        await until(lambda: fill_order.fills and fill_order.fills[0].commissionReport.commission > 0,
                    what="commission report")
        fill = fill_order.fills[0]
        assert fill.execution.orderRef == "cid-mkt-1" and fill.execution.side == "BOT"
        assert fill.execution.shares == 100 and fill.commissionReport.currency == "USD"
        assert fill.commissionReport.commission == pytest.approx(1.00)  # 0.005 x 100 = 0.50, minimum 1.00

        positions = await ib.reqPositionsAsync()
        [pos] = [p for p in positions if p.contract.conId == AAPL]
        assert pos.position == 100 and pos.account == "DU1234567"
        assert pos.avgCost == pytest.approx(fill.execution.price + 0.01)  # IB: commission inside avgCost

        fills = await ib.reqExecutionsAsync(ExecutionFilter(clientId=1))
        assert [f.execution.orderRef for f in fills] == ["cid-mkt-1"]
        assert emu.engine.positions[AAPL].qty == 100


async def test_connect_refused_for_a_client_id_in_use_and_others_served() -> None:
    async with running() as emu, client(emu, 1) as ib1:
        from ib_async import IB

        dup = IB()
        dup_errors = errors_of(dup)
        with pytest.raises((ConnectionError, TimeoutError, asyncio.TimeoutError)):
            await dup.connectAsync("127.0.0.1", emu.port, clientId=1, timeout=0.5)  # 326, then closed
        assert [code for _, code, _ in dup_errors] == [326]
        async with client(emu, 2) as ib2:
            assert ib2.isConnected() and ib1.isConnected()
            assert (await ib1.qualifyContractsAsync(Stock("MSFT", "SMART", "USD")))[0].conId == 272093


# --- contracts -------------------------------------------------------------------------------


async def test_future_details_carry_sessions_multiplier_and_sizes() -> None:
    async with running() as emu, client(emu) as ib:
        [d] = await ib.reqContractDetailsAsync(Future("ES", "202612", "CME"))
        assert d.contract.localSymbol == "ESZ6" and d.contract.multiplier == "50"
        assert d.contract.lastTradeDateOrContractMonth == "20261218"
        assert d.minTick == 0.25 and d.minSize == 1 and d.sizeIncrement == 1
        assert d.timeZoneId == "US/Central"
        sessions = TradingSessions.from_ib(d.tradingHours, d.timeZoneId)
        # Tuesday 10:00 ET = 09:00 CT: open; 16:30 CT (the daily break): closed
        assert sessions.is_open(emu.clock.time_ns())
        assert not sessions.is_open(emu.clock.time_ns() + int(7.5 * 3600) * NS)
        liquid = TradingSessions.from_ib(d.liquidHours, d.timeZoneId)
        assert liquid.is_open(emu.clock.time_ns())


async def test_stock_hours_distinguish_regular_from_trading_hours() -> None:
    async with running(TUESDAY_08_ET_NS) as emu, client(emu) as ib:
        [d] = await ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
        trading = TradingSessions.from_ib(d.tradingHours, d.timeZoneId)
        liquid = TradingSessions.from_ib(d.liquidHours, d.timeZoneId)
        now = emu.clock.time_ns()
        assert trading.is_open(now) and not liquid.is_open(now)
        assert liquid.next_open_ns(now) == now + 90 * 60 * NS  # 09:30 ET
        assert d.contract.multiplier == "" and d.suggestedSizeIncrement == 100


async def test_future_without_expiry_is_ambiguous_and_unknown_is_error_200() -> None:
    async with running() as emu, client(emu) as ib:
        errors = errors_of(ib)
        details = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
        assert sorted(d.contract.localSymbol for d in details) == ["ESH7", "ESM7", "ESZ6"]
        [ambiguous] = await ib.qualifyContractsAsync(Future("ES", exchange="CME"), returnAll=True)
        assert isinstance(ambiguous, list) and len(ambiguous) == 3
        assert await ib.qualifyContractsAsync(Stock("NOPE", "SMART", "USD")) == [None]
        assert any(code == 200 for _, code, _ in errors)


async def test_fx_pair_qualifies_on_idealpro() -> None:
    async with running() as emu, client(emu) as ib:
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        assert eur.conId == 12087792 and eur.localSymbol == "EUR.USD" and eur.exchange == "IDEALPRO"
        [d] = await ib.reqContractDetailsAsync(Contract(conId=15016059))
        assert d.contract.localSymbol == "USD.JPY" and d.contract.currency == "JPY" and d.minTick == 0.005


# --- orders ----------------------------------------------------------------------------------


async def test_large_market_order_fills_in_several_executions_on_market_steps() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 3000, orderRef="big"))
        await until(lambda: trade.fills, what="first fill")
        assert trade.orderStatus.status == "Submitted" and trade.orderStatus.remaining > 0
        for _ in range(10):
            if trade.orderStatus.status == "Filled":
                break
            await step(emu)
        await until(lambda: trade.orderStatus.status == "Filled", what="filled")
        assert len(trade.fills) >= 2
        assert sum(f.execution.shares for f in trade.fills) == 3000
        assert len({f.execution.execId for f in trade.fills}) == len(trade.fills)
        await until(lambda: all(f.commissionReport.execId for f in trade.fills), what="commissions")
        assert sum(f.commissionReport.commission for f in trade.fills) == pytest.approx(15.00)


async def test_order_id_not_above_the_last_is_refused_103() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        errors = errors_of(ib)
        first = ib.placeOrder(aapl, MarketOrder("BUY", 1))
        await until(lambda: first.orderStatus.status == "Filled")
        reused = MarketOrder("BUY", 1)
        reused.orderId = first.order.orderId  # a filled order's id, sent again
        ib.client.placeOrder(reused.orderId, aapl, reused)
        await until(lambda: any(code == 103 and rid == first.order.orderId for rid, code, _ in errors))
        assert emu.engine.positions[AAPL].qty == 1


async def test_limit_price_off_tick_is_110_and_the_order_is_not_live() -> None:
    async with running() as emu, client(emu) as ib:
        [es] = await ib.qualifyContractsAsync(Future("ES", "202612", "CME"))
        trade = ib.placeOrder(es, LimitOrder("BUY", 1, 5000.10))
        await until(lambda: trade.orderStatus.status == "Cancelled", what="refused")
        assert trade.log[-1].errorCode == 110
        assert emu.engine.open_orders() == []


async def test_order_before_regular_hours_waits_then_fills_at_the_open() -> None:
    async with running(TUESDAY_08_ET_NS) as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 5, orderRef="pre"))
        await until(lambda: trade.orderStatus.status == "PreSubmitted", what="held for the session")
        await step(emu, 60 * 60)  # 09:00: still closed
        assert not trade.fills
        await step(emu, 30 * 60 + 1)  # 09:30: regular hours
        await until(lambda: trade.orderStatus.status == "Filled", what="filled at the open")
        opened = datetime(2026, 12, 1, 14, 30).timestamp()
        assert trade.fills[0].execution.time.timestamp() >= opened


async def test_outside_rth_order_fills_in_pre_market() -> None:
    async with running(TUESDAY_08_ET_NS) as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        trade = ib.placeOrder(aapl, MarketOrder("SELL", 5, outsideRth=True))
        await until(lambda: trade.orderStatus.status == "Filled")
        assert emu.engine.positions[AAPL].qty == -5


async def test_futures_round_trip_realizes_pnl_with_the_multiplier() -> None:
    async with running() as emu, client(emu) as ib:
        [es] = await ib.qualifyContractsAsync(Future("ES", "202612", "CME"))
        buy = ib.placeOrder(es, MarketOrder("BUY", 2))
        await until(lambda: buy.orderStatus.status == "Filled")
        [pos] = await ib.reqPositionsAsync()
        entry = buy.fills[0].execution.price
        assert pos.avgCost == pytest.approx(entry * 50 + 2.25)  # per contract: price x 50 + commission
        await step(emu, 600)
        sell = ib.placeOrder(es, MarketOrder("SELL", 2))
        await until(lambda: sell.orderStatus.status == "Filled")
        await until(lambda: sell.fills[-1].commissionReport.execId)
        exit_ = sell.fills[0].execution.price
        realized = sell.fills[0].commissionReport.realizedPNL
        assert realized == pytest.approx((exit_ - entry) * 50 * 2 - 4.50 - 4.50)
        # an opening fill reports no realized PnL (IB's unset double, 0 in ib_async)
        assert buy.fills[0].commissionReport.realizedPNL == 0


async def test_fx_trade_moves_both_currencies() -> None:
    async with running() as emu, client(emu) as ib:
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        trade = ib.placeOrder(eur, MarketOrder("BUY", 20000))
        await until(lambda: trade.orderStatus.status == "Filled")
        price = trade.fills[0].execution.price
        assert emu.engine.cash["EUR"] == 20000
        assert float(emu.engine.cash["USD"]) == pytest.approx(1_000_000 - 20000 * price - 2.00)


async def test_account_summary_and_updates() -> None:
    async with running() as emu, client(emu) as ib:
        summary = {v.tag: v for v in await ib.accountSummaryAsync()}
        assert float(summary["NetLiquidation"].value) == pytest.approx(1_000_000)
        assert summary["NetLiquidation"].currency == "USD"
        values = {(v.tag, v.currency) for v in ib.accountValues()}
        assert ("CashBalance", "USD") in values and ("NetLiquidation", "USD") in values


async def test_order_state_survives_a_reconnect_with_the_same_client_id() -> None:
    async with running() as emu:
        async with client(emu, 5) as ib:
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            rest = ib.placeOrder(aapl, LimitOrder("SELL", 3, 999.00, orderRef="keep-me"))
            await until(lambda: rest.orderStatus.status == "Submitted")
            used_id = rest.order.orderId
        async with client(emu, 5) as ib:
            assert ib.client._reqIdSeq > used_id  # nextValidId above every id used
            [trade] = ib.openTrades()  # connectAsync's start-up fetch
            assert trade.order.orderRef == "keep-me" and trade.order.orderId == used_id


# --- market data -----------------------------------------------------------------------------


async def test_market_data_streams_live_quotes_on_market_steps() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        ticker = ib.reqMktData(aapl)
        await until(lambda: ticker.bid == ticker.bid and ticker.bid > 0 and ticker.ask > ticker.bid)
        assert ticker.marketDataType == 1 and ticker.close > 0
        seen = {(ticker.bid, ticker.ask)}
        for _ in range(20):
            await step(emu)
            seen.add((ticker.bid, ticker.ask))
        assert len(seen) > 1


async def test_unsubscribed_symbol_gives_delayed_data_when_asked_and_354_otherwise() -> None:
    async with running(unsubscribed=("ES",)) as emu, client(emu) as ib:
        errors = errors_of(ib)
        [es] = await ib.qualifyContractsAsync(Future("ES", "202612", "CME"))
        ib.reqMktData(es)
        await until(lambda: any(code == 354 for _, code, _ in errors), what="354 without delayed data")
        ib.reqMarketDataType(3)
        ticker = ib.reqMktData(es)
        await until(lambda: ticker.marketDataType == 3 and ticker.bid == ticker.bid and ticker.bid > 0,
                    what="delayed quotes")
        assert any(code == 10167 for _, code, _ in errors)


async def test_snapshot_ends_with_tick_snapshot_end() -> None:
    async with running() as emu, client(emu) as ib:
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        [ticker] = await ib.reqTickersAsync(eur)
        assert 1.0 < ticker.bid < ticker.ask < 1.2


async def test_real_time_bars_every_five_seconds_in_session_only() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = ib.reqRealTimeBars(aapl, 5, "TRADES", True)
        await until(lambda: subscribed(emu, "rt_bars") == 1, what="subscription reached the emulator")
        await step(emu, 21)  # bars end at :10, :15, :20 (the first starts at the next 5 s boundary)
        await until(lambda: len(bars) >= 3, what="three 5 s bars")
        times = [int(b.time.timestamp()) for b in bars]
        assert all(t % 5 == 0 for t in times) and times == sorted(set(times))
        assert all(b.low <= b.open_ <= b.high and b.volume > 0 for b in bars)
        ib.cancelRealTimeBars(bars)


async def test_no_real_time_bars_outside_the_session() -> None:
    async with running(TUESDAY_08_ET_NS) as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = ib.reqRealTimeBars(aapl, 5, "TRADES", True)  # regular hours only
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        fx_bars = ib.reqRealTimeBars(eur, 5, "MIDPOINT", True)
        await until(lambda: subscribed(emu, "rt_bars") == 2, what="subscriptions reached the emulator")
        await step(emu, 30)
        await until(lambda: len(fx_bars) >= 4, what="FX bars (FX is open)")
        assert len(bars) == 0


async def test_tick_by_tick_bid_ask_and_last() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        quotes = ib.reqTickByTickData(aapl, "BidAsk")
        trades = ib.reqTickByTickData(aapl, "AllLast")
        await until(lambda: subscribed(emu, "tbt") == 2, what="subscriptions reached the emulator")
        collected: list[object] = []
        quotes.updateEvent += lambda t: collected.extend(t.tickByTicks)
        for _ in range(5):
            await step(emu)
        await until(lambda: collected, what="tick-by-tick")
        assert any(getattr(t, "bidPrice", 0) > 0 for t in collected)
        assert trades.tickByTicks is not None


# --- historical bars -------------------------------------------------------------------------


async def test_historical_bars_lie_in_the_session_and_repeat_identically() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(aapl, "", "2 D", "5 mins", "TRADES", True, timeout=5)
        assert len(bars) > 78
        for b in bars:
            local = b.date
            assert (local.hour, local.minute) >= (9, 30) and (local.hour, local.minute) < (16, 0)
            assert b.low <= b.open <= b.high and b.low <= b.close <= b.high
        end = "20261201 14:00:00 UTC"
        a = await ib.reqHistoricalDataAsync(aapl, end, "3600 S", "1 min", "MIDPOINT", False, formatDate=2)
        await step(emu, 16)  # identical requests within 15 s are a pacing violation
        b2 = await ib.reqHistoricalDataAsync(aapl, end, "3600 S", "1 min", "MIDPOINT", False, formatDate=2)
        assert len(a) == 60 and [x.close for x in a] == [x.close for x in b2]


async def test_identical_historical_request_within_15_s_is_pacing_violation_162() -> None:
    async with running() as emu, client(emu) as ib:
        errors = errors_of(ib)
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        first = await ib.reqHistoricalDataAsync(eur, "", "1800 S", "1 min", "MIDPOINT", False, timeout=5)
        assert len(first) == 30
        again = await ib.reqHistoricalDataAsync(eur, "", "1800 S", "1 min", "MIDPOINT", False, timeout=5)
        assert len(again) == 0
        assert any(code == 162 and "pacing" in text for _, code, text in errors)
        await step(emu, 15)
        assert len(await ib.reqHistoricalDataAsync(eur, "", "1800 S", "1 min", "MIDPOINT", False, timeout=5)) == 30


async def test_historical_bad_bar_size_is_162_naming_it() -> None:
    async with running() as emu, client(emu) as ib:
        errors = errors_of(ib)
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(aapl, "", "1 D", "7 mins", "TRADES", True, timeout=5)
        assert len(bars) == 0
        assert any(code == 162 and "'7 mins'" in text for _, code, text in errors)


async def test_keep_up_to_date_bars_update_on_market_steps() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(aapl, "", "1800 S", "1 min", "TRADES", True, keepUpToDate=True)
        n = len(bars)
        updates: list[bool] = []
        bars.updateEvent += lambda b, has_new: updates.append(has_new)
        await step(emu, 65)
        await until(lambda: len(bars) > n, what="a new bar")
        assert True in updates


async def test_historical_window_without_bars_is_162_no_data() -> None:
    async with running() as emu, client(emu) as ib:
        errors = errors_of(ib)
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(aapl, "20261129 12:00:00 UTC", "1 D", "1 min", "TRADES", True,
                                               timeout=5)  # Saturday noon to Sunday noon
        assert len(bars) == 0
        assert any(code == 162 and "HMDS query returned no data: AAPL@SMART Trades" in text
                   for _, code, text in errors)


async def test_modify_global_cancel_all_open_orders_ids_and_time() -> None:
    async with running() as emu, client(emu, 1) as ib1, client(emu, 2) as ib2:
        [aapl] = await ib1.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        t1 = ib1.placeOrder(aapl, LimitOrder("BUY", 10, 100.00, orderRef="a"))
        t2 = ib2.placeOrder(aapl, LimitOrder("SELL", 5, 999.00, orderRef="b"))
        await until(lambda: t1.orderStatus.status == t2.orderStatus.status == "Submitted")
        t1.order.totalQuantity = 20
        t1.order.lmtPrice = 101.00
        ib1.placeOrder(aapl, t1.order)  # a modification: same order id
        await until(lambda: emu.engine.orders[(1, t1.order.orderId)].total_qty == 20)
        assert emu.engine.orders[(1, t1.order.orderId)].lmt_price == Decimal("101")
        assert sorted(t.order.orderRef for t in await ib1.reqAllOpenOrdersAsync()) == ["a", "b"]
        assert [t.order.orderRef for t in await ib2.reqOpenOrdersAsync()] == ["b"]
        ib1.reqGlobalCancel()
        await until(lambda: t1.orderStatus.status == "Cancelled" and t2.orderStatus.status == "Cancelled")
        assert emu.engine.open_orders() == []
        assert ib1.client._reqIdSeq > t1.order.orderId
        now = await ib1.reqCurrentTimeAsync()
        assert int(now.timestamp()) == emu.clock.time_ns() // NS


async def test_executions_filter_by_time_symbol_and_side() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        first = ib.placeOrder(aapl, MarketOrder("BUY", 1, orderRef="early"))
        await until(lambda: first.orderStatus.status == "Filled")
        await step(emu, 120)
        later = ib.placeOrder(aapl, MarketOrder("SELL", 1, orderRef="late"))
        fx = ib.placeOrder(eur, MarketOrder("BUY", 20000, orderRef="fx"))
        await until(lambda: later.orderStatus.status == fx.orderStatus.status == "Filled")

        async def refs(**kw) -> list[str]:  # type: ignore[no-untyped-def]
            return sorted(f.execution.orderRef for f in await ib.reqExecutionsAsync(ExecutionFilter(**kw)))

        assert await refs() == ["early", "fx", "late"]
        assert await refs(time="20261201 15:01:00 UTC") == ["fx", "late"]
        assert await refs(time="20261201 10:01:00 US/Eastern") == ["fx", "late"]
        assert await refs(symbol="AAPL", side="SELL") == ["late"]
        assert await refs(secType="CASH") == ["fx"]
        assert await refs(clientId=2) == []


async def test_same_seed_same_clock_same_fills() -> None:
    results = []
    for _ in range(2):
        async with running() as emu, client(emu) as ib:
            [es] = await ib.qualifyContractsAsync(Future("ES", "202612", "CME"))
            trade = ib.placeOrder(es, MarketOrder("BUY", 150))
            for _ in range(10):
                await step(emu)
            await until(lambda t=trade: t.orderStatus.status == "Filled")
            results.append([(e.exec_id, e.shares, e.price, e.time_ns) for e in emu.engine.executions])
    assert results[0] == results[1] and len(results[0]) > 1
