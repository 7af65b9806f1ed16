"""The sub-account invariants over random target / fill / cross sequences (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nautilus_hmm.control.accounts import HOUSE, Book
from nautilus_hmm.domain.instruments import InstrumentId

BTC = InstrumentId("sim", "BTCUSDT")
ETH = InstrumentId("sim", "ETHUSDT")
IIDS = (BTC, ETH)
MULT = {BTC: Decimal(1), ETH: Decimal("0.01")}
ACCOUNTS = ("a", "b", "c:canary", HOUSE)

qty = st.decimals(min_value=Decimal("-5"), max_value=Decimal("5"), places=4, allow_nan=False)
price = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("5000"), places=3, allow_nan=False)
fee = st.decimals(min_value=Decimal(0), max_value=Decimal("3"), places=6, allow_nan=False)
target_step = st.tuples(st.just("target"), st.sampled_from(IIDS), st.sampled_from(ACCOUNTS[:3]), qty)
fill_step = st.tuples(st.just("fill"), st.sampled_from(IIDS), qty, price, fee, st.booleans())
cross_step = st.tuples(st.just("cross"), st.sampled_from(IIDS), price)
steps = st.lists(st.one_of(target_step, fill_step, cross_step), max_size=40)


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.lists(price, min_size=2, max_size=2))
def test_accounts_sum_to_the_real_position_and_pnl(seq: list[tuple], marks: list[Decimal]) -> None:
    book = Book(MULT)
    whole = Book(MULT)  # one account that takes every real fill
    targets: dict[InstrumentId, dict[str, Decimal]] = {i: {} for i in IIDS}
    real = {i: Decimal(0) for i in IIDS}
    for step in seq:
        if step[0] == "target":
            _, iid, account, q = step
            targets[iid][account] = q
        elif step[0] == "cross":
            _, iid, px = step
            book.cross(iid, targets[iid], px)
        else:
            _, iid, q, px, f, base_fee = step
            if q == 0:
                continue
            bf = (f / 1000).quantize(Decimal("1e-9")) if base_fee else Decimal(0)
            book.attribute(iid, q, px, f, targets[iid], base_fee_qty=bf)
            whole.attribute(iid, q, px, f, {}, base_fee_qty=bf)
            real[iid] += q - bf
    mark = dict(zip(IIDS, marks, strict=True))
    for iid in IIDS:
        assert book.total_position(iid) == real[iid] == whole.position(HOUSE, iid)
    total = sum((book.pnl(a, mark) for a in book.accounts()), Decimal(0))
    assert total == whole.pnl(HOUSE, mark)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.tuples(qty, price), max_size=20), price)
def test_crossing_alone_never_changes_the_totals(seq: list[tuple[Decimal, Decimal]], mark: Decimal) -> None:
    book = Book()
    targets: dict[str, Decimal] = {}
    for i, (q, px) in enumerate(seq):
        targets[ACCOUNTS[i % 3]] = q
        book.cross(BTC, targets, px)
    assert book.total_position(BTC) == 0
    assert sum((book.pnl(a, {BTC: mark}) for a in book.accounts()), Decimal(0)) == 0
