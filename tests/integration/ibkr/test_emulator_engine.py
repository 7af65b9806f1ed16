"""The IBKR emulator's pure parts: matching, commissions, positions and cash (engine), sessions
and the seeded market (market), the codec (protocol). No sockets, no event loop."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from nautilus_hmm.domain.sessions import TradingSessions
from nautilus_hmm.venues.ibkr.emulator import engine as eng
from nautilus_hmm.venues.ibkr.emulator.market import (
    NS_PER_S,
    Market,
    Quote,
    default_contracts,
    hours_text,
    is_open,
    on_tick,
)
from nautilus_hmm.venues.ibkr.emulator.protocol import (
    Fields,
    ProtocolError,
    encode,
    parse_version_range,
    split_fields,
    text,
)

D = Decimal
SPECS = {c.local_symbol: c for c in default_contracts()}
AAPL, ESZ6, EURUSD, USDJPY = SPECS["AAPL"], SPECS["ESZ6"], SPECS["EUR.USD"], SPECS["USD.JPY"]


def ns(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    """UTC wall time in ns."""
    return int(datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp()) * NS_PER_S


TUE_10_ET = ns(2026, 12, 1, 15)


class FixedMarket:
    """Quotes set by the test (bid, ask, sizes) for every contract."""

    def __init__(self, bid: str, ask: str, size: int = 1000) -> None:
        self.q = Quote(D(bid), D(ask), size, size, D(ask), 1)

    def __call__(self, spec, now_ns):  # type: ignore[no-untyped-def]
        return self.q


def engine(bid: str = "100.00", ask: str = "100.01", size: int = 1000) -> tuple[eng.Engine, FixedMarket]:
    m = FixedMarket(bid, ask, size)
    return eng.Engine(quote_of=m), m


def buy(qty: str, order_type: str = "MKT", lmt: str | None = None, **kw) -> eng.OrderRequest:  # type: ignore[no-untyped-def]
    return eng.OrderRequest("BUY", D(qty), order_type, D(lmt) if lmt else None, **kw)


def sell(qty: str, order_type: str = "MKT", lmt: str | None = None, **kw) -> eng.OrderRequest:  # type: ignore[no-untyped-def]
    return eng.OrderRequest("SELL", D(qty), order_type, D(lmt) if lmt else None, **kw)


# --- commissions -----------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "qty", "value", "expected"), [
    (AAPL, "100", "23000", "1.00"),        # 0.50 -> the 1.00 minimum
    (AAPL, "1000", "230000", "5.00"),      # 0.005 a share
    (AAPL, "1000", "300", "3.00"),         # at most 1 % of the value
    (ESZ6, "3", "900000", "6.75"),         # 2.25 a contract
    (EURUSD, "20000", "21700", "2.00"),    # the 2.00 minimum
    (EURUSD, "1000000", "1085000", "21.70"),  # 0.2 bp of the USD value
])
def test_commission_schedule(spec, qty, value, expected) -> None:  # type: ignore[no-untyped-def]
    assert eng.commission_total(spec, D(qty), D(value)) == D(expected)


# --- matching ----------------------------------------------------------------------------------


def test_market_buy_takes_the_ask_up_to_its_size_then_the_rest_on_steps() -> None:
    e, _ = engine(size=400)
    events = e.place(1, 1, AAPL, buy("1000"), TUE_10_ET)
    fills = [ev.execution for ev in events if isinstance(ev, eng.Filled)]
    assert [(f.shares, f.price) for f in fills] == [(D(400), D("100.01"))]
    e.step(TUE_10_ET + NS_PER_S)
    e.step(TUE_10_ET + 2 * NS_PER_S)
    order = e.orders[(1, 1)]
    assert order.status == "Filled" and order.filled == 1000
    assert [x.liquidity for x in e.executions] == [2, 1, 1]
    assert sum(x.commission for x in e.executions) == D("5.00")  # charged per order, not per execution
    assert len({x.exec_id for x in e.executions}) == 3


def test_limit_order_rests_until_the_market_reaches_it() -> None:
    e, m = engine()
    e.place(1, 1, AAPL, buy("10", "LMT", "99.50"), TUE_10_ET)
    assert e.orders[(1, 1)].status == "Submitted" and not e.executions
    m.q = Quote(D("99.49"), D("99.50"), 1000, 1000, D("99.50"), 1)
    e.step(TUE_10_ET + NS_PER_S)
    assert e.orders[(1, 1)].status == "Filled" and e.executions[0].price == D("99.50")


def test_ioc_remainder_is_cancelled() -> None:
    e, _ = engine(size=3)
    events = e.place(1, 1, AAPL, buy("10", tif="IOC"), TUE_10_ET)
    order = e.orders[(1, 1)]
    assert order.filled == 3 and order.status == "Cancelled"
    assert isinstance(events[-1], eng.OrderChanged)


def test_day_order_expires_at_the_end_of_regular_hours() -> None:
    e, _ = engine()
    e.place(1, 1, AAPL, buy("10", "LMT", "50.00"), TUE_10_ET)
    assert not [ev for ev in e.step(ns(2026, 12, 1, 20, 59)) if isinstance(ev, eng.OrderNotice)]
    notices = [ev for ev in e.step(ns(2026, 12, 1, 21, 0)) if isinstance(ev, eng.OrderNotice)]  # 16:00 ET
    assert [n.code for n in notices] == [202] and e.orders[(1, 1)].status == "Cancelled"


def test_gtc_order_outlives_the_session_and_waits_outside_it() -> None:
    e, _ = engine()
    e.place(1, 1, AAPL, buy("10", "LMT", "50.00", tif="GTC"), TUE_10_ET)
    e.step(ns(2026, 12, 2, 2))  # 21:00 ET: closed
    assert e.orders[(1, 1)].status == "Submitted"
    e2, _ = engine()
    e2.place(1, 1, AAPL, buy("10", tif="GTC"), ns(2026, 12, 2, 2))
    assert e2.orders[(1, 1)].status == "PreSubmitted" and not e2.executions


def test_modify_open_order_changes_quantity_and_price() -> None:
    e, _ = engine()
    e.place(1, 5, AAPL, buy("10", "LMT", "90.00"), TUE_10_ET)
    e.place(1, 5, AAPL, buy("20", "LMT", "100.01"), TUE_10_ET)
    order = e.orders[(1, 5)]
    assert order.total_qty == 20 and order.status == "Filled"
    with pytest.raises(eng.OrderError) as err:
        e.place(1, 5, AAPL, buy("20", "LMT", "100.01"), TUE_10_ET)  # done now: the id is used
    assert err.value.code == 103


@pytest.mark.parametrize(("req", "code"), [
    (eng.OrderRequest("BUY", D(0), "MKT", None), 434),
    (eng.OrderRequest("BUY", D("0.5"), "MKT", None), 201),
    (eng.OrderRequest("BUY", D(1), "STP", None), 201),
    (eng.OrderRequest("BUY", D(1), "MKT", None, tif="FOK"), 201),
    (eng.OrderRequest("HOLD", D(1), "MKT", None), 201),
    (eng.OrderRequest("BUY", D(1), "LMT", None), 201),
    (eng.OrderRequest("BUY", D(1), "LMT", D("100.005")), 110),
])
def test_bad_orders_are_refused_with_ib_codes_and_change_nothing(req, code) -> None:  # type: ignore[no-untyped-def]
    e, _ = engine()
    with pytest.raises(eng.OrderError) as err:
        e.place(1, 1, AAPL, req, TUE_10_ET)
    assert err.value.code == code
    assert e.orders == {} and e.next_valid_id(1) == 1


def test_ids_must_rise_per_client_and_clients_are_independent() -> None:
    e, _ = engine()
    e.place(1, 10, AAPL, buy("1", "LMT", "1.00"), TUE_10_ET)
    with pytest.raises(eng.OrderError) as err:
        e.place(1, 9, AAPL, buy("1", "LMT", "1.00"), TUE_10_ET)
    assert err.value.code == 103
    e.place(2, 1, AAPL, buy("1", "LMT", "1.00"), TUE_10_ET)
    assert e.next_valid_id(1) == 11 and e.next_valid_id(2) == 2


def test_cancel_unknown_is_135_and_cancel_done_is_161() -> None:
    e, _ = engine()
    with pytest.raises(eng.OrderError) as err:
        e.cancel(1, 99, TUE_10_ET)
    assert err.value.code == 135
    e.place(1, 1, AAPL, buy("1"), TUE_10_ET)
    with pytest.raises(eng.OrderError) as err:
        e.cancel(1, 1, TUE_10_ET)
    assert err.value.code == 161


# --- positions and cash ------------------------------------------------------------------------


def test_stock_avg_cost_includes_commission_and_a_close_realizes_net_pnl() -> None:
    e, m = engine("100.00", "100.00")
    e.place(1, 1, AAPL, buy("100"), TUE_10_ET)
    pos = e.positions[AAPL.con_id]
    assert pos.avg_cost == D("100.01")  # (100 x 100 + 1.00) / 100
    m.q = Quote(D("110.00"), D("110.00"), 1000, 1000, D("110.00"), 1)
    e.place(1, 2, AAPL, sell("100"), TUE_10_ET)
    [_, closing] = e.executions
    assert closing.realized_pnl == D("998.00")  # 11000 - 1.00 exit fee - (10000 + 1.00 entry fee)
    assert pos.qty == 0 and pos.avg_cost == 0
    assert e.cash["USD"] == D(1_000_000) - D("10000") - D("1.00") + D("11000") - D("1.00")


def test_future_avg_cost_carries_the_multiplier_and_a_flip_reopens_at_the_fill() -> None:
    e, m = engine("6000.00", "6000.00")
    e.place(1, 1, ESZ6, buy("2"), TUE_10_ET)
    pos = e.positions[ESZ6.con_id]
    assert pos.avg_cost == D("300002.25")  # 6000 x 50 + 4.50 / 2
    cash_after_open = e.cash["USD"]
    assert cash_after_open == D(1_000_000) - D("4.50")  # no notional moves for a future
    m.q = Quote(D("6010.00"), D("6010.00"), 1000, 1000, D("6010.00"), 1)
    e.place(1, 2, ESZ6, sell("3"), TUE_10_ET)  # close 2, open 1 short
    assert pos.qty == -1
    assert pos.avg_cost == D("300497.75")  # a short: 6010 x 50 less its share of the 6.75 fee
    realized = e.executions[-1].realized_pnl
    assert realized == (D("300500") - D("300002.25")) * 2 - D("4.50")
    assert e.cash["USD"] == cash_after_open + (D("300500") - D("300002.25")) * 2 - D("6.75")


def test_fx_buy_credits_base_and_debits_quote_currency() -> None:
    e, _ = engine("1.08500", "1.08505", size=5_000_000)
    e.fx_specs = (EURUSD,)
    e.place(1, 1, EURUSD, buy("100000"), TUE_10_ET)
    assert e.cash["EUR"] == 100000
    assert e.cash["USD"] == D(1_000_000) - D("108505.00000") - D("2.17")  # 0.2 bp of 108.5k USD


def test_account_values_balance_cash_and_positions() -> None:
    e, _ = engine("100.00", "100.00")
    e.place(1, 1, AAPL, buy("100"), TUE_10_ET)
    values = e.account_values(TUE_10_ET)
    assert values["TotalCashValue"] == ("989999.00", "USD")
    assert values["NetLiquidation"] == ("999999.00", "USD")
    assert values["GrossPositionValue"] == ("10000.00", "USD")


# --- sessions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "ts", "liquid", "open_"), [
    (AAPL, ns(2026, 12, 1, 14, 29), True, False),   # 09:29 ET
    (AAPL, ns(2026, 12, 1, 14, 30), True, True),    # 09:30 ET
    (AAPL, ns(2026, 12, 1, 20, 59), True, True),
    (AAPL, ns(2026, 12, 1, 21, 0), True, False),    # 16:00 ET
    (AAPL, ns(2026, 12, 1, 9, 0), False, True),     # 04:00 ET pre-market
    (AAPL, ns(2026, 12, 25, 15), False, False),     # Christmas
    (AAPL, ns(2026, 12, 5, 15), False, False),      # Saturday
    (ESZ6, ns(2026, 12, 1, 22, 30), False, False),  # 16:30 CT: the daily break
    (ESZ6, ns(2026, 12, 1, 23, 0), False, True),    # 17:00 CT: next day's session
    (ESZ6, ns(2026, 12, 6, 23, 0), False, True),    # Sunday 17:00 CT: Monday's session
    (ESZ6, ns(2026, 12, 5, 23, 0), False, False),   # Saturday evening
    (EURUSD, ns(2026, 12, 6, 22, 14), False, False),  # Sunday 17:14 ET
    (EURUSD, ns(2026, 12, 6, 22, 15), False, True),   # Sunday 17:15 ET
    (EURUSD, ns(2026, 12, 4, 22, 0), False, False),   # Friday 17:00 ET
    (EURUSD, ns(2026, 12, 2, 22, 5), False, False),   # the daily 15-minute break
])
def test_session_hours(spec, ts, liquid, open_) -> None:  # type: ignore[no-untyped-def]
    assert is_open(spec, ts, liquid=liquid) is open_


@pytest.mark.parametrize("symbol", ["AAPL", "ESZ6", "EUR.USD"])
@pytest.mark.parametrize("liquid", [False, True])
def test_hours_text_agrees_with_the_emulator_sessions_via_trading_sessions(symbol: str, liquid: bool) -> None:
    spec = SPECS[symbol]
    start = ns(2026, 3, 5, 12)  # spans the US daylight-saving change (March 8)
    sessions = TradingSessions.from_ib(hours_text(spec, start, liquid=liquid, days=8), spec.time_zone_id)
    for k in range(1, 6 * 96):  # every 15 minutes for 6 days
        t = start + k * 900 * NS_PER_S
        assert sessions.is_open(t) == is_open(spec, t, liquid=liquid), (symbol, liquid, t)


# --- the seeded market -------------------------------------------------------------------------


def test_market_is_deterministic_per_seed_on_the_tick_grid() -> None:
    a, b, c = Market(7, default_contracts()), Market(7, default_contracts()), Market(8, default_contracts())
    times = [TUE_10_ET + k * 37 * NS_PER_S for k in range(50)]
    qa = [a.quote(AAPL, t) for t in times]
    assert qa == [b.quote(AAPL, t) for t in times]
    assert qa != [c.quote(AAPL, t) for t in times]
    for spec in (AAPL, ESZ6, EURUSD, USDJPY):
        for t in times:
            q = a.quote(spec, t)
            assert q.ask - q.bid == spec.min_tick * spec.spread_ticks
            assert on_tick(q.bid, spec.min_tick) and q.bid > 0
            assert abs(float(q.bid) / spec.base_price - 1) < 0.5


def test_bars_are_consistent_and_independent_of_how_they_are_asked() -> None:
    m = Market(7, default_contracts())
    bar = m.bar(ESZ6, TUE_10_ET, TUE_10_ET + 300 * NS_PER_S)
    assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
    assert bar.volume > 0 and bar.count > 0
    again = Market(7, default_contracts()).bar(ESZ6, TUE_10_ET, TUE_10_ET + 300 * NS_PER_S)
    assert again == bar
    assert replace(bar, volume=0) != bar


# --- the codec ---------------------------------------------------------------------------------


def test_version_range_parsing() -> None:
    assert parse_version_range(b"v157..178") == (157, 178, "")
    assert parse_version_range(b"v100..176 +PACEAPI") == (100, 176, "+PACEAPI")
    assert parse_version_range(b"v163") == (163, 163, "")
    for bad in (b"157..178", b"vX..Y", b"v178..157", b"\xff"):
        with pytest.raises(ProtocolError):
            parse_version_range(bad)


def test_field_codec() -> None:
    assert text(True) == "1" and text(None) == "" and text(D("100.50")) == "100.5" and text(D("1E+2")) == "100"
    assert text(1.7976931348623157e308) == "1.7976931348623157E308"
    assert encode(9, 1, 5) == b"\x00\x00\x00\x069\x001\x005\x00"
    assert split_fields(b"9\x001\x005\x00") == ["9", "1", "5"]
    f = Fields(["3", "x"], "placeOrder")
    f.str("msgId")
    with pytest.raises(ProtocolError, match="'orderId' is not an integer: 'x'"):
        f.int("orderId")
    with pytest.raises(ProtocolError, match="'next' missing"):
        f.str("next")
    with pytest.raises(ProtocolError, match="finite"):
        Fields(["Infinity"], "t").decimal("p")
