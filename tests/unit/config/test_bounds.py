"""Values at the edge of their type: every integer is bounded, every duration is well
above zero, every float finite, files named in the config exist."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nautilus_hmm.config import Config, ConfigError
from nautilus_hmm.config.loader import parse
from tests.unit.config.fieldwalk import leaves, nested

INT64_MAX = 2**63 - 1
INT_LEAVES = [leaf for leaf in leaves() if leaf.tp is int]
INT_ARRAY_LEAVES = [leaf for leaf in leaves() if leaf.tp == tuple[int, ...]]
FLOAT_LEAVES = [leaf for leaf in leaves() if leaf.tp is float]
DURATION_LEAVES = [leaf for leaf in FLOAT_LEAVES if leaf.path.endswith(("_s", "_ms"))]


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(Config, data)
    return info.value.errors


def test_the_walk_sees_the_integer_and_duration_fields() -> None:
    assert len(INT_LEAVES) >= 22 and len(DURATION_LEAVES) >= 20


@pytest.mark.parametrize("leaf", INT_LEAVES, ids=lambda leaf: leaf.path)
def test_every_whole_number_field_rejects_2_to_the_64_naming_path_and_bound(leaf) -> None:
    errors = errors_of(nested(leaf.path, 2**64))
    assert len(errors) == 1
    prefix = f"{leaf.path} = 18446744073709551616: must be <"
    assert errors[0].startswith(prefix), errors
    bound = int(errors[0].rsplit(" ", 1)[-1])
    assert bound < 2**40  # the field's own realistic maximum, not just the int64 guard


@pytest.mark.parametrize("leaf", INT_LEAVES, ids=lambda leaf: leaf.path)
def test_every_whole_number_field_declares_a_realistic_maximum(leaf) -> None:
    upper = leaf.bounds.get("le", leaf.bounds.get("lt"))
    assert upper is not None and upper < 2**40, f"{leaf.path}: no realistic upper bound"


@pytest.mark.parametrize("leaf", INT_ARRAY_LEAVES, ids=lambda leaf: leaf.path)
def test_integer_arrays_reject_an_item_above_int64(leaf) -> None:
    errors = errors_of(nested(leaf.path, [1, 2**64]))
    assert len(errors) == 1 and errors[0].startswith(f"{leaf.path} = [1, 18446744073709551616]: "), errors


@pytest.mark.parametrize("leaf", DURATION_LEAVES, ids=lambda leaf: leaf.path)
def test_every_duration_rejects_a_subnormal_value(leaf) -> None:
    errors = errors_of(nested(leaf.path, 5e-324))
    assert len(errors) == 1 and errors[0].startswith(f"{leaf.path} = 5e-324: must be"), errors


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("leaf", FLOAT_LEAVES, ids=lambda leaf: leaf.path)
def test_every_float_field_rejects_non_finite_values(leaf, value) -> None:
    errors = errors_of(nested(leaf.path, value))
    assert len(errors) == 1 and errors[0] == f"{leaf.path} = {value}: expected a finite number"


def test_training_data_that_does_not_exist_is_an_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    errors = errors_of({"hmm": {"training_data": str(missing)}})
    assert errors == [f'hmm.training_data = "{missing}": file not found']


def test_training_data_that_exists_is_accepted(tmp_path: Path) -> None:
    present = tmp_path / "bars.csv"
    present.write_text("open_time,open,high,low,close,volume\n")
    assert parse(Config, {"hmm": {"training_data": str(present)}}).hmm.training_data == str(present)


def test_replay_file_that_does_not_exist_is_an_error_when_the_sim_replays(tmp_path: Path) -> None:
    missing = tmp_path / "trades.csv"
    errors = errors_of({"venues": {"sim": {"market": {"source": "replay", "replay_file": str(missing)}}}})
    assert errors == [f'venues.sim.market.replay_file = "{missing}": file not found']
