"""The loopback data mirrors' command lines (`python -m nautilus_hmm.research.<x>_mirror ROOT
--port P`) listen on the port asked for and print their base URL first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.system.processes import free_port


@pytest.mark.parametrize("module", ["binance_mirror", "bybit_mirror"])
def test_a_mirror_listens_on_the_port_it_is_given(tmp_path: Path, module: str) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", f"nautilus_hmm.research.{module}", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"http://127.0.0.1:{port}", (line, proc.stderr.read() if proc.poll() is not None else "")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
