"""The IBKR emulator's contracts, session hours and seeded market (pure: no asyncio, no sockets).

Contracts: AAPL and MSFT (STK, SMART/NASDAQ, USD), three ES quarterly futures (FUT, CME,
multiplier 50: a request without an expiry is ambiguous, as on IB), EUR.USD and USD.JPY (CASH,
IDEALPRO). Session hours follow IB's contract details, in the contract's own time zone (IB's
names: US/Eastern, US/Central):

* stocks: trading 04:00-20:00, liquid (regular hours) 09:30-16:00 ET, Monday to Friday;
* ES: 17:00 (previous day) - 16:00 CT, liquid 08:30-15:00 CT; Sunday evening opens Monday's
  session, a daily one-hour break 16:00-17:00;
* FX: 17:15 (previous day) - 17:00 ET, from Sunday 17:15 to Friday 17:00, a daily 15-minute break;
* no session on the listed holidays (December 25, January 1);
* `always_open(contracts)` (the emulator's `--always-open`): every day 00:00-24:00 local,
  no holidays (tests on the wall clock that must not depend on the hour or the weekday).

The market is a deterministic function of (seed, conId, time): the log price is a sum of
random walks on several time scales, each a linear interpolation between seeded normal
draws at its bucket boundaries, so any instant (past or present) costs O(scales) and a
historical bar is the same however it is asked for. Nothing trades outside a session: no
ticks, no bars, no fills.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SessionRule:
    """Sessions by trading date: minutes from the trading date's local midnight (start may be
    negative: the session opened the evening before). Trading dates are the `weekdays`
    (0 = Monday; by default Monday to Friday) that are not holidays."""

    trading: tuple[int, int]
    liquid: tuple[int, int]
    holidays: frozenset[tuple[int, int]] = frozenset({(12, 25), (1, 1)})  # (month, day)
    weekdays: frozenset[int] = frozenset(range(5))

    def window(self, trading_date: date, *, liquid: bool) -> tuple[int, int] | None:
        """The session of `trading_date` as (start, end) minutes, or None when closed."""
        if trading_date.weekday() not in self.weekdays or (trading_date.month, trading_date.day) in self.holidays:
            return None
        return self.liquid if liquid else self.trading


# `--always-open`: every calendar day one session from local midnight to the next midnight
# (trading = liquid hours), no holidays. Contract details then list back-to-back days
# (`20261203:0000-20261204:0000;20261204:0000-20261205:0000;...`), which the daemon's
# `TradingSessions.from_ib` merges into one open stretch: no gap at midnight, at weekends
# or on holidays, so a test on the wall clock runs the same at any hour of any day.
ALWAYS_OPEN = SessionRule(trading=(0, 24 * 60), liquid=(0, 24 * 60), holidays=frozenset(),
                          weekdays=frozenset(range(7)))


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """One listed contract, with what its contract details report."""

    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    long_name: str
    min_tick: Decimal
    multiplier: int
    min_size: Decimal
    size_increment: Decimal
    suggested_size_increment: Decimal
    time_zone_id: str
    sessions: SessionRule
    base_price: float
    vol_per_day: float  # standard deviation of the daily log return
    touch_size: tuple[int, int]  # bid/ask size range (units of the contract)
    spread_ticks: int = 1
    last_trade_date: str = ""  # YYYYMMDD for futures
    market_rule_ids: str = "26"
    industry: str = ""
    category: str = ""
    order_types: str = "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,DAY,GAT,GTC,GTD,IOC,LIT,LMT,MIT,MKT,NONALGO,OCA,REL,STP,STPLMT,TRAIL,WHATIF"
    valid_exchanges: str = "SMART"
    stock_type: str = ""

    @property
    def multiplier_text(self) -> str:
        """The multiplier as contract details carry it ("" for a stock or FX pair)."""
        return str(self.multiplier) if self.sec_type == "FUT" else ""

    @property
    def data_key(self) -> str:
        """The name a market data permission is given by: the symbol (AAPL, ES), or the pair (EUR.USD)."""
        return self.local_symbol if self.sec_type == "CASH" else self.symbol

    @property
    def contract_month(self) -> str:
        """YYYYMM of a future, "" otherwise."""
        return self.last_trade_date[:6]

    @property
    def zone(self) -> ZoneInfo:
        """The contract's time zone."""
        return _zone(self.time_zone_id)

    @property
    def value_multiplier(self) -> int:
        """Notional = price x quantity x this."""
        return self.multiplier


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_STOCK = SessionRule(trading=(4 * 60, 20 * 60), liquid=(9 * 60 + 30, 16 * 60))
_CME_EQUITY = SessionRule(trading=(-7 * 60, 16 * 60), liquid=(8 * 60 + 30, 15 * 60))
_IDEALPRO = SessionRule(trading=(-(6 * 60 + 45), 17 * 60), liquid=(-(6 * 60 + 45), 17 * 60))


