"""ib_async objects → neutral types (`VenueOrder`, `VenueFill`, `Bar`). Pure, duck-typed.

ib_async decodes the TWS wire messages into its own dataclasses (`Trade` = contract +
order + orderStatus, `Fill` = contract + execution + commissionReport); this module reads
their attributes and nothing else leaves `venues/ibkr/`. A field that cannot be read
raises `ParseError` naming the field and the value.

Order status (IB → ours): PendingSubmit / ApiPending → SUBMITTED; PreSubmitted /
Submitted → ACCEPTED (PARTIALLY_FILLED once filled > 0); PendingCancel → PENDING_CANCEL;
Cancelled / ApiCancelled → CANCELED (REJECTED when IB rejected the order: 201, or
Inactive with nothing filled); Filled → FILLED.

Execution corrections: IB's execId is `<a>.<b>.<n>.<rev>` (`0000e0d5.6576a47b.01.01`);
a correction of that execution comes as the same id with a higher revision
(`....01.02`). The id without its revision names the execution (`exec_revision`); the
fill's trade id is always its first revision (`canonical_exec_id`), so a correction can
never enter the books as a second fill (`correction_changes` says whether it changed
anything).

Market data quality: IB's marketDataType (1 live, 2 frozen, 3 delayed, 4 delayed frozen)
and its subscription errors map to a `DataQuality` (`data_quality`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from nautilus_hmm.core.errors import ParseError
from nautilus_hmm.domain.enums import DataQuality, Liquidity, OrderStatus, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import VenueFill, VenueOrder

UNSET_DOUBLE = 1.7976931348623157e308
NS_PER_S = 1_000_000_000

_STATUS = {
    "PendingSubmit": OrderStatus.SUBMITTED,
    "ApiPending": OrderStatus.SUBMITTED,
    "PreSubmitted": OrderStatus.ACCEPTED,
    "Submitted": OrderStatus.ACCEPTED,
    "PendingCancel": OrderStatus.PENDING_CANCEL,
    "Cancelled": OrderStatus.CANCELED,
    "ApiCancelled": OrderStatus.CANCELED,
    "Filled": OrderStatus.FILLED,
    "Inactive": OrderStatus.REJECTED,
    # ib_async's own states: a warning on a live order (399 "will not be placed until ...",
    # 110 price) and a modification acknowledged; the order lives at IB.
    "ValidationError": OrderStatus.ACCEPTED,
    "ApiUpdate": OrderStatus.ACCEPTED,
}
# Error codes that refuse an order (ib_async logs them on the trade, then calls it Cancelled).
REJECT_CODES = frozenset({103, 104, 105, 106, 107, 109, 110, 111, 113, 116, 117, 118, 119, 120, 121, 122,
                          123, 124, 125, 126, 129, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141,
                          200, 201, 203, 320, 321, 322, 323, 324, 325, 326, 327, 328, 329, 382, 383, 387,
                          388, 10147, 10148, 10149})
_ORDER_TYPES = {"MKT": OrderType.MARKET, "LMT": OrderType.LIMIT}
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL, "BOT": Side.BUY, "SLD": Side.SELL}
# Execution.lastLiquidity: 1 added liquidity, 2 removed, 3 routed out (taker at the away venue).
_LIQUIDITY = {1: Liquidity.MAKER}


def dec(value: Any, what: str) -> Decimal:
    """A finite number (float from ib_async, Decimal, text) as Decimal; ParseError naming `what` otherwise."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value == UNSET_DOUBLE:
            raise ParseError(f"{what} = {value!r}: not a number")
        d = Decimal(repr(value))
    else:
        try:
            d = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise ParseError(f"{what} = {value!r}: not a number") from None
    if not d.is_finite():
        raise ParseError(f"{what} = {value!r}: not a number")
    return d


