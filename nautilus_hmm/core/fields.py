"""Declaring config fields: default, reload class, documentation and value checks.

Every field of a config section is declared with `setting(...)`, which records in the
dataclass field metadata whether it is live-reloadable, its one-line doc, and the checks
the loader runs. Cross-field rules live in a section's `validate()` method, which returns
`(field, value, message)` triples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

MISSING = dataclasses.MISSING
Check = Callable[[Any], str | None]


def setting(
    default: Any = MISSING,
    *,
    live: bool,
    doc: str,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: Iterable[Any] | None = None,
    check: Check | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A config field. `live=True` means a reload may change it without a restart."""
    checks: list[Check] = []
    if gt is not None:
        checks.append(lambda v, b=gt: None if v > b else f"must be > {_num(b)}")
    if ge is not None:
        checks.append(lambda v, b=ge: None if v >= b else f"must be >= {_num(b)}")
    if lt is not None:
        checks.append(lambda v, b=lt: None if v < b else f"must be < {_num(b)}")
    if le is not None:
        checks.append(lambda v, b=le: None if v <= b else f"must be <= {_num(b)}")
    if choices is not None:
        allowed = tuple(choices)
        checks.append(
            lambda v, a=allowed: None if v in a else "must be one of " + ", ".join(repr(x) for x in a)
        )
    if check is not None:
        checks.append(check)
    meta = {"live": live, "doc": doc, "checks": tuple(checks)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(default_factory: Callable[[], Any], *, doc: str) -> Any:
    """A nested table. Its fields carry their own reload tags."""
    return dataclasses.field(default_factory=default_factory, metadata={"doc": doc, "section": True})


def _num(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else str(b)


def non_empty(value: Any) -> str | None:
    """Check: a string or list must not be empty."""
    return None if len(value) > 0 else "must not be empty"
