"""A local data.binance.vision mirror on loopback: real-format kline zips + `.CHECKSUM` and REST klines.

What the download tests and `benchmarks/download_bench.py` point `--base-url`/`--rest-url`
at, and what a user can serve a directory of dumps with. `write_kline_dumps` turns bar rows
into the public layout: one zip per month or day, holding one headerless 12-column CSV
named like the zip, and a `<zip>.CHECKSUM` in `sha256sum` format (`<hex>  <name>`, no
final newline, as Binance publishes it). Spot dumps from 2025-01-01 on carry µs times
(binance-public-data README); `time_unit` picks it.

`BinanceMirror` serves `root/` over HTTP (GET and HEAD; 404 for what is absent) and
`GET /api/v3/klines` + `/fapi/v1/klines` (startTime, endTime, limit) from rows given to it.
Faults for tests: `corrupt[rel] = n` serves the next n GETs of `rel` with one byte flipped;
`drop[rel] = n` cuts the next n GETs of `rel` off halfway; `fail[path] = n` answers the next n
requests of a file or REST path with HTTP 500; `stall[rel] = n` sends half of the next n GETs
of `rel`, sets `stalled` and waits for `release` (a download interrupted mid-file). Every
request path is counted in `hits`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from aiohttp import web

from nautilus_hmm.research.download import daily_rel, day_ms, monthly_rel, next_month
from nautilus_hmm.research.mirror_common import (
    LoopbackFileMirror,
    flip_middle_byte,
    head_response,
    send_first_half,
    serve_main,
)

KlineRow = Sequence[int | str]  # open_ms, o, h, l, c, v, close_ms, qv, count, tbb, tbq, ignore


def rows_from_ohlcv_csv(path: str | Path, interval_ms: int = 60_000) -> list[list[int | str]]:
    """12-column kline rows (ms) from a `timestamp,open,high,low,close,volume` CSV (naive UTC
    ISO times, as in shared/fixtures/marketdata). Columns it lacks (quote volume, trade
    count, taker volumes) are "0"."""
    rows: list[list[int | str]] = []
    with open(path) as f:
        header = f.readline().strip().split(",")
        if header[:6] != ["timestamp", "open", "high", "low", "close", "volume"]:
            raise ValueError(f"{path}: expected a timestamp,open,high,low,close,volume header, got {header}")
        for line in f:
            ts, o, h, lo, c, v = line.rstrip("\n").split(",")[:6]
            open_ms = int(datetime.fromisoformat(ts).replace(tzinfo=UTC).timestamp() * 1000)
            rows.append([open_ms, o, h, lo, c, v, open_ms + interval_ms - 1, "0", "0", "0", "0", "0"])
    return rows


def shift_rows(rows: Iterable[KlineRow], delta_ms: int) -> list[list[int | str]]:
    """The same rows with open and close times moved by `delta_ms`."""
    return [[int(r[0]) + delta_ms, *r[1:6], int(r[6]) + delta_ms, *r[7:12]] for r in rows]


def kline_csv(rows: Iterable[KlineRow], time_unit: str = "ms") -> bytes:
    """Headerless data-vision CSV of rows; `time_unit` "us" writes open/close times in µs."""
    mul = 1000 if time_unit == "us" else 1
    if time_unit not in ("ms", "us"):
        raise ValueError(f"time_unit {time_unit!r}: expected ms or us")
    out = io.StringIO()
    for r in rows:
        out.write(f"{int(r[0]) * mul},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]},{int(r[6]) * mul + (mul - 1)},"
                  f"{r[7]},{r[8]},{r[9]},{r[10]},{r[11]}\r\n")
    return out.getvalue().encode("ascii")


def write_dump(root: Path, rel: str, csv_bytes: bytes) -> str:
    """Write `root/rel` (a zip holding `<name>.csv`) and `root/rel.CHECKSUM`; returns the hex digest."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name[: -len(".zip")] + ".csv", csv_bytes)
    data = buf.getvalue()
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (root / (rel + ".CHECKSUM")).write_text(f"{digest}  {name}")
    return digest


