"""Read views of the trading state for the API: /positions, /orders, /fills and /status.

Number format, one type per field (declared in the OpenAPI schema, `web/trading.py`):

* Every decimal is a JSON **string in fixed notation**, never an exponent ("0E-12") and
  never a float: clients parse it as a decimal.
* Quantities are quantized to the instrument's step size and prices to its tick size. A
  value that is not exact at that precision (an average entry price, a position net of a
  base-asset fee) is shown at its asset's precision instead, so rounding never hides an
  amount.
* Money (PnL, fees, equity, cash, exposure, balances) is quantized to its asset's
  precision: `ASSET_DP` for the assets listed there, else 8 decimal places (crypto assets
  and stablecoins).
* Percentages have 4 decimal places. Times (`*_ns`) are JSON integers; "no value" is null.

Rounding is half-even; a value that rounds to zero is "0.00..." (never "-0.00").
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.execution.portfolio import Portfolio

DEFAULT_ASSET_DP = 8
"""Decimal places of an asset not in `ASSET_DP` (crypto assets and stablecoins)."""
ASSET_DP: dict[str, int] = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "CHF": 2}
"""Assets whose precision is not `DEFAULT_ASSET_DP` (fiat currencies)."""
PCT_QUANTUM = Decimal("0.0001")
_ZERO = Decimal(0)


@lru_cache(maxsize=256)
def quantum_of(step: Decimal) -> Decimal:
    """The power of ten a step (tick or lot size) is expressed in: 0.01000 -> 0.01, 5 -> 1."""
    exp = step.normalize().as_tuple().exponent
    return Decimal(1).scaleb(min(int(exp), 0))


@lru_cache(maxsize=64)
def asset_quantum(asset: str) -> Decimal:
    """The precision of an amount of `asset`."""
    return Decimal(1).scaleb(-ASSET_DP.get(asset, DEFAULT_ASSET_DP))


def fixed(value: Decimal, quantum: Decimal) -> str:
    """`value` rounded half-even to `quantum`, in fixed notation ("-0" becomes "0")."""
    q = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    if q.is_zero():
        q = abs(q)
    return format(q, "f")


def _exact_or(value: Decimal, quantum: Decimal, fallback: Decimal) -> str:
    q = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    return fixed(value, quantum if q == value else min(fallback, quantum))


def qty_str(value: Decimal, inst: Instrument | None) -> str:
    """A base quantity at the instrument's step precision (its base asset's when not exact)."""
    if inst is None:
        return fixed(value, asset_quantum(""))
    return _exact_or(value, quantum_of(inst.step_size), asset_quantum(inst.base_asset))


def price_str(value: Decimal | None, inst: Instrument | None) -> str | None:
    """A price at the instrument's tick precision (its quote asset's when not exact); None stays None."""
    if value is None:
        return None
    if inst is None:
        return fixed(value, asset_quantum(""))
    return _exact_or(value, quantum_of(inst.tick_size), asset_quantum(inst.quote_asset))


def money_str(value: Decimal, asset: str) -> str:
    """An amount of `asset` at that asset's precision."""
    return fixed(value, asset_quantum(asset))


def pct_str(value: Decimal | float) -> str:
    """A percentage with 4 decimal places."""
    return fixed(value if isinstance(value, Decimal) else Decimal(repr(value)), PCT_QUANTUM)


def order_view(snap: dict[str, Any], inst: Instrument | None) -> dict[str, Any]:
    """An order's snapshot (`Order.snapshot()`) for /orders, its decimals quantized."""
    quote = inst.quote_asset if inst is not None else ""
    out = dict(snap)
    out["quantity"] = qty_str(Decimal(snap["quantity"]), inst)
    out["filled_qty"] = qty_str(Decimal(snap["filled_qty"]), inst)
    out["trade_qty"] = qty_str(Decimal(snap["trade_qty"]), inst)
    out["trade_notional"] = money_str(Decimal(snap["trade_notional"]), quote)
    for key in ("price", "avg_px", "venue_avg_px"):
        raw = snap[key]
        out[key] = None if raw is None else price_str(Decimal(raw), inst)
    return out


def fill_view(row: Any, inst: Instrument | None) -> dict[str, Any]:
    """A journaled fill (`FillRow`) for /fills, its decimals quantized."""
    return {
        "ts_ns": row.ts_ns, "venue": row.venue, "instrument_id": str(row.instrument_id), "trade_id": row.trade_id,
        "client_order_id": row.client_order_id, "venue_order_id": row.venue_order_id, "side": row.side.value,
        "qty": qty_str(row.qty, inst), "price": price_str(row.price, inst),
        "fee": money_str(row.fee, row.fee_asset), "fee_asset": row.fee_asset, "liquidity": row.liquidity.value,
    }


