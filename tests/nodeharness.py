"""An in-process node on a loopback port with a manual clock, for web and node tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from nautilus_hmm.config import load_config
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.node import Node
from nautilus_hmm.obs.systemd import Notifier

TOKEN = "test-admin-token-0123456789"


def write_config(tmp_path: Path, extra: str = "") -> Path:
    """A config on port 0 with its state dir under tmp_path; the sma_cross strategy unless
    `extra` has a [strategy] table (the default hmm strategy trains a model at start)."""
    p = tmp_path / "config.toml"
    strategy = "" if "[strategy]" in extra or "[[strategies]]" in extra else '[strategy]\nkind = "sma_cross"\n'
    p.write_text(strategy + f'[node]\nstate_dir = "{tmp_path / "state"}"\n[http]\nport = 0\n' + extra)
    return p


@contextlib.asynccontextmanager
async def running_node(tmp_path: Path, monkeypatch, extra: str = "",
                       notifier: Notifier | None = None) -> AsyncIterator[tuple[Node, str]]:
    """Start a Node; yield it and its base URL; stop it afterwards."""
    monkeypatch.setenv("NAUTILUS_HMM_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = write_config(tmp_path, extra)
    node = Node(load_config(str(path)), path, clock=ManualClock(), notifier=notifier or Notifier(""))
    await node.start()
    try:
        yield node, f"http://127.0.0.1:{node.web.bound_port}"
    finally:
        await node.stop()


def auth(token: str = TOKEN) -> dict[str, str]:
    """Authorization header."""
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session."""
    async with aiohttp.ClientSession() as s:
        yield s
