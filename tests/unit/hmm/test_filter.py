"""Forward filter: equals hmmlearn's and pomegranate's forward pass; never looks ahead."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hmmlearn import _hmmc
from hmmlearn.hmm import GaussianHMM

from nautilus_hmm.hmm.errors import ModelError
from nautilus_hmm.hmm.filter import ForwardFilter, filter_sequence

K, D, T = 3, 4, 400


def random_params(covariance_type: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    start = rng.dirichlet(np.ones(K))
    trans = rng.dirichlet(np.ones(K), size=K) + 4.0 * np.eye(K)
    trans /= trans.sum(axis=1, keepdims=True)
    means = rng.normal(0.0, 1.5, size=(K, D))
    if covariance_type == "full":
        m = rng.normal(size=(K, D, D))
        covars = m @ m.transpose(0, 2, 1) + 0.3 * np.eye(D)
    else:
        covars = np.array([np.diag(rng.uniform(0.2, 2.0, D)) for _ in range(K)])
    return start, trans, means, covars


def hmmlearn_model(params: tuple[np.ndarray, ...], covariance_type: str) -> GaussianHMM:
    start, trans, means, covars = params
    m = GaussianHMM(n_components=K, covariance_type=covariance_type)
    m.n_features = D
    m.startprob_, m.transmat_, m.means_ = start, trans, means
    m.covars_ = covars if covariance_type == "full" else np.diagonal(covars, axis1=1, axis2=2)
    return m


def normalized(log_alpha: np.ndarray) -> np.ndarray:
    mx = log_alpha.max(axis=1, keepdims=True)
    a = np.exp(log_alpha - mx)
    return a / a.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_filtered_posteriors_and_loglik_equal_hmmlearn_forward_pass(covariance_type: str) -> None:
    params = random_params(covariance_type)
    ref = hmmlearn_model(params, covariance_type)
    x, _ = ref.sample(T, random_state=1)
    # hmmlearn's predict_proba is smoothed; the filtered posterior is the normalized alpha.
    log_prob, fwd = _hmmc.forward_log(ref.startprob_, ref.transmat_, ref._compute_log_likelihood(x))
    post, loglik = filter_sequence(*params, x)
    np.testing.assert_allclose(post, normalized(fwd), atol=1e-6)
    assert loglik == pytest.approx(log_prob, abs=1e-6)
    assert loglik == pytest.approx(ref.score(x), abs=1e-6)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_filtered_posteriors_and_loglik_equal_pomegranate_forward_pass(covariance_type: str) -> None:
    torch = pytest.importorskip("torch")
    from nautilus_hmm.hmm.train import import_pomegranate

    import_pomegranate()  # as the training worker does: without apricot's 8 s of numba compiling
    from pomegranate.distributions import Normal
    from pomegranate.hmm import DenseHMM

    start, trans, means, covars = params = random_params(covariance_type, seed=5)
    x, _ = hmmlearn_model(params, covariance_type).sample(T, random_state=2)
    dists = [
        Normal(
            means=torch.tensor(means[k], dtype=torch.float64),
            covs=torch.tensor(covars[k] if covariance_type == "full" else np.diag(covars[k]),
                              dtype=torch.float64),
            covariance_type=covariance_type,
        )
        for k in range(K)
    ]
    hmm = DenseHMM(dists, edges=trans, starts=start, ends=np.ones(K)).double()
    log_alpha = hmm.forward(torch.tensor(x[None], dtype=torch.float64))[0].numpy()
    post, loglik = filter_sequence(*params, x)
    np.testing.assert_allclose(post, normalized(log_alpha), atol=1e-6)
    top = log_alpha[-1].max()
    assert loglik == pytest.approx(top + math.log(np.exp(log_alpha[-1] - top).sum()), abs=1e-6)


def test_online_updates_equal_the_batch_filter() -> None:
    params = random_params("full")
    x, _ = hmmlearn_model(params, "full").sample(T, random_state=3)
    f = ForwardFilter(*params)
    online = np.array([f.update(row) for row in x])
    post, loglik = f.filter_sequence(x)
    np.testing.assert_allclose(online, post, atol=1e-12)
    assert f.log_likelihood == pytest.approx(loglik, abs=1e-9)
    assert f.n_updates == T


def test_posterior_at_t_is_unchanged_when_later_bars_are_altered() -> None:
    params = random_params("full")
    x, _ = hmmlearn_model(params, "full").sample(T, random_state=4)
    altered = x.copy()
    altered[200:] = np.random.default_rng(9).normal(5.0, 3.0, size=altered[200:].shape)
    post_a, _ = filter_sequence(*params, x)
    post_b, _ = filter_sequence(*params, altered)
    np.testing.assert_array_equal(post_a[:200], post_b[:200])
    assert np.abs(post_a[200:] - post_b[200:]).max() > 1e-3


def test_nan_observation_only_advances_the_prediction() -> None:
    params = random_params("diag")
    x, _ = hmmlearn_model(params, "diag").sample(10, random_state=5)
    f = ForwardFilter(*params)
    for row in x[:5]:
        f.update(row)
    expected_prior = f.predict()
    loglik_before = f.log_likelihood
    row = x[5].copy()
    row[1] = np.nan
    post = f.update(row)
    np.testing.assert_allclose(post, expected_prior)
    assert f.log_likelihood == loglik_before
    assert f.n_missing == 1


def test_far_outlier_does_not_underflow() -> None:
    params = random_params("full")
    f = ForwardFilter(*params)
    post = f.update(np.full(D, 1e4))
    assert np.isfinite(post).all() and post.sum() == pytest.approx(1.0)
    assert math.isfinite(f.log_likelihood) and f.log_likelihood < -1e5


def test_first_update_uses_startprob_and_reset_forgets() -> None:
    start, trans, means, covars = random_params("full")
    f = ForwardFilter(start, trans, means, covars)
    x = means[1]
    first = f.update(x)
    f.update(x)
    f.reset()
    assert f.posterior is None and f.log_likelihood == 0.0
    np.testing.assert_array_equal(f.update(x), first)
    ll = f.emission_log_likelihood(x)
    np.testing.assert_allclose(first, start * np.exp(ll) / (start * np.exp(ll)).sum())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p[1].__setitem__((1, 0), p[1][1, 0] + 0.01), r"transmat\[1\]: row sums to"),
        (lambda p: p[0].__setitem__(0, p[0][0] + 0.1), r"startprob: sums to"),
        (lambda p: p[3].__setitem__((2, 0, 1), p[3][2, 0, 1] + 0.5), r"covars\[2\]: not symmetric"),
        (lambda p: p[3].__setitem__(1, -np.eye(D)), r"covars\[1\]: not positive-definite"),
        (lambda p: p[2].__setitem__((0, 3), np.nan), r"means\[0, 3\]: nan is not finite"),
    ],
)
def test_invalid_parameters_are_rejected_naming_the_field(mutate, message: str) -> None:
    params = [p.copy() for p in random_params("full")]
    mutate(params)
    with pytest.raises(ModelError, match=message):
        ForwardFilter(*params)


def test_mismatched_shapes_are_rejected() -> None:
    start, trans, means, covars = random_params("full")
    with pytest.raises(ModelError, match=r"covars: shape \(3, 4, 3\)"):
        ForwardFilter(start, trans, means, covars[:, :, :3])
