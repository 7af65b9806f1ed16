"""sim_exec: tick replay through the venue model: latency, queue position, partial fills,
fees, the venue's own order checks; the real Binance captures replay deterministically;
damaged captures are named by file and line."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.domain.enums import OrderType, Side, TimeInForce
from nautilus_hmm.research.sim_exec import (
    MAKER,
    TAKER,
    QuoteBothSides,
    Scripted,
    SimExecConfig,
    TickSim,
    write_outputs,
)
from nautilus_hmm.research.ticks import (
    DEPTH,
    QUOTE,
    SNAPSHOT,
    TRADE,
    CaptureError,
    iter_capture,
    load_capture,
)
from nautilus_hmm.venues.sim.instruments import sim_instrument

CAPTURES = Path("/work/shared/fixtures/marketdata/binance_ws_captures_hftbacktest")
MS = 1_000_000
INST = sim_instrument("binance_spot", "BTCUSDT", "USDT", Decimal("0.001"), Decimal("0.001"))


def sim(entry_ms: int = 10, resp_ms: int = 10, maker: float = 0.0002, taker: float = 0.001) -> TickSim:
    return TickSim(INST, SimExecConfig(entry_ms * MS, resp_ms * MS, maker, taker))


BOOK = (0, SNAPSHOT, [(99.0, 5.0), (98.0, 1.0)], [(100.0, 1.0), (101.0, 2.0), (102.0, 50.0)])


def tick(ts_ms: int) -> tuple:
    """A quiet event that changes nothing (a repeated best quote)."""
    return (ts_ms * MS, QUOTE, 99.0, 5.0, 100.0, 1.0)


def test_market_order_walks_the_book_and_pays_taker_fees() -> None:
    s = sim()
    strat = Scripted([(0, {"side": Side.BUY, "qty": 2.5})])
    res = s.run([BOOK, tick(0), tick(20)], strat)
    assert [(f.qty, f.price, f.liquidity) for f in res.fills] == [(1.0, 100.0, TAKER), (1.5, 101.0, TAKER)]
    assert res.fees == pytest.approx((100.0 * 1.0 + 101.0 * 1.5) * 0.001)
    assert res.position == 2.5
    assert res.cash == pytest.approx(10_000 - 251.5 - res.fees)
    o = res.orders[strat.ids[0]]
    assert o.status == "FILLED" and o.arrival_mid == 99.5
    assert res.fills[0].slippage_bps == pytest.approx((100.0 - 99.5) / 99.5 * 1e4)


def test_an_order_meets_the_book_as_it_is_when_it_arrives_after_the_latency() -> None:
    s = sim(entry_ms=10)
    strat = Scripted([(0, {"side": Side.BUY, "qty": 1.0})])
    moved = (5 * MS, DEPTH, [], [(100.0, 0.0), (103.0, 4.0)])  # the 100 offer is gone 5 ms later
    res = s.run([BOOK, tick(0), moved, tick(10), tick(30)], strat)
    assert [(f.ts_ns, f.price) for f in res.fills] == [(10 * MS, 101.0)]


def test_fill_reports_reach_the_strategy_after_the_response_latency() -> None:
    s = sim(entry_ms=10, resp_ms=7)
    strat = Scripted([(0, {"side": Side.BUY, "qty": 1.0})])
    s.run([BOOK, tick(0), tick(10), tick(16), tick(17), tick(30)], strat)
    assert len(strat.seen) == 1
    assert strat.seen_at == [17 * MS]  # filled at 10 ms, seen at the first event >= 17 ms


def test_resting_limit_waits_for_the_queue_ahead_then_fills_partially() -> None:
    s = sim(entry_ms=1)
    strat = Scripted([(0, {"side": Side.BUY, "qty": 2.0, "price": 99.0})])
    events = [BOOK, tick(0), tick(2),
              (3 * MS, TRADE, 99.0, 3.0, True),   # 5 ahead -> 2 ahead, nothing for us
              (4 * MS, TRADE, 99.0, 3.0, True),   # 2 eat the queue, 1 fills us
              (5 * MS, TRADE, 99.0, 0.5, False),  # a buyer lifting: not our side
              (6 * MS, TRADE, 99.0, 4.0, True)]   # the remaining 1 fills
    res = s.run(events, strat)
    assert [(f.ts_ns, f.qty, f.price, f.liquidity) for f in res.fills] == [
        (4 * MS, 1.0, 99.0, MAKER), (6 * MS, 1.0, 99.0, MAKER)]
    assert res.fees == pytest.approx(2 * 99.0 * 0.0002)
    assert res.orders[strat.ids[0]].status == "FILLED"


def test_a_level_that_shrinks_below_our_queue_moves_us_up() -> None:
    s = sim(entry_ms=1)
    strat = Scripted([(0, {"side": Side.BUY, "qty": 1.0, "price": 99.0})])
    events = [BOOK, tick(0), tick(2),
              (3 * MS, DEPTH, [(99.0, 1.5)], []),  # cancels: the queue ahead is at most 1.5 now
              (4 * MS, TRADE, 99.0, 2.0, True)]
    res = s.run(events, strat)
    assert [(f.qty, f.price) for f in res.fills] == [(0.5, 99.0)]
    assert res.orders[strat.ids[0]].status == "OPEN"


def test_a_trade_through_the_limit_fills_all_of_it_at_the_limit() -> None:
    s = sim(entry_ms=1)
    strat = Scripted([(0, {"side": Side.SELL, "qty": 0.7, "price": 101.0})])
    events = [BOOK, tick(0), tick(2), (3 * MS, TRADE, 101.5, 0.01, False)]
    res = s.run(events, strat)
    assert [(f.qty, f.price, f.liquidity) for f in res.fills] == [(0.7, 101.0, MAKER)]


def test_a_market_order_bigger_than_the_book_fills_partially_and_expires() -> None:
    s = sim()
    strat = Scripted([(0, {"side": Side.SELL, "qty": 10.0})])
    res = s.run([BOOK, tick(0), tick(20)], strat)
    assert sum(f.qty for f in res.fills) == 6.0
    o = res.orders[strat.ids[0]]
    assert o.status == "EXPIRED" and "depth exhausted" in o.reason and o.filled == 6.0


def test_ioc_limit_takes_what_crosses_and_expires_the_rest() -> None:
    s = sim()
    strat = Scripted([(0, {"side": Side.BUY, "qty": 2.0, "price": 100.0, "time_in_force": TimeInForce.IOC})])
    res = s.run([BOOK, tick(0), tick(20)], strat)
    assert [(f.qty, f.price) for f in res.fills] == [(1.0, 100.0)]
    assert res.orders[strat.ids[0]].status == "EXPIRED"


def test_gtc_limit_takes_what_crosses_and_rests_the_rest() -> None:
    s = sim()
    strat = Scripted([(0, {"side": Side.BUY, "qty": 2.0, "price": 100.0})])
    res = s.run([BOOK, tick(0), tick(20), (30 * MS, TRADE, 99.5, 1.0, True)], strat)
    assert [(f.qty, f.price, f.liquidity) for f in res.fills] == [(1.0, 100.0, TAKER), (1.0, 100.0, MAKER)]


def test_the_venue_rules_reject_an_order_off_the_lot_step() -> None:
    s = sim()
    strat = Scripted([(0, {"side": Side.BUY, "qty": 0.000015})])
    res = s.run([BOOK, tick(0), tick(20)], strat)
    o = res.orders[strat.ids[0]]
    assert o.status == "REJECTED" and "LOT_SIZE" in o.reason and not res.fills


def test_post_only_that_would_take_is_rejected() -> None:
    s = sim()
    strat = Scripted([(0, {"side": Side.BUY, "qty": 1.0, "price": 100.0, "order_type": OrderType.LIMIT_MAKER})])
    res = s.run([BOOK, tick(0), tick(20)], strat)
    assert res.orders[strat.ids[0]].status == "REJECTED"


def test_a_fill_before_the_cancel_arrives_stands() -> None:
    class CancelAtOnce(Scripted):
        def on_event(self, sim_, ev):
            super().on_event(sim_, ev)
            if ev[0] == 3 * MS:
                sim_.cancel(self.ids[0])

    s = sim(entry_ms=1)
    strat = CancelAtOnce([(0, {"side": Side.BUY, "qty": 1.0, "price": 99.0})])
    events = [BOOK, tick(0), tick(2), tick(3), (3 * MS + 500_000, TRADE, 98.5, 1.0, True), tick(10)]
    res = s.run(events, strat)
    assert len(res.fills) == 1 and res.orders[strat.ids[0]].status == "FILLED"


def test_an_order_sent_after_the_last_event_is_reported_as_never_arriving() -> None:
    s = sim(entry_ms=10)
    strat = Scripted([(20 * MS, {"side": Side.BUY, "qty": 1.0})])
    res = s.run([BOOK, tick(0), tick(20)], strat)
    o = res.orders[strat.ids[0]]
    assert o.status == "EXPIRED" and "never" not in o.reason and "ended" in o.reason


@pytest.mark.parametrize("bad", [{"entry_latency_ns": -1}, {"maker_fee": float("nan")}, {"taker_fee": 0.5}])
def test_bad_config_is_refused_naming_the_field(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SimExecConfig(**bad)


def test_bad_order_arguments_are_refused_at_once() -> None:
    s = sim()
    with pytest.raises(ValueError, match="quantity"):
        s.submit(Side.BUY, float("nan"))
    with pytest.raises(ValueError, match="price"):
        s.submit(Side.BUY, 1.0, -5.0)


@pytest.mark.skipif(not CAPTURES.exists(), reason="shared fixtures not mounted")
def test_the_real_capture_replays_deterministically_with_maker_and_taker_fills(tmp_path: Path) -> None:
    events = load_capture(CAPTURES / "spot_ethusdt_20240808.gz")[:12_000]
    assert {e[1] for e in events} == {TRADE, QUOTE, DEPTH, SNAPSHOT}
    inst = sim_instrument("binance_spot", "ETHUSDT", "USDT", Decimal("0"), Decimal("0.001"))

    def run():
        return TickSim(inst, SimExecConfig(maker_fee=0.0, taker_fee=0.001)).run(
            events, QuoteBothSides(0.01, 0.01, step=1e-4))

    a, b = run(), run()
    assert a.events == 12_000
    assert [(f.ts_ns, f.qty, f.price) for f in a.fills] == [(f.ts_ns, f.qty, f.price) for f in b.fills]
    kinds = {f.liquidity for f in a.fills}
    assert kinds == {MAKER, TAKER}
    assert "REJECTED" not in a.summary["orders"]
    assert a.summary["fees"] == pytest.approx(sum(f.fee for f in a.fills))
    out = write_outputs(a, tmp_path / "run")
    assert (out / "fills.csv").read_text().count("\n") == len(a.fills) + 1
    assert orjson.loads((out / "summary.json").read_bytes())["events"] == 12_000


def test_a_garbled_capture_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "c.gz"
    good = b'1 {"stream":"x@trade","data":{"p":"1.5","q":"2","m":true}}'
    p.write_bytes(gzip.compress(b"\n".join([good, good, b'3 {"stream":"x@trade","data":{"p":"oops"'])))
    with pytest.raises(CaptureError) as e:
        list(iter_capture(p))
    assert e.value.line == 3 and str(p) in str(e.value)


def test_a_non_finite_price_in_a_capture_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.gz"
    p.write_bytes(gzip.compress(b'1 {"stream":"x@trade","data":{"p":"NaN","q":"2","m":true}}\n'))
    with pytest.raises(CaptureError, match="non-finite"):
        list(iter_capture(p))


@pytest.mark.skipif(not CAPTURES.exists(), reason="shared fixtures not mounted")
def test_a_truncated_capture_is_named(tmp_path: Path) -> None:
    data = (CAPTURES / "spot_ethusdt_20240808.gz").read_bytes()
    p = tmp_path / "cut.gz"
    p.write_bytes(data[: len(data) // 50])
    with pytest.raises(CaptureError, match="truncated") as e:
        list(iter_capture(p))
    assert str(p) in str(e.value)


def test_a_quote_through_the_limit_fills_up_to_its_displayed_size() -> None:
    s = sim(entry_ms=1)
    strat = Scripted([(0, {"side": Side.BUY, "qty": 3.0, "price": 99.0})])
    events = [BOOK, tick(0), tick(2), (3 * MS, QUOTE, 98.0, 1.0, 98.5, 1.25), (4 * MS, QUOTE, 98.0, 1.0, 98.5, 5.0)]
    res = s.run(events, strat)
    assert [(f.ts_ns, f.qty, f.price, f.liquidity) for f in res.fills] == [
        (3 * MS, 1.25, 99.0, MAKER), (4 * MS, 1.75, 99.0, MAKER)]


DEPTH_CSVS = Path("/work/shared/fixtures/marketdata/nautilus_trader")


@pytest.mark.skipif(not DEPTH_CSVS.exists(), reason="shared fixtures not mounted")
def test_the_real_depth_csvs_replay_and_a_sell_walks_their_bids() -> None:
    from nautilus_hmm.research.ticks import load_events

    events = load_events(DEPTH_CSVS / "binance_btcusdt-depth-snap.csv",
                         DEPTH_CSVS / "binance_btcusdt-depth-update.csv")
    assert [(e[1], len(e[2]), len(e[3])) for e in events] == [(SNAPSHOT, 100, 0), (DEPTH, 23, 77)]
    top = sorted(events[0][2], reverse=True)[:3]
    s = sim(entry_ms=1)
    # The snapshot rows of this fixture are all bids (no ask, so no mid for a MARKET order):
    # an IOC limit down to the second level sells into the top two.
    qty = round(top[0][1] + top[1][1] / 2, 5)
    strat = Scripted([(events[0][0], {"side": Side.SELL, "qty": qty, "price": top[1][0],
                                      "time_in_force": TimeInForce.IOC})])
    res = s.run([events[0], events[1]], strat)
    assert res.orders[strat.ids[0]].status == "FILLED", res.orders[strat.ids[0]].reason
    assert [(f.price, f.liquidity) for f in res.fills] == [(top[0][0], TAKER), (top[1][0], TAKER)]
    assert [f.qty for f in res.fills] == [top[0][1], pytest.approx(top[1][1] / 2)]


def test_depth_only_data_sets_the_best_levels_from_the_book() -> None:
    s = sim()
    s.run([BOOK, (MS, DEPTH, [(99.5, 1.0)], [(100.0, 0.0)])])
    assert (s.best_bid, s.best_ask) == (99.5, 101.0)


def test_a_depth_csv_with_a_bad_row_is_named(tmp_path: Path) -> None:
    from nautilus_hmm.research.ticks import iter_depth_csv

    p = tmp_path / "d.csv"
    p.write_text("symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu\n"
                 "BTCUSDT,1,2,2,b,snap,100.0,1.0,-1\nBTCUSDT,1,2,2,x,snap,100.0,1.0,-1\n")
    with pytest.raises(CaptureError) as e:
        list(iter_depth_csv(p))
    assert e.value.line == 3 and "side 'x'" in str(e.value)
    p.write_text("ts,price\n1,2\n")
    with pytest.raises(CaptureError, match="header"):
        list(iter_depth_csv(p))


def test_events_out_of_time_order_are_refused_naming_the_event() -> None:
    with pytest.raises(ValueError, match="event 3 at 1000000 ns is before"):
        sim().run([BOOK, tick(2), tick(1)])


# ---------------------------------------------------------------- ended orders reported; stepwise driving


class Reporting(Scripted):
    """Scripted, also hearing orders that end without (more) fills."""

    def __init__(self, orders) -> None:
        super().__init__(orders)
        self.updates: list = []

    def on_order(self, sim_: TickSim, upd) -> None:
        self.updates.append((sim_.now_ns, upd.client_order_id, upd.status, upd.reason))


def test_orders_ending_without_fills_are_reported_after_the_response_latency() -> None:
    s = sim(entry_ms=10, resp_ms=7)
    strat = Reporting([(0, {"side": Side.BUY, "qty": 0.0012345}),           # off the lot step: REJECTED
                       (0, {"side": Side.BUY, "qty": 1.0, "price": 95.0}),  # rests, canceled below
                       (0, {"side": Side.BUY, "qty": 60.0})])              # more than the book: EXPIRED
    cancel_at = 20 * MS

    class Canceling(Reporting):
        def on_event(self, sim_, ev) -> None:
            super().on_event(sim_, ev)
            if ev[0] == cancel_at:
                sim_.cancel(self.ids[1])

    c = Canceling(strat.pending)
    s.run([BOOK, tick(0), tick(10), tick(17), tick(20), tick(30), tick(37), tick(40)], c)
    got = {cid: (at, status) for at, cid, status, _ in c.updates}
    rejected, canceled, expired = c.ids
    assert got[rejected] == (17 * MS, "REJECTED") and got[expired] == (17 * MS, "EXPIRED")
    assert got[canceled] == (37 * MS, "CANCELED")  # cancel sent at 20 ms, arrived at 30, reported at 37
    assert "LOT_SIZE" in next(r for _, cid, _, r in c.updates if cid == rejected)
    assert len(c.seen) == 3  # the expired order's fills (1 + 2 + 50 of the book) still reach it


def test_stepwise_driving_handles_arrivals_and_reports_at_their_own_times() -> None:
    s = sim(entry_ms=10, resp_ms=5)
    strat = Scripted([])
    s.apply_event(BOOK)
    s.now_ns = 1 * MS
    s.submit(Side.BUY, 0.5)
    assert s.due_ns() == 11 * MS
    assert s.process_next(strat) == 11 * MS and s.now_ns == 11 * MS  # arrival: matched against the book
    assert [f.price for f in s.fills] == [100.0] and not strat.seen
    assert s.due_ns() == 16 * MS
    assert s.process_next(strat) == 16 * MS and [f.qty for f in strat.seen] == [0.5]
    assert s.due_ns() == 2**63 - 1
    with pytest.raises(ValueError, match="before the sim's time"):
        s.apply_event(tick(15))
