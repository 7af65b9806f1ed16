"""`research.download` for Bybit: GET /v5/market/kline (newest first) paged backwards, against
the Bybit emulator (nautilus_hmm/venues/bybit/emulator), which serves a seeded past of 5000
one-minute bars ending at its start."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.marketdata.replay import load_bars
from nautilus_hmm.research.download import EXIT_OK, DownloadRequest, day_ms, download, ms_day
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

NS_PER_MS = 1_000_000
START_MS = 1_750_000_000_000  # 2025-06-15 15:06:40 UTC


async def test_bybit_history_is_paged_backwards_into_whole_days_oldest_first(tmp_path) -> None:
    emu = BybitEmulator(api_key="k", api_secret="s", symbols=["BTCUSDT"], clock=ManualClock(START_MS * NS_PER_MS),
                        run_market=False, unmetered=True)
    await emu.start()
    try:
        first = ms_day(START_MS) - timedelta(days=2)
        last = ms_day(START_MS) - timedelta(days=1)  # two whole days, inside the 5000-bar past
        out = tmp_path / "out"
        req = DownloadRequest("bybit", ["BTCUSDT"], "1m", first, last, out, rest_url=emu.url, category="linear",
                              now_ms=START_MS)
        s = await download(req)
        assert s.exit_code == EXIT_OK
        assert sum(m.rows for m in s.months) == 2 * 1440
        assert s.rest_requests == 3  # 1000 + 1000 + 880, newest page first
        files = sorted(out.rglob("BTCUSDT-1m-*.csv"))
        bars = [load_bars(f) for f in files]
        ts = np.concatenate([b.ts_open_ns for b in bars]) // NS_PER_MS
        close = np.concatenate([b.close for b in bars])
        assert ts[0] == day_ms(first) and np.all(np.diff(ts) == 60_000) and len(ts) == 2880
        past = emu.exchange._past("BTCUSDT", "1")
        past_ms = past.ts_open_ns // NS_PER_MS
        i = int(np.searchsorted(past_ms, day_ms(first)))
        assert np.array_equal(past_ms[i:i + 2880], ts)
        assert np.allclose(past.close[i:i + 2880], close, rtol=1e-6)
        header, row = files[0].read_text().splitlines()[:2]
        assert header.startswith("open_time,open,high,low,close,volume,close_time,quote_volume")
        cols = row.split(",")
        assert int(cols[6]) == int(cols[0]) + 59_999 and cols[8] == "" and float(cols[7]) > 0  # turnover kept
        # a day that had ended when it was fetched is final: a rerun asks nothing
        again = await download(DownloadRequest("bybit", ["BTCUSDT"], "1m", first, last, out, rest_url=emu.url,
                                               category="linear", now_ms=START_MS))
        assert {m.status for m in again.months} == {"skipped"} and again.rest_requests == 0
    finally:
        await emu.stop()


async def test_a_symbol_bybit_does_not_list_fails_with_bybits_answer(tmp_path) -> None:
    emu = BybitEmulator(api_key="k", api_secret="s", symbols=["BTCUSDT"], clock=ManualClock(START_MS * NS_PER_MS),
                        run_market=False, unmetered=True)
    await emu.start()
    try:
        day = ms_day(START_MS) - timedelta(days=1)
        req = DownloadRequest("bybit", ["DOGEUSDT"], "1m", day, day, tmp_path / "out", rest_url=emu.url,
                              category="linear", now_ms=START_MS)
        s = await download(req)
        [m] = s.months
        assert s.exit_code == 1 and m.status == "failed" and "DOGEUSDT" in m.error, m.error
        assert not list((tmp_path / "out").rglob("*.csv"))
    finally:
        await emu.stop()
