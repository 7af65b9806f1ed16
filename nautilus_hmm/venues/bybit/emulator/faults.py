"""Fault injection state of the Bybit emulator, set at run time through POST /_emulator/faults (pure).

The JSON body merges into the current faults; every key is optional:

```
{
  "reset": true,                         # clear every fault first
  "close_websockets": "all",             # one-shot: "all" | "public" | "private" | "trade"
  "delay_ms": {"/v5/order/create": 500}, # per path ("*" = every path; "order.create" = trade WS only)
  "errors": [                            # answer the next `count` matching requests with an error
    {"path": "/v5/order/create", "method": "POST", "ret_code": 10006, "http_status": 200,
     "msg": "...", "count": 1, "execute": false}
  ],                                     # execute=true: process the request, then answer the error
                                         # (e.g. http_status 502 after execution: a 5xx whose order exists)
  "rate_limit": {"path": "/v5/order/create", "count": 1, "reset_ms": 1000},
                                         # the next N requests of the path get retCode 10006 with
                                         # X-Bapi-Limit-Status 0 and the reset timestamp now + reset_ms
  "ip_ban_s": 600,                       # one-shot: HTTP 403 for every REST request for that long
  "withhold_order_responses": 1,         # next N order creates: executed, the answer never comes
  "drop_order_responses": 1,             # next N order creates: executed, then the connection is cut
  "skip_book_deltas": 1,                 # next N ticks: orderbook deltas advance u/seq but are not sent (a gap)
  "mute_public_streams": true,           # a stale stream: no public frames (connections stay open)
  "malformed_frames": 1,                 # N public frames that are not JSON before the next tick
  "time_skew_ms": 30000                  # server time = clock + skew (requests then get retCode 10002)
}
```

A trade-WebSocket request (`order.create`, `order.amend`, `order.cancel`) is the twin of its
REST endpoint: a delay or an error keyed by that path applies to it too; keyed by the
operation name it applies to the trade WebSocket only. The order counters apply to both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from nautilus_hmm.venues.emulator_common import CounterFaults

DEFAULT_MSG = {
    10000: "Server Timeout",
    10001: "Request parameter error.",
    10002: "invalid request, please check your server timestamp or recv_window param",
    10006: "Too many visits!",
    10016: "Server error.",
    110007: "Insufficient available balance",
    170131: "Insufficient balance.",
}
_WS_OP = re.compile(r"order\.(create|amend|cancel)")
_COUNTERS = ("withhold_order_responses", "drop_order_responses", "skip_book_deltas", "malformed_frames")
CLOSE_WHICH = ("all", "public", "private", "trade")


class FaultError(ValueError):
    """A fault request is malformed: names the key and the value."""


@dataclass(slots=True)
class ErrorRule:
    """Answer the next `count` requests matching (method, path) with this error."""

    path: str
    ret_code: int
    msg: str
    http_status: int = 200
    count: int = 1
    method: str | None = None
    execute: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "method": self.method, "ret_code": self.ret_code, "http_status": self.http_status,
                "msg": self.msg, "count": self.count, "execute": self.execute}


@dataclass(slots=True)
class RateLimitRule:
    """The next `count` requests of `path` get 10006 with a reset `reset_ms` after each."""

    path: str
    count: int
    reset_ms: int

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "count": self.count, "reset_ms": self.reset_ms}


@dataclass(slots=True)
class Faults(CounterFaults):
    """Current faults (see the module docstring)."""

    delay_ms: dict[str, float] = field(default_factory=dict)
    errors: list[ErrorRule] = field(default_factory=list)
    rate_limits: list[RateLimitRule] = field(default_factory=list)
    withhold_order_responses: int = 0
    drop_order_responses: int = 0
    skip_book_deltas: int = 0
    malformed_frames: int = 0
    mute_public_streams: bool = False
    time_skew_ms: int = 0

    def apply(self, doc: Any) -> dict[str, Any]:
        """Merge a control request; returns the one-shot actions to run. FaultError when malformed."""
        if not isinstance(doc, dict):
            raise FaultError(f"faults: expected a JSON object, got {type(doc).__name__}")
        known = {"reset", "close_websockets", "delay_ms", "errors", "rate_limit", "ip_ban_s",
                 "mute_public_streams", "time_skew_ms", *_COUNTERS}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise FaultError(f"faults: unknown key(s) {unknown}; known: {sorted(known)}")
        fresh = Faults()
        staged = Faults(**{name: getattr(fresh if doc.get("reset") else self, name)
                           for name in self.__slots__})  # type: ignore[attr-defined]
        staged.delay_ms = dict(staged.delay_ms)
        staged.errors = list(staged.errors)
        staged.rate_limits = list(staged.rate_limits)
        actions: dict[str, Any] = {}
        cw = doc.get("close_websockets")
        if cw is not None:
            if cw is True:
                cw = "all"
            if cw not in CLOSE_WHICH:
                raise FaultError(f"faults.close_websockets: expected one of {list(CLOSE_WHICH)}, got {cw!r}")
            actions["close_websockets"] = cw
        if "ip_ban_s" in doc:
            v = doc["ip_ban_s"]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise FaultError(f"faults.ip_ban_s: expected seconds > 0, got {v!r}")
            actions["ip_ban_s"] = float(v)
        if "delay_ms" in doc:
            d = doc["delay_ms"]
            if isinstance(d, (int, float)) and not isinstance(d, bool):
                d = {"*": d}
            if not isinstance(d, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                                  for v in d.values()):
                raise FaultError(f"faults.delay_ms: expected ms or {{path: ms}} (>= 0), got {d!r}")
            staged.delay_ms = {str(k): float(v) for k, v in d.items() if v > 0}
        for name in _COUNTERS:
            if name in doc:
                v = doc[name]
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise FaultError(f"faults.{name}: expected an integer >= 0, got {v!r}")
                setattr(staged, name, v)
        if "mute_public_streams" in doc:
            v = doc["mute_public_streams"]
            if not isinstance(v, bool):
                raise FaultError(f"faults.mute_public_streams: expected true or false, got {v!r}")
            staged.mute_public_streams = v
        if "time_skew_ms" in doc:
            v = doc["time_skew_ms"]
            if not isinstance(v, int) or isinstance(v, bool):
                raise FaultError(f"faults.time_skew_ms: expected an integer, got {v!r}")
            staged.time_skew_ms = v
        if "errors" in doc:
            rules = doc["errors"]
            if not isinstance(rules, list):
                raise FaultError(f"faults.errors: expected a list, got {rules!r}")
            staged.errors += [_rule(i, r) for i, r in enumerate(rules)]
        if "rate_limit" in doc:
            staged.rate_limits.append(_rate_rule(doc["rate_limit"]))
        for name in self.__slots__:  # type: ignore[attr-defined]
            setattr(self, name, getattr(staged, name))
        return actions

    def take_error(self, method: str, path: str, ws_op: str | None = None) -> ErrorRule | None:
        """The first rule matching the request (its count is used up), or None."""
        for rule in self.errors:
            hit = (ws_op is not None and rule.path == ws_op) or (
                rule.path in (path, "*") and rule.method in (None, method))
            if hit:
                rule.count -= 1
                if rule.count <= 0:
                    self.errors.remove(rule)
                return rule
        return None

    def take_rate_limit(self, path: str) -> RateLimitRule | None:
        """The first armed rate-limit rule of `path` (its count is used up), or None."""
        for rule in self.rate_limits:
            if rule.path in (path, "*"):
                rule.count -= 1
                if rule.count <= 0:
                    self.rate_limits.remove(rule)
                return rule
        return None

    def delay_for(self, path: str, ws_op: str | None = None) -> float:
        """Delay of a path (or of a trade-WS operation, before its REST twin's path) in ms (0 = none)."""
        if ws_op is not None and ws_op in self.delay_ms:
            return self.delay_ms[ws_op]
        return self.delay_ms.get(path, self.delay_ms.get("*", 0.0))

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        out.update(delay_ms=self.delay_ms, errors=[r.as_dict() for r in self.errors],
                   rate_limits=[r.as_dict() for r in self.rate_limits],
                   mute_public_streams=self.mute_public_streams, time_skew_ms=self.time_skew_ms)
        return out


def _path_ok(path: Any) -> bool:
    return isinstance(path, str) and (path.startswith("/v5/") or path == "*" or bool(_WS_OP.fullmatch(path)))


def _rule(i: int, r: Any) -> ErrorRule:
    where = f"faults.errors[{i}]"
    if not isinstance(r, dict):
        raise FaultError(f"{where}: expected an object, got {r!r}")
    unknown = sorted(set(r) - {"path", "method", "ret_code", "http_status", "msg", "count", "execute"})
    if unknown:
        raise FaultError(f"{where}: unknown key(s) {unknown}")
    path = r.get("path")
    if not _path_ok(path):
        raise FaultError(f"{where}.path: expected a path like '/v5/order/create', a trade-WS operation like "
                         f"'order.create', or '*', got {path!r}")
    code = r.get("ret_code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise FaultError(f"{where}.ret_code: expected a Bybit retCode (integer), got {code!r}")
    status = r.get("http_status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise FaultError(f"{where}.http_status: expected an HTTP status, got {status!r}")
    count = r.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FaultError(f"{where}.count: expected an integer >= 1, got {count!r}")
    method = r.get("method")
    if method is not None and method not in ("GET", "POST"):
        raise FaultError(f"{where}.method: expected GET or POST, got {method!r}")
    msg = r.get("msg") or DEFAULT_MSG.get(code, "Injected error.")
    return ErrorRule(path=str(path), ret_code=code, msg=str(msg), http_status=status, count=count, method=method,
                     execute=bool(r.get("execute", False)))


def _rate_rule(r: Any) -> RateLimitRule:
    where = "faults.rate_limit"
    if not isinstance(r, dict):
        raise FaultError(f"{where}: expected an object, got {r!r}")
    path = r.get("path", "*")
    if not _path_ok(path):
        raise FaultError(f"{where}.path: expected a path like '/v5/order/create' or '*', got {path!r}")
    count = r.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FaultError(f"{where}.count: expected an integer >= 1, got {count!r}")
    reset = r.get("reset_ms", 1000)
    if not isinstance(reset, int) or isinstance(reset, bool) or reset < 0:
        raise FaultError(f"{where}.reset_ms: expected an integer >= 0, got {reset!r}")
    return RateLimitRule(str(path), count, reset)
