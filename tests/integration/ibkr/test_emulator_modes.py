"""The IBKR emulator's run modes for tests on the wall clock: `always_open` (a session around the
clock, every day: what the daemon's TradingSessions reads from the contract details is open at any
instant, midnights, weekends and holidays included), `market_time_scale` (bars and quotes on a
faster market timeline, orders and executions on the clock), the `order_delay_ms` fault; and
their bad values. ib_async is the client; the clock is a ManualClock."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import aiohttp
import pytest

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.sessions import TradingSessions
from nautilus_hmm.venues.emulator_common import listen
from nautilus_hmm.venues.ibkr.emulator.cli import main
from nautilus_hmm.venues.ibkr.emulator.control import ControlServer
from nautilus_hmm.venues.ibkr.emulator.market import (
    NS_PER_S,
    always_open,
    default_contracts,
    hours_text,
    is_open,
)
from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator
from tests.integration.ibkr.emulator_harness import TUESDAY_10_ET_NS, client, running, step, until

ib_async = pytest.importorskip("ib_async")
from ib_async import MarketOrder, Stock  # noqa: E402

AAPL = 265598


def ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * NS_PER_S


# Christmas Day 2026, 00:00 New York (a Friday, a holiday); Saturday 2026-12-05 00:00 New York.
CHRISTMAS_MIDNIGHT_ET_NS = ns(2026, 12, 25, 5)
SATURDAY_MIDNIGHT_ET_NS = ns(2026, 12, 5, 5)


@pytest.mark.parametrize("start_ns", [ns(2026, 3, 5, 12), CHRISTMAS_MIDNIGHT_ET_NS, SATURDAY_MIDNIGHT_ET_NS],
                         ids=["across-dst", "christmas", "saturday"])
def test_always_open_hours_read_by_trading_sessions_are_one_open_stretch_every_five_minutes(start_ns: int) -> None:
    for spec in always_open(default_contracts()):
        for liquid in (False, True):
            text = hours_text(spec, start_ns, liquid=liquid)
            assert "CLOSED" not in text
            sessions = TradingSessions.from_ib(text, spec.time_zone_id)
            # back-to-back days merge: no gap at midnight (a 00:00 CI run would otherwise be flaky)
            assert len(sessions.intervals_ns) == 1, (spec.local_symbol, text)
            for k in range(6 * 24 * 12):  # every 5 minutes for six days, every midnight included
                t = start_ns + k * 300 * NS_PER_S
                assert sessions.is_open(t) and is_open(spec, t, liquid=liquid), (spec.local_symbol, t)


@pytest.mark.parametrize("opened", [True, False], ids=["always-open", "default"])
async def test_always_open_trades_and_sends_bars_at_christmas_midnight_and_the_default_does_not(opened: bool) -> None:
    async with running(CHRISTMAS_MIDNIGHT_ET_NS, always_open=opened) as emu, client(emu) as ib:
        [details] = await ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
        sessions = TradingSessions.from_ib(details.liquidHours, details.timeZoneId)
        assert sessions.is_open(CHRISTMAS_MIDNIGHT_ET_NS) is opened
        bars = ib.reqRealTimeBars(details.contract, 5, "TRADES", True)
        trade = ib.placeOrder(details.contract, MarketOrder("BUY", 3, orderRef="xmas"))
        await until(lambda: trade.orderStatus.status in ("PreSubmitted", "Filled"), what="the order's state")
        await until(lambda: sum(len(s.rt_bars) for s in emu.sessions.values()) == 1, what="bars subscribed")
        await step(emu, 16)  # bars [5, 10) and [10, 15) after the subscription
        if opened:
            await until(lambda: trade.orderStatus.status == "Filled" and len(bars) >= 2, what="fill and bars")
        else:
            assert trade.orderStatus.status == "PreSubmitted" and len(bars) == 0  # a holiday: closed


async def test_market_time_scale_runs_bars_and_prices_ahead_while_orders_and_executions_stay_on_the_clock() -> None:
    async with running(TUESDAY_10_ET_NS, market_time_scale=10.0) as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = ib.reqRealTimeBars(aapl, 5, "TRADES", True)
        await until(lambda: sum(len(s.rt_bars) for s in emu.sessions.values()) == 1, what="bars subscribed")
        await step(emu, 3)  # 3 s of the clock = 30 s of market time: six 5 s bars
        await until(lambda: len(bars) >= 5, what="bars of market time")
        clock_now = emu.clock.time_ns()
        assert emu.market_ns(clock_now) == TUESDAY_10_ET_NS + 10 * (clock_now - TUESDAY_10_ET_NS)
        newest = int(bars[-1].time.timestamp()) * NS_PER_S
        assert newest > clock_now + 20 * NS_PER_S  # dated on the market's timeline, ahead of the clock
        spec = next(c for c in emu.contracts if c.con_id == AAPL)
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 2, orderRef="scaled"))
        await until(lambda: trade.fills and trade.orderStatus.status == "Filled", what="the fill")
        [execution] = emu.engine.executions
        assert execution.time_ns == emu.clock.time_ns()  # the execution is on the clock
        assert execution.price == emu.market.quote(spec, emu.market_ns(execution.time_ns)).ask  # the price: market time
        assert await ib.reqCurrentTimeAsync() == datetime.fromtimestamp(emu.clock.time_ns() // NS_PER_S, UTC)


async def test_default_market_time_is_the_clock() -> None:
    async with running() as emu:
        t = emu.clock.time_ns() + 12_345 * NS_PER_S
        assert emu.market_ns(t) == t and emu.state()["market_time_scale"] == 1.0
        assert emu.state()["always_open"] is False


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_a_market_time_scale_that_is_not_a_finite_positive_number_is_refused_naming_it(scale: float) -> None:
    with pytest.raises(ValueError, match="market_time_scale"):
        IbkrEmulator(clock=ManualClock(TUESDAY_10_ET_NS), market_time_scale=scale)


@pytest.mark.parametrize("value", ["0", "-2", "nan", "inf", "fast"])
def test_bad_market_time_scale_on_the_command_line_exits_2_naming_it(value: str, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["--port", "0", "--market-time-scale", value])
    assert exc.value.code == 2
    assert f"'{value}'" in capsys.readouterr().err


async def test_order_delay_holds_a_place_order_for_that_long_of_the_clock_then_it_is_processed() -> None:
    async with running(TUESDAY_10_ET_NS, always_open=True) as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        emu.delay_orders(0.5)
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 1, orderRef="held"))
        await until(lambda: emu.orders_held == 1, what="the order held")
        await emu.clock.advance_settle(0.4)
        assert emu.order_requests == [] and trade.orderStatus.status == "PendingSubmit"
        await emu.clock.advance_settle(0.2)
        await until(lambda: trade.orderStatus.status == "Filled", what="the fill after the delay")
        assert [r["client_order_id"] for r in emu.order_requests] == ["held"] and emu.orders_held == 0
        emu.delay_orders(0)
        quick = ib.placeOrder(aapl, MarketOrder("SELL", 1, orderRef="quick"))
        await until(lambda: quick.orderStatus.status == "Filled", what="no delay once off")
        with pytest.raises(ValueError, match="order delay"):
            emu.delay_orders(61)


async def test_control_route_sets_the_order_delay_and_refuses_bad_values_naming_the_key() -> None:
    async with running() as emu:
        runner, port = await listen(ControlServer(emu).app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{port}/_emulator/faults"
                async with http.post(url, json={"order_delay_ms": 50}) as r:
                    assert r.status == 200 and (await r.json())["order_delay_ms"] == 50
                for bad in (-1, 60_001, "50", True, 1.5):
                    async with http.post(url, json={"order_delay_ms": bad}) as r:
                        assert r.status == 400 and "order_delay_ms" in (await r.json())["error"], bad
                async with http.post(url, json={"order_delay_ms": 0}) as r:
                    assert (await r.json())["order_delay_ms"] == 0
                async with http.get(f"http://127.0.0.1:{port}/_emulator/state") as r:
                    state = await r.json()
                assert state["orders_held"] == 0 and state["market_time_scale"] == 1.0
        finally:
            await runner.cleanup()
