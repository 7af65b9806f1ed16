"""A backtest writes no trading log lines (only the node attaches the trade log)."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from nautilus_hmm.backtest import run_backtest
from nautilus_hmm.config import load_config
from tests.conftest import REPO, fixture_path
from tests.unit.test_cli_backtest import KLINES, head


def test_a_backtest_that_trades_logs_no_order_or_target_lines(tmp_path: Path) -> None:
    data = head(fixture_path(*KLINES), tmp_path / "k.csv", 3000)
    cfg = load_config(str(REPO / "research/configs/sma_cross_anchor.toml"))
    with capture_logs() as logs:
        result = run_backtest(cfg, data)
    assert result.fills > 0
    events = {e["event"] for e in logs}
    assert not events & {"order_submitted", "order_filled", "order_canceled", "target_changed"}
