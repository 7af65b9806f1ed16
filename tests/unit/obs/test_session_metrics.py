"""market_session_open (issue 14): 1 while an instrument's trading session is open, 0 while
closed, no series for 24/7 instruments; the data-age alert is quiet on 0
(deploy/prometheus/rules_test.yml tests the rule itself)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from nautilus_hmm.domain.enums import InstrumentKind
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.sessions import TradingSessions
from tests.unit.obs.test_trading_metrics import metrics_of_a_stack_quoted_in

HOUR = 3600 * 1_000_000_000


def test_session_gauge_follows_the_calendar_and_skips_24_7_instruments() -> None:
    metrics, stack = metrics_of_a_stack_quoted_in("USDT")
    now = stack.clock.time_ns()
    aapl = InstrumentId("ibkr", "AAPL")
    one = Decimal(1)
    inst = Instrument(id=aapl, base_asset="AAPL", quote_asset="USD", kind=InstrumentKind.STOCK, tick_size=one,
                      step_size=one, min_qty=one, max_qty=None, min_notional=Decimal(0),
                      sessions=TradingSessions(((now + HOUR, now + 2 * HOUR),), "UTC", now + 24 * HOUR))
    stack.engine.instruments[aapl] = inst
    stack.engine.instruments[InstrumentId("sim", "BTCUSDT")] = dataclasses.replace(inst, id=InstrumentId(
        "sim", "BTCUSDT"), sessions=None)
    get = metrics.registry.get_sample_value
    assert get("market_session_open", {"instrument": "ibkr:AAPL"}) == 0.0
    stack.clock.advance(HOUR / 1e9 + 1)
    assert get("market_session_open", {"instrument": "ibkr:AAPL"}) == 1.0
    assert get("market_session_open", {"instrument": "sim:BTCUSDT"}) is None
    stack.clock.advance(2 * HOUR / 1e9)  # closed again, inside the calendar
    assert get("market_session_open", {"instrument": "ibkr:AAPL"}) == 0.0
    stack.clock.advance(24 * HOUR / 1e9)  # past the calendar: fail safe, the alert may fire
    assert get("market_session_open", {"instrument": "ibkr:AAPL"}) == 1.0
    stack.engine.instruments[aapl] = dataclasses.replace(inst, sessions=None)
    assert get("market_session_open", {"instrument": "ibkr:AAPL"}) is None
    assert "# TYPE market_session_open gauge" in metrics.render().decode()
