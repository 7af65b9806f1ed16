"""The operator's trading log: one line per order state, fill, target change and risk denial,
with instrument, side, qty, price and client id. A stack on the sim venue, manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from nautilus_hmm.bootstrap import TradingStack
from nautilus_hmm.config.loader import parse
from nautilus_hmm.config.schema import Config
from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import OrderRejected
from nautilus_hmm.domain.enums import OrderStatus, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueOrder
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.messages import TargetPosition
from nautilus_hmm.obs import logging as obs_logging
from nautilus_hmm.obs.trade_log import TradeLog
from nautilus_hmm.venues.sim.venue import SimVenue
from tests.stackharness import active_sim_stack

BTC = InstrumentId("sim", "BTCUSDT")
CFG = {
    "strategy": {"kind": "sma_cross"},
    "venues": {"sim": {"symbols": ["BTCUSDT"], "market": {"initial_prices": {"BTCUSDT": 60000.0}}}},
}
TRADE_EVENTS = {"order_submitted", "order_filled", "order_canceled", "order_expired", "order_rejected",
                "target_changed", "risk_denied", "order_not_routable"}


class RejectingVenue(SimVenue):
    """The sim venue; refuses the next order when told to."""

    reject_next: str | None = None

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        if self.reject_next is not None:
            reason, self.reject_next = self.reject_next, None
            raise OrderRejected(self.name, reason, code="-2010")
        return await super().submit_order(req)


class Rig:
    def __init__(self, st: TradingStack, venue: RejectingVenue, clock: ManualClock) -> None:
        self.st, self.venue, self.clock = st, venue, clock

    def target(self, qty: str, strategy_id: str = "t") -> None:
        now = self.clock.time_ns()
        self.st.bus.publish(TargetPosition(ts_event_ns=now, ts_init_ns=now, strategy_id=strategy_id,
                                           instrument_id=BTC, target_qty=Decimal(qty), reason="test"))

    async def trade(self, price: float) -> None:
        self.clock.advance(1)
        self.venue.step_trade(BTC, price, 5.0, self.clock.time_ns())
        await self.settle()

    async def settle(self) -> None:
        for _ in range(3):
            await self.st.engine.idle()
            await self.st.journal.flush()


def trade_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] in TRADE_EVENTS]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    cfg = parse(Config, CFG)
    clock, bus = ManualClock(), Bus()
    journal = Journal.open(tmp_path / "journal.sqlite3")
    venue = RejectingVenue(cfg.venues.sim, bus, clock, tmp_path)
    trade_log = TradeLog(bus)  # as the node: before the engine attaches
    async with active_sim_stack(cfg, venue, bus, clock, journal) as st:
        yield Rig(st, venue, clock)
    trade_log.close()


async def test_an_order_submitted_and_filled_is_one_line_each_with_instrument_side_qty_price_and_client_id(
        rig: Rig) -> None:
    with capture_logs() as logs:
        rig.target("0.1")
        await rig.settle()
        await rig.trade(60010.0)
    (order,) = rig.st.engine.orders.values()
    assert order.status is OrderStatus.FILLED
    cid = order.client_order_id
    lines = trade_lines(logs)
    assert [(e["event"], e["log_level"]) for e in lines] == [
        ("target_changed", "info"), ("order_submitted", "info"), ("order_filled", "info")]
    target, submitted, filled = lines
    assert (target["instrument"], target["target_qty"], target["previous_qty"]) == ("sim:BTCUSDT", "0.1", None)
    assert {k: submitted[k] for k in ("instrument", "side", "price", "order_type", "client_order_id")} == {
        "instrument": "sim:BTCUSDT", "side": "BUY", "price": None, "order_type": "MARKET", "client_order_id": cid}
    assert {k: filled[k] for k in ("instrument", "side", "client_order_id")} == {
        "instrument": "sim:BTCUSDT", "side": "BUY", "client_order_id": cid}
    assert Decimal(submitted["qty"]) == Decimal(filled["qty"]) == Decimal("0.1")
    assert Decimal(filled["price"]) == order.avg_px and filled["trade_id"]


async def test_a_rejected_order_is_one_warning_line_with_the_reason_and_the_order(rig: Rig) -> None:
    rig.venue.reject_next = "Account has insufficient balance."
    with capture_logs() as logs:
        rig.target("0.1")
        await rig.settle()
    (order,) = rig.st.engine.orders.values()
    rejected = [e for e in logs if e["event"] == "order_rejected"]
    assert len(rejected) == 1, rejected
    (line,) = rejected
    assert line["log_level"] == "warning" and "insufficient balance" in line["reason"]
    assert (line["instrument"], line["side"], Decimal(line["qty"]), line["client_order_id"]) == (
        "sim:BTCUSDT", "BUY", Decimal("0.1"), order.client_order_id)


async def test_a_canceled_order_is_one_line(rig: Rig) -> None:
    rig.st.engine.update_config(parse(Config, {**CFG, "execution": {"order_type": "LIMIT",
                                                                    "limit_offset_bps": 100.0}}).execution)
    rig.target("0.1")
    await rig.settle()
    with capture_logs() as logs:
        assert await rig.st.engine.cancel_all("test") == 1
        await rig.settle()
    (order,) = rig.st.engine.orders.values()
    lines = trade_lines(logs)
    assert [e["event"] for e in lines] == ["order_canceled"]
    assert (Decimal(lines[0]["price"]), lines[0]["client_order_id"], Decimal(lines[0]["filled_qty"])) == (
        Decimal("59400"), order.client_order_id, 0)


async def test_a_repeated_target_logs_nothing_and_a_changed_one_logs_again(rig: Rig) -> None:
    rig.st.gate.set_state(TradingState.HALTED, "test", "test")  # targets only, no orders
    with capture_logs() as logs:
        rig.target("0.1")
        rig.target("0.1")
        rig.target("0.2")
        rig.target("0.1", strategy_id="other")
        await rig.settle()  # the trade log's lines are written off the hot path (deferred bus handlers)
    changes = [(e["strategy"], e["target_qty"], e["previous_qty"]) for e in logs if e["event"] == "target_changed"]
    assert changes == [("t", "0.1", None), ("t", "0.2", "0.1"), ("other", "0.1", None)]


async def test_a_risk_denial_is_one_warning_line_with_instrument_side_qty_price_and_client_id(rig: Rig) -> None:
    rig.st.gate.set_state(TradingState.HALTED, "test", "test")
    with capture_logs() as logs:
        rig.target("0.1")
        await rig.settle()
    lines = [e for e in trade_lines(logs) if e["event"] != "target_changed"]
    assert [(e["event"], e["log_level"]) for e in lines] == [("risk_denied", "warning")]
    assert {"instrument", "side", "qty", "price", "client_order_id"} <= set(lines[0])
    assert (lines[0]["instrument"], lines[0]["side"], Decimal(lines[0]["qty"])) == ("sim:BTCUSDT", "BUY", Decimal("0.1"))


async def test_an_order_event_repeating_the_last_status_logs_nothing(rig: Rig) -> None:
    rig.target("0.1")
    await rig.settle()
    await rig.trade(60010.0)
    (order,) = rig.st.engine.orders.values()
    with capture_logs() as logs:
        now = rig.clock.time_ns()
        rig.st.bus.publish(order.to_event(now, now))  # FILLED again (a late venue average price)
        rig.st.bus.publish(order.to_event(now, now))
    assert trade_lines(logs) == []


async def test_a_rejection_by_the_sim_venue_is_one_line_at_info_or_above(rig: Rig) -> None:
    rig.venue._reject_rate = 1.0  # venues.sim.reject_rate: every order refused by the venue
    with capture_logs() as logs:
        rig.target("0.1")
        await rig.settle()
    shown = [e["event"] for e in logs if e["log_level"] != "debug" and "rejected" in e["event"]]
    assert shown == ["order_rejected"]


@pytest.fixture
def debug_level() -> Any:
    obs_logging.set_level("debug")
    yield
    obs_logging.set_level("info")


async def test_an_accepted_resting_order_is_a_debug_line_naming_its_status(rig: Rig, debug_level: Any) -> None:
    rig.st.engine.update_config(parse(Config, {**CFG, "execution": {"order_type": "LIMIT",
                                                                    "limit_offset_bps": 100.0}}).execution)
    with capture_logs() as logs:
        rig.target("0.1")
        await rig.settle()
    lines = [(e["event"], e["log_level"], e.get("status")) for e in logs if e["event"].startswith("order_")]
    assert lines[0] == ("order_submitted", "info", None)
    assert lines[-1] == ("order_status", "debug", "ACCEPTED")
    assert all(level == "debug" for _, level, _ in lines[1:])  # SUBMITTED, ACCEPTED: debug only


async def test_at_info_the_debug_status_lines_are_not_built_and_the_terminal_lines_still_come(rig: Rig) -> None:
    rig.st.engine.update_config(parse(Config, {**CFG, "execution": {"order_type": "LIMIT",
                                                                    "limit_offset_bps": 100.0}}).execution)
    assert not obs_logging.enabled("debug")
    with capture_logs() as logs:
        rig.target("0.1")
        await rig.settle()
        assert await rig.st.engine.cancel_all("test") == 1  # a terminal line at info
        await rig.settle()
    lines = [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("order_")]
    assert lines == [("order_submitted", "info"), ("order_canceled", "info")]
