"""`[venues.sim] slippage_model` in a backtest: the same SMA anchor run on the real March 2025
bars pays the fitted model's slippage on every market fill (buys above the next open, sells
below it, by the model's bps), and nothing else changes; without the key, fills are at the open."""

from __future__ import annotations

import csv
import dataclasses
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from nautilus_hmm.backtest import run_backtest
from nautilus_hmm.config import load_config
from nautilus_hmm.marketdata.replay import load_bars
from nautilus_hmm.venues.sim.slippage_model import KIND, SlippageModel
from tests.conftest import REPO, fixture_path

KLINES = ("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")


def fills(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_backtest_pays_the_models_slippage_on_every_market_fill(tmp_path: Path) -> None:
    data = tmp_path / "k.csv"
    data.write_text("\n".join(fixture_path(*KLINES).read_text().splitlines()[:4001]) + "\n")
    model = SlippageModel.from_dict({
        "kind": KIND, "format_version": 1, "created_at": "2026-01-01T00:00:00Z", "instruments": ["sim:BTCUSDT"],
        "features": ["const", "spread_bps", "vol_bps", "sqrt_size"], "coef": [3.0, 0.0, 0.0, 2.0],
        "size_ref_quote": 8_500.0, "vol_window_s": 300.0, "clip_bps": [-10.0, 50.0], "fit": {"n_orders": 9},
        "training": {}, "library_versions": {},
    }, "<test>").save(tmp_path / "slippage_model.json")
    cfg = load_config(str(REPO / "research/configs/sma_cross_anchor.toml"))
    with_model = dataclasses.replace(cfg, venues=dataclasses.replace(
        cfg.venues, sim=dataclasses.replace(cfg.venues.sim, slippage_model=str(model))))
    plain = run_backtest(cfg, data, tmp_path / "plain")
    slipped = run_backtest(with_model, data, tmp_path / "slipped")
    a, b = fills(tmp_path / "plain" / "fills.csv"), fills(tmp_path / "slipped" / "fills.csv")
    assert len(a) == len(b) == plain.fills > 10  # the same decisions (the SMA reads closes only)
    bars = load_bars(data)
    open_at = dict(zip((bars.ts_open_ns).tolist(), bars.open.tolist(), strict=True))
    for fa, fb in zip(a, b, strict=True):
        assert (fa["ts_ns"], fa["side"], fa["qty"]) == (fb["ts_ns"], fb["side"], fb["qty"])
        op = open_at[int(fa["ts_ns"])]
        assert Decimal(fa["price"]) == Decimal(repr(op))  # without a model: the open
        bps = 3.0 + 2.0 * (float(fb["qty"]) * op / 8_500.0) ** 0.5  # 0.1 BTC ~ 8,500 USDT: about 5 bps
        sign = 1 if fb["side"] == "BUY" else -1
        expected = (Decimal(repr(op * (1 + sign * bps / 1e4))) / Decimal("0.01")).to_integral_value(
            ROUND_HALF_EVEN) * Decimal("0.01")
        assert Decimal(fb["price"]) == expected, (fb, op, bps)
    assert slipped.final_equity < plain.final_equity
    # the cost is what the fills say: about 5 bps of 8,500 USDT per fill
    paid = sum(abs(float(fb["price"]) - float(fa["price"])) * float(fa["qty"]) for fa, fb in zip(a, b, strict=True))
    assert abs((plain.final_equity - slipped.final_equity) - paid) < 0.01 * len(a) + 0.5


def test_the_hmm_strategy_states_its_edge_and_the_router_trims_what_it_does_not_pay(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """`nautilus-hmm backtest` with an HMM model and `[control.router] slippage_model`: every
    StrategyTarget that takes a side carries the strategy's edge, and a costly model makes the
    router trim (RouterDenied cost_exceeds_edge) and the account trade less than without it."""
    import json

    from nautilus_hmm import backtest as bt_mod
    from nautilus_hmm.cli import main
    from nautilus_hmm.messages import RouterDenied, StrategyTarget
    from tests.unit.hmm.kit import decisive_model

    seen: dict[str, list] = {"targets": [], "denied": []}
    init = bt_mod.Backtest.__init__

    def recording_init(self, *a, **kw) -> None:
        init(self, *a, **kw)
        self.bus.subscribe(StrategyTarget, seen["targets"].append, name="test")
        self.bus.subscribe(RouterDenied, seen["denied"].append, name="test")

    monkeypatch.setattr(bt_mod.Backtest, "__init__", recording_init)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    decisive_model().save(model_dir / "model.json")
    costly = SlippageModel.from_dict({
        "kind": KIND, "format_version": 1, "created_at": "2026-01-01T00:00:00Z", "instruments": ["sim:BTCUSDT"],
        "features": ["const", "spread_bps", "vol_bps", "sqrt_size"], "coef": [40.0, 0.0, 0.0, 5.0],
        "size_ref_quote": 10_000.0, "vol_window_s": 300.0, "clip_bps": [0.0, 200.0], "fit": {"n_orders": 9},
        "training": {}, "library_versions": {},
    }, "<test>").save(tmp_path / "slippage_model.json")
    base = ('[venues.sim]\nsymbols = ["BTCUSDT"]\n[venues.sim.market]\nbar_interval_s = 60\n'
            '[strategy]\nkind = "hmm"\nbar_interval_s = 60\n'
            '[risk]\nmax_order_notional_usd = 1e9\nmax_symbol_exposure_usd = 1e9\nmax_gross_exposure_usd = 1e9\n')
    data = tmp_path / "k.csv"
    data.write_text("\n".join(fixture_path(*KLINES).read_text().splitlines()[:3001]) + "\n")
    summaries = {}
    for name, extra in (("plain", ""), ("checked", f'[control.router]\nslippage_model = "{costly}"\n')):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(base + extra)
        seen["targets"].clear()
        seen["denied"].clear()
        assert main(["backtest", "--config", str(cfg), "--data", str(data), "--model", str(model_dir), "--out",
                     str(tmp_path / name), "--no-report", "-q"]) == 0
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text())
        sided = [t for t in seen["targets"] if t.exposure]
        assert sided and all(t.edge_bps is not None and t.edge_bps > 0 for t in sided)
        cost = [d for d in seen["denied"] if d.reason == "cost_exceeds_edge"]
        assert bool(cost) == (name == "checked")
    assert 0 < summaries["checked"]["fills"] < summaries["plain"]["fills"]
