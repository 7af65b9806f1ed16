"""IB error codes → what the adapter does."""

from __future__ import annotations

import pytest

from nautilus_hmm.venues.ibkr.errors import IbErrorClass, classify, is_informational


@pytest.mark.parametrize(("code", "text", "cls"), [
    (1100, "Connectivity between IB and TWS has been lost.", IbErrorClass.CONNECTIVITY_LOST),
    (1101, "Connectivity restored - data lost.", IbErrorClass.RESTORED_DATA_LOST),
    (1102, "Connectivity restored - data maintained.", IbErrorClass.RESTORED),
    (2104, "Market data farm connection is OK:usfarm", IbErrorClass.FARM),
    (2106, "HMDS data farm connection is OK:ushmds", IbErrorClass.FARM),
    (2158, "Sec-def data farm connection is OK:secdefnj", IbErrorClass.FARM),
    (201, "Order rejected - reason:", IbErrorClass.ORDER_REJECTED),
    (202, "Order Canceled - reason:", IbErrorClass.ORDER_CANCELLED),
    (103, "Duplicate order id", IbErrorClass.DUPLICATE_ORDER_ID),
    (10197, "No market data during competing live session", IbErrorClass.COMPETING_SESSION),
    (162, "Historical Market Data Service error message:API historical data query cancelled / pacing violation",
     IbErrorClass.PACING),
    (162, "Historical Market Data Service error message:HMDS query returned no data", IbErrorClass.ERROR),
    (200, "No security definition has been found for the request", IbErrorClass.NO_SECURITY),
    (10167, "Requested market data is not subscribed. Displaying delayed market data.", IbErrorClass.NOT_SUBSCRIBED),
    (504, "Not connected", IbErrorClass.NOT_CONNECTED),
    (2137, "some warning", IbErrorClass.WARNING),
    (321, "Error validating request", IbErrorClass.ERROR),
])
def test_codes_are_classified(code: int, text: str, cls: IbErrorClass) -> None:
    assert classify(code, text) is cls


def test_only_farm_notices_and_warnings_are_informational() -> None:
    assert is_informational(IbErrorClass.FARM) and is_informational(IbErrorClass.WARNING)
    assert not any(is_informational(c) for c in IbErrorClass if c not in (IbErrorClass.FARM, IbErrorClass.WARNING))
