"""The bus message base: `Message` and the `@message` decorator, below every layer.

The bus (`core.bus`) and the supervisor (`core.lifecycle`) need them, and core imports
nothing of the project above it; the message types themselves live in `messages`, which
re-exports these. `ComponentStateChanged` is here because the supervisor publishes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, dataclass_transform


@dataclass_transform(frozen_default=True, kw_only_default=True)
def message(cls: type) -> type:
    """Decorator for bus message classes (frozen, slotted, keyword-only dataclasses).

    The generated `__init__` of a frozen dataclass assigns each field through
    `object.__setattr__`; market-data messages are built per tick, so it is replaced
    by one that calls the slots' descriptors directly (about half the cost). Equality,
    repr, hashing and the frozen `__setattr__` are the dataclass's own.
    """
    klass = dataclass(frozen=True, slots=True, kw_only=True)(cls)
    klass.__init__ = _fast_init(klass)  # type: ignore[misc]
    return klass


def _fast_init(klass: type) -> Any:
    fields = dataclasses.fields(klass)
    env: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    params, body = [], []
    for i, f in enumerate(fields):
        env[f"_set{i}"] = getattr(klass, f.name).__set__
        if f.default is not dataclasses.MISSING:
            env[f"_default{i}"] = f.default
            params.append(f"{f.name}=_default{i}")
            body.append(f"    _set{i}(self, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"_factory{i}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    _set{i}(self, _factory{i}() if {f.name} is _MISSING else {f.name})")
        else:
            params.append(f.name)
            body.append(f"    _set{i}(self, {f.name})")
    src = "def __init__(self, *, " + ", ".join(params) + "):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(src, env)
    init = env["__init__"]
    init.__qualname__ = f"{klass.__qualname__}.__init__"
    init.__doc__ = f"Build a {klass.__name__}."
    return init


@message
class Message:
    """Base of every bus message."""

    critical: ClassVar[bool] = False
    ts_event_ns: int
    ts_init_ns: int


@message
class ComponentStateChanged(Message):
    """A supervised component started, crashed, restarted, gave up or stopped."""

    critical: ClassVar[bool] = True
    component: str
    state: str
    detail: str = ""
