"""Delayed data told to the strategy: the IBKR adapter publishes `MarketDataQualityChanged` when an
instrument's market data changes quality (live / delayed / frozen / none), the node's data-quality
book keeps it, and a strategy's context reads it (and stands aside unless the data is live)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from nautilus_hmm.domain.enums import DataQuality
from nautilus_hmm.messages import MarketDataQualityChanged, StrategyTarget
from nautilus_hmm.node import Node
from tests.integration.ibkr.adapter_harness import AAPL, ES, Recorder, bounded, harness, until
from tests.integration.ibkr.test_adapter_node import minutes, node_on_emulator
from tests.integration.waits import WAIT_S


def qualities(rec: Recorder, iid: object) -> list[DataQuality]:
    return [m.quality for m in rec.of(MarketDataQualityChanged) if m.instrument_id == iid]


async def journaled(node: Node, kind: str) -> list[Any]:
    """The journal's events of `kind`, once the writer has committed one (bounded wait): each
    round makes the writer commit what has been recorded (`flush`) instead of sleeping."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not (rows := await node.stack.journal.query_events(kind)):
        assert asyncio.get_running_loop().time() < deadline, f"no {kind} event journaled"
        await node.stack.journal.flush()
    return rows


@bounded
async def test_an_unsubscribed_symbol_is_published_delayed_and_the_others_live(tmp_path: Path) -> None:
    async with harness(tmp_path, market_data=True, emu_options={"unsubscribed": ("AAPL",)}) as h:
        rec = Recorder(h.bus, MarketDataQualityChanged)
        await h.step(2.0)
        await until(lambda: qualities(rec, AAPL) and qualities(rec, ES), what="AAPL and ES qualities")
        assert qualities(rec, AAPL) == [DataQuality.DELAYED]  # once: repeats of the same type are quiet
        (msg,) = [m for m in rec.of(MarketDataQualityChanged) if m.instrument_id == AAPL]
        assert msg.venue == "ibkr" and msg.previous is None and "15 minutes" in msg.detail
        assert qualities(rec, ES) == [DataQuality.LIVE]
        await h.step(5.0)
        assert qualities(rec, AAPL) == [DataQuality.DELAYED]


@bounded
async def test_without_delayed_data_an_unsubscribed_symbol_has_none_naming_ibs_error(tmp_path: Path) -> None:
    async with harness(tmp_path, market_data=True, delayed_data=False, emu_options={"unsubscribed": ("AAPL",)}) as h:
        rec = Recorder(h.bus, MarketDataQualityChanged)
        await h.step(2.0)
        await until(lambda: qualities(rec, AAPL), what="AAPL quality")
        (msg,) = [m for m in rec.of(MarketDataQualityChanged) if m.instrument_id == AAPL]
        assert msg.quality is DataQuality.NONE and msg.detail.startswith("354:")


@bounded
async def test_a_strategy_sees_delayed_data_stands_aside_and_trades_once_it_is_live(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with node_on_emulator(tmp_path, monkeypatch, unsubscribed=("AAPL",)) as (node, emu, clock):
        rec = Recorder(node.bus, MarketDataQualityChanged, StrategyTarget)
        strategy = next(iter(node.stack.strategies.values()))
        ctx = strategy._ctx  # type: ignore[attr-defined]
        await minutes(clock, 1, node, emu)
        await until(lambda: ctx.data_quality(AAPL) is DataQuality.DELAYED, what="the strategy told: delayed")
        assert node.stack.data_quality.degraded()["ibkr:AAPL"].startswith("delayed")
        rows = await journaled(node, "MarketDataQualityChanged")
        assert [(r.data["instrument_id"], r.data["quality"]) for r in rows] == [("ibkr:AAPL", "delayed")]
        # A signal on delayed data states no target (IB gives no real-time bars without a
        # subscription, so the strategy is handed one as if it came late).
        ctx.target_exposure(AAPL, 1.0, "test signal", clock.time_ns())
        assert rec.of(StrategyTarget) == [] and ctx.stood_aside == 1
        emu.set_subscription("AAPL", True)
        emu.connectivity_restored(data_lost=True)  # 1101: the adapter resubscribes, now live
        await minutes(clock, 1, node, emu)
        await until(lambda: ctx.data_quality(AAPL) is DataQuality.LIVE, what="the strategy told: live")
        assert [m.quality for m in rec.of(MarketDataQualityChanged)] == [DataQuality.LIVE]
        engine = node.stack.engine
        for _ in range(10):
            if engine.counts["fills"] >= 1:
                break
            await minutes(clock, 1, node, emu)
        await until(lambda: engine.counts["fills"] >= 1, what="the strategy trades on live data")
        assert rec.of(StrategyTarget)
