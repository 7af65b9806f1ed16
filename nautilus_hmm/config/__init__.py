"""Configuration: schema, loading with exhaustive errors, diffing for reload, secrets.

Names are resolved lazily: section modules (`risk.config` ...) import
`config.fields`, and the schema imports them back, so this package must not import the
schema at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nautilus_hmm.config.loader import ConfigError, config_hash, diff, load, parse, to_dict
    from nautilus_hmm.config.schema import Config

__all__ = ["Config", "ConfigError", "config_hash", "diff", "load", "load_config", "parse", "to_dict"]


def load_config(path: str) -> Config:
    """Read, parse and validate a node config file; raise ConfigError listing every problem."""
    from nautilus_hmm.config.loader import load
    from nautilus_hmm.config.schema import Config

    return load(Config, path)


def __getattr__(name: str) -> Any:
    if name == "Config":
        from nautilus_hmm.config.schema import Config

        return Config
    if name in ("ConfigError", "config_hash", "diff", "load", "parse", "to_dict"):
        from nautilus_hmm.config import loader

        return getattr(loader, name)
    raise AttributeError(name)
