"""Configuration: schema, loading with exhaustive errors, diffing for reload, secrets.

The field machinery (`setting`, `section`) lives in `core.fields`, below every section
schema, so this package imports its schema directly.
"""

from __future__ import annotations

from nautilus_hmm.config.loader import ConfigError, config_hash, diff, load, parse, to_dict
from nautilus_hmm.config.schema import Config

__all__ = ["Config", "ConfigError", "config_hash", "diff", "load", "load_config", "parse", "to_dict"]


def load_config(path: str) -> Config:
    """Read, parse and validate a node config file; raise ConfigError listing every problem."""
    return load(Config, path)
