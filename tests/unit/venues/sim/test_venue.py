"""SimVenue with a real Bus and ManualClock: fills, persistence across restarts, refusals, latency, feeds."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import DataError, OrderRejected
from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.marketdata.replay import BarArrays, TradeArrays
from nautilus_hmm.messages import (
    BalanceUpdate,
    Bar,
    FillReport,
    OrderStatusReport,
    QuoteTick,
    TradeTick,
)
from nautilus_hmm.venues.sim.account import ACCOUNT_FILE
from nautilus_hmm.venues.sim.config import SimMarketConfig, SimVenueConfig
from nautilus_hmm.venues.sim.venue import SimVenue

IID = InstrumentId("sim", "BTCUSDT")
S = 1_000_000_000
T0 = 1_740_798_000 * S


def config(**kw) -> SimVenueConfig:
    market = kw.pop("market", SimMarketConfig(initial_prices={"BTCUSDT": 100.0}))
    base = dict(symbols=("BTCUSDT",), initial_balances={"USDT": 10_000.0}, maker_fee=0.001,
                taker_fee=0.002, market=market)
    base.update(kw)
    return SimVenueConfig(**base)


def bar(i: int, o: float, h: float, lo: float, c: float, v: float = 100.0) -> Bar:
    ts = T0 + i * 60 * S
    return Bar(ts_event_ns=ts, ts_init_ns=ts + 60 * S, instrument_id=IID, interval_s=60,
               open=o, high=h, low=lo, close=c, volume=v)


def req(cid: str, side: Side, qty: str, otype: OrderType = OrderType.MARKET, price: str | None = None) -> OrderRequest:
    return OrderRequest(client_order_id=cid, instrument_id=IID, side=side, order_type=otype,
                        quantity=D(qty), price=None if price is None else D(price))


class Recorder:
    """Every message published on the bus, in order."""

    def __init__(self, bus: Bus) -> None:
        self.sub = bus.subscribe_queue("recorder", None, maxsize=1_000_000)

    def drain(self) -> list:
        out = []
        while (m := self.sub.get_nowait()) is not None:
            out.append(m)
        return out


def make_venue(bus: Bus, clock: ManualClock, state_dir: Path | None, **kw) -> SimVenue:
    cfg = kw.pop("cfg", None) or config()
    persist = kw.pop("persist", True)
    v = SimVenue(cfg, bus, clock, state_dir, kw.pop("feed", None), persist=persist, **kw)
    v.start_nowait()
    return v


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ns=T0 + 60 * S)


# ---------------------------------------------------------------- fills and reports


async def test_market_order_fills_at_the_next_bars_open_and_reports_before_the_bar(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    rec = Recorder(bus)
    ack = await venue.submit_order(req("o1", Side.BUY, "2"))
    assert ack.status is OrderStatus.ACCEPTED
    assert [type(m) for m in rec.drain()] == [OrderStatusReport, BalanceUpdate]
    clock.set_time_ns(T0 + 120 * S)
    venue.step_bar(bar(1, 101, 103, 100, 102))
    msgs = rec.drain()
    fill_reports = [m for m in msgs if isinstance(m, FillReport)]
    assert len(fill_reports) == 1
    f = fill_reports[0].fill
    assert (f.price, f.qty, f.liquidity, f.fee) == (D("101.00"), D("2"), Liquidity.TAKER, D("0.40400000"))
    statuses = [m.order.status for m in msgs if isinstance(m, OrderStatusReport)]
    assert statuses == [OrderStatus.FILLED]
    assert isinstance(msgs[-1], Bar)  # the bar comes after the reports it caused
    assert msgs.index(fill_reports[0]) < msgs.index(msgs[-1])


async def test_balances_follow_a_buy_then_a_sell(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("b1", Side.BUY, "2"))
    venue.step_bar(bar(1, 101, 103, 100, 102))
    bal = await venue.balances()
    assert bal["BTC"].free == D("2")
    assert bal["USDT"].free == D("10000") - D("202") - D("0.404")
    assert bal["USDT"].locked == 0
    venue.submit_order_nowait(req("s1", Side.SELL, "2", OrderType.LIMIT, "105.00"))
    assert (await venue.balances())["BTC"].locked == D("2")
    venue.step_bar(bar(2, 102, 106, 101, 105))
    bal = await venue.balances()
    assert bal["BTC"].free == 0 and bal["BTC"].locked == 0
    assert bal["USDT"].free == D("10000") - D("202.404") + D("210") - D("0.21")


async def test_market_buy_gapping_above_its_lock_pays_the_difference_from_free(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("b1", Side.BUY, "10"))
    venue.step_bar(bar(1, 120, 121, 119, 120))
    bal = await venue.balances()
    assert bal["USDT"].free == D("10000") - D("1200") - D("2.4")
    assert bal["USDT"].locked == 0


# ---------------------------------------------------------------- refusals


async def test_buy_the_free_quote_cannot_cover_is_rejected_and_nothing_published(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    rec = Recorder(bus)
    with pytest.raises(OrderRejected) as ei:
        await venue.submit_order(req("big", Side.BUY, "99.9"))  # 9990 + 0.2% fee > 10000
    assert ei.value.code == "-2010"
    assert "insufficient balance" in ei.value.message and "USDT" in ei.value.message
    assert rec.drain() == []
    assert await venue.query_order(IID, "big") is None


async def test_selling_more_base_than_held_is_rejected(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    with pytest.raises(OrderRejected) as ei:
        venue.submit_order_nowait(req("s1", Side.SELL, "0.1"))
    assert "BTC" in ei.value.message and "insufficient balance" in ei.value.message


async def test_duplicate_client_order_id_is_rejected_like_a_venue(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("dup", Side.BUY, "1", OrderType.LIMIT, "90.00"))
    with pytest.raises(OrderRejected) as ei:
        venue.submit_order_nowait(req("dup", Side.BUY, "1", OrderType.LIMIT, "91.00"))
    assert ei.value.code == "-2010"
    assert "Duplicate order sent." in ei.value.message
    assert len(await venue.open_orders()) == 1


async def test_unknown_symbol_is_rejected(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    bad = dataclasses.replace(req("x", Side.BUY, "1"), instrument_id=InstrumentId("sim", "DOGEUSDT"))
    with pytest.raises(OrderRejected) as ei:
        venue.submit_order_nowait(bad)
    assert ei.value.code == "-1121"


async def test_injected_rejections_follow_the_reject_rate(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path, cfg=config(reject_rate=1.0))
    venue.step_bar(bar(0, 100, 101, 99, 100))
    with pytest.raises(OrderRejected) as ei:
        venue.submit_order_nowait(req("r1", Side.BUY, "1"))
    assert ei.value.code == "SIM_INJECTED"
    venue.reconfigure(config(reject_rate=0.0))
    assert venue.submit_order_nowait(req("r1", Side.BUY, "1")).status is OrderStatus.ACCEPTED


# ---------------------------------------------------------------- cancel and queries


async def test_cancel_releases_the_lock_and_reports(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("l1", Side.BUY, "10", OrderType.LIMIT, "90.00"))
    assert (await venue.balances())["USDT"].locked == D("901.8")
    rec = Recorder(bus)
    snap = await venue.cancel_order(IID, "l1")
    assert snap.status is OrderStatus.CANCELED
    assert [m.order.status for m in rec.drain() if isinstance(m, OrderStatusReport)] == [OrderStatus.CANCELED]
    bal = await venue.balances()
    assert (bal["USDT"].free, bal["USDT"].locked) == (D("10000"), 0)


async def test_cancel_of_unknown_or_closed_order_is_rejected(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    with pytest.raises(OrderRejected) as ei:
        await venue.cancel_order(IID, "nope")
    assert ei.value.code == "-2011"
    venue.submit_order_nowait(req("m1", Side.BUY, "1"))
    venue.step_bar(bar(1, 100, 101, 99, 100))
    with pytest.raises(OrderRejected, match="already FILLED"):
        venue.cancel_order_nowait(IID, "m1")


async def test_cancel_all_cancels_every_open_order(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    for i in range(3):
        venue.submit_order_nowait(req(f"l{i}", Side.BUY, "1", OrderType.LIMIT, f"9{i}.00"))
    done = await venue.cancel_all(IID)
    assert sorted(o.client_order_id for o in done) == ["l0", "l1", "l2"]
    assert await venue.open_orders() == []


async def test_query_of_an_unknown_id_returns_none(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    assert await venue.query_order(IID, "never") is None


# ---------------------------------------------------------------- persistence


async def test_account_survives_a_restart(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("b1", Side.BUY, "3"))
    venue.step_bar(bar(1, 101, 102, 100, 101))
    venue.submit_order_nowait(req("s1", Side.SELL, "1", OrderType.LIMIT, "110.00"))
    before = await venue.balances()
    await venue.stop()

    again = make_venue(Bus(), clock, tmp_path)
    assert await again.balances() == before
    [open_order] = await again.open_orders()
    assert open_order.client_order_id == "s1"
    again.step_bar(bar(2, 105, 111, 104, 110))  # the restored limit still fills
    assert (await again.query_order(IID, "s1")).status is OrderStatus.FILLED


async def test_query_and_fills_after_restart_answer_about_old_orders(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("b1", Side.BUY, "1"))
    venue.step_bar(bar(1, 101, 102, 100, 101))
    fills_before = await venue.fills_since(IID, 0)

    again = make_venue(Bus(), clock, tmp_path)
    old = await again.query_order(IID, "b1")
    assert old is not None and old.status is OrderStatus.FILLED and old.avg_px == D("101.00")
    assert await again.fills_since(IID, 0) == fills_before
    assert await again.fills_since(IID, T0 + 61 * S) == []


async def test_duplicate_id_from_before_a_restart_is_rejected(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("b1", Side.BUY, "1"))
    again = make_venue(Bus(), clock, tmp_path)
    again.step_bar(bar(1, 100, 101, 99, 100))
    with pytest.raises(OrderRejected, match="Duplicate"):
        again.submit_order_nowait(req("b1", Side.BUY, "1"))


async def test_trade_ids_continue_after_a_restart(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("b1", Side.BUY, "1"))
    venue.step_bar(bar(1, 100, 101, 99, 100))
    again = make_venue(Bus(), clock, tmp_path)
    again.step_bar(bar(2, 100, 101, 99, 100))
    again.submit_order_nowait(req("b2", Side.BUY, "1"))
    again.step_bar(bar(3, 100, 101, 99, 100))
    ids = [int(f.trade_id) for f in await again.fills_since(IID, 0)]
    assert ids == [1, 2]


async def test_corrupt_account_file_stops_the_start(bus, clock, tmp_path):
    (tmp_path / ACCOUNT_FILE).write_text('{"version": 1, "balances": ')
    venue = SimVenue(config(), bus, clock, tmp_path)
    with pytest.raises(DataError) as ei:
        await venue.start()
    assert ACCOUNT_FILE in str(ei.value)


async def test_account_whose_locks_disagree_with_open_orders_is_refused(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("l1", Side.BUY, "1", OrderType.LIMIT, "90.00"))
    path = tmp_path / ACCOUNT_FILE
    path.write_text(path.read_text().replace('"locked": "90.18000"', '"locked": "0"'))
    with pytest.raises(DataError, match=r"USDT locked 0 but open orders hold 90\.18000"):
        make_venue(Bus(), clock, tmp_path)


async def test_persist_false_writes_nothing(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path, persist=False)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("b1", Side.BUY, "1"))
    venue.step_bar(bar(1, 100, 101, 99, 100))
    await venue.stop()
    assert list(tmp_path.iterdir()) == []


async def test_account_file_is_replaced_atomically(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path)
    venue.step_bar(bar(0, 100, 101, 99, 100))
    venue.submit_order_nowait(req("b1", Side.BUY, "1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [ACCOUNT_FILE]  # no temp file left


# ---------------------------------------------------------------- latency and lifecycle


async def test_latency_is_waited_on_the_clock(bus, clock, tmp_path):
    venue = make_venue(bus, clock, tmp_path, cfg=config(latency_ms=250.0))
    venue.step_bar(bar(0, 100, 101, 99, 100))
    task = asyncio.create_task(venue.submit_order(req("b1", Side.BUY, "1")))
    await clock.settle()
    assert not task.done()
    assert venue.query_order_nowait(IID, "b1") is None  # not at the venue yet
    await clock.advance_settle(0.249)
    assert not task.done()
    await clock.advance_settle(0.001)
    assert task.done() and task.result().status is OrderStatus.ACCEPTED


async def test_health_reports_started_and_mode(bus, clock, tmp_path):
    venue = SimVenue(config(), bus, clock, tmp_path)
    assert not venue.health().ok
    await venue.start()
    h = venue.health()
    assert h.ok and h.info["mode"] == "synthetic"


def test_instruments_have_binance_like_filters(bus, clock, tmp_path):
    venue = SimVenue(config(), bus, clock, tmp_path)
    inst = venue.instruments()[IID]
    assert (inst.tick_size, inst.step_size, inst.min_notional) == (D("0.01"), D("0.00001"), D("5"))
    assert (inst.base_asset, inst.quote_asset) == ("BTC", "USDT")
    assert (inst.maker_fee, inst.taker_fee) == (D("0.001"), D("0.002"))


# ---------------------------------------------------------------- feeds


async def test_synthetic_run_publishes_trades_quotes_and_bars_and_fills_orders(bus, tmp_path):
    clock = ManualClock(start_ns=T0)
    venue = make_venue(bus, clock, tmp_path, cfg=config(market=SimMarketConfig(
        initial_prices={"BTCUSDT": 60_000.0}, tick_interval_s=1.0, bar_interval_s=60)))
    rec = Recorder(bus)
    task = asyncio.create_task(venue.run())
    await clock.advance_settle(5)
    venue.submit_order_nowait(req("m1", Side.BUY, "0.001"))
    await clock.advance_settle(125)
    task.cancel()
    msgs = rec.drain()
    assert sum(isinstance(m, TradeTick) for m in msgs) == 130
    assert sum(isinstance(m, QuoteTick) for m in msgs) == 130
    bars = [m for m in msgs if isinstance(m, Bar)]
    assert [b.ts_event_ns for b in bars] == [T0, T0 + 60 * S]
    fills = [m.fill for m in msgs if isinstance(m, FillReport)]
    assert sum(f.qty for f in fills) == D("0.001")
    assert fills[0].ts_ns == T0 + 6 * S  # the next trade after the order


async def test_replay_of_bars_as_fast_as_possible_publishes_every_bar(bus, clock, tmp_path):
    n = 50
    ts = T0 + np.arange(n, dtype=np.int64) * 60 * S
    px = 100.0 + np.arange(n, dtype=np.float64)
    data = BarArrays(ts, px, px + 1, px - 1, px + 0.5, np.full(n, 10.0), 60)
    cfg = config(market=SimMarketConfig(source="replay", replay_speed=0.0))
    venue = make_venue(bus, clock, tmp_path, cfg=cfg, feed=data)
    rec = Recorder(bus)
    task = asyncio.create_task(venue.run())
    for _ in range(3 * n):
        await asyncio.sleep(0)
    bars = [m for m in rec.drain() if isinstance(m, Bar)]
    assert len(bars) == n
    assert [b.close for b in bars] == (px + 0.5).tolist()
    assert venue.health().detail.startswith("replay finished")
    task.cancel()


async def test_replay_at_speed_one_paces_bars_by_their_timestamps(bus, clock, tmp_path):
    ts = T0 + np.arange(3, dtype=np.int64) * 60 * S
    px = np.array([100.0, 101.0, 102.0])
    data = BarArrays(ts, px, px + 1, px - 1, px, np.full(3, 10.0), 60)
    cfg = config(market=SimMarketConfig(source="replay", replay_speed=1.0))
    venue = make_venue(bus, clock, tmp_path, cfg=cfg, feed={"BTCUSDT": data})
    rec = Recorder(bus)
    task = asyncio.create_task(venue.run())
    await clock.settle()
    assert [m.close for m in rec.drain() if isinstance(m, Bar)] == [100.0]
    await clock.advance_settle(59)
    assert [m for m in rec.drain() if isinstance(m, Bar)] == []
    await clock.advance_settle(1)
    got = [m for m in rec.drain() if isinstance(m, Bar)]
    assert [b.close for b in got] == [101.0]
    # rebased: the replay's bars are stamped around the clock's "now", on the minute grid
    assert got[0].ts_event_ns % (60 * S) == 0
    assert abs(got[0].ts_event_ns + 60 * S - clock.time_ns()) < 60 * S
    task.cancel()


async def test_replay_of_trades_builds_bars_and_fills_orders(bus, clock, tmp_path):
    n = 200
    ts = T0 + np.arange(n, dtype=np.int64) * S  # one trade a second
    data = TradeArrays(ts, np.full(n, 100.0), np.full(n, 0.5), np.ones(n, dtype=np.int8),
                       np.array([str(i) for i in range(n)]))
    cfg = config(market=SimMarketConfig(source="replay", replay_speed=0.0, bar_interval_s=60))
    venue = make_venue(bus, clock, tmp_path, cfg=cfg, feed=data)
    venue.step_trade(IID, 100.0, 0.1, T0 - S)  # a price to accept a market order against
    venue.submit_order_nowait(req("m1", Side.BUY, "1.2"))
    rec = Recorder(bus)
    task = asyncio.create_task(venue.run())
    for _ in range(3 * n):
        await asyncio.sleep(0)
    msgs = rec.drain()
    assert sum(isinstance(m, TradeTick) for m in msgs) == n
    assert len([m for m in msgs if isinstance(m, Bar)]) >= 3
    fills = [m.fill for m in msgs if isinstance(m, FillReport)]
    assert [f.qty for f in fills] == [D("0.5"), D("0.5"), D("0.2")]
    task.cancel()


def test_step_bar_is_fast_without_open_orders(tmp_path):
    bus = Bus()
    seen = []
    bus.subscribe(Bar, seen.append)
    venue = make_venue(bus, ManualClock(start_ns=T0), None, persist=False)
    bars = [bar(i, 100, 101, 99, 100) for i in range(20_000)]
    t0 = time.process_time()  # CPU time: other test workers stretch the wall clock
    for b in bars:
        venue.step_bar(b)
    elapsed_s = time.process_time() - t0
    assert len(seen) == 20_000
    assert elapsed_s < 1.0, f"20k bars took {elapsed_s:.2f} s"


async def test_health_turns_bad_when_the_synthetic_feed_stops(bus, tmp_path):
    clock = ManualClock(start_ns=T0)
    venue = make_venue(bus, clock, tmp_path, cfg=config(market=SimMarketConfig(
        initial_prices={"BTCUSDT": 60_000.0}, tick_interval_s=1.0)))
    task = asyncio.create_task(venue.run())
    await clock.advance_settle(3)
    assert venue.health().ok
    task.cancel()
    await clock.settle()
    clock.advance(10)
    h = venue.health()
    assert not h.ok and "no synthetic trade" in h.detail


async def test_open_order_of_a_delisted_symbol_is_canceled_on_start(bus, clock, tmp_path):
    two = config(symbols=("BTCUSDT", "ETHUSDT"),
                 market=SimMarketConfig(initial_prices={"BTCUSDT": 100.0, "ETHUSDT": 10.0}))
    venue = make_venue(bus, clock, tmp_path, cfg=two)
    eth = InstrumentId("sim", "ETHUSDT")
    venue.step_bar(dataclasses.replace(bar(0, 10, 11, 9, 10), instrument_id=eth))
    venue.submit_order_nowait(dataclasses.replace(req("e1", Side.BUY, "1", OrderType.LIMIT, "9.00"),
                                                  instrument_id=eth))
    bus2 = Bus()
    rec = Recorder(bus2)
    again = make_venue(bus2, clock, tmp_path)  # BTCUSDT only now
    old = again.query_order_nowait(eth, "e1")
    assert old is not None and old.status is OrderStatus.CANCELED and "no longer listed" in old.reason
    assert [m.order.client_order_id for m in rec.drain() if isinstance(m, OrderStatusReport)] == ["e1"]
    assert (await again.balances())["USDT"].locked == 0


# ---------------------------------------------------------------- past bars


async def test_synthetic_venue_serves_a_past_that_ends_now_and_replay_serves_none(bus, clock, tmp_path):
    v = make_venue(bus, clock, tmp_path, cfg=config(market=SimMarketConfig(initial_prices={"BTCUSDT": 100.0})))
    bars = await v.history_bars(IID, 60, 500)
    assert len(bars) == 500 and bars.ts_open_ns[-1] + 60 * S <= clock.time_ns()
    assert bars.close[-1] == 100.0
    with pytest.raises(ValueError, match="no instrument"):
        await v.history_bars(InstrumentId("sim", "DOGEUSDT"), 60, 10)
    replay = BarArrays(np.array([T0], dtype=np.int64), *(np.array([100.0]) for _ in range(5)), 60)
    r = make_venue(Bus(), clock, None, persist=False, feed={"BTCUSDT": replay})
    assert len(await r.history_bars(IID, 60, 500)) == 0
