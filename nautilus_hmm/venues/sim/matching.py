"""The simulated venue's matching engine: one per instrument, pure and deterministic.

No asyncio, no clock, no I/O: the owner passes timestamps and market events in and
publishes the events that come out (order snapshots `VenueOrder` and executions
`VenueFill`, in the order they happened: a fill is followed by the order's new state).

Fill model. An order that is marketable when it arrives (every MARKET order, and a
LIMIT that crosses the last price / best quote) is *taker-pending*: it executes at the
next market event's opening price, never at a price already printed. A LIMIT that does
not cross rests in the book and fills at its own limit price (maker) when a later event
trades at or through it.

* `on_bar(bar)`: the bar's OPEN is the arrival price. A MARKET order submitted while bar
  t was the latest fills at bar t+1's open (the backtest convention "signal on bar close,
  market fill at next bar's open"). A taker-pending LIMIT fills at the open if the open
  crosses it, otherwise it rests. A resting BUY fills at its limit when `low <= limit`
  (SELL: `high >= limit`).
* `on_trade(price, size, ts_ns)`: the trade price is the arrival price and the touch.

Liquidity. Each event offers `bar volume x bar_volume_fraction` (or `trade size x
trade_size_fraction`) base units, shared by the orders it fills in arrival order
(taker-pending first, then resting); an order may fill partially and continue on later
events. Time in force is applied at the first event an order meets: IOC fills what is
available and expires the rest; FOK fills completely or expires; an IOC/FOK LIMIT that
does not cross expires (at once, if it is already clearly non-marketable on arrival).
A GTC MARKET order keeps filling on later events until done.

Slippage (opt-in: `slippage=` a fitted `SlippageModel`, `[venues.sim] slippage_model`). A
taker fill's price moves against the taker by the model's predicted cost for the order's
notional (quantity x arrival price), the quoted spread (`set_quote`; unknown: 0) and the
realised volatility of the prices this engine saw over the model's `vol_window_s` before
the event: BUY at open x (1 + bps/1e4), SELL at open x (1 - bps/1e4), on the tick grid
(half-even), never beyond a LIMIT's own price. Maker fills stay at their limit. Without a
model (the default) a taker fills at the open exactly. Deterministic: the same events give
the same prices.

Reduce-only orders must reduce the position when submitted (else rejected, code -2022)
and are capped to it at every fill; when the position is gone the rest is cancelled.
Fees are charged in the quote asset: `qty x price x rate` (maker or taker), rounded to
8 decimals. Trade ids and venue order ids come from counters shared venue-wide: unique
and increasing.

Balances are not this module's business: a `Ledger` (the paper account) reserves funds
on submit, may cap a fill to what the account can pay, and books each fill the moment it
happens (so two fills in one event see each other's effect).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from nautilus_hmm.core.errors import OrderRejected
from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill, VenueOrder
from nautilus_hmm.messages import Bar
from nautilus_hmm.venues.sim.slippage_model import RealisedVol, SlippageModel, spread_bps

Event = VenueOrder | VenueFill

FEE_QUANTUM = Decimal("1e-8")
_ZERO = Decimal(0)
_EMPTY: tuple[Event, ...] = ()

# Binance-compatible rejection codes (text as the venue words it, detail after a colon).
CODE_INVALID_SYMBOL = "-1121"
CODE_FILTER_FAILURE = "-1013"
CODE_MANDATORY_PARAM = "-1102"
CODE_PARAM_NOT_REQUIRED = "-1106"
CODE_NEW_ORDER_REJECTED = "-2010"
CODE_REDUCE_ONLY_REJECTED = "-2022"
CODE_UNKNOWN_ORDER = "-2011"


class Counter:
    """A monotonically increasing id source (its value is persisted by the account)."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def next(self) -> int:
        """The next id."""
        self.value += 1
        return self.value


