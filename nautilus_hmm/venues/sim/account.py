"""The paper account behind the simulated venue: balances, locks, orders, fills, ids.

Spot rules: a BUY locks `qty x price x (1 + fee rate)` of the quote asset when it is
accepted (price = the limit, or the last price for a MARKET order); a SELL locks `qty`
of the base asset. A fill pays from the order's lock first; a MARKET buy that fills
above its reference price takes the difference from the free balance, and is capped
(the rest expires) when the account cannot pay. When an order ends, what it still holds
is released. Fees are paid in the quote asset. Balances never go negative.

The account is the venue's memory across restarts: the accepted orders (open or not) by
client order id, the fills, and the trade / order id counters. A saved account keeps its
open orders and the newest `HISTORY_KEPT` closed orders and fills (older history is
forgotten at each save, as a venue's retention: a query for such an order answers None;
the daemon's journal has them all), so neither the file nor the memory nor the time of a
save grows with every order ever placed; an account never saved (backtest) keeps all.
Like Binance's `newClientOrderId`, a client order id is refused as a duplicate while the
account remembers it. `save()` writes it
atomically (temp file + fsync + os.replace + directory fsync) as JSON; `load()` checks
it (locks must equal what the open orders hold) and raises `DataError` rather than start
from a corrupted book: a paper account silently reset would hide a bug.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm.core.errors import DataError, OrderRejected
from nautilus_hmm.core.files import write_atomic
from nautilus_hmm.domain.enums import Liquidity, Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import Balance, VenueFill
from nautilus_hmm.venues.sim.matching import CODE_NEW_ORDER_REJECTED, Counter, SimOrder

ACCOUNT_FILE = "sim_account.json"
HISTORY_KEPT = 2_000  # closed orders and fills a saved account keeps (the newest)
SCHEMA_VERSION = 1
_ZERO = Decimal(0)


class SimAccount:
    """Balances, order history and fills of the paper account; the engines' `Ledger`."""

    def __init__(
        self,
        balances: Mapping[str, Decimal],
        instruments: Mapping[InstrumentId, Instrument],
        venue: str = "sim",
    ) -> None:
        self.venue = venue
        self.instruments = dict(instruments)
        self.free: dict[str, Decimal] = {a: Decimal(v) for a, v in balances.items()}
        self.locked: dict[str, Decimal] = dict.fromkeys(self.free, _ZERO)
        self.orders: dict[str, SimOrder] = {}  # every accepted order, by client order id
        self.fills: list[VenueFill] = []
        self.trade_ids = Counter()
        self.order_ids = Counter()
        self.changed_assets: set[str] = set()

    # ------------------------------------------------------------ ledger (called by engines)

    def position(self, instrument: Instrument) -> Decimal:
        """Spot: the base asset held (free + locked)."""
        base = instrument.base_asset
        return self.free.get(base, _ZERO) + self.locked.get(base, _ZERO)

    def reserve(self, order: SimOrder, ref_price: Decimal, fee_rate: Decimal) -> None:
        """Lock the funds `order` may spend, or raise OrderRejected (-2010) if they are not free."""
        inst = self.instruments[order.instrument_id]
        if order.side is Side.BUY:
            asset = inst.quote_asset
            need = order.quantity * ref_price * (1 + fee_rate)
        else:
            asset = inst.base_asset
            need = order.quantity
        free = self.free.get(asset, _ZERO)
        if free < need:
            raise OrderRejected(
                self.venue,
                f"Account has insufficient balance for requested action.: {order.side.value} "
                f"{order.quantity} {inst.symbol} needs {need} {asset} (incl. fee), free {free}",
                CODE_NEW_ORDER_REJECTED,
            )
        self._move(asset, -need, need)
        order.lock_asset = asset
        order.lock_remaining = need

    def affordable_qty(self, order: SimOrder, qty: Decimal, price: Decimal, fee_rate: Decimal) -> Decimal:
        """The part of `qty` the order's lock plus the free balance can pay for."""
        if order.side is Side.SELL:
            return min(qty, order.lock_remaining)
        unit_cost = price * (1 + fee_rate)
        budget = order.lock_remaining + self.free.get(order.lock_asset, _ZERO)
        if qty * unit_cost <= budget:
            return qty
        return min(qty, budget / unit_cost)  # the engine floors it to the step

    def on_fill(self, order: SimOrder, fill: VenueFill) -> None:
        """Book one execution: base and quote move, fee in quote."""
        inst = self.instruments[order.instrument_id]
        base, quote = inst.base_asset, inst.quote_asset
        notional = fill.qty * fill.price
        if fill.side is Side.BUY:
            cost = notional + fill.fee
            from_lock = min(cost, order.lock_remaining)
            order.lock_remaining -= from_lock
            self._move(quote, -(cost - from_lock), -from_lock)
            self._move(base, fill.qty, _ZERO)
        else:
            order.lock_remaining -= fill.qty
            self._move(base, _ZERO, -fill.qty)
            self._move(quote, notional - fill.fee, _ZERO)
        self.fills.append(fill)

    def on_done(self, order: SimOrder) -> None:
        """Release what a finished order still holds."""
        if order.lock_remaining and order.lock_asset:
            amount = order.lock_remaining
            order.lock_remaining = _ZERO
            self._move(order.lock_asset, amount, -amount)

    def _move(self, asset: str, d_free: Decimal, d_locked: Decimal) -> None:
        free = self.free.get(asset, _ZERO) + d_free
        locked = self.locked.get(asset, _ZERO) + d_locked
        if free < 0 or locked < 0:
            # A bug in the engine or this class, never a user error: stop loudly.
            raise AssertionError(f"sim account: {asset} would go negative (free {free}, locked {locked})")
        self.free[asset] = free if free else _ZERO  # no "0E-8" in balances
        self.locked[asset] = locked if locked else _ZERO
        self.changed_assets.add(asset)

    # ------------------------------------------------------------ venue-side views

    def add_order(self, order: SimOrder) -> None:
        """Record an accepted order (history is kept for queries across restarts)."""
        self.orders[order.client_order_id] = order

    def balances(self) -> dict[str, Balance]:
        """Every asset the account has seen."""
        return {a: Balance(a, self.free[a], self.locked.get(a, _ZERO)) for a in sorted(self.free)}

    def balance(self, asset: str) -> Balance:
        """One asset (zero when never held)."""
        return Balance(asset, self.free.get(asset, _ZERO), self.locked.get(asset, _ZERO))

    def open_orders(self) -> list[SimOrder]:
        """Orders not yet terminal, in acceptance order."""
        return [o for o in self.orders.values() if o.status.is_open]

    def take_changed_assets(self) -> list[str]:
        """Assets whose balance changed since the last call (sorted)."""
        out = sorted(self.changed_assets)
        self.changed_assets.clear()
        return out

    # ------------------------------------------------------------ persistence

    def to_json(self) -> bytes:
        """The whole account as JSON bytes."""
        doc = {
            "version": SCHEMA_VERSION,
            "venue": self.venue,
            "balances": {a: {"free": str(self.free[a]), "locked": str(self.locked.get(a, _ZERO))}
                         for a in sorted(self.free)},
            "next_trade_id": self.trade_ids.value,
            "next_order_id": self.order_ids.value,
            "orders": [o.to_dict() for o in self.orders.values()],
            "fills": [_fill_to_dict(f) for f in self.fills],
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)

    def save(self, path: Path) -> None:
        """Forget history beyond `HISTORY_KEPT` (`trim`), then write atomically: a crash
        leaves the old or the new file, never a torn one."""
        self.trim(HISTORY_KEPT)
        write_atomic(path, self.to_json())

    def trim(self, kept: int) -> int:
        """Forget the oldest closed orders past the newest `kept` (open orders always stay)
        and the fills past the newest `kept`; returns how many orders were forgotten."""
        orders = self.orders
        excess = len(orders) - kept
        if excess > 0:  # open orders do not count against `kept`
            excess -= sum(1 for o in orders.values() if o.status.is_open)
        old: list[str] = []
        if excess > 0:
            for cid, o in orders.items():
                if not o.status.is_open:
                    old.append(cid)
                    if len(old) == excess:
                        break
            for cid in old:
                del orders[cid]
        if len(self.fills) > kept:
            del self.fills[:len(self.fills) - kept]
        return len(old)

    @classmethod
    def load(cls, path: Path, instruments: Mapping[InstrumentId, Instrument], venue: str = "sim") -> SimAccount:
        """Read and check an account file; DataError naming the file on any problem."""
        p = str(path)
        try:
            doc = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise DataError(p, None, f"cannot read paper account: {exc.strerror or exc}") from None
        except orjson.JSONDecodeError as exc:
            raise DataError(p, getattr(exc, "lineno", None), f"paper account is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != SCHEMA_VERSION:
            version = doc.get("version") if isinstance(doc, dict) else None
            raise DataError(p, None, f"paper account version {version!r} is not {SCHEMA_VERSION}")
        try:
            acct = cls({}, instruments, venue)
            for asset, b in doc["balances"].items():
                acct.free[asset] = Decimal(b["free"])
                acct.locked[asset] = Decimal(b["locked"])
            acct.trade_ids.value = int(doc["next_trade_id"])
            acct.order_ids.value = int(doc["next_order_id"])
            for d in doc["orders"]:
                o = SimOrder.from_dict(d)
                acct.orders[o.client_order_id] = o
            acct.fills = [_fill_from_dict(d) for d in doc["fills"]]
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise DataError(p, None, f"paper account is malformed: {type(exc).__name__}: {exc}") from None
        acct._check(p)
        acct.changed_assets.clear()
        return acct

    def _check(self, path: str) -> None:
        held: dict[str, Decimal] = {}
        for o in self.orders.values():
            if o.status.is_open and o.lock_asset:
                held[o.lock_asset] = held.get(o.lock_asset, _ZERO) + o.lock_remaining
            elif not o.status.is_open and o.lock_remaining:
                raise DataError(path, None, f"closed order {o.client_order_id} still holds {o.lock_remaining} {o.lock_asset}")
        for asset in set(self.locked) | set(held):
            if self.locked.get(asset, _ZERO) != held.get(asset, _ZERO):
                raise DataError(
                    path, None,
                    f"{asset} locked {self.locked.get(asset, _ZERO)} but open orders hold {held.get(asset, _ZERO)}",
                )
        for asset, free in self.free.items():
            if free < 0 or self.locked.get(asset, _ZERO) < 0:
                raise DataError(path, None, f"{asset} balance is negative")
        max_tid = max((int(f.trade_id) for f in self.fills), default=0)
        if max_tid > self.trade_ids.value:
            raise DataError(path, None, f"trade id counter {self.trade_ids.value} is behind fill {max_tid}")


def _fill_to_dict(f: VenueFill) -> dict[str, Any]:
    return {
        "instrument_id": str(f.instrument_id), "client_order_id": f.client_order_id,
        "venue_order_id": f.venue_order_id, "trade_id": f.trade_id, "side": f.side.value,
        "qty": str(f.qty), "price": str(f.price), "fee": str(f.fee), "fee_asset": f.fee_asset,
        "liquidity": f.liquidity.value, "ts_ns": f.ts_ns,
    }


def _fill_from_dict(d: dict[str, Any]) -> VenueFill:
    return VenueFill(
        instrument_id=InstrumentId.parse(d["instrument_id"]), client_order_id=d["client_order_id"],
        venue_order_id=d["venue_order_id"], trade_id=str(d["trade_id"]), side=Side(d["side"]),
        qty=Decimal(d["qty"]), price=Decimal(d["price"]), fee=Decimal(d["fee"]),
        fee_asset=d["fee_asset"], liquidity=Liquidity(d["liquidity"]), ts_ns=int(d["ts_ns"]),
    )
