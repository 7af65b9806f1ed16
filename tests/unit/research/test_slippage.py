"""Slippage model: fitted from a real journal's fills against arrival marks, stored as a
checksummed artifact, refused when damaged; slip-train's bad inputs give one clear line."""

from __future__ import annotations

import gzip
import hashlib
import io
import math
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from nautilus_hmm.domain.enums import Liquidity, OrderType, Side
from nautilus_hmm.domain.instruments import InstrumentId
from nautilus_hmm.domain.orders import OrderRequest, VenueFill
from nautilus_hmm.journal.store import Journal
from nautilus_hmm.research import slippage as slip

BTC = InstrumentId("binance_spot", "BTCUSDT")
T0 = 1_723_161_254_000_000_000
REAL_CAPTURE = Path("/work/shared/fixtures/marketdata/binance_ws_captures_hftbacktest/spot_btcusdt_20240808.gz")


def write_capture(path: Path, n: int = 400) -> list[tuple[int, float, float]]:
    """A small capture: a quote every 100 ms, mid wandering, spread 1..3 ticks. Returns (ts, mid, spread_bps)."""
    lines, marks = [], []
    for i in range(n):
        ts = T0 + i * 100_000_000
        mid = 60_000.0 + 5.0 * math.sin(i / 7.0) + 0.01 * i
        half = 0.005 * (1 + i % 3)
        bid, ask = round(mid - half, 3), round(mid + half, 3)
        msg = {"stream": "btcusdt@bookTicker", "data": {"u": i, "s": "BTCUSDT", "b": str(bid), "B": "1.0",
                                                        "a": str(ask), "A": "2.0"}}
        lines.append(f"{ts} ".encode() + orjson.dumps(msg))
        marks.append((ts, (bid + ask) / 2, (ask - bid) / ((bid + ask) / 2) * 1e4))
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return marks


def true_cost_bps(notional: float) -> float:
    return 1.5 + 4.0 * math.sqrt(notional / 6_000.0)


async def write_journal(path: Path, marks: list[tuple[int, float, float]], n_orders: int = 30) -> None:
    """Orders placed at marks; fills at mark +- the true cost, in two partial fills each."""
    j = Journal.open(path, synchronous="normal", durable=False)
    try:
        for k in range(n_orders):
            ts, mid, _ = marks[10 + k * 12]
            side = Side.BUY if k % 2 == 0 else Side.SELL
            qty = Decimal("0.01") * (1 + k % 7)
            req = OrderRequest(j.next_client_order_id("t"), BTC, side, OrderType.MARKET, qty)
            await j.record_intent(req, "s", ts)
            cost = true_cost_bps(float(qty) * mid)
            sign = 1 if side is Side.BUY else -1
            px = mid * (1 + sign * cost / 1e4)
            half = qty / 2
            for part, p in ((half, px - 0.5), (qty - half, px + 0.5)):  # vwap == px
                await j.record_fill("binance_spot", VenueFill(
                    BTC, req.client_order_id, f"v{k}", f"{k}-{p}", side, part, Decimal(repr(p)),
                    Decimal("0.01"), "USDT", Liquidity.TAKER, ts + 50_000_000))
    finally:
        j.close()


@pytest.fixture
async def fitted(tmp_path: Path) -> tuple[Path, Path, Path]:
    cap = tmp_path / "cap.gz"
    marks = write_capture(cap)
    jp = tmp_path / "journal.sqlite3"
    await write_journal(jp, marks)
    return jp, cap, tmp_path / "out"