class SimOrder:
    """An order inside the simulated venue (mutable; snapshots are `VenueOrder`)."""

    __slots__ = (
        "client_order_id", "created_ns", "cum_quote", "fees", "filled_qty", "instrument_id",
        "lock_asset", "lock_remaining", "order_type", "price", "price_f", "quantity", "reason",
        "reduce_only", "side", "status", "taker_pending", "time_in_force", "ts_ns", "venue_order_id",
    )

    def __init__(
        self,
        client_order_id: str,
        venue_order_id: str,
        instrument_id: InstrumentId,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal | None,
        time_in_force: TimeInForce,
        reduce_only: bool,
        created_ns: int,
    ) -> None:
        self.client_order_id = client_order_id
        self.venue_order_id = venue_order_id
        self.instrument_id = instrument_id
        self.side = side
        self.order_type = order_type
        self.quantity = quantity
        self.price = price
        self.price_f = float(price) if price is not None else 0.0
        self.time_in_force = time_in_force
        self.reduce_only = reduce_only
        self.created_ns = created_ns
        self.ts_ns = created_ns
        self.status = OrderStatus.ACCEPTED
        self.filled_qty = _ZERO
        self.cum_quote = _ZERO
        self.fees = _ZERO
        self.reason = ""
        self.taker_pending = False
        self.lock_asset = ""
        self.lock_remaining = _ZERO

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.quantity - self.filled_qty

    @property
    def avg_px(self) -> Decimal | None:
        """Average fill price, or None before the first fill."""
        return self.cum_quote / self.filled_qty if self.filled_qty else None

    def snapshot(self) -> VenueOrder:
        """The venue's view of this order now."""
        return VenueOrder(
            client_order_id=self.client_order_id, venue_order_id=self.venue_order_id,
            instrument_id=self.instrument_id, side=self.side, order_type=self.order_type,
            status=self.status, quantity=self.quantity, filled_qty=self.filled_qty,
            avg_px=self.avg_px, price=self.price, ts_ns=self.ts_ns, reason=self.reason,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (Decimals as strings)."""
        return {
            "client_order_id": self.client_order_id, "venue_order_id": self.venue_order_id,
            "instrument_id": str(self.instrument_id), "side": self.side.value,
            "order_type": self.order_type.value, "quantity": str(self.quantity),
            "price": None if self.price is None else str(self.price),
            "time_in_force": self.time_in_force.value, "reduce_only": self.reduce_only,
            "created_ns": self.created_ns, "ts_ns": self.ts_ns, "status": self.status.value,
            "filled_qty": str(self.filled_qty), "cum_quote": str(self.cum_quote),
            "fees": str(self.fees), "reason": self.reason, "taker_pending": self.taker_pending,
            "lock_asset": self.lock_asset, "lock_remaining": str(self.lock_remaining),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimOrder:
        """Inverse of `to_dict`; raises KeyError/ValueError on a malformed record."""
        o = cls(
            d["client_order_id"], d["venue_order_id"], InstrumentId.parse(d["instrument_id"]),
            Side(d["side"]), OrderType(d["order_type"]), Decimal(d["quantity"]),
            None if d["price"] is None else Decimal(d["price"]), TimeInForce(d["time_in_force"]),
            bool(d["reduce_only"]), int(d["created_ns"]),
        )
        o.ts_ns = int(d["ts_ns"])
        o.status = OrderStatus(d["status"])
        o.filled_qty = Decimal(d["filled_qty"])
        o.cum_quote = Decimal(d["cum_quote"])
        o.fees = Decimal(d["fees"])
        o.reason = str(d["reason"])
        o.taker_pending = bool(d["taker_pending"])
        o.lock_asset = str(d["lock_asset"])
        o.lock_remaining = Decimal(d["lock_remaining"])
        return o


class Ledger(Protocol):
    """The account behind an engine: positions, funds, and the booking of fills."""

    def position(self, instrument: Instrument) -> Decimal:
        """Net position in base units (spot: the base balance held)."""
        ...

    def reserve(self, order: SimOrder, ref_price: Decimal, fee_rate: Decimal) -> None:
        """Lock what `order` may spend; raise OrderRejected if the account cannot."""
        ...

    def affordable_qty(self, order: SimOrder, qty: Decimal, price: Decimal, fee_rate: Decimal) -> Decimal:
        """How much of `qty` at `price` the account can pay for now (<= qty)."""
        ...

    def on_fill(self, order: SimOrder, fill: VenueFill) -> None:
        """Book one execution."""
        ...

    def on_done(self, order: SimOrder) -> None:
        """The order is terminal: release what it still holds."""
        ...


class NullLedger:
    """Unlimited funds; positions tracked from fills (for the engine on its own)."""

    def __init__(self) -> None:
        self.positions: dict[InstrumentId, Decimal] = {}

    def position(self, instrument: Instrument) -> Decimal:
        """Net position from fills so far."""
        return self.positions.get(instrument.id, _ZERO)

    def reserve(self, order: SimOrder, ref_price: Decimal, fee_rate: Decimal) -> None:
        """Nothing to lock."""

    def affordable_qty(self, order: SimOrder, qty: Decimal, price: Decimal, fee_rate: Decimal) -> Decimal:
        """Everything."""
        return qty

    def on_fill(self, order: SimOrder, fill: VenueFill) -> None:
        """Move the position."""
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        self.positions[fill.instrument_id] = self.positions.get(fill.instrument_id, _ZERO) + signed

    def on_done(self, order: SimOrder) -> None:
        """Nothing held."""


class MatchingEngine:
    """Matching for one instrument (see the module docstring for the fill model)."""

    def __init__(
        self,
        instrument: Instrument,
        *,
        venue: str = "sim",
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        trade_ids: Counter | None = None,
        order_ids: Counter | None = None,
        ledger: Ledger | None = None,
        bar_volume_fraction: float = 1.0,
        trade_size_fraction: float = 1.0,
        slippage: SlippageModel | None = None,
    ) -> None:
        if not 0.0 < bar_volume_fraction <= 1.0 or trade_size_fraction <= 0.0:
            raise ValueError("bar_volume_fraction must be in (0, 1] and trade_size_fraction > 0")
        self.instrument = instrument
        self.venue = venue
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.trade_ids = trade_ids if trade_ids is not None else Counter()
        self.order_ids = order_ids if order_ids is not None else Counter()
        self.ledger: Ledger = ledger if ledger is not None else NullLedger()
        self.bar_volume_fraction = bar_volume_fraction
        self.trade_size_fraction = trade_size_fraction
        self.last_price: float | None = None
        self.best_bid: float | None = None
        self.best_ask: float | None = None
        self._orders: dict[str, SimOrder] = {}  # open orders in arrival order
        self._tick = instrument.tick_size
        self._step = instrument.step_size
        self._market_step = instrument.market_step_size or instrument.step_size
        self.slippage = slippage
        self._vol = RealisedVol(slippage.vol_window_s) if slippage is not None else None

    # ------------------------------------------------------------ state

    @property
    def has_orders(self) -> bool:
        """True while any order is open."""
        return bool(self._orders)

    def open_orders(self) -> list[SimOrder]:
        """Open orders, oldest first."""
        return list(self._orders.values())

    def get(self, client_order_id: str) -> SimOrder | None:
        """An open order by client id."""
        return self._orders.get(client_order_id)

    def set_quote(self, bid: float, ask: float) -> None:
        """Best bid/ask, used to decide whether an arriving limit is marketable."""
        self.best_bid = bid
        self.best_ask = ask

    def restore(self, order: SimOrder) -> None:
        """Put back an open order (after a restart)."""
        if order.status.is_terminal:
            raise ValueError(f"order {order.client_order_id} is {order.status.value}, not open")
        self._orders[order.client_order_id] = order

    # ------------------------------------------------------------ requests

    def check(self, req: OrderRequest) -> None:
        """Validate a new order against the instrument and the market; raise OrderRejected."""
        inst = self.instrument
        if req.instrument_id != inst.id:
            self._reject(CODE_INVALID_SYMBOL, "Invalid symbol.", f"{req.instrument_id} is not {inst.id}")
        if not inst.tradable:
            self._reject(CODE_NEW_ORDER_REJECTED, "Unsupported order combination", f"{inst.id} is not trading")
        otype = req.order_type
        qty = req.quantity
        step = self._market_step if otype is OrderType.MARKET else self._step
        if not qty.is_finite() or qty <= 0:
            self._reject(CODE_FILTER_FAILURE, "Filter failure: LOT_SIZE", f"quantity {qty} must be > 0")
        if qty % step != 0:
            self._reject(CODE_FILTER_FAILURE, "Filter failure: LOT_SIZE", f"quantity {qty} is not a multiple of step {step}")
        if qty < inst.min_qty:
            self._reject(CODE_FILTER_FAILURE, "Filter failure: LOT_SIZE", f"quantity {qty} < min {inst.min_qty}")
        max_qty = inst.market_max_qty if otype is OrderType.MARKET and inst.market_max_qty else inst.max_qty
        if max_qty is not None and qty > max_qty:
            self._reject(CODE_FILTER_FAILURE, "Filter failure: LOT_SIZE", f"quantity {qty} > max {max_qty}")
        if otype is OrderType.MARKET:
            if req.price is not None:
                self._reject(CODE_PARAM_NOT_REQUIRED, "Parameter 'price' sent when not required.", "MARKET order")
            if self.last_price is None:
                self._reject(CODE_NEW_ORDER_REJECTED, "No market price yet",
                             f"{inst.symbol} has had no trade or bar; MARKET orders wait for one")
            assert self.last_price is not None
            ref = self._px(self.last_price)
        else:
            px = req.price
            if px is None:
                self._reject(CODE_MANDATORY_PARAM, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
                             f"{otype.value} needs a price")
            assert px is not None
            if not px.is_finite() or px <= 0:
                self._reject(CODE_FILTER_FAILURE, "Filter failure: PRICE_FILTER", f"price {px} must be > 0")
            if px % self._tick != 0:
                self._reject(CODE_FILTER_FAILURE, "Filter failure: PRICE_FILTER", f"price {px} is not a multiple of tick {self._tick}")
            ref = px
            if otype is OrderType.LIMIT_MAKER:
                if req.time_in_force is not TimeInForce.GTC:
                    self._reject(CODE_PARAM_NOT_REQUIRED, "Parameter 'timeInForce' sent when not required.",
                                 "LIMIT_MAKER is post-only GTC")
                if self._crosses_now(req.side, float(px)):
                    self._reject(CODE_NEW_ORDER_REJECTED, "Order would immediately match and take.",
                                 f"post-only {req.side.value} at {px} crosses the market ({self._touch_desc(req.side)})")
        if qty * ref < inst.min_notional:
            self._reject(CODE_FILTER_FAILURE, "Filter failure: NOTIONAL",
                         f"notional {qty * ref} < min {inst.min_notional}")
        if req.reduce_only:
            pos = self.ledger.position(inst)
            if not ((req.side is Side.SELL and pos > 0) or (req.side is Side.BUY and pos < 0)):
                self._reject(CODE_REDUCE_ONLY_REJECTED, "ReduceOnly Order is rejected.",
                             f"{req.side.value} would not reduce position {pos}")

    def submit(self, req: OrderRequest, ts_ns: int) -> list[Event]:
        """`accept` returning the order's first snapshot as an event list."""
        return [self.accept(req, ts_ns).snapshot()]

    def accept(self, req: OrderRequest, ts_ns: int) -> SimOrder:
        """Check, reserve funds and accept a new order.

        The order comes back ACCEPTED, or already EXPIRED for an IOC/FOK limit that is
        clearly not marketable on arrival (the venue answers so at once). Raises
        OrderRejected, keeping nothing, when the order is refused.
        """
        self.check(req)
        order = SimOrder(
            req.client_order_id, str(self.order_ids.next()), req.instrument_id, req.side,
            req.order_type, req.quantity, req.price, req.time_in_force, req.reduce_only, ts_ns,
        )
        fee = max(self.maker_fee, self.taker_fee)
        if req.order_type is OrderType.MARKET:
            assert self.last_price is not None
            ref = self._px(self.last_price)
        else:
            assert req.price is not None
            ref = req.price
        self.ledger.reserve(order, ref, fee)
        if order.order_type is OrderType.MARKET:
            order.taker_pending = True
        elif order.order_type is OrderType.LIMIT:
            known = self.last_price is not None or self.best_ask is not None
            if not known or self._crosses_now(order.side, order.price_f):
                order.taker_pending = True
            elif order.time_in_force is not TimeInForce.GTC:
                order.status = OrderStatus.EXPIRED
                order.reason = f"{order.time_in_force.value} limit not marketable on arrival"
                self.ledger.on_done(order)
                return order
        self._orders[order.client_order_id] = order
        return order

    def cancel(self, client_order_id: str, ts_ns: int, reason: str = "canceled by request") -> VenueOrder | None:
        """Cancel an open order; None if it is not open here."""
        order = self._orders.get(client_order_id)
        if order is None:
            return None
        self._finish(order, OrderStatus.CANCELED, reason, ts_ns)
        return order.snapshot()

    # ------------------------------------------------------------ market events

    def on_bar(self, bar: Bar) -> Sequence[Event]:
        """Match open orders against a closed bar (see module doc); returns events."""
        if not self._orders:
            self.last_price = bar.close
            if self._vol is not None:
                self._vol.update(bar.ts_event_ns, bar.close)
            return _EMPTY
        return self._match(bar.open, bar.low, bar.high, bar.close,
                           bar.volume * self.bar_volume_fraction, bar.ts_event_ns)

    def on_bar_values(
        self, ts_open_ns: int, open_: float, high: float, low: float, close: float, volume: float
    ) -> Sequence[Event]:
        """`on_bar` from plain values (no Bar object needed)."""
        if not self._orders:
            self.last_price = close
            if self._vol is not None:
                self._vol.update(ts_open_ns, close)
            return _EMPTY
        return self._match(open_, low, high, close, volume * self.bar_volume_fraction, ts_open_ns)

    def on_trade(self, price: float, size: float, ts_ns: int) -> Sequence[Event]:
        """Match open orders against one public trade; returns events."""
        if not self._orders:
            self.last_price = price
            if self._vol is not None:
                self._vol.update(ts_ns, price)
            return _EMPTY
        return self._match(price, price, price, price, size * self.trade_size_fraction, ts_ns)

    # ------------------------------------------------------------ internals

    def _match(
        self, open_: float, low: float, high: float, last: float, liquidity: float, ts_ns: int
    ) -> list[Event]:
        events: list[Event] = []
        avail: Decimal | None = None  # computed on the first fill: no Decimal work on quiet bars
        open_d: Decimal | None = None
        for order in list(self._orders.values()):
            is_buy = order.side is Side.BUY
            if order.taker_pending:
                if order.order_type is OrderType.MARKET or (
                    open_ <= order.price_f if is_buy else open_ >= order.price_f
                ):
                    if open_d is None:
                        open_d = self._px(open_)
                    if avail is None:
                        avail = self._qty_floor(liquidity)
                    px = open_d if self.slippage is None else self._slipped(order, open_, open_d, ts_ns)
                    avail = self._execute(order, avail, px, Liquidity.TAKER, ts_ns, events)
                    if order.status.is_open and order.time_in_force is not TimeInForce.GTC:
                        self._finish(order, OrderStatus.EXPIRED,
                                     f"{order.time_in_force.value}: unfilled remainder expired", ts_ns, events)
                    continue
                if order.time_in_force is not TimeInForce.GTC:
                    self._finish(order, OrderStatus.EXPIRED,
                                 f"{order.time_in_force.value} limit did not cross at {open_}", ts_ns, events)
                    continue
                order.taker_pending = False  # now resting in the book
            if low <= order.price_f if is_buy else high >= order.price_f:
                assert order.price is not None
                if avail is None:
                    avail = self._qty_floor(liquidity)
                avail = self._execute(order, avail, order.price, Liquidity.MAKER, ts_ns, events)
        self.last_price = last
        if self._vol is not None:
            self._vol.update(ts_ns, last)
        return events

    def _slipped(self, order: SimOrder, open_: float, open_d: Decimal, ts_ns: int) -> Decimal:
        """A taker's fill price under the slippage model (module docstring): against the taker,
        on the tick grid, never beyond a LIMIT's price."""
        assert self.slippage is not None and self._vol is not None
        bps = self.slippage.predict_bps(float(order.quantity) * open_ * float(self.instrument.multiplier),
                                        spread_bps(self.best_bid, self.best_ask), self._vol.bps(ts_ns))
        raw = open_ * (1.0 + bps / 1e4) if order.side is Side.BUY else open_ * (1.0 - bps / 1e4)
        if not (raw > 0.0 and math.isfinite(raw)):
            return open_d
        px = self._px(raw)
        if px <= 0:
            return open_d
        if order.price is not None:
            px = min(px, order.price) if order.side is Side.BUY else max(px, order.price)
        return px

    def _execute(
        self, order: SimOrder, avail: Decimal, price: Decimal, liq: Liquidity, ts_ns: int, events: list[Event]
    ) -> Decimal:
        """Fill as much of `order` as liquidity, reduce-only and funds allow; returns liquidity left."""
        remaining = order.remaining
        rate = self.taker_fee if liq is Liquidity.TAKER else self.maker_fee
        if order.time_in_force is TimeInForce.FOK and avail < remaining:
            self._finish(order, OrderStatus.EXPIRED,
                         f"FOK: only {avail} of {remaining} available", ts_ns, events)
            return avail
        qty = min(avail, remaining)
        stop: tuple[OrderStatus, str] | None = None
        if order.reduce_only:
            pos = self.ledger.position(self.instrument)
            reducible = pos if order.side is Side.SELL else -pos
            if reducible <= 0:
                self._finish(order, OrderStatus.CANCELED, "reduce-only: position is closed", ts_ns, events)
                return avail
            if qty > reducible:
                qty = self._floor_step(reducible)
                stop = (OrderStatus.CANCELED, "reduce-only: capped at the position, remainder canceled")
        if qty > 0:
            affordable = self.ledger.affordable_qty(order, qty, price, rate)
            if affordable < qty:
                qty = self._floor_step(affordable)
                stop = (OrderStatus.EXPIRED, "insufficient balance at fill time, remainder expired")
        if order.time_in_force is TimeInForce.FOK and qty < remaining:
            self._finish(order, OrderStatus.EXPIRED, f"FOK: only {qty} of {remaining} fillable", ts_ns, events)
            return avail
        if qty > 0:
            self._fill(order, qty, price, liq, rate, ts_ns, events)
            avail -= qty
        if stop is not None and order.status.is_open:
            self._finish(order, stop[0], stop[1], ts_ns, events)
        return avail

    def _fill(
        self, order: SimOrder, qty: Decimal, price: Decimal, liq: Liquidity, rate: Decimal,
        ts_ns: int, events: list[Event],
    ) -> None:
        notional = qty * price
        fee = (notional * rate).quantize(FEE_QUANTUM, ROUND_HALF_UP)
        order.filled_qty += qty
        order.cum_quote += notional
        order.fees += fee
        order.ts_ns = ts_ns
        fill = VenueFill(
            instrument_id=order.instrument_id, client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id, trade_id=str(self.trade_ids.next()),
            side=order.side, qty=qty, price=price, fee=fee, fee_asset=self.instrument.quote_asset,
            liquidity=liq, ts_ns=ts_ns,
        )
        self.ledger.on_fill(order, fill)
        events.append(fill)
        if order.filled_qty >= order.quantity:
            self._finish(order, OrderStatus.FILLED, "", ts_ns, events)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
            events.append(order.snapshot())

    def _finish(
        self, order: SimOrder, status: OrderStatus, reason: str, ts_ns: int, events: list[Event] | None = None
    ) -> None:
        order.status = status
        order.reason = reason
        order.ts_ns = ts_ns
        order.taker_pending = False
        self._orders.pop(order.client_order_id, None)
        self.ledger.on_done(order)
        if events is not None:
            events.append(order.snapshot())

    def _crosses_now(self, side: Side, price: float) -> bool:
        """Would a limit at `price` take liquidity right now (best quote, else last price)?"""
        if side is Side.BUY:
            ref = self.best_ask if self.best_ask is not None else self.last_price
            return ref is not None and price >= ref
        ref = self.best_bid if self.best_bid is not None else self.last_price
        return ref is not None and price <= ref

    def _touch_desc(self, side: Side) -> str:
        if side is Side.BUY:
            return f"best ask {self.best_ask}" if self.best_ask is not None else f"last price {self.last_price}"
        return f"best bid {self.best_bid}" if self.best_bid is not None else f"last price {self.last_price}"

    def _px(self, price: float) -> Decimal:
        """A float market price on the tick grid."""
        return (Decimal(repr(price)) / self._tick).to_integral_value(ROUND_HALF_EVEN) * self._tick

    def _qty_floor(self, size: float) -> Decimal:
        """A float market size floored to the step."""
        if size <= 0.0:
            return _ZERO
        return (Decimal(repr(size)) / self._step).to_integral_value(ROUND_FLOOR) * self._step

    def _floor_step(self, qty: Decimal) -> Decimal:
        return (qty / self._step).to_integral_value(ROUND_FLOOR) * self._step

    def _reject(self, code: str, message: str, detail: str) -> None:
        raise OrderRejected(self.venue, f"{message}: {detail}", code)
