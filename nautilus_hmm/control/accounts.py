"""Virtual sub-accounts of the strategy router, pure (no event loop): the documented rule.

Accounts. One per strategy (its id), one per canary lane (`"<id>:canary"`), and the house
account `"_house"`: what no strategy owns (a position found at start, a flatten's
residue, a fill beyond every strategy's gap). Per account and instrument a `Holding`
keeps the signed quantity (base units), the average entry price, the cash flow of its
fills (-qty x price x multiplier, signed), and the fees (in the quote asset).

PnL. Total PnL of a holding at a mark = cash + qty x mark x multiplier - fees; realized =
cash + qty x avg_px x multiplier (what the closed part earned, gross of fees);
unrealized = qty x (mark - avg_px) x multiplier. The average price is rounded to 12
places (like the portfolio); its residue moves PnL between realized and unrealized,
never changes the total. Arithmetic runs at 64 significant digits, so every sum below
is exact.

Internal crossing (`Book.cross`, when targets change, at the mark, no venue order). On
one instrument, each account's gap is target - position (an account without a stated
target has gap 0; the house account's target is always 0). With P the sum of the
positive gaps and N the sum of the |negative| gaps, X = min(P, N) is crossed: each buyer
gets X x gap / P, each seller X x |gap| / N, at the mark, without fees. Nothing changes
on the venue and the instrument's total position is unchanged.

Fill attribution (`Book.attribute`, a real fill of signed quantity s, price p, fee F):
1. the accounts whose gap has the fill's direction take min(|s|, sum of those gaps),
   pro rata to their gaps;
2. any remainder (a flatten, a fill beyond every gap, an order of before a restart) goes
   to the accounts holding a position of the other sign (reducing them, never flipping),
   pro rata to |position| after step 1;
3. what is still left goes to the house account.
Fees follow the quantity: each share pays F x its qty / |s|. A fee paid in the base asset
of a spot instrument (the real position shrinks by it) is booked as a sale of each
account's share of that fee quantity at the fill price, whose proceeds pay the fee.

Rounding. Every pro rata split is rounded toward zero to 1e-12 (`QTY_QUANTUM`), and the
last account of a split takes the residue, so the shares sum exactly to what is split.

Invariants (tests/unit/control/test_accounts_invariants.py, hypothesis): per instrument the
accounts' positions sum to the real position (the sum of all fills), and their total PnL
at any mark sums exactly to the PnL of one account that took all the fills. Shadow
accounts (a canary lane trading a share of 0) live in a separate Book of paper fills and
are outside both sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import NamedTuple, Protocol

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import QTY_QUANTUM

HOUSE = "_house"
CANARY_SUFFIX = ":canary"
AVG_PX_QUANTUM = Decimal("1e-12")
_ZERO = Decimal(0)
_ONE = Decimal(1)
_CTX = Context(prec=64, rounding=ROUND_HALF_EVEN)


class Multipliers(Protocol):
    """Contract multiplier per instrument (a dict, or a live view of the instrument map)."""

    def get(self, iid: InstrumentId, default: Decimal, /) -> Decimal:
        """The instrument's multiplier, `default` when unknown."""
        ...


class Marks(Protocol):
    """Mark price per instrument (None when there is none)."""

    def get(self, iid: InstrumentId, /) -> Decimal | None:
        """The instrument's mark."""
        ...


def canary_account(strategy_id: str) -> str:
    """The account id of a strategy's canary lane."""
    return f"{strategy_id}{CANARY_SUFFIX}"


def strategy_of(account: str) -> str:
    """The strategy an account belongs to (the house account belongs to itself)."""
    return account[: -len(CANARY_SUFFIX)] if account.endswith(CANARY_SUFFIX) else account


def _down(x: Decimal) -> Decimal:
    return x.quantize(QTY_QUANTUM, rounding=ROUND_DOWN)


class Share(NamedTuple):
    """One account's part of a cross or a fill: signed qty (+ buy), price, fee (quote), base fee qty."""

    account: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    base_fee_qty: Decimal = _ZERO