def _stock(con_id: int, symbol: str, name: str, price: float, industry: str, category: str) -> ContractSpec:
    return ContractSpec(
        con_id=con_id, symbol=symbol, sec_type="STK", exchange="SMART", primary_exchange="NASDAQ", currency="USD",
        local_symbol=symbol, trading_class="NMS", long_name=name, min_tick=Decimal("0.01"), multiplier=1,
        min_size=Decimal(1), size_increment=Decimal(1), suggested_size_increment=Decimal(100),
        time_zone_id="US/Eastern", sessions=_STOCK, base_price=price, vol_per_day=0.018, touch_size=(100, 900),
        valid_exchanges="SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,NASDAQ,DRCTEDGE,BEX,BATS,EDGEA,BYX,IEX,PEARL",
        industry=industry, category=category, stock_type="COMMON")


def _es(con_id: int, expiry: str, code: str) -> ContractSpec:
    return ContractSpec(
        con_id=con_id, symbol="ES", sec_type="FUT", exchange="CME", primary_exchange="", currency="USD",
        local_symbol=f"ES{code}", trading_class="ES", long_name="E-mini S&P 500", min_tick=Decimal("0.25"),
        multiplier=50, min_size=Decimal(1), size_increment=Decimal(1), suggested_size_increment=Decimal(1),
        time_zone_id="US/Central", sessions=_CME_EQUITY, base_price=6050.0, vol_per_day=0.011, touch_size=(5, 60),
        last_trade_date=expiry, market_rule_ids="67", valid_exchanges="CME", industry="Indices",
        category="Broad Range Equity Index")


def _fx(con_id: int, base: str, quote: str, price: float, tick: str, name: str) -> ContractSpec:
    return ContractSpec(
        con_id=con_id, symbol=base, sec_type="CASH", exchange="IDEALPRO", primary_exchange="", currency=quote,
        local_symbol=f"{base}.{quote}", trading_class=f"{base}.{quote}", long_name=name, min_tick=Decimal(tick),
        multiplier=1, min_size=Decimal(1), size_increment=Decimal(1), suggested_size_increment=Decimal(1),
        time_zone_id="US/Eastern", sessions=_IDEALPRO, base_price=price, vol_per_day=0.005,
        touch_size=(1_000_000, 5_000_000), spread_ticks=2, market_rule_ids="239", valid_exchanges="IDEALPRO")


def always_open(contracts: tuple[ContractSpec, ...]) -> tuple[ContractSpec, ...]:
    """`contracts` with the ALWAYS_OPEN session rule (every other field unchanged)."""
    return tuple(replace(c, sessions=ALWAYS_OPEN) for c in contracts)


def default_contracts() -> tuple[ContractSpec, ...]:
    """Every contract the emulator lists (fixed conIds: the real ones for AAPL, MSFT, EUR.USD, USD.JPY)."""
    return (
        _stock(265598, "AAPL", "APPLE INC", 230.0, "Technology", "Computers"),
        _stock(272093, "MSFT", "MICROSOFT CORP", 420.0, "Technology", "Software"),
        _es(637533641, "20261218", "Z6"),
        _es(649180695, "20270319", "H7"),
        _es(660581012, "20270618", "M7"),
        _fx(12087792, "EUR", "USD", 1.0850, "0.00005", "European Monetary Union Euro"),
        _fx(15016059, "USD", "JPY", 151.20, "0.005", "US Dollar"),
    )


# --- sessions -------------------------------------------------------------------------------


def session_window_ns(spec: ContractSpec, trading_date: date, *, liquid: bool) -> tuple[int, int] | None:
    """The session of `trading_date` as (start_ns, end_ns), or None when closed that day."""
    w = spec.sessions.window(trading_date, liquid=liquid)
    if w is None:
        return None
    midnight = datetime(trading_date.year, trading_date.month, trading_date.day, tzinfo=spec.zone)
    start = midnight + timedelta(minutes=w[0])
    end = midnight + timedelta(minutes=w[1])
    return int(start.timestamp()) * NS_PER_S, int(end.timestamp()) * NS_PER_S


def local_date(spec: ContractSpec, ts_ns: int) -> date:
    """The calendar date at `ts_ns` in the contract's time zone."""
    return datetime.fromtimestamp(ts_ns / NS_PER_S, spec.zone).date()


