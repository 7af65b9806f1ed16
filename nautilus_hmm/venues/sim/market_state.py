"""The synthetic market's state on disk: `<state_dir>/sim_market.json`.

The paper market continues where it stopped (price, regime, RNG states: see
`marketdata.synthetic.SyntheticMarket.state`). The file is written atomically (temp file,
fsync, rename, fsync of the directory): a crash leaves the old or the new state, never a
torn one. A file that cannot be read or parsed raises `DataError` naming it; the venue
then warns and starts from the seed (the market is a simulation: losing its state costs a
price jump, not money), unlike a damaged paper account, which stops the start.
"""

from __future__ import annotations

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
