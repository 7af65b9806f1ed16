"""The router's float PnL samples: cached per bar, rebuilt after every booking; tails of the series."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nautilus_hmm.control.router import Route
from nautilus_hmm.domain.enums import Side
from tests.unit.control.conftest import BTC, make_rig


def rows(rig) -> dict[str, float]:
    return {sid: pnl for sid, _, pnl, _ in rig.router.equity_rows()}


def test_equity_rows_after_a_booking_in_the_same_bar_show_it() -> None:
    rig = make_rig([Route("a", (BTC,)), Route("b", (BTC,))])
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "1", "100")
    rig.bar(BTC, 110.0)
    assert rows(rig)["a"] == pytest.approx(10.0)
    rig.fill(BTC, Side.BUY, "1", "100", fee="2")  # the same bar: a fill over the target, fee 2
    assert rows(rig)["a"] + rows(rig)["b"] + rig.router.house_view()["pnl_usd"] == pytest.approx(18.0)
    assert rows(rig)["a"] == pytest.approx(rig.router.pnl_usd("a"))
    house = rig.router.house_view()["pnl_usd"]
    equities = [equity for _, equity, _, _ in rig.router.equity_rows()]
    assert sum(equities) + house == pytest.approx(rig.equity[0])  # the house's float PnL counted once


def test_equity_rows_follow_the_next_bar_mark() -> None:
    rig = make_rig([Route("a", (BTC,))])
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="2")
    rig.fill(BTC, Side.BUY, "2", "100")
    rig.bar(BTC, 105.0)
    assert rows(rig)["a"] == pytest.approx(10.0)
    rig.bar(BTC, 90.0)
    assert rows(rig)["a"] == pytest.approx(-20.0) == rig.router.pnl_series("a")[-1][1]


def test_pnl_series_returns_only_the_tail_asked_for() -> None:
    rig = make_rig([Route("a", (BTC,))])
    for px in (100.0, 101.0, 102.0, 103.0):
        rig.bar(BTC, px)
    whole = rig.router.pnl_series("a")
    assert len(whole) == 4
    assert rig.router.pnl_series("a", last_n=2) == whole[-2:]
    assert rig.router.pnl_series("a", last_n=10) == whole
    assert rig.router.pnl_series("a", last_n=0) == []
    assert rig.router.pnl_series("nobody", last_n=2) == []


def test_a_reload_that_makes_the_canary_trade_counts_its_account_in_the_samples() -> None:
    rig = make_rig([Route("a", (BTC,))])
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "1", "100")
    rig.bar(BTC, 110.0)
    assert rows(rig)["a"] == pytest.approx(10.0)
    rig.router.configure({"a": Route("a", (BTC,), canary_share=0.5)})
    rig.target("a", BTC, qty="1", lane="canary")
    rig.fill(BTC, Side.BUY, "1", "110")
    rig.bar(BTC, 120.0)
    assert rows(rig)["a"] == pytest.approx(30.0)
    assert rig.router.position("a", BTC, lane="canary") == Decimal(1)
