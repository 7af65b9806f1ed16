"""Training: pomegranate Baum-Welch with restarts, canonical states, hierarchy, clear errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nautilus_hmm.hmm.errors import TrainingError
from nautilus_hmm.hmm.features import compute_batch
from nautilus_hmm.hmm.filter import ForwardFilter
from nautilus_hmm.hmm.model import RegimeModel, load_model
from nautilus_hmm.hmm.train import (
    FitResult,
    _chunks,
    best_by_bic,
    canonical_order,
    fit_hmm,
    macro_regime_per_micro_bar,
    prepare_level,
    runs,
    select_n_states,
    stationary_distribution,
    train_model,
)
from nautilus_hmm.marketdata.replay import BarArrays, BarDataError
from tests.conftest import REPO
from tests.unit.hmm.conftest import SMALL_BARS, SMALL_CFG, SMALL_SPEC

pytest.importorskip("pomegranate")


def two_state_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A sticky 2-state chain with well separated 2-D Gaussian emissions."""
    rng = np.random.default_rng(seed)
    states = np.empty(n, dtype=int)
    states[0] = 0
    for t in range(1, n):
        states[t] = states[t - 1] if rng.random() < 0.95 else 1 - states[t - 1]
    means = np.array([[-2.0, 0.0], [2.0, 1.0]])
    x = means[states] + rng.normal(0.0, 0.5, size=(n, 2))
    return x, states


FAST = dataclasses.replace(SMALL_CFG, n_restarts=2, max_iter=30)


def test_fit_recovers_a_known_two_state_chain() -> None:
    x, states = two_state_data(1500)
    fit = fit_hmm([x], 2, FAST)
    order = np.argsort(fit.means[:, 0])
    np.testing.assert_allclose(fit.means[order], [[-2.0, 0.0], [2.0, 1.0]], atol=0.1)
    np.testing.assert_allclose(np.diag(fit.transmat[np.ix_(order, order)]), [0.95, 0.95], atol=0.03)
    np.testing.assert_allclose(fit.transmat.sum(axis=1), 1.0, atol=1e-12)
    post, loglik = ForwardFilter(fit.startprob, fit.transmat, fit.means, fit.covars).filter_sequence(x)
    assert fit.log_likelihood == pytest.approx(loglik)
    assert (order[post.argmax(axis=1)] == states).mean() > 0.97


def test_restarts_are_seeded_and_the_best_log_likelihood_wins() -> None:
    x, _ = two_state_data(800, seed=2)
    a = fit_hmm([x], 3, FAST)
    b = fit_hmm([x], 3, FAST)
    np.testing.assert_array_equal(a.means, b.means)
    single = [fit_hmm([x], 3, dataclasses.replace(FAST, n_restarts=1, seed=FAST.seed + r))
              for r in range(FAST.n_restarts)]
    assert a.log_likelihood == pytest.approx(max(s.log_likelihood for s in single))


def test_exported_startprob_is_the_stationary_distribution() -> None:
    x, _ = two_state_data(800, seed=3)
    fit = fit_hmm([x], 2, FAST)
    np.testing.assert_allclose(fit.startprob @ fit.transmat, fit.startprob, atol=1e-10)
    np.testing.assert_allclose(stationary_distribution(np.array([[0.9, 0.1], [0.3, 0.7]])), [0.75, 0.25])


def test_canonical_order_sorts_by_mean_return_then_volatility() -> None:
    from nautilus_hmm.hmm.features import Scaler

    means = np.array([[0.5, 0.0], [-1.0, 0.0], [0.5, 0.0], [0.0, 0.0]])
    covars = np.array([np.diag([4.0, 1.0]), np.eye(2), np.diag([1.0, 1.0]), np.eye(2)])
    fit = FitResult(np.full(4, 0.25), np.full((4, 4), 0.25), means, covars, -1.0, 10, 1, True, 1, 0)
    order = canonical_order(fit, Scaler(mean=np.zeros(2), std=np.ones(2)))
    assert order.tolist() == [1, 3, 2, 0]


