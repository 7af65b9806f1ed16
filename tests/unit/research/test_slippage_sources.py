"""slip-train's inputs: a live journal (held open by a running writer, rows still in its WAL)
is read without being locked, migrated or written; marks from a real klines CSV have no
spread, so the spread feature is dropped and named."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from nautilus_hmm.domain.enums import Liquidity, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill
from nautilus_hmm.journal import store
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.research import slippage as slip

BTC = InstrumentId("binance_spot", "BTCUSDT")
KLINES = Path("/work/shared/fixtures/marketdata/binance_spot_klines_1m/BTCUSDT_1m_2025-03.csv")


async def _orders(j: Journal, marks: slip.Marks, n: int, start: int = 50, every: int = 7) -> None:
    for k in range(n):
        i = start + k * every
        ts = int(marks.ts_ns[i]) + 1_000_000
        mid = float(marks.mid[i])
        side = Side.BUY if k % 2 else Side.SELL
        qty = Decimal("0.001") * (1 + k % 5)
        req = OrderRequest(j.next_client_order_id("t"), BTC, side, OrderType.MARKET, qty)
        await j.record_intent(req, "s", ts)
        cost = 2.0 + 3.0 * math.sqrt(float(qty) * mid / 200.0)
        px = mid * (1 + (1 if side is Side.BUY else -1) * cost / 1e4)
        await j.record_fill("binance_spot", VenueFill(BTC, req.client_order_id, "v", str(k), side, qty,
                                                      Decimal(repr(round(px, 2))), Decimal("0"), "USDT",
                                                      Liquidity.TAKER, ts + 20_000_000))


@pytest.mark.skipif(not KLINES.exists(), reason="shared fixtures not mounted")
async def test_a_live_journal_is_read_without_touching_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer's own checkpoint thread would fold the WAL into the file during the read;
    # with it parked, any change to the files would be the reader's.
    monkeypatch.setattr(store, "CHECKPOINT_INTERVAL_S", 3600.0)
    marks = slip.load_marks(KLINES)
    jp = tmp_path / "live.sqlite3"
    j = Journal.open(jp, synchronous="normal")  # held open: its lock taken, its rows in the WAL
    try:
        await _orders(j, marks, 12)
        assert Path(f"{jp}-wal").exists()
        before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()
                  if p.name in ("live.sqlite3", "live.sqlite3.seq")}
        model, _, skipped = slip.train(jp, KLINES, tmp_path / "out")
        after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()
                 if p.name in ("live.sqlite3", "live.sqlite3.seq")}
        assert before == after  # nothing written to the database or its sequence mark
        assert len(slip.read_journal(jp)[1]) == 12  # the rows still only in the WAL are read
        assert model.doc["fit"]["n_orders"] == 12 and skipped["no_mark"] == 0
        # the writer still works after the read
        await _orders(j, marks, 1, start=5)
    finally:
        j.close()


@pytest.mark.skipif(not KLINES.exists(), reason="shared fixtures not mounted")
async def test_klines_marks_have_no_spread_so_it_is_dropped(tmp_path: Path) -> None:
    marks = slip.load_marks(KLINES)
    assert all(math.isnan(s) for s in marks.spread_bps[:10])
    # known at the bar's close: the first mark is 2025-03-01 03:01 UTC (the 03:00 bar closed)
    assert datetime.fromtimestamp(int(marks.ts_ns[0]) / 1e9, UTC) == datetime(2025, 3, 1, 3, 1, tzinfo=UTC)
    jp = tmp_path / "j.sqlite3"
    j = Journal.open(jp, synchronous="normal", durable=False)
    try:
        await _orders(j, marks, 20)
    finally:
        j.close()
    model, _, _ = slip.train(jp, KLINES, tmp_path / "out", vol_window_s=1800.0)
    assert "spread_bps" in model.doc["fit"]["dropped"]
    assert model.coef[slip.FEATURES.index("spread_bps")] == 0.0
    assert model.predict_bps(2 * 200.0) == pytest.approx(2.0 + 3.0 * math.sqrt(2), abs=0.3)


async def test_an_order_whose_mark_is_stale_is_left_out_and_counted(tmp_path: Path) -> None:
    t0 = 1_700_000_000_000_000_000
    marks = slip.Marks.build([t0, t0 + 10**9], [100.0, 100.1], [1.0, 1.0], "m")
    jp = tmp_path / "j.sqlite3"
    j = Journal.open(jp, synchronous="normal", durable=False)
    try:
        req = OrderRequest(j.next_client_order_id("t"), BTC, Side.BUY, OrderType.MARKET, Decimal("1"))
        await j.record_intent(req, "s", t0 + int(slip.MAX_MARK_AGE_S * 1e9) + 2 * 10**9)
        await j.record_fill("binance_spot", VenueFill(BTC, req.client_order_id, "v", "1", Side.BUY, Decimal("1"),
                                                      Decimal("100.2"), Decimal("0"), "USDT", Liquidity.TAKER,
                                                      t0 + 10**12))
    finally:
        j.close()
    orders, fills = slip.read_journal(jp)
    rows, skipped = slip.samples(orders, fills, marks)
    assert rows == [] and skipped["stale_mark"] == 1
