"""Order routing, pure: exchange-filter rounding, quote → quantity, fees, target → order.

Everything is Decimal. Quantities round DOWN to the step (never more than asked);
prices round side-aware, never more aggressive than asked: BUY down, SELL up.

Notional is qty x price x multiplier (the multiplier is 1 on every current venue, where
quantities are already in base units; it is applied consistently wherever a notional is
computed).

Two ways an order comes to be, two attitudes to filters:
* a target-position delta (`plan_target`) too small to trade is noise: `Skip` with a
  reason, the remaining delta is handled next time;
* an explicit order intent (`check_order`) that breaks a filter is refused: `Reject`
  with a reason the strategy can see.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from nautilus_hmm.domain.enums import InstrumentKind, Liquidity, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument
from nautilus_hmm.risk.rails import reduces_exposure

_ZERO = Decimal(0)
_ONE = Decimal(1)
_BPS = Decimal(10_000)

# ---------------------------------------------------------------- reason codes

NO_CHANGE = "no_change"
BELOW_MIN_QTY = "below_min_qty"
BELOW_MIN_NOTIONAL = "below_min_notional"
ABOVE_MAX_QTY = "above_max_qty"
DUST_POSITION = "dust_position"
NOT_TRADABLE = "not_tradable"
NO_PRICE = "no_price"
NON_POSITIVE_QTY = "non_positive_qty"
QTY_NOT_STEP_MULTIPLE = "qty_not_step_multiple"
PRICE_NOT_TICK_MULTIPLE = "price_not_tick_multiple"
PRICE_OUT_OF_BAND = "price_out_of_band"
OPEN_ORDERS_PENDING = "open_orders_pending"

# notes on an OrderSpec: the plan was adjusted, the order is still worth sending
SPOT_SHORT_CLAMPED = "spot_short_clamped"
SPOT_SELL_CAPPED = "spot_sell_capped"
CAPPED_TO_MAX_QTY = "capped_to_max_qty"


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """An order to send. `price` is None for MARKET; `notes` say how the plan was adjusted."""

    side: Side
    qty: Decimal
    order_type: OrderType
    price: Decimal | None
    time_in_force: TimeInForce
    reduce_only: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to send: the delta is zero or too small to trade (not an error)."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Reject:
    """The request cannot be sent as asked (an error the requester should see)."""

    reason: str
    detail: str


RoutePlan = OrderSpec | Skip | Reject


# ---------------------------------------------------------------- rounding


def round_qty_down(qty: Decimal, step: Decimal) -> Decimal:
    """`qty` rounded toward zero to a multiple of `step` (step > 0)."""
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    # Decimal remainder is exact and carries the dividend's sign: this truncates toward
    # zero with no intermediate division rounding.
    return qty - qty % step


def round_price(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """`price` on the tick grid, never more aggressive: BUY rounds down, SELL rounds up."""
    if tick <= 0:
        raise ValueError(f"tick must be > 0, got {tick}")
    rem = price % tick  # exact; same sign as price
    if rem == 0:
        return price
    floor = price - rem if rem > 0 else price - rem - tick
    return floor if side is Side.BUY else floor + tick


def _is_multiple(value: Decimal, unit: Decimal) -> bool:
    return value % unit == 0


def _market_filters(instrument: Instrument, order_type: OrderType) -> tuple[Decimal, Decimal | None]:
    """(step, max qty) for this order type: MARKET uses the MARKET_LOT_SIZE values when set."""
    if order_type is OrderType.MARKET:
        step = instrument.market_step_size or instrument.step_size
        max_qty = instrument.market_max_qty if instrument.market_max_qty is not None else instrument.max_qty
        return step, max_qty
    return instrument.step_size, instrument.max_qty


# ---------------------------------------------------------------- sizing and fees


def notional(qty: Decimal, price: Decimal, instrument: Instrument) -> Decimal:
    """|qty| x price x multiplier, in the quote asset."""
    return abs(qty) * price * instrument.multiplier


def quote_to_qty(
    quote_amount: Decimal, price: Decimal, instrument: Instrument, order_type: OrderType = OrderType.LIMIT
) -> Decimal:
    """Base quantity that `quote_amount` buys at `price`, rounded down to the step."""
    if price <= 0:
        raise ValueError(f"price must be > 0, got {price}")
    if quote_amount < 0:
        raise ValueError(f"quote amount must be >= 0, got {quote_amount}")
    step, _ = _market_filters(instrument, order_type)
    return round_qty_down(quote_amount / (price * instrument.multiplier), step)


def estimate_fee(qty: Decimal, price: Decimal, instrument: Instrument, liquidity: Liquidity) -> Decimal:
    """Expected fee in the quote asset at the instrument's maker or taker rate."""
    rate = instrument.maker_fee if liquidity is Liquidity.MAKER else instrument.taker_fee
    return abs(qty) * price * instrument.multiplier * rate