def test_chunks_bound_the_number_of_distinct_lengths() -> None:
    seqs = [np.zeros((n, 1)) for n in (5, 37, 300, 129, 1000)]
    groups = _chunks(seqs, 128)
    assert set(groups) <= {128, 64, 32, 16, 8, 4, 2}
    covered = sum(g.shape[0] * g.shape[1] for g in groups.values())
    assert sum(s.shape[0] for s in seqs) - covered <= len(seqs)  # at most one lone bar per sequence


def test_trained_model_is_complete_and_loads_with_numpy(small_training: tuple[BarArrays, RegimeModel],
                                                        tmp_path: Path) -> None:
    bars, model = small_training
    assert model.macro.hmm.labels == ("down", "up")
    assert len(model.micro.hmms) == 2
    assert [h.n_states for h in model.micro.hmms] == [2, 2]
    means = [s.mean_return for s in model.macro.hmm.states]
    assert means == sorted(means)
    assert model.training.first_ts_ns == int(bars.ts_open_ns[0])
    assert model.training.last_ts_ns == int(bars.ts_open_ns[-1])
    assert model.training.data_sha256 == bars.sha256()
    assert model.training.n_bars == SMALL_BARS
    assert set(model.library_versions) >= {"numpy", "pomegranate", "torch"}
    for h in (model.macro.hmm, *model.micro.hmms):
        assert h.fit.n_iter >= 1 and np.isfinite(h.fit.bic)
        assert all(s.volatility > 0 and s.expected_dwell_bars >= 1 for s in h.states)
        assert sum(s.occupancy for s in h.states) == pytest.approx(1.0)
    again = load_model(model.save(tmp_path / "model.json"))
    assert again.to_json() == model.to_json()


def test_reported_log_likelihood_is_the_numpy_filters_on_the_training_bars(
        small_training: tuple[BarArrays, RegimeModel]) -> None:
    bars, model = small_training
    raw = compute_batch(SMALL_SPEC, prepare_level("macro", bars, SMALL_SPEC, 1800, 60).bars)
    z = model.macro.scaler.transform(raw[SMALL_SPEC.warmup_bars:])
    _, loglik = model.macro.hmm.filter().filter_sequence(z)
    assert model.macro.hmm.fit.log_likelihood == pytest.approx(loglik, rel=1e-9)
    assert model.macro.hmm.fit.n_obs == z.shape[0]


def test_fast_bars_get_the_macro_regime_known_when_they_closed(
        small_training: tuple[BarArrays, RegimeModel]) -> None:
    bars, model = small_training
    macro = prepare_level("macro", bars, SMALL_SPEC, 1800, 60, scaler=model.macro.scaler)
    micro = prepare_level("micro", bars, SMALL_SPEC, 300, 60, scaler=model.micro.scaler)
    regime = macro_regime_per_micro_bar(macro, model.macro.hmm, micro, 1800, 300)
    warm = SMALL_SPEC.warmup_bars
    post, _ = model.macro.hmm.filter().filter_sequence(macro.z[warm:])
    macro_argmax = np.r_[np.full(warm, -1), post.argmax(axis=1)]
    macro_close = macro.bars.ts_open_ns + 1800 * 10**9
    expected = []
    k = -1
    for close in micro.bars.ts_open_ns + 300 * 10**9:
        while k + 1 < len(macro_close) and macro_close[k + 1] <= close:
            k += 1
        expected.append(-1 if k < 0 else int(macro_argmax[k]))
    assert regime.tolist() == expected
    assert (regime == -1).sum() >= warm * 6 and len(set(expected) - {-1}) == 2


def test_a_regime_with_too_few_fast_bars_gets_the_pooled_micro_model(
        small_training: tuple[BarArrays, RegimeModel]) -> None:
    bars, model = small_training
    macro = prepare_level("macro", bars, SMALL_SPEC, 1800, 60, scaler=model.macro.scaler)
    micro = prepare_level("micro", bars, SMALL_SPEC, 300, 60, scaler=model.micro.scaler)
    regime = macro_regime_per_micro_bar(macro, model.macro.hmm, micro, 1800, 300)
    counts = [int(((regime == r) & micro.valid).sum()) for r in range(2)]
    small = min(counts)
    # Raise the bar so the smaller regime no longer qualifies (the pooled data still does).
    cfg = dataclasses.replace(SMALL_CFG, min_regime_bars=small + 1, n_restarts=1, max_iter=5)
    pooled = train_model(bars, SMALL_SPEC, cfg)
    sources = [h.fit.source for h in pooled.micro.hmms]
    assert sorted(sources) == ["pooled", "trained"]
    assert pooled.micro.hmms[int(np.argmin(counts))].fit.source == "pooled"


