"""Model registry: atomic entries, tags, rollback, refusal of bad models and unknown ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.hmm.errors import ModelError
from nautilus_hmm.hmm.model import RegimeModel
from nautilus_hmm.hmm.registry import ModelRegistry, RegistryError, UnknownModelError
from tests.unit.hmm.toy import state, toy_model


def variant(i: int) -> RegimeModel:
    """A distinct valid model per i."""
    micro = (state("down", -0.001 * (i + 1), 0.002), state("up", 0.001 * (i + 1), 0.002))
    return toy_model(micro_states=(micro, micro))


class Ticking:
    """A wall clock for ids that moves one second per call."""

    def __init__(self) -> None:
        self.t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", now=Ticking())


def test_add_writes_model_and_meta_in_a_directory_named_by_time_and_sha(reg: ModelRegistry) -> None:
    model = variant(0)
    model_id = reg.add(model, metrics={"loglik": -1.5}, source="test")
    assert model_id == f"m-20260102T030406Z-{model.content_sha256[:8]}"
    d = reg.root / model_id
    assert sorted(p.name for p in d.iterdir()) == ["meta.json", "model.json"]
    meta = orjson.loads((d / "meta.json").read_bytes())
    assert meta["model_sha256"] == model.content_sha256
    assert (meta["data_sha256"], meta["n_bars"], meta["status"]) == ("ab" * 32, 1000, "candidate")
    assert meta["metrics"] == {"loglik": -1.5}
    assert reg.get(model_id).content_sha256 == model.content_sha256


def test_adding_the_same_model_twice_returns_the_same_id(reg: ModelRegistry) -> None:
    assert reg.add(variant(0)) == reg.add(variant(0))
    assert len(reg.ids()) == 1


def test_no_temporary_files_are_left_after_writes(reg: ModelRegistry) -> None:
    a = reg.add(variant(0))
    reg.promote(a)
    reg.set_canary(reg.add(variant(1)))
    assert [p.name for p in reg.root.iterdir() if p.name.startswith(".")] == []


def test_a_half_written_entry_left_by_a_crash_is_ignored_and_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / ".new-m-20260101T000000Z-deadbeef").mkdir()
    (root / ".new-m-20260101T000000Z-deadbeef" / "model.json").write_text("{")
    (root / ".tags.json.1.2.tmp").write_text("{")
    reg = ModelRegistry(root)
    assert reg.ids() == []
    assert list(root.iterdir()) == []


def test_first_promote_sets_production_and_tags_file(reg: ModelRegistry) -> None:
    a = reg.add(variant(0))
    assert reg.promote(a) is None
    tags = reg.tags()
    assert (tags.production, tags.canary, tags.previous_production) == (a, None, ())
    on_disk = orjson.loads((reg.root / "tags.json").read_bytes())
    assert on_disk["production"] == a and on_disk["history"][-1]["event"] == "promote"


def test_promoting_the_canary_clears_the_canary_tag(reg: ModelRegistry) -> None:
    a, b = reg.add(variant(0)), reg.add(variant(1))
    reg.promote(a)
    reg.set_canary(b)
    assert reg.promote(b) == a
    tags = reg.tags()
    assert (tags.production, tags.canary, tags.previous_production) == (b, None, (a,))


def test_list_reports_each_model_with_its_tag_newest_first(reg: ModelRegistry) -> None:
    a, b, c = reg.add(variant(0)), reg.add(variant(1)), reg.add(variant(2))
    reg.promote(a)
    reg.promote(b)
    reg.set_canary(c)
    listing = {m["id"]: (m["tag"], m["status"]) for m in reg.list()}
    assert [m["id"] for m in reg.list()] == [c, b, a]
    assert listing == {c: ("canary", "canary"), b: ("production", "production"), a: (None, "retired")}


def test_rollback_returns_production_to_the_previous_production(reg: ModelRegistry) -> None:
    a, b, c = reg.add(variant(0)), reg.add(variant(1)), reg.add(variant(2))
    reg.promote(a)
    reg.promote(b)
    reg.promote(c)
    assert reg.rollback() == b
    assert reg.rollback() == a
    assert reg.tags().production == a


def test_rollback_without_a_previous_production_is_an_error_and_changes_nothing(reg: ModelRegistry) -> None:
    a = reg.add(variant(0))
    reg.promote(a)
    before = (reg.root / "tags.json").read_bytes()
    with pytest.raises(RegistryError, match="no previous production model"):
        reg.rollback()
    assert (reg.root / "tags.json").read_bytes() == before


def test_rollback_skips_a_previous_model_that_no_longer_loads(reg: ModelRegistry) -> None:
    a, b, c = reg.add(variant(0)), reg.add(variant(1)), reg.add(variant(2))
    for m in (a, b, c):
        reg.promote(m)
    (reg.root / b / "model.json").write_text("{}")
    assert reg.rollback() == a


def test_a_corrupt_model_is_refused_and_the_tags_do_not_change(reg: ModelRegistry) -> None:
    a, b = reg.add(variant(0)), reg.add(variant(1))
    reg.promote(a)
    path = reg.root / b / "model.json"
    obj = orjson.loads(path.read_bytes())
    obj["macro"]["hmm"]["transmat"][0][0] = 0.5
    path.write_bytes(orjson.dumps(obj))
    before = (reg.root / "tags.json").read_bytes()
    with pytest.raises(ModelError, match=r"macro\.hmm\.transmat\[0\]: row sums to"):
        reg.promote(b)
    with pytest.raises(ModelError):
        reg.set_canary(b)
    assert (reg.root / "tags.json").read_bytes() == before


def test_a_valid_model_edited_after_it_was_stored_fails_its_sha_check(reg: ModelRegistry) -> None:
    a = reg.add(variant(0))
    (reg.root / a / "model.json").write_bytes(variant(1).to_json())
    with pytest.raises(ModelError, match=r"does not match meta\.json"):
        reg.get(a)


def test_unknown_id_raises_a_key_error_naming_the_id(reg: ModelRegistry) -> None:
    for op in (reg.get, reg.promote, reg.set_canary):
        with pytest.raises(UnknownModelError) as info:
            op("m-20990101T000000Z-00000000")
        assert isinstance(info.value, KeyError)
        assert str(info.value) == f"model 'm-20990101T000000Z-00000000' is not in the registry {reg.root}"


def test_an_id_that_is_a_path_is_unknown_not_a_file_access(reg: ModelRegistry) -> None:
    with pytest.raises(UnknownModelError, match=r"'\.\./\.\./etc'"):
        reg.get("../../etc")


def test_production_cannot_also_be_the_canary(reg: ModelRegistry) -> None:
    a = reg.add(variant(0))
    reg.promote(a)
    with pytest.raises(RegistryError, match="is production"):
        reg.set_canary(a)


def test_clearing_the_canary(reg: ModelRegistry) -> None:
    a, b = reg.add(variant(0)), reg.add(variant(1))
    reg.promote(a)
    reg.set_canary(b)
    assert reg.set_canary(None) == b
    assert reg.tags().canary is None


def test_a_reopened_registry_sees_the_same_models_and_tags(reg: ModelRegistry) -> None:
    a, b = reg.add(variant(0)), reg.add(variant(1))
    reg.promote(a)
    reg.set_canary(b)
    again = ModelRegistry(reg.root)
    assert again.ids() == [a, b]
    assert (again.tags().production, again.tags().canary) == (a, b)


@pytest.mark.parametrize(("text", "named"), [
    (b'{"production": 5}', "production = 5"),
    (b'{"canary": ["m"]}', "canary = ['m']"),
    (b'{"previous_production": "m-1"}', "previous_production = 'm-1'"),
    (b'{"previous_production": [null]}', "previous_production holds None"),
    (b'{"history": {}}', "history = {}"),
    (b'"production"', "a JSON str"),
])
def test_a_tags_file_with_a_wrong_type_is_an_error_naming_the_field_and_value(
        reg: ModelRegistry, text: bytes, named: str) -> None:
    (reg.root / "tags.json").write_bytes(text)
    with pytest.raises(RegistryError) as err:
        reg.tags()
    assert named in str(err.value) and str(reg.root / "tags.json") in str(err.value)
    assert err.value.path == str(reg.root / "tags.json")


def test_an_entry_whose_model_file_went_missing_is_a_model_error_naming_the_file(reg: ModelRegistry) -> None:
    model_id = reg.add(variant(0))
    (reg.root / model_id / "model.json").unlink()
    with pytest.raises(ModelError) as err:
        reg.get(model_id)
    assert str(reg.root / model_id / "model.json") in str(err.value) and "missing" in str(err.value)
