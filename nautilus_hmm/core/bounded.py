"""Bounded memories for a daemon that runs for months: a set and a map that keep only the
newest `maxlen` keys (insertion order; the oldest is forgotten first).

Rule for using them: forgetting a key must cost a slower answer, never a wrong one. A
dedupe window in front of an authoritative check (the journal's unique key), a cache in
front of a venue query, a list kept for /status: yes. The only record that an order was
sent, or that a fill was booked: no (that is the journal's job).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentKeys(Generic[K]):
    """A set of at most `maxlen` keys; adding a new key past the bound forgets the oldest."""

    __slots__ = ("_keys", "maxlen")

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self.maxlen = maxlen
        self._keys: dict[K, None] = {}

    def add(self, key: K) -> bool:
        """Remember `key`; True when it was not remembered (a key seen again keeps its age)."""
        keys = self._keys
        if key in keys:
            return False
        keys[key] = None
        if len(keys) > self.maxlen:
            del keys[next(iter(keys))]
        return True

    def discard(self, key: K) -> None:
        """Forget `key` (no error when absent)."""
        self._keys.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[K]:
        return iter(self._keys)


class RecentMap(dict[K, V]):
    """A dict of at most `maxlen` entries: setting a new key past the bound drops the oldest
    entry (insertion order; overwriting a key keeps its place). Only `m[key] = value` checks
    the bound (`update` and `setdefault` do not)."""

    __slots__ = ("maxlen",)

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        super().__init__()
        self.maxlen = maxlen

    def __setitem__(self, key: K, value: V) -> None:
        new = key not in self
        super().__setitem__(key, value)
        if new and len(self) > self.maxlen:
            del self[next(iter(self))]
