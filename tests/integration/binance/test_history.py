"""Past bars from the venue: GET klines paged by the adapter, served by the emulator."""

from __future__ import annotations

import numpy as np
import pytest

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import InstrumentsUpdated
from tests.integration.binance.conftest import Harness, Recorder, until


async def check_history(h: Harness) -> None:
    iid = next(iter(h.venue.instruments()))
    bars = await h.venue.history_bars(iid, 60, 2_500)
    assert len(bars) == 2_500 and bars.interval_s == 60
    assert np.all(np.diff(bars.ts_open_ns) == 60 * 10**9)
    assert bars.ts_open_ns[-1] + 60 * 10**9 <= h.clock.time_ns()  # closed bars only
    assert np.all(bars.low <= np.minimum(bars.open, bars.close)) and np.all(bars.volume > 0)
    klines = [r for r in h.emu.request_log if r.get("path", "").endswith("/klines")]
    assert [r["status"] for r in klines] == [200, 200, 200]  # 1000 + 1000 + 500
    again = await h.venue.history_bars(iid, 60, 100)
    assert np.array_equal(again.close, bars.close[-100:])  # the same past, whatever the page size


async def test_spot_history_bars_pages_klines_and_returns_the_last_n_closed_bars(spot: Harness) -> None:
    await check_history(spot)


async def test_usdm_history_bars_pages_klines_and_returns_the_last_n_closed_bars(usdm: Harness) -> None:
    await check_history(usdm)


async def test_history_bars_refuses_an_interval_binance_does_not_have(spot: Harness) -> None:
    with pytest.raises(ValueError, match="no 7 s klines"):
        await spot.venue.history_bars(InstrumentId("binance_spot", "BTCUSDT"), 7, 10)


async def test_a_refresh_that_changes_an_instrument_is_published_for_the_engine(spot: Harness) -> None:
    rec = Recorder(spot.bus, InstrumentsUpdated)
    entry = spot.emu.exchange.entries["BTCUSDT"]
    entry["status"] = "BREAK"
    await spot.clock.advance_settle(spot.venue.options.instruments_refresh_s + 1)
    msgs = await until(lambda: rec.of(InstrumentsUpdated), what="InstrumentsUpdated")
    (inst,) = msgs[0].instruments
    assert inst.symbol == "BTCUSDT" and not inst.tradable
    before = len(rec.messages)
    await spot.clock.advance_settle(spot.venue.options.instruments_refresh_s + 1)  # nothing changed: silent
    await until(lambda: spot.venue.instrument_refreshes >= 2, what="second refresh")
    assert len(rec.messages) == before
