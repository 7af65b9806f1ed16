"""Benchmark: microseconds per RiskGate.check (pass path) and per plan_target. Numbers, not pass/fail."""

from __future__ import annotations

import time
from decimal import Decimal

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.domain.enums import InstrumentKind, OrderType, Side, TimeInForce, TradingState
from nautilus_hmm.domain.instruments import Instrument, InstrumentId
from nautilus_hmm.domain.orders import OrderRequest
from nautilus_hmm.execution.router import plan_target
from nautilus_hmm.risk.config import RiskConfig
from nautilus_hmm.risk.gate import OrderContext, RiskGate


def bench_check(n: int = 200_000) -> float:
    """µs per allowed check (rate limit made non-binding)."""
    clock = ManualClock()
    gate = RiskGate(RiskConfig(orders_per_s=1e12, order_burst=10**9), Bus(), clock)
    iid = InstrumentId("sim", "BTCUSDT")
    gate.set_state(TradingState.ACTIVE, "bench", "bench")
    gate.on_market_data(iid, 30_000.0, clock.time_ns())
    req = OrderRequest("c-1", iid, Side.BUY, OrderType.LIMIT, Decimal("0.01"), Decimal("30000.5"))
    ctx = OrderContext(position_qty=Decimal("0.1"), open_order_count=1, gross_exposure_usd=3_000.0)
    check = gate.check
    t0 = time.perf_counter()
    for _ in range(n):
        d = check(req, "s", ctx)
    dt = time.perf_counter() - t0
    assert d.allowed
    return dt / n * 1e6


def bench_plan(n: int = 100_000) -> float:
    """µs per plan_target producing a LIMIT order."""
    inst = Instrument(InstrumentId("sim", "BTCUSDT"), "BTC", "USDT", InstrumentKind.PERPETUAL,
                      Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal("1000"), Decimal("5"))
    args = (inst, Decimal("0.5"), Decimal(0), Decimal(0), Decimal("-0.25"), Decimal("30000"), OrderType.LIMIT, 5.0, TimeInForce.GTC)
    t0 = time.perf_counter()
    for _ in range(n):
        plan_target(*args)
    return (time.perf_counter() - t0) / n * 1e6


if __name__ == "__main__":
    print(f"RiskGate.check (allowed): {bench_check():.2f} us")
    print(f"plan_target (LIMIT):      {bench_plan():.2f} us")