def limit_price(ref_price: Decimal, side: Side, offset_bps: Decimal, tick: Decimal) -> Decimal:
    """A passive limit price `offset_bps` from `ref_price` on our side, on the tick grid.

    BUY at ref x (1 - offset) rounded down, SELL at ref x (1 + offset) rounded up: with
    ref = mid this rests between the mid and the touch; never crosses the reference.
    """
    if side is Side.BUY:
        return round_price(ref_price * (_ONE - offset_bps / _BPS), tick, side)
    return round_price(ref_price * (_ONE + offset_bps / _BPS), tick, side)


# ---------------------------------------------------------------- explicit orders


def check_order(
    instrument: Instrument,
    side: Side,
    qty: Decimal,
    price: Decimal | None,
    order_type: OrderType = OrderType.LIMIT,
    ref_price: Decimal | None = None,
) -> Reject | None:
    """Whether an explicit order passes the venue's filters as given; the first failure.

    Checks, in order: tradable, qty > 0, a price for priced orders, qty on the step, price
    on the tick, min qty, max qty (MARKET: market max), min notional (MARKET orders are
    valued at `ref_price`, skipped without one), the percent-price band around
    `ref_price` when the instrument has one. `side` names the order in details.
    """
    sym = instrument.symbol
    if not instrument.tradable:
        return Reject(NOT_TRADABLE, f"{sym} is not tradable")
    if qty <= 0:
        return Reject(NON_POSITIVE_QTY, f"{side.value} {sym}: qty must be > 0, got {qty}")
    is_market = order_type is OrderType.MARKET
    if not is_market and (price is None or price <= 0):
        return Reject(NO_PRICE, f"{side.value} {sym}: {order_type.value} order needs a price > 0, got {price}")
    step, max_qty = _market_filters(instrument, order_type)
    if not _is_multiple(qty, step):
        return Reject(QTY_NOT_STEP_MULTIPLE, f"{side.value} {sym}: qty {qty} is not a multiple of step {step}")
    if price is not None and not _is_multiple(price, instrument.tick_size):
        return Reject(
            PRICE_NOT_TICK_MULTIPLE,
            f"{side.value} {sym}: price {price} is not a multiple of tick {instrument.tick_size}",
        )
    if qty < instrument.min_qty:
        return Reject(BELOW_MIN_QTY, f"{side.value} {sym}: qty {qty} < min qty {instrument.min_qty}")
    if max_qty is not None and qty > max_qty:
        return Reject(ABOVE_MAX_QTY, f"{side.value} {sym}: qty {qty} > max qty {max_qty}")
    value_px = ref_price if is_market else price
    if value_px is not None:
        value = notional(qty, value_px, instrument)
        if value < instrument.min_notional:
            return Reject(
                BELOW_MIN_NOTIONAL,
                f"{side.value} {sym}: notional {value} < min notional {instrument.min_notional}",
            )
    if price is not None and ref_price is not None and ref_price > 0:
        up, down = instrument.percent_price_up, instrument.percent_price_down
        if up is not None and price > ref_price * up:
            return Reject(PRICE_OUT_OF_BAND, f"{side.value} {sym}: price {price} > {up} x ref {ref_price}")
        if down is not None and price < ref_price * down:
            return Reject(PRICE_OUT_OF_BAND, f"{side.value} {sym}: price {price} < {down} x ref {ref_price}")
    return None


# ---------------------------------------------------------------- target positions


