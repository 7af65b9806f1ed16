"""Typed rows read back from the journal, and the conversions from SQLite tuples.

Money columns come back as Decimal (they are stored as `str(Decimal)`), enums as the
domain enums, instrument ids as `InstrumentId`. A row that does not parse raises
`JournalCorruptError` naming the table, the row key and the bad value.

Rows are NamedTuples (immutable, attribute access): building a frozen dataclass costs
about 10x more, and recovery builds one per journaled order and fill.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import VenueFill
from nautilus_hmm.journal.errors import JournalCorruptError

_SIDES = {s.value: s for s in Side}
_TYPES = {t.value: t for t in OrderType}
_TIFS = {t.value: t for t in TimeInForce}
_STATUSES = {s.value: s for s in OrderStatus}
_LIQUIDITY = {x.value: x for x in Liquidity}


class OrderRow(NamedTuple):
    """The journal's latest view of one order."""

    client_order_id: str
    seq: int | None  # None for orders not minted by this journal
    instrument_id: InstrumentId
    strategy_id: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    time_in_force: TimeInForce
    reduce_only: bool
    status: OrderStatus
    filled_qty: Decimal
    avg_px: Decimal | None
    venue_order_id: str | None
    reason: str
    created_ns: int
    updated_ns: int


class OrderEventRow(NamedTuple):
    """One entry of an order's append-only history."""

    client_order_id: str
    ts_ns: int
    status: OrderStatus
    filled_qty: Decimal
    avg_px: Decimal | None
    venue_order_id: str | None
    reason: str


class FillRow(NamedTuple):
    """One journaled execution; `id` is the journal's insertion order."""

    id: int
    venue: str
    trade_id: str
    client_order_id: str
    venue_order_id: str
    instrument_id: InstrumentId
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity
    ts_ns: int

    def to_venue_fill(self) -> VenueFill:
        """The fill as the venue reported it (for replay into a Portfolio)."""
        return VenueFill(
            instrument_id=self.instrument_id,
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            trade_id=self.trade_id,
            side=self.side,
            qty=self.qty,
            price=self.price,
            fee=self.fee,
            fee_asset=self.fee_asset,
            liquidity=self.liquidity,
            ts_ns=self.ts_ns,
        )


class PositionSnapshotRow(NamedTuple):
    """A periodic snapshot of positions; `data` is the decoded JSON object."""

    id: int
    ts_ns: int
    data: Any


class AuditRow(NamedTuple):
    """One admin action: who (`remote`), what (`action`, `params`), and the `result`."""

    id: int
    ts_ns: int
    action: str
    remote: str
    params: Any
    result: str


class EventRow(NamedTuple):
    """One generic event (policy decision, risk denial); `data` is the decoded JSON."""

    id: int
    ts_ns: int
    kind: str
    data: Any


class StrategyFillRow(NamedTuple):
    """One share of a fill, cross, paper fill or adjustment booked to a virtual account (qty signed)."""

    id: int
    ts_ns: int
    strategy_id: str  # the account: a strategy id, "<id>:canary" or "_house"
    instrument_id: InstrumentId
    kind: str  # fill | cross | paper | adjust
    qty: Decimal
    price: Decimal
    fee: Decimal
    trade_id: str
    client_order_id: str


class StrategyTargetRow(NamedTuple):
    """The latest target of one strategy lane on one instrument: as stated and as routed."""

    strategy_id: str
    lane: str
    instrument_id: InstrumentId
    exposure: float | None
    target_qty: Decimal | None
    effective_qty: Decimal
    reason: str
    ts_ns: int


class StrategyEquityRow(NamedTuple):
    """One periodic equity sample of a strategy (quote currency, floats)."""

    id: int
    ts_ns: int
    strategy_id: str
    equity_usd: float
    realized_usd: float
    unrealized_usd: float
    fees_usd: float
    capital_usd: float


class EquitySampleRow(NamedTuple):
    """The account's equity as of one position snapshot (decimal strings, the base currency's)."""

    ts_ns: int
    equity: str
    peak_equity: str
    drawdown_pct: str
    currency: str


