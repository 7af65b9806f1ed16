"""IbkrVenue's connection life against the emulator: a drop mid-order settled without a resend,
1100 → 1102, the daily Gateway restart, a competing session, a Gateway down at start."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import RetryableError, UnknownOutcome
from nautilus_hmm.domain.enums import OrderStatus, Side
from nautilus_hmm.venues.ibkr import emulator
from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator
from tests.integration.ibkr.adapter_harness import (
    AAPL,
    Harness,
    bounded,
    harness,
    limit,
    make_venue,
    market,
    until,
)
from tests.integration.ibkr.emulator_harness import TUESDAY_10_ET_NS


async def reconnected(h: Harness, n: int = 1) -> None:
    """Advance the clock through the reconnect backoffs until the adapter reconnected `n` times.

    The clock moves only while the adapter waits out a backoff; a connect attempt (real
    loopback I/O) is waited for as a bounded condition.
    """
    v = h.venue
    for _ in range(400):
        if v.counts["reconnects"] >= n and v.health().ok:
            return
        await until(lambda: v.reconnect_state in ("backoff", "up") or v.counts["reconnects"] >= n,
                    what="connect attempt finished")
        if v.reconnect_state == "backoff":
            await h.step(0.5)
    raise AssertionError(f"not reconnected: {v.health()}")


@bounded
async def test_a_drop_mid_order_is_an_unknown_outcome_settled_by_query_never_resent(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.emu.drop_next_orders(1)  # IB takes (and fills) the order, the socket dies before any answer
        with pytest.raises(UnknownOutcome):
            await h.venue.submit_order(market(AAPL, "drop-1"))
        assert not h.venue.health().ok
        await reconnected(h)
        vo = await h.venue.query_order(AAPL, "drop-1")
        assert vo is not None and vo.status is OrderStatus.FILLED and vo.filled_qty == 10
        assert len(h.orders_at_venue("drop-1")) == 1  # exactly one order: nothing was resent
        assert h.gaps() and h.gaps()[-1].reason == "reconnected"
        (fill,) = await h.venue.fills_since(AAPL, 0)
        assert fill.client_order_id == "drop-1" and fill.fee > 0
        assert await h.venue.positions() == {AAPL: Decimal(10)}


@bounded
async def test_a_withheld_order_status_still_acks_from_open_order(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.emu.withhold_order_status(1)
        ack = await h.venue.submit_order(limit(AAPL, "wh-1", "100.00"))
        assert ack.status is OrderStatus.ACCEPTED


@bounded
async def test_no_answer_within_the_timeout_is_unknown_and_query_finds_the_order(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        # No answer at all: the connection stays up but IB goes silent (1100 holds order messages).
        h.emu.connectivity_lost()
        await until(lambda: h.venue._connectivity_lost, what="1100 seen")
        req = limit(AAPL, "silent-1", "100.00")
        req = type(req)(req.client_order_id, req.instrument_id, req.side, req.order_type, req.quantity, req.price,
                        req.time_in_force, reduce_only=True)  # reduce-only still goes during 1100
        task = __import__("asyncio").ensure_future(h.venue.submit_order(req))
        await until(lambda: h.orders_at_venue("silent-1"), what="order at the venue")
        await h.clock.advance_settle(h.venue.config.request_timeout_s + 0.1)
        with pytest.raises(UnknownOutcome):
            await task
        h.emu.connectivity_restored()
        vo = await h.venue.query_order(AAPL, "silent-1")
        assert vo is not None and vo.client_order_id == "silent-1"
        assert len(h.orders_at_venue("silent-1")) == 1


@bounded
async def test_1100_makes_the_venue_unhealthy_and_reduce_only_then_1102_resubscribes_and_reconciles(
        tmp_path: Path) -> None:
    async with harness(tmp_path, market_data=True) as h:
        h.emu.connectivity_lost()
        await until(lambda: not h.venue.health().ok, what="1100 seen")
        assert "1100" in h.venue.health().detail
        with pytest.raises(RetryableError, match="reduce-only"):
            await h.venue.submit_order(market(AAPL, "lost-1"))
        assert h.orders_at_venue("lost-1") == []
        gaps_before = len(h.gaps())
        h.emu.connectivity_restored(data_lost=True)  # 1101: subscriptions are gone at IB
        await until(lambda: h.venue.health().ok and len(h.gaps()) > gaps_before, what="restored")
        assert h.gaps()[-1].reason == "connectivity restored"
        quotes = len(h.rec.of(type(h.rec.messages[0]))) if h.rec.messages else 0
        del quotes
        n_quotes = sum(1 for m in h.rec.messages if type(m).__name__ == "QuoteTick")
        await h.step(3.0)
        assert sum(1 for m in h.rec.messages if type(m).__name__ == "QuoteTick") > n_quotes  # resubscribed


@bounded
async def test_the_daily_gateway_restart_is_survived_without_operator_action(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await h.venue.submit_order(limit(AAPL, "day-1", "100.00"))
        await h.emu.daily_restart(refuse_s=20.0)
        await until(lambda: not h.venue.health().ok, what="restart seen")
        down_at = h.clock.time_ns()
        await reconnected(h)
        assert h.clock.time_ns() - down_at >= 20 * 10**9  # refused meanwhile, retried with backoff
        assert [o.client_order_id for o in await h.venue.open_orders()] == ["day-1"]
        gap = h.gaps()[-1]
        assert gap.reason == "reconnected" and gap.since_ns <= down_at
        ack = await h.venue.submit_order(limit(AAPL, "day-2", "100.00"))
        assert int(ack.venue_order_id) > 0 and len(h.orders_at_venue("day-2")) == 1


@bounded
async def test_a_competing_session_is_unhealthy_until_data_flows(tmp_path: Path) -> None:
    async with harness(tmp_path, market_data=True) as h:
        await h.step(2.0)
        h.emu.competing_session(True)
        await until(lambda: not h.venue.health().ok, what="10197 seen")
        assert "10197" in h.venue.health().detail
        h.emu.competing_session(False)
        await h.step(2.0)
        await until(lambda: h.venue.health().ok, what="data flows again")


@bounded
async def test_delayed_data_is_said_in_health(tmp_path: Path) -> None:
    async with harness(tmp_path, market_data=True, emu_options={"unsubscribed": ("AAPL",)}) as h:
        await h.step(2.0)
        await until(lambda: h.venue.health().info["delayed_data"] == ["ibkr:AAPL"], what="AAPL delayed")
        md = h.venue.health().info["market_data"]
        assert md["ibkr:ES-202612"] == "live"


@bounded
async def test_commission_held_back_is_attached_and_missing_one_is_counted(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.emu.hold_commissions()
        await h.venue.submit_order(market(AAPL, "c-1"))
        await h.step(1.0)
        assert h.fills("c-1") == []  # waiting for its commission
        h.emu.release_commissions()
        await until(lambda: h.fills("c-1"), what="fill with commission")
        assert h.fills("c-1")[0].fee > 0
        h.emu.hold_commissions()
        await h.venue.submit_order(market(AAPL, "c-2", side=Side.SELL))
        await h.step(h.venue.config.commission_wait_s + 0.5)
        await until(lambda: h.fills("c-2"), what="fill published without commission")
        assert h.fills("c-2")[0].fee == 0 and h.venue.counts["commissions_missing"] == 1
        h.emu.release_commissions()
        await until(lambda: h.venue.counts["late_commissions"] == 1, what="late commission counted")
        assert len(h.fills("c-2")) == 1


@bounded
async def test_gateway_down_at_start_uses_the_cache_then_connects(tmp_path: Path) -> None:
    async with harness(tmp_path):
        pass  # first run: contracts resolved and cached
    clock = ManualClock(TUESDAY_10_ET_NS)
    probe = await emulator.start("127.0.0.1", 0, seed=7, clock=clock)
    port = probe.port
    await probe.close()  # nothing listens on `port` now
    bus = Bus()
    venue = make_venue(port, bus, clock, tmp_path)
    await venue.start()
    assert not venue.health().ok and AAPL in venue.instruments()
    with pytest.raises(RetryableError):
        await venue.positions()
    h = Harness(probe, venue, bus, clock, tmp_path)
    import asyncio

    h.task = asyncio.get_running_loop().create_task(venue.run())
    emu = IbkrEmulator(host="127.0.0.1", port=port, seed=7, clock=clock)
    await emu.start()
    h.emu = emu
    try:
        await reconnected(h)
        assert h.gaps()[-1].reason == "reconnected"
    finally:
        await h.stop()
        await emu.close()


@bounded
async def test_gateway_down_at_start_without_cache_fails_naming_the_cache(tmp_path: Path) -> None:
    clock = ManualClock(TUESDAY_10_ET_NS)
    probe = await emulator.start("127.0.0.1", 0, seed=7, clock=clock)
    port = probe.port
    await probe.close()
    venue = make_venue(port, Bus(), clock, tmp_path)
    with pytest.raises(RetryableError, match=r"ibkr_contracts\.json"):
        await venue.start()


@bounded
async def test_an_unknown_symbol_fails_the_start_naming_it(tmp_path: Path) -> None:
    clock = ManualClock(TUESDAY_10_ET_NS)
    emu = await emulator.start("127.0.0.1", 0, seed=7, clock=clock)
    try:
        venue = make_venue(emu.port, Bus(), clock, tmp_path, symbols=("AAPL", "ZZZZ"))
        with pytest.raises(ValueError, match="'ZZZZ': IB knows no such contract"):
            await venue.start()
        assert not venue.health().ok
    finally:
        await emu.close()
