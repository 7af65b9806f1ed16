"""`nautilus-hmm data download ...`: the command line of `research.download`.

Exit status: 0 every month written (or already final), 1 a file failed (checksum mismatch
after the retry, transport, a damaged file: each named), 2 bad arguments, 3 data missing
(not published and `--no-rest`). Progress goes to stderr (a bar on a terminal), the
per-file summary to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from nautilus_hmm.obs.progress import no_progress, progress_factory
from nautilus_hmm.research.bybit_trades import PUBLIC_HOST as BYBIT_PUBLIC_HOST
from nautilus_hmm.research.download import (
    DATA_HOST,
    DEFAULT_REST_URL,
    INTERVAL_MS,
    VENUES,
    DownloadRequest,
    DownloadSummary,
    download,
    parquet_available,
)

EXIT_USAGE = 2


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a day as YYYY-MM-DD") from None


def add_command(subparsers: Any) -> None:
    """Add `data` (with `data download`) to the top-level subparsers of cli.py."""
    data = subparsers.add_parser("data", help="market data history for research (data download ...)",
                                 description="market data history for research")
    data.set_defaults(func=_cmd_data, data_parser=data)
    sub = data.add_subparsers(dest="data_cmd", metavar="{download}")
    d = sub.add_parser("download", help="verified kline history (Binance dumps + REST tail, Bybit REST or trade dumps)",
                       description="Download kline history into one file per symbol and month under --out; "
                                   "Binance dumps are checked against their .CHECKSUM (research/README.md).")
    add_download_arguments(d)
    d.set_defaults(func=run_download)


def _cmd_data(args: argparse.Namespace) -> int:
    args.data_parser.print_help(sys.stderr)
    return EXIT_USAGE


def build_parser(prog: str = "nautilus-hmm") -> argparse.ArgumentParser:
    """A parser with the `data` command alone (what `main` and `python -m` use)."""
    p = argparse.ArgumentParser(prog=prog)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_command(sub)
    return p


def add_download_arguments(d: argparse.ArgumentParser) -> None:
    """The `data download` options (also used by cli.py's parser tree for completion)."""
    d.add_argument("--venue", required=True, choices=VENUES)
    d.add_argument("--symbols", required=True, nargs="+", metavar="SYMBOL",
                   help="one or more symbols (BTCUSDT ETHUSDT, or BTCUSDT,ETHUSDT)")
    d.add_argument("--interval", default="1m", choices=list(INTERVAL_MS), help="bar length (default 1m)")
    d.add_argument("--from", dest="start", required=True, type=_day, metavar="YYYY-MM-DD",
                   help="first day (UTC)")
    d.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD",
                   help="last day, inclusive (UTC; default today: the tail up to the last closed bar comes from REST)")
    d.add_argument("--out", required=True, type=Path, help="output directory (resumable: rerun to continue)")
    d.add_argument("--base-url", default=None,
                   help=f"dumps host or mirror (default: Binance {DATA_HOST}, Bybit trade dumps {BYBIT_PUBLIC_HOST})")
    d.add_argument("--rest-url", default=None,
                   help="REST base URL for the tail and unpublished days / Bybit history (default: the venue's: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_REST_URL.items()) + ")")
    d.add_argument("--no-rest", action="store_true",
                   help="never call REST: days without a dump are reported missing (exit 3)")
    d.add_argument("--category", default="spot", choices=["spot", "linear"], help="Bybit category (default spot)")
    d.add_argument("--source", default="rest", choices=["rest", "trades", "auto"],
                   help="Bybit: rest = kline history over REST (default); trades = the daily public trade dumps "
                        "aggregated into bars (gzip-checked; days without a dump from REST unless --no-rest); "
                        "auto = REST, and the trade dumps for days REST has no bar for")
    d.add_argument("--format", dest="fmt", default="csv", choices=["csv", "parquet"],
                   help="output format (parquet needs pyarrow)")
    d.add_argument("--jobs", type=int, default=4, help="concurrent downloads (default 4)")
    d.add_argument("--workers", type=int, default=None,
                   help="processes that parse and write the month files (default: min(--jobs, CPUs); "
                        "0: a thread of this process)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def print_summary(summary: DownloadSummary, out: Path, stream: IO[str] | None = None) -> None:
    """One line per month file, the failures with their reasons, and the totals (stdout by default)."""
    stream = sys.stdout if stream is None else stream
    for m in summary.months:
        name = m.path or f"{m.symbol} {m.month:%Y-%m}"
        if m.status in ("written", "incomplete") and m.quality is not None:
            line = f"{m.status:10s} {name}: {m.quality.summary_line()}"
        elif m.status == "skipped":
            line = f"{'skipped':10s} {name}: {m.rows} bars, already verified"
        else:
            line = f"{m.status:10s} {name}"
        if m.error:
            line += f"\n{'':10s}   {m.error}"
        print(line, file=stream)
    for w in summary.warnings:
        print(f"warning: {w}", file=stream)
    print(f"{summary.files_downloaded} dump(s) downloaded and verified ({summary.bytes_verified / 1e6:.1f} MB), "
          f"{summary.files_cached} already verified, "
          f"{summary.rest_requests} REST request(s), {summary.seconds:.1f} s; quality reports beside each file "
          f"in {out}", file=stream)


def main(argv: list[str] | None = None) -> int:
    """`data ...` arguments (without the leading `data`); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:
        return int(exc.code or 0)
    return int(args.func(args))


def run_download(args: argparse.Namespace) -> int:
    """Run `data download` from parsed arguments."""
    symbols = [s for item in args.symbols for s in item.split(",") if s.strip()]
    end = args.end or datetime.now(UTC).date()
    try:
        if args.fmt == "parquet" and not parquet_available():
            raise ValueError("--format parquet needs pyarrow (pip install pyarrow); --format csv works without it")
        req = DownloadRequest(venue=args.venue, symbols=symbols, interval=args.interval, start=args.start, end=end,
                              out=args.out, base_url=args.base_url or "", rest_url="" if args.no_rest else args.rest_url,
                              fmt=args.fmt, category=args.category, source=args.source, jobs=args.jobs, workers=args.workers)
    except ValueError as exc:
        print(f"nautilus-hmm data download: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress = no_progress if args.quiet else progress_factory()
    summary = asyncio.run(download(req, progress=progress))
    print_summary(summary, args.out)
    code = summary.exit_code
    if code:
        failed = [m for m in summary.months if m.status in ("failed", "incomplete")]
        print(f"nautilus-hmm data download: {len(failed)} month file(s) not complete; see above", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