@dataclass(slots=True)
class Holding:
    """One account's position in one instrument."""

    multiplier: Decimal = _ONE
    qty: Decimal = _ZERO
    avg_px: Decimal = _ZERO
    cash: Decimal = _ZERO
    fees: Decimal = _ZERO
    fills: int = 0
    trip_start_net: Decimal = _ZERO  # net PnL (realized - fees) when the current round trip opened

    def apply(self, signed_qty: Decimal, price: Decimal) -> bool:
        """Book a signed quantity at `price` (no fee); True when it closed (or flipped) the position."""
        if signed_qty == 0:
            return False
        old = self.qty
        new = old + signed_qty
        self.cash -= signed_qty * price * self.multiplier
        if old == 0 or (old > 0) == (signed_qty > 0):
            self.avg_px = ((abs(old) * self.avg_px + abs(signed_qty) * price) / abs(new)).quantize(AVG_PX_QUANTUM)
            self.qty = new
            return False
        self.qty = new
        if new == 0:
            self.avg_px = _ZERO
            return True
        if (new > 0) != (old > 0):
            self.avg_px = price  # the flip opens the next round trip at the fill price
            return True
        return False

    @property
    def realized(self) -> Decimal:
        """Realized PnL, gross of fees."""
        return self.cash + self.qty * self.avg_px * self.multiplier

    @property
    def net_realized(self) -> Decimal:
        """Realized PnL net of fees."""
        return self.realized - self.fees

    def unrealized(self, mark: Decimal | None) -> Decimal:
        """PnL of the open quantity at `mark` (0 when flat or without a mark)."""
        if self.qty == 0 or mark is None:
            return _ZERO
        return self.qty * (mark - self.avg_px) * self.multiplier

    def pnl(self, mark: Decimal | None) -> Decimal:
        """Total PnL at `mark` net of fees (without a mark the open quantity is valued at entry)."""
        return self.net_realized + self.unrealized(mark)


class Book:
    """A set of virtual accounts and their holdings per instrument (see the module docstring)."""

    __slots__ = ("_by_iid", "_multipliers", "holdings", "on_trip", "versions")

    def __init__(self, multipliers: Multipliers | None = None) -> None:
        self._multipliers: Multipliers = multipliers if multipliers is not None else {}
        self.holdings: dict[str, dict[InstrumentId, Holding]] = {}
        self._by_iid: dict[InstrumentId, dict[str, Holding]] = {}  # the same holdings by instrument
        self.versions: dict[str, int] = {}  # per account, moves on every booking (readers' caches)
        # closed round trips, (account, net pnl), newest last; the router drains it
        self.on_trip: list[tuple[str, Decimal]] = []

    # ------------------------------------------------------------ reads

    def holding(self, account: str, iid: InstrumentId) -> Holding:
        """The account's holding in `iid`, created flat on first use."""
        by_account = self._by_iid.get(iid)
        h = None if by_account is None else by_account.get(account)
        if h is None:
            h = Holding(multiplier=self._multipliers.get(iid, _ONE))
            self.holdings.setdefault(account, {})[iid] = h
            self._by_iid.setdefault(iid, {})[account] = h
        return h

    def position(self, account: str, iid: InstrumentId) -> Decimal:
        """The account's signed position in `iid` (0 if none)."""
        by_account = self._by_iid.get(iid)
        h = None if by_account is None else by_account.get(account)
        return _ZERO if h is None else h.qty

    def accounts(self, iid: InstrumentId | None = None) -> list[str]:
        """Accounts with a holding (in `iid`, if given), in first-use order."""
        if iid is None:
            return list(self.holdings)
        return list(self._by_iid.get(iid, ()))

    def instruments(self) -> set[InstrumentId]:
        """Every instrument some account holds or held."""
        return set(self._by_iid)

    def total_position(self, iid: InstrumentId) -> Decimal:
        """Sum of every account's position in `iid`."""
        return sum((h.qty for h in self._by_iid.get(iid, {}).values()), _ZERO)

    def pnl(self, account: str, marks: Marks) -> Decimal:
        """The account's total PnL net of fees over all its instruments at `marks`.

        cash + qty x mark x multiplier - fees per holding (without a mark, at its entry price).
        """
        total = _ZERO
        with localcontext(_CTX):
            for i, h in self.holdings.get(account, {}).items():
                q = h.qty
                if q:
                    m = marks.get(i)
                    total += h.cash - h.fees + q * (h.avg_px if m is None else m) * h.multiplier
                else:
                    total += h.cash - h.fees
        return total

    # ------------------------------------------------------------ writes

    def book(self, share: Share, iid: InstrumentId) -> None:
        """Apply one share to its account (crossing, attribution, recovery, paper fills)."""
        with localcontext(_CTX):
            h = self.holding(share.account, iid)
            self.versions[share.account] = self.versions.get(share.account, 0) + 1
            opened = h.qty == 0 and share.qty != 0
            closed = h.apply(share.qty, share.price)
            if share.base_fee_qty:
                # a base-asset fee: a sale of that quantity at the fill price whose proceeds pay the fee
                closed = h.apply(-share.base_fee_qty, share.price) or closed
            h.fees += share.fee
            if share.qty:
                h.fills += 1
            # A round trip runs from a flat (or flipped) position to the next flat or flip;
            # its PnL is the change of net realized PnL over it, fees of both ends included.
            if closed:
                self.on_trip.append((share.account, h.net_realized - h.trip_start_net))
                h.trip_start_net = h.net_realized
            elif opened:
                h.trip_start_net = h.net_realized + share.fee

    def cross(self, iid: InstrumentId, targets: Mapping[str, Decimal], mark: Decimal) -> list[Share]:
        """Cross opposite gaps on `iid` at `mark` and book them; returns the shares booked."""
        with localcontext(_CTX):
            gaps = self._gaps(iid, targets)
            buyers = [(a, g) for a, g in gaps if g > 0]
            sellers = [(a, -g) for a, g in gaps if g < 0]
            p = sum((g for _, g in buyers), _ZERO)
            n = sum((g for _, g in sellers), _ZERO)
            x = min(p, n)
            if x <= 0:
                return []
            shares = [Share(a, q, mark, _ZERO) for a, q in _split(x, buyers)]
            shares += [Share(a, -q, mark, _ZERO) for a, q in _split(x, sellers)]
            for s in shares:
                self.book(s, iid)
            return shares

    def attribute(
        self,
        iid: InstrumentId,
        signed_qty: Decimal,
        price: Decimal,
        fee: Decimal,
        targets: Mapping[str, Decimal],
        base_fee_qty: Decimal = _ZERO,
    ) -> list[Share]:
        """Split a real fill over the accounts by the documented rule and book it; returns the shares."""
        if signed_qty == 0:
            return []
        with localcontext(_CTX):
            qty = abs(signed_qty)
            sign = _ONE if signed_qty > 0 else -_ONE
            parts: dict[str, Decimal] = {}
            # 1. gaps in the fill's direction
            movers = [(a, g * sign) for a, g in self._gaps(iid, targets) if g * sign > 0]
            take = min(qty, sum((g for _, g in movers), _ZERO))
            if take > 0:
                for a, q in _split(take, movers):
                    parts[a] = parts.get(a, _ZERO) + q
            rest = qty - take
            # 2. positions of the other sign, reduced (never flipped), pro rata to |position|
            if rest > 0:
                reducers = []
                for a in self.accounts(iid):
                    pos = self.position(a, iid) + sign * parts.get(a, _ZERO)
                    if pos * sign < 0:
                        reducers.append((a, -pos * sign))
                cap = sum((c for _, c in reducers), _ZERO)
                take2 = min(rest, cap)
                if take2 > 0:
                    for a, q in _split(take2, reducers):
                        parts[a] = parts.get(a, _ZERO) + q
                rest -= take2
            # 3. the house account
            if rest > 0:
                parts[HOUSE] = parts.get(HOUSE, _ZERO) + rest
            weighted = [(a, q) for a, q in parts.items() if q > 0]
            fees = _split_amount(fee, weighted, qty)
            base_fees = _split_amount(base_fee_qty, weighted, qty)
            shares = [Share(a, sign * q, price, f, bf) for (a, q), f, bf in zip(weighted, fees, base_fees, strict=True)]
            for s in shares:
                self.book(s, iid)
            return shares

    def _gaps(self, iid: InstrumentId, targets: Mapping[str, Decimal]) -> list[tuple[str, Decimal]]:
        """(account, target - position) for the accounts with a target or a house position, in a stable order."""
        out: list[tuple[str, Decimal]] = []
        held = self._by_iid.get(iid, {})
        for a, t in targets.items():
            if a == HOUSE:
                continue
            h = held.get(a)
            g = t if h is None else t - h.qty
            if g != 0:
                out.append((a, g))
        h = held.get(HOUSE)
        if h is not None and h.qty != 0:
            out.append((HOUSE, -h.qty))
        return out


