"""Model artifact: JSON round trip, and loading names the field of every problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from nautilus_hmm.hmm.errors import ModelError
from nautilus_hmm.hmm.model import FORMAT_VERSION, RegimeModel, bic, hmm_n_params, load_model
from tests.unit.hmm.toy import toy_model


def test_save_then_load_gives_the_same_model_and_bytes(tmp_path: Path) -> None:
    model = toy_model()
    path = model.save(tmp_path / "m" / "model.json")
    loaded = load_model(path)
    assert loaded.to_json() == model.to_json()
    assert loaded.content_sha256 == model.content_sha256
    np.testing.assert_array_equal(loaded.micro.hmms[1].covars, model.micro.hmms[1].covars)
    assert loaded.macro.hmm.labels == ("down", "up")
    assert loaded.training.data_sha256 == "ab" * 32
    assert not list(tmp_path.joinpath("m").glob(".*.tmp"))


def test_loaded_arrays_are_read_only(tmp_path: Path) -> None:
    loaded = load_model(toy_model().save(tmp_path / "model.json"))
    with pytest.raises(ValueError, match="read-only"):
        loaded.macro.hmm.transmat[0, 0] = 0.5


def test_covariances_are_stored_full_also_when_trained_diag() -> None:
    data = orjson.loads(toy_model().to_json())
    hmm = data["micro"]["hmms"][0]
    assert hmm["covariance_type"] == "diag"
    assert np.array(hmm["covars"]).shape == (2, 3, 3)


def test_loaded_model_filters_with_numpy_alone(tmp_path: Path) -> None:
    loaded = load_model(toy_model().save(tmp_path / "model.json"))
    f = loaded.macro.hmm.filter()
    post = f.update(np.array([0.5, 0.1, 1.0]))
    assert post.shape == (2,) and post.sum() == pytest.approx(1.0)


def mutated(change: Callable[[dict[str, Any]], None]) -> bytes:
    data = orjson.loads(toy_model().to_json())
    change(data)
    return orjson.dumps(data)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        keys = path.split("/")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (_set("format_version", 99), "format_version", "99 is not supported"),
        (_set("kind", "other"), "kind", "is not"),
        (_set("macro/hmm/transmat/0", [0.8, 0.1]), "macro.hmm.transmat[0]", "row sums to 0.9"),
        (_set("macro/hmm/startprob", [0.7, 0.7]), "macro.hmm.startprob", "sums to 1.4"),
        (_set("micro/hmms/1/covars/0", [[1, 0, 0], [0, -2, 0], [0, 0, 1]]), "micro.hmms[1].covars[0]",
         "not positive-definite"),
        (_set("macro/hmm/covars/1", [[1, 0.5, 0], [0.1, 1, 0], [0, 0, 1]]), "macro.hmm.covars[1]",
         "not symmetric"),
        (_set("micro/hmms/0/covars/1", [[1, 0.2, 0], [0.2, 1, 0], [0, 0, 1]]), "micro.hmms[0].covars[1]",
         "diag but off-diagonal"),
        (_set("macro/hmm/means", [[0, 0], [1, 1]]), "macro.hmm.means", "shape"),
        (_set("macro/scaler/std", [1, 0, 1]), "macro.scaler.std", "must be > 0"),
        (_set("macro/scaler/mean", [1, 2]), "macro.scaler.mean", "expected (3,)"),
        (_set("macro/features/vol_windows", [1]), "macro.features.vol_windows", ">= 2"),
        (_set("micro/hmms", []), "micro.hmms", "expected one per macro state"),
        (_set("macro/hmm/states/0/volatility", -1.0), "macro.hmm.states[0].volatility", "must be >= 0"),
        (_set("macro/hmm/states/1/label", "down"), "macro.hmm.states", "unique"),
        (_set("macro/hmm/fit/source", "magic"), "macro.hmm.fit.source", "must be one of"),
        (_set("training/data_sha256", "xyz"), "training.data_sha256", "not a hex sha256"),
        (_set("macro/interval_s", 450), "macro.interval_s", "larger multiple"),
        (_set("macro/hmm/n_features", 4), "macro.hmm.n_features", "does not match"),
        (_set("macro/hmm/colour", "red"), "macro.hmm.colour", "unknown key"),
        (_set("training/n_bars", _DELETE), "training.n_bars", "missing"),
        (_set("training/n_bars", "many"), "training.n_bars", "expected an integer"),
        (_set("library_versions/torch", 2), "library_versions.torch", "expected a string"),
    ],
)
def test_loading_rejects_bad_content_naming_the_field(change: Callable, field: str, problem: str,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_bytes(mutated(change))
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert info.value.field == field
    assert problem in info.value.problem
    assert str(path) in str(info.value)


def test_loading_a_file_that_is_not_json_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(path)


def test_loading_a_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "absent.json")


def test_format_version_is_written() -> None:
    assert orjson.loads(toy_model().to_json())["format_version"] == FORMAT_VERSION
    assert RegimeModel.from_json(toy_model().to_json()).format_version == FORMAT_VERSION


def test_bic_counts_the_free_parameters() -> None:
    # K=3, D=2 full: 2 start + 6 transitions + 6 means + 9 covariance terms.
    assert hmm_n_params(3, 2, "full") == 23
    assert hmm_n_params(3, 2, "diag") == 20
    assert bic(-100.0, 23, 1000) == pytest.approx(200.0 + 23 * np.log(1000))