async def test_fit_recovers_the_cost_of_size_from_journaled_fills(fitted: tuple[Path, Path, Path]) -> None:
    jp, cap, out = fitted
    model, path, skipped = slip.train(jp, cap, out)
    assert path == out / slip.MODEL_FILE
    assert model.doc["fit"]["n_orders"] == 30
    assert skipped == {"no_fills": 0, "no_mark": 0, "stale_mark": 0, "no_intent": 0}
    assert model.doc["fit"]["rmse_bps"] < 0.05
    for notional in (600.0, 6_000.0, 20_000.0):
        assert model.predict_bps(notional, spread_bps=0.0017, vol_bps=1.0) == pytest.approx(
            true_cost_bps(notional), abs=0.1)
    assert model.fill_price(Side.BUY, 60_000.0, 0.1, 0.0017, 1.0) > 60_000.0
    assert model.fill_price(Side.SELL, 60_000.0, 0.1, 0.0017, 1.0) < 60_000.0
    rows = (out / slip.SAMPLES_FILE).read_text().splitlines()
    assert len(rows) == 31 and rows[0].startswith("client_order_id,")


async def test_artifact_round_trips_and_its_checksum_is_stable(fitted: tuple[Path, Path, Path]) -> None:
    jp, cap, out = fitted
    model, path, _ = slip.train(jp, cap, out)
    again = slip.load_model(path)
    assert again.sha256 == model.sha256 and again.coef == model.coef
    assert again.doc["training"]["journal_sha256"] == model.doc["training"]["journal_sha256"]
    assert again.predict_bps(1000.0) == model.predict_bps(1000.0)


async def test_a_flipped_byte_in_the_artifact_is_refused_naming_the_checksum(fitted: tuple[Path, Path, Path]) -> None:
    jp, cap, out = fitted
    _, path, _ = slip.train(jp, cap, out)
    doc = orjson.loads(path.read_bytes())
    doc["coef"][3] = doc["coef"][3] * 2
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(slip.SlippageModelError, match=r"sha256.*does not match"):
        slip.load_model(path)


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d.update(format_version=2), "format_version"),
    (lambda d: d.update(kind="nautilus_hmm.regime_model"), "kind"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.pop("coef"), "coef"),
    (lambda d: d.update(size_ref_quote=-1.0), "size_ref_quote"),
])
async def test_a_wrong_field_is_refused_naming_it(fitted: tuple[Path, Path, Path], edit, field: str) -> None:
    jp, cap, out = fitted
    _, path, _ = slip.train(jp, cap, out)
    doc = orjson.loads(path.read_bytes())
    edit(doc)
    doc.pop("sha256")
    doc["sha256"] = hashlib.sha256(slip._canonical(doc)).hexdigest()  # a consistent checksum: the field check speaks
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(slip.SlippageModelError) as e:
        slip.load_model(path)
    assert e.value.field == field and str(path) in str(e.value)


def test_a_truncated_artifact_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_bytes(b'{"kind": "nautilus_hmm.slip')
    with pytest.raises(slip.SlippageModelError, match="not JSON"):
        slip.load_model(p)


def run_cli(*argv: str) -> tuple[int, str, str]:
    import argparse
    ap = argparse.ArgumentParser()
    slip.add_slip_train_args(ap)
    out, err = io.StringIO(), io.StringIO()
    rc = slip.run_slip_train(ap.parse_args(list(argv)), out, err)
    return rc, out.getvalue(), err.getvalue()


async def test_slip_train_cli_writes_the_model_and_says_so(fitted: tuple[Path, Path, Path]) -> None:
    jp, cap, out = fitted
    rc, text, err = run_cli("--journal", str(jp), "--marks", str(cap), "--out", str(out))
    assert rc == 0 and err == ""
    assert "30 orders" in text and (out / slip.MODEL_FILE).exists()


