"""core.bounded: a set and a map that keep the newest `maxlen` keys."""

from __future__ import annotations

import pytest

from nautilus_hmm.core.bounded import RecentKeys, RecentMap


def test_recent_keys_forget_the_oldest_past_the_bound() -> None:
    keys: RecentKeys[int] = RecentKeys(3)
    assert [keys.add(i) for i in range(10)] == [True] * 10
    assert list(keys) == [7, 8, 9] and len(keys) == 3
    assert 6 not in keys and 9 in keys


def test_a_key_seen_again_is_not_new_and_keeps_its_age() -> None:
    keys: RecentKeys[str] = RecentKeys(2)
    keys.add("a")
    keys.add("b")
    assert keys.add("a") is False
    keys.add("c")  # "a" is still the oldest
    assert list(keys) == ["b", "c"]
    keys.discard("b")
    keys.discard("missing")
    assert list(keys) == ["c"]


def test_recent_map_drops_the_oldest_entry_and_overwrites_in_place() -> None:
    m: RecentMap[str, int] = RecentMap(2)
    m["a"] = 1
    m["b"] = 2
    m["a"] = 3  # overwrite: no eviction, keeps its place
    assert m == {"a": 3, "b": 2}
    for i in range(100):
        m[f"k{i}"] = i
    assert m == {"k98": 98, "k99": 99}


@pytest.mark.parametrize("bad", [0, -1])
def test_a_bound_below_one_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="maxlen must be >= 1"):
        RecentKeys(bad)
    with pytest.raises(ValueError, match="maxlen must be >= 1"):
        RecentMap(bad)
