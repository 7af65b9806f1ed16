"""The strategy router: sizing, states, quotas, netting, crossing, attribution, stats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nautilus_hmm.control.accounts import HOUSE
from nautilus_hmm.control.router import Route
from nautilus_hmm.domain.enums import InstrumentKind, Side
from nautilus_hmm.messages import FillAttributed, RouterDenied, StrategyStateChanged, TargetPosition
from tests.unit.control.conftest import BTC, ETH, instrument, make_rig

D = Decimal


def two(**kw: object) -> list[Route]:
    return [Route("a", (BTC, ETH), **kw), Route("b", (BTC,), **kw)]  # type: ignore[arg-type]


def test_exposure_is_sized_by_capital_mark_and_multiplier() -> None:
    rig = make_rig(two(), instruments={BTC: instrument(BTC, "10"), ETH: instrument(ETH)})
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, exposure=0.5)  # capital 10_000 / 2 strategies; 2_500 / (100 x 10)
    assert rig.router.target("a", BTC) == D("2.5")
    assert rig.net(BTC) == D("2.5")
    assert rig.of(TargetPosition)[-1].strategy_id == "router"


def test_exposure_without_a_mark_is_held_until_the_first_bar() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, exposure=1.0)
    assert rig.net(BTC) is None
    rig.bar(BTC, 50.0)
    assert rig.net(BTC) == D("100")


def test_fixed_quantity_targets_are_used_as_given_without_a_mark() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, qty="0.3")
    assert rig.net(BTC) == D("0.3")


def test_opposite_targets_cross_internally_and_the_net_goes_to_the_engine() -> None:
    rig = make_rig(two())
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="2")
    rig.target("b", BTC, qty="-1")
    assert rig.net(BTC) == D("1")
    crosses = [m for m in rig.of(FillAttributed) if m.kind == "cross"]
    assert {(m.strategy_id, m.qty, m.price) for m in crosses} == {("a", D("1"), D("100")), ("b", D("-1"), D("100"))}
    assert rig.router.position("a", BTC) == 1 and rig.router.position("b", BTC) == -1


def test_the_unchanged_net_is_not_republished() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, qty="1")
    rig.target("a", BTC, qty="1")
    assert len(rig.of(TargetPosition)) == 1


def test_a_real_fill_is_attributed_to_the_strategy_whose_gap_it_fills() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, qty="1")
    rig.target("b", ETH, qty="1")  # b does not route ETH: denied
    rig.fill(BTC, Side.BUY, "1", "100", fee="0.1")
    (att,) = [m for m in rig.of(FillAttributed) if m.kind == "fill"]
    assert (att.strategy_id, att.qty, att.fee, att.trade_id) == ("a", D("1"), D("0.1"), "T1")
    assert rig.router.position("a", BTC) == 1
    assert rig.of(RouterDenied)[-1].reason == "instrument_not_routed"


def test_a_replayed_fill_is_booked_once() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "1", "100", trade_id="X")
    rig.fill(BTC, Side.BUY, "1", "100", trade_id="X")
    assert rig.router.position("a", BTC) == 1


def test_a_fill_no_strategy_asked_for_goes_to_the_house() -> None:
    rig = make_rig(two())
    rig.fill(BTC, Side.SELL, "0.5", "100")
    assert rig.router.book.position(HOUSE, BTC) == D("-0.5")
    assert rig.router.house_view()["positions"] == {str(BTC): "-0.5"}


def test_quota_clips_the_target_and_counts_a_denial() -> None:
    rig = make_rig(two(quota_usd=1_000.0))
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="25")
    assert rig.net(BTC) == D("10")
    (denied,) = rig.of(RouterDenied)
    assert (denied.reason, denied.requested_qty, denied.allowed_qty) == ("quota", D("25"), D("10"))
    assert rig.router.stats("a").denials == 1


def test_reduce_state_clips_toward_zero_and_never_flips() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, qty="2")
    rig.fill(BTC, Side.BUY, "2", "100")
    rig.router.set_state("a", "reduce", "drawdown", "governance")
    rig.target("a", BTC, qty="3")
    assert rig.router.target("a", BTC) == D("2")
    rig.target("a", BTC, qty="-1")
    assert rig.router.target("a", BTC) == D("0")
    (ev,) = rig.of(StrategyStateChanged)
    assert (ev.old, ev.new, ev.source) == ("active", "reduce", "governance")


def test_disabling_a_strategy_closes_its_account_by_netting() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, qty="2")
    rig.target("b", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "3", "100")
    rig.router.set_state("a", "disabled", "operator", "admin")
    assert rig.net(BTC) == D("1")
    rig.fill(BTC, Side.SELL, "2", "101")
    assert rig.router.position("a", BTC) == 0 and rig.router.position("b", BTC) == 1
    assert rig.router.state("a") == "disabled"


def test_unknown_strategy_state_calls_raise_key_error() -> None:
    rig = make_rig(two())
    with pytest.raises(KeyError):
        rig.router.set_state("nope", "disabled", "", "admin")
    with pytest.raises(KeyError):
        rig.router.state("nope")


def test_a_target_of_an_unknown_strategy_is_denied() -> None:
    rig = make_rig(two())
    rig.target("ghost", BTC, qty="1")
    assert rig.net(BTC) is None
    assert rig.of(RouterDenied)[-1].reason == "unknown_strategy"


def test_canary_share_splits_the_capital_between_the_lanes() -> None:
    rig = make_rig([Route("h", (BTC,), canary_share=0.25)])
    assert rig.router.capital_usd("h") == 7_500.0
    assert rig.router.capital_usd("h", "canary") == 2_500.0
    rig.bar(BTC, 100.0)
    rig.target("h", BTC, exposure=1.0)
    rig.target("h", BTC, exposure=1.0, lane="canary")
    assert rig.net(BTC) == D("100")


def test_a_shadow_canary_books_paper_fills_and_never_reaches_the_net() -> None:
    rig = make_rig([Route("h", (BTC,))])
    rig.bar(BTC, 100.0)
    rig.target("h", BTC, exposure=1.0, lane="canary")
    assert rig.net(BTC) is None
    assert rig.router.position("h", BTC, lane="canary") == D("100")
    rig.bar(BTC, 101.0)
    assert rig.router.shadow_pnl_usd("h") == 100.0
    assert rig.router.pnl_usd("h") == 0.0


def test_set_shares_resizes_exposure_targets() -> None:
    rig = make_rig(two())
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, exposure=1.0)
    assert rig.net(BTC) == D("50")
    rig.router.set_shares({"a": 0.2, "b": 0.8})
    assert rig.net(BTC) == D("20")


def test_pnl_series_is_sampled_at_bar_closes() -> None:
    rig = make_rig(two())
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "1", "100")
    rig.bar(BTC, 110.0)
    series = rig.router.pnl_series("a")
    assert [p for _, p in series] == [0.0, 10.0]
    assert series[-1][0] == rig.clock.time_ns()


def test_drawdown_is_measured_from_the_pnl_peak_on_current_capital() -> None:
    rig = make_rig(two())  # capital 5_000 each
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="10")
    rig.fill(BTC, Side.BUY, "10", "100")
    rig.bar(BTC, 200.0)  # PnL +1000: peak
    rig.bar(BTC, 140.0)  # PnL +400
    assert rig.router.stats("a").drawdown_pct == pytest.approx(100 * 600 / 6_000)


def test_loss_streak_counts_consecutive_losing_round_trips() -> None:
    rig = make_rig(two())
    for _ in range(2):
        rig.target("a", BTC, qty="1")
        rig.fill(BTC, Side.BUY, "1", "100")
        rig.target("a", BTC, qty="0")
        rig.fill(BTC, Side.SELL, "1", "99")
    st = rig.router.stats("a")
    assert (st.loss_streak, st.round_trips, st.fills, st.orders) == (2, 2, 4, 4)
    rig.target("a", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "1", "100")
    rig.target("a", BTC, qty="0")
    rig.fill(BTC, Side.SELL, "1", "105")
    assert rig.router.stats("a").loss_streak == 0


def test_a_spot_fee_in_the_base_asset_shrinks_the_virtual_position() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "1", "100", fee="0.001", fee_asset="BTC")
    assert rig.router.position("a", BTC) == D("0.999")


def test_a_perpetual_fee_in_the_base_asset_is_charged_in_quote() -> None:
    rig = make_rig(two(), instruments={BTC: instrument(BTC, kind=InstrumentKind.PERPETUAL), ETH: instrument(ETH)})
    rig.target("a", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "1", "100", fee="0.001", fee_asset="BTC")
    assert rig.router.position("a", BTC) == 1
    assert rig.router.view("a")["fees_usd"] == pytest.approx(0.1)


def test_removing_a_strategy_sets_its_target_to_zero() -> None:
    rig = make_rig(two())
    rig.target("a", BTC, qty="1")
    rig.target("b", BTC, qty="2")
    rig.fill(BTC, Side.BUY, "3", "100")
    rig.router.configure({"b": Route("b", (BTC,))})
    assert rig.net(BTC) == D("2")


def test_a_state_changed_in_the_configuration_is_applied() -> None:
    rig = make_rig(two())
    rig.router.configure({"a": Route("a", (BTC, ETH), state="disabled"), "b": Route("b", (BTC,))})
    assert rig.router.state("a") == "disabled"
    assert rig.of(StrategyStateChanged)[-1].source == "config"


def test_views_and_metrics_show_every_strategy() -> None:
    rig = make_rig(two())
    rig.bar(BTC, 100.0)
    rig.target("a", BTC, qty="1")
    rig.fill(BTC, Side.BUY, "1", "100", fee="0.5")
    rows = {v["strategy_id"]: v for v in rig.router.views()}
    assert set(rows) == {"a", "b"}
    assert rows["a"]["positions"] == {str(BTC): "1"} and rows["a"]["fees_usd"] == 0.5
    assert rows["a"]["last_target"]["target_qty"] == "1"
    names = {f.name for f in rig.router.collect_metrics()}
    assert {"strategy_equity_usd", "strategy_pnl_usd", "strategy_position", "strategy_target_qty",
            "strategy_denials", "strategy_capital_usd"} <= names


def test_a_canary_lane_switched_to_shadow_closes_its_real_account() -> None:
    rig = make_rig([Route("h", (BTC,), canary_share=0.5)])
    rig.bar(BTC, 100.0)
    rig.target("h", BTC, exposure=1.0, lane="canary")
    assert rig.net(BTC) == D("50")
    rig.fill(BTC, Side.BUY, "50", "100")
    rig.router.configure({"h": Route("h", (BTC,), canary_share=0.0)})
    assert rig.net(BTC) == D("0")
    assert rig.router.position("h", BTC, lane="canary") == D("100")  # the shadow lane, sized on all capital
    assert rig.router.book.position("h:canary", BTC) == D("50")  # until the engine's sell fills
