"""The exported regime model: one JSON file, loadable with numpy alone.

A `RegimeModel` holds a macro HMM on slow bars and one micro HMM per macro regime on fast
bars, each level with its feature spec and scaler, plus per-state statistics measured on
the training data, the training window and data hash, fit quality and library versions.
Covariances are always stored full (K x D x D), also when trained diagonal. Loading
validates everything and raises ModelError naming the field (dotted path) and the
problem. The format is documented in docs/MODEL_FORMAT.md.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from nautilus_hmm.hmm.errors import FeatureError, ModelError
from nautilus_hmm.hmm.features import FeatureSpec, Scaler
from nautilus_hmm.hmm.filter import ForwardFilter, validate_hmm_params

FORMAT_VERSION = 1
MODEL_KIND = "nautilus_hmm.regime_model"
COVARIANCE_TYPES = ("full", "diag")
FIT_SOURCES = ("trained", "pooled")


def hmm_n_params(n_states: int, n_features: int, covariance_type: str) -> int:
    """Free parameters of a Gaussian HMM (for BIC)."""
    k, d = n_states, n_features
    cov = k * d if covariance_type == "diag" else k * d * (d + 1) // 2
    return (k - 1) + k * (k - 1) + k * d + cov


def bic(log_likelihood: float, n_params: int, n_obs: int) -> float:
    """Bayesian information criterion: -2 LL + p ln n (lower is better)."""
    return float(-2.0 * log_likelihood + n_params * math.log(max(n_obs, 1)))


@dataclass(frozen=True, slots=True)
class StateStats:
    """What a state meant on the training data (per bar of its level, log returns)."""

    label: str
    mean_return: float  # posterior-weighted mean 1-bar log return in the state
    volatility: float  # posterior-weighted std of the 1-bar log return in the state
    expected_next_return: float  # mean return of the NEXT bar given the filtered state now
    dwell_bars: float  # mean run length of the filtered argmax on the training data
    expected_dwell_bars: float  # 1 / (1 - transmat[k, k])
    occupancy: float  # share of training bars whose filtered argmax is this state

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class FitInfo:
    """How the HMM was fitted and how well."""

    log_likelihood: float  # numpy forward filter over the training sequences, exported params
    bic: float
    n_obs: int
    n_params: int
    n_iter: int
    converged: bool
    n_restarts: int
    best_restart: int
    source: str = "trained"  # "pooled": too few bars in this macro regime, pooled micro model used

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class HmmParams:
    """One Gaussian HMM: parameters in standardised feature units, states in canonical order."""

    covariance_type: str
    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    covars: np.ndarray  # (K, D, D) always
    states: tuple[StateStats, ...]
    fit: FitInfo

    def __post_init__(self) -> None:
        validate_hmm_params(self.startprob, self.transmat, self.means, self.covars)

    @property
    def n_states(self) -> int:
        """K."""
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        """D."""
        return int(self.means.shape[1])

    @property
    def labels(self) -> tuple[str, ...]:
        """State labels in index order."""
        return tuple(s.label for s in self.states)

    def filter(self) -> ForwardFilter:
        """A fresh forward filter for these parameters."""
        return ForwardFilter(self.startprob, self.transmat, self.means, self.covars)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "n_states": self.n_states,
            "n_features": self.n_features,
            "covariance_type": self.covariance_type,
            "startprob": self.startprob.tolist(),
            "transmat": self.transmat.tolist(),
            "means": self.means.tolist(),
            "covars": self.covars.tolist(),
            "states": [s.to_dict() for s in self.states],
            "fit": self.fit.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class MacroLevel:
    """The macro model: slow bars, their features and scaler, one HMM."""

    interval_s: int
    features: FeatureSpec
    scaler: Scaler
    hmm: HmmParams

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"interval_s": self.interval_s, "features": self.features.to_dict(),
                "scaler": self.scaler.to_dict(), "hmm": self.hmm.to_dict()}


@dataclass(frozen=True, slots=True)
class MicroLevel:
    """The micro models: fast bars, shared features and scaler, one HMM per macro regime."""

    interval_s: int
    features: FeatureSpec
    scaler: Scaler
    hmms: tuple[HmmParams, ...]  # index = macro state

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"interval_s": self.interval_s, "features": self.features.to_dict(),
                "scaler": self.scaler.to_dict(), "hmms": [h.to_dict() for h in self.hmms]}


@dataclass(frozen=True, slots=True)
class TrainingInfo:
    """Provenance: which bars, which settings."""

    first_ts_ns: int
    last_ts_ns: int
    n_bars: int
    data_sha256: str
    config: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"first_ts_ns": self.first_ts_ns, "last_ts_ns": self.last_ts_ns, "n_bars": self.n_bars,
                "data_sha256": self.data_sha256, "config": self.config, "duration_s": self.duration_s}


@dataclass(frozen=True, slots=True)
class RegimeModel:
    """The whole artifact: macro + micro HMMs with provenance."""

    created_at: str
    instrument: str | None
    base_interval_s: int
    macro: MacroLevel
    micro: MicroLevel
    training: TrainingInfo
    library_versions: dict[str, str]
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        _check_structure(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the file format)."""
        return {
            "kind": MODEL_KIND,
            "format_version": self.format_version,
            "created_at": self.created_at,
            "instrument": self.instrument,
            "base_interval_s": self.base_interval_s,
            "macro": self.macro.to_dict(),
            "micro": self.micro.to_dict(),
            "training": self.training.to_dict(),
            "library_versions": dict(self.library_versions),
        }

    def to_json(self) -> bytes:
        """The file bytes (indented, keys in a stable order)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @property
    def content_sha256(self) -> str:
        """sha256 of the file bytes: a stable id of this model."""
        return hashlib.sha256(self.to_json()).hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file, fsync, rename); returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        data = self.to_json()
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        return p

    @classmethod
    def from_json(cls, data: bytes | str, source: str = "") -> RegimeModel:
        """Parse and validate file bytes; raises ModelError naming the field."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ModelError("<file>", f"not valid JSON: {exc}", source) from exc
        return cls.from_dict(obj, source)

    @classmethod
    def from_dict(cls, obj: Any, source: str = "") -> RegimeModel:
        """Validate a decoded model; raises ModelError naming the field."""
        try:
            return _parse_model(obj)
        except ModelError as exc:
            if source and not exc.source:
                raise ModelError(exc.field, exc.problem, source) from None
            raise


