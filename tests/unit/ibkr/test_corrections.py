"""IB execution corrections (execId revisions) and market data quality: the pure mapping in parse.py."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest
from ib_async import Execution

from nautilus_hmm.domain.enums import DataQuality, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import VenueFill
from nautilus_hmm.venues.ibkr.parse import (
    canonical_exec_id,
    correction_changes,
    data_quality,
    exec_revision,
    execution_to_fill,
)

AAPL = InstrumentId("ibkr", "AAPL")
T0 = dt.datetime(2026, 12, 1, 15, 0, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("exec_id", "base", "rev", "canonical"), [
    ("0000e0d5.6576a47b.01.01", "0000e0d5.6576a47b.01", 1, "0000e0d5.6576a47b.01.01"),
    ("0000e0d5.6576a47b.01.02", "0000e0d5.6576a47b.01", 2, "0000e0d5.6576a47b.01.01"),
    ("0000e0d5.6576a47b.1a3.11", "0000e0d5.6576a47b.1a3", 11, "0000e0d5.6576a47b.1a3.01"),
    ("0001f4e8.657c4a10.01.002", "0001f4e8.657c4a10.01", 2, "0001f4e8.657c4a10.01.001"),
    # Not IB's four-part form: the id is its own execution (never merged with another).
    ("abc", "abc", 1, "abc"),
    ("a.b.c", "a.b.c", 1, "a.b.c"),
    ("a.b.c.x1", "a.b.c.x1", 1, "a.b.c.x1"),
    ("a..c.02", "a..c.02", 1, "a..c.02"),
    ("", "", 1, ""),
])
def test_exec_revision_splits_the_correction_suffix(exec_id: str, base: str, rev: int, canonical: str) -> None:
    assert exec_revision(exec_id) == (base, rev)
    assert canonical_exec_id(exec_id) == canonical


def _fill(exec_id: str, **kw: object) -> VenueFill:
    e = Execution(execId=exec_id, time=T0, side="BOT", shares=10.0, price=230.25, orderId=12, orderRef="c-1")
    for k, v in kw.items():
        setattr(e, k, v)
    return execution_to_fill(e, AAPL, None, "USD")


def test_a_correction_repeating_the_values_changes_nothing() -> None:
    assert correction_changes(_fill("x.y.01.01"), _fill("x.y.01.02")) == []


def test_a_correction_names_every_value_it_changes() -> None:
    original = _fill("x.y.01.01")
    changed = _fill("x.y.01.02", shares=7.0, price=230.5, side="SLD")
    assert correction_changes(original, changed) == ["side BUY -> SELL", "qty 10 -> 7", "price 230.25 -> 230.5"]
    assert correction_changes(original, replace(original, client_order_id="c-2")) == ["client_order_id c-1 -> c-2"]
    assert original.side is Side.BUY and original.qty == Decimal(10)


@pytest.mark.parametrize(("data_type", "problem", "quality"), [
    ("live", None, DataQuality.LIVE), ("delayed", None, DataQuality.DELAYED), ("frozen", None, DataQuality.FROZEN),
    ("delayed_frozen", None, DataQuality.FROZEN), ("delayed", "354: not subscribed", DataQuality.NONE),
    (None, "10089: needs a subscription", DataQuality.NONE), (None, None, None), ("7", None, None),
])
def test_market_data_type_and_subscription_problems_map_to_a_quality(data_type: str | None, problem: str | None,
                                                                     quality: DataQuality | None) -> None:
    assert data_quality(data_type, problem) is quality
