"""The fitted slippage model applied by the sim venue's matching (opt-in): a taker fill moves
against the taker by the model's predicted cost for its size, the quoted spread and the
realised volatility; maker fills and the default (no model) are unchanged; deterministic;
a damaged model file is refused by the config naming the field."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.config import Config, ConfigError
from nautilus_hmm.config.loader import parse
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import InstrumentKind, Liquidity, OrderType, Side, TimeInForce
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill
from nautilus_hmm.messages import Bar, FillReport
from nautilus_hmm.venues.sim.config import SimMarketConfig, SimVenueConfig
from nautilus_hmm.venues.sim.matching import MatchingEngine
from nautilus_hmm.venues.sim.slippage_model import (
    KIND,
    RealisedVol,
    SlippageModel,
    load_model,
    spread_bps,
)
from nautilus_hmm.venues.sim.venue import SimVenue

IID = InstrumentId("sim", "BTCUSDT")
INST = Instrument(
    id=IID, base_asset="BTC", quote_asset="USDT", kind=InstrumentKind.SPOT,
    tick_size=D("0.01"), step_size=D("0.00001"), min_qty=D("0.00001"), max_qty=D("9000"),
    min_notional=D("5"),
)
S = 1_000_000_000
T0 = 1_740_798_000 * S
_seq = iter(range(1, 100_000))


def model(coef: list[float], *, size_ref: float = 1_000.0, vol_window_s: float = 300.0,
          clip: tuple[float, float] = (-50.0, 50.0)) -> SlippageModel:
    return SlippageModel.from_dict({
        "kind": KIND, "format_version": 1, "created_at": "2026-01-01T00:00:00Z", "instruments": [str(IID)],
        "features": ["const", "spread_bps", "vol_bps", "sqrt_size"], "coef": coef, "size_ref_quote": size_ref,
        "vol_window_s": vol_window_s, "clip_bps": list(clip), "fit": {"n_orders": 10}, "training": {},
        "library_versions": {},
    }, "<test>")


def bar(i: int, o: float, h: float | None = None, lo: float | None = None, c: float | None = None,
        v: float = 1_000.0) -> Bar:
    ts = T0 + i * 60 * S
    return Bar(ts_event_ns=ts, ts_init_ns=ts + 60 * S, instrument_id=IID, interval_s=60, open=o,
               high=max(o, c or o) + 1 if h is None else h, low=min(o, c or o) - 1 if lo is None else lo,
               close=o if c is None else c, volume=v)


def req(side: Side, qty: str, otype: OrderType = OrderType.MARKET, price: str | None = None) -> OrderRequest:
    return OrderRequest(f"c-{next(_seq)}", IID, side, otype, D(qty), None if price is None else D(price),
                        TimeInForce.GTC)


def engine(slippage: SlippageModel | None) -> MatchingEngine:
    eng = MatchingEngine(INST, maker_fee=D("0.001"), taker_fee=D("0.002"), slippage=slippage)
    eng.on_bar(bar(0, 100.0))
    return eng


def fill_of(eng: MatchingEngine, r: OrderRequest, next_bar: Bar) -> VenueFill:
    eng.accept(r, next_bar.ts_event_ns - 1)
    [f] = [e for e in eng.on_bar(next_bar) if isinstance(e, VenueFill)]
    return f


def test_without_a_model_a_market_order_fills_at_the_next_open_exactly() -> None:
    f = fill_of(engine(None), req(Side.BUY, "10"), bar(1, 100.0))
    assert f.price == D("100.00") and f.liquidity is Liquidity.TAKER


def test_a_market_buy_pays_the_predicted_cost_and_a_sell_receives_less() -> None:
    m = model([2.0, 0.0, 0.0, 3.0])  # 2 bps + 3 bps x sqrt(notional / 1000)
    # 10 BTC at 100 = 1000 quote: 5 bps; at 100: 0.05 → 100.05 / 99.95
    buy = fill_of(engine(m), req(Side.BUY, "10"), bar(1, 100.0))
    sell_eng = engine(m)
    sell_eng.ledger.positions[IID] = D("10")  # NullLedger: something to sell
    sell = fill_of(sell_eng, req(Side.SELL, "10"), bar(1, 100.0))
    assert buy.price == D("100.05") and sell.price == D("99.95")
    # fees are charged on the slipped price
    assert buy.fee == (D("10") * D("100.05") * D("0.002")).quantize(D("1e-8"))


def test_a_bigger_order_slips_more_as_the_model_says() -> None:
    m = model([0.0, 0.0, 0.0, 4.0])
    prices = []
    for qty in ("2.5", "10", "40"):  # notional 250, 1000, 4000 → 2, 4, 8 bps
        prices.append(fill_of(engine(m), req(Side.BUY, qty), bar(1, 100.0)).price)
    assert prices == [D("100.02"), D("100.04"), D("100.08")]


def test_the_quoted_spread_enters_the_cost() -> None:
    m = model([0.0, 0.5, 0.0, 0.0])  # half the spread
    eng = engine(m)
    eng.set_quote(99.9, 100.1)  # 20 bps wide → 10 bps
    f = fill_of(eng, req(Side.BUY, "1"), bar(1, 100.0))
    assert f.price == D("100.10")
    assert math.isclose(spread_bps(99.9, 100.1), 20.0, rel_tol=1e-9)
    assert math.isnan(spread_bps(None, 100.0)) and math.isnan(spread_bps(101.0, 100.0))


def test_realised_volatility_of_the_prices_seen_before_arrival_enters_the_cost() -> None:
    m = model([0.0, 0.0, 1.0, 0.0], vol_window_s=120.0)
    eng = MatchingEngine(INST, slippage=m)
    vol = RealisedVol(120.0)
    prices = [100.0, 100.5, 99.8, 100.3, 100.1]
    ts = [T0 + i * 30 * S for i in range(len(prices))]
    for t, p in zip(ts, prices, strict=True):
        eng.on_trade(p, 1.0, t)
        vol.update(t, p)
    arrive = ts[-1] + 45 * S  # the 120 s before it hold the last 3 returns (at 60, 90, 120 s), not the first
    expected_bps = vol.bps(arrive)
    by_hand = math.sqrt(sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(prices[1:]))) * 1e4
    assert expected_bps == pytest.approx(by_hand, rel=1e-12) and expected_bps > 50
    eng.accept(req(Side.BUY, "1"), arrive - 1)
    [f] = [e for e in eng.on_trade(100.0, 5.0, arrive) if isinstance(e, VenueFill)]
    clipped = min(50.0, expected_bps)  # the model clips at its training range
    assert f.price == (D(repr(100.0 * (1 + clipped / 1e4))) / D("0.01")).to_integral_value() * D("0.01")


def test_a_marketable_limit_never_fills_beyond_its_price_and_a_maker_fill_is_not_slipped() -> None:
    m = model([30.0, 0.0, 0.0, 0.0])  # 30 bps: 100 → 100.30
    taker = fill_of(engine(m), req(Side.BUY, "1", OrderType.LIMIT, "100.10"), bar(1, 100.0))
    assert taker.liquidity is Liquidity.TAKER and taker.price == D("100.10")
    eng = engine(m)
    eng.accept(req(Side.BUY, "1", OrderType.LIMIT, "99.00"), T0 + 1)  # rests (below last 100)
    [maker] = [e for e in eng.on_bar(bar(1, 100.0, h=100.5, lo=98.5, c=99.5)) if isinstance(e, VenueFill)]
    assert maker.liquidity is Liquidity.MAKER and maker.price == D("99.00")


def test_the_same_events_give_the_same_fill_prices() -> None:
    m = model([1.0, 0.2, 0.3, 2.0], vol_window_s=600.0)

    def run() -> list[D]:
        eng = engine(m)
        out = []
        for i in range(1, 40):
            eng.set_quote(100 + i * 0.1 - 0.05, 100 + i * 0.1 + 0.05)
            if i % 3 == 0:
                eng.accept(req(Side.BUY, str(i % 7 + 1)), T0 + i * 60 * S - 1)
            o = 100 + i * 0.1 + (0.3 if i % 2 else -0.3)
            out += [e.price for e in eng.on_bar(bar(i, o, c=o + 0.05)) if isinstance(e, VenueFill)]
        return out

    a, b = run(), run()
    assert a == b and len(a) == 13


# ------------------------------------------------------------------ the sim venue and its config


def test_the_sim_venue_applies_the_model_named_in_its_config(tmp_path: Path) -> None:
    path = model([0.0, 0.0, 0.0, 5.0]).save(tmp_path / "slippage_model.json")
    base = SimVenueConfig(symbols=("BTCUSDT",), market=SimMarketConfig(source="replay", replay_file=__file__))
    prices = {}
    for name, cfg in (("off", base), ("on", SimVenueConfig(symbols=("BTCUSDT",), slippage_model=str(path),
                                                             market=base.market))):
        bus, clock = Bus(), ManualClock(T0)
        got: list[FillReport] = []
        bus.subscribe(FillReport, got.append)
        venue = SimVenue(cfg, bus, clock, None, feed={}, persist=False)
        venue.start_nowait()
        venue.step_bar(bar(0, 60_000.0))
        venue.submit_order_nowait(req(Side.BUY, "0.5"))  # 30,000 quote: 5 x sqrt(30) = 27.4 bps
        venue.step_bar(bar(1, 60_000.0))
        [f] = got
        prices[name] = f.fill.price
    assert prices["off"] == D("60000.00")
    assert prices["on"] == (D(repr(60_000.0 * (1 + 5.0 * math.sqrt(30.0) / 1e4))) / D("0.01")).quantize(
        D("1")) * D("0.01")


def test_config_refuses_a_damaged_or_missing_model_naming_the_field(tmp_path: Path) -> None:
    good = model([1.0, 0.0, 0.0, 1.0]).save(tmp_path / "m.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(good.read_bytes().replace(b'"const"', b'"konst"'))
    no_sum = tmp_path / "no_sum.json"
    no_sum.write_bytes(orjson.dumps({k: v for k, v in orjson.loads(good.read_bytes()).items() if k != "sha256"}))
    foreign = tmp_path / "foreign.json"
    foreign.write_bytes(b'{"kind": "something else"}')
    for path, words in ((bad, "sha256: checksum"), (tmp_path / "absent.json", "file not found"),
                        (no_sum, "sha256: missing"), (foreign, "kind: 'something else'")):
        with pytest.raises(ConfigError) as info:
            parse(Config, {"venues": {"sim": {"slippage_model": str(path)}}})
        [err] = info.value.errors
        assert err.startswith(f'venues.sim.slippage_model = "{path}"') and words in err, err
    cfg = parse(Config, {"venues": {"sim": {"slippage_model": str(good)}}})
    assert load_model(cfg.venues.sim.slippage_model).coef == [1.0, 0.0, 0.0, 1.0]


def test_on_trades_the_sim_venue_charges_the_quoted_spread_the_model_names(tmp_path: Path) -> None:
    path = model([0.0, 0.5, 0.0, 0.0]).save(tmp_path / "slippage_model.json")  # half the quoted spread
    cfg = SimVenueConfig(symbols=("BTCUSDT",), slippage_model=str(path),
                         market=SimMarketConfig(source="replay", replay_file=__file__))
    bus, clock = Bus(), ManualClock(T0)
    got: list[FillReport] = []
    bus.subscribe(FillReport, got.append)
    venue = SimVenue(cfg, bus, clock, None, feed={}, persist=False)
    venue.start_nowait()
    venue.step_quote(IID, 59_994.0, 1.0, 60_006.0, 1.0, T0)  # 2 bps wide
    venue.step_trade(IID, 60_000.0, 0.5, T0 + 1)
    venue.submit_order_nowait(req(Side.BUY, "0.1"))
    venue.step_trade(IID, 60_000.0, 0.5, T0 + 2)
    [f] = got
    assert f.fill.price == D("60006.00") and f.fill.liquidity is Liquidity.TAKER  # 1 bps of 60,000 = 6


def test_a_model_predicting_a_price_at_or_below_zero_leaves_the_arrival_price() -> None:
    m = model([-20_000.0, 0.0, 0.0, 0.0], clip=(-20_000.0, 50.0))  # a cost of -200 %: absurd, but the model's
    buy = fill_of(engine(m), req(Side.BUY, "1"), bar(1, 100.0))
    assert buy.price == D("100.00")  # 100 x (1 - 2) < 0: the open, never a non-positive price
    eng = engine(m)
    eng.ledger.positions[IID] = D("1")
    sell = fill_of(eng, req(Side.SELL, "1"), bar(1, 100.0))
    assert sell.price == D("300")  # a negative cost is a price improvement, as fitted (clip_bps bounds it)
