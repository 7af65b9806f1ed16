"""The node creates its state directory private to the user: the journal in it holds every
order and fill (outside systemd nothing else makes it 0700)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nautilus_hmm.config import load_config
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier
from tests.nodeharness import TOKEN, write_config


def test_state_dir_and_journal_are_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = write_config(tmp_path)
    old = os.umask(0o022)
    try:
        node = Node(load_config(str(path)), path, clock=ManualClock(), notifier=Notifier(""))
    finally:
        os.umask(old)
    try:
        state = tmp_path / "state"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "journal.sqlite3").stat().st_mode) == 0o600
    finally:
        node.stack.journal.close()
