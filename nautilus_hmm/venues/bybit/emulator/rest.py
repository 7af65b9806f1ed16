"""The Bybit emulator's REST side: the /v5 route table and the one request path every transport shares.

`RestApi.process` is the exchange's answer to one request on any transport (REST here, the
trade WebSocket in wsapi.py), in Bybit's order: the IP limit (HTTP 403 and a ban, 10
minutes by default, past `ip_limit_5s` requests in 5 s), injected errors, per-endpoint
rate limits (retCode 10006 with `X-Bapi-Limit`, `-Limit-Status`, `-Limit-Reset-Timestamp`),
injected delays, authentication (10003 key, 10002 timestamp outside the recv window,
10004 signature), then the exchange. Every answer is the v5 envelope `{"retCode",
"retMsg", "result", "retExtInfo", "time"}` (HTTP 200 even for most errors, as on Bybit).

Signed requests: `X-BAPI-API-KEY`, `X-BAPI-TIMESTAMP`, `X-BAPI-RECV-WINDOW` (default 5000)
and `X-BAPI-SIGN` = hex HMAC-SHA256(secret, timestamp + key + recv_window + payload), the
payload being the query string as sent (GET) or the raw JSON body (POST). The check is
written here independently of the client's signer, so a shared mistake cannot pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
import structlog
from aiohttp import web

from nautilus_hmm.venues.bybit.emulator.exchange import BybitError, params_error

if TYPE_CHECKING:
    from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator

log = structlog.get_logger("venues.bybit.emulator")

DEFAULT_RECV_WINDOW_MS = 5000
REQUEST_LOG_LEN = 5000
IP_WINDOW_MS = 5000
# Per-endpoint limits (requests per second per UID), Bybit's defaults for a normal account.
DEFAULT_LIMIT_PER_S = 50
ENDPOINT_LIMITS_PER_S = {"/v5/order/create": 20, "/v5/order/amend": 10, "/v5/order/cancel": 20,
                         "/v5/order/cancel-all": 10, "/v5/position/set-leverage": 10,
                         "/v5/position/switch-mode": 10}

Handler = Callable[[dict[str, Any], int], tuple[Any, list[tuple[str, dict[str, Any]]]]]


@dataclass(slots=True)
class Route:
    """One /v5 endpoint of the emulator."""

    method: str
    path: str
    signed: bool
    handler: Handler
    new_order: bool = False


@dataclass(slots=True)
class Answer:
    """What the exchange answers one request, before a transport shapes it."""

    http_status: int
    ret_code: int
    ret_msg: str
    result: Any
    headers: dict[str, str]
    withheld: str = ""  # "timeout" | "dropped": executed, the transport withholds the answer
    text: str | None = None  # a non-JSON body (HTTP 403)

    def envelope(self, now_ms: int) -> dict[str, Any]:
        """Bybit's v5 JSON envelope."""
        return {"retCode": self.ret_code, "retMsg": self.ret_msg,
                "result": self.result if self.result is not None else {}, "retExtInfo": {}, "time": now_ms}


def _public(fn: Callable[[dict[str, Any]], Any]) -> Handler:
    return lambda p, now_ns: (fn(p), [])


