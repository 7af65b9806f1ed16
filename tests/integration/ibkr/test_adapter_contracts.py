"""The daily contract-details refresh against the emulator (one manual clock): trading hours move
on with the days (IB lists about a week) and reach the engine's instruments as `InstrumentsUpdated`;
1101/1102 refresh them too; a refresh that fails, or finds a new conId, is logged and counted and
never raises. The emulator steps its market once an hour of the clock here, so a day is cheap."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from structlog.testing import capture_logs

from nautilus_hmm.messages import InstrumentsUpdated
from nautilus_hmm.venues.ibkr.contracts import parse_symbol
from tests.integration.ibkr.adapter_harness import AAPL, ES, Recorder, bounded, harness, until

DAY_S = 86400.0
HOURLY = {"tick_interval_s": 3600.0}


def calendar_end(h: object, iid: object) -> int:
    sessions = h.venue.instruments()[iid].sessions  # type: ignore[attr-defined]
    assert sessions is not None and sessions.known_until_ns is not None
    return sessions.known_until_ns


@bounded
async def test_contracts_are_read_again_daily_and_the_calendar_moves_on(tmp_path: Path) -> None:
    async with harness(tmp_path, emu_options=HOURLY) as h:
        rec = Recorder(h.bus, InstrumentsUpdated)
        before = calendar_end(h, AAPL)
        await h.step(DAY_S - 60)
        assert h.venue.counts["contract_refreshes"] == 0  # not before a day
        with capture_logs() as logs:
            await h.step(120)
            await until(lambda: h.venue.counts["contract_refreshes"] == 1, what="the daily refresh")
        assert calendar_end(h, AAPL) == before + int(DAY_S) * 1_000_000_000  # one more day listed
        (update,) = rec.of(InstrumentsUpdated)
        assert {i.id for i in update.instruments} >= {AAPL, ES}
        assert all(i.sessions is not None for i in update.instruments)
        assert [e["reason"] for e in logs if e["event"] == "ibkr_contracts_refreshed"] == ["daily"]
        info = h.venue.health().info["contract_refresh"]
        assert info["ok"] is True and info["reason"] == "daily"  # type: ignore[index]
        await h.step(DAY_S)
        await until(lambda: h.venue.counts["contract_refreshes"] == 2, what="the next day's refresh")


@bounded
async def test_a_refresh_that_fails_changes_nothing_and_is_tried_again(tmp_path: Path) -> None:
    async with harness(tmp_path, emu_options=HOURLY, options={"contract_retry_s": 600.0}) as h:
        instruments = h.venue.instruments()
        good = dict(h.venue.specs)
        h.venue.specs["AAPL"] = parse_symbol("ZZZZ", None)  # IB answers 200: no such contract
        with capture_logs() as logs:
            assert await h.venue.refresh_contracts("test") is False
        assert h.venue.instruments() == instruments and h.venue.counts["contract_refresh_failures"] == 1
        (line,) = [e for e in logs if e["event"] == "ibkr_contract_refresh_failed"]
        assert "'AAPL': IB knows no such contract" in line["error"] and line["reason"] == "test"
        assert h.venue.health().info["contract_refresh"]["ok"] is False  # type: ignore[index]
        h.venue.specs.update(good)
        await h.step(601)  # the retry is due
        await until(lambda: h.venue.counts["contract_refreshes"] == 1, what="the retry")
        await h.venue.stop()
        assert await h.venue.refresh_contracts("disconnected") is False  # not connected: no raise
        assert h.venue.counts["contract_refresh_failures"] == 2


@bounded
async def test_a_new_conid_is_logged_as_an_error_and_both_ids_still_find_the_instrument(tmp_path: Path) -> None:
    async with harness(tmp_path, emu_options=HOURLY) as h:
        rec = Recorder(h.bus, InstrumentsUpdated)
        old = int(h.venue.instruments()[AAPL].venue_ref)
        h.emu.contracts = tuple(dataclasses.replace(c, con_id=999_999) if c.symbol == "AAPL" else c
                                for c in h.emu.contracts)
        with capture_logs() as logs:
            assert await h.venue.refresh_contracts("test") is True
        (line,) = [e for e in logs if e["event"] == "ibkr_contract_changed"]
        assert line["log_level"] == "error" and (line["old_con_id"], line["new_con_id"]) == (old, 999_999)
        assert h.venue.instruments()[AAPL].venue_ref == "999999"
        assert [i.venue_ref for m in rec.of(InstrumentsUpdated) for i in m.instruments if i.id == AAPL] == ["999999"]
        assert h.venue._iid_by_con[old] == AAPL and h.venue._iid_by_con[999_999] == AAPL


@bounded
async def test_connectivity_restored_refreshes_the_contracts(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.emu.connectivity_lost()
        await h.step(1.0)
        h.emu.connectivity_restored(data_lost=False)  # 1102
        await h.step(1.0)
        await until(lambda: h.venue.counts["contract_refreshes"] == 1, what="refresh after 1102")
        assert h.venue.last_contract_refresh["reason"] == "connectivity restored"
