"""A backtest of several strategies runs the daemon's control plane: the router nets and
attributes, the allocator rebalances on the bar clock, and the per-strategy CSVs say so.
The one-strategy SMA anchor still reproduces exactly through the router."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from nautilus_hmm.backtest import run_backtest
from nautilus_hmm.config import load_config
from nautilus_hmm.marketdata.replay import load_bars
from tests.conftest import REPO, fixture_path

KLINES = ("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_sma_anchor_reproduces_exactly_through_the_router(tmp_path: Path) -> None:
    cfg = load_config(str(REPO / "research/configs/sma_cross_anchor.toml"))
    result = run_backtest(cfg, fixture_path(*KLINES), tmp_path)
    assert (result.fills, result.final_equity) == (859, 93926.38)
    by_strategy = rows(tmp_path / "fills_by_strategy.csv")
    assert len(by_strategy) == 859 and {r["strategy_id"] for r in by_strategy} == {"sma_cross"}
    # the one strategy's equity is the account's (its PnL is counted once)
    last = rows(tmp_path / "equity_by_strategy.csv")[-1]
    assert round(float(last["equity_usd"]), 2) == 93926.38


def test_three_strategies_on_one_instrument_are_netted_attributed_and_allocated(tmp_path: Path) -> None:
    cfg = load_config(str(REPO / "research/configs/three_strategies.toml"))
    data = tmp_path / "k.csv"
    lines = fixture_path(*KLINES).read_text().splitlines()
    data.write_text("\n".join(lines[:6001]) + "\n")
    result = run_backtest(cfg, data, tmp_path / "out")
    out = tmp_path / "out"
    assert result.bars == len(load_bars(data)) and result.fills > 0
    # every real fill is split over the strategies' accounts (and the house's): the shares sum to it
    real = sum(Decimal(r["qty"]) * (1 if r["side"] == "BUY" else -1) for r in rows(out / "fills.csv"))
    attributed = [r for r in rows(out / "fills_by_strategy.csv") if r["kind"] == "fill"]
    assert sum(Decimal(r["qty"]) for r in attributed) == real
    assert {"trend", "breakout", "revert"} <= {r["strategy_id"] for r in attributed}
    # crosses between strategies net to zero (no venue order)
    crosses: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows(out / "fills_by_strategy.csv"):
        if r["kind"] == "cross":
            crosses[r["ts_ns"]] += Decimal(r["qty"])
    assert all(v == 0 for v in crosses.values())
    equity = rows(out / "equity_by_strategy.csv")
    assert list(equity[0]) == ["ts_ns", "strategy_id", "equity_usd", "pnl_usd", "capital_usd"]
    assert len(equity) == 3 * result.bars
    allocations = rows(out / "allocations.csv")
    assert allocations[0]["source"] == "static" and {r["source"] for r in allocations} >= {"static", "rebalance"}
    by_ts: dict[str, float] = defaultdict(float)
    for r in allocations:
        by_ts[r["ts_ns"]] += float(r["share"])
    assert all(abs(total - 1.0) < 1e-6 for total in by_ts.values())
    # the strategies' equities sum to the account's (up to the house account's PnL)
    final = sum(float(r["equity_usd"]) for r in equity[-3:])
    assert abs(final - result.final_equity) < 0.01 * result.initial_equity
    assert json.loads((out / "summary.json").read_text())["fills"] == result.fills
