"""Matching engine: next-open market fills, limits, post-only, TIF, partial fills, fees, reduce-only."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from nautilus_hmm.core.errors import OrderRejected
from nautilus_hmm.domain.enums import (
    InstrumentKind,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.messages import Bar
from nautilus_hmm.venues.sim.matching import Counter, MatchingEngine, NullLedger, SimOrder

IID = InstrumentId("sim", "BTCUSDT")
INST = Instrument(
    id=IID, base_asset="BTC", quote_asset="USDT", kind=InstrumentKind.SPOT,
    tick_size=D("0.01"), step_size=D("0.00001"), min_qty=D("0.00001"), max_qty=D("9000"),
    min_notional=D("5"),
)
S = 1_000_000_000
T0 = 1_740_798_000 * S
_seq = iter(range(1, 10_000))


def bar(i: int, o: float, h: float, lo: float, c: float, v: float = 100.0) -> Bar:
    ts = T0 + i * 60 * S
    return Bar(ts_event_ns=ts, ts_init_ns=ts + 60 * S, instrument_id=IID, interval_s=60,
               open=o, high=h, low=lo, close=c, volume=v)


def engine(**kw) -> MatchingEngine:
    kw.setdefault("maker_fee", D("0.001"))
    kw.setdefault("taker_fee", D("0.002"))
    eng = MatchingEngine(INST, **kw)
    eng.on_bar(bar(0, 100, 101, 99, 100))  # latest bar: close 100
    return eng


def req(side: Side, qty: str, otype: OrderType = OrderType.MARKET, price: str | None = None,
        tif: TimeInForce = TimeInForce.GTC, reduce_only: bool = False, cid: str | None = None) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid or f"c-{next(_seq)}", instrument_id=IID, side=side, order_type=otype,
        quantity=D(qty), price=None if price is None else D(price), time_in_force=tif, reduce_only=reduce_only,
    )


def fills(events) -> list[VenueFill]:
    return [e for e in events if isinstance(e, VenueFill)]


def orders(events) -> list[VenueOrder]:
    return [e for e in events if isinstance(e, VenueOrder)]


# ---------------------------------------------------------------- market orders


def test_market_order_fills_at_the_next_bars_open():
    eng = engine()
    [ack] = eng.submit(req(Side.BUY, "0.5"), T0 + 60 * S)
    assert ack.status is OrderStatus.ACCEPTED
    ev = eng.on_bar(bar(1, 102.5, 104, 101, 103))
    [f] = fills(ev)
    assert (f.qty, f.price, f.liquidity, f.ts_ns) == (D("0.5"), D("102.50"), Liquidity.TAKER, T0 + 60 * S)
    [o] = orders(ev)
    assert o.status is OrderStatus.FILLED and o.avg_px == D("102.50")
    assert not eng.has_orders


def test_market_order_partially_fills_on_bar_volume_and_finishes_next_bar():
    eng = engine(bar_volume_fraction=0.5)
    eng.submit(req(Side.SELL, "0.5"), T0)
    ev1 = eng.on_bar(bar(1, 99, 100, 98, 99.5, v=0.6))  # offers 0.3
    assert [f.qty for f in fills(ev1)] == [D("0.3")]
    assert orders(ev1)[-1].status is OrderStatus.PARTIALLY_FILLED
    ev2 = eng.on_bar(bar(2, 97, 98, 96, 97, v=10))
    [f2] = fills(ev2)
    assert (f2.qty, f2.price) == (D("0.2"), D("97.00"))
    last = orders(ev2)[-1]
    assert last.status is OrderStatus.FILLED
    assert last.avg_px == (D("0.3") * 99 + D("0.2") * 97) / D("0.5")


def test_orders_share_one_bars_liquidity_in_arrival_order():
    eng = engine()
    a = req(Side.BUY, "0.4")
    b = req(Side.BUY, "0.4")
    eng.submit(a, T0)
    eng.submit(b, T0)
    ev = eng.on_bar(bar(1, 100, 101, 99, 100, v=0.5))
    got = {f.client_order_id: f.qty for f in fills(ev)}
    assert got == {a.client_order_id: D("0.4"), b.client_order_id: D("0.1")}


def test_market_order_without_any_price_is_rejected():
    eng = MatchingEngine(INST)
    with pytest.raises(OrderRejected) as ei:
        eng.submit(req(Side.BUY, "0.1"), T0)
    assert ei.value.code == "-2010"


def test_market_order_in_trade_mode_fills_at_the_next_trade_up_to_its_size():
    eng = MatchingEngine(INST)
    eng.on_trade(100.0, 1.0, T0)
    eng.submit(req(Side.BUY, "0.25"), T0 + S)
    ev = eng.on_trade(100.07, 0.1, T0 + 2 * S)
    [f] = fills(ev)
    assert (f.qty, f.price, f.ts_ns) == (D("0.1"), D("100.07"), T0 + 2 * S)
    ev = eng.on_trade(100.10, 5.0, T0 + 3 * S)
    assert fills(ev)[0].qty == D("0.15")
    assert orders(ev)[-1].status is OrderStatus.FILLED


# ---------------------------------------------------------------- limits


def test_resting_buy_limit_fills_at_its_price_when_the_low_touches():
    eng = engine()
    eng.submit(req(Side.BUY, "1", OrderType.LIMIT, "98.00"), T0)
    assert fills(eng.on_bar(bar(1, 99.5, 100, 98.01, 99))) == []
    [f] = fills(eng.on_bar(bar(2, 99, 99.5, 98.00, 98.5)))
    assert (f.price, f.liquidity) == (D("98.00"), Liquidity.MAKER)


def test_resting_sell_limit_fills_when_the_high_touches():
    eng = engine()
    eng.submit(req(Side.SELL, "1", OrderType.LIMIT, "102.00"), T0)
    [f] = fills(eng.on_bar(bar(1, 100, 102.5, 99.5, 101)))
    assert (f.price, f.liquidity) == (D("102.00"), Liquidity.MAKER)


def test_resting_limit_gapped_through_fills_at_its_limit_not_the_open():
    eng = engine()
    eng.submit(req(Side.BUY, "1", OrderType.LIMIT, "98.00"), T0)
    [f] = fills(eng.on_bar(bar(1, 95, 96, 94, 95)))
    assert (f.price, f.liquidity) == (D("98.00"), Liquidity.MAKER)


def test_marketable_limit_fills_at_the_open_when_the_open_crosses():
    eng = engine()
    eng.submit(req(Side.BUY, "1", OrderType.LIMIT, "101.00"), T0)  # last 100: marketable
    [f] = fills(eng.on_bar(bar(1, 100.40, 101, 100, 100.5)))
    assert (f.price, f.liquidity) == (D("100.40"), Liquidity.TAKER)


def test_marketable_limit_not_crossing_the_open_rests_and_fills_as_maker():
    eng = engine()
    eng.submit(req(Side.BUY, "1", OrderType.LIMIT, "101.00"), T0)
    [f] = fills(eng.on_bar(bar(1, 101.50, 102, 100.90, 101)))
    assert (f.price, f.liquidity) == (D("101.00"), Liquidity.MAKER)


def test_limit_needs_a_price():
    eng = engine()
    with pytest.raises(OrderRejected) as ei:
        eng.submit(req(Side.BUY, "1", OrderType.LIMIT), T0)
    assert ei.value.code == "-1102"


# ---------------------------------------------------------------- post-only


def test_post_only_that_would_cross_is_rejected():
    eng = engine()
    with pytest.raises(OrderRejected) as ei:
        eng.submit(req(Side.BUY, "1", OrderType.LIMIT_MAKER, "100.00"), T0)
    assert ei.value.code == "-2010"
    assert "would immediately match and take" in ei.value.message
    assert not eng.has_orders


def test_post_only_checks_against_the_best_quote_when_known():
    eng = engine()
    eng.set_quote(99.98, 100.02)
    [ack] = eng.submit(req(Side.BUY, "1", OrderType.LIMIT_MAKER, "100.00"), T0)
    assert ack.status is OrderStatus.ACCEPTED
    with pytest.raises(OrderRejected):
        eng.submit(req(Side.SELL, "1", OrderType.LIMIT_MAKER, "99.98"), T0)


def test_post_only_that_rests_fills_as_maker():
    eng = engine()
    eng.submit(req(Side.SELL, "1", OrderType.LIMIT_MAKER, "100.50"), T0)
    [f] = fills(eng.on_bar(bar(1, 100.2, 100.6, 100, 100.4)))
    assert (f.price, f.liquidity) == (D("100.50"), Liquidity.MAKER)


# ---------------------------------------------------------------- time in force


def test_ioc_remainder_expires_after_the_available_fill():
    eng = engine()
    eng.submit(req(Side.BUY, "0.5", tif=TimeInForce.IOC), T0)
    ev = eng.on_bar(bar(1, 100, 101, 99, 100, v=0.3))
    assert [f.qty for f in fills(ev)] == [D("0.3")]
    final = orders(ev)[-1]
    assert final.status is OrderStatus.EXPIRED
    assert final.filled_qty == D("0.3")
    assert not eng.has_orders


def test_ioc_limit_not_marketable_on_arrival_expires_at_once():
    eng = engine()
    [ev] = eng.submit(req(Side.BUY, "0.5", OrderType.LIMIT, "99.00", tif=TimeInForce.IOC), T0)
    assert ev.status is OrderStatus.EXPIRED
    assert not eng.has_orders


def test_ioc_limit_that_does_not_cross_the_open_expires_unfilled():
    eng = engine()
    eng.submit(req(Side.BUY, "0.5", OrderType.LIMIT, "100.50", tif=TimeInForce.IOC), T0)
    ev = eng.on_bar(bar(1, 101, 102, 100, 101))
    assert fills(ev) == []
    assert orders(ev)[-1].status is OrderStatus.EXPIRED


def test_fok_without_enough_liquidity_expires_with_no_fill():
    eng = engine()
    eng.submit(req(Side.BUY, "0.5", tif=TimeInForce.FOK), T0)
    ev = eng.on_bar(bar(1, 100, 101, 99, 100, v=0.49))
    assert fills(ev) == []
    [o] = orders(ev)
    assert o.status is OrderStatus.EXPIRED and o.filled_qty == 0


def test_fok_with_enough_liquidity_fills_completely():
    eng = engine()
    eng.submit(req(Side.BUY, "0.5", tif=TimeInForce.FOK), T0)
    ev = eng.on_bar(bar(1, 100, 101, 99, 100, v=0.5))
    assert [f.qty for f in fills(ev)] == [D("0.5")]
    assert orders(ev)[-1].status is OrderStatus.FILLED


# ---------------------------------------------------------------- fees and ids


def test_taker_and_maker_fees_are_charged_in_quote():
    eng = engine()
    eng.submit(req(Side.BUY, "0.5"), T0)
    eng.submit(req(Side.SELL, "0.3", OrderType.LIMIT, "105.00"), T0)
    taker = fills(eng.on_bar(bar(1, 102.00, 103, 101, 102)))
    maker = fills(eng.on_bar(bar(2, 104, 106, 103, 105)))
    assert taker[0].fee == D("0.5") * D("102.00") * D("0.002")  # 0.102
    assert taker[0].fee_asset == "USDT"
    assert maker[0].fee == D("0.3") * D("105.00") * D("0.001")  # 0.0315
    assert maker[0].liquidity is Liquidity.MAKER


def test_trade_and_order_ids_are_unique_and_increasing():
    trade_ids, order_ids = Counter(41), Counter(7)
    eng = engine(trade_ids=trade_ids, order_ids=order_ids)
    acks = [eng.submit(req(Side.BUY, "0.1"), T0)[0] for _ in range(3)]
    ev = eng.on_bar(bar(1, 100, 101, 99, 100, v=0.25))  # three partial/complete fills
    ev = [*ev, *eng.on_bar(bar(2, 100, 101, 99, 100))]
    ids = [int(f.trade_id) for f in fills(ev)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[0] == 42
    assert [a.venue_order_id for a in acks] == ["8", "9", "10"]


# ---------------------------------------------------------------- reduce-only


def test_reduce_only_that_would_open_a_position_is_rejected():
    eng = engine()
    with pytest.raises(OrderRejected) as ei:
        eng.submit(req(Side.SELL, "0.1", reduce_only=True), T0)
    assert ei.value.code == "-2022"


def test_reduce_only_fill_is_capped_at_the_position():
    ledger = NullLedger()
    eng = engine(ledger=ledger)
    eng.submit(req(Side.BUY, "0.3"), T0)
    eng.on_bar(bar(1, 100, 101, 99, 100))
    eng.submit(req(Side.SELL, "0.5", reduce_only=True), T0 + 60 * S)
    ev = eng.on_bar(bar(2, 101, 102, 100, 101))
    assert [f.qty for f in fills(ev)] == [D("0.3")]
    final = orders(ev)[-1]
    assert final.status is OrderStatus.CANCELED and "reduce-only" in final.reason
    assert ledger.positions[IID] == 0


def test_reduce_only_buy_covers_a_short():
    ledger = NullLedger()
    eng = engine(ledger=ledger)
    eng.submit(req(Side.SELL, "0.2"), T0)
    eng.on_bar(bar(1, 100, 101, 99, 100))
    eng.submit(req(Side.BUY, "0.2", reduce_only=True), T0)
    ev = eng.on_bar(bar(2, 100, 101, 99, 100))
    assert orders(ev)[-1].status is OrderStatus.FILLED
    assert ledger.positions[IID] == 0


# ---------------------------------------------------------------- funds


class TightLedger(NullLedger):
    """Can pay for at most `max_qty` per fill."""

    def __init__(self, max_qty: str) -> None:
        super().__init__()
        self.max_qty = D(max_qty)
        self.done: list[str] = []

    def affordable_qty(self, order: SimOrder, qty: D, price: D, fee_rate: D) -> D:
        return min(qty, self.max_qty)

    def on_done(self, order: SimOrder) -> None:
        self.done.append(order.client_order_id)


def test_fill_capped_by_funds_expires_the_remainder():
    ledger = TightLedger("0.2")
    eng = engine(ledger=ledger)
    r = req(Side.BUY, "0.5")
    eng.submit(r, T0)
    ev = eng.on_bar(bar(1, 100, 101, 99, 100))
    assert [f.qty for f in fills(ev)] == [D("0.2")]
    final = orders(ev)[-1]
    assert final.status is OrderStatus.EXPIRED and "insufficient balance" in final.reason
    assert ledger.done == [r.client_order_id]


# ---------------------------------------------------------------- filters, cancel, fast path


@pytest.mark.parametrize(
    ("qty", "otype", "price", "code"),
    [
        ("0.000001", OrderType.MARKET, None, "-1013"),  # below step
        ("0.00002", OrderType.MARKET, None, "-1013"),  # notional 0.002 < 5
        ("0.1", OrderType.LIMIT, "99.001", "-1013"),  # off tick
        ("0.1", OrderType.MARKET, "100", "-1106"),  # price on a market order
        ("0", OrderType.MARKET, None, "-1013"),
    ],
)
def test_filters_reject_bad_orders_with_codes(qty, otype, price, code):
    eng = engine()
    with pytest.raises(OrderRejected) as ei:
        eng.submit(req(Side.BUY, qty, otype, price), T0)
    assert ei.value.code == code


def test_cancel_removes_a_resting_order():
    eng = engine()
    r = req(Side.BUY, "1", OrderType.LIMIT, "95.00")
    eng.submit(r, T0)
    snap = eng.cancel(r.client_order_id, T0 + S)
    assert snap is not None and snap.status is OrderStatus.CANCELED and snap.ts_ns == T0 + S
    assert fills(eng.on_bar(bar(1, 96, 97, 90, 95))) == []
    assert eng.cancel(r.client_order_id, T0 + 2 * S) is None
    assert eng.cancel("never-seen", T0) is None


def test_bar_without_open_orders_only_moves_the_last_price():
    eng = engine()
    assert len(eng.on_bar(bar(1, 100, 110, 90, 107.5))) == 0
    assert eng.last_price == 107.5


def test_order_round_trips_through_its_dict_form():
    eng = engine()
    r = req(Side.SELL, "0.5", OrderType.LIMIT, "101.00")
    eng.submit(r, T0)
    eng.on_bar(bar(1, 100, 101, 99, 100, v=0.2))
    o = eng.get(r.client_order_id)
    back = SimOrder.from_dict(o.to_dict())
    assert back.snapshot() == o.snapshot()
    assert (back.lock_remaining, back.taker_pending, back.fees) == (o.lock_remaining, o.taker_pending, o.fees)
