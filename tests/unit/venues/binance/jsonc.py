"""Read the fixtures' JSONC (Binance doc examples with `//` comments) in tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def strip_line_comments(text: str) -> str:
    """Remove `//...` comments that sit outside JSON strings."""
    out: list[str] = []
    in_str = False
    escaped = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif c == "/" and i + 1 < n and text[i + 1] == "/":
            while i < n and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def load_jsonc(path: Path) -> Any:
    """Parse a .json or .jsonc fixture."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonc":
        text = strip_line_comments(text)
    return orjson.loads(text)
