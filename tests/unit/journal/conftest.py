"""Journal test helpers: order requests and fills with sensible defaults, an open journal."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import Liquidity, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill
from nautilus_hmm.journal.store import Journal

BTC = InstrumentId("sim", "BTCUSDT")
ETH = InstrumentId("sim", "ETHUSDT")


def request(journal: Journal, *, qty: str = "0.5", price: str | None = "100.25", side: Side = Side.BUY,
            instrument: InstrumentId = BTC) -> OrderRequest:
    """A limit (or market, price=None) order with a freshly allocated client order id."""
    return OrderRequest(
        client_order_id=journal.next_client_order_id("t"),
        instrument_id=instrument,
        side=side,
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        quantity=Decimal(qty),
        price=None if price is None else Decimal(price),
    )


def fill(cid: str, trade_id: str, *, qty: str = "0.5", price: str = "100", ts_ns: int = 1_000,
         instrument: InstrumentId = BTC, side: Side = Side.BUY) -> VenueFill:
    """A fill of order `cid`."""
    return VenueFill(
        instrument_id=instrument, client_order_id=cid, venue_order_id=f"v-{cid}", trade_id=trade_id,
        side=side, qty=Decimal(qty), price=Decimal(price), fee=Decimal("0.01"), fee_asset="USDT",
        liquidity=Liquidity.TAKER, ts_ns=ts_ns,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's journal lives."""
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def journal(db_path: Path) -> Iterator[Journal]:
    """A durable file journal; closed after the test."""
    j = Journal.open(db_path)
    yield j
    j.close()
