"""Bybit trade dumps → 1m bars: gzip check, parse and aggregation throughput (trades/s).

A synthetic day of N trades written in Bybit's derivatives layout (`research.bybit_trades
.dump_csv`, newest first, seconds with a fraction), gzip-compressed, then timed through what
`data download --venue bybit --source trades` runs per file in its worker: `check_dump`
(whole-member CRC check + header) and `read_trade_dump` + `trades_to_klines`.

    python benchmarks/bybit_trades_bench.py [--trades 1000000] [--reps 3]
"""

from __future__ import annotations

import argparse
import gzip
import random
import tempfile
import time
from pathlib import Path

from nautilus_hmm.research import bybit_trades as bt


def main() -> None:
    """Print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    n = args.trades
    rnd = random.Random(1)
    t0 = 1_741_132_800_000
    px = 86_000.0
    rows = []
    for k in range(n):
        px += rnd.choice((-0.1, 0.0, 0.1))
        rows.append((t0 + k * 86_400_000 // n, rnd.choice(("Buy", "Sell")), f"{rnd.randint(1, 5000) / 1000:.3f}",
                     f"{px:.1f}"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "BTCUSDT2025-03-05.csv.gz"
        path.write_bytes(gzip.compress(bt.dump_csv(rows, "linear", "BTCUSDT"), compresslevel=6))
        print(f"{n:,} trades, {path.stat().st_size / 1e6:.1f} MB gzip")
        for _ in range(args.reps):
            a = time.perf_counter()
            assert bt.check_dump(str(path), "bench") == ""
            b = time.perf_counter()
            trades = bt.read_trade_dump(path, "bench")
            c = time.perf_counter()
            _, _, lines = bt.trades_to_klines(trades, 60_000)
            d = time.perf_counter()
            print(f"check {b - a:.2f} s; parse {c - b:.2f} s ({n / (c - b):,.0f} trades/s); aggregate {d - c:.2f} s "
                  f"-> {len(lines)} bars; check+parse+aggregate {n / (d - a):,.0f} trades/s")


if __name__ == "__main__":
    main()
