"""IbkrVenue orders against the emulator: acks, fills with commissions, cancels, refusals, query, ids."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.core.errors import OrderRejected, RateLimited, RetryableError
from nautilus_hmm.domain.enums import InstrumentKind, OrderStatus, Side
from nautilus_hmm.domain.orders import Balance
from nautilus_hmm.venues.ibkr.contracts import CACHE_FILE
from nautilus_hmm.venues.ibkr.ids import BLOCK_IDS, ID_FILE
from tests.integration.ibkr.adapter_harness import (
    AAPL,
    ES,
    EURUSD,
    bounded,
    harness,
    limit,
    market,
    until,
)


@bounded
async def test_start_resolves_stock_future_and_fx_and_caches_them(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        inst = h.venue.instruments()
        assert inst[AAPL].kind is InstrumentKind.STOCK and inst[AAPL].venue_ref == "265598"
        assert inst[ES].kind is InstrumentKind.FUTURE and inst[ES].multiplier == 50 and inst[ES].expiry == "20261218"
        assert inst[EURUSD].kind is InstrumentKind.FX and inst[EURUSD].tick_size == Decimal("0.00005")
        assert all(i.sessions is not None for i in inst.values())
        cached = json.loads((tmp_path / CACHE_FILE).read_text())["contracts"]
        assert cached["ES-202612"]["con_id"] == 637533641
        assert h.venue.health().ok


@bounded
async def test_market_order_fills_once_with_its_commission(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        ack = await h.venue.submit_order(market(AAPL, "m-1"))
        assert ack.client_order_id == "m-1" and ack.status in (OrderStatus.ACCEPTED, OrderStatus.FILLED)
        await until(lambda: h.fills("m-1"), what="fill published")
        await h.step(3.0)  # past commission_wait_s: nothing more is published
        (fill,) = h.fills("m-1")
        assert fill.qty == 10 and fill.fee > 0 and fill.fee_asset == "USD"
        assert await h.venue.positions() == {AAPL: Decimal(10)}
        (again,) = await h.venue.fills_since(AAPL, 0)
        assert again.trade_id == fill.trade_id and again.fee == fill.fee
        vo = await h.venue.query_order(AAPL, "m-1")
        assert vo is not None and vo.status is OrderStatus.FILLED and vo.filled_qty == 10
        assert h.venue.counts["commissions_missing"] == 0 and h.venue.counts["duplicate_execs"] == 0


@bounded
async def test_order_id_mark_is_written_before_the_first_send(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        ack = await h.venue.submit_order(limit(AAPL, "l-1", "100.00"))
        mark = json.loads((tmp_path / ID_FILE).read_text())["reserved_below"]
        assert int(ack.venue_order_id) < mark == int(ack.venue_order_id) + BLOCK_IDS


@bounded
async def test_limit_order_rests_lists_and_cancels(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        ack = await h.venue.submit_order(limit(AAPL, "l-2", "100.00"))
        assert ack.status is OrderStatus.ACCEPTED and ack.price == Decimal("100.0")
        assert [o.client_order_id for o in await h.venue.open_orders(AAPL)] == ["l-2"]
        vo = await h.venue.cancel_order(AAPL, "l-2")
        assert vo.status is OrderStatus.CANCELED
        assert await h.venue.open_orders() == []
        with pytest.raises(OrderRejected, match="CANCELED"):
            await h.venue.cancel_order(AAPL, "l-2")
        with pytest.raises(OrderRejected, match="does not know"):
            await h.venue.cancel_order(AAPL, "never-sent")


@bounded
async def test_ib_refusal_is_order_rejected_and_reported(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        with pytest.raises(OrderRejected) as info:
            await h.venue.submit_order(market(AAPL, "r-1", qty="0.5"))  # not a multiple of the size increment
        assert info.value.code == "201"
        vo = await h.venue.query_order(AAPL, "r-1")
        assert vo is None or vo.status is OrderStatus.REJECTED


@bounded
async def test_a_query_for_an_order_ib_never_saw_is_none(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        assert await h.venue.query_order(AAPL, "ghost") is None


@bounded
async def test_ids_stay_above_every_id_used_across_a_restart_and_a_reset_gateway(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        first = int((await h.venue.submit_order(limit(AAPL, "i-1", "100.00"))).venue_order_id)
    # A new Gateway (fresh emulator: its nextValidId starts low again), same state dir.
    async with harness(tmp_path) as h2:
        second = int((await h2.venue.submit_order(limit(AAPL, "i-2", "100.00"))).venue_order_id)
        assert second > first and second >= first + BLOCK_IDS - 1


@bounded
async def test_read_only_refuses_orders_before_anything_is_sent(tmp_path: Path) -> None:
    from nautilus_hmm.core.errors import AuthError

    async with harness(tmp_path) as h:
        h.venue.options = type(h.venue.options)(read_only=True, market_data=False)
        with pytest.raises(AuthError):
            await h.venue.submit_order(market(AAPL, "ro-1"))
        assert h.orders_at_venue("ro-1") == []


@bounded
async def test_post_only_is_refused_as_unsupported(tmp_path: Path) -> None:
    from nautilus_hmm.domain.enums import OrderType
    from nautilus_hmm.domain.orders import OrderRequest

    async with harness(tmp_path) as h:
        req = OrderRequest("pm-1", AAPL, Side.BUY, OrderType.LIMIT_MAKER, Decimal(1), Decimal("100.00"))
        with pytest.raises(OrderRejected, match="post-only"):
            await h.venue.submit_order(req)
        assert h.orders_at_venue("pm-1") == []


@bounded
async def test_orders_are_refused_while_disconnected_and_nothing_is_sent(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await h.emu.close()
        await until(lambda: not h.venue.health().ok, what="disconnect seen")
        with pytest.raises(RetryableError, match="not connected"):
            await h.venue.submit_order(market(AAPL, "d-1"))
        # A query while the Gateway is away is "wait and ask again" (RateLimited), never None
        # ("IB never saw it" would close an order) and never an attempt spent.
        with pytest.raises(RateLimited) as info:
            await h.venue.query_order(AAPL, "d-1")
        assert info.value.retry_after_s >= 1.0


@bounded
async def test_an_fx_fill_shows_in_the_balances_at_once(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        before = await h.venue.balances()
        await h.venue.submit_order(market(EURUSD, "fx-1", qty="20000"))
        await until(lambda: h.fills("fx-1"), what="the FX fill")
        after = await h.venue.balances()  # not the minutes-old account push: asked again
        assert after["EUR"].total - before.get("EUR", Balance("EUR", Decimal(0), Decimal(0))).total == 20000
        assert after["USD"].total < before["USD"].total
