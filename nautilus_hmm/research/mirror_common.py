"""What the loopback public-data mirrors (`binance_mirror.BinanceMirror`,
`bybit_mirror.BybitPublicMirror`) share: a root directory served on 127.0.0.1, the per-path
fault counters (`hits`, `corrupt`, `drop`, `fail`), start/stop, and the checks every file
GET/HEAD goes through before its body is sent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from aiohttp import web


class LoopbackFileMirror:
    """Base of the mirrors: subclasses give `app()` and send the bodies."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits: Counter[str] = Counter()
        self.corrupt: Counter[str] = Counter()
        self.drop: Counter[str] = Counter()
        self.fail: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL (after start)."""
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        """The aiohttp application."""
        raise NotImplementedError

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (a free port by default); returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _file_path(self, rel: str) -> Path:
        """Count a request of `rel`; HTTP 500 while `fail[rel]` lasts, 404 for a path outside
        root or absent; else the file's path."""
        self.hits[rel] += 1
        if self.fail[rel] > 0:
            self.fail[rel] -= 1
            raise web.HTTPInternalServerError()
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            raise web.HTTPNotFound()
        return path


def head_response(path: Path) -> web.Response:
    """A HEAD answer announcing the file's size."""
    return web.Response(headers={"Content-Length": str(path.stat().st_size)})


def flip_middle_byte(data: bytes) -> bytes:
    """`data` with one bit of its middle byte flipped (a corrupt body)."""
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    return bytes(flipped)


async def send_first_half(request: web.Request, data: bytes) -> web.StreamResponse:
    """Announce all of `data` and send its first half (the caller ends or resumes the body)."""
    resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
    await resp.prepare(request)
    await resp.write(data[: len(data) // 2])
    return resp


def serve_main(prog: str, root_help: str, mirror: Callable[[Path], LoopbackFileMirror],
               argv: list[str] | None) -> int:
    """`python -m PROG ROOT [--port P]`: serve ROOT on 127.0.0.1 until interrupted; prints the
    base URL (for `data download --base-url`) first. Exit 2 when ROOT is not a directory."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("root", type=Path, help=root_help)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = p.parse_args(argv)
    if not args.root.is_dir():
        print(f"{args.root}: not a directory", file=sys.stderr)
        return 2

    async def serve() -> None:
        server = mirror(args.root)
        print(await server.start(args.port), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
