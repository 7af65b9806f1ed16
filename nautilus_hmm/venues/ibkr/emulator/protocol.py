"""The TWS socket protocol's framing and field codec, and the request parsers (pure).

Wire format (as the TWS API and ib_async speak it): the client opens with `API\\0` and a
framed `v{min}..{max}[ options]`; the server answers a framed `{serverVersion}\\0{time}\\0`.
From then on every message is a 4-byte big-endian length and that many bytes of fields,
each ending with `\\0`; the first field is the message id. A request's field order (and,
for some, the fields present) depends on the negotiated server version.
"""

from __future__ import annotations

import builtins
import struct
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MAX_MSG_BYTES = 0xFFFFFF  # the TWS API's own limit: a longer length prefix is a broken stream
MAX_ABS_NUMBER = Decimal(10) ** 15  # a quantity or price beyond this is damage, not an order
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE = 1.7976931348623157e308


class ProtocolError(ValueError):
    """A request that cannot be read (a missing or malformed field): names the field and value."""


def frame(payload: bytes) -> bytes:
    """`payload` with its 4-byte big-endian length prefix."""
    return struct.pack(">I", len(payload)) + payload


def text(value: object) -> str:
    """One field as TWS writes it: bools as 1/0, None as empty, Decimals without exponent."""
    t = type(value)
    if t is str:
        return value  # type: ignore[return-value]
    if t is int:
        return str(value)
    if value is None:
        return ""
    if t is bool:
        return "1" if value else "0"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return ""
        return format(value.normalize(), "f")
    if isinstance(value, float):
        if value == UNSET_DOUBLE:
            return UNSET_DOUBLE_TEXT
        return repr(value)
    return str(value)


def encode(*fields: object) -> bytes:
    """A framed message of `fields`."""
    return frame("".join(text(f) + "\0" for f in fields).encode())


def split_fields(payload: bytes) -> list[str]:
    """The fields of one message body; ProtocolError when it is not UTF-8 or lacks the final NUL."""
    try:
        s = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"message is not UTF-8 (byte {exc.start}: {payload[exc.start:exc.start + 1]!r})") from None
    if not s.endswith("\0"):
        raise ProtocolError(f"message does not end with a NUL field terminator: {s[-20:]!r}")
    return s[:-1].split("\0")


def parse_version_range(payload: bytes) -> tuple[int, int, str]:
    """`v157..178[ options]` -> (min, max, options); ProtocolError naming the text otherwise."""
    try:
        s = payload.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"version range is not ASCII: {payload[:40]!r}") from None
    head, _, options = s.partition(" ")
    if not head.startswith("v"):
        raise ProtocolError(f"version range must start with 'v': {s[:40]!r}")
    lo_s, sep, hi_s = head[1:].partition("..")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise ProtocolError(f"version range is not 'vMIN..MAX': {s[:40]!r}") from None
    if lo > hi:
        raise ProtocolError(f"version range min {lo} > max {hi}")
    return lo, hi, options


class Fields:
    """A cursor over a request's fields; each read names the field when it is missing or bad."""

    def __init__(self, fields: list[builtins.str], what: builtins.str) -> None:
        self.fields = fields
        self.pos = 0
        self.what = what

    def str(self, name: builtins.str) -> builtins.str:
        """The next field as text."""
        if self.pos >= len(self.fields):
            raise ProtocolError(f"{self.what}: field {name!r} missing (message has {len(self.fields)} fields)")
        v = self.fields[self.pos]
        self.pos += 1
        return v

    def int(self, name: builtins.str, default: builtins.int = 0) -> builtins.int:
        """The next field as an integer ('' -> default)."""
        v = self.str(name)
        if v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise ProtocolError(f"{self.what}: field {name!r} is not an integer: {v!r}") from None

    def bool(self, name: builtins.str) -> builtins.bool:
        """The next field as 0/1 ('' -> False)."""
        return self.int(name) != 0

    def float(self, name: builtins.str, default: builtins.float | None = None) -> builtins.float | None:
        """The next field as a float ('' -> default)."""
        v = self.str(name)
        if v == "":
            return default
        try:
            return float(v)
        except ValueError:
            raise ProtocolError(f"{self.what}: field {name!r} is not a number: {v!r}") from None

    def decimal(self, name: builtins.str) -> Decimal | None:
        """The next field as a Decimal ('' or IB's unset double -> None)."""
        v = self.str(name)
        if v == "" or v.upper() in (UNSET_DOUBLE_TEXT.upper(), "1.7976931348623157E+308"):
            return None
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise ProtocolError(f"{self.what}: field {name!r} is not a number: {v!r}") from None
        if not d.is_finite():
            raise ProtocolError(f"{self.what}: field {name!r} is not a finite number: {v!r}")
        if abs(d) > MAX_ABS_NUMBER or (d and abs(d) < Decimal("1e-12")):
            raise ProtocolError(f"{self.what}: field {name!r} is out of range (1e-12 .. 1e15): {v!r}")
        return d

    def skip(self, n: builtins.int, name: builtins.str) -> None:
        """Skip `n` fields (they must be present)."""
        for i in range(n):
            self.str(f"{name}[{i}]")


