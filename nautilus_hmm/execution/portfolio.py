"""Accounting, pure: positions, cash, fees, equity, drawdown and the day's realized PnL.

Everything is Decimal and in the instrument's quote asset. Conventions:

* `Position.realized_pnl` is gross of fees; `Position.fees` are the fees paid in quote
  (base-asset fees valued at the fill price). Net realized = realized_pnl - fees.
* Cash is kept per venue and asset (`venue_cash`: the venue's balances at the start,
  then moved by that venue's fills; a balance update from a venue sets that venue's share
  only, see the engine). `cash` is each asset's total over the venues, what equity values;
  one asset held at two venues (USDT on spot and USD-M) is two shares of one total.
  Balances given to the constructor are held at no venue (`UNATTRIBUTED`).
* SPOT fills move cash: BUY pays qty x price x multiplier of the quote asset and receives
  qty of the base asset, SELL the reverse. A fee in the quote asset reduces quote cash. A
  fee in the base asset reduces the base received (BUY) or delivers extra base (SELL):
  the position and the base balance shrink by the fee, and the fee is recorded at
  fee x price in quote.
* PERPETUAL fills move cash only by the realized PnL and the fee (the position is on
  margin); a base-asset fee is charged to quote cash at fee x price.
* Kinds beyond crypto (IBKR, issue 14): FX is booked like SPOT (EUR.USD moves the EUR and
  USD balances, as IB's cash balances do); FUTURE like PERPETUAL, x `multiplier`; STOCK
  pays its whole notional from quote cash (IB's cash balance drops on a buy) while the
  shares stay a position (IB reports them as positions, not balances): equity counts
  qty x mark x multiplier of a stock, so a buy does not look like a loss. "Quote" is
  the instrument's `pnl_currency` (`currency`, else the quote asset).
* A fee in any other asset (e.g. BNB) is added to `other_fees[asset]` only: it is not
  converted, not in cash, equity or the day's PnL (the venue balance sync corrects cash).
* Equity in the base currency = every balance valued at its mark (the asset's cash x the
  mark of its price source: an instrument of that base asset quoted in the base
  currency, `add_price_source`) + the unrealized PnL of perpetuals quoted in it. Spot
  holdings are balances (a spot position is the traded part of one, with its entry
  price). Without a mark a balance is valued at its spot position's average entry price
  when it has one, else it is *unvalued*: left out of equity and listed by `valuation()`,
  never counted as zero silently.
* The day's realized PnL (net of quote fees) resets when a fill or mark timestamp enters
  a new UTC day; a late fill stamped with an earlier day is counted in the current day
  (a loss never escapes the daily limit).
* Exposure = |qty| x mark x multiplier (quote assets are taken as USD-stable).
* The average entry price is rounded to 12 decimal places (`AVG_PX_QUANTUM`); the
  rounding residue (< 1e-12 per unit) shows up in realized PnL, never in cash.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nautilus_hmm.domain.enums import InstrumentKind, Side
from nautilus_hmm.domain.instruments import Instrument, InstrumentId

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)
UNATTRIBUTED = ""
"""The venue key of balances held at no particular venue (the constructor's `cash`)."""
NS_PER_DAY = 86_400 * 1_000_000_000
AVG_PX_QUANTUM = Decimal("1e-12")
"""Average entry prices are kept to 12 decimal places, so realized PnL and cash stay exact
sums of short numbers (an unrounded 4/3 would carry 28 digits into every later sum)."""


def _dec(value: Decimal | float | int | str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


class Position:
    """Net position in one instrument (signed base qty) with its average entry price."""

    __slots__ = (
        "avg_px",
        "base_asset",
        "fees",
        "instrument_id",
        "kind",
        "multiplier",
        "qty",
        "quote_asset",
        "realized_pnl",
    )

    def __init__(
        self,
        instrument_id: InstrumentId,
        kind: InstrumentKind,
        base_asset: str,
        quote_asset: str,
        multiplier: Decimal = Decimal(1),
    ) -> None:
        self.instrument_id = instrument_id
        self.kind = kind
        self.base_asset = base_asset
        self.quote_asset = quote_asset
        self.multiplier = multiplier
        self.qty = _ZERO
        self.avg_px = _ZERO
        self.realized_pnl = _ZERO
        self.fees = _ZERO

    @classmethod
    def for_instrument(cls, instrument: Instrument) -> Position:
        """An empty position in `instrument`."""
        return cls(
            instrument.id, instrument.kind, instrument.base_asset, instrument.pnl_currency, instrument.multiplier
        )

    @property
    def is_flat(self) -> bool:
        """True with no open quantity."""
        return self.qty == 0

    @property
    def net_realized_pnl(self) -> Decimal:
        """Realized PnL minus fees paid."""
        return self.realized_pnl - self.fees

    def apply(self, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill of `qty` > 0 at `price`; returns the PnL it realized (gross of fees).

        Opening or adding re-averages the entry price; reducing realizes the closed part
        and keeps the entry price; a fill larger than the position closes it (realizing)
        and opens the rest on the other side at the fill price.
        """
        if qty <= 0:
            raise ValueError(f"{self.instrument_id}: fill qty must be > 0, got {qty}")
        if price <= 0:
            raise ValueError(f"{self.instrument_id}: fill price must be > 0, got {price}")
        old = self.qty
        signed = qty if side is Side.BUY else -qty
        if old == 0 or (old > 0) == (signed > 0):
            new = old + signed
            self.avg_px = ((abs(old) * self.avg_px + qty * price) / abs(new)).quantize(AVG_PX_QUANTUM)
            self.qty = new
            return _ZERO
        closed = qty if qty < abs(old) else abs(old)
        diff = price - self.avg_px if old > 0 else self.avg_px - price
        realized = closed * diff * self.multiplier
        new = old + signed
        self.qty = new
        if new == 0:
            self.avg_px = _ZERO
        elif (new > 0) != (old > 0):
            self.avg_px = price
        self.realized_pnl += realized
        return realized

    def unrealized(self, mark: Decimal) -> Decimal:
        """PnL of the open quantity at `mark`, in quote."""
        if self.qty == 0:
            return _ZERO
        return self.qty * (mark - self.avg_px) * self.multiplier

    def snapshot(self) -> dict[str, Any]:
        """Plain dict, Decimals as strings."""
        return {
            "instrument_id": str(self.instrument_id),
            "kind": self.kind.value,
            "base_asset": self.base_asset,
            "quote_asset": self.quote_asset,
            "multiplier": str(self.multiplier),
            "qty": str(self.qty),
            "avg_px": str(self.avg_px),
            "realized_pnl": str(self.realized_pnl),
            "fees": str(self.fees),
        }

    @classmethod
    def restore(cls, snap: dict[str, Any]) -> Position:
        """Rebuild from `snapshot()`."""
        pos = cls(
            InstrumentId.parse(snap["instrument_id"]),
            InstrumentKind(snap["kind"]),
            snap["base_asset"],
            snap["quote_asset"],
            Decimal(snap["multiplier"]),
        )
        pos.qty = Decimal(snap["qty"])
        pos.avg_px = Decimal(snap["avg_px"])
        pos.realized_pnl = Decimal(snap["realized_pnl"])
        pos.fees = Decimal(snap["fees"])
        return pos

    def __repr__(self) -> str:
        return f"Position({self.instrument_id} qty={self.qty} avg_px={self.avg_px} realized={self.realized_pnl})"


class Portfolio:
    """Positions by instrument, cash by venue and asset, marks, equity peak and the day's PnL."""

    __slots__ = (
        "_day",
        "_spot_sources",
        "base_currency",
        "cash",
        "day_realized_pnl",
        "marks",
        "other_fees",
        "peak_equity",
        "positions",
        "price_sources",
        "venue_cash",
    )

    def __init__(self, base_currency: str = "USDT", cash: dict[str, Decimal] | None = None) -> None:
        self.base_currency = base_currency
        # venue -> asset -> that venue's balance; `cash` is the sum over venues, per asset.
        self.venue_cash: dict[str, dict[str, Decimal]] = {}
        self.cash: dict[str, Decimal] = {}
        for asset, amount in (cash or {}).items():
            self._put(UNATTRIBUTED, asset, _dec(amount))
        self.positions: dict[InstrumentId, Position] = {}
        self.marks: dict[InstrumentId, Decimal] = {}
        # asset -> the instrument (base = asset, quote = base currency) whose mark values it
        self.price_sources: dict[str, InstrumentId] = {}
        self._spot_sources: set[str] = set()
        self.other_fees: dict[str, Decimal] = {}
        self.day_realized_pnl = _ZERO
        self._day: int | None = None
        self.peak_equity = self.equity()

    # ------------------------------------------------------------ updates

    def set_base_currency(self, asset: str) -> None:
        """Measure equity in `asset` (before any position exists: the account currency is
        chosen once the instruments are known); price sources must be added again."""
        if self.positions:
            raise ValueError(f"base currency {self.base_currency} -> {asset}: the portfolio already has positions")
        self.base_currency = asset
        self.price_sources = {}
        self._spot_sources = set()
        self.peak_equity = self.equity()

    def add_price_source(self, instrument: Instrument) -> None:
        """Value balances of the instrument's base asset at its mark, when it is quoted in
        the base currency (a spot instrument wins over a perpetual; else the first one)."""
        self._add_source(instrument.id, instrument.base_asset, instrument.pnl_currency, instrument.kind)

    def _add_source(self, iid: InstrumentId, base: str, quote: str, kind: InstrumentKind) -> None:
        if quote != self.base_currency:
            return
        spot = kind is InstrumentKind.SPOT or kind is InstrumentKind.FX
        if base not in self.price_sources or (spot and base not in self._spot_sources):
            self.price_sources[base] = iid
            if spot:
                self._spot_sources.add(base)

    def position(self, instrument: Instrument) -> Position:
        """The position in `instrument`, created flat on first use."""
        pos = self.positions.get(instrument.id)
        if pos is None:
            pos = self.positions[instrument.id] = Position.for_instrument(instrument)
            self.add_price_source(instrument)
        return pos

    def apply_fill(
        self,
        instrument: Instrument,
        side: Side,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        ts_ns: int,
    ) -> Position:
        """Book one fill (see the module docstring for cash and fee rules); returns the position."""
        self._roll_day(ts_ns)
        pos = self.position(instrument)
        realized = pos.apply(side, qty, price)
        quote = instrument.pnl_currency
        kind = instrument.kind
        spot = kind is InstrumentKind.SPOT or kind is InstrumentKind.FX
        base = instrument.base_asset
        # What the fill moves, booked once into the venue's share and once into the total.
        if spot:
            value = qty * price * instrument.multiplier
            if side is Side.SELL:
                d_quote, d_base = value, -qty
            else:
                d_quote, d_base = -value, qty
        elif kind is InstrumentKind.STOCK:
            value = qty * price * instrument.multiplier
            d_quote, d_base = (value if side is Side.SELL else -value), _ZERO
        else:
            d_quote, d_base = realized, _ZERO
        fee_quote = _ZERO
        if fee != 0:
            if fee_asset == quote:
                fee_quote = fee
                d_quote -= fee
            elif fee_asset == base:
                fee_quote = fee * price * instrument.multiplier
                if spot:
                    pos.qty -= fee
                    d_base -= fee
                    if pos.qty == 0:
                        pos.avg_px = _ZERO
                else:
                    d_quote -= fee_quote
            else:
                self.other_fees[fee_asset] = self.other_fees.get(fee_asset, _ZERO) + fee
        cash = self.cash
        venue = instrument.id.venue
        shares = self.venue_cash.get(venue)
        if shares is None:
            shares = self.venue_cash[venue] = {}
        cash[quote] = cash.get(quote, _ZERO) + d_quote
        shares[quote] = shares.get(quote, _ZERO) + d_quote
        if spot:
            cash[base] = cash.get(base, _ZERO) + d_base
            shares[base] = shares.get(base, _ZERO) + d_base
        pos.fees += fee_quote
        self.day_realized_pnl += realized - fee_quote
        self._update_peak()
        return pos

    def mark(self, instrument_id: InstrumentId, price: Decimal | float, ts_ns: int) -> None:
        """Record the mark price of an instrument (rolls the day, updates the equity peak)."""
        px = _dec(price)
        if not px > 0:
            raise ValueError(f"{instrument_id}: mark price must be > 0, got {price}")
        self.marks[instrument_id] = px
        self._roll_day(ts_ns)
        self._update_peak()

    def set_cash(self, asset: str, amount: Decimal, venue: str) -> None:
        """Set one venue's balance of one asset (a venue balance sync, the baseline); the
        other venues' shares stay; the peak only ever rises here."""
        self._put(venue, asset, amount)
        self._update_peak()

    def _put(self, venue: str, asset: str, amount: Decimal) -> None:
        shares = self.venue_cash.get(venue)
        if shares is None:
            shares = self.venue_cash[venue] = {}
        old = shares.get(asset, _ZERO)
        shares[asset] = amount
        self.cash[asset] = self.cash.get(asset, _ZERO) - old + amount

    def cash_at(self, venue: str, asset: str) -> Decimal:
        """One venue's balance of one asset as booked here (0 when never held there)."""
        shares = self.venue_cash.get(venue)
        return _ZERO if shares is None else shares.get(asset, _ZERO)

    def reset_peak(self) -> None:
        """Restart drawdown from the current equity (operator action after a deposit or withdrawal)."""
        self.peak_equity = self.equity()

    def set_position(self, instrument: Instrument, qty: Decimal, avg_px: Decimal) -> Position:
        """Overwrite the quantity and entry price of a position (reconciliation, recovery)."""
        pos = self.position(instrument)
        pos.qty = qty
        pos.avg_px = avg_px if qty != 0 else _ZERO
        return pos

    def roll_day(self, ts_ns: int) -> None:
        """Start a new UTC day's PnL if `ts_ns` is in a later day than the current one."""
        self._roll_day(ts_ns)

    def _roll_day(self, ts_ns: int) -> None:
        day = ts_ns // NS_PER_DAY
        if self._day is None or day > self._day:
            if self._day is not None:
                self.day_realized_pnl = _ZERO
            self._day = day

    def _update_peak(self) -> None:
        eq = self.equity()
        if eq > self.peak_equity:
            self.peak_equity = eq

    # ------------------------------------------------------------ views

    def mark_of(self, pos: Position) -> Decimal:
        """The mark of a position, falling back to its entry price."""
        return self.marks.get(pos.instrument_id, pos.avg_px)

    def asset_mark(self, asset: str) -> Decimal | None:
        """The value of one unit of `asset` in the base currency: its price source's mark,
        else the average entry price of that spot position; None when unknown."""
        if asset == self.base_currency:
            return _ONE
        iid = self.price_sources.get(asset)
        if iid is None:
            return None
        mark = self.marks.get(iid)
        if mark is not None:
            return mark
        pos = self.positions.get(iid)
        if pos is not None and pos.kind.holds_base and pos.qty != 0 and pos.avg_px > 0:
            return pos.avg_px
        return None

    def valuation(self) -> dict[str, tuple[Decimal, Decimal | None, Decimal | None]]:
        """Every balance: asset -> (amount, mark in the base currency, value); mark and value
        are None for an unvalued asset (no price source or no mark)."""
        out: dict[str, tuple[Decimal, Decimal | None, Decimal | None]] = {}
        for asset, amount in self.cash.items():
            mark = self.asset_mark(asset)
            out[asset] = (amount, mark, None if mark is None else amount * mark)
        return out

    def equity(self) -> Decimal:
        """Every valued balance at its mark + perpetual/future unrealized PnL + stock positions
        at their mark, in the base currency (unvalued balances are left out: see `valuation()`)."""
        q = self.base_currency
        total = _ZERO
        for asset, amount in self.cash.items():
            if amount == 0:
                continue
            mark = self.asset_mark(asset)
            if mark is not None:
                total += amount * mark
        marks = self.marks
        for pos in self.positions.values():
            kind = pos.kind
            if kind is InstrumentKind.SPOT or kind is InstrumentKind.FX or pos.quote_asset != q or pos.qty == 0:
                continue
            mark = marks.get(pos.instrument_id, pos.avg_px)
            if kind is InstrumentKind.STOCK:
                total += pos.qty * mark * pos.multiplier  # its notional left quote cash
            else:
                total += pos.qty * (mark - pos.avg_px) * pos.multiplier
        return total

    def drawdown_pct(self) -> Decimal:
        """Percent below the equity peak (base currency); 0 at or above it."""
        peak = self.peak_equity
        if peak <= 0:
            return _ZERO
        eq = self.equity()
        return _ZERO if eq >= peak else (peak - eq) / peak * _HUNDRED

    def unrealized(self, instrument_id: InstrumentId) -> Decimal:
        """Unrealized PnL of one position at its mark (0 without a position)."""
        pos = self.positions.get(instrument_id)
        return _ZERO if pos is None else pos.unrealized(self.mark_of(pos))

    def exposure(self, instrument_id: InstrumentId) -> Decimal:
        """|qty| x mark x multiplier of one position (0 without a position)."""
        pos = self.positions.get(instrument_id)
        if pos is None or pos.qty == 0:
            return _ZERO
        return abs(pos.qty) * self.mark_of(pos) * pos.multiplier

    def exposures(self) -> dict[InstrumentId, Decimal]:
        """Exposure of every open position."""
        return {iid: self.exposure(iid) for iid, pos in self.positions.items() if pos.qty != 0}

    def gross_exposure(self) -> Decimal:
        """Sum of the exposures of all positions."""
        return sum((self.exposure(iid) for iid in self.positions), _ZERO)

    def position_qty(self, instrument_id: InstrumentId) -> Decimal:
        """Signed quantity held (0 without a position)."""
        pos = self.positions.get(instrument_id)
        return _ZERO if pos is None else pos.qty

    @property
    def current_day(self) -> int | None:
        """UTC day number (days since the epoch) of `day_realized_pnl`, None before any event."""
        return self._day

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able dict (Decimals as strings) for /status and the journal."""
        return {
            "base_currency": self.base_currency,
            "cash": {k: str(v) for k, v in self.cash.items()},
            "venue_cash": {v: {k: str(a) for k, a in shares.items()} for v, shares in self.venue_cash.items()},
            "positions": [p.snapshot() for p in self.positions.values()],
            "marks": {str(k): str(v) for k, v in self.marks.items()},
            "other_fees": {k: str(v) for k, v in self.other_fees.items()},
            "day": self._day,
            "day_realized_pnl": str(self.day_realized_pnl),
            "peak_equity": str(self.peak_equity),
            "equity": str(self.equity()),
            "drawdown_pct": str(self.drawdown_pct()),
            "gross_exposure": str(self.gross_exposure()),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Replace this portfolio's state with a `snapshot()`; ValueError names a missing field."""
        try:
            self.base_currency = snap["base_currency"]
            self.venue_cash = {}
            self.cash = {}
            # A snapshot from before per-venue cash holds totals only: they stay unattributed.
            by_venue = snap.get("venue_cash", {UNATTRIBUTED: snap["cash"]})
            for venue, shares in by_venue.items():
                for asset, amount in shares.items():
                    self._put(venue, asset, Decimal(amount))
            self.positions = {}
            for p in snap["positions"]:
                pos = Position.restore(p)
                self.positions[pos.instrument_id] = pos
                self._add_source(pos.instrument_id, pos.base_asset, pos.quote_asset, pos.kind)
            self.marks = {InstrumentId.parse(k): Decimal(v) for k, v in snap["marks"].items()}
            self.other_fees = {k: Decimal(v) for k, v in snap["other_fees"].items()}
            self._day = snap["day"]
            self.day_realized_pnl = Decimal(snap["day_realized_pnl"])
            self.peak_equity = Decimal(snap["peak_equity"])
        except KeyError as exc:
            raise ValueError(f"portfolio snapshot: missing field {exc.args[0]!r}") from None
