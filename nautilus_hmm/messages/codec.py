"""JSON encoding of bus messages (SSE, decision log, audit). Not used on the hot path."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson

from nautilus_hmm.domain.instruments import InstrumentId


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: ids as `venue:SYMBOL`, Decimals as strings, enums as values."""
    if isinstance(obj, InstrumentId):
        return str(obj)
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    return obj


def message_to_dict(msg: Any) -> dict[str, Any]:
    """`{"type": <class name>, ...fields}`."""
    out = {"type": type(msg).__name__}
    out.update(to_jsonable(msg))
    return out


def dumps(obj: Any) -> bytes:
    """orjson with the conversions above."""
    return orjson.dumps(to_jsonable(obj))