# Column lists shared by the store's SELECTs and the converters below.
ORDER_COLUMNS = (
    "client_order_id, seq, instrument_id, strategy_id, side, order_type, quantity, price, "
    "time_in_force, reduce_only, status, filled_qty, avg_px, venue_order_id, reason, "
    "created_ns, updated_ns"
)
ORDER_EVENT_COLUMNS = "client_order_id, ts_ns, status, filled_qty, avg_px, venue_order_id, reason"
FILL_COLUMNS = (
    "id, venue, trade_id, client_order_id, venue_order_id, instrument_id, side, qty, price, "
    "fee, fee_asset, liquidity, ts_ns"
)
STRATEGY_FILL_COLUMNS = "id, ts_ns, strategy_id, instrument_id, kind, qty, price, fee, trade_id, client_order_id"
STRATEGY_TARGET_COLUMNS = "strategy_id, lane, instrument_id, exposure, target_qty, effective_qty, reason, ts_ns"
STRATEGY_EQUITY_COLUMNS = (
    "id, ts_ns, strategy_id, equity_usd, realized_usd, unrealized_usd, fees_usd, capital_usd"
)


class RowParser:
    """Converts SQLite tuples into rows; caches parsed instrument ids (few, repeated)."""

    __slots__ = ("_instruments", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._instruments: dict[str, InstrumentId] = {}

    def _instrument(self, text: str, table: str, key: object) -> InstrumentId:
        iid = self._instruments.get(text)
        if iid is None:
            try:
                iid = InstrumentId.parse(text)
            except ValueError as exc:
                raise _BadValue(table, key, "instrument_id", text) from exc
            self._instruments[text] = iid
        return iid

    def orders(self, rows: list[tuple[Any, ...]]) -> list[OrderRow]:
        """`orders` rows in ORDER_COLUMNS order."""
        with contextlib.suppress(Exception):  # any bad value: redo slowly to name it
            return self._orders_fast(rows)
        try:
            return [self._order(r) for r in rows]
        except _BadValue as bad:
            raise bad.error(self.path) from bad

    def order_events(self, rows: list[tuple[Any, ...]]) -> list[OrderEventRow]:
        """`order_events` rows in ORDER_EVENT_COLUMNS order."""
        try:
            return [self._order_event(r) for r in rows]
        except _BadValue as bad:
            raise bad.error(self.path) from bad

    def fills(self, rows: list[tuple[Any, ...]]) -> list[FillRow]:
        """`fills` rows in FILL_COLUMNS order."""
        with contextlib.suppress(Exception):  # any bad value: redo slowly to name it
            return self._fills_fast(rows)
        try:
            return [self._fill(r) for r in rows]
        except _BadValue as bad:
            raise bad.error(self.path) from bad

    def strategy_fills(self, rows: list[tuple[Any, ...]]) -> list[StrategyFillRow]:
        """`strategy_fills` rows in STRATEGY_FILL_COLUMNS order."""
        try:
            return [
                StrategyFillRow(
                    r[0], r[1], r[2], self._instrument(r[3], "strategy_fills", r[0]), r[4],
                    _dec(r[5], "strategy_fills", r[0], "qty"), _dec(r[6], "strategy_fills", r[0], "price"),
                    _dec(r[7], "strategy_fills", r[0], "fee"), r[8], r[9],
                )
                for r in rows
            ]
        except _BadValue as bad:
            raise bad.error(self.path) from bad

    def strategy_targets(self, rows: list[tuple[Any, ...]]) -> list[StrategyTargetRow]:
        """`strategy_targets` rows in STRATEGY_TARGET_COLUMNS order."""
        out: list[StrategyTargetRow] = []
        try:
            for r in rows:
                key = f"{r[0]}/{r[1]}/{r[2]}"
                exposure = None
                if r[3] is not None:
                    try:
                        exposure = float(r[3])
                    except ValueError as exc:
                        raise _BadValue("strategy_targets", key, "exposure", r[3]) from exc
                out.append(StrategyTargetRow(
                    r[0], r[1], self._instrument(r[2], "strategy_targets", key), exposure,
                    None if r[4] is None else _dec(r[4], "strategy_targets", key, "target_qty"),
                    _dec(r[5], "strategy_targets", key, "effective_qty"), r[6], r[7],
                ))
        except _BadValue as bad:
            raise bad.error(self.path) from bad
        return out

    # Recovery loads every order and fill: the fast paths below avoid a call per column
    # (about 2x). They check exactly what the slow paths check; on any failure the slow
    # path runs and raises the error that names the row.

    def _orders_fast(self, rows: list[tuple[Any, ...]]) -> list[OrderRow]:
        dec, sides, types, tifs, statuses = Decimal, _SIDES, _TYPES, _TIFS, _STATUSES
        cache, instrument = self._instruments, self._instrument
        out: list[OrderRow] = []
        append = out.append
        for r in rows:
            qty, filled = dec(r[6]), dec(r[11])
            px = None if r[7] is None else dec(r[7])
            avg = None if r[12] is None else dec(r[12])
            if not (qty.is_finite() and filled.is_finite() and (px is None or px.is_finite())
                    and (avg is None or avg.is_finite())):
                raise ValueError("non-finite")
            iid = cache.get(r[2]) or instrument(r[2], "orders", r[0])
            append(OrderRow(
                r[0], r[1], iid, r[3], sides[r[4]], types[r[5]], qty, px, tifs[r[8]], bool(r[9]),
                statuses[r[10]], filled, avg, r[13], r[14], r[15], r[16],
            ))
        return out

    def _fills_fast(self, rows: list[tuple[Any, ...]]) -> list[FillRow]:
        dec, sides, liquidity = Decimal, _SIDES, _LIQUIDITY
        cache, instrument = self._instruments, self._instrument
        out: list[FillRow] = []
        append = out.append
        for r in rows:
            qty, px, fee = dec(r[7]), dec(r[8]), dec(r[9])
            if not (qty.is_finite() and px.is_finite() and fee.is_finite()):
                raise ValueError("non-finite")
            iid = cache.get(r[5]) or instrument(r[5], "fills", r[2])
            append(FillRow(
                r[0], r[1], r[2], r[3], r[4], iid, sides[r[6]], qty, px, fee, r[10], liquidity[r[11]], r[12],
            ))
        return out

    def _order(self, r: tuple[Any, ...]) -> OrderRow:
        cid = r[0]
        return OrderRow(
            client_order_id=cid,
            seq=r[1],
            instrument_id=self._instrument(r[2], "orders", cid),
            strategy_id=r[3],
            side=_enum(_SIDES, r[4], "orders", cid, "side"),
            order_type=_enum(_TYPES, r[5], "orders", cid, "order_type"),
            quantity=_dec(r[6], "orders", cid, "quantity"),
            price=None if r[7] is None else _dec(r[7], "orders", cid, "price"),
            time_in_force=_enum(_TIFS, r[8], "orders", cid, "time_in_force"),
            reduce_only=bool(r[9]),
            status=_enum(_STATUSES, r[10], "orders", cid, "status"),
            filled_qty=_dec(r[11], "orders", cid, "filled_qty"),
            avg_px=None if r[12] is None else _dec(r[12], "orders", cid, "avg_px"),
            venue_order_id=r[13],
            reason=r[14],
            created_ns=r[15],
            updated_ns=r[16],
        )

    def _order_event(self, r: tuple[Any, ...]) -> OrderEventRow:
        cid = r[0]
        return OrderEventRow(
            client_order_id=cid,
            ts_ns=r[1],
            status=_enum(_STATUSES, r[2], "order_events", cid, "status"),
            filled_qty=_dec(r[3], "order_events", cid, "filled_qty"),
            avg_px=None if r[4] is None else _dec(r[4], "order_events", cid, "avg_px"),
            venue_order_id=r[5],
            reason=r[6],
        )

    def _fill(self, r: tuple[Any, ...]) -> FillRow:
        key = f"{r[1]}/{r[2]}"
        return FillRow(
            id=r[0],
            venue=r[1],
            trade_id=r[2],
            client_order_id=r[3],
            venue_order_id=r[4],
            instrument_id=self._instrument(r[5], "fills", key),
            side=_enum(_SIDES, r[6], "fills", key, "side"),
            qty=_dec(r[7], "fills", key, "qty"),
            price=_dec(r[8], "fills", key, "price"),
            fee=_dec(r[9], "fills", key, "fee"),
            fee_asset=r[10],
            liquidity=_enum(_LIQUIDITY, r[11], "fills", key, "liquidity"),
            ts_ns=r[12],
        )


class _BadValue(Exception):
    """A stored value that does not parse; converted to JournalCorruptError with the path."""

    def __init__(self, table: str, key: object, column: str, value: object) -> None:
        super().__init__(f"table {table} row {key!s}: bad {column} {value!r}")

    def error(self, path: str) -> JournalCorruptError:
        return JournalCorruptError(path, str(self))


def _dec(text: str, table: str, key: object, column: str) -> Decimal:
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError) as exc:
        raise _BadValue(table, key, column, text) from exc
    if not value.is_finite():
        raise _BadValue(table, key, column, text)
    return value


def _enum(table_map: dict[str, Any], text: str, table: str, key: object, column: str) -> Any:
    value = table_map.get(text)
    if value is None:
        raise _BadValue(table, key, column, text)
    return value
