"""The package layering (pyproject.toml [tool.importlinter]) holds: CI runs it through pytest.

A broken contract prints import-linter's report: which module imports which, through
what chain. Fix the import (move the code to the layer it belongs to); an
`ignore_imports` entry is only for a debt named by an issue item.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nautilus_hmm
from tests.conftest import REPO

PACKAGE_DIR = Path(nautilus_hmm.__file__).resolve().parent


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def _lint_imports() -> str:
    beside_python = Path(sys.executable).with_name("lint-imports")
    exe = str(beside_python) if beside_python.exists() else shutil.which("lint-imports")
    assert exe, "lint-imports not found: install the test extra (pip install -e '.[test]')"
    return exe


def test_import_contracts_are_kept() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [_lint_imports(), "--no-cache", "--no-logo"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, "import contracts broken (pyproject.toml [tool.importlinter]):\n" + report
    assert "0 broken" in report, report


def test_every_top_level_module_has_a_layer() -> None:
    layered = {name.strip() for layer in _contracts()["layers"]["layers"]
               for name in layer.replace(":", "|").split("|")}
    top_level = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    top_level |= {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")}
    missing = sorted(top_level - layered)
    assert not missing, f"add to the layers contract in pyproject.toml (and docs/ARCHITECTURE.md): {missing}"
