"""The daemon-side modules import with numpy only: never torch or pomegranate."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PURE = ("config", "errors", "features", "filter", "model", "policy", "runtime")


def modules_after_import(*names: str) -> set[str]:
    code = ("import sys\n" + "".join(f"import nautilus_hmm.hmm.{n}\n" for n in names)
            + "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_daemon_side_modules_import_neither_torch_nor_pomegranate_nor_asyncio() -> None:
    loaded = modules_after_import(*PURE)
    assert {"torch", "pomegranate", "asyncio"}.isdisjoint(loaded)
    assert "numpy" in loaded


def test_importing_train_does_not_import_torch_or_pomegranate() -> None:
    loaded = modules_after_import("train")
    assert {"torch", "pomegranate"}.isdisjoint(loaded)
