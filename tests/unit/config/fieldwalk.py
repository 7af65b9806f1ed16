"""Walk the leaves of the config schema: dotted path, type, dataclass field."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from typing import Any

from nautilus_hmm.config import Config


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One settable key of the config."""

    path: str
    tp: Any
    field: dataclasses.Field[Any]

    @property
    def live(self) -> bool:
        return bool(self.field.metadata.get("live"))

    @property
    def bounds(self) -> dict[str, float]:
        return dict(self.field.metadata.get("bounds", {}))


def leaves(cls: type[Any] = Config, prefix: str = "") -> Iterator[Leaf]:
    """Every leaf field of `cls`, depth first, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from leaves(tp, prefix + f.name + ".")
        else:
            yield Leaf(prefix + f.name, tp, f)


def nested(path: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} for path "a.b"."""
    out: Any = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return out

