"""Symbols → contract specs, IB contract details → instruments, and the contract cache."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from nautilus_hmm.domain.enums import InstrumentKind
from nautilus_hmm.venues.ibkr.config import IbkrContractConfig
from nautilus_hmm.venues.ibkr.contracts import (
    ResolvedContract,
    instrument_from_contract,
    parse_symbol,
    pick_details,
    read_cache,
    write_cache,
)

NY_HOURS = "20261201:0400-20261201:2000;20261202:0400-20261202:2000"
NY_LIQUID = "20261201:0930-20261201:1600;20261202:0930-20261202:1600"


def details(**kw: object) -> SimpleNamespace:
    """An object shaped like ib_async's ContractDetails (the fields the resolver reads)."""
    c = SimpleNamespace(conId=kw.pop("conId", 265598), secType=kw.pop("secType", "STK"), symbol=kw.pop("symbol", "AAPL"),
                        exchange=kw.pop("exchange", "SMART"), primaryExchange=kw.pop("primaryExchange", "NASDAQ"),
                        currency=kw.pop("currency", "USD"), localSymbol=kw.pop("localSymbol", "AAPL"),
                        tradingClass=kw.pop("tradingClass", "NMS"),
                        lastTradeDateOrContractMonth=kw.pop("lastTradeDateOrContractMonth", ""),
                        multiplier=kw.pop("multiplier", ""))
    d = {"contract": c, "minTick": 0.01, "minSize": 1.0, "sizeIncrement": 1.0, "tradingHours": NY_HOURS,
         "liquidHours": NY_LIQUID, "timeZoneId": "US/Eastern", "longName": "APPLE INC"}
    d.update(kw)
    return SimpleNamespace(**d)


def test_symbol_forms_give_stock_future_and_fx_specs() -> None:
    assert parse_symbol("AAPL").contract_kwargs() == {"secType": "STK", "symbol": "AAPL", "exchange": "SMART",
                                                       "currency": "USD"}
    fut = parse_symbol("ES-202612")
    assert (fut.sec_type, fut.symbol, fut.last_trade, fut.exchange) == ("FUT", "ES", "202612", "")
    fx = parse_symbol("EUR.USD")
    assert (fx.sec_type, fx.symbol, fx.currency, fx.exchange) == ("CASH", "EUR", "USD", "IDEALPRO")


def test_overrides_replace_what_the_form_implies() -> None:
    spec = parse_symbol("ES-202612", IbkrContractConfig(exchange="CME"))
    assert spec.exchange == "CME" and spec.sec_type == "FUT"
    stk = parse_symbol("SAP", IbkrContractConfig(exchange="IBIS", currency="EUR"))
    assert (stk.exchange, stk.currency) == ("IBIS", "EUR")


@pytest.mark.parametrize(("text", "fragment"), [
    ("aapl", "in capitals"),
    ("ES-202613", "month 13"),
    ("", "in capitals"),
    ("BTC/USD", "in capitals"),
])
def test_a_bad_symbol_is_named_in_the_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_symbol(text)
    assert repr(text) in str(info.value) and fragment in str(info.value)


def test_sec_type_override_demands_its_form() -> None:
    with pytest.raises(ValueError, match=r"BASE\.QUOTE"):
        parse_symbol("AAPL", IbkrContractConfig(sec_type="CASH"))


def test_no_details_is_an_unknown_symbol_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'ZZZZ': IB knows no such contract"):
        pick_details("ZZZZ", [])


def test_several_details_are_ambiguous_naming_every_candidate() -> None:
    a = ResolvedContract.from_details(details(conId=1, secType="FUT", symbol="ES", exchange="CME", localSymbol="ESZ6"))
    b = ResolvedContract.from_details(details(conId=2, secType="FUT", symbol="ES", exchange="QBALGO",
                                              localSymbol="ESZ6"))
    with pytest.raises(ValueError) as info:
        pick_details("ES-202612", [a, b])
    text = str(info.value)
    assert "'ES-202612' is ambiguous: 2 contracts" in text
    assert "conId 1 CME" in text and "conId 2 QBALGO" in text and 'contracts."ES-202612"' in text


