"""The router's per-fill and per-order memories stay bounded over a long run (`core.bounded`):
many fills leave at most the window of trade keys and order ids, and a copy of a recent fill
is still attributed once."""

from __future__ import annotations

import pytest

from nautilus_hmm.control import router as router_mod
from nautilus_hmm.control.router import Route
from nautilus_hmm.domain.enums import Side
from nautilus_hmm.messages import Fill, FillAttributed
from tests.unit.control.conftest import BTC, make_rig

N = 500  # fills, >> the bounds below


@pytest.fixture
def small_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_mod, "SEEN_TRADES_KEPT", 20)
    monkeypatch.setattr(router_mod, "ORDER_IDS_KEPT", 10)


def round_trips(rig, n: int) -> list[Fill]:  # type: ignore[no-untyped-def]
    fills = []
    for i in range(n):
        rig.target("a", BTC, qty="1" if i % 2 == 0 else "0")
        fills.append(rig.fill(BTC, Side.BUY if i % 2 == 0 else Side.SELL, "1", "100"))
    return fills


def test_the_trade_window_and_the_order_ids_stay_bounded(small_bounds: None) -> None:
    rig = make_rig([Route("a", (BTC,))])
    rig.bar(BTC, 100.0)
    round_trips(rig, N)
    r = rig.router
    assert len(r._seen_trades) == 20
    assert len(r._tally["a"].order_ids) == 10
    st = r.stats("a")
    assert (st.fills, st.orders, st.round_trips) == (N, N, N // 2)  # counts are not bounded: memory is


def test_a_copy_of_a_recent_fill_is_attributed_once_after_many_fills(small_bounds: None) -> None:
    rig = make_rig([Route("a", (BTC,))])
    rig.bar(BTC, 100.0)
    fills = round_trips(rig, N)
    attributed = len(rig.of(FillAttributed))
    rig.bus.publish(fills[-1])  # the newest fill again
    rig.bus.publish(fills[-15])  # one inside the window
    assert len(rig.of(FillAttributed)) == attributed
    assert rig.router.position("a", BTC) == 0
    assert rig.router.stats("a").fills == N


def test_more_fills_of_one_order_count_it_once() -> None:
    rig = make_rig([Route("a", (BTC,))])
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="3")
    for t in ("x1", "x2", "x3"):
        m = rig.fill(BTC, Side.BUY, "1", "100", trade_id=t)
        assert m.client_order_id == f"c-{t}"
    # three orders so far (the rig's fills name their own order); now three fills of one order
    for t in ("y1", "y2", "y3"):
        now = rig.clock.time_ns()
        rig.bus.publish(Fill(ts_event_ns=now, ts_init_ns=now, instrument_id=BTC, client_order_id="one",
                             venue_order_id=None, trade_id=t, side=Side.SELL, qty=m.qty, price=m.price,
                             fee=m.fee, fee_asset=m.fee_asset, liquidity=m.liquidity))
    assert (rig.router.stats("a").fills, rig.router.stats("a").orders) == (6, 4)
