"""The slippage model artifact: load, validate, predict (numpy-free, no research imports), so
the sim venue and the router's sizing can use a model that `research slip-train`
(`nautilus_hmm.research.slippage`) fitted. Format: docs/RESEARCH.md.

`sha256` is the hex sha256 of the canonical JSON of every other key (orjson, sorted keys):
`load_model` refuses a file whose checksum, kind, version or any field is wrong with
`SlippageModelError` naming the file and the field.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from nautilus_hmm.core.fields import existing_file
from nautilus_hmm.domain.enums import Side

KIND = "nautilus_hmm.slippage_model"
FORMAT_VERSION = 1
FEATURES = ("const", "spread_bps", "vol_bps", "sqrt_size")


class SlippageModelError(ValueError):
    """A slippage artifact is refused: `source` the file, `field` the dotted key."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source, self.field, self.problem = source, field, problem
        super().__init__(f"{source}: {field}: {problem}")


def _design(spread_bps: float, vol_bps: float, notional: float, size_ref: float) -> list[float]:
    return [1.0, 0.0 if math.isnan(spread_bps) else spread_bps, vol_bps, math.sqrt(max(notional, 0.0) / size_ref)]



def _canonical(doc: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in doc.items() if k != "sha256"}, option=orjson.OPT_SORT_KEYS)


_TOP = {"kind", "format_version", "created_at", "instruments", "features", "coef", "size_ref_quote",
        "vol_window_s", "clip_bps", "fit", "training", "library_versions", "sha256"}