def test_stock_instrument_uses_liquid_hours_unless_outside_rth() -> None:
    rc = ResolvedContract.from_details(details())
    inst = instrument_from_contract("ibkr", "AAPL", rc, outside_rth=False)
    assert inst.kind is InstrumentKind.STOCK and inst.tick_size == Decimal("0.01") and inst.step_size == 1
    assert inst.venue_ref == "265598" and inst.currency == "USD" and inst.quote_asset == "USD"
    at_0900_ny = 1_796_133_600 * 10**9  # 2026-12-01 14:00 UTC = 09:00 New York
    assert inst.sessions is not None and not inst.sessions.is_open(at_0900_ny)
    ext = instrument_from_contract("ibkr", "AAPL", rc, outside_rth=True)
    assert ext.sessions is not None and ext.sessions.is_open(at_0900_ny)


def test_future_keeps_multiplier_and_expiry() -> None:
    rc = ResolvedContract.from_details(details(conId=637533641, secType="FUT", symbol="ES", exchange="CME",
                                               lastTradeDateOrContractMonth="20261218", multiplier="50", minTick=0.25))
    inst = instrument_from_contract("ibkr", "ES-202612", rc, outside_rth=False)
    assert inst.kind is InstrumentKind.FUTURE and inst.multiplier == 50 and inst.expiry == "20261218"
    assert inst.tick_size == Decimal("0.25") and str(inst.id) == "ibkr:ES-202612"


def test_fx_quote_is_the_pair_currency() -> None:
    rc = ResolvedContract.from_details(details(conId=12087792, secType="CASH", symbol="EUR", exchange="IDEALPRO",
                                               currency="USD", minTick=5e-05, sizeIncrement=0.0, minSize=0.0))
    inst = instrument_from_contract("ibkr", "EUR.USD", rc, outside_rth=False)
    assert (inst.kind, inst.base_asset, inst.quote_asset) == (InstrumentKind.FX, "EUR", "USD")
    assert inst.tick_size == Decimal("0.00005") and inst.step_size == 1 and inst.min_qty == 1


@pytest.mark.parametrize("field,value,fragment", [
    ("minTick", 0.0, "minTick"),
    ("tradingHours", "20261201:09xx-1600", "trading hours"),
])
def test_bad_details_fail_naming_the_symbol(field: str, value: object, fragment: str) -> None:
    d = details(**{field: value, "liquidHours": ""})
    with pytest.raises(ValueError) as info:
        instrument_from_contract("ibkr", "AAPL", ResolvedContract.from_details(d), outside_rth=False)
    assert "AAPL" in str(info.value) and fragment in str(info.value)


def test_unsupported_sec_type_is_refused() -> None:
    rc = ResolvedContract.from_details(details(secType="OPT"))
    with pytest.raises(ValueError, match="'OPT' is not supported"):
        instrument_from_contract("ibkr", "AAPL", rc, outside_rth=False)


def test_cache_round_trip(tmp_path: Path) -> None:
    rc = ResolvedContract.from_details(details())
    path = tmp_path / "ibkr_contracts.json"
    write_cache(path, {"AAPL": rc})
    assert read_cache(path) == {"AAPL": rc}
    assert read_cache(tmp_path / "missing.json") == {}


@pytest.mark.parametrize("damage", ["truncate", "flip", "version", "field"])
def test_a_damaged_cache_is_an_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "ibkr_contracts.json"
    write_cache(path, {"AAPL": ResolvedContract.from_details(details())})
    raw = path.read_bytes()
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw = raw.replace(b'"con_id": 265598', b'"con_id": "x65598"')
    elif damage == "version":
        raw = raw.replace(b'"version": 1', b'"version": 9')
    else:
        raw = raw.replace(b'"currency"', b'"currencyX"')
    path.write_bytes(raw)
    with pytest.raises(ValueError) as info:
        read_cache(path)
    assert str(path) in str(info.value)
