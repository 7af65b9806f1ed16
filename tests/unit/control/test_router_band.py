"""The router's no-trade band: a re-size for a capital change alone is re-sent only past the band."""

from __future__ import annotations

from decimal import Decimal

from nautilus_hmm.control.router import Route, RouterConfig
from tests.unit.control.conftest import BTC, make_rig

D = Decimal


def rig_with_a_target(band: float = 0.1):
    rig = make_rig([Route("a", (BTC,)), Route("b", (BTC,))], config=RouterConfig(resize_band=band))
    rig.router.set_shares({"a": 0.5, "b": 0.5})
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, exposure=1.0)  # 5_000 / 100
    assert rig.router.target("a", BTC) == D("50")
    return rig


def test_a_share_change_of_one_percent_does_not_resend_the_target() -> None:
    rig = rig_with_a_target()
    sent = len(rig.of_target())
    rig.router.set_shares({"a": 0.505, "b": 0.495})
    assert rig.router.target("a", BTC) == D("50")
    assert len(rig.of_target()) == sent


def test_a_share_change_of_twenty_percent_resends_the_target() -> None:
    rig = rig_with_a_target()
    rig.router.set_shares({"a": 0.6, "b": 0.4})
    assert rig.router.target("a", BTC) == D("60")
    assert rig.net(BTC) == D("60")


def test_a_new_signal_always_goes_through_even_within_the_band() -> None:
    rig = rig_with_a_target()
    rig.router.set_shares({"a": 0.505, "b": 0.495})  # held at 50 by the band
    rig.target("a", BTC, exposure=1.0)  # the same exposure restated: sized on today's capital
    assert rig.router.target("a", BTC) == D("50.5")
    assert rig.net(BTC) == D("50.5")


def test_a_mark_drift_within_the_band_is_not_resent_at_a_rebalance() -> None:
    rig = rig_with_a_target()
    rig.bar(BTC, 103.0)
    rig.router.set_shares({"a": 0.5, "b": 0.5})
    assert rig.router.target("a", BTC) == D("50")


def test_a_band_of_zero_resizes_on_every_capital_change() -> None:
    rig = rig_with_a_target(band=0.0)
    rig.router.set_shares({"a": 0.505, "b": 0.495})
    assert rig.router.target("a", BTC) == D("50.5")


def test_a_disabled_strategy_is_closed_whatever_the_band() -> None:
    rig = rig_with_a_target(band=10.0)
    rig.router.set_state("a", "disabled", "test", "test")
    assert rig.router.target("a", BTC) == 0
