"""Symbols → IB contracts → `Instrument`s, and the resolved-contract cache. Pure: no I/O but the cache file.

Symbol forms (instrument ids `ibkr:<symbol>`):

* `AAPL` — a stock: secType STK, exchange SMART, currency USD.
* `ES-202612` — a future of that contract month (or `ES-20261218`, a last trade date):
  secType FUT, any exchange unless configured (several exchanges list ES: then the
  resolution is ambiguous and says so, naming them).
* `EUR.USD` — an FX pair: secType CASH, symbol EUR, currency USD, exchange IDEALPRO.

A `[venues.ibkr.contracts."<symbol>"]` table overrides exchange, currency, primary exchange
or security type. Resolution (`instrument_from_details`) takes IB's contract details:
conId, minTick, sizeIncrement / minSize, multiplier, tradingHours / liquidHours and
timeZoneId. No details is an unknown symbol, several are ambiguous: both fail the start
naming the symbol (and the candidates).

The cache (`<state_dir>/ibkr_contracts.json`) holds every resolved contract's details, so a
start with IB Gateway down still knows its instruments; the adapter re-resolves on every
connect and replaces what changed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm.core.files import write_atomic
from nautilus_hmm.domain.enums import InstrumentKind
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.sessions import TradingSessions

CACHE_FILE = "ibkr_contracts.json"
CACHE_VERSION = 1
_FX_RE = re.compile(r"^([A-Z]{3})\.([A-Z]{3})$")
_FUT_RE = re.compile(r"^([A-Z0-9]{1,10})-(\d{6}|\d{8})$")
_STK_RE = re.compile(r"^[A-Z0-9][A-Z0-9 .]{0,11}$")
_KINDS = {"STK": InstrumentKind.STOCK, "FUT": InstrumentKind.FUTURE, "CASH": InstrumentKind.FX}
# Commission estimates for sizing only; the fills carry IB's commissionReport.
FEE_ESTIMATE = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """What we ask IB for (`reqContractDetails`): the symbol's form plus its overrides."""

    text: str  # the configured symbol, e.g. "ES-202612"
    sec_type: str
    symbol: str
    exchange: str
    currency: str
    primary_exchange: str = ""
    last_trade: str = ""  # lastTradeDateOrContractMonth (futures)

    def contract_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `ib_async.Contract` for this spec (empty fields left out)."""
        kw: dict[str, Any] = {"secType": self.sec_type, "symbol": self.symbol, "exchange": self.exchange,
                              "currency": self.currency}
        if self.primary_exchange:
            kw["primaryExchange"] = self.primary_exchange
        if self.last_trade:
            kw["lastTradeDateOrContractMonth"] = self.last_trade
        return kw


def parse_symbol(text: str, overrides: Any = None) -> ContractSpec:
    """The contract spec of a configured symbol; ValueError naming the symbol when its form is unknown.

    `overrides` is an `IbkrContractConfig` (or None): its non-empty fields win.
    """
    sec = getattr(overrides, "sec_type", "") or ""
    m_fx, m_fut = _FX_RE.match(text), _FUT_RE.match(text)
    if sec == "CASH" or (not sec and m_fx):
        if not m_fx:
            raise ValueError(f"symbol {text!r}: an FX pair is written BASE.QUOTE, e.g. EUR.USD")
        spec = ContractSpec(text, "CASH", m_fx.group(1), "IDEALPRO", m_fx.group(2))
    elif sec == "FUT" or (not sec and m_fut):
        if not m_fut:
            raise ValueError(f"symbol {text!r}: a future is written ROOT-YYYYMM (or ROOT-YYYYMMDD), e.g. ES-202612")
        month = m_fut.group(2)
        if not 1 <= int(month[4:6]) <= 12:
            raise ValueError(f"symbol {text!r}: month {month[4:6]} is not 01..12")
        spec = ContractSpec(text, "FUT", m_fut.group(1), "", "USD", last_trade=month)
    elif sec in ("", "STK"):
        if not _STK_RE.match(text):
            raise ValueError(f"symbol {text!r}: expected a stock (AAPL), a future (ES-202612) or an FX pair "
                             "(EUR.USD), in capitals")
        spec = ContractSpec(text, "STK", text, "SMART", "USD")
    else:  # pragma: no cover - the config's choices guard sec_type
        raise ValueError(f"symbol {text!r}: unsupported sec_type {sec!r}")
    if overrides is not None:
        spec = ContractSpec(
            text, spec.sec_type, spec.symbol, overrides.exchange or spec.exchange,
            overrides.currency or spec.currency, overrides.primary_exchange or spec.primary_exchange,
            spec.last_trade)
    return spec


@dataclass(frozen=True, slots=True)
class ResolvedContract:
    """The parts of IB's ContractDetails we keep (and cache), flattened."""

    con_id: int
    sec_type: str
    symbol: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    last_trade: str
    multiplier: str
    min_tick: str
    min_size: str
    size_increment: str
    trading_hours: str
    liquid_hours: str
    time_zone_id: str
    long_name: str = ""

    @classmethod
    def from_details(cls, details: Any) -> ResolvedContract:
        """From an `ib_async.ContractDetails` (duck-typed: any object with its attributes)."""
        c = details.contract
        return cls(
            con_id=int(c.conId), sec_type=str(c.secType), symbol=str(c.symbol), exchange=str(c.exchange),
            primary_exchange=str(c.primaryExchange or ""), currency=str(c.currency),
            local_symbol=str(c.localSymbol or ""), trading_class=str(c.tradingClass or ""),
            last_trade=str(c.lastTradeDateOrContractMonth or ""), multiplier=str(c.multiplier or ""),
            min_tick=_num_text(details.minTick), min_size=_num_text(getattr(details, "minSize", 0.0)),
            size_increment=_num_text(getattr(details, "sizeIncrement", 0.0)),
            trading_hours=str(details.tradingHours or ""), liquid_hours=str(details.liquidHours or ""),
            time_zone_id=str(details.timeZoneId or ""), long_name=str(getattr(details, "longName", "") or ""),
        )

    def contract_kwargs(self) -> dict[str, Any]:
        """`ib_async.Contract` keyword arguments that name exactly this contract (conId + exchange)."""
        kw: dict[str, Any] = {"conId": self.con_id, "secType": self.sec_type, "symbol": self.symbol,
                              "exchange": self.exchange, "currency": self.currency}
        if self.last_trade:
            kw["lastTradeDateOrContractMonth"] = self.last_trade
        if self.multiplier:
            kw["multiplier"] = self.multiplier
        if self.local_symbol:
            kw["localSymbol"] = self.local_symbol
        if self.primary_exchange:
            kw["primaryExchange"] = self.primary_exchange
        return kw

    def describe(self) -> str:
        """One line naming the contract (used in ambiguity errors)."""
        parts = [self.sec_type, self.local_symbol or self.symbol, f"conId {self.con_id}", self.exchange]
        if self.last_trade:
            parts.append(self.last_trade)
        return " ".join(p for p in parts if p)


