"""sim_exec and the journal: the entry latency measured from a real journal file, and a
slippage model fitted (slip-train's path) from a journal of sim_exec's book-walking fills
on a real capture: bigger orders cost more."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side
from nautilus_hmm.domain.orders import OrderRequest, VenueFill
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.research import slippage as slip
from nautilus_hmm.research.sim_exec import Scripted, SimExecConfig, TickSim, latency_from_journal
from nautilus_hmm.research.ticks import load_capture
from nautilus_hmm.venues.sim.instruments import sim_instrument

CAPTURE = Path("/work/shared/fixtures/marketdata/binance_ws_captures_hftbacktest/spot_ethusdt_20240808.gz")
MS = 1_000_000


async def test_latency_is_half_the_median_intent_to_ack_round_trip(tmp_path: Path) -> None:
    inst = sim_instrument("sim", "BTCUSDT", "USDT", Decimal("0.001"), Decimal("0.001"))
    p = tmp_path / "j.sqlite3"
    j = Journal.open(p, synchronous="normal", durable=False)
    try:
        for k, rtt_ms in enumerate((8, 12, 10, 30, 9)):
            req = OrderRequest(j.next_client_order_id("t"), inst.id, Side.BUY, OrderType.MARKET, Decimal("0.001"))
            t = 1_000_000_000 * (k + 1)
            await j.record_intent(req, "s", t)
            j.record_order_update(req.client_order_id, OrderStatus.ACCEPTED, Decimal(0), None, f"v{k}", None,
                                  t + rtt_ms * MS)
    finally:
        j.close()
    assert latency_from_journal(p) == 5 * MS  # median round trip 10 ms


async def test_latency_from_a_journal_without_acks_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "j.sqlite3"
    Journal.open(p, durable=False).close()
    with pytest.raises(slip.SlippageError, match="no acknowledged order"):
        latency_from_journal(p)


@pytest.mark.skipif(not CAPTURE.exists(), reason="shared fixtures not mounted")
async def test_a_model_fitted_on_sim_fills_of_a_real_capture_charges_size(tmp_path: Path) -> None:
    events = load_capture(CAPTURE)[:15_000]
    inst = sim_instrument("binance_spot", "ETHUSDT", "USDT", Decimal("0"), Decimal("0.001"))
    t0 = events[100][0]
    sizes = (0.05, 0.5, 2.0, 8.0, 25.0)
    orders = [(t0 + k * 400 * MS, {"side": Side.BUY if k % 2 == 0 else Side.SELL, "qty": sizes[k % len(sizes)]})
              for k in range(60)]
    strat = Scripted(orders)
    res = TickSim(inst, SimExecConfig(entry_latency_ns=0, response_latency_ns=0)).run(events, strat)
    assert len(strat.ids) == 60

    jp = tmp_path / "journal.sqlite3"
    j = Journal.open(jp, synchronous="normal", durable=False)
    ids: dict[str, str] = {}
    try:
        for (ts, kw), cid in zip(orders, strat.ids, strict=True):
            o = res.orders[cid]
            req = OrderRequest(j.next_client_order_id("t"), inst.id, kw["side"], OrderType.MARKET,
                               Decimal(repr(o.qty)))
            ids[cid] = req.client_order_id
            await j.record_intent(req, "s", ts)
        for n, f in enumerate(res.fills):
            await j.record_fill("binance_spot", VenueFill(
                inst.id, ids[f.client_order_id], "v", str(n), f.side, Decimal(repr(round(f.qty, 8))),
                Decimal(repr(f.price)), Decimal(repr(round(f.fee, 8))), "USDT", Liquidity.TAKER, f.ts_ns))
    finally:
        j.close()

    model, _, skipped = slip.train(jp, CAPTURE, tmp_path / "out", vol_window_s=60.0)
    assert skipped["no_fills"] == 0 and model.doc["fit"]["n_orders"] == 60
    small, big = model.predict_bps(0.05 * 2600, 0.04, 1.0), model.predict_bps(25 * 2600, 0.04, 1.0)
    assert big > small + 0.3  # the book walk of a 25 ETH order costs more than one level
    assert "spread_bps" in model.doc["fit"]["dropped"]  # a one-tick spread throughout: no information
    assert model.coef[slip.FEATURES.index("sqrt_size")] > 0