async def test_a_truncated_journal_is_a_clear_error(fitted: tuple[Path, Path, Path]) -> None:
    jp, cap, out = fitted
    data = jp.read_bytes()
    jp.write_bytes(data[: len(data) // 3])
    rc, _, err = run_cli("--journal", str(jp), "--marks", str(cap), "--out", str(out))
    assert rc == 2 and str(jp) in err and "Traceback" not in err
    assert not (out / slip.MODEL_FILE).exists()


async def test_a_journal_with_flipped_bits_is_a_clear_error(fitted: tuple[Path, Path, Path]) -> None:
    jp, cap, out = fitted
    data = bytearray(jp.read_bytes())
    for i in range(200, len(data), 97):
        data[i] ^= 0xFF
    jp.write_bytes(bytes(data))
    rc, _, err = run_cli("--journal", str(jp), "--marks", str(cap), "--out", str(out))
    assert rc == 2 and str(jp) in err and "Traceback" not in err


def test_a_file_that_is_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    jp = tmp_path / "notes.txt"
    jp.write_text("hello\n" * 100)
    cap = tmp_path / "cap.gz"
    write_capture(cap)
    rc, _, err = run_cli("--journal", str(jp), "--marks", str(cap), "--out", str(tmp_path / "o"))
    assert rc == 2 and str(jp) in err


def test_a_missing_journal_is_a_clear_error(tmp_path: Path) -> None:
    rc, _, err = run_cli("--journal", str(tmp_path / "nope.sqlite3"), "--marks", "x.gz", "--out", str(tmp_path))
    assert rc == 2 and "nope.sqlite3" in err and "does not exist" in err


async def test_marks_that_miss_the_journal_give_a_count_not_a_fit(fitted: tuple[Path, Path, Path],
                                                                  tmp_path: Path) -> None:
    jp, _, out = fitted
    late = tmp_path / "late.gz"
    lines = [f"{T0 + 10**12 + i} ".encode() + orjson.dumps(
        {"stream": "x@bookTicker", "data": {"b": "1", "B": "1", "a": "2", "A": "1"}}) for i in range(5)]
    late.write_bytes(gzip.compress(b"\n".join(lines)))
    rc, _, err = run_cli("--journal", str(jp), "--marks", str(late), "--out", str(out))
    assert rc == 2 and "0 filled orders" in err and "'no_mark': 30" in err


async def test_a_damaged_marks_capture_names_its_line(fitted: tuple[Path, Path, Path], tmp_path: Path) -> None:
    jp, cap, out = fitted
    text = gzip.decompress(cap.read_bytes()).splitlines()
    text[41] = text[41][:30]
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\n".join(text)))
    rc, _, err = run_cli("--journal", str(jp), "--marks", str(bad), "--out", str(out))
    assert rc == 2 and f"{bad}:42" in err


@pytest.mark.skipif(not REAL_CAPTURE.exists(), reason="shared fixtures not mounted")
def test_marks_from_the_real_capture_have_a_spread_and_volatility() -> None:
    marks = slip.load_marks(REAL_CAPTURE)
    assert len(marks.ts_ns) > 20_000
    i = marks.at(int(marks.ts_ns[-1]))
    assert 0 < marks.spread_bps[i] < 5  # BTCUSDT spot: a one-tick spread is ~0.0016 bps
    assert 0 < marks.vol_bps(i, 300.0) < 200


async def test_the_cli_wires_slip_train(fitted: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from nautilus_hmm.cli import main

    jp, cap, out = fitted
    assert main(["research", "slip-train", "--journal", str(jp), "--marks", str(cap), "--out", str(out)]) == 0
    assert slip.load_model(out / slip.MODEL_FILE).doc["fit"]["n_orders"] == 30
    assert main(["research", "slip-train", "--journal", str(cap), "--marks", str(cap), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(cap) in err and "Traceback" not in err


async def test_the_sim_venue_layer_loads_and_uses_the_model_without_research(fitted: tuple[Path, Path, Path]) -> None:
    import subprocess
    import sys

    jp, cap, out = fitted
    model, path, _ = slip.train(jp, cap, out)
    code = ("import sys; from nautilus_hmm.domain.enums import Side; "
            "from nautilus_hmm.venues.sim.slippage_model import load_model; "
            f"m = load_model({str(path)!r}); print(m.sha256, m.fill_price(Side.BUY, 60000.0, 0.05)); "
            "assert not any(k.startswith('nautilus_hmm.research') for k in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    sha, px = res.stdout.split()
    assert sha == model.sha256 and float(px) == model.fill_price(Side.BUY, 60000.0, 0.05)
