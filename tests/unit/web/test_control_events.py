"""The control plane's events on the SSE stream (/events): dicts, Decimals and the numbers a
statistics module hands out (numpy scalars) are serialized, and the stream keeps going."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import numpy as np
import orjson

from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import (
    AllocationChanged,
    FillAttributed,
    GovernanceDecision,
    Message,
    RouterDenied,
    StrategyStateChanged,
    StrategyTarget,
)
from tests.unit.web.test_control import AUTH, FakePlane, serving

IID = InstrumentId("sim", "BTCUSDT")
READ_GUARD_S = 10.0


async def _line(stream: aiohttp.StreamReader) -> bytes:
    # A guard, not a wait: the events are already published; a broken stream fails here, not hangs.
    return await asyncio.wait_for(stream.readline(), READ_GUARD_S)


async def _next_event(stream: aiohttp.StreamReader) -> tuple[str, dict[str, Any]]:
    line = await _line(stream)
    while line in (b"\n", b": keepalive\n"):
        line = await _line(stream)
    assert line.startswith(b"event: "), line
    data = await _line(stream)
    assert data.startswith(b"data: "), data
    return line[len(b"event: "):].decode().strip(), orjson.loads(data[len(b"data: "):])


async def test_router_allocator_and_governance_events_reach_sse_as_json() -> None:
    messages: list[Message] = [
        StrategyStateChanged(ts_event_ns=1, ts_init_ns=1, strategy_id="trend", old="active", new="reduce",
                             reason="drawdown 12.5% > 10%", source="governance"),
        AllocationChanged(ts_event_ns=2, ts_init_ns=2, shares={"trend": 0.3, "hmm": 0.7}, source="rebalance",
                          inputs={"scores": {"trend": {"n": 40, "score": -0.2}}, "equity_usd": Decimal("10012.5"),
                                  "bandit": {"trend": 0.25, "hmm": 0.75}}),
        GovernanceDecision(ts_event_ns=3, ts_init_ns=3, rule="promotion", strategy_id="hmm", action="promote",
                           acted=False, reason="dry run: canary beats production",
                           evidence={"t": 2.9, "p_value": 0.004, "bars": 480, "shadow_pnl_usd": Decimal("31.20"),
                                     "per_instrument": {"sim:BTCUSDT": [Decimal("1.5"), None]}}),
        RouterDenied(ts_event_ns=4, ts_init_ns=4, strategy_id="trend", instrument_id=IID,
                     requested_qty=Decimal("0.50"), allowed_qty=Decimal("0.10"), reason="quota",
                     detail="quota_usd 5000"),
        FillAttributed(ts_event_ns=5, ts_init_ns=5, strategy_id="trend", instrument_id=IID, qty=Decimal("-0.01"),
                       price=Decimal("50000.5"), fee=Decimal("0.25"), kind="fill", trade_id="t1"),
        StrategyTarget(ts_event_ns=6, ts_init_ns=6, strategy_id="trend", instrument_id=IID, exposure=0.8,
                       reason="fast > slow"),
    ]
    async with serving(FakePlane()) as (url, bus), aiohttp.ClientSession() as s, \
            s.get(url + "/events", headers=AUTH) as r:
        assert await r.content.readline() == b": connected\n"
        for m in messages:
            bus.publish(m)
        got = [await _next_event(r.content) for _ in messages]
    assert [name for name, _ in got] == [type(m).__name__ for m in messages]
    state, alloc, decision, denied, attributed, target = (data for _, data in got)
    assert state["new"] == "reduce" and state["source"] == "governance"
    assert alloc["shares"] == {"trend": 0.3, "hmm": 0.7}
    assert alloc["inputs"]["equity_usd"] == "10012.5" and alloc["inputs"]["scores"]["trend"]["n"] == 40
    assert decision["acted"] is False and decision["evidence"]["shadow_pnl_usd"] == "31.20"
    assert decision["evidence"]["per_instrument"] == {"sim:BTCUSDT": ["1.5", None]}
    assert denied["instrument_id"] == "sim:BTCUSDT" and denied["allowed_qty"] == "0.10"
    assert attributed["qty"] == "-0.01" and attributed["kind"] == "fill"
    assert target["exposure"] == 0.8 and target["lane"] == "production"


async def test_numpy_numbers_in_evidence_are_plain_json_numbers_and_an_unencodable_event_is_skipped() -> None:
    broken = GovernanceDecision(ts_event_ns=1, ts_init_ns=1, rule="drawdown", strategy_id="trend", action="reduce",
                                acted=True, reason="r", evidence={"window": object()})
    decision = GovernanceDecision(ts_event_ns=1, ts_init_ns=1, rule="rollback_ll", strategy_id="hmm",
                                  action="rollback", acted=True, reason="ll dropped",
                                  evidence={"ll_per_bar": np.float64(-1.25), "bars": np.int64(96),
                                            "passed": np.bool_(True), "nan": float("nan")})
    after = StrategyStateChanged(ts_event_ns=2, ts_init_ns=2, strategy_id="hmm", old="active", new="disabled",
                                 reason="r", source="admin")
    async with serving(FakePlane()) as (url, bus), aiohttp.ClientSession() as s, \
            s.get(url + "/events", headers=AUTH) as r:
        assert await r.content.readline() == b": connected\n"
        bus.publish(broken)
        bus.publish(decision)
        bus.publish(after)
        (n1, d1), (n2, _) = [await _next_event(r.content) for _ in range(2)]
    assert (n1, n2) == ("GovernanceDecision", "StrategyStateChanged")
    assert d1["evidence"] == {"ll_per_bar": -1.25, "bars": 96, "passed": True, "nan": None}