def venue_order_id(order: Any) -> str:
    """IB's id of an order as text: the API order id, else (an order from elsewhere) its permId."""
    oid = int(getattr(order, "orderId", 0) or 0)
    return str(oid) if oid > 0 else f"perm:{int(getattr(order, 'permId', 0) or 0)}"


def order_status(ib_status: str, filled: Decimal, rejected: bool) -> OrderStatus:
    """Our status of an IB order status (`rejected`: IB refused it with 201)."""
    st = _STATUS.get(ib_status)
    if st is None:
        raise ParseError(f"orderStatus.status = {ib_status!r}: unknown order status")
    if rejected and filled == 0 and st in (OrderStatus.CANCELED, OrderStatus.REJECTED):
        return OrderStatus.REJECTED
    if st is OrderStatus.REJECTED and filled > 0:
        return OrderStatus.CANCELED
    if st is OrderStatus.ACCEPTED and filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return st


def trade_reject(trade: Any) -> tuple[int, str] | None:
    """(code, text) of the error that refused this order, from ib_async's trade log; None if none did."""
    for entry in reversed(getattr(trade, "log", None) or ()):
        code = int(getattr(entry, "errorCode", 0) or 0)
        if code in REJECT_CODES:
            return code, str(getattr(entry, "message", ""))
    return None


def trade_to_order(trade: Any, instrument_id: InstrumentId, ts_ns: int,
                   rejects: Mapping[int, tuple[int, str]] | None = None) -> VenueOrder:
    """An ib_async `Trade` as a `VenueOrder` (`rejects`: orderId → (code, text) of IB's refusals
    seen by the adapter; ib_async's trade log is read too)."""
    order, status = trade.order, trade.orderStatus
    side = _SIDES.get(str(order.action))
    if side is None:
        raise ParseError(f"order.action = {order.action!r}: not BUY or SELL")
    otype = _ORDER_TYPES.get(str(order.orderType))
    if otype is None:
        raise ParseError(f"order.orderType = {order.orderType!r}: not MKT or LMT")
    qty = dec(order.totalQuantity, "order.totalQuantity")
    filled = dec(status.filled, "orderStatus.filled") if status.filled else Decimal(0)
    done_qty = getattr(order, "filledQuantity", None)  # completed orders carry it instead of a status
    if not filled and isinstance(done_qty, float | int | Decimal) and 0 < done_qty < UNSET_DOUBLE:
        filled = dec(done_qty, "order.filledQuantity")
    reject = (rejects or {}).get(int(order.orderId or 0)) or trade_reject(trade)
    st = order_status(str(status.status), filled, reject is not None)
    if st is OrderStatus.SUBMITTED and filled > 0:
        st = OrderStatus.PARTIALLY_FILLED
    if filled >= qty > 0:
        st = OrderStatus.FILLED
    avg = None
    if filled > 0 and status.avgFillPrice and status.avgFillPrice != UNSET_DOUBLE:
        avg = dec(status.avgFillPrice, "orderStatus.avgFillPrice")
    price = None
    if otype is OrderType.LIMIT:
        price = dec(order.lmtPrice, "order.lmtPrice")
    reason = ""
    if st is OrderStatus.REJECTED:
        reason = f"IB {reject[0]}: {reject[1]}" if reject else f"IB order status {status.status}"
    return VenueOrder(
        client_order_id=str(order.orderRef or ""), venue_order_id=venue_order_id(order),
        instrument_id=instrument_id, side=side, order_type=otype, status=st, quantity=qty, filled_qty=filled,
        avg_px=avg, price=price, ts_ns=ts_ns, reason=reason,
    )


def time_ns(value: Any, what: str) -> int:
    """A datetime (ib_async's execution time, tz-aware UTC) as epoch ns."""
    if not isinstance(value, datetime):
        raise ParseError(f"{what} = {value!r}: not a time")
    if value.tzinfo is None:
        raise ParseError(f"{what} = {value!r}: no time zone")
    return int(value.timestamp()) * NS_PER_S + value.microsecond * 1000


