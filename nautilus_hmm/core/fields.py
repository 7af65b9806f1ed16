"""Declaring config fields: default, reload class, documentation, bounds and value checks.

Every field of a config section is declared with `setting(...)`, which records in the
dataclass field metadata whether it is live-reloadable, its one-line doc, its numeric
bounds and the checks the loader runs. Cross-field rules live in a section's `validate()`
method, which returns `(field, value, message)` triples.

Rules: every whole-number field has an upper bound (a value the daemon can hold in an
int64 and actually use); every duration has a lower bound well above zero (or is
`ge_or_zero`: 0 switches it off), so 5e-324 s never becomes a timer period. This module
sits in `core` and imports nothing of the project: every section schema can use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
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
    ge_or_zero: float | None = None,
    choices: Iterable[Any] | None = None,
    check: Check | None = None,
    each: Check | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A config field. `live=True` means a reload may change it without a restart.

    `ge_or_zero=b`: the value is 0 (the feature is off) or at least `b`. `each`: a check
    of every item of an array or value of a table, reported at the item's own path
    (`venues.sim.initial_balances.USDT = -5: must be >= 0`)."""
    checks: list[Check] = []
    if ge_or_zero is not None:
        checks.append(lambda v, b=ge_or_zero: None if v == 0 or v >= b else f"must be 0 (off) or >= {_num(b)}")
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
    bounds = {k: b for k, b in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le), ("ge_or_zero", ge_or_zero))
              if b is not None}
    meta = {"live": live, "doc": doc, "checks": tuple(checks), "bounds": bounds, "each": each}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(default_factory: Callable[[], Any], *, doc: str) -> Any:
    """A nested table. Its fields carry their own reload tags."""
    return dataclasses.field(default_factory=default_factory, metadata={"doc": doc, "section": True})


def _num(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else str(b)


def each_between(lo: int, hi: int) -> Check:
    """Check: every item of an array lies in [lo, hi]."""

    def check(value: Any) -> str | None:
        bad = [v for v in value if not lo <= v <= hi]
        return None if not bad else f"items must be between {lo} and {hi} (got {bad[0]})"

    return check


def greater_than(bound: float) -> Check:
    """Check: the value is > bound (for `each=`)."""
    return lambda v: None if v > bound else f"must be > {_num(bound)}"


def at_least(bound: float) -> Check:
    """Check: the value is >= bound (for `each=`)."""
    return lambda v: None if v >= bound else f"must be >= {_num(bound)}"


def non_empty(value: Any) -> str | None:
    """Check: a string or list must not be empty."""
    return None if len(value) > 0 else "must not be empty"


def existing_file(value: str) -> str | None:
    """Check: an empty string (unset) or the path of a readable file, checked when the config
    is validated so check-config fails on it, not the running daemon."""
    if not value:
        return None
    path = Path(value)
    if not path.exists():
        return "file not found"
    if not path.is_file():
        return "not a regular file"
    return None
