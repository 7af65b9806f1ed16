"""RSS of a process journaling orders the way the soak's daemon does, to see what SQLite's
page cache adds as the journal grows (docs/PERFORMANCE.md, "Bounded memory").

Per order: an intent (awaited), two order updates, a fill (awaited), on a real `Journal` in a
temporary directory; every 1,000 orders a flush, a fills read on the read connection, a
`gc.collect()`, then RSS and the database file's size.

    .venv/bin/python benchmarks/journal_rss.py [--orders 6000] [--cache-kib N]

`--cache-kib N`: `PRAGMA cache_size = -N` on every journal connection (default: SQLite's,
2 MiB each). Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """This process's resident set size in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(orders: int, cache_kib: int) -> None:
    """Journal `orders` orders; print RSS and the database size every 1,000."""
    from nautilus_hmm.domain.enums import Liquidity, OrderStatus, OrderType, Side
    from nautilus_hmm.domain.instruments import InstrumentId
    from nautilus_hmm.domain.orders import OrderRequest, VenueFill
    from nautilus_hmm.journal import files
    from nautilus_hmm.journal.store import Journal

    if cache_kib:
        connect = files.connect

        def small_cache(path: str, mode: str) -> object:
            conn = connect(path, mode)
            conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
            return conn

        files.connect = small_cache  # type: ignore[assignment]
    work = Path(tempfile.mkdtemp(prefix="journal-rss-"))
    journal = Journal.open(work / "journal.sqlite3")
    iid = InstrumentId("binance_spot", "BTCUSDT")
    t0 = 1_700_000_000_000_000_000
    qty, px = Decimal("0.0002"), Decimal("60000.12")
    print(f"cache_kib={cache_kib or 'default'}\norders rss_mb db_mb", flush=True)
    try:
        for i in range(orders + 1):
            cid = journal.next_client_order_id("nh")
            side = Side.BUY if i % 2 == 0 else Side.SELL
            await journal.record_intent(OrderRequest(cid, iid, side, OrderType.MARKET, qty), "bench", t0 + i)
            journal.record_order_update(cid, OrderStatus.SUBMITTED, Decimal(0), None, None, None, t0 + i)
            journal.record_order_update(cid, OrderStatus.FILLED, qty, px, str(1000 + i), None, t0 + i)
            await journal.record_fill("binance_spot", VenueFill(iid, cid, str(1000 + i), str(50_000 + i), side, qty,
                                                                px, Decimal("0.000012"), "USDT", Liquidity.TAKER,
                                                                t0 + i))
            if i % 1000 == 0:
                await journal.flush()
                await journal.read(journal.load_fills, t0 + i - 10)
                gc.collect()
                db = (work / "journal.sqlite3").stat().st_size  # the WAL is reused, not memory
                print(i, round(rss_mb(), 1), round(db / 1e6, 2), flush=True)
    finally:
        journal.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=6000)
    ap.add_argument("--cache-kib", type=int, default=0)
    args = ap.parse_args(argv)
    asyncio.run(run(args.orders, args.cache_kib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
