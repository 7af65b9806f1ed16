"""Enumerations of the trading domain. Values are the lowercase wire-neutral names."""

from __future__ import annotations

from enum import Enum


class Side(str, Enum):
    """Order or trade side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(str, Enum):
    """Order types every venue adapter supports."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"  # post-only: rejected if it would cross


class TimeInForce(str, Enum):
    """Time in force."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(str, Enum):
    """Lifecycle states of an order (see execution.orders for legal transitions)."""

    NEW = "NEW"  # created and journaled, not yet sent
    SUBMITTED = "SUBMITTED"  # request sent, outcome not yet known
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        """True when no further event can change the order."""
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """True while the order may still rest or fill at the venue."""
        return not self.is_terminal


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class Liquidity(str, Enum):
    """Whether a fill added (maker) or took (taker) liquidity."""

    MAKER = "MAKER"
    TAKER = "TAKER"


class InstrumentKind(str, Enum):
    """Spot, linear perpetual, or (IBKR) stock, dated future and FX pair."""

    SPOT = "spot"
    PERPETUAL = "perpetual"
    STOCK = "stock"
    FUTURE = "future"  # dated: Instrument.expiry (YYYYMMDD), PnL x Instrument.multiplier
    FX = "fx"

    @property
    def holds_base(self) -> bool:
        """A fill moves balances of both assets and the holding is a balance of the base asset
        (spot crypto; FX: EUR.USD moves the EUR and USD cash balances). Shorts are clamped."""
        return self is InstrumentKind.SPOT or self is InstrumentKind.FX

    @property
    def pays_notional(self) -> bool:
        """A fill moves quote cash by its whole notional (spot, FX, stock); futures and
        perpetuals are on margin (cash moves by realized PnL)."""
        return self is InstrumentKind.SPOT or self is InstrumentKind.FX or self is InstrumentKind.STOCK


class TradingState(str, Enum):
    """Global trading state enforced by the risk gate."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"  # only exposure-reducing orders pass
    HALTED = "HALTED"  # no orders pass (cancels always do)


class DataQuality(str, Enum):
    """What an instrument's market data is (`MarketDataQualityChanged`). Crypto venues are
    always LIVE; IB may give DELAYED data (15 minutes late, no subscription), FROZEN data
    (the last values while the market is closed) or NONE (no subscription at all)."""

    LIVE = "live"
    DELAYED = "delayed"
    FROZEN = "frozen"
    NONE = "none"


class BreakerState(str, Enum):
    """Venue error circuit breaker states; the gauge value is the index."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge_value(self) -> int:
        """0 closed, 1 open, 2 half-open."""
        return _BREAKER_GAUGE[self]


_BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}
