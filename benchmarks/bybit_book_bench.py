"""Bybit order-book throughput: the recorded ob500 dump through the frame parser and the local book.

Data: ../shared/fixtures/marketdata/bybit/xrpusdt-ob500_2024-12-01.data.zip, real Bybit
public-data `orderbook.500.XRPUSDT` frames in the v5 WebSocket format (1 snapshot of
500+500 levels, then 49 deltas of 4 to 350 levels each, 100 ms apart).

One pass = the snapshot then the 49 deltas, raw bytes in, exactly as the stream hands
them over: `BybitParser.parse` (orjson decode with the orderbook fast path that lets
orjson read the level numbers, levels to floats, checks) then
`BybitBook.apply` (u/seq continuity, level updates, crossed check). Each pass starts from
the snapshot, so the book is reset and every delta is applied to the state it was
recorded against. Reported (best of `--repeats` runs of `--passes` passes each, so a
noisy neighbour does not make the figure):

* deltas/s: the 49 deltas only (the snapshot of each pass is applied outside the timed
  window): what a live stream costs after subscribing;
* frames/s: whole passes, snapshot included;
* level updates/s: price levels changed per second in the delta figure;
* the split: parse alone and book alone (pre-parsed frames), deltas only.

Times are the process's CPU time (`time.process_time_ns`): on a shared machine the wall
clock also counts the time other processes held the CPU, which is not this code's cost.
`--wall` measures with `perf_counter_ns` instead.

    .venv/bin/python benchmarks/bybit_book_bench.py [--passes 400] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nautilus_hmm.venues.bybit.book import Applied, BybitBook
from nautilus_hmm.venues.bybit.parse import BookUpdate, BybitParser

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("NAUTILUS_HMM_FIXTURES", REPO.parent / "shared" / "fixtures"))
DUMP = FIXTURES / "marketdata" / "bybit" / "xrpusdt-ob500_2024-12-01.data.zip"


def load_frames(path: Path = DUMP) -> list[bytes]:
    """The dump's frames, one raw JSON frame each."""
    with zipfile.ZipFile(path) as z:
        (name,) = z.namelist()
        return [ln for ln in z.read(name).splitlines() if ln.strip()]


def run(frames: list[bytes], passes: int, wall: bool = False) -> dict[str, float]:
    """Timings (ns) of `passes` passes: parse+book deltas, whole frames, parse-only and book-only deltas."""
    parser = BybitParser("linear")
    snap_raw, deltas_raw = frames[0], frames[1:]
    iid = parser.parse(snap_raw, 0).instrument_id
    book = BybitBook(iid, depth=500)
    clock = time.perf_counter_ns if wall else time.process_time_ns
    parse = parser.parse
    apply = book.apply

    delta_ns = 0
    for _ in range(passes):
        apply(parse(snap_raw, 0))
        t0 = clock()
        for raw in deltas_raw:
            apply(parse(raw, 0))
        delta_ns += clock() - t0
        if not book.valid:
            raise SystemExit(f"book invalid after a pass: {book.reason}")

    t0 = clock()
    for _ in range(passes):
        for raw in frames:
            apply(parse(raw, 0))
    whole_ns = clock() - t0

    t0 = clock()
    for _ in range(passes):
        for raw in deltas_raw:
            parse(raw, 0)
    parse_ns = clock() - t0

    parsed: list[BookUpdate] = [parse(raw, 0) for raw in frames]
    snap, deltas = parsed[0], parsed[1:]
    book_ns = 0
    for _ in range(passes):
        apply(snap)
        t0 = clock()
        for upd in deltas:
            apply(upd)
        book_ns += clock() - t0
    if apply(snap) is not Applied.SNAPSHOT:
        raise SystemExit("the snapshot did not reset the book")
    return {"delta": delta_ns, "whole": whole_ns, "parse": parse_ns, "book": book_ns}


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=400, help="passes over the dump per run")
    ap.add_argument("--repeats", type=int, default=5, help="runs; the best one is reported")
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time")
    args = ap.parse_args(argv)
    if not DUMP.exists():
        print(f"dump not found: {DUMP}", file=sys.stderr)
        return 2
    frames = load_frames()
    n_deltas = len(frames) - 1
    levels = sum(len(u.bids) + len(u.asks) for u in (BybitParser("linear").parse(f, 0) for f in frames[1:]))
    run(frames, max(1, args.passes // 10), args.wall)  # warm-up
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for k, v in run(frames, args.passes, args.wall).items():
            best[k] = min(best.get(k, float("inf")), v)
    p = args.passes
    deltas_s = n_deltas * p / (best["delta"] / 1e9)
    print(f"dump: {DUMP.name}: {len(frames)} frames (1 snapshot 500+500 levels, {n_deltas} deltas, "
          f"{levels} level updates), {p} passes x best of {args.repeats}, {'wall' if args.wall else 'CPU'} time")
    print(f"parser+book deltas: {deltas_s:,.0f} updates/s ({best['delta'] / (n_deltas * p) / 1e3:.1f} us each), "
          f"{levels * p / (best['delta'] / 1e9):,.0f} level updates/s")
    print(f"parser+book whole passes (snapshot included): {len(frames) * p / (best['whole'] / 1e9):,.0f} frames/s")
    print(f"split, deltas only: parse {n_deltas * p / (best['parse'] / 1e9):,.0f} /s, "
          f"book {n_deltas * p / (best['book'] / 1e9):,.0f} /s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
