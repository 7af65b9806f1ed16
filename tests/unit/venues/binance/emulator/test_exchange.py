"""EmulatedExchange (pure): the market's past as GET klines serves it."""

from __future__ import annotations

from nautilus_hmm.venues.binance.emulator.exchange import EmulatedExchange, initial_price
from nautilus_hmm.venues.binance.market import Market

T0_NS = 1_700_000_000 * 10**9


def test_klines_history_ends_at_the_opening_price_however_late_it_is_first_asked() -> None:
    ex = EmulatedExchange(Market.SPOT, ["BTCUSDT"], start_ns=T0_NS)
    for i in range(5):
        ex.tick(T0_NS + (i + 1) * 10**9)
    assert ex.engines["BTCUSDT"].last_price != initial_price("BTCUSDT")
    rows = ex.rest_klines({"symbol": "BTCUSDT", "interval": "1m", "limit": "3"})
    assert rows[-1][4] == f"{initial_price('BTCUSDT'):.8f}"
    assert rows[-1][0] < T0_NS // 10**6  # nothing after the start
