"""Fault injection state of the emulator, set at run time through POST /_emulator/faults (pure).

The JSON body merges into the current faults; every key is optional:

```
{
  "reset": true,                       # clear every fault first
  "close_websockets": "all",           # one-shot: "all" | "market" | "user" | "ws_api"
  "expire_listen_keys": true,          # one-shot: expire every listenKey now (listenKeyExpired)
  "delay_ms": {"/api/v3/order": 500},  # per path ("*" = every path); on the emulator's clock
  "errors": [                          # answer the next `count` matching requests with an error
    {"path": "/api/v3/order", "method": "POST", "status": 503, "code": -1007,
     "msg": "...", "count": 1, "retry_after_s": 30, "execute": false}
  ],                                   # execute=true: process the request, then answer the error
  "timeout_order_responses": 1,        # next N new orders: executed, the answer never comes
  "drop_order_responses": 1,           # next N new orders: executed, then the connection is cut
  "skip_depth_updates": 3,             # next N diff-depth events are not sent (a gap)
  "duplicate_stream_messages": 2,      # next N market frames are sent twice
  "reorder_stream_messages": 1,        # next N pairs of market frames are swapped
  "malformed_frames": 1,               # N frames that are not JSON before the next tick
  "mute_market_streams": true,         # stop sending market data (connections stay open)
  "time_skew_ms": 5000                 # server time = clock + skew (forces -1021)
}
```

A WebSocket API request (`order.place`, `order.cancel`, `order.status`) is the twin of a
REST endpoint: a delay or an error keyed by that endpoint's path (and method) applies
to it too; keyed by the WebSocket API method name (`"path": "order.place"`, `"delay_ms":
{"order.place": 50}`) it applies to the WebSocket API only. The order counters
(`timeout_order_responses`, `drop_order_responses`) apply to new orders on both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from nautilus_hmm.venues.emulator_common import CounterFaults

DEFAULT_ERROR_MSG = {
    -1003: "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use "
           "WebSocket Streams for live updates to avoid polling the API.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
    -2010: "Account has insufficient balance for requested action.",
}
_WS_API_METHOD = re.compile(r"[a-zA-Z]+(\.[a-zA-Z]+)+")
_COUNTERS = ("timeout_order_responses", "drop_order_responses", "skip_depth_updates",
             "duplicate_stream_messages", "reorder_stream_messages", "malformed_frames")


class FaultError(ValueError):
    """A fault request is malformed: names the key and the value."""


@dataclass(slots=True)
class ErrorRule:
    """Answer the next `count` requests matching (method, path) with this error."""

    path: str
    status: int
    code: int
    msg: str
    count: int = 1
    method: str | None = None
    retry_after_s: float | None = None
    execute: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "method": self.method, "status": self.status, "code": self.code,
                "msg": self.msg, "count": self.count, "retry_after_s": self.retry_after_s, "execute": self.execute}


@dataclass(slots=True)
class Faults(CounterFaults):
    """Current faults (see the module docstring)."""

    delay_ms: dict[str, float] = field(default_factory=dict)
    errors: list[ErrorRule] = field(default_factory=list)
    timeout_order_responses: int = 0
    drop_order_responses: int = 0
    skip_depth_updates: int = 0
    duplicate_stream_messages: int = 0
    reorder_stream_messages: int = 0
    malformed_frames: int = 0
    mute_market_streams: bool = False
    time_skew_ms: int = 0

    def apply(self, doc: Any) -> dict[str, Any]:
        """Merge a control request; returns the one-shot actions to run. FaultError when malformed."""
        if not isinstance(doc, dict):
            raise FaultError(f"faults: expected a JSON object, got {type(doc).__name__}")
        known = {"reset", "close_websockets", "expire_listen_keys", "delay_ms", "errors", "mute_market_streams",
                 "time_skew_ms", *_COUNTERS}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise FaultError(f"faults: unknown key(s) {unknown}; known: {sorted(known)}")
        if doc.get("reset"):
            fresh = Faults()
            for name in self.__slots__:  # type: ignore[attr-defined]
                setattr(self, name, getattr(fresh, name))
        actions: dict[str, Any] = {}
        cw = doc.get("close_websockets")
        if cw is not None:
            if cw is True:
                cw = "all"
            if cw not in ("all", "market", "user", "ws_api"):
                raise FaultError(f"faults.close_websockets: expected 'all', 'market', 'user' or 'ws_api', got {cw!r}")
            actions["close_websockets"] = cw
        if doc.get("expire_listen_keys"):
            actions["expire_listen_keys"] = True
        if "delay_ms" in doc:
            d = doc["delay_ms"]
            if isinstance(d, (int, float)) and not isinstance(d, bool):
                d = {"*": d}
            if not isinstance(d, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in d.values()):
                raise FaultError(f"faults.delay_ms: expected ms or {{path: ms}} (>= 0), got {d!r}")
            self.delay_ms = {str(k): float(v) for k, v in d.items() if v > 0}
        for name in _COUNTERS:
            if name in doc:
                v = doc[name]
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise FaultError(f"faults.{name}: expected an integer >= 0, got {v!r}")
                setattr(self, name, v)
        if "mute_market_streams" in doc:
            self.mute_market_streams = bool(doc["mute_market_streams"])
        if "time_skew_ms" in doc:
            v = doc["time_skew_ms"]
            if not isinstance(v, int) or isinstance(v, bool):
                raise FaultError(f"faults.time_skew_ms: expected an integer, got {v!r}")
            self.time_skew_ms = v
        if "errors" in doc:
            rules = doc["errors"]
            if not isinstance(rules, list):
                raise FaultError(f"faults.errors: expected a list, got {rules!r}")
            self.errors += [_rule(i, r) for i, r in enumerate(rules)]
        return actions

    def take_error(self, method: str, path: str, ws_method: str | None = None) -> ErrorRule | None:
        """The first rule matching the request (its count is used up), or None.

        `ws_method`: the request came over the WebSocket API as this method, the twin of
        (`method`, `path`); a rule keyed by the method name matches it as well.
        """
        for rule in self.errors:
            if ws_method is not None and rule.path == ws_method:
                hit = True
            else:
                hit = rule.path in (path, "*") and rule.method in (None, method)
            if hit:
                rule.count -= 1
                if rule.count <= 0:
                    self.errors.remove(rule)
                return rule
        return None

    def delay_for(self, path: str, ws_method: str | None = None) -> float:
        """Delay of a path (or of a WebSocket API method, before its REST twin's path) in ms (0 = none)."""
        if ws_method is not None and ws_method in self.delay_ms:
            return self.delay_ms[ws_method]
        return self.delay_ms.get(path, self.delay_ms.get("*", 0.0))

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        out.update(delay_ms=self.delay_ms, errors=[r.as_dict() for r in self.errors],
                   mute_market_streams=self.mute_market_streams, time_skew_ms=self.time_skew_ms)
        return out


def _rule(i: int, r: Any) -> ErrorRule:
    where = f"faults.errors[{i}]"
    if not isinstance(r, dict):
        raise FaultError(f"{where}: expected an object, got {r!r}")
    path = r.get("path")
    if not isinstance(path, str) or not (path.startswith(("/", "*")) or _WS_API_METHOD.fullmatch(path)):
        raise FaultError(f"{where}.path: expected a path like '/api/v3/order', a WebSocket API method like "
                         f"'order.place', or '*', got {path!r}")
    status = r.get("status", 400)
    code = r.get("code")
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise FaultError(f"{where}.status: expected an HTTP status, got {status!r}")
    if not isinstance(code, int):
        raise FaultError(f"{where}.code: expected a Binance error code (integer), got {code!r}")
    count = r.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise FaultError(f"{where}.count: expected an integer >= 1, got {count!r}")
    method = r.get("method")
    if method is not None and method not in ("GET", "POST", "PUT", "DELETE"):
        raise FaultError(f"{where}.method: expected GET/POST/PUT/DELETE, got {method!r}")
    retry = r.get("retry_after_s")
    if retry is not None and (not isinstance(retry, (int, float)) or retry < 0):
        raise FaultError(f"{where}.retry_after_s: expected seconds >= 0, got {retry!r}")
    msg = r.get("msg") or DEFAULT_ERROR_MSG.get(code, "Injected error.")
    return ErrorRule(path=path, status=status, code=code, msg=str(msg), count=count, method=method,
                     retry_after_s=None if retry is None else float(retry), execute=bool(r.get("execute", False)))
