"""The synthetic paper market continues where it stopped: a restart keeps the last price
(and the marks and unrealized PnL that follow from it); a damaged state file is a warning
and a fresh start from the seed, never a crash."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import TradeTick
from nautilus_hmm.venues.sim.market_state import MARKET_FILE
from nautilus_hmm.venues.sim.venue import SimVenue

IID = InstrumentId("sim", "BTCUSDT")
S = 1_000_000_000
T0 = 1_740_798_000 * S
SEED_PRICE = 60_000.0
TICK = 0.01  # the BTCUSDT tick size


def config() -> Any:
    """The [venues.sim] section, through the config loader (as the daemon builds it)."""
    doc = {"venues": {"sim": {"symbols": ["BTCUSDT"], "initial_balances": {"USDT": 10_000.0},
                              "market": {"initial_prices": {"BTCUSDT": SEED_PRICE}, "tick_interval_s": 1.0}}}}
    return parse(Config, doc).venues.sim


class Trades:
    """Prices of the TradeTicks published on a bus."""

    def __init__(self, bus: Bus) -> None:
        self.sub = bus.subscribe_queue("trades", None, maxsize=1_000_000)

    def prices(self) -> list[float]:
        out = []
        while (m := self.sub.get_nowait()) is not None:
            if isinstance(m, TradeTick):
                out.append(m.price)
        return out


async def run_for(venue: SimVenue, clock: ManualClock, seconds: float) -> None:
    task = asyncio.create_task(venue.run())
    await clock.advance_settle(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def started(state_dir: Path, bus: Bus, clock: ManualClock) -> SimVenue:
    venue = SimVenue(config(), bus, clock, state_dir)
    venue.start_nowait()
    return venue


async def test_a_restarted_sim_market_continues_from_its_last_price_not_the_seed(tmp_path: Path) -> None:
    clock = ManualClock(start_ns=T0)
    bus = Bus()
    trades = Trades(bus)
    venue = started(tmp_path, bus, clock)
    await run_for(venue, clock, 300)
    last = trades.prices()[-1]
    assert abs(last - SEED_PRICE) > TICK  # the market moved away from its seed
    await venue.stop()

    clock.advance(3600)  # down for an hour: a pause for the paper market
    bus2 = Bus()
    trades2 = Trades(bus2)
    again = started(tmp_path, bus2, clock)
    past = await again.history_bars(IID, 60, 100)
    assert float(past.close[-1]) == last  # the seeded past ends at the continued price
    await run_for(again, clock, 1)
    [first] = trades2.prices()
    assert abs(first - last) <= 0.001 * last  # one step of a 1 s tick, not a jump to the seed
    assert abs(first - SEED_PRICE) > abs(first - last)


async def test_market_state_is_saved_while_running_so_a_killed_venue_continues_too(tmp_path: Path) -> None:
    clock = ManualClock(start_ns=T0)
    bus = Bus()
    trades = Trades(bus)
    venue = started(tmp_path, bus, clock)
    await run_for(venue, clock, 120)  # no stop(): as if killed with SIGKILL
    prices = trades.prices()
    assert (tmp_path / MARKET_FILE).exists()
    assert not (tmp_path / (MARKET_FILE + ".tmp")).exists()
    again = started(tmp_path, Bus(), clock)
    past = await again.history_bars(IID, 60, 10)
    # The last periodic save is at most a few ticks behind the last trade.
    assert float(past.close[-1]) in prices[-15:]


async def test_a_damaged_market_state_file_is_a_warning_and_a_start_from_the_seed(tmp_path: Path) -> None:
    (tmp_path / MARKET_FILE).write_bytes(b'{"version": 1, "seed": 7, "symb\xff')
    clock = ManualClock(start_ns=T0)
    with capture_logs() as logs:
        venue = started(tmp_path, Bus(), clock)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and str(tmp_path / MARKET_FILE) in str(warnings[0])
    past = await venue.history_bars(IID, 60, 10)
    assert float(past.close[-1]) == SEED_PRICE


async def test_a_market_state_with_a_bad_field_is_a_warning_naming_it_and_a_start_from_the_seed(
        tmp_path: Path) -> None:
    clock = ManualClock(start_ns=T0)
    venue = started(tmp_path, Bus(), clock)
    await run_for(venue, clock, 30)
    await venue.stop()
    path = tmp_path / MARKET_FILE
    path.write_text(path.read_text().replace('"regime":', '"regime":9,"was":'))
    with capture_logs() as logs:
        again = started(tmp_path, Bus(), clock)
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert str(path) in str(warning) and "symbols.BTCUSDT.regime" in str(warning)
    assert float((await again.history_bars(IID, 60, 10)).close[-1]) == SEED_PRICE


async def test_persist_false_neither_reads_nor_writes_market_state(tmp_path: Path) -> None:
    clock = ManualClock(start_ns=T0)
    venue = SimVenue(config(), Bus(), clock, tmp_path, persist=False)
    venue.start_nowait()
    await run_for(venue, clock, 30)
    await venue.stop()
    assert list(tmp_path.iterdir()) == []


async def test_a_damaged_market_state_is_moved_aside_not_replaced_at_the_next_save(tmp_path: Path) -> None:
    # Bad input loses nothing: the damaged file is kept beside the new one for inspection.
    damaged = b'{"version": 1, "seed": 7, "symb\xff'
    (tmp_path / MARKET_FILE).write_bytes(damaged)
    clock = ManualClock(start_ns=T0)
    with capture_logs() as logs:
        venue = started(tmp_path, Bus(), clock)
    aside = tmp_path / f"{MARKET_FILE}.damaged-20250301T030000Z"  # T0 in UTC
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["path"] == str(tmp_path / MARKET_FILE) and warning["moved_to"] == str(aside)
    assert aside.read_bytes() == damaged
    await run_for(venue, clock, 30)
    await venue.stop()
    assert aside.read_bytes() == damaged
    assert (tmp_path / MARKET_FILE).read_bytes() != damaged  # the new state, saved beside it


async def test_a_damaged_market_state_that_cannot_be_moved_aside_is_never_overwritten(
        tmp_path: Path, monkeypatch) -> None:
    import os

    damaged = b"not json"
    path = tmp_path / MARKET_FILE
    path.write_bytes(damaged)

    def refused(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", refused)
    clock = ManualClock(start_ns=T0)
    with capture_logs() as logs:
        venue = started(tmp_path, Bus(), clock)
    monkeypatch.undo()
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["path"] == str(path) and "Permission denied" in warning["move_error"]
    await run_for(venue, clock, 30)
    await venue.stop()
    assert path.read_bytes() == damaged
