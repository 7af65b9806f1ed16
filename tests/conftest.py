"""Shared test helpers: the recorded fixtures beside the checkout, a manual clock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nautilus_hmm.core.bus import Bus
from nautilus_hmm.core.clock import ManualClock
from nautilus_hmm.obs import logging as obs_logging

# A test that runs a command in-process configures logging; a logger cached then would
# bypass capture_logs in every later test, so tests never cache loggers.
obs_logging.cache_loggers(False)

REPO = Path(__file__).resolve().parents[1]
# CI places ../shared beside the checkout; NAUTILUS_HMM_FIXTURES overrides.
FIXTURES = Path(os.environ.get("NAUTILUS_HMM_FIXTURES", REPO.parent / "shared" / "fixtures"))


# The order in which the files go to the workers (pyproject: -n 2 --dist loadfile
# --no-loadscope-reorder): longest first, so that no long file starts last while the other
# worker idles. A file's tests keep their own order.
_FIRST = ("tests/system/test_chaos_", "tests/system/", "tests/integration/")


def _schedule_rank(item: pytest.Item) -> int:
    rel = item.path.relative_to(REPO).as_posix() if item.path.is_relative_to(REPO) else ""
    return next((i for i, prefix in enumerate(_FIRST) if rel.startswith(prefix)), len(_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first (see _FIRST); stable, so every worker collects the same order."""
    items.sort(key=_schedule_rank)


def fixture_path(*parts: str) -> Path:
    """Path of a recorded fixture; skips the test only if the fixtures tree is absent."""
    p = FIXTURES.joinpath(*parts)
    if not FIXTURES.exists():
        pytest.skip(f"fixtures not found at {FIXTURES}")
    assert p.exists(), f"missing fixture {p}"
    return p


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting at a fixed instant."""
    return ManualClock()


@pytest.fixture
def bus() -> Bus:
    """A fresh bus."""
    return Bus()
