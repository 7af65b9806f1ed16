"""Partial update: EM warm-started from the production model on a recent window."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.hmm.train import prepare_level, train_model
from nautilus_hmm.marketdata.replay import BarArrays
from tests.unit.hmm.conftest import SMALL_BARS, SMALL_CFG, SMALL_SPEC

pytest.importorskip("pomegranate")


@pytest.fixture(scope="module")
def updated(btc_1m: BarArrays, small_training: tuple[BarArrays, RegimeModel]) -> tuple[BarArrays, RegimeModel]:
    _, parent = small_training
    window = btc_1m.slice(SMALL_BARS, 2 * SMALL_BARS)
    cfg = dataclasses.replace(SMALL_CFG, update_max_iter=5, n_restarts=3)
    return window, train_model(window, SMALL_SPEC, cfg, instrument="binance_spot:BTCUSDT", parent=parent)


def test_an_update_keeps_the_parents_features_scalers_and_structure(
        small_training: tuple[BarArrays, RegimeModel], updated: tuple[BarArrays, RegimeModel]) -> None:
    _, parent = small_training
    _, child = updated
    assert child.macro.features == parent.macro.features and child.micro.features == parent.micro.features
    np.testing.assert_array_equal(child.macro.scaler.mean, parent.macro.scaler.mean)
    np.testing.assert_array_equal(child.micro.scaler.std, parent.micro.scaler.std)
    assert (child.macro.interval_s, child.micro.interval_s) == (parent.macro.interval_s, parent.micro.interval_s)
    assert child.macro.hmm.fit.n_restarts == 1 and child.macro.hmm.fit.n_iter <= 5


def test_an_update_fits_the_recent_window_at_least_as_well_as_its_parent(
        small_training: tuple[BarArrays, RegimeModel], updated: tuple[BarArrays, RegimeModel]) -> None:
    _, parent = small_training
    window, child = updated
    macro = prepare_level("macro", window, SMALL_SPEC, 1800, 60, scaler=parent.macro.scaler)
    z = macro.z[macro.valid]
    _, ll_parent = parent.macro.hmm.filter().filter_sequence(z)
    _, ll_child = child.macro.hmm.filter().filter_sequence(z)
    assert ll_child >= ll_parent - 1.0
    assert child.training.data_sha256 == window.sha256()


def test_min_training_bars_is_enough_for_the_small_config_and_its_lower_bound_is_refused(
        btc_1m: BarArrays) -> None:
    from nautilus_hmm.hmm.errors import TrainingError
    from nautilus_hmm.hmm.train import min_training_bars

    need = min_training_bars(SMALL_CFG, SMALL_SPEC)
    assert 0 < need <= SMALL_BARS
    with pytest.raises(TrainingError, match="too few"):
        train_model(btc_1m.slice(0, need - 300), SMALL_SPEC, SMALL_CFG)
