"""Synthetic regime-switching market: deterministic per seed, independent per symbol, sane output."""

from __future__ import annotations

import numpy as np
import pytest

from nautilus_hmm.domain.enums import Side
from nautilus_hmm.marketdata.synthetic import DEFAULT_REGIMES, SyntheticMarket

S = 1_000_000_000
T0 = 1_700_000_000 * S
PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0}


def run(market: SyntheticMarket, symbol: str, n: int) -> list[tuple[float, float, Side]]:
    out = []
    for i in range(n):
        t = market.next_trade(symbol, T0 + i * S)
        out.append((t.price, t.size, t.aggressor))
    return out


def test_same_seed_gives_the_same_trades():
    assert run(SyntheticMarket(PRICES, seed=3), "BTCUSDT", 200) == run(SyntheticMarket(PRICES, seed=3), "BTCUSDT", 200)


def test_different_seed_gives_different_trades():
    assert run(SyntheticMarket(PRICES, seed=3), "BTCUSDT", 50) != run(SyntheticMarket(PRICES, seed=4), "BTCUSDT", 50)


def test_a_symbols_path_does_not_depend_on_other_symbols():
    alone = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=9)
    both = SyntheticMarket(PRICES, seed=9)
    run(both, "ETHUSDT", 30)
    assert run(alone, "BTCUSDT", 100) == run(both, "BTCUSDT", 100)


def test_asking_for_quotes_does_not_change_the_trades():
    plain = SyntheticMarket(PRICES, seed=5)
    quoted = SyntheticMarket(PRICES, seed=5)
    a, b = [], []
    for i in range(100):
        a.append(plain.next_trade("ETHUSDT", T0 + i * S))
        b.append(quoted.next_trade("ETHUSDT", T0 + i * S))
        quoted.quote("ETHUSDT")
    assert a == b


def test_prices_sit_on_the_tick_and_stay_positive():
    m = SyntheticMarket({"XUSDT": 1.2345}, seed=1, tick_sizes={"XUSDT": 0.0001})
    for price, size, _ in run(m, "XUSDT", 500):
        assert price > 0 and size > 0
        assert abs(price / 0.0001 - round(price / 0.0001)) < 1e-6


def test_quote_brackets_the_last_price_by_at_least_a_tick():
    m = SyntheticMarket(PRICES, seed=2, tick_sizes={"BTCUSDT": 0.01})
    for i in range(200):
        t = m.next_trade("BTCUSDT", T0 + i * S)
        q = m.quote("BTCUSDT")
        assert q.bid <= t.price <= q.ask
        assert q.ask - q.bid >= 0.01 - 1e-9
        assert q.bid_size > 0 and q.ask_size > 0


def test_first_trade_starts_near_the_initial_price():
    m = SyntheticMarket(PRICES, seed=2)
    assert m.next_trade("BTCUSDT", T0).price == pytest.approx(60_000.0, rel=0.01)


def test_regimes_switch_and_the_volatile_one_moves_more():
    m = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=11)
    bars, labels = m.generate_bars("BTCUSDT", T0, 20_000, interval_s=60, trades_per_bar=1)
    assert len(set(labels.tolist())) == len(DEFAULT_REGIMES)
    r = np.diff(np.log(bars.close))
    lab = labels[1:]
    vol_of = {k: r[lab == k].std() for k in range(3)}
    assert vol_of[2] > 2.5 * vol_of[0]
    assert vol_of[2] > 2.5 * vol_of[1]


def test_generate_bars_are_consistent_and_deterministic():
    a, la = SyntheticMarket(PRICES, seed=4).generate_bars("ETHUSDT", T0 + 7 * S, 500)
    b, lb = SyntheticMarket(PRICES, seed=4).generate_bars("ETHUSDT", T0 + 7 * S, 500)
    assert np.array_equal(a.close, b.close) and np.array_equal(la, lb)
    assert a.interval_s == 60 and len(a) == 500
    assert int(a.ts_open_ns[0]) % (60 * S) == 0
    assert np.all(np.diff(a.ts_open_ns) == 60 * S)
    assert np.all(a.high >= np.maximum(a.open, a.close))
    assert np.all(a.low <= np.minimum(a.open, a.close))
    assert np.all(a.volume > 0)


def test_unknown_symbol_is_named():
    with pytest.raises(KeyError, match="NOPE"):
        SyntheticMarket(PRICES).next_trade("NOPE", T0)


def test_switch_matrix_rows_must_sum_to_one():
    with pytest.raises(ValueError, match="row 1"):
        SyntheticMarket(PRICES, switch_matrix=((0, 0.5, 0.5), (0.2, 0, 0.2), (0.5, 0.5, 0)))


def test_non_positive_initial_price_is_refused():
    with pytest.raises(ValueError, match="BTCUSDT"):
        SyntheticMarket({"BTCUSDT": 0.0})