def plan_target(
    instrument: Instrument,
    current_qty: Decimal,
    open_buy_qty: Decimal,
    open_sell_qty: Decimal,
    target_qty: Decimal,
    ref_price: Decimal | None,
    order_type: OrderType,
    limit_offset_bps: Decimal | float,
    tif: TimeInForce,
) -> RoutePlan:
    """The one order that moves the position toward `target_qty`, or why there is none.

    Rules:
    * open orders are assumed to fill: the delta is taken from the projected position
      current + open buys - open sells (cancel stale orders before planning if that is
      not wanted);
    * SPOT cannot go short: a negative target is clamped to 0 (note
      `spot_short_clamped`), and a SPOT sell never exceeds the holdings not already
      committed to open sells (note `spot_sell_capped`; `open_orders_pending` Skip when
      nothing is free because the delta only comes from open buys);
    * a delta above max qty (MARKET: market max qty) is capped (note
      `capped_to_max_qty`), the rest is handled next time;
    * quantity rounds DOWN to the step (MARKET: market step when set);
    * what is left below min qty / min notional is skipped: `dust_position` when the
      target is flat and the leftover position itself is too small to trade, otherwise
      `below_min_qty` / `below_min_notional`;
    * LIMIT / LIMIT_MAKER are priced by `limit_price` (passive, `limit_offset_bps` from
      the reference); MARKET orders are valued at the reference price;
    * `reduce_only` is set on PERPETUAL orders that only reduce the current position
      (after other open reducing orders).
    """
    sym = instrument.symbol
    if not instrument.tradable:
        return Reject(NOT_TRADABLE, f"{sym} is not tradable")
    if ref_price is None or ref_price <= 0:
        return Reject(NO_PRICE, f"{sym}: no reference price ({ref_price})")
    notes: list[str] = []
    target = target_qty
    kind = instrument.kind
    spot = kind is InstrumentKind.SPOT or kind is InstrumentKind.FX  # a balance: no short
    if spot and target < 0:
        target = _ZERO
        notes.append(SPOT_SHORT_CLAMPED)
    projected = current_qty + open_buy_qty - open_sell_qty
    delta = target - projected
    if delta == 0:
        return Skip(NO_CHANGE, f"{sym}: projected position {projected} already at target {target}")
    side = Side.BUY if delta > 0 else Side.SELL
    want = abs(delta)
    if spot and side is Side.SELL:
        free = current_qty - open_sell_qty
        if free <= 0:
            return Skip(
                OPEN_ORDERS_PENDING,
                f"{sym}: sell of {want} needed but no free holdings ({current_qty} held, {open_sell_qty} "
                f"in open sells, {open_buy_qty} in open buys)",
            )
        if want > free:
            want = free
            notes.append(SPOT_SELL_CAPPED)
    step, max_qty = _market_filters(instrument, order_type)
    if max_qty is not None and want > max_qty:
        want = max_qty
        notes.append(CAPPED_TO_MAX_QTY)
    qty = round_qty_down(want, step)
    closing = target == 0
    if qty <= 0 or qty < instrument.min_qty:
        reason = DUST_POSITION if closing else BELOW_MIN_QTY
        return Skip(reason, f"{sym}: {side.value} {want} rounds to {qty} < min qty {instrument.min_qty}")
    if order_type is OrderType.MARKET:
        price = None
        value_px = ref_price
    else:
        offset = limit_offset_bps if isinstance(limit_offset_bps, Decimal) else Decimal(str(limit_offset_bps))
        price = limit_price(ref_price, side, offset, instrument.tick_size)
        if price <= 0:
            return Reject(NO_PRICE, f"{sym}: limit price {price} from ref {ref_price}")
        value_px = price
    value = notional(qty, value_px, instrument)
    if value < instrument.min_notional:
        reason = DUST_POSITION if closing else BELOW_MIN_NOTIONAL
        return Skip(reason, f"{sym}: {side.value} {qty} notional {value} < min notional {instrument.min_notional}")
    reduce_only = False
    if not spot:
        open_reducing = open_sell_qty if side is Side.SELL else open_buy_qty
        reduce_only = reduces_exposure(side, qty, current_qty, open_reducing)
    return OrderSpec(side, qty, order_type, price, tif, reduce_only, tuple(notes))
