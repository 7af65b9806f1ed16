"""Notify test helpers: messages of every routed class, a fake transport that blocks on demand."""

from __future__ import annotations

import threading
from decimal import Decimal

from nautilus_hmm.domain.enums import Liquidity, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.messages import Fill, RiskDenied

BTC = InstrumentId("sim", "BTCUSDT")


def fill(i: int = 1, ts_ns: int = 0) -> Fill:
    """A fill of 0.01 BTC."""
    return Fill(ts_event_ns=ts_ns, ts_init_ns=ts_ns, instrument_id=BTC, client_order_id=f"nh-{i}",
                venue_order_id=None, trade_id=f"t{i}", side=Side.BUY, qty=Decimal("0.01"),
                price=Decimal("50000.5"), fee=Decimal("0.1"), fee_asset="USDT", liquidity=Liquidity.TAKER)


def denial(i: int = 1, ts_ns: int = 0) -> RiskDenied:
    """A denial by the notional rail."""
    return RiskDenied(ts_event_ns=ts_ns, ts_init_ns=ts_ns, instrument_id=BTC, strategy_id="hmm",
                      side=Side.BUY, quantity=Decimal("1.5"), reason="max_order_notional",
                      detail=f"order {i} too big")


class FakeTransport:
    """Records sends; answers from `script` (None = delivered, text = failed), then delivered.

    `gate`, when given, holds every send until it is set (a receiver that never answers)."""

    def __init__(self, script: list[str | None] | None = None, gate: threading.Event | None = None) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.script = list(script or [])
        self.gate = gate
        self.calls = 0
        self.entered = threading.Event()
        self.done = threading.Semaphore(0)

    def send(self, title: str, body: str, severity: str) -> str | None:
        """Record, maybe block, answer from the script."""
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        result = self.script.pop(0) if self.script else None
        if result is None:
            self.sent.append((title, body, severity))
        self.done.release()
        return result
