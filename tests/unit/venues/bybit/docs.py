"""Read Bybit doc fixtures in tests: JSONC with several documents, labelled and elided examples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.unit.venues.binance.jsonc import strip_line_comments


def load_documents(path: Path) -> list[Any]:
    """Every top-level JSON value in a .json/.jsonc file (the docs put several in one block)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonc":
        text = strip_line_comments(text)
    return _split(text)


def _split(text: str) -> list[Any]:
    dec = json.JSONDecoder()
    out: list[Any] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return out
        value, i = dec.raw_decode(text, i)
        out.append(value)


def load_labelled(path: Path) -> list[tuple[str, Any]]:
    """(label, document) pairs of a file where each JSON block follows a one-line label."""
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"^([A-Za-z][A-Za-z0-9 ]*)\s*$", text, flags=re.M)
    # re.split with a group: ["", label1, body1, label2, body2 ...]
    return [(parts[k].strip(), json.loads(parts[k + 1])) for k in range(1, len(parts) - 1, 2)]


def de_elide(text: str) -> str:
    """Drop the docs' `...,` / `...` placeholder lines and the trailing commas they leave."""
    lines = [ln for ln in text.splitlines() if ln.strip() not in ("...", "...,")]
    out = "\n".join(lines)
    return re.sub(r",(\s*[\]}])", r"\1", out)