def position_views(pf: Portfolio, instruments: Mapping[InstrumentId, Instrument]) -> list[dict[str, Any]]:
    """Every position with its mark (null: none received yet) and PnL, in its quote asset
    (the portfolio's Decimal marks must be synced first)."""
    out = []
    for iid, pos in pf.positions.items():
        inst = instruments.get(iid)
        mark = pf.marks.get(iid)
        q = pos.quote_asset
        out.append({
            "instrument_id": str(iid), "quote_asset": q, "qty": qty_str(pos.qty, inst),
            "avg_px": price_str(pos.avg_px, inst), "mark": price_str(mark, inst),
            "realized_pnl": money_str(pos.realized_pnl, q),
            "unrealized_pnl": money_str(pos.unrealized(pf.mark_of(pos)), q),
            "fees": money_str(pos.fees, q), "exposure": money_str(pf.exposure(iid), q),
        })
    return out


def pnl_view(pf: Portfolio, instruments: Mapping[InstrumentId, Instrument], peak_f: float) -> dict[str, Any]:
    """Equity (every balance at its mark), PnL, drawdown from `peak_f` and balances in the
    base currency; balances without a mark are listed as unvalued."""
    cur = pf.base_currency
    mine = [p for p in pf.positions.values() if p.quote_asset == cur]
    realized = sum((p.realized_pnl for p in mine), _ZERO)
    fees = sum((p.fees for p in mine), _ZERO)
    unrealized = sum((p.unrealized(pf.mark_of(p)) for p in mine), _ZERO)
    equity = pf.equity()
    peak = max(Decimal(repr(peak_f)), equity)
    balances: dict[str, dict[str, str | None]] = {}
    unvalued = []
    for asset, (amount, mark, value) in pf.valuation().items():
        src = pf.price_sources.get(asset)
        inst = instruments.get(src) if src is not None else None
        balances[asset] = {
            "total": money_str(amount, asset),
            "mark": None if mark is None else (price_str(mark, inst) if inst is not None else money_str(mark, cur)),
            "value": None if value is None else money_str(value, cur),
        }
        if mark is None and amount != 0:
            unvalued.append(asset)
    return {
        "currency": cur, "equity": money_str(equity, cur), "peak_equity": money_str(peak, cur),
        "drawdown_pct": pct_str((peak - equity) / peak * 100 if peak > 0 else _ZERO),
        "realized_pnl": money_str(realized, cur), "unrealized_pnl": money_str(unrealized, cur),
        "fees": money_str(fees, cur), "day_realized_pnl": money_str(pf.day_realized_pnl, cur),
        "cash": {k: money_str(v, k) for k, v in pf.cash.items()},
        "balances": balances, "unvalued": sorted(unvalued),
        "gross_exposure": money_str(pf.gross_exposure(), cur),
    }


# JSON schemas of the views (OpenAPI 3.0), one type per field.
_DEC = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
        "description": "decimal in fixed notation (see the number format of the trading views)"}
_DEC_NULL = {**_DEC, "nullable": True}
_STR = {"type": "string"}
_STR_NULL = {"type": "string", "nullable": True}
_INT = {"type": "integer"}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


POSITION_SCHEMA = _obj({
    "instrument_id": _STR, "quote_asset": _STR, "qty": _DEC, "avg_px": _DEC, "mark": _DEC_NULL,
    "realized_pnl": _DEC, "unrealized_pnl": _DEC, "fees": _DEC, "exposure": _DEC,
})
BALANCE_SCHEMA = _obj({"total": _DEC, "mark": _DEC_NULL, "value": _DEC_NULL})
PNL_SCHEMA = _obj({
    "currency": _STR, "equity": _DEC, "peak_equity": _DEC, "drawdown_pct": _DEC, "realized_pnl": _DEC,
    "unrealized_pnl": _DEC, "fees": _DEC, "day_realized_pnl": _DEC,
    "cash": {"type": "object", "additionalProperties": _DEC},
    "balances": {"type": "object", "additionalProperties": BALANCE_SCHEMA,
                 "description": "every asset held, its mark in `currency` and its value (null: unvalued)"},
    "unvalued": {"type": "array", "items": _STR,
                 "description": "assets held that have no mark in `currency`: not in equity"},
    "gross_exposure": _DEC,
})
ORDER_SCHEMA = _obj({
    "client_order_id": _STR, "strategy_id": _STR, "instrument_id": _STR, "side": _STR, "order_type": _STR,
    "quantity": _DEC, "price": _DEC_NULL, "time_in_force": _STR, "reduce_only": {"type": "boolean"},
    "created_ns": _INT, "status": _STR, "filled_qty": _DEC, "avg_px": _DEC_NULL, "venue_order_id": _STR_NULL,
    "reason": _STR, "trade_ids": {"type": "array", "items": _STR}, "trade_qty": _DEC, "trade_notional": _DEC,
    "venue_avg_px": _DEC_NULL, "ts_last_ns": _INT,
})
FILL_SCHEMA = _obj({
    "ts_ns": _INT, "venue": _STR, "instrument_id": _STR, "trade_id": _STR, "client_order_id": _STR,
    "venue_order_id": _STR_NULL, "side": _STR, "qty": _DEC, "price": _DEC, "fee": _DEC, "fee_asset": _STR,
    "liquidity": _STR,
})
