"""Online forward filter of a Gaussian HMM in numpy: filtered posteriors, never smoothed.

The posterior at bar t is P(state_t | x_1..x_t): it uses no later bar. Each update costs
O(K^2) for the prediction (posterior @ transmat) plus O(K·D^2) for the emission densities,
with the Cholesky factors of the covariances inverted once at construction. The recursion
is scaled: emission log-densities are shifted by their maximum before exponentiation and
the shift is added back to the log-likelihood, so it neither underflows nor overflows.
An observation with any NaN is treated as missing: the posterior becomes the prediction
and the log-likelihood is unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from nautilus_hmm.hmm.errors import ModelError

LOG_2PI = math.log(2.0 * math.pi)
STOCHASTIC_TOL = 1e-6
SYMMETRY_TOL = 1e-9


def _finite_array(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelError(name, f"not a numeric array: {exc}") from exc
    if arr.shape != shape:
        raise ModelError(name, f"shape {arr.shape}, expected {shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise ModelError(f"{name}{list(idx)}", f"{float(arr[idx])!r} is not finite")
    return arr


def validate_hmm_params(startprob: object, transmat: object, means: object, covars: object,
                        prefix: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes, stochastic rows (1e-6), symmetric positive-definite covariances.

    Returns float64 copies; raises ModelError naming the field (with `prefix`).
    """
    try:
        m = np.asarray(means, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{prefix}means", f"not a numeric array: {exc}") from exc
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ModelError(f"{prefix}means", f"shape {np.shape(means)}, expected (n_states, n_features)")
    k, d = m.shape
    means_a = _finite_array(f"{prefix}means", means, (k, d))
    start = _finite_array(f"{prefix}startprob", startprob, (k,))
    trans = _finite_array(f"{prefix}transmat", transmat, (k, k))
    cov = _finite_array(f"{prefix}covars", covars, (k, d, d))
    if (start < 0).any():
        raise ModelError(f"{prefix}startprob", f"negative probability {float(start.min())!r}")
    if abs(start.sum() - 1.0) > STOCHASTIC_TOL:
        raise ModelError(f"{prefix}startprob", f"sums to {float(start.sum())!r}, expected 1 within {STOCHASTIC_TOL}")
    if (trans < 0).any():
        i = int(np.argwhere(trans < 0)[0][0])
        raise ModelError(f"{prefix}transmat[{i}]", f"negative probability {float(trans[i].min())!r}")
    sums = trans.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > STOCHASTIC_TOL)
    if bad.size:
        i = int(bad[0])
        raise ModelError(f"{prefix}transmat[{i}]", f"row sums to {float(sums[i])!r}, expected 1 within {STOCHASTIC_TOL}")
    for i in range(k):
        c = cov[i]
        scale = max(1.0, float(np.abs(c).max()))
        asym = float(np.abs(c - c.T).max())
        if asym > SYMMETRY_TOL * scale:
            raise ModelError(f"{prefix}covars[{i}]", f"not symmetric (max |C - C^T| = {asym:.3g})")
        try:
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            eig = float(np.linalg.eigvalsh(0.5 * (c + c.T)).min())
            raise ModelError(f"{prefix}covars[{i}]",
                             f"not positive-definite (smallest eigenvalue {eig:.3g})") from None
    return start, trans, means_a, cov


