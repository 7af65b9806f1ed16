"""The synthetic market's state on disk: `<state_dir>/sim_market.json`.

The paper market continues where it stopped (price, regime, RNG states: see
`marketdata.synthetic.SyntheticMarket.state`). The file is written atomically (temp file,
fsync, rename, fsync of the directory): a crash leaves the old or the new state, never a
torn one. A file that cannot be read or parsed raises `DataError` naming it; the venue
then warns and starts from the seed (the market is a simulation: losing its state costs a
price jump, not money), unlike a damaged paper account, which stops the start. Bad input
loses nothing: the damaged file is first moved aside to `sim_market.json.damaged-<UTC time>`
(`move_aside`), so the next save does not replace the evidence.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm.core.errors import DataError
from nautilus_hmm.core.files import write_atomic

MARKET_FILE = "sim_market.json"


def read_market_state(path: Path) -> dict[str, Any]:
    """The saved state as a dict; DataError naming the file when it is unreadable or not a JSON object."""
    p = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(p, None, f"cannot read market state: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(p, getattr(exc, "lineno", None), f"market state is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(p, None, f"market state: expected a JSON object, got {type(doc).__name__}")
    return doc


def write_market_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename, directory fsync); OSError propagates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, orjson.dumps(state))


def move_aside(path: Path, now_ns: int) -> Path:
    """Rename a damaged state file to `<name>.damaged-<UTC time>` beside it (never over an
    earlier one) and return the new path; OSError propagates (the caller keeps the file)."""
    stamp = datetime.fromtimestamp(now_ns / 1e9, UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.rename(path, aside)
    return aside
