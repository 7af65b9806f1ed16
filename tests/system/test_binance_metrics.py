"""The alerting metrics of a daemon trading on the Binance emulator (two real processes):
websocket connection state and reconnects, request weight left, market-data age."""

from __future__ import annotations

from pathlib import Path

from tests.system.binance_harness import DaemonProcess, EmulatorProcess
from tests.system.processes import wait_for

VENUE = "binance_spot"


def test_binance_metrics_follow_a_websocket_drop_and_the_request_weight(tmp_path: Path) -> None:
    emu = EmulatorProcess(tmp_path, symbols=("BTCUSDT",), tick_interval_s=0.05).start()
    daemon = DaemonProcess(tmp_path, emu, symbols=("BTCUSDT",))
    try:
        daemon.start(initial_state="HALTED")
        daemon.wait_ready()
        m = daemon.metric
        assert m("venue_ws_connected", venue=VENUE, stream="market") == 1.0
        assert m("venue_ws_connected", venue=VENUE, stream="user") == 1.0
        assert m("venue_ws_reconnects_total", venue=VENUE, stream="market") == 0.0
        limit = m("venue_rate_limit_weight_limit", venue=VENUE)
        assert limit > 0
        assert 0 <= m("venue_rate_limit_weight_remaining", venue=VENUE) <= limit
        wait_for(lambda: 0 < m("market_data_age_seconds", instrument=f"{VENUE}:BTCUSDT") < 5.0,
                 "fresh market data for BTCUSDT")

        emu.faults(close_websockets="all")
        wait_for(lambda: m("venue_ws_reconnects_total", venue=VENUE, stream="market") >= 1.0
                 and m("venue_ws_reconnects_total", venue=VENUE, stream="user") >= 1.0,
                 "both reconnects counted")
        wait_for(lambda: m("venue_ws_connected", venue=VENUE, stream="market") == 1.0, "market stream back")
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        emu.stop()
