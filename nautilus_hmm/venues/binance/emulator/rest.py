"""The emulator's REST side: the route tables, and the one request path every transport shares.

`RestApi.process` is the exchange's answer to one request on any transport (REST here,
the WebSocket API in wsapi.py): bans and weights first (they apply to every request, as
on the venue), then injected errors and delays, then authentication, then the exchange.
The REST transport shapes an `Answer` into a response with `X-MBX-USED-WEIGHT-1M` (and
`Retry-After` on 429 / 418); a withheld answer (`timeout_order_responses`,
`drop_order_responses`) waits until the emulator stops, or cuts the connection first.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import orjson
import structlog
from aiohttp import web

from nautilus_hmm.venues.binance.emulator import market_data
from nautilus_hmm.venues.binance.emulator.exchange import EmulatorError
from nautilus_hmm.venues.binance.emulator.market_data import PublicMarketData
from nautilus_hmm.venues.binance.market import Market
from nautilus_hmm.venues.binance.rest import klines_weight_usdm

if TYPE_CHECKING:
    from nautilus_hmm.venues.binance.emulator.server import BinanceEmulator

log = structlog.get_logger("venues.binance.emulator")

MAX_RECV_WINDOW_MS = 60_000
# A request that reaches the emulator this soon after it answered a 429 crossed that answer
# in flight (its sender could not have seen it yet): it gets the 429 again instead of a ban.
# Binance bans for "failing to back off", not for requests already on the wire.
CROSSING_GRACE_MS = 50
DEFAULT_WEIGHT_LIMIT_1M = {Market.SPOT: 6000, Market.USDM: 2400}
REQUEST_LOG_LEN = 5000

Handler = Callable[[dict[str, str], int], tuple[Any, list[dict[str, Any]]]]


@dataclass(slots=True)
class Route:
    """One REST endpoint of the emulator.

    `weight` is the request weight; `weight_of(params)`, when set, computes it instead
    (weights that depend on the symbols asked for, or a limit).
    """

    method: str
    path: str
    weight: int
    security: str  # "none" | "key" | "signed"
    handler: Handler
    new_order: bool = False
    weight_of: Callable[[dict[str, str]], int] | None = None


@dataclass(slots=True)
class Answer:
    """What the exchange answers one request, before a transport (REST, WebSocket API) shapes it."""

    status: int
    body: Any
    retry_after_s: float | None = None  # REST: the Retry-After header
    until_ms: int | None = None  # WebSocket API: error.data.retryAfter, when a 429 / 418 ends
    withheld: str = ""  # "timeout" | "dropped": executed, the transport withholds the answer

    @property
    def code(self) -> int | None:
        """The Binance error code of an error answer."""
        return self.body.get("code") if self.status >= 400 and isinstance(self.body, dict) else None


def _simple(fn: Callable[[dict[str, str]], Any]) -> Handler:
    """A handler that makes no user events."""
    return lambda p, now_ns: (fn(p), [])


def _timed(fn: Callable[[dict[str, str], int], Any]) -> Handler:
    """A handler of (params, now_ns) that makes no user events."""
    return lambda p, now_ns: (fn(p, now_ns), [])


class RestApi:
    """Route tables, the shared request path (bans, weights, faults, auth) and the REST transport."""

    def __init__(self, emu: BinanceEmulator) -> None:
        self.emu = emu
        self.routes: dict[tuple[str, str], Route] = {}
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LEN)
        self.request_counts: Counter[str] = Counter()
        self.new_order_requests: list[dict[str, Any]] = []
        self.withheld_orders: list[dict[str, Any]] = []  # executed, answer withheld or connection cut
        self.used_weight_1m = 0
        self.limited_until_ms = 0
        self.limited_at_ms = 0  # when the current 429 back-off began
        self.banned_until_ms = 0
        self.bans = 0
        self._weight_window = -1
        # Withheld answers wait on this; the emulator sets it when it stops.
        self.release = asyncio.Event()
        # Benchmarks: the next new-order request resolves this with (client order id,
        # perf_counter_ns at its arrival).
        self.order_waiter: asyncio.Future[tuple[str, int]] | None = None
        self.order_waiter_side: str | None = None
        self.public = PublicMarketData(emu.exchange)

    # ------------------------------------------------------------ route tables

    @property
    def prefix(self) -> str:
        """The path prefix of the market's v1/v3 endpoints (`/api/v3` spot, `/fapi/v1` USD-M)."""
        return "/api/v3" if self.emu.market is Market.SPOT else "/fapi/v1"

    def build_routes(self) -> list[Route]:
        """Every REST endpoint of the market (Binance's paths, weights and security)."""
        emu = self.emu
        ex = emu.exchange
        sm = emu.server_ms
        keys = emu.streams
        if emu.market is Market.SPOT:
            pre = "/api/v3"
            return [
                Route("GET", f"{pre}/ping", 1, "none", _simple(lambda p: {})),
                Route("GET", f"{pre}/time", 1, "none", _simple(lambda p: {"serverTime": sm()})),
                Route("GET", f"{pre}/exchangeInfo", 20, "none",
                      _simple(lambda p: ex.exchange_info(sm(), emu.weight_limit_1m))),
                Route("GET", f"{pre}/depth", 50, "none",
                      _simple(lambda p: ex.depth_snapshot(p.get("symbol", ""), int(p.get("limit", 100)), sm())),
                      weight_of=depth_weight_spot),
                Route("GET", f"{pre}/klines", 2, "none", _simple(ex.rest_klines)),
                *self._spot_market_data_routes(pre),
                Route("POST", f"{pre}/order", 1, "signed", ex.new_order, new_order=True),
                Route("GET", f"{pre}/order", 4, "signed", _simple(ex.query)),
                Route("DELETE", f"{pre}/order", 1, "signed", ex.cancel),
                Route("GET", f"{pre}/openOrders", 6, "signed", _simple(lambda p: ex.open_orders(p.get("symbol")))),
                Route("DELETE", f"{pre}/openOrders", 1, "signed", lambda p, n: ex.cancel_all(p.get("symbol"), n)),
                Route("GET", f"{pre}/allOrders", 20, "signed", _simple(lambda p: ex.all_orders(p.get("symbol")))),
                Route("GET", f"{pre}/account", 20, "signed",
                      _simple(lambda p: ex.spot_account(sm(), p.get("omitZeroBalances") == "true"))),
                Route("GET", f"{pre}/myTrades", 20, "signed", _simple(ex.account_trades)),
                Route("POST", f"{pre}/userDataStream", 2, "key", _simple(keys.key_new)),
                Route("PUT", f"{pre}/userDataStream", 2, "key", _simple(keys.key_keepalive)),
                Route("DELETE", f"{pre}/userDataStream", 2, "key", _simple(keys.key_close)),
            ]
        pre = "/fapi/v1"
        fa = ex.futures
        assert fa is not None
        routes = [
            Route("GET", f"{pre}/ping", 1, "none", _simple(lambda p: {})),
            Route("GET", f"{pre}/time", 1, "none", _simple(lambda p: {"serverTime": sm()})),
            Route("GET", f"{pre}/exchangeInfo", 1, "none",
                  _simple(lambda p: ex.exchange_info(sm(), emu.weight_limit_1m))),
            Route("GET", f"{pre}/depth", 20, "none",
                  _simple(lambda p: ex.depth_snapshot(p.get("symbol", ""), int(p.get("limit", 500)), sm())),
                  weight_of=depth_weight_usdm),
            Route("GET", f"{pre}/klines", 5, "none", _simple(ex.rest_klines),
                  weight_of=lambda p: klines_weight_usdm(int(p.get("limit", 500)))),
            *self._usdm_market_data_routes(pre),
            Route("POST", f"{pre}/order", 1, "signed", ex.new_order, new_order=True),
            Route("GET", f"{pre}/order", 1, "signed", _simple(ex.query)),
            Route("DELETE", f"{pre}/order", 1, "signed", ex.cancel),
            Route("GET", f"{pre}/openOrders", 1, "signed", _simple(lambda p: ex.open_orders(p.get("symbol")))),
            Route("DELETE", f"{pre}/allOpenOrders", 1, "signed", lambda p, n: ex.cancel_all(p.get("symbol"), n)),
            Route("GET", f"{pre}/allOrders", 5, "signed", _simple(lambda p: ex.all_orders(p.get("symbol")))),
            Route("GET", f"{pre}/userTrades", 5, "signed", _simple(ex.account_trades)),
            Route("POST", f"{pre}/listenKey", 1, "key", _simple(keys.key_new)),
            Route("PUT", f"{pre}/listenKey", 1, "key", _simple(keys.key_keepalive)),
            Route("DELETE", f"{pre}/listenKey", 1, "key", _simple(keys.key_close)),
            Route("POST", f"{pre}/leverage", 1, "signed", _simple(self._leverage)),
            Route("POST", f"{pre}/marginType", 1, "signed", _simple(self._margin_type)),
            Route("GET", f"{pre}/positionSide/dual", 30, "signed",
                  _simple(lambda p: {"dualSidePosition": fa.dual_side})),
            Route("POST", f"{pre}/positionSide/dual", 1, "signed", _simple(self._position_mode)),
        ]
        for v in ("v2", "v3"):
            routes += [
                Route("GET", f"/fapi/{v}/account", 5, "signed", _simple(lambda p: ex.futures_account(sm()))),
                Route("GET", f"/fapi/{v}/balance", 5, "signed", _simple(self._futures_balance)),
                Route("GET", f"/fapi/{v}/positionRisk", 5, "signed",
                      _simple(lambda p: [r for r in ex.futures_positions(sm())
                                         if not p.get("symbol") or r["symbol"] == p["symbol"]])),
            ]
        return routes

    def _spot_market_data_routes(self, pre: str) -> list[Route]:
        """Spot public market endpoints (weights: rest-api.md, 2026-07)."""
        pub = self.public
        return [
            Route("GET", f"{pre}/ticker/24hr", 2, "none", _timed(pub.ticker_24hr),
                  weight_of=market_data.spot_ticker_24hr_weight),
            Route("GET", f"{pre}/ticker/price", 2, "none", _timed(pub.ticker_price),
                  weight_of=market_data.by_symbol(2, 4)),
            Route("GET", f"{pre}/ticker/bookTicker", 2, "none", _timed(pub.book_ticker),
                  weight_of=market_data.by_symbol(2, 4)),
            Route("GET", f"{pre}/avgPrice", 2, "none", _timed(pub.avg_price)),
            Route("GET", f"{pre}/trades", 25, "none", _timed(pub.trades)),
            Route("GET", f"{pre}/aggTrades", 4, "none", _timed(pub.agg_trades)),
        ]

    def _usdm_market_data_routes(self, pre: str) -> list[Route]:
        """USD-M public market endpoints (weights: the USD-M market-data docs)."""
        pub = self.public
        return [
            Route("GET", f"{pre}/ticker/24hr", 1, "none", _timed(pub.ticker_24hr),
                  weight_of=market_data.by_symbol(1, 40)),
            Route("GET", f"{pre}/ticker/price", 1, "none", _timed(pub.ticker_price),
                  weight_of=market_data.by_symbol(1, 2)),
            Route("GET", "/fapi/v2/ticker/price", 1, "none", _timed(pub.ticker_price),
                  weight_of=market_data.by_symbol(1, 2)),
            Route("GET", f"{pre}/ticker/bookTicker", 2, "none", _timed(pub.book_ticker),
                  weight_of=market_data.by_symbol(2, 5)),
            Route("GET", f"{pre}/trades", 5, "none", _timed(pub.trades)),
            Route("GET", f"{pre}/aggTrades", 20, "none", _timed(pub.agg_trades)),
            Route("GET", f"{pre}/premiumIndex", 1, "none", _timed(pub.premium_index),
                  weight_of=market_data.by_symbol(1, 10)),
        ]

    def add_routes(self, app: web.Application) -> None:
        """Register every REST endpoint on `app`."""
        for r in self.build_routes():
            self.routes[(r.method, r.path)] = r
            app.router.add_route(r.method, r.path, self._rest_handler(r))

    # ------------------------------------------------------------ REST transport

    def json_response(self, body: Any, status: int = 200, extra: dict[str, str] | None = None) -> web.Response:
        """A JSON answer with the weight header (and `extra` headers)."""
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.used_weight_1m)}
        if extra:
            headers.update(extra)
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                            headers=headers)

    def error_response(self, status: int, code: int, msg: str, retry_after_s: float | None = None) -> web.Response:
        """A Binance error body `{"code", "msg"}` (Retry-After in whole seconds when given)."""
        extra = {"Retry-After": str(max(0, math.ceil(retry_after_s)))} if retry_after_s is not None else None
        return self.json_response({"code": code, "msg": msg}, status, extra)

    def _rest_answer(self, a: Answer) -> web.Response:
        if a.status >= 400:
            extra = {"Retry-After": str(max(0, math.ceil(a.retry_after_s)))} if a.retry_after_s is not None else None
            return self.json_response(a.body, a.status, extra)
        return self.json_response(a.body)

    def _rest_handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            arrival_ns = time.perf_counter_ns() if route.new_order else 0
            received_ms = self.emu.server_ms()
            resp = await self._handle(request, route, arrival_ns)
            # ts_ms: when the answer was made; received_ms: when the request arrived.
            entry = {"ts_ms": self.emu.server_ms(), "received_ms": received_ms, "method": route.method,
                     "path": route.path, "status": resp.status}
            self.request_log.append(entry)
            return resp
        return handle

    async def _handle(self, request: web.Request, route: Route, arrival_ns: int = 0) -> web.StreamResponse:
        self.request_counts[f"{route.method} {route.path}"] += 1
        now_ms = self.emu.server_ms()
        query = request.rel_url.raw_query_string
        body = (await request.read()).decode("utf-8", "replace") if request.can_read_body else ""
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body:
            params.update(parse_qsl(body, keep_blank_values=True))
        receipt = self.receipt(route, params, now_ms, arrival_ns, "rest")
        answer = await self.process(route, params, now_ms,
                                    lambda: self._authenticate(request, route, params, query, body))
        if answer.withheld == "dropped" and request.transport is not None:
            request.transport.abort()
        if answer.withheld:
            await self.release.wait()
        if receipt is not None:
            close_receipt(receipt, answer)
        return self._rest_answer(answer)

    # ------------------------------------------------------------ the shared request path

    def receipt(self, route: Route, params: dict[str, str], now_ms: int, arrival_ns: int,
                transport: str) -> dict[str, Any] | None:
        """Record a new-order request as it arrives (any transport); wake a benchmark waiting for it."""
        if not route.new_order:
            return None
        receipt = {"client_order_id": params.get("newClientOrderId"), "ts_ms": now_ms,
                   "symbol": params.get("symbol"), "side": params.get("side"), "transport": transport}
        self.new_order_requests.append(receipt)
        waiter = self.order_waiter
        if (waiter is not None and not waiter.done()
                and self.order_waiter_side in (None, params.get("side"))):
            waiter.set_result((params.get("newClientOrderId") or "", arrival_ns))
        return receipt

    async def process(self, route: Route, params: dict[str, str], now_ms: int,
                      authenticate: Callable[[], None], ws_method: str | None = None) -> Answer:
        """One request on any transport: bans, weights, faults, authentication, the exchange."""
        emu = self.emu
        # Bans and weights come first, as on the venue: they apply to every request.
        if now_ms < self.banned_until_ms:
            return self._ban_answer(now_ms)
        if now_ms < self.limited_until_ms:
            if now_ms - self.limited_at_ms <= CROSSING_GRACE_MS:
                # Sent before its sender could have seen the 429 (requests in flight together,
                # e.g. two symbols' orders): refused the same way, not held against the IP.
                return self._limited_answer(now_ms)
            self.banned_until_ms = now_ms + int(emu.ban_s * 1000)
            self.bans += 1
            log.warning("binance_emulator_ip_banned", reason="request during a 429 back-off")
            return self._ban_answer(now_ms)
        self.charge(request_weight(emu.market, route, params), now_ms)
        if self.used_weight_1m > emu.weight_limit_1m:
            self.limited_at_ms = now_ms
            self.limited_until_ms = (now_ms // 60_000 + 1) * 60_000
            return self._limited_answer(now_ms)
        rule = emu.faults.take_error(route.method, route.path, ws_method)
        if rule is not None and not rule.execute:
            return self._rule_answer(rule, now_ms)
        delay_ms = emu.faults.delay_for(route.path, ws_method)
        if delay_ms > 0:
            await emu.clock.sleep(delay_ms / 1000.0)
        try:
            authenticate()
            answer, user = route.handler(params, emu.clock.time_ns())
        except EmulatorError as exc:
            return error_answer(exc.status, exc.code, exc.msg)
        except (ValueError, KeyError) as exc:
            return error_answer(400, -1100, f"Illegal characters found in a parameter: {exc}")
        await emu.streams.send_user(user)
        if rule is not None:
            return self._rule_answer(rule, now_ms)
        for fault, how in (("timeout_order_responses", "timeout"), ("drop_order_responses", "dropped")):
            if route.new_order and emu.faults.take(fault):
                log.info("binance_emulator_answer_withheld" if how == "timeout"
                         else "binance_emulator_connection_dropped", path=ws_method or route.path)
                self.withheld_orders.append({"client_order_id": params.get("newClientOrderId"), "how": how,
                                             "ts_ms": now_ms})
                timeout = error_answer(503, -1007, "Timeout waiting for response from backend server.")
                timeout.withheld = how
                return timeout
        return Answer(200, answer)

    def charge(self, weight: int, now_ms: int) -> None:
        """Add `weight` to the current minute's used weight (nothing when unmetered)."""
        window = now_ms // 60_000
        if window != self._weight_window:
            self._weight_window = window
            self.used_weight_1m = 0
        if not self.emu.unmetered:
            self.used_weight_1m += weight

    def _ban_answer(self, now_ms: int) -> Answer:
        return error_answer(418, -1003, f"Way too much request weight used; IP banned until "
                                        f"{self.banned_until_ms}. Please use WebSocket Streams for live updates "
                                        "to avoid bans.",
                            (self.banned_until_ms - now_ms) / 1000.0, self.banned_until_ms)

    def _limited_answer(self, now_ms: int) -> Answer:
        return error_answer(
            429, -1003, f"Too much request weight used; current limit is {self.emu.weight_limit_1m} request weight "
                        "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            (self.limited_until_ms - now_ms) / 1000.0, self.limited_until_ms)

    def _rule_answer(self, rule: Any, now_ms: int) -> Answer:
        until_ms = None
        if rule.status == 429 and rule.retry_after_s is not None:
            self.limited_at_ms = now_ms
            self.limited_until_ms = now_ms + int(rule.retry_after_s * 1000)
            until_ms = self.limited_until_ms
        msg = rule.msg
        if rule.status == 418:
            self.banned_until_ms = now_ms + int((rule.retry_after_s or self.emu.ban_s) * 1000)
            until_ms = self.banned_until_ms
            msg = (f"Way too much request weight used; IP banned until {self.banned_until_ms}. "
                   "Please use WebSocket Streams for live updates to avoid bans.")
        return error_answer(rule.status, rule.code, msg, rule.retry_after_s, until_ms)

    # ------------------------------------------------------------ authentication

    def _authenticate(self, request: web.Request, route: Route, params: dict[str, str], query: str,
                      body: str) -> None:
        if route.security == "none":
            return
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise EmulatorError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key, self.emu.api_key):
            raise EmulatorError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        self.check_permission(route)
        if route.security != "signed":
            return
        q_unsigned, sig_q = strip_signature(query)
        b_unsigned, sig_b = strip_signature(body)
        self.check_signed(params, q_unsigned + b_unsigned, sig_q or sig_b)

    def check_permission(self, route: Route) -> None:
        """A read-only key (`BinanceEmulator(read_only_key=True)`, "Enable Reading" only) may read
        and keep a listenKey alive; a signed write (order, cancel, leverage, margin type,
        position mode) is refused as Binance refuses it: HTTP 401, -2015."""
        if self.emu.read_only_key and route.security == "signed" and route.method != "GET":
            raise EmulatorError(401, -2015, "Invalid API-key, IP, or permissions for action.")

    def check_signed(self, params: dict[str, str], signed_text: str, sig: str | None) -> None:
        """timestamp, recvWindow and signature checks shared by REST and the WebSocket API."""
        if "timestamp" not in params:
            raise EmulatorError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or "
                                            "malformed.")
        if not sig:
            raise EmulatorError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or "
                                            "malformed.")
        try:
            ts = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise EmulatorError(400, -1100, "Illegal characters found in parameter 'timestamp'.") from None
        if recv_window > MAX_RECV_WINDOW_MS or recv_window <= 0:
            raise EmulatorError(400, -1131, "recvWindow must be less than 60000")
        expected = self.emu.creds.sign(signed_text)
        if not hmac.compare_digest(expected.lower(), sig.lower()):
            raise EmulatorError(400, -1022, "Signature for this request is not valid.")
        server = self.emu.server_ms()
        if ts > server + 1000:
            raise EmulatorError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - ts > recv_window:
            raise EmulatorError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # ------------------------------------------------------------ USD-M settings

    def _leverage(self, p: dict[str, str]) -> dict[str, Any]:
        fa = self.emu.exchange.futures
        assert fa is not None
        s = self.emu.exchange._sym(p.get("symbol"))
        try:
            lev = int(p.get("leverage", ""))
        except ValueError:
            raise EmulatorError(400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or "
                                            "malformed.") from None
        if not 1 <= lev <= 125:
            raise EmulatorError(400, -4028, f"Leverage {lev} is not valid")
        fa.leverage[s] = lev
        return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": s}

    def _margin_type(self, p: dict[str, str]) -> dict[str, Any]:
        fa = self.emu.exchange.futures
        assert fa is not None
        s = self.emu.exchange._sym(p.get("symbol"))
        mt = p.get("marginType", "")
        if mt not in ("CROSSED", "ISOLATED"):
            raise EmulatorError(400, -4000, "Invalid marginType.")
        if fa.margin_type[s] == mt:
            raise EmulatorError(400, -4046, "No need to change margin type.")
        fa.margin_type[s] = mt
        return {"code": 200, "msg": "success"}

    def _position_mode(self, p: dict[str, str]) -> dict[str, Any]:
        fa = self.emu.exchange.futures
        assert fa is not None
        want = p.get("dualSidePosition", "").lower()
        if want not in ("true", "false"):
            raise EmulatorError(400, -1102, "Mandatory parameter 'dualSidePosition' was not sent, was empty/null, "
                                            "or malformed.")
        if fa.dual_side == (want == "true"):
            raise EmulatorError(400, -4059, "No need to change position side.")
        fa.dual_side = want == "true"
        return {"code": 200, "msg": "success"}

    def _futures_balance(self, p: dict[str, str]) -> list[dict[str, Any]]:
        fa = self.emu.exchange.futures
        assert fa is not None
        w, a = f"{fa.wallet:.8f}", f"{fa.available():.8f}"
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": w, "crossWalletBalance": w,
                 "crossUnPnl": f"{fa.unrealized():.8f}", "availableBalance": a, "maxWithdrawAmount": a,
                 "marginAvailable": True, "updateTime": self.emu.server_ms()}]


