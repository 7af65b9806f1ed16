"""The IBKR emulator's account: order book, deterministic matching, executions, commissions,
positions and cash (pure: no asyncio, no sockets; the server turns its events into messages).

Rules (what an adapter may rely on, and where they simplify IB):

* Order ids are per API client: an id that is not above every id the client used before is
  refused with 103 (Duplicate order id), unless it names the client's own open order (then
  the order is modified: quantity and limit price). Each order gets a permId (unique).
* MKT and LMT orders, tif DAY, GTC or IOC. A quantity below minSize or off the size
  increment is refused with 201; a limit price off the tick grid with 110.
* Matching is deterministic: at arrival and at every market step, an order that can trade
  takes up to the touch size (the quote's ask size for a buy, bid size for a sell) at the
  touch price (ask for a buy, bid for a sell; a limit buy trades while ask <= limit). A
  large order therefore fills in several executions. An order trades only in its session:
  regular (liquid) hours, or the whole trading hours with `outsideRth`; outside it waits
  (PreSubmitted). An IOC remainder is cancelled after arrival; a DAY order is cancelled at
  the end of the session it was placed for.
* Commissions (IBKR Pro fixed-like, charged per order, spread over its executions): stocks
  USD 0.005 a share, at least USD 1.00, at most 1 % of the value; futures USD 2.25 a
  contract; FX 0.2 bp of the USD value, at least USD 2.00. Commission currency USD.
* Positions carry IB's avgCost: per unit, multiplier included, commission included (a long
  pays it: an ES long bought at 6000.25 shows 300012.50 + 2.25; a short's proceeds are net
  of it: 300012.50 - 2.25). realizedPNL in a commission report is net of commissions; an
  opening execution reports IB's unset double.
* Cash: a stock buy pays price x quantity; a future moves no notional (its realized PnL is
  cash); an FX trade credits the base currency and debits the quote currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from nautilus_hmm.venues.ibkr.emulator.market import (
    ContractSpec,
    Quote,
    is_open,
    on_tick,
    session_at,
    sessions_between,
)

NS_PER_S = 1_000_000_000
ACCOUNT = "DU1234567"
ZERO = Decimal(0)
ORDER_TYPES = ("MKT", "LMT")
TIFS = ("DAY", "GTC", "IOC")
DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})


class OrderError(Exception):
    """An order or cancel refused: IB's error code and text (sent as errMsg with the order id)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass(slots=True)
class OrderRequest:
    """The fields of a placeOrder the emulator acts on."""

    action: str
    total_qty: Decimal
    order_type: str
    lmt_price: Decimal | None
    tif: str = "DAY"
    account: str = ""
    order_ref: str = ""
    outside_rth: bool = False
    transmit: bool = True


@dataclass(slots=True)
class EmuOrder:
    """One order on the emulator's book."""

    client_id: int
    order_id: int
    perm_id: int
    spec: ContractSpec
    action: str
    total_qty: Decimal
    order_type: str
    lmt_price: Decimal | None
    tif: str
    account: str
    order_ref: str
    outside_rth: bool
    created_ns: int
    expires_ns: int | None = None
    status: str = "PreSubmitted"
    filled: Decimal = ZERO
    avg_fill_price: Decimal = ZERO
    last_fill_price: Decimal = ZERO
    commission_charged: Decimal = ZERO
    value_filled: Decimal = ZERO
    done_ns: int | None = None
    done_reason: str = ""

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill (0 once done)."""
        return ZERO if self.status in DONE_STATES else self.total_qty - self.filled

    @property
    def is_buy(self) -> bool:
        """A BUY order."""
        return self.action == "BUY"

    @property
    def done(self) -> bool:
        """Filled, cancelled or inactive."""
        return self.status in DONE_STATES


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill, as execDetails + commissionReport carry it."""

    exec_id: str
    client_id: int
    order_id: int
    perm_id: int
    order_ref: str
    spec: ContractSpec
    time_ns: int
    side: str  # BOT | SLD
    shares: Decimal
    price: Decimal
    cum_qty: Decimal
    avg_price: Decimal
    commission: Decimal
    realized_pnl: Decimal | None  # None: an opening execution (IB sends its unset double)
    liquidity: int  # 1 added, 2 removed


@dataclass(slots=True)
class Position:
    """A contract's position with IB's avgCost (per unit, multiplier and commission included)."""

    spec: ContractSpec
    qty: Decimal = ZERO
    avg_cost: Decimal = ZERO
    realized: Decimal = ZERO


