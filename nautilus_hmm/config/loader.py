"""TOML → frozen dataclasses, with every problem reported at once.

Rules: unknown keys are errors (with a did-you-mean); types are strict (an int where a
float is expected is accepted, a bool where an int is expected is not); per-field checks
and each section's `validate()` run only on well-typed values; secrets in the file are
errors of their own. Every message names the dotted path and the bad value:
`risk.max_order_notional_usd = -5: must be > 0`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import sys
import types
import typing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Whole numbers must fit an int64: hashing (orjson), SQLite and numpy all stop there.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

# A TOML bare key; any other key is written (and named in errors) quoted.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

# Key names that hold credentials. They never belong in the TOML file.
SECRET_KEY_WORDS = ("secret", "password", "token", "api_key", "apikey", "private_key", "passphrase")


class ConfigError(Exception):
    """One or more problems with a config file; `errors` lists them all."""

    def __init__(self, errors: list[str], source: str = "") -> None:
        self.errors = errors
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + f"{len(errors)} config error(s):\n  " + "\n  ".join(errors))


def fmt_value(value: Any) -> str:
    """Render a value as it would appear in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    return str(value)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read and parse a TOML file; syntax errors carry the line and column.

    Each error names the file itself: a reload answers with the errors alone (the caller
    may not know which file the daemon reads)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read config file {p}: {exc.strerror or exc}"], str(p)) from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"config file {p} is not UTF-8 text: {exc.reason} at byte {exc.start}"], str(p)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {p} is not valid TOML: {exc}"], str(p)) from exc


def parse(cls: type[Any], data: dict[str, Any], source: str = "") -> Any:
    """Build `cls` from a TOML table; raise ConfigError listing every problem."""
    errors: list[str] = []
    obj = _build(cls, data, "", errors)
    if not errors:
        # The reload hashes the config before applying it; a config that cannot be hashed
        # is refused here, so check-config, run and reload all say so the same way.
        try:
            config_hash(obj)
        except (TypeError, ValueError, OverflowError) as exc:
            errors.append(f"<config>: a value is outside what the daemon can hold: {exc}")
    if errors:
        raise ConfigError(errors, source)
    return obj


def load(cls: type[Any], path: str | Path) -> Any:
    """Read, parse and validate a config file."""
    return parse(cls, read_toml(path), str(path))


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    if k.endswith(("_env", "_file", "_credential")):
        return False  # names *where* a secret lives, not the secret itself
    return any(w in k for w in SECRET_KEY_WORDS)


def _build(cls: type[Any], data: Any, prefix: str, errors: list[str]) -> Any:
    if not isinstance(data, dict):
        errors.append(f"{prefix.rstrip('.')} = {fmt_value(data)}: expected a table")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key, value in data.items():
        if key in fields:
            continue
        path = prefix + key
        if _is_secret_key(key):
            errors.append(
                f"{path} = <redacted>: secrets must not be written in the config file; "
                "provide them through the environment or systemd credentials (see README)"
            )
            continue
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        errors.append(f"{path} = {fmt_value(value)}: unknown key{hint}")
    kwargs: dict[str, Any] = {}
    field_ok = True
    for name, f in fields.items():
        path = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(f"{path}: required key is missing")
                field_ok = False
            continue
        n_before = len(errors)
        value = _convert(hints[name], data[name], path, errors)
        if len(errors) > n_before:
            field_ok = False
            continue
        # The field's own checks first (their bounds are the useful message), then the
        # int64 guard every whole number passes, arrays and tables included.
        for check in (*f.metadata.get("checks", ()), _int64_check):
            msg = check(value)
            if msg:
                errors.append(f"{path} = {fmt_value(data[name])}: {msg}")
                field_ok = False
                break
        else:
            each = f.metadata.get("each")
            if each is not None:
                for item_path, raw, item in _items(path, data[name], value):
                    msg = each(item)
                    if msg:
                        errors.append(f"{item_path} = {fmt_value(raw)}: {msg}")
                        field_ok = False
        kwargs[name] = value
    if not field_ok:
        return None
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # pragma: no cover - schema bug guard
        errors.append(f"{prefix.rstrip('.') or '<root>'}: {exc}")
        return None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        for field_name, value, msg in validate():
            errors.append(f"{prefix}{field_name} = {fmt_value(value)}: {msg}")
    return obj