def session_at(spec: ContractSpec, ts_ns: int, *, liquid: bool) -> tuple[int, int] | None:
    """The session containing `ts_ns` (start inclusive, end exclusive), or None when closed."""
    d = local_date(spec, ts_ns)
    for td in (d, d + timedelta(days=1)):  # an evening belongs to the next trading date's session
        w = session_window_ns(spec, td, liquid=liquid)
        if w is not None and w[0] <= ts_ns < w[1]:
            return w
    return None


def is_open(spec: ContractSpec, ts_ns: int, *, liquid: bool = False) -> bool:
    """Whether the contract trades at `ts_ns` (regular hours only when `liquid`)."""
    return _open_in_minute(spec, ts_ns // (60 * NS_PER_S), liquid)


@lru_cache(maxsize=4096)
def _open_in_minute(spec: ContractSpec, minute: int, liquid: bool) -> bool:
    # sessions start and end on whole minutes, so a minute is open or closed as a whole
    return session_at(spec, minute * 60 * NS_PER_S, liquid=liquid) is not None


def sessions_between(spec: ContractSpec, start_ns: int, end_ns: int, *, liquid: bool) -> list[tuple[date, int, int]]:
    """(trading date, start_ns, end_ns) of every session overlapping [start_ns, end_ns), oldest first."""
    out: list[tuple[date, int, int]] = []
    d = local_date(spec, start_ns)
    last = local_date(spec, end_ns) + timedelta(days=1)
    while d <= last:
        w = session_window_ns(spec, d, liquid=liquid)
        if w is not None and w[1] > start_ns and w[0] < end_ns:
            out.append((d, w[0], w[1]))
        d += timedelta(days=1)
    return out


def last_session_end_ns(spec: ContractSpec, now_ns: int, *, liquid: bool) -> int | None:
    """The end of the latest session that ended at or before `now_ns` (within 10 days), or None."""
    past = sessions_between(spec, now_ns - 10 * 86400 * NS_PER_S, now_ns, liquid=liquid)
    ends = [end for _, _, end in past if end <= now_ns]
    return ends[-1] if ends else None


def hours_text(spec: ContractSpec, now_ns: int, *, liquid: bool, days: int = 8) -> str:
    """tradingHours / liquidHours as IB's contract details carry them (the format since API
    9.73: `20261203:0400-20261203:2000;20261205:CLOSED`), from yesterday for `days` days: each
    session keyed by the date it starts (an ES session opening Sunday 17:00 is
    `20261206:1700-20261207:1600`), CLOSED for a date on which no session starts or ends."""
    first = local_date(spec, now_ns) - timedelta(days=1)
    segments: list[tuple[date, str]] = []
    touched: set[date] = set()
    for i in range(days + 1):  # one more trading date: its session may start inside the window
        w = session_window_ns(spec, first + timedelta(days=i), liquid=liquid)
        if w is None:
            continue
        s = datetime.fromtimestamp(w[0] / NS_PER_S, spec.zone)
        e = datetime.fromtimestamp(w[1] / NS_PER_S, spec.zone)
        if s.date() >= first + timedelta(days=days):
            continue
        touched.update((s.date(), e.date()))
        segments.append((s.date(), f"{s:%Y%m%d:%H%M}-{e:%Y%m%d:%H%M}"))
    for i in range(days):
        d = first + timedelta(days=i)
        if d not in touched:
            segments.append((d, f"{d:%Y%m%d}:CLOSED"))
    return ";".join(text for _, text in sorted(segments))


# --- the seeded market ----------------------------------------------------------------------

# (bucket length in seconds, share of the daily variance): the walk's time scales.
BAR_SAMPLES = 12  # quotes sampled per bar (a historical request stays cheap for the loop)
_SCALES: tuple[tuple[int, float], ...] = ((5, 0.10), (60, 0.15), (900, 0.20), (4 * 3600, 0.25), (86400, 0.30))


@dataclass(frozen=True, slots=True)
class Quote:
    """The top of the book at one instant."""

    bid: Decimal
    ask: Decimal
    bid_size: int
    ask_size: int
    last: Decimal
    last_size: int


_MASK64 = (1 << 64) - 1


def _mix(*parts: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): the market's seeded randomness, cheap and
    identical on every platform and Python version."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 29
    return h


def _uniform(h: int) -> float:
    """(0, 1) from a 64-bit hash."""
    return ((h >> 11) + 0.5) / float(1 << 53)


@dataclass(slots=True)
class Market:
    """The seeded market: quotes and bars of every contract as a function of time (whole seconds)."""

    seed: int
    contracts: tuple[ContractSpec, ...]
    _draws: dict[tuple[int, int, int], float] = field(default_factory=dict)
    _quotes: dict[tuple[int, int], Quote] = field(default_factory=dict)
    _sigmas: dict[int, tuple[tuple[int, float], ...]] = field(default_factory=dict)

    def _normal(self, con_id: int, scale: int, index: int) -> float:
        key = (con_id, scale, index)
        v = self._draws.get(key)
        if v is None:
            if len(self._draws) > 200_000:
                self._draws.clear()
            u1 = _uniform(_mix(self.seed, con_id, scale, index, 1))
            u2 = _uniform(_mix(self.seed, con_id, scale, index, 2))
            v = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)  # Box-Muller
            self._draws[key] = v
        return v

    def _scales(self, spec: ContractSpec) -> tuple[tuple[int, float], ...]:
        scales = self._sigmas.get(spec.con_id)
        if scales is None:
            # interpolated draws: a stationary wiggle per scale (mean 0, no drift); the change
            # across one bucket has about `sigma` as its standard deviation
            scales = tuple((bucket_s, 0.7071 * spec.vol_per_day * math.sqrt(share * bucket_s / 86400.0))
                           for bucket_s, share in _SCALES)
            self._sigmas[spec.con_id] = scales
        return scales

    def mid(self, spec: ContractSpec, ts_ns: int) -> float:
        """The (unrounded) mid price at `ts_ns`."""
        t = ts_ns / NS_PER_S
        log_move = 0.0
        normal = self._normal
        con_id = spec.con_id
        for bucket_s, sigma in self._scales(spec):
            x = t / bucket_s
            i = math.floor(x)
            a = normal(con_id, bucket_s, i)
            log_move += sigma * (a + (normal(con_id, bucket_s, i + 1) - a) * (x - i))
        return spec.base_price * math.exp(log_move)

    def quote(self, spec: ContractSpec, ts_ns: int) -> Quote:
        """Bid/ask/last in the second of `ts_ns`, on the contract's tick grid."""
        sec = ts_ns // NS_PER_S
        key = (spec.con_id, sec)
        q = self._quotes.get(key)
        if q is not None:
            return q
        tick = spec.min_tick
        tick_f = float(tick)
        mid = self.mid(spec, sec * NS_PER_S)
        ticks = math.floor((mid - tick_f * spec.spread_ticks / 2) / tick_f + 1e-9)
        bid = tick * ticks
        ask = tick * (ticks + spec.spread_ticks)
        lo, hi = spec.touch_size
        span = hi - lo + 1
        h = _mix(self.seed, spec.con_id, sec, 3)
        bid_size = lo + h % span
        ask_size = lo + (h >> 20) % span
        last = ask if (h >> 40) & 1 else bid
        last_size = max(1, (lo + (h >> 41) % span) // 3)
        q = Quote(bid, ask, bid_size, ask_size, last, last_size)
        if len(self._quotes) > 100_000:
            self._quotes.clear()
        self._quotes[key] = q
        return q

    def bar(self, spec: ContractSpec, start_ns: int, end_ns: int, what: str = "TRADES") -> Bar:
        """OHLC of the last trade (TRADES), mid (MIDPOINT), bid (BID) or ask (ASK) over
        [start_ns, end_ns), from the quotes of up to BAR_SAMPLES whole seconds in it (every
        second of a 5 s bar); the volume is the sampled prints scaled to the bar's length."""
        span = max(1, end_ns - start_ns)
        step = max(NS_PER_S, span // BAR_SAMPLES)
        prices: list[Decimal] = []
        sampled = 0
        count = 0
        t = start_ns
        while t < end_ns:
            q = self.quote(spec, t)
            p = q.bid if what == "BID" else q.ask if what == "ASK" else q.last if what == "TRADES" else (q.bid + q.ask) / 2
            prices.append(p)
            sampled += q.last_size
            count += 1
            t += step
        if not prices:
            q = self.quote(spec, start_ns)
            prices = [q.last]
        volume = sampled * max(1, step // NS_PER_S)
        wap = sum(prices, Decimal(0)) / len(prices)
        return Bar(start_ns, prices[0], max(prices), min(prices), prices[-1], volume, wap, count)


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: start time, OHLC, volume, average price and trade count."""

    start_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    wap: Decimal
    count: int


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """`price` on the tick grid (nearest multiple of `tick` downwards)."""
    return (price / tick).to_integral_value(ROUND_FLOOR) * tick


def on_tick(price: Decimal, tick: Decimal) -> bool:
    """Whether `price` is a multiple of `tick`."""
    return (price / tick) == (price / tick).to_integral_value()