def _num(source: str, field: str, v: Any, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SlippageModelError(source, field, f"{v!r} is not a finite number")
    if positive and v <= 0:
        raise SlippageModelError(source, field, f"{v!r} must be > 0")
    return float(v)


class SlippageModel:
    """A fitted slippage model (immutable after load). `predict_bps` is what the sim venue and
    the router's sizing call: cost in bps of the arrival mark, clipped to the training range."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.coef = [float(c) for c in doc["coef"]]
        self.size_ref_quote = float(doc["size_ref_quote"])
        self.vol_window_s = float(doc["vol_window_s"])
        self.clip_lo, self.clip_hi = (float(v) for v in doc["clip_bps"])
        self.sha256 = str(doc["sha256"])

    @classmethod
    def from_dict(cls, doc: Any, source: str, require_sha256: bool = False) -> SlippageModel:
        """Validate a document (computing `sha256` if absent, unless `require_sha256`; checking it if present)."""
        if not isinstance(doc, dict):
            raise SlippageModelError(source, "<top>", "not a JSON object")
        doc = dict(doc)
        if doc.get("kind") != KIND:
            raise SlippageModelError(source, "kind", f"{doc.get('kind')!r}, expected {KIND!r}")
        if doc.get("format_version") != FORMAT_VERSION:
            raise SlippageModelError(source, "format_version",
                                     f"{doc.get('format_version')!r}; this code reads {FORMAT_VERSION}")
        unknown = sorted(set(doc) - _TOP)
        if unknown:
            raise SlippageModelError(source, unknown[0], "unknown key (a new field means a new format_version)")
        missing = sorted(_TOP - {"sha256"} - set(doc))
        if missing:
            raise SlippageModelError(source, missing[0], "missing")
        if require_sha256 and "sha256" not in doc:
            raise SlippageModelError(source, "sha256", "missing")
        digest = hashlib.sha256(_canonical(doc)).hexdigest()
        if "sha256" in doc and doc["sha256"] != digest:
            raise SlippageModelError(source, "sha256", f"checksum {doc['sha256']!r} does not match the content "
                                     f"({digest}): the file was changed or damaged")
        doc["sha256"] = digest
        if doc["features"] != list(FEATURES):
            raise SlippageModelError(source, "features", f"{doc['features']!r}, expected {list(FEATURES)!r}")
        coef = doc["coef"]
        if not isinstance(coef, list) or len(coef) != len(FEATURES):
            raise SlippageModelError(source, "coef", f"expected {len(FEATURES)} numbers")
        for j, c in enumerate(coef):
            _num(source, f"coef[{j}]", c)
        _num(source, "size_ref_quote", doc["size_ref_quote"], positive=True)
        _num(source, "vol_window_s", doc["vol_window_s"], positive=True)
        clip = doc["clip_bps"]
        if not isinstance(clip, list) or len(clip) != 2:
            raise SlippageModelError(source, "clip_bps", "expected [low, high]")
        lo, hi = _num(source, "clip_bps[0]", clip[0]), _num(source, "clip_bps[1]", clip[1])
        if lo > hi:
            raise SlippageModelError(source, "clip_bps", f"low {lo} > high {hi}")
        if not isinstance(doc["fit"], dict) or not isinstance(doc["training"], dict):
            raise SlippageModelError(source, "fit" if not isinstance(doc["fit"], dict) else "training",
                                     "not an object")
        return cls(doc)

    def predict_bps(self, notional_quote: float, spread_bps: float = math.nan, vol_bps: float = 0.0) -> float:
        """Expected cost in bps of the arrival mark of an order of `notional_quote`."""
        x = _design(spread_bps, vol_bps, notional_quote, self.size_ref_quote)
        y = sum(c * v for c, v in zip(self.coef, x, strict=True))
        return min(self.clip_hi, max(self.clip_lo, y))

    def fill_price(self, side: Side, mark: float, qty: float, spread_bps: float = math.nan,
                   vol_bps: float = 0.0) -> float:
        """The price an order of `qty` at `mark` is expected to fill at (worse for a positive cost)."""
        bps = self.predict_bps(qty * mark, spread_bps, vol_bps)
        sign = 1.0 if side is Side.BUY else -1.0
        return mark * (1.0 + sign * bps / 1e4)

    def max_notional_within(self, budget_bps: float, max_notional: float, spread_bps: float = math.nan,
                            vol_bps: float = 0.0) -> float:
        """The largest notional <= `max_notional` whose predicted cost is <= `budget_bps` (0.0 when
        even the smallest order costs more). Bisection on notional: the cost grows with size when
        the size coefficient is positive; otherwise a smaller order is no cheaper, so the answer
        is all or nothing."""
        if max_notional <= 0.0:
            return 0.0
        if self.predict_bps(max_notional, spread_bps, vol_bps) <= budget_bps:
            return max_notional
        if self.coef[3] <= 0.0 or self.predict_bps(0.0, spread_bps, vol_bps) > budget_bps:
            return 0.0
        lo, hi = 0.0, max_notional
        for _ in range(60):
            mid = (lo + hi) / 2.0
            if self.predict_bps(mid, spread_bps, vol_bps) <= budget_bps:
                lo = mid
            else:
                hi = mid
        return lo

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file in the same directory, fsync, rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = orjson.dumps(self.doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return p



class RealisedVol:
    """Realised volatility of a price stream over the model's `vol_window_s`, as the model was
    fitted: sqrt of the summed squared log returns of the prices seen in the window before
    now, in bps. Deterministic (a deque of returns, summed exactly with `math.fsum` on read;
    reads happen only at taker fills and sizing decisions, updates at every price)."""

    __slots__ = ("_last_log", "_returns", "window_ns")

    def __init__(self, window_s: float) -> None:
        self.window_ns = int(window_s * 1e9)
        self._returns: deque[tuple[int, float]] = deque()
        self._last_log: float | None = None

    def update(self, ts_ns: int, price: float) -> None:
        """A price known at `ts_ns` (non-positive or non-finite prices are ignored)."""
        if not (price > 0.0 and math.isfinite(price)):
            return
        lp = math.log(price)
        if self._last_log is not None:
            r = lp - self._last_log
            self._returns.append((ts_ns, r * r))
        self._last_log = lp
        self._prune(ts_ns)

    def bps(self, now_ns: int) -> float:
        """Volatility (bps) of the returns in the window ending at `now_ns`."""
        self._prune(now_ns)
        return math.sqrt(math.fsum(r2 for _, r2 in self._returns)) * 1e4

    def _prune(self, now_ns: int) -> None:
        start = now_ns - self.window_ns
        q = self._returns
        while q and q[0][0] < start:
            q.popleft()


def spread_bps(bid: float | None, ask: float | None) -> float:
    """Quoted spread in bps of the mid; NaN (unknown, the model counts 0) without a sane quote."""
    if bid is None or ask is None or not (0.0 < bid <= ask):
        return math.nan
    return (ask - bid) / ((ask + bid) / 2.0) * 1e4


def load_model(path: str | Path) -> SlippageModel:
    """Read and validate an artifact; SlippageModelError names the file and the field."""
    p = str(path)
    try:
        raw = Path(p).read_bytes()
    except OSError as exc:
        raise SlippageModelError(p, "<file>", f"cannot be read ({exc.strerror or exc})") from exc
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SlippageModelError(p, "<file>", f"not JSON ({exc})") from exc
    return SlippageModel.from_dict(doc, p, require_sha256=True)


def model_file_problem(path: str) -> str | None:
    """For check-config: why the (set) `path` is not a usable slippage model file (missing,
    unreadable, or refused by load_model), or None when it is."""
    problem = existing_file(path)
    if problem is None:
        try:
            load_model(path)
        except SlippageModelError as exc:
            problem = f"not a usable slippage model: {exc.field}: {exc.problem}"
    return problem