def load_model(path: str | Path) -> RegimeModel:
    """Read and validate a model file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError("<file>", f"cannot read: {exc.strerror or exc}", str(p)) from exc
    return RegimeModel.from_json(data, str(p))


# ---------------------------------------------------------------- parsing and validation


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               dict: "an object", list: "an array"}


def _get(obj: Mapping[str, Any], key: str, tp: type, path: str) -> Any:
    where = f"{path}{key}"
    if key not in obj:
        raise ModelError(where, "missing")
    value = obj[key]
    ok = isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ModelError(where, f"expected {_TYPE_NAMES[tp]}, got {value!r:.60}")
    if tp is float and not math.isfinite(value):
        raise ModelError(where, f"{value!r} is not finite")
    return value


def _keys(obj: Any, path: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ModelError(path.rstrip(".") or "<root>", f"expected an object, got {type(obj).__name__}")
    extra = sorted(set(obj) - set(known))
    if extra:
        raise ModelError(f"{path}{extra[0]}", "unknown key")
    return obj


def _frozen(value: Any) -> np.ndarray:
    arr = np.array(value, dtype=np.float64)
    arr.flags.writeable = False
    return arr


def _parse_scaler(obj: Any, path: str, n_features: int) -> Scaler:
    obj = _keys(obj, path, ("mean", "std"))
    out = []
    for key in ("mean", "std"):
        raw = _get(obj, key, list, path)
        try:
            arr = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{path}{key}", f"not a numeric array: {exc}") from exc
        if arr.shape != (n_features,):
            raise ModelError(f"{path}{key}", f"length {arr.shape}, expected ({n_features},) = feature count")
        if not np.isfinite(arr).all():
            raise ModelError(f"{path}{key}", "contains a non-finite value")
        out.append(_frozen(arr))
    if (out[1] <= 0).any():
        raise ModelError(f"{path}std", f"must be > 0 (found {float(out[1].min())!r})")
    return Scaler(mean=out[0], std=out[1])


def _parse_features(obj: Any, path: str) -> FeatureSpec:
    try:
        return FeatureSpec.from_dict(obj)
    except FeatureError as exc:
        raise ModelError(f"{path}{exc.field}", exc.problem) from None
    except TypeError as exc:
        raise ModelError(path.rstrip("."), str(exc)) from None


_STATE_KEYS = ("label", "mean_return", "volatility", "expected_next_return", "dwell_bars",
               "expected_dwell_bars", "occupancy")
_FIT_KEYS = ("log_likelihood", "bic", "n_obs", "n_params", "n_iter", "converged", "n_restarts",
             "best_restart", "source")


def _parse_hmm(obj: Any, path: str, n_features: int) -> HmmParams:
    obj = _keys(obj, path, ("n_states", "n_features", "covariance_type", "startprob", "transmat",
                            "means", "covars", "states", "fit"))
    k = _get(obj, "n_states", int, path)
    d = _get(obj, "n_features", int, path)
    if k < 1:
        raise ModelError(f"{path}n_states", f"{k} must be >= 1")
    if d != n_features:
        raise ModelError(f"{path}n_features", f"{d} does not match the feature spec ({n_features} features)")
    cov_type = _get(obj, "covariance_type", str, path)
    if cov_type not in COVARIANCE_TYPES:
        raise ModelError(f"{path}covariance_type", f"{cov_type!r} must be one of {COVARIANCE_TYPES}")
    try:
        means_shape = np.shape(np.array(obj.get("means"), dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}means", f"not a numeric array: {exc}") from None
    if means_shape != (k, d):
        raise ModelError(f"{path}means", f"shape {means_shape}, expected (n_states, n_features) = ({k}, {d})")
    start, trans, means, covars = validate_hmm_params(
        obj.get("startprob"), obj.get("transmat"), obj.get("means"), obj.get("covars"), prefix=path)
    if cov_type == "diag":
        off = covars * (1.0 - np.eye(d))
        if np.abs(off).max(initial=0.0) > 0.0:
            i = int(np.argwhere(off != 0)[0][0])
            raise ModelError(f"{path}covars[{i}]", "covariance_type is diag but off-diagonal entries are non-zero")
    raw_states = _get(obj, "states", list, path)
    if len(raw_states) != k:
        raise ModelError(f"{path}states", f"{len(raw_states)} entries, expected n_states = {k}")
    states = []
    for i, s in enumerate(raw_states):
        sp = f"{path}states[{i}]."
        s = _keys(s, sp, _STATE_KEYS)
        label = _get(s, "label", str, sp)
        nums = {key: _get(s, key, float, sp) for key in _STATE_KEYS[1:]}
        for key in ("volatility", "dwell_bars", "expected_dwell_bars", "occupancy"):
            if nums[key] < 0:
                raise ModelError(f"{sp}{key}", f"{nums[key]!r} must be >= 0")
        states.append(StateStats(label=label, **nums))
    labels = [s.label for s in states]
    if len(set(labels)) != len(labels) or not all(labels):
        raise ModelError(f"{path}states", f"labels must be unique and non-empty, got {labels}")
    fp = f"{path}fit."
    f = _keys(_get(obj, "fit", dict, path), fp, _FIT_KEYS)
    fit = FitInfo(
        log_likelihood=_get(f, "log_likelihood", float, fp), bic=_get(f, "bic", float, fp),
        n_obs=_get(f, "n_obs", int, fp), n_params=_get(f, "n_params", int, fp),
        n_iter=_get(f, "n_iter", int, fp), converged=_get(f, "converged", bool, fp),
        n_restarts=_get(f, "n_restarts", int, fp), best_restart=_get(f, "best_restart", int, fp),
        source=_get(f, "source", str, fp),
    )
    if fit.source not in FIT_SOURCES:
        raise ModelError(f"{fp}source", f"{fit.source!r} must be one of {FIT_SOURCES}")
    return HmmParams(covariance_type=cov_type, startprob=_frozen(start), transmat=_frozen(trans),
                     means=_frozen(means), covars=_frozen(covars), states=tuple(states), fit=fit)


def _parse_model(obj: Any) -> RegimeModel:
    obj = _keys(obj, "", ("kind", "format_version", "created_at", "instrument", "base_interval_s",
                          "macro", "micro", "training", "library_versions"))
    kind = _get(obj, "kind", str, "")
    if kind != MODEL_KIND:
        raise ModelError("kind", f"{kind!r} is not {MODEL_KIND!r}")
    version = _get(obj, "format_version", int, "")
    if version != FORMAT_VERSION:
        raise ModelError("format_version", f"{version} is not supported (this build reads {FORMAT_VERSION})")
    created_at = _get(obj, "created_at", str, "")
    instrument = obj.get("instrument")
    if instrument is not None and not isinstance(instrument, str):
        raise ModelError("instrument", f"expected a string or null, got {instrument!r:.60}")
    base = _get(obj, "base_interval_s", int, "")

    mobj = _keys(_get(obj, "macro", dict, ""), "macro.", ("interval_s", "features", "scaler", "hmm"))
    mfeat = _parse_features(_get(mobj, "features", dict, "macro."), "macro.features.")
    macro = MacroLevel(
        interval_s=_get(mobj, "interval_s", int, "macro."), features=mfeat,
        scaler=_parse_scaler(_get(mobj, "scaler", dict, "macro."), "macro.scaler.", mfeat.n_features),
        hmm=_parse_hmm(_get(mobj, "hmm", dict, "macro."), "macro.hmm.", mfeat.n_features),
    )
    uobj = _keys(_get(obj, "micro", dict, ""), "micro.", ("interval_s", "features", "scaler", "hmms"))
    ufeat = _parse_features(_get(uobj, "features", dict, "micro."), "micro.features.")
    raw_hmms = _get(uobj, "hmms", list, "micro.")
    micro = MicroLevel(
        interval_s=_get(uobj, "interval_s", int, "micro."), features=ufeat,
        scaler=_parse_scaler(_get(uobj, "scaler", dict, "micro."), "micro.scaler.", ufeat.n_features),
        hmms=tuple(_parse_hmm(h, f"micro.hmms[{i}].", ufeat.n_features) for i, h in enumerate(raw_hmms)),
    )
    tobj = _keys(_get(obj, "training", dict, ""), "training.",
                 ("first_ts_ns", "last_ts_ns", "n_bars", "data_sha256", "config", "duration_s"))
    sha = _get(tobj, "data_sha256", str, "training.")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError("training.data_sha256", f"{sha!r:.70} is not a hex sha256")
    training = TrainingInfo(
        first_ts_ns=_get(tobj, "first_ts_ns", int, "training."),
        last_ts_ns=_get(tobj, "last_ts_ns", int, "training."),
        n_bars=_get(tobj, "n_bars", int, "training."), data_sha256=sha,
        config=_get(tobj, "config", dict, "training."),
        duration_s=_get(tobj, "duration_s", float, "training."),
    )
    libs = _get(obj, "library_versions", dict, "")
    for key, value in libs.items():
        if not isinstance(value, str):
            raise ModelError(f"library_versions.{key}", f"expected a string, got {value!r:.60}")
    return RegimeModel(created_at=created_at, instrument=instrument, base_interval_s=base, macro=macro,
                       micro=micro, training=training, library_versions=dict(libs),
                       format_version=version)


def _check_structure(m: RegimeModel) -> None:
    """Cross-field rules shared by construction and loading."""
    if m.base_interval_s < 1:
        raise ModelError("base_interval_s", f"{m.base_interval_s} must be >= 1")
    if m.micro.interval_s < m.base_interval_s or m.micro.interval_s % m.base_interval_s:
        raise ModelError("micro.interval_s",
                         f"{m.micro.interval_s} must be a multiple of base_interval_s ({m.base_interval_s})")
    if m.macro.interval_s <= m.micro.interval_s or m.macro.interval_s % m.micro.interval_s:
        raise ModelError("macro.interval_s",
                         f"{m.macro.interval_s} must be a larger multiple of micro.interval_s ({m.micro.interval_s})")
    if len(m.micro.hmms) != m.macro.hmm.n_states:
        raise ModelError("micro.hmms", f"{len(m.micro.hmms)} models, expected one per macro state "
                         f"({m.macro.hmm.n_states})")
    for name, level_d, hmms in (("macro.hmm", m.macro.features.n_features, (m.macro.hmm,)),
                                ("micro.hmms", m.micro.features.n_features, m.micro.hmms)):
        for h in hmms:
            if h.n_features != level_d:
                raise ModelError(f"{name}.n_features", f"{h.n_features} does not match the feature spec ({level_d})")
    if m.training.last_ts_ns < m.training.first_ts_ns:
        raise ModelError("training.last_ts_ns", f"{m.training.last_ts_ns} is before first_ts_ns {m.training.first_ts_ns}")
