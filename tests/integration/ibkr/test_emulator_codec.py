"""The emulator's outgoing messages read by ib_async's own Decoder, at every server version the
emulator negotiates: the field layouts are ib_async's (a shifted field raises inside the decoder,
which then never calls the wrapper, or lands a wrong value in a checked field)."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.venues.ibkr.emulator import engine as eng
from nautilus_hmm.venues.ibkr.emulator.protocol import text
from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator
from tests.integration.ibkr.emulator_harness import TUESDAY_10_ET_NS

ib_async = pytest.importorskip("ib_async")
from ib_async.decoder import Decoder  # noqa: E402
from ib_async.util import UNSET_DOUBLE, UNSET_INTEGER  # noqa: E402

VERSIONS = [157, 162, 163, 164, 166, 169, 170, 176, 177, 178]


class Recorder:
    """A wrapper that records every call the Decoder makes (the interface Decoder uses)."""

    defaultTimezone = UTC

    class ib:  # the attribute name the Decoder reads
        TimezoneTWS = None

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


class Out:
    """A session stand-in that keeps what the emulator sends (server_version + send)."""

    def __init__(self, version: int) -> None:
        self.server_version = version
        self.sent: list[list[str]] = []

    def send(self, *fields: object) -> None:
        self.sent.append([text(f) for f in fields])

    def error(self, req_id: int, code: int, text_: str | None = None) -> None:
        self.send(4, 2, req_id, code, text_ or "", *([""] if self.server_version >= 166 else []))


def decode(version: int, messages: list[list[str]]) -> list[tuple[str, tuple[Any, ...]]]:
    rec = Recorder()
    d = Decoder(rec, version)  # type: ignore[arg-type]
    for fields in messages:
        d.interpret(list(fields))
    return rec.calls


@pytest.fixture
def emu_with_orders() -> IbkrEmulator:
    emu = IbkrEmulator(clock=ManualClock(TUESDAY_10_ET_NS))
    aapl = next(c for c in emu.contracts if c.symbol == "AAPL")
    es = next(c for c in emu.contracts if c.local_symbol == "ESZ6")
    now = emu.clock.time_ns()
    emu.engine.place(4, 11, aapl, eng.OrderRequest("BUY", Decimal(10), "LMT", Decimal("101.25"), tif="GTC",
                                                   order_ref="ref-open", outside_rth=True), now)
    emu.engine.place(4, 12, es, eng.OrderRequest("SELL", Decimal(2), "MKT", None, order_ref="ref-done"), now)
    return emu


@pytest.mark.parametrize("version", VERSIONS)
def test_open_order_and_order_status(version: int, emu_with_orders: IbkrEmulator) -> None:
    emu = emu_with_orders
    out = Out(version)
    order = emu.engine.orders[(4, 11)]
    emu._send_open_order(out, order)  # type: ignore[arg-type]
    emu._send_order_status(out, order, withhold=False)  # type: ignore[arg-type]
    calls = decode(version, out.sent)
    assert [name for name, _ in calls] == ["openOrder", "orderStatus"]
    order_id, contract, o, st = calls[0][1]
    assert order_id == 11 and o.orderId == 11 and o.clientId == 4 and o.permId == order.perm_id
    assert contract.conId == 265598 and contract.localSymbol == "AAPL"
    assert (o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.tif) == ("BUY", 10.0, "LMT", 101.25, "GTC")
    assert o.orderRef == "ref-open" and o.outsideRth is True and o.account == "DU1234567"
    assert st.status == "Submitted" and o.whatIf is False
    assert o.scalePriceIncrement == UNSET_DOUBLE and o.autoCancelParent is False
    if version >= 170:
        assert o.minTradeQty == UNSET_INTEGER and o.midOffsetAtHalf == UNSET_DOUBLE
    assert calls[1][1][:5] == (11, "Submitted", 0.0, 10.0, 0.0)


@pytest.mark.parametrize("version", VERSIONS)
def test_completed_order(version: int, emu_with_orders: IbkrEmulator) -> None:
    emu = emu_with_orders
    out = Out(version)
    [done] = emu.engine.completed_orders()
    emu._send_completed_order(out, done)  # type: ignore[arg-type]
    [(name, (contract, o, st))] = decode(version, out.sent)
    assert name == "completedOrder"
    assert contract.localSymbol == "ESZ6" and contract.multiplier == "50"
    assert o.orderRef == "ref-done" and o.permId == done.perm_id and o.filledQuantity == 2.0
    assert st.status == "Filled" and st.completedStatus == "Filled Size: 2"
    assert st.completedTime.endswith("UTC")


@pytest.mark.parametrize("version", VERSIONS)
def test_contract_details(version: int) -> None:
    emu = IbkrEmulator(clock=ManualClock(TUESDAY_10_ET_NS))
    out = Out(version)
    for c in emu.contracts:
        emu._send_details(out, 7, c, emu.clock.time_ns())  # type: ignore[arg-type]
    calls = decode(version, out.sent)
    assert len(calls) == len(emu.contracts)
    by_local = {cd.contract.localSymbol: cd for _, (req_id, cd) in calls}
    es = by_local["ESZ6"]
    assert es.contract.conId == 637533641 and es.contract.multiplier == "50" and es.minTick == 0.25
    assert es.contract.lastTradeDateOrContractMonth == "20261218" and es.contractMonth == "202612"
    assert es.timeZoneId == "US/Central" and es.tradingHours.startswith("20261129:1700-20261130:1600;")
    assert "20261205:CLOSED;20261206:1700-20261207:1600" in es.tradingHours
    assert es.liquidHours != es.tradingHours and es.longName == "E-mini S&P 500"
    aapl = by_local["AAPL"]
    assert aapl.contract.primaryExchange == "NASDAQ" and aapl.marketRuleIds == "26"
    if version >= 164:
        assert (aapl.minSize, aapl.sizeIncrement, aapl.suggestedSizeIncrement) == (1, 1, 100)
    if version == 163:
        assert aapl.suggestedSizeIncrement == 100


@pytest.mark.parametrize("version", VERSIONS)
def test_execution_commission_and_position(version: int, emu_with_orders: IbkrEmulator) -> None:
    emu = emu_with_orders
    out = Out(version)
    [e] = emu.engine.executions
    emu._send_execution(out, 3, e)  # type: ignore[arg-type]
    emu._send_commission(out, e)  # type: ignore[arg-type]
    emu._send_position(out, emu.engine.positions[e.spec.con_id])  # type: ignore[arg-type]
    out.error(12, 202, "Order Canceled - reason:")
    calls = decode(version, out.sent)
    assert [n for n, _ in calls] == ["execDetails", "commissionReport", "position", "error"]
    req_id, contract, ex = calls[0][1]
    assert req_id == 3 and contract.localSymbol == "ESZ6"
    assert (ex.execId, ex.orderId, ex.clientId, ex.permId) == (e.exec_id, 12, 4, e.perm_id)
    assert ex.side == "SLD" and ex.shares == 2.0 and ex.orderRef == "ref-done" and ex.lastLiquidity == 2
    assert ex.time.timestamp() == TUESDAY_10_ET_NS / 1e9
    [report] = calls[1][1]
    assert report.execId == e.exec_id and report.commission == 4.5 and report.currency == "USD"
    assert report.realizedPNL == UNSET_DOUBLE  # an opening execution (the wrapper turns it into 0)
    account, contract, pos, avg = calls[2][1]
    assert account == "DU1234567" and pos == -2.0 and avg == pytest.approx(float(e.price) * 50 - 2.25)
    assert calls[3][1][:3] == (12, 202, "Order Canceled - reason:")
