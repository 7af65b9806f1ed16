"""write_atomic: the file is replaced whole, private, and a failed write leaves the old one."""

from __future__ import annotations

import os
import stat

import pytest

from nautilus_hmm.core.files import write_atomic


def test_write_atomic_replaces_the_file_whole_and_private(tmp_path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"old contents that are longer than the new ones")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_write_that_cannot_create_its_temp_file_leaves_the_old_file(tmp_path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"old")
    (tmp_path / "state.json.tmp").mkdir()  # the temp file cannot be opened for writing
    with pytest.raises(OSError):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
