"""Fault injection of the IBKR emulator: the state (pure `Faults`) and the HTTP control routes.

In-process (tests): call the emulator handle's methods (`drop_next_orders`, `connectivity_lost`,
`connectivity_restored`, `withhold_order_status`, `pacing_violations`, `competing_session`,
`daily_restart`, `hold_commissions`, `release_commissions`, `set_subscription`, `delay_orders`). From another
process: `nautilus-hmm emulator ibkr --control-port C` serves

* `POST /_emulator/faults` with a JSON object; every key optional, applied in this order:
  ```
  {"drop_next_orders": 1,           # next N placeOrders: accepted (and matched), then the connection is cut
                                    #   before any openOrder/orderStatus/execDetails is sent
   "withhold_order_status": 1,      # the next N orderStatus messages are not sent (the order still changes)
   "pacing_violations": 1,          # the next N reqHistoricalData get error 162 (pacing violation)
   "hold_commissions": true,        # commissionReports are kept back until false (then sent)
   "subscription": {"ES": false},   # market data permission per symbol (false: delayed only, 10167)
   "connectivity": "lost",          # "lost" (1100) | "restored" (1102, data maintained) |
                                    #   "restored_data_lost" (1101: market data subscriptions dropped)
   "competing_session": true,       # 10197 to every market data request; data stops until false
   "order_delay_ms": 50,            # hold every placeOrder this long (clock ms) before processing it
                                    #   (and what follows it on that connection: IB answers in order); 0: off
   "daily_restart_s": 60,           # close every connection and refuse new ones for N clock seconds
   "correct_execution": true}       # IB corrects the last execution (its execId's next revision, same
                                    #   values); or {"exec_id": "...", "shares": "2", "price": "101.5"}
  ```
  A malformed body is HTTP 400 `{"error"}` naming the key and value.
* `GET /_emulator/state`: connections, open orders, positions, executions, cash.
* `POST /_emulator/step` `{"n": 3}`: market steps now (1..10000).
* `POST /_emulator/bench/ping_pong` `{"symbol", "n", "timeout_s", "gap_ms", "side"}`: tick-to-order
  (`IbkrEmulator.bench_ping_pong`): one trade print to the symbol's subscribers, wait for the
  next placeOrder, repeat; answers the perf_counter_ns pairs. No subscriber: HTTP 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import web

from nautilus_hmm.venues.emulator_common import CounterFaults
from nautilus_hmm.venues.emulator_common import json_response as _json

if TYPE_CHECKING:
    from nautilus_hmm.venues.ibkr.emulator.server import IbkrEmulator

log = structlog.get_logger("venues.ibkr.emulator")

CONNECTIVITY = ("lost", "restored", "restored_data_lost")


class FaultError(ValueError):
    """A fault request is malformed: names the key and the value."""


@dataclass(slots=True)
class Faults(CounterFaults):
    """Run-time faults (counters count down as they fire)."""

    drop_next_orders: int = 0
    withhold_order_status: int = 0
    pacing_violations: int = 0
    hold_commissions: bool = False
    connectivity_lost: bool = False
    competing_session: bool = False
    order_delay_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"drop_next_orders": self.drop_next_orders, "withhold_order_status": self.withhold_order_status,
                "pacing_violations": self.pacing_violations, "hold_commissions": self.hold_commissions,
                "connectivity_lost": self.connectivity_lost, "competing_session": self.competing_session,
                "order_delay_ms": self.order_delay_ms}


def _count(doc: dict[str, Any], key: str) -> int | None:
    if key not in doc:
        return None
    v = doc[key]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1_000_000:
        raise FaultError(f"{key}: expected a whole number 0..1000000, got {v!r}")
    return v


def _flag(doc: dict[str, Any], key: str) -> bool | None:
    if key not in doc:
        return None
    v = doc[key]
    if not isinstance(v, bool):
        raise FaultError(f"{key}: expected true or false, got {v!r}")
    return v


_KEYS = ("drop_next_orders", "withhold_order_status", "pacing_violations", "hold_commissions", "subscription",
         "connectivity", "competing_session", "daily_restart_s", "order_delay_ms", "correct_execution")


def _correction(doc: dict[str, Any]) -> dict[str, Any] | None:
    """`correct_execution`: true, or {"exec_id", "shares", "price"} (each optional; numbers > 0 as text)."""
    if "correct_execution" not in doc:
        return None
    v = doc["correct_execution"]
    if v is True:
        return {}
    if not isinstance(v, dict) or set(v) - {"exec_id", "shares", "price"}:
        raise FaultError(f"correct_execution: expected true or {{\"exec_id\", \"shares\", \"price\"}}, got {v!r}")
    out: dict[str, Any] = {}
    if "exec_id" in v:
        if not isinstance(v["exec_id"], str) or not v["exec_id"]:
            raise FaultError(f"correct_execution.exec_id: expected an execId, got {v['exec_id']!r}")
        out["exec_id"] = v["exec_id"]
    for key in ("shares", "price"):
        if key in v:
            try:
                d = Decimal(str(v[key])) if not isinstance(v[key], bool) else Decimal("NaN")
            except InvalidOperation:
                d = Decimal("NaN")
            if not d.is_finite() or d <= 0 or d > Decimal("1e12"):
                raise FaultError(f"correct_execution.{key}: expected a number > 0, got {v[key]!r}")
            out[key] = d
    return out


async def apply_faults(emu: IbkrEmulator, doc: Any) -> None:
    """Apply a fault request (the JSON object above) to `emu`; FaultError before anything changes."""
    if not isinstance(doc, dict):
        raise FaultError(f"expected a JSON object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(_KEYS))
    if unknown:
        raise FaultError(f"unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    drops = _count(doc, "drop_next_orders")
    withhold = _count(doc, "withhold_order_status")
    pacing = _count(doc, "pacing_violations")
    order_delay_ms = _count(doc, "order_delay_ms")
    if order_delay_ms is not None and order_delay_ms > 60_000:
        raise FaultError(f"order_delay_ms: expected 0..60000, got {order_delay_ms!r}")
    hold = _flag(doc, "hold_commissions")
    competing = _flag(doc, "competing_session")
    correction = _correction(doc)
    if correction is not None and not any(correction.get("exec_id") in (None, e.exec_id)
                                          for e in emu.engine.executions):
        raise FaultError(f"correct_execution: no execution {correction.get('exec_id', '(any)')!s} to correct")
    subs = doc.get("subscription")
    if subs is not None:
        if not isinstance(subs, dict) or not all(isinstance(k, str) and isinstance(v, bool) for k, v in subs.items()):
            raise FaultError(f"subscription: expected {{\"SYMBOL\": true|false}}, got {subs!r}")
        known = set(emu.live_data)
        bad = sorted(set(subs) - known)
        if bad:
            raise FaultError(f"subscription: unknown symbol {bad[0]!r} (listed: {', '.join(sorted(known))})")
    connectivity = doc.get("connectivity")
    if connectivity is not None and connectivity not in CONNECTIVITY:
        raise FaultError(f"connectivity: expected one of {', '.join(CONNECTIVITY)}, got {connectivity!r}")
    restart = doc.get("daily_restart_s")
    if restart is not None and (isinstance(restart, bool) or not isinstance(restart, int | float)
                                or not 0 <= restart <= 86400):
        raise FaultError(f"daily_restart_s: expected seconds 0..86400, got {restart!r}")
    if drops is not None:
        emu.drop_next_orders(drops)
    if withhold is not None:
        emu.withhold_order_status(withhold)
    if pacing is not None:
        emu.pacing_violations(pacing)
    if hold is True:
        emu.hold_commissions()
    elif hold is False:
        emu.release_commissions()
    for symbol, live in (subs or {}).items():
        emu.set_subscription(symbol, live)
    if connectivity == "lost":
        emu.connectivity_lost()
    elif connectivity == "restored":
        emu.connectivity_restored(data_lost=False)
    elif connectivity == "restored_data_lost":
        emu.connectivity_restored(data_lost=True)
    if competing is not None:
        emu.competing_session(competing)
    if order_delay_ms is not None:
        emu.delay_orders(order_delay_ms / 1000)
    if correction is not None:
        emu.correct_execution(correction.get("exec_id"), shares=correction.get("shares"),
                              price=correction.get("price"))
    if restart is not None:
        await emu.daily_restart(float(restart))


class ControlServer:
    """The HTTP control routes (`POST /_emulator/faults`, `GET /_emulator/state`) for a separate process."""

    def __init__(self, emu: IbkrEmulator) -> None:
        self.emu = emu
        self.app = web.Application()
        self.app.router.add_post("/_emulator/faults", self._post_faults)
        self.app.router.add_get("/_emulator/faults", self._get_faults)
        self.app.router.add_get("/_emulator/state", self._get_state)
        self.app.router.add_post("/_emulator/step", self._post_step)
        self.app.router.add_post("/_emulator/bench/ping_pong", self._post_ping_pong)

    async def _post_faults(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            doc = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            return _json({"error": f"body is not JSON: {exc}"}, 400)
        try:
            await apply_faults(self.emu, doc)
        except FaultError as exc:
            return _json({"error": str(exc)}, 400)
        log.info("ibkr_emulator_faults", faults=doc)
        return _json(self.emu.faults.as_dict())

    async def _get_faults(self, request: web.Request) -> web.Response:
        del request
        return _json(self.emu.faults.as_dict())

    async def _get_state(self, request: web.Request) -> web.Response:
        del request
        return _json(self.emu.state())

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        doc = orjson.loads(raw) if raw else {}
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
        return doc

    async def _post_step(self, request: web.Request) -> web.Response:
        try:
            n = (await self._body(request)).get("n", 1)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return _json({"error": f"step: {exc}"}, 400)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
            return _json({"error": f"step.n: expected 1..10000, got {n!r}"}, 400)
        for _ in range(n):
            self.emu.step()
        return _json({"steps": n})

    async def _post_ping_pong(self, request: web.Request) -> web.Response:
        try:
            doc = await self._body(request)
            side = doc.get("side")
            if side not in (None, "BUY", "SELL"):
                raise ValueError(f"side: expected BUY or SELL, got {side!r}")
            out = await self.emu.bench_ping_pong(str(doc.get("symbol", "AAPL")), int(doc.get("n", 1000)),
                                                 float(doc.get("timeout_s", 2.0)),
                                                 float(doc.get("gap_ms", 0.0)) / 1000, side)
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return _json({"error": f"bench/ping_pong: {exc}"}, 400)
        return _json(out)
