"""Bus delivery rules: typed dispatch, isolated handlers, bounded queues."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from structlog.testing import capture_logs

from nautilus_hmm.core.bus import Bus, Overflow
from nautilus_hmm.domain.enums import Liquidity, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Fill, QuoteTick, TradeTick

IID = InstrumentId("sim", "BTCUSDT")


def trade(i: int) -> TradeTick:
    return TradeTick(ts_event_ns=i, ts_init_ns=i, instrument_id=IID, price=100.0 + i, size=1.0,
                     aggressor=Side.BUY, trade_id=str(i))


def fill(i: int) -> Fill:
    return Fill(ts_event_ns=i, ts_init_ns=i, instrument_id=IID, client_order_id=f"c{i}", venue_order_id=None,
                trade_id=f"t{i}", side=Side.BUY, qty=Decimal(1), price=Decimal(100), fee=Decimal(0),
                fee_asset="USDT", liquidity=Liquidity.TAKER)


def test_handlers_receive_only_their_type_in_subscription_order(bus: Bus) -> None:
    seen: list[str] = []
    bus.subscribe(TradeTick, lambda m: seen.append(f"a{m.trade_id}"))
    bus.subscribe(TradeTick, lambda m: seen.append(f"b{m.trade_id}"))
    bus.subscribe(QuoteTick, lambda m: seen.append("quote"))
    bus.publish(trade(1))
    assert seen == ["a1", "b1"]
    assert bus.stats.published == {"TradeTick": 1}


def test_failing_handler_is_isolated_logged_and_counted(bus: Bus) -> None:
    seen: list[int] = []

    def broken(m: TradeTick) -> None:
        raise RuntimeError("boom")

    bus.subscribe(TradeTick, broken, name="broken")
    bus.subscribe(TradeTick, lambda m: seen.append(m.ts_event_ns), name="ok")
    with capture_logs() as logs:
        bus.publish(trade(7))  # must not raise into the publisher
    assert seen == [7]
    assert bus.stats.handler_errors == {"broken": 1}
    assert any(e["event"] == "bus_handler_error" and e["subscriber"] == "broken" for e in logs)


def test_unsubscribe_stops_delivery(bus: Bus) -> None:
    seen: list[int] = []
    unsubscribe = bus.subscribe(TradeTick, lambda m: seen.append(1))
    bus.publish(trade(1))
    unsubscribe()
    bus.publish(trade(2))
    assert seen == [1]


def test_drop_oldest_queue_drops_market_data_but_never_fills(bus: Bus) -> None:
    q = bus.subscribe_queue("slow", maxsize=3, overflow=Overflow.DROP_OLDEST)
    bus.publish(fill(1))
    for i in range(5):
        bus.publish(trade(i))
    bus.publish(fill(2))
    items = []
    while (m := q.get_nowait()) is not None:
        items.append(m)
    assert [type(m).__name__ for m in items].count("Fill") == 2
    assert bus.stats.dropped["slow"] >= 3


def test_queue_full_of_critical_messages_grows_rather_than_drop_one(bus: Bus) -> None:
    q = bus.subscribe_queue("journal", types=[Fill], maxsize=2, overflow=Overflow.DROP_OLDEST)
    for i in range(5):
        bus.publish(fill(i))
    assert len(q) == 5
    assert bus.stats.dropped.get("journal", 0) == 0


async def test_disconnect_policy_closes_a_slow_subscriber_and_ends_its_stream(bus: Bus) -> None:
    closed: list[str] = []
    q = bus.subscribe_queue("sse", maxsize=2, overflow=Overflow.DISCONNECT)
    q.on_close = closed.append
    for i in range(3):
        bus.publish(trade(i))
    assert q.closed
    assert "too slow" in closed[0]
    assert bus.stats.dropped["sse"] == 1
    got = [m async for m in q]  # drains what was queued, then ends
    assert len(got) == 2
    bus.publish(trade(9))
    assert len(q) == 0  # no longer subscribed


async def test_queue_get_waits_for_the_next_message(bus: Bus) -> None:
    q = bus.subscribe_queue("w", types=[TradeTick])
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    bus.publish(trade(3))
    msg = await waiter
    assert isinstance(msg, TradeTick) and msg.trade_id == "3"


def test_queue_with_type_filter_ignores_other_types(bus: Bus) -> None:
    q = bus.subscribe_queue("fills", types=[Fill])
    bus.publish(trade(1))
    bus.publish(fill(1))
    assert len(q) == 1
