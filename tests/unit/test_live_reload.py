"""Every field tagged live, walked from the schema: after a reload the running component
uses the new value (one table: field -> a valid new value, and where its user reads it).

A live field that no component applies fails here; a field whose change cannot take
effect without a restart must be tagged restart-only instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nautilus_hmm.config import load_config
from nautilus_hmm.config.loader import fmt_value
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.node import Node
from nautilus_hmm.obs import logging as obs_logging
from nautilus_hmm.obs.systemd import Notifier
from tests.nodeharness import TOKEN
from tests.unit.config.fieldwalk import leaves

Probe = Callable[[Node], Any]


def sim_engine(node: Node) -> Any:
    return next(iter(node.stack.venues["sim"]._engines.values()))


def binance(name: str) -> Callable[[str], Probe]:
    return lambda attr: lambda node: getattr(node.stack.venues[name].rest, attr)


bybit = binance  # BybitVenue.rest carries the same two live fields


def models_cfg(node: Node) -> Any:
    assert node.models is not None
    return node.models.cfg  # the config the schedule and the next training use


def gate(node: Node) -> Any:
    return node.stack.gate


@dataclasses.dataclass(frozen=True)
class Row:
    new: Any
    probe: Probe
    kind: str = "hmm"  # the strategy kind of the node that runs the field's user


def train(name: str, new: Any) -> Row:
    return Row(new, lambda node: getattr(models_cfg(node).train, name))


def features(name: str, new: Any) -> Row:
    return Row(new, lambda node: getattr(models_cfg(node).features, name))


def policy(name: str, new: Any) -> Row:
    # The strategy hands its [hmm.policy] to every policy runner (updated in place on reload).
    return Row(new, lambda node: getattr(node.models.strategy.cfg.policy, name))  # type: ignore[union-attr]


SPOT, USDM = binance("binance_spot"), binance("binance_usdm")
BYBIT_SPOT, BYBIT_LINEAR = bybit("bybit_spot"), bybit("bybit_linear")


def allocator(name: str, new: Any) -> Row:
    # the allocator reads [control.allocator] through the manager at each use
    return Row(new, lambda node: getattr(node.plane.allocator._config(), name), kind="sma_cross")


def bandit(name: str, new: Any) -> Row:
    return Row(new, lambda node: getattr(node.plane.allocator._bandit._config(), name), kind="sma_cross")


def governance(name: str, new: Any) -> Row:
    def probe(node: Node) -> Any:
        value: Any = node.plane.governance.config
        for part in name.split("."):
            value = getattr(value, part)
        return value
    return Row(new, probe, kind="sma_cross")

TABLE: dict[str, Row] = {
    # read by run_node when the stop begins
    "node.graceful_stop_timeout_s": Row(5.0, lambda n: n.config.current.node.graceful_stop_timeout_s),
    "node.heartbeat_interval_s": Row(5.0, lambda n: n.heartbeat._interval_s()),
    "log.level": Row("warning", lambda n: obs_logging.current_level()),
    "http.sse_queue_size": Row(10, lambda n: n.web.ctx.sse_queue_size()),
    "http.sse_heartbeat_s": Row(3.0, lambda n: n.web.ctx.sse_heartbeat_s()),
    "http.allowed_hosts": Row(("trader.example",), lambda n: n.web.ctx.allowed_hosts()),
    "venues.sim.maker_fee": Row(0.002, lambda n: float(sim_engine(n).maker_fee)),
    "venues.sim.taker_fee": Row(0.003, lambda n: float(sim_engine(n).taker_fee)),
    "venues.sim.latency_ms": Row(25.0, lambda n: n.stack.venues["sim"]._latency_s * 1000.0),
    "venues.sim.reject_rate": Row(0.5, lambda n: n.stack.venues["sim"]._reject_rate),
    "venues.binance_spot.recv_window_ms": Row(7000, SPOT("recv_window_ms")),
    "venues.binance_spot.request_timeout_s": Row(3.0, SPOT("request_timeout_s")),
    "venues.binance_usdm.recv_window_ms": Row(8000, USDM("recv_window_ms")),
    "venues.binance_usdm.request_timeout_s": Row(4.0, USDM("request_timeout_s")),
    "venues.bybit_spot.recv_window_ms": Row(7000, BYBIT_SPOT("recv_window_ms")),
    "venues.bybit_spot.request_timeout_s": Row(3.0, BYBIT_SPOT("request_timeout_s")),
    "venues.bybit_linear.recv_window_ms": Row(8000, BYBIT_LINEAR("recv_window_ms")),
    "venues.bybit_linear.request_timeout_s": Row(4.0, BYBIT_LINEAR("request_timeout_s")),
    "venues.ibkr.request_timeout_s": Row(3.0, lambda n: n.stack.venues["ibkr"].config.request_timeout_s),
    "venues.ibkr.commission_wait_s": Row(1.0, lambda n: n.stack.venues["ibkr"].config.commission_wait_s),
    "strategy.sma_cross.quantity": Row(Decimal("0.25"), lambda n: n.stack.strategy.quantity, kind="sma_cross"),
    # [[strategies]] cannot be written by this table's TOML writer: add, remove, enable, disable
    # and re-parameterize are tested in tests/unit/test_control_plane_reload.py
    "strategies": Row((), lambda n: n.stack.instances, kind="[[strategies]]"),
    "control.router.equity_sample_s": Row(30.0, lambda n: n.stack.router.config.equity_sample_s, kind="sma_cross"),
    "control.router.resize_band": Row(0.2, lambda n: n.stack.router.config.resize_band, kind="sma_cross"),
    "control.allocator.enabled": allocator("enabled", False),
    "control.allocator.interval_s": allocator("interval_s", 30.0),
    "control.allocator.lookback": allocator("lookback", 300),
    "control.allocator.min_evidence": allocator("min_evidence", 40),
    "control.allocator.max_step": allocator("max_step", 0.1),
    "control.allocator.drawdown_penalty": allocator("drawdown_penalty", 5.0),
    "control.allocator.temperature": allocator("temperature", 2.0),
    "control.allocator.bandit_weight": allocator("bandit_weight", 0.5),
    "control.bandit.enabled": bandit("enabled", False),
    "control.bandit.discount": bandit("discount", 0.99),
    "control.bandit.samples": bandit("samples", 500),
    "control.governance.enabled": governance("enabled", False),
    "control.governance.dry_run": governance("dry_run", True),
    "control.governance.interval_s": governance("interval_s", 30.0),
    "control.governance.max_drawdown_pct": governance("max_drawdown_pct", 7.0),
    "control.governance.max_loss_streak": governance("max_loss_streak", 4),
    "control.governance.max_error_rate": governance("max_error_rate", 0.3),
    "control.governance.error_window_s": governance("error_window_s", 600.0),
    "control.governance.error_min_orders": governance("error_min_orders", 20),
    "control.governance.limit_action": governance("limit_action", "disable"),
    "control.governance.stale_data_s": governance("stale_data_s", 120.0),
    "control.governance.promotion.min_bars": governance("promotion.min_bars", 600),
    "control.governance.promotion.batch_bars": governance("promotion.batch_bars", 20),
    "control.governance.promotion.ll_margin_per_bar": governance("promotion.ll_margin_per_bar", 0.01),
    "control.governance.promotion.pnl_margin_usd": governance("promotion.pnl_margin_usd", 10.0),
    "control.governance.promotion.alpha": governance("promotion.alpha", 0.01),
    "control.governance.rollback.min_bars": governance("rollback.min_bars", 300),
    "control.governance.rollback.ll_drop_per_bar": governance("rollback.ll_drop_per_bar", 0.5),
    "control.governance.rollback.max_drawdown_pct": governance("rollback.max_drawdown_pct", 8.0),
    "execution.order_type": Row("LIMIT", lambda n: n.stack.engine.config.order_type),
    "execution.limit_offset_bps": Row(7.5, lambda n: n.stack.engine.config.limit_offset_bps),
    "execution.reconcile_interval_s": Row(30.0, lambda n: n.stack.reconciler._interval_s()),
    "execution.unknown_orders": Row("adopt", lambda n: n.stack.reconciler._unknown_orders()),
    "execution.order_timeout_s": Row(4.0, lambda n: n.stack.engine.config.order_timeout_s),
    "risk.min_order_notional_usd": Row(5.0, lambda n: gate(n)._min_notional),
    "risk.max_order_notional_usd": Row(40_000.0, lambda n: gate(n)._max_notional),
    "risk.max_symbol_exposure_usd": Row(90_000.0, lambda n: gate(n)._max_symbol),
    "risk.max_gross_exposure_usd": Row(260_000.0, lambda n: gate(n)._max_gross),
    "risk.max_open_orders_per_symbol": Row(3, lambda n: gate(n)._max_open),
    "risk.orders_per_s": Row(2.0, lambda n: gate(n).bucket("sim").rate_per_s),
    "risk.order_burst": Row(4, lambda n: int(gate(n).bucket("sim").burst)),
    "risk.price_collar_bps": Row(150.0, lambda n: gate(n)._collar_bps),
    "risk.stale_data_s": Row(20.0, lambda n: gate(n)._stale_s),
    "risk.daily_loss_limit_usd": Row(1_000.0, lambda n: gate(n).loss_monitor.daily_loss_limit_usd),
    "risk.max_drawdown_pct": Row(5.0, lambda n: gate(n).loss_monitor.max_drawdown_pct),
    "risk.breaker_error_threshold": Row(7, lambda n: gate(n).breaker("sim").threshold),
    "risk.breaker_cooldown_s": Row(12.0, lambda n: gate(n).breaker("sim").cooldown_s),
    "journal.commit_interval_ms": Row(20.0, lambda n: n.stack.journal.commit_interval_ms),
    "journal.snapshot_interval_s": Row(30.0, lambda n: n.trading._snapshot_interval_s()),
    "hmm.training_data": Row("<bars file>", lambda n: models_cfg(n).training_data),
    "hmm.features.return_horizons": features("return_horizons", (1, 5, 30)),
    "hmm.features.vol_windows": features("vol_windows", (15, 120)),
    "hmm.features.volume_window": features("volume_window", 30),
    "hmm.features.atr_window": features("atr_window", 20),
    "hmm.features.trend_window": features("trend_window", 60),
    "hmm.features.include_quotes": features("include_quotes", True),
    "hmm.train.macro_interval_s": train("macro_interval_s", 7200),
    "hmm.train.micro_interval_s": train("micro_interval_s", 600),
    "hmm.train.macro_states": train("macro_states", 4),
    "hmm.train.micro_states": train("micro_states", 4),
    "hmm.train.covariance_type": train("covariance_type", "diag"),
    "hmm.train.n_restarts": train("n_restarts", 5),
    "hmm.train.max_iter": train("max_iter", 50),
    "hmm.train.tol": train("tol", 1e-3),
    "hmm.train.min_covar": train("min_covar", 1e-3),
    "hmm.train.seed": train("seed", 11),
    "hmm.train.chunk_bars": train("chunk_bars", 256),
    "hmm.train.min_bars_per_state": train("min_bars_per_state", 40),
    "hmm.train.min_regime_bars": train("min_regime_bars", 600),
    "hmm.train.timeout_s": train("timeout_s", 600.0),
    "hmm.train.torch_threads": train("torch_threads", 2),
    # the training window the service fills holds max(window_bars, update_window_bars)
    "hmm.train.window_bars": Row(50_000, lambda n: n.models._window.capacity),  # type: ignore[union-attr]
    "hmm.train.retrain_interval_s": train("retrain_interval_s", 3600.0),
    "hmm.train.update_interval_s": train("update_interval_s", 600.0),
    "hmm.train.update_window_bars": Row(60_000, lambda n: n.models._window.capacity),  # type: ignore[union-attr]
    "hmm.train.update_max_iter": train("update_max_iter", 10),
    "hmm.train.auto_promote": train("auto_promote", True),
    "hmm.policy.target_vol_annual": policy("target_vol_annual", 0.3),
    "hmm.policy.max_exposure": policy("max_exposure", 0.5),
    "hmm.policy.allow_short": policy("allow_short", True),
    "hmm.policy.min_edge": policy("min_edge", 0.05),
    "hmm.policy.min_confidence": policy("min_confidence", 0.7),
    "hmm.policy.min_dwell_bars": policy("min_dwell_bars", 5),
    "hmm.policy.max_flips_per_hour": policy("max_flips_per_hour", 2),
    "hmm.policy.disagreement": policy("disagreement", "reduce"),
    "hmm.policy.disagreement_scale": policy("disagreement_scale", 0.25),
    "hmm.policy.loss_streak": policy("loss_streak", 5),
    "hmm.policy.cooldown_s": policy("cooldown_s", 1800.0),
    # also sets the models component's stale-data tick: a quarter of it, 1..30 s
    "hmm.policy.stale_data_s": Row(40.0, lambda n: n.models.tick_interval_s * 4.0),  # type: ignore[union-attr]
    "hmm.policy.rebalance_threshold": policy("rebalance_threshold", 0.1),
    "hmm.policy.capital_usd": policy("capital_usd", 5_000.0),
    "hmm.policy.canary_capital_fraction": policy("canary_capital_fraction", 0.1),
}

LIVE_PATHS = [leaf.path for leaf in leaves() if leaf.live]


def to_toml(table: dict[str, Any], prefix: str = "") -> list[str]:
    """A nested dict of config values as TOML lines."""
    lines = [f"[{prefix}]"] if prefix else []
    lines += [f"{k} = {fmt_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for k, v in table.items():
        if isinstance(v, dict):
            lines += to_toml(v, f"{prefix}.{k}" if prefix else k)
    return lines


def base_config(tmp_path: Path, kind: str) -> dict[str, Any]:
    return {
        "node": {"state_dir": str(tmp_path / "state")},
        "http": {"port": 0},
        "strategy": {"kind": kind},
        # no warm-up from the venue's past: nothing trains while the table is walked
        "hmm": {"history_from_venue": False},
        "venues": {"binance_spot": {"enabled": True, "symbols": ("BTCUSDT",)},
                   "binance_usdm": {"enabled": True, "symbols": ("BTCUSDT",)},
                   "bybit_spot": {"enabled": True, "symbols": ("BTCUSDT",)},
                   "bybit_linear": {"enabled": True, "symbols": ("BTCUSDT",)},
                   "ibkr": {"enabled": True, "symbols": ("AAPL",)}},
    }


def with_leaf(cfg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = dict(cfg)
    head, _, rest = path.partition(".")
    out[head] = with_leaf(out.get(head, {}), rest, value) if rest else value
    return out


@contextlib.asynccontextmanager
async def built_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> AsyncIterator[tuple[Node, Path]]:
    """A node whose venues and stack are built (not started: no connection is made)."""
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_KEY", "test-key")
    monkeypatch.setenv("NAUTILUS_HMM_BINANCE_API_SECRET", "test-secret")
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_API_KEY", "test-key")
    monkeypatch.setenv("NAUTILUS_HMM_BYBIT_API_SECRET", "test-secret")
    path = tmp_path / "config.toml"
    path.write_text("\n".join(to_toml(base_config(tmp_path, kind))) + "\n")
    node = Node(load_config(str(path)), path, clock=ManualClock(), notifier=Notifier(""))
    try:
        yield node, path
    finally:
        node.stack.journal.close()  # the web server never started: it holds no socket


def test_every_live_field_has_a_row_in_the_table() -> None:
    assert sorted(set(LIVE_PATHS) - set(TABLE)) == []  # a new live field needs its user named here
    assert sorted(set(TABLE) - set(LIVE_PATHS)) == []  # a row for a field that is not live


@pytest.mark.parametrize("kind", ["hmm", "sma_cross"])
async def test_after_a_reload_every_live_field_is_used_by_its_component(tmp_path: Path, monkeypatch, kind: str) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text("open_time,open,high,low,close,volume\n")
    level_before = obs_logging.current_level()
    failures: list[str] = []
    async with built_node(tmp_path, monkeypatch, kind) as (node, path):
        node.stack.gate.bucket("sim"), node.stack.gate.breaker("sim")  # the rails exist before the reload
        await node.stack.venues["sim"].start()  # its matching engines exist
        try:
            base = base_config(tmp_path, kind)
            for field_path in LIVE_PATHS:
                row = TABLE[field_path]
                if row.kind != kind:
                    continue
                new = str(bars) if field_path == "hmm.training_data" else row.new
                before = row.probe(node)
                assert before != new, f"{field_path}: pick a new value that differs from {before!r}"
                path.write_text("\n".join(to_toml(with_leaf(base, field_path, new))) + "\n")
                r = node.reload("test")
                if r.result != "applied" or r.changed != [field_path]:
                    failures.append(f"{field_path}: reload {r.result} {r.changed} {r.errors} {r.restart_required}")
                elif row.probe(node) != new:
                    failures.append(f"{field_path}: the component still uses {row.probe(node)!r}, not {new!r}")
                path.write_text("\n".join(to_toml(base)) + "\n")
                back = node.reload("test")
                assert back.result == "applied" and row.probe(node) == before, field_path
        finally:
            await node.stack.venues["sim"].stop()
            obs_logging.set_level(level_before)
    assert failures == []


async def test_reloading_window_bars_resizes_the_models_training_window(tmp_path: Path, monkeypatch) -> None:
    async with built_node(tmp_path, monkeypatch, "hmm") as (node, path):
        base = with_leaf(base_config(tmp_path, "hmm"), "hmm.train", {"window_bars": 1000, "update_window_bars": 500})
        path.write_text("\n".join(to_toml(base)) + "\n")
        assert node.reload("test").result == "applied"
        assert node.models is not None and node.models._window.capacity == 1000
        path.write_text("\n".join(to_toml(with_leaf(base, "hmm.train.window_bars", 3000))) + "\n")
        r = node.reload("test")
        assert r.result == "applied" and r.changed == ["hmm.train.window_bars"]
        assert node.models._window.capacity == 3000
        assert node.models.cfg.train.window_bars == 3000  # what the next training takes
