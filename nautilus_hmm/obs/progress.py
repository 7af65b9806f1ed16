"""Progress of long offline work (train, evaluate, backtest, research): a bar on a terminal, lines otherwise.

On a terminal (`stream.isatty()`) the bar is tqdm's. Anywhere else (a pipe, a log file, CI,
systemd) a plain line goes to the stream each time the work crosses another `every_fraction`
of its total or `every_s` seconds passed since the last line, by the injected clock, and one
line at the end::

    backtest: 13392/44640 bars (30%), 1.2 s, 11160 bars/s, ~2.8 s left
    backtest: 44640/44640 bars (100%) done in 4.0 s, 11160 bars/s

Progress never stops the work it reports on: a stream that cannot be written (a closed
stderr, a reader that went away) turns the reporter off; the work goes on.
A disabled Progress (`enabled=False`, what `--quiet` gives) writes nothing and costs a call.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

DEFAULT_EVERY_FRACTION = 0.1
DEFAULT_EVERY_S = 5.0


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _fmt_rate(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.2f}"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed file
        return False


class Progress:
    """Progress of one piece of work of `total` units (None: unknown) called `desc`.

    `bar` None picks tqdm when `stream` is a terminal and plain lines otherwise; True/False force it.
    `clock` (seconds, monotonic) paces the lines and measures rates: tests inject a manual one.
    """

    def __init__(self, total: int | None, desc: str, *, unit: str = "it", stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic, every_fraction: float = DEFAULT_EVERY_FRACTION,
                 every_s: float = DEFAULT_EVERY_S, enabled: bool = True, bar: bool | None = None) -> None:
        if not 0.0 < every_fraction <= 1.0:
            raise ValueError(f"every_fraction = {every_fraction}: must be in (0, 1]")
        if not every_s > 0:
            raise ValueError(f"every_s = {every_s}: must be > 0")
        self.total = total if total is None else max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.done = 0
        self.enabled = enabled
        self.closed = False
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._every_fraction = every_fraction
        self._every_s = every_s
        self._t0 = clock()
        self._last_line_t = self._t0
        self._mark = 0  # how many every_fraction steps the last line reported
        self._tqdm: Any = None
        if enabled and (_isatty(self._stream) if bar is None else bar):
            self._tqdm = self._open_bar()

    def _open_bar(self) -> Any:
        try:
            from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
        except ImportError:  # a runtime dependency, but a broken install still gets lines
            return None
        try:
            return tqdm(total=self.total, desc=self.desc, unit=f" {self.unit}", file=self._stream,
                        dynamic_ncols=True, mininterval=0.2, leave=True)
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------ reporting

    def update(self, n: int = 1) -> None:
        """`n` more units are done."""
        self.set(self.done + n)

    def set(self, done: int) -> None:
        """`done` units are done in all (it may not go backwards)."""
        if done < self.done or self.closed:
            return
        step = done - self.done
        self.done = done
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._guard(self._tqdm.update, step)
            return
        now = self._clock()
        mark = self._fraction_mark()
        due = mark > self._mark or now - self._last_line_t >= self._every_s
        if due and (self.total is None or done < self.total):  # the end gets its own line from close()
            self._mark = mark
            self._last_line_t = now
            self._write(self.line(now))

    def set_total(self, total: int | None) -> None:
        """The total turned out different (a step skipped, a count learnt late)."""
        self.total = total if total is None else max(int(total), 0)
        self._mark = self._fraction_mark()
        if self._tqdm is not None and self.enabled:
            self._tqdm.total = self.total
            self._guard(self._tqdm.refresh)

    def set_description(self, desc: str) -> None:
        """What is being done now (shown on the bar and in the next line)."""
        self.desc = desc
        if self._tqdm is not None and self.enabled:
            self._guard(self._tqdm.set_description_str, desc)

    def close(self, ok: bool = True) -> None:
        """The work ended (`ok` False: it stopped early); writes the last line once."""
        if self.closed:
            return
        self.closed = True
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._guard(self._tqdm.close)
            return
        self._write(self.line(self._clock(), final=True, ok=ok))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(ok=exc_type is None)

    # ------------------------------------------------------------ text

    def _fraction_mark(self) -> int:
        if not self.total:
            return 0
        return math.floor(min(self.done / self.total, 1.0) / self._every_fraction + 1e-9)

    def line(self, now: float, final: bool = False, ok: bool = True) -> str:
        """The plain progress line at clock time `now`."""
        elapsed = max(now - self._t0, 0.0)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit}"
        if self.total:
            count += f" ({min(self.done / self.total, 1.0) * 100:.0f}%)"
        rate_s = f", {_fmt_rate(rate)} {self.unit}/s" if rate > 0 else ""
        if final:
            how = "done in" if ok else "stopped after"
            return f"{self.desc}: {count} {how} {_fmt_s(elapsed)}{rate_s}"
        left = ""
        if self.total and rate > 0 and self.done < self.total:
            left = f", ~{_fmt_s((self.total - self.done) / rate)} left"
        return f"{self.desc}: {count}, {_fmt_s(elapsed)}{rate_s}{left}"

    def _write(self, text: str) -> None:
        def write() -> None:
            self._stream.write(text + "\n")
            self._stream.flush()

        self._guard(write)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        # A stream that cannot be written turns progress off, never the work off.
        try:
            fn(*args)
        except (OSError, ValueError):
            self.enabled = False


class ProgressFactory(Protocol):
    """Makes the Progress of one piece of work (what commands hand to the code that does it)."""

    def __call__(self, total: int | None, desc: str, unit: str = "it") -> Progress: ...


def progress_factory(*, enabled: bool = True, stream: IO[str] | None = None,
                     clock: Callable[[], float] = time.monotonic, bar: bool | None = None,
                     every_fraction: float = DEFAULT_EVERY_FRACTION,
                     every_s: float = DEFAULT_EVERY_S) -> ProgressFactory:
    """A ProgressFactory writing to `stream` (default: stderr at the time of each call)."""

    def make(total: int | None, desc: str, unit: str = "it") -> Progress:
        return Progress(total, desc, unit=unit, stream=stream, clock=clock, every_fraction=every_fraction,
                        every_s=every_s, enabled=enabled, bar=bar)

    return make


def no_progress(total: int | None, desc: str, unit: str = "it") -> Progress:
    """A ProgressFactory whose Progress writes nothing (library calls, --quiet)."""
    return Progress(total, desc, unit=unit, enabled=False)
