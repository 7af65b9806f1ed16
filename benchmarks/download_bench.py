"""Download-and-verify throughput of `nautilus-hmm data download` against a loopback mirror.

Usage:
  python benchmarks/download_bench.py [--copies 8] [--jobs 4] [--reps 3]

The mirror (`python -m nautilus_hmm.research.binance_mirror`, its own process on 127.0.0.1) serves real-format monthly
kline zips + .CHECKSUM built from the real 1-minute months in ../shared/fixtures/marketdata
(BTCUSDT and ETHUSDT 2025-03, µs times as Binance publishes spot from 2025 on); `--copies`
serves each under that many symbol names (BTC0USDT, ...) to have enough bytes to time.
Prints, median of `--reps`:
  * GET only: the zips fetched and thrown away (the loopback HTTP ceiling here);
  * download + verify: streamed to a temp file while hashed, checked against .CHECKSUM,
    renamed (Downloader.verify_dumps): the MB/s the issue asks for;
  * full `data download`: verify + unzip + parse + quality report + CSV per month.
MB = 10^6 bytes of zip. Numbers, not pass/fail; the machine is shared, compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
KLINES = REPO.parent / "shared" / "fixtures" / "marketdata" / "binance_spot_klines_1m"
sys.path.insert(0, str(REPO))

from nautilus_hmm.research.binance_mirror import (  # noqa: E402
    rows_from_ohlcv_csv,
    shift_rows,
    write_kline_dumps,
)
from nautilus_hmm.research.download import (  # noqa: E402
    Downloader,
    DownloadRequest,
    day_ms,
    download,
)

MARCH = date(2025, 3, 1)


def build_mirror(root: Path, copies: int) -> tuple[list[str], list[str], int]:
    """Zips under `root`; returns (symbols, zip paths, total zip bytes)."""
    symbols, rels = [], []
    for base in ("BTCUSDT", "ETHUSDT"):
        # the fixture starts 2025-03-01 03:00 UTC: moved 3 h earlier to fill the calendar month
        rows = shift_rows(rows_from_ohlcv_csv(KLINES / f"{base}_1m_2025-03.csv"), -3 * 3_600_000)
        assert rows[0][0] == day_ms(MARCH)
        for i in range(copies):
            sym = base.replace("USDT", f"{i}USDT")
            rels += write_kline_dumps(root, "binance_spot", sym, "1m", rows, months=[MARCH])
            symbols.append(sym)
    size = sum((root / r).stat().st_size for r in rels)
    return symbols, rels, size


async def get_only(url: str, rels: list[str], jobs: int) -> float:
    sem = asyncio.Semaphore(jobs)
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        async def one(rel: str) -> None:
            async with sem, s.get(f"{url}/{rel}") as r:
                async for _ in r.content.iter_chunked(1 << 16):
                    pass
        await asyncio.gather(*(one(r) for r in rels))
    return time.perf_counter() - t0


async def verify_only(url: str, symbols: list[str], rels: list[str], out: Path, jobs: int) -> float:
    req = DownloadRequest("binance_spot", symbols, "1m", MARCH, date(2025, 3, 31), out, base_url=url,
                          rest_url="", jobs=jobs, now_ms=day_ms(date(2025, 4, 2)))
    d = Downloader(req)
    t0 = time.perf_counter()
    await d.verify_dumps(rels)
    dt = time.perf_counter() - t0
    assert d.summary.files_downloaded == len(rels)
    return dt


async def full(url: str, symbols: list[str], out: Path, jobs: int) -> tuple[float, int]:
    req = DownloadRequest("binance_spot", symbols, "1m", MARCH, date(2025, 3, 31), out, base_url=url,
                          rest_url="", jobs=jobs, now_ms=day_ms(date(2025, 4, 2)))
    t0 = time.perf_counter()
    s = await download(req)
    dt = time.perf_counter() - t0
    assert s.exit_code == 0, [m.error for m in s.months if m.error]
    return dt, sum(m.rows for m in s.months)


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="download_bench."))
    try:
        symbols, rels, size = build_mirror(tmp / "mirror", args.copies)
        # the mirror runs in its own process: it does not share this event loop (or its CPU time)
        proc = subprocess.Popen([sys.executable, "-m", "nautilus_hmm.research.binance_mirror", str(tmp / "mirror")],
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        mb = size / 1e6
        print(f"mirror: {len(rels)} monthly zips ({mb:.1f} MB) of real 1m months, {url}, jobs={args.jobs}")
        g, v, f = [], [], []
        bars = 0
        for rep in range(args.reps):
            g.append(await get_only(url, rels, args.jobs))
            v.append(await verify_only(url, symbols, rels, tmp / f"v{rep}", args.jobs))
            dt, bars = await full(url, symbols, tmp / f"f{rep}", args.jobs)
            f.append(dt)
            shutil.rmtree(tmp / f"v{rep}")
            shutil.rmtree(tmp / f"f{rep}")
        proc.terminate()
        proc.wait(10)
        for name, xs in (("GET only", g), ("download + verify", v), ("full data download", f)):
            m = statistics.median(xs)
            print(f"{name:20s} {m:6.2f} s  {mb / m:7.1f} MB/s" + (f"  {bars / m:9.0f} bars/s" if xs is f else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=8, help="symbol names per real month (default 8)")
    p.add_argument("--jobs", type=int, default=4, help="concurrent downloads (default 4)")
    p.add_argument("--reps", type=int, default=3)
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