class ForwardFilter:
    """Filtered state posteriors of a Gaussian HMM, one observation at a time."""

    __slots__ = ("_b", "_linv", "_loglik", "_lognorm", "_n_missing", "_n_updates", "_post",
                 "covars", "means", "n_features", "n_states", "startprob", "transmat")

    def __init__(self, startprob: object, transmat: object, means: object, covars: object) -> None:
        start, trans, mu, cov = validate_hmm_params(startprob, transmat, means, covars)
        self.startprob, self.transmat, self.means, self.covars = start, trans, mu, cov
        self.n_states, self.n_features = mu.shape
        chol = np.linalg.cholesky(cov)  # (K, D, D) lower
        eye = np.broadcast_to(np.eye(self.n_features), chol.shape)
        self._linv = np.linalg.solve(chol, eye)  # L^-1, so |L^-1 (x - mu)|^2 is the Mahalanobis term
        self._b = np.einsum("kij,kj->ki", self._linv, mu)
        logdet_half = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        self._lognorm = -0.5 * self.n_features * LOG_2PI - logdet_half
        self.reset()

    def reset(self) -> None:
        """Forget all observations (the next update starts from startprob)."""
        self._post: np.ndarray | None = None
        self._loglik = 0.0
        self._n_updates = 0
        self._n_missing = 0

    @property
    def posterior(self) -> np.ndarray | None:
        """Filtered posterior after the last update (a copy), None before the first."""
        return None if self._post is None else self._post.copy()

    @property
    def log_likelihood(self) -> float:
        """log p(x_1..x_t) accumulated over the updates so far (missing bars add nothing)."""
        return self._loglik

    @property
    def n_updates(self) -> int:
        """Observations fed, including missing ones."""
        return self._n_updates

    @property
    def n_missing(self) -> int:
        """Observations that were NaN and only advanced the prediction."""
        return self._n_missing

    def predict(self) -> np.ndarray:
        """State probabilities for the next bar before seeing it."""
        return self.startprob.copy() if self._post is None else self._post @ self.transmat

    def emission_log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """log N(x | mu_k, Sigma_k) for one row (K,) or a matrix (T, K)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            z = self._linv @ x - self._b
            return self._lognorm - 0.5 * np.einsum("ki,ki->k", z, z)
        z = np.einsum("kij,tj->tki", self._linv, x) - self._b
        return self._lognorm - 0.5 * np.einsum("tki,tki->tk", z, z)

    def update(self, x: np.ndarray) -> np.ndarray:
        """Feed one observation (D,); return the filtered posterior (K,)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_features,):
            raise ValueError(f"observation shape {x.shape}, expected ({self.n_features},)")
        pred = self.startprob if self._post is None else self._post @ self.transmat
        self._n_updates += 1
        if np.isnan(x).any():
            self._n_missing += 1
            self._post = pred.copy() if self._post is None else pred
            return self._post.copy()
        ll = self.emission_log_likelihood(x)
        self._post, step = _combine(pred, ll)
        self._loglik += step
        return self._post.copy()

    def filter_sequence(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Batch filter from startprob over (T, D): posteriors (T, K) and the log-likelihood.

        Does not touch the online state.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"observations shape {x.shape}, expected (T, {self.n_features})")
        missing = np.isnan(x).any(axis=1)
        ll_all = self.emission_log_likelihood(np.where(missing[:, None], 0.0, x))
        post = np.empty((x.shape[0], self.n_states))
        a = self.transmat
        p = self.startprob
        total = 0.0
        for t in range(x.shape[0]):
            if t:
                p = post[t - 1] @ a
            if missing[t]:
                post[t] = p
                continue
            post[t], step = _combine(p, ll_all[t])
            total += step
        return post, total


def _combine(pred: np.ndarray, ll: np.ndarray) -> tuple[np.ndarray, float]:
    """Posterior ∝ pred · exp(ll) and log Σ pred·exp(ll), computed without underflow."""
    m = ll.max()
    w = pred * np.exp(ll - m)
    s = w.sum()
    if s > 0.0 and math.isfinite(s):
        return w / s, m + math.log(s)
    # Only states with ~zero prior explain x: redo in log space.
    with np.errstate(divide="ignore"):
        la = np.log(pred) + ll
    m = la.max()
    w = np.exp(la - m)
    s = w.sum()
    return w / s, m + math.log(s)


def filter_sequence(startprob: object, transmat: object, means: object, covars: object,
                    x: np.ndarray) -> tuple[np.ndarray, float]:
    """Filtered posteriors (T, K) and log-likelihood of (T, D) observations."""
    return ForwardFilter(startprob, transmat, means, covars).filter_sequence(x)
