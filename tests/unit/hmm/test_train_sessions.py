"""Training with session gaps (issue 14): a model trained on session bars with their flags
sees what the live `RegimeTracker(model, sessions)` sees: the same macro posteriors bar for
bar and the same macro regime per fast bar; the flags take the overnight moves out of the
1-bar return the scaler is fitted on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nautilus_hmm.domain.sessions import TradingSessions
from nautilus_hmm.hmm.features import session_starts_for
from nautilus_hmm.hmm.runtime import RegimeTracker
from nautilus_hmm.hmm.train import macro_regime_per_micro_bar, prepare_level, runs, train_model
from nautilus_hmm.marketdata.replay import BarArrays
from tests.unit.hmm.conftest import SMALL_CFG, SMALL_SPEC

pytest.importorskip("pomegranate")

NS = 1_000_000_000
# A calendar far after the data: every break in it comes from the >= 15 min quiet-stretch rule,
# as for IB history older than the contract's listed days.
LATER = TradingSessions.from_ib("20300107:0930-1600", "America/New_York")


def day_sessions(btc_1m: BarArrays) -> BarArrays:
    """Real BTC minutes kept 13:00-21:00 UTC on weekdays only: nights and weekends become gaps
    with real overnight moves in them."""
    ts = btc_1m.ts_open_ns
    minute_of_day = (ts // (60 * NS)) % 1440
    weekday = ((ts // (86_400 * NS)) + 3) % 7  # 0 = Monday
    keep = (minute_of_day >= 13 * 60) & (minute_of_day < 21 * 60) & (weekday < 5)
    idx = np.flatnonzero(keep)
    return BarArrays(ts[idx], btc_1m.open[idx], btc_1m.high[idx], btc_1m.low[idx], btc_1m.close[idx],
                     btc_1m.volume[idx])


@pytest.fixture(scope="module")
def trained(btc_1m: BarArrays):
    bars = day_sessions(btc_1m.slice(0, 16 * 1440))  # 12 weekdays of 8 h
    starts = session_starts_for(LATER, bars.ts_open_ns, 60)
    cfg = dataclasses.replace(SMALL_CFG, n_restarts=1, max_iter=8)
    model = train_model(bars, SMALL_SPEC, cfg, instrument="ibkr:BTC-DAY", session_starts=starts)
    return bars, starts, model


def test_every_trading_day_starts_a_session(trained) -> None:
    bars, starts, _ = trained
    days = np.unique(bars.ts_open_ns // (86_400 * NS))
    assert starts.sum() == len(days) - 1  # the first bar has no session before it


def test_the_live_tracker_matches_training_bar_for_bar(trained) -> None:
    bars, starts, model = trained
    macro = prepare_level("macro", bars, SMALL_SPEC, 1800, 60, scaler=model.macro.scaler, session_starts=starts)
    micro = prepare_level("micro", bars, SMALL_SPEC, 300, 60, scaler=model.micro.scaler, session_starts=starts)
    post = np.full((len(macro.bars), 2), np.nan)
    for a, b in runs(macro.valid):
        post[a:b], _ = model.macro.hmm.filter().filter_sequence(macro.z[a:b])
    regime = macro_regime_per_micro_bar(macro, model.macro.hmm, micro, 1800, 300)

    tracker = RegimeTracker(model, LATER)
    live_macro, live_regime = [], []
    for i in range(len(bars)):
        snap = tracker.on_bar(int(bars.ts_open_ns[i]), float(bars.open[i]), float(bars.high[i]),
                              float(bars.low[i]), float(bars.close[i]), float(bars.volume[i]))
        if snap is None:
            continue
        if snap.macro_updated:
            live_macro.append(snap.macro_posterior)
        live_regime.append(-1 if snap.macro_state is None else snap.macro_state)
    assert tracker.session_breaks == int(starts.sum())
    valid_post = post[macro.valid]
    assert len(live_macro) == len(valid_post) > 50
    np.testing.assert_allclose(np.array(live_macro), valid_post, rtol=1e-6, atol=1e-9)
    assert len(live_regime) == len(regime)
    assert live_regime == regime.tolist()


def test_flags_take_the_overnight_moves_out_of_the_fitted_one_bar_return(trained, btc_1m: BarArrays) -> None:
    bars, starts, model = trained
    plain = prepare_level("micro", bars, SMALL_SPEC, 300, 60)
    glued = prepare_level("micro", bars, SMALL_SPEC, 300, 60, session_starts=starts)
    first = np.flatnonzero(glued.bars.ts_open_ns[1:] - glued.bars.ts_open_ns[:-1] > 3600 * NS) + 1
    moves = np.abs(plain.raw[first, 0])
    assert moves.mean() > 3 * np.abs(glued.raw[first, 0]).mean()  # overnight moves are real and large
    assert model.micro.scaler.std[0] == pytest.approx(glued.scaler.std[0])
    assert glued.scaler.std[0] < plain.scaler.std[0]