@dataclass(slots=True)
class ContractQuery:
    """The 12 contract fields every request carries (ib_async's Contract formatter)."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date: str
    strike: str
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str


def read_contract(f: Fields) -> ContractQuery:
    """conId, symbol, secType, lastTradeDateOrContractMonth, strike, right, multiplier, exchange,
    primaryExchange, currency, localSymbol, tradingClass."""
    return ContractQuery(f.int("conId"), f.str("symbol"), f.str("secType"), f.str("lastTradeDateOrContractMonth"),
                         f.str("strike"), f.str("right"), f.str("multiplier"), f.str("exchange"),
                         f.str("primaryExchange"), f.str("currency"), f.str("localSymbol"), f.str("tradingClass"))


@dataclass(slots=True)
class PlaceOrder:
    """The placeOrder fields the emulator acts on (the rest are read past and checked)."""

    order_id: int
    contract: ContractQuery
    action: str
    total_qty: Decimal | None
    order_type: str
    lmt_price: Decimal | None
    tif: str
    account: str
    order_ref: str
    transmit: bool
    outside_rth: bool
    what_if: bool


def read_place_order(fields: list[str], server_version: int) -> PlaceOrder:
    """placeOrder (id 3) as ib_async 2.1.0 writes it at `server_version` (Client.placeOrder)."""
    f = Fields(fields, "placeOrder")
    f.str("msgId")
    order_id = f.int("orderId")
    contract = read_contract(f)
    f.str("secIdType")
    f.str("secId")
    action = f.str("action")
    qty = f.decimal("totalQuantity")
    order_type = f.str("orderType")
    lmt = f.decimal("lmtPrice")
    f.decimal("auxPrice")
    tif = f.str("tif")
    f.str("ocaGroup")
    account = f.str("account")
    f.str("openClose")
    f.str("origin")
    order_ref = f.str("orderRef")
    transmit = f.bool("transmit")
    f.str("parentId")
    f.str("blockOrder")
    f.str("sweepToFill")
    f.str("displaySize")
    f.str("triggerMethod")
    outside_rth = f.bool("outsideRth")
    f.str("hidden")
    if contract.sec_type == "BAG":
        raise ProtocolError("placeOrder: combo (BAG) orders are not supported by the emulator")
    f.str("sharesAllocation")
    f.str("discretionaryAmt")
    f.str("goodAfterTime")
    f.str("goodTillDate")
    f.str("faGroup")
    f.str("faMethod")
    f.str("faPercentage")
    if server_version < 177:
        f.str("faProfile")
    for name in ("modelCode", "shortSaleSlot", "designatedLocation", "exemptCode", "ocaType", "rule80A",
                 "settlingFirm", "allOrNone", "minQty", "percentOffset", "eTradeOnly", "firmQuoteOnly",
                 "nbboPriceCap", "auctionStrategy", "startingPrice", "stockRefPrice", "delta", "stockRangeLower",
                 "stockRangeUpper", "overridePercentageConstraints", "volatility", "volatilityType"):
        f.str(name)
    dn_type = f.str("deltaNeutralOrderType")
    f.str("deltaNeutralAuxPrice")
    if dn_type:
        f.skip(8, "deltaNeutral")
    for name in ("continuousUpdate", "referencePriceType", "trailStopPrice", "trailingPercent",
                 "scaleInitLevelSize", "scaleSubsLevelSize"):
        f.str(name)
    increment = f.float("scalePriceIncrement", UNSET_DOUBLE)
    if increment is not None and 0 < increment < UNSET_DOUBLE:
        f.skip(7, "scale")
    for name in ("scaleTable", "activeStartTime", "activeStopTime"):
        f.str(name)
    if f.str("hedgeType"):
        f.str("hedgeParam")
    for name in ("optOutSmartRouting", "clearingAccount", "clearingIntent", "notHeld"):
        f.str(name)
    if f.bool("deltaNeutralContract"):
        f.skip(3, "deltaNeutralContract")
    if f.str("algoStrategy"):
        n = f.int("algoParams count")
        f.skip(2 * n, "algoParams")
    f.str("algoId")
    what_if = f.bool("whatIf")
    return PlaceOrder(order_id, contract, action, qty, order_type, lmt, tif, account, order_ref, transmit,
                      outside_rth, what_if)