def _num_text(value: Any) -> str:
    """A float/Decimal field as exact decimal text ('' for unset, 0 or IB's UNSET_DOUBLE)."""
    if value is None or value == "":
        return ""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return ""
    if f <= 0 or f >= 1e300:
        return ""
    return repr(f) if isinstance(value, float) else str(value)


def _dec(text: str, what: str, symbol: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{symbol}: {what} {text!r} is not a number") from None
    if not d.is_finite() or d <= 0:
        raise ValueError(f"{symbol}: {what} {text!r} must be > 0")
    return d


def pick_details(symbol: str, found: list[ResolvedContract]) -> ResolvedContract:
    """The one contract of a symbol; ValueError naming the symbol when there is none or several."""
    if not found:
        raise ValueError(f"venues.ibkr.symbols: {symbol!r}: IB knows no such contract (no contract details); "
                         "check the symbol, or set its exchange/currency in [venues.ibkr.contracts]")
    if len(found) > 1:
        cands = "; ".join(r.describe() for r in found[:10])
        more = f" (+{len(found) - 10} more)" if len(found) > 10 else ""
        raise ValueError(f"venues.ibkr.symbols: {symbol!r} is ambiguous: {len(found)} contracts match: {cands}{more}; "
                         f"set [venues.ibkr.contracts.\"{symbol}\"] exchange (or primary_exchange / currency)")
    return found[0]


def instrument_from_contract(venue: str, symbol: str, rc: ResolvedContract, *, outside_rth: bool) -> Instrument:
    """The `Instrument` of a resolved contract; ValueError naming the symbol for a bad field.

    Sessions: the liquid (regular) hours, or the full trading hours with `outside_rth`
    (the hours orders may be sent in). Quantities: shares, contracts (x `multiplier` for
    notional and PnL) or base currency units.
    """
    kind = _KINDS.get(rc.sec_type)
    if kind is None:
        raise ValueError(f"venues.ibkr.symbols: {symbol!r}: security type {rc.sec_type!r} is not supported "
                         f"(supported: {', '.join(_KINDS)})")
    tick = _dec(rc.min_tick, "minTick", symbol)
    step = _dec(rc.size_increment, "sizeIncrement", symbol) if rc.size_increment else Decimal(1)
    min_qty = _dec(rc.min_size, "minSize", symbol) if rc.min_size else step
    multiplier = _dec(rc.multiplier, "multiplier", symbol) if rc.multiplier else Decimal(1)
    hours = rc.trading_hours if outside_rth or not rc.liquid_hours else rc.liquid_hours
    sessions = None
    if hours:
        try:
            sessions = TradingSessions.from_ib(hours, rc.time_zone_id or "UTC")
        except ValueError as exc:
            raise ValueError(f"venues.ibkr.symbols: {symbol!r}: trading hours: {exc}") from None
    base = rc.symbol
    quote = rc.currency
    expiry = None
    if kind is InstrumentKind.FUTURE:
        expiry = rc.last_trade if len(rc.last_trade) == 8 else None
    return Instrument(
        id=InstrumentId(venue, symbol), base_asset=base, quote_asset=quote, kind=kind, tick_size=tick,
        step_size=step, min_qty=min_qty, max_qty=None, min_notional=Decimal(0), multiplier=multiplier,
        maker_fee=FEE_ESTIMATE, taker_fee=FEE_ESTIMATE, sessions=sessions, expiry=expiry, currency=quote,
        venue_ref=str(rc.con_id),
    )


# ---------------------------------------------------------------- the cache


def cache_path(state_dir: Path) -> Path:
    """Where the resolved contracts are cached."""
    return Path(state_dir) / CACHE_FILE


def read_cache(path: Path) -> dict[str, ResolvedContract]:
    """The cached contracts by symbol; {} when there is no file. ValueError naming the file when damaged."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return {}
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            raise ValueError(f"version {data.get('version') if isinstance(data, dict) else None!r} "
                             f"is not {CACHE_VERSION}")
        names = {f.name for f in fields(ResolvedContract)}
        out: dict[str, ResolvedContract] = {}
        for sym, entry in data["contracts"].items():
            if not isinstance(entry, dict) or set(entry) - names:
                raise ValueError(f"contract {sym!r}: unexpected fields")
            out[str(sym)] = ResolvedContract(**entry)
            if not isinstance(out[sym].con_id, int):
                raise ValueError(f"contract {sym!r}: con_id {out[sym].con_id!r} is not an integer")
        return out
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a contract cache ({exc})") from None


def write_cache(path: Path, contracts: dict[str, ResolvedContract]) -> None:
    """Replace the cache atomically (OSError propagates)."""
    body = {"version": CACHE_VERSION, "contracts": {s: asdict(rc) for s, rc in sorted(contracts.items())}}
    write_atomic(path, orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
