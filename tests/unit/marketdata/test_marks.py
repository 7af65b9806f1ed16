"""The mark book: one mark and one receipt time per instrument, from every kind of update."""

from __future__ import annotations

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.marketdata.marks import MarkBook
from nautilus_hmm.messages import Bar, MarkPrice, QuoteTick, TradeTick

IID = InstrumentId("sim", "BTCUSDT")


def test_every_kind_of_update_sets_the_mark_and_the_receipt_time(bus: Bus, clock: ManualClock) -> None:
    book = MarkBook()
    book.attach(bus)
    t = clock.time_ns()
    bus.publish(TradeTick(ts_event_ns=t, ts_init_ns=t, instrument_id=IID, price=100.0, size=1.0,
                          aggressor=None, trade_id="1"))
    assert (book.mark(IID), book.last_ns[IID]) == (100.0, t)
    bus.publish(QuoteTick(ts_event_ns=t, ts_init_ns=t + 1, instrument_id=IID, bid=101.0, bid_size=1.0, ask=103.0,
                          ask_size=1.0))
    assert book.mark(IID) == 102.0
    bus.publish(Bar(ts_event_ns=0, ts_init_ns=t + 2, instrument_id=IID, interval_s=60, open=1.0, high=1.0,
                    low=1.0, close=104.0, volume=1.0))
    assert (book.mark(IID), book.last_ns[IID]) == (104.0, t + 2)
    bus.publish(MarkPrice(ts_event_ns=t, ts_init_ns=t + 3, instrument_id=IID, price=105.0))
    assert book.mark(IID) == 105.0


def test_a_price_at_or_below_zero_is_never_a_mark_but_counts_as_fresh_data() -> None:
    book = MarkBook()
    book.update(IID, 100.0, 10)
    book.update(IID, 0.0, 20)
    book.update(IID, None, 30)
    assert (book.mark(IID), book.last_ns[IID]) == (100.0, 30)


def test_the_receipt_time_only_moves_forward() -> None:
    book = MarkBook()
    book.update(IID, 100.0, 30)
    book.update(IID, 101.0, 20)
    assert (book.mark(IID), book.last_ns[IID]) == (101.0, 30)
