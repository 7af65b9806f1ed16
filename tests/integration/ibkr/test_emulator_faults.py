"""The IBKR emulator's fault injection, seen through ib_async: a connection dropped mid-order,
1100/1101/1102, a withheld orderStatus, held commission reports, a pacing violation, a competing
session (10197), the daily restart; and the HTTP control routes."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest

from nautilus_hmm.venues.emulator_common import listen
from nautilus_hmm.venues.ibkr.emulator.control import ControlServer
from tests.integration.ibkr.emulator_harness import client, running, step, until

ib_async = pytest.importorskip("ib_async")
from ib_async import IB, ExecutionFilter, Forex, LimitOrder, MarketOrder, Stock  # noqa: E402

AAPL = 265598


def errors_of(ib) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, text, contract: seen.append((req_id, code, text))
    return seen


def codes(seen: list[tuple[int, int, str]]) -> list[int]:
    return [code for _, code, _ in seen]


async def test_connection_dropped_mid_order_leaves_the_order_at_the_venue_found_by_order_ref() -> None:
    async with running() as emu:
        async with client(emu, 3) as ib:
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            emu.drop_next_orders(1)
            trade = ib.placeOrder(aapl, MarketOrder("BUY", 50, orderRef="unknown-outcome-1"))
            await until(lambda: not ib.isConnected(), what="connection cut")
            assert trade.orderStatus.status == "PendingSubmit" and not trade.fills  # nothing came back
            lost_id = trade.order.orderId
        assert emu.engine.positions[AAPL].qty == 50  # it was executed all the same
        async with client(emu, 3) as ib:
            fills = await ib.reqExecutionsAsync(ExecutionFilter(clientId=3))
            assert [(f.execution.orderRef, f.execution.orderId) for f in fills] == [("unknown-outcome-1", lost_id)]
            assert ib.client._reqIdSeq > lost_id
            [pos] = await ib.reqPositionsAsync()
            assert pos.position == 50


async def test_connectivity_lost_then_restored_data_maintained() -> None:
    async with running() as emu, client(emu) as ib:
        errors = errors_of(ib)
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        ticker = ib.reqMktData(aapl)
        await until(lambda: ticker.bid == ticker.bid and ticker.bid > 0)
        emu.connectivity_lost()
        await until(lambda: 1100 in codes(errors), what="1100")
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 10, orderRef="during-loss"))
        await until(lambda: emu.engine.open_orders(), what="order reached the emulator")
        updates = len(ticker.ticks)
        ticks_seen: list[int] = []
        ticker.updateEvent += lambda t: ticks_seen.append(len(t.ticks))
        await step(emu, 5)
        assert ticks_seen == [] and trade.orderStatus.status == "PendingSubmit"  # no data, no order messages
        del updates
        emu.connectivity_restored()
        await until(lambda: 1102 in codes(errors), what="1102")
        await until(lambda: trade.orderStatus.status in ("PreSubmitted", "Submitted"), what="held order messages")
        await step(emu, 2)
        await until(lambda: trade.orderStatus.status == "Filled", what="filled after restore")
        await until(lambda: ticks_seen, what="market data again (subscription maintained)")


async def test_connectivity_restored_with_data_lost_drops_subscriptions() -> None:
    async with running() as emu, client(emu) as ib:
        errors = errors_of(ib)
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        bars = ib.reqRealTimeBars(eur, 5, "MIDPOINT", False)
        await until(lambda: any(s.rt_bars for s in emu.sessions.values()))
        emu.connectivity_lost()
        emu.connectivity_restored(data_lost=True)
        await until(lambda: 1101 in codes(errors), what="1101")
        await step(emu, 20)
        assert len(bars) == 0  # the client must resubscribe after 1101
        assert codes(errors)[-6:] == [1100, 2103, 2105, 1101, 2104, 2106]  # farms broken, then OK again


async def test_withheld_order_status_is_recovered_by_req_open_orders() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        emu.withhold_order_status(1)
        trade = ib.placeOrder(aapl, LimitOrder("BUY", 10, 100.00, orderRef="quiet"))
        await until(lambda: emu.engine.open_orders() and emu.faults.withhold_order_status == 0)
        await step(emu, 1)
        assert trade.orderStatus.status == "PendingSubmit"  # the orderStatus never came
        [open_trade] = await ib.reqOpenOrdersAsync()
        assert open_trade.order.orderRef == "quiet"
        assert trade.orderStatus.status == "Submitted"  # reqOpenOrders re-sent it


async def test_held_commission_report_arrives_after_its_fill_on_release() -> None:
    async with running() as emu, client(emu) as ib:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        emu.hold_commissions()
        reports: list[object] = []
        ib.commissionReportEvent += lambda trade, fill, report: reports.append(report)
        trade = ib.placeOrder(aapl, MarketOrder("SELL", 300))
        await until(lambda: trade.orderStatus.status == "Filled")
        await step(emu, 1)
        assert reports == [] and trade.fills[0].commissionReport.execId == ""
        emu.release_commissions()
        await until(lambda: len(reports) == len(trade.fills))
        assert trade.fills[0].commissionReport.commission == pytest.approx(1.50)


async def test_injected_pacing_violation_refuses_the_next_historical_request() -> None:
    async with running() as emu, client(emu) as ib:
        errors = errors_of(ib)
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        emu.pacing_violations(1)
        bars = await ib.reqHistoricalDataAsync(eur, "", "600 S", "1 min", "MIDPOINT", False, timeout=5)
        assert len(bars) == 0 and 162 in codes(errors)
        bars = await ib.reqHistoricalDataAsync(eur, "", "600 S", "1 min", "BID", False, timeout=5)
        assert len(bars) == 10


async def test_competing_session_10197_stops_market_data_until_it_ends() -> None:
    async with running() as emu, client(emu) as ib:
        errors = errors_of(ib)
        [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
        ticker = ib.reqMktData(eur)
        await until(lambda: ticker.bid == ticker.bid and ticker.bid > 0)
        emu.competing_session(True)
        await until(lambda: 10197 in codes(errors), what="10197")
        seen: list[int] = []
        ticker.updateEvent += lambda t: seen.append(1)
        await step(emu, 5)
        assert seen == []
        emu.competing_session(False)
        await step(emu, 5)
        await until(lambda: seen, what="data again")


async def test_daily_restart_cuts_connections_refuses_then_serves_with_state_kept() -> None:
    async with running() as emu:
        async with client(emu) as ib:
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            trade = ib.placeOrder(aapl, MarketOrder("BUY", 7))
            await until(lambda: trade.orderStatus.status == "Filled")
            await emu.daily_restart(60)
            await until(lambda: not ib.isConnected(), what="cut")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", emu.port)
        await step(emu, 59)
        assert not emu.listening.is_set()
        await step(emu, 2)
        await asyncio.wait_for(emu.listening.wait(), 5)
        async with client(emu) as ib:
            [pos] = await ib.reqPositionsAsync()
            assert pos.position == 7


async def test_control_http_applies_faults_and_refuses_bad_ones_naming_the_key() -> None:
    async with running() as emu:
        runner, port = await listen(ControlServer(emu).app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}/_emulator"
                async with http.post(f"{base}/faults", json={"drop_next_orders": 2, "pacing_violations": 1,
                                                             "subscription": {"ES": False}}) as r:
                    assert r.status == 200
                    body = await r.json()
                assert body["drop_next_orders"] == 2 and body["pacing_violations"] == 1
                assert emu.live_data["ES"] is False
                for bad, key in (({"drop_next_orders": -1}, "drop_next_orders"),
                                 ({"connectivity": "gone"}, "connectivity"),
                                 ({"subscription": {"XYZ": True}}, "XYZ"),
                                 ({"nope": 1}, "nope"),
                                 ([1, 2], "JSON object")):
                    async with http.post(f"{base}/faults", json=bad) as r:
                        assert r.status == 400
                        assert key in (await r.json())["error"]
                assert emu.faults.drop_next_orders == 2  # a refused request changed nothing
                async with http.post(f"{base}/faults", data=b"{not json") as r:
                    assert r.status == 400
                async with http.get(f"{base}/state") as r:
                    state = await r.json()
                assert state["listening"] is True and state["port"] == emu.port
        finally:
            await runner.cleanup()


async def test_client_of_a_cut_connection_cannot_trade_and_other_clients_are_untouched() -> None:
    async with running() as emu, client(emu, 1) as ib1, client(emu, 2) as ib2:
        [aapl] = await ib1.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        emu.drop_next_orders(1)
        ib1.placeOrder(aapl, MarketOrder("BUY", 1))
        await until(lambda: not ib1.isConnected())
        trade = ib2.placeOrder(aapl, MarketOrder("BUY", 2))
        await until(lambda: trade.orderStatus.status == "Filled")
        assert isinstance(ib2, IB) and ib2.isConnected()


async def test_bench_ping_pong_times_a_print_to_the_order_it_causes() -> None:
    async with running() as emu, client(emu) as ib:
        ib.client.MaxRequests = 0  # no client-side throttle: every print answers at once
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        prints = ib.reqTickByTickData(aapl, "AllLast")
        await until(lambda: any(s.tbt for s in emu.sessions.values()))
        count = iter(range(1_000_000))

        def on_print(ticker) -> None:  # type: ignore[no-untyped-def]
            for _ in ticker.tickByTicks:
                ib.placeOrder(aapl, LimitOrder("BUY", 1, 1.00, orderRef=f"pp-{next(count)}"))

        prints.updateEvent += on_print
        out = await emu.bench_ping_pong("AAPL", 20, timeout_s=5)
        assert out["missed"] == 0 and len(out["samples"]) == 20
        assert all(arrival > send for send, arrival, _ in out["samples"])
        assert [ref for _, _, ref in out["samples"]] == [f"pp-{i}" for i in range(20)]
        runner, port = await listen(ControlServer(emu).app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{port}/_emulator/bench/ping_pong"
                async with http.post(url, json={"symbol": "AAPL", "n": 3, "side": "BUY"}) as r:
                    assert r.status == 200 and len((await r.json())["samples"]) == 3
                async with http.post(url, json={"symbol": "MSFT", "n": 1}) as r:
                    assert r.status == 400 and "no connection subscribes MSFT" in (await r.json())["error"]
                async with http.post(url, json={"symbol": "AAPL", "side": "HOLD"}) as r:
                    assert r.status == 400 and "side" in (await r.json())["error"]
                async with http.post(f"http://127.0.0.1:{port}/_emulator/step", json={"n": 0}) as r:
                    assert r.status == 400
        finally:
            await runner.cleanup()


async def test_scheduled_daily_restart_at_its_new_york_time() -> None:
    from tests.integration.ibkr.emulator_harness import TUESDAY_10_ET_NS

    start = TUESDAY_10_ET_NS + (13 * 3600 + 40 * 60) * 1_000_000_000  # Tuesday 23:40 New York
    async with running(start, daily_restart_at="23:45", daily_restart_refuse_s=120) as emu:
        async with client(emu) as ib:
            await step(emu, 299)  # 23:44:59
            assert ib.isConnected() and emu.restarts == 0
            await step(emu, 2)
            await until(lambda: not ib.isConnected(), what="cut at 23:45")
        assert emu.restarts == 1 and not emu.listening.is_set()
        await step(emu, 121)
        await asyncio.wait_for(emu.listening.wait(), 5)
        async with client(emu) as ib:
            assert ib.isConnected()
        await step(emu, 3600)
        assert emu.restarts == 1  # once a day


async def test_state_is_an_audit_trail_of_orders_requests_and_fills() -> None:
    async with running() as emu:
        async with client(emu, 3) as ib:
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            filled = ib.placeOrder(aapl, MarketOrder("BUY", 2, orderRef="j-1"))
            await until(lambda: filled.orderStatus.status == "Filled")
            resting = ib.placeOrder(aapl, LimitOrder("BUY", 1, 50.00, orderRef="j-2"))
            await until(lambda: resting.orderStatus.status == "Submitted")
            resting.order.lmtPrice = 51.00
            ib.placeOrder(aapl, resting.order)  # a modification
            again = MarketOrder("BUY", 1, orderRef="j-1")
            ib.client.placeOrder(filled.order.orderId, aapl, again)  # the same id again: 103
            await until(lambda: len(emu.order_requests) == 4)
            emu.drop_next_orders(1)
            ib.placeOrder(aapl, MarketOrder("SELL", 1, orderRef="j-3"))
            await until(lambda: not ib.isConnected())
        st = emu.state()
        assert [(r["client_order_id"], r["kind"], r["code"]) for r in st["new_order_requests"]] == [
            ("j-1", "new", None), ("j-2", "new", None), ("j-2", "modify", None), ("j-1", "new", 103),
            ("j-3", "new", None)]
        assert st["client_order_ids"] == ["j-1", "j-2", "j-3"]  # what reached matching as a new order
        by_ref = {o["client_order_id"]: o for o in st["orders"]}
        assert by_ref["j-1"]["status"] == "Filled" and by_ref["j-1"]["filled_qty"] == "2"
        assert by_ref["j-2"]["status"] == "Submitted" and by_ref["j-3"]["status"] == "Filled"
        assert sorted((f["client_order_id"], f["side"]) for f in st["fills"]) == [("j-1", "BUY"), ("j-3", "SELL")]
        assert all(f["fee_asset"] == "USD" and Decimal(f["fee"]) > 0 for f in st["fills"])
        assert st["positions"]["AAPL"]["qty"] == "1"