class RestApi:
    """The route table, the shared request path and the REST transport."""

    def __init__(self, emu: BybitEmulator) -> None:
        self.emu = emu
        self.routes: dict[tuple[str, str], Route] = {}
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LEN)
        self.request_counts: Counter[str] = Counter()
        self.new_order_requests: list[dict[str, Any]] = []
        self.withheld_orders: list[dict[str, Any]] = []
        self.banned_until_ms = 0
        self.bans = 0
        self._ip_window = -1
        self._ip_count = 0
        self._limit_windows: dict[str, tuple[int, int]] = {}  # path → (second, count)
        self.release = asyncio.Event()  # withheld answers wait on this; set at stop
        self.order_waiter: asyncio.Future[tuple[str, int]] | None = None
        self.order_waiter_side: str | None = None

    # ------------------------------------------------------------ route table

    def build_routes(self) -> list[Route]:
        """Every /v5 endpoint the emulator serves."""
        emu = self.emu
        ex = emu.exchange
        sm = emu.server_ms

        def now_ms_of(fn: Callable[[dict[str, Any], int], Any]) -> Handler:
            return lambda p, now_ns: (fn(p, sm()), [])

        return [
            Route("GET", "/v5/market/time", False, _public(lambda p: self._time())),
            Route("GET", "/v5/market/instruments-info", False, _public(ex.instruments_info)),
            Route("GET", "/v5/market/kline", False, _public(ex.klines)),
            Route("GET", "/v5/market/tickers", False, _public(ex.tickers)),
            Route("GET", "/v5/market/orderbook", False, now_ms_of(ex.orderbook)),
            Route("GET", "/v5/market/recent-trade", False, _public(ex.recent_trades)),
            Route("POST", "/v5/order/create", True, ex.create_order, new_order=True),
            Route("POST", "/v5/order/amend", True, ex.amend_order),
            Route("POST", "/v5/order/cancel", True, ex.cancel_order),
            Route("POST", "/v5/order/cancel-all", True, ex.cancel_all),
            Route("GET", "/v5/order/realtime", True, _public(ex.realtime)),
            Route("GET", "/v5/order/history", True, _public(ex.history)),
            Route("GET", "/v5/execution/list", True, now_ms_of(ex.execution_list)),
            Route("GET", "/v5/position/list", True, now_ms_of(ex.position_list)),
            Route("POST", "/v5/position/set-leverage", True, _public(ex.set_leverage)),
            Route("POST", "/v5/position/switch-mode", True, _public(ex.switch_mode)),
            Route("GET", "/v5/account/wallet-balance", True, _public(ex.wallet_balance)),
            Route("GET", "/v5/account/info", True, _public(lambda p: self._account_info())),
            Route("GET", "/v5/account/fee-rate", True, _public(self._fee_rate)),
            Route("GET", "/v5/user/query-api", True, _public(lambda p: self._query_api())),
            Route("GET", "/v5/asset/coin/query-info", True, _public(self._coin_info)),
        ]

    def add_routes(self, app: web.Application) -> None:
        """Register every /v5 endpoint on `app` (an unknown /v5 path: HTTP 404, as Bybit)."""
        for r in self.build_routes():
            self.routes[(r.method, r.path)] = r
            app.router.add_route(r.method, r.path, self._rest_handler(r))

    # ------------------------------------------------------------ REST transport

    def _rest_handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            arrival_ns = time.perf_counter_ns() if route.new_order else 0
            received_ms = self.emu.server_ms()
            self.request_counts[f"{route.method} {route.path}"] += 1
            query = request.rel_url.raw_query_string
            body = (await request.read()).decode("utf-8", "replace") if request.can_read_body else ""
            params: dict[str, Any] = {}
            parse_error = ""
            if route.method == "GET":
                params = dict(parse_qsl(query, keep_blank_values=True))
            elif body:
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError:
                    doc = None
                if isinstance(doc, dict):
                    params = doc
                else:
                    parse_error = "the body is not a JSON object"
            payload = query if route.method == "GET" else body
            receipt = self.receipt(route, params, received_ms, arrival_ns, "rest")
            answer = await self.process(
                route, params, received_ms,
                lambda: self._authenticate(route, request.headers, payload, parse_error))
            if answer.withheld == "dropped" and request.transport is not None:
                request.transport.abort()
            if answer.withheld:
                await self.release.wait()
            if receipt is not None:
                receipt.setdefault("ret_code", answer.ret_code)
                receipt.setdefault("http_status", answer.http_status)
            self.request_log.append({"ts_ms": self.emu.server_ms(), "received_ms": received_ms,
                                     "method": route.method, "path": route.path, "status": answer.http_status,
                                     "ret_code": answer.ret_code})
            return self.response(answer)
        return handle

    def response(self, a: Answer) -> web.Response:
        """The HTTP response of an answer (the envelope, or a plain text body for a 403)."""
        now = self.emu.server_ms()
        headers = {"Timenow": str(now), "Traceid": f"{self.emu.exchange.rng.getrandbits(64):016x}", **a.headers}
        if a.text is not None:
            return web.Response(text=a.text, status=a.http_status, headers=headers)
        return web.Response(body=orjson.dumps(a.envelope(now)), status=a.http_status,
                            content_type="application/json", headers=headers)

    # ------------------------------------------------------------ the shared request path

    def receipt(self, route: Route, params: dict[str, Any], now_ms: int, arrival_ns: int,
                transport: str) -> dict[str, Any] | None:
        """Record an order create as it arrives (any transport); wake a benchmark waiting for it."""
        if not route.new_order:
            return None
        receipt = {"order_link_id": params.get("orderLinkId"), "ts_ms": now_ms, "category": params.get("category"),
                   "symbol": params.get("symbol"), "side": params.get("side"), "transport": transport}
        self.new_order_requests.append(receipt)
        waiter = self.order_waiter
        if waiter is not None and not waiter.done() and self.order_waiter_side in (None, params.get("side")):
            waiter.set_result((str(params.get("orderLinkId") or ""), arrival_ns))
        return receipt

    async def process(self, route: Route, params: dict[str, Any], now_ms: int,
                      authenticate: Callable[[], None], ws_op: str | None = None) -> Answer:
        """One request on any transport: IP limit, faults, rate limits, authentication, the exchange."""
        emu = self.emu
        if ws_op is None:  # the IP limit is HTTP's (the trade WebSocket has its own connection limits)
            banned = self._ip_check(now_ms)
            if banned is not None:
                return banned
        rule = emu.faults.take_error(route.method, route.path, ws_op)
        if rule is not None and not rule.execute:
            return Answer(rule.http_status, rule.ret_code, rule.msg, {}, {})
        limit_headers: dict[str, str] = {}
        if route.signed:
            limited, limit_headers = self._rate_limit(route.path, now_ms)
            if limited is not None:
                return limited
        delay_ms = emu.faults.delay_for(route.path, ws_op)
        if delay_ms > 0:
            await emu.clock.sleep(delay_ms / 1000.0)
        try:
            authenticate()
            self.check_permission(route)
            result, private = route.handler(params, emu.clock.time_ns())
        except BybitError as exc:
            return Answer(exc.http_status, exc.ret_code, exc.ret_msg, {}, limit_headers)
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            # A value the handlers did not foresee: refused as a parameter error, never a 500.
            log.warning("bybit_emulator_bad_params", path=route.path, error=repr(exc))
            return Answer(200, 10001, f"params error: {exc!r}", {}, limit_headers)
        await emu.private_send(private)
        if rule is not None:  # execute=true: the request took effect, the answer is an error
            return Answer(rule.http_status, rule.ret_code, rule.msg, {}, limit_headers)
        if route.new_order:
            for fault, how in (("withhold_order_responses", "timeout"), ("drop_order_responses", "dropped")):
                if emu.faults.take(fault):
                    log.info("bybit_emulator_answer_withheld", how=how, path=ws_op or route.path,
                             order_link_id=params.get("orderLinkId"))
                    self.withheld_orders.append({"order_link_id": params.get("orderLinkId"), "how": how,
                                                 "ts_ms": now_ms})
                    return Answer(504, 10000, "Server Timeout", {}, limit_headers, withheld=how)
        return Answer(200, 0, "OK", result, limit_headers)

    def ban_ip(self, now_ms: int, seconds: float) -> None:
        """Ban the IP (HTTP 403 on every REST request) for `seconds`."""
        self.banned_until_ms = now_ms + int(seconds * 1000)
        self.bans += 1
        log.warning("bybit_emulator_ip_banned", until_ms=self.banned_until_ms)

    def _ip_check(self, now_ms: int) -> Answer | None:
        if now_ms < self.banned_until_ms:
            return self._forbidden()
        window = now_ms // IP_WINDOW_MS
        if window != self._ip_window:
            self._ip_window, self._ip_count = window, 0
        self._ip_count += 1
        if self._ip_count > self.emu.ip_limit_5s:
            self.ban_ip(now_ms, self.emu.ban_s)
            return self._forbidden()
        return None

    def _forbidden(self) -> Answer:
        return Answer(403, -1, "access too frequent", None, {},
                      text=f"403 Forbidden: access too frequent. IP banned until {self.banned_until_ms}")

    def _rate_limit(self, path: str, now_ms: int) -> tuple[Answer | None, dict[str, str]]:
        limit = ENDPOINT_LIMITS_PER_S.get(path, DEFAULT_LIMIT_PER_S)
        second = now_ms // 1000
        reset_ms = (second + 1) * 1000
        rule = self.emu.faults.take_rate_limit(path)
        if rule is not None:
            headers = {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": "0",
                       "X-Bapi-Limit-Reset-Timestamp": str(now_ms + rule.reset_ms)}
            return Answer(200, 10006, "Too many visits!", {}, headers), headers
        if self.emu.unmetered:
            return None, {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": str(limit),
                          "X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}
        sec, count = self._limit_windows.get(path, (second, 0))
        if sec != second:
            count = 0
        count += 1
        self._limit_windows[path] = (second, count)
        headers = {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": str(max(0, limit - count)),
                   "X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}
        if count > limit:
            return Answer(200, 10006, "Too many visits!", {}, headers), headers
        return None, headers

    # ------------------------------------------------------------ authentication

    def _authenticate(self, route: Route, headers: Any, payload: str, parse_error: str) -> None:
        if not route.signed:
            if parse_error:
                raise params_error(parse_error)
            return
        key = headers.get("X-BAPI-API-KEY", "")
        self.check_signed(key, headers.get("X-BAPI-TIMESTAMP", ""), headers.get("X-BAPI-RECV-WINDOW", ""),
                          headers.get("X-BAPI-SIGN", ""), payload)
        if parse_error:
            raise params_error(parse_error)

    def check_permission(self, route: Route) -> None:
        """A read-only key (`BybitEmulator(read_only_key=True)`) may read; a signed write (REST or
        trade WebSocket) is refused as Bybit refuses it: HTTP 200, retCode 10005."""
        if self.emu.read_only_key and route.signed and route.method != "GET":
            raise BybitError(10005, "Permission denied, please check your API key permissions.")

    def check_signed(self, key: str, ts_raw: str, recv_raw: str, sign: str, payload: str) -> None:
        """Key (10003), timestamp in the recv window (10002) and signature (10004) of a request."""
        emu = self.emu
        if not key or not hmac.compare_digest(key.encode(), emu.api_key.encode()):
            raise BybitError(10003, "API key is invalid.")
        try:
            ts = int(ts_raw)
            recv_window = int(recv_raw) if recv_raw else DEFAULT_RECV_WINDOW_MS
        except ValueError:
            raise BybitError(10002, f"invalid request, please check your timestamp and recv_window param. "
                                    f"req_timestamp[{ts_raw}],recv_window[{recv_raw}]") from None
        server = emu.server_ms()
        if not (server - recv_window <= ts < server + 1000):
            raise BybitError(10002, f"invalid request, please check your server timestamp or recv_window param. "
                                    f"req_timestamp[{ts}],server_timestamp[{server}],recv_window[{recv_window}]")
        origin = f"{ts_raw}{key}{recv_raw if recv_raw else ''}{payload}"
        expected = hmac.new(emu.api_secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sign.lower()):
            raise BybitError(10004, f"error sign! origin_string[{origin}]")

    # ------------------------------------------------------------ account endpoints ccxt asks for

    def _time(self) -> dict[str, str]:
        ns = self.emu.clock.time_ns() + self.emu.faults.time_skew_ms * 1_000_000
        return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}

    def _account_info(self) -> dict[str, Any]:
        return {"marginMode": "REGULAR_MARGIN", "updatedTime": str(self.emu.started_ms), "unifiedMarginStatus": 6,
                "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0, "isMasterTrader": False,
                "spotHedgingStatus": "OFF"}

    def _query_api(self) -> dict[str, Any]:
        return {"id": "13770661", "note": "emulator", "apiKey": self.emu.api_key,
                "readOnly": 1 if self.emu.read_only_key else 0, "secret": "",
                "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"], "Wallet": [],
                                "Options": [], "Derivatives": [], "CopyTrading": [], "BlockTrade": [],
                                "Exchange": [], "NFT": [], "Affiliate": []},
                "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": "2024-01-01T00:00:00Z",
                "unified": 0, "uta": 1, "userID": 24600000, "inviterID": 0, "vipLevel": "No VIP",
                "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "", "isMaster": True,
                "parentUid": "0", "kycLevel": "LEVEL_DEFAULT", "kycRegion": ""}

    def _fee_rate(self, p: dict[str, Any]) -> dict[str, Any]:
        from nautilus_hmm.venues.bybit.emulator.exchange import FEES

        c = self.emu.exchange.category(p.get("category", "spot"))
        maker, taker = FEES[c]
        syms = [p["symbol"]] if p.get("symbol") else self.emu.exchange.symbols
        rows = [{"symbol": s, "takerFeeRate": f"{taker:f}", "makerFeeRate": f"{maker:f}"} for s in syms]
        if c == "spot":
            for r in rows:
                r["baseCoin"] = ""
        return {"list": rows}

    def _coin_info(self, p: dict[str, Any]) -> dict[str, Any]:
        coins = sorted({"USDT", *(s[:-4] for s in self.emu.exchange.symbols), *self.emu.exchange.spot.free})
        if p.get("coin"):
            coins = [c for c in coins if c == p["coin"]]
        rows = [{"name": c, "coin": c, "remainAmount": "1000000", "chains": [
            {"chainType": c, "confirmation": "10", "withdrawFee": "0", "depositMin": "0", "withdrawMin": "0",
             "chain": c, "chainDeposit": "1", "chainWithdraw": "1", "minAccuracy": "8",
             "withdrawPercentageFee": "0", "contractAddress": "", "safeConfirmNumber": "10"}]} for c in coins]
        return {"rows": rows}
