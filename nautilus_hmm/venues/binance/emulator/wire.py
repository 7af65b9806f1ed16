"""Binance JSON shapes produced by the emulator (pure): REST bodies, stream and user events.

Shapes follow the recorded fixtures (docs examples and live captures): spot pads prices and
quantities to 8 decimals; USD-M uses the symbol's tick and step precision. USD-M
`listenKeyExpired` carries `E` as a string, as the live venue does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType
from nautilus_hmm.domain.instruments import Instrument
from nautilus_hmm.domain.orders import VenueFill, VenueOrder
from nautilus_hmm.venues.binance.market import Market

NS_PER_MS = 1_000_000
_ZERO = Decimal(0)

STATUS_WIRE = {
    OrderStatus.SUBMITTED: "NEW",
    OrderStatus.ACCEPTED: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.PENDING_CANCEL: "PENDING_CANCEL",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.REJECTED: "REJECTED",
    OrderStatus.EXPIRED: "EXPIRED",
}


class Formats:
    """Decimal → wire text for one symbol of one market."""

    __slots__ = ("market", "px_q", "qty_q")

    def __init__(self, market: Market, inst: Instrument) -> None:
        self.market = market
        self.px_q = inst.tick_size
        self.qty_q = inst.step_size

    def px(self, d: Decimal | float | None) -> str:
        """A price."""
        d = _dec(d)
        if self.market is Market.SPOT:
            return f"{d:.8f}"
        return f"{d.quantize(self.px_q):f}" if d != 0 else "0"

    def qty(self, d: Decimal | float | None) -> str:
        """A quantity."""
        d = _dec(d)
        if self.market is Market.SPOT:
            return f"{d:.8f}"
        return f"{d.quantize(self.qty_q):f}"

    def amount(self, d: Decimal | float | None) -> str:
        """A quote amount or fee (8 decimals on both markets)."""
        return f"{_dec(d):.8f}"


def _dec(d: Decimal | float | None) -> Decimal:
    if d is None:
        return _ZERO
    return d if isinstance(d, Decimal) else Decimal(repr(d))


class OrderMeta:
    """Binance words of one order that the neutral types fold away."""

    __slots__ = ("created_ms", "order_id", "position_side", "reduce_only", "symbol", "tif", "type_raw")

    def __init__(self, symbol: str, order_id: int, type_raw: str, tif: str, created_ms: int,
                 position_side: str = "BOTH", reduce_only: bool = False) -> None:
        self.symbol = symbol
        self.order_id = order_id
        self.type_raw = type_raw
        self.tif = tif
        self.created_ms = created_ms
        self.position_side = position_side
        self.reduce_only = reduce_only


def _cum_quote(vo: VenueOrder) -> Decimal:
    return (vo.avg_px * vo.filled_qty) if vo.avg_px is not None else _ZERO


def rest_order(market: Market, fmt: Formats, meta: OrderMeta, vo: VenueOrder) -> dict[str, Any]:
    """GET/DELETE order object (spot or USD-M)."""
    upd = vo.ts_ns // NS_PER_MS
    if market is Market.SPOT:
        return {
            "symbol": meta.symbol, "orderId": meta.order_id, "orderListId": -1, "clientOrderId": vo.client_order_id,
            "price": fmt.px(vo.price), "origQty": fmt.qty(vo.quantity), "executedQty": fmt.qty(vo.filled_qty),
            "cummulativeQuoteQty": fmt.amount(_cum_quote(vo)), "status": STATUS_WIRE[vo.status],
            "timeInForce": meta.tif, "type": meta.type_raw, "side": vo.side.value, "stopPrice": fmt.px(0),
            "icebergQty": fmt.qty(0), "time": meta.created_ms, "updateTime": upd,
            "isWorking": vo.status.is_open, "workingTime": meta.created_ms,
            "origQuoteOrderQty": fmt.amount(0), "selfTradePreventionMode": "EXPIRE_MAKER",
        }
    return {
        "orderId": meta.order_id, "symbol": meta.symbol, "status": STATUS_WIRE[vo.status],
        "clientOrderId": vo.client_order_id, "price": fmt.px(vo.price), "avgPrice": fmt.px(vo.avg_px),
        "origQty": fmt.qty(vo.quantity), "executedQty": fmt.qty(vo.filled_qty),
        "cumQuote": fmt.amount(_cum_quote(vo)), "timeInForce": meta.tif, "type": meta.type_raw,
        "reduceOnly": meta.reduce_only, "closePosition": False, "side": vo.side.value,
        "positionSide": meta.position_side, "stopPrice": "0", "workingType": "CONTRACT_PRICE",
        "priceProtect": False, "origType": meta.type_raw, "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": meta.created_ms, "updateTime": upd,
    }


def new_order_response(market: Market, fmt: Formats, meta: OrderMeta, vo: VenueOrder, fills: list[VenueFill],
                       resp_type: str, transact_ms: int) -> dict[str, Any]:
    """POST order answer: spot ACK / RESULT / FULL; USD-M RESULT (ACK without order state)."""
    if market is Market.USDM:
        body = rest_order(market, fmt, meta, vo)
        body["updateTime"] = transact_ms
        return body
    ack = {"symbol": meta.symbol, "orderId": meta.order_id, "orderListId": -1,
           "clientOrderId": vo.client_order_id, "transactTime": transact_ms}
    if resp_type == "ACK":
        return ack
    ack.update({
        "price": fmt.px(vo.price), "origQty": fmt.qty(vo.quantity), "executedQty": fmt.qty(vo.filled_qty),
        "origQuoteOrderQty": fmt.amount(0), "cummulativeQuoteQty": fmt.amount(_cum_quote(vo)),
        "status": STATUS_WIRE[vo.status], "timeInForce": meta.tif, "type": meta.type_raw, "side": vo.side.value,
        "workingTime": transact_ms if vo.status.is_open else -1, "selfTradePreventionMode": "EXPIRE_MAKER",
    })
    if resp_type == "FULL":
        ack["fills"] = [{"price": fmt.px(f.price), "qty": fmt.qty(f.qty), "commission": fmt.amount(f.fee),
                         "commissionAsset": f.fee_asset, "tradeId": int(f.trade_id)} for f in fills]
    return ack


def cancel_response(market: Market, fmt: Formats, meta: OrderMeta, vo: VenueOrder, cancel_cid: str,
                    transact_ms: int) -> dict[str, Any]:
    """DELETE order answer (spot: `clientOrderId` is the cancel's own id, `origClientOrderId` the order's)."""
    if market is Market.USDM:
        return rest_order(market, fmt, meta, vo)
    return {
        "symbol": meta.symbol, "origClientOrderId": vo.client_order_id, "orderId": meta.order_id,
        "orderListId": -1, "clientOrderId": cancel_cid, "transactTime": transact_ms, "price": fmt.px(vo.price),
        "origQty": fmt.qty(vo.quantity), "executedQty": fmt.qty(vo.filled_qty),
        "origQuoteOrderQty": fmt.amount(0), "cummulativeQuoteQty": fmt.amount(_cum_quote(vo)),
        "status": STATUS_WIRE[vo.status], "timeInForce": meta.tif, "type": meta.type_raw, "side": vo.side.value,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def execution_report(fmt: Formats, meta: OrderMeta, vo: VenueOrder, x: str, fill: VenueFill | None,
                     event_ms: int, exec_id: int, cancel_cid: str = "") -> dict[str, Any]:
    """Spot `executionReport`."""
    last_qty = fill.qty if fill else _ZERO
    last_px = fill.price if fill else _ZERO
    return {
        "e": "executionReport", "E": event_ms, "s": meta.symbol,
        "c": cancel_cid or vo.client_order_id, "S": vo.side.value, "o": meta.type_raw, "f": meta.tif,
        "q": fmt.qty(vo.quantity), "p": fmt.px(vo.price), "P": fmt.px(0), "F": fmt.qty(0), "g": -1,
        "C": vo.client_order_id if cancel_cid else "", "x": x, "X": STATUS_WIRE[vo.status],
        "r": "NONE" if x != "REJECTED" else (vo.reason or "OTHER"), "i": meta.order_id,
        "l": fmt.qty(last_qty), "z": fmt.qty(vo.filled_qty), "L": fmt.px(last_px),
        "n": fmt.amount(fill.fee) if fill else "0", "N": fill.fee_asset if fill else None,
        "T": vo.ts_ns // NS_PER_MS, "t": int(fill.trade_id) if fill else -1, "I": exec_id,
        "w": vo.status.is_open and vo.order_type is not OrderType.MARKET,
        "m": bool(fill and fill.liquidity is Liquidity.MAKER), "M": False, "O": meta.created_ms,
        "Z": fmt.amount(_cum_quote(vo)), "Y": fmt.amount(last_qty * last_px), "Q": fmt.amount(0),
        "W": meta.created_ms, "V": "EXPIRE_MAKER",
    }


def order_trade_update(fmt: Formats, meta: OrderMeta, vo: VenueOrder, x: str, fill: VenueFill | None,
                       event_ms: int, realized_pnl: Decimal) -> dict[str, Any]:
    """USD-M `ORDER_TRADE_UPDATE`."""
    tx_ms = vo.ts_ns // NS_PER_MS
    return {
        "e": "ORDER_TRADE_UPDATE", "E": event_ms, "T": tx_ms,
        "o": {
            "s": meta.symbol, "c": vo.client_order_id, "S": vo.side.value, "o": meta.type_raw, "f": meta.tif,
            "q": fmt.qty(vo.quantity), "p": fmt.px(vo.price), "ap": fmt.px(vo.avg_px), "sp": "0",
            "x": x, "X": STATUS_WIRE[vo.status], "i": meta.order_id,
            "l": fmt.qty(fill.qty if fill else 0), "z": fmt.qty(vo.filled_qty),
            "L": fmt.px(fill.price if fill else 0), "N": fill.fee_asset if fill else "USDT",
            "n": fmt.amount(fill.fee if fill else 0), "T": tx_ms, "t": int(fill.trade_id) if fill else 0,
            "b": "0", "a": "0", "m": bool(fill and fill.liquidity is Liquidity.MAKER), "R": meta.reduce_only,
            "wt": "CONTRACT_PRICE", "ot": meta.type_raw, "ps": meta.position_side, "cp": False, "AP": "0", "cr": "0",
            "rp": fmt.amount(realized_pnl), "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER",
            "pm": "NONE", "gtd": 0,
        },
    }


def spot_trade_row(fmt: Formats, meta: OrderMeta, f: VenueFill) -> dict[str, Any]:
    """GET myTrades row."""
    return {
        "symbol": meta.symbol, "id": int(f.trade_id), "orderId": meta.order_id, "orderListId": -1,
        "price": fmt.px(f.price), "qty": fmt.qty(f.qty), "quoteQty": fmt.amount(f.qty * f.price),
        "commission": fmt.amount(f.fee), "commissionAsset": f.fee_asset, "time": f.ts_ns // NS_PER_MS,
        "isBuyer": f.side.value == "BUY", "isMaker": f.liquidity is Liquidity.MAKER, "isBestMatch": True,
    }


def usdm_trade_row(fmt: Formats, meta: OrderMeta, f: VenueFill, realized_pnl: Decimal) -> dict[str, Any]:
    """GET userTrades row."""
    return {
        "symbol": meta.symbol, "id": int(f.trade_id), "orderId": meta.order_id, "side": f.side.value,
        "price": fmt.px(f.price), "qty": fmt.qty(f.qty), "realizedPnl": fmt.amount(realized_pnl),
        "marginAsset": "USDT", "quoteQty": fmt.amount(f.qty * f.price), "commission": fmt.amount(f.fee),
        "commissionAsset": f.fee_asset, "time": f.ts_ns // NS_PER_MS, "positionSide": meta.position_side,
        "buyer": f.side.value == "BUY", "maker": f.liquidity is Liquidity.MAKER,
    }


def error_body(code: int, msg: str) -> dict[str, Any]:
    """Binance error body."""
    return {"code": code, "msg": msg}
