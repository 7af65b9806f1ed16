"""[hmm] config: defaults are valid; bad values name their dotted path."""

from __future__ import annotations

import pytest

from nautilus_hmm.config.loader import ConfigError, parse
from nautilus_hmm.hmm.config import HmmConfig
from nautilus_hmm.hmm.features import FeatureSpec


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(HmmConfig, data)
    return info.value.errors


def test_defaults_parse_and_describe_the_default_feature_spec() -> None:
    cfg = parse(HmmConfig, {})
    assert cfg.features.spec() == FeatureSpec()
    assert (cfg.train.macro_interval_s, cfg.train.micro_interval_s) == (3600, 300)
    assert cfg.train.macro_states == cfg.train.micro_states == 3


def test_feature_windows_must_form_a_valid_spec() -> None:
    assert errors_of({"features": {"return_horizons": [5, 15]}}) == [
        "features.return_horizons = [5, 15]: [5, 15]: must include 1 (state labels are ordered by the 1-bar return)"
    ]


def test_intervals_must_nest() -> None:
    assert errors_of({"train": {"micro_interval_s": 300, "macro_interval_s": 450}}) == [
        "train.macro_interval_s = 450: must be a larger multiple of micro_interval_s (300)"
    ]


def test_covariance_type_is_full_or_diag() -> None:
    assert errors_of({"train": {"covariance_type": "tied"}}) == [
        "train.covariance_type = \"tied\": must be one of 'full', 'diag'"
    ]


def test_policy_fields_are_live_reloadable() -> None:
    from nautilus_hmm.config.loader import field_docs

    docs = field_docs(HmmConfig)
    assert all(live for path, (_, live) in docs.items() if path.startswith("policy."))
    assert docs["registry_dir"][1] is False