def error_answer(status: int, code: int, msg: str, retry_after_s: float | None = None,
                 until_ms: int | None = None) -> Answer:
    """An error `Answer` with Binance's body."""
    return Answer(status, {"code": code, "msg": msg}, retry_after_s, until_ms)


def close_receipt(receipt: dict[str, Any], answer: Answer) -> None:
    """Complete a new-order receipt with its answer's status (and code)."""
    receipt.setdefault("status", answer.status)
    if answer.status >= 400 and answer.code is not None:
        receipt["code"] = answer.code


def request_weight(market: Market, route: Route, params: dict[str, str]) -> int:
    """Binance's weight of one request: open orders of every symbol cost 80 (spot) / 40 (USD-M);
    routes with a `weight_of` compute theirs from the params."""
    if route.method == "GET" and route.path.endswith("/openOrders") and not params.get("symbol"):
        return 80 if market is Market.SPOT else 40
    if route.weight_of is not None:
        return route.weight_of(params)
    return route.weight


def _limit_param(p: dict[str, str], default: int) -> int:
    """`limit` as a number for weighing (a malformed one weighs as the default; the handler refuses it)."""
    try:
        return int(p.get("limit", default))
    except ValueError:
        return default


def depth_weight_spot(p: dict[str, str]) -> int:
    """Spot GET depth by limit (default 100): 5 up to 100, 25 up to 500, 50 up to 1000, else 250."""
    limit = _limit_param(p, 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def depth_weight_usdm(p: dict[str, str]) -> int:
    """USD-M GET depth by limit (default 500): 2 up to 50, 5 at 100, 10 at 500, 20 at 1000."""
    limit = _limit_param(p, 500)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def strip_signature(raw: str) -> tuple[str, str | None]:
    """(the string without its `signature=` parameter, the signature) of a query or form body."""
    if not raw:
        return "", None
    sig = None
    keep = []
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = unquote(part[len("signature="):])
        else:
            keep.append(part)
    return "&".join(keep), sig
