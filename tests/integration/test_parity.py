"""Parity: one recorded file through the live path (durable engine, journal, sim venue
replaying on a manual clock) and through `backtest` gives identical fills."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nautilus_hmm.backtest import Backtest
from nautilus_hmm.bootstrap import build_stack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import TradingState
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.marketdata.replay import load_bars
from nautilus_hmm.messages import Fill
from nautilus_hmm.venues.sim.venue import SimVenue
from tests.conftest import fixture_path

N_BARS = 2500
DATA_PARTS = ("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")


def parity_config(data_file: Path) -> dict[str, object]:
    """The sim venue replays `data_file` (the test feeds the same bars in directly)."""
    market = {"source": "replay", "replay_speed": 1.0, "replay_file": str(data_file), "bar_interval_s": 60,
              "initial_prices": {"BTCUSDT": 85000.0}}
    return {
        "venues": {"sim": {"symbols": ["BTCUSDT"], "market": market}},
        "strategy": {"kind": "sma_cross", "bar_interval_s": 60, "sma_cross": {"fast": 5, "slow": 20}},
    }


def fill_keys(fills: list[Fill]) -> list[tuple[str, str, str, str]]:
    return [(f.side.value, str(f.qty), str(f.price), str(f.fee)) for f in fills]


async def test_live_replay_and_backtest_produce_identical_fills(tmp_path: Path) -> None:
    data_file = fixture_path(*DATA_PARTS)
    data = load_bars(data_file).slice(0, N_BARS)
    cfg = parse(Config, parity_config(data_file))

    bt = Backtest(cfg, data)
    bt.run()
    expected = fill_keys(bt.fills)
    assert len(expected) > 20

    clock = ManualClock(start_ns=int(data.ts_open_ns[0]))
    bus = Bus()
    journal = Journal.open(tmp_path / "journal.sqlite3")
    venue = SimVenue(cfg.venues.sim, bus, clock, tmp_path, feed={"BTCUSDT": data})
    await venue.start()
    st = build_stack(cfg, bus, clock, journal, {"sim": venue}, durable=True)
    await st.engine.start()
    consumer = asyncio.create_task(st.engine.run())
    st.engine.add_instruments(venue.instruments().values())
    st.attach_market()
    assert st.reconciler is not None and await st.reconciler.startup()
    st.attach_strategy()
    st.gate.set_state(TradingState.ACTIVE, "parity", "test")
    live: list[Fill] = []
    bus.subscribe(Fill, live.append)
    replay = asyncio.create_task(venue.run())
    for _ in range(N_BARS + 1):
        await clock.advance_settle(60)
        await st.engine.idle()
        await journal.flush()
        await st.engine.idle()
    replay.cancel()
    consumer.cancel()
    assert fill_keys(live) == expected
    assert len(journal.load_fills()) == len(expected)
    await journal.aclose()
