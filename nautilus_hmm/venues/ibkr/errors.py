"""IB error and notice codes (message 4, `errMsg`) → what the adapter does. Pure.

IB sends errors, warnings and notices through one message: (reqId, code, text). The
adapter reacts by class, never by text, except where IB itself only differs in text
(162 is both "pacing violation" and "query returned no data").

| code              | class              | the adapter                                           |
|-------------------|--------------------|-------------------------------------------------------|
| 1100              | CONNECTIVITY_LOST  | venue unhealthy, reduce-only (new exposure refused)   |
| 1101              | RESTORED_DATA_LOST | resubscribe market data, reconcile                    |
| 1102              | RESTORED           | resubscribe market data, reconcile                    |
| 2103-2108, 2119, 2157, 2158 | FARM     | informational (data farm status): logged           |
| 201               | ORDER_REJECTED     | the order is REJECTED (reason = IB's text)            |
| 202               | ORDER_CANCELLED    | the order is CANCELED                                 |
| 103               | DUPLICATE_ORDER_ID | the id was used: the order was not taken (queried)    |
| 10197             | COMPETING_SESSION  | market data paused by another login: venue unhealthy  |
| 162 + "pacing"    | PACING             | historical request waits and retries                  |
| 200               | NO_SECURITY        | unknown contract: the start fails naming it           |
| 354, 10089, 10090, 10167, 10168 | NOT_SUBSCRIBED | no live data subscription: delayed data   |
| 502, 504, 1300    | NOT_CONNECTED      | the socket is gone: reconnect                         |
| other 2100-2199   | WARNING            | logged                                                |
| anything else     | ERROR              | logged, counted; a request waiting on it fails        |
"""

from __future__ import annotations

import enum

from nautilus_hmm.core.errors import RateLimited


class IbErrorClass(enum.Enum):
    """What an IB error code means for the adapter (see the module table)."""

    CONNECTIVITY_LOST = "connectivity_lost"
    RESTORED_DATA_LOST = "restored_data_lost"
    RESTORED = "restored"
    FARM = "farm"
    ORDER_REJECTED = "order_rejected"
    ORDER_CANCELLED = "order_cancelled"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    COMPETING_SESSION = "competing_session"
    PACING = "pacing"
    NO_SECURITY = "no_security"
    NOT_SUBSCRIBED = "not_subscribed"
    NOT_CONNECTED = "not_connected"
    WARNING = "warning"
    ERROR = "error"


CONNECTIVITY_LOST = 1100
RESTORED_DATA_LOST = 1101
RESTORED = 1102
ORDER_REJECTED = 201
ORDER_CANCELLED = 202
DUPLICATE_ORDER_ID = 103
COMPETING_SESSION = 10197
HISTORICAL_SERVICE = 162
NO_SECURITY = 200
DELAYED_INSTEAD = 10167  # "not subscribed, displaying delayed market data": a notice, data follows
FARM_CODES = frozenset({2103, 2104, 2105, 2106, 2107, 2108, 2119, 2157, 2158})
NOT_SUBSCRIBED_CODES = frozenset({354, 10089, 10090, 10167, 10168})
NOT_CONNECTED_CODES = frozenset({502, 504, 1300})

_BY_CODE = {
    CONNECTIVITY_LOST: IbErrorClass.CONNECTIVITY_LOST,
    RESTORED_DATA_LOST: IbErrorClass.RESTORED_DATA_LOST,
    RESTORED: IbErrorClass.RESTORED,
    ORDER_REJECTED: IbErrorClass.ORDER_REJECTED,
    ORDER_CANCELLED: IbErrorClass.ORDER_CANCELLED,
    DUPLICATE_ORDER_ID: IbErrorClass.DUPLICATE_ORDER_ID,
    COMPETING_SESSION: IbErrorClass.COMPETING_SESSION,
    NO_SECURITY: IbErrorClass.NO_SECURITY,
    **{c: IbErrorClass.FARM for c in FARM_CODES},
    **{c: IbErrorClass.NOT_SUBSCRIBED for c in NOT_SUBSCRIBED_CODES},
    **{c: IbErrorClass.NOT_CONNECTED for c in NOT_CONNECTED_CODES},
}


def classify(code: int, text: str = "") -> IbErrorClass:
    """The class of IB error `code` (`text` only tells 162's pacing violation from its other uses)."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls
    if code == HISTORICAL_SERVICE:
        return IbErrorClass.PACING if "pacing" in text.lower() else IbErrorClass.ERROR
    if 2100 <= code < 2200:
        return IbErrorClass.WARNING
    return IbErrorClass.ERROR


def is_informational(cls: IbErrorClass) -> bool:
    """Notices that change nothing (farm status, warnings): logged at info, not counted as errors."""
    return cls in (IbErrorClass.FARM, IbErrorClass.WARNING)


class GatewayUnavailable(RateLimited):
    """Not connected to IB Gateway (restart, network): nothing was sent; ask again after
    `retry_after_s`. A `RateLimited`, so the engine's unknown-outcome resolution and the
    reconciler wait for the reconnect instead of spending their attempts (a query that
    failed every attempt would leave an order unresolved and halt trading), and an order
    refused this way is closed as never sent."""
