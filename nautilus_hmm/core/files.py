"""Durable small-file writes: a crash leaves the old file or the new one, never a torn one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(directory: str | Path) -> None:
    """Make a rename or creation in `directory` durable (some filesystems refuse: ignored)."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)


def write_atomic(path: str | Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`: temp file (mode `mode`), fsync, rename, fsync of the directory.

    OSError propagates; the temp file beside `path` is reused by the next write.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent.absolute())
