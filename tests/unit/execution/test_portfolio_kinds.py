"""Portfolio accounting of the IBKR kinds (issue 14), against hand-computed numbers: futures
PnL x multiplier on margin, stocks paying their notional from cash and valued whole, FX as
two currency balances, PnL in the instrument's `currency`; the float equity book agrees."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nautilus_hmm.config.loader import parse
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import InstrumentKind, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.execution.equity import EquityBook
from nautilus_hmm.execution.portfolio import NS_PER_DAY, Portfolio
from nautilus_hmm.execution.router import SPOT_SHORT_CLAMPED, OrderSpec, plan_target
from nautilus_hmm.risk.config import RiskConfig
from nautilus_hmm.risk.gate import RiskGate

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
T = 19_675 * NS_PER_DAY + 15 * 3_600 * 10**9


def ib(symbol: str, kind: InstrumentKind, base: str, quote: str = "USD", multiplier: str = "1",
       currency: str | None = "USD") -> Instrument:
    return Instrument(id=InstrumentId("ibkr", symbol), base_asset=base, quote_asset=quote, kind=kind,
                      tick_size=D("0.01"), step_size=D("1"), min_qty=D("1"), max_qty=None, min_notional=D(0),
                      multiplier=D(multiplier), currency=currency)


ES = ib("ES-202612", InstrumentKind.FUTURE, "ES", multiplier="50")
AAPL = ib("AAPL", InstrumentKind.STOCK, "AAPL")
EURUSD = ib("EUR.USD", InstrumentKind.FX, "EUR")


def usd_book(cash: str = "100000") -> Portfolio:
    pf = Portfolio("USD")
    pf.set_cash("USD", D(cash), "ibkr")
    for i in (ES, AAPL, EURUSD):
        pf.add_price_source(i)
    return pf


def float_equity(pf: Portfolio, marks: dict[InstrumentId, float]) -> float:
    book = EquityBook(pf, marks, RiskGate(parse(RiskConfig, {}), Bus(), ManualClock()))
    book.refresh()
    return book.equity_f()


def test_future_pnl_uses_the_multiplier_and_cash_moves_only_by_realized_pnl() -> None:
    pf = usd_book()
    pf.apply_fill(ES, BUY, D(2), D("5000.00"), D("4.50"), "USD", T)
    assert pf.cash["USD"] == D("99995.50")  # margin: only the fee left cash
    pf.mark(ES.id, D("5012.25"), T + 1)
    assert pf.equity() == D("99995.50") + 2 * D("12.25") * 50
    assert float_equity(pf, {ES.id: 5012.25}) == pytest.approx(float(pf.equity()))
    pf.apply_fill(ES, SELL, D(2), D("5010.00"), D("4.50"), "USD", T + 2)
    assert pf.positions[ES.id].realized_pnl == 2 * 10 * 50 == 1000
    assert pf.cash["USD"] == D("100000") + 1000 - 9
    assert pf.day_realized_pnl == 1000 - 9


def test_a_stock_buy_pays_its_notional_and_is_not_a_loss() -> None:
    pf = usd_book()
    start = pf.equity()
    pf.apply_fill(AAPL, BUY, D(100), D("190.00"), D("1.00"), "USD", T)
    assert pf.cash["USD"] == D("100000") - 19000 - 1  # as IB's cash balance
    assert "AAPL" not in pf.cash  # the shares are a position (IB reports them so), not a balance
    pf.mark(AAPL.id, D("190.00"), T + 1)
    assert pf.equity() == start - 1  # only the commission
    pf.mark(AAPL.id, D("200.00"), T + 2)
    assert pf.equity() == start - 1 + 1000
    assert float_equity(pf, {AAPL.id: 200.0}) == pytest.approx(float(pf.equity()))
    pf.apply_fill(AAPL, SELL, D(100), D("200.00"), D("1.00"), "USD", T + 3)
    assert pf.cash["USD"] == D("100000") + 1000 - 2 and pf.equity() == pf.cash["USD"]
    assert pf.positions[AAPL.id].realized_pnl == 1000


def test_a_short_stock_is_proceeds_in_cash_minus_the_shares_at_mark() -> None:
    pf = usd_book()
    pf.apply_fill(AAPL, SELL, D(10), D("200.00"), D(0), "USD", T)
    pf.mark(AAPL.id, D("210.00"), T + 1)
    assert pf.cash["USD"] == D("102000")
    assert pf.equity() == D("100000") - 100
    assert float_equity(pf, {AAPL.id: 210.0}) == pytest.approx(99_900.0)


def test_fx_moves_both_currency_balances_and_the_base_is_valued_at_the_pair() -> None:
    pf = usd_book()
    pf.apply_fill(EURUSD, BUY, D(10000), D("1.10000"), D("2.00"), "USD", T)
    assert pf.cash["EUR"] == D(10000) and pf.cash["USD"] == D("100000") - 11000 - 2
    pf.mark(EURUSD.id, D("1.12000"), T + 1)
    assert pf.equity() == D("100000") - 2 + 200
    assert float_equity(pf, {EURUSD.id: 1.12}) == pytest.approx(float(pf.equity()))


def test_pnl_is_booked_in_the_instruments_currency() -> None:
    fut = ib("FGBL-202612", InstrumentKind.FUTURE, "FGBL", quote="EUR", multiplier="1000", currency="EUR")
    pf = Portfolio("EUR")
    pf.apply_fill(fut, BUY, D(1), D("130.00"), D(0), "EUR", T)
    pf.apply_fill(fut, SELL, D(1), D("130.50"), D(0), "EUR", T + 1)
    assert pf.cash == {"EUR": D(500)}
    odd = ib("X", InstrumentKind.FUTURE, "X", quote="XQ", multiplier="1", currency="CHF")
    pf2 = Portfolio("CHF")
    pf2.apply_fill(odd, BUY, D(1), D(10), D(0), "CHF", T)
    pf2.apply_fill(odd, SELL, D(1), D(12), D(0), "CHF", T + 1)
    assert pf2.cash == {"CHF": D(2)} and pf2.positions[odd.id].quote_asset == "CHF"


def test_the_router_clamps_fx_shorts_like_spot_but_lets_a_stock_or_future_short() -> None:
    def plan(inst: Instrument, target: str, held: str = "0"):
        return plan_target(inst, D(held), D(0), D(0), D(target), D("100"), OrderType.MARKET, 0.0, TimeInForce.GTC)

    assert not isinstance(plan(EURUSD, "-1000"), OrderSpec)  # clamped to 0: nothing to do
    fx = plan(EURUSD, "-1000", held="500")
    assert isinstance(fx, OrderSpec) and fx.qty == 500 and SPOT_SHORT_CLAMPED in fx.notes
    for inst in (AAPL, ES):
        spec = plan(inst, "-5")
        assert isinstance(spec, OrderSpec) and spec.side is SELL and spec.qty == 5
