"""Router invariants over random sequences of targets, state changes, bars and engine fills (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nautilus_hmm.control.accounts import HOUSE, Book
from nautilus_hmm.control.router import Route
from nautilus_hmm.domain.enums import Side
from tests.unit.control.conftest import BTC, ETH, make_rig

IIDS = (BTC, ETH)
ROUTES = [Route("a", IIDS), Route("b", IIDS, quota_usd=800.0), Route("h", IIDS, canary_share=0.3)]

target = st.tuples(st.just("target"), st.sampled_from(("a", "b", "h")), st.sampled_from(IIDS),
                   st.sampled_from(("production", "canary")),
                   st.decimals(min_value=-4, max_value=4, places=3), st.booleans())
state = st.tuples(st.just("state"), st.sampled_from(("a", "b", "h")), st.sampled_from(("active", "reduce", "disabled")))
bar = st.tuples(st.just("bar"), st.sampled_from(IIDS), st.integers(min_value=50, max_value=150))
fill = st.tuples(st.just("fill"), st.sampled_from(IIDS), st.decimals(min_value=-5, max_value=5, places=3),
                 st.integers(min_value=50, max_value=150), st.decimals(min_value=0, max_value=1, places=4))
engine = st.tuples(st.just("engine"), st.sampled_from(IIDS), st.integers(min_value=50, max_value=150))


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(target, state, bar, fill, engine), max_size=30))
def test_strategy_books_sum_to_the_real_position_and_pnl(seq: list[tuple]) -> None:
    rig = make_rig(ROUTES)
    r = rig.router
    whole = Book()
    real = {i: Decimal(0) for i in IIDS}
    for step in seq:
        kind = step[0]
        if kind == "target":
            _, sid, iid, lane, x, as_exposure = step
            if as_exposure:
                rig.target(sid, iid, exposure=float(x) / 4, lane=lane)
            else:
                rig.target(sid, iid, qty=str(x), lane=lane)
        elif kind == "state":
            r.set_state(step[1], step[2], "test", "test")
        elif kind == "bar":
            rig.bar(step[1], float(step[2]))
        elif kind == "fill" and step[2] != 0:
            _, iid, q, px, fee = step
            rig.fill(iid, Side.BUY if q > 0 else Side.SELL, str(abs(q)), str(px), str(fee))
            whole.attribute(iid, q, Decimal(px), fee, {})
            real[iid] += q
        elif kind == "engine":
            # the engine trades the difference to the last net target, all at once
            _, iid, px = step
            net = r.net_target(iid)
            delta = (net or Decimal(0)) - real[iid]
            if delta != 0:
                rig.fill(iid, Side.BUY if delta > 0 else Side.SELL, str(abs(delta)), str(px))
                whole.attribute(iid, delta, Decimal(px), Decimal(0), {})
                real[iid] += delta
    marks = {BTC: Decimal("101"), ETH: Decimal("99")}
    for iid in IIDS:
        assert r.book.total_position(iid) == real[iid]
    total = sum((r.book.pnl(a, marks) for a in r.book.accounts()), Decimal(0))
    assert total == whole.pnl(HOUSE, marks)
    for iid in IIDS:
        tgts = r._targets.get(iid, {})
        if tgts:
            assert r.net_target(iid) == sum(tgts.values(), Decimal(0))