def key_path(path: str, key: str) -> str:
    """The dotted path of a table's key, quoted as TOML quotes it when it is not a bare key."""
    return f"{path}.{key}" if _BARE_KEY.fullmatch(key) else f"{path}.{fmt_value(key)}"


def _items(path: str, raw: Any, value: Any) -> list[tuple[str, Any, Any]]:
    """(path, value as written, value as converted) of every item of an array or table."""
    if isinstance(value, dict):
        return [(key_path(path, k), raw[k], v) for k, v in value.items()]
    if isinstance(value, tuple):
        return [(f"{path}[{i}]", raw[i], v) for i, v in enumerate(value)]
    return []


def _int64_check(value: Any) -> str | None:
    """Every whole number in a value (scalar, array item, table value) fits an int64."""
    if isinstance(value, tuple):
        return next((m for m in map(_int64_check, value) if m), None)
    if isinstance(value, dict):
        return next((m for m in map(_int64_check, value.values()) if m), None)
    if isinstance(value, int) and not isinstance(value, bool):
        if value > INT64_MAX:
            return f"must be <= {INT64_MAX}"
        if value < INT64_MIN:
            return f"must be >= {INT64_MIN}"
    return None


def _convert(tp: Any, value: Any, path: str, errors: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _convert(non_none[0], value, path, errors)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path + ".", errors)
    if origin is typing.Literal:
        if value not in args:
            errors.append(f"{path} = {fmt_value(value)}: must be one of " + ", ".join(repr(a) for a in args))
        return value
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{path} = {fmt_value(value)}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path} = {fmt_value(value)}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{path} = {fmt_value(value)}: expected a number")
            return value
        if value != value or value in (float("inf"), float("-inf")):
            errors.append(f"{path} = {fmt_value(value)}: expected a finite number")
        return float(value)
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            errors.append(f"{path} = {fmt_value(value)}: expected a decimal number")
            return value
        try:
            dec = Decimal(str(value))
        except InvalidOperation:
            errors.append(f"{path} = {fmt_value(value)}: expected a decimal number")
            return value
        if not dec.is_finite():
            errors.append(f"{path} = {fmt_value(value)}: expected a finite number")
        return dec
    if tp is str:
        if not isinstance(value, str):
            errors.append(f"{path} = {fmt_value(value)}: expected a string")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            errors.append(f"{path} = {fmt_value(value)}: expected an array")
            return value
        item_tp = args[0] if args else Any
        return tuple(_convert(item_tp, v, f"{path}[{i}]", errors) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{path} = {fmt_value(value)}: expected a table")
            return value
        val_tp = args[1] if len(args) == 2 else Any
        for k, v in value.items():
            if k == "":  # an asset or symbol named by nothing: nothing can use it
                errors.append(f"{key_path(path, k)} = {fmt_value(v)}: key must not be empty")
        return {k: _convert(val_tp, v, key_path(path, k), errors) for k, v in value.items()}
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # schema bug


# ---------------------------------------------------------------- diff and hash


@dataclass(frozen=True, slots=True)
class Change:
    """One changed leaf between two configs."""

    path: str
    old: Any
    new: Any
    live: bool


def diff(old: Any, new: Any, prefix: str = "") -> list[Change]:
    """Changed leaves between two configs of the same type, with their reload tags."""
    changes: list[Change] = []
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name)
        path = prefix + f.name
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            changes.extend(diff(a, b, path + "."))
        elif a != b:
            changes.append(Change(path, a, b, bool(f.metadata.get("live", False))))
    return changes


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Decimal):
        return str(obj)
    return obj


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (for /status and hashing)."""
    return _jsonable(cfg)


def config_hash(cfg: Any) -> str:
    """Stable short hash of a config's effective values."""
    blob = orjson.dumps(to_dict(cfg), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:16]


def field_docs(cls: type[Any], prefix: str = "") -> dict[str, tuple[str, bool | None]]:
    """Dotted path → (doc, live) for every field of a config class (for docs and tests)."""
    out: dict[str, tuple[str, bool | None]] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out[path] = (f.metadata.get("doc", ""), None)
            out.update(field_docs(tp, path + "."))
        else:
            out[path] = (f.metadata.get("doc", ""), f.metadata.get("live"))
    return out