def test_history_is_a_deterministic_past_that_ends_at_the_current_price() -> None:
    m = SyntheticMarket(PRICES, seed=3, tick_interval_s=0.5)
    end = T0 + 37 * S  # mid-bar: the last bar is the one that closed before it
    bars = m.history("BTCUSDT", end, 2_000, interval_s=60)
    assert len(bars) == 2_000 and bars.interval_s == 60
    assert bars.ts_open_ns[-1] + 60 * S <= end < bars.ts_open_ns[-1] + 120 * S
    assert np.all(np.diff(bars.ts_open_ns) == 60 * S)
    assert bars.close[-1] == m.price("BTCUSDT") == 60_000.0
    assert np.all(bars.low <= np.minimum(bars.open, bars.close))
    assert np.all(bars.high >= np.maximum(bars.open, bars.close))
    assert np.all(bars.low > 0) and np.all(bars.volume > 0)
    again = SyntheticMarket(PRICES, seed=3, tick_interval_s=0.5).history("BTCUSDT", end, 2_000, 60)
    assert np.array_equal(again.close, bars.close) and np.array_equal(again.volume, bars.volume)
    other = SyntheticMarket(PRICES, seed=4, tick_interval_s=0.5).history("BTCUSDT", end, 2_000, 60)
    assert not np.array_equal(other.close, bars.close)
    # The past does not move the live path: the next trade is what it would have been.
    assert run(m, "BTCUSDT", 5) == run(SyntheticMarket(PRICES, seed=3, tick_interval_s=0.5), "BTCUSDT", 5)


def test_history_volume_matches_the_live_trade_rate() -> None:
    # A 60 s bar at 2 trades/s holds ~120 trades: its volume is like a live bar's, which the
    # volume feature of a model trained on the past needs.
    m = SyntheticMarket(PRICES, seed=5, tick_interval_s=0.5)
    past = m.history("ETHUSDT", T0, 3_000, interval_s=60)
    live, _ = SyntheticMarket(PRICES, seed=5, tick_interval_s=0.5).generate_bars(
        "ETHUSDT", T0, 300, interval_s=60, trades_per_bar=120)
    ratio = float(np.median(past.volume) / np.median(live.volume))
    assert 0.5 < ratio < 2.0, ratio


def test_history_needs_at_least_one_bar() -> None:
    with pytest.raises(ValueError, match="n_bars"):
        SyntheticMarket(PRICES).history("BTCUSDT", T0, 0)


# ---------------------------------------------------------------- continuing from a saved state

S_NS = 1_000_000_000


def _trades(market: SyntheticMarket, start_s: int, n: int) -> list[tuple[float, float]]:
    return [(t.price, t.size) for t in (market.next_trade("BTCUSDT", (start_s + i) * S_NS) for i in range(n))]


def test_a_restored_market_continues_the_uninterrupted_path() -> None:
    whole = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=7)
    first = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=7)
    expected = _trades(whole, 1, 200)
    assert _trades(first, 1, 100) == expected[:100]
    state = first.state()
    again = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=7)
    assert again.restore(state) == ["BTCUSDT"]
    assert again.price("BTCUSDT") == first.price("BTCUSDT") != 60_000.0
    assert again.regime("BTCUSDT") == first.regime("BTCUSDT")
    assert _trades(again, 101, 100) == expected[100:]


def test_a_restored_market_treats_the_downtime_as_a_pause() -> None:
    first = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=7)
    _trades(first, 1, 100)
    state = first.state()
    paused = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=7)
    paused.restore(state)
    resumed = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=7)
    resumed.restore(state)
    # A day later or at once: the first trade is one tick's step from the saved price.
    assert _trades(paused, 100 + 86_400, 1) == _trades(resumed, 101, 1)


def test_history_of_a_restored_market_ends_at_the_continued_price() -> None:
    first = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=7)
    _trades(first, 1, 100)
    again = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=7)
    again.restore(first.state())
    bars = again.history("BTCUSDT", 200 * S_NS, 50)
    assert float(bars.close[-1]) == first.price("BTCUSDT")


def test_a_state_for_another_seed_or_symbol_is_not_applied() -> None:
    first = SyntheticMarket({"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0}, seed=7)
    _trades(first, 1, 10)
    other_seed = SyntheticMarket({"BTCUSDT": 60_000.0}, seed=8)
    assert other_seed.restore(first.state()) == []
    assert other_seed.price("BTCUSDT") == 60_000.0
    fewer = SyntheticMarket({"BTCUSDT": 60_000.0, "SOLUSDT": 150.0}, seed=7)
    assert fewer.restore(first.state()) == ["BTCUSDT"]  # ETHUSDT dropped; SOLUSDT starts at its seed
    assert fewer.price("SOLUSDT") == 150.0


@pytest.mark.parametrize(("path", "value", "fragment"), [
    (("version",), 99, "version"),
    (("symbols", "BTCUSDT", "price"), -1.0, "symbols.BTCUSDT.price"),
    (("symbols", "BTCUSDT", "price"), "NaN", "symbols.BTCUSDT.price"),
    (("symbols", "BTCUSDT", "regime"), 7, "symbols.BTCUSDT.regime"),
    (("symbols", "BTCUSDT", "rng"), [3, [1, 2], None], "symbols.BTCUSDT.rng"),
    (("symbols", "BTCUSDT", "quote_rng"), "x", "symbols.BTCUSDT.quote_rng"),
    (("symbols",), [], "symbols"),
])
def test_a_damaged_state_is_refused_whole_naming_the_field(path, value, fragment) -> None:
    first = SyntheticMarket({"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0}, seed=7)
    _trades(first, 1, 10)
    state = first.state()
    node = state
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    again = SyntheticMarket({"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0}, seed=7)
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        again.restore(state)
    assert (again.price("BTCUSDT"), again.price("ETHUSDT")) == (60_000.0, 3_000.0)  # nothing applied
