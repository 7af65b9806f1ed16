"""The router's cost check: with a fitted slippage model, the part of a move that adds exposure
is kept only as far as the strategy's stated edge pays its round-trip cost (2 x (taker fee +
predicted slippage)); trimmed or skipped moves are RouterDenied `cost_exceeds_edge` events;
reductions, exits, targets without an edge, shadow lanes and the default (no model) are
unchanged."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from nautilus_hmm.config import Config, ConfigError
from nautilus_hmm.config.loader import parse
from nautilus_hmm.control.router import Route, RouterConfig
from nautilus_hmm.hmm.policy import Action, PolicyDecisionDetail
from nautilus_hmm.messages import RouterDenied, StrategyTarget
from nautilus_hmm.strategies.hmm import expected_edge_bps
from nautilus_hmm.venues.sim.slippage_model import KIND, SlippageModel
from tests.unit.control.conftest import BTC, ETH, Rig, instrument, make_rig

D = Decimal


def model(coef: list[float], *, vol_window_s: float = 600.0) -> SlippageModel:
    return SlippageModel.from_dict({
        "kind": KIND, "format_version": 1, "created_at": "2026-01-01T00:00:00Z", "instruments": [str(BTC)],
        "features": ["const", "spread_bps", "vol_bps", "sqrt_size"], "coef": coef, "size_ref_quote": 1_000.0,
        "vol_window_s": vol_window_s, "clip_bps": [-5.0, 200.0], "fit": {"n_orders": 10}, "training": {},
        "library_versions": {},
    }, "<test>")


COST = [1.0, 0.0, 0.0, 4.0]  # 1 bps + 4 bps x sqrt(notional / 1000); the instruments' taker fee is 10 bps


def rig(tmp_path: Path, coef: list[float] | None = COST, routes: list[Route] | None = None, **kw) -> Rig:
    path = "" if coef is None else str(model(coef, **kw).save(tmp_path / "slippage_model.json"))
    r = make_rig(routes or [Route("a", (BTC, ETH))], config=RouterConfig(slippage_model=path),
                 instruments={BTC: instrument(BTC), ETH: instrument(ETH)})
    r.router.set_shares({"a": 0.5})  # capital 5,000
    r.bar(BTC, 100.0)
    return r


def target(r: Rig, exposure: float, edge_bps: float | None, lane: str = "production", sid: str = "a") -> None:
    now = r.clock.time_ns()
    r.bus.publish(StrategyTarget(ts_event_ns=now, ts_init_ns=now, strategy_id=sid, instrument_id=BTC,
                                 exposure=exposure, reason="test", lane=lane, edge_bps=edge_bps))


def trims(r: Rig) -> list[RouterDenied]:
    return [m for m in r.of(RouterDenied) if m.reason == "cost_exceeds_edge"]


def test_without_a_model_an_edge_changes_nothing(tmp_path) -> None:
    r = rig(tmp_path, coef=None)
    target(r, 1.0, edge_bps=0.001)
    assert r.router.target("a", BTC) == D("50") and not r.of(RouterDenied)


def test_a_move_whose_edge_pays_its_cost_goes_through_whole(tmp_path) -> None:
    r = rig(tmp_path)
    target(r, 1.0, edge_bps=100.0)  # 5,000 notional: 2 x (10 + 1 + 4 x sqrt(5)) = 39.9 bps
    assert r.router.target("a", BTC) == D("50") and r.net(BTC) == D("50") and not r.of(RouterDenied)


def test_a_move_costing_more_than_its_edge_is_trimmed_to_what_the_edge_pays(tmp_path) -> None:
    r = rig(tmp_path)
    target(r, 1.0, edge_bps=30.0)  # one leg may slip 15 - 10 = 5 bps: 1 + 4 sqrt(n/1000) <= 5 → n <= 1000
    [d] = trims(r)
    assert r.router.target("a", BTC) == D("10") and r.net(BTC) == D("10")
    assert (d.requested_qty, d.allowed_qty) == (D("50"), D("10"))
    assert "round-trip cost 39.89 bps" in d.detail and "> edge 30.00 bps" in d.detail, d.detail
    # a sizing decision, not an error: governance's denial count is untouched
    assert r.router.stats("a").denials == 0 and r.router.view("a")["cost_trims"] == 1


def test_a_move_whose_edge_pays_not_even_the_fees_adds_nothing(tmp_path) -> None:
    r = rig(tmp_path)
    target(r, 0.2, edge_bps=100.0)  # 1,000 notional: 2 x (10 + 5) = 30 ≤ 100 → 10 BTC
    assert r.router.target("a", BTC) == D("10")
    target(r, 1.0, edge_bps=20.0)  # budget 10 - 10 = 0 < 1 bps at any size
    assert r.router.target("a", BTC) == D("10") and r.net(BTC) == D("10")
    assert trims(r)[-1].allowed_qty == D("10") and "nothing added" in trims(r)[-1].detail


def test_reductions_and_exits_are_never_held_back(tmp_path) -> None:
    r = rig(tmp_path)
    target(r, 1.0, edge_bps=100.0)
    target(r, 0.5, edge_bps=0.0)  # a smaller long: only reduces
    assert r.router.target("a", BTC) == D("25")
    target(r, 0.0, edge_bps=None)
    assert r.router.target("a", BTC) == D("0") and not r.of(RouterDenied)


def test_a_flip_that_its_edge_does_not_pay_closes_to_flat(tmp_path) -> None:
    r = rig(tmp_path)
    target(r, 1.0, edge_bps=100.0)
    target(r, -1.0, edge_bps=20.0)  # the new short side is not paid for; the long closes
    assert r.router.target("a", BTC) == D("0") and r.net(BTC) == D("0")
    assert trims(r)[-1].requested_qty == D("-50")


def test_targets_without_an_edge_and_shadow_lanes_are_not_checked(tmp_path) -> None:
    r = rig(tmp_path)
    target(r, 1.0, edge_bps=None)
    target(r, 1.0, edge_bps=0.0, lane="canary")  # canary share 0: a shadow lane, paper fills
    assert r.router.target("a", BTC) == D("50") and r.router.target("a", BTC, "canary") == D("50")
    assert not r.of(RouterDenied)


def test_the_bar_closes_volatility_raises_the_cost(tmp_path) -> None:
    calm, moving = rig(tmp_path / "calm", coef=[0.0, 0.0, 1.0, 0.0]), rig(tmp_path / "moving", coef=[0.0, 0.0, 1.0, 0.0])
    for k in range(6):
        calm.bar(BTC, 100.0)
        moving.bar(BTC, 100.0 * (1.002 if k % 2 else 0.998))  # about 40 bps a bar
    moving.bar(BTC, 100.0)
    calm.bar(BTC, 100.0)
    for r in (calm, moving):
        target(r, 1.0, edge_bps=40.0)  # fee 10 per leg: the slippage budget is 10 bps
    assert calm.router.target("a", BTC) == D("50") and not trims(calm)
    assert moving.router.target("a", BTC) == D("0") and "vol " in trims(moving)[0].detail


def test_a_damaged_model_is_refused_by_the_config_naming_the_field(tmp_path) -> None:
    good = model(COST).save(tmp_path / "m.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(good.read_bytes().replace(b"4.0", b"9.0"))
    with pytest.raises(ConfigError) as info:
        parse(Config, {"control": {"router": {"slippage_model": str(bad)}}})
    [err] = info.value.errors
    assert err.startswith(f'control.router.slippage_model = "{bad}"') and "sha256" in err, err
    assert parse(Config, {"control": {"router": {"slippage_model": str(good)}}}).control.router.slippage_model


# ------------------------------------------------------------------ the HMM strategy's edge


def decision(action: Action, exposure: float, mu: float, macro: int | None = 0, micro: int | None = 1):
    return PolicyDecisionDetail(exposure, action, "r", None, exposure, mu, 0.001, 0.9, macro, micro)


def test_the_hmm_edge_is_the_expected_return_over_the_states_expected_dwell() -> None:
    states = (SimpleNamespace(expected_dwell_bars=5.0), SimpleNamespace(expected_dwell_bars=20.0))
    m = SimpleNamespace(micro=SimpleNamespace(hmms=(SimpleNamespace(states=states),)))
    assert expected_edge_bps(m, decision(Action.TARGET, 0.5, -0.0002)) == pytest.approx(40.0)  # 2 bps x 20 bars
    assert expected_edge_bps(m, decision(Action.FLAT, 0.0, 0.0002)) is None  # an exit is never cost-checked
    assert expected_edge_bps(m, decision(Action.TARGET, 0.0, 0.0002)) is None
    assert expected_edge_bps(m, decision(Action.TARGET, 0.5, 0.0002, micro=None)) is None
    assert expected_edge_bps(m, decision(Action.TARGET, 0.5, 0.0002, micro=7)) is None


@pytest.mark.parametrize("edge", [float("nan"), -5.0, 0.0])
def test_a_nan_negative_or_zero_edge_adds_nothing_and_says_so(tmp_path, edge: float) -> None:
    r = rig(tmp_path)
    target(r, 1.0, edge_bps=edge)
    [d] = trims(r)
    assert r.router.target("a", BTC) == D("0") and d.allowed_qty == D("0")
    assert f"> edge {edge:.2f} bps" in d.detail and "nothing added" in d.detail, d.detail


def test_an_infinite_edge_pays_any_cost(tmp_path) -> None:
    r = rig(tmp_path, coef=[150.0, 0.0, 0.0, 50.0])
    target(r, 1.0, edge_bps=float("inf"))
    assert r.router.target("a", BTC) == D("50") and not trims(r)