# Events the engine returns; the server maps each to TWS messages.
@dataclass(frozen=True, slots=True)
class OrderChanged:
    """The order's status or fill changed: openOrder + orderStatus to its client."""

    order: EmuOrder


@dataclass(frozen=True, slots=True)
class Filled:
    """An execution happened: execDetails (then commissionReport) to the order's client."""

    execution: Execution


@dataclass(frozen=True, slots=True)
class OrderNotice:
    """An errMsg about an order (202 cancelled, 201 rejected...) to its client."""

    client_id: int
    order_id: int
    code: int
    text: str


Event = OrderChanged | Filled | OrderNotice


def commission_total(spec: ContractSpec, qty: Decimal, value_usd: Decimal) -> Decimal:
    """The commission of an order that has filled `qty` for `value_usd` so far (USD, cents)."""
    if spec.sec_type == "FUT":
        c = Decimal("2.25") * qty
    elif spec.sec_type == "CASH":
        c = max(Decimal("2.00"), value_usd * Decimal("0.00002"))
    else:
        c = min(max(Decimal("1.00"), Decimal("0.005") * qty), value_usd * Decimal("0.01"))
    return c.quantize(Decimal("0.01"))


@dataclass(slots=True)
class Engine:
    """The account and its orders. `quote_of(spec, now_ns)` gives the market at an instant."""

    quote_of: Callable[[ContractSpec, int], Quote]
    account: str = ACCOUNT
    cash: dict[str, Decimal] = field(default_factory=lambda: {"USD": Decimal(1_000_000)})
    orders: dict[tuple[int, int], EmuOrder] = field(default_factory=dict)
    positions: dict[int, Position] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    high_water: dict[int, int] = field(default_factory=dict)  # client id -> highest order id used
    _perm_seq: int = 1_000_000_000
    _exec_seq: int = 0
    fx_specs: tuple[ContractSpec, ...] = ()  # the pairs that convert cash to USD
    _session_id: str = "0000e0d5"

    # --- order ids -------------------------------------------------------------------------

    def next_valid_id(self, client_id: int) -> int:
        """The id a client's next order may use (above every id it used)."""
        return self.high_water.get(client_id, 0) + 1

    # --- orders ----------------------------------------------------------------------------

    def place(self, client_id: int, order_id: int, spec: ContractSpec, req: OrderRequest, now_ns: int, *,
              can_trade: bool = True) -> list[Event]:
        """Accept (and match at once, unless `can_trade` is False) a new order, or modify the
        client's open order `order_id`. Raises OrderError(code, text) when refused; nothing then changed.
        """
        existing = self.orders.get((client_id, order_id))
        if existing is not None and not existing.done:
            return self._modify(existing, spec, req, now_ns, can_trade=can_trade)
        if order_id <= self.high_water.get(client_id, 0):
            raise OrderError(103, "Duplicate order id")
        self._validate(spec, req)
        self.high_water[client_id] = order_id
        self._perm_seq += 1
        order = EmuOrder(client_id=client_id, order_id=order_id, perm_id=self._perm_seq, spec=spec,
                         action=req.action, total_qty=req.total_qty, order_type=req.order_type,
                         lmt_price=req.lmt_price, tif=req.tif, account=req.account or self.account,
                         order_ref=req.order_ref, outside_rth=req.outside_rth, created_ns=now_ns)
        if order.tif == "DAY":
            order.expires_ns = self._day_end(order, now_ns)
        self.orders[(client_id, order_id)] = order
        tradable = can_trade and self._tradable(order, now_ns)
        order.status = "Submitted" if tradable else "PreSubmitted"
        events: list[Event] = [OrderChanged(order)]
        if tradable:
            events += self._match_order(order, now_ns, arrival=True)
        if order.tif == "IOC" and not order.done:
            self._end(order, "Cancelled", "Cancelled: IOC remainder", now_ns)
            events.append(OrderChanged(order))
        return events

    def _modify(self, order: EmuOrder, spec: ContractSpec, req: OrderRequest, now_ns: int, *,
                can_trade: bool) -> list[Event]:
        if spec.con_id != order.spec.con_id or req.action != order.action or req.order_type != order.order_type:
            raise OrderError(105, "Order being modified does not match original order")
        self._validate(spec, req)
        if req.total_qty < order.filled:
            raise OrderError(201, "Order rejected - reason:the new quantity is below the filled quantity")
        order.total_qty = req.total_qty
        order.lmt_price = req.lmt_price
        order.order_ref = req.order_ref or order.order_ref
        events: list[Event] = [OrderChanged(order)]
        if order.filled >= order.total_qty:
            self._end(order, "Filled", f"Filled Size: {order.filled}", now_ns)
            return events
        if can_trade and self._tradable(order, now_ns):
            events += self._match_order(order, now_ns, arrival=True)
        return events

    def _validate(self, spec: ContractSpec, req: OrderRequest) -> None:
        if req.action not in ("BUY", "SELL"):
            raise OrderError(201, f"Order rejected - reason:invalid action {req.action!r}")
        if req.order_type not in ORDER_TYPES:
            raise OrderError(201, f"Order rejected - reason:the emulator supports MKT and LMT orders, not "
                                  f"{req.order_type!r}")
        if req.tif not in TIFS:
            raise OrderError(201, f"Order rejected - reason:time in force {req.tif!r} is not supported "
                                  f"(DAY, GTC, IOC)")
        qty = req.total_qty
        if qty <= 0:
            raise OrderError(434, "The order size cannot be zero")
        if qty < spec.min_size or (qty / spec.size_increment) != (qty / spec.size_increment).to_integral_value():
            raise OrderError(201, f"Order rejected - reason:The size {qty} is not a multiple of the size "
                                  f"increment {spec.size_increment} (minimum {spec.min_size})")
        if req.order_type == "LMT":
            if req.lmt_price is None or req.lmt_price <= 0:
                raise OrderError(201, "Order rejected - reason:a limit order needs a positive limit price")
            if not on_tick(req.lmt_price, spec.min_tick):
                raise OrderError(110, "The price does not conform to the minimum price variation for this "
                                      f"contract (minTick {spec.min_tick})")

    def cancel(self, client_id: int, order_id: int, now_ns: int) -> list[Event]:
        """Cancel the client's open order: orderStatus Cancelled then errMsg 202."""
        order = self.orders.get((client_id, order_id))
        if order is None:
            raise OrderError(135, f"Can't find order with id = {order_id}")
        if order.done:
            raise OrderError(161, f"Cancel attempted when order is not in a cancellable state. Order permId "
                                  f"= {order.perm_id}")
        self._end(order, "Cancelled", "Cancelled by Trader", now_ns)
        return [OrderChanged(order), OrderNotice(client_id, order_id, 202, "Order Canceled - reason:")]

    def cancel_all(self, now_ns: int) -> list[Event]:
        """reqGlobalCancel: every open order of every client."""
        events: list[Event] = []
        for (cid, oid), order in list(self.orders.items()):
            if not order.done:
                events += self.cancel(cid, oid, now_ns)
        return events

    def completed_orders(self) -> list[EmuOrder]:
        """Filled or cancelled orders, in the order they ended (reqCompletedOrders)."""
        done = [o for o in self.orders.values() if o.done]
        return sorted(done, key=lambda o: (o.done_ns or 0, o.perm_id))

    def _end(self, order: EmuOrder, status: str, reason: str, now_ns: int) -> None:
        order.status = status
        order.done_ns = now_ns
        order.done_reason = reason

    def open_orders(self, client_id: int | None = None) -> list[EmuOrder]:
        """Open orders of one client (None: all), oldest first."""
        return [o for o in self.orders.values() if not o.done and (client_id is None or o.client_id == client_id)]

    # --- matching --------------------------------------------------------------------------

    def _tradable(self, order: EmuOrder, now_ns: int) -> bool:
        liquid = not order.outside_rth and order.spec.sec_type != "CASH"
        return is_open(order.spec, now_ns, liquid=liquid)

    def _day_end(self, order: EmuOrder, now_ns: int) -> int | None:
        liquid = not order.outside_rth and order.spec.sec_type != "CASH"
        current = session_at(order.spec, now_ns, liquid=liquid)
        if current is not None:
            return current[1]
        upcoming = sessions_between(order.spec, now_ns, now_ns + 8 * 86400 * NS_PER_S, liquid=liquid)
        return upcoming[0][2] if upcoming else None

    def step(self, now_ns: int) -> list[Event]:
        """One market step: expire DAY orders, then match every open order that can trade."""
        events: list[Event] = []
        for order in list(self.orders.values()):
            if order.done:
                continue
            if order.expires_ns is not None and now_ns >= order.expires_ns:
                self._end(order, "Cancelled", "Cancelled: the DAY order expired", now_ns)
                events += [OrderChanged(order), OrderNotice(order.client_id, order.order_id, 202,
                                                            "Order Canceled - reason:the DAY order expired")]
                continue
            if self._tradable(order, now_ns):
                if order.status == "PreSubmitted":
                    order.status = "Submitted"
                    events.append(OrderChanged(order))
                events += self._match_order(order, now_ns, arrival=False)
        return events

    def _match_order(self, order: EmuOrder, now_ns: int, *, arrival: bool) -> list[Event]:
        q = self.quote_of(order.spec, now_ns)
        price, size = (q.ask, q.ask_size) if order.is_buy else (q.bid, q.bid_size)
        if order.order_type == "LMT":
            assert order.lmt_price is not None
            if (order.is_buy and price > order.lmt_price) or (not order.is_buy and price < order.lmt_price):
                return []
        qty = min(order.remaining, Decimal(size))
        if qty <= 0:
            return []
        return self._fill(order, qty, price, now_ns, liquidity=2 if arrival else 1)

    def _usd_value(self, spec: ContractSpec, qty: Decimal, price: Decimal, now_ns: int) -> Decimal:
        if spec.sec_type == "CASH":  # qty is in the base currency
            return qty * self.rate_to_usd(spec.symbol, now_ns)
        return qty * price * spec.multiplier * self.rate_to_usd(spec.currency, now_ns)

    def rate_to_usd(self, currency: str, now_ns: int) -> Decimal:
        """USD per unit of `currency`, from the emulator's own FX pairs (1 when unknown)."""
        if currency == "USD":
            return Decimal(1)
        for spec in self.fx_specs:
            q = self.quote_of(spec, now_ns)
            mid = (q.bid + q.ask) / 2
            if spec.symbol == currency and spec.currency == "USD":
                return mid
            if spec.symbol == "USD" and spec.currency == currency and mid:
                return 1 / mid
        return Decimal(1)

    def _fill(self, order: EmuOrder, qty: Decimal, price: Decimal, now_ns: int, *, liquidity: int) -> list[Event]:
        spec = order.spec
        order.value_filled += self._usd_value(spec, qty, price, now_ns)
        new_filled = order.filled + qty
        target = commission_total(spec, new_filled, order.value_filled)
        commission = max(ZERO, target - order.commission_charged)
        order.commission_charged += commission
        order.avg_fill_price = (order.avg_fill_price * order.filled + price * qty) / new_filled
        order.filled = new_filled
        order.last_fill_price = price
        if order.filled >= order.total_qty:
            self._end(order, "Filled", f"Filled Size: {order.filled}", now_ns)
        else:
            order.status = "Submitted"
        signed = qty if order.is_buy else -qty
        realized, gross = self._apply_position(spec, signed, price, commission)
        self._apply_cash(spec, signed, price, commission, gross)
        self._exec_seq += 1
        execution = Execution(
            exec_id=f"{self._session_id}.{order.perm_id:08x}.{self._exec_seq:02x}.01", client_id=order.client_id,
            order_id=order.order_id, perm_id=order.perm_id, order_ref=order.order_ref, spec=spec, time_ns=now_ns,
            side="BOT" if order.is_buy else "SLD", shares=qty, price=price, cum_qty=order.filled,
            avg_price=order.avg_fill_price, commission=commission, realized_pnl=realized, liquidity=liquidity)
        self.executions.append(execution)
        return [Filled(execution), OrderChanged(order)]

    def correct(self, exec_id: str | None = None, *, shares: Decimal | None = None,
                price: Decimal | None = None) -> Execution:
        """A correction of an execution (the last one, or `exec_id`), as IB sends one: the same
        execution under the next revision of its execId (`....01.01` → `....01.02`), with the
        same values unless `shares` / `price` change them. A fault of the reports only: the
        account (positions, cash) is not re-booked. ValueError when there is nothing to correct."""
        original = next((e for e in reversed(self.executions) if exec_id is None or e.exec_id == exec_id), None)
        if original is None:
            raise ValueError(f"no execution {exec_id!r} to correct" if exec_id else "no execution to correct")
        base = original.exec_id.rpartition(".")[0]
        revision = max(int(e.exec_id.rpartition(".")[2]) for e in self.executions
                       if e.exec_id.rpartition(".")[0] == base)
        corrected = replace(original, exec_id=f"{base}.{revision + 1:02d}",
                            shares=original.shares if shares is None else shares,
                            price=original.price if price is None else price)
        self.executions.append(corrected)
        return corrected

    def _apply_position(self, spec: ContractSpec, signed: Decimal, price: Decimal,
                        commission: Decimal) -> tuple[Decimal | None, Decimal]:
        """Update the position; (realized PnL net of commission, or None when nothing closed;
        the gross realized PnL)."""
        pos = self.positions.setdefault(spec.con_id, Position(spec))
        unit = price * spec.multiplier
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            # opening: a long's cost includes the commission, a short's proceeds are net of it
            new_qty = pos.qty + signed
            sign = 1 if new_qty > 0 else -1
            pos.avg_cost = (pos.avg_cost * abs(pos.qty) + unit * abs(signed) + sign * commission) / abs(new_qty)
            pos.qty = new_qty
            return None, ZERO
        closing = min(abs(signed), abs(pos.qty))
        direction = 1 if pos.qty > 0 else -1
        gross = (unit - pos.avg_cost) * closing * direction
        remainder = abs(signed) - closing
        share = commission * closing / abs(signed)
        realized = gross - share
        pos.realized += realized
        pos.qty += signed
        if remainder > 0:  # flipped: the rest opens the other way at this price
            sign = 1 if pos.qty > 0 else -1
            pos.avg_cost = (unit * remainder + sign * (commission - share)) / remainder
        elif pos.qty == 0:
            pos.avg_cost = ZERO
        return realized, gross

    def _apply_cash(self, spec: ContractSpec, signed: Decimal, price: Decimal, commission: Decimal,
                    gross_realized: Decimal) -> None:
        cash = self.cash
        if spec.sec_type == "CASH":
            cash[spec.symbol] = cash.get(spec.symbol, ZERO) + signed
            cash[spec.currency] = cash.get(spec.currency, ZERO) - signed * price
        elif spec.sec_type == "FUT":
            cash[spec.currency] = cash.get(spec.currency, ZERO) + gross_realized
        else:
            cash[spec.currency] = cash.get(spec.currency, ZERO) - signed * price * spec.multiplier
        cash["USD"] = cash.get("USD", ZERO) - commission

    # --- account ---------------------------------------------------------------------------

    def mark(self, spec: ContractSpec, now_ns: int) -> Decimal:
        """The mark price (mid of the quote)."""
        q = self.quote_of(spec, now_ns)
        return (q.bid + q.ask) / 2

    def portfolio(self, now_ns: int) -> list[tuple[Position, Decimal, Decimal, Decimal]]:
        """(position, market price, market value, unrealized PnL) of every non-FX position."""
        out = []
        for pos in self.positions.values():
            mark = self.mark(pos.spec, now_ns)
            value = pos.qty * mark * pos.spec.multiplier
            unrealized = value - pos.qty * pos.avg_cost
            out.append((pos, mark, value, unrealized))
        return out

    def account_values(self, now_ns: int) -> dict[str, tuple[str, str]]:
        """Account tags (NetLiquidation, TotalCashValue, ...) as (value, currency)."""
        cash_usd = sum((amount * self.rate_to_usd(cur, now_ns) for cur, amount in self.cash.items()), ZERO)
        stock_value = ZERO
        gross = ZERO
        futures_upnl = ZERO
        maint = ZERO
        for pos, _mark, value, unrealized in self.portfolio(now_ns):
            if pos.spec.sec_type == "STK":
                stock_value += value
                gross += abs(value)
                maint += abs(value) * Decimal("0.25")
            elif pos.spec.sec_type == "FUT":
                futures_upnl += unrealized
                gross += abs(value)
                maint += abs(pos.qty) * Decimal(15000)
        net_liq = cash_usd + stock_value + futures_upnl
        init = maint * Decimal("1.1")
        available = net_liq - init

        def usd(v: Decimal) -> tuple[str, str]:
            return (f"{v.quantize(Decimal('0.01'))}", "USD")

        return {
            "AccountType": ("INDIVIDUAL", ""),
            "NetLiquidation": usd(net_liq),
            "TotalCashValue": usd(cash_usd),
            "SettledCash": usd(cash_usd),
            "EquityWithLoanValue": usd(net_liq),
            "GrossPositionValue": usd(gross),
            "InitMarginReq": usd(init),
            "MaintMarginReq": usd(maint),
            "AvailableFunds": usd(available),
            "ExcessLiquidity": usd(net_liq - maint),
            "BuyingPower": usd(available * 4),
            "Cushion": (f"{((net_liq - maint) / net_liq if net_liq else ZERO).quantize(Decimal('0.0001'))}", ""),
            "UnrealizedPnL": usd(sum((u for _, _, _, u in self.portfolio(now_ns)), ZERO)),
            "RealizedPnL": usd(sum((p.realized for p in self.positions.values()), ZERO)),
        }