def test_too_little_data_for_k_and_the_windows_is_a_clear_error(btc_1m: BarArrays) -> None:
    with pytest.raises(TrainingError, match=r"macro \(1800 s bars\): \d+ usable bars \(after a 8-bar "
                                            r"feature warm-up\) are too few for K=2 states"):
        train_model(btc_1m.slice(0, 1440), SMALL_SPEC, SMALL_CFG)


def test_nan_bars_are_rejected_naming_the_index(btc_1m: BarArrays) -> None:
    bars = btc_1m.slice(0, 3000)
    close = bars.close.copy()
    close[1234] = np.nan
    bad = BarArrays(bars.ts_open_ns, bars.open, bars.high, bars.low, close, bars.volume)
    with pytest.raises(BarDataError, match=r"bars\.close\[1234\]: nan"):
        train_model(bad, SMALL_SPEC, SMALL_CFG)


def test_non_finite_feature_rows_are_rejected_by_the_fitter() -> None:
    x, _ = two_state_data(300)
    x[17, 1] = np.inf
    with pytest.raises(TrainingError, match="row 17 column 1 is inf"):
        fit_hmm([x], 2, FAST)


def test_bars_off_the_base_interval_grid_are_rejected(btc_1m: BarArrays) -> None:
    bars = btc_1m.slice(0, 3000)
    ts = bars.ts_open_ns.copy()
    ts[100:] += 30 * 10**9
    shifted = BarArrays(ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
    with pytest.raises(TrainingError, match=r"bars\.ts_open_ns\[100\]"):
        train_model(shifted, SMALL_SPEC, SMALL_CFG)


def test_model_selection_prefers_the_true_number_of_states() -> None:
    x, _ = two_state_data(1200, seed=4)
    scores = select_n_states(x, (1, 2, 3), dataclasses.replace(FAST, n_restarts=1, max_iter=20))
    assert [s.n_states for s in scores] == [1, 2, 3]
    assert best_by_bic(scores).n_states == 2
    assert scores[1].heldout_loglik_per_bar > scores[0].heldout_loglik_per_bar + 0.5


def test_runs_finds_true_stretches() -> None:
    assert runs(np.array([False, True, True, False, True])) == [(1, 3), (4, 5)]
    assert runs(np.array([], dtype=bool)) == []


def test_diag_training_gives_diagonal_covariances_stored_as_full_matrices() -> None:
    x, _ = two_state_data(600, seed=5)
    fit = fit_hmm([x], 2, dataclasses.replace(FAST, covariance_type="diag"))
    assert fit.covars.shape == (2, 2, 2)
    assert (fit.covars[:, 0, 1] == 0).all() and (fit.covars[:, 1, 0] == 0).all()
    assert (np.diagonal(fit.covars, axis1=1, axis2=2) > 0).all()


def test_pomegranate_is_imported_without_apricot_which_still_loads_when_asked_for() -> None:
    # apricot (sklearn, scipy.stats, numba kernels compiled at import) cost 2-4 s per worker.
    code = """
import sys
import numpy as np
from nautilus_hmm.hmm.config import HmmTrainConfig
from nautilus_hmm.hmm.train import fit_hmm
x = np.random.default_rng(0).normal(size=(300, 2))
fit_hmm([x], 2, HmmTrainConfig(n_restarts=1, max_iter=3))
import pomegranate._utils as u
from pomegranate.hmm import DenseHMM
print(sorted({m.split('.')[0] for m in sys.modules} & {'apricot', 'sklearn', 'numba'}))
import apricot
print(getattr(apricot, '_nautilus_placeholder', False), apricot.FacilityLocationSelection.__module__)
print(type(u.FacilityLocationSelection(2)).__module__)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-3:] == ["[]", "False apricot.functions.facilityLocation",
                                             "apricot.functions.facilityLocation"]