def _split(total: Decimal, weights: Iterable[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    """`total` split pro rata to positive weights, rounded down to QTY_QUANTUM; the last takes the residue."""
    items = [(a, w) for a, w in weights if w > 0]
    if not items:
        return []
    w_sum = sum((w for _, w in items), _ZERO)
    out: list[tuple[str, Decimal]] = []
    given = _ZERO
    for a, w in items[:-1]:
        q = _down(total * w / w_sum)
        given += q
        out.append((a, q))
    out.append((items[-1][0], total - given))
    return [(a, q) for a, q in out if q != 0] if len(out) > 1 else out


def _split_amount(amount: Decimal, parts: list[tuple[str, Decimal]], total_qty: Decimal) -> list[Decimal]:
    """`amount` split over `parts` pro rata to their qty; the last takes the residue (exact sum)."""
    if not parts:
        return []
    if amount == 0:
        return [_ZERO] * len(parts)
    out: list[Decimal] = []
    given = _ZERO
    for _, q in parts[:-1]:
        f = (amount * q / total_qty).quantize(QTY_QUANTUM, rounding=ROUND_DOWN) if amount > 0 else -(
            (-amount * q / total_qty).quantize(QTY_QUANTUM, rounding=ROUND_DOWN))
        given += f
        out.append(f)
    out.append(amount - given)
    return out
