"""node.tune_gc: after start-up everything alive is frozen and gen-0 passes are rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from nautilus_hmm.node import GC_GEN0_THRESHOLD, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_gc_freezes_what_is_alive_and_raises_the_gen0_threshold(restore_gc: None) -> None:
    alive = [object() for _ in range(10)]  # noqa: F841 (kept alive across the freeze)
    _, gen1, gen2 = gc.get_threshold()
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_GEN0_THRESHOLD, gen1, gen2)


def test_cycles_are_still_collected_after_tune_gc(restore_gc: None) -> None:
    tune_gc()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle: only the collector frees it
    del a, b
    assert gc.collect() >= 2
