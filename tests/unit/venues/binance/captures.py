"""Readers for the recorded Binance traffic used by the parser and book tests."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import orjson

from tests.conftest import fixture_path

HFT = ("marketdata", "binance_ws_captures_hftbacktest")


def hft_lines(name: str) -> Iterator[tuple[int, int, bytes]]:
    """(line number, collector receive time ns, raw JSON) of an hftbacktest capture."""
    path = fixture_path(*HFT, name)
    with gzip.open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            ts, _, raw = line.rstrip(b"\n").partition(b" ")
            yield n, int(ts), raw


def cryptofeed_ws(name: str) -> Iterator[tuple[float, bytes]]:
    """(receive time s, raw frame) of a cryptofeed WS capture (header line skipped)."""
    path: Path = fixture_path("binance", "cryptofeed_captures", name)
    lines = path.read_bytes().splitlines()
    for line in lines[1:]:
        if line:
            ts, _, raw = line.partition(b": ")
            yield float(ts), raw


def cryptofeed_http(name: str) -> Iterator[tuple[str, float, object]]:
    """(symbol, receive time s, decoded body) of a cryptofeed HTTP capture."""
    path = fixture_path("binance", "cryptofeed_captures", name)
    for line in path.read_text().splitlines():
        if line:
            url, _, rest = line.partition(" -> ")
            ts, _, body = rest.partition(": ")
            symbol = url.split("symbol=", 1)[1].split("&", 1)[0]
            yield symbol, float(ts), orjson.loads(body)
