"""`data download --venue bybit --source trades`: Bybit's daily public trade dumps (gzip CSV,
public.bybit.com layout) from a loopback mirror, aggregated into 1m bars.

The trades are built from the real Binance BTCUSDT 1m bars of March 2025 in
shared/fixtures/marketdata (four trades per bar: open, high, low, close; the volume split over
them), so aggregating them must give those bars back. A corrupt or truncated gzip never
enters the output (nor the dumps directory); gaps stay gaps."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.core.errors import DataError
from nautilus_hmm.marketdata.replay import load_bars
from nautilus_hmm.research import bybit_trades
from nautilus_hmm.research.binance_mirror import rows_from_ohlcv_csv, shift_rows
from nautilus_hmm.research.bybit_mirror import (
    BybitPublicMirror,
    trades_from_klines,
    write_trade_dumps,
)
from nautilus_hmm.research.download import (
    DUMPS_DIR,
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    DownloadRequest,
    day_ms,
    download,
    output_rel,
)
from nautilus_hmm.venues.bybit.emulator.server import BybitEmulator
from tests.conftest import fixture_path
from tests.unit.research.threaded import served_in_thread

DAY1, DAY2 = date(2025, 3, 5), date(2025, 3, 6)
REL1 = bybit_trades.dump_rel("linear", "BTCUSDT", DAY1)
REL2 = bybit_trades.dump_rel("linear", "BTCUSDT", DAY2)
OUT = output_rel("bybit", "BTCUSDT", "1m", date(2025, 3, 1))
GAP_START = day_ms(DAY1) + 10 * 3_600_000  # 10:00..10:04 of day 1 had no trade
GAP = {GAP_START + k * 60_000 for k in range(5)}


@pytest.fixture(scope="module")
def two_days(tmp_path_factory) -> list[list]:
    """DAY1 and DAY2 of the recorded month (its rows moved 3 h earlier, as the Binance tests do)."""
    lines = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv").read_text().splitlines()
    subset = tmp_path_factory.mktemp("klines") / "k.csv"
    subset.write_text("\n".join([lines[0], *(ln for ln in lines[1:] if ln[:10] in
                                              ("2025-03-05", "2025-03-06", "2025-03-07"))]) + "\n")
    lo, hi = day_ms(DAY1), day_ms(DAY2 + timedelta(days=1))
    return [r for r in shift_rows(rows_from_ohlcv_csv(subset), -3 * 3600 * 1000) if lo <= int(r[0]) < hi]


@pytest.fixture(scope="module")
def dumps_dir(tmp_path_factory, two_days) -> Path:
    """The two days' dumps, built once (each test's mirror serves a copy it may damage)."""
    root = tmp_path_factory.mktemp("dumps")
    write_trade_dumps(root, "linear", "BTCUSDT", trades_from_klines(two_days, skip=GAP), [DAY1, DAY2])
    return root


@pytest.fixture
async def mirror(tmp_path: Path, dumps_dir: Path) -> AsyncIterator[BybitPublicMirror]:
    m = BybitPublicMirror(tmp_path / "mirror")
    shutil.copytree(dumps_dir, m.root)
    await m.start()
    yield m
    await m.stop()


def request(url: str, out: Path, start: date = DAY1, end: date = DAY2, *, rest_url: str = "",
            category: str = "linear", **kw) -> DownloadRequest:
    return DownloadRequest("bybit", ["BTCUSDT"], "1m", start, end, out, base_url=url, rest_url=rest_url,
                           category=category, source="trades", now_ms=day_ms(date(2025, 4, 2)), workers=0, **kw)


def leftovers(out: Path) -> list[Path]:
    """Output files, kept dumps and temporary files (what must not exist after a failure)."""
    return [p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"]


# ------------------------------------------------------------------ the bars


async def test_trades_aggregate_into_the_source_bars_and_gaps_stay_gaps(mirror, two_days, tmp_path) -> None:
    out = tmp_path / "out"
    s = await download(request(mirror.url, out))
    [m] = s.months
    assert s.exit_code == EXIT_OK and m.status == "written", m
    assert m.rows == 2 * 1440 - len(GAP) and s.files_downloaded == 2 and s.rest_requests == 0
    assert m.sources == [f"bybit:{REL1}", f"bybit:{REL2}"]
    bars = load_bars(out / OUT)
    ts_ms = bars.ts_open_ns // 1_000_000
    src = [r for r in two_days if int(r[0]) not in GAP]
    assert ts_ms.tolist() == [int(r[0]) for r in src]
    for j, col in enumerate((bars.open, bars.high, bars.low, bars.close, bars.volume), start=1):
        assert np.allclose(col, [float(r[j]) for r in src], rtol=0, atol=1e-9), j
    lines = (out / OUT).read_text().splitlines()
    first = lines[1].split(",")
    # prices at the file's precision (cents), sums at the sizes' (5 decimals)
    assert first[0] == str(src[0][0]) and first[1:5] == [f"{float(v):.2f}" for v in src[0][1:5]]
    assert float(first[5]) == float(src[0][5]) and len(first[5].partition(".")[2]) <= 5
    assert first[6] == str(int(src[0][0]) + 59_999) and first[8] == "4"  # close time, trade count
    quality = json.loads((out / OUT).with_name(Path(OUT).stem + ".quality.json").read_text())
    assert quality["missing_bars"] == len(GAP) and quality["gap_count"] == 1
    # the checked dumps are kept, listed with their digest
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["dumps"]) == {f"bybit/{REL1}", f"bybit/{REL2}"}
    assert (out / DUMPS_DIR / "bybit" / REL1).is_file()
    # a month built only from dumps is final: a rerun touches nothing
    hits = sum(mirror.hits.values())
    again = await download(request(mirror.url, out))
    assert [m.status for m in again.months] == ["skipped"] and sum(mirror.hits.values()) == hits


async def test_spot_dumps_oldest_first_with_ms_times_give_the_same_bars(mirror, two_days, tmp_path) -> None:
    write_trade_dumps(mirror.root, "spot", "BTCUSDT", trades_from_klines(two_days), [DAY2])
    out = tmp_path / "out"
    s = await download(request(mirror.url, out, DAY2, DAY2, category="spot"))
    assert s.exit_code == EXIT_OK and s.months[0].rows == 1440
    bars = load_bars(out / OUT)
    src = [r for r in two_days if int(r[0]) >= day_ms(DAY2)]
    assert np.allclose(bars.close, [float(r[4]) for r in src]) and np.allclose(bars.volume, [float(r[5]) for r in src])


def test_same_millisecond_trades_keep_their_order_in_a_newest_first_file() -> None:
    t = 1_741_132_800_000
    rows = [(t, "Buy", "1", "100.0"), (t, "Sell", "1", "101.5"), (t + 5, "Buy", "2", "99.5"),
            (t + 5, "Sell", "1", "100.5")]
    tr = bybit_trades.parse_trades(bybit_trades.dump_csv(rows, "linear", "BTCUSDT", newest_first=True), "f")
    opens, ohlcv, lines = bybit_trades.trades_to_klines(tr, 60_000)
    assert opens.tolist() == [t] and ohlcv.tolist() == [[100.0, 101.5, 99.5, 100.5, 5.0]]
    # volume 5, quote 100 + 101.5 + 199 + 100.5, 4 trades, taker buys 3 (quote 299)
    assert lines == [f"{t},100.0,101.5,99.5,100.5,5,{t + 59_999},501,4,3,299,0"]


# ------------------------------------------------------------------ damage


@pytest.mark.parametrize("fault", ["corrupt", "drop", "fail"])
async def test_a_damaged_dump_served_twice_fails_naming_its_url_and_never_enters_the_output(
        mirror, tmp_path, fault) -> None:
    getattr(mirror, fault)[REL1] = 2
    out = tmp_path / "out"
    s = await download(request(mirror.url, out))
    [m] = s.months
    assert s.exit_code == EXIT_FAILED and m.status == "failed"
    assert f"{mirror.url}/{REL1}" in m.error and "twice" in m.error, m.error
    assert {"corrupt": "damaged gzip", "drop": "transport error after", "fail": "HTTP 500"}[fault] in m.error, m.error
    assert mirror.hits[REL1] == 2
    assert leftovers(out) == [(out / DUMPS_DIR / "bybit" / REL2)]  # the good day is kept, nothing else
    # the next run downloads the damaged day again (now good) and keeps the good one
    s2 = await download(request(mirror.url, out))
    assert s2.exit_code == EXIT_OK and s2.files_downloaded == 1 and s2.files_cached == 1


async def test_a_kept_dump_damaged_on_disk_is_fetched_again_when_its_month_is_rebuilt(mirror, tmp_path) -> None:
    out = tmp_path / "out"
    assert (await download(request(mirror.url, out))).exit_code == EXIT_OK
    kept = out / DUMPS_DIR / "bybit" / REL1
    data = bytearray(kept.read_bytes())
    data[len(data) // 3] ^= 0x10
    kept.write_bytes(bytes(data))
    (out / OUT).unlink()  # the month is rebuilt from the kept dumps
    s = await download(request(mirror.url, out))
    assert s.exit_code == EXIT_OK and (s.files_downloaded, s.files_cached) == (1, 1)
    assert s.months[0].rows == 2 * 1440 - len(GAP) and mirror.hits[REL1] == 2


async def test_a_damaged_dump_once_is_retried_and_the_month_is_written(mirror, tmp_path) -> None:
    mirror.corrupt[REL2] = 1
    s = await download(request(mirror.url, tmp_path / "out"))
    assert s.exit_code == EXIT_OK and s.months[0].rows == 2 * 1440 - len(GAP) and mirror.hits[REL2] == 2


async def test_a_dump_with_a_bad_row_fails_naming_the_file_line_and_value(mirror, tmp_path) -> None:
    path = mirror.root / REL1
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    cols = lines[7].split(",")
    cols[4] = "8x6.5"
    lines[7] = ",".join(cols)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "out"
    s = await download(request(mirror.url, out))
    [m] = s.months
    assert m.status == "failed" and f"{mirror.url}/{REL1}:8: price = '8x6.5': not a number" in m.error, m.error
    assert not list(out.rglob("*.csv"))


def test_a_truncated_or_flipped_file_is_refused_by_the_gzip_check(tmp_path) -> None:
    good = gzip.compress(bybit_trades.dump_csv([(1_741_132_800_000 + k, "Buy", "0.001", "86000.5")
                                                for k in range(2000)], "linear", "BTCUSDT"))
    for name, data in (("cut", good[: len(good) - 9]), ("flip", good[:100] + bytes([good[100] ^ 4]) + good[101:])):
        p = tmp_path / name
        p.write_bytes(data)
        assert "damaged gzip" in bybit_trades.check_dump(str(p), name)
        with pytest.raises(DataError, match="damaged gzip"):
            bybit_trades.read_trade_dump(p, name)
    p = tmp_path / "good"
    p.write_bytes(good)
    assert bybit_trades.check_dump(str(p), "good") == "" and len(bybit_trades.read_trade_dump(p, "good")) == 2000
    p.write_bytes(gzip.compress(b"when,what\n1,2\n"))
    assert "expected timestamp, price, side and size" in bybit_trades.check_dump(str(p), "x")


# ------------------------------------------------------------------ days without a dump


async def test_a_day_without_a_dump_is_missing_without_rest_and_filled_from_rest_klines(tmp_path) -> None:
    start_ms = day_ms(DAY2) + 20 * 3_600_000  # the emulator's 5000-bar past covers DAY1 and DAY2
    emu = BybitEmulator(api_key="k", api_secret="s", symbols=["BTCUSDT"], clock=ManualClock(start_ms * 1_000_000),
                        run_market=False, unmetered=True)
    m = BybitPublicMirror(tmp_path / "mirror")
    past = emu.exchange._past("BTCUSDT", "1")
    rows = [[int(t) // 1_000_000, repr(float(o)), repr(float(h)), repr(float(lo)), repr(float(c)), "1.5"]
            for t, o, h, lo, c in zip(past.ts_open_ns, past.open, past.high, past.low, past.close, strict=True)]
    write_trade_dumps(m.root, "linear", "BTCUSDT", trades_from_klines(rows), [DAY1])  # DAY2: not published
    await emu.start()
    await m.start()
    try:
        out = tmp_path / "out"
        no_rest = await download(DownloadRequest("bybit", ["BTCUSDT"], "1m", DAY1, DAY2, out, base_url=m.url,
                                                 rest_url="", category="linear", source="trades",
                                                 now_ms=start_ms, workers=0))
        [mo] = no_rest.months
        assert no_rest.exit_code == EXIT_INCOMPLETE and mo.status == "incomplete" and mo.rows == 1440
        assert "2025-03-06 00:00..2025-03-06 20:00" in mo.error  # up to the last closed bar before now
        filled = await download(DownloadRequest("bybit", ["BTCUSDT"], "1m", DAY1, DAY2, out, base_url=m.url,
                                                rest_url=emu.url, category="linear", source="trades",
                                                now_ms=start_ms, workers=0))
        [mo] = filled.months
        assert filled.exit_code == EXIT_OK and mo.rows == 1440 + 20 * 60 and filled.files_cached == 1
        assert mo.sources == [f"bybit:{REL1}", f"rest:{emu.url}"]
        bars = load_bars(out / OUT)
        i = int(np.searchsorted(past.ts_open_ns, bars.ts_open_ns[0]))
        assert np.allclose(bars.close, past.close[i:i + len(bars)], rtol=1e-6)
    finally:
        await m.stop()
        await emu.stop()


# ------------------------------------------------------------------ the command


@pytest.fixture
def threaded_mirror(tmp_path, two_days) -> Iterator[BybitPublicMirror]:
    """A mirror on its own loop in a thread (the command runs its own asyncio.run)."""
    m = BybitPublicMirror(tmp_path / "mirror")
    write_trade_dumps(m.root, "linear", "BTCUSDT", trades_from_klines(two_days), [DAY1])
    with served_in_thread(m):
        yield m


def test_the_command_downloads_trade_dumps_and_names_a_corrupt_one(threaded_mirror, tmp_path, capsys) -> None:
    from nautilus_hmm.cli import main

    argv = ["data", "download", "--venue", "bybit", "--source", "trades", "--category", "linear", "--symbols",
            "BTCUSDT", "--from", "2025-03-05", "--to", "2025-03-05", "--base-url", threaded_mirror.url,
            "--no-rest", "-q", "--workers", "0"]
    threaded_mirror.corrupt[REL1] = 2
    assert main([*argv, "--out", str(tmp_path / "bad")]) == 1
    o = capsys.readouterr()
    assert f"{threaded_mirror.url}/{REL1}" in o.out and "damaged gzip" in o.out and "Traceback" not in o.out + o.err
    assert not list((tmp_path / "bad").rglob("*.csv*"))
    assert main([*argv, "--out", str(tmp_path / "good")]) == 0
    o = capsys.readouterr()
    assert f"written    {OUT}: 1440/1440 bars" in o.out
    assert main(["data", "download", "--venue", "binance_spot", "--source", "trades", "--symbols", "BTCUSDT",
                 "--from", "2025-03-05", "--out", str(tmp_path / "x")]) == 2
    assert "--source trades: only for --venue bybit" in capsys.readouterr().err


# ------------------------------------------------------------------ bad rows, named


HEAD = "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional"
GOOD = "1741132800.1234,BTCUSDT,Buy,0.001,86000.5,PlusTick,a,1,0.001,86.0005"


@pytest.mark.parametrize(("bad", "message"), [
    ("1741132800.1234,BTCUSDT,Buy,0.001,-86000.5,PlusTick,a,1,0.001,86", "price = '-86000.5': must be a positive"),
    ("1741132800.1234,BTCUSDT,Buy,nan,86000.5,PlusTick,a,1,0.001,86", "size = 'nan': must be a positive"),
    ("1741132800.1234,BTCUSDT,Hold,0.001,86000.5,PlusTick,a,1,0.001,86", "side = 'Hold': expected Buy or Sell"),
    ("1741132800.1234,BTCUSDT,Buy,0.001,86000.5,PlusTick,a,1", "8 columns, the header has 10"),
    ("1e9,BTCUSDT,Buy,0.001,86000.5,PlusTick,a,1,0.001,86", "timestamp = '1e9': not an epoch time"),
    ("-1741132800,BTCUSDT,Buy,0.001,86000.5,PlusTick,a,1,0.001,86", "timestamp = '-1741132800': not an epoch"),
    ("1741132800123.5,BTCUSDT,Buy,0.001,86000.5,PlusTick,a,1,0.001,86", "ms or µs with a fraction"),
    ("174113280,BTCUSDT,Buy,0.001,86000.5,PlusTick,a,1,0.001,86", "not between 2015 and 2100"),
    ("", "blank line"),
])
def test_a_bad_row_is_named_by_line_and_value(bad: str, message: str) -> None:
    data = "\n".join([HEAD, GOOD, GOOD, bad, GOOD]).encode()
    with pytest.raises(DataError) as info:
        bybit_trades.parse_trades(data, "dump")
    assert info.value.path == "dump" and info.value.line == 4 and message in info.value.problem, str(info.value)


def test_a_header_without_the_needed_columns_or_no_rows() -> None:
    with pytest.raises(DataError, match="expected timestamp, price, side and size"):
        bybit_trades.parse_trades(b"time,px,qty\n1,2,3\n", "f")
    with pytest.raises(DataError, match="empty file"):
        bybit_trades.parse_trades(b"\n\n", "f")
    with pytest.raises(DataError, match="not ASCII"):
        bybit_trades.parse_trades(HEAD.encode() + b"\n\xff\n", "f")
    assert len(bybit_trades.parse_trades(HEAD.encode() + b"\n", "f")) == 0


# ------------------------------------------------------------------ --source auto


async def test_auto_takes_rest_klines_and_the_trade_dumps_only_for_days_rest_has_no_bar_for(tmp_path) -> None:
    path = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    lines = path.read_text().splitlines()
    subset = tmp_path / "k.csv"
    subset.write_text("\n".join([lines[0], *(ln for ln in lines[1:] if ln[:10] <= "2025-03-05")]) + "\n")
    rows = shift_rows(rows_from_ohlcv_csv(subset), -3 * 3600 * 1000)
    first, second, rest_day = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 4)
    start_ms = day_ms(date(2025, 3, 7))  # the emulator's 5000-bar past: 03-03 12:40 .. 03-06 23:59
    emu = BybitEmulator(api_key="k", api_secret="s", symbols=["BTCUSDT"], clock=ManualClock(start_ms * 1_000_000),
                        run_market=False, unmetered=True)
    m = BybitPublicMirror(tmp_path / "mirror")
    write_trade_dumps(m.root, "linear", "BTCUSDT", trades_from_klines(rows), [first, second, rest_day])
    await emu.start()
    await m.start()
    try:
        out = tmp_path / "out"
        s = await download(DownloadRequest("bybit", ["BTCUSDT"], "1m", first, date(2025, 3, 6), out, base_url=m.url,
                                           rest_url=emu.url, category="linear", source="auto", now_ms=start_ms,
                                           workers=0))
        [mo] = s.months
        assert s.exit_code == EXIT_OK and mo.rows == 2 * 1440 + 5000, mo
        assert mo.sources == [f"rest:{emu.url}/v5/market/kline", f"bybit:{bybit_trades.dump_rel('linear', 'BTCUSDT', first)}",
                              f"bybit:{bybit_trades.dump_rel('linear', 'BTCUSDT', second)}"]
        assert m.hits[bybit_trades.dump_rel("linear", "BTCUSDT", rest_day)] == 0  # REST had that day
        bars = load_bars(out / OUT)
        dumped = [r for r in rows if int(r[0]) < day_ms(date(2025, 3, 3))]
        assert np.allclose(bars.close[:2880], [float(r[4]) for r in dumped])
        past = emu.exchange._past("BTCUSDT", "1")
        assert np.allclose(bars.close[2880:], past.close[-5000:], rtol=1e-6)
        assert mo.quality is not None and mo.quality.gap_count == 1  # 03-03 00:00..12:39: neither had it
    finally:
        await m.stop()
        await emu.stop()