def write_kline_dumps(
    root: Path, venue: str, symbol: str, interval: str, rows: Sequence[KlineRow], *,
    months: Iterable[date] = (), days: Iterable[date] = (), time_unit: str | None = None,
) -> list[str]:
    """Monthly zips for `months` and daily zips for `days` from `rows`; returns the paths written.
    `time_unit` None: µs for binance_spot from 2025-01-01 on, ms otherwise."""
    written = []
    for kind, periods in (("monthly", months), ("daily", days)):
        for p in periods:
            if kind == "monthly":
                lo, hi, rel = day_ms(p), day_ms(next_month(p)), monthly_rel(venue, symbol, interval, p)
            else:
                lo, hi, rel = day_ms(p), day_ms(p) + 86_400_000, daily_rel(venue, symbol, interval, p)
            unit = time_unit or ("us" if venue == "binance_spot" and p >= date(2025, 1, 1) else "ms")
            write_dump(root, rel, kline_csv((r for r in rows if lo <= int(r[0]) < hi), unit))
            written.append(rel)
    return written


class BinanceMirror(LoopbackFileMirror):
    """Serves a dumps directory and REST klines on loopback (see the module docstring)."""

    def __init__(self, root: Path, rest_rows: dict[str, Sequence[KlineRow]] | None = None) -> None:
        super().__init__(root)
        self.rest_rows = {k: sorted(v, key=lambda r: int(r[0])) for k, v in (rest_rows or {}).items()}
        self.stall: Counter[str] = Counter()
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/fapi/v1/klines", self._klines)
        app.router.add_route("GET", "/data/{tail:.*}", self._file)
        app.router.add_route("HEAD", "/data/{tail:.*}", self._file)
        return app

    async def _file(self, request: web.Request) -> web.StreamResponse:
        rel = "data/" + request.match_info["tail"]
        path = self._file_path(rel)
        if request.method == "HEAD":
            return head_response(path)
        if self.corrupt[rel] > 0:
            self.corrupt[rel] -= 1
            return web.Response(body=flip_middle_byte(path.read_bytes()), content_type="application/zip")
        if self.stall[rel] > 0:
            self.stall[rel] -= 1
            data = path.read_bytes()
            resp = await send_first_half(request, data)
            self.stalled.set()
            await self.release.wait()
            await resp.write(data[len(data) // 2:])
            return resp
        if self.drop[rel] > 0:
            self.drop[rel] -= 1
            resp = await send_first_half(request, path.read_bytes())
            request.transport.close()  # type: ignore[union-attr]
            return resp
        return web.FileResponse(path)

    async def _klines(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        if self.fail[request.path] > 0:
            self.fail[request.path] -= 1
            return web.json_response({"code": -1001, "msg": "Internal error; unable to process your request."},
                                     status=500)
        q = request.query
        rows = self.rest_rows.get(q.get("symbol", ""))
        if rows is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        start = int(q.get("startTime", 0))
        end = int(q.get("endTime", 2**62))
        limit = int(q.get("limit", 500))
        page = [r for r in rows if start <= int(r[0]) <= end][:limit]
        return web.json_response([[int(r[0]), *map(str, r[1:6]), int(r[6]), str(r[7]), int(r[8]), *map(str, r[9:12])]
                                  for r in page])


def main(argv: list[str] | None = None) -> int:
    """`python -m nautilus_hmm.research.binance_mirror ROOT [--port P]`: serve ROOT's dumps on
    127.0.0.1 until interrupted; prints the base URL (for `data download --base-url`) first."""
    return serve_main("python -m nautilus_hmm.research.binance_mirror",
                      "directory holding data/spot/... (a data.binance.vision layout)", BinanceMirror, argv)


if __name__ == "__main__":
    raise SystemExit(main())
