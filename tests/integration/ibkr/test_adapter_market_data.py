"""IbkrVenue market data against the emulator: 5-s bars and ticks into the strategy's bars,
quotes, sessions (no bar outside), historical bars for the warm-up with IB's pacing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from nautilus_hmm.messages import Bar, QuoteTick, TradeTick
from tests.integration.ibkr.adapter_harness import (
    AAPL,
    ES,
    EURUSD,
    Harness,
    Recorder,
    bounded,
    harness,
    until,
)
from tests.integration.ibkr.emulator_harness import NS, TUESDAY_10_ET_NS

# 15:59:00 New York: one minute of AAPL's regular session left.
TUESDAY_1559_ET_NS = TUESDAY_10_ET_NS + (5 * 3600 + 59 * 60) * NS


@bounded
async def test_5s_bars_become_one_minute_bars_per_instrument(tmp_path: Path) -> None:
    async with harness(tmp_path, market_data=True) as h:
        for _ in range(62):
            await h.step(1.0)
        await until(lambda: len({b.instrument_id for b in h.rec.of(Bar)}) == 3, what="a bar per instrument")
        for iid in (AAPL, ES, EURUSD):
            bars = [b for b in h.rec.of(Bar) if b.instrument_id == iid]
            assert bars[0].interval_s == 60 and bars[0].ts_event_ns % (60 * NS) == 0
            assert bars[0].low <= bars[0].open <= bars[0].high and bars[0].low <= bars[0].close <= bars[0].high
        assert h.rec.of(QuoteTick)


@bounded
async def test_no_stock_bar_after_the_session_ends(tmp_path: Path) -> None:
    async with harness(tmp_path, market_data=True, start_ns=TUESDAY_1559_ET_NS) as h:
        for _ in range(180):  # 15:59 → 16:02: one regular minute, then the close
            await h.step(1.0)
        await until(lambda: [b for b in h.rec.of(Bar) if b.instrument_id == AAPL], what="the last AAPL bar")
        aapl = [b.ts_event_ns for b in h.rec.of(Bar) if b.instrument_id == AAPL]
        assert aapl == [TUESDAY_1559_ET_NS]  # 15:59 only: nothing invented after 16:00
        assert any(b.instrument_id == EURUSD and b.ts_event_ns > TUESDAY_1559_ET_NS for b in h.rec.of(Bar))


@bounded
async def test_tick_by_tick_trades_and_quotes_make_bars(tmp_path: Path) -> None:
    async with harness(tmp_path, market_data=True, market_data_mode="tick_by_tick") as h:
        rec = Recorder(h.bus, TradeTick)
        for _ in range(75):
            await h.step(1.0)
        await until(lambda: [b for b in h.rec.of(Bar) if b.instrument_id == AAPL], what="a tick-built bar")
        assert [t for t in rec.of(TradeTick) if t.instrument_id == AAPL]
        assert any(q.instrument_id == EURUSD for q in h.rec.of(QuoteTick))


async def drive(h: Harness, coro: Any) -> Any:
    """Run `coro`, moving the clock while it waits (IB's historical pacing sleeps on it)."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        await h.step(0.5)
        await until(lambda: True)
    return task.result()


@bounded
async def test_history_for_the_warm_up_is_closed_bars_oldest_first(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        arr = await drive(h, h.venue.history_bars(AAPL, 60, 200))
        assert len(arr.ts_open_ns) == 200 and arr.interval_s == 60
        assert np.all(np.diff(arr.ts_open_ns) > 0)
        assert arr.ts_open_ns[-1] + 60 * NS <= h.clock.time_ns()
        # Monday's regular session and Tuesday's first half hour: the overnight gap is a gap, not bars.
        gaps = np.diff(arr.ts_open_ns)
        assert gaps.max() > 3600 * NS and np.count_nonzero(gaps != 60 * NS) == 1
        fx = await drive(h, h.venue.history_bars(EURUSD, 300, 50))
        assert len(fx.ts_open_ns) == 50
        assert h.venue.hist_pacer.stats()["requests"] >= 2


@bounded
async def test_a_pacing_violation_waits_and_asks_again(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.emu.pacing_violations(1)
        task = asyncio.ensure_future(h.venue.history_bars(ES, 60, 100))
        await until(lambda: h.venue.hist_pacer.violations == 1, what="162 seen")
        assert not task.done()  # waits the violation backoff on the clock
        arr = await drive(h, task)
        assert len(arr.ts_open_ns) == 100 and h.venue.hist_pacer.stats()["waits"] >= 1
