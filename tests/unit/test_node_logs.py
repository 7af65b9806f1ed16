"""The node's log: one line per trading state change, and the trading log lines for orders."""

from __future__ import annotations

from decimal import Decimal

from structlog.testing import capture_logs

from nautilus_hmm.domain.enums import OrderStatus, TradingState
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import TargetPosition
from tests.nodeharness import running_node

BTC = InstrumentId("sim", "BTCUSDT")


async def test_a_trading_state_change_is_one_line_warning_when_halted_info_when_active(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        assert node.trading_state is TradingState.ACTIVE
        with capture_logs() as logs:
            node.set_trading_state(TradingState.HALTED, "test halt", "test")
            node.set_trading_state(TradingState.REDUCING, "test reduce", "test")
            node.set_trading_state(TradingState.ACTIVE, "test resume", "test")
        lines = [(e["new"], e["log_level"]) for e in logs if e["event"] == "trading_state_changed"]
        assert lines == [("HALTED", "warning"), ("REDUCING", "warning"), ("ACTIVE", "info")]


async def test_an_order_submitted_and_filled_on_the_node_is_one_line_each(tmp_path, monkeypatch) -> None:
    async with running_node(tmp_path, monkeypatch) as (node, url):
        venue = node.stack.venues["sim"]
        engine = node.stack.engine
        await node.clock.advance_settle(1.0)  # the sim market's first trades: a mark price
        with capture_logs() as logs:
            now = node.clock.time_ns()
            node.bus.publish(TargetPosition(ts_event_ns=now, ts_init_ns=now, strategy_id="manual",
                                            instrument_id=BTC, target_qty=Decimal("0.01"), reason="test"))
            await engine.idle()
            await node.clock.advance_settle(1.0)  # the sim venue fills on its next trade
            await engine.idle()
            await node.clock.settle()  # the trading log is a deferred subscriber: it runs a few loop turns later
        (order,) = [o for o in engine.orders.values() if o.strategy_id == "manual"]
        assert order.status is OrderStatus.FILLED, venue
        shown = [e for e in logs if e["log_level"] != "debug"]  # the default level is info
        mine = [e for e in shown if e.get("client_order_id") == order.client_order_id
                or (e["event"] == "target_changed" and e["strategy"] == "manual")]
        assert [(e["event"], e["log_level"]) for e in mine] == [
            ("target_changed", "info"), ("order_submitted", "info"), ("order_filled", "info")]
        for line in mine[1:]:
            assert line["instrument"] == "sim:BTCUSDT" and line["side"] == "BUY"
            assert Decimal(line["qty"]) == Decimal("0.01") and "price" in line
