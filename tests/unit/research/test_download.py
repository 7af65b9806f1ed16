"""`research.download` against a loopback data.binance.vision mirror serving real-format zips.

The zips are built here from the real Binance BTCUSDT 1m bars of March 2025 in
shared/fixtures/marketdata (ccxt fetch_ohlcv). That file starts at 2025-03-01 03:00 UTC, so
its rows are moved 3 h earlier to fill the calendar month (44,640 bars, the values are the
venue's). Columns the fixture lacks (quote volume, trade count, taker volumes) are "0".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from nautilus_hmm.marketdata.replay import load_bars
from nautilus_hmm.research.binance_mirror import (
    BinanceMirror,
    kline_csv,
    rows_from_ohlcv_csv,
    shift_rows,
    write_dump,
    write_kline_dumps,
)
from nautilus_hmm.research.download import (
    DUMPS_DIR,
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    DownloadRequest,
    daily_rel,
    day_ms,
    download,
    monthly_rel,
    output_rel,
)
from tests.conftest import fixture_path
from tests.unit.research.threaded import served_in_thread

MARCH = date(2025, 3, 1)
MONTHLY = monthly_rel("binance_spot", "BTCUSDT", "1m", MARCH)
DAY = date(2025, 3, 5)  # the damage tests use one day's zip: 1440 bars are enough and fast
DAILY = daily_rel("binance_spot", "BTCUSDT", "1m", DAY)
OUT_MARCH = output_rel("binance_spot", "BTCUSDT", "1m", MARCH)


@pytest.fixture(scope="module")
def march_rows() -> list[list]:
    path = fixture_path("marketdata", "binance_spot_klines_1m", "BTCUSDT_1m_2025-03.csv")
    rows = shift_rows(rows_from_ohlcv_csv(path), -3 * 3600 * 1000)
    assert rows[0][0] == day_ms(MARCH) and rows[-1][0] == day_ms(date(2025, 4, 1)) - 60_000
    return rows


@pytest.fixture
async def mirror(tmp_path: Path, march_rows: list[list]) -> AsyncIterator[BinanceMirror]:
    m = BinanceMirror(tmp_path / "mirror", {"BTCUSDT": march_rows})
    await m.start()
    yield m
    await m.stop()


def request(mirror: BinanceMirror, out: Path, start: date, end: date, *, now: date = date(2025, 4, 2),
            rest: bool = True, workers: int = 0, **kw) -> DownloadRequest:
    # workers=0: months are built in a thread (a process pool costs a spawn per test)
    return DownloadRequest("binance_spot", ["BTCUSDT"], "1m", start, end, out, base_url=mirror.url,
                           rest_url=mirror.url if rest else "", now_ms=day_ms(now), workers=workers, **kw)


def files_named(root: Path, fragment: str) -> list[Path]:
    return [p for p in root.rglob("*") if fragment in p.name]


# ------------------------------------------------------------------ the month


async def test_a_31_day_month_from_its_monthly_zip_gives_exactly_44640_bars(mirror, march_rows, tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, months=[MARCH])  # µs (2025 spot)
    out = tmp_path / "out"
    s = await download(request(mirror, out, MARCH, date(2025, 3, 31), workers=1))  # built in a worker process
    assert s.exit_code == EXIT_OK
    [m] = s.months
    assert (m.status, m.rows, m.sources) == ("written", 44_640, [MONTHLY])
    bars = load_bars(out / OUT_MARCH)
    assert len(bars) == 44_640 and bars.interval_s == 60
    assert int(bars.ts_open_ns[0]) == day_ms(MARCH) * 1_000_000  # µs in the zip, ms out
    assert np.array_equal(bars.close, np.array([float(r[4]) for r in march_rows]))
    q = json.loads((out / OUT_MARCH).with_name("BTCUSDT-1m-2025-03.quality.json").read_text())
    assert (q["expected_bars"], q["missing_bars"], q["duplicate_count"]) == (44_640, 0, 0)
    man = json.loads((out / "manifest.json").read_text())
    assert MONTHLY in man["dumps"] and OUT_MARCH in man["outputs"]
    assert (out / DUMPS_DIR / MONTHLY).exists()
    assert mirror.hits["/api/v3/klines"] == 0


async def test_microsecond_and_millisecond_dumps_give_the_same_file(mirror, march_rows, tmp_path) -> None:
    outs = []
    for unit in ("us", "ms"):
        write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[date(2025, 3, 5)],
                          time_unit=unit)
        out = tmp_path / unit
        s = await download(request(mirror, out, date(2025, 3, 5), date(2025, 3, 5)))
        assert s.exit_code == EXIT_OK and s.months[0].rows == 1440
        outs.append((out / OUT_MARCH).read_bytes())
    assert outs[0] == outs[1]
    assert outs[0].splitlines()[1].startswith(str(day_ms(date(2025, 3, 5))).encode() + b",")


async def test_ragged_edges_come_from_daily_zips(mirror, march_rows, tmp_path) -> None:
    days = [date(2025, 3, d) for d in (10, 11, 12)]
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, months=[MARCH], days=days)
    s = await download(request(mirror, tmp_path / "out", days[0], days[-1]))
    assert s.exit_code == EXIT_OK and s.months[0].rows == 3 * 1440
    assert mirror.hits[MONTHLY] == 0 and s.files_downloaded == 3


# ------------------------------------------------------------------ missing data, the REST tail


async def test_a_missing_month_is_reported_by_its_dates_and_the_others_are_written(mirror, march_rows,
                                                                                  tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, months=[MARCH])
    out = tmp_path / "out"
    s = await download(request(mirror, out, date(2025, 2, 1), date(2025, 3, 31), rest=False))
    assert s.exit_code == EXIT_INCOMPLETE
    feb, mar = s.months
    assert feb.status == "incomplete" and "2025-02-01 00:00..2025-03-01 00:00" in feb.error
    assert not files_named(out, "2025-02")
    feb_monthly = monthly_rel("binance_spot", "BTCUSDT", "1m", date(2025, 2, 1))
    assert mirror.hits[feb_monthly] == 1  # the monthly zip first, then each day's
    assert all(mirror.hits[f"data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-02-{d:02d}.zip"] == 1
               for d in range(1, 29))
    assert (mar.status, mar.rows) == ("written", 44_640)


async def test_the_tail_after_the_last_daily_dump_comes_from_rest_klines(mirror, march_rows, tmp_path) -> None:
    # now = 03-05 12:00:30: no monthly zip (March is not over); dailies up to 03-03 (a day late,
    # and 03-04 is not up yet either); 03-04 and 03-05 until the last closed bar come from REST
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows,
                      days=[MARCH + timedelta(days=i) for i in range(3)])
    out = tmp_path / "out"
    req = request(mirror, out, MARCH, date(2025, 3, 31))
    req.now_ms = day_ms(DAY) + 12 * 3_600_000 + 30_000  # mid-bar: that bar is not closed
    s = await download(req)
    assert s.exit_code == EXIT_OK
    [m] = s.months
    assert m.rows == 4 * 1440 + 720 and m.quality is not None and m.quality.missing_bars == 0
    assert m.quality.expected_bars == m.rows
    assert m.sources[-1] == f"rest:{mirror.url}" and mirror.hits["/api/v3/klines"] == 3  # 1000 + 1000 + 880
    bars = load_bars(out / OUT_MARCH)
    assert np.array_equal(bars.close, np.array([float(r[4]) for r in march_rows[: m.rows]]))
    # REST rows are not final: the month is rebuilt next time (a dump may have appeared)
    assert OUT_MARCH not in json.loads((out / "manifest.json").read_text())["outputs"]


# ------------------------------------------------------------------ checksums and damage


async def test_a_corrupt_zip_is_retried_once_then_fails_naming_the_file_and_never_lands(mirror, march_rows,
                                                                                        tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    mirror.corrupt[DAILY] = 2
    out = tmp_path / "out"
    s = await download(request(mirror, out, DAY, DAY))
    assert s.exit_code == EXIT_FAILED
    [m] = s.months
    assert m.status == "failed" and f"{mirror.url}/{DAILY}" in m.error and "checksum mismatch" in m.error
    assert "try 1" in m.error and "try 2" in m.error
    assert mirror.hits[DAILY] == 2
    assert not files_named(out, "2025-03")  # no zip, no csv, no .part left behind
    assert mirror.hits["/api/v3/klines"] == 0  # a corrupt dump is never papered over with REST


async def test_one_corrupt_download_is_retried_and_the_second_copy_is_used(mirror, march_rows, tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    mirror.corrupt[DAILY] = 1
    s = await download(request(mirror, tmp_path / "out", DAY, DAY))
    assert s.exit_code == EXIT_OK and s.months[0].rows == 1440 and mirror.hits[DAILY] == 2


async def test_a_connection_dropped_twice_mid_file_fails_naming_it(mirror, march_rows, tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    mirror.drop[DAILY] = 2
    out = tmp_path / "out"
    s = await download(request(mirror, out, DAY, DAY))
    [m] = s.months
    assert m.status == "failed" and DAILY in m.error and "failed twice" in m.error
    assert not files_named(out, "2025-03")


async def test_a_zip_without_a_usable_checksum_is_not_used(mirror, march_rows, tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    (mirror.root / (DAILY + ".CHECKSUM")).write_text("not a digest")
    s = await download(request(mirror, tmp_path / "a", DAY, DAY))
    assert s.months[0].status == "failed" and "unreadable .CHECKSUM" in s.months[0].error
    (mirror.root / (DAILY + ".CHECKSUM")).unlink()
    s = await download(request(mirror, tmp_path / "b", DAY, DAY))
    assert s.months[0].status == "failed" and "no .CHECKSUM" in s.months[0].error
    assert not files_named(tmp_path / "a", "2025-03") and not files_named(tmp_path / "b", "2025-03")


async def test_a_verified_zip_with_a_damaged_row_names_the_member_and_line(mirror, march_rows, tmp_path) -> None:
    day = date(2025, 3, 7)
    rel = f"data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-{day}.zip"
    lines = kline_csv([r for r in march_rows if day_ms(day) <= r[0] < day_ms(day) + 86_400_000], "us").split(b"\r\n")
    parts = lines[99].split(b",")
    parts[1] = b"abc"  # a non-number in `open` on line 100
    lines[99] = b",".join(parts)
    write_dump(mirror.root, rel, b"\r\n".join(lines))
    s = await download(request(mirror, tmp_path / "out", day, day))
    [m] = s.months
    assert m.status == "failed" and f"BTCUSDT-1m-{day}.zip!BTCUSDT-1m-{day}.csv:100" in m.error
    assert not files_named(tmp_path / "out", "BTCUSDT-1m-2025-03.csv")


# ------------------------------------------------------------------ resuming


async def test_a_second_run_skips_verified_work_and_repairs_what_was_damaged(mirror, march_rows, tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    out = tmp_path / "out"
    req = request(mirror, out, DAY, DAY)
    first = (await download(req)).months[0]
    s = await download(request(mirror, out, DAY, DAY))
    assert s.months[0].status == "skipped" and s.months[0].rows == 1440
    assert mirror.hits[DAILY] == 1  # nothing fetched again

    csv = out / OUT_MARCH
    data = bytearray(csv.read_bytes())
    data[-5] ^= 0x01
    csv.write_bytes(bytes(data))
    s = await download(request(mirror, out, DAY, DAY))
    assert s.months[0].status == "written" and s.files_cached == 1 and mirror.hits[DAILY] == 1
    assert csv.read_bytes() != bytes(data)

    zpath = out / DUMPS_DIR / DAILY
    zpath.write_bytes(zpath.read_bytes()[:-10])  # a truncated cached zip is fetched again
    csv.unlink()
    s = await download(request(mirror, out, DAY, DAY))
    assert s.months[0].status == "written" and mirror.hits[DAILY] == 2 and s.months[0].rows == first.rows


async def test_an_unreadable_manifest_costs_a_reverification_not_the_run(mirror, march_rows, tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    out = tmp_path / "out"
    await download(request(mirror, out, DAY, DAY))
    (out / "manifest.json").write_text('{"version": 1, "dumps": ')
    s = await download(request(mirror, out, DAY, DAY))
    assert s.exit_code == EXIT_OK and any("manifest.json: unreadable" in w for w in s.warnings)
    assert mirror.hits[DAILY] == 2


# ------------------------------------------------------------------ bad requests


@pytest.mark.parametrize(("kw", "message"), [
    ({"venue": "kraken"}, "--venue 'kraken'"),
    ({"interval": "7m"}, "--interval '7m'"),
    ({"symbols": ["BTC/USDT"]}, "--symbols 'BTC/USDT'"),
    ({"start": date(2025, 3, 2), "end": date(2025, 3, 1)}, "--to 2025-03-01 is before --from 2025-03-02"),
    ({"fmt": "xlsx"}, "--format 'xlsx'"),
])
def test_a_bad_request_names_the_option_and_value(kw, message, tmp_path) -> None:
    args = {"venue": "binance_spot", "symbols": ["BTCUSDT"], "interval": "1m", "start": MARCH,
            "end": date(2025, 3, 31), "out": tmp_path} | kw
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        DownloadRequest(**args)


# ------------------------------------------------------------------ the command


@pytest.fixture
def threaded_mirror(tmp_path, march_rows) -> Iterator[BinanceMirror]:
    """A mirror on its own loop in a thread (the command runs its own asyncio.run)."""
    m = BinanceMirror(tmp_path / "mirror", {"BTCUSDT": march_rows})
    with served_in_thread(m):
        yield m


def test_the_command_writes_the_file_prints_its_quality_and_exits_0(threaded_mirror, march_rows, tmp_path,
                                                                     capsys) -> None:
    from nautilus_hmm.cli import main

    write_kline_dumps(threaded_mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    out = tmp_path / "out"
    argv = ["data", "download", "--venue", "binance_spot", "--symbols", "BTCUSDT", "--interval", "1m",
            "--from", "2025-03-05", "--to", "2025-03-05", "--out", str(out), "--base-url", threaded_mirror.url,
            "--rest-url", threaded_mirror.url]
    assert main(argv) == 0
    o = capsys.readouterr()
    assert f"written    {OUT_MARCH}: 1440/1440 bars" in o.out
    assert "1 dump(s) downloaded and verified" in o.out
    assert "data download binance_spot 1m: 1/1 months (100%) done" in o.err  # progress lines off a terminal
    assert main([*argv, "-q"]) == 0
    o = capsys.readouterr()
    assert f"skipped    {OUT_MARCH}: 1440 bars, already verified" in o.out and o.err == ""


def test_the_command_exits_1_naming_a_corrupt_file(threaded_mirror, march_rows, tmp_path, capsys) -> None:
    from nautilus_hmm.cli import main

    write_kline_dumps(threaded_mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    threaded_mirror.corrupt[DAILY] = 2
    code = main(["data", "download", "--venue", "binance_spot", "--symbols", "BTCUSDT", "--from", "2025-03-05",
                 "--to", "2025-03-05", "--out", str(tmp_path / "out"), "--base-url", threaded_mirror.url,
                 "--no-rest", "-q"])
    o = capsys.readouterr()
    assert code == 1 and "checksum mismatch" in o.out and DAILY in o.out and "Traceback" not in o.out + o.err


def test_the_command_refuses_a_bad_date_with_status_2(tmp_path, capsys) -> None:
    from nautilus_hmm.cli import main

    with pytest.raises(SystemExit) as exc:  # argparse's usage error, as every command
        main(["data", "download", "--venue", "binance_spot", "--symbols", "BTCUSDT", "--from", "2025-13-01",
              "--out", str(tmp_path)])
    assert exc.value.code == 2 and "'2025-13-01': expected a day as YYYY-MM-DD" in capsys.readouterr().err
    assert main(["data"]) == 2 and "download" in capsys.readouterr().err


# ------------------------------------------------------------------ more damage, other layouts


async def test_http_500_twice_fails_the_file_and_once_is_retried(mirror, march_rows, tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    mirror.fail[DAILY] = 1
    s = await download(request(mirror, tmp_path / "a", DAY, DAY))
    assert s.exit_code == EXIT_OK and mirror.hits[DAILY] == 2
    mirror.fail[DAILY] = 2
    s = await download(request(mirror, tmp_path / "b", DAY, DAY))
    [m] = s.months
    assert m.status == "failed" and "HTTP 500" in m.error and DAILY in m.error
    assert not files_named(tmp_path / "b", "2025-03")


async def test_a_rest_failure_is_retried_once_then_named(mirror, march_rows, tmp_path) -> None:
    # March 1-2 from dailies, the tail (March 3, today) from REST, which answers 500 twice
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows,
                      days=[MARCH, MARCH + timedelta(days=1)])
    mirror.fail["/api/v3/klines"] = 2
    req = request(mirror, tmp_path / "out", MARCH, date(2025, 3, 3), now=date(2025, 3, 3))
    req.now_ms += 6 * 3_600_000
    s = await download(req)
    [mar] = s.months
    assert s.exit_code == EXIT_FAILED and mar.status == "failed"
    assert "GET klines" in mar.error and "failed twice" in mar.error and "HTTP 500" in mar.error, mar.error
    assert not files_named(tmp_path / "out", "BTCUSDT-1m-2025-03.csv")
    mirror.fail["/api/v3/klines"] = 1  # once: the retry gets it
    s = await download(request(mirror, tmp_path / "out", MARCH, date(2025, 3, 3), now=date(2025, 3, 3)))
    assert s.exit_code == EXIT_OK and s.months[0].rows == 2 * 1440 and s.files_cached == 2


async def test_usdm_dumps_with_a_header_come_from_the_futures_path(mirror, march_rows, tmp_path) -> None:
    rel = daily_rel("binance_usdm", "BTCUSDT", "1m", DAY)
    assert rel.startswith("data/futures/um/daily/klines/BTCUSDT/1m/")
    body = kline_csv([r for r in march_rows if day_ms(DAY) <= r[0] < day_ms(DAY) + 86_400_000], "ms")
    header = b"open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume," \
             b"taker_buy_quote_volume,ignore\n"
    write_dump(mirror.root, rel, header + body)
    req = DownloadRequest("binance_usdm", ["BTCUSDT"], "1m", DAY, DAY, tmp_path / "out", base_url=mirror.url,
                          rest_url="", now_ms=day_ms(date(2025, 4, 2)), workers=0)
    s = await download(req)
    assert s.exit_code == EXIT_OK and s.months[0].rows == 1440
    assert s.months[0].path == "binance_usdm/BTCUSDT/1m/BTCUSDT-1m-2025-03.csv"
    assert len(load_bars(tmp_path / "out" / s.months[0].path)) == 1440


async def test_several_symbols_download_side_by_side(mirror, march_rows, tmp_path) -> None:
    for sym in ("BTCUSDT", "ETHUSDT"):
        write_kline_dumps(mirror.root, "binance_spot", sym, "1m", march_rows, days=[DAY])
    req = DownloadRequest("binance_spot", ["btcusdt", "ETHUSDT"], "1m", DAY, DAY, tmp_path / "out",
                          base_url=mirror.url, rest_url="", now_ms=day_ms(date(2025, 4, 2)), workers=0, jobs=2)
    s = await download(req)
    assert [(m.symbol, m.rows) for m in s.months] == [("BTCUSDT", 1440), ("ETHUSDT", 1440)]
    assert s.files_downloaded == 2 and s.bytes_verified > 0


async def test_an_out_path_that_is_a_file_fails_each_month_with_the_reason(mirror, march_rows, tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a directory")
    s = await download(request(mirror, blocker, DAY, DAY))
    [m] = s.months
    assert s.exit_code == EXIT_FAILED and m.status == "failed" and str(blocker) in m.error
    assert blocker.read_text() == "a file, not a directory"


def test_parquet_without_pyarrow_is_refused_before_anything_starts(tmp_path, capsys) -> None:
    from nautilus_hmm.cli import main
    from nautilus_hmm.research.download import parquet_available

    if parquet_available():
        pytest.skip("pyarrow is installed here: parquet output works")
    code = main(["data", "download", "--venue", "binance_spot", "--symbols", "BTCUSDT", "--from", "2025-03-05",
                 "--to", "2025-03-05", "--out", str(tmp_path / "out"), "--format", "parquet"])
    assert code == 2 and "--format parquet needs pyarrow" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


async def test_a_run_interrupted_mid_file_leaves_nothing_half_written_and_a_rerun_finishes(mirror, march_rows,
                                                                                          tmp_path) -> None:
    write_kline_dumps(mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    mirror.stall[DAILY] = 1
    out = tmp_path / "out"
    task = asyncio.ensure_future(download(request(mirror, out, DAY, DAY)))
    await asyncio.wait_for(mirror.stalled.wait(), 10)  # half of the zip is in the temp file now
    assert [p.name for p in out.rglob("*.part")]  # it is being written beside its destination
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    mirror.release.set()
    assert not files_named(out, "2025-03")  # no zip, no part file, no month file
    s = await download(request(mirror, out, DAY, DAY))
    assert s.exit_code == EXIT_OK and s.months[0].rows == 1440


async def test_a_dump_with_a_hole_and_a_duplicate_is_written_with_both_in_its_quality_report(mirror, march_rows,
                                                                                          tmp_path) -> None:
    day_rows = [r for r in march_rows if day_ms(DAY) <= r[0] < day_ms(DAY) + 86_400_000]
    dup = list(day_rows[100])
    dup[4] = str(float(dup[4]) + 1.0)  # a second, different copy of bar 100 (close moved by 1 USDT)
    damaged = [*day_rows[:100], day_rows[100], dup, *day_rows[101:600], *day_rows[660:]]  # bars 600..659 gone
    write_dump(mirror.root, DAILY, kline_csv(damaged, "us"))
    out = tmp_path / "out"
    s = await download(request(mirror, out, DAY, DAY))
    [m] = s.months
    assert s.exit_code == EXIT_OK and m.status == "written" and m.rows == 1440 - 60
    q = json.loads((out / OUT_MARCH).with_name("BTCUSDT-1m-2025-03.quality.json").read_text())
    assert (q["rows_in"], q["duplicate_count"], q["conflicting_duplicate_count"]) == (1381, 1, 1)
    assert q["gaps"] == [{"first_missing_ms": day_rows[600][0], "last_missing_ms": day_rows[659][0], "bars": 60,
                          "first_missing": "2025-03-05T10:00:00Z", "last_missing": "2025-03-05T10:59:00Z"}]
    bars = load_bars(out / OUT_MARCH)
    assert bars.close[100] == float(day_rows[100][4])  # the first copy is kept
    assert "1380/1440 bars, 60 missing in 1 gap(s), 1 duplicate(s) (1 conflicting)" in m.quality.summary_line()


def test_on_a_terminal_the_command_draws_a_progress_bar(threaded_mirror, march_rows, tmp_path) -> None:
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    write_kline_dumps(threaded_mirror.root, "binance_spot", "BTCUSDT", "1m", march_rows, days=[DAY])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "nautilus_hmm", "data", "download", "--venue", "binance_spot", "--symbols",
             "BTCUSDT", "--from", "2025-03-05", "--to", "2025-03-05", "--out", str(tmp_path / "out"),
             "--base-url", threaded_mirror.url, "--no-rest", "--workers", "0"],
            stdout=subprocess.PIPE, stderr=slave, timeout=120, text=True)
        os.close(slave)
        slave = -1
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed and drained
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    assert proc.returncode == 0, proc.stdout
    text = err.decode(errors="replace")
    assert "data download binance_spot 1m" in text and "100%" in text and "1/1" in text and "\r" in text  # tqdm
    assert "months (100%) done in" not in text  # not the plain line of a pipe
    assert "written    binance_spot/BTCUSDT/1m/BTCUSDT-1m-2025-03.csv: 1440/1440 bars" in proc.stdout
