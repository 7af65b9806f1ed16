"""What the README's run command installs runs every documented command.

The Quick start installs `pip install -e '.[EXTRAS]'` and nothing else. Every third-party
module the package imports (at the top of a module or inside a function, e.g. evaluate's
matplotlib) must come from a distribution that pyproject.toml lists in the core
dependencies or in those extras; otherwise a documented command dies on an ImportError
(`nautilus-hmm evaluate` did, at the end, for matplotlib).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from tests.conftest import REPO


def _readme_run_extras() -> set[str]:
    readme = (REPO / "README.md").read_text()
    m = re.search(r"pip install -e '\.\[([a-z0-9_,-]+)\]' && \.venv/bin/nautilus-hmm run", readme)
    assert m, "the README's run command (pip install -e '.[...]' && .venv/bin/nautilus-hmm run) not found"
    return set(m.group(1).split(","))


def _requirement_name(req: str) -> str:
    name = re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_by_readme() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in _readme_run_extras():
        reqs += project["optional-dependencies"][extra]
    return {_requirement_name(r) for r in reqs}


def _guarded(tree: ast.AST) -> set[ast.AST]:
    """Import statements inside `try: ... except ImportError:` (an optional feature that
    reports the missing package itself)."""
    out: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            out.update(n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom))
    return out


def _third_party_imports() -> dict[str, str]:
    """Top-level module → first file importing it (unguarded), over every module of the package."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "nautilus_hmm").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if node in guarded:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "nautilus_hmm" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_the_readme_run_command_installs_every_module_the_package_imports() -> None:
    installed = _installed_by_readme()
    dists = importlib.metadata.packages_distributions()
    missing = []
    for module, where in sorted(_third_party_imports().items()):
        names = {_requirement_name(d) for d in dists.get(module, [module])}
        if not names & installed:
            missing.append(f"{module} (imported by {where}; distribution {', '.join(sorted(names))})")
    assert missing == [], f"not installed by pip install -e '.[{','.join(sorted(_readme_run_extras()))}]'"