def commission_of(report: Any) -> tuple[Decimal, str] | None:
    """(fee, currency) of a CommissionReport, None while IB has not sent it (or sent it unset)."""
    if report is None or not getattr(report, "execId", ""):
        return None
    fee = getattr(report, "commission", None)
    if fee is None or (isinstance(fee, float) and (fee == UNSET_DOUBLE or not math.isfinite(fee))):
        return None
    return dec(fee, "commissionReport.commission"), str(getattr(report, "currency", "") or "")


def execution_to_fill(execution: Any, instrument_id: InstrumentId, fee: tuple[Decimal, str] | None,
                      quote_currency: str) -> VenueFill:
    """An ib_async `Execution` (+ its commission, if known) as a `VenueFill`."""
    side = _SIDES.get(str(execution.side))
    if side is None:
        raise ParseError(f"execution.side = {execution.side!r}: not BOT or SLD")
    exec_id = str(execution.execId or "")
    if not exec_id:
        raise ParseError("execution.execId is empty")
    qty = dec(execution.shares, "execution.shares")
    price = dec(execution.price, "execution.price")
    if qty <= 0 or price <= 0:
        raise ParseError(f"execution {exec_id}: shares {qty} / price {price} must be > 0")
    amount, asset = fee if fee is not None else (Decimal(0), quote_currency)
    return VenueFill(
        instrument_id=instrument_id, client_order_id=str(execution.orderRef or ""),
        venue_order_id=venue_order_id(execution), trade_id=exec_id, side=side, qty=qty, price=price,
        fee=amount, fee_asset=asset or quote_currency,
        liquidity=_LIQUIDITY.get(int(getattr(execution, "lastLiquidity", 0) or 0), Liquidity.TAKER),
        ts_ns=time_ns(execution.time, f"execution {exec_id} time"),
    )


def exec_revision(exec_id: str) -> tuple[str, int]:
    """(the execution's id without its correction revision, the revision) of an IB execId:
    `0000e0d5.6576a47b.01.02` → (`0000e0d5.6576a47b.01`, 2). An id not of IB's four-part
    form is its own execution, revision 1."""
    parts = exec_id.split(".")
    if len(parts) >= 4 and parts[-1].isdigit() and all(parts[:-1]):
        return ".".join(parts[:-1]), int(parts[-1])
    return exec_id, 1


def canonical_exec_id(exec_id: str) -> str:
    """The trade id a fill is booked under: the execution's first revision (`....01.01` for a
    correction `....01.02`), so every revision of one execution is one fill."""
    base, _ = exec_revision(exec_id)
    if base == exec_id:
        return exec_id
    width = len(exec_id) - len(base) - 1
    return f"{base}.{1:0{width}d}"


def correction_changes(original: VenueFill, correction: VenueFill) -> list[str]:
    """What a correction changes of the execution it corrects (`field a -> b`); [] when it
    repeats the same side, quantity, price, order and instrument (the usual IB correction)."""
    out: list[str] = []
    for name in ("instrument_id", "client_order_id", "side", "qty", "price"):
        a, b = getattr(original, name), getattr(correction, name)
        if a != b:
            out.append(f"{name} {_shown(a)} -> {_shown(b)}")
    return out


def _shown(v: Any) -> str:
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    return str(getattr(v, "value", v))


# IB's marketDataType → our quality (4 = delayed frozen: the last delayed values, market closed).
_QUALITY = {"live": DataQuality.LIVE, "frozen": DataQuality.FROZEN, "delayed": DataQuality.DELAYED,
            "delayed_frozen": DataQuality.FROZEN}


def data_quality(data_type: str | None, problem: str | None) -> DataQuality | None:
    """An instrument's data quality from its market data type (`live`, `frozen`, `delayed`,
    `delayed_frozen`) and the subscription problem IB reported (354, 10089, ...: NONE);
    None while neither is known."""
    if problem:
        return DataQuality.NONE
    if data_type is None:
        return None
    return _QUALITY.get(data_type)
