"""A local public.bybit.com on loopback: real-format daily trade dumps (gzip CSV) for tests,
benchmarks and users who serve a directory of dumps (`data download --venue bybit --source
trades --base-url URL`).

`write_trade_dumps` turns kline rows into trades whose aggregation gives those klines back
(per bar: the open, the high, the low and the close traded at +0.1 s, +15 s, +30 s, +59.9 s;
the volume split over them, the high and close bought by the taker) and writes one file per
day in Bybit's layout (`research.bybit_trades.dump_csv`: derivatives `trading/SYMBOL/
SYMBOLYYYY-MM-DD.csv.gz` newest first with second timestamps, spot `spot/SYMBOL/
SYMBOL_YYYY-MM-DD.csv.gz` with ms). Bars with zero volume, or whose open time is in `skip`,
get no trades (a gap).

`BybitPublicMirror` serves `root/` (GET and HEAD; 404 for what is absent). Faults for tests:
`corrupt[rel] = n` flips one byte in the middle of the next n GETs of `rel`; `drop[rel] = n`
cuts the next n GETs off halfway (a truncated body, Content-Length announced in full);
`fail[rel] = n` answers HTTP 500. Every request path is counted in `hits`.
"""

from __future__ import annotations

import gzip
from collections.abc import Collection, Iterable, Sequence
from datetime import date
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from aiohttp import web

from nautilus_hmm.research.bybit_trades import dump_csv, dump_rel
from nautilus_hmm.research.download import day_ms
from nautilus_hmm.research.mirror_common import (
    LoopbackFileMirror,
    flip_middle_byte,
    head_response,
    send_first_half,
    serve_main,
)

TradeRow = tuple[int, str, str, str]  # ts_ms, side, size, price


def trades_from_klines(rows: Iterable[Sequence[int | str]], skip: Collection[int] = ()) -> list[TradeRow]:
    """Four trades per bar (see the module docstring) from 12-column kline rows (open ms first)."""
    out: list[TradeRow] = []
    for r in rows:
        o_ms = int(r[0])
        vol = Decimal(str(r[5]))
        if o_ms in skip or vol <= 0:
            continue
        exp = vol.as_tuple().exponent
        quantum = Decimal(1).scaleb(exp if isinstance(exp, int) else 0)
        part = (vol / 4).quantize(quantum, rounding=ROUND_DOWN)
        if part <= 0:
            out.append((o_ms + 59_900, "Buy", str(vol), str(r[4])))
            continue
        last = vol - 3 * part
        for dt, side, size, price in ((100, "Sell", part, r[1]), (15_000, "Buy", part, r[2]),
                                      (30_000, "Sell", part, r[3]), (59_900, "Buy", last, r[4])):
            out.append((o_ms + dt, side, str(size), str(price)))
    return out


def write_trade_dumps(root: Path, category: str, symbol: str, trades: Sequence[TradeRow], days: Iterable[date],
                      newest_first: bool | None = None) -> list[str]:
    """One gzip dump per day of `days` from `trades`; returns the paths written (under root).
    `newest_first` None: derivatives files newest first, spot oldest first."""
    written = []
    for d in days:
        lo = day_ms(d)
        rel = dump_rel(category, symbol, d)
        rows = [t for t in trades if lo <= t[0] < lo + 86_400_000]
        order = category != "spot" if newest_first is None else newest_first
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(dump_csv(rows, category, symbol, order), mtime=0))
        written.append(rel)
    return written


class BybitPublicMirror(LoopbackFileMirror):
    """Serves a dumps directory on loopback (see the module docstring)."""

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_route("GET", "/{tail:.+}", self._file)
        app.router.add_route("HEAD", "/{tail:.+}", self._file)
        return app

    async def _file(self, request: web.Request) -> web.StreamResponse:
        rel = request.match_info["tail"]
        path = self._file_path(rel)
        if request.method == "HEAD":
            return head_response(path)
        data = path.read_bytes()
        if self.corrupt[rel] > 0:
            self.corrupt[rel] -= 1
            return web.Response(body=flip_middle_byte(data), content_type="application/gzip")
        if self.drop[rel] > 0:
            self.drop[rel] -= 1
            resp = await send_first_half(request, data)
            request.transport.close()  # type: ignore[union-attr]
            return resp
        return web.Response(body=data, content_type="application/gzip")


def main(argv: list[str] | None = None) -> int:
    """`python -m nautilus_hmm.research.bybit_mirror ROOT [--port P]`: serve ROOT's trade dumps
    on 127.0.0.1 until interrupted; prints the base URL (for `data download --base-url`) first."""
    return serve_main("python -m nautilus_hmm.research.bybit_mirror",
                      "directory holding trading/SYMBOL/... or spot/SYMBOL/... dumps", BybitPublicMirror, argv)


if __name__ == "__main__":
    raise SystemExit(main())
